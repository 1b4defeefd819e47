"""Log set-up: one line per record, JSON or text, with secrets redacted on the way out.

Records may carry a `fields` dict (`extra={"fields": {...}}`): the JSON format puts its items
beside the message, the text format appends them as `key=value`. The access log is made this way.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any, NamedTuple, TextIO

from veo_gateway.observability.lines import LineWriter

# What a secret looks like when it slips into a message. The gateway never logs these on
# purpose; this is defence in depth (an exception's text, a library's debug line).
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(bearer)\s+[^\s,;\"'<>]+"), r"\1 [redacted]"),
    (re.compile(r"(?i)(x-goog-api-key[^A-Za-z0-9]{1,8})[A-Za-z0-9._~+/=-]+"), r"\1[redacted]"),
    (
        re.compile(r"(?i)\b((?:api[_-]?)?key|token|access_token|secret|password)=[^\s&,;\"']+"),
        r"\1=[redacted]",
    ),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), "[redacted]"),
)
# Long runs of base64 (inline images, video bytes) are cut whatever they are.
_BASE64 = re.compile(r"[A-Za-z0-9+/]{100,}={0,2}")


def redact(text: str) -> str:
    """`text` with anything that looks like a credential or a base64 payload replaced."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return _BASE64.sub(lambda m: f"[base64: {len(m.group())} chars]", text)


# The access log's lines are built by the gateway from route templates, checked request ids and
# task ids, and key names: nothing in them comes unchecked from a client, and they are the one
# line per request, so they skip the regular expressions below.
ACCESS_LOGGER = "veo_gateway.access"


class RedactSecrets(logging.Filter):
    """Redacts each record's message and exception text before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == ACCESS_LOGGER and not record.exc_info:
            return True
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)


class _Clock:
    """Formats timestamps, the same second's text reused: strftime per line is measurable."""

    def __init__(self, converter: Any, pattern: str, suffix: str = "") -> None:
        # `pattern` ends with what comes before the milliseconds; `suffix` comes after them.
        self._converter = converter
        self._pattern = pattern
        self._suffix = suffix
        # One attribute, replaced whole: threads formatting at once never see a torn pair.
        self._cached: tuple[int, str] = (-1, "")

    def __call__(self, created: float) -> str:
        second = int(created)
        cached_second, text = self._cached
        if second != cached_second:
            text = time.strftime(self._pattern, self._converter(second))
            self._cached = (second, text)
        return f"{text}{int(created % 1 * 1000):03d}{self._suffix}"


class _Quoted(dict[str, str]):
    """JSON string literals of the few distinct values an access line repeats (routes, keys)."""

    def __missing__(self, text: str) -> str:
        if len(self) > 4096:
            self.clear()
        quoted = self[text] = _ENCODER.encode(text)
        return quoted


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, then the record's fields."""

    def __init__(self) -> None:
        super().__init__()
        self._timestamp = _Clock(time.gmtime, "%Y-%m-%dT%H:%M:%S.", "Z")
        self._quoted = _Quoted()
        self._parts: dict[tuple[str, str, int], tuple[str, str]] = {}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self._timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return _ENCODER.encode(entry)

    def access_line(self, created: float, entry: AccessEntry) -> str:
        """What `format` makes of the access record for `entry`, without building the record."""
        request_id, method, route, status, duration_ms, key, task_id = entry
        parts = self._parts.get((method, route, status))
        if parts is None:
            parts = self._access_parts(method, route, status)
        key_text = "null" if key is None else self._quoted[key]
        task_text = "null" if task_id is None else '"' + task_id + '"'
        return (
            f'{{"ts":"{self._timestamp(created)}{parts[0]}"{request_id}"{parts[1]}'
            f'{duration_ms!r},"key":{key_text},"task_id":{task_text}}}'
        )

    def _access_parts(self, method: str, route: str, status: int) -> tuple[str, str]:
        # The text around the request id that is the same for every line of this route and
        # status: a line is then a handful of joins.
        if len(self._parts) > 4096:
            self._parts.clear()
        quoted = self._quoted
        parts = self._parts[method, route, status] = (
            f'","level":"info","logger":"{ACCESS_LOGGER}",'
            f'"message":{_ENCODER.encode(f"{method} {route} {status}")},"request_id":',
            f',"method":{quoted[method]},"route":{quoted[route]},"status":{status},"duration_ms":',
        )
        return parts


class TextFormatter(logging.Formatter):
    """`time level logger: message key=value ...`, for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._clock = _Clock(time.localtime, "%Y-%m-%d %H:%M:%S,")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return self._clock(record.created)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line += "".join(f" {key}={value}" for key, value in fields.items())
        return line

    def access_line(self, created: float, entry: AccessEntry) -> str:
        """What `format` makes of the access record for `entry`, without building the record."""
        return (
            f"{self._clock(created)} INFO {ACCESS_LOGGER}: {entry.message()}"
            f" request_id={entry.request_id} method={entry.method} route={entry.route}"
            f" status={entry.status} duration_ms={entry.duration_ms!r} key={entry.key}"
            f" task_id={entry.task_id}"
        )


class AccessEntry(NamedTuple):
    """One request as the access log records it; `_asdict()` is the record's `fields`.

    `request_id` and `task_id` hold only `[A-Za-z0-9._-]` (`Observe` checks them), so lines
    are written without escaping them.
    """

    request_id: str
    method: str
    route: str
    status: int
    duration_ms: float
    key: str | None
    task_id: str | None

    def message(self) -> str:
        """The line's message, `GET /v1/videos/{task_id} 200`."""
        return f"{self.method} {self.route} {self.status}"


def formatter(log_format: str) -> JsonFormatter | TextFormatter:
    """The formatter for `VEO_GATEWAY_LOG_FORMAT` (`json` or `text`)."""
    return TextFormatter() if log_format == "text" else JsonFormatter()


class LineHandler(logging.Handler):
    """The gateway's handler: formatted lines to a stream through a `LineWriter`.

    Records below WARNING are written within a tenth of a second, in batches, off the event
    loop; a WARNING or worse is written at once, after everything before it. When it is the
    only handler the access log reaches (`sole_line_handler`), access lines skip the record
    and come straight from `access`: the same text, a fraction of the cost.
    """

    def __init__(self, stream: TextIO, log_format: str) -> None:
        super().__init__()
        self.line_formatter = formatter(log_format)
        self.setFormatter(self.line_formatter)
        self.redact = RedactSecrets()
        self.addFilter(self.redact)
        self.writer = LineWriter(stream)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # what logging.StreamHandler does: report it, never raise
            self.handleError(record)
            return
        self.writer.write(line)
        if record.levelno >= logging.WARNING:
            self.writer.flush()

    def access(self, entry: AccessEntry) -> None:
        """Write the access line for `entry`, as `emit` would write its record."""
        self.writer.write(self.line_formatter.access_line(time.time(), entry))

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        # Still usable afterwards, like StreamHandler: uvicorn's dictConfig closes every
        # handler it finds, the root logger's too, and leaves them in place.
        self.writer.flush()
        super().close()


def sole_line_handler(logger: logging.Logger) -> LineHandler | None:
    """The `LineHandler` if it is the one handler `logger`'s INFO records would reach, with no
    filter but its own; None when anything else (a shipper's handler, pytest's) would see them.
    """
    if logger.filters:
        return None
    found: LineHandler | None = None
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if (
                found is not None
                or type(handler) is not LineHandler
                or handler.filters != [handler.redact]
                or handler.level > logging.INFO
            ):
                return None
            found = handler
        current = current.parent if current.propagate else None
    return found


def configure_logging(level: str, log_format: str) -> None:
    """Send every log record (uvicorn's too) to stderr, one line each, secrets redacted."""
    logging.basicConfig(
        level=level.upper(), handlers=[LineHandler(sys.stderr, log_format)], force=True
    )
    # Neither format shows the process or thread: not looking them up for every record (one
    # per request, at least) is the logging HOWTO's advice for speed.
    logging.logProcesses = logging.logThreads = logging.logMultiprocessing = False
    # httpx logs every request at INFO: one line per upstream poll drowns the useful ones.
    for noisy in ("httpx", "httpcore", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
