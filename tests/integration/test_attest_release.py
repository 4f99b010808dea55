"""Attest, then release, with real processes on loopback: the verifier server (production `serve()`, the fake AWS
root pinned beside the real ones), the reference key broker (`verifier broker`), a simulated workload in this
process (evidence minted by the fake AWS PKI), and the admin CLI registering the approved measurement."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.jwk import KeySet
from jwcrypto import jwe as jw_jwe
from jwcrypto import jwk as jw_jwk

from tests.fakes.aws_pki import FakeAwsPki
from verifier.client import JwksCache, VerifierClient, fetch_jwks_http, verify_result
from verifier.results.keys import ephemeral_key
from verifier.results.signer import ResultSigner

ROOT = Path(__file__).resolve().parents[2]
EXE = Path(sys.executable).with_name("verifier")
SECRET = b"database-password-\x00\x01\x02"
LABEL = "my-app 1.0"
OTHER = "other-app 2.0"
OTHER_PCRS = {**FakeAwsPki.default_pcrs(), 0: b"\xbb" * 48, 2: b"\xb2" * 48}
CHALLENGE_TTL, TOKEN_LIFETIME = 4, 6


def _wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float = 30) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            data: dict[str, int] = json.loads(path.read_text())
            return data
        if proc.poll() is not None:
            raise RuntimeError(f"process exited early: {proc.stderr.read().decode() if proc.stderr else ''}")
        time.sleep(0.05)
    raise TimeoutError(f"{path} did not appear")


def _post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@dataclass
class World:
    pki: FakeAwsPki
    verifier: str
    jwks_url: str
    broker: str

    def challenge(self) -> bytes:
        status, body = _post(self.broker + "/v1/challenge", {})
        assert status == 200, body
        return base64.urlsafe_b64decode(body["nonce"] + "=" * (-len(body["nonce"]) % 4))

    def release(self, token: str, nonce: bytes) -> tuple[int, dict[str, Any]]:
        return _post(
            self.broker + "/v1/release",
            {"secret": "db-password", "token": token, "nonce": base64.urlsafe_b64encode(nonce).rstrip(b"=").decode()},
        )


class Workload:
    """A TEE workload: a fresh key pair; its public key (DER SPKI) is bound into every document it requests."""

    def __init__(self, pki: FakeAwsPki) -> None:
        self.pki = pki
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.spki = self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def evidence(self, nonce: bytes, *, public_key: bytes | None = None, pcrs: dict[int, bytes] | None = None) -> bytes:
        return self.pki.mint(nonce=nonce, public_key=public_key or self.spki, pcrs=pcrs or FakeAwsPki.default_pcrs())

    def decrypt(self, token: str) -> bytes:
        key = jw_jwk.JWK.from_pem(
            self.private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        message = jw_jwe.JWE()
        message.deserialize(token, key=key)
        return bytes(message.payload)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("e2e")
    pki = FakeAwsPki(now=dt.datetime.now(dt.UTC))
    env = dict(os.environ, VERIFIER_DATABASE_URL=f"sqlite:///{tmp / 'verifier.db'}", PYTHONPATH=str(ROOT))
    env.pop("VERIFIER_SIGNING_KEY", None)
    run = lambda *args: subprocess.run([str(EXE), *args], env=env, check=True, capture_output=True)  # noqa: E731
    run("db", "upgrade")
    run("keys", "generate", "--out", str(tmp / "signing.pem"))
    for index, value in FakeAwsPki.default_pcrs().items():
        if index in (0, 1, 2):
            run("refs", "add", f"nitro.pcr{index}", value.hex(), "--label", LABEL)
    for index, value in OTHER_PCRS.items():  # another approved image sharing PCR1 (same nitro-cli build)
        if index in (0, 1, 2):
            run("refs", "add", f"nitro.pcr{index}", value.hex(), "--label", OTHER)
    env["VERIFIER_SIGNING_KEY"] = str(tmp / "signing.pem")
    env["VERIFIER_LISTEN"], env["VERIFIER_HTTP_LISTEN"] = "127.0.0.1:0", "127.0.0.1:0"
    options = {
        "pins": {"aws-nitro": [pki.root_fingerprint]},
        "port_file": str(tmp / "verifier.ports"),
        "challenge_ttl": CHALLENGE_TTL,
        "token_lifetime": TOKEN_LIFETIME,
    }
    verifier = subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.run_verifier", json.dumps(options)], env=env, cwd=ROOT, stderr=subprocess.PIPE
    )
    broker: subprocess.Popen[bytes] | None = None
    try:
        ports = _wait_for(tmp / "verifier.ports", verifier)
        (tmp / "secret.bin").write_bytes(SECRET)
        (tmp / "secret.bin").chmod(0o600)
        jwks_url = f"http://127.0.0.1:{ports['http']}/.well-known/jwks.json"
        (tmp / "broker.json").write_text(
            json.dumps(
                {
                    "verifier": {"grpc": f"127.0.0.1:{ports['grpc']}", "jwks_url": jwks_url, "issuer": "tee-verifier"},
                    "leeway_seconds": 0,
                    "secrets": [{"name": "db-password", "file": "secret.bin", "workload": LABEL}],
                }
            )
        )
        broker = subprocess.Popen(
            [
                str(EXE),
                "broker",
                "--config",
                str(tmp / "broker.json"),
                "--listen",
                "127.0.0.1:0",
                "--port-file",
                str(tmp / "broker.ports"),
            ],
            env=env,
            stderr=subprocess.PIPE,
        )
        broker_port = _wait_for(tmp / "broker.ports", broker)["http"]
        yield World(pki, f"127.0.0.1:{ports['grpc']}", jwks_url, f"http://127.0.0.1:{broker_port}")
    finally:
        for proc in (broker, verifier):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=15)
    assert verifier.returncode == 0 and broker is not None and broker.returncode == 0


def test_workload_attests_and_the_broker_releases_the_secret_as_jwe(world: World) -> None:
    workload = Workload(world.pki)
    nonce = world.challenge()
    with VerifierClient(world.verifier) as client:
        appraisal = client.appraise("nitro", workload.evidence(nonce), nonce=nonce, runtime_data=workload.spki)
    assert appraisal.status == "affirming", appraisal.findings
    # The token verifies with an independent JOSE library and with verify_result, both against the published JWKS.
    jwks = fetch_jwks_http(world.jwks_url)
    decoded = jwt.decode(appraisal.token, KeySet.import_key_set(jwks), algorithms=["ES256"])  # type: ignore[arg-type]
    assert decoded.claims["cnf"]["jwk"]["crv"] == "P-256"
    result = verify_result(appraisal.token, JwksCache(lambda: jwks), expected_nonce=nonce, required_labels=[LABEL])
    assert result.matched_labels == (LABEL,)
    status, body = world.release(appraisal.token, nonce)
    assert status == 200, body
    assert workload.decrypt(body["jwe"]) == SECRET
    assert world.release(appraisal.token, nonce)[1]["error"] == "NONCE_UNKNOWN"  # the broker's nonce is single use


def test_replayed_nonce_two_concurrent_appraisals_exactly_one_succeeds(world: World) -> None:
    workload = Workload(world.pki)
    nonce = world.challenge()
    evidence = workload.evidence(nonce)
    results: list[Any] = []
    barrier = threading.Barrier(2)

    def attest() -> None:
        with VerifierClient(world.verifier) as client:
            barrier.wait()
            results.append(client.appraise("nitro", evidence, nonce=nonce, runtime_data=workload.spki))

    threads = [threading.Thread(target=attest) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status for r in results) == ["affirming", "contraindicated"]
    loser = next(r for r in results if r.status == "contraindicated")
    assert [f["code"] for f in loser.findings] == ["CHALLENGE_REPLAYED"]
    assert world.release(loser.token, nonce)[1]["error"] == "TOKEN_STATUS_INSUFFICIENT"


def test_expired_challenge_is_refused(world: World) -> None:
    workload = Workload(world.pki)
    nonce = world.challenge()
    time.sleep(CHALLENGE_TTL + 0.5)
    with VerifierClient(world.verifier) as client:
        appraisal = client.appraise("nitro", workload.evidence(nonce), nonce=nonce, runtime_data=workload.spki)
    assert [f["code"] for f in appraisal.findings] == ["CHALLENGE_EXPIRED"]
    assert world.release(appraisal.token, nonce)[1]["error"] == "TOKEN_STATUS_INSUFFICIENT"


def test_evidence_bound_to_another_key_is_refused(world: World) -> None:
    workload, other = Workload(world.pki), Workload(world.pki)
    nonce = world.challenge()
    with VerifierClient(world.verifier) as client:
        appraisal = client.appraise(
            "nitro", workload.evidence(nonce, public_key=other.spki), nonce=nonce, runtime_data=workload.spki
        )
    assert [f["code"] for f in appraisal.findings] == ["RUNTIME_DATA_MISMATCH"]
    status, body = world.release(appraisal.token, nonce)
    assert (status, body["error"]) == (401, "TOKEN_STATUS_INSUFFICIENT")


def test_unregistered_measurement_is_refused(world: World) -> None:
    workload = Workload(world.pki)
    nonce = world.challenge()
    pcrs = FakeAwsPki.default_pcrs()
    pcrs[0] = b"\x66" * 48
    with VerifierClient(world.verifier) as client:
        appraisal = client.appraise(
            "nitro", workload.evidence(nonce, pcrs=pcrs), nonce=nonce, runtime_data=workload.spki
        )
    assert [f["code"] for f in appraisal.findings] == ["REFERENCE_VALUE_MISMATCH", "WORKLOAD_NOT_MATCHED"]
    assert world.release(appraisal.token, nonce)[1]["error"] == "TOKEN_STATUS_INSUFFICIENT"


def test_expired_token_is_refused(world: World) -> None:
    workload = Workload(world.pki)
    nonce = world.challenge()
    with VerifierClient(world.verifier) as client:
        appraisal = client.appraise("nitro", workload.evidence(nonce), nonce=nonce, runtime_data=workload.spki)
    assert appraisal.status == "affirming"
    time.sleep(TOKEN_LIFETIME + 1)
    assert world.release(appraisal.token, nonce)[1]["error"] == "TOKEN_EXPIRED"


def test_token_signed_by_a_key_outside_the_jwks_is_refused(world: World) -> None:
    workload = Workload(world.pki)
    nonce = world.challenge()
    with VerifierClient(world.verifier) as client:
        genuine = client.appraise("nitro", workload.evidence(nonce), nonce=nonce, runtime_data=workload.spki)
    claims = json.loads(base64.urlsafe_b64decode(genuine.token.split(".")[1] + "=="))
    forged = ResultSigner([ephemeral_key()]).sign(claims)  # same claims, a key the verifier never published
    status, body = world.release(forged, nonce)
    assert (status, body["error"]) == (401, "TOKEN_KID_UNKNOWN")


def test_token_whose_nonce_is_not_the_brokers_is_refused(world: World) -> None:
    workload = Workload(world.pki)
    with VerifierClient(world.verifier) as client:
        own = client.create_challenge()  # from the verifier directly, never handed out by the broker
        appraisal = client.appraise("nitro", workload.evidence(own.nonce), nonce=own.nonce, runtime_data=workload.spki)
    assert appraisal.status == "affirming"
    assert world.release(appraisal.token, own.nonce)[1]["error"] == "NONCE_UNKNOWN"
    broker_nonce = world.challenge()
    assert world.release(appraisal.token, broker_nonce)[1]["error"] == "TOKEN_NONCE_MISMATCH"


def test_an_image_sharing_a_value_never_gets_the_other_images_secret(world: World) -> None:
    """Issue 10: image B shares PCR1 with A. B's evidence matches B completely and A only partly: the broker's rule
    for A's secret refuses it (before, B carried A's label and received A's secret)."""
    workload = Workload(world.pki)
    nonce = world.challenge()
    with VerifierClient(world.verifier) as client:
        appraisal = client.appraise(
            "nitro", workload.evidence(nonce, pcrs=OTHER_PCRS), nonce=nonce, runtime_data=workload.spki
        )
    assert appraisal.status == "affirming", appraisal.findings
    jwks = fetch_jwks_http(world.jwks_url)
    result = verify_result(appraisal.token, JwksCache(lambda: jwks), expected_nonce=nonce, required_workload=OTHER)
    assert result.workload is not None and [w["name"] for w in result.workloads] == [OTHER]
    status, body = world.release(appraisal.token, nonce)
    assert (status, body["error"]) == (401, "TOKEN_WORKLOAD_MISMATCH")
