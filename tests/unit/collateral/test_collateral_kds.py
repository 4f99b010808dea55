"""AMD KDS client: URL shapes (pub. 57230), fetches from the fake KDS, retry/timeout/size handling."""

from __future__ import annotations

import datetime as dt
import json
import socket
import time
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning

from tests.fakes.kds_server import FakeKds, Reply, kds_server_fixture, make_crl  # noqa: F401 - fixture
from verifier.collateral.base import CollateralKey, CollateralUnavailableError, OfflineSource
from verifier.collateral.cache import CachedSource
from verifier.collateral.http import HttpClient, check_base_url, parse_retry_after
from verifier.collateral.kds import AmdKds
from verifier.errors import ConfigError
from verifier.tee.sevsnp.collateral_keys import cert_chain_key, crl_key, vcek_key
from verifier.tee.sevsnp.tcb import Product, decode_tcb

AT = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
GOSEVGUEST = "snp-milan-v2-vcek-gosevguest"


def _vector(vectors_dir: Path, vector_id: str) -> dict[str, Any]:
    manifest = json.loads((vectors_dir / "MANIFEST.json").read_text())
    vector: dict[str, Any] = next(v for v in manifest["vectors"] if v["id"] == vector_id)
    return vector


def _key_for(vector: dict[str, Any]) -> CollateralKey:
    product = Product(vector["what"]["processor_family"])
    tcb = decode_tcb(bytes.fromhex(vector["facts"]["reported_tcb"]["raw"]), product)
    return vcek_key(product, bytes.fromhex(vector["facts"]["chip_id"]), tcb)


def _not_after_utc(der: bytes) -> dt.datetime:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return x509.load_der_x509_certificate(der).not_valid_after_utc


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


# --- URL shapes -----------------------------------------------------------------------------------------------


def test_milan_url_matches_go_sev_guest(vectors_dir: Path) -> None:
    vector = _vector(vectors_dir, GOSEVGUEST)
    key = _key_for(vector)
    chip = vector["facts"]["chip_id"]
    assert chip.startswith("3ac3fe21")
    # go-sev-guest verify_test.go TestRealAttestationVerification
    assert AmdKds().url(key) == f"https://kdsintf.amd.com/vcek/v1/Milan/{chip}?blSPL=2&teeSPL=0&snpSPL=5&ucodeSPL=68"
    assert key.kind == "amd.vcek"
    assert key.cache_id() == f"amd.vcek?product=Milan&hwid={chip}&blSPL=2&teeSPL=0&snpSPL=5&ucodeSPL=68"


def test_genoa_url(vectors_dir: Path) -> None:
    vector = _vector(vectors_dir, "snp-genoa-v5-vcek-oak")
    url = AmdKds("https://kds.example/").url(_key_for(vector))
    assert url == (
        f"https://kds.example/vcek/v1/Genoa/{vector['facts']['chip_id']}?blSPL=10&teeSPL=0&snpSPL=25&ucodeSPL=84"
    )


def test_turin_url_uses_8_byte_hwid_and_fmc(vectors_dir: Path) -> None:
    vector = _vector(vectors_dir, "snp-turin-v5-vcek-oak")
    key = _key_for(vector)
    assert key.param("hwid") == "3b42092f69c656d3" == vector["what"]["signer_tcb_extensions"]["hwID"]
    assert AmdKds().url(key) == (
        "https://kdsintf.amd.com/vcek/v1/Turin/3b42092f69c656d3?fmcSPL=0&blSPL=1&teeSPL=0&snpSPL=2&ucodeSPL=71"
    )
    tcb = decode_tcb(bytes.fromhex("0001000200000047"), Product.TURIN)
    assert vcek_key(Product.TURIN, bytes.fromhex("3b42092f69c656d3"), tcb) == key


def test_hwid_length_checked() -> None:
    milan = decode_tcb(bytes.fromhex("0200000000000544"), Product.MILAN)
    with pytest.raises(ValueError):
        vcek_key(Product.MILAN, b"\x01" * 8, milan)
    turin = decode_tcb(bytes.fromhex("0001000200000047"), Product.TURIN)
    with pytest.raises(ValueError):
        vcek_key(Product.TURIN, b"\x01" * 16, turin)


@pytest.mark.parametrize("product", list(Product))
@pytest.mark.parametrize("signer", ["vcek", "vlek"])
def test_chain_and_crl_urls(product: Product, signer: Any) -> None:
    kds = AmdKds()
    assert kds.url(cert_chain_key(product, signer)) == f"https://kdsintf.amd.com/{signer}/v1/{product}/cert_chain"
    assert kds.url(crl_key(product, signer)) == f"https://kdsintf.amd.com/{signer}/v1/{product}/crl"
    assert cert_chain_key(product, signer).kind == "amd.cert_chain"
    assert crl_key(product, signer).kind == "amd.crl"


def test_vlek_is_not_downloadable() -> None:
    key = CollateralKey("amd.vlek", (("product", "Milan"),))
    with pytest.raises(CollateralUnavailableError) as info:
        AmdKds().fetch(key, at=AT)
    assert info.value.code == "COLLATERAL_NOT_DOWNLOADABLE"


def test_unknown_kind_and_bad_params() -> None:
    for key in (CollateralKey("intel.tcb_info"), CollateralKey("amd.cert_chain", (("product", "Naples"),))):
        with pytest.raises(CollateralUnavailableError) as info:
            AmdKds().url(key)
        assert info.value.code == "COLLATERAL_KEY_INVALID"


@pytest.mark.parametrize("url", ["http://kdsintf.amd.com", "ftp://127.0.0.1/", "file:///etc/passwd", "https://"])
def test_base_url_refused(url: str) -> None:
    with pytest.raises(ConfigError):
        AmdKds(url)


@pytest.mark.parametrize(
    "url", ["https://kdsintf.amd.com", "http://127.0.0.1:8080", "http://[::1]:1", "http://localhost"]
)
def test_base_url_accepted(url: str) -> None:
    assert check_base_url(url + "/") == url


def test_parse_retry_after() -> None:
    now = dt.datetime(2025, 1, 1, 0, 0, 0, tzinfo=dt.UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 01 Jan 2025 00:00:05 GMT", now=now) == 5.0
    assert parse_retry_after("Tue, 31 Dec 2024 23:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-3") is None
    assert parse_retry_after(None) is None


# --- fetches from the fake KDS --------------------------------------------------------------------------------


@pytest.mark.parametrize("vector_id", [GOSEVGUEST, "snp-genoa-v5-vcek-oak", "snp-turin-v5-vcek-oak"])
def test_fetch_vcek(kds_server: FakeKds, vectors_dir: Path, trust_anchors_dir: Path, vector_id: str) -> None:
    targets = kds_server.add_amd_vectors(vectors_dir, trust_anchors_dir)
    vector = _vector(vectors_dir, vector_id)
    der = (vectors_dir / vector["dir"] / "vcek.der").read_bytes()
    item = AmdKds(kds_server.url).fetch(_key_for(vector), at=AT)
    assert kds_server.requests == [targets[vector_id]]
    assert item.data == der
    assert item.source == "kds"
    assert item.next_update == _not_after_utc(der)
    assert item.next_update.isoformat().replace("+00:00", "Z") == vector["what"]["signer_cert_validity"][1]


@pytest.mark.parametrize("product", list(Product))
def test_fetch_cert_chain(kds_server: FakeKds, vectors_dir: Path, trust_anchors_dir: Path, product: Product) -> None:
    kds_server.add_amd_vectors(vectors_dir, trust_anchors_dir)
    pem = (trust_anchors_dir / "amd" / f"cert_chain_{product.value.lower()}_vcek.pem").read_bytes()
    item = AmdKds(kds_server.url).fetch(cert_chain_key(product), at=AT)
    assert item.data == pem
    certs = x509.load_pem_x509_certificates(pem)
    assert len(certs) == 2
    assert item.next_update == min(c.not_valid_after_utc for c in certs)


def test_fetch_crl(kds_server: FakeKds) -> None:
    next_update = dt.datetime(2025, 2, 1, tzinfo=dt.UTC)
    der = make_crl(next_update)
    kds_server.serve("/vcek/v1/Milan/crl", Reply(body=der))
    item = AmdKds(kds_server.url).fetch(crl_key(Product.MILAN), at=AT)
    assert (item.data, item.next_update, item.source) == (der, next_update, "kds")


def test_crl_without_next_update_is_cached_for_a_day(kds_server: FakeKds) -> None:
    kds_server.serve("/vlek/v1/Genoa/crl", Reply(body=make_crl(None)))
    item = AmdKds(kds_server.url).fetch(crl_key(Product.GENOA, "vlek"), at=AT)
    assert item.next_update == item.fetched_at + dt.timedelta(days=1)


@pytest.mark.parametrize(
    "key",
    [
        crl_key(Product.MILAN),
        cert_chain_key(Product.MILAN),
        CollateralKey(
            "amd.vcek",
            (
                ("product", "Milan"),
                ("hwid", "00" * 64),
                ("blSPL", "1"),
                ("teeSPL", "0"),
                ("snpSPL", "1"),
                ("ucodeSPL", "1"),
            ),
        ),
    ],
)
def test_malformed(kds_server: FakeKds, key: CollateralKey) -> None:
    kds_server.serve(AmdKds(kds_server.url).url(key).removeprefix(kds_server.url), Reply(body=b"<html>oops</html>"))
    with pytest.raises(CollateralUnavailableError) as info:
        AmdKds(kds_server.url).fetch(key, at=AT)
    assert info.value.code == "COLLATERAL_MALFORMED"


def test_retry_after_seconds_respected(kds_server: FakeKds) -> None:
    der = make_crl(dt.datetime(2025, 2, 1, tzinfo=dt.UTC))
    kds_server.serve("/vcek/v1/Milan/crl", Reply(429, headers={"Retry-After": "3"}), Reply(body=der))
    sleeps = Sleeps()
    item = AmdKds(kds_server.url, sleep=sleeps).fetch(crl_key(Product.MILAN), at=AT)
    assert item.data == der
    assert sleeps.calls == [3.0]
    assert kds_server.count("/vcek/v1/Milan/crl") == 2


def test_503_with_http_date_retry_after(kds_server: FakeKds) -> None:
    der = make_crl(dt.datetime(2025, 2, 1, tzinfo=dt.UTC))
    when = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=4)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    kds_server.serve("/vcek/v1/Milan/crl", Reply(503, headers={"Retry-After": when}), Reply(body=der))
    sleeps = Sleeps()
    AmdKds(kds_server.url, sleep=sleeps).fetch(crl_key(Product.MILAN), at=AT)
    assert len(sleeps.calls) == 1 and 2.0 <= sleeps.calls[0] <= 4.0


def test_rate_limited_past_retry_count(kds_server: FakeKds) -> None:
    kds_server.serve("/vcek/v1/Milan/crl", Reply(429, headers={"Retry-After": "1"}))
    sleeps = Sleeps()
    with pytest.raises(CollateralUnavailableError) as info:
        AmdKds(kds_server.url, sleep=sleeps, retries=2).fetch(crl_key(Product.MILAN), at=AT)
    assert info.value.code == "COLLATERAL_RATE_LIMITED"
    assert info.value.retry_after == 1.0
    assert sleeps.calls == [1.0, 1.0]
    assert kds_server.count("/vcek/v1/Milan/crl") == 3


def test_rate_limited_past_wait_budget(kds_server: FakeKds) -> None:
    kds_server.serve("/vcek/v1/Milan/crl", Reply(429, headers={"Retry-After": "6"}))
    sleeps = Sleeps()
    with pytest.raises(CollateralUnavailableError) as info:
        AmdKds(kds_server.url, sleep=sleeps, max_wait=10.0).fetch(crl_key(Product.MILAN), at=AT)
    assert (info.value.code, info.value.retry_after) == ("COLLATERAL_RATE_LIMITED", 6.0)
    assert sleeps.calls == [6.0]  # a second 6 s wait would exceed 10 s
    assert kds_server.count("/vcek/v1/Milan/crl") == 2


def test_429_without_retry_after(kds_server: FakeKds) -> None:
    kds_server.serve("/vcek/v1/Milan/crl", Reply(429))
    sleeps = Sleeps()
    with pytest.raises(CollateralUnavailableError) as info:
        AmdKds(kds_server.url, sleep=sleeps).fetch(crl_key(Product.MILAN), at=AT)
    assert (info.value.code, info.value.retry_after, sleeps.calls) == ("COLLATERAL_RATE_LIMITED", None, [])


def test_slow_reply_times_out(kds_server: FakeKds) -> None:
    kds_server.serve("/vcek/v1/Milan/crl", Reply(body=b"late", delay=5.0))
    start = time.monotonic()
    with pytest.raises(CollateralUnavailableError) as info:
        AmdKds(kds_server.url, timeout=0.3).fetch(crl_key(Product.MILAN), at=AT)
    assert info.value.code == "COLLATERAL_TIMEOUT"
    assert time.monotonic() - start < 2.0


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (404, "COLLATERAL_NOT_FOUND"),
        (400, "COLLATERAL_FETCH_FAILED"),
        (500, "COLLATERAL_FETCH_FAILED"),
        (503, "COLLATERAL_FETCH_FAILED"),
        (204, "COLLATERAL_FETCH_FAILED"),
    ],
)
def test_status_codes(kds_server: FakeKds, status: int, code: str) -> None:
    kds_server.serve("/vcek/v1/Milan/crl", Reply(status))
    with pytest.raises(CollateralUnavailableError) as info:
        AmdKds(kds_server.url).fetch(crl_key(Product.MILAN), at=AT)
    assert info.value.code == code


def test_unknown_path_is_not_found(kds_server: FakeKds) -> None:
    with pytest.raises(CollateralUnavailableError) as info:
        AmdKds(kds_server.url).fetch(crl_key(Product.TURIN), at=AT)
    assert info.value.code == "COLLATERAL_NOT_FOUND"


def test_redirects_are_refused(kds_server: FakeKds) -> None:
    kds_server.serve("/vcek/v1/Milan/crl", Reply(302, headers={"Location": f"{kds_server.url}/elsewhere"}))
    with pytest.raises(CollateralUnavailableError) as info:
        AmdKds(kds_server.url).fetch(crl_key(Product.MILAN), at=AT)
    assert info.value.code == "COLLATERAL_FETCH_FAILED"
    assert kds_server.count("/elsewhere") == 0


@pytest.mark.parametrize("send_length", [True, False])
def test_huge_body(kds_server: FakeKds, send_length: bool) -> None:
    kds_server.serve("/vcek/v1/Milan/crl", Reply(body=b"\x30" * (3 << 20), send_length=send_length))
    with pytest.raises(CollateralUnavailableError) as info:
        AmdKds(kds_server.url).fetch(crl_key(Product.MILAN), at=AT)
    assert info.value.code == "COLLATERAL_TOO_LARGE"


def test_size_limit_is_settable(kds_server: FakeKds) -> None:
    kds_server.serve("/x", Reply(body=b"12345"))
    assert HttpClient(max_bytes=5).get(kds_server.url + "/x") == b"12345"
    with pytest.raises(CollateralUnavailableError) as info:
        HttpClient(max_bytes=4).get(kds_server.url + "/x")
    assert info.value.code == "COLLATERAL_TOO_LARGE"


def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(CollateralUnavailableError) as info:
        AmdKds(f"http://127.0.0.1:{port}").fetch(crl_key(Product.MILAN), at=AT)
    assert info.value.code == "COLLATERAL_FETCH_FAILED"


def test_offline_source_never_touches_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("network used")

    monkeypatch.setattr(socket, "create_connection", forbidden)
    monkeypatch.setattr(socket.socket, "connect", forbidden)
    monkeypatch.setattr(urllib.request, "urlopen", forbidden)
    for source in (OfflineSource(), CachedSource(OfflineSource(), None)):
        with pytest.raises(CollateralUnavailableError) as info:
            source.fetch(crl_key(Product.MILAN), at=AT)
        assert info.value.code == "COLLATERAL_OFFLINE"
