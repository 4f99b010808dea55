"""A bad vendor answer is not cached as truth (issue 11 item 3): an item the vendor served that fails verification
on its own is dropped from the memory and database cache, the vendor is asked again after a backoff (doubling while
it keeps serving bad data), and a restart does not inherit it. Request-dependent failures evict nothing."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from tests.fakes.amd_pki import FakeAmdPki
from tests.fakes.intel_pki import FakeIntelPki
from tests.service_helpers import SettableClock
from verifier.collateral.base import CollateralItem, CollateralKey, CollateralUnavailableError
from verifier.collateral.cache import CachedSource
from verifier.storage.collateral import SqlCollateralCache
from verifier.storage.engine import Database
from verifier.tee.base import VerifyContext
from verifier.tee.sevsnp.evidence import SnpVerifier
from verifier.tee.sevsnp.tcb import Product
from verifier.tee.tdx.evidence import TdxVerifier

NOW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
KEY = CollateralKey("amd.vcek", (("product", "Milan"), ("hwid", "ab")))


class Script:
    """Serves `replies[kind]` in order (the last repeats); counts fetches per kind."""

    def __init__(self, replies: dict[str, list[bytes]]) -> None:
        self.replies = replies
        self.count: dict[str, int] = {}

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        self.count[key.kind] = self.count.get(key.kind, 0) + 1
        script = self.replies.get(key.kind)
        if not script:
            raise CollateralUnavailableError("COLLATERAL_NOT_FOUND", key.kind)
        data = script.pop(0) if len(script) > 1 else script[0]
        return CollateralItem(key, data, at, at + dt.timedelta(days=365), "kds")


def test_a_rejected_item_leaves_memory_and_table_and_backs_off_doubling(db: Database) -> None:
    inner, clock = Script({"amd.vcek": [b"bad"]}), SettableClock(NOW)
    source = CachedSource(
        inner,
        SqlCollateralCache(db),
        clock=clock,
        reject_backoff=dt.timedelta(seconds=10),
        reject_backoff_max=dt.timedelta(seconds=40),
    )
    item = source.fetch(KEY, at=NOW)
    source.reject(item, reason="CHAIN_SIGNATURE_INVALID")
    assert SqlCollateralCache(db).get(KEY.cache_id()) is None
    waits = []
    for _ in range(4):  # the vendor keeps serving the same bad bytes: 10, 20, 40, 40 seconds
        with pytest.raises(CollateralUnavailableError) as info:
            source.fetch(KEY, at=clock.at)
        assert info.value.code == "COLLATERAL_REJECTED"
        waits.append(info.value.retry_after)
        fetches = inner.count["amd.vcek"]
        clock.at += dt.timedelta(seconds=info.value.retry_after or 0)
        with pytest.raises(CollateralUnavailableError) as again:
            source.fetch(KEY, at=clock.at)  # asked once more: the same bad bytes, rejected without serving them
        assert again.value.code == "COLLATERAL_REJECTED" and inner.count["amd.vcek"] == fetches + 1
    assert waits == [10.0, 20.0, 40.0, 40.0]
    assert SqlCollateralCache(db).get(KEY.cache_id()) is None


def test_reject_keeps_a_newer_row_another_replica_stored(db: Database) -> None:
    table = SqlCollateralCache(db)
    source = CachedSource(Script({"amd.vcek": [b"bad"]}), table, clock=SettableClock(NOW))
    bad = source.fetch(KEY, at=NOW)
    table.put(CollateralItem(KEY, b"good", NOW, NOW + dt.timedelta(days=1), "kds"))  # another replica's copy
    source.reject(bad, reason="CHAIN_SIGNATURE_INVALID")
    assert source.fetch(KEY, at=NOW).data == b"good"


def test_every_entry_is_refetched_after_max_age(db: Database) -> None:
    inner, clock = Script({"amd.vcek": [b"one", b"two"]}), SettableClock(NOW)
    source = CachedSource(inner, SqlCollateralCache(db), clock=clock, max_age=dt.timedelta(days=7))
    assert source.fetch(KEY, at=NOW).data == b"one"
    clock.at = NOW + dt.timedelta(days=6)
    assert source.fetch(KEY, at=clock.at).data == b"one"
    clock.at = NOW + dt.timedelta(days=7)
    assert source.fetch(KEY, at=clock.at).data == b"two"  # a year of notAfter left, refetched anyway


# --- SEV-SNP: the cert_chain and the CRL -----------------------------------------------------------------------


def _snp(pki: FakeAmdPki, source: CachedSource, **collateral: bytes) -> list[str]:
    ctx = VerifyContext(at=pki.now, anchors=pki.anchors(), collateral=collateral, source=source, check_crl=True)
    verified = SnpVerifier().verify(pki.report(), ctx)
    return [verified.failure.code] if verified.failure is not None else [verified.revocation]


def test_snp_chain_and_crl_that_do_not_verify_are_rejected(db: Database) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    pki = FakeAmdPki(Product.GENOA)
    other = pki.foreign()
    good_chain = pki.ask.public_bytes(Encoding.PEM) + pki.ark.public_bytes(Encoding.PEM)
    bad_chain = other.ask.public_bytes(Encoding.PEM) + pki.ark.public_bytes(Encoding.PEM)  # ASK not under the ARK
    bad_crl = pki.crl(signer_key=rsa.generate_private_key(65537, 2048))
    inner = Script(
        {
            "amd.vcek": [pki.vcek.public_bytes(Encoding.DER)],
            "amd.cert_chain": [bad_chain, good_chain],
            "amd.crl": [bad_crl, pki.crl()],
        }
    )
    clock = SettableClock(pki.now)
    source = CachedSource(inner, SqlCollateralCache(db), clock=clock, reject_backoff=dt.timedelta(seconds=5))
    assert _snp(pki, source) != ["checked"]
    clock.at += dt.timedelta(seconds=6)
    assert _snp(pki, source) == ["checked"]
    assert inner.count == {"amd.vcek": 1, "amd.cert_chain": 2, "amd.crl": 2}


def test_snp_request_certificates_never_evict(db: Database) -> None:
    pki = FakeAmdPki(Product.GENOA)
    inner = Script(
        {
            "amd.vcek": [pki.vcek.public_bytes(Encoding.DER)],
            "amd.cert_chain": [pki.ask.public_bytes(Encoding.PEM) + pki.ark.public_bytes(Encoding.PEM)],
            "amd.crl": [pki.crl()],
        }
    )
    source = CachedSource(inner, SqlCollateralCache(db), clock=SettableClock(pki.now))
    forged = pki.foreign()
    assert _snp(pki, source, **{"ask.pem": forged.ask.public_bytes(Encoding.PEM), "crl.der": forged.crl()}) != [
        "checked"
    ]
    assert _snp(pki, source) == ["checked"]
    assert inner.count == {"amd.vcek": 1, "amd.cert_chain": 1, "amd.crl": 1}


# --- TDX: TCB info signed by the wrong key ---------------------------------------------------------------------


class IntelScript:
    """The fake platform's collateral, with TCB info served wrongly signed `bad` times first."""

    def __init__(self, pki: FakeIntelPki, bad: int) -> None:
        self.good = pki.source(label="pcs")
        wrong = pki.sign_json("tcbInfo", pki.tcb_info(), ec.generate_private_key(ec.SECP256R1()))
        self.bad = pki.source(pki.collateral_files(**{"tcb_info.json": wrong}), label="pcs")
        self.left = bad
        self.tcb_fetches = 0

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        if key.kind == "intel.tcb_info":
            self.tcb_fetches += 1
            if self.left > 0:
                self.left -= 1
                return self.bad.fetch(key, at=at)
        return self.good.fetch(key, at=at)


def test_tdx_wrongly_signed_tcb_info_is_refetched_after_backoff_and_restart(db: Database) -> None:
    pki = FakeIntelPki()
    evidence = pki.quote(mr_td=b"\x42" * 48, td_attributes=bytes.fromhex("0000001000000000"))
    inner, clock = IntelScript(pki, bad=1), SettableClock(pki.now)

    def cached() -> CachedSource:
        return CachedSource(inner, SqlCollateralCache(db), clock=clock, reject_backoff=dt.timedelta(seconds=30))

    def tcb_status(source: CachedSource) -> str:
        ctx = VerifyContext(at=pki.now, anchors=pki.anchors(), collateral={}, source=source)
        verified = TdxVerifier().verify(evidence, ctx)
        if verified.failure is not None:
            return verified.failure.code
        return str(verified.incomplete or verified.claims["tcb_status"])

    source = cached()
    first = tcb_status(source)
    assert "SIGNATURE" in first, first  # the wrongly signed TCB info fails (contraindicated)
    assert tcb_status(source) == "COLLATERAL_REJECTED"  # backing off: Intel is not asked
    assert inner.tcb_fetches == 1
    assert tcb_status(cached()) == "UpToDate"  # a restart refetches: the bad row is gone from the table
    clock.at += dt.timedelta(seconds=31)
    assert tcb_status(source) == "UpToDate"
    assert inner.tcb_fetches == 2
