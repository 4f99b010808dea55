"""`verifier refs ...`: approved reference values in the database, their lifecycle and their manifests.

add | list | revoke | reapprove | history | import (additive) | plan | apply (reconcile whole workloads with their
manifests, one file per workload) | import-nitro (nitro-cli JSON -> a workload version in a manifest or the
database) | compute snp (SEV-SNP launch measurement -> likewise).

Revocation is per value: `revoke ID` revokes the row's kind and value in every live row, every add path then
refuses the value (REFERENCE_VALUE_REVOKED, exit 64) and only `reapprove KIND VALUE --reason TEXT` lifts that."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from ..auth import current_actor
from ..bootstrap import build_policies, open_database
from ..clock import SystemClock, to_rfc3339
from ..errors import RequestError
from ..reference_values.kinds import normalize_value
from ..reference_values.manifest import (
    Manifest,
    ManifestEntry,
    add_version,
    entry_json,
    load_manifest,
    load_manifest_file,
    version_from_entries,
    version_json,
)
from ..reference_values.model import STATES, Reapproval, ReferenceValue, State, ValueRevocation
from ..reference_values.plan import Plan
from ..settings import Settings, add_flags
from ..storage.engine import Database
from ..storage.reference_values import SqlReferenceValueStore
from ..storage.workloads import SqlWorkloads
from .common import UsageError, add_db_flag, print_json, rfc3339, settings_for


def register(sub: Any) -> None:
    parser = sub.add_parser("refs", help="reference values (approved measurements)")
    rs = parser.add_subparsers(dest="refs_command", required=True)

    add = rs.add_parser("add", help="register an approved value")
    add.add_argument("kind", help="e.g. nitro.pcr0")
    add.add_argument("value", help="hex")
    add.add_argument("--label", default="", help="what this value is (image name, version)")
    _lifecycle_flags(add)
    add.add_argument("--json", action="store_true")
    add_db_flag(add)
    add.set_defaults(handler=_add)

    ls = rs.add_parser("list", help="list reference values (active ones unless --all or --state)")
    ls.add_argument("--kind")
    ls.add_argument("--label")
    ls.add_argument("--state", choices=STATES)
    ls.add_argument("--all", action="store_true", help="every state: active, pending, expired, revoked")
    ls.add_argument("--json", action="store_true")
    add_db_flag(ls)
    ls.set_defaults(handler=_list)

    rv = rs.add_parser("revoke", help="revoke a row and with it its value in every row (kept, never deleted)")
    rv.add_argument("id")
    rv.add_argument("--reason", required=True)
    rv.add_argument("--json", action="store_true")
    add_db_flag(rv)
    rv.set_defaults(handler=_revoke)

    ra = rs.add_parser("reapprove", help="explicitly re-approve a revoked value so it may be added again (audited)")
    ra.add_argument("kind", help="e.g. nitro.pcr0")
    ra.add_argument("value", help="hex")
    ra.add_argument("--reason", required=True, help="why the revocation no longer holds (in the audit log)")
    ra.add_argument("--label", help="also add the value under this label, in the same change")
    _lifecycle_flags(ra)
    ra.add_argument("--json", action="store_true")
    add_db_flag(ra)
    ra.set_defaults(handler=_reapprove)

    hi = rs.add_parser("history", help="the audit trail of one value, or of a kind and/or label")
    hi.add_argument("id", nargs="?")
    hi.add_argument("--kind")
    hi.add_argument("--label")
    hi.add_argument("--json", action="store_true")
    add_db_flag(hi)
    hi.set_defaults(handler=_history)

    im = rs.add_parser("import", help="add the values of a manifest or `nitro-cli describe-eif` JSON (additive)")
    im.add_argument("file", type=Path)
    im.add_argument("--label", help="label for nitro-cli measurements (default: the EIF's ImageName or file name)")
    im.add_argument("--expires", type=rfc3339, metavar="RFC3339")
    add_db_flag(im)
    im.set_defaults(handler=_import)

    for name, handler, text in (
        ("plan", _plan, "show what `apply` would change for the labels the manifests manage"),
        ("apply", _apply, "apply the plan in one transaction (all or nothing) and print it"),
    ):
        sp = rs.add_parser(name, help=text)
        sp.add_argument("files", nargs="+", type=Path, metavar="FILE")
        sp.add_argument(
            "--workload",
            "--label",
            dest="label",
            help="workload of nitro-cli JSON files (default: ImageName or file name)",
        )
        sp.add_argument("--values", action="store_true", help="also list every row added, expired or revoked")
        sp.add_argument("--json", action="store_true")
        if name == "plan":
            sp.add_argument(
                "--impact",
                action="store_true",
                help="re-appraise the kept evidence under the planned values and list what flips",
            )
            sp.add_argument("--impact-limit", type=int, default=1000, metavar="N", help="newest N kept items")
            add_flags(sp, ["trust_anchors", "offline"])
        add_db_flag(sp)
        sp.set_defaults(handler=handler)

    nitro = rs.add_parser(
        "import-nitro",
        help="nitro-cli build-enclave/describe-eif JSON -> a workload version "
        "(in a manifest with --out, else in the database)",
    )
    nitro.add_argument("file", type=Path)
    nitro.add_argument(
        "--workload",
        "--label",
        dest="workload",
        required=True,
        metavar="NAME",
        help="the workload (--label: the older name of this flag)",
    )
    _lifecycle_flags(nitro)
    nitro.add_argument("--policy", help="with --out: the policy the workload is appraised under")
    nitro.add_argument(
        "--alternative", action="store_true", help="the version exists: add these values to it as alternatives"
    )
    nitro.add_argument(
        "--out",
        type=Path,
        metavar="MANIFEST",
        help="the workload manifest to create or add the version to (.yaml/.yml or .json)",
    )
    nitro.add_argument("--json", action="store_true")
    add_db_flag(nitro)
    nitro.set_defaults(handler=_import_nitro)

    compute = rs.add_parser("compute", help="compute expected measurements")
    cs = compute.add_subparsers(dest="compute_tee", required=True)
    snp = cs.add_parser("snp", help="SEV-SNP launch measurement (sev-snp-measure)")
    snp.add_argument("--ovmf", type=Path, required=True, help="OVMF firmware with SEV metadata")
    snp.add_argument("--kernel", type=Path)
    snp.add_argument("--initrd", type=Path)
    snp.add_argument("--append", help="kernel command line")
    snp.add_argument("--vcpus", type=int, required=True)
    snp.add_argument("--vcpu-type", required=True, help="e.g. EPYC-v4, EPYC-Milan, EPYC-Genoa")
    snp.add_argument("--vmm-type", choices=("QEMU", "ec2"), default="QEMU")
    snp.add_argument("--guest-features", type=_int0, default=0x1, metavar="HEX")
    snp.add_argument(
        "--workload",
        "--label",
        dest="workload",
        metavar="NAME",
        help="the workload of the version (required with --out or --add; --label: older name)",
    )
    _lifecycle_flags(snp)
    snp.add_argument("--host-data", metavar="HEX", help="also require this snp.host_data (32 bytes) in the version")
    snp.add_argument("--policy", help="with --out: the policy the workload is appraised under")
    snp.add_argument(
        "--alternative",
        action="store_true",
        help="the version exists: add the measurement to it as an alternative (e.g. another vCPU count)",
    )
    target = snp.add_mutually_exclusive_group()
    target.add_argument(
        "--out",
        type=Path,
        metavar="MANIFEST",
        help="the workload manifest to create or add the version to (.yaml/.yml or .json)",
    )
    target.add_argument("--add", action="store_true", help="add the version to the database")
    snp.add_argument("--json", action="store_true")
    add_db_flag(snp)
    snp.set_defaults(handler=_compute_snp)


def _lifecycle_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", dest="ref_version", metavar="VERSION", help="release version of the value")
    parser.add_argument("--valid-from", type=rfc3339, metavar="RFC3339", help="pending until then")
    parser.add_argument("--expires", type=rfc3339, metavar="RFC3339")


def _int0(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def cli_actor() -> str:
    """Who the CLI acts as, for created_by / revoked_by and the audit log: `cli:<os user>`."""
    return current_actor()


def _store(args: argparse.Namespace, base: Settings) -> tuple[Database, SqlReferenceValueStore]:
    db = open_database(settings_for(args, base))
    db.check()
    return db, SqlReferenceValueStore(db)


def _time(value: dt.datetime | None) -> str | None:
    return to_rfc3339(value) if value is not None else None


def ref_json(ref: ReferenceValue, at: dt.datetime) -> dict[str, Any]:
    return {
        "id": ref.id,
        "kind": ref.kind,
        "value": ref.value.hex(),
        "label": ref.label,
        "version": ref.version,
        "state": ref.state(at),
        "created_at": to_rfc3339(ref.created_at),
        "created_by": ref.created_by,
        "valid_from": _time(ref.valid_from),
        "expires_at": _time(ref.expires_at),
        "revoked_at": _time(ref.revoked_at),
        "revoked_by": ref.revoked_by,
        "revoke_reason": ref.revoke_reason,
    }


def _entry_from_args(args: argparse.Namespace, kind: str, value: bytes, label: str) -> ManifestEntry:
    if args.valid_from is not None and args.expires is not None and args.expires <= args.valid_from:
        raise UsageError("--expires must be after --valid-from")
    return ManifestEntry(kind, value, label, args.expires, args.ref_version, args.valid_from)


def _add(args: argparse.Namespace, base: Settings) -> int:
    value = normalize_value(args.kind, args.value)
    entry = _entry_from_args(args, args.kind, value, args.label)
    now = SystemClock().now()
    db, store = _store(args, base)
    try:
        if entry.label:  # the value joins the workload named by the label, created if missing (one transaction)
            _, [ref] = SqlWorkloads(db).add_values(entry.label, [entry], now=now, actor=cli_actor(), skip_present=False)
        else:
            ref = store.add(
                entry.kind,
                entry.value,
                entry.label,
                now=now,
                expires_at=entry.expires_at,
                valid_from=entry.valid_from,
                version=entry.version,
                actor=cli_actor(),
            )
    finally:
        db.dispose()
    if args.json:
        print_json(ref_json(ref, now))
    else:
        print(f"added {ref.id} {ref.kind} {ref.value.hex()} {ref.label!r} ({ref.state(now)})")
    return 0


def _list(args: argparse.Namespace, base: Settings) -> int:
    now = SystemClock().now()
    state: State | None = args.state
    db, store = _store(args, base)
    try:
        refs = store.list(kind=args.kind, label=args.label, state=state, include_inactive=args.all, at=now)
    finally:
        db.dispose()
    if args.json:
        print_json([ref_json(r, now) for r in refs])
        return 0
    for r in refs:
        version = f" [{r.version}]" if r.version else ""
        print(f"{r.id}  {r.state(now):8}  {r.kind:16}  {r.value.hex()}  {r.label}{version}")
    return 0


def _revoke(args: argparse.Namespace, base: Settings) -> int:
    reason = args.reason.strip()
    if not reason:
        raise UsageError("--reason must not be empty")
    now = SystemClock().now()
    db, store = _store(args, base)
    try:
        ref = store.revoke(args.id, reason, now=now, actor=cli_actor())
        also = [
            r
            for r in store.list(kind=ref.kind, state="revoked", at=now)
            if r.value == ref.value and r.id != ref.id and r.revoked_at == ref.revoked_at
        ]
    finally:
        db.dispose()
    if args.json:
        print_json({**ref_json(ref, now), "also_revoked": [ref_json(r, now) for r in also]})
    else:
        print(f"revoked {ref.id} {ref.kind} ({reason})")
        for r in also:
            print(f"revoked {r.id} {r.kind} {r.label!r}: same value")
    return 0


def revocation_json(rv: ValueRevocation) -> dict[str, Any]:
    return {
        "id": rv.id,
        "ref_id": rv.ref_id,
        "revoked_at": to_rfc3339(rv.revoked_at),
        "revoked_by": rv.revoked_by,
        "reason": rv.reason,
        "reapproved_at": _time(rv.reapproved_at),
        "reapproved_by": rv.reapproved_by,
        "reapprove_reason": rv.reapprove_reason,
    }


def _reapprove(args: argparse.Namespace, base: Settings) -> int:
    value = normalize_value(args.kind, args.value)
    reason = args.reason.strip()
    if not reason:
        raise UsageError("--reason must not be empty")
    if args.label is None and (args.ref_version, args.valid_from, args.expires) != (None, None, None):
        raise UsageError("--version, --valid-from and --expires need --label (the row to add)")
    entry = _entry_from_args(args, args.kind, value, args.label or "")
    now = SystemClock().now()
    db, store = _store(args, base)
    try:
        result: Reapproval = store.reapprove(
            args.kind,
            value,
            reason,
            now=now,
            actor=cli_actor(),
            label=args.label,
            expires_at=entry.expires_at,
            valid_from=entry.valid_from,
            version=entry.version,
        )
    finally:
        db.dispose()
    if args.json:
        print_json(
            {
                "kind": result.kind,
                "value": result.value.hex(),
                "reason": reason,
                "revocations": [revocation_json(r) for r in result.revocations],
                "added": ref_json(result.added, now) if result.added is not None else None,
            }
        )
        return 0
    print(f"re-approved {result.kind} {result.value.hex()} ({reason})")
    for rv in result.revocations:
        print(
            f"  closed the revocation of {to_rfc3339(rv.revoked_at)} by {rv.revoked_by} (row {rv.ref_id}): {rv.reason}"
        )
    if result.added is not None:
        added = result.added
        print(f"added {added.id} {added.kind} {added.value.hex()} {added.label!r} ({added.state(now)})")
    else:
        print("the value may be added again (refs add / import / apply)")
    return 0


def _history(args: argparse.Namespace, base: Settings) -> int:
    if args.id is None and args.kind is None and args.label is None:
        raise UsageError("history needs an ID, --kind or --label")
    db, store = _store(args, base)
    try:
        rows = store.history(args.id, kind=args.kind, label=args.label)
    finally:
        db.dispose()
    if args.json:
        print_json(
            [
                {
                    "seq": e.seq,
                    "at": to_rfc3339(e.at),
                    "actor": e.actor,
                    "action": e.action,
                    "subject": e.subject,
                    "details": e.details,
                }
                for e in rows
            ]
        )
        return 0
    for e in rows:
        what = f"{e.details.get('kind', '')} {e.details.get('label', '')!r}"
        why = f": {e.details['reason']}" if e.details.get("reason") else ""
        print(f"{e.seq:6}  {to_rfc3339(e.at)}  {e.action:10}  {e.subject}  {what}  by {e.actor}{why}")
    return 0


def _add_missing(store: SqlReferenceValueStore, entries: list[ManifestEntry], now: dt.datetime) -> tuple[int, int]:
    """All or nothing: a revoked value among the entries (REFERENCE_VALUE_REVOKED) adds none of them."""
    added, skipped = store.add_missing(entries, now=now, actor=cli_actor())
    return len(added), skipped


def _import(args: argparse.Namespace, base: Settings) -> int:
    entries = load_manifest(args.file, default_label=args.label, expires_at=args.expires)
    now = SystemClock().now()
    db, store = _store(args, base)
    try:
        added, skipped = _add_missing(store, entries, now)
    finally:
        db.dispose()
    print(f"imported {args.file}: {added} added, {skipped} already present")
    return 0


def _print_plan(plan: Plan, as_json: bool, applied: bool, values: bool = False) -> None:
    if as_json:
        print_json({**plan.to_json(), "applied": applied})
        return
    for line in plan.lines(values=values):
        print(line)
    if applied and not plan.metadata_empty:
        print("applied")


def _check_policies(manifests: list[Manifest], settings: Settings, db: Database) -> None:
    """A policy a workload manifest names (top level or per version; not its inline ones, which `apply` stores)
    must exist (database, --policy-file or built-in): POLICY_UNKNOWN otherwise."""
    wanted = sorted({n for m in manifests if m.workload is not None for n in m.workload.named_policies})
    if not wanted:
        return
    policies = build_policies(settings, db)
    for name in wanted:
        if policies.lookup(name) is None:
            source = next(m.source for m in manifests if m.workload is not None and name in m.workload.named_policies)
            raise RequestError(
                "POLICY_UNKNOWN",
                f"{source}: no appraisal policy named {name!r} (create it first "
                "with `verifier policy set`, or in --policy-file)",
            )


def _stored_digests(manifests: list[Manifest], db: Database) -> dict[str, str]:
    """The SHA-256 of the stored database policies the manifests' inline policies would replace (by name)."""
    from ..appraisal.policy import policy_sha256
    from ..storage.policies import SqlPolicies

    stored = SqlPolicies(db)
    out: dict[str, str] = {}
    for m in manifests:
        for name, _ in m.workload.inline_policies if m.workload is not None else ():
            policy = stored.get(name)
            if policy is not None:
                out[name] = policy_sha256(policy)
    return out


def _plan_or_apply(args: argparse.Namespace, base: Settings, apply: bool) -> int:
    manifests = [load_manifest_file(path, default_label=args.label) for path in args.files]
    for m in manifests:
        if m.legacy:
            print(
                f"note: {m.source} uses the pre-workload format (reference_values:); it is read for one more "
                "release: convert it to one workload manifest per workload (measurements/README.md)",
                file=sys.stderr,
            )
    now = SystemClock().now()
    settings = settings_for(args, base)
    db, store = _store(args, base)
    try:
        workloads = SqlWorkloads(db)
        _check_policies(manifests, settings, db)
        names = {m.workload.name for m in manifests if m.workload is not None}
        before = workloads.metadata(names)
        digests = _stored_digests(manifests, db)
        plan = store.plan(manifests, now=now).with_catalog(manifests, before, digests)
        if apply:
            # Metadata first (TEE, inline policies, policy, version policies: one transaction per workload), so
            # that no value of the workload is ever live without its policy; then the values, re-planned inside
            # their own transaction.
            for m in manifests:
                if m.workload is not None:
                    spec = m.workload
                    inline = {n: body for n, _ in spec.inline_policies if (body := spec.inline(n)) is not None}
                    workloads.ensure(
                        spec.name,
                        spec.tee,
                        now=now,
                        actor=cli_actor(),
                        policy=spec.policy,
                        version_policies=spec.version_policies,
                        inline_policies=inline,
                    )
            plan = store.apply(manifests, now=now, actor=cli_actor()).with_catalog(manifests, before, digests)
        active = store.list(at=now) if getattr(args, "impact", False) else []
        catalog = workloads.metadata({r.label for r in active} | names) if getattr(args, "impact", False) else {}
    finally:
        db.dispose()
    if getattr(args, "impact", False):
        from .workload_impact import run_workload_impact

        settings = settings.with_overrides(trust_anchors=args.trust_anchors, offline=args.offline)
        if not args.json:
            _print_plan(plan, False, apply, args.values)
        report = run_workload_impact(
            settings,
            plan,
            manifests,
            active,
            catalog,
            now,
            limit=args.impact_limit,
            as_json=args.json,
            plan_json={**plan.to_json(), "applied": apply},
        )
        return 1 if report.changed else 0
    _print_plan(plan, args.json, apply, args.values)
    return 0


def _plan(args: argparse.Namespace, base: Settings) -> int:
    return _plan_or_apply(args, base, apply=False)


def _apply(args: argparse.Namespace, base: Settings) -> int:
    return _plan_or_apply(args, base, apply=True)


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
