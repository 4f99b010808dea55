"""The real NVIDIA RIMs of the 2023 sample (../shared/vectors gpu-hopper-nvidia-sample-2023): they verify at the
vector's verify_at against the pinned NVIDIA RIM root, as the manifest's expected.rim_results says, and stop
verifying when their signer expires, when a byte changes or under another root."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import manifest_vectors
from tests.fakes.nvidia_rim import FakeRimPki
from verifier.errors import EvidenceError
from verifier.tee.gpu.rim_verify import clear_rim_cache, verify_rim
from verifier.trust.anchors import PINNED_ROOTS, TrustAnchors

RIM_ROOT = "12977b5115acb0381179279fffeb5a8c4d264971ebb32298023a465fa41df5d1"
PINS = {"nvidia-rim": frozenset({RIM_ROOT})}
SAMPLE = next((v for v in manifest_vectors("gpu") if v["id"] == "gpu-hopper-nvidia-sample-2023"), None)
pytestmark = pytest.mark.skipif(SAMPLE is None, reason="shared vectors not found")
RESULTS: dict[str, Any] = SAMPLE["expected"]["rim_results"] if SAMPLE else {}
REAL = [RESULTS["driver"], RESULTS["vbios"], *RESULTS["extra"]] if SAMPLE else []


def _time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def anchors(trust_anchors_dir: Path) -> TrustAnchors:
    return TrustAnchors.from_directory(trust_anchors_dir, pins=PINS)


def _rim(vectors_dir: Path, name: str) -> bytes:
    assert SAMPLE is not None
    return Path(vectors_dir, SAMPLE["dir"], name).read_bytes()


def test_the_rim_root_is_pinned_by_default() -> None:
    assert PINNED_ROOTS.get("nvidia-rim") == frozenset({RIM_ROOT})


@pytest.mark.parametrize("expected", REAL, ids=[r["file"] for r in REAL])
def test_real_rims_verify_at_verify_at(vectors_dir: Path, anchors: TrustAnchors, expected: dict[str, Any]) -> None:
    assert SAMPLE is not None
    clear_rim_cache()
    verified = verify_rim(_rim(vectors_dir, expected["file"]), at=_time(SAMPLE["verify_at"]), anchors=anchors)
    assert (verified.kind, verified.colloquial_version) == (expected["kind"], expected["colloquialVersion"])
    assert verified.signer.subject.rfc4514_string() == expected["signer_subject"]
    assert [verified.valid_from, verified.valid_until] == [_time(t) for t in expected["signer_validity"]]
    assert len(verified.chain) == 4 and verified.chain[-1] in anchors.roots("nvidia-rim")
    assert [m.index for m in verified.rim.active] == expected["active_indices"]


@pytest.mark.parametrize("expected", REAL, ids=[r["file"] for r in REAL])
def test_real_rims_are_unusable_once_their_signer_expired(
    vectors_dir: Path, anchors: TrustAnchors, expected: dict[str, Any]
) -> None:
    after = _time(expected["signer_validity"][1]) + datetime.timedelta(seconds=1)
    for cache in (False, True):  # a cold check and one from the cache
        with pytest.raises(EvidenceError) as info:
            verify_rim(_rim(vectors_dir, expected["file"]), at=after, anchors=anchors, cache=cache)
        assert info.value.code == "GPU_RIM_CHAIN_INVALID" and "CERT_EXPIRED" in info.value.message


def test_a_changed_golden_value_breaks_a_real_signature(vectors_dir: Path, anchors: TrustAnchors) -> None:
    assert SAMPLE is not None
    data = _rim(vectors_dir, "driver_rim.xml")
    value = b'index="7" active="True" alternatives="1" ns2:Hash0="0e0ee161'
    assert data.count(value) == 1
    with pytest.raises(EvidenceError) as info:
        verify_rim(data.replace(value, value[:-1] + b"0"), at=_time(SAMPLE["verify_at"]), anchors=anchors)
    assert info.value.code == "GPU_RIM_SIGNATURE_INVALID"


def test_real_rims_do_not_verify_under_another_pinned_root(vectors_dir: Path) -> None:
    assert SAMPLE is not None
    with pytest.raises(EvidenceError) as info:
        verify_rim(_rim(vectors_dir, "vbios_rim.xml"), at=_time(SAMPLE["verify_at"]), anchors=FakeRimPki().anchors())
    assert info.value.code == "GPU_RIM_CHAIN_INVALID"
