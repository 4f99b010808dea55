"""The release decision: broker-issued nonces (single use, short-lived), the attestation result checked with
`verifier.client.verify_result`, the rule, and the secret encrypted to the result's `cnf` key (RFC 7516 JWE:
ECDH-ES+A256KW for EC/X25519 keys, RSA-OAEP-256 for RSA, content A256GCM).

Composite results (a CPU TEE with its GPUs): every submodule must have the rule's status (the result is as good as
its worst part), and a rule with `min_gpus` k releases only to a result carrying at least k GPU components
(TOKEN_GPUS_INSUFFICIENT otherwise), on top of what the rule's workload requires (`<tee>.min_gpus`)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import logging
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from joserfc import jwe
from joserfc.jwk import ECKey, OKPKey, RSAKey

from ..client.jwks import JwksCache
from ..client.results import ResultError, verify_result
from .config import BrokerConfig

log = logging.getLogger(__name__)


class ReleaseRefused(Exception):  # noqa: N818 - a decision, not a malfunction
    def __init__(self, code: str, message: str, status: int = 403) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status = code, message, status


@dataclass(frozen=True)
class Release:
    secret: str
    jwe: str
    token_id: str


class ChallengeRefused(ReleaseRefused):
    """A client holds too many unused nonces (HTTP 429, `retry_after` seconds until its oldest one expires)."""

    def __init__(self, code: str, message: str, status: int, retry_after: int) -> None:
        super().__init__(code, message, status)
        self.retry_after = retry_after


def client_key(address: str) -> str:
    """The unit per-client limits count: an IPv4 address, or the /64 prefix of an IPv6 address (one host usually
    holds a whole /64, RFC 4291 section 2.5.1); anything else (a Unix socket, a test's label) as given."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class PendingNonces:
    """Nonces this broker handed out, each accepted once and only before it expires (bounded, thread-safe).

    At most `per_client` unused nonces per client (see `client_key`): one more is refused with
    `CHALLENGE_RATE_LIMITED` (429) until one of them is used or expires. At most `limit` in all: when full, the
    oldest nonce of the client holding the most is dropped, so a client flooding the broker from a few addresses
    evicts its own nonces, never those of a client holding fewer."""

    def __init__(self, ttl: dt.timedelta, limit: int, per_client: int | None = None) -> None:
        self._ttl, self._limit = ttl, limit
        self._per_client = limit if per_client is None else per_client
        # digest of the nonce -> (client, expiry); insertion order is expiry order (one TTL for all).
        self._pending: OrderedDict[bytes, tuple[str, dt.datetime]] = OrderedDict()
        self._by_client: dict[str, OrderedDict[bytes, dt.datetime]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    def admit(self, client: str, now: dt.datetime) -> None:
        """Raises ChallengeRefused (429) when `client` already holds its share of unused nonces; checked before
        asking the verifier for a challenge, so a refused client costs the verifier nothing."""
        with self._lock:
            self._expire(now)
            self._admit(client_key(client), now)

    def add(self, nonce: bytes, now: dt.datetime, client: str = "-") -> dt.datetime:
        """Remembers `nonce` for `client` until now + TTL (returned). Raises ChallengeRefused as `admit` does."""
        key, digest = client_key(client), _digest(nonce)
        with self._lock:
            self._expire(now)
            self._admit(key, now)
            while len(self._pending) >= self._limit:
                self._evict_from_heaviest()
            until = now + self._ttl
            self._pending[digest] = (key, until)
            self._by_client.setdefault(key, OrderedDict())[digest] = until
            return until

    def consume(self, nonce: bytes, now: dt.datetime) -> bool:
        """True once for a nonce handed out and not expired (from any address: the workload may sit behind NAT)."""
        digest = _digest(nonce)
        with self._lock:
            self._expire(now)
            entry = self._pending.pop(digest, None)
            if entry is None:
                return False
            self._forget(entry[0], digest)
            return True

    def _admit(self, key: str, now: dt.datetime) -> None:
        held = self._by_client.get(key)
        if held is not None and len(held) >= self._per_client:
            oldest = next(iter(held.values()))
            wait = max(1, math.ceil((oldest - now).total_seconds()))
            raise ChallengeRefused(
                "CHALLENGE_RATE_LIMITED",
                f"this client holds {len(held)} unused nonces (the limit); use or let one expire first",
                429,
                wait,
            )

    def _evict_from_heaviest(self) -> None:
        # The client holding the most nonces loses its oldest; ties go to the oldest nonce among them.
        most = max(len(held) for held in self._by_client.values())
        victim = min(
            (key for key, held in self._by_client.items() if len(held) == most),
            key=lambda key: next(iter(self._by_client[key].values())),
        )
        digest, _ = self._by_client[victim].popitem(last=False)
        del self._pending[digest]
        if not self._by_client[victim]:
            del self._by_client[victim]

    def _forget(self, key: str, digest: bytes) -> None:
        held = self._by_client.get(key)
        if held is not None:
            held.pop(digest, None)
            if not held:
                del self._by_client[key]

    def _expire(self, now: dt.datetime) -> None:
        while self._pending:
            digest, (key, until) = next(iter(self._pending.items()))
            if until > now:
                return
            del self._pending[digest]
            self._forget(key, digest)


def _digest(nonce: bytes) -> bytes:
    # Looked up by SHA-256, so the dictionary's comparisons reveal nothing about the nonces it holds.
    return hashlib.sha256(nonce).digest()


class Broker:
    def __init__(self, config: BrokerConfig, jwks: JwksCache, challenge: Any, clock: Any) -> None:
        """`challenge()` returns a fresh nonce from the verifier (CreateChallenge), so the verifier accepts it."""
        self.config, self.jwks, self._challenge, self._clock = config, jwks, challenge, clock
        self.pending = PendingNonces(
            dt.timedelta(seconds=config.nonce_ttl_seconds), config.max_pending, config.max_pending_per_client
        )

    def new_challenge(self, client: str = "-") -> tuple[bytes, dt.datetime]:
        """A verifier nonce remembered for `client` (its peer address). Raises ChallengeRefused (429) when the
        client holds `max_pending_per_client` unused nonces, before the verifier is asked."""
        self.pending.admit(client, self._clock.now())
        nonce = self._challenge()
        return nonce, self.pending.add(nonce, self._clock.now(), client)

    def release(self, secret_name: str, token: str, nonce_b64: str) -> Release:
        rule = self.config.rules.get(secret_name)
        if rule is None:
            raise ReleaseRefused("SECRET_UNKNOWN", "no such secret", 404)
        try:
            nonce = base64.urlsafe_b64decode(nonce_b64 + "=" * (-len(nonce_b64) % 4))
        except (ValueError, TypeError):
            raise ReleaseRefused("NONCE_MALFORMED", "nonce is not base64url", 400) from None
        now = self._clock.now()
        if not self.pending.consume(nonce, now):  # single use, also when the token below is refused
            raise ReleaseRefused("NONCE_UNKNOWN", "the nonce was not issued by this broker, expired or was used", 401)
        try:
            result = verify_result(
                token,
                self.jwks,
                expected_nonce=nonce,
                required_status=rule.require_status,
                leeway=dt.timedelta(seconds=self.config.leeway_seconds),
                issuer=self.config.issuer,
                now=now,
                required_labels=rule.require_labels,
                allowed_policies=rule.require_policies,
                required_workload=rule.workload,
                min_version=rule.min_version,
                min_gpus=min_gpus(rule),
            )
        except ResultError as exc:
            raise ReleaseRefused(exc.code, exc.message, 401) from None
        except RecursionError:  # a token segment nested too deep for the JSON decoder: not a token
            raise ReleaseRefused("TOKEN_MALFORMED", "the token is not a JWS of JSON objects", 401) from None
        if result.tee not in rule.tees:
            raise ReleaseRefused("TEE_NOT_ALLOWED", f"{result.tee} evidence may not receive {rule.name}")
        if result.cnf_jwk is None:
            raise ReleaseRefused("KEY_NOT_BOUND", "the result binds no workload key (cnf) to encrypt to")
        encrypted = encrypt_to(result.cnf_jwk, rule.secret)
        version = result.workload["version"] if result.workload is not None else "?"
        log.info(
            "released secret %s to workload %s %s (%s, token %s)",
            rule.name,
            rule.workload,
            version,
            result.tee,
            result.token_id,
        )
        return Release(rule.name, encrypted, result.token_id)


def min_gpus(rule: Any) -> int:
    """The GPU components the rule requires (`ReleaseRule.min_gpus`, 0 for a rule without it). Never raises."""
    value = getattr(rule, "min_gpus", 0)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def encrypt_to(jwk: dict[str, Any], plaintext: bytes) -> str:
    """Compact JWE of `plaintext` to a public JWK (RFC 7516/7518)."""
    kty = jwk.get("kty")
    if kty == "RSA":
        key: Any = RSAKey.import_key(jwk)
        alg = "RSA-OAEP-256"
    elif kty == "EC":
        key, alg = ECKey.import_key(jwk), "ECDH-ES+A256KW"
    elif kty == "OKP" and jwk.get("crv") == "X25519":
        key, alg = OKPKey.import_key(jwk), "ECDH-ES+A256KW"
    else:
        raise ReleaseRefused("KEY_UNSUITABLE", f"cannot encrypt to a {kty} {jwk.get('crv', '')} key")
    header = {"alg": alg, "enc": "A256GCM", "cty": "application/octet-stream", "kid": jwk.get("kid", "")}
    protected = {k: v for k, v in header.items() if v}
    return str(jwe.encrypt_compact(protected, plaintext, key, algorithms=[alg, "A256GCM"]))
