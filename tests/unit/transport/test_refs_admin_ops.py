"""The plan operations shared by the CLI's --db path and the admin RPCs: manifests received over the API parse like
files without any file being opened, a plan's SHA-256 ignores the file names, impact progress is reported once per
item, and a remote command never shows states before the server's own change."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest

from verifier.cli.remote import RemoteClock
from verifier.errors import RequestError
from verifier.reference_values.kept import KeptEvidence
from verifier.transport.grpc.refs_admin_ops import plan_sha256, received_manifest
from verifier.transport.grpc.refs_impact_ops import _Reporting
from verifier.workloads.manifest import load_manifest_file
from verifier.workloads.plan import compute_plan

A = "aa" * 48
VALUES = f"{{nitro.pcr0: '{A}', nitro.pcr1: '{A}', nitro.pcr2: '{A}'}}"
WORKLOAD = f"workload: app\ntee: nitro\nversions:\n  - version: '1'\n    values: {VALUES}\n".encode()


def test_a_received_manifest_parses_as_the_same_file_would(tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_bytes(WORKLOAD)
    assert received_manifest(str(path), WORKLOAD, None) == load_manifest_file(path)
    nitro = json.dumps({"Measurements": {"PCR0": A, "PCR1": A, "PCR2": A}}).encode()
    received = received_manifest("builds/enclave-7.json", nitro, None)
    assert received.nitro_cli and {e.label for e in received.entries} == {"enclave-7"}  # the name's stem
    assert {e.label for e in received_manifest("b.json", nitro, "web").entries} == {"web"}


def test_nothing_is_opened_under_the_name_a_client_gives(tmp_path: Path) -> None:
    secret = tmp_path / "server-only.yaml"
    secret.write_text("workload: other\n")
    manifest = received_manifest(str(secret), WORKLOAD, None)
    assert manifest.workload is not None and manifest.workload.name == "app"  # the received bytes, not the file
    with pytest.raises(RequestError) as bad:
        received_manifest("x.yaml", b"versions: [", None)
    assert bad.value.code == "MANIFEST_INVALID" and "x.yaml" in bad.value.message
    for name in ("", "a\x00b", "n" * 1001):
        with pytest.raises(RequestError) as refused:
            received_manifest(name, WORKLOAD, None)
        assert refused.value.code == "MANIFEST_NAME_INVALID"
    with pytest.raises(RequestError) as large:
        received_manifest("big.yaml", b" " * (1024 * 1024 + 1), None)
    assert large.value.code == "MANIFEST_TOO_LARGE"


def test_the_plan_digest_covers_the_changes_not_the_file_names() -> None:
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    first = compute_plan([received_manifest("a/app.yaml", WORKLOAD, None)], [], now)
    renamed = compute_plan([received_manifest("/elsewhere/app.yml", WORKLOAD, None)], [], now)
    other = compute_plan([received_manifest("a/app.yaml", WORKLOAD.replace(b"'1'", b"'2'"), None)], [], now)
    assert first.sources != renamed.sources and plan_sha256(first) == plan_sha256(renamed)
    assert plan_sha256(other) != plan_sha256(first) and len(plan_sha256(first)) == 64


def test_impact_progress_is_reported_as_each_item_is_re_appraised() -> None:
    item = KeptEvidence("k1", dt.datetime(2025, 1, 1, tzinfo=dt.UTC), "nitro", b"", {}, None, "affirming", "a", "w")
    items = [item, dataclasses.replace(item, id="k2"), dataclasses.replace(item, id="k3")]
    seen: list[tuple[int, int]] = []

    class Kept:
        def recent(self, limit: int) -> list[KeptEvidence]:
            return items[:limit]

    done = []
    for kept in _Reporting(Kept(), lambda n, total: seen.append((n, total))).recent(10):
        assert seen == [(n, 3) for n in range(1, len(done) + 1)]  # the items finished so far, each once
        done.append(kept.id)
    assert done == ["k1", "k2", "k3"] and seen[-1] == (3, 3)


def test_a_remote_command_never_shows_states_before_the_server_s_change() -> None:
    clock = RemoteClock()
    before = clock.now()
    ahead = before + dt.timedelta(minutes=5)  # a server clock ahead of this machine's
    clock.saw(None, ahead)
    assert clock.now() == ahead
    clock.saw(before)
    assert clock.now() == ahead
