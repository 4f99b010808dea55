"""The verified-collateral memo (verifier/tee/tdx/collateral_memo.py): a success is reused only while no instant the
verification compares the appraisal time with lies between the two times; everything else verifies again.

Real collateral (the dcap-qvl sample vector) for the windows Intel published; the fake Intel PKI for a TCB Signing
certificate that expires inside the items' windows, a source copy that becomes valid later and newer, and CRLs
that revoke. The property test checks the memo against a fresh `verify_collateral` at every time of a random walk
over the instants, one microsecond either side and in between."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import manifest_vectors
from tests.fakes.intel_pki import FakeIntelPki
from verifier.errors import EvidenceError
from verifier.tee.tdx import collateral_memo
from verifier.tee.tdx.collateral import NOTHING_FETCHED, Fetched, VerifiedCollateral, verify_collateral
from verifier.tee.tdx.collateral_documents import TdxCollateral, collateral_from_files
from verifier.tee.tdx.collateral_memo import VerifiedCollateralMemo, instants
from verifier.tee.tdx.freshness import ITEMS, QE_IDENTITY
from verifier.tee.tdx.pck import pck_chain
from verifier.tee.tdx.quote import parse_quote
from verifier.trust.anchors import TrustAnchors
from verifier.trust.names import name_key

DAY, HOUR, MICROSECOND = dt.timedelta(days=1), dt.timedelta(hours=1), dt.timedelta(microseconds=1)
VECTOR = next(v for v in manifest_vectors("tdx") if v["id"] == "tdx-v4-dcapqvl-sample")


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _stamp(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Counting:
    """verify_collateral, counting its calls (patched into the memo module)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> VerifiedCollateral:
        self.calls += 1
        return verify_collateral(*args, **kwargs)


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> Counting:
    counter = Counting()
    monkeypatch.setattr(collateral_memo, "verify_collateral", counter)
    return counter


@pytest.fixture(scope="module")
def real(vectors_dir: Path, trust_anchors_dir: Path) -> tuple[TdxCollateral, TrustAnchors, x509.Certificate]:
    folder = vectors_dir / VECTOR["dir"]
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.name != "collateral.json"}
    leaf = pck_chain(parse_quote(files["evidence.bin"]).pck_chain_pem)[0]
    return collateral_from_files(files), TrustAnchors.from_directory(trust_anchors_dir), leaf


def _memo_verify(
    memo: VerifiedCollateralMemo,
    col: TdxCollateral,
    anchors: TrustAnchors,
    at: dt.datetime,
    leaf_issuer: x509.Name,
    fetched: Fetched = NOTHING_FETCHED,
) -> VerifiedCollateral:
    key = name_key(leaf_issuer)
    return memo.verify(col, anchors, at, pck_issuer=leaf_issuer, pck_issuer_key=key, fetched=fetched)


def _code(call: Any) -> str:
    with pytest.raises(EvidenceError) as info:
        call()
    return info.value.code


def test_a_success_is_reused_inside_its_span(real: Any, counting: Counting) -> None:
    col, anchors, leaf = real
    memo, at = VerifiedCollateralMemo(), _time(VECTOR["verify_at"])
    first = _memo_verify(memo, col, anchors, at, leaf.issuer)
    assert _memo_verify(memo, col, anchors, at + HOUR, leaf.issuer) is first
    assert _memo_verify(memo, col, anchors, at - HOUR, leaf.issuer) is first
    assert counting.calls == 1 and len(memo) == 1
    assert first == verify_collateral(col, anchors, at + HOUR, pck_issuer=leaf.issuer)


def test_past_next_update_and_before_issue_it_verifies_again_and_fails(real: Any, counting: Counting) -> None:
    """The security property: an item past its nextUpdate (or before its issue date) is refused at once, even
    right after a success at a time inside its window."""
    col, anchors, leaf = real
    start, end = (_time(t) for t in VECTOR["what"]["collateral_validity_window"])
    memo = VerifiedCollateralMemo()
    _memo_verify(memo, col, anchors, _time(VECTOR["verify_at"]), leaf.issuer)
    _memo_verify(memo, col, anchors, end - MICROSECOND, leaf.issuer)  # still inside (at < nextUpdate)
    for at in (end, end + MICROSECOND, start - MICROSECOND):
        assert _code(lambda at=at: _memo_verify(memo, col, anchors, at, leaf.issuer)) == "TDX_COLLATERAL_EXPIRED"
    assert _memo_verify(memo, col, anchors, start, leaf.issuer).next_update == end
    assert counting.calls >= 5


def test_every_item_window_and_certificate_validity_is_an_instant(real: Any) -> None:
    col, anchors, _ = real
    start, end = (_time(t) for t in VECTOR["what"]["collateral_validity_window"])
    points = instants(col, NOTHING_FETCHED.collateral, anchors)
    assert start in points and end in points and points == sorted(points)
    for cert in (*col.tcb_info_issuer_chain, *col.pck_crl_issuer_chain, *anchors.roots("intel-sgx")):
        assert cert.not_valid_before_utc in points and cert.not_valid_after_utc in points


def test_other_contents_or_anchors_are_other_entries(real: Any, counting: Counting) -> None:
    col, anchors, leaf = real
    memo, at = VerifiedCollateralMemo(), _time(VECTOR["verify_at"])
    _memo_verify(memo, col, anchors, at, leaf.issuer)
    unpinned = TrustAnchors(pins={}, certificates=anchors.certificates)
    assert _code(lambda: _memo_verify(memo, col, unpinned, at, leaf.issuer)) == "CHAIN_ROOT_UNTRUSTED"
    other = x509.Name.from_rfc4514_string("CN=Intel SGX PCK Platform CA,O=Other")
    assert _code(lambda: _memo_verify(memo, col, anchors, at, other)) == "CRL_ISSUER_MISMATCH"
    assert counting.calls == 3


@pytest.fixture(scope="module")
def pki() -> FakeIntelPki:
    return FakeIntelPki()


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(Encoding.PEM) for c in certs)


def _signer_until(pki: FakeIntelPki, not_after: dt.datetime) -> bytes:
    """The TCB Signing chain with the same key, its certificate valid until `not_after` (inside the items' window)."""
    signer = pki._cert(
        "Intel SGX TCB Signing", pki.tcb_key, "Intel SGX Root CA", pki.root_key, (pki.now - DAY, not_after)
    )
    return _pem(signer, pki.root)


def test_a_signer_certificate_expiring_inside_the_window_is_refused_at_once(pki: FakeIntelPki) -> None:
    expiry = pki.now + 2 * HOUR
    chain = _signer_until(pki, expiry)
    col = collateral_from_files(
        pki.collateral_files(**{"tcb_info_issuer_chain.pem": chain, "qe_identity_issuer_chain.pem": chain})
    )
    memo, anchors = VerifiedCollateralMemo(), pki.anchors()
    _memo_verify(memo, col, anchors, pki.now, pki.pck.issuer)
    _memo_verify(memo, col, anchors, expiry, pki.pck.issuer)  # notAfter is inclusive (RFC 5280)
    assert _code(lambda: _memo_verify(memo, col, anchors, expiry + MICROSECOND, pki.pck.issuer)) == "CERT_EXPIRED"


def test_a_revoking_crl_is_another_entry(pki: FakeIntelPki) -> None:
    good = collateral_from_files(pki.collateral_files())
    revoking = collateral_from_files(
        pki.collateral_files(**{"root_ca_crl.der": pki.root_ca_crl(revoked=[pki.tcb_signing.serial_number])})
    )
    memo, anchors = VerifiedCollateralMemo(), pki.anchors()
    _memo_verify(memo, good, anchors, pki.now, pki.pck.issuer)
    assert _code(lambda: _memo_verify(memo, revoking, anchors, pki.now, pki.pck.issuer)) == (
        "TDX_COLLATERAL_SIGNER_REVOKED"
    )


def _later_source(pki: FakeIntelPki) -> tuple[TdxCollateral, Fetched, list[dt.datetime]]:
    """A request whose TCB Signing certificate expires after 3 h, and a source whose QE identity (number 18) is issued
    in 1 h: before then the request's copy decides, afterwards the source's newer one."""
    chain = _signer_until(pki, pki.now + 3 * HOUR)
    request = collateral_from_files(
        pki.collateral_files(**{"tcb_info_issuer_chain.pem": chain, "qe_identity_issuer_chain.pem": chain})
    )
    later = pki.qe_identity(
        issueDate=_stamp(pki.now + HOUR), nextUpdate=_stamp(pki.now + 5 * HOUR), tcbEvaluationDataNumber=18
    )
    source = collateral_from_files(pki.collateral_files(qe_identity=later))
    fetched = Fetched(source, {item: "cache" for item in ITEMS})
    return request, fetched, instants(request, source, pki.anchors())


def test_a_source_copy_that_becomes_valid_later_decides_then(pki: FakeIntelPki) -> None:
    request, fetched, _ = _later_source(pki)
    memo, anchors = VerifiedCollateralMemo(), pki.anchors()
    before = _memo_verify(memo, request, anchors, pki.now, pki.pck.issuer, fetched)
    after = _memo_verify(memo, request, anchors, pki.now + 2 * HOUR, pki.pck.issuer, fetched)
    facts = {f.item: f for f in before.items}, {f.item: f for f in after.items}
    assert facts[0][QE_IDENTITY].source == "request" and facts[1][QE_IDENTITY].source == "cache"
    assert facts[1][QE_IDENTITY].number == 18


def _outcome(call: Any) -> Any:
    try:
        return call()
    except EvidenceError as error:
        return error.code


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_the_memo_agrees_with_a_fresh_verification_at_every_time(pki: FakeIntelPki, data: st.DataObject) -> None:
    request, fetched, points = _later_source(pki)
    anchors, memo = pki.anchors(), VerifiedCollateralMemo()
    nearby = [
        p + d for p in points for d in (-MICROSECOND, dt.timedelta(0), MICROSECOND) if abs(p - pki.now) < 30 * DAY
    ]
    between = st.integers(-2 * 86_400, 6 * 3600).map(lambda s: pki.now + dt.timedelta(seconds=s))
    times = data.draw(st.lists(st.one_of(st.sampled_from(nearby), between), min_size=2, max_size=12))
    for at in times:
        fresh = _outcome(
            lambda at=at: verify_collateral(request, anchors, at, pck_issuer=pki.pck.issuer, fetched=fetched)
        )
        kept = _outcome(lambda at=at: _memo_verify(memo, request, anchors, at, pki.pck.issuer, fetched))
        assert kept == fresh, at


def test_the_tdx_verifier_refuses_expired_collateral_right_after_a_success(real: Any, vectors_dir: Path) -> None:
    from verifier.tee.base import VerifyContext
    from verifier.tee.tdx.evidence import TdxVerifier

    _, anchors, _ = real
    folder = vectors_dir / VECTOR["dir"]
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.name != "evidence.bin"}
    evidence = (folder / "evidence.bin").read_bytes()
    end = _time(VECTOR["what"]["collateral_validity_window"][1])
    verifier = TdxVerifier()
    ok = verifier.verify(evidence, VerifyContext(at=_time(VECTOR["verify_at"]), anchors=anchors, collateral=files))
    assert ok.failure is None and len(verifier.collateral_memo) == 1
    late = verifier.verify(evidence, VerifyContext(at=end, anchors=anchors, collateral=files))
    assert late.failure is not None and late.failure.code == "TDX_COLLATERAL_EXPIRED"
