"""Fonts and text layout for the emulator's videos: prompts in any script, wrapped to a width."""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Iterable
from pathlib import Path

from PIL import ImageFont

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

# Where Linux distributions, macOS and Windows keep fonts that cover Chinese, Japanese and
# Korean. Pillow's bundled default font has Latin glyphs only, so prompts in those scripts would
# otherwise show as boxes.
_FONT_ROOTS = (
    Path("/usr/share/fonts"),
    Path("/usr/local/share/fonts"),
    Path("/System/Library/Fonts"),
    Path("/Library/Fonts"),
    Path("C:/Windows/Fonts"),
)
_CJK_PATTERNS = (
    "Noto*CJK*.tt[fc]",
    "Noto*CJK*.otf",
    "SourceHan*.tt[fc]",
    "SourceHan*.otf",
    "wqy*.tt[fc]",
    "DroidSansFallback*.ttf",
    "PingFang.ttc",
    "Hiragino Sans GB.ttc",
    "msyh.tt[fc]",
)

# One breakable unit per CJK character (those scripts wrap between any two characters), one
# per run of other non-space characters (a word), and runs of whitespace.
_CJK = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
_PIECES = re.compile(rf"[{_CJK}]|[^\s{_CJK}]+|\s+")
_ELLIPSIS = "…"

logger = logging.getLogger(__name__)


def find_cjk_font(roots: Iterable[Path] = _FONT_ROOTS) -> Path | None:
    """The best CJK-capable TrueType/OpenType font found under `roots`, or None."""
    for root in roots:
        if not root.is_dir():
            continue
        # One walk per root; the patterns' order says which font is preferred.
        found: list[tuple[int, str, Path]] = []
        for path in root.rglob("*"):
            for rank, pattern in enumerate(_CJK_PATTERNS):
                if fnmatch.fnmatch(path.name, pattern) and path.is_file():
                    found.append((rank, str(path), path))
                    break
        if found:
            return min(found)[2]
    return None


def load_font(size: int, path: Path | None) -> Font:
    """The font at `path` (a CJK one when found), else Pillow's default, at `size` pixels."""
    if path is not None:
        try:
            return ImageFont.truetype(str(path), size=size)
        except OSError as exc:
            # An unreadable font file: the default font still shows Latin text.
            logger.warning("emulator: cannot load font %s (%s); using the default", path, exc)
    return ImageFont.load_default(size=size)


def text_width(font: Font, text: str) -> float:
    """Width of `text` in pixels when drawn with `font`."""
    return float(font.getlength(text))


def wrap_text(text: str, font: Font, max_width: float, max_lines: int) -> list[str]:
    """`text` broken into lines no wider than `max_width`; the last kept line ends in '…'."""
    lines: list[str] = []
    line = ""
    spaced = False
    for piece in _PIECES.findall(text):
        if piece.isspace():
            spaced = bool(line)
            continue
        joiner = " " if spaced and not _is_cjk(piece) else ""
        candidate = f"{line}{joiner}{piece}" if line else piece
        spaced = False
        if text_width(font, candidate) <= max_width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = ""
        # A single word wider than the line is broken between characters.
        for char in piece:
            if line and text_width(font, line + char) > max_width:
                lines.append(line)
                line = ""
            line += char
    if line:
        lines.append(line)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = _fit_with_ellipsis(lines[-1], font, max_width)
    return lines


def _is_cjk(piece: str) -> bool:
    return len(piece) == 1 and re.match(f"[{_CJK}]", piece) is not None


def _fit_with_ellipsis(line: str, font: Font, max_width: float) -> str:
    while line and text_width(font, line + _ELLIPSIS) > max_width:
        line = line[:-1]
    return line.rstrip() + _ELLIPSIS
