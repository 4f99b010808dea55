"""NVIDIA's RIM service and OCSP responder clients (verifier.collateral.nvidia) against loopback fakes: URL and
request shapes as NVIDIA's verifier sends them, answers decoded strictly, every failure a stable code."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp

from tests.fakes.kds_server import FakeKds, Reply, kds_server_fixture
from tests.fakes.nvidia_ocsp import (
    AT,
    DAY,
    Behaviour,
    FakeNvidiaPki,
    FakeOcspResponder,
    nvidia_pki_fixture,
    ocsp_responder_fixture,
    unsuccessful,
)
from verifier.collateral.base import CollateralKey, CollateralUnavailableError
from verifier.collateral.nvidia import (
    DEFAULT_OCSP_URL,
    DEFAULT_RIM_URL,
    RIM_MAX_AGE,
    NvidiaOcsp,
    NvidiaRimService,
    rim_document,
)
from verifier.collateral.nvidia_keys import cert_id_of, ocsp_key, open_envelope, rim_key
from verifier.errors import ConfigError
from verifier.settings import Settings
from verifier.trust.ocsp import cert_id

kds_server = kds_server_fixture
nvidia_pki = nvidia_pki_fixture
ocsp_responder = ocsp_responder_fixture
DRIVER = "NV_GPU_DRIVER_GH100_545.00"
XML = b'<?xml version="1.0"?><SoftwareIdentity/>'


def rim_answer(rim: bytes, rim_id: str = DRIVER, **extra: object) -> bytes:
    """An answer shaped like NVIDIA's: id, rim (base64), sha256, last_updated, rim_format, request_id."""
    body = {"id": rim_id, "rim": base64.b64encode(rim).decode(), "sha256": "00", "last_updated": "2024-01-01", **extra}
    return json.dumps({**body, "rim_format": "SWID", "request_id": "r1"}).encode()


def test_the_defaults_are_nvidias_services() -> None:
    """nv-local-gpu-verifier config.py: RIM_SERVICE_BASE_URL https://rim.attestation.nvidia.com/v1/rim/,
    OCSP_URL https://ocsp.ndis.nvidia.com/."""
    settings = Settings()
    assert (settings.nvidia_rim_url, settings.nvidia_ocsp_url) == (DEFAULT_RIM_URL, DEFAULT_OCSP_URL)
    assert NvidiaRimService().url(rim_key(DRIVER)) == "https://rim.attestation.nvidia.com/v1/rim/" + DRIVER
    assert NvidiaOcsp().url == "https://ocsp.ndis.nvidia.com/"
    with pytest.raises(ConfigError):
        NvidiaOcsp("http://ocsp.example.com")  # plain http only to loopback


def test_a_real_rim_comes_back_byte_for_byte(kds_server: FakeKds, vectors_dir: Path) -> None:
    rim = (vectors_dir / "gpu" / "gpu-hopper-nvidia-sample-2023" / "driver_rim.xml").read_bytes()
    kds_server.serve(f"/v1/rim/{DRIVER}", Reply(body=rim_answer(rim), headers={"Content-Type": "application/json"}))
    item = NvidiaRimService(kds_server.url).fetch(rim_key(DRIVER), at=AT)
    assert item.data == rim and item.source == "nvidia-rim"
    assert item.next_update == item.fetched_at + RIM_MAX_AGE
    assert kds_server.requests == [f"/v1/rim/{DRIVER}"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>", "Expecting value"),
        (b"[]", 'not a JSON object with a "rim" string'),
        (json.dumps({"rim": 5}).encode(), 'not a JSON object with a "rim" string'),
        (json.dumps({"rim": "not base64!"}).encode(), "base64"),
        (rim_answer(XML, "NV_GPU_DRIVER_GH100_550.90.07"), "the answer is for 'NV_GPU_DRIVER_GH100_550.90.07'"),
        (rim_answer(b"\x00\x01binary"), "not an XML document"),
        (b"[" * 100_000, ""),
    ],
    ids=["html", "list", "rim-not-string", "bad-base64", "other-id", "not-xml", "deep"],
)
def test_malformed_rim_answers_are_refused(body: bytes, message: str) -> None:
    with pytest.raises(CollateralUnavailableError) as error:
        rim_document(body, DRIVER)
    assert error.value.code == "COLLATERAL_MALFORMED" and message in error.value.message


def test_rim_ids_and_keys() -> None:
    assert rim_key("NV_GPU_VBIOS_1010_0200_882_96005E0001").cache_id() == (
        "nvidia.rim?id=NV_GPU_VBIOS_1010_0200_882_96005E0001"
    )
    for bad in ("", "../etc/passwd", "NV GPU", "a" * 129, "id?x=1"):
        with pytest.raises(ValueError):
            rim_key(bad)
    service = NvidiaRimService("http://127.0.0.1:1")
    for key in (CollateralKey("nvidia.rim", (("id", "../x"),)), CollateralKey("nvidia.rim"), CollateralKey("amd.crl")):
        with pytest.raises(CollateralUnavailableError) as error:
            service.url(key)
        assert error.value.code == "COLLATERAL_KEY_INVALID"


def test_an_unknown_rim_is_not_found(kds_server: FakeKds) -> None:
    with pytest.raises(CollateralUnavailableError) as error:
        NvidiaRimService(kds_server.url).fetch(rim_key(DRIVER), at=AT)
    assert error.value.code == "COLLATERAL_NOT_FOUND"


# --- the OCSP responder -------------------------------------------------------------------------------------------


def test_ocsp_is_a_post_with_a_sha384_certid_and_the_nonce_kept_beside_the_answer(
    nvidia_pki: FakeNvidiaPki, ocsp_responder: FakeOcspResponder
) -> None:
    cid = cert_id(nvidia_pki.chain[2], nvidia_pki.chain[3])
    item = NvidiaOcsp(ocsp_responder.url, nonce=lambda: b"\x07" * 32).fetch(ocsp_key(cid), at=AT)
    assert ocsp_responder.content_types == ["application/ocsp-request"]
    [request] = ocsp_responder.requests
    assert isinstance(request.hash_algorithm, hashes.SHA384)
    assert (request.issuer_name_hash, request.issuer_key_hash, request.serial_number) == (
        cid.issuer_name_hash,
        cid.issuer_key_hash,
        cid.serial,
    )
    [nonce] = ocsp_responder.nonces
    assert nonce is not None and nonce.critical and nonce.value.nonce == b"\x07" * 32
    response, kept = open_envelope(item.data)
    assert kept == b"\x07" * 32
    assert ocsp.load_der_ocsp_response(response).serial_number == cid.serial
    assert item.next_update == AT + DAY and item.source == "nvidia-ocsp"


def test_an_answer_without_nextupdate_is_not_cacheable(
    nvidia_pki: FakeNvidiaPki, ocsp_responder: FakeOcspResponder
) -> None:
    ocsp_responder.script[nvidia_pki.chain[1].serial_number] = Behaviour(next_update=None)
    item = NvidiaOcsp(ocsp_responder.url).fetch(ocsp_key(cert_id(nvidia_pki.chain[1], nvidia_pki.chain[2])), at=AT)
    assert item.next_update is None


@pytest.mark.parametrize(
    ("behaviour", "code"),
    [
        (Behaviour(raw=unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER)), "COLLATERAL_FETCH_FAILED"),
        (Behaviour(raw=unsuccessful(ocsp.OCSPResponseStatus.INTERNAL_ERROR)), "COLLATERAL_FETCH_FAILED"),
        (Behaviour(raw=b"<html>busy</html>"), "COLLATERAL_MALFORMED"),
        (Behaviour(http_status=500), "COLLATERAL_FETCH_FAILED"),
        (Behaviour(http_status=404), "COLLATERAL_NOT_FOUND"),
    ],
    ids=["tryLater", "internalError", "html", "http-500", "http-404"],
)
def test_responder_failures_are_unavailable(
    nvidia_pki: FakeNvidiaPki, ocsp_responder: FakeOcspResponder, behaviour: Behaviour, code: str
) -> None:
    ocsp_responder.script[nvidia_pki.chain[1].serial_number] = behaviour
    with pytest.raises(CollateralUnavailableError) as error:
        NvidiaOcsp(ocsp_responder.url).fetch(ocsp_key(cert_id(nvidia_pki.chain[1], nvidia_pki.chain[2])), at=AT)
    assert error.value.code == code


def test_ocsp_keys_round_trip_and_refuse_anything_else(nvidia_pki: FakeNvidiaPki) -> None:
    cid = cert_id(nvidia_pki.chain[1], nvidia_pki.chain[2])
    key = ocsp_key(cid)
    assert cert_id_of(key) == cid
    assert key.cache_id() == (
        f"nvidia.ocsp?hash=sha384&issuer_name_hash={cid.issuer_name_hash.hex()}"
        f"&issuer_key_hash={cid.issuer_key_hash.hex()}&serial={cid.serial:x}"
    )
    broken = [
        CollateralKey("nvidia.ocsp", (("hash", "md5"), *key.params[1:])),
        CollateralKey("nvidia.ocsp", (key.params[0], ("issuer_name_hash", "00"), *key.params[2:])),
        CollateralKey("nvidia.ocsp", key.params[:3]),
        CollateralKey("nvidia.ocsp", (*key.params[:3], ("serial", ""))),
    ]
    for bad in broken:
        with pytest.raises(CollateralUnavailableError) as error:
            NvidiaOcsp("http://127.0.0.1:1").fetch(bad, at=AT)
        assert error.value.code == "COLLATERAL_KEY_INVALID"


def test_envelopes_are_strict() -> None:
    for bad in (b"", b"{}", b'{"nonce": null}', b'{"nonce": 1, "response": ""}', b'{"nonce": null, "response": "!"}'):
        with pytest.raises(ValueError):
            open_envelope(bad)
    assert open_envelope(b'{"nonce": null, "response": "AAE="}') == (b"\x00\x01", None)
    with pytest.raises(ValueError):
        open_envelope(b"[" * 100_000)
