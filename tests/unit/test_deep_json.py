"""JSON nested deeper than Python's recursive decoder can take (e.g. thousands of '[') in attacker-supplied key
material or broker requests: no `cnf`, or a 4xx, never a RecursionError (gRPC INTERNAL / HTTP 500)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.service_helpers import make_harness
from verifier.appraisal.model import Tier
from verifier.results.cnf import MAX_KEY_BYTES, json_depth_within, key_to_jwk, runtime_key_jwk
from verifier.service import AppraisalRequest
from verifier.storage.engine import Database

DEEP_ARRAY = b'{"kty":' + b"[" * (MAX_KEY_BYTES - 8)
DEEP_OBJECT = b'{"a":' * (MAX_KEY_BYTES // 5)


def _payload(token: str) -> dict[str, Any]:
    segment = token.split(".")[1]
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return data


@pytest.mark.parametrize("data", [DEEP_ARRAY, DEEP_OBJECT, b"{" + b"[" * 10 + b"]" * 10 + b"}"])
def test_deeply_nested_runtime_data_is_no_key(data: bytes) -> None:
    assert len(data) <= MAX_KEY_BYTES
    assert runtime_key_jwk(data) is None  # raised RecursionError before (the first two)


def test_brackets_inside_strings_do_not_count() -> None:
    jwk = key_to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key())
    assert jwk is not None
    tricky = {**jwk, "kid": "[{" * 100 + '\\"]', "key_ops": ["encrypt"]}
    assert runtime_key_jwk(json.dumps(tricky).encode()) == tricky
    assert json_depth_within(b'{"a": "[[[[", "b": [1, [2]]}', 3)
    assert not json_depth_within(b'{"a": "]]]]", "b": [1, [2]]}', 2)
    assert json_depth_within(b'"\\\\"[', 1) and not json_depth_within(b'"\\\\"[[', 1)  # an escaped backslash


def test_nitro_document_with_a_deeply_nested_public_key(db: Database) -> None:
    """The Nitro document's own public_key becomes `cnf` when no runtime data is sent: nested JSON there crashed
    the appraisal; now the result is signed and binds no key."""
    h = make_harness(db)
    h.approve()
    key = b'{"kty":' + b"[" * 1000
    for runtime_data in (None, key):
        result = h.service.appraise(
            AppraisalRequest(tee="nitro", evidence=h.pki.mint(public_key=key), runtime_data=runtime_data)
        )
        assert result.appraisal.status is Tier.AFFIRMING
        assert "cnf" not in _payload(result.token)


# --- the reference key broker -------------------------------------------------------------------------------------


def _broker_post(tmp_path: Path, body: bytes) -> tuple[int, dict[str, Any]]:
    from tests.unit.broker.test_broker import NOW, write
    from verifier.broker.config import load_config
    from verifier.broker.http import make_server, serve_in_thread
    from verifier.broker.release import Broker
    from verifier.client.jwks import JwksCache
    from verifier.clock import FixedClock

    def jwks() -> dict[str, object]:
        return {"keys": []}

    config = load_config(write(tmp_path, [{"name": "db", "file": "s.bin", "workload": "app 1"}]))
    broker = Broker(config, JwksCache(jwks), lambda: b"n" * 32, FixedClock(NOW))
    server = make_server(broker, "127.0.0.1", 0)
    serve_in_thread(server)
    try:
        nonce, _ = broker.new_challenge()
        body = body.replace(b"NONCE", base64.urlsafe_b64encode(nonce).rstrip(b"="))
        request = urllib.request.Request(f"http://127.0.0.1:{server.server_address[1]}/v1/release", body)
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=5)
        return info.value.code, json.loads(info.value.read())
    finally:
        server.shutdown()
        server.server_close()


def test_broker_refuses_a_deeply_nested_body(tmp_path: Path) -> None:
    assert _broker_post(tmp_path, b"[" * 60000) == (
        400,
        {"error": "REQUEST_MALFORMED", "message": "the body is not JSON"},
    )


def test_broker_refuses_a_token_with_a_deeply_nested_header(tmp_path: Path) -> None:
    header = base64.urlsafe_b64encode(b'{"alg":' + b"[" * 30000).rstrip(b"=").decode()
    body = json.dumps({"secret": "db", "nonce": "NONCE", "token": f"{header}.e30.AA"}).encode()
    status, reply = _broker_post(tmp_path, body)
    assert (status, reply["error"]) == (401, "TOKEN_MALFORMED")


def test_dcap_qvl_collateral_with_a_lone_surrogate_is_malformed() -> None:
    from verifier.errors import EvidenceError
    from verifier.tee.tdx.collateral_documents import collateral_from_files

    for doc in (
        b'{"tcb_info": "\\ud800", "tcb_info_signature": "' + b"00" * 64 + b'"}',
        b'{"pck_crl_issuer_chain": "\\udfff"}',
    ):
        with pytest.raises(EvidenceError) as error:
            collateral_from_files({"collateral.json": doc})
        assert error.value.code == "TDX_COLLATERAL_MALFORMED"


def test_client_library_refuses_deeply_nested_tokens() -> None:
    from verifier.client.results import ResultError, verify_result

    deep = base64.urlsafe_b64encode(b"[" * 100_000).rstrip(b"=").decode()
    for token in (f"{deep}.e30.AA", f"eyJhbGciOiJFUzI1NiJ9.{deep}.AA"):
        with pytest.raises(ResultError) as error:
            verify_result(token, {"keys": []})
        assert error.value.code in ("TOKEN_MALFORMED", "TOKEN_KID_UNKNOWN")
