"""Issue 16: tests killing the mutation run's survivors in the Intel DCAP collateral checks
(verifier/tee/tdx/collateral.py, collateral_checks.py).

- Which copy is verified: when the request and the verifier's source both hold an item, the request's copy is
  skipped only when it is byte-identical to the source's (document, signature AND issuer chain); a request copy
  that differs in any one of them, or whose other items happen to be identical, must verify on its own.
- What the source could not deliver: its own error for a lacking item (an unavailable one first), else
  COLLATERAL_MISSING.
- The appraisal time is an instant: an aware `at` in another zone is converted, not relabelled as UTC.
- The Intel SGX TCB Signing certificate and the PCK CA of the PCK CRL chain are checked at `at` (RFC 5280:
  notBefore <= at <= notAfter); a TCB signing key that is not ECDSA P-256 never verifies collateral; a verified
  signature is remembered in `links`.

Collateral is minted with the fake Intel PKI (tests/fakes/intel_pki.py). Window rule for the items themselves:
thisUpdate/issueDate <= at < nextUpdate.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding

from tests.fakes.intel_pki import FakeIntelPki
from verifier.collateral.base import CollateralUnavailableError
from verifier.errors import EvidenceError, VerifierError
from verifier.tee.tdx.collateral import NOTHING_FETCHED, Fetched, VerifiedCollateral, verify_collateral
from verifier.tee.tdx.collateral_checks import check_pck_crl, check_qe_identity, check_tcb_info, tcb_signer
from verifier.tee.tdx.collateral_documents import collateral_from_files
from verifier.tee.tdx.freshness import ITEMS, PCK_CRL, QE_IDENTITY, TCB_INFO
from verifier.trust.chain import VerifiedLinks

DAY, HOUR = dt.timedelta(days=1), dt.timedelta(hours=1)
SECOND, MICROSECOND = dt.timedelta(seconds=1), dt.timedelta(microseconds=1)
TCB_SIGNING, ROOT_CA = "Intel SGX TCB Signing", "Intel SGX Root CA"


@pytest.fixture(scope="module")
def pki() -> FakeIntelPki:
    return FakeIntelPki()


@pytest.fixture(scope="module")
def files(pki: FakeIntelPki) -> dict[str, bytes]:
    """One set of genuine collateral: every test that needs "the same bytes" derives from it (the fake's
    signatures are randomised, so two calls of collateral_files() never give identical items)."""
    return pki.collateral_files()


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(Encoding.PEM) for c in certs)


def _time(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stray() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _verify(
    pki: FakeIntelPki,
    request: dict[str, bytes],
    source: dict[str, bytes] | None = None,
    at: dt.datetime | None = None,
) -> VerifiedCollateral:
    fetched = NOTHING_FETCHED
    if source is not None:
        fetched = Fetched(collateral_from_files(source), {item: "cache" for item in ITEMS})
    return verify_collateral(
        collateral_from_files(request), pki.anchors(), pki.now if at is None else at, pck_issuer=pki.pck.issuer,
        fetched=fetched,
    )  # fmt: skip


def _refused(pki: FakeIntelPki, request: dict[str, bytes], source: dict[str, bytes] | None = None) -> EvidenceError:
    with pytest.raises(EvidenceError) as info:
        _verify(pki, request, source)
    return info.value


def _signer_cert(
    pki: FakeIntelPki, key: Any, validity: tuple[dt.datetime, dt.datetime], issuer_key: Any = None
) -> x509.Certificate:
    """An "Intel SGX TCB Signing" certificate for `key` with the given validity, issued by the pinned root (or
    signed by `issuer_key` under the root's name)."""
    return pki._cert(TCB_SIGNING, key, ROOT_CA, issuer_key or pki.root_key, validity)


def _pck_ca_cert(pki: FakeIntelPki, validity: tuple[dt.datetime, dt.datetime]) -> x509.Certificate:
    """The PCK CA re-issued by the pinned root for the same key (so the genuine PCK CRL verifies under it)."""
    return pki._cert(pki.ca_name, pki.pck_ca_key, ROOT_CA, pki.root_key, validity, ca=0)


def _with_signature_of(doc: bytes, other: bytes) -> bytes:
    """`other`'s signed member with the signature of `doc` (a genuine signature over other bytes)."""
    member, body = next(iter(json.loads(other).items()))
    signature: str = json.loads(doc)["signature"]
    head = b'{"' + str(member).encode() + b'":' + json.dumps(body, separators=(",", ":")).encode()
    return head + b',"signature":"' + signature.encode() + b'"}'


# --- which copy is verified (collateral._same) --------------------------------------------------------------------


def _bad_copy(pki: FakeIntelPki, item: str) -> tuple[dict[str, bytes], str]:
    """A request copy of `item` that does not verify on its own, and its code."""
    if item == TCB_INFO:
        return {"tcb_info.json": pki.sign_json("tcbInfo", pki.tcb_info(), _stray())}, "TDX_COLLATERAL_SIGNATURE_INVALID"
    if item == QE_IDENTITY:  # nextUpdate == at: already outside the window
        expired = pki.qe_identity(issueDate=_time(pki.now - 30 * DAY), nextUpdate=_time(pki.now))
        return {"qe_identity.json": pki.sign_json("enclaveIdentity", expired)}, "TDX_COLLATERAL_EXPIRED"
    if item == PCK_CRL:
        return {"pck_crl.der": pki.pck_crl(signer_key=_stray(), number=2)}, "CRL_SIGNATURE_INVALID"
    # thisUpdate one second after at: not yet inside the window
    return {"root_ca_crl.der": pki.root_ca_crl(this_update=pki.now + SECOND, number=2)}, "TDX_COLLATERAL_EXPIRED"


@pytest.mark.parametrize("item", ITEMS)
def test_a_bad_request_copy_is_verified_though_every_other_item_equals_the_sources(
    pki: FakeIntelPki, files: dict[str, bytes], item: str
) -> None:
    """The source's collateral verifies; the request's differs from it in `item` only, and that copy is bad: the
    request's copy is verified (not skipped as if identical, whatever item is compared) and refused."""
    _verify(pki, files, files)
    bad, code = _bad_copy(pki, item)
    request = files | bad
    assert _refused(pki, request).code == code  # on its own
    assert _refused(pki, request, files).code == code  # next to a good source copy


def test_an_identical_request_copy_is_served_by_the_sources_verification(
    pki: FakeIntelPki, files: dict[str, bytes]
) -> None:
    verified = _verify(pki, files, files)
    assert [facts.source for facts in verified.items] == ["cache"] * 4
    assert verified.superseded == ()


def _differing_part(pki: FakeIntelPki, files: dict[str, bytes], part: str) -> tuple[dict[str, bytes], str]:
    """The source's files with one part of one item changed so that only that part differs from the source's and
    the request's copy no longer verifies: the document (keeping the source's signature) or the issuer chain (the
    same key and name in a certificate that expired one second before `at`)."""
    expired = (pki.now - 2 * 365 * DAY, pki.now - SECOND)
    signer = _pem(_signer_cert(pki, pki.tcb_key, expired), pki.root)
    if part == "tcb_info document":
        other = pki.sign_json("tcbInfo", pki.tcb_info(tcbEvaluationDataNumber=18))
        return {"tcb_info.json": _with_signature_of(files["tcb_info.json"], other)}, "TDX_COLLATERAL_SIGNATURE_INVALID"
    if part == "tcb_info issuer chain":
        return {"tcb_info_issuer_chain.pem": signer}, "CERT_EXPIRED"
    if part == "qe_identity document":
        other = pki.sign_json("enclaveIdentity", pki.qe_identity(tcbEvaluationDataNumber=18))
        doc = _with_signature_of(files["qe_identity.json"], other)
        return {"qe_identity.json": doc}, "TDX_COLLATERAL_SIGNATURE_INVALID"
    if part == "qe_identity issuer chain":
        return {"qe_identity_issuer_chain.pem": signer}, "CERT_EXPIRED"
    assert part == "pck_crl issuer chain"
    return {"pck_crl_issuer_chain.pem": _pem(_pck_ca_cert(pki, expired), pki.root)}, "CERT_EXPIRED"


PARTS = ["tcb_info document", "tcb_info issuer chain", "qe_identity document", "qe_identity issuer chain",
         "pck_crl issuer chain"]  # fmt: skip


@pytest.mark.parametrize("part", PARTS)
def test_a_request_copy_differing_in_one_part_is_verified(
    pki: FakeIntelPki, files: dict[str, bytes], part: str
) -> None:
    changed, code = _differing_part(pki, files, part)
    request = files | changed
    assert _refused(pki, request).code == code
    assert _refused(pki, request, files).code == code


# --- what the source could not deliver (collateral._available) ----------------------------------------------------


def _lacking(files: dict[str, bytes], *names: str) -> dict[str, bytes]:
    return {name: data for name, data in files.items() if name not in names}


def _fetched_errors(errors: dict[str, VerifierError]) -> Fetched:
    return Fetched(NOTHING_FETCHED.collateral, {}, errors)


def _raised(pki: FakeIntelPki, request: dict[str, bytes], fetched: Fetched) -> BaseException:
    with pytest.raises(VerifierError) as info:
        verify_collateral(collateral_from_files(request), pki.anchors(), pki.now, pck_issuer=pki.pck.issuer,
                          fetched=fetched)  # fmt: skip
    return info.value


def test_a_lacking_items_evidence_error_from_the_source_is_raised(pki: FakeIntelPki, files: dict[str, bytes]) -> None:
    """The source's copy of the TCB info did not parse (an EvidenceError, not "unavailable"): that is the reason."""
    malformed = EvidenceError("TDX_COLLATERAL_MALFORMED", "served tcb info is not JSON")
    raised = _raised(pki, _lacking(files, "tcb_info.json"), _fetched_errors({TCB_INFO: malformed}))
    assert raised is malformed


def test_an_unavailable_error_wins_over_other_errors_of_lacking_items(
    pki: FakeIntelPki, files: dict[str, bytes]
) -> None:
    malformed = EvidenceError("TDX_COLLATERAL_MALFORMED", "served tcb info is not JSON")
    offline = CollateralUnavailableError("COLLATERAL_OFFLINE", "no network")
    request = _lacking(files, "tcb_info.json", "qe_identity.json")
    raised = _raised(pki, request, _fetched_errors({TCB_INFO: malformed, QE_IDENTITY: offline}))
    assert raised is offline


def test_without_errors_a_lacking_item_is_collateral_missing(pki: FakeIntelPki, files: dict[str, bytes]) -> None:
    raised = _raised(pki, _lacking(files, "pck_crl_issuer_chain.pem"), NOTHING_FETCHED)
    assert isinstance(raised, CollateralUnavailableError) and raised.code == "COLLATERAL_MISSING"
    assert "pck_crl_issuer_chain.pem" in raised.message


# --- the appraisal time is an instant (verify_collateral) ---------------------------------------------------------


@pytest.mark.parametrize("hours", [5, -5, 0])
def test_an_aware_at_in_another_zone_is_the_same_instant(
    pki: FakeIntelPki, files: dict[str, bytes], hours: int
) -> None:
    """Every item runs from now - 1 day to now + 29 days: an aware `at` at either edge, in any zone, is inside; the
    first instant after (nextUpdate itself) and the last before (thisUpdate - 1 µs) are outside."""
    zone = dt.timezone(dt.timedelta(hours=hours))
    start, end = pki.now - DAY, pki.now + 29 * DAY
    for at in (start, end - MICROSECOND):
        assert _verify(pki, files, at=at.astimezone(zone)).next_update == end
    for at in (start - MICROSECOND, end):
        with pytest.raises(EvidenceError) as info:
            _verify(pki, files, at=at.astimezone(zone))
        assert info.value.code == "TDX_COLLATERAL_EXPIRED"


def test_a_naive_at_is_utc(pki: FakeIntelPki, files: dict[str, bytes]) -> None:
    end = pki.now + 29 * DAY
    assert _verify(pki, files, at=(end - MICROSECOND).replace(tzinfo=None)).next_update == end
    with pytest.raises(EvidenceError) as info:
        _verify(pki, files, at=end.replace(tzinfo=None))
    assert info.value.code == "TDX_COLLATERAL_EXPIRED"


# --- the TCB Signing certificate at `at` (collateral_checks.tcb_signer) -------------------------------------------


@pytest.fixture(scope="module")
def window(pki: FakeIntelPki) -> tuple[dt.datetime, dt.datetime]:
    return pki.now - HOUR, pki.now + HOUR


@pytest.mark.parametrize(
    ("edge", "code"),
    [("notBefore", None), ("notBefore - 1µs", "CERT_NOT_YET_VALID"), ("notAfter", None),
     ("notAfter + 1µs", "CERT_EXPIRED")],
)  # fmt: skip
def test_the_tcb_signer_is_valid_from_not_before_to_not_after(
    pki: FakeIntelPki, window: tuple[dt.datetime, dt.datetime], edge: str, code: str | None
) -> None:
    signer = _signer_cert(pki, pki.tcb_key, window)
    at = {"notBefore": window[0], "notBefore - 1µs": window[0] - MICROSECOND, "notAfter": window[1],
          "notAfter + 1µs": window[1] + MICROSECOND}[edge]  # fmt: skip
    if code is None:
        assert tcb_signer((signer, pki.root), pki.anchors(), at, "TCB info") == signer
        return
    with pytest.raises(EvidenceError) as info:
        tcb_signer((signer, pki.root), pki.anchors(), at, "TCB info")
    assert info.value.code == code


def test_a_tcb_signer_not_signed_by_the_pinned_root_is_refused(pki: FakeIntelPki) -> None:
    """Name and shape of the TCB Signing certificate, issuer name of the root, signed by another key."""
    forged = _signer_cert(pki, pki.tcb_key, (pki.now - DAY, pki.now + DAY), issuer_key=_stray())
    with pytest.raises(EvidenceError) as info:
        tcb_signer((forged, pki.root), pki.anchors(), pki.now, "TCB info")
    assert info.value.code == "CHAIN_SIGNATURE_INVALID"


@pytest.mark.parametrize("item", ["TCB info", "QE identity"])
def test_collateral_signed_under_an_expired_tcb_signer_is_refused(
    pki: FakeIntelPki, files: dict[str, bytes], item: str
) -> None:
    """The genuine documents, the genuine signing key, but its certificate expired one second before `at`."""
    name = "tcb_info_issuer_chain.pem" if item == "TCB info" else "qe_identity_issuer_chain.pem"
    chain = _pem(_signer_cert(pki, pki.tcb_key, (pki.now - DAY, pki.now - SECOND)), pki.root)
    assert _refused(pki, files | {name: chain}).code == "CERT_EXPIRED"


# --- the signature key must be ECDSA P-256 (collateral_checks._check_signature) -----------------------------------


@pytest.mark.parametrize("curve", ["secp256k1", "rsa-2048"])
@pytest.mark.parametrize("item", ["TCB info", "QE identity"])
def test_a_tcb_signer_key_that_is_not_p256_never_verifies(
    pki: FakeIntelPki, files: dict[str, bytes], curve: str, item: str
) -> None:
    """A root-issued TCB Signing certificate for a secp256k1 key (its signatures fit the 64-byte r||s and verify
    with that key) or an RSA key: the collateral it signs is refused as TDX_COLLATERAL_SIGNATURE_INVALID."""
    key: Any = (
        ec.generate_private_key(ec.SECP256K1()) if curve == "secp256k1" else rsa.generate_private_key(65537, 2048)
    )
    chain = _pem(_signer_cert(pki, key, (pki.now - DAY, pki.now + DAY)), pki.root)
    if item == "TCB info":
        doc = pki.sign_json("tcbInfo", pki.tcb_info(), key) if curve == "secp256k1" else files["tcb_info.json"]
        col = collateral_from_files(files | {"tcb_info.json": doc, "tcb_info_issuer_chain.pem": chain})
        check: Any = check_tcb_info
    else:
        doc = (
            pki.sign_json("enclaveIdentity", pki.qe_identity(), key)
            if curve == "secp256k1"
            else files["qe_identity.json"]
        )
        col = collateral_from_files(files | {"qe_identity.json": doc, "qe_identity_issuer_chain.pem": chain})
        check = check_qe_identity
    with pytest.raises(EvidenceError) as info:
        check(col, pki.anchors(), pki.now, "request")
    assert info.value.code == "TDX_COLLATERAL_SIGNATURE_INVALID" and item in info.value.message


# --- a verified signature is remembered (collateral_checks._check_signature) --------------------------------------


@pytest.mark.parametrize("item", ["TCB info", "QE identity"])
def test_a_verified_collateral_signature_is_remembered_in_links(
    pki: FakeIntelPki, files: dict[str, bytes], item: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `links`, the signature over the same bytes by the same signer is checked once; without, every time."""
    checks: list[bytes] = []
    real = encode_dss_signature

    def counting(r: int, s: int) -> bytes:
        checks.append(b"")
        return real(r, s)

    monkeypatch.setattr("verifier.tee.tdx.collateral_checks.encode_dss_signature", counting)
    check: Any = check_tcb_info if item == "TCB info" else check_qe_identity
    col = collateral_from_files(files)
    links = VerifiedLinks()
    for _ in range(3):
        check(col, pki.anchors(), pki.now, "request", links)
    assert len(checks) == 1
    check(col, pki.anchors(), pki.now, "request", None)
    assert len(checks) == 2


# --- the PCK CA of the PCK CRL chain at `at` (collateral_checks.check_pck_crl) ------------------------------------


@pytest.mark.parametrize(
    ("edge", "code"),
    [("notBefore", None), ("notBefore - 1µs", "CERT_NOT_YET_VALID"), ("notAfter", None),
     ("notAfter + 1µs", "CERT_EXPIRED")],
)  # fmt: skip
def test_the_pck_crl_issuer_is_valid_from_not_before_to_not_after(
    pki: FakeIntelPki, files: dict[str, bytes], window: tuple[dt.datetime, dt.datetime], edge: str, code: str | None
) -> None:
    """The genuine PCK CRL (valid now - 1 day .. now + 29 days) under its CA re-issued for now -/+ 1 hour."""
    chain = _pem(_pck_ca_cert(pki, window), pki.root)
    col = collateral_from_files(files | {"pck_crl_issuer_chain.pem": chain})
    at = {"notBefore": window[0], "notBefore - 1µs": window[0] - MICROSECOND, "notAfter": window[1],
          "notAfter + 1µs": window[1] + MICROSECOND}[edge]  # fmt: skip
    if code is None:
        crl, root = check_pck_crl(col, pki.anchors(), at, "request", pck_issuer=pki.pck.issuer).value
        assert crl.issuer == pki.pck.issuer and root == pki.root
        return
    with pytest.raises(EvidenceError) as info:
        check_pck_crl(col, pki.anchors(), at, "request", pck_issuer=pki.pck.issuer)
    assert info.value.code == code
