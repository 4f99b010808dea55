"""Intel PCS v4 client against a loopback server: URLs, issuer-chain headers, envelopes, 429 and timeouts."""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.kds_server import FakeKds, Reply, kds_server_fixture  # noqa: F401 - fixture
from verifier.collateral.base import CollateralKey, CollateralUnavailableError
from verifier.collateral.cache import CachedSource
from verifier.collateral.pcs import IntelPcs
from verifier.collateral.pcs_items import pck_crl_key, qe_identity_key, root_ca_crl_key, tcb_info_key
from verifier.tee.tdx.collateral import verify_collateral
from verifier.tee.tdx.collateral_documents import collateral_from_files
from verifier.tee.tdx.pck import pck_chain
from verifier.tee.tdx.pcs import collateral_from_source, fetch_collateral
from verifier.tee.tdx.quote import parse_quote
from verifier.trust.anchors import TrustAnchors

VECTOR = "tdx/tdx-v4-dcapqvl-sample"
AT = dt.datetime(2025, 7, 1, tzinfo=dt.UTC)
FMSPC = bytes.fromhex("b0c06f000000")


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _serve_vector(kds: FakeKds, folder: Path, prefix: str = "") -> None:
    def chain(name: str) -> str:
        return urllib.parse.quote((folder / name).read_text())

    kds.serve(
        f"{prefix}/tdx/certification/v4/tcb?fmspc=B0C06F000000",
        Reply(
            body=(folder / "tcb_info.json").read_bytes(),
            headers={"TCB-Info-Issuer-Chain": chain("tcb_info_issuer_chain.pem")},
        ),
    )
    kds.serve(
        f"{prefix}/tdx/certification/v4/qe/identity",
        Reply(
            body=(folder / "qe_identity.json").read_bytes(),
            headers={"SGX-Enclave-Identity-Issuer-Chain": chain("qe_identity_issuer_chain.pem")},
        ),
    )
    kds.serve(
        f"{prefix}/sgx/certification/v4/pckcrl?ca=platform&encoding=der",
        Reply(
            body=(folder / "pck_crl.der").read_bytes(),
            headers={"SGX-PCK-CRL-Issuer-Chain": chain("pck_crl_issuer_chain.pem")},
        ),
    )
    kds.serve("/IntelSGXRootCA.der", Reply(body=(folder / "root_ca_crl.der").read_bytes()))
    kds.serve(
        f"{prefix}/sgx/certification/v4/rootcacrl", Reply(body=(folder / "root_ca_crl.der").read_bytes().hex().encode())
    )


def test_keys_and_urls() -> None:
    assert tcb_info_key(FMSPC).cache_id() == "intel.tcb_info?fmspc=B0C06F000000"
    assert pck_crl_key("processor").cache_id() == "intel.pck_crl?ca=processor"
    pcs = IntelPcs()
    assert (
        pcs.url(tcb_info_key(FMSPC))
        == "https://api.trustedservices.intel.com/tdx/certification/v4/tcb?fmspc=B0C06F000000"
    )
    assert pcs.url(qe_identity_key()) == "https://api.trustedservices.intel.com/tdx/certification/v4/qe/identity"
    assert (
        pcs.url(pck_crl_key("platform"))
        == "https://api.trustedservices.intel.com/sgx/certification/v4/pckcrl?ca=platform&encoding=der"
    )
    assert pcs.url(root_ca_crl_key()) == "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
    assert (
        IntelPcs("https://pccs.example:8081/").url(qe_identity_key())
        == "https://pccs.example:8081/tdx/certification/v4/qe/identity"
    )
    for key in (
        CollateralKey("intel.tcb_info", (("fmspc", "zz"),)),
        CollateralKey("intel.pck_crl", (("ca", "x"),)),
        CollateralKey("amd.vcek"),
    ):
        with pytest.raises(CollateralUnavailableError) as info:
            pcs.url(key)
        assert info.value.code == "COLLATERAL_KEY_INVALID"
    with pytest.raises(ValueError):
        pck_crl_key("root")


def test_fetch_vector_collateral(kds_server: FakeKds, vectors_dir: Path, trust_anchors_dir: Path) -> None:
    folder = vectors_dir / VECTOR
    _serve_vector(kds_server, folder)
    pcs = IntelPcs(kds_server.url, root_ca_crl_url=kds_server.url + "/IntelSGXRootCA.der")
    item = pcs.fetch(tcb_info_key(FMSPC), at=AT)
    envelope: dict[str, Any] = json.loads(item.data)
    assert envelope["issuer_chain"] == (folder / "tcb_info_issuer_chain.pem").read_text()
    assert item.next_update == dt.datetime(2025, 7, 19, 10, 16, 3, tzinfo=dt.UTC) and item.source == "pcs"
    col = collateral_from_source(pcs, FMSPC, "platform", AT)
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.name != "collateral.json"}
    assert col == collateral_from_files(files)
    issuer = pck_chain(parse_quote((folder / "evidence.bin").read_bytes()).pck_chain_pem)[0].issuer
    verify_collateral(col, TrustAnchors.from_directory(trust_anchors_dir), AT, pck_issuer=issuer)
    cached = CachedSource(pcs, None)
    assert collateral_from_source(cached, FMSPC, "platform", AT) == col
    assert collateral_from_source(cached, FMSPC, "platform", AT) == col
    assert kds_server.count("/tdx/certification/v4/tcb") == 3  # two direct fetches, one through the cache


def test_fetch_collateral_per_item(kds_server: FakeKds, vectors_dir: Path) -> None:
    folder = vectors_dir / VECTOR
    _serve_vector(kds_server, folder)
    cached = CachedSource(IntelPcs(kds_server.url, root_ca_crl_url=kds_server.url + "/IntelSGXRootCA.der"), None)
    first = fetch_collateral(cached, FMSPC, "platform", AT)
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.name != "collateral.json"}
    assert first.collateral == collateral_from_files(files) and first.errors == {}
    assert set(first.sources.values()) == {"vendor"}  # IntelPcs says "pcs"
    second = fetch_collateral(cached, FMSPC, "platform", AT)
    assert second.collateral == first.collateral and set(second.sources.values()) == {"cache"}
    unknown = fetch_collateral(cached, bytes(6), "processor", AT)  # 404s are recorded per item, never raised
    assert {item: error.code for item, error in unknown.errors.items()} == {
        "tdx.tcb_info": "COLLATERAL_NOT_FOUND",
        "tdx.pck_crl": "COLLATERAL_NOT_FOUND",
    }
    assert unknown.collateral.has("tdx.qe_identity") and not unknown.collateral.has("tdx.tcb_info")


def test_pccs_base_and_hex_root_crl(kds_server: FakeKds, vectors_dir: Path) -> None:
    folder = vectors_dir / VECTOR
    _serve_vector(kds_server, folder, prefix="/pccs")
    pcs = IntelPcs(kds_server.url + "/pccs", root_ca_crl_url=kds_server.url + "/pccs/sgx/certification/v4/rootcacrl")
    col = collateral_from_source(pcs, FMSPC, "platform", AT)
    assert col.root_ca_crl == (folder / "root_ca_crl.der").read_bytes() and col.complete


def test_missing_issuer_chain_header_is_malformed(kds_server: FakeKds, vectors_dir: Path) -> None:
    kds_server.serve(
        "/tdx/certification/v4/qe/identity", Reply(body=(vectors_dir / VECTOR / "qe_identity.json").read_bytes())
    )
    with pytest.raises(CollateralUnavailableError) as info:
        IntelPcs(kds_server.url).fetch(qe_identity_key(), at=AT)
    assert info.value.code == "COLLATERAL_MALFORMED"
    kds_server.serve(
        "/sgx/certification/v4/pckcrl", Reply(body=b"not a crl", headers={"SGX-PCK-CRL-Issuer-Chain": "x"})
    )
    with pytest.raises(CollateralUnavailableError) as info:
        IntelPcs(kds_server.url).fetch(pck_crl_key("platform"), at=AT)
    assert info.value.code == "COLLATERAL_MALFORMED"


def test_retry_after_then_success(kds_server: FakeKds, vectors_dir: Path) -> None:
    folder = vectors_dir / VECTOR
    kds_server.serve(
        "/IntelSGXRootCA.der",
        Reply(429, headers={"Retry-After": "2"}),
        Reply(body=(folder / "root_ca_crl.der").read_bytes()),
    )
    sleeps = Sleeps()
    pcs = IntelPcs(kds_server.url, root_ca_crl_url=kds_server.url + "/IntelSGXRootCA.der", sleep=sleeps)
    assert pcs.fetch(root_ca_crl_key(), at=AT).next_update is not None
    assert sleeps == [2.0] and kds_server.count("/IntelSGXRootCA.der") == 2


def test_rate_limited_past_budget(kds_server: FakeKds) -> None:
    kds_server.serve("/tdx/certification/v4/qe/identity", Reply(429, headers={"Retry-After": "60"}))
    with pytest.raises(CollateralUnavailableError) as info:
        IntelPcs(kds_server.url, sleep=Sleeps()).fetch(qe_identity_key(), at=AT)
    assert info.value.code == "COLLATERAL_RATE_LIMITED" and info.value.retry_after == 60.0


def test_timeout_and_not_found(kds_server: FakeKds) -> None:
    kds_server.serve("/tdx/certification/v4/qe/identity", Reply(body=b"{}", delay=2.0))
    with pytest.raises(CollateralUnavailableError) as info:
        IntelPcs(kds_server.url, timeout=0.3).fetch(qe_identity_key(), at=AT)
    assert info.value.code == "COLLATERAL_TIMEOUT"
    with pytest.raises(CollateralUnavailableError) as info:
        IntelPcs(kds_server.url).fetch(tcb_info_key(bytes(6)), at=AT)
    assert info.value.code == "COLLATERAL_NOT_FOUND"
