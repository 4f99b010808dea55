"""Key rotation against a running server: `verifier keys rotate` (a subprocess) is picked up without a restart."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.fakes.aws_pki import FakeAwsPki
from verifier.bootstrap import Components, build
from verifier.clock import FixedClock, SystemClock
from verifier.results.keyring import Keyring
from verifier.results.signer import ResultSigner
from verifier.settings import Settings
from verifier.storage.engine import Database
from verifier.transport.grpc.server import VerifierServer
from verifier.v1 import verifier_pb2 as pb
from verifier.v1 import verifier_pb2_grpc as pb_grpc

VERIFIER = Path(sys.executable).with_name("verifier")
RELOAD = timedelta(milliseconds=100)


def command(*args: str) -> list[str]:
    base = [str(VERIFIER)] if VERIFIER.exists() else [sys.executable, "-m", "verifier.cli.main"]
    return [*base, *args]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(*args), capture_output=True, text=True, timeout=60, check=False)


def kid_of(token: str) -> str:
    header = token.split(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"])


@pytest.fixture
def keyring_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "keys"
    result = cli("keys", "init", "--dir", str(directory))
    assert result.returncode == 0, result.stderr
    return directory


@pytest.fixture
def pki() -> FakeAwsPki:
    return FakeAwsPki()


@pytest.fixture
def components(db: Database, database_url: str, keyring_dir: Path, pki: FakeAwsPki) -> Iterator[Components]:
    settings = Settings(
        database_url=database_url,
        signing_key_dir=keyring_dir,
        listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        grace_seconds=0.1,
    )
    signer = ResultSigner.from_keyring(keyring_dir, clock=SystemClock(), reload_interval=RELOAD)
    built = build(settings, clock=FixedClock(pki.now), signer=signer)
    built.service.anchors = pki.anchors()
    yield built
    built.close()


def test_rotate_is_picked_up_by_a_running_server(components: Components, keyring_dir: Path, pki: FakeAwsPki) -> None:
    old_kid = Keyring.open(keyring_dir).active_entry.kid

    async def scenario() -> None:
        server = VerifierServer(components)
        port, http_port = await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        stub: Any = pb_grpc.VerifierStub(channel)  # type: ignore[no-untyped-call]

        async def jwks() -> dict[str, Any]:
            def fetch() -> dict[str, Any]:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/.well-known/jwks.json", timeout=5) as r:
                    return json.loads(r.read())  # type: ignore[no-any-return]

            return await asyncio.to_thread(fetch)

        async def appraise() -> str:
            challenge = await stub.CreateChallenge(pb.CreateChallengeRequest())
            response = await stub.Appraise(
                pb.AppraiseRequest(
                    kind=pb.EVIDENCE_KIND_NITRO, evidence=pki.mint(nonce=challenge.nonce), nonce=challenge.nonce
                )
            )
            return str(response.token)

        try:
            before = await jwks()
            assert [k["kid"] for k in before["keys"]] == [old_kid]
            old_token = await appraise()
            assert kid_of(old_token) == old_kid

            rotated = await asyncio.to_thread(cli, "keys", "rotate", "--dir", str(keyring_dir))
            assert rotated.returncode == 0, rotated.stderr
            new_kid = rotated.stdout.split()[3]
            assert new_kid != old_kid and f"still published: {old_kid} until" in rotated.stdout

            await asyncio.sleep(3 * RELOAD.total_seconds())
            after = await jwks()
            assert [k["kid"] for k in after["keys"]] == [new_kid, old_kid]
            grpc_keys = json.loads((await stub.GetSigningKeys(pb.GetSigningKeysRequest())).jwks_json)
            assert grpc_keys == after
            new_token = await appraise()
            assert kid_of(new_token) == new_kid
            keyset = KeySet.import_key_set(after)  # type: ignore[arg-type]
            for token in (old_token, new_token):  # the pre-rotation token verifies with the new JWKS
                assert jwt.decode(token, keyset, algorithms=["ES256"]).claims["ear_verifier_id"]
        finally:
            await channel.close(None)
            await server.stop(0)

    asyncio.run(scenario())


def test_cli_list_prune_show_and_concurrent_rotations(keyring_dir: Path) -> None:
    rotate = command("keys", "rotate", "--dir", str(keyring_dir), "--publish-for", "300")
    runs = [subprocess.Popen(rotate, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for run in runs:
        _, err = run.communicate(timeout=60)
        assert run.returncode == 0, err
    listed = cli("keys", "list", "--dir", str(keyring_dir), "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert len(rows) == 4 and [r["state"] for r in rows].count("active") == 1 and rows[-1]["state"] == "active"
    assert all(r["state"] == "published" for r in rows[:-1])
    shown = json.loads(cli("keys", "show", "--dir", str(keyring_dir)).stdout)
    assert [k["kid"] for k in shown["keys"]] == [rows[-1]["kid"], *(r["kid"] for r in reversed(rows[:-1]))]

    short = cli("keys", "rotate", "--dir", str(keyring_dir), "--publish-for", "1")
    assert short.returncode != 0 and "KEYRING_PUBLISH_TOO_SHORT" in short.stderr
    assert cli("keys", "prune", "--dir", str(keyring_dir)).stdout.strip() == "nothing to prune"
    assert cli("keys", "init", "--dir", str(keyring_dir)).returncode != 0

    (keyring_dir / "keyring.json").chmod(0o644)
    refused = cli("keys", "list", "--dir", str(keyring_dir))
    assert refused.returncode != 0 and "KEYRING_PERMISSIONS" in refused.stderr
