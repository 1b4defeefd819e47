"""A log for recurring trouble: one record per period, not one per attempt.

A full disk or a database that refuses writes makes every attempt fail the same way; logging
each one with its traceback filled 67 MB in three minutes. `ThrottledLog` writes the first
occurrence of a kind of trouble (with its traceback), then at most one line per period saying
how often it happened since, and one line when it is over.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass


@dataclass
class _Trouble:
    since: float
    logged_at: float
    count: int = 0
    suppressed: int = 0


class ThrottledLog:
    """Log each kind of recurring trouble once per `period` seconds."""

    def __init__(self, logger: logging.Logger, period: float = 60.0) -> None:
        self._log = logger
        self._period = period
        self._troubles: dict[str, _Trouble] = {}

    def trouble(
        self,
        kind: str,
        message: str,
        *args: object,
        exc: BaseException | None = None,
        level: int = logging.WARNING,
    ) -> None:
        """One occurrence of `kind`: logged if it is the first, or the period has passed."""
        now = time.monotonic()
        seen = self._troubles.get(kind)
        if seen is None:
            self._troubles[kind] = _Trouble(since=now, logged_at=now, count=1)
            self._log.log(level, message, *args, exc_info=exc)
            return
        seen.count += 1
        if now - seen.logged_at < self._period:
            seen.suppressed += 1
            return
        self._log.log(
            level,
            message + " (%d times in the last %.0f s; first %.0f s ago)",
            *args,
            seen.suppressed + 1,
            now - seen.logged_at,
            now - seen.since,
        )
        seen.logged_at, seen.suppressed = now, 0

    def over(self, kind: str, message: str, *args: object) -> None:
        """`kind` stopped happening: say so once (nothing if it was not happening)."""
        seen = self._troubles.pop(kind, None)
        if seen is not None:
            self._log.info(
                message + " (after %.0f s, %d occurrence(s))",
                *args,
                time.monotonic() - seen.since,
                seen.count,
            )

    def active(self, kind: str) -> bool:
        """True while `kind` is happening (reported and not yet over)."""
        return kind in self._troubles
