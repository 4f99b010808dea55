"""The release decision: broker-issued nonces (single use, short-lived), the attestation result checked with
`verifier.client.verify_result`, the rule, and the secret encrypted to the result's `cnf` key (RFC 7516 JWE:
ECDH-ES+A256KW for EC/X25519 keys, RSA-OAEP-256 for RSA, content A256GCM)."""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import logging
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


class PendingNonces:
    """Nonces this broker handed out, each accepted once and only before it expires (bounded, thread-safe)."""

    def __init__(self, ttl: dt.timedelta, limit: int) -> None:
        self._ttl, self._limit = ttl, limit
        self._pending: OrderedDict[bytes, dt.datetime] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, nonce: bytes, now: dt.datetime) -> dt.datetime:
        with self._lock:
            self._expire(now)
            while len(self._pending) >= self._limit:
                self._pending.popitem(last=False)
            self._pending[nonce] = now + self._ttl
            return now + self._ttl

    def consume(self, nonce: bytes, now: dt.datetime) -> bool:
        with self._lock:
            self._expire(now)
            match = next((n for n in self._pending if hmac.compare_digest(n, nonce)), None)
            if match is None:
                return False
            del self._pending[match]
            return True

    def _expire(self, now: dt.datetime) -> None:
        for nonce in [n for n, until in self._pending.items() if until <= now]:
            del self._pending[nonce]


class Broker:
    def __init__(self, config: BrokerConfig, jwks: JwksCache, challenge: Any, clock: Any) -> None:
        """`challenge()` returns a fresh nonce from the verifier (CreateChallenge), so the verifier accepts it."""
        self.config, self.jwks, self._challenge, self._clock = config, jwks, challenge, clock
        self.pending = PendingNonces(dt.timedelta(seconds=config.nonce_ttl_seconds), config.max_pending)

    def new_challenge(self) -> tuple[bytes, dt.datetime]:
        nonce = self._challenge()
        return nonce, self.pending.add(nonce, self._clock.now())

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
            result = verify_result(token, self.jwks, expected_nonce=nonce, required_status=rule.require_status,
                                   leeway=dt.timedelta(seconds=self.config.leeway_seconds),
                                   issuer=self.config.issuer, now=now, required_labels=rule.require_labels,
                                   allowed_policies=rule.require_policies, required_workload=rule.workload,
                                   min_version=rule.min_version)
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
        log.info("released secret %s to workload %s %s (%s, token %s)", rule.name, rule.workload, version,
                 result.tee, result.token_id)
        return Release(rule.name, encrypted, result.token_id)


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
