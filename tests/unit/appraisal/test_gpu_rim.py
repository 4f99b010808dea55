"""Comparing a GPU report with its RIMs (verifier/appraisal/gpu_rim.py), nv-local-gpu-verifier's rules: the 2023
sample against its RIMs (33/33, and the production VBIOS RIM failing RIM indices 1, 2, 3, 9 as the manifest says),
then one rule per test with fake RIMs."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import manifest_vectors
from tests.fakes.nvidia_rim import FakeRimPki
from verifier.appraisal.gpu_rim import ReportValues, compare_rims
from verifier.tee.gpu import spdm
from verifier.tee.gpu.rim_verify import VerifiedRim, verify_rim
from verifier.trust.anchors import TrustAnchors

SAMPLE = next((v for v in manifest_vectors("gpu") if v["id"] == "gpu-hopper-nvidia-sample-2023"), None)
needs_sample = pytest.mark.skipif(SAMPLE is None, reason="shared vectors not found")
RIM_ROOT = "12977b5115acb0381179279fffeb5a8c4d264971ebb32298023a465fa41df5d1"
A, B, C = b"\xaa" * 48, b"\xbb" * 48, b"\xcc" * 48


def spdm_values(report: bytes) -> ReportValues:
    """A tiny, independent reading of an SPDM 1.1 GET_MEASUREMENTS request + MEASUREMENTS response (README "NVIDIA
    GPU"): the blocks' values by index and the driver / VBIOS versions from the opaque data."""
    count, record_length = report[41], int.from_bytes(report[42:45], "little")
    blocks, offset = {}, 45
    for _ in range(count):
        index, size = report[offset], int.from_bytes(report[offset + 2 : offset + 4], "little")
        value_size = int.from_bytes(report[offset + 5 : offset + 7], "little")
        blocks[index] = report[offset + 7 : offset + 7 + value_size]
        offset += 4 + size
    assert offset == 45 + record_length
    opaque_at = offset + 32
    end = opaque_at + 2 + int.from_bytes(report[opaque_at : opaque_at + 2], "little")
    fields, at = {}, opaque_at + 2
    while at < end:
        kind, length = int.from_bytes(report[at : at + 2], "little"), int.from_bytes(report[at + 2 : at + 4], "little")
        fields[kind], at = report[at + 4 : at + 4 + length], at + 4 + length
    raw = fields[6]
    vbios = ".".join(f"{b:02x}" for b in (raw[3], raw[2], raw[1], raw[0], raw[4]))
    return ReportValues(measurements=blocks, driver_version=fields[3].rstrip(b"\0").decode(), vbios_version=vbios)


@pytest.fixture(scope="module")
def sample(vectors_dir: Path, trust_anchors_dir: Path) -> dict[str, Any]:
    assert SAMPLE is not None
    folder = Path(vectors_dir, SAMPLE["dir"])
    anchors = TrustAnchors.from_directory(trust_anchors_dir, pins={"nvidia-rim": frozenset({RIM_ROOT})})
    at = datetime.datetime.fromisoformat(SAMPLE["verify_at"].replace("Z", "+00:00"))
    rims = {n: verify_rim((folder / n).read_bytes(), at=at, anchors=anchors) for n in SAMPLE["what"]["rims_shipped"]}
    return {"report": spdm_values((folder / "evidence.bin").read_bytes()), **rims}


@needs_sample
def test_the_local_reading_agrees_with_the_manifest(sample: dict[str, Any]) -> None:
    assert SAMPLE is not None
    facts, report = SAMPLE["facts"], sample["report"]
    assert {str(k): v.hex() for k, v in report.measurements.items()} == facts["measurements"]
    assert (report.driver_version, report.vbios_version) == (facts["driver_version"], facts["vbios_version"])


@needs_sample
def test_the_projects_spdm_parser_gives_the_same_values_and_verdicts(vectors_dir: Path, sample: dict[str, Any]) -> None:
    assert SAMPLE is not None
    parsed = spdm.parse(Path(vectors_dir, SAMPLE["dir"], "evidence.bin").read_bytes())
    opaque = parsed.response.opaque
    values = ReportValues(parsed.measurements, opaque.driver_version, opaque.vbios_version)
    assert values == sample["report"]
    for vbios in ("vbios_rim.xml", "vbios_rim_prod.xml"):
        ours = compare_rims(sample["driver_rim.xml"], sample[vbios], sample["report"])
        theirs = compare_rims(sample["driver_rim.xml"], sample[vbios], values)
        assert ours == theirs


@needs_sample
def test_the_2023_sample_matches_its_rims(sample: dict[str, Any]) -> None:
    assert SAMPLE is not None
    expected = SAMPLE["expected"]["rim_results"]
    result = compare_rims(sample["driver_rim.xml"], sample["vbios_rim.xml"], sample["report"])
    assert result.ok and result.measurements_ok and not result.failed and not result.conflicts
    assert len(result.results) == expected["combined"]["matched"] == 33
    for kind in ("driver", "vbios"):
        assert [r.rim_index for r in result.results if r.source == kind] == expected[kind]["active_indices"]
    assert [(v.kind, v.ok) for v in result.versions] == [("driver", True), ("vbios", True)]
    assert all(r.spdm_index == r.rim_index + 1 for r in result.results)


@needs_sample
def test_the_production_vbios_rim_does_not_match(sample: dict[str, Any]) -> None:
    assert SAMPLE is not None
    extra = SAMPLE["expected"]["rim_results"]["extra"][0]
    result = compare_rims(sample["driver_rim.xml"], sample["vbios_rim_prod.xml"], sample["report"])
    assert not result.ok and not result.measurements_ok and all(v.ok for v in result.versions)
    failed = [
        {"rim_index": r.rim_index, "spdm_index": r.spdm_index, "report": r.actual.hex() if r.actual else None,
         "rim_alternatives": [a.hex() for a in r.expected]}
        for r in result.failed
    ]  # fmt: skip
    assert failed == extra["mismatched"]
    assert [r.rim_index for r in result.failed] == [1, 2, 3, 9] and {r.source for r in result.failed} == {"vbios"}
    assert len(result.results) - len(result.failed) == extra["matched"] + 21


@pytest.fixture(scope="module")
def pki() -> FakeRimPki:
    return FakeRimPki()


def _rim(pki: FakeRimPki, version: str, active: Mapping[int, Sequence[bytes]], *, size: int = 48) -> VerifiedRim:
    return verify_rim(pki.mint(version=version, active=active, size=size), at=pki.now, anchors=pki.anchors())


def _report(blocks: Mapping[int, bytes], driver: str | None = "545.00", vbios: str | None = "96.00.5e.00.01") -> Any:
    values = {i: bytes(48) for i in range(1, 65)}
    values.update(blocks)
    return ReportValues(measurements=values, driver_version=driver, vbios_version=vbios)


def test_rim_index_k_is_block_k_plus_1_and_any_alternative_matches(pki: FakeRimPki) -> None:
    driver = _rim(pki, "545.00", {7: [A], 23: [B, C]})
    vbios = _rim(pki, "96.00.5E.00.01", {0: [A]})
    result = compare_rims(driver, vbios, _report({8: A, 24: C, 1: A}))
    assert result.ok and [(r.rim_index, r.spdm_index, r.source) for r in result.results] == [
        (0, 1, "vbios"),
        (7, 8, "driver"),
        (23, 24, "driver"),
    ]
    off_by_one = compare_rims(driver, vbios, _report({7: A, 24: C, 1: A}))
    assert [(r.rim_index, r.outcome, r.actual, r.expected) for r in off_by_one.failed] == [
        (7, "mismatch", bytes(48), (A,))
    ]


def test_inactive_entries_are_ignored(pki: FakeRimPki) -> None:
    driver = _rim(pki, "545.00", {7: [A]})  # every other entry inactive with a zero hash
    result = compare_rims(driver, _rim(pki, "96.00.5E.00.01", {0: [B]}), _report({8: A, 1: B, 30: C}))
    assert result.ok and [r.rim_index for r in result.results] == [0, 7]


def test_the_size_must_be_the_value_length(pki: FakeRimPki) -> None:
    driver = _rim(pki, "545.00", {7: [b"\xaa" * 32]}, size=32)
    vbios = _rim(pki, "96.00.5E.00.01", {0: [A]})
    assert compare_rims(driver, vbios, _report({8: b"\xaa" * 32, 1: A})).ok
    assert [r.outcome for r in compare_rims(driver, vbios, _report({8: A, 1: A})).failed] == ["mismatch"]
    # the parser refuses a Hash that is not `size` bytes; the rule still holds for a RIM built otherwise
    entry = driver.rim.measurements[7]
    odd = replace(entry, size=48, alternatives=(b"\xaa" * 32,))
    rim = replace(driver, rim=replace(driver.rim, measurements=(*driver.rim.measurements[:7], odd)))
    result = compare_rims(rim, vbios, _report({8: b"\xaa" * 32, 1: A}))
    assert [(r.rim_index, r.outcome) for r in result.failed] == [(7, "size")]


def test_a_missing_block_fails_its_index(pki: FakeRimPki) -> None:
    driver = _rim(pki, "545.00", {7: [A]})
    report = ReportValues(measurements={1: A}, driver_version="545.00", vbios_version="96.00.5e.00.01")
    result = compare_rims(driver, _rim(pki, "96.00.5E.00.01", {0: [A]}), report)
    assert [(r.rim_index, r.outcome, r.actual) for r in result.failed] == [(7, "missing", None)]
    assert result.too_many_golden and not result.measurements_ok  # 2 golden entries, 1 block


def test_more_golden_entries_than_blocks_fail_as_a_whole(pki: FakeRimPki) -> None:
    driver = _rim(pki, "545.00", {0: [A], 1: [A], 2: [A]})
    report = ReportValues(measurements={1: A, 2: A}, driver_version="545.00", vbios_version=None)
    result = compare_rims(driver, None, report)
    assert result.too_many_golden and not result.measurements_ok and result.golden_count == 3


def test_an_index_active_in_both_rims_is_a_conflict(pki: FakeRimPki) -> None:
    driver = _rim(pki, "545.00", {7: [A]})
    vbios = _rim(pki, "96.00.5E.00.01", {7: [A], 0: [A]})
    result = compare_rims(driver, vbios, _report({8: A, 1: A}))
    assert result.conflicts == (7,) and not result.measurements_ok and not result.ok
    assert all(r.ok for r in result.results) and [r.source for r in result.results if r.rim_index == 7] == ["driver"]


def test_versions_driver_exact_vbios_ignoring_case(pki: FakeRimPki) -> None:
    driver = _rim(pki, "545.00", {7: [A]})
    vbios = _rim(pki, "96.00.5E.00.01", {0: [A]})
    blocks = {8: A, 1: A}
    assert compare_rims(driver, vbios, _report(blocks, vbios="96.00.5E.00.01")).ok
    for report in (_report(blocks, driver="550.90.07"), _report(blocks, driver="545.0"), _report(blocks, driver=None)):
        result = compare_rims(driver, vbios, report)
        assert not result.ok and result.measurements_ok
        assert [(v.kind, v.ok) for v in result.versions] == [("driver", False), ("vbios", True)]
    other = compare_rims(driver, vbios, _report(blocks, vbios="96.00.5e.00.02"))
    assert [(v.kind, v.ok, v.rim_version, v.report_version) for v in other.versions][1] == (
        "vbios",
        False,
        "96.00.5E.00.01",
        "96.00.5e.00.02",
    )


def test_a_rim_for_another_version_is_not_ok(pki: FakeRimPki) -> None:
    other = _rim(pki, "550.90.07", {7: [A]})
    result = compare_rims(other, _rim(pki, "96.00.5E.00.01", {0: [A]}), _report({8: A, 1: A}))
    assert result.measurements_ok and not result.ok and result.versions[0].rim_version == "550.90.07"


def test_a_missing_rim_is_said_and_never_ok(pki: FakeRimPki) -> None:
    vbios = _rim(pki, "96.00.5E.00.01", {0: [A]})
    result = compare_rims(None, vbios, _report({1: A}))
    assert result.missing == ("driver",) and result.measurements_ok and not result.ok
    nothing = compare_rims(None, None, _report({}))
    assert nothing.missing == ("driver", "vbios") and nothing.results == () and not nothing.ok
