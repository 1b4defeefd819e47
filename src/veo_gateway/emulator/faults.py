"""Fault injection for the emulator: errors, stalls, bad downloads and failed operations.

A fault spec is a comma-separated list of ``name=value``::

    submit.429=0.05,submit.500=0.05,poll.stall=0.1,download.broken=0.1,operation.fail=0.1,seed=7

Rates are probabilities per call. Names:

- ``{call}.429``, ``{call}.500``, ``{call}.stall`` for ``call`` in ``submit``, ``poll``,
  ``download`` (``*`` means all three): answer 429 RESOURCE_EXHAUSTED, answer 500 INTERNAL, or
  hold the call for ``stall_seconds`` before serving it normally;
- ``{call}.400``, ``{call}.403``, ``{call}.404``: answer a 4xx that no retry mends, in Google's
  envelope (INVALID_ARGUMENT, PERMISSION_DENIED, NOT_FOUND);
- ``download.broken`` (Content-Length declared, half the body, then the connection drops
  mid-stream), ``download.truncated`` (Content-Length declared, half the body, then the response
  ends: the server closes the connection short of the length it promised), ``download.short``
  (no Content-Length, half the body, a clean end: only the bytes show the video is cut),
  ``download.slow`` (the body trickles out over ``slow_seconds``),
  ``download.redirect`` (a 302 to a signed media URL, as Google's file downloads do);
- ``submit.lost``: the submission is taken (its operation starts) but the answer is held for
  ``stall_seconds``, as when Google accepts a job and the answer never reaches the client;
- ``operation.fail`` and ``operation.blocked``: the operation ends with an error, or with its
  video withheld by the (emulated) safety filters;
- ``stall_seconds`` (default 2), ``slow_seconds`` (default 1), and ``seed`` (an integer: the same
  seed and the same calls give the same faults).

At most one fault is drawn per call, so the rates of one call kind must add up to 1 or less.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

CALLS = ("submit", "poll", "download")
_CALL_FAULTS = ("429", "500", "400", "403", "404", "stall")
_DOWNLOAD_FAULTS = ("broken", "truncated", "short", "slow", "redirect")
_OPERATION_FAULTS = ("fail", "blocked")
_SUBMIT_FAULTS = ("lost",)
NAMES = (
    tuple(f"{call}.{fault}" for call in CALLS for fault in _CALL_FAULTS)
    + tuple(f"submit.{fault}" for fault in _SUBMIT_FAULTS)
    + tuple(f"download.{fault}" for fault in _DOWNLOAD_FAULTS)
    + tuple(f"operation.{fault}" for fault in _OPERATION_FAULTS)
)
_GROUPS = {
    "submit": tuple(f"submit.{f}" for f in (*_CALL_FAULTS, *_SUBMIT_FAULTS)),
    "poll": tuple(f"poll.{f}" for f in _CALL_FAULTS),
    "download": tuple(f"download.{f}" for f in (*_CALL_FAULTS, *_DOWNLOAD_FAULTS)),
    "operation": tuple(f"operation.{f}" for f in _OPERATION_FAULTS),
}


@dataclass(frozen=True)
class Faults:
    """What to inject, and how often. The default injects nothing."""

    rates: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    stall_seconds: float = 2.0
    slow_seconds: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        for name, rate in self.rates.items():
            if name not in NAMES:
                raise ValueError(f"unknown emulator fault {name!r}; known: {', '.join(NAMES)}")
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"emulator fault {name} must be a rate from 0 to 1, not {rate}")
        for group, names in _GROUPS.items():
            total = sum(self.rates.get(name, 0.0) for name in names)
            if total > 1.0 + 1e-9:
                raise ValueError(
                    f"the {group} fault rates add up to {total:g}; at most 1 fault is drawn "
                    "per call, so they must add up to 1 or less"
                )
        if self.stall_seconds < 0 or self.slow_seconds < 0:
            raise ValueError("stall_seconds and slow_seconds must not be negative")

    @classmethod
    def parse(cls, spec: str) -> Faults:
        """Read a spec like ``submit.429=0.1,*.500=0.05,seed=3``; raises ValueError on mistakes."""
        rates: dict[str, float] = {}
        options: dict[str, float] = {}
        seed: int | None = None
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                continue
            name, sep, text = (s.strip() for s in item.partition("="))
            if not sep:
                raise ValueError(f"emulator fault {item!r} needs a value: name=rate")
            try:
                if name == "seed":
                    seed = int(text)
                    continue
                value = float(text)
            except ValueError:
                raise ValueError(f"emulator fault {name}: {text!r} is not a number") from None
            if name in ("stall_seconds", "slow_seconds"):
                options[name] = value
            elif name.startswith("*."):
                for call in CALLS:
                    rates[f"{call}.{name[2:]}"] = value
            else:
                rates[name] = value
        return cls(rates=MappingProxyType(rates), seed=seed, **options)

    @property
    def active(self) -> bool:
        """True when any fault has a rate above zero."""
        return any(rate > 0 for rate in self.rates.values())


class FaultInjector:
    """Draws faults for calls, with one seeded generator, and counts what it injected."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._random = random.Random(faults.seed)
        self.counts: Counter[str] = Counter()

    def draw(self, kind: str) -> str | None:
        """The fault for one call of `kind` (submit, poll, download, operation), or None.

        Returns the fault's short name (``429``, ``stall``, ``broken``, ``fail``, ...).
        """
        names = _GROUPS[kind]
        if not any(self.faults.rates.get(name) for name in names):
            return None
        roll = self._random.random()
        for name in names:
            roll -= self.faults.rates.get(name, 0.0)
            if roll < 0:
                self.counts[name] += 1
                return name.partition(".")[2]
        return None
