"""Reading a `Range` header (RFC 9110 section 14) against a stored file of known size.

Refusals use the error envelope: 400 for a header that does not parse, 416 (with
`Content-Range: bytes */SIZE`) when no range fits the file. What fits is returned as half-open
byte intervals, sorted and with overlapping or touching ranges merged (section 14.2 lets a
server coalesce them), so a hostile header cannot make the response larger than the file.
"""

from __future__ import annotations

from veo_gateway.domain.numbers import decimal
from veo_gateway.errors import InvalidArgument, RangeNotSatisfiable

# More ranges than this after merging and the whole file is sent instead (section 14.2: a
# server may ignore Range); it bounds the multipart framing a request can ask for.
MAX_RANGES = 16


def satisfiable_ranges(header: str | None, size: int) -> list[tuple[int, int]] | None:
    """The `(start, end)` intervals of `header` that fit a file of `size` bytes, or None for
    the whole file; raise when the header is malformed or nothing in it fits."""
    if header is None:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or not spec.strip():
        raise InvalidArgument(f"malformed Range header {header!r}", param="Range")
    ranges: list[tuple[int, int]] = []
    for part in spec.split(","):
        start_text, dash, end_text = part.strip().partition("-")
        start_text, end_text = start_text.strip(), end_text.strip()
        start = decimal(start_text) if start_text else None
        end = decimal(end_text) if end_text else None
        if (
            not dash
            or not (start_text or end_text)
            or (start_text and start is None)
            or (end_text and end is None)
        ):
            raise InvalidArgument(f"malformed Range header {header!r}", param="Range")
        if start is not None and end is not None and end < start:
            raise InvalidArgument(f"malformed Range header {header!r}", param="Range")
        if start is not None:
            if start < size:
                ranges.append((start, size if end is None else min(end + 1, size)))
        elif end is not None and end > 0 and size > 0:
            ranges.append((max(size - end, 0), size))
    if not ranges:
        raise RangeNotSatisfiable(
            f"Range {header!r} does not fit the video ({size} bytes)",
            param="Range",
            headers={"Content-Range": f"bytes */{size}"},
        )
    merged = _merged(ranges)
    return None if len(merged) > MAX_RANGES else merged


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out
