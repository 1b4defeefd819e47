"""What the emulator's videos show, one scene per mode, drawn with Pillow at a modest size.

A scene is a function from the time `t` (0 at the first frame, 1 at the last) to an RGB image of
the canvas size; the encoder scales it up to the output size. Everything that does not move is
drawn once, when the scene is built, so that each frame costs a crop, a resize or a blend. Every
scene shows the prompt: on a card with no image, as a caption over images.
"""

from __future__ import annotations

import colorsys
import io
import math
import zlib
from collections.abc import Callable, Sequence

from PIL import Image, ImageDraw, ImageOps

from veo_gateway.emulator.text import Fonts, wrap_text

Scene = Callable[[float], Image.Image]
Size = tuple[int, int]

_BILINEAR = Image.Resampling.BILINEAR
_WHITE = (255, 255, 255, 255)


def build_scene(
    *,
    size: Size,
    prompt: str,
    first: bytes | None = None,
    last: bytes | None = None,
    references: Sequence[bytes] = (),
    fonts: Fonts | None = None,
    label: str = "",
) -> Scene:
    """The scene for these inputs: text card, push-in, transition or reference sequence."""
    fonts = fonts or Fonts()
    if references:
        scene = _reference_scene(size, [_cover(d, size, 1.25, 1.0) for d in references])
    elif first is not None and last is not None:
        scene = _transition_scene(size, _cover(first, size), _cover(last, size))
    elif first is not None:
        scene = _push_in_scene(size, _cover(first, size))
    else:
        scene = _text_scene(size, prompt, fonts)
    if first is not None or references:
        scene = _with_caption(scene, _caption(size, prompt, fonts))
    return _with_watermark(scene, _watermark(size, label, fonts))


def _ease(t: float) -> float:
    t = min(max(t, 0.0), 1.0)
    return t * t * (3 - 2 * t)


def _cover(data: bytes, size: Size, zoom_x: float = 1.2, zoom_y: float = 1.2) -> Image.Image:
    """The image cropped to fill `size` scaled by the zoom factors, so a window can move in it."""
    target = (round(size[0] * zoom_x), round(size[1] * zoom_y))
    with Image.open(io.BytesIO(data)) as source:
        source.draft("RGB", target)  # JPEG: decode at a reduced scale, much faster
        image = ImageOps.exif_transpose(source).convert("RGB")
    return ImageOps.fit(image, target, Image.Resampling.BICUBIC)


def _window(
    image: Image.Image, size: Size, zoom: float, cx: float = 0.5, cy: float = 0.5
) -> Image.Image:
    """The part of `image` seen at `zoom` (1: all of it) around (cx, cy), scaled to `size`."""
    w, h = image.width / zoom, image.height / zoom
    x0 = min(max(cx * image.width - w / 2, 0.0), image.width - w)
    y0 = min(max(cy * image.height - h / 2, 0.0), image.height - h)
    return image.resize(size, _BILINEAR, box=(x0, y0, x0 + w, y0 + h))


def _push_in_scene(size: Size, base: Image.Image) -> Scene:
    # Slow push-in towards the centre, ending with the image shown 1:1 (zoom 1.2).
    return lambda t: _window(base, size, 1 + 0.2 * _ease(t))


def _transition_scene(size: Size, first: Image.Image, last: Image.Image) -> Scene:
    # The first frame is the first image whole and the last frame the last image whole, as in
    # Veo's interpolation; between them a slow zoom and a crossfade.
    def frame(t: float) -> Image.Image:
        mix = _ease((t - 0.25) / 0.5)
        if mix <= 0:
            return _window(first, size, 1 + 0.1 * t)
        a = _window(first, size, 1 + 0.1 * t)
        b = _window(last, size, 1.1 - 0.1 * t)
        return b if mix >= 1 else Image.blend(a, b, mix)

    return frame


def _reference_scene(size: Size, images: list[Image.Image]) -> Scene:
    count = len(images)
    fade = 0.15  # the share of each image's turn spent crossfading into the next

    def panned(index: int, local: float) -> Image.Image:
        image = images[index]
        travel = local if index % 2 == 0 else 1 - local  # alternate the pan's direction
        x0 = (image.width - size[0]) * _ease(travel)
        return image.crop((round(x0), 0, round(x0) + size[0], size[1]))

    def frame(t: float) -> Image.Image:
        position = min(t, 0.999999) * count
        index = int(position)
        local = position - index
        out = panned(index, local)
        if index + 1 < count and local > 1 - fade:
            out = Image.blend(out, panned(index + 1, 0.0), _ease((local - 1 + fade) / fade))
        return out

    return frame


def _palette(prompt: str) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    # The same prompt always gets the same colours; different prompts usually differ.
    hue = (zlib.crc32(prompt.encode()) % 360) / 360

    def rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
        r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
        return round(r * 255), round(g * 255), round(b * 255)

    return rgb(hue, 0.65, 0.55), rgb(hue + 0.12, 0.55, 0.85)


def _text_scene(size: Size, prompt: str, fonts: Fonts) -> Scene:
    width, height = size
    dark, light = _palette(prompt)
    # A band twice the canvas wide, light in the middle, dark at both ends: the visible window
    # slides along it, which reads as a slowly moving light.
    ramp = Image.frombytes("L", (512, 1), bytes([*range(256), *range(255, -1, -1)]))
    band = ImageOps.colorize(ramp.resize((2 * width, height), _BILINEAR), dark, light)
    card = _prompt_card(size, prompt, fonts)
    unit = min(size)

    def frame(t: float) -> Image.Image:
        out = band.crop((round(t * width), 0, round(t * width) + width, height))
        dx = math.sin(2 * math.pi * t) * unit * 0.03
        dy = math.cos(2 * math.pi * t) * unit * 0.02
        x = round((width - card.width) / 2 + dx)
        y = round((height - card.height) / 2 + dy)
        out.paste(card, (x, y), card)
        draw = ImageDraw.Draw(out)
        # A dot on an orbit and a progress line: motion that shows time passing.
        angle = 2 * math.pi * t * 2
        ox = width / 2 + math.cos(angle) * width * 0.42
        oy = height / 2 + math.sin(angle) * height * 0.42
        r = unit * 0.02
        draw.ellipse((ox - r, oy - r, ox + r, oy + r), fill=light)
        draw.rectangle((0, height - unit * 0.012, width * t, height), fill=(255, 255, 255))
        return out

    return frame


def _prompt_card(size: Size, prompt: str, fonts: Fonts) -> Image.Image:
    unit = min(size)
    font_size = max(12, unit // 14)
    font = fonts.load(font_size)
    pad = unit // 20
    max_width = size[0] * 0.8 - 2 * pad
    lines = wrap_text(prompt, font, max_width, max_lines=max(1, int(size[1] * 0.6 // font_size)))
    line_height = round(font_size * 1.3)
    card_w = round(size[0] * 0.8)
    card_h = max(line_height * len(lines) + 2 * pad, line_height + 2 * pad)
    card = Image.new("RGBA", (card_w, card_h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(card)
    draw.rounded_rectangle((0, 0, card_w - 1, card_h - 1), radius=pad, fill=(0, 0, 0, 140))
    for i, line in enumerate(lines):
        draw.text((card_w / 2, pad + i * line_height), line, font=font, fill=_WHITE, anchor="ma")
    return card


def _caption(size: Size, prompt: str, fonts: Fonts) -> Image.Image:
    unit = min(size)
    font_size = max(10, unit // 22)
    font = fonts.load(font_size)
    pad = unit // 40
    lines = wrap_text(prompt, font, size[0] - 2 * pad, max_lines=2)
    line_height = round(font_size * 1.3)
    bar = Image.new("RGBA", (size[0], line_height * len(lines) + 2 * pad), (0, 0, 0, 150))
    draw = ImageDraw.Draw(bar)
    for i, line in enumerate(lines):
        draw.text((size[0] / 2, pad + i * line_height), line, font=font, fill=_WHITE, anchor="ma")
    return bar


def _watermark(size: Size, label: str, fonts: Fonts) -> Image.Image:
    # Says plainly that this video is a stand-in, so nobody mistakes it for Veo's output.
    font = fonts.load(max(9, min(size) // 32))
    text = f"Veo emulator · {label}" if label else "Veo emulator"
    _, _, right, bottom = font.getbbox(text)
    mark = Image.new("RGBA", (round(right) + 8, round(bottom) + 8), (0, 0, 0, 0))
    draw = ImageDraw.Draw(mark)
    draw.text((5, 5), text, font=font, fill=(0, 0, 0, 160))
    draw.text((4, 4), text, font=font, fill=(255, 255, 255, 200))
    return mark


def _with_caption(scene: Scene, caption: Image.Image) -> Scene:
    # Over images the prompt is a bar along the bottom, so the picture stays in view.
    def frame(t: float) -> Image.Image:
        out = scene(t)
        out.paste(caption, (0, out.height - caption.height), caption)
        return out

    return frame


def _with_watermark(scene: Scene, mark: Image.Image) -> Scene:
    margin = max(4, mark.height // 2)

    def frame(t: float) -> Image.Image:
        out = scene(t)
        out.paste(mark, (margin, margin), mark)
        return out

    return frame
