"""A root CA CRL the verifier's source served that does not verify against the pinned Intel root is rejected (the
cache's `reject`, verifier/tee/tdx/evidence.py `_reject_unverifiable`) whatever happened to the served PCK CRL:
the root it is checked against is the pinned one, not the one a successful PCK CRL check found."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from tests.fakes.intel_pki import FakeIntelPki
from verifier.collateral.base import CollateralItem, CollateralKey
from verifier.tee.base import VerifyContext
from verifier.tee.tdx.evidence import TdxVerifier
from verifier.trust.anchors import TrustAnchors

DAY = dt.timedelta(days=1)
ROOT_CRL, PCK_CRL = "intel.root_ca_crl", "intel.pck_crl"


class _Recording:
    """Serves `inner`'s items and records what the verifier rejects (a RejectingSource)."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.rejected: dict[str, str] = {}

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        return self.inner.fetch(key, at=at)  # type: ignore[attr-defined,no-any-return]

    def reject(self, item: CollateralItem, *, reason: str) -> None:
        self.rejected[item.key.kind] = reason


def _stray() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _foreign_chain(pki: FakeIntelPki) -> dict[str, bytes]:
    """The PCK CRL issuer chain of another Intel-shaped PKI, whose root is not pinned."""
    foreign = pki.foreign()
    return {"pck_crl_issuer_chain.pem": b"".join(c.public_bytes(Encoding.PEM) for c in (foreign.pck_ca, foreign.root))}


# How the served PCK CRL fails (so no root comes out of its check), and the code it is rejected with (None: it is
# not rejected, as it was never delivered or names another CA).
PCK_CRL_FAILURES: dict[str, tuple[Callable[[FakeIntelPki], dict[str, bytes]], str | None]] = {
    "stray signature": (
        lambda pki: {"pck_crl.der": pki.pck_crl(signer_key=_stray(), number=2)},
        "CRL_SIGNATURE_INVALID",
    ),
    "expired": (
        lambda pki: {"pck_crl.der": pki.pck_crl(this_update=pki.now - 40 * DAY, next_update=pki.now - DAY, number=2)},
        "TDX_COLLATERAL_EXPIRED",
    ),
    "foreign chain": (_foreign_chain, "CHAIN_ROOT_UNTRUSTED"),
    "not served": (lambda pki: {}, None),
}

# How the served root CA CRL fails on its own against the pinned root, and the code it is rejected with.
ROOT_CRL_FAILURES: dict[str, tuple[Callable[[FakeIntelPki], bytes], str]] = {
    "stray signature": (lambda pki: pki.root_ca_crl(signer_key=_stray(), number=2), "CRL_SIGNATURE_INVALID"),
    "expired": (
        lambda pki: pki.root_ca_crl(this_update=pki.now - 40 * DAY, next_update=pki.now - DAY, number=2),
        "TDX_COLLATERAL_EXPIRED",
    ),
}


def _served(pki: FakeIntelPki, pck: str, root_crl: bytes | None) -> dict[str, bytes]:
    make, _ = PCK_CRL_FAILURES[pck]
    files = pki.collateral_files(**make(pki))
    if pck == "not served":
        del files["pck_crl.der"], files["pck_crl_issuer_chain.pem"]
    if root_crl is not None:
        files["root_ca_crl.der"] = root_crl
    return files


@pytest.mark.parametrize("root_bad", sorted(ROOT_CRL_FAILURES))
@pytest.mark.parametrize("pck_bad", sorted(PCK_CRL_FAILURES))
def test_a_bad_served_root_ca_crl_is_rejected_when_the_request_decides(pck_bad: str, root_bad: str) -> None:
    """The request brings valid collateral and decides every item; the source's root CA CRL fails against the
    pinned root and its PCK CRL fails too (or is not served): both bad copies are reported to the source."""
    pki = FakeIntelPki()
    make_root, root_code = ROOT_CRL_FAILURES[root_bad]
    source = _Recording(pki.source(_served(pki, pck_bad, make_root(pki)), label="cache"))
    ctx = VerifyContext(at=pki.now, anchors=pki.anchors(), collateral=pki.collateral_files(), source=source)
    verified = TdxVerifier().verify(pki.quote(), ctx)
    assert verified.failure is None, verified.failure
    used = {facts.item: facts.source for facts in verified.collateral}
    assert used["tdx.pck_crl"] == used["tdx.root_ca_crl"] == "request", used
    assert source.rejected.get(ROOT_CRL) == root_code, source.rejected
    assert source.rejected.get(PCK_CRL) == PCK_CRL_FAILURES[pck_bad][1], source.rejected
    assert set(source.rejected) <= {ROOT_CRL, PCK_CRL}, source.rejected


@pytest.mark.parametrize("pck_bad", sorted(PCK_CRL_FAILURES))
def test_a_bad_served_root_ca_crl_is_rejected_when_verification_fails(pck_bad: str) -> None:
    """No request collateral: the source's bad PCK CRL fails the verification, and its root CA CRL (signed by a
    stray key) is still reported."""
    pki = FakeIntelPki()
    source = _Recording(pki.source(_served(pki, pck_bad, pki.root_ca_crl(signer_key=_stray(), number=2))))
    ctx = VerifyContext(at=pki.now, anchors=pki.anchors(), source=source)
    verified = TdxVerifier().verify(pki.quote(), ctx)
    assert verified.failure is not None or verified.incomplete is not None
    assert source.rejected.get(ROOT_CRL) == "CRL_SIGNATURE_INVALID", source.rejected


@pytest.mark.parametrize("pck_bad", sorted(PCK_CRL_FAILURES))
def test_a_good_served_root_ca_crl_is_kept_when_the_pck_crl_fails(pck_bad: str) -> None:
    """A served root CA CRL that verifies against the pinned root is not rejected, however the PCK CRL failed."""
    pki = FakeIntelPki()
    source = _Recording(pki.source(_served(pki, pck_bad, pki.root_ca_crl(number=2))))
    ctx = VerifyContext(at=pki.now, anchors=pki.anchors(), collateral=pki.collateral_files(), source=source)
    verified = TdxVerifier().verify(pki.quote(), ctx)
    assert verified.failure is None, verified.failure
    assert ROOT_CRL not in source.rejected, source.rejected
    assert source.rejected.get(PCK_CRL) == PCK_CRL_FAILURES[pck_bad][1], source.rejected


def test_a_served_root_ca_crl_of_a_foreign_root_is_rejected() -> None:
    """A root CA CRL with the pinned root's name, signed by another root's key (pki.foreign()): rejected."""
    pki = FakeIntelPki()
    files = _served(pki, "stray signature", pki.foreign().root_ca_crl(number=2))
    source = _Recording(pki.source(files))
    ctx = VerifyContext(at=pki.now, anchors=pki.anchors(), collateral=pki.collateral_files(), source=source)
    assert TdxVerifier().verify(pki.quote(), ctx).failure is None
    assert source.rejected.get(ROOT_CRL) == "CRL_SIGNATURE_INVALID", source.rejected


@pytest.mark.parametrize("anchored", [False, True], ids=["root from the quote's chain", "root from the anchors"])
def test_a_bad_served_root_ca_crl_is_rejected_when_it_is_all_the_source_serves(anchored: bool) -> None:
    """The source serves only a root CA CRL (signed by a stray key), so no served chain names a root: the pinned
    root is the top of the quote's PCK chain, or an anchor certificate."""
    pki = FakeIntelPki()
    source = _Recording(pki.source({"root_ca_crl.der": pki.root_ca_crl(signer_key=_stray(), number=2)}))
    anchors = TrustAnchors(pins=pki.pins, certificates=[pki.root] if anchored else ())
    ctx = VerifyContext(at=pki.now, anchors=anchors, collateral=pki.collateral_files(), source=source)
    assert TdxVerifier().verify(pki.quote(), ctx).failure is None
    assert source.rejected == {ROOT_CRL: "CRL_SIGNATURE_INVALID"}, source.rejected


def test_a_served_root_ca_crl_naming_no_pinned_root_is_not_rejected() -> None:
    """As before: a served root CA CRL whose issuer is no pinned root has nothing to be checked against (the
    verification's own check of it, against the PCK CRL's root, fails it with CRL_ISSUER_MISMATCH)."""
    pki = FakeIntelPki()
    other = pki._crl("Some Other Root CA", _stray(), (), None, None, 2)
    source = _Recording(pki.source(_served(pki, "stray signature", other)))
    ctx = VerifyContext(at=pki.now, anchors=pki.anchors(), collateral=pki.collateral_files(), source=source)
    assert TdxVerifier().verify(pki.quote(), ctx).failure is None
    assert source.rejected == {PCK_CRL: "CRL_SIGNATURE_INVALID"}, source.rejected
