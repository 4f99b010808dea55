"""`verifier refs import-nitro | compute snp`: one workload version from nitro-cli JSON or a computed SEV-SNP
launch measurement, written to a workload manifest (--out) or added to the database (`--db`, or a server with
`--server`: verifier.transport.grpc.refs_admin_ops.import_version either way)."""

from __future__ import annotations

import argparse
from typing import Any

from ..reference_values.kinds import normalize_value
from ..settings import Settings
from ..workloads.manifest import load_manifest_file
from ..workloads.manifest_model import ManifestEntry
from ..workloads.manifest_writer import add_version, entry_json, version_from_entries, version_json
from .common import UsageError, print_json
from .refs_values import _entry_from_args, open_refs


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
        with open_refs(args, base) as refs:
            added, skipped = refs.import_version(name, tee, entries, alternative=args.alternative)
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
