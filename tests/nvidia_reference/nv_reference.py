#!/usr/bin/env python3
"""NVIDIA's own verifier (nv-local-gpu-verifier 2.7.3) on one GPU vector, offline, as JSON on stdout.

Run it with the interpreter of the separate venv that holds nv-local-gpu-verifier (it pins cryptography 43,
signxml 3.2 and PyJWT 2.7, which conflict with the project's venv):

    .venv-nvidia/bin/python tests/nvidia_reference/nv_reference.py --vector DIR --at 2025-03-01T00:00:00Z \
        [--nonce HEX] [--driver-rim FILE] [--vbios-rim FILE] [--arch hopper|blackwell] [--iterations N]

DIR holds evidence.bin (SPDM request + response) and cert_chain.pem; RIMs default to DIR/driver_rim.xml and
DIR/vbios_rim.xml when they exist. Every check is NVIDIA's code, called the way cc_admin.attest() calls it, one step
at a time so that a failing step does not hide the result of the others (`flow.stopped_at` names the first step at
which cc_admin.attest() itself would have stopped):

- parse: verifier.attestation.AttestationReport (its SPDM request/response/opaque-data parser);
- cert_chain: the chain as nvml/gpu_cert_chains.py builds it (the PEM split by GpuCertificateChains.extract_cert_chain,
  the GPU's own root dropped, NVIDIA's pinned verifier_device_root.pem appended), then
  CcAdminUtils.verify_gpu_certificate_chain (FWID of the leaf vs the report, exactly 5 certificates, pyOpenSSL chain);
- report: CcAdminUtils.verify_attestation_report (nonce, driver/VBIOS version, signature with the leaf); `signature`
  is AttestationReport.verify_signature alone (so it is known when the nonce check fails first);
- rims: verifier.rim.RIM(...).verify(version=...) (schema, colloquialVersion, RIM chain to NVIDIA's pinned RIM root,
  XML signature with signxml 3.2); `signature_ok` is RIM.verify_signature alone when verify() stopped before it;
- measurements: verifier.verifier.Verifier (active entries of both RIMs, index conflict, RIM index k vs SPDM block
  k + 1, alternatives and size); the mismatched indices are the ones Verifier.verify itself logs.

What is patched (nothing else; see PATCHES below, also printed in the JSON):
1. CcAdminUtils.ocsp_certificate_chain_validation: returns (True, "", "not-checked-offline", None) without any
   request, and records which chain it was asked about. Revocation is therefore never checked here, and the
   tool's own overall status (settings.check_status(), which requires OCSP "good") is reported but always False.
2. CcAdminUtils.send_ocsp_request, CcAdminUtils.fetch_rim_file and urllib.request.urlopen: raise (a guard: with the
   RIMs given as files and 1. in place, none of them is called; an attempt shows up in `network_attempts`).
3. The clock: OpenSSL.crypto.X509StoreContext is replaced by a subclass that sets the store's verification time to
   --at before verifying, so the device chain, the RIM chains (cc_admin_utils) and signxml's own chain walk are
   checked at --at instead of the real clock (the RIM signer certificates expired in 2025-06).
4. Not a patch but an offline substitution: the driver and VBIOS versions that cc_admin gets from NVML are taken
   from the report itself (so those two cross-checks cannot fail here).
Logging: the tool's stdout handler is removed (stdout is the JSON), and it runs in a scratch working directory
because verifier/config.py deletes and creates ./verifier.log at import.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
import types
from pathlib import Path
from typing import Any

PATCHES = [
    "verifier.cc_admin_utils.CcAdminUtils.ocsp_certificate_chain_validation -> returns "
    "(True, '', 'not-checked-offline', None), records the chain; no OCSP request",
    "verifier.cc_admin_utils.CcAdminUtils.send_ocsp_request -> raises (network guard, not reached)",
    "verifier.cc_admin_utils.CcAdminUtils.fetch_rim_file -> raises (network guard, not reached: RIMs are files)",
    "urllib.request.urlopen -> raises (network guard)",
    "OpenSSL.crypto.X509StoreContext -> subclass setting the store's verification time to --at (clock, not network)",
    "driver/VBIOS version 'fetched from NVML' := the report's own (offline substitution)",
]

NV = types.SimpleNamespace()  # NVIDIA's modules, imported by _load() inside a scratch working directory
NETWORK_ATTEMPTS: list[str] = []
OCSP_CALLS: list[dict[str, Any]] = []
MISMATCH_LINE = re.compile(r"^\s*(\d+) \[(Driver|Firmware)\]\s*$")


def _error(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.extend(str(record.getMessage()).splitlines())


CAPTURE = _Capture()


def _load(workdir: str) -> None:
    here = os.getcwd()
    os.chdir(workdir)  # verifier/config.py removes and re-creates ./verifier.log at import
    try:
        from verifier.attestation import AttestationReport
        from verifier.nvml.gpu_cert_chains import GpuCertificateChains
        from verifier.nvml.test_handle import TestHandle
        from verifier.rim import RIM
        from verifier.verifier import Verifier

        import verifier
        from verifier import cc_admin_utils, config, utils
    finally:
        os.chdir(here)
    where = list(getattr(verifier, "__path__", []))  # a namespace package (no __init__.py) in the wheel
    if not where or not all("site-packages" in p for p in where):
        raise RuntimeError(f"'verifier' resolved to {where}, not nv-local-gpu-verifier: clean sys.path/PYTHONPATH")
    for name, obj in {
        "CcAdminUtils": cc_admin_utils.CcAdminUtils,
        "config": config,
        "utils": utils,
        "AttestationReport": AttestationReport,
        "GpuCertificateChains": GpuCertificateChains,
        "TestHandle": TestHandle,
        "RIM": RIM,
        "Verifier": Verifier,
        "file": where[0],
    }.items():
        setattr(NV, name, obj)
    info, event = config.info_log, config.event_log
    for handler in list(info.handlers) + list(event.handlers):
        handler.close()
    info.handlers, info.propagate = [CAPTURE], False
    event.handlers, event.propagate = [logging.NullHandler()], False


def _patch_offline(at: dt.datetime | None) -> None:
    import urllib.request

    from OpenSSL import crypto

    def no_network(*args: Any, **kwargs: Any) -> Any:
        NETWORK_ATTEMPTS.append(repr(args[:1])[:200])
        raise ConnectionError("network disabled by tests/nvidia_reference (offline)")

    def ocsp_offline(cert_chain: list[Any], settings: Any, mode: Any) -> tuple[bool, str, str, None]:
        if len(OCSP_CALLS) < 8:  # the first few (benchmark iterations repeat them)
            names = [c.to_cryptography().subject.rfc4514_string() for c in cert_chain]
            OCSP_CALLS.append({"mode": getattr(mode, "name", str(mode)), "chain": names})
        return True, "", "not-checked-offline", None

    NV.CcAdminUtils.ocsp_certificate_chain_validation = staticmethod(ocsp_offline)
    NV.CcAdminUtils.send_ocsp_request = staticmethod(no_network)
    NV.CcAdminUtils.fetch_rim_file = staticmethod(no_network)
    urllib.request.urlopen = no_network
    if at is not None:
        original = crypto.X509StoreContext

        class _AtTime(original):  # type: ignore[misc, valid-type]
            def __init__(self, store: Any, certificate: Any, chain: Any = None) -> None:
                store.set_time(at)
                super().__init__(store, certificate, chain)

        crypto.X509StoreContext = _AtTime


def _settings(arch: str) -> Any:
    return NV.config.BlackwellSettings() if arch == "blackwell" else NV.config.HopperSettings()


def _device_chain(pem: bytes) -> list[Any]:
    """The chain exactly as GpuCertificateChains.__init__ builds it: the GPU's last certificate replaced by the pin."""
    return NV.GpuCertificateChains(NV.TestHandle(pem)).GpuAttestationCertificateChain


def _facts(report: Any, chain: list[Any]) -> dict[str, Any]:
    response = report.get_response_message()
    opaque = response.get_opaque_data()
    driver = opaque.get_data("OPAQUE_FIELD_ID_DRIVER_VERSION").decode()
    driver = driver[:-1] if driver.endswith("\0") else driver
    fwid = opaque.get_data("OPAQUE_FIELD_ID_FWID").hex()
    measurements = report.get_measurements()
    return {
        "nonce": report.get_request_message().get_nonce().hex(),
        "response_nonce": response.get_nonce().hex(),
        "request_spdm_version": report.get_request_message().get_spdm_version().hex(),
        "number_of_blocks": response.get_number_of_blocks(),
        "driver_version": driver,
        "vbios_version": NV.utils.format_vbios_version(opaque.get_data("OPAQUE_FIELD_ID_VBIOS_VERSION")).lower(),
        "fwid": fwid or None,
        "measurements": {str(i + 1): value for i, value in enumerate(measurements) if value is not None},
        "cert_chain_used": [c.to_cryptography().subject.rfc4514_string() for c in chain],
    }


def _chain_check(chain: list[Any], settings: Any, report: Any) -> dict[str, Any]:
    fwid = report.get_response_message().get_opaque_data().get_data("OPAQUE_FIELD_ID_FWID").hex()
    out: dict[str, Any] = {"length": len(chain)}
    try:
        result = NV.CcAdminUtils.verify_gpu_certificate_chain(chain, settings, fwid)
        # a FWID mismatch returns a bare False (cc_admin.attest() would then fail unpacking it)
        out["ok"] = bool(result[0]) if isinstance(result, tuple) else bool(result)
        if isinstance(result, tuple) and result[1]:
            out["expired"] = True
    except Exception as exc:
        out["ok"], out["error"] = False, _error(exc)
    out["fwid_matched"] = settings.gpu_attestation_report_cert_chain_fwid_matched
    out["fwid_in_report"] = bool(fwid)
    return out


def _report_check(report: Any, chain: list[Any], settings: Any, nonce: bytes, facts: dict[str, Any]) -> dict[str, Any]:
    leaf = chain[0]
    out: dict[str, Any] = {}
    try:
        out["ok"] = bool(
            NV.CcAdminUtils.verify_attestation_report(
                attestation_report_obj=report,
                gpu_leaf_certificate=leaf,
                nonce=nonce,
                driver_version=facts["driver_version"],
                vbios_version=facts["vbios_version"],
                settings=settings,
            )
        )
    except Exception as exc:
        out["ok"], out["error"] = False, _error(exc)
    out["nonce"] = settings.nonce_comparison
    out["signature"] = settings.attestation_report_signature_verification
    if out["signature"] is None:  # it stopped before the signature (nonce, versions): run that step alone
        out["signature"] = bool(
            report.verify_signature(leaf.to_cryptography(), settings.signature_length, settings.HashFunction)
        )
    return out


def _rim(kind: str, path: Path, version: str, settings: Any) -> tuple[dict[str, Any], Any]:
    out: dict[str, Any] = {"file": path.name}
    try:
        rim = NV.RIM(rim_name=kind, settings=settings, rim_path=str(path))
    except Exception as exc:
        out["parsed"], out["error"] = False, _error(exc)
        return out, None
    out["parsed"], out["colloquial_version"] = True, rim.colloquialVersion
    try:
        ok, _warning = rim.verify(version=version, settings=settings)
        out["verify_ok"] = bool(ok)
    except Exception as exc:
        out["verify_ok"], out["error"] = False, _error(exc)
    prefix = f"gpu_{kind}_rim_"
    out["schema_ok"] = getattr(settings, prefix + "schema_validated")
    out["version_matches"] = getattr(settings, prefix + "version_matched")
    out["chain_ok"] = getattr(settings, prefix + "cert_chain_validated")
    out["signature_ok"] = getattr(settings, prefix + "signature_verified")
    if out["signature_ok"] is None:  # verify() stopped before its signature step: run that step alone
        try:
            out["signature_ok"] = bool(rim.verify_signature(settings))
        except Exception as exc:
            out["signature_ok"], out["signature_error"] = False, _error(exc)
    return out, rim


def _compare(report: Any, driver: Any, vbios: Any, settings: Any, blocks: int) -> dict[str, Any]:
    out: dict[str, Any] = {"ran": True}
    try:
        verifier = NV.Verifier(report, driver, vbios, settings)
    except Exception as exc:
        out["ok"], out["error"] = False, _error(exc)
        return out
    CAPTURE.lines.clear()
    out["ok"] = bool(verifier.verify(settings))
    mismatched = sorted({int(m.group(1)) for m in map(MISMATCH_LINE.match, CAPTURE.lines) if m})
    golden = verifier.golden_measurements
    compared = out["ok"] or bool(mismatched)  # False with no index named: it refused before comparing
    per_block: dict[str, str] = {}
    for block in range(1, blocks + 1):
        index = block - 1
        if index not in golden:
            per_block[str(block)] = "not-covered"
        elif index == 35 and not verifier.is_msr_35_valid:
            per_block[str(block)] = "skipped"
        elif not compared:
            per_block[str(block)] = "not-compared"
        else:
            per_block[str(block)] = "fail" if index in mismatched else "pass"
    out["mismatched_rim_indices"] = mismatched
    out["sources"] = {str(i + 1): golden[i]["source"] for i in sorted(golden)}
    out["blocks"] = per_block
    return out


def _flow(result: dict[str, Any]) -> str | None:
    """The first step at which cc_admin.attest() would stop (None: it would reach the overall status)."""
    if not result["parse"]["ok"]:
        return "parse"
    if not result["cert_chain"]["ok"]:
        return "cert_chain"
    if not result["report"]["ok"]:
        return "report"
    for kind in ("driver", "vbios"):
        rim = result["rims"].get(kind)
        if rim is None:
            return f"{kind}_rim_missing"
        if not rim.get("verify_ok"):
            return f"{kind}_rim"
    if not result["measurements"].get("ok"):
        return "measurements"
    return None


def appraise(args: argparse.Namespace, nonce: bytes | None) -> dict[str, Any]:
    """One offline appraisal with NVIDIA's modules (see the module docstring for the steps)."""
    vector = Path(args.vector)
    evidence = (vector / "evidence.bin").read_bytes()
    settings = _settings(args.arch)
    result: dict[str, Any] = {"parse": {"ok": False}, "rims": {}, "measurements": {"ran": False}}
    try:
        report = NV.AttestationReport(evidence, settings)
        result["parse"]["ok"] = True
    except Exception as exc:
        result["parse"]["error"] = _error(exc)
        result["flow"] = {"stopped_at": "parse", "check_status": False}
        return result
    chain = _device_chain((vector / "cert_chain.pem").read_bytes())
    facts = _facts(report, chain)
    result["facts"] = facts
    result["cert_chain"] = _chain_check(chain, settings, report)
    result["report"] = _report_check(report, chain, settings, nonce or bytes.fromhex(facts["nonce"]), facts)
    rims = {}
    for kind, path, version in (
        ("driver", args.driver_rim, facts["driver_version"]),
        ("vbios", args.vbios_rim, facts["vbios_version"]),
    ):
        if path is not None and Path(path).is_file():
            result["rims"][kind], rims[kind] = _rim(kind, Path(path), version, settings)
    if rims.get("driver") is not None and rims.get("vbios") is not None:
        result["measurements"] = _compare(report, rims["driver"], rims["vbios"], settings, facts["number_of_blocks"])
    else:
        result["measurements"]["reason"] = "NVIDIA's Verifier needs both a driver and a VBIOS RIM"
    result["flow"] = {"stopped_at": _flow(result), "check_status": bool(settings.check_status())}
    return result


def _arch(vector: Path) -> str:
    from cryptography import x509

    leaf = x509.load_pem_x509_certificates((vector / "cert_chain.pem").read_bytes())[0]
    return "blackwell" if "GB" in leaf.subject.rfc4514_string() else "hopper"


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vector", required=True, help="directory with evidence.bin and cert_chain.pem")
    parser.add_argument("--at", help="verification time (ISO 8601, e.g. 2025-03-01T00:00:00Z); default: now")
    parser.add_argument("--nonce", help="expected nonce (64 hex digits); default: the report's own")
    parser.add_argument("--driver-rim", help="driver RIM file (default DIR/driver_rim.xml)")
    parser.add_argument("--vbios-rim", help="VBIOS RIM file (default DIR/vbios_rim.xml)")
    parser.add_argument("--arch", choices=["hopper", "blackwell"], help="default: from the leaf certificate's name")
    parser.add_argument("--iterations", type=int, default=0, help="benchmark: repeat the appraisal N times")
    args = parser.parse_args(argv)
    vector = Path(args.vector)
    args.driver_rim = args.driver_rim or str(vector / "driver_rim.xml")
    args.vbios_rim = args.vbios_rim or str(vector / "vbios_rim.xml")
    args.arch = args.arch or _arch(vector)
    return args


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in ("nv-local-gpu-verifier", "signxml", "cryptography", "pyOpenSSL", "lxml")}


def main(argv: list[str]) -> int:
    args = _parse_args(argv)
    at = dt.datetime.fromisoformat(args.at.replace("Z", "+00:00")) if args.at else None
    workdir = tempfile.mkdtemp(prefix="nv-reference-")
    try:
        _load(workdir)
        _patch_offline(at.astimezone(dt.UTC).replace(tzinfo=None) if at else None)
        nonce = bytes.fromhex(args.nonce) if args.nonce else None
        out: dict[str, Any] = {
            "tool": _versions(),
            "module": NV.file,
            "vector": args.vector,
            "at": args.at,
            "arch": args.arch,
            "patched": PATCHES,
        }
        out.update(appraise(args, nonce))
        if args.iterations > 0:
            started = time.perf_counter()
            for _ in range(args.iterations):
                appraise(args, nonce)
            seconds = time.perf_counter() - started
            out["benchmark"] = {
                "iterations": args.iterations,
                "seconds": seconds,
                "per_second": args.iterations / seconds,
            }
        out["ocsp_calls"], out["network_attempts"] = OCSP_CALLS, NETWORK_ATTEMPTS
    except Exception as exc:  # the JSON always comes out: the test reports what broke
        print(json.dumps({"driver_error": _error(exc), "traceback": traceback.format_exc()}))
        return 3
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
