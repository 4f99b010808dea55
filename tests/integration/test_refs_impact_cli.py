"""`verifier refs plan --impact` on kept real traffic: a Nitro vector appraised through `verify` (so it is kept),
then a candidate manifest that drops its approved PCR0 names exactly that workload as flipping."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import manifest_vectors
from tests.integration.test_cli import Cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("VERIFIER_DATABASE_URL", database_url)
    monkeypatch.setenv("VERIFIER_OFFLINE", "1")
    runner = Cli(database_url, capsys)
    assert runner("db", "upgrade")[0] == 0
    return runner


def test_plan_impact_names_the_kept_appraisal_a_change_would_flip(
    cli: Cli, vectors_dir: Path, trust_anchors_dir: Path, tmp_path: Path
) -> None:
    vector: dict[str, Any] = next(v for v in manifest_vectors("nitro") if v["id"] == "nitro-prod-2024-blocky")
    manifest = ROOT / "measurements" / "nitro" / "example-blocky-2024.json"
    assert cli("refs", "apply", str(manifest))[0] == 0
    verify = [
        "verify",
        "--tee",
        "nitro",
        "--evidence",
        str(vectors_dir / vector["dir"] / "evidence.bin"),
        "--trust-anchors",
        str(trust_anchors_dir),
        "--at",
        vector["verify_at"],
        "--json",
    ]
    code, result = cli.json(*verify)
    assert code == 0 and result["status"] == "affirming"

    # Candidate: the same workload and version, PCR0 replaced by another image's value.
    document = json.loads(manifest.read_text())
    values = document["versions"][0]["values"]
    candidate = tmp_path / "candidate.json"
    candidate.write_text(
        json.dumps({**document, "versions": [{"version": "2024-09-07", "values": {**values, "nitro.pcr0": "ab" * 48}}]})
    )
    code, out, _ = cli("refs", "plan", str(candidate), "--impact", "--trust-anchors", str(trust_anchors_dir))
    assert code == 1, out  # something would flip
    assert "affirming -> contraindicated" in out and vector["facts"]["pcrs"]["0"][:16] in out
    assert "workload example-blocky-nitro-json: 0 start matching, 1 stop matching, 0 change" in out
    assert "version 2024-09-07 -> no workload, affirming -> contraindicated" in out
    code, report = cli.json(
        "refs", "plan", str(candidate), "--impact", "--json", "--trust-anchors", str(trust_anchors_dir)
    )
    assert report["plan"]["workloads"][0]["workload"] == "example-blocky-nitro-json"
    (row,) = report["impact"]["rows"]
    assert row["changed"] and row["status_before"] == "affirming" and row["status_after"] == "contraindicated"
    assert row["matched_before"] == {"name": "example-blocky-nitro-json", "version": "2024-09-07"}
    assert row["matched_after"] is None
    assert "REFERENCE_VALUE_MISMATCH" in row["codes_after"]
    assert report["impact"]["workloads"] == [
        {
            "workload": "example-blocky-nitro-json",
            "starts_matching": [],
            "stops_matching": [row["evidence_id"]],
            "changes": [],
        }
    ]
    # Nothing was applied: the kept workload still affirms with today's values.
    assert cli.json(*verify)[0] == 0
    # A new version with the same values, the old one dropped: the evidence moves to the new version.
    moved = tmp_path / "moved.json"
    moved.write_text(json.dumps({**document, "versions": [{"version": "2025", "values": values}]}))
    code, out, _ = cli("refs", "plan", str(moved), "--impact", "--trust-anchors", str(trust_anchors_dir))
    assert code == 1, out
    assert "workload example-blocky-nitro-json: 0 start matching, 0 stop matching, 2 change" in out  # kept twice
    assert "version 2024-09-07 -> version 2025, affirming -> affirming" in out
    # The unchanged manifest flips nothing.
    code, out, _ = cli("refs", "plan", str(manifest), "--impact", "--trust-anchors", str(trust_anchors_dir))
    assert code == 0, out
