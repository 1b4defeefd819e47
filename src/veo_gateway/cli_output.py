"""How the `veo-gateway` commands print listings: aligned columns or JSON, times as dates.

Listings go to stdout whole: ids and names are never cut, whatever the terminal's width and
whether or not stdout is a terminal, so a listing can be piped to `grep`, `cut` or `awk`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import typer


def iso_utc(seconds: float | None) -> str:
    """Unix seconds as an ISO 8601 date and time in UTC (`2026-11-25T09:14:03Z`); "" for None."""
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def columns(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """The rows under the header, each column as wide as its widest cell, two spaces apart."""
    table = [list(header), *(list(row) for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in table
    )


def print_rows(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print a listing as aligned columns (nothing is truncated or wrapped)."""
    typer.echo(columns(header, rows))


def print_json(value: Any) -> None:
    """Print a value as indented JSON."""
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))
