"""Still images made from a stored video: a thumbnail and a spritesheet (JPEG), with PyAV.

Both are made once, on first request, in a thread, and kept beside the video (written to a
temp file and renamed, so a reader never sees half a JPEG).
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import av
from PIL import Image

from veo_gateway.media.storage import TEMP_PREFIX, space_errors

THUMBNAIL_WIDTH = 640
SPRITE_FRAMES = 16  # a 4 x 4 grid
SPRITE_COLUMNS = 4
SPRITE_TILE_WIDTH = 320


def _frames_at(video: Path, fractions: list[float]) -> list[Image.Image]:
    """Frames nearest to each fraction of the video's duration, decoded in one pass."""
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        base = stream.time_base
        duration = float(stream.duration * base) if stream.duration and base else 0.0
        if not duration and container.duration:
            duration = container.duration / 1_000_000
        targets = [fraction * duration for fraction in fractions]
        images: list[Image.Image] = []
        previous = None
        for frame in container.decode(stream):
            at = frame.time or 0.0
            while len(images) < len(targets) and at >= targets[len(images)]:
                images.append(frame.to_image())  # type: ignore[no-untyped-call]
            if len(images) == len(targets):
                break
            previous = frame
        else:
            # Targets past the last frame (a duration rounded up) take the last frame.
            if previous is not None and len(images) < len(targets):
                last = previous.to_image()  # type: ignore[no-untyped-call]
                images.extend([last] * (len(targets) - len(images)))
    if not images:
        raise ValueError(f"{video.name} has no decodable video frames")
    return images


def _scaled(image: Image.Image, width: int) -> Image.Image:
    height = max(1, round(image.height * width / image.width))
    return image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)


def _save_jpeg(image: Image.Image, path: Path) -> None:
    """Write the JPEG under a temp name and rename it; a full disk is InsufficientStorage."""
    with space_errors():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX, suffix=".jpg")
        try:
            with os.fdopen(fd, "wb") as handle:
                image.save(handle, format="JPEG", quality=85)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def make_thumbnail(video: Path, out: Path) -> None:
    """A JPEG of the frame a third of the way in (the first frame is often a fade)."""
    (frame,) = _frames_at(video, [1 / 3])
    _save_jpeg(_scaled(frame, min(THUMBNAIL_WIDTH, frame.width)), out)


def make_spritesheet(video: Path, out: Path) -> None:
    """A JPEG grid of SPRITE_FRAMES frames evenly spread over the video, left to right."""
    fractions = [(index + 0.5) / SPRITE_FRAMES for index in range(SPRITE_FRAMES)]
    tiles = [_scaled(frame, SPRITE_TILE_WIDTH) for frame in _frames_at(video, fractions)]
    rows = math.ceil(len(tiles) / SPRITE_COLUMNS)
    width, height = tiles[0].size
    sheet = Image.new("RGB", (width * SPRITE_COLUMNS, height * rows))
    for index, tile in enumerate(tiles):
        sheet.paste(tile, ((index % SPRITE_COLUMNS) * width, (index // SPRITE_COLUMNS) * height))
    _save_jpeg(sheet, out)
