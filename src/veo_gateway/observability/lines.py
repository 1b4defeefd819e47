"""`LineWriter`: log lines written to a stream in batches, by a thread of its own.

A line written straight to stderr costs a system call (and, on a pipe to a slow reader, a
wait) on the event loop for every request. Here a request only appends its line to a list; a
daemon thread writes what has gathered every `interval` seconds, or sooner once `batch` lines
wait, in one call, while the event loop goes on (the write releases the GIL). Past `cap`
waiting lines the writer writes in the caller instead, so a stream that cannot keep up slows
its writers down, as an unbuffered one would, rather than filling memory. At exit, what is
waiting is written before logging shuts down.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import traceback
import weakref
from typing import TextIO


class LineWriter:
    """Appends lines (without their newline) and writes them to `stream` off the caller's path."""

    def __init__(
        self,
        stream: TextIO,
        *,
        interval: float = 0.1,
        batch: int = 512,
        cap: int = 20_000,
    ) -> None:
        self.stream = stream
        self.interval = interval
        self.batch = batch
        self.cap = cap
        self._pending: list[str] = []
        self._lock = threading.Lock()  # guards _pending
        # Held from taking a batch until it is written: batches reach the stream in order.
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._inline = False
        self._thread: threading.Thread | None = None
        at_exit = weakref.WeakMethod(self._at_exit)
        atexit.register(lambda: (method := at_exit()) and method())
        if hasattr(os, "register_at_fork"):
            # A forked child has the lines but not the thread: it starts its own.
            after_fork = weakref.WeakMethod(self._after_fork)
            os.register_at_fork(after_in_child=lambda: (method := after_fork()) and method())

    def write(self, line: str) -> None:
        """Queue one line; it reaches the stream within `interval` seconds."""
        with self._lock:
            self._pending.append(line)
            waiting = len(self._pending)
        if waiting >= self.cap or self._inline:
            self.flush()
        elif self._thread is None:
            self._start()
        elif waiting == self.batch:
            self._wake.set()

    def flush(self) -> None:
        """Write every waiting line now, in the caller."""
        with self._write_lock:
            with self._lock:
                lines, self._pending = self._pending, []
            if not lines:
                return
            try:
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                # As logging.Handler.handleError does: say so on stderr if possible, go on.
                traceback.print_exc(file=sys.__stderr__)

    def _at_exit(self) -> None:
        # Runs before logging's own shutdown (atexit is last in, first out): from here on
        # every line is written at once, as the thread is about to stop with the interpreter.
        self._inline = True
        self.flush()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._run, name="veo-gateway-log-writer", daemon=True
            )
        self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            self.flush()

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = None
