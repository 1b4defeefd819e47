"""The gateway's one error tree, and its one rendering to the wire.

    GatewayError                      500 INTERNAL (base: anything we raise on purpose)
    ├── InvalidArgument               400 INVALID_ARGUMENT   (validation, images, bad JSON)
    │   ├── FailedPrecondition        400 FAILED_PRECONDITION (content of an unfinished task)
    │   └── OutOfRange                400 OUT_OF_RANGE (a sample index past a task's samples)
    ├── Unauthenticated               401 UNAUTHENTICATED
    ├── PermissionDenied              403 PERMISSION_DENIED
    ├── NotFound                      404 NOT_FOUND
    │   └── Gone                      410 NOT_FOUND (a video deleted by the retention)
    ├── MethodNotAllowed              405 METHOD_NOT_ALLOWED
    ├── Conflict                      409 ABORTED
    ├── PayloadTooLarge               413 INVALID_ARGUMENT
    ├── HeadersTooLarge               431 INVALID_ARGUMENT
    ├── RangeNotSatisfiable           416 OUT_OF_RANGE
    ├── ResourceExhausted             429 RESOURCE_EXHAUSTED
    ├── InsufficientStorage           507 RESOURCE_EXHAUSTED (the gateway's own disk is full)
    ├── DatabaseUnavailable           503 UNAVAILABLE (the gateway's database cannot be reached)
    ├── StorageUnavailable            503 UNAVAILABLE (the gateway's object store cannot be reached)
    └── UpstreamError                 the upstream's own code and status, passed through
        └── UpstreamUnavailable       503 UNAVAILABLE (network errors, timeouts: retryable)

Every error renders as Google's envelope, ``{"error": {"code", "message", "status"}}``, with
``param`` (the offending field, when there is one) and ``type`` (the OpenAI SDK's error kind)
beside them, so both Google-style and OpenAI-style clients read it.
"""

from __future__ import annotations

from typing import Any, ClassVar

_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    410: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    416: "invalid_request_error",
    431: "invalid_request_error",
    429: "rate_limit_error",
}


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose; renders to the wire envelope."""

    http_status: ClassVar[int] = 500
    status: ClassVar[str] = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers or {}

    @property
    def code(self) -> int:
        """The HTTP status code sent with this error."""
        return self.http_status

    @property
    def google_status(self) -> str:
        """Google's canonical status name sent with this error."""
        return self.status

    @staticmethod
    def for_status(code: int) -> type[GatewayError]:
        """The error class answered with HTTP `code` (the base class for any other code)."""
        kinds: list[type[GatewayError]] = [GatewayError]
        while kinds:
            kind = kinds.pop()
            if kind.http_status == code and kind is not UpstreamError:
                return kind
            kinds.extend(kind.__subclasses__())
        return GatewayError

    def to_dict(self) -> dict[str, Any]:
        """The wire envelope for this error."""
        body: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "status": self.google_status,
            "type": _OPENAI_TYPES.get(self.code, "api_error"),
        }
        if self.param is not None:
            body["param"] = self.param
        return {"error": body}


class InvalidArgument(GatewayError):
    """The request is malformed or asks for something the model cannot do."""

    http_status = 400
    status = "INVALID_ARGUMENT"


class FailedPrecondition(InvalidArgument):
    """The request is valid but the resource is not in a state that allows it."""

    status = "FAILED_PRECONDITION"


class OutOfRange(InvalidArgument):
    """A position past the end of what there is (a sample index)."""

    status = "OUT_OF_RANGE"


class Unauthenticated(GatewayError):
    """No API key, or one the gateway does not know."""

    http_status = 401
    status = "UNAUTHENTICATED"


class PermissionDenied(GatewayError):
    """The key is known but may not do this."""

    http_status = 403
    status = "PERMISSION_DENIED"


class NotFound(GatewayError):
    """No such resource, or not one the caller may see."""

    http_status = 404
    status = "NOT_FOUND"


class Gone(NotFound):
    """The resource existed and was deleted for good (a video past its retention period).

    Google's canonical codes have no "gone"; the status stays NOT_FOUND, and the HTTP code
    (410) tells a client that asking again will not help.
    """

    http_status = 410


class MethodNotAllowed(GatewayError):
    """The route exists but not with this HTTP method."""

    http_status = 405
    status = "METHOD_NOT_ALLOWED"


class Conflict(GatewayError):
    """The request conflicts with the resource's current state."""

    http_status = 409
    status = "ABORTED"


class PayloadTooLarge(GatewayError):
    """The request body is over the configured cap."""

    http_status = 413
    status = "INVALID_ARGUMENT"


class HeadersTooLarge(GatewayError):
    """The request's headers (and URL) are over the configured cap."""

    http_status = 431
    status = "INVALID_ARGUMENT"


class RangeNotSatisfiable(GatewayError):
    """A Range header that does not fit the file."""

    http_status = 416
    status = "OUT_OF_RANGE"


class ResourceExhausted(GatewayError):
    """A limit is reached; waiting may help."""

    http_status = 429
    status = "RESOURCE_EXHAUSTED"


class InsufficientStorage(GatewayError):
    """The gateway's storage is out of space (or under its free-space floor): nothing new can
    be kept until space is freed. Not the client's fault, and not a rate limit: 507, with
    Google's RESOURCE_EXHAUSTED ("perhaps the entire file system is out of space")."""

    http_status = 507
    status = "RESOURCE_EXHAUSTED"

    def __init__(self, message: str, *, retry_after: int = 60) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class DatabaseUnavailable(GatewayError):
    """The gateway's database cannot be reached (a PostgreSQL server down or restarting):
    nothing was done, and the same request may be sent again shortly."""

    http_status = 503
    status = "UNAVAILABLE"

    def __init__(
        self,
        message: str = "the gateway's database is unreachable; nothing was done, try again shortly",
        *,
        retry_after: int = 5,
    ) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class StorageUnavailable(GatewayError):
    """The gateway's object store cannot be reached, or refused the gateway's credentials:
    nothing was stored or read, and the same request may be sent again shortly."""

    http_status = 503
    status = "UNAVAILABLE"

    def __init__(
        self,
        message: str = "the gateway's storage is unreachable; nothing was done, try again shortly",
        *,
        retry_after: int = 5,
    ) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class UpstreamError(GatewayError):
    """An error answered by Google (or the emulator), carried with its own code and status."""

    def __init__(
        self,
        message: str,
        *,
        code: int = 502,
        status: str = "UNKNOWN",
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self._code = code
        self._status = status
        self.retryable = retryable if retryable is not None else (code == 429 or code >= 500)

    @property
    def code(self) -> int:
        return self._code

    @property
    def google_status(self) -> str:
        return self._status


class UpstreamUnavailable(UpstreamError):
    """The upstream could not be reached, or did not answer in time.

    `maybe_received`: the request may have reached it all the same (the answer timed out or the
    connection broke after the request was sent), so a submission may have started a job.
    """

    def __init__(self, message: str, *, maybe_received: bool = False) -> None:
        super().__init__(message, code=503, status="UNAVAILABLE", retryable=True)
        self.maybe_received = maybe_received
