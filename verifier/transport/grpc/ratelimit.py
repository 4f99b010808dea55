"""Token-bucket rate limits for Verifier.CreateChallenge and Verifier.Appraise (per client and global).

A client is its TLS client certificate when the handshake verified one (the SHA-256 of the leaf PEM), else its
peer IP address, IPv6 aggregated to its /64 (one host usually owns a whole /64, so per-address buckets would be
free to multiply). Per-client buckets live in a bounded LRU map: a forgotten client starts again with a full
bucket, so the bound trades memory against how many distinct addresses an attacker needs to escape its limit.
The global bucket caps the sum, so a flood from many clients cannot take the whole service either.

A refused call is RESOURCE_EXHAUSTED with ErrorInfo reason `RATE_LIMITED` and a google.rpc.RetryInfo whose
`retry_delay` is the time until the exhausted bucket holds a token again.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ...settings import Rate, Settings

DEFAULT_MAX_CLIENTS = 10_000


@dataclass(frozen=True)
class MethodLimits:
    per_client: Rate
    overall: Rate


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float = 0.0  # seconds until the exhausted bucket holds a token (when refused)
    scope: str = ""  # "client" or "global" (when refused)


class _Bucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp

    def refill(self, rate: Rate, now: float) -> None:
        elapsed = max(0.0, now - self.stamp)  # a clock that steps back never adds tokens
        self.tokens = min(float(rate.burst), self.tokens + elapsed * rate.per_second)
        self.stamp = now

    def wait(self, rate: Rate) -> float:
        return max(0.0, (1.0 - self.tokens) / rate.per_second)


class RateLimiter:
    """One limiter for several methods, each with a per-client and a global token bucket. Thread-safe.

    `clock` returns monotonic seconds (injected by tests). A call takes one token from both buckets of its method
    or from neither: a client refused by its own limit does not spend the global budget."""

    def __init__(
        self,
        limits: Mapping[str, MethodLimits],
        *,
        max_clients: int = DEFAULT_MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = {m: lim for m, lim in limits.items() if lim.per_client.enabled or lim.overall.enabled}
        self._max_clients = max(1, max_clients)
        self._clock = clock
        self._lock = threading.Lock()
        self._clients: OrderedDict[tuple[str, str], _Bucket] = OrderedDict()
        self._global: dict[str, _Bucket] = {}

    def limits(self, method: str) -> bool:
        """Whether `method` is limited at all."""
        return method in self._limits

    @property
    def tracked_clients(self) -> int:
        with self._lock:
            return len(self._clients)

    def acquire(self, method: str, client: str) -> Decision:
        """Take a token for `client` calling `method`; a method without limits is always allowed."""
        limits = self._limits.get(method)
        if limits is None:
            return Decision(True)
        with self._lock:
            now = self._clock()
            own: _Bucket | None = None
            if limits.per_client.enabled:
                own = self._client_bucket(method, client, limits.per_client, now)
                own.refill(limits.per_client, now)
                if own.tokens < 1.0:
                    return Decision(False, own.wait(limits.per_client), "client")
            shared: _Bucket | None = None
            if limits.overall.enabled:
                shared = self._global.get(method)
                if shared is None:
                    shared = self._global[method] = _Bucket(float(limits.overall.burst), now)
                shared.refill(limits.overall, now)
                if shared.tokens < 1.0:
                    return Decision(False, shared.wait(limits.overall), "global")
            if own is not None:
                own.tokens -= 1.0
            if shared is not None:
                shared.tokens -= 1.0
            return Decision(True)

    def _client_bucket(self, method: str, client: str, rate: Rate, now: float) -> _Bucket:
        key = (method, client)
        bucket = self._clients.get(key)
        if bucket is not None:
            self._clients.move_to_end(key)
            return bucket
        bucket = self._clients[key] = _Bucket(float(rate.burst), now)
        while len(self._clients) > self._max_clients:
            self._clients.popitem(last=False)
        return bucket


def client_key(peer: str, leaf_pem: bytes | None) -> str:
    """The rate-limit identity of a call: `cert:<sha256 of the verified leaf PEM>` when the TLS handshake
    verified a client certificate, else `ip:<address>` (IPv6 as its /64 network, an IPv4-mapped IPv6 address as
    the IPv4 address) from gRPC's peer string (`ipv4:1.2.3.4:5`, `ipv6:[::1]:5`, possibly %-encoded), else
    `peer:<peer string without a port>`."""
    if leaf_pem:
        return "cert:" + hashlib.sha256(leaf_pem).hexdigest()
    text = urllib.parse.unquote(peer or "")
    scheme, _, rest = text.partition(":")
    host = rest
    if scheme == "ipv6" and rest.startswith("["):
        host = rest[1:].partition("]")[0]
    elif scheme == "ipv4":
        host = rest.rpartition(":")[0] or rest
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return "peer:" + (text[:200] if scheme not in ("ipv4", "ipv6") else host[:200])
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"ip:{address.ipv4_mapped}"
        return "ip:" + str(ipaddress.IPv6Network((address, 64), strict=False))
    return f"ip:{address}"


# `client_key` per (peer, leaf) of recent calls: the peer string names a connection (address and port), so the calls
# of one connection parse the address once instead of every time (an IPv6 peer takes some 25 us to parse).
cached_client_key = functools.lru_cache(maxsize=1024)(client_key)


CREATE_CHALLENGE = "/verifier.v1.Verifier/CreateChallenge"
APPRAISE = "/verifier.v1.Verifier/Appraise"


def from_settings(settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> RateLimiter | None:
    """The limiter the settings ask for, or None when every limit is off."""
    limits = {
        CREATE_CHALLENGE: MethodLimits(settings.rate_challenge_per_client, settings.rate_challenge_global),
        APPRAISE: MethodLimits(settings.rate_appraise_per_client, settings.rate_appraise_global),
    }
    limiter = RateLimiter(limits, max_clients=settings.rate_clients or DEFAULT_MAX_CLIENTS, clock=clock)
    return limiter if any(limiter.limits(m) for m in limits) else None
