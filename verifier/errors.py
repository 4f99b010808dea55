"""Typed errors with stable codes (no grpc import here).

Kinds follow the split of python-tuf's exceptions: untrusted *evidence* is never an RPC error (it becomes a
signed contraindicated result), a malformed *request* is INVALID_ARGUMENT, a missing *dependency* is
UNAVAILABLE, and anything else is an *internal* bug reported with a generic message.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    EVIDENCE = "evidence"  # untrustworthy or malformed evidence: contraindicated, not an RPC error
    REQUEST = "request"  # malformed request: INVALID_ARGUMENT
    NOT_FOUND = "not_found"  # an addressed object does not exist: NOT_FOUND
    UNAVAILABLE = "unavailable"  # collateral, database or signing key missing: UNAVAILABLE
    AUTH = "auth"  # missing or wrong credentials: UNAUTHENTICATED
    PERMISSION = "permission"  # authenticated but not allowed: PERMISSION_DENIED
    OVERLOADED = "overloaded"  # this server is at a bound it sheds load at: RESOURCE_EXHAUSTED, retry later
    INTERNAL = "internal"  # a bug: INTERNAL with a generic message


class VerifierError(Exception):
    """Base of every error this project raises on purpose. `code` is stable and machine-readable."""

    kind: ErrorKind = ErrorKind.INTERNAL
    retryable: bool = False
    retry_after: float | None = None  # seconds a client should wait before retrying (gRPC RetryInfo), if known

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class EvidenceError(VerifierError):
    """The evidence is malformed or does not verify. Carries the values a finding needs (hex or text)."""

    kind = ErrorKind.EVIDENCE

    def __init__(self, code: str, message: str, *, expected: str = "", actual: str = "") -> None:
        super().__init__(code, message)
        self.expected = expected
        self.actual = actual


class ParseError(EvidenceError):
    """Evidence bytes that do not parse: bounds, types, must-be-zero fields. Raised by parsers only."""


class RequestError(VerifierError):
    kind = ErrorKind.REQUEST


class NotFoundError(VerifierError):
    kind = ErrorKind.NOT_FOUND


class UnavailableError(VerifierError):
    """A dependency (database, vendor, signing key) cannot serve now; `retry_after` seconds when known."""

    kind = ErrorKind.UNAVAILABLE
    retryable = True

    def __init__(self, code: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(code, message)
        self.retry_after = retry_after


class OverloadedError(VerifierError):
    """This server refuses more work of one kind right now (a full executor queue, too many bytes in flight):
    RESOURCE_EXHAUSTED with a RetryInfo of `retry_after` seconds."""

    kind = ErrorKind.OVERLOADED
    retryable = True

    def __init__(self, code: str, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(code, message)
        self.retry_after = retry_after


class AuthError(VerifierError):
    kind = ErrorKind.AUTH


class AccessDeniedError(VerifierError):
    kind = ErrorKind.PERMISSION


class ConfigError(VerifierError):
    """Bad configuration found at start-up (missing key file, bad URL...)."""

    kind = ErrorKind.REQUEST
