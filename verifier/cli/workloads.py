"""`verifier workloads ...`: approved workloads, the unit of trust (verifier.workloads.model).

create | list [--review] | show | add-version | set-policy [--version V] | revoke | revoke-version | confirm.

A workload's values are the reference values labelled with its name (`refs add KIND VALUE --label NAME` adds to
it too); a version is the values of one `--version`: every kind present is required, several values of one kind
are alternatives. A policy named here must exist (built-in, --policy-file or `verifier policy set`), else
POLICY_UNKNOWN (exit 64). Every command works on the database (`--db`) or on a running server (`--server HOST:PORT`,
verifier.v1.Workloads) through `WorkloadsAdmin` (workloads_port), with the same output and exit codes."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from ..appraisal.registry import tee_names
from ..clock import to_rfc3339
from ..reference_values.kinds import normalize_value
from ..settings import Settings, add_flags
from ..storage.workload_records import StoredVersion, WorkloadRecord
from ..workloads.manifest_model import ManifestEntry
from .common import UsageError, add_db_flag, print_json, rfc3339
from .output import print_table
from .refs_values import ref_json
from .remote import add_server_flags
from .workloads_port import workloads_port


def register(sub: Any) -> None:
    parser = sub.add_parser("workloads", help="approved workloads (name, TEE, versions, policy)")
    ws = parser.add_subparsers(dest="workloads_command", required=True)

    create = ws.add_parser("create", help="create a workload (no versions yet)")
    create.add_argument("name")
    create.add_argument("--tee", required=True, choices=tee_names())
    create.add_argument("--policy", help="appraise it under this named policy (default: the verifier's default)")
    _policy_file(create)
    _common(create)
    create.set_defaults(handler=_create)

    ls = ws.add_parser("list", help="every workload")
    ls.add_argument("--review", action="store_true", help="only the migrated workloads an admin should confirm")
    _common(ls)
    ls.set_defaults(handler=_list)

    show = ws.add_parser("show", help="one workload with its versions and their values")
    show.add_argument("name")
    _common(show)
    show.set_defaults(handler=_show)

    av = ws.add_parser("add-version", help="add a version: its values, each kind required (creates the workload)")
    av.add_argument("name")
    av.add_argument("--version", dest="workload_version", required=True, metavar="VERSION")
    av.add_argument(
        "--value",
        dest="values",
        action="append",
        required=True,
        metavar="KIND=HEX",
        help="a value of the version (repeat; two values of one kind are alternatives)",
    )
    av.add_argument("--valid-from", type=rfc3339, metavar="RFC3339", help="pending until then")
    av.add_argument("--expires", type=rfc3339, metavar="RFC3339")
    _common(av)
    av.set_defaults(handler=_add_version)

    sp = ws.add_parser("set-policy", help="the policy the workload is appraised under")
    sp.add_argument("name")
    which = sp.add_mutually_exclusive_group(required=True)
    which.add_argument("policy", nargs="?", help="a policy name")
    which.add_argument(
        "--default",
        action="store_true",
        help="the verifier's default policy (with --version: the workload's policy again)",
    )
    sp.add_argument(
        "--version",
        dest="workload_version",
        metavar="VERSION",
        help='set the policy of this version only ("" = the unversioned values)',
    )
    _policy_file(sp)
    _common(sp)
    sp.set_defaults(handler=_set_policy)

    rv = ws.add_parser("revoke", help="revoke the workload: none of its versions matches again")
    rv.add_argument("name")
    rv.add_argument("--reason", required=True)
    _common(rv)
    rv.set_defaults(handler=_revoke)

    rvv = ws.add_parser("revoke-version", help='revoke one version ("" = the unversioned values)')
    rvv.add_argument("name")
    rvv.add_argument("version")
    rvv.add_argument("--reason", required=True)
    _common(rvv)
    rvv.set_defaults(handler=_revoke_version)

    confirm = ws.add_parser("confirm", help="confirm a migrated workload marked for review, as it is")
    confirm.add_argument("name")
    _common(confirm)
    confirm.set_defaults(handler=_confirm)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true")
    add_db_flag(parser)
    add_server_flags(parser)


def _policy_file(parser: argparse.ArgumentParser) -> None:
    add_flags(parser, ["policy_file"], help={"policy_file": "named policies (JSON) below the database"})


def _time(value: dt.datetime | None) -> str | None:
    return to_rfc3339(value) if value is not None else None


def effective_policy(record: WorkloadRecord, version: str) -> str | None:
    """The policy `version` is appraised under: its own, else the workload's (None: the verifier's default)."""
    return record.meta.version_policies.get(version, record.meta.policy)


def version_json(
    version: StoredVersion, at: dt.datetime, workload_revoked: bool, record: WorkloadRecord | None = None
) -> dict[str, Any]:
    rv = version.revocation
    own = record.meta.version_policies.get(version.version) if record is not None else None
    return {
        "version": version.version,
        "state": version.state(at, workload_revoked),
        "policy": effective_policy(record, version.version) if record is not None else None,
        "policy_source": "version" if own is not None else "workload",
        "revoked_at": _time(rv.revoked_at) if rv else None,
        "revoked_by": rv.revoked_by if rv else None,
        "revoke_reason": rv.reason if rv else None,
        "values": [ref_json(r, at) for r in version.values],
    }


def workload_json(
    record: WorkloadRecord, at: dt.datetime, versions: list[StoredVersion] | None = None
) -> dict[str, Any]:
    meta = record.meta
    out: dict[str, Any] = {
        "id": meta.id,
        "name": meta.name,
        "tee": meta.tee,
        "policy": meta.policy,
        "state": "active" if meta.live_at(at) else "revoked",
        "created_at": to_rfc3339(record.created_at),
        "created_by": record.created_by,
        "revoked_at": _time(meta.revoked_at),
        "revoked_by": record.revoked_by,
        "revoke_reason": record.revoke_reason,
        "review": meta.review,
        "review_reason": record.review_reason,
        "revoked_versions": sorted(meta.revoked_versions),
        "version_policies": dict(sorted(meta.version_policies.items())),
    }
    if versions is not None:
        out["versions"] = [version_json(v, at, not meta.live_at(at), record) for v in versions]
    return out


def _row(record: WorkloadRecord, at: dt.datetime) -> dict[str, Any]:
    meta = record.meta
    return {
        "name": meta.name,
        "tee": meta.tee,
        "state": "active" if meta.live_at(at) else "revoked",
        "policy": meta.policy or "(default)",
        "review": record.review_reason if meta.review else None,
    }


COLUMNS = ["name", "tee", "state", "policy", "review"]


def _print(record: WorkloadRecord, at: dt.datetime, as_json: bool) -> int:
    if as_json:
        print_json(workload_json(record, at))
    else:
        print_table([_row(record, at)], COLUMNS)
    return 0


def _create(args: argparse.Namespace, base: Settings) -> int:
    with workloads_port(args, base) as port:
        record, now = port.create(args.name, args.tee, args.policy), port.now
    return _print(record, now, args.json)


def _list(args: argparse.Namespace, base: Settings) -> int:
    with workloads_port(args, base) as port:
        records, now = port.records(review_only=args.review), port.now
    if args.json:
        print_json([workload_json(r, now) for r in records])
        return 0
    print_table([_row(r, now) for r in records], COLUMNS)
    return 0


def _show(args: argparse.Namespace, base: Settings) -> int:
    with workloads_port(args, base) as port:
        (record, versions), now = port.show(args.name), port.now
    if args.json:
        print_json(workload_json(record, now, versions))
        return 0
    _print(record, now, False)
    if record.meta.revoked_at is not None:
        print(f"  revoked {to_rfc3339(record.meta.revoked_at)} by {record.revoked_by}: {record.revoke_reason}")
    for version in versions:
        own = " (its own)" if version.version in record.meta.version_policies else ""
        policy = effective_policy(record, version.version) or "(default)"
        print(
            f"  version {version.version or '(unversioned)'}: {version.state(now, not record.meta.live_at(now))}, "
            f"policy {policy}{own}"
        )
        if version.revocation is not None:
            rv = version.revocation
            print(f"    revoked {to_rfc3339(rv.revoked_at)} by {rv.revoked_by}: {rv.reason}")
        for r in version.values:
            print(f"    {r.kind:<16} {r.value.hex()}  {r.state(now):<8} {r.id}")
    return 0


def _parse_value(text: str) -> tuple[str, bytes]:
    kind, sep, value = text.partition("=")
    if not sep or not kind or not value:
        raise UsageError(f"--value needs KIND=HEX, got {text[:60]!r}")
    return kind.strip(), normalize_value(kind.strip(), value)


def _add_version(args: argparse.Namespace, base: Settings) -> int:
    if not args.workload_version.strip():
        raise UsageError("--version must not be empty")
    if args.valid_from is not None and args.expires is not None and args.expires <= args.valid_from:
        raise UsageError("--expires must be after --valid-from")
    values = [_parse_value(v) for v in args.values]
    entries = [
        ManifestEntry(kind, value, args.name, args.expires, args.workload_version, args.valid_from)
        for kind, value in values
    ]
    with workloads_port(args, base) as port:
        (record, versions, added), now = port.add_version(args.name, args.workload_version, entries), port.now
    if args.json:
        print_json(workload_json(record, now, versions))
        return 0
    print(f"{record.meta.name} version {args.workload_version}: {len(added)} values added")
    for r in added:
        print(f"  {r.kind:<16} {r.value.hex()}  {r.state(now):<8} {r.id}")
    return 0


def _set_policy(args: argparse.Namespace, base: Settings) -> int:
    policy: str | None = None if args.default else args.policy
    with workloads_port(args, base) as port:
        record, now = port.set_policy(args.name, policy, args.workload_version), port.now
    if args.workload_version is not None and not args.json:
        # the version's own policy is the one just set; --default gives it the workload's again
        shown = (policy if policy is not None else record.meta.policy) or "(default)"
        print(
            f"{record.meta.name} version {args.workload_version or '(unversioned)'}: policy {shown}"
            + ("" if policy is not None else " (the workload's)")
        )
        return 0
    return _print(record, now, args.json)


def _reason(text: str) -> str:
    reason = text.strip()
    if not reason:
        raise UsageError("--reason must not be empty")
    return reason


def _revoke(args: argparse.Namespace, base: Settings) -> int:
    reason = _reason(args.reason)
    with workloads_port(args, base) as port:
        record, now = port.revoke(args.name, reason), port.now
    return _print(record, now, args.json)


def _revoke_version(args: argparse.Namespace, base: Settings) -> int:
    reason = _reason(args.reason)
    with workloads_port(args, base) as port:
        record, now = port.revoke_version(args.name, args.version, reason), port.now
    if not args.json:
        print(f"revoked version {args.version or '(unversioned)'} of {record.meta.name} ({reason})")
        return 0
    return _print(record, now, True)


def _confirm(args: argparse.Namespace, base: Settings) -> int:
    with workloads_port(args, base) as port:
        (flagged, record), now = port.confirm(args.name), port.now
    if not args.json:
        print(f"confirmed {record.meta.name} (was flagged: {flagged})")
        return 0
    return _print(record, now, True)
