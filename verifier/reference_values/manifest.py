"""Reference-value manifests (measurements/*.json, schema in measurements/README.md) and the JSON that
`nitro-cli build-enclave` / `nitro-cli describe-eif` prints ({"Measurements": {"PCR0": ..., "PCR8": ...}})."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..clock import parse_rfc3339
from ..errors import RequestError
from .kinds import normalize_value

MAX_MANIFEST_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ManifestEntry:
    kind: str
    value: bytes
    label: str
    expires_at: dt.datetime | None = None


def load_manifest(
    path: Path, *, default_label: str | None = None, expires_at: dt.datetime | None = None
) -> list[ManifestEntry]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RequestError("MANIFEST_UNREADABLE", f"cannot read {path}: {exc.strerror}") from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise RequestError("MANIFEST_TOO_LARGE", f"{path} exceeds {MAX_MANIFEST_BYTES} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError("MANIFEST_INVALID", f"{path} is not JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("Measurements"), dict):
        label = default_label or str(data.get("ImageName") or data.get("EnclaveName") or path.stem)
        return _nitro_cli(data["Measurements"], label, expires_at)
    if isinstance(data, dict) and isinstance(data.get("reference_values"), list):
        return [_entry(item, i, default_label, expires_at) for i, item in enumerate(data["reference_values"])]
    raise RequestError(
        "MANIFEST_INVALID", f"{path}: expected {{'reference_values': [...]}} or nitro-cli {{'Measurements': {{...}}}}"
    )


def _nitro_cli(measurements: dict[str, Any], label: str, expires_at: dt.datetime | None) -> list[ManifestEntry]:
    algorithm = str(measurements.get("HashAlgorithm", "Sha384"))
    if not algorithm.lower().startswith("sha384"):
        raise RequestError("MANIFEST_INVALID", f"nitro-cli HashAlgorithm {algorithm!r} is not Sha384")
    entries = []
    for key in sorted(measurements):
        if key.upper().startswith("PCR") and key[3:].isdigit():
            kind = f"nitro.pcr{int(key[3:])}"
            entries.append(ManifestEntry(kind, normalize_value(kind, str(measurements[key])), label, expires_at))
    if not entries:
        raise RequestError("MANIFEST_INVALID", "nitro-cli measurements carry no PCR values")
    return entries


def _entry(item: Any, index: int, default_label: str | None, expires_at: dt.datetime | None) -> ManifestEntry:
    if not isinstance(item, dict) or not isinstance(item.get("kind"), str) or not isinstance(item.get("value"), str):
        raise RequestError("MANIFEST_INVALID", f"reference_values[{index}] needs string 'kind' and 'value'")
    expires = item.get("expires_at")
    try:
        when = parse_rfc3339(expires) if isinstance(expires, str) else expires_at
    except ValueError as exc:
        raise RequestError("MANIFEST_INVALID", f"reference_values[{index}].expires_at: {exc}") from None
    label = str(item.get("label") or default_label or "")
    return ManifestEntry(item["kind"], normalize_value(item["kind"], item["value"]), label, when)
