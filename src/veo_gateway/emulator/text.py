"""Fonts and text layout for the emulator's videos: prompts in any script, wrapped to a width.

Text is drawn in Noto Sans CJK (the `noto-cjk-sans-otc` dependency, SIL Open Font License),
which covers Latin, Chinese, Japanese and Korean, so prompts are legible on a fresh machine. A
system CJK font is the fallback when that package is missing, and Pillow's Latin-only default
the last resort. Characters the font has no glyph for are logged, once per `Fonts`.
"""

from __future__ import annotations

import fnmatch
import importlib.resources
import logging
import re
import threading
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from PIL import ImageFont

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

_BUNDLED_PACKAGE, _BUNDLED_FILE = "noto_cjk_sans_otc", "NotoSansCJK-Regular.ttc"
_BUNDLED_FACE = 2  # "Noto Sans CJK SC" in NotoSansCJK-Regular.ttc (0 JP, 1 KR, 2 SC, 3 TC)
_NEVER_MAPPED = "\U0010ffff"  # a noncharacter: every font draws its .notdef glyph for it
_MISSING_SHOWN = 8  # characters quoted in the warning

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


def bundled_font() -> tuple[Path, int] | None:
    """The font file installed with the project, and the face to use in it, or None."""
    try:
        resource = importlib.resources.files(_BUNDLED_PACKAGE) / _BUNDLED_FILE
    except ModuleNotFoundError:
        return None
    # A wheel installs it as a plain file; a zipped install would need extracting: not worth it.
    path = Path(str(resource))
    return (path, _BUNDLED_FACE) if path.is_file() else None


def load_font(size: int, path: Path | None, index: int = 0) -> Font:
    """Face `index` of the font at `path`, else Pillow's default, at `size` pixels."""
    if path is not None:
        try:
            return ImageFont.truetype(str(path), size=size, index=index)
        except OSError as exc:
            # An unreadable font file: the default font still shows Latin text.
            logger.warning("emulator: cannot load font %s (%s); using the default", path, exc)
    return ImageFont.load_default(size=size)


def missing_glyphs(font: Font, text: str) -> list[str]:
    """The distinct characters of `text` that `font` has no glyph for (drawn as .notdef)."""
    notdef = font.getmask(_NEVER_MAPPED)
    blank = bytes(notdef)
    missing = []
    for char in dict.fromkeys(text):
        # Spaces, controls and format characters draw nothing in any font: not a lack.
        if unicodedata.category(char)[0] in "ZC":
            continue
        mask = font.getmask(char)
        if mask.size == notdef.size and bytes(mask) == blank:
            missing.append(char)
    return missing


class Fonts:
    """The font an emulator draws its text in, chosen once; it warns, once, of the first
    characters it cannot draw."""

    def __init__(self, path: Path | None = None, index: int = 0) -> None:
        if path is None:
            path, index = bundled_font() or (find_cjk_font(), 0)
        self.path, self.index = path, index
        self._lock = threading.Lock()
        self._warned = False

    def load(self, size: int) -> Font:
        """The font at `size` pixels: a new object, since renders run in several threads."""
        return load_font(size, self.path, self.index)

    def check(self, text: str) -> list[str]:
        """The characters of `text` this font lacks; the first time any are, say which."""
        missing = missing_glyphs(self.load(24), text)
        with self._lock:
            if not missing or self._warned:
                return missing
            self._warned = True
        shown = "".join(missing[:_MISSING_SHOWN])
        logger.warning(
            "emulator: the font %s has no glyph for %r (U+%04X%s), drawn as boxes; "
            "later misses are not logged",
            self.path or "(Pillow's default)",
            shown,
            ord(missing[0]),
            ", ..." if len(missing) > 1 else "",
        )
        return missing


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
