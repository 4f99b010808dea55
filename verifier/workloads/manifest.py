"""Reference-value manifests (measurements/, schema in measurements/README.md), in YAML or JSON, and the JSON that
`nitro-cli build-enclave` / `nitro-cli describe-eif` prints ({"Measurements": {"PCR0": ..., "PCR8": ...}}).

A workload manifest (`workload:`, `tee:`, `versions:`) describes ONE workload and owns exactly its rows (label =
the workload name, version = the version): every kind listed in a version is required, a list of values under one
kind gives alternatives (ARCHITECTURE.md "Workloads"). It is flattened into `ManifestEntry` rows, so storage
applies it like any other manifest; `Manifest.workload` keeps the structure for the plan and the metadata.
`policy:` (top level, or per version) names a policy, or is an inline policy body (the `--policy-file` entry
schema without "id"), stored by `refs apply` as the database policy `workload:<name>` / `workload:<name>@<version>`.
`gpus: {min: k}` (top level: every version; or per version) in an SEV-SNP or TDX workload requires at least k
affirming GPUs bound to the CPU report (composite evidence): it is the version's value `<tee>.min_gpus` k
(verifier.workloads.model), which `values:` may also list directly.

The pre-workload format (`reference_values:` with `managed_labels` / `label_scope`, a label per entry) is still
read for one release (`Manifest.legacy`); `verifier refs plan|apply` say so on stderr. `verifier refs
plan|apply` reconcile the database with the manifests for the labels they own only (verifier.workloads.plan).

This module reads and validates manifests; the types are in `manifest_model`, writing them in `manifest_writer`."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ..appraisal.policy import canonical_json, policy_from_json, policy_to_json
from ..clock import as_utc, parse_rfc3339
from ..errors import ConfigError, RequestError
from ..reference_values.kinds import MEASUREMENT_KINDS, known_tees, normalize_value
from ..requests import MAX_GPUS
from .manifest_model import Manifest, ManifestEntry, RevokeEntry, VersionSpec, WorkloadSpec, inline_policy_name
from .model import COMPOSITE_TEES, MIN_GPUS

MAX_MANIFEST_BYTES = 1024 * 1024
MAX_LABEL = 200
MAX_VERSION = 64
MAX_REASON = 1000
MAX_POLICY = 100
# The measurement kinds without which a version would match other images (reference_values/kinds.py).
REQUIRED_KINDS = MEASUREMENT_KINDS
_TOP_KEYS = {"reference_values", "managed_labels", "label_scope", "revoke", "description"}
_WORKLOAD_KEYS = {"workload", "tee", "policy", "versions", "revoke", "description", "gpus"}
_VERSION_KEYS = {"version", "valid_from", "expires_at", "values", "policy", "description", "gpus"}
_ENTRY_KEYS = {"kind", "value", "label", "version", "valid_from", "expires_at", "description"}
_REVOKE_KEYS = {"kind", "value", "reason"}


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
    """One manifest: a workload manifest, a pre-workload manifest, or nitro-cli JSON (labelled `default_label`,
    else the EIF's ImageName, else the file name). RequestError MANIFEST_UNREADABLE / MANIFEST_TOO_LARGE /
    MANIFEST_INVALID, or a value's REFERENCE_KIND_UNKNOWN / REFERENCE_VALUE_NOT_HEX / REFERENCE_VALUE_LENGTH (with
    the place in the file)."""
    data = read_document(path)
    where = str(path)
    if isinstance(data, dict) and isinstance(data.get("Measurements"), dict):
        label = default_label or str(data.get("ImageName") or data.get("EnclaveName") or path.stem)
        entries = _nitro_cli(data["Measurements"], label, expires_at)
        return Manifest(where, tuple(entries), frozenset({label}), nitro_cli=True)
    if isinstance(data, dict) and "workload" in data:
        return workload_manifest(data, where)
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("reference_values", []), list)
        or not ("reference_values" in data or "revoke" in data)
    ):
        raise RequestError(
            "MANIFEST_INVALID",
            f"{where}: expected a workload manifest {{'workload': ..., 'tee': ..., 'versions': [...]}}, the older "
            f"{{'reference_values': [...]}} or nitro-cli {{'Measurements': {{...}}}}",
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
    manifest = Manifest(where, tuple(entries), managed, scope, tuple(revokes), legacy=True)
    for i, entry in enumerate(entries):
        if not manifest.manages(entry.label):
            raise RequestError(
                "MANIFEST_INVALID",
                f"{where}: reference_values[{i}] has label {entry.label!r}, which the manifest does not manage "
                "(add it to managed_labels or label_scope)",
            )
    return manifest


def workload_manifest(data: dict[str, Any], where: str) -> Manifest:
    """A workload manifest (schema in measurements/README.md) as a `Manifest` that owns exactly the workload's
    label. Raises RequestError MANIFEST_INVALID (with the place in the file) or a value's kind / hex / length code."""
    unknown = sorted(set(data) - _WORKLOAD_KEYS)
    if unknown:
        raise RequestError("MANIFEST_INVALID", f"{where}: unknown top-level keys {unknown}")
    name = data.get("workload")
    if not isinstance(name, str) or not name or name.strip() != name or len(name) > MAX_LABEL or not name.isprintable():
        raise RequestError(
            "MANIFEST_INVALID", f"{where}.workload must be 1..{MAX_LABEL} printable characters, no outer spaces"
        )
    tee = data.get("tee")
    if tee not in known_tees():
        raise RequestError("MANIFEST_INVALID", f"{where}.tee must be one of {list(known_tees())}, got {tee!r}")
    inline: list[tuple[str, str]] = []
    policy = _policy(data.get("policy"), f"{where}.policy", inline_policy_name(name), inline)
    if "versions" not in data:
        raise RequestError("MANIFEST_INVALID", f"{where}: 'versions' is required (an empty list retires every version)")
    gpus = _gpus(data.get("gpus"), f"{where}.gpus", str(tee))
    versions = [
        _with_gpus(_version(item, f"{where}.versions[{i}]", str(tee), name, inline), item, gpus, str(tee), where, i)
        for i, item in enumerate(_list(data, "versions", where))
    ]
    seen: set[str] = set()
    for v in versions:
        if v.version in seen:
            raise RequestError("MANIFEST_INVALID", f"{where}: version {v.version!r} is listed twice")
        seen.add(v.version)
    revokes = tuple(_revoke(item, f"{where}.revoke[{i}]") for i, item in enumerate(_list(data, "revoke", where)))
    spec = WorkloadSpec(name, str(tee), policy, tuple(versions), tuple(inline))
    return Manifest(where, tuple(workload_entries(spec)), frozenset({name}), revoke=revokes, workload=spec)


def workload_entries(spec: WorkloadSpec) -> list[ManifestEntry]:
    """The rows a workload manifest asks for: one per (version, kind, accepted value), labelled with the workload."""
    return [
        ManifestEntry(kind, value, spec.name, v.expires_at, v.version, v.valid_from)
        for v in spec.versions
        for kind, values in v.values
        for value in values
    ]


def _policy(value: Any, where: str, inline_name: str, inline: list[tuple[str, str]]) -> str | None:
    """A manifest's `policy:`: None, a policy name, or an inline body (the `--policy-file` entry schema without
    "id", validated as strictly: unknown keys and wrong JSON types are refused), which is appended to `inline` under
    `inline_name` and referenced by that name. RequestError MANIFEST_INVALID."""
    if value is None:
        return None
    if isinstance(value, dict):
        if "id" in value:
            raise RequestError(
                "MANIFEST_INVALID", f"{where}: an inline policy has no 'id' (it is stored as {inline_name!r})"
            )
        if len(inline_name) > MAX_POLICY or not inline_name.isprintable():
            raise RequestError(
                "MANIFEST_INVALID",
                f"{where}: the inline policy's name {inline_name[:120]!r} would "
                f"be longer than {MAX_POLICY} characters: name a stored policy instead",
            )
        try:
            policy = policy_from_json({"id": inline_name, **value})
        except ConfigError as exc:
            raise RequestError("MANIFEST_INVALID", f"{where}: {exc.message}") from None
        inline.append((inline_name, canonical_json(policy_to_json(policy))))
        return inline_name
    if (
        not isinstance(value, str)
        or not value
        or len(value) > MAX_POLICY
        or value.strip() != value
        or not value.isprintable()
    ):
        raise RequestError(
            "MANIFEST_INVALID",
            f"{where} must be a policy name of 1..{MAX_POLICY} characters or an inline policy (a mapping)",
        )
    return value


def _version(
    item: Any, where: str, tee: str, workload: str = "", inline: list[tuple[str, str]] | None = None
) -> VersionSpec:
    if not isinstance(item, dict):
        raise RequestError("MANIFEST_INVALID", f"{where} must be a mapping with 'version' and 'values'")
    unknown = sorted(set(item) - _VERSION_KEYS)
    if unknown:
        raise RequestError("MANIFEST_INVALID", f"{where}: unknown keys {unknown}")
    version = item.get("version")
    if not isinstance(version, str) or not version or len(version) > MAX_VERSION or version.strip() != version:
        raise RequestError(
            "MANIFEST_INVALID", f"{where}.version must be a string of 1..{MAX_VERSION} characters (quote it in YAML)"
        )
    valid_from = _time(item, "valid_from", where, None)
    expires = _time(item, "expires_at", where, None)
    if valid_from is not None and expires is not None and expires <= valid_from:
        raise RequestError("MANIFEST_INVALID", f"{where}: expires_at is not after valid_from")
    raw = item.get("values")
    if not isinstance(raw, dict) or not raw:
        raise RequestError("MANIFEST_INVALID", f"{where}.values must map each required kind to a value or a list")
    values: list[tuple[str, tuple[bytes, ...]]] = []
    for kind, accepted in raw.items():
        if not isinstance(kind, str) or not kind.startswith(f"{tee}."):
            raise RequestError("MANIFEST_INVALID", f"{where}.values: {kind!r} is not a {tee} kind ({tee}.<claim>)")
        items = [accepted] if isinstance(accepted, str) else accepted
        if not isinstance(items, list) or not items or not all(isinstance(x, str) for x in items):
            raise RequestError("MANIFEST_INVALID", f"{where}.values.{kind} must be a hex string or a non-empty list")
        try:
            parsed = [normalize_value(kind, x) for x in items]
        except RequestError as exc:
            raise RequestError(exc.code, f"{where}.values.{kind}: {exc.message}") from None
        if len(set(parsed)) != len(parsed):
            raise RequestError("MANIFEST_INVALID", f"{where}.values.{kind} lists a value twice")
        values.append((kind, tuple(parsed)))
    missing = [k for k in REQUIRED_KINDS.get(tee, ()) if k not in raw]
    if missing:
        raise RequestError(
            "MANIFEST_INVALID",
            f"{where}.values: a {tee} workload version must pin {missing} (without them it would match other images)",
        )
    policy = _policy(
        item.get("policy"),
        f"{where}.policy",
        inline_policy_name(workload, version),
        inline if inline is not None else [],
    )
    return VersionSpec(version, tuple(sorted(values)), valid_from, expires, policy)


def _gpus(value: Any, where: str, tee: str) -> int | None:
    """`gpus: {min: k}` (module docstring): k of 1..MAX_GPUS, None when absent. RequestError MANIFEST_INVALID."""
    if value is None:
        return None
    if tee not in COMPOSITE_TEES:
        raise RequestError("MANIFEST_INVALID", f"{where}: only {' and '.join(COMPOSITE_TEES)} workloads drive GPUs")
    wanted = value.get("min") if isinstance(value, dict) and set(value) == {"min"} else None
    if isinstance(wanted, bool) or not isinstance(wanted, int) or not 1 <= wanted <= MAX_GPUS:
        raise RequestError("MANIFEST_INVALID", f"{where} must be {{min: k}} with k of 1..{MAX_GPUS}")
    return wanted


def _with_gpus(version: VersionSpec, item: Any, default: int | None, tee: str, where: str, index: int) -> VersionSpec:
    """`version` with its `gpus:` (else the workload's) as the value `<tee>.min_gpus`. RequestError
    MANIFEST_INVALID (also for `gpus:` beside a listed `<tee>.min_gpus` value)."""
    here = f"{where}.versions[{index}].gpus"
    own = _gpus(item.get("gpus"), here, tee) if isinstance(item, dict) else None
    wanted = own if own is not None else default
    kind = f"{tee}.{MIN_GPUS}"
    if wanted is None or (own is None and kind in version.kinds):  # a listed value beats the workload's default
        return version
    if kind in version.kinds:
        raise RequestError("MANIFEST_INVALID", f"{here}: the version lists {kind} already; give one of the two")
    values = tuple(sorted((*version.values, (kind, (bytes([wanted]),)))))
    return VersionSpec(version.version, values, version.valid_from, version.expires_at, version.policy)


def read_document(path: Path) -> Any:
    """The parsed YAML (.yaml/.yml) or JSON of a manifest file, unvalidated. RequestError MANIFEST_UNREADABLE,
    MANIFEST_TOO_LARGE (over MAX_MANIFEST_BYTES) or MANIFEST_INVALID (not YAML / JSON)."""
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
        try:
            return as_utc(value)
        except ValueError as exc:
            raise RequestError("MANIFEST_INVALID", f"{where}.{key}: {exc}") from None
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
