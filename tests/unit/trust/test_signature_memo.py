"""The memo of verified signatures (verifier/trust/signature_memo.py): a valid (key, r, s, message) is verified once;
nothing else is ever answered from it, invalid outcomes are never kept, and the trust decisions around a signature
(the signer's chain at the appraisal time) are still made on every appraisal."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from verifier.appraisal.registry import get_verifier
from verifier.tee.base import VerifyContext
from verifier.trust import signature_memo
from verifier.trust.anchors import TrustAnchors
from verifier.trust.ecdsa import P384_ORDER, complement, verify_rs

MESSAGE = b"attested bytes " * 40


@pytest.fixture(autouse=True)
def _empty_memo() -> Iterator[None]:
    signature_memo.clear()
    yield
    signature_memo.clear()


def _signed(curve: ec.EllipticCurve, algorithm: hashes.HashAlgorithm) -> tuple[ec.EllipticCurvePublicKey, int, int]:
    private = ec.generate_private_key(curve)
    r, s = decode_dss_signature(private.sign(MESSAGE, ec.ECDSA(algorithm)))
    return private.public_key(), r, s


@pytest.mark.parametrize(
    ("curve", "algorithm"), [(ec.SECP256R1(), hashes.SHA256()), (ec.SECP384R1(), hashes.SHA384())], ids=["p256", "p384"]
)
def test_a_valid_signature_is_verified_once_then_remembered(
    curve: ec.EllipticCurve, algorithm: hashes.HashAlgorithm
) -> None:
    key, r, s = _signed(curve, algorithm)
    assert verify_rs(key, r, s, MESSAGE, algorithm)
    assert (signature_memo.info().entries, signature_memo.info().hits) == (1, 0)
    assert verify_rs(key, r, s, MESSAGE, algorithm)
    assert (signature_memo.info().entries, signature_memo.info().hits) == (1, 1)


def test_a_remembered_signature_answers_for_nothing_but_its_own_message_key_and_algorithm() -> None:
    key, r, s = _signed(ec.SECP384R1(), hashes.SHA384())
    assert verify_rs(key, r, s, MESSAGE, hashes.SHA384())
    other_key = ec.generate_private_key(ec.SECP384R1()).public_key()
    assert not verify_rs(key, r, s, MESSAGE + b"!", hashes.SHA384())  # another message
    assert not verify_rs(key, r, s, MESSAGE[:-1], hashes.SHA384())
    assert not verify_rs(other_key, r, s, MESSAGE, hashes.SHA384())  # another key
    assert not verify_rs(key, r, s, MESSAGE, hashes.SHA512())  # another hash algorithm
    assert not verify_rs(key, r + 1, s, MESSAGE, hashes.SHA384())  # another r
    assert signature_memo.info().entries == 1


def test_invalid_outcomes_are_never_kept() -> None:
    key, r, s = _signed(ec.SECP256R1(), hashes.SHA256())
    for _ in range(3):
        assert not verify_rs(key, r, s, b"forged", hashes.SHA256())
    assert signature_memo.info().entries == 0


def test_a_malleated_copy_is_another_entry_verified_on_its_own() -> None:
    key, r, s = _signed(ec.SECP384R1(), hashes.SHA384())
    assert verify_rs(key, r, s, MESSAGE, hashes.SHA384())
    assert verify_rs(key, r, complement(s, P384_ORDER), MESSAGE, hashes.SHA384())
    assert (signature_memo.info().entries, signature_memo.info().hits) == (2, 0)


def test_an_unusual_hash_algorithm_is_verified_without_the_memo() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    r, s = decode_dss_signature(private.sign(MESSAGE, ec.ECDSA(hashes.SHA224())))
    assert verify_rs(private.public_key(), r, s, MESSAGE, hashes.SHA224())
    assert verify_rs(private.public_key(), r, s, MESSAGE, hashes.SHA224())
    assert signature_memo.info().entries == 0


def test_the_memo_is_bounded() -> None:
    assert signature_memo.VERIFIED.max_entries == signature_memo.MAX_ENTRIES == 2048
    for index in range(signature_memo.MAX_ENTRIES + 10):
        signature_memo.VERIFIED.put(index.to_bytes(250, "big"), True)
    assert signature_memo.info().entries == signature_memo.MAX_ENTRIES  # the oldest were evicted
    assert signature_memo.VERIFIED.get((0).to_bytes(250, "big")) is None


def test_a_remembered_signature_does_not_keep_its_signer_trusted(vectors_dir: Path) -> None:
    """The Nitro document's signature is remembered at its verify_at; a day after its leaf certificate expired the
    same bytes still fail on the chain: the memo says who signed, never that the signer is trusted."""
    manifest = json.loads((vectors_dir / "MANIFEST.json").read_text())
    entry = next(v for v in manifest["vectors"] if v["id"] == "nitro-prod-2024-blocky")
    evidence = (vectors_dir / entry["dir"] / "evidence.bin").read_bytes()
    at = datetime.datetime.fromisoformat(entry["verify_at"].replace("Z", "+00:00"))
    verifier = type(get_verifier("nitro"))()
    good = verifier.verify(evidence, VerifyContext(at=at, anchors=TrustAnchors(), check_crl=False))
    assert good.failure is None and signature_memo.info().entries == 1
    late = verifier.verify(evidence, VerifyContext(at=at + datetime.timedelta(days=30), anchors=TrustAnchors()))
    assert late.failure is not None and late.failure.code == "CERT_EXPIRED"
