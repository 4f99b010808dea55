"""Typed reference-value kinds through the command line (real SNP vector, real database): `refs add` validates
tdx.mr_servicetd, snp.min_guest_svn and snp.platform_info by their type, and `verify` compares them by it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import manifest_vectors
from tests.integration.test_cli import Cli

AZURE = "snp-milan-v2-vcek-azure-constellation"  # GUEST_SVN 2, PLATFORM_INFO 0x1 (SMT_EN)


@pytest.fixture
def cli(database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("VERIFIER_DATABASE_URL", database_url)
    runner = Cli(database_url, capsys)
    code, _, err = runner("db", "upgrade")
    assert code == 0, err
    return runner


@pytest.mark.parametrize(
    ("kind", "value", "code"),
    [
        ("tdx.mr_servicetd", "5e" * 48, None),
        ("tdx.mr_servicetd", "5e" * 47, "REFERENCE_VALUE_LENGTH"),
        ("snp.min_guest_svn", "00000003", None),
        ("snp.min_guest_svn", "3", "REFERENCE_VALUE_NOT_HEX"),
        ("snp.platform_info", "00000000000000010000000000000000", None),
        ("snp.platform_info", "00000000000000010000000000000002", "REFERENCE_VALUE_INVALID"),
    ],
)
def test_refs_add_validates_by_type(cli: Cli, kind: str, value: str, code: str | None) -> None:
    rc, _, err = cli("refs", "add", kind, value, "--label", "w")
    assert (rc, code in err if code else True) == ((0, True) if code is None else (64, True)), err


def _verify(cli: Cli, vectors_dir: Path, trust_anchors_dir: Path, tmp_path: Path) -> tuple[int, Any]:
    vector = next(v for v in manifest_vectors("snp") if v["id"] == AZURE)
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"policies": [{"id": "vector-check", "snp": {"crl_fail_open": True}}]}))
    # (no SNP vector carries an AMD CRL; a verifier that ignores a looser requested policy reports it unavailable)
    d = vectors_dir / vector["dir"]
    return cli.json(
        "verify",
        "--tee",
        "snp",
        "--evidence",
        str(d / "evidence.bin"),
        "--trust-anchors",
        str(trust_anchors_dir),
        "--at",
        vector["verify_at"],
        "--json",
        "--collateral",
        str(d),
        "--offline",
        "--policy-file",
        str(policy),
        "--policy",
        "vector-check",
    )


def test_verify_compares_guest_svn_and_platform_info(
    cli: Cli, vectors_dir: Path, trust_anchors_dir: Path, tmp_path: Path
) -> None:
    vector = next(v for v in manifest_vectors("snp") if v["id"] == AZURE)
    assert cli("refs", "add", "snp.measurement", vector["facts"]["measurement"], "--label", "w")[0] == 0
    assert cli("refs", "add", "snp.min_guest_svn", "00000002", "--label", "w")[0] == 0
    assert cli("refs", "add", "snp.platform_info", "00000000000000010000000000000001", "--label", "w")[0] == 0
    _, result = _verify(cli, vectors_dir, trust_anchors_dir, tmp_path)
    # whatever revocation and policy selection decide, the typed members hold (GUEST_SVN 2 >= 2, SMT_EN set)
    assert not [f for f in result["findings"] if f["code"].startswith(("REFERENCE_", "CLAIM_", "WORKLOAD_"))]
    assert cli("refs", "add", "snp.min_guest_svn", "00000003", "--label", "w")[0] == 0  # every minimum holds
    code, result = _verify(cli, vectors_dir, trust_anchors_dir, tmp_path)
    assert code == 2
    assert ("REFERENCE_VALUE_MISMATCH", "guest_svn >= 3", "2") in [
        (f["code"], f["expected"], f["actual"]) for f in result["findings"]
    ]
