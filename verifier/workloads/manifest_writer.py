"""Writing reference-value manifests (schema in measurements/README.md): entries and workload versions as the
manifest schema spells them, new manifest files (never overwriting one), and `add_version`, which adds an imported
version to a workload manifest (`verifier refs import --workload`), checked as the loader would check it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from ..clock import to_rfc3339
from ..errors import RequestError
from .manifest import load_manifest_file, read_document, workload_manifest
from .manifest_model import ManifestEntry, VersionSpec, WorkloadSpec


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
    """YAML for .yaml/.yml, JSON otherwise; refuses to overwrite an existing file (MANIFEST_EXISTS)."""
    _write_text(path, _dump(path, document), exclusive=True)


def version_json(v: VersionSpec, spec: WorkloadSpec | None = None) -> dict[str, Any]:
    """A version as the manifest schema writes it (one value: a string; alternatives: a list; its policy by name,
    or inline when it is an inline policy of `spec`)."""
    out: dict[str, Any] = {"version": v.version}
    if v.valid_from is not None:
        out["valid_from"] = to_rfc3339(v.valid_from)
    if v.expires_at is not None:
        out["expires_at"] = to_rfc3339(v.expires_at)
    if v.policy is not None:
        out["policy"] = _policy_document(spec, v.policy)
    out["values"] = {
        kind: values[0].hex() if len(values) == 1 else [x.hex() for x in values] for kind, values in v.values
    }
    return out


def _policy_document(spec: WorkloadSpec | None, name: str) -> Any:
    body = spec.inline(name) if spec is not None else None
    if body is None:
        return name
    body.pop("id", None)
    return body


def workload_document(spec: WorkloadSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"workload": spec.name, "tee": spec.tee}
    if spec.policy is not None:
        out["policy"] = _policy_document(spec, spec.policy)
    out["versions"] = [version_json(v, spec) for v in spec.versions]
    return out


def version_from_entries(version: str, entries: Iterable[ManifestEntry]) -> VersionSpec:
    """Group importer output (one entry per value) into one version; the entries' window is the version's."""
    items = list(entries)
    grouped: dict[str, list[bytes]] = {}
    for e in items:
        if e.value not in grouped.setdefault(e.kind, []):
            grouped[e.kind].append(e.value)
    first = items[0] if items else None
    return VersionSpec(
        version,
        tuple(sorted((k, tuple(v)) for k, v in grouped.items())),
        first.valid_from if first else None,
        first.expires_at if first else None,
    )


def add_version(
    path: Path, name: str, tee: str, version: VersionSpec, *, policy: str | None = None, alternative: bool = False
) -> tuple[WorkloadSpec, str]:
    """Write the workload manifest `path` with `version` added: a new file when `path` does not exist, else the
    existing workload manifest of the same workload and TEE with one more version (leading comment lines are kept;
    other comments are not). With `alternative`, the values are added as alternatives to the existing version of
    that name. Returns the written spec and what was done ("created", "added", "extended", "unchanged").

    RequestError: MANIFEST_INVALID (not a workload manifest, or another workload / TEE), MANIFEST_VERSION_EXISTS
    (the version is there with other values and `alternative` is not set), MANIFEST_UNWRITABLE, and what reading
    the file raises."""
    if not path.exists():
        spec = WorkloadSpec(name, tee, policy, (version,))
        _check_spec(spec, str(path))
        _write_text(path, _dump(path, workload_document(spec)), exclusive=True)
        return spec, "created"
    current = load_manifest_file(path)
    old = current.workload
    if old is None:
        raise RequestError("MANIFEST_INVALID", f"{path} is not a workload manifest; choose another --out")
    if (old.name, old.tee) != (name, tee):
        raise RequestError("MANIFEST_INVALID", f"{path} describes {old.tee} workload {old.name!r}, not {tee} {name!r}")
    existing = old.version(version.version)
    action = "added"
    if existing is not None and not alternative:
        if existing.values == version.values:
            return old, "unchanged"
        raise RequestError(
            "MANIFEST_VERSION_EXISTS",
            f"{path} already has version {version.version!r} with other values; choose a new version "
            "(or add them as alternatives with --alternative)",
        )
    if existing is not None:
        merged = dict(existing.values)
        for kind, values in version.values:
            merged[kind] = merged.get(kind, ()) + tuple(x for x in values if x not in merged.get(kind, ()))
        version = VersionSpec(
            existing.version, tuple(sorted(merged.items())), existing.valid_from, existing.expires_at, existing.policy
        )
        action = "extended" if version != existing else "unchanged"
    versions = tuple(version if v.version == version.version else v for v in old.versions)
    if existing is None:
        versions += (version,)
    spec = WorkloadSpec(old.name, old.tee, policy if policy is not None else old.policy, versions, old.inline_policies)
    _check_spec(spec, str(path))
    document = {**({"description": d} if (d := _description(path)) else {}), **workload_document(spec)}
    _write_text(path, _leading_comments(path) + _dump(path, document), exclusive=False)
    return spec, action


def _check_spec(spec: WorkloadSpec, where: str) -> None:
    """What the loader checks, for a spec built in code (the importers)."""
    workload_manifest(workload_document(spec), where)


def _description(path: Path) -> Any:
    data = read_document(path)
    return data.get("description") if isinstance(data, dict) else None


def _leading_comments(path: Path) -> str:
    if path.suffix.lower() not in (".yaml", ".yml"):
        return ""
    lines = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line + "\n")
    return "".join(lines)


def _dump(path: Path, document: dict[str, Any]) -> str:
    if path.suffix.lower() in (".yaml", ".yml"):
        return yaml.safe_dump(document, sort_keys=False, width=200)
    return json.dumps(document, indent=2) + "\n"


def _write_text(path: Path, text: str, *, exclusive: bool) -> None:
    """`exclusive`: refuse an existing file (MANIFEST_EXISTS); else replace it atomically (a temporary file renamed
    over it), so a failed write never leaves half a manifest."""
    try:
        if exclusive:
            with path.open("x", encoding="utf-8") as fh:
                fh.write(text)
            return
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except FileExistsError:
        raise RequestError("MANIFEST_EXISTS", f"{path} exists; remove it or choose another --out") from None
    except OSError as exc:
        raise RequestError("MANIFEST_UNWRITABLE", f"cannot write {path}: {exc.strerror}") from None
