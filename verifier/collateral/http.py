"""A small, strict HTTP GET for collateral services (stdlib urllib only).

One call = one logical fetch: a total deadline per attempt (connect + read), a response size cap, no redirects,
and 429/503 `Retry-After` honoured within a retry budget (RFC 9110 section 10.2.3: seconds or an HTTP-date).
Every failure is a `CollateralUnavailableError` with a stable code:
COLLATERAL_NOT_FOUND (404), COLLATERAL_RATE_LIMITED (429/503 past the budget, `.retry_after` set when known),
COLLATERAL_TIMEOUT, COLLATERAL_TOO_LARGE, COLLATERAL_FETCH_FAILED (anything else).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import http.client
import ipaddress
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import NoReturn

from ..blocking import would_block
from ..errors import ConfigError
from .base import CollateralUnavailableError

MAX_RESPONSE_BYTES = 1 << 20
_CHUNK = 64 * 1024
_USER_AGENT = "tee-verifier/collateral"


def check_base_url(url: str) -> str:
    """Accept https:// anywhere, plain http:// only to a loopback host; return the URL without a trailing '/'."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return url.rstrip("/")
    if parts.scheme == "http" and _is_loopback(host):
        return url.rstrip("/")
    raise ConfigError("COLLATERAL_URL_INVALID", f"collateral URL {url!r} must be https:// (http:// only to loopback)")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse every redirect: the 3xx surfaces as an HTTPError (COLLATERAL_FETCH_FAILED)."""

    def redirect_request(
        self, req: urllib.request.Request, fp: object, code: int, msg: str, headers: Message, newurl: str
    ) -> None:
        return None


def _opener(url: str) -> urllib.request.OpenerDirector:
    # Environment proxies apply to remote services, never to loopback.
    proxies = urllib.request.ProxyHandler({} if _is_loopback(urllib.parse.urlsplit(url).hostname or "") else None)
    return urllib.request.build_opener(proxies, _NoRedirect())


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or HTTP-date); None when absent or unparseable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


@dataclass(frozen=True)
class HttpClient:
    """GET with `timeout` seconds per attempt, at most `retries` retries and `max_wait` seconds of total
    Retry-After sleeping; `sleep` is injectable for tests."""

    timeout: float = 10.0
    retries: int = 2
    max_wait: float = 10.0
    max_bytes: int = MAX_RESPONSE_BYTES
    sleep: Callable[[float], None] = field(default=time.sleep)

    def get(self, url: str, *, headers: Mapping[str, str] | None = None) -> bytes:
        return self.get_with_headers(url, headers=headers)[0]

    def post(self, url: str, body: bytes, *, headers: Mapping[str, str] | None = None) -> bytes:
        """`body` sent by POST, with everything `get` does (deadline, size cap, no redirects, Retry-After budget,
        error codes): for idempotent requests only (an OCSP request), since a retry sends it again. Raises
        CollateralUnavailableError as `get` does."""
        return self.get_with_headers(url, headers=headers, body=body)[0]

    def get_with_headers(
        self, url: str, *, headers: Mapping[str, str] | None = None, body: bytes | None = None
    ) -> tuple[bytes, Message]:
        """`get` (a POST of `body` when given), also returning the response headers (Intel PCS sends issuer chains
        in headers). Raises CollateralUnavailableError."""
        check_base_url(url)
        would_block("an HTTP request")
        waited = 0.0
        attempt = 0
        while True:
            try:
                return self._attempt(url, headers or {}, body)
            except _Retryable as retry:
                attempt += 1
                delay = retry.delay
                if delay is None:
                    if retry.status == 429:
                        raise CollateralUnavailableError(
                            "COLLATERAL_RATE_LIMITED", f"{url}: HTTP 429 without Retry-After"
                        ) from None
                    raise CollateralUnavailableError("COLLATERAL_FETCH_FAILED", f"{url}: HTTP {retry.status}") from None
                if attempt > self.retries or waited + delay > self.max_wait:
                    raise CollateralUnavailableError(
                        "COLLATERAL_RATE_LIMITED",
                        f"{url}: HTTP {retry.status}, Retry-After {delay:g}s exceeds the retry budget",
                        retry_after=delay,
                    ) from None
                waited += delay
                self.sleep(delay)

    def _attempt(self, url: str, headers: Mapping[str, str], body: bytes | None = None) -> tuple[bytes, Message]:
        # S310: the scheme was checked by check_base_url (https, or http to loopback only).
        method = "GET" if body is None else "POST"
        request = urllib.request.Request(  # noqa: S310
            url, data=body, headers={"User-Agent": _USER_AGENT, **headers}, method=method
        )
        deadline = time.monotonic() + self.timeout
        try:
            with _opener(url).open(request, timeout=self.timeout) as response:
                status = response.status
                if status != 200:
                    raise CollateralUnavailableError("COLLATERAL_FETCH_FAILED", f"{url}: HTTP {status}")
                length = response.headers.get("Content-Length")
                if length is not None and length.isdigit() and int(length) > self.max_bytes:
                    self._too_large(url)
                return self._read(response, url, deadline), response.headers
        except urllib.error.HTTPError as error:
            with error:
                self._status_error(url, error.code, error.headers)
        except urllib.error.URLError as error:
            if isinstance(error.reason, TimeoutError):
                self._timeout(url)
            raise CollateralUnavailableError("COLLATERAL_FETCH_FAILED", f"{url}: {error.reason}") from None
        except TimeoutError:
            self._timeout(url)
        except (http.client.HTTPException, OSError) as error:
            raise CollateralUnavailableError(
                "COLLATERAL_FETCH_FAILED", f"{url}: {type(error).__name__}: {error}"
            ) from None

    def _read(self, response: http.client.HTTPResponse, url: str, deadline: float) -> bytes:
        body = bytearray()
        while True:
            if time.monotonic() > deadline:
                self._timeout(url)
            chunk = response.read1(_CHUNK)
            if not chunk:
                return bytes(body)
            body += chunk
            if len(body) > self.max_bytes:
                self._too_large(url)

    def _status_error(self, url: str, status: int, headers: Message) -> NoReturn:
        if status == 404:
            raise CollateralUnavailableError("COLLATERAL_NOT_FOUND", f"{url}: HTTP 404") from None
        if status in (429, 503):
            raise _Retryable(status, parse_retry_after(headers.get("Retry-After") if headers else None))
        raise CollateralUnavailableError("COLLATERAL_FETCH_FAILED", f"{url}: HTTP {status}") from None

    def _timeout(self, url: str) -> NoReturn:
        raise CollateralUnavailableError(
            "COLLATERAL_TIMEOUT", f"{url}: no complete answer within {self.timeout:g}s"
        ) from None

    def _too_large(self, url: str) -> NoReturn:
        raise CollateralUnavailableError(
            "COLLATERAL_TOO_LARGE", f"{url}: response exceeds {self.max_bytes} bytes"
        ) from None


class _Retryable(Exception):  # noqa: N818 - internal control flow, never leaves this module
    def __init__(self, status: int, delay: float | None) -> None:
        super().__init__(status)
        self.status = status
        self.delay = delay
