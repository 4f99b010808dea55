"""Issue 16, items 7 to 10: `Broker.release` applies its rule and its configuration to a correctly signed token
with the broker's own nonce: the rule's TEEs (TEE_NOT_ALLOWED), workload and required labels (refused on that
ground, not on status), required status, and the broker's expected issuer."""

from __future__ import annotations

import base64
import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.unit.broker.test_broker import write
from tests.unit.client.test_client_results import ISSUED, NONCE, claims
from verifier.appraisal.model import Tier
from verifier.broker.config import load_config
from verifier.broker.release import Broker, Release, ReleaseRefused
from verifier.client.jwks import JwksCache
from verifier.clock import FixedClock
from verifier.results.keys import ephemeral_key
from verifier.results.signer import ResultSigner

SIGNER = ResultSigner([ephemeral_key()])


def broker(tmp_path: Path, **rule: Any) -> Broker:
    """A broker with one secret `db` for workload "app 1" (plus `rule`), trusting SIGNER, whose challenge is
    NONCE, at one second after the tokens are issued."""
    config = load_config(write(tmp_path, [{"name": "db", "file": "s.bin", "workload": "app 1", **rule}]))
    return Broker(config, JwksCache(SIGNER.jwks), lambda: NONCE, FixedClock(ISSUED + timedelta(seconds=1)))


def release(b: Broker, payload: dict[str, Any]) -> Release:
    nonce, _ = b.new_challenge()
    assert nonce == NONCE
    return b.release("db", SIGNER.sign(payload), base64.urlsafe_b64encode(nonce).rstrip(b"=").decode())


def refused(b: Broker, payload: dict[str, Any]) -> str:
    with pytest.raises(ReleaseRefused) as info:
        release(b, payload)
    return info.value.code


def test_the_control_token_is_released(tmp_path: Path) -> None:
    assert release(broker(tmp_path), claims(labels=("app 1",))).secret == "db"


def test_a_nitro_token_for_an_snp_only_secret_is_refused(tmp_path: Path) -> None:
    token = claims(labels=("app 1",))
    assert list(token["submods"]) == ["nitro"]
    assert refused(broker(tmp_path, tees=["snp"]), token) == "TEE_NOT_ALLOWED"
    assert release(broker(tmp_path, tees=["snp", "nitro"]), token).secret == "db"


def test_an_affirming_token_for_another_workload_is_refused_as_a_workload_mismatch(tmp_path: Path) -> None:
    token = claims(labels=("other app",))
    assert token["ear_status"] == "affirming"
    assert refused(broker(tmp_path), token) == "TOKEN_WORKLOAD_MISMATCH"


def test_an_affirming_token_without_a_required_label_is_refused_as_a_missing_label(tmp_path: Path) -> None:
    token = claims(labels=("app 1",))
    assert refused(broker(tmp_path, require_labels=["app 1", "hardened"]), token) == "TOKEN_LABEL_MISSING"
    assert release(broker(tmp_path, require_labels=["app 1"]), token).secret == "db"


def test_a_warning_token_where_affirming_is_required_is_refused(tmp_path: Path) -> None:
    token = claims(status=Tier.WARNING, labels=("app 1",))
    assert (token["ear_status"], token["submods"]["nitro"]["ear_verifier_claims"]["workloads"][0]["status"]) == (
        "warning",
        "warning",
    )
    assert refused(broker(tmp_path), token) == "TOKEN_STATUS_INSUFFICIENT"
    assert refused(broker(tmp_path, require_status="affirming"), token) == "TOKEN_STATUS_INSUFFICIENT"
    # The rule is what decides: a rule accepting warning releases the same token.
    assert release(broker(tmp_path, require_status="warning"), token).secret == "db"


def test_a_token_with_a_foreign_issuer_is_refused(tmp_path: Path) -> None:
    b = broker(tmp_path)
    assert b.config.issuer == "tee-verifier"
    assert refused(b, {**claims(labels=("app 1",)), "iss": "evil-verifier"}) == "TOKEN_ISSUER_MISMATCH"
    assert refused(b, {k: v for k, v in claims(labels=("app 1",)).items() if k != "iss"}) == "TOKEN_ISSUER_MISMATCH"
    # A broker configured with that issuer accepts it: the check compares with the configuration.
    other = dataclasses.replace(b.config, issuer="evil-verifier")
    b2 = Broker(other, JwksCache(SIGNER.jwks), lambda: NONCE, FixedClock(ISSUED + timedelta(seconds=1)))
    assert release(b2, {**claims(labels=("app 1",)), "iss": "evil-verifier"}).secret == "db"
