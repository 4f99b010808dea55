"""NVIDIA RIMs from a configured directory (`--nvidia-rim-dir`): asked first, offline too, verified like any RIM;
misses and other kinds go to the fallback; a file that is not a regular file of at most 1 MiB is refused."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from verifier.collateral.base import CollateralKey, CollateralUnavailableError, OfflineSource
from verifier.collateral.nvidia_keys import KIND_RIM
from verifier.collateral.rim_directory import MAX_RIM_FILE_BYTES, RimDirectory
from verifier.tee.gpu.rim_source import driver_rim_id, vbios_rim_id
from verifier.tee.gpu.spdm import parse

AT = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)


def _key(rim_id: str) -> CollateralKey:
    return CollateralKey(KIND_RIM, (("id", rim_id),))


def test_a_rim_in_the_directory_is_served_and_misses_go_to_the_fallback(tmp_path: Path) -> None:
    (tmp_path / "NV_GPU_DRIVER_GH100_545.00.xml").write_bytes(b"<rim/>")
    source = RimDirectory(tmp_path, OfflineSource())
    item = source.fetch(_key("NV_GPU_DRIVER_GH100_545.00"), at=AT)
    assert (item.data, item.source, item.next_update) == (b"<rim/>", "rim-directory", None)
    with pytest.raises(CollateralUnavailableError) as info:
        source.fetch(_key("NV_GPU_DRIVER_GH100_550.90.07"), at=AT)
    assert info.value.code == "COLLATERAL_OFFLINE"
    with pytest.raises(CollateralUnavailableError):
        source.fetch(_key("../etc/passwd"), at=AT)  # not a RIM id: never a path


def test_links_directories_and_huge_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "target.xml").write_bytes(b"<rim/>")
    os.symlink(tmp_path / "target.xml", tmp_path / "LINKED.xml")
    (tmp_path / "DIR.xml").mkdir()
    (tmp_path / "HUGE.xml").write_bytes(b"<" + b" " * MAX_RIM_FILE_BYTES)
    source = RimDirectory(tmp_path, OfflineSource())
    for rim_id in ("LINKED", "DIR", "HUGE"):
        with pytest.raises(CollateralUnavailableError) as info:
            source.fetch(_key(rim_id), at=AT)
        assert info.value.code == "COLLATERAL_MALFORMED", rim_id


def test_the_cli_appraises_with_rims_from_the_directory_only(tmp_path: Path, vectors_dir: Path) -> None:
    vector = vectors_dir / "gpu" / "gpu-hopper-nvidia-sample-2023"
    report = parse((vector / "evidence.bin").read_bytes())
    chain = x509.load_pem_x509_certificates((vector / "cert_chain.pem").read_bytes())
    rims, collateral = tmp_path / "rims", tmp_path / "collateral"
    rims.mkdir()
    collateral.mkdir()
    shutil.copy(vector / "cert_chain.pem", collateral / "cert_chain.pem")
    shutil.copy(vector / "driver_rim.xml", rims / f"{driver_rim_id(report, chain)}.xml")
    shutil.copy(vector / "vbios_rim.xml", rims / f"{vbios_rim_id(report)}.xml")
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"policies": [{"id": "lab", "gpu": {"ocsp": "best-effort"}}]}))
    anchors = vectors_dir.parent / "trust-anchors"
    cli = str(Path(sys.executable).parent / "verifier")
    args = [cli, "verify", "--tee", "gpu", "--evidence", str(vector / "evidence.bin")]
    args += ["--collateral", str(collateral), "--offline", "--trust-anchors", str(anchors), "--json"]
    args += ["--at", "2025-03-01T00:00:00Z", "--policy-file", str(policy), "--policy", "lab"]
    without = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert without.returncode == 3, without.stderr  # offline and no RIM anywhere: incomplete
    found = subprocess.run([*args, "--nvidia-rim-dir", str(rims)], capture_output=True, text=True, timeout=120)
    assert found.returncode == 0, found.stdout[-800:] + found.stderr[-800:]
    assert json.loads(found.stdout)["status"] == "affirming"
