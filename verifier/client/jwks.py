"""The verifier's result-signing keys (a JWK Set, RFC 7517 s5) cached by `kid` for relying parties.

A token whose kid is unknown triggers one refresh (key rotation), at most one per `min_refresh`, so a flood of
forged kids cannot hammer the verifier. A set older than `max_age` is refreshed too, so a key withdrawn from the
JWKS stops being trusted; if that refresh fails the cached set is kept (known kids still verify).
"""

from __future__ import annotations

import ipaddress
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import grpc

from verifier.errors import ConfigError, UnavailableError, VerifierError
from verifier.v1 import verifier_pb2 as pb
from verifier.v1 import verifier_pb2_grpc as pb_grpc

MAX_JWKS_BYTES = 256 * 1024
JWKS_PATH = "/.well-known/jwks.json"


def find_key(jwks: Mapping[str, Any], kid: str) -> dict[str, Any] | None:
    """The JWK with this `kid` in a JWKS document, or None."""
    keys = jwks.get("keys")
    for key in keys if isinstance(keys, list | tuple) else ():
        if isinstance(key, Mapping) and key.get("kid") == kid:
            return dict(key)
    return None


def _checked(document: Any) -> dict[str, Any]:
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list | tuple):
        raise UnavailableError("JWKS_INVALID", 'the verifier\'s key set is not a JWKS ({"keys": [...]})')
    return {"keys": [dict(k) for k in document["keys"] if isinstance(k, Mapping)]}


class JwksCache:
    """Thread-safe cache of a JWKS from `fetch()`. `clock` returns monotonic seconds (tests inject one)."""

    def __init__(
        self,
        fetch: Callable[[], Mapping[str, Any]],
        *,
        min_refresh: timedelta = timedelta(seconds=30),
        max_age: timedelta | None = timedelta(hours=1),
        clock: Callable[[], float] | None = None,
        initial: Mapping[str, Any] | None = None,
    ) -> None:
        self._fetch = fetch
        self._min_refresh = min_refresh.total_seconds()
        self._max_age = None if max_age is None else max_age.total_seconds()
        self._clock = clock or time.monotonic
        self._lock = threading.Lock()
        self._jwks: dict[str, Any] = {"keys": []}
        self._loaded_at: float | None = None  # when the cached set was fetched
        self._attempted_at: float | None = None  # last fetch attempt, successful or not
        self.fetches = 0  # number of fetch attempts (observability, tests)
        if initial is not None:
            self._jwks, self._loaded_at = _checked(initial), self._clock()

    def key_for(self, kid: str) -> dict[str, Any] | None:
        """The JWK for `kid`; an unknown kid refreshes the set once (rate-limited). Raises UnavailableError
        JWKS_UNAVAILABLE when a needed refresh fails and the kid is not cached."""
        key = find_key(self._jwks, kid)
        if key is not None and not self._stale():
            return key
        with self._lock:
            key = find_key(self._jwks, kid)
            if key is not None and not self._stale():
                return key  # another thread refreshed meanwhile
            if not self._may_fetch():
                if self._loaded_at is None:
                    raise UnavailableError("JWKS_UNAVAILABLE", "the verifier's keys could not be fetched yet")
                return key
            try:
                self._refresh_locked()
            except UnavailableError:
                if key is not None:
                    return key  # stale but still published as far as we know
                raise
            return find_key(self._jwks, kid)

    def keys(self) -> dict[str, Any]:
        """The current JWKS (fetched first if never loaded)."""
        with self._lock:
            if self._loaded_at is None:
                self._refresh_locked()
            return {"keys": [dict(k) for k in self._jwks["keys"]]}

    def refresh(self) -> dict[str, Any]:
        """Fetch now, ignoring the rate limit (e.g. on an operator's signal)."""
        with self._lock:
            self._refresh_locked()
            return {"keys": [dict(k) for k in self._jwks["keys"]]}

    def _stale(self) -> bool:
        return (
            self._max_age is not None
            and self._loaded_at is not None
            and (self._clock() - self._loaded_at >= self._max_age)
        )

    def _may_fetch(self) -> bool:
        return self._attempted_at is None or self._clock() - self._attempted_at >= self._min_refresh

    def _refresh_locked(self) -> None:
        self._attempted_at = self._clock()
        self.fetches += 1
        try:
            document = self._fetch()
        except VerifierError:
            raise
        except Exception as error:  # any fetch failure means "keys unavailable", cause chained
            raise UnavailableError("JWKS_UNAVAILABLE", f"cannot fetch the verifier's keys: {error}") from error
        self._jwks, self._loaded_at = _checked(document), self._clock()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect is an error, never followed to another host


def _check_url(url: str) -> None:
    parsed = urllib.parse.urlsplit(url)
    host = parsed.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parsed.scheme != "https" and not (parsed.scheme == "http" and loopback):
        raise ConfigError("JWKS_URL_INVALID", "the JWKS URL must be https (http only on loopback)")


def fetch_jwks_http(url: str, timeout: float = 5) -> dict[str, Any]:
    """GET the JWKS (e.g. `https://verifier.example/.well-known/jwks.json`): no redirects, bounded body."""
    _check_url(url)
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 - scheme checked
    try:
        with opener.open(request, timeout=timeout) as response:
            body = response.read(MAX_JWKS_BYTES + 1)
    except (urllib.error.URLError, OSError) as error:
        raise UnavailableError("JWKS_UNAVAILABLE", f"cannot fetch {url}: {error}") from error
    if len(body) > MAX_JWKS_BYTES:
        raise UnavailableError("JWKS_INVALID", f"the JWKS at {url} is larger than {MAX_JWKS_BYTES} bytes")
    try:
        return _checked(json.loads(body))
    except (ValueError, RecursionError):
        raise UnavailableError("JWKS_INVALID", f"the JWKS at {url} is not JSON") from None


def fetch_jwks_grpc(
    channel: grpc.Channel, *, timeout: float = 5, metadata: Sequence[tuple[str, str]] = ()
) -> dict[str, Any]:
    """The JWKS from `Verifier.GetSigningKeys` (the same document as the HTTP one)."""
    stub = pb_grpc.VerifierStub(channel)  # type: ignore[no-untyped-call]
    try:
        reply = stub.GetSigningKeys(pb.GetSigningKeysRequest(), timeout=timeout, metadata=tuple(metadata))
    except grpc.RpcError as error:
        raise UnavailableError("JWKS_UNAVAILABLE", f"GetSigningKeys failed: {error}") from error
    try:
        return _checked(json.loads(reply.jwks_json))
    except (ValueError, RecursionError):
        raise UnavailableError("JWKS_INVALID", "GetSigningKeys returned no JSON") from None
