"""`LineHandler`: the gateway's handler, and access lines written without a LogRecord."""

from __future__ import annotations

import io
import json
import logging

import pytest

from veo_gateway.observability.logs import (
    ACCESS_LOGGER,
    AccessEntry,
    LineHandler,
    formatter,
    sole_line_handler,
)

ENTRIES = [
    AccessEntry("a" * 24, "GET", "/v1/videos/{task_id}", 200, 0.07, "env:0123456789ab", "vid_1"),
    AccessEntry("req-1.x_Y", "POST", "/v1/videos", 400, 12.0, None, None),
    AccessEntry("r", "other", "unmatched", 404, 1234.56, 'odd "name"\n é ✓', None),
    AccessEntry("r2", "DELETE", "/v1/videos/{task_id}", 204, 3.5, "dashboard", "t.2-3"),
]
# A whole second, the last millisecond of one, and one of another day.
MOMENTS = [1764600000.0, 1764600000.9996, 1764686399.5]


def as_record(created: float, entry: AccessEntry) -> logging.LogRecord:
    """The access record `Observe` makes for `entry` when other handlers are listening."""
    record = logging.getLogger(ACCESS_LOGGER).makeRecord(
        ACCESS_LOGGER,
        logging.INFO,
        __file__,
        0,
        "%s %s %d",
        (entry.method, entry.route, entry.status),
        None,
        extra={"fields": entry._asdict()},
    )
    record.created = created
    return record


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_a_direct_access_line_is_the_records_line(log_format: str) -> None:
    for created in MOMENTS:
        for entry in ENTRIES:
            written = formatter(log_format)
            # Twice: once to fill the formatter's caches, once from them.
            for _ in range(2):
                line = written.access_line(created, entry)
                assert line == formatter(log_format).format(as_record(created, entry))
            if log_format == "json":
                assert json.loads(line)["key"] == entry.key


def test_the_handler_alone_is_found() -> None:
    root = logging.Logger("root-of-test")
    child = logging.Logger("root-of-test.access")
    child.parent = root
    handler = LineHandler(io.StringIO(), "json")
    root.addHandler(handler)
    assert sole_line_handler(child) is handler

    other = logging.StreamHandler(io.StringIO())
    root.addHandler(other)
    assert sole_line_handler(child) is None  # another handler would see the record
    root.removeHandler(other)

    child.addFilter(lambda record: True)
    assert sole_line_handler(child) is None  # a filter could change or drop it
    child.filters.clear()

    handler.addFilter(lambda record: True)
    assert sole_line_handler(child) is None
    handler.filters = [handler.redact]

    handler.setLevel(logging.WARNING)
    assert sole_line_handler(child) is None  # the handler would drop an INFO record
    handler.setLevel(logging.NOTSET)

    child.propagate = False
    assert sole_line_handler(child) is None  # the record would reach no handler
    child.propagate = True
    assert sole_line_handler(child) is handler


def test_a_warning_is_written_at_once_after_the_lines_before_it() -> None:
    stream = io.StringIO()
    handler = LineHandler(stream, "text")
    logger = logging.Logger("warned")
    logger.addHandler(handler)
    logger.info("first")
    logger.info("second")
    logger.warning("third")
    lines = stream.getvalue().splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == ["first", "second", "third"]


def test_the_handler_writes_after_it_was_closed() -> None:
    # uvicorn's dictConfig closes every handler it finds, the root logger's too, and leaves
    # them attached: a closed handler must go on writing, as StreamHandler does.
    stream = io.StringIO()
    handler = LineHandler(stream, "json")
    logger = logging.Logger("closed")
    logger.addHandler(handler)
    logger.info("before")
    handler.close()
    assert json.loads(stream.getvalue())["message"] == "before"
    logger.warning("after")
    assert [json.loads(line)["message"] for line in stream.getvalue().splitlines()] == [
        "before",
        "after",
    ]


def test_secrets_are_still_redacted() -> None:
    stream = io.StringIO()
    logger = logging.Logger("redacted")
    logger.addHandler(LineHandler(stream, "json"))
    logger.warning("upstream said: Bearer sk-very-secret")
    assert "sk-very-secret" not in stream.getvalue()
    assert "[redacted]" in stream.getvalue()
