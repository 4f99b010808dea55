"""Issue 10 item 1: a workload version carries the policy it is appraised under, by name or inline.

Before, a policy could only be set per workload and only by name: two versions of one workload were always
appraised under one policy, and a manifest could not carry its policy. Now `SqlWorkloads.set_version_policy` (CLI
`workloads set-policy NAME P --version V`) and a manifest's `versions[].policy` give one version its own policy,
and `policy:` may be an inline body, stored by `refs apply` as the database policy `workload:<name>[@<version>]`."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fakes.aws_pki import FakeAwsPki
from tests.integration.test_cli import Cli
from tests.service_helpers import Harness, make_harness
from verifier.appraisal.model import Tier
from verifier.appraisal.policy import PolicySet, policy_sha256
from verifier.errors import NotFoundError, RequestError
from verifier.service import AppraisalRequest
from verifier.storage.audit import reference_set_version
from verifier.storage.engine import Database
from verifier.storage.policies import SqlPolicies
from verifier.storage.workloads import SqlWorkloads
from verifier.workloads.manifest import load_manifest_file
from verifier.workloads.manifest_model import ManifestEntry

DAY = dt.timedelta(days=1)


def _pcrs(tag: bytes) -> dict[int, bytes]:
    pcrs = FakeAwsPki.default_pcrs()
    pcrs[0], pcrs[2] = tag * 48, tag.upper() * 48
    return pcrs


def _entries(name: str, version: str, pcrs: dict[int, bytes]) -> list[ManifestEntry]:
    return [ManifestEntry(f"nitro.pcr{i}", pcrs[i], name, version=version) for i in (0, 1, 2)]


def _submod(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    submod: dict[str, Any] = claims["submods"]["nitro"]
    return submod


def _service(h: Harness, db: Database) -> Harness:
    service = dataclasses.replace(h.service, policies=PolicySet(store=SqlPolicies(db)), workloads=SqlWorkloads(db))
    return dataclasses.replace(h, service=service)


def test_each_version_is_appraised_under_its_own_policy(db: Database) -> None:
    h = make_harness(db)
    now = h.clock.now() - DAY
    SqlPolicies(db).set("strict", {"require_nonce": True}, now=now, actor="cli:admin")
    workloads = SqlWorkloads(db)
    workloads.add_values("app", _entries("app", "1", _pcrs(b"a")), now=now, actor="cli:admin", new_version=True)
    workloads.add_values("app", _entries("app", "2", _pcrs(b"b")), now=now, actor="cli:admin", new_version=True)
    meta = workloads.set_version_policy("app", "2", "strict", now=now, actor="cli:admin")
    assert meta.policy is None and dict(meta.version_policies) == {"2": "strict"}
    h = _service(h, db)

    old = h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint(pcrs=_pcrs(b"a"))))
    assert old.appraisal.status is Tier.AFFIRMING and old.appraisal.policy_id == "default"
    assert _submod(old.token)["ear_verifier_claims"]["workload"]["policy"] == "default"
    strict = h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint(pcrs=_pcrs(b"b"))))
    assert strict.appraisal.status is Tier.CONTRAINDICATED and strict.appraisal.policy_id == "strict"
    assert "NONCE_MISSING" in [f.code for f in strict.appraisal.findings]

    # With a live challenge the strict version affirms, and the token names the version's policy.
    nonce = h.service.create_challenge().nonce
    fresh = h.service.appraise(
        AppraisalRequest(tee="nitro", evidence=h.pki.mint(pcrs=_pcrs(b"b"), nonce=nonce), nonce=nonce)
    )
    assert fresh.appraisal.status is Tier.AFFIRMING, [f.code for f in fresh.appraisal.findings]
    workload = _submod(fresh.token)["ear_verifier_claims"]["workload"]
    assert (workload["name"], workload["version"], workload["policy"]) == ("app", "2", "strict")

    # Reset: the version falls back to its workload's policy (audited both ways, the reference set bumped).
    workloads.set_version_policy("app", "2", None, now=now, actor="cli:admin")
    again = h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint(pcrs=_pcrs(b"b"))))
    assert again.appraisal.status is Tier.AFFIRMING
    actions = [(e.action, e.details.get("version")) for e in workloads.history("app")]
    assert actions.count(("workload.version.policy", "2")) == 2


def test_set_version_policy_refuses_unknown_versions_and_workloads(db: Database) -> None:
    workloads = SqlWorkloads(db)
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    workloads.add_values("app", _entries("app", "1", _pcrs(b"a")), now=now, actor="t", new_version=True)
    with pytest.raises(NotFoundError) as missing:
        workloads.set_version_policy("app", "9", "default", now=now, actor="t")
    assert missing.value.code == "WORKLOAD_VERSION_NOT_FOUND"
    with pytest.raises(NotFoundError) as nobody:
        workloads.set_version_policy("nobody", "1", "default", now=now, actor="t")
    assert nobody.value.code == "WORKLOAD_NOT_FOUND"
    with pytest.raises(RequestError) as invalid:
        workloads.set_version_policy("app", "1", " x", now=now, actor="t")
    assert invalid.value.code == "WORKLOAD_POLICY_INVALID"
    version_before = reference_set_version(db)
    workloads.set_version_policy("app", "1", "default", now=now, actor="t")
    assert reference_set_version(db) > version_before
    bumped = reference_set_version(db)
    workloads.set_version_policy("app", "1", "default", now=now, actor="t")  # no change: no second audit row
    assert [e.action for e in workloads.history("app")].count("workload.version.policy") == 1
    assert reference_set_version(db) == bumped


@pytest.fixture
def cli(database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("VERIFIER_DATABASE_URL", database_url)
    runner = Cli(database_url, capsys)
    code, _, err = runner("db", "upgrade")
    assert code == 0, err
    return runner


def _manifest(path: Path, *, top: Any = None, v2: Any = None, name: str = "app") -> Path:
    def version(tag: bytes, v: str, policy: Any) -> dict[str, Any]:
        pcrs = _pcrs(tag)
        out: dict[str, Any] = {"version": v, "values": {f"nitro.pcr{i}": pcrs[i].hex() for i in (0, 1, 2)}}
        if policy is not None:
            out["policy"] = policy
        return out

    doc: dict[str, Any] = {"workload": name, "tee": "nitro"}
    if top is not None:
        doc["policy"] = top
    doc["versions"] = [version(b"a", "1", None), version(b"b", "2", v2)]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_inline_policies_from_a_manifest_are_planned_applied_and_appraised(cli: Cli, tmp_path: Path) -> None:
    strict = {"require_nonce": True, "report_data_binding": "raw"}
    path = _manifest(tmp_path / "app.yaml", top={"required_kinds": {"nitro": ["nitro.pcr8"]}}, v2=strict)
    spec = load_manifest_file(path).workload
    assert spec is not None and spec.policy == "workload:app" and spec.version_policies == {"2": "workload:app@2"}

    code, plan = cli.json("refs", "plan", str(path), "--json")
    assert code == 0, plan
    [change] = plan["workloads"]
    planned = {p["name"]: p for p in change["inline_policies"]}
    assert set(planned) == {"workload:app", "workload:app@2"} and all(
        p["previous_sha256"] is None for p in planned.values()
    )
    assert change["version_policies"] == [{"version": "2", "previous": None, "policy": "workload:app@2"}]
    code, out, _ = cli("refs", "plan", str(path))
    assert code == 0 and f"inline policy workload:app@2 sha256 {planned['workload:app@2']['sha256']} (new)" in out
    assert cli("policy", "show", "workload:app@2")[0] != 0  # plan stores nothing

    code, out, err = cli("refs", "apply", str(path))
    assert code == 0, err
    code, shown = cli.json("policy", "show", "workload:app@2", "--json")
    assert code == 0 and shown["sha256"] == planned["workload:app@2"]["sha256"]
    code, workload = cli.json("workloads", "show", "app", "--json")
    assert workload["policy"] == "workload:app" and workload["version_policies"] == {"2": "workload:app@2"}
    assert {v["version"]: v["policy"] for v in workload["versions"]} == {"1": "workload:app", "2": "workload:app@2"}
    code, out, _ = cli("workloads", "show", "app")
    assert (
        "version 2: active, policy workload:app@2 (its own)" in out and "version 1: active, policy workload:app" in out
    )
    code, out, _ = cli("refs", "apply", str(path))
    assert code == 0 and "(nothing to do)" in out  # the same bodies: no change, no audit row

    # A changed inline body is planned as replacing the stored one, by SHA-256.
    _manifest(path, top={"required_kinds": {"nitro": ["nitro.pcr8"]}}, v2={**strict, "report_data_binding": "sha512"})
    code, plan = cli.json("refs", "plan", str(path), "--json")
    [replaced] = plan["workloads"][0]["inline_policies"]
    assert replaced["name"] == "workload:app@2" and replaced["previous_sha256"] == planned["workload:app@2"]["sha256"]

    # The values appraise under the stored policies: version 2 needs a nonce, version 1 PCR8 (which it lacks).
    db = Database(cli.db_url)
    try:
        h = _service(make_harness(db), db)
        v2 = h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint(pcrs=_pcrs(b"b"))))
        assert v2.appraisal.status is Tier.CONTRAINDICATED and v2.appraisal.policy_id == "workload:app@2"
        assert "NONCE_MISSING" in [f.code for f in v2.appraisal.findings]
        v1 = h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint(pcrs=_pcrs(b"a"))))
        assert v1.appraisal.policy_id == "workload:app"
        stored = SqlPolicies(db).get("workload:app@2")
        assert (
            stored is not None and stored.require_nonce and policy_sha256(stored) == planned["workload:app@2"]["sha256"]
        )
    finally:
        db.dispose()


def test_a_manifest_version_may_name_a_policy_and_bad_inline_policies_are_refused(cli: Cli, tmp_path: Path) -> None:
    path = _manifest(tmp_path / "app.yaml", v2="nonce-required")
    code, _, err = cli("refs", "apply", str(path))
    assert code == 0, err
    code, workload = cli.json("workloads", "show", "app", "--json")
    assert {v["version"]: v["policy"] for v in workload["versions"]} == {"1": None, "2": "nonce-required"}
    code, _, err = cli("refs", "plan", str(_manifest(tmp_path / "b.yaml", v2="no-such-policy", name="b")))
    assert code == 64 and "POLICY_UNKNOWN" in err
    for bad in ({"require_nonce": "true"}, {"id": "x"}, {"nope": 1}, {"snp": {"allowed_vmpls": "0"}}):
        code, _, err = cli("refs", "plan", str(_manifest(tmp_path / "c.yaml", top=bad, name="c")))
        assert code == 64 and "MANIFEST_INVALID" in err, (bad, err)


def test_an_inline_policy_name_is_reserved_for_its_workload(cli: Cli, tmp_path: Path) -> None:
    """Workload "x@2" and version 2 of workload "x" derive the same name; the first owner keeps it."""
    first = _manifest(tmp_path / "x.yaml", v2={"require_nonce": True}, name="x")
    assert cli("refs", "apply", str(first))[0] == 0
    second = _manifest(tmp_path / "x2.yaml", top={"require_nonce": False}, name="x@2")
    code, _, err = cli("refs", "apply", str(second))
    assert code == 64 and "WORKLOAD_POLICY_CONFLICT" in err
    code, shown = cli.json("policy", "show", "workload:x@2", "--json")
    assert code == 0 and shown["policy"]["require_nonce"] is True


def test_cli_set_policy_per_version(cli: Cli) -> None:
    p = _pcrs(b"a")
    values = [a for i in (0, 1, 2) for a in ("--value", f"nitro.pcr{i}={p[i].hex()}")]
    assert cli("workloads", "add-version", "app", "--version", "1", *values)[0] == 0
    code, out, err = cli("workloads", "set-policy", "app", "nonce-required", "--version", "1")
    assert code == 0 and "app version 1: policy nonce-required" in out, err
    code, shown = cli.json("workloads", "show", "app", "--json")
    assert shown["policy"] is None and shown["versions"][0]["policy"] == "nonce-required"
    assert shown["versions"][0]["policy_source"] == "version"
    code, _, err = cli("workloads", "set-policy", "app", "nonce-required", "--version", "9")
    assert code == 64 and "WORKLOAD_VERSION_NOT_FOUND" in err
    code, _, err = cli("workloads", "set-policy", "app", "no-such", "--version", "1")
    assert code == 64 and "POLICY_UNKNOWN" in err
    code, out, _ = cli("workloads", "set-policy", "app", "--default", "--version", "1")
    assert code == 0 and "(the workload's)" in out
    code, shown = cli.json("workloads", "show", "app", "--json")
    assert shown["versions"][0]["policy"] is None and shown["version_policies"] == {}
