"""Settings of vendor collateral (AMD KDS, Intel PCS, NVIDIA services, the cache) and retention.

Part of `Settings` (verifier/settings/table.py): each field declared once with `_setting(...)`
(verifier/settings/field.py)."""

# ruff: noqa: RUF009 - `_setting(...)` is `dataclasses.field(...)` with the declaration in its metadata

from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from .field import _setting
from .parsers import (
    _argument,
    _collateral_timeout,
    _flag,
    _int,
    _path,
    _paths,
    _text,
    collateral_refresh,
)


@dataclass(frozen=True)
class CollateralFields:
    # Retention (verifier/housekeeping.py), a pass every `retention_interval_s` in the server (0: never): expired
    # challenges, kept evidence and collateral rows older than `retention_keep_days`, appraisals older than
    # `retention_appraisal_days` (0: kept) and, with `audit_checkpoint_dir` and `audit_checkpoint_keys` (verifier
    # key files), audit rows older than `retention_audit_days` (0: kept) under the latest checkpoint there.
    retention_interval_s: int = _setting(
        3600, section="retention", env="RETENTION_INTERVAL_S", parse=_int, help="seconds between passes (0: never)"
    )
    retention_keep_days: int = _setting(
        7, section="retention", env="RETENTION_KEEP_DAYS", parse=_int, help="challenges, kept evidence, collateral"
    )
    retention_appraisal_days: int = _setting(
        90, section="retention", env="RETENTION_APPRAISAL_DAYS", parse=_int, help="appraisals (0: kept)"
    )
    retention_audit_days: int = _setting(
        365, section="retention", env="RETENTION_AUDIT_DAYS", parse=_int, help="audit rows under a checkpoint"
    )
    audit_checkpoint_dir: Path | None = _setting(
        None, section="retention", env="AUDIT_CHECKPOINT_DIR", parse=_path, help="signed audit checkpoints"
    )
    audit_checkpoint_keys: tuple[Path, ...] = _setting(
        (), section="retention", env="AUDIT_CHECKPOINT_KEYS", parse=_paths, help="checkpoint verifier key files"
    )
    # Vendor collateral: AMD KDS (through the database cache) unless offline. Revocation (the AMD CRL) is checked
    # unless `check_crl` is turned off (`--no-check-crl`, VERIFIER_CHECK_CRL=0).
    offline: bool = _setting(
        False,
        section="collateral",
        env="OFFLINE",
        parse=_flag,
        help="never fetch vendor collateral (AMD KDS); it must come with the requests",
        flag="--offline",
        action="store_true",
    )
    amd_kds_url: str = _setting(
        "https://kdsintf.amd.com",
        section="collateral",
        env="AMD_KDS_URL",
        parse=_text,
        help="AMD KDS base URL (default https://kdsintf.amd.com)",
        flag="--amd-kds-url",
        metavar="URL",
    )
    intel_pcs_url: str = _setting(  # or a PCCS base URL
        "https://api.trustedservices.intel.com",
        section="collateral",
        env="INTEL_PCS_URL",
        parse=_text,
        help="Intel PCS or PCCS base URL (default https://api.trustedservices.intel.com)",
        flag="--intel-pcs-url",
        metavar="URL",
    )
    # NVIDIA's services (nv-local-gpu-verifier config.py: RIM_SERVICE_BASE_URL, OCSP_URL): GPU RIMs by id
    # (GET {url}/v1/rim/{id}) and the OCSP responder of the device and RIM signing chains (POST).
    nvidia_rim_url: str = _setting(
        "https://rim.attestation.nvidia.com",
        section="collateral",
        env="NVIDIA_RIM_URL",
        parse=_text,
        help="NVIDIA RIM service base URL (default https://rim.attestation.nvidia.com)",
        flag="--nvidia-rim-url",
        metavar="URL",
    )
    # A local RIM store, asked before the RIM service and offline too: `<dir>/<RIM id>.xml`
    # (verifier/collateral/rim_directory.py); every RIM is verified as if it came from the service.
    nvidia_rim_dir: Path | None = _setting(
        None,
        section="collateral",
        env="NVIDIA_RIM_DIR",
        parse=_path,
        help="directory of NVIDIA RIMs named <RIM id>.xml, asked before the RIM service (offline too)",
        flag="--nvidia-rim-dir",
        type=Path,
        metavar="DIR",
    )
    nvidia_ocsp_url: str = _setting(
        "https://ocsp.ndis.nvidia.com",
        section="collateral",
        env="NVIDIA_OCSP_URL",
        parse=_text,
        help="NVIDIA OCSP responder URL (default https://ocsp.ndis.nvidia.com)",
        flag="--nvidia-ocsp-url",
        metavar="URL",
    )
    collateral_timeout: float = _setting(
        10.0,
        section="collateral",
        env="COLLATERAL_TIMEOUT_S",
        parse=_collateral_timeout,
        help="seconds one vendor request may take",
    )
    # Vendor fetches run on their own pool (collateral/fetch_pool.py): at most `fetch_workers` at once, at most
    # `fetch_queue` waiting (then COLLATERAL_BUSY), and a request waits at most `fetch_wait` seconds for one
    # (then COLLATERAL_TIMEOUT while the fetch goes on and fills the cache).
    fetch_workers: int = _setting(4, section="collateral", env="FETCH_WORKERS", parse=_int, help="vendor fetches")
    fetch_queue: int = _setting(32, section="collateral", env="FETCH_QUEUE", parse=_int, help="fetches waiting")
    fetch_wait: float = _setting(
        5.0, section="collateral", env="FETCH_WAIT_S", parse=_int, help="seconds a request waits for a fetch"
    )
    check_crl: bool = _setting(
        True,
        section="collateral",
        env="CHECK_CRL",
        parse=_flag,
        help="check the vendor CRLs (the default; --no-check-crl turns revocation checking off)",
        flag="--check-crl",
        action=argparse.BooleanOptionalAction,
    )
    # The cache refetches CRLs and Intel TCB info / QE identity once this old (before their nextUpdate).
    collateral_refresh: dt.timedelta = _setting(
        dt.timedelta(hours=1),
        section="collateral",
        env="COLLATERAL_REFRESH_SECONDS",
        parse=collateral_refresh,
        help="refetch cached CRLs and Intel TCB info / QE identity once this old (default 3600)",
        flag="--collateral-refresh",
        type=_argument(collateral_refresh),
        metavar="SECONDS",
    )
