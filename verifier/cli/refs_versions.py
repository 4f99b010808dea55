"""`verifier refs import-nitro | compute snp`: one workload version from nitro-cli JSON or a computed SEV-SNP
launch measurement, written to a workload manifest (--out) or added to the database."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from ..clock import SystemClock
from ..reference_values.kinds import normalize_value
from ..settings import Settings
from ..storage.reference_values import SqlReferenceValueStore
from ..storage.workloads import SqlWorkloads
from ..workloads.manifest import load_manifest_file
from ..workloads.manifest_model import ManifestEntry
from ..workloads.manifest_writer import add_version, entry_json, version_from_entries, version_json
from .common import UsageError, print_json
from .refs_values import _entry_from_args, _store, cli_actor


def _add_version(
    store: SqlReferenceValueStore,
    workloads: SqlWorkloads,
    name: str,
    tee: str,
    entries: list[ManifestEntry],
    *,
    now: dt.datetime,
    alternative: bool,
) -> tuple[int, int]:
    """Add one workload version to the database: (added, already present). The same version with the same values
    is already present; with other values it is refused (WORKLOAD_VERSION_EXISTS: a released version is never
    changed by an import, which would make the two builds' values alternatives of each other), unless
    `alternative`. The workload is created if missing (TEE `tee`)."""
    version = entries[0].version
    wanted = {(e.kind, e.value) for e in entries}
    live = {
        (r.kind, r.value)
        for r in store.list(label=name, include_inactive=True, at=now)
        if r.version == version and r.state(now) in ("active", "pending")
    }
    if live and wanted <= live and not alternative:
        workloads.ensure(name, tee, now=now, actor=cli_actor())
        return 0, len(entries)
    _, added = workloads.add_values(
        name, entries, now=now, actor=cli_actor(), tee=tee, new_version=not alternative, skip_present=True
    )
    return len(added), len(entries) - len(added)


def _write_or_add(args: argparse.Namespace, base: Settings, entries: list[ManifestEntry], name: str, tee: str) -> int:
    version = entries[0].version or ""
    result: dict[str, Any] = {"workload": name, "tee": tee}
    if args.out is not None:
        if not version:
            raise UsageError("--version is required with --out (a workload manifest names its versions)")
        spec, action = add_version(
            args.out,
            name,
            tee,
            version_from_entries(version, entries),
            policy=args.policy,
            alternative=args.alternative,
        )
        written = spec.version(version)
        result["version"] = version_json(written) if written is not None else None
        summary = f"{args.out}: version {version} of workload {name!r} {action}"
    else:
        if args.policy is not None:
            raise UsageError("--policy needs --out (set a stored workload's policy with `verifier workloads`)")
        now = SystemClock().now()
        db, store = _store(args, base)
        try:
            added, skipped = _add_version(
                store, SqlWorkloads(db), name, tee, entries, now=now, alternative=args.alternative
            )
        finally:
            db.dispose()
        summary = f"{added} added, {skipped} already present"
        result["version"] = version_json(version_from_entries(version, entries))
    if args.json:
        print_json({**result, "reference_values": [entry_json(e) for e in entries], "result": summary})
    else:
        print(f"workload {name!r} version {version or '(unversioned)'}:")
        for e in entries:
            print(f"  {e.kind:16} {e.value.hex()}")
        print(summary)
    return 0


def _import_nitro(args: argparse.Namespace, base: Settings) -> int:
    manifest = load_manifest_file(args.file, default_label=args.workload)
    if not manifest.nitro_cli:
        raise UsageError(f"{args.file} is not nitro-cli JSON ({{'Measurements': {{...}}}})")
    entries = [_entry_from_args(args, e.kind, e.value, args.workload) for e in manifest.entries]
    return _write_or_add(args, base, entries, args.workload, "nitro")


def _compute_snp(args: argparse.Namespace, base: Settings) -> int:
    from ..reference_values.snp_measure import SnpLaunch, compute_snp_measurement

    if (args.out is not None or args.add) and not args.workload:
        raise UsageError("--workload is required with --out or --add")
    host_data = normalize_value("snp.host_data", args.host_data) if args.host_data is not None else None
    launch = SnpLaunch(
        ovmf=args.ovmf,
        vcpus=args.vcpus,
        vcpu_type=args.vcpu_type,
        kernel=args.kernel,
        initrd=args.initrd,
        append=args.append,
        vmm_type=args.vmm_type,
        guest_features=args.guest_features,
    )
    measurement = compute_snp_measurement(launch)
    entry = _entry_from_args(args, "snp.measurement", measurement, args.workload or "")
    if args.out is None and not args.add:
        if args.json:
            print_json(entry_json(entry))
        else:
            print(measurement.hex())
        return 0
    entries = [entry]
    if host_data is not None:
        entries.append(_entry_from_args(args, "snp.host_data", host_data, args.workload))
    return _write_or_add(args, base, entries, args.workload, "snp")
