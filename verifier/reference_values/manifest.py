"""Reference-value manifests (measurements/, schema in measurements/README.md), in YAML or JSON, and the JSON that
`nitro-cli build-enclave` / `nitro-cli describe-eif` prints ({"Measurements": {"PCR0": ..., "PCR8": ...}}).

A manifest lists approved values and OWNS a set of labels (`managed_labels` exact, `label_scope` patterns where a
trailing `*` matches any suffix; default: the labels of its own entries). `verifier refs plan|apply` reconcile the
database with the manifests for those labels only (verifier.reference_values.plan)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..clock import parse_rfc3339, to_rfc3339
from ..errors import RequestError
from .kinds import normalize_value

MAX_MANIFEST_BYTES = 1024 * 1024
MAX_LABEL = 200
MAX_VERSION = 64
MAX_REASON = 1000
_TOP_KEYS = {"reference_values", "managed_labels", "label_scope", "revoke", "description"}
_ENTRY_KEYS = {"kind", "value", "label", "version", "valid_from", "expires_at", "description"}
_REVOKE_KEYS = {"kind", "value", "reason"}


@dataclass(frozen=True)
class ManifestEntry:
    kind: str
    value: bytes
    label: str
    expires_at: dt.datetime | None = None
    version: str | None = None
    valid_from: dt.datetime | None = None


@dataclass(frozen=True)
class RevokeEntry:
    """Revokes the value (kind and value) wherever it is registered: revocation is per value, never per label."""

    kind: str
    value: bytes
    reason: str


@dataclass(frozen=True)
class Manifest:
    source: str
    entries: tuple[ManifestEntry, ...]
    managed_labels: frozenset[str] = frozenset()
    label_scope: tuple[str, ...] = ()  # patterns: exact, or a prefix when ending with "*"
    revoke: tuple[RevokeEntry, ...] = field(default=())
    nitro_cli: bool = False  # read from nitro-cli build-enclave / describe-eif JSON

    def manages(self, label: str) -> bool:
        return label in self.managed_labels or any(_matches(p, label) for p in self.label_scope)


def _matches(pattern: str, label: str) -> bool:
    return label.startswith(pattern[:-1]) if pattern.endswith("*") else label == pattern


def load_manifest(
    path: Path, *, default_label: str | None = None, expires_at: dt.datetime | None = None
) -> list[ManifestEntry]:
    """The entries of one manifest or nitro-cli file (what `verifier refs import` adds)."""
    return list(load_manifest_file(path, default_label=default_label, expires_at=expires_at).entries)


def load_manifests(paths: Sequence[Path], *, default_label: str | None = None) -> list[Manifest]:
    return [load_manifest_file(p, default_label=default_label) for p in paths]


def load_manifest_file(
    path: Path, *, default_label: str | None = None, expires_at: dt.datetime | None = None
) -> Manifest:
    data = _read(path)
    where = str(path)
    if isinstance(data, dict) and isinstance(data.get("Measurements"), dict):
        label = default_label or str(data.get("ImageName") or data.get("EnclaveName") or path.stem)
        entries = _nitro_cli(data["Measurements"], label, expires_at)
        return Manifest(where, tuple(entries), frozenset({label}), nitro_cli=True)
    if not isinstance(data, dict) or not isinstance(data.get("reference_values", []), list) or not (
        "reference_values" in data or "revoke" in data
    ):
        raise RequestError(
            "MANIFEST_INVALID",
            f"{where}: expected {{'reference_values': [...]}} or nitro-cli {{'Measurements': {{...}}}}",
        )
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise RequestError("MANIFEST_INVALID", f"{where}: unknown top-level keys {unknown}")
    entries = [
        _entry(item, f"{where}: reference_values[{i}]", default_label, expires_at)
        for i, item in enumerate(data.get("reference_values") or [])
    ]
    revokes = [_revoke(item, f"{where}: revoke[{i}]") for i, item in enumerate(_list(data, "revoke", where))]
    managed = frozenset(_strings(data, "managed_labels", where))
    scope = tuple(_strings(data, "label_scope", where))
    if not managed and not scope:
        managed = frozenset(e.label for e in entries)
    manifest = Manifest(where, tuple(entries), managed, scope, tuple(revokes))
    for i, entry in enumerate(entries):
        if not manifest.manages(entry.label):
            raise RequestError(
                "MANIFEST_INVALID",
                f"{where}: reference_values[{i}] has label {entry.label!r}, which the manifest does not manage "
                "(add it to managed_labels or label_scope)",
            )
    return manifest


def _read(path: Path) -> Any:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RequestError("MANIFEST_UNREADABLE", f"cannot read {path}: {exc.strerror}") from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise RequestError("MANIFEST_TOO_LARGE", f"{path} exceeds {MAX_MANIFEST_BYTES} bytes")
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            return yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise RequestError("MANIFEST_INVALID", f"{path} is not YAML: {exc}") from None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError("MANIFEST_INVALID", f"{path} is not JSON: {exc}") from None


def _list(data: dict[str, Any], key: str, where: str) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise RequestError("MANIFEST_INVALID", f"{where}: {key!r} must be a list")
    return value


def _strings(data: dict[str, Any], key: str, where: str) -> list[str]:
    value = data.get(key)
    items = [value] if isinstance(value, str) else _list(data, key, where)
    if not all(isinstance(x, str) and x and len(x) <= MAX_LABEL for x in items):
        raise RequestError("MANIFEST_INVALID", f"{where}: {key!r} must be non-empty strings of <= {MAX_LABEL}")
    return [str(x) for x in items]


def _nitro_cli(measurements: dict[str, Any], label: str, expires_at: dt.datetime | None) -> list[ManifestEntry]:
    algorithm = str(measurements.get("HashAlgorithm", "Sha384"))
    if not algorithm.lower().startswith("sha384"):
        raise RequestError("MANIFEST_INVALID", f"nitro-cli HashAlgorithm {algorithm!r} is not Sha384")
    entries = []
    # Every PCRn: PCR0..2 always, PCR8 when the EIF is signed (build-enclave --signing-certificate).
    for key in sorted(measurements, key=lambda k: (len(k), k)):
        if key.upper().startswith("PCR") and key[3:].isdigit():
            kind = f"nitro.pcr{int(key[3:])}"
            entries.append(ManifestEntry(kind, normalize_value(kind, str(measurements[key])), label, expires_at))
    if not entries:
        raise RequestError("MANIFEST_INVALID", "nitro-cli measurements carry no PCR values")
    _check_label(label, "nitro-cli label")
    return entries


def _check_label(label: str, where: str) -> None:
    if len(label) > MAX_LABEL:
        raise RequestError("MANIFEST_INVALID", f"{where}: label longer than {MAX_LABEL} characters")


def _time(item: dict[str, Any], key: str, where: str, default: dt.datetime | None) -> dt.datetime | None:
    value = item.get(key)
    if value is None:
        return default
    if isinstance(value, dt.datetime):  # YAML timestamps
        if value.tzinfo is None:
            raise RequestError("MANIFEST_INVALID", f"{where}.{key}: needs a time zone (e.g. Z)")
        return value.astimezone(dt.UTC)
    if not isinstance(value, str):
        raise RequestError("MANIFEST_INVALID", f"{where}.{key}: expected an RFC 3339 string")
    try:
        return parse_rfc3339(value)
    except ValueError as exc:
        raise RequestError("MANIFEST_INVALID", f"{where}.{key}: {exc}") from None


def _entry(item: Any, where: str, default_label: str | None, expires_at: dt.datetime | None) -> ManifestEntry:
    if not isinstance(item, dict) or not isinstance(item.get("kind"), str) or not isinstance(item.get("value"), str):
        raise RequestError("MANIFEST_INVALID", f"{where} needs string 'kind' and 'value'")
    unknown = sorted(set(item) - _ENTRY_KEYS)
    if unknown:
        raise RequestError("MANIFEST_INVALID", f"{where}: unknown keys {unknown}")
    label = item.get("label") or default_label or ""
    if not isinstance(label, str):
        raise RequestError("MANIFEST_INVALID", f"{where}.label must be a string")
    _check_label(label, where)
    version = item.get("version")
    if version is not None and (not isinstance(version, str) or not version or len(version) > MAX_VERSION):
        raise RequestError("MANIFEST_INVALID", f"{where}.version must be a non-empty string (quote it in YAML)")
    valid_from = _time(item, "valid_from", where, None)
    expires = _time(item, "expires_at", where, expires_at)
    if valid_from is not None and expires is not None and expires <= valid_from:
        raise RequestError("MANIFEST_INVALID", f"{where}: expires_at is not after valid_from")
    try:
        value = normalize_value(item["kind"], item["value"])
    except RequestError as exc:
        raise RequestError(exc.code, f"{where}: {exc.message}") from None
    return ManifestEntry(item["kind"], value, label, expires, version, valid_from)


def _revoke(item: Any, where: str) -> RevokeEntry:
    if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in ("kind", "value", "reason")):
        raise RequestError("MANIFEST_INVALID", f"{where} needs string 'kind', 'value' and 'reason'")
    if "label" in item:
        raise RequestError(
            "MANIFEST_INVALID",
            f"{where}.label: revocation is per value (kind and value) and reaches every label; remove 'label'",
        )
    unknown = sorted(set(item) - _REVOKE_KEYS)
    if unknown:
        raise RequestError("MANIFEST_INVALID", f"{where}: unknown keys {unknown}")
    reason = item["reason"].strip()
    if not reason or len(reason) > MAX_REASON:
        raise RequestError("MANIFEST_INVALID", f"{where}.reason must be 1..{MAX_REASON} characters")
    try:
        value = normalize_value(item["kind"], item["value"])
    except RequestError as exc:
        raise RequestError(exc.code, f"{where}: {exc.message}") from None
    return RevokeEntry(item["kind"], value, reason)


def entry_json(entry: ManifestEntry) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": entry.kind, "value": entry.value.hex(), "label": entry.label}
    if entry.version is not None:
        out["version"] = entry.version
    if entry.valid_from is not None:
        out["valid_from"] = to_rfc3339(entry.valid_from)
    if entry.expires_at is not None:
        out["expires_at"] = to_rfc3339(entry.expires_at)
    return out


def manifest_document(entries: Iterable[ManifestEntry], *, managed_labels: Iterable[str] = ()) -> dict[str, Any]:
    items = list(entries)
    labels = sorted(set(managed_labels) or {e.label for e in items})
    return {"managed_labels": labels, "reference_values": [entry_json(e) for e in items]}


def write_manifest(path: Path, document: dict[str, Any]) -> None:
    """YAML for .yaml/.yml, JSON otherwise; refuses to overwrite an existing file."""
    if path.suffix.lower() in (".yaml", ".yml"):
        text = yaml.safe_dump(document, sort_keys=False, width=200)
    else:
        text = json.dumps(document, indent=2) + "\n"
    try:
        with path.open("x", encoding="utf-8") as fh:
            fh.write(text)
    except FileExistsError:
        raise RequestError("MANIFEST_EXISTS", f"{path} exists; remove it or choose another --out") from None
    except OSError as exc:
        raise RequestError("MANIFEST_UNWRITABLE", f"cannot write {path}: {exc.strerror}") from None
