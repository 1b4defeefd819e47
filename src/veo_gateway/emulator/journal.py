"""The emulator's operations on disk, so a restarted emulator carries on with them, as Google
does: one JSON record per operation, and the input images of those not rendered yet.

Layout under the emulator's storage directory::

    operations/{id}.json        the operation (see `OperationBook` for its fields)
    operations/{id}.{role}      an input image ("first", "last", "ref0", ...) until rendered

Every file is written to a temporary name and renamed, so a kill at any moment leaves either
the old file or the new one. Records are not fsynced: they survive the process being killed,
which is what they are for, but not necessarily a power cut.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_TMP_PREFIX = ".tmp-"


class Journal:
    """One directory of operation records and their pending inputs. Blocking: run in a thread."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def write(self, record: dict[str, Any], inputs: dict[str, bytes] | None = None) -> None:
        """Store `record` (its "id" names it) and, first, the inputs its render still needs."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for role, data in (inputs or {}).items():
            self._replace(self.directory / f"{record['id']}.{role}", data)
        self._replace(self._record(record["id"]), json.dumps(record).encode())

    def load(self) -> list[dict[str, Any]]:
        """Every stored record; unreadable ones (and leftover temporary files) are dropped."""
        if not self.directory.is_dir():
            return []
        records = []
        for path in sorted(self.directory.iterdir()):
            if path.name.startswith(_TMP_PREFIX):
                path.unlink(missing_ok=True)  # a write the process did not live to finish
                continue
            if path.suffix != ".json":
                continue
            try:
                record = json.loads(path.read_bytes())
            except (OSError, ValueError) as exc:
                logger.warning("emulator: dropping unreadable operation record %s (%s)", path, exc)
                path.unlink(missing_ok=True)
                continue
            if isinstance(record, dict) and record.get("id") == path.stem:
                records.append(record)
        return records

    def inputs(self, operation_id: str) -> dict[str, bytes]:
        """The stored inputs of one operation, by role."""
        found = {}
        for path in self.directory.glob(f"{operation_id}.*"):
            if path.suffix != ".json":
                found[path.suffix[1:]] = path.read_bytes()
        return found

    def drop_inputs(self, operation_id: str) -> None:
        """Forget an operation's inputs (its render has ended)."""
        for path in self.directory.glob(f"{operation_id}.*"):
            if path.suffix != ".json":
                path.unlink(missing_ok=True)

    def delete(self, operation_id: str) -> None:
        """Forget an operation entirely."""
        self.drop_inputs(operation_id)
        self._record(operation_id).unlink(missing_ok=True)

    def _record(self, operation_id: str) -> Path:
        return self.directory / f"{operation_id}.json"

    def _replace(self, path: Path, data: bytes) -> None:
        tmp = path.with_name(f"{_TMP_PREFIX}{path.name}.{secrets.token_hex(4)}")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
