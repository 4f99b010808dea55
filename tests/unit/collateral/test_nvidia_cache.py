"""NVIDIA collateral behind the collateral interface: routed by kind, cached (RIMs by id, OCSP answers until their
nextUpdate, never past it), a bad answer rejected from the cache, nothing asked offline; and check_chain over it."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.fakes.kds_server import FakeKds, Reply, kds_server_fixture
from tests.fakes.nvidia_ocsp import (
    AT,
    DAY,
    HOUR,
    Behaviour,
    FakeNvidiaPki,
    FakeOcspResponder,
    nvidia_pki_fixture,
    ocsp_responder_fixture,
)
from verifier.collateral.base import (
    CollateralItem,
    CollateralKey,
    CollateralSource,
    CollateralUnavailableError,
    OfflineSource,
)
from verifier.collateral.cache import CachedSource
from verifier.collateral.nvidia import NvidiaOcsp, NvidiaRimService
from verifier.collateral.nvidia_keys import KIND_OCSP, SourceOcspFetcher, ocsp_key, rim_key
from verifier.collateral.routing import RoutingSource, vendor_of
from verifier.trust.ocsp import cert_id, check_chain

kds_server = kds_server_fixture
nvidia_pki = nvidia_pki_fixture
ocsp_responder = ocsp_responder_fixture
DRIVER = "NV_GPU_DRIVER_GH100_550.90.07"


@pytest.fixture(name="cached")
def cached_fixture(ocsp_responder: FakeOcspResponder, kds_server: FakeKds) -> Iterator[CachedSource]:
    routes: dict[str, CollateralSource] = {
        "nvidia.ocsp": NvidiaOcsp(ocsp_responder.url),
        "nvidia.rim": NvidiaRimService(kds_server.url),
    }
    source = CachedSource(RoutingSource(routes), None, failure_backoff=dt.timedelta(0))
    yield source
    source.close()


def test_vendor_labels_and_routes_by_kind() -> None:
    assert [vendor_of(k) for k in ("nvidia.rim", "nvidia.ocsp", "nvidia.other", "amd.crl")] == [
        "nvidia-rim",
        "nvidia-ocsp",
        "other",
        "amd-kds",
    ]
    with pytest.raises(CollateralUnavailableError) as error:
        RoutingSource({"nvidia.rim": OfflineSource()}).fetch(CollateralKey(KIND_OCSP), at=AT)
    assert error.value.code == "COLLATERAL_KEY_INVALID"


def test_a_rim_is_fetched_once_and_kept_by_id(cached: CachedSource, kds_server: FakeKds) -> None:
    body = json.dumps({"id": DRIVER, "rim": base64.b64encode(b"<SoftwareIdentity/>").decode()}).encode()
    kds_server.serve(f"/v1/rim/{DRIVER}", Reply(body=body))
    first = cached.fetch(rim_key(DRIVER), at=AT)
    second = cached.fetch(rim_key(DRIVER), at=AT)
    assert first.data == second.data == b"<SoftwareIdentity/>" and second.source == "cache"
    assert kds_server.count(f"/v1/rim/{DRIVER}") == 1


def test_check_chain_over_the_cache_asks_the_responder_once_per_certificate(
    cached: CachedSource, nvidia_pki: FakeNvidiaPki, ocsp_responder: FakeOcspResponder
) -> None:
    fetcher = SourceOcspFetcher(cached)
    outcome = check_chain(nvidia_pki.chain, at=AT, fetch=fetcher)
    assert outcome.status == "good", outcome.detail
    assert outcome.next_update == AT + DAY and len(ocsp_responder.requests) == 3
    again = check_chain(nvidia_pki.chain, at=AT + DAY - dt.timedelta(seconds=1), fetch=fetcher)
    assert again.status == "good" and len(ocsp_responder.requests) == 3  # the cached answers, nonce and all
    # at nextUpdate the cached answers are not served: the responder is asked again (and its answer, still
    # ending at AT + DAY, is not used either)
    past = check_chain(nvidia_pki.chain, at=AT + DAY, fetch=fetcher)
    assert past.status == "unavailable" and "past its nextUpdate" in past.detail
    assert len(ocsp_responder.requests) == 6


def test_a_fresh_answer_replaces_an_expired_one(
    cached: CachedSource, nvidia_pki: FakeNvidiaPki, ocsp_responder: FakeOcspResponder
) -> None:
    for cert in nvidia_pki.chain:
        ocsp_responder.script[cert.serial_number] = Behaviour(next_update=AT + HOUR)
    fetcher = SourceOcspFetcher(cached)
    assert check_chain(nvidia_pki.chain, at=AT, fetch=fetcher).status == "good"
    for cert in nvidia_pki.chain:
        ocsp_responder.script[cert.serial_number] = Behaviour(this_update=AT + HOUR, next_update=AT + DAY)
    later = check_chain(nvidia_pki.chain, at=AT + 2 * HOUR, fetch=fetcher)
    assert later.status == "good" and later.next_update == AT + DAY
    assert len(ocsp_responder.requests) == 6


def test_an_answer_with_a_wrong_nonce_is_rejected_from_the_cache(
    cached: CachedSource, nvidia_pki: FakeNvidiaPki, ocsp_responder: FakeOcspResponder
) -> None:
    ocsp_responder.script[nvidia_pki.chain[2].serial_number] = Behaviour(nonce="wrong")
    fetcher = SourceOcspFetcher(cached)
    outcome = check_chain(nvidia_pki.chain, at=AT, fetch=fetcher)
    assert outcome.status == "unavailable" and "nonce is not the request's" in outcome.detail
    again = check_chain(nvidia_pki.chain, at=AT, fetch=fetcher)  # not served from the cache again
    assert again.status == "unavailable" and "COLLATERAL_REJECTED" in again.detail
    assert len(ocsp_responder.requests) == 3


def test_revoked_through_the_responder(
    cached: CachedSource, nvidia_pki: FakeNvidiaPki, ocsp_responder: FakeOcspResponder
) -> None:
    ocsp_responder.script[nvidia_pki.chain[3].serial_number] = Behaviour(status="revoked")
    outcome = check_chain(nvidia_pki.chain, at=AT, fetch=SourceOcspFetcher(cached))
    assert outcome.status == "revoked" and outcome.detail.startswith("NVIDIA GH100 Identity: revoked (unspecified)")


def test_offline_nothing_is_asked(nvidia_pki: FakeNvidiaPki, ocsp_responder: FakeOcspResponder) -> None:
    outcome = check_chain(nvidia_pki.chain, at=AT, fetch=SourceOcspFetcher(OfflineSource()))
    assert outcome.status == "unavailable" and "COLLATERAL_OFFLINE" in outcome.detail
    assert ocsp_responder.requests == []


@dataclass
class JunkSource:
    rejected: list[str] = field(default_factory=list)

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        return CollateralItem(key, b"not an envelope", AT, AT + DAY, "cache")

    def reject(self, item: CollateralItem, *, reason: str) -> None:
        self.rejected.append(reason)


def test_an_item_that_is_no_envelope_is_rejected(nvidia_pki: FakeNvidiaPki) -> None:
    source = JunkSource()
    with pytest.raises(CollateralUnavailableError) as error:
        SourceOcspFetcher(source).fetch_ocsp(cert_id(nvidia_pki.chain[1], nvidia_pki.chain[2]), at=AT)
    assert error.value.code == "COLLATERAL_MALFORMED" and source.rejected == ["COLLATERAL_MALFORMED"]
    outcome = check_chain(nvidia_pki.chain, at=AT, fetch=SourceOcspFetcher(source))
    assert outcome.status == "unavailable" and "COLLATERAL_MALFORMED" in outcome.detail


def test_the_ocsp_key_is_what_the_cache_stores(nvidia_pki: FakeNvidiaPki) -> None:
    key = ocsp_key(cert_id(nvidia_pki.chain[1], nvidia_pki.chain[2]))
    assert key.kind == KIND_OCSP and key.cache_id().startswith("nvidia.ocsp?hash=sha384&issuer_name_hash=")
