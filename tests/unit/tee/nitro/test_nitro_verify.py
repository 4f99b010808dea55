"""Verification of real Nitro documents (at their own time) and of fake ones that break one rule each."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import manifest_vectors
from tests.fakes.aws_pki import FakeAwsPki
from verifier.errors import EvidenceError
from verifier.tee.nitro.parse import parse
from verifier.tee.nitro.verify import verify
from verifier.trust.anchors import PINNED_ROOTS, TrustAnchors, fingerprint

NITRO = manifest_vectors("nitro")
AWS_ROOT = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
IDS = [v["id"] for v in NITRO]


def _raw(vectors_dir: Path, vector: dict[str, Any]) -> bytes:
    return Path(vectors_dir, vector["dir"], "evidence.bin").read_bytes()


def _at(vector: dict[str, Any]) -> datetime.datetime:
    return datetime.datetime.fromisoformat(vector["verify_at"].replace("Z", "+00:00"))


def _fails(data: bytes, anchors: TrustAnchors, at: datetime.datetime) -> EvidenceError:
    with pytest.raises(EvidenceError) as info:
        verify(parse(data), anchors, at)
    return info.value


@pytest.fixture(scope="module")
def directory_anchors(trust_anchors_dir: Path) -> TrustAnchors:
    return TrustAnchors.from_directory(trust_anchors_dir)


@pytest.fixture(scope="module")
def pki() -> FakeAwsPki:
    return FakeAwsPki()


@pytest.mark.parametrize("vector", NITRO, ids=IDS)
def test_real_vector_verifies(vectors_dir: Path, directory_anchors: TrustAnchors, vector: dict[str, Any]) -> None:
    raw, at = _raw(vectors_dir, vector), _at(vector)
    for anchors in (directory_anchors, TrustAnchors()):
        chain = verify(parse(raw), anchors, at)
        assert len(chain) == vector["what"]["cabundle_len"] + 1
        assert chain[0].subject.rfc4514_string() == vector["what"]["leaf_cert_subject"]
        assert fingerprint(chain[-1]) == AWS_ROOT
    assert len(verify(parse(b"\xd2" + raw), TrustAnchors(), at)) == len(chain)


@pytest.mark.parametrize("vector", NITRO, ids=IDS)
def test_real_vector_time_window(vectors_dir: Path, vector: dict[str, Any]) -> None:
    raw, at = _raw(vectors_dir, vector), _at(vector)
    err = _fails(raw, TrustAnchors(), at + datetime.timedelta(hours=3, seconds=1))
    assert err.code == "CERT_EXPIRED"
    assert err.expected == "notAfter " + vector["what"]["leaf_cert_validity"][1]
    leaf_not_before = datetime.datetime.fromisoformat(vector["what"]["leaf_cert_validity"][0].replace("Z", "+00:00"))
    assert _fails(raw, TrustAnchors(), leaf_not_before - datetime.timedelta(days=1)).code == "CERT_NOT_YET_VALID"


@pytest.mark.parametrize("vector", NITRO, ids=IDS)
def test_real_vector_tampering(vectors_dir: Path, directory_anchors: TrustAnchors, vector: dict[str, Any]) -> None:
    raw, at = _raw(vectors_dir, vector), _at(vector)
    offset = raw.index(bytes.fromhex(vector["facts"]["pcrs"]["4"])) + 7  # inside PCR4: CBOR stays well-formed
    flipped = raw[:offset] + bytes([raw[offset] ^ 0x01]) + raw[offset + 1 :]
    assert _fails(flipped, TrustAnchors(), at).code == "NITRO_SIGNATURE_INVALID"
    sig = raw.index(bytes.fromhex(vector["facts"]["signature_hex"])) + 50
    bad_sig = raw[:sig] + bytes([raw[sig] ^ 0x80]) + raw[sig + 1 :]
    assert _fails(bad_sig, directory_anchors, at).code == "NITRO_SIGNATURE_INVALID"


@pytest.mark.parametrize("vector", NITRO, ids=IDS)
def test_real_vector_without_aws_pin(trust_anchors_dir: Path, vectors_dir: Path, vector: dict[str, Any]) -> None:
    pins = {k: v for k, v in PINNED_ROOTS.items() if k != "aws-nitro"}
    for anchors in (TrustAnchors(pins=pins), TrustAnchors.from_directory(trust_anchors_dir, pins=pins)):
        err = _fails(_raw(vectors_dir, vector), anchors, _at(vector))
        assert err.code == "CHAIN_ROOT_UNTRUSTED" and err.actual == AWS_ROOT


def test_fake_document_verifies(pki: FakeAwsPki) -> None:
    chain = verify(parse(pki.mint(nonce=b"abc", tag=18)), pki.anchors(), pki.now)
    assert [c.subject for c in chain] == [
        pki.leaf.subject,
        pki.instance.subject,
        pki.regional.subject,
        pki.root.subject,
    ]


def test_unpinned_bundle_root_is_replaced_by_pinned_anchor(pki: FakeAwsPki) -> None:
    """cabundle[0] is never trusted as given; a pinned anchor with the expected subject stands in for it."""
    foreign_bundle = [pki.foreign().cabundle[0], *pki.cabundle[1:]]
    data = pki.mint(cabundle=foreign_bundle)
    assert _fails(data, pki.anchors(), pki.now).code == "CHAIN_ROOT_UNTRUSTED"
    chain = verify(parse(data), TrustAnchors(pins=pki.pins, certificates=[pki.root]), pki.now)
    assert chain[-1] == pki.root


def test_foreign_root(pki: FakeAwsPki) -> None:
    err = _fails(pki.foreign().mint(), pki.anchors(), pki.now)
    assert err.code == "CHAIN_ROOT_UNTRUSTED" and pki.root_fingerprint in err.expected


def test_tampered_signature(pki: FakeAwsPki) -> None:
    good = parse(pki.mint()).cose.signature
    flipped = good[:-1] + bytes([good[-1] ^ 1])  # always a change (ECDSA signatures are random: one in 256 ends 00)
    assert _fails(pki.mint(signature=flipped), pki.anchors(), pki.now).code == "NITRO_SIGNATURE_INVALID"
    other = pki.mint(nonce=b"x")  # valid signature over another payload
    assert _fails(pki.mint(signature=parse(other).cose.signature), pki.anchors(), pki.now).code == (
        "NITRO_SIGNATURE_INVALID"
    )


def test_ca_without_basic_constraints_ca() -> None:
    pki = FakeAwsPki(intermediate_ca=False)
    assert _fails(pki.mint(), pki.anchors(), pki.now).code == "CHAIN_CONSTRAINTS"


def test_expired_intermediate() -> None:
    now = FakeAwsPki().now
    pki = FakeAwsPki(now, intermediate_validity=(now - datetime.timedelta(days=2), now - datetime.timedelta(hours=1)))
    err = _fails(pki.mint(), pki.anchors(), pki.now)
    assert err.code == "CERT_EXPIRED" and "i-0fake.us-east-1" in err.message


def test_leaf_not_p384() -> None:
    pki = FakeAwsPki(leaf_curve=ec.SECP256R1())
    err = _fails(pki.mint(), pki.anchors(), pki.now)
    assert (err.code, err.expected, err.actual) == ("NITRO_KEY_TYPE", "secp384r1", "secp256r1")


def test_fake_time_window(pki: FakeAwsPki) -> None:
    data = pki.mint()
    assert _fails(data, pki.anchors(), pki.not_after + datetime.timedelta(seconds=1)).code == "CERT_EXPIRED"
    assert _fails(data, pki.anchors(), pki.not_before - datetime.timedelta(seconds=1)).code == "CERT_NOT_YET_VALID"
    verify(parse(data), pki.anchors(), pki.not_after)  # notAfter itself is inside the window (RFC 5280 4.1.2.5)


def test_bundle_order_and_names(pki: FakeAwsPki) -> None:
    swapped = [pki.cabundle[0], pki.cabundle[2], pki.cabundle[1]]
    assert _fails(pki.mint(cabundle=swapped), pki.anchors(), pki.now).code == "CHAIN_NAME_MISMATCH"
    other = pki.foreign()
    mixed = [pki.cabundle[0], pki.cabundle[1], other.cabundle[2]]
    assert _fails(pki.mint(cabundle=mixed), pki.anchors(), pki.now).code == "CHAIN_SIGNATURE_INVALID"


def test_malformed_certificates(pki: FakeAwsPki) -> None:
    assert _fails(pki.mint(certificate=b"\x30\x03\x02\x01\x01"), pki.anchors(), pki.now).code == "CERT_MALFORMED"
    bundle = [*pki.cabundle[:2], b"not a certificate"]
    assert _fails(pki.mint(cabundle=bundle), pki.anchors(), pki.now).code == "CERT_MALFORMED"


def test_leaf_as_only_bundle_entry_is_rejected(pki: FakeAwsPki) -> None:
    """A bundle of just the root cannot reach a leaf issued by an intermediate."""
    assert _fails(pki.mint(cabundle=pki.cabundle[:1]), pki.anchors(), pki.now).code == "CHAIN_NAME_MISMATCH"


def test_chain_is_x509(pki: FakeAwsPki) -> None:
    chain = verify(parse(pki.mint()), pki.anchors(), pki.now)
    assert all(isinstance(c, x509.Certificate) for c in chain)
