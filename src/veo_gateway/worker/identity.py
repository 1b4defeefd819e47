"""A worker process's identity: a random id, made at start, that its claims on tasks carry."""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class WorkerIdentity:
    """Who holds a lease: `id` is stored with the claim; host and pid are for the logs."""

    id: str
    host: str
    pid: int

    @classmethod
    def new(cls) -> WorkerIdentity:
        """A fresh identity: a restarted process is a new worker, so it never takes its
        predecessor's live leases for its own."""
        return cls(id=secrets.token_hex(8), host=socket.gethostname(), pid=os.getpid())

    def __str__(self) -> str:
        return f"{self.id} ({self.host}, pid {self.pid})"
