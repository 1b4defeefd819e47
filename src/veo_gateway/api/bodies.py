"""Strict JSON for every request body: what a client sends is what every later step can carry.

Python's `json` reads more than JSON: `NaN`, `Infinity` and `-Infinity` as numbers, `1e309` as
infinity, integers of any length (until the interpreter's digit limit raises), lone UTF-16
surrogates in strings, UTF-16 and UTF-32 bodies, and nesting until the interpreter's recursion
limit. Each of those either fails later (a worker that cannot encode the task, an SQLite
column that cannot hold the integer, a reply that cannot be encoded) or fails here as a 500.
`parse_json` refuses all of them with a 400 naming the field, so every route reads bodies the
same way.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from veo_gateway.errors import InvalidArgument

# Deeper than any body a route takes (the spec's deepest field is four levels down).
MAX_DEPTH = 32
# What every backend on the way can hold: SQLite's INTEGER, protobuf's int64.
MIN_INTEGER, MAX_INTEGER = -(2**63), 2**63 - 1
# Longer literals are refused without being converted (int() of thousands of digits is slow).
_MAX_INTEGER_DIGITS = 20
_SURROGATE = re.compile("[\ud800-\udfff]")
# What Python's str() of an object without a text form reads: a client that sent a file object
# where a string is expected (an SDK stringifies it), never a value.
_OBJECT_TEXT = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")


def check_text(value: str, param: str) -> str:
    """`value`, unless it is the text of a Python object (`<_io.BytesIO object at 0x...>`)."""
    if _OBJECT_TEXT.fullmatch(value.strip()):
        raise InvalidArgument(
            f"{param} is the text of a Python object (<... object at 0x...>), not a value: the "
            "client sent an object, such as a file, where a string is expected",
            param=param,
        )
    return value


class _Refused:
    """A number JSON may not carry, left in the parsed tree so the walk can name its field."""

    def __init__(self, literal: str, why: str) -> None:
        self.literal = literal[:24] + ("…" if len(literal) > 24 else "")
        self.why = why


def _constant(literal: str) -> _Refused:
    return _Refused(literal, "is not a JSON number (JSON has no NaN or Infinity)")


def _float(literal: str) -> float | _Refused:
    value = float(literal)
    if not math.isfinite(value):
        return _Refused(literal, "is out of range for a floating-point number")
    return value


def _int(literal: str) -> int | _Refused:
    if len(literal.lstrip("-")) > _MAX_INTEGER_DIGITS:
        return _Refused(literal, "is out of range for a 64-bit integer")
    value = int(literal)
    if not MIN_INTEGER <= value <= MAX_INTEGER:
        return _Refused(literal, "is out of range for a 64-bit integer")
    return value


_DECODER = json.JSONDecoder(parse_constant=_constant, parse_float=_float, parse_int=_int)


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _check(tree: Any) -> None:
    """Walk the parsed body (without recursion) and refuse the first value JSON may not carry."""
    stack: list[tuple[Any, str, int]] = [(tree, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        where = path or "body"
        if isinstance(value, _Refused):
            raise InvalidArgument(f"{where}: {value.literal} {value.why}", param=where)
        if isinstance(value, str):
            if _SURROGATE.search(value):
                raise InvalidArgument(
                    f"{where}: the string holds a lone UTF-16 surrogate escape, which is not "
                    "a character",
                    param=where,
                )
            continue
        if not isinstance(value, dict | list):
            continue
        if depth >= MAX_DEPTH:
            raise InvalidArgument(
                f"{where}: the body nests deeper than {MAX_DEPTH} levels", param=where
            )
        if isinstance(value, list):
            stack.extend((item, _child(path, i), depth + 1) for i, item in enumerate(value))
            continue
        for key, item in value.items():
            if _SURROGATE.search(key):
                raise InvalidArgument(
                    f"{where}: a key holds a lone UTF-16 surrogate escape, which is not a "
                    "character",
                    param=where,
                )
            stack.append((item, _child(path, key), depth + 1))


def parse_json(raw: bytes) -> Any:
    """The body as JSON (UTF-8, finite numbers, 64-bit integers, at most MAX_DEPTH levels),
    or InvalidArgument naming what is wrong and where."""
    if not raw.strip():
        raise InvalidArgument("request body is empty: send a JSON object", param="body")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgument(
            f"request body is not UTF-8: byte {exc.start} cannot start a character",
            param="body",
        ) from None
    try:
        tree = _DECODER.decode(text.removeprefix("\ufeff"))
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"request body is not valid JSON: {exc}", param="body") from None
    except RecursionError:
        # The C scanner recurses per nesting level; a body this deep is refused, not parsed.
        raise InvalidArgument(
            f"body: the body nests deeper than {MAX_DEPTH} levels", param="body"
        ) from None
    _check(tree)
    return tree


def looks_like_json_object(raw: bytes) -> bool:
    """Whether a body sent as a form is meant as JSON: `curl -d '{...}'` without `-H` sends
    `application/x-www-form-urlencoded`. A form's first field name never starts with `{`."""
    return raw.lstrip().startswith(b"{")
