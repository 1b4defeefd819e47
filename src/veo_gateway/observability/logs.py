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
from typing import Any

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


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, then the record's fields."""

    def __init__(self) -> None:
        super().__init__()
        # Formatting the same second again for every line is a measurable part of a request.
        self._second = -1
        self._second_text = ""

    def _timestamp(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._second_text}.{int(created % 1 * 1000):03d}Z"

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


class TextFormatter(logging.Formatter):
    """`time level logger: message key=value ...`, for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line += "".join(f" {key}={value}" for key, value in fields.items())
        return line


def formatter(log_format: str) -> logging.Formatter:
    """The formatter for `VEO_GATEWAY_LOG_FORMAT` (`json` or `text`)."""
    return TextFormatter() if log_format == "text" else JsonFormatter()


def configure_logging(level: str, log_format: str) -> None:
    """Send every log record (uvicorn's too) to stderr, one line each, secrets redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    handler.addFilter(RedactSecrets())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # Neither format shows the process or thread: not looking them up for every record (one
    # per request, at least) is the logging HOWTO's advice for speed.
    logging.logProcesses = logging.logThreads = logging.logMultiprocessing = False
    # httpx logs every request at INFO: one line per upstream poll drowns the useful ones.
    for noisy in ("httpx", "httpcore", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
