"""Reading a form body (`multipart/form-data` or `application/x-www-form-urlencoded`) strictly.

Starlette's form parser decodes what is not UTF-8 as Latin-1 without a word (a prompt becomes
mojibake) and raises its refusals as an `HTTPException` of its own. The body is already in
memory (it is capped, and the upload is kept whole), so it is parsed here from bytes with
python-multipart, and every refusal (no boundary, too many parts, a part too large, bytes that
are not UTF-8, a body cut short) is an InvalidArgument or PayloadTooLarge naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from veo_gateway.errors import InvalidArgument, PayloadTooLarge

MAX_FIELDS = 20
MAX_FILES = 1
# A text field holds a prompt or an option: a prompt is at most 1024 tokens.
MAX_FIELD_BYTES = 64 * 1024


@dataclass(frozen=True)
class FilePart:
    """A file sent in a multipart form."""

    data: bytes
    content_type: str | None
    filename: str


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    name: str = ""
    filename: str | None = None
    data: bytearray = field(default_factory=bytearray)


def _utf8(data: bytes | bytearray, what: str, param: str) -> str:
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgument(
            f"{what} is not UTF-8 (byte {exc.start} cannot start a character)", param=param
        ) from None


class _Multipart:
    """The callbacks python-multipart calls while it reads a body; collects the parts."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str | FilePart]] = []
        self.ended = False
        self._part = _Part()
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._fields = 0
        self._files = 0

    def on_part_begin(self) -> None:
        self._part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._part.headers[bytes(self._header_name).lower()] = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def on_headers_finished(self) -> None:
        disposition = self._part.headers.get(b"content-disposition")
        _, options = parse_options_header(disposition)
        if b"name" not in options:
            raise InvalidArgument(
                "unreadable multipart body: a part has no Content-Disposition name",
                param="body",
            )
        self._part.name = _utf8(options[b"name"], "a part's name", "body")
        if b"filename" in options:
            self._files += 1
            if self._files > MAX_FILES:
                raise InvalidArgument(
                    f"a form takes at most {MAX_FILES} file (input_reference)",
                    param=self._part.name,
                )
            self._part.filename = _utf8(options[b"filename"], "a file name", self._part.name)
        else:
            self._fields += 1
            if self._fields > MAX_FIELDS:
                raise InvalidArgument(
                    f"a form takes at most {MAX_FIELDS} fields", param=self._part.name
                )

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._part.data += data[start:end]
        if self._part.filename is None and len(self._part.data) > MAX_FIELD_BYTES:
            raise PayloadTooLarge(
                f"form field {self._part.name!r} is larger than {MAX_FIELD_BYTES // 1024} KiB",
                param=self._part.name,
            )

    def on_part_end(self) -> None:
        part = self._part
        if part.filename is None:
            self.items.append((part.name, _utf8(part.data, f"form field {part.name!r}", part.name)))
            return
        content_type = part.headers.get(b"content-type")
        self.items.append(
            (
                part.name,
                FilePart(
                    data=bytes(part.data),
                    content_type=content_type.decode("latin-1").strip() if content_type else None,
                    filename=part.filename,
                ),
            )
        )

    def on_end(self) -> None:
        self.ended = True


def _parse_multipart(content_type: str, raw: bytes) -> list[tuple[str, str | FilePart]]:
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise InvalidArgument(
            "unreadable multipart body: the Content-Type has no boundary", param="body"
        )
    reader = _Multipart()
    callbacks = {
        "on_part_begin": reader.on_part_begin,
        "on_part_data": reader.on_part_data,
        "on_part_end": reader.on_part_end,
        "on_header_field": reader.on_header_field,
        "on_header_value": reader.on_header_value,
        "on_header_end": reader.on_header_end,
        "on_headers_finished": reader.on_headers_finished,
        "on_end": reader.on_end,
    }
    try:
        parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
        parser.write(raw)
        parser.finalize()
    except (FormParserError, ValueError) as exc:
        # python-multipart's messages are about its own state; say what is wrong instead.
        raise InvalidArgument(
            "unreadable multipart body: it does not follow multipart/form-data (RFC 7578)",
            param="body",
        ) from exc
    if not reader.ended:
        raise InvalidArgument(
            "unreadable multipart body: it ends before its closing boundary", param="body"
        )
    return reader.items


def _parse_urlencoded(raw: bytes) -> list[tuple[str, str | FilePart]]:
    try:
        text = raw.decode("utf-8")
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except UnicodeDecodeError:
        raise InvalidArgument(
            "unreadable form body: it is not UTF-8, or a %-escape in it does not decode as UTF-8",
            param="body",
        ) from None
    except ValueError:  # parse_qsl's "Max number of fields exceeded"
        raise InvalidArgument(f"a form takes at most {MAX_FIELDS} fields", param="body") from None
    for name, value in pairs:
        if len(value.encode()) > MAX_FIELD_BYTES:
            raise PayloadTooLarge(
                f"form field {name!r} is larger than {MAX_FIELD_BYTES // 1024} KiB", param=name
            )
    return list(pairs)


def parse_form(content_type: str, raw: bytes) -> list[tuple[str, str | FilePart]]:
    """The (name, value) pairs of a form body, in order; a value is text or a FilePart."""
    if content_type.lower().startswith("multipart/form-data"):
        return _parse_multipart(content_type, raw)
    return _parse_urlencoded(raw)
