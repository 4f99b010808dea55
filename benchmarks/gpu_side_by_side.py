#!/usr/bin/env python3
"""GPU side by side (issue 15): GPU appraisals/s of our in-process GPU verification + RIM comparison against NVIDIA's
own verifier (nv-local-gpu-verifier 2.7.3) doing the same work on the same report, in one run.

Not a test: `.venv/bin/python benchmarks/gpu_side_by_side.py [--iterations N] [--seconds S] [--json FILE]`.

One appraisal = the report of the shared vector gpu-hopper-nvidia-sample-2023 (the only public report with a
matching driver and VBIOS RIM) parsed, its signature checked with the leaf, the device chain checked to the pinned
root (with the FWID rule), the nonce compared, both RIMs verified (XML signature, signing chain at the vector's
verify_at) and the 33 active golden measurements compared per block:
- NVIDIA: tests/nvidia_reference/nv_reference.py in .venv-nvidia (its own venv: it pins cryptography 43 / signxml 3)
  repeats its offline appraisal N times in-process and reports its own rate (OCSP patched out, as in the agreement
  test; NVIDIA's code has no caches, so every iteration re-reads the RIMs and the SWID schema);
- ours: GpuVerifier.verify with the RIMs as request collateral (parse, signature, chain, FWID, both RIMs through
  rim_source / verify_rim) then compare_rims over the RIMs it verified, in this process; once with warm caches (the
  service's steady state: one GpuVerifier, its verified chain links and the verified-RIM cache kept) and once cold
  (a new GpuVerifier and the verified-RIM cache cleared before every appraisal).
Both sides must reach the same result (all blocks pass), checked before timing. Our side is skipped, with the
reason, when our GPU modules are missing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from tests.nvidia_reference import harness  # noqa: E402  (the repository root is on sys.path above)

VECTOR_ID = "gpu-hopper-nvidia-sample-2023"


def _root() -> Path:
    return Path(os.environ.get("VERIFIER_VECTORS", ROOT.parent / "shared" / "vectors"))


def _vector() -> tuple[Path, dict[str, Any]]:
    root = _root()
    manifest = json.loads((root / "MANIFEST.json").read_text())
    vector = next(v for v in manifest["vectors"] if v["id"] == VECTOR_ID)
    return root / vector["dir"], vector


def nvidia_rate(folder: Path, vector: dict[str, Any], iterations: int) -> dict[str, Any]:
    """NVIDIA's appraisals/s, measured inside its own process (its interpreter start-up and imports excluded)."""
    result = harness.run_nvidia(
        folder, vector["verify_at"], nonce=vector["expected"]["expected_nonce"], iterations=iterations
    )
    if result["flow"]["stopped_at"] is not None:
        raise SystemExit(f"NVIDIA's verifier did not pass the vector: stopped at {result['flow']['stopped_at']}")
    return {"per_second": result["benchmark"]["per_second"], "iterations": iterations, "tool": result["tool"]}


def _our_appraisal(folder: Path, vector: dict[str, Any], *, cold: bool) -> Callable[[], bool]:
    from verifier.tee.gpu.rim_verify import clear_rim_cache

    ours = harness.Ours(_root().parent / "trust-anchors")
    rims = {"driver": folder / "driver_rim.xml", "vbios": folder / "vbios_rim.xml"}

    def appraise() -> bool:
        if cold:
            clear_rim_cache()
        valid, verified = ours.evidence_valid(folder, vector, rims, fresh=cold)
        facts = verified.facts
        comparison = ours.compare(verified.parsed, facts.driver.rim, facts.vbios.rim)
        return bool(valid and comparison.ok)

    return appraise


def our_rate(folder: Path, vector: dict[str, Any], seconds: float, *, cold: bool) -> dict[str, Any]:
    """Our appraisals/s over about `seconds` (after one warm-up appraisal that must pass)."""
    appraise = _our_appraisal(folder, vector, cold=cold)
    if not appraise():
        raise SystemExit("our GPU verification did not pass the vector")
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        appraise()
        count += 1
    return {"per_second": count / elapsed, "iterations": count}


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=30, help="NVIDIA's in-process iterations (default 30)")
    parser.add_argument("--seconds", type=float, default=2.0, help="time per row of ours (default 2 s)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    folder, vector = _vector()
    missing = harness.nvidia_missing()
    if missing:
        print(f"NVIDIA's verifier: {missing}")
        return 2
    results: dict[str, Any] = {"vector": VECTOR_ID, "at": vector["verify_at"], "machine": platform.platform()}
    results["nvidia"] = nvidia = nvidia_rate(folder, vector, args.iterations)
    tool = nvidia["tool"]
    print(f"GPU appraisals/s on {VECTOR_ID} (report + chain + nonce + 2 RIMs + 33-entry comparison), one process each")
    print(f"  nv-local-gpu-verifier {tool['nv-local-gpu-verifier']} (signxml {tool['signxml']}, OCSP off)")
    print(f"      {nvidia['per_second']:9.1f} /s   ({nvidia['iterations']} iterations)")
    missing = harness.our_modules_missing(verifier=True)
    if missing:
        print(f"  ours: skipped, {missing}")
    else:
        for name, cold in (("ours, warm caches", False), ("ours, cold caches", True)):
            row = our_rate(folder, vector, args.seconds, cold=cold)
            row["ratio_to_nvidia"] = row["per_second"] / nvidia["per_second"]
            results[name] = row
            rate, count, ratio = row["per_second"], row["iterations"], row["ratio_to_nvidia"]
            print(f"  {name}")
            print(f"      {rate:9.1f} /s   ({count} appraisals)  x{ratio:.1f} NVIDIA's rate")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
