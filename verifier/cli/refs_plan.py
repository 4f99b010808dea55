"""`verifier refs plan | apply`: reconcile whole workloads with their manifests (one file per workload), the
plan printed, `apply` in one transaction per workload's metadata and one for the values; `plan --impact`
re-appraises the kept evidence under the planned values."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Mapping

from ..bootstrap import build_policies
from ..clock import SystemClock
from ..errors import RequestError
from ..reference_values.model import ReferenceValue
from ..settings import Settings
from ..storage.engine import Database
from ..storage.workloads import SqlWorkloads
from ..workloads.manifest import load_manifest_file
from ..workloads.manifest_model import Manifest
from ..workloads.model import WorkloadMeta
from ..workloads.plan import Plan
from .common import print_json, settings_for
from .refs_values import _store, cli_actor


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


def _load(args: argparse.Namespace) -> list[Manifest]:
    """The manifests of `args.files`, with a note on stderr for each in the pre-workload format."""
    manifests = [load_manifest_file(path, default_label=args.label) for path in args.files]
    for m in manifests:
        if m.legacy:
            print(
                f"note: {m.source} uses the pre-workload format (reference_values:); it is read for one more "
                "release: convert it to one workload manifest per workload (measurements/README.md)",
                file=sys.stderr,
            )
    return manifests


def _ensure_workloads(workloads: SqlWorkloads, manifests: list[Manifest], now: dt.datetime) -> None:
    """The workload metadata of the manifests (TEE, inline policies, policy, version policies), one transaction per
    workload: applied before the values, so that no value of a workload is ever live without its policy."""
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


def _plan_or_apply(args: argparse.Namespace, base: Settings, apply: bool) -> int:
    manifests = _load(args)
    now = SystemClock().now()
    settings = settings_for(args, base)
    impact = getattr(args, "impact", False)
    db, store = _store(args, base)
    try:
        workloads = SqlWorkloads(db)
        _check_policies(manifests, settings, db)
        names = {m.workload.name for m in manifests if m.workload is not None}
        before = workloads.metadata(names)
        digests = _stored_digests(manifests, db)
        plan = store.plan(manifests, now=now).with_catalog(manifests, before, digests)
        if apply:
            # the metadata first, then the values, re-planned inside their own transaction
            _ensure_workloads(workloads, manifests, now)
            plan = store.apply(manifests, now=now, actor=cli_actor()).with_catalog(manifests, before, digests)
        active = store.list(at=now) if impact else []
        catalog = workloads.metadata({r.label for r in active} | names) if impact else {}
    finally:
        db.dispose()
    if impact:
        return _impact(args, settings, plan, manifests, active, catalog, now, apply)
    _print_plan(plan, args.json, apply, args.values)
    return 0


def _impact(
    args: argparse.Namespace,
    settings: Settings,
    plan: Plan,
    manifests: list[Manifest],
    active: list[ReferenceValue],
    catalog: Mapping[str, WorkloadMeta],
    now: dt.datetime,
    applied: bool,
) -> int:
    """`plan --impact`: re-appraise the kept evidence under the planned values; 1 when an outcome changes."""
    from .workload_impact import run_workload_impact

    settings = settings.with_overrides(trust_anchors=args.trust_anchors, offline=args.offline)
    if not args.json:
        _print_plan(plan, False, applied, args.values)
    report = run_workload_impact(
        settings,
        plan,
        manifests,
        active,
        catalog,
        now,
        limit=args.impact_limit,
        as_json=args.json,
        plan_json={**plan.to_json(), "applied": applied},
    )
    return 1 if report.changed else 0


def _plan(args: argparse.Namespace, base: Settings) -> int:
    return _plan_or_apply(args, base, apply=False)


def _apply(args: argparse.Namespace, base: Settings) -> int:
    return _plan_or_apply(args, base, apply=True)
