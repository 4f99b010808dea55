"""SEV-SNP through the orchestrator on a real database: fake AMD PKI evidence, request collateral, a collateral
source standing in for KDS, CRLs, policies and REPORT_DATA binding."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.fakes.amd_pki import FakeAmdPki
from tests.service_helpers import SettableClock
from verifier.appraisal.model import Tier
from verifier.appraisal.policy import Policy, PolicySet, SnpRules
from verifier.collateral.base import CollateralItem, CollateralKey, CollateralUnavailableError
from verifier.errors import UnavailableError
from verifier.results.keys import ephemeral_key
from verifier.results.signer import ResultSigner
from verifier.service import AppraisalRequest, VerifierService
from verifier.storage.challenges import SqlChallengeStore
from verifier.storage.engine import Database
from verifier.storage.reference_values import SqlReferenceValueStore
from verifier.tee.sevsnp.tcb import Product

MEASUREMENT = hashlib.sha384(b"measurement").digest()


@pytest.fixture(scope="module")
def pki() -> FakeAmdPki:
    return FakeAmdPki(Product.GENOA)


class DictSource:
    """A collateral source serving fixed items (stands in for AMD KDS + cache) and counting fetches."""

    def __init__(self, items: dict[str, bytes]) -> None:
        self.items = items
        self.fetched: list[str] = []

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        self.fetched.append(key.kind)
        if key.kind not in self.items:
            raise CollateralUnavailableError("COLLATERAL_NOT_FOUND", key.kind)
        return CollateralItem(key, self.items[key.kind], at, at + dt.timedelta(days=1), "test")


def files(pki: FakeAmdPki, kind: str = "vcek") -> dict[str, bytes]:
    signer = pki.vcek if kind == "vcek" else pki.vlek
    inter = pki.ask if kind == "vcek" else pki.asvk
    return {
        f"{kind}.der": signer.public_bytes(Encoding.DER),
        f"{'ask' if kind == 'vcek' else 'asvk'}.pem": inter.public_bytes(Encoding.PEM),
        "ark.pem": pki.ark.public_bytes(Encoding.PEM),
    }


def service(db: Database, pki: FakeAmdPki, **kw: Any) -> VerifierService:
    kw.setdefault("check_crl", False)  # most of these tests carry no CRL; revocation tests turn it on
    refs = SqlReferenceValueStore(db)
    refs.add("snp.measurement", MEASUREMENT, "image-1", now=pki.now - dt.timedelta(days=1))
    return VerifierService(
        clock=SettableClock(pki.now),
        anchors=pki.anchors(),
        references=refs,
        signer=ResultSigner([ephemeral_key()]),
        challenges=SqlChallengeStore(db),
        **kw,
    )


def codes(result: Any) -> list[str]:
    return [f.code for f in result.appraisal.findings]


def test_vcek_and_vlek_reports_affirm_with_request_collateral(db: Database, pki: FakeAmdPki) -> None:
    svc = service(db, pki)
    for kind in ("vcek", "vlek"):
        request = AppraisalRequest(tee="snp", evidence=pki.report(signer=kind), collateral=files(pki, kind))
        result = svc.appraise(request)
        assert result.appraisal.status is Tier.AFFIRMING, codes(result)
        assert result.appraisal.claims["product"] == "Genoa"
        assert result.appraisal.claims["signer"]["kind"] == kind
        assert result.appraisal.trust_vector.to_json()["runtime-opaque"] == 2


def test_unknown_measurement_and_tampered_signature(db: Database, pki: FakeAmdPki) -> None:
    svc = service(db, pki)
    other = svc.appraise(
        AppraisalRequest(tee="snp", evidence=pki.report(measurement=b"\x01" * 48), collateral=files(pki))
    )
    assert codes(other) == ["REFERENCE_VALUE_MISMATCH", "WORKLOAD_NOT_MATCHED"]
    assert other.appraisal.trust_vector.to_json()["executables"] == 96
    bad = svc.appraise(AppraisalRequest(tee="snp", evidence=pki.report(signature=b"\x05" * 144), collateral=files(pki)))
    assert codes(bad) == ["SNP_SIGNATURE_INVALID"]
    assert bad.appraisal.claims["measurement"] == MEASUREMENT.hex()  # claims are still reported


def test_challenge_nonce_binds_through_report_data(db: Database, pki: FakeAmdPki) -> None:
    svc = service(db, pki)
    challenge = svc.create_challenge()
    key = b'{"kty":"OKP","crv":"X25519","x":"abc"}'
    report_data = hashlib.sha512(challenge.nonce + key).digest()
    evidence = pki.report(report_data=report_data)
    ok = svc.appraise(
        AppraisalRequest(tee="snp", evidence=evidence, collateral=files(pki), nonce=challenge.nonce, runtime_data=key),
        require_challenge=True,
    )
    assert ok.appraisal.status is Tier.AFFIRMING, codes(ok)
    challenge2 = svc.create_challenge()
    wrong = svc.appraise(
        AppraisalRequest(tee="snp", evidence=evidence, collateral=files(pki), nonce=challenge2.nonce, runtime_data=key),
        require_challenge=True,
    )
    assert codes(wrong) == ["REPORT_DATA_MISMATCH"]
    assert wrong.appraisal.findings[0].actual == report_data.hex()


def test_raw_binding_is_a_policy_choice(db: Database, pki: FakeAmdPki) -> None:
    raw = Policy(policy_id="raw", report_data_binding="raw")
    svc = service(db, pki, policies=PolicySet({"raw": raw}))
    nonce = b"\x42" * 32
    evidence = pki.report(report_data=nonce + bytes(32))
    request = AppraisalRequest(tee="snp", evidence=evidence, collateral=files(pki), nonce=nonce)
    assert codes(svc.appraise(request)) == ["REPORT_DATA_MISMATCH"]  # default policy: SHA-512
    # The request cannot choose raw binding for a workload appraised under SHA-512 binding (looser: ignored)...
    loose = svc.appraise(AppraisalRequest(**{**request.__dict__, "policy": "raw"}))
    assert codes(loose) == ["REPORT_DATA_MISMATCH", "POLICY_LOOSER_THAN_WORKLOAD"]
    # ...the workload's own policy chooses it (here the server's default for workloads that name none).
    raw_default = dataclasses.replace(svc, default_policy="raw")
    assert raw_default.appraise(request).appraisal.status is Tier.AFFIRMING


def test_policy_checks_debug_vmpl_and_tcb(db: Database, pki: FakeAmdPki) -> None:
    strict = Policy(policy_id="strict", snp=SnpRules(allowed_vmpls=(0,), minimum_tcb={"snp": 99}))
    svc = service(db, pki, policies=PolicySet({"strict": strict}))
    debug = svc.appraise(
        AppraisalRequest(tee="snp", evidence=pki.report(policy=0x30000 | 1 << 19), collateral=files(pki))
    )
    assert codes(debug) == ["SNP_DEBUG_ALLOWED"]
    result = svc.appraise(
        AppraisalRequest(tee="snp", evidence=pki.report(vmpl=1), collateral=files(pki), policy="strict")
    )
    assert codes(result) == ["SNP_VMPL_NOT_ALLOWED", "SNP_TCB_BELOW_MINIMUM"]


def test_missing_vcek_comes_from_the_collateral_source(db: Database, pki: FakeAmdPki) -> None:
    source = DictSource(
        {
            "amd.vcek": pki.vcek.public_bytes(Encoding.DER),
            "amd.cert_chain": pki.ask.public_bytes(Encoding.PEM) + pki.ark.public_bytes(Encoding.PEM),
        }
    )
    svc = service(db, pki, collateral_source=source)
    result = svc.appraise(AppraisalRequest(tee="snp", evidence=pki.report()))
    assert result.appraisal.status is Tier.AFFIRMING, codes(result)
    assert source.fetched == ["amd.vcek", "amd.cert_chain"]


def test_offline_without_a_vcek_cannot_appraise(db: Database, pki: FakeAmdPki) -> None:
    svc = service(db, pki)  # OfflineSource
    with pytest.raises(UnavailableError) as info:
        svc.appraise(AppraisalRequest(tee="snp", evidence=pki.report()))
    assert info.value.code == "COLLATERAL_OFFLINE"


class RateLimited:
    """AMD KDS answering 429 with Retry-After past the retry budget."""

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        raise CollateralUnavailableError("COLLATERAL_RATE_LIMITED", f"{key.kind}: 429", retry_after=90.0)


def test_unavailable_collateral_is_unavailable_with_the_vendors_retry_time(db: Database, pki: FakeAmdPki) -> None:
    """The verifier says `incomplete` (it no longer raises); the service turns that into UnavailableError with
    the same code and retry time (gRPC UNAVAILABLE with RetryInfo), nothing recorded as affirming."""
    svc = service(db, pki, collateral_source=RateLimited())
    with pytest.raises(UnavailableError) as info:
        svc.appraise(AppraisalRequest(tee="snp", evidence=pki.report()))
    assert (info.value.code, info.value.retry_after) == ("COLLATERAL_RATE_LIMITED", 90.0)


def test_allowing_incomplete_gives_a_result_that_is_never_affirming(db: Database, pki: FakeAmdPki) -> None:
    """As for TDX (the CLI prints it and exits 3): the result says what was missing and affirms nothing."""
    svc = service(db, pki, collateral_source=RateLimited())
    result = svc.appraise(AppraisalRequest(tee="snp", evidence=pki.report()), allow_incomplete=True)
    assert result.incomplete == "COLLATERAL_RATE_LIMITED"
    assert result.appraisal.status is Tier.CONTRAINDICATED
    assert codes(result) == ["COLLATERAL_RATE_LIMITED"]
    assert "could not be checked" in result.appraisal.findings[0].message
    assert result.appraisal.claims["measurement"] == MEASUREMENT.hex()  # what could be read is reported
    assert result.appraisal.trust_vector.to_json() == {"instance-identity": 99}  # nothing else is claimed


def test_crl_checked_revoked_and_unavailable(db: Database, pki: FakeAmdPki) -> None:
    svc = service(db, pki, check_crl=True)
    unavailable = svc.appraise(AppraisalRequest(tee="snp", evidence=pki.report(), collateral=files(pki)))
    assert codes(unavailable) == ["SNP_CRL_UNAVAILABLE"]
    assert unavailable.appraisal.status is Tier.CONTRAINDICATED  # fail closed by default
    clean = svc.appraise(
        AppraisalRequest(tee="snp", evidence=pki.report(), collateral={**files(pki), "crl.der": pki.crl()})
    )
    assert clean.appraisal.status is Tier.AFFIRMING, codes(clean)
    revoked = svc.appraise(
        AppraisalRequest(
            tee="snp", evidence=pki.report(), collateral={**files(pki), "crl.der": pki.crl([pki.ask.serial_number])}
        )
    )
    assert codes(revoked) == ["SNP_CERT_REVOKED"]
    stale = svc.appraise(
        AppraisalRequest(
            tee="snp",
            evidence=pki.report(),
            collateral={
                **files(pki),
                "crl.der": pki.crl(
                    next_update=pki.now - dt.timedelta(seconds=1), this_update=pki.now - dt.timedelta(days=2)
                ),
            },
        )
    )
    assert codes(stale) == ["SNP_CRL_UNAVAILABLE"]
    lenient = service(
        db,
        pki,
        check_crl=True,
        policies=PolicySet({"open": Policy(policy_id="open", snp=SnpRules(crl_fail_open=True))}),
    )
    request = AppraisalRequest(tee="snp", evidence=pki.report(), collateral=files(pki), policy="open")
    # A request cannot loosen its workload's policy...
    assert lenient.appraise(request).appraisal.status is Tier.CONTRAINDICATED
    # ...a workload appraised under a fail-open policy gets a warning.
    warned = dataclasses.replace(lenient, default_policy="open").appraise(dataclasses.replace(request, policy=None))
    assert warned.appraisal.status is Tier.WARNING


def test_certificate_table_collateral(db: Database, pki: FakeAmdPki) -> None:
    from verifier.tee.sevsnp.certtable import build_cert_table

    table = build_cert_table(
        {
            "vcek": pki.vcek.public_bytes(Encoding.DER),
            "ask": pki.ask.public_bytes(Encoding.DER),
            "ark": pki.ark.public_bytes(Encoding.DER),
        }
    )
    svc = service(db, pki)
    result = svc.appraise(AppraisalRequest(tee="snp", evidence=pki.report(), collateral={"cert_table.bin": table}))
    assert result.appraisal.status is Tier.AFFIRMING, codes(result)


def test_garbage_certificate_in_the_request_is_contraindicated(db: Database, pki: FakeAmdPki) -> None:
    svc = service(db, pki)
    result = svc.appraise(AppraisalRequest(tee="snp", evidence=pki.report(), collateral={"vcek.der": b"nope"}))
    assert result.appraisal.status is Tier.CONTRAINDICATED
    assert codes(result) == ["CERT_MALFORMED"]


# --- Which CRL decides: the request's or the verifier's (cache / KDS), the newer ----------------------------------


def _chain_source(pki: FakeAmdPki, crl: bytes | None) -> DictSource:
    items = {"amd.cert_chain": pki.ask.public_bytes(Encoding.PEM) + pki.ark.public_bytes(Encoding.PEM)}
    return DictSource({**items, **({"amd.crl": crl} if crl is not None else {})})


def test_an_older_request_crl_does_not_beat_the_verifiers_newer_one(db: Database, pki: FakeAmdPki) -> None:
    source = _chain_source(pki, pki.crl([pki.ask.serial_number], number=2))
    svc = service(db, pki, check_crl=True, collateral_source=source)
    result = svc.appraise(
        AppraisalRequest(tee="snp", evidence=pki.report(), collateral={**files(pki), "crl.der": pki.crl(number=1)})
    )
    assert codes(result) == ["SNP_CERT_REVOKED"]
    assert result.appraisal.status is Tier.CONTRAINDICATED
    assert "amd.crl" in source.fetched


def test_a_superseded_request_crl_is_reported_without_changing_the_status(db: Database, pki: FakeAmdPki) -> None:
    at = pki.now - dt.timedelta(days=1)
    svc = service(db, pki, check_crl=True, collateral_source=_chain_source(pki, pki.crl(number=5)))
    result = svc.appraise(
        AppraisalRequest(
            tee="snp",
            evidence=pki.report(),
            collateral={**files(pki), "crl.der": pki.crl(number=4, this_update=at - dt.timedelta(days=1))},
        )
    )
    assert result.appraisal.status is Tier.AFFIRMING, codes(result)
    assert codes(result) == ["COLLATERAL_SUPERSEDED"]
    finding = result.appraisal.findings[0]
    assert finding.value == 0
    assert finding.expected == f"number 5, thisUpdate {at.strftime('%Y-%m-%dT%H:%M:%SZ')}"
    assert finding.actual.startswith("number 4, thisUpdate ")


def test_a_newer_request_crl_decides(db: Database, pki: FakeAmdPki) -> None:
    svc = service(db, pki, check_crl=True, collateral_source=_chain_source(pki, pki.crl(number=2)))
    result = svc.appraise(
        AppraisalRequest(
            tee="snp",
            evidence=pki.report(),
            collateral={**files(pki), "crl.der": pki.crl([pki.ask.serial_number], number=3)},
        )
    )
    assert codes(result) == ["SNP_CERT_REVOKED"]


def test_without_crl_numbers_this_update_decides(db: Database, pki: FakeAmdPki) -> None:
    newer = pki.crl([pki.ask.serial_number], this_update=pki.now - dt.timedelta(hours=1))
    svc = service(db, pki, check_crl=True, collateral_source=_chain_source(pki, newer))
    result = svc.appraise(
        AppraisalRequest(
            tee="snp",
            evidence=pki.report(),
            collateral={**files(pki), "crl.der": pki.crl(this_update=pki.now - dt.timedelta(days=3))},
        )
    )
    assert codes(result) == ["SNP_CERT_REVOKED"]


def test_the_request_crl_is_used_when_the_source_has_none(db: Database, pki: FakeAmdPki) -> None:
    svc = service(db, pki, check_crl=True, collateral_source=_chain_source(pki, None))
    revoked = svc.appraise(
        AppraisalRequest(
            tee="snp", evidence=pki.report(), collateral={**files(pki), "crl.der": pki.crl([pki.ask.serial_number])}
        )
    )
    assert codes(revoked) == ["SNP_CERT_REVOKED"]


def test_an_invalid_request_crl_never_beats_a_valid_source_crl(db: Database, pki: FakeAmdPki) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    forged = pki.crl(number=99, signer_key=rsa.generate_private_key(65537, 2048))
    svc = service(
        db, pki, check_crl=True, collateral_source=_chain_source(pki, pki.crl([pki.ask.serial_number], number=1))
    )
    result = svc.appraise(
        AppraisalRequest(tee="snp", evidence=pki.report(), collateral={**files(pki), "crl.der": forged})
    )
    assert codes(result) == ["SNP_CERT_REVOKED"]


def test_max_collateral_age_bounds_the_crl_used(db: Database, pki: FakeAmdPki) -> None:
    policies = PolicySet(
        {
            "fresh": Policy(policy_id="fresh", snp=SnpRules(max_collateral_age_hours=12)),
            "day": Policy(policy_id="day", snp=SnpRules(max_collateral_age_hours=25)),
        }
    )
    crl = pki.crl(this_update=pki.now - dt.timedelta(hours=24))
    svc = service(db, pki, check_crl=True, policies=policies, collateral_source=_chain_source(pki, crl))
    old = svc.appraise(AppraisalRequest(tee="snp", evidence=pki.report(), collateral=files(pki), policy="fresh"))
    assert codes(old) == ["COLLATERAL_TOO_OLD"]
    assert old.appraisal.status is Tier.CONTRAINDICATED
    finding = old.appraisal.findings[0]
    assert finding.claim.value == "hardware"
    assert finding.expected.startswith("thisUpdate >= " + (pki.now - dt.timedelta(hours=12)).strftime("%Y-%m-%dT%H"))
    assert finding.actual.startswith("thisUpdate " + crl_issued(crl))
    ok = svc.appraise(AppraisalRequest(tee="snp", evidence=pki.report(), collateral=files(pki), policy="day"))
    assert ok.appraisal.status is Tier.AFFIRMING, codes(ok)


def crl_issued(der: bytes) -> str:
    from cryptography import x509

    return x509.load_der_x509_crl(der).last_update_utc.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- A vendor that briefly served wrongly signed collateral (issue 11 item 3) ------------------------------------


def _wrongly_signed_vcek(pki: FakeAmdPki) -> bytes:
    """The chip's VCEK (same key, names, extensions) signed by a key that is not the ASK's."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    cert = pki._signer(
        "SEV-VCEK",
        pki.vcek_key,
        f"SEV-{pki.product.value}",
        rsa.generate_private_key(65537, 2048),
        (pki.now - dt.timedelta(days=1), pki.now + dt.timedelta(days=365)),
        hwid=pki.hwid,
    )
    return cert.public_bytes(Encoding.DER)


def test_a_wrongly_signed_vcek_is_not_cached_as_truth(db: Database, pki: FakeAmdPki) -> None:
    from tests.fakes.kds_server import FakeKds, Reply
    from verifier.collateral.cache import CachedSource
    from verifier.collateral.kds import AmdKds
    from verifier.storage.collateral import SqlCollateralCache

    vcek_path = f"/vcek/v1/{pki.product.value}/{pki.hwid.hex()}"
    chain = pki.ask.public_bytes(Encoding.PEM) + pki.ark.public_bytes(Encoding.PEM)
    with FakeKds() as kds:
        kds.serve(vcek_path, Reply(body=_wrongly_signed_vcek(pki)), Reply(body=pki.vcek.public_bytes(Encoding.DER)))
        kds.serve(f"/vcek/v1/{pki.product.value}/cert_chain", Reply(body=chain))
        clock = SettableClock(pki.now)

        def cached(**kw: Any) -> CachedSource:
            return CachedSource(AmdKds(kds.url, retries=0, timeout=5), SqlCollateralCache(db), clock=clock, **kw)

        source = cached(reject_backoff=dt.timedelta(seconds=30))
        svc = service(db, pki, collateral_source=source)
        first = svc.appraise(AppraisalRequest(tee="snp", evidence=pki.report()))
        assert codes(first) == ["CHAIN_SIGNATURE_INVALID"]
        assert first.appraisal.status is Tier.CONTRAINDICATED
        # The rejected VCEK is gone; KDS is not asked again during the backoff.
        with pytest.raises(UnavailableError) as info:
            svc.appraise(AppraisalRequest(tee="snp", evidence=pki.report()))
        assert info.value.code == "COLLATERAL_REJECTED"
        assert kds.count(vcek_path) == 1
        # A restart (a fresh cache over the same database) does not inherit the bad row: it asks KDS again.
        restarted = service(db, pki, collateral_source=cached())
        second = restarted.appraise(AppraisalRequest(tee="snp", evidence=pki.report()))
        assert second.appraisal.status is Tier.AFFIRMING, codes(second)
        assert kds.count(vcek_path) == 2
        # After the backoff the first process affirms too (here from the row the restarted one stored).
        clock.at = pki.now + dt.timedelta(seconds=31)
        again = svc.appraise(AppraisalRequest(tee="snp", evidence=pki.report()))
        assert again.appraisal.status is Tier.AFFIRMING, codes(again)


def test_after_the_backoff_the_vendor_is_asked_again(db: Database, pki: FakeAmdPki) -> None:
    from tests.fakes.kds_server import FakeKds, Reply
    from verifier.collateral.cache import CachedSource
    from verifier.collateral.kds import AmdKds
    from verifier.storage.collateral import SqlCollateralCache

    vcek_path = f"/vcek/v1/{pki.product.value}/{pki.hwid.hex()}"
    chain = pki.ask.public_bytes(Encoding.PEM) + pki.ark.public_bytes(Encoding.PEM)
    with FakeKds() as kds:
        kds.serve(vcek_path, Reply(body=_wrongly_signed_vcek(pki)), Reply(body=pki.vcek.public_bytes(Encoding.DER)))
        kds.serve(f"/vcek/v1/{pki.product.value}/cert_chain", Reply(body=chain))
        clock = SettableClock(pki.now)
        source = CachedSource(
            AmdKds(kds.url, retries=0, timeout=5),
            SqlCollateralCache(db),
            clock=clock,
            reject_backoff=dt.timedelta(seconds=30),
        )
        svc = service(db, pki, collateral_source=source)
        assert svc.appraise(AppraisalRequest(tee="snp", evidence=pki.report())).appraisal.status is Tier.CONTRAINDICATED
        clock.at = pki.now + dt.timedelta(seconds=31)
        again = svc.appraise(AppraisalRequest(tee="snp", evidence=pki.report()))
        assert again.appraisal.status is Tier.AFFIRMING, codes(again)
        assert kds.count(vcek_path) == 2


def test_a_report_with_a_bad_signature_does_not_evict_good_collateral(db: Database, pki: FakeAmdPki) -> None:
    from verifier.collateral.cache import CachedSource
    from verifier.storage.collateral import SqlCollateralCache

    inner = DictSource(
        {
            "amd.vcek": pki.vcek.public_bytes(Encoding.DER),
            "amd.cert_chain": pki.ask.public_bytes(Encoding.PEM) + pki.ark.public_bytes(Encoding.PEM),
        }
    )
    svc = service(db, pki, collateral_source=CachedSource(inner, SqlCollateralCache(db), clock=SettableClock(pki.now)))
    bad = svc.appraise(AppraisalRequest(tee="snp", evidence=pki.report(signature=b"\x05" * 144)))
    assert codes(bad) == ["SNP_SIGNATURE_INVALID"]
    forged_ask = {"ask.pem": pki.foreign().ask.public_bytes(Encoding.PEM)}  # the caller's own (wrong) ASK
    assert (
        svc.appraise(AppraisalRequest(tee="snp", evidence=pki.report(), collateral=forged_ask)).appraisal.status
        is Tier.CONTRAINDICATED
    )
    ok = svc.appraise(AppraisalRequest(tee="snp", evidence=pki.report()))
    assert ok.appraisal.status is Tier.AFFIRMING, codes(ok)
    assert inner.fetched == ["amd.vcek", "amd.cert_chain"]  # served from the cache throughout
