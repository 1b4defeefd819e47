"""How a long-running gateway process sets up the interpreter before it serves.

Python's cyclic garbage collector walks every young container object each time 700 more have
been allocated than freed, and every object at times. A gateway under load allocates that many
in a fraction of a millisecond (requests, rows, tasks of the event loop), and holds hundreds of
thousands that never die (modules, the app, the tables' metadata), which the oldest
generation's collections walk again and again. The settings below took about a tenth off the
gateway's CPU per create (docs/benchmarks.md, "1,000 tasks in flight"). Reference counting still
frees almost everything at once; only cycles wait for the collector.
"""

from __future__ import annotations

import gc

# Allocations (net) between collections of the youngest generation, and how many of those
# before the next older one is collected.
THRESHOLDS = (20_000, 20, 20)


def settle_interpreter() -> None:
    """Collect once, move what start-up loaded out of the collector's sight for good
    (`gc.freeze`), and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
