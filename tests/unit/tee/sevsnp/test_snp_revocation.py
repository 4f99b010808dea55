"""SnpVerifier revocation facts: checked by default, which CRL decides (request vs source, the newer), the typed
`SnpFacts` the appraiser reads (revocation, the deciding CRL, the superseded request CRL, why revocation is
unavailable) and the collateral the token reports (`VerifiedEvidence.revocation`, `.collateral`)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.fakes.amd_pki import FakeAmdPki
from verifier.collateral.base import CollateralItem, CollateralKey, CollateralUnavailableError
from verifier.collateral.ordering import ItemVersion
from verifier.tee.base import CollateralUsed, VerifiedEvidence, VerifyContext
from verifier.tee.sevsnp.evidence import SnpVerifier
from verifier.tee.sevsnp.facts import SnpFacts, SupersededCrl
from verifier.tee.sevsnp.tcb import Product
from verifier.trust.anchors import TrustAnchors

pytestmark = pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")


def _t(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def pki() -> FakeAmdPki:
    return FakeAmdPki(Product.MILAN)


class Source:
    """Serves fixed items by kind, labelled `label` ("cache" for a cache hit, anything else a vendor fetch)."""

    def __init__(self, items: dict[str, bytes], label: str = "kds") -> None:
        self.items, self.label = items, label

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        if key.kind not in self.items:
            raise CollateralUnavailableError("COLLATERAL_NOT_FOUND", key.kind)
        return CollateralItem(key, self.items[key.kind], at, at + dt.timedelta(days=1), self.label)


def _vcek(pki: FakeAmdPki) -> dict[str, bytes]:
    return {"vcek.der": pki.vcek.public_bytes(Encoding.DER)}


def _full(pki: FakeAmdPki) -> dict[str, bytes]:
    return {**_vcek(pki), "ask.pem": pki.ask.public_bytes(Encoding.PEM), "ark.pem": pki.ark.public_bytes(Encoding.PEM)}


def _facts(verified: VerifiedEvidence) -> SnpFacts:
    assert isinstance(verified.facts, SnpFacts), verified
    assert verified.revocation == verified.facts.revocation and not hasattr(verified, "details")
    return verified.facts


def test_revocation_is_checked_by_default_and_unavailable_offline(pki: FakeAmdPki) -> None:
    ctx = VerifyContext(at=pki.now, anchors=pki.anchors(), collateral=_full(pki))
    assert ctx.check_crl is True
    verified = SnpVerifier().verify(pki.report(), ctx)
    assert verified.failure is None
    facts = _facts(verified)
    assert facts == SnpFacts(revocation="unavailable", product=Product.MILAN, crl_reason="COLLATERAL_OFFLINE")
    assert verified.revocation == "unavailable"
    assert [c.item for c in verified.collateral] == ["amd.vcek", "amd.cert_chain"]


def test_opt_out_says_off(pki: FakeAmdPki) -> None:
    ctx = VerifyContext(at=pki.now, anchors=pki.anchors(), collateral=_full(pki), check_crl=False)
    verified = SnpVerifier().verify(pki.report(), ctx)
    assert _facts(verified) == SnpFacts(revocation="off", product=Product.MILAN)
    assert verified.revocation == "off" and [c.item for c in verified.collateral] == ["amd.vcek", "amd.cert_chain"]


def test_collateral_says_what_decided_and_where_it_came_from(pki: FakeAmdPki) -> None:
    crl = pki.crl(number=3)
    anchors = TrustAnchors(pins=pki.pins, certificates=[pki.ask, pki.ark])
    ctx = VerifyContext(
        at=pki.now, anchors=anchors, collateral=_vcek(pki), source=Source({"amd.crl": crl}, label="cache")
    )
    verified = SnpVerifier().verify(pki.report(), ctx)
    assert verified.failure is None and verified.revocation == "checked"
    crl = CollateralUsed(
        item="amd.crl",
        number=3,
        issued=_t(pki.now - dt.timedelta(days=1)),
        next_update=_t(pki.now + dt.timedelta(days=7)),
        source="cache",
    )
    assert verified.collateral == (
        CollateralUsed(
            item="amd.vcek",
            number=None,
            issued=_t(pki.vcek.not_valid_before_utc),
            next_update=_t(pki.vcek.not_valid_after_utc),
            source="request",
        ),
        CollateralUsed(
            item="amd.cert_chain",
            number=None,
            issued=_t(pki.ask.not_valid_before_utc),
            next_update=_t(min(pki.ask.not_valid_after_utc, pki.ark.not_valid_after_utc)),
            source="anchors",
        ),
        crl,
    )
    assert _facts(verified) == SnpFacts(revocation="checked", product=Product.MILAN, crl=crl)
    assert [c.to_json() for c in verified.collateral][-1] == {
        "item": "amd.crl",
        "number": 3,
        "issued": _t(pki.now - dt.timedelta(days=1)),
        "next_update": _t(pki.now + dt.timedelta(days=7)),
        "source": "cache",
    }  # what the token says


def test_vendor_fetched_vcek_and_chain(pki: FakeAmdPki) -> None:
    source = Source(
        {
            "amd.vcek": pki.vcek.public_bytes(Encoding.DER),
            "amd.crl": pki.crl(),
            "amd.cert_chain": pki.ask.public_bytes(Encoding.PEM) + pki.ark.public_bytes(Encoding.PEM),
        }
    )
    verified = SnpVerifier().verify(pki.report(), VerifyContext(at=pki.now, anchors=pki.anchors(), source=source))
    assert verified.failure is None
    assert [(c.item, c.source) for c in verified.collateral] == [
        ("amd.vcek", "vendor"),
        ("amd.cert_chain", "vendor"),
        ("amd.crl", "vendor"),
    ]


def test_an_older_request_crl_is_superseded(pki: FakeAmdPki) -> None:
    old_at = pki.now - dt.timedelta(days=3)
    ctx = VerifyContext(
        at=pki.now,
        anchors=pki.anchors(),
        collateral={**_full(pki), "crl.der": pki.crl(number=1, this_update=old_at)},
        source=Source({"amd.crl": pki.crl(number=2)}),
    )
    verified = SnpVerifier().verify(pki.report(), ctx)
    facts = _facts(verified)
    assert facts.crl_superseded == SupersededCrl(
        request=ItemVersion(1, old_at), used=ItemVersion(2, pki.now - dt.timedelta(days=1))
    )
    assert facts.crl is not None and facts.crl.source == "vendor" and verified.collateral[-1] == facts.crl


def test_a_tie_uses_the_verifiers_copy_and_a_newer_request_crl_wins(pki: FakeAmdPki) -> None:
    same = pki.crl(number=2)
    tie = VerifyContext(
        at=pki.now, anchors=pki.anchors(), collateral={**_full(pki), "crl.pem": same}, source=Source({"amd.crl": same})
    )
    facts = _facts(SnpVerifier().verify(pki.report(), tie))
    assert facts.crl is not None and facts.crl.source == "vendor" and facts.crl_superseded is None
    newer = VerifyContext(
        at=pki.now,
        anchors=pki.anchors(),
        collateral={**_full(pki), "crl.der": pki.crl(number=9)},
        source=Source({"amd.crl": same}),
    )
    facts = _facts(SnpVerifier().verify(pki.report(), newer))
    assert facts.crl is not None and (facts.crl.source, facts.crl.number) == ("request", 9)
    assert facts.crl_superseded is None  # the source's older copy lost: nothing the request brought was superseded


def test_a_bad_request_crl_is_recorded_and_the_source_crl_used(pki: FakeAmdPki) -> None:
    ctx = VerifyContext(
        at=pki.now,
        anchors=pki.anchors(),
        collateral={**_full(pki), "crl.der": b"garbage"},
        source=Source({"amd.crl": pki.crl()}),
    )
    facts = _facts(SnpVerifier().verify(pki.report(), ctx))
    assert facts.revocation == "checked" and facts.crl_request_error == "CRL_MALFORMED"
    assert facts.crl is not None and facts.crl.source == "vendor" and facts.crl_reason is None


def test_an_expired_source_crl_and_no_request_crl_is_unavailable(pki: FakeAmdPki) -> None:
    stale = pki.crl(this_update=pki.now - dt.timedelta(days=9), next_update=pki.now - dt.timedelta(days=1))
    ctx = VerifyContext(at=pki.now, anchors=pki.anchors(), collateral=_full(pki), source=Source({"amd.crl": stale}))
    facts = _facts(SnpVerifier().verify(pki.report(), ctx))
    assert (facts.revocation, facts.crl_reason, facts.crl) == ("unavailable", "CRL_EXPIRED", None)


def test_a_bad_request_crl_and_no_source_crl_is_unavailable_with_both_reasons(pki: FakeAmdPki) -> None:
    ctx = VerifyContext(at=pki.now, anchors=pki.anchors(), collateral={**_full(pki), "crl.der": b"garbage"})
    facts = _facts(SnpVerifier().verify(pki.report(), ctx))
    assert (facts.revocation, facts.crl_reason, facts.crl_request_error) == (
        "unavailable",
        "CRL_MALFORMED",
        "CRL_MALFORMED",
    )
