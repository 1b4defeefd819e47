"""Checking a `Range` header before the file is served, so refusals use the error envelope.

Starlette's FileResponse serves satisfiable ranges (206, multipart for several); this only
decides, with the same rules (RFC 9110 section 14), whether to refuse first: 400 for a header
that does not parse, 416 (with `Content-Range: bytes */SIZE`) when no range fits the file.
"""

from __future__ import annotations

from veo_gateway.domain.numbers import decimal
from veo_gateway.errors import InvalidArgument, RangeNotSatisfiable


def check_range(header: str | None, size: int) -> None:
    """Raise when `header` is malformed or none of its ranges overlaps a file of `size` bytes."""
    if header is None:
        return
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or not spec.strip():
        raise InvalidArgument(f"malformed Range header {header!r}", param="Range")
    satisfiable = False
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
            satisfiable = satisfiable or start < size
        else:
            satisfiable = satisfiable or (end is not None and end > 0 and size > 0)
    if not satisfiable:
        raise RangeNotSatisfiable(
            f"Range {header!r} does not fit the video ({size} bytes)",
            param="Range",
            headers={"Content-Range": f"bytes */{size}"},
        )
