"""A workload version requiring GPUs (issue 15 item 4): `gpus: {min: k}` in a manifest is the value `<tee>.min_gpus`
k, kept apart from the version's CPU members (the CPU appraiser never sees it), and the requirement is met only by
k affirming GPUs (`verifier.composite.requirement`)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from verifier.appraisal.model import AFFIRMING, CONTRAINDICATED, Appraisal, Claim, TrustVector
from verifier.composite import requirement
from verifier.errors import RequestError
from verifier.evaluation import Component
from verifier.reference_values.kinds import normalize_value
from verifier.reference_values.model import ReferenceValue
from verifier.workloads.manifest import load_manifest_file
from verifier.workloads.model import group_versions

AT = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
MEASUREMENT = "ab" * 48


def ref(kind: str, value: bytes, *, version: str = "1", revoked: bool = False) -> ReferenceValue:
    return ReferenceValue(
        id=f"{kind}-{value.hex()}",
        kind=kind,
        value=value,
        label="inference",
        created_at=AT - dt.timedelta(days=1),
        version=version,
        revoked_at=AT - dt.timedelta(hours=1) if revoked else None,
    )


def component(index: int, value: int = AFFIRMING) -> Component:
    vector = TrustVector({Claim.HARDWARE: value})
    return Component(f"gpu{index}", Appraisal("gpu", vector.status, vector, {}, (), "default"), "00" * 48)


def write(tmp_path: Path, document: dict[str, Any]) -> Path:
    path = tmp_path / "workload.json"
    path.write_text(json.dumps(document))
    return path


def test_the_kinds_are_one_byte_minimums() -> None:
    assert normalize_value("snp.min_gpus", "02") == b"\x02" and normalize_value("tdx.min_gpus", "0x08") == b"\x08"
    with pytest.raises(RequestError) as error:
        normalize_value("snp.min_gpus", "0002")
    assert error.value.code == "REFERENCE_VALUE_LENGTH"
    with pytest.raises(RequestError):
        normalize_value("nitro.min_gpus", "02")


def test_group_versions_keeps_the_gpu_count_apart() -> None:
    rows = [ref("snp.measurement", b"\xab" * 48), ref("snp.min_gpus", b"\x02"), ref("snp.min_gpus", b"\x03")]
    (version,) = group_versions("snp", rows, {}, AT, members=rows)
    assert set(version.members) == {"snp.measurement"} and version.required == {"snp.measurement"}
    assert version.gpus_required and version.min_gpus == 3  # all-of: the largest minimum
    assert [r.kind for r in version.values] == ["snp.measurement"]  # what the CPU appraiser gets
    (plain,) = group_versions("snp", rows[:1], {}, AT, members=rows[:1])
    assert (plain.gpus_required, plain.min_gpus) == (False, 0)


def test_the_requirement() -> None:
    rows = [ref("snp.measurement", b"\xab" * 48), ref("snp.min_gpus", b"\x02")]
    (version,) = group_versions("snp", rows, {}, AT, members=rows)
    assert requirement(version, [component(0), component(1)]) == ([], [rows[1]])
    misses, matched = requirement(version, [component(0), component(1, CONTRAINDICATED)])
    assert [m.code for m in misses] == ["WORKLOAD_GPUS_INSUFFICIENT"] and matched == []
    assert (misses[0].expected, misses[0].actual) == (">= 2 affirming GPUs", "1 of 2 (gpu0)")
    assert requirement(None, []) == ([], [])


def test_a_revoked_requirement_cannot_be_met_and_a_count_alone_pins_nothing() -> None:
    revoked = ref("snp.min_gpus", b"\x01", revoked=True)
    rows = [ref("snp.measurement", b"\xab" * 48)]
    (version,) = group_versions("snp", rows, {}, AT, members=[*rows, revoked])
    assert version.gpus_required and version.min_gpus is None
    misses, _ = requirement(version, [component(0), component(1)])
    assert [(m.code, m.actual) for m in misses] == [("WORKLOAD_GPUS_INSUFFICIENT", "none")]
    alone = [ref("snp.min_gpus", b"\x01")]
    (bare,) = group_versions("snp", alone, {}, AT, members=alone)
    assert [m.code for m in requirement(bare, [component(0)])[0]] == ["REFERENCE_VALUE_MISSING"]


def test_manifest_gpus(tmp_path: Path) -> None:
    document = {
        "workload": "inference",
        "tee": "snp",
        "gpus": {"min": 2},
        "versions": [
            {"version": "1", "values": {"snp.measurement": MEASUREMENT}},
            {"version": "2", "values": {"snp.measurement": MEASUREMENT}, "gpus": {"min": 4}},
            {"version": "3", "values": {"snp.measurement": MEASUREMENT, "snp.min_gpus": "01"}},
        ],
    }
    manifest = load_manifest_file(write(tmp_path, document))
    counts = {e.version: e.value for e in manifest.entries if e.kind == "snp.min_gpus"}
    assert counts == {"1": b"\x02", "2": b"\x04", "3": b"\x01"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tee": "nitro", "gpus": {"min": 1}}, "only snp and tdx"),
        ({"gpus": {"min": 0}}, "must be {min: k} with k of 1..8"),
        ({"gpus": {"min": 9}}, "must be {min: k}"),
        ({"gpus": 2}, "must be {min: k}"),
        ({"gpus": {"min": 2, "max": 3}}, "must be {min: k}"),
        (
            {"versions": [{"version": "1", "values": {"snp.measurement": MEASUREMENT, "snp.min_gpus": "01"},
                           "gpus": {"min": 2}}]},
            "lists snp.min_gpus already",
        ),
    ],
)  # fmt: skip
def test_bad_manifest_gpus(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    document = {
        "workload": "w",
        "tee": "snp",
        "versions": [{"version": "1", "values": {"snp.measurement": MEASUREMENT}}],
    }
    with pytest.raises(RequestError) as error:
        load_manifest_file(write(tmp_path, {**document, **change}))
    assert error.value.code == "MANIFEST_INVALID" and message in error.value.message
