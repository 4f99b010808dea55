"""verifier.trust.ocsp.check_chain against the fake NVIDIA responder (tests/fakes/nvidia_ocsp.py): every rule of
RFC 6960 response verification, each pinned by a response that breaks it and is therefore not used."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp

from tests.fakes.nvidia_ocsp import (
    AT,
    DAY,
    HOUR,
    Behaviour,
    DirectFetcher,
    FakeNvidiaPki,
    FakeOcspResponder,
    good_responses,
    issue,
    nvidia_pki_fixture,
    ocsp_response,
    unsuccessful,
)
from verifier.trust.ocsp import MAX_CHAIN, MAX_RESPONSES, OcspCache, check_chain
from verifier.trust.ocsp_response import CLOCK_SKEW, MAX_RESPONSE_BYTES

nvidia_pki = nvidia_pki_fixture


def one_bad(pki: FakeNvidiaPki, bad: bytes, index: int = 2) -> list[bytes]:
    """Good responses for the device chain's checked certificates, `bad` instead of chain[index]'s."""
    return [bad if i == index else r for i, r in zip(range(1, 4), good_responses(pki), strict=True)]


def test_supplied_good_responses_give_good(nvidia_pki: FakeNvidiaPki) -> None:
    outcome = check_chain(nvidia_pki.chain, at=AT, responses=good_responses(nvidia_pki))
    assert outcome.status == "good", outcome.detail
    assert [c.subject for c in outcome.certificates] == [
        "GH100 A01 GSP BROM",
        "NVIDIA GH100 Provisioner ICA 1",
        "NVIDIA GH100 Identity",
    ]  # not the FMC LF leaf, not the root
    assert {c.source for c in outcome.certificates} == {"request"}
    assert outcome.next_update == AT + DAY


def test_skip_leaf_false_checks_the_leaf_too(nvidia_pki: FakeNvidiaPki) -> None:
    outcome = check_chain(nvidia_pki.chain, at=AT, responses=good_responses(nvidia_pki), skip_leaf=False)
    assert outcome.status == "unavailable" and outcome.detail.startswith("GH100 A01 FSP FMC LF: no OCSP response")
    all_four = good_responses(nvidia_pki, range(0, 4))
    assert check_chain(nvidia_pki.chain, at=AT, responses=all_four, skip_leaf=False).status == "good"


@pytest.mark.parametrize("reason", [x509.ReasonFlags.key_compromise, x509.ReasonFlags.certificate_hold, None], ids=str)
def test_revoked_is_revoked_certificate_hold_included(nvidia_pki: FakeNvidiaPki, reason: x509.ReasonFlags) -> None:
    revoked = ocsp_response(nvidia_pki.chain[2], nvidia_pki.issued[3], status="revoked", reason=reason)
    outcome = check_chain(nvidia_pki.chain, at=AT, responses=one_bad(nvidia_pki, revoked))
    assert outcome.status == "revoked"
    name = reason.name if reason is not None else "unspecified"
    assert outcome.detail.startswith(f"NVIDIA GH100 Provisioner ICA 1: revoked ({name})")


def test_unknown_is_unavailable(nvidia_pki: FakeNvidiaPki) -> None:
    unknown = ocsp_response(nvidia_pki.chain[2], nvidia_pki.issued[3], status="unknown")
    outcome = check_chain(nvidia_pki.chain, at=AT, responses=one_bad(nvidia_pki, unknown))
    assert outcome.status == "unavailable" and "status unknown" in outcome.detail


def test_a_response_for_another_certificate_is_not_used(nvidia_pki: FakeNvidiaPki) -> None:
    other = ocsp_response(nvidia_pki.chain[1], nvidia_pki.issued[2])  # BROM's response, twice
    outcome = check_chain(nvidia_pki.chain, at=AT, responses=one_bad(nvidia_pki, other))
    assert outcome.status == "unavailable"
    assert outcome.detail == "NVIDIA GH100 Provisioner ICA 1: no OCSP response"
    # same serial, another issuer: the CertID's issuer hashes differ
    stranger_ca = issue("NVIDIA GH100 Identity", issuer=None, ca=True)
    forged = ocsp_response(nvidia_pki.chain[2], stranger_ca)
    assert check_chain(nvidia_pki.chain, at=AT, responses=one_bad(nvidia_pki, forged)).status == "unavailable"


def test_the_window_thisupdate_at_nextupdate(nvidia_pki: FakeNvidiaPki) -> None:
    responses = good_responses(nvidia_pki, next_update=AT + HOUR)
    assert check_chain(nvidia_pki.chain, at=AT + HOUR - dt.timedelta(seconds=1), responses=responses).status == "good"
    for at in (AT + HOUR, AT + DAY):  # at nextUpdate and past it: not used
        outcome = check_chain(nvidia_pki.chain, at=at, responses=responses)
        assert outcome.status == "unavailable" and "past its nextUpdate" in outcome.detail
    future = good_responses(nvidia_pki, this_update=AT + CLOCK_SKEW + dt.timedelta(seconds=1))
    outcome = check_chain(nvidia_pki.chain, at=AT, responses=future)
    assert outcome.status == "unavailable" and "after the appraisal time" in outcome.detail
    within_skew = good_responses(nvidia_pki, this_update=AT + CLOCK_SKEW)
    assert check_chain(nvidia_pki.chain, at=AT, responses=within_skew).status == "good"


def test_a_supplied_response_without_nextupdate_is_not_used(nvidia_pki: FakeNvidiaPki) -> None:
    outcome = check_chain(nvidia_pki.chain, at=AT, responses=good_responses(nvidia_pki, next_update=None))
    assert outcome.status == "unavailable" and "no nextUpdate" in outcome.detail


def test_a_naive_appraisal_time_is_utc(nvidia_pki: FakeNvidiaPki) -> None:
    naive = AT.replace(tzinfo=None)
    assert check_chain(nvidia_pki.chain, at=naive, responses=good_responses(nvidia_pki)).status == "good"


@pytest.mark.parametrize(
    ("signer", "message"),
    [
        ("stranger", "is not issued by NVIDIA GH100 Identity"),  # a self-signed responder, embedded and named
        ("wrong-key", "signature does not verify"),
        ("delegate-no-eku", "lacks id-kp-OCSPSigning"),
        ("delegate-of-another-ca", "is not issued by NVIDIA GH100 Identity"),
        ("delegate-expired", "not valid at the appraisal time"),
        ("delegate-not-embedded", "no certificate matches the ResponderID"),
    ],
)
def test_a_response_signed_by_anyone_but_the_ca_or_its_delegate_is_not_used(
    nvidia_pki: FakeNvidiaPki, signer: str, message: str
) -> None:
    cert, issuer = nvidia_pki.chain[2], nvidia_pki.issued[3]  # the ICA, issued by GH100 Identity
    stranger = nvidia_pki.stranger()
    builds: dict[str, Callable[[], bytes]] = {
        "stranger": lambda: ocsp_response(cert, issuer, responder=stranger, embed=[stranger.cert, issuer.cert]),
        "wrong-key": lambda: ocsp_response(cert, issuer, signing_key=stranger.key),
        "delegate-no-eku": lambda: ocsp_response(cert, issuer, responder=nvidia_pki.delegate(3, eku=False)),
        "delegate-of-another-ca": lambda: ocsp_response(cert, issuer, responder=nvidia_pki.delegate(4)),
        "delegate-expired": lambda: ocsp_response(cert, issuer, responder=nvidia_pki.delegate(3, not_after=AT - DAY)),
        "delegate-not-embedded": lambda: ocsp_response(cert, issuer, responder=nvidia_pki.delegate(3), embed=[]),
    }
    outcome = check_chain(nvidia_pki.chain, at=AT, responses=one_bad(nvidia_pki, builds[signer]()))
    assert outcome.status == "unavailable"
    assert outcome.detail.startswith("NVIDIA GH100 Provisioner ICA 1: supplied response refused")
    assert message in outcome.detail, outcome.detail


def test_stranger_named_by_the_issuers_name_does_not_verify(nvidia_pki: FakeNvidiaPki) -> None:
    """A stranger certificate claiming the CA's subject: the ResponderID names the CA, its key must sign."""
    cert, issuer = nvidia_pki.chain[2], nvidia_pki.issued[3]
    impostor = issue("NVIDIA GH100 Identity", issuer=None, ca=True)
    forged = ocsp_response(cert, issuer, responder=impostor, embed=[impostor.cert])
    outcome = check_chain(nvidia_pki.chain, at=AT, responses=one_bad(nvidia_pki, forged))
    assert outcome.status == "unavailable" and "is not signed by NVIDIA GH100 Identity" in outcome.detail


@pytest.mark.parametrize("by_hash", [False, True], ids=["by-name", "by-key-hash"])
def test_a_delegated_responder_of_the_issuer_is_accepted(nvidia_pki: FakeNvidiaPki, by_hash: bool) -> None:
    delegated = ocsp_response(
        nvidia_pki.chain[2], nvidia_pki.issued[3], responder=nvidia_pki.delegate(3), by_hash=by_hash
    )
    issuer_by_hash = ocsp_response(nvidia_pki.chain[3], nvidia_pki.issued[4], by_hash=by_hash)
    responses = [*one_bad(nvidia_pki, delegated)[:2], issuer_by_hash]
    assert check_chain(nvidia_pki.chain, at=AT, responses=responses).status == "good"


def test_sha1_and_sha256_certids_and_sha256_signatures_are_read(nvidia_pki: FakeNvidiaPki) -> None:
    responses = [
        ocsp_response(nvidia_pki.chain[1], nvidia_pki.issued[2], cert_id_hash=hashes.SHA1()),
        ocsp_response(nvidia_pki.chain[2], nvidia_pki.issued[3], cert_id_hash=hashes.SHA256()),
        ocsp_response(nvidia_pki.chain[3], nvidia_pki.issued[4], signature_hash=hashes.SHA256()),
    ]
    assert check_chain(nvidia_pki.chain, at=AT, responses=responses).status == "good"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER), "the responder answered TRY_LATER"),
        (unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED), "the responder answered UNAUTHORIZED"),
        (b"\x30\x03\x0a\x01", "does not parse"),
        (b"\x00" * (MAX_RESPONSE_BYTES + 1), f"exceeds {MAX_RESPONSE_BYTES}"),
    ],
    ids=["tryLater", "unauthorized", "truncated", "oversize"],
)
def test_unsuccessful_or_malformed_responses_are_unavailable(
    nvidia_pki: FakeNvidiaPki, bad: bytes, message: str
) -> None:
    outcome = check_chain(nvidia_pki.chain, at=AT, responses=one_bad(nvidia_pki, bad))
    assert outcome.status == "unavailable" and message in outcome.detail, outcome.detail
    assert outcome.detail.startswith("NVIDIA GH100 Provisioner ICA 1")


def test_bounds_on_chain_length_and_response_count(nvidia_pki: FakeNvidiaPki) -> None:
    long_chain = [nvidia_pki.chain[0]] * (MAX_CHAIN + 1)
    assert check_chain(long_chain, at=AT).status == "unavailable"
    many = good_responses(nvidia_pki) * (MAX_RESPONSES // 3 + 1)
    outcome = check_chain(nvidia_pki.chain, at=AT, responses=many)
    assert outcome.status == "unavailable" and f"exceed {MAX_RESPONSES}" in outcome.detail


def test_a_chain_out_of_order_is_unavailable(nvidia_pki: FakeNvidiaPki) -> None:
    shuffled = [nvidia_pki.chain[0], nvidia_pki.chain[2], nvidia_pki.chain[1], *nvidia_pki.chain[3:]]
    outcome = check_chain(shuffled, at=AT, responses=good_responses(nvidia_pki))
    assert outcome.status == "unavailable" and "not issued by the next certificate" in outcome.detail


def test_nothing_to_check_is_good(nvidia_pki: FakeNvidiaPki) -> None:
    assert check_chain(nvidia_pki.chain[-1:], at=AT, skip_leaf=False).status == "good"
    assert check_chain([nvidia_pki.chain[3], nvidia_pki.chain[4]], at=AT).status == "good"


# --- fetched from the responder: SHA-384 CertID, a nonce echoed --------------------------------------------------


def test_fetch_asks_with_a_sha384_certid_and_a_critical_32_byte_nonce(nvidia_pki: FakeNvidiaPki) -> None:
    responder = FakeOcspResponder(nvidia_pki)
    fetcher = DirectFetcher(responder)
    outcome = check_chain(nvidia_pki.chain, at=AT, fetch=fetcher)
    assert outcome.status == "good", outcome.detail
    assert {c.source for c in outcome.certificates} == {"responder"}
    assert [r.serial_number for r in responder.requests] == [c.serial_number for c in nvidia_pki.chain[1:4]]
    assert all(isinstance(r.hash_algorithm, hashes.SHA384) for r in responder.requests)
    assert all(n is not None and n.critical and len(n.value.nonce) == 32 for n in responder.nonces)
    assert len({n.value.nonce for n in responder.nonces if n is not None}) == 3  # a fresh nonce per request


@pytest.mark.parametrize(
    ("behaviour", "message", "rejected"),
    [
        (Behaviour(nonce="wrong"), "nonce is not the request's", "OCSP_RESPONSE_UNAUTHORIZED"),
        (Behaviour(nonce="none"), "does not echo the request's nonce", "OCSP_RESPONSE_UNAUTHORIZED"),
        (Behaviour(signer="stranger"), "is not issued by", "OCSP_RESPONSE_UNAUTHORIZED"),
        (Behaviour(signer="wrong-key"), "signature does not verify", "OCSP_RESPONSE_UNAUTHORIZED"),
        (Behaviour(next_update=AT - HOUR, this_update=AT - DAY), "past its nextUpdate", None),
        (Behaviour(status="unknown"), "status unknown", None),
        (Behaviour(raw=b"junk"), "does not parse", "OCSP_RESPONSE_MALFORMED"),
    ],
    ids=["wrong-nonce", "no-nonce", "stranger", "wrong-key", "expired", "unknown", "junk"],
)
def test_a_fetched_response_that_fails_is_unavailable_and_handed_back(
    nvidia_pki: FakeNvidiaPki, behaviour: Behaviour, message: str, rejected: str | None
) -> None:
    responder = FakeOcspResponder(nvidia_pki, script={nvidia_pki.chain[2].serial_number: behaviour})
    fetcher = DirectFetcher(responder)
    outcome = check_chain(nvidia_pki.chain, at=AT, fetch=fetcher)
    assert outcome.status == "unavailable" and message in outcome.detail, outcome.detail
    assert outcome.detail.startswith("NVIDIA GH100 Provisioner ICA 1")
    assert fetcher.rejected == ([rejected] if rejected else [])  # a window problem depends on `at`: kept


def test_a_fetched_response_for_another_certificate_is_not_used(nvidia_pki: FakeNvidiaPki) -> None:
    other = ocsp_response(nvidia_pki.chain[1], nvidia_pki.issued[2])
    responder = FakeOcspResponder(nvidia_pki, script={nvidia_pki.chain[2].serial_number: Behaviour(raw=other)})
    fetcher = DirectFetcher(responder)
    outcome = check_chain(nvidia_pki.chain, at=AT, fetch=fetcher)
    assert outcome.status == "unavailable" and "no SingleResponse for serial" in outcome.detail
    assert fetcher.rejected == ["OCSP_RESPONSE_OTHER_CERTIFICATE"]


def test_fetched_revoked_stops_the_walk(nvidia_pki: FakeNvidiaPki) -> None:
    hold = Behaviour(status="revoked", reason=x509.ReasonFlags.certificate_hold)
    responder = FakeOcspResponder(nvidia_pki, script={nvidia_pki.chain[1].serial_number: hold})
    fetcher = DirectFetcher(responder)
    outcome = check_chain(nvidia_pki.chain, at=AT, fetch=fetcher)
    assert outcome.status == "revoked" and "GH100 A01 GSP BROM: revoked (certificate_hold)" in outcome.detail
    assert len(fetcher.asked) == 1


def test_a_fresh_answer_without_nextupdate_is_used_but_never_cached(nvidia_pki: FakeNvidiaPki) -> None:
    responder = FakeOcspResponder(
        nvidia_pki, script={c.serial_number: Behaviour(next_update=None) for c in nvidia_pki.chain}
    )
    cache = OcspCache()
    outcome = check_chain(nvidia_pki.chain, at=AT, fetch=DirectFetcher(responder), cache=cache)
    assert outcome.status == "good" and outcome.next_update is None
    assert len(cache) == 0


def test_an_unavailable_fetcher_says_why(nvidia_pki: FakeNvidiaPki) -> None:
    fetcher = DirectFetcher(FakeOcspResponder(nvidia_pki), unavailable=True)
    outcome = check_chain(nvidia_pki.chain, at=AT, fetch=fetcher)
    assert outcome.status == "unavailable"
    assert outcome.detail == (  # one problem, its certificates named together
        "GH100 A01 GSP BROM, NVIDIA GH100 Provisioner ICA 1, NVIDIA GH100 Identity: "
        "no OCSP response (COLLATERAL_OFFLINE: offline)"
    )
    assert len(outcome.certificates) == 3 and len(fetcher.asked) == 3


def test_supplied_responses_spare_the_fetch(nvidia_pki: FakeNvidiaPki) -> None:
    fetcher = DirectFetcher(FakeOcspResponder(nvidia_pki))
    assert check_chain(nvidia_pki.chain, at=AT, responses=good_responses(nvidia_pki), fetch=fetcher).status == "good"
    assert fetcher.asked == []
    broken = one_bad(nvidia_pki, b"junk")  # the one that does not parse is fetched instead
    assert check_chain(nvidia_pki.chain, at=AT, responses=broken, fetch=fetcher).status == "good"
    assert [c.serial for c in fetcher.asked] == [nvidia_pki.chain[2].serial_number]


def test_both_problems_are_said_when_the_fetch_fails_too(nvidia_pki: FakeNvidiaPki) -> None:
    fetcher = DirectFetcher(FakeOcspResponder(nvidia_pki), unavailable=True)
    forged = ocsp_response(nvidia_pki.chain[2], nvidia_pki.issued[3], responder=nvidia_pki.delegate(3, eku=False))
    outcome = check_chain(nvidia_pki.chain, at=AT, responses=one_bad(nvidia_pki, forged), fetch=fetcher)
    assert outcome.status == "unavailable"
    assert outcome.detail == (
        "NVIDIA GH100 Provisioner ICA 1: supplied response refused: responder certificate NVIDIA OCSP Responder 3 "
        "lacks id-kp-OCSPSigning; no OCSP response (COLLATERAL_OFFLINE: offline)"
    )
