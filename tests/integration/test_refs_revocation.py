"""Revocation is per value, through the real CLI (exit 64) and the real gRPC admin API (INVALID_ARGUMENT), on
SQLite and PostgreSQL: revoking one row revokes every row of the value, every add path refuses a revoked value with
REFERENCE_VALUE_REVOKED, and `verifier refs reapprove` (audited `ref.reapprove`) lets it be added again."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.fakes.aws_pki import FakeAwsPki
from tests.integration.test_cli import Cli
from tests.integration.test_grpc_server import error_info, running
from tests.unit.reference_values.test_snp_measure import real_ovmf
from verifier.bootstrap import Components, build
from verifier.clock import FixedClock
from verifier.settings import Settings
from verifier.storage import audit
from verifier.storage.engine import Database
from verifier.v1 import verifier_pb2 as pb

A, B = "aa" * 48, "bb" * 48
TOKEN = "revocation-admin-token"
ADMIN = (("authorization", f"Bearer {TOKEN}"),)


@pytest.fixture
def cli(database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("VERIFIER_DATABASE_URL", database_url)
    runner = Cli(database_url, capsys)
    code, _, err = runner("db", "upgrade")
    assert code == 0, err
    return runner


def everything(cli: Cli) -> list[dict[str, object]]:
    code, rows = cli.json("refs", "list", "--all", "--json")
    assert code == 0
    return list(rows)


def test_revoking_one_row_revokes_the_value_and_every_cli_add_path_refuses_it(cli: Cli, tmp_path: Path) -> None:
    _, x = cli.json("refs", "add", "nitro.pcr0", A, "--label", "x", "--json")
    _, y = cli.json("refs", "add", "nitro.pcr0", A, "--label", "y", "--json")
    code, out, _ = cli("refs", "revoke", x["id"], "--reason", "CVE-2025-9")
    assert code == 0 and x["id"] in out and y["id"] in out
    states = {r["label"]: r for r in everything(cli)}
    assert states["y"]["state"] == "revoked" and states["y"]["revoke_reason"] == "CVE-2025-9"
    assert cli.json("refs", "list", "--json")[1] == []
    code, history = cli.json("refs", "history", y["id"], "--json")
    assert [h["action"] for h in history] == ["ref.add", "ref.revoke"] and history[1]["details"]["via"] == x["id"]

    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        f"reference_values:\n  - {{kind: nitro.pcr1, value: '{B}', label: z}}\n"
        f"  - {{kind: nitro.pcr0, value: '{A}', label: z}}\n"
    )
    build_json = tmp_path / "build.json"
    build_json.write_text(
        json.dumps({"Measurements": {"HashAlgorithm": "Sha384 { ... }", "PCR0": A, "PCR1": B, "PCR2": B}})
    )
    attempts = [
        ["refs", "add", "nitro.pcr0", A, "--label", "z"],
        ["refs", "add", "nitro.pcr0", A.upper(), "--label", "x", "--version", "2"],
        ["refs", "import", str(manifest)],
        ["refs", "import", str(build_json), "--label", "n"],
        ["refs", "import-nitro", str(build_json), "--label", "n"],
        ["refs", "plan", str(manifest)],
        ["refs", "apply", str(manifest)],
    ]
    for args in attempts:
        code, _, err = cli(*args)
        assert code == 64 and "REFERENCE_VALUE_REVOKED" in err and "refs reapprove" in err, (args, err)
    assert len(everything(cli)) == 2  # all or nothing: nitro.pcr1 / pcr2 were not added either


def test_reapprove_then_add_works_and_is_in_the_audit_log(cli: Cli) -> None:
    _, x = cli.json("refs", "add", "nitro.pcr0", A, "--label", "x", "--json")
    assert cli("refs", "revoke", x["id"], "--reason", "suspected leak")[0] == 0
    assert cli("refs", "reapprove", "nitro.pcr0", A)[0] == 64  # --reason is required
    assert cli("refs", "reapprove", "nitro.pcr0", A, "--reason", " ")[0] == 64
    assert cli("refs", "reapprove", "nitro.pcr0", A, "--reason", "r", "--version", "2")[0] == 64  # needs --label
    code, _, err = cli("refs", "reapprove", "nitro.pcr0", B, "--reason", "r")
    assert code == 64 and "REFERENCE_VALUE_NOT_REVOKED" in err

    code, out, err = cli("refs", "reapprove", "nitro.pcr0", A, "--reason", "investigated: no leak")
    assert code == 0, err
    assert "re-approved nitro.pcr0" in out and "suspected leak" in out
    code, added = cli.json("refs", "add", "nitro.pcr0", A, "--label", "x", "--json")
    assert code == 0 and added["state"] == "active"
    assert [r["id"] for r in cli.json("refs", "list", "--json")[1]] == [added["id"]]

    code, entries = cli.json("audit", "list", "--action", "ref.reapprove", "--json")
    assert code == 0
    [entry] = entries
    assert entry["actor"].startswith("cli:") and entry["subject"] == f"nitro.pcr0:{A}"
    assert entry["details"]["reason"] == "investigated: no leak"
    assert [r["ref_id"] for r in entry["details"]["revocations"]] == [x["id"]]
    code, history = cli.json("refs", "history", "--kind", "nitro.pcr0", "--json")
    assert [h["action"] for h in history] == ["ref.add", "ref.revoke", "ref.reapprove", "ref.add"]
    code, _, err = cli("refs", "reapprove", "nitro.pcr0", A, "--reason", "again")
    assert code == 64 and "REFERENCE_VALUE_NOT_REVOKED" in err
    assert cli("audit", "verify")[0] == 0


def test_reapprove_with_a_label_adds_the_value(cli: Cli) -> None:
    _, x = cli.json("refs", "add", "nitro.pcr2", B, "--label", "x", "--json")
    cli("refs", "revoke", x["id"], "--reason", "r")
    code, result = cli.json(
        "refs", "reapprove", "nitro.pcr2", B, "--reason", "fixed", "--label", "x 2", "--version", "2.0", "--json"
    )
    assert code == 0
    assert result["added"]["label"] == "x 2" and result["added"]["version"] == "2.0"
    assert result["added"]["state"] == "active"
    assert [r["reapprove_reason"] for r in result["revocations"]] == ["fixed"]
    assert [r["id"] for r in cli.json("refs", "list", "--json")[1]] == [result["added"]["id"]]


def test_compute_snp_add_refuses_a_revoked_measurement(cli: Cli) -> None:
    base = ["refs", "compute", "snp", "--ovmf", str(real_ovmf()), "--vcpus", "2", "--vcpu-type", "EPYC-v4"]
    code, _, err = cli(*base, "--label", "guest 1", "--add")
    assert code == 0, err
    [row] = cli.json("refs", "list", "--kind", "snp.measurement", "--json")[1]
    assert cli("refs", "revoke", row["id"], "--reason", "bad firmware")[0] == 0
    code, _, err = cli(*base, "--label", "guest 2", "--add")
    assert code == 64 and "REFERENCE_VALUE_REVOKED" in err
    assert len(cli.json("refs", "list", "--all", "--json")[1]) == 1


# --- gRPC admin API ---------------------------------------------------------------------------------------------


@pytest.fixture
def components(db: Database, database_url: str) -> Iterator[Components]:
    pki = FakeAwsPki()
    settings = Settings(
        database_url=database_url,
        development=True,
        listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        admin_token_sha256=(hashlib.sha256(TOKEN.encode()).hexdigest(),),
        allow_plaintext_admin=True,
        drain_seconds=0,
    )  # loopback test server
    built = build(settings, clock=FixedClock(pki.now))
    built.service.anchors = pki.anchors()
    yield built
    built.close()


def test_grpc_add_of_a_revoked_value_is_invalid_argument(components: Components, db: Database) -> None:
    pcr0 = FakeAwsPki.default_pcrs()[0].hex()

    async def scenario() -> None:
        async with running(components) as r:
            first = await r.refs.Add(
                pb.AddReferenceValueRequest(kind="nitro.pcr0", value=pcr0, label="a"), metadata=ADMIN
            )
            second = await r.refs.Add(
                pb.AddReferenceValueRequest(kind="nitro.pcr0", value=pcr0, label="b"), metadata=ADMIN
            )
            revoked = await r.refs.Revoke(
                pb.RevokeReferenceValueRequest(id=first.id, reason="withdrawn"), metadata=ADMIN
            )
            assert revoked.state == "revoked"
            listed = await r.refs.List(pb.ListReferenceValuesRequest(include_inactive=True), metadata=ADMIN)
            assert {v.id: v.state for v in listed.reference_values} == {first.id: "revoked", second.id: "revoked"}
            for label in ("a", "c"):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await r.refs.Add(
                        pb.AddReferenceValueRequest(kind="nitro.pcr0", value=pcr0, label=label), metadata=ADMIN
                    )
                assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert error_info(caught.value).reason == "REFERENCE_VALUE_REVOKED"
            assert not (
                await r.refs.List(pb.ListReferenceValuesRequest(kind="nitro.pcr0"), metadata=ADMIN)
            ).reference_values

    asyncio.run(scenario())
    assert [e.action for e in audit.entries(db, limit=1000) if e.action.startswith("ref.")] == [
        "ref.add",
        "ref.add",
        "ref.revoke",
        "ref.revoke",
    ]
