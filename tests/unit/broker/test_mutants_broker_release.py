"""Tests for mutants that survived (or were not covered by) scripts/mutation.py in verifier/broker/release.py: the
release rule's refusals in their order (unknown secret, malformed, unknown, expired or reused nonce, a token the
checker chokes on, no key to encrypt to), the audit line of a release, and the pending-nonce store's expiry and
per-client accounting."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pytest

from tests.unit.broker.test_broker import write
from tests.unit.broker.test_issue16_broker import SIGNER, broker, release
from tests.unit.client.test_client_results import ISSUED, NONCE, claims
from verifier.broker import release as release_module
from verifier.broker.config import load_config
from verifier.broker.release import Broker, ChallengeRefused, PendingNonces, ReleaseRefused
from verifier.client.jwks import JwksCache

NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
TTL = dt.timedelta(seconds=60)
CLIENT = "192.0.2.7"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def nonce(label: str) -> bytes:
    return label.encode().ljust(32, b"\0")


def token(**changes: Any) -> str:
    """A good token for workload "app 1" bound to NONCE (claims() with `changes` at the top level)."""
    return SIGNER.sign({**claims(labels=("app 1",)), **changes})


def refusal(b: Broker, secret: str, tok: str, nonce_b64: Any) -> ReleaseRefused:
    with pytest.raises(ReleaseRefused) as info:
        b.release(secret, tok, nonce_b64)
    return info.value


class Clock:
    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def now(self) -> dt.datetime:
        return self.at


class Challenges:
    """The verifier's CreateChallenge: NONCE first, then distinct nonces; counts the calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> bytes:
        self.calls += 1
        return NONCE if self.calls == 1 else self.calls.to_bytes(32, "big")


def timed_broker(tmp_path: Path, clock: Clock, **settings: Any) -> tuple[Broker, Challenges]:
    config = load_config(write(tmp_path, [{"name": "db", "file": "s.bin", "workload": "app 1"}]))
    config = dataclasses.replace(config, **settings)
    challenges = Challenges()
    return Broker(config, JwksCache(SIGNER.jwks), challenges, clock), challenges


# --- Broker.release: refusals in order ---------------------------------------------------------------------------


def test_an_unknown_secret_is_refused_with_404_and_leaves_the_nonce_unspent(tmp_path: Path) -> None:
    b = broker(tmp_path)
    issued, _ = b.new_challenge()
    error = refusal(b, "no-such-secret", token(), b64(issued))
    assert (error.code, error.status, error.message) == ("SECRET_UNKNOWN", 404, "no such secret")
    assert str(error) == "SECRET_UNKNOWN: no such secret"
    assert b.release("db", token(), b64(issued)).secret == "db"  # the nonce was not consumed by the refusal


@pytest.mark.parametrize("text", ["A", "AAAAA", "é", "A=A", "AB*C", 5, None], ids=repr)
def test_a_nonce_that_is_not_base64url_is_refused_with_400(tmp_path: Path, text: Any) -> None:
    b = broker(tmp_path)
    b.new_challenge()
    error = refusal(b, "db", token(), text)
    assert (error.code, error.status) == ("NONCE_MALFORMED", 400)
    assert str(error) == "NONCE_MALFORMED: nonce is not base64url"


def test_a_good_token_with_a_nonce_this_broker_never_issued_is_refused(tmp_path: Path) -> None:
    b = broker(tmp_path)  # no new_challenge: NONCE is valid in the token but not pending here
    error = refusal(b, "db", token(), b64(NONCE))
    assert (error.code, error.status) == ("NONCE_UNKNOWN", 401)


def test_a_nonce_is_single_use_even_when_its_token_was_refused(tmp_path: Path) -> None:
    b = broker(tmp_path)
    assert release(b, claims(labels=("app 1",))).secret == "db"
    assert refusal(b, "db", token(), b64(NONCE)).code == "NONCE_UNKNOWN"  # replay of a released nonce
    issued, _ = b.new_challenge()
    assert refusal(b, "db", token(iss="evil-verifier"), b64(issued)).code == "TOKEN_ISSUER_MISMATCH"
    assert refusal(b, "db", token(), b64(issued)).code == "NONCE_UNKNOWN"  # spent by the refused attempt


def test_a_nonce_expires_exactly_at_its_ttl(tmp_path: Path) -> None:
    clock = Clock(ISSUED + dt.timedelta(seconds=1))
    b, _ = timed_broker(tmp_path, clock)
    issued, until = b.new_challenge(CLIENT)
    assert until == clock.at + dt.timedelta(seconds=b.config.nonce_ttl_seconds)
    clock.at = until  # the token itself is still valid (5 minutes)
    assert refusal(b, "db", token(), b64(issued)).code == "NONCE_UNKNOWN"


def test_a_nonce_redeems_just_before_its_ttl(tmp_path: Path) -> None:
    clock = Clock(ISSUED + dt.timedelta(seconds=1))
    b, _ = timed_broker(tmp_path, clock)
    issued, until = b.new_challenge(CLIENT)
    clock.at = until - dt.timedelta(microseconds=1)
    assert b.release("db", token(), b64(issued)).secret == "db"


def test_a_token_the_checker_cannot_parse_for_recursion_is_refused_as_malformed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """verify_result catches deep JSON nesting itself; the broker still refuses (401, nonce spent) rather than fail
    with a 500 if a RecursionError ever escapes it."""

    def recurses(*args: Any, **kwargs: Any) -> Any:
        raise RecursionError("maximum recursion depth exceeded")

    b = broker(tmp_path)
    issued, _ = b.new_challenge()
    monkeypatch.setattr(release_module, "verify_result", recurses)
    error = refusal(b, "db", token(), b64(issued))
    assert (error.code, error.status) == ("TOKEN_MALFORMED", 401)
    monkeypatch.undo()
    assert refusal(b, "db", token(), b64(issued)).code == "NONCE_UNKNOWN"


def test_a_result_without_a_cnf_key_is_refused(tmp_path: Path) -> None:
    b = broker(tmp_path)
    issued, _ = b.new_challenge()
    payload = claims(labels=("app 1",), cnf=None)
    assert "cnf" not in payload
    error = refusal(b, "db", SIGNER.sign(payload), b64(issued))
    assert (error.code, error.status) == ("KEY_NOT_BOUND", 403)


def test_a_release_is_logged_with_the_workload_version_that_received_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    payload = claims(labels=("app 1",))
    payload["submods"]["nitro"]["ear_verifier_claims"]["workloads"][0]["version"] = "2.5.1"
    with caplog.at_level(logging.INFO, logger=release_module.__name__):
        released = release(broker(tmp_path), payload)
    (line,) = [r.getMessage() for r in caplog.records if r.name == release_module.__name__]
    assert line == f"released secret db to workload app 1 2.5.1 (nitro, token {released.token_id})"


def test_refusals_read_code_colon_message() -> None:
    assert str(ReleaseRefused("TEE_NOT_ALLOWED", "snp evidence may not receive db")) == (
        "TEE_NOT_ALLOWED: snp evidence may not receive db"
    )
    refused = ChallengeRefused("CHALLENGE_RATE_LIMITED", "too many", 429, 7)
    assert str(refused) == "CHALLENGE_RATE_LIMITED: too many"
    assert (refused.code, refused.message, refused.status, refused.retry_after) == (
        "CHALLENGE_RATE_LIMITED",
        "too many",
        429,
        7,
    )


# --- Broker.new_challenge ---------------------------------------------------------------------------------------


def test_a_client_at_its_limit_is_refused_before_the_verifier_is_asked(tmp_path: Path) -> None:
    clock = Clock(ISSUED)
    b, challenges = timed_broker(tmp_path, clock, max_pending_per_client=1)
    b.new_challenge(CLIENT)
    with pytest.raises(ChallengeRefused) as info:
        b.new_challenge(CLIENT)
    assert (info.value.code, info.value.status) == ("CHALLENGE_RATE_LIMITED", 429)
    assert challenges.calls == 1  # the refused client cost the verifier nothing
    b.new_challenge("198.51.100.9")  # another client is served
    assert challenges.calls == 2


# --- PendingNonces ----------------------------------------------------------------------------------------------


def test_admit_lets_a_client_in_once_its_nonces_have_expired() -> None:
    pending = PendingNonces(TTL, limit=10, per_client=1)
    pending.add(nonce("a"), NOW, CLIENT)
    with pytest.raises(ChallengeRefused) as info:
        pending.admit(CLIENT, NOW + TTL / 2)
    assert info.value.retry_after == 30
    pending.admit(CLIENT, NOW + TTL + dt.timedelta(seconds=1))
    assert len(pending) == 0


def test_add_lets_a_client_in_once_its_nonces_have_expired() -> None:
    pending = PendingNonces(TTL, limit=10, per_client=1)
    pending.add(nonce("a"), NOW, CLIENT)
    later = NOW + TTL + dt.timedelta(seconds=1)
    assert pending.add(nonce("b"), later, CLIENT) == later + TTL
    assert not pending.consume(nonce("a"), later) and pending.consume(nonce("b"), later)


def test_a_nonce_expires_at_exactly_its_ttl() -> None:
    pending = PendingNonces(TTL, limit=10, per_client=10)
    pending.add(nonce("early"), NOW, CLIENT)
    pending.add(nonce("late"), NOW + dt.timedelta(microseconds=1), CLIENT)
    assert not pending.consume(nonce("early"), NOW + TTL)
    assert pending.consume(nonce("late"), NOW + TTL)
    pending.add(nonce("edge"), NOW, "198.51.100.9")
    pending.admit("198.51.100.9", NOW + TTL)  # nothing to expire wrongly: admit at the edge empties the store
    assert len(pending) == 0


@pytest.mark.parametrize("spend", ["consume", "expire"])
def test_a_client_keeps_counting_its_other_nonces_after_one_is_spent(spend: str) -> None:
    pending = PendingNonces(TTL, limit=10, per_client=2)
    pending.add(nonce("a"), NOW, CLIENT)
    pending.add(nonce("b"), NOW + dt.timedelta(seconds=10), CLIENT)
    at = NOW + dt.timedelta(seconds=20)
    if spend == "consume":
        assert pending.consume(nonce("a"), at)
    else:
        at = NOW + TTL  # a expires, b (added 10 s later) is still held
    pending.add(nonce("c"), at, CLIENT)  # b and c: the client's share
    with pytest.raises(ChallengeRefused):
        pending.add(nonce("d"), at, CLIENT)
    with pytest.raises(ChallengeRefused):
        pending.admit(CLIENT, at)
    assert pending.consume(nonce("b"), at) and pending.consume(nonce("c"), at)
    pending.add(nonce("d"), at, CLIENT)  # every nonce spent: the client starts afresh
    assert len(pending) == 1
