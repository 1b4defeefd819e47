"""Whole numbers from a client's text: ASCII digits only.

`int()` and `str.isdigit()` take any Unicode digit: `int("٨")` is 8, and `"²".isdigit()` is true
while `int("²")` raises. A number on the wire is ASCII, so nothing else is read as one.
"""

from __future__ import annotations

# Longer digit strings are refused unconverted (no value a client sends needs more).
MAX_DIGITS = 19


def decimal(text: str, *, max_digits: int = MAX_DIGITS) -> int | None:
    """The value of `text` when it is 1 to `max_digits` ASCII digits, else None."""
    if not text or len(text) > max_digits or not (text.isascii() and text.isdigit()):
        return None
    return int(text)
