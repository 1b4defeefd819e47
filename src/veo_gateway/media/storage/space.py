"""A full disk is not an internal error: helpers shared by everything that writes local files.

Every write that fails for lack of space (ENOSPC, EDQUOT) raises `InsufficientStorage`.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator

from veo_gateway.errors import InsufficientStorage

TEMP_PREFIX = ".tmp-"
_OUT_OF_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_out_of_space(exc: BaseException) -> bool:
    """True for an OSError that says the filesystem (or the quota) is full."""
    return isinstance(exc, OSError) and exc.errno in _OUT_OF_SPACE


def out_of_space() -> InsufficientStorage:
    """What a client is told when its work cannot be stored (no path, no figures)."""
    return InsufficientStorage(
        "the gateway is out of storage space and cannot take new work now; try again later"
    )


@contextlib.contextmanager
def space_errors() -> Iterator[None]:
    """Turn a write's ENOSPC / EDQUOT into InsufficientStorage."""
    try:
        yield
    except OSError as exc:
        if is_out_of_space(exc):
            raise out_of_space() from exc
        raise


def describe_bytes(size: float) -> str:
    """`1073741824` -> `1.0 GiB` (for operators' messages)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
