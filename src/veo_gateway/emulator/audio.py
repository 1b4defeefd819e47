"""The emulator's soundtrack: a soft chord progression, as interleaved 16-bit stereo PCM."""

from __future__ import annotations

import math
from array import array

SAMPLE_RATE = 48_000
# Each block lasts 0.1 s and every frequency below is a multiple of 10 Hz, so each block holds
# whole cycles of every tone: blocks join without clicks, and each chord is computed once
# however long the video is.
_BLOCKS_PER_SECOND = 10
_BLOCKS_PER_CHORD = 10
_CHORDS: tuple[tuple[int, int, int], ...] = (
    (220, 260, 330),  # A minor
    (220, 260, 350),  # F major (first inversion)
    (260, 330, 390),  # C major
    (200, 250, 290),  # G major
)
_LEVEL = 0.09 * 32767  # per tone: three tones peak near -11 dBFS, a background hum
_LEFT = (1.0, 0.75, 0.5)  # the chord's notes spread across the stereo field
_RIGHT = (0.5, 0.75, 1.0)


def _block(chord: tuple[int, int, int], rate: int) -> array[int]:
    samples = rate // _BLOCKS_PER_SECOND
    out = array("h", bytes(4 * samples))
    for i in range(samples):
        phase = 2 * math.pi * i / rate
        tones = [math.sin(phase * freq) for freq in chord]
        out[2 * i] = int(_LEVEL * sum(w * s for w, s in zip(_LEFT, tones, strict=True)))
        out[2 * i + 1] = int(_LEVEL * sum(w * s for w, s in zip(_RIGHT, tones, strict=True)))
    return out


def _faded(block: array[int], rising: bool) -> array[int]:
    frames = len(block) // 2
    out = array("h", block)
    for i in range(frames):
        gain = (i if rising else frames - 1 - i) / frames
        out[2 * i] = int(out[2 * i] * gain)
        out[2 * i + 1] = int(out[2 * i + 1] * gain)
    return out


def tone_track(seconds: float, rate: int = SAMPLE_RATE) -> bytes:
    """`seconds` of a slowly changing chord as s16 interleaved stereo at `rate` Hz."""
    if rate % _BLOCKS_PER_SECOND:
        raise ValueError(f"sample rate must be a multiple of {_BLOCKS_PER_SECOND}, got {rate}")
    total = round(seconds * rate)
    block_frames = rate // _BLOCKS_PER_SECOND
    count = math.ceil(total / block_frames)
    blocks = [_block(chord, rate) for chord in _CHORDS]
    track = array("h")
    for index in range(count):
        block = blocks[(index // _BLOCKS_PER_CHORD) % len(blocks)]
        # Fade in and out so the track starts and ends in silence rather than with a click.
        if index == 0:
            block = _faded(block, rising=True)
        elif index == count - 1:
            block = _faded(block, rising=False)
        track.extend(block)
    return track[: 2 * total].tobytes()
