"""The project side of the NVIDIA reference (used by tests/integration/test_nvidia_agreement.py and
benchmarks/gpu_side_by_side.py): run nv_reference.py with .venv-nvidia's interpreter, and put NVIDIA's answer, the
manifest's expectations and OUR answer (verifier.tee.gpu + verifier.appraisal.gpu_rim) into one shape, `Side`.

Blocks are SPDM measurement block indices as strings ("1".."N"): "pass" / "fail" (an active RIM entry for the
block, RIM index k = block k + 1, matched / did not match) or "not-covered" (no active entry in the RIMs used).
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
NV_VENV = ROOT / ".venv-nvidia"
NV_PYTHON = NV_VENV / "bin" / "python"
DRIVER = Path(__file__).resolve().with_name("nv_reference.py")
REQUIRE_ENV = "VERIFIER_REQUIRE_NVIDIA_REFERENCE"
FACT_KEYS = ("nonce", "response_nonce", "driver_version", "vbios_version", "number_of_blocks", "fwid", "measurements")
RIM_FILES = ("driver_rim.xml", "vbios_rim.xml")


@dataclass(frozen=True)
class Side:
    """One verifier's answer on one vector with one pair of RIM files."""

    source: str  # "nvidia" | "ours" | "manifest"
    # parse, report signature, device chain to the pinned root, FWID, expected nonce (None: our verifier missing)
    evidence_valid: bool | None
    facts: dict[str, Any] | None  # FACT_KEYS (None: the report was not parsed)
    rims: dict[str, dict[str, Any]]  # "driver"/"vbios" -> {"verified": signature and chain at the time, ...}
    blocks: dict[str, str]  # SPDM block -> pass | fail | not-covered


def nvidia_missing() -> str | None:
    """Why NVIDIA's verifier cannot be run here (None: it can)."""
    if not NV_PYTHON.is_file():
        return (
            f"{NV_VENV} is absent (python3 -m venv .venv-nvidia && .venv-nvidia/bin/pip install "
            f"nv-local-gpu-verifier==2.7.3); set {REQUIRE_ENV}=1 to make this a failure"
        )
    return None


def run_nvidia(
    folder: Path,
    at: str | None,
    *,
    nonce: str | None = None,
    driver_rim: Path | None = None,
    vbios_rim: Path | None = None,
    iterations: int = 0,
    timeout: float = 300,
) -> dict[str, Any]:
    """nv_reference.py's JSON for one vector directory (see its docstring; RIMs default to DIR/driver_rim.xml and
    DIR/vbios_rim.xml). Raises RuntimeError when it fails."""
    command = [str(NV_PYTHON), "-I", str(DRIVER), "--vector", str(folder)]  # -I: no PYTHONPATH, no cwd on sys.path
    for flag, value in (("--at", at), ("--nonce", nonce), ("--driver-rim", driver_rim), ("--vbios-rim", vbios_rim)):
        if value:
            command += [flag, str(value)]
    if iterations:
        command += ["--iterations", str(iterations)]
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    try:
        result: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(f"nv_reference.py exit {done.returncode}: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    if done.returncode != 0 or "driver_error" in result:
        raise RuntimeError(f"nv_reference.py exit {done.returncode}: {result.get('driver_error')}\n{result}")
    return result


def _all_blocks(count: int) -> dict[str, str]:
    return {str(block): "not-covered" for block in range(1, count + 1)}


def nvidia_side(result: Mapping[str, Any]) -> Side:
    """NVIDIA's answer (run with --nonce = the vector's expected nonce) as a `Side`."""
    facts = result.get("facts")
    steps = (result["parse"], result.get("cert_chain", {}), result.get("report", {}))
    valid = all(step.get("ok") for step in steps)
    rims = {
        kind: {
            "verified": bool(rim.get("signature_ok") and rim.get("chain_ok")),
            "signature_ok": rim.get("signature_ok"),
            "chain_ok": rim.get("chain_ok"),
            "version_matches": rim.get("version_matches"),
        }
        for kind, rim in result["rims"].items()
    }
    measurements = result["measurements"]
    if facts is None:  # NVIDIA's parser refused the report: nothing compared
        return Side("nvidia", valid, None, rims, {})
    blocks = dict(measurements["blocks"]) if measurements.get("ran") else _all_blocks(facts["number_of_blocks"])
    return Side("nvidia", valid, {k: facts.get(k) for k in FACT_KEYS}, rims, blocks)


def _manifest_rims(vector: Mapping[str, Any], vbios_file: str) -> list[Mapping[str, Any]]:
    results = vector["expected"].get("rim_results") or {}
    entries = [results[kind] for kind in ("driver", "vbios") if kind in results]
    if vbios_file != "vbios_rim.xml":
        entries = [e for e in entries if e["kind"] != "vbios"]
        entries += [e for e in results.get("extra", []) if e["file"] == vbios_file]
    return entries


def manifest_side(vector: Mapping[str, Any], vbios_file: str = "vbios_rim.xml") -> Side:
    """What MANIFEST.json says (expected.verdict, facts, expected.rim_results) as a `Side`."""
    facts = vector["facts"]
    blocks = _all_blocks(facts["number_of_blocks"])
    rims: dict[str, dict[str, Any]] = {}
    for entry in _manifest_rims(vector, vbios_file):
        for index in entry["active_indices"]:
            blocks[str(index + 1)] = "pass"
        for miss in entry["mismatched"]:
            assert miss["spdm_index"] == miss["rim_index"] + 1
            blocks[str(miss["spdm_index"])] = "fail"
        rims[entry["kind"]] = {
            "verified": bool(entry["xml_signature_ok"] and entry["signer_chain_ok"]),
            "signature_ok": entry["xml_signature_ok"],
            "chain_ok": entry["signer_chain_ok"],
            "version_matches": entry["version_matches_report"],
        }
    known = {k: facts.get(k) for k in FACT_KEYS}
    return Side("manifest", vector["expected"]["verdict"] == "valid", known, rims, blocks)


def at_of(vector: Mapping[str, Any]) -> dt.datetime:
    """The vector's verify_at as an aware datetime."""
    return dt.datetime.fromisoformat(vector["verify_at"].replace("Z", "+00:00"))


def our_modules_missing(*, verifier: bool = False) -> str | None:
    """Why our GPU modules cannot be used (None: they import): the parser, RIM verification and the comparison,
    plus with `verifier` the TEE verifier (verifier/tee/gpu/verify.py)."""
    modules = ["verifier.tee.gpu.spdm", "verifier.tee.gpu.rim_verify", "verifier.appraisal.gpu_rim"]
    modules += ["verifier.tee.gpu.verify"] if verifier else []
    try:
        for module in modules:
            importlib.import_module(module)
    except ImportError as exc:
        return f"our GPU modules are not all there yet ({exc})"
    return None


def our_blocks(comparison: Any, count: int) -> dict[str, str]:
    """compare_rims' per-index results as SPDM blocks; a comparison refused as a whole (an index active in both
    RIMs, more golden entries than blocks) compares no block, as NVIDIA's Verifier ("not-compared")."""
    blocks = _all_blocks(count)
    refused = bool(comparison.conflicts) or comparison.too_many_golden
    for item in comparison.results:
        blocks[str(item.spdm_index)] = "not-compared" if refused else ("pass" if item.ok else "fail")
    return blocks


class Ours:
    """Our GPU verification on shared vectors (one `TrustAnchors` reused), shaped as `Side`."""

    def __init__(self, anchors_dir: Path) -> None:
        from verifier.trust.anchors import TrustAnchors

        self.anchors = TrustAnchors.from_directory(anchors_dir)
        self._gpu: Any = None

    @staticmethod
    def report(evidence: bytes) -> Any:
        """Our parser's report structure (`spdm.decode`: the strict header checks of `spdm.parse` left out, so the
        facts of a report NVIDIA parses can be compared even when we refuse its header)."""
        from verifier.tee.gpu import spdm

        return spdm.decode(evidence)

    @staticmethod
    def facts(report: Any) -> dict[str, Any]:
        """FACT_KEYS of our parsed report."""
        opaque = report.response.opaque
        return {
            "nonce": report.request.nonce.hex(),
            "response_nonce": report.response.nonce.hex(),
            "driver_version": opaque.driver_version,
            "vbios_version": opaque.vbios_version,
            "number_of_blocks": report.response.number_of_blocks,
            "fwid": opaque.fwid.hex() if opaque.fwid else None,
            "measurements": {str(index): value.hex() for index, value in sorted(report.measurements.items())},
        }

    def verify_rim(self, xml: bytes, at: dt.datetime, *, cache: bool = True) -> tuple[Any, str | None]:
        """(VerifiedRim, None) or (None, the error code) for one RIM document."""
        from verifier.errors import VerifierError
        from verifier.tee.gpu.rim_verify import verify_rim

        try:
            return verify_rim(xml, at=at, anchors=self.anchors, cache=cache), None
        except VerifierError as exc:
            return None, exc.code

    @staticmethod
    def compare(report: Any, driver: Any, vbios: Any) -> Any:
        """compare_rims over our report's values."""
        from verifier.appraisal.gpu_rim import ReportValues, compare_rims

        opaque = report.response.opaque
        values = ReportValues(report.measurements, opaque.driver_version, opaque.vbios_version)
        return compare_rims(driver, vbios, values)

    def evidence_valid(
        self,
        folder: Path,
        vector: Mapping[str, Any],
        rims: Mapping[str, Path | None] | None = None,
        *,
        fresh: bool = False,
    ) -> tuple[bool, Any]:
        """Our TEE verifier (GpuVerifier) on DIR/evidence.bin with DIR/cert_chain.pem and the RIM files `rims`
        ("driver"/"vbios" -> path, sent as driver_rim.xml / vbios_rim.xml) as collateral, at verify_at: (valid with
        the expected nonce, the VerifiedEvidence). One GpuVerifier (its verified-links cache) is reused unless
        `fresh`."""
        from verifier.tee.base import VerifyContext
        from verifier.tee.gpu.verify import GpuVerifier

        collateral = {"cert_chain.pem": (folder / "cert_chain.pem").read_bytes()}
        for kind, path in (rims or {}).items():
            if path is not None and path.is_file():
                collateral[f"{kind}_rim.xml"] = path.read_bytes()
        if fresh or self._gpu is None:
            self._gpu = GpuVerifier()
        ctx = VerifyContext(at=at_of(vector), anchors=self.anchors, collateral=collateral)
        verified = self._gpu.verify((folder / "evidence.bin").read_bytes(), ctx)
        nonce_ok = verified.claims.get("nonce") == vector["expected"]["expected_nonce"]
        return verified.failure is None and nonce_ok, verified

    def side(self, folder: Path, vector: Mapping[str, Any], rims: Mapping[str, Path | None] | None = None) -> Side:
        """Our answer on one vector with the RIM files `rims` ("driver"/"vbios" -> path; default DIR/driver_rim.xml
        and DIR/vbios_rim.xml when present); evidence_valid is None while GpuVerifier is missing."""
        at = at_of(vector)
        report = self.report((folder / "evidence.bin").read_bytes())
        files = rims if rims is not None else {"driver": folder / "driver_rim.xml", "vbios": folder / "vbios_rim.xml"}
        outcome: dict[str, dict[str, Any]] = {}
        found: dict[str, Any] = {}
        for kind, path in files.items():
            if path is not None and path.is_file():
                found[kind], code = self.verify_rim(path.read_bytes(), at)
                outcome[kind] = {"verified": found[kind] is not None, "code": code}
        blocks = _all_blocks(report.response.number_of_blocks)
        if any(found.values()):
            comparison = self.compare(report, found.get("driver"), found.get("vbios"))
            blocks = our_blocks(comparison, len(blocks))
            for check in comparison.versions:
                outcome[check.kind]["version_matches"] = check.ok
        valid = None if our_modules_missing(verifier=True) else self.evidence_valid(folder, vector)[0]
        return Side("ours", valid, self.facts(report), outcome, blocks)
