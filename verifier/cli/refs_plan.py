"""`verifier refs plan | apply`: reconcile whole workloads with their manifests (one file per workload), the
plan printed, `apply` in one transaction per workload's metadata and one for the values; `plan --impact`
re-appraises the kept evidence under the planned values (on the server with `--server`, where the data is).

Every plan has a SHA-256 (printed by `plan`, `plan_sha256` in --json): `apply --plan-sha256 SHA` applies exactly
that plan or refuses (PLAN_STALE, exit 64) when the database or the manifests moved since. Exit codes: 0; with
`--impact`, 1 when a kept appraisal would change; with `--detailed-exitcode` (terraform's convention), 0 when the
plan changes nothing and 2 when it changes something; errors keep the CLI's codes (64 usage, 3 unavailable, 77 not
allowed, 70 internal)."""

from __future__ import annotations

import argparse
import sys

from ..settings import Settings
from ..workloads.manifest import load_manifest_file
from .common import UsageError, print_json
from .refs_port import ManifestFiles, PlanView
from .refs_values import open_refs

EXIT_CHANGES = 2  # --detailed-exitcode: the plan changes something


def _load(args: argparse.Namespace) -> ManifestFiles:
    """The manifests of `args.files`, with a note on stderr for each in the pre-workload format."""
    manifests = [load_manifest_file(path, default_label=args.label) for path in args.files]
    for m in manifests:
        if m.legacy:
            print(
                f"note: {m.source} uses the pre-workload format (reference_values:); it is read for one more "
                "release: convert it to one workload manifest per workload (measurements/README.md)",
                file=sys.stderr,
            )
    return ManifestFiles(tuple(args.files), tuple(manifests), args.label)


def _plan_json(view: PlanView, applied: bool) -> dict[str, object]:
    return {**view.plan_json, "applied": applied, "plan_sha256": view.sha256}


def _print_plan(view: PlanView, as_json: bool, applied: bool) -> None:
    if as_json:
        print_json(_plan_json(view, applied))
        return
    for line in view.lines:
        print(line)
    if applied and view.changes:
        print("applied")
    elif not applied and view.changes:
        print(f"plan sha256 {view.sha256} (refs apply --plan-sha256 applies exactly this plan)")


def _plan(args: argparse.Namespace, base: Settings) -> int:
    files = _load(args)
    remote = getattr(args, "server", None) is not None
    if remote and (args.trust_anchors is not None or args.offline is not None):
        raise UsageError("--trust-anchors and --offline are local: with --server the server's own settings apply")
    if args.impact_limit <= 0:
        raise UsageError("--impact-limit must be at least 1")
    base = base.with_overrides(trust_anchors=args.trust_anchors, offline=args.offline)
    if args.impact and remote:
        print(f"impact: the server re-appraises up to {args.impact_limit} kept appraisals ...", file=sys.stderr)
    with open_refs(args, base) as refs:
        view = refs.plan(files, values=args.values, impact_limit=args.impact_limit if args.impact else None)
    if view.impact is None:
        _print_plan(view, args.json, False)
    elif args.json:
        print_json({"plan": _plan_json(view, False), "impact": view.impact.report})
    else:
        _print_plan(view, False, False)
        print(view.impact.text)
    if args.detailed_exitcode:
        return EXIT_CHANGES if view.changes else 0
    return 1 if view.impact is not None and view.impact.changed else 0


def _apply(args: argparse.Namespace, base: Settings) -> int:
    files = _load(args)
    with open_refs(args, base) as refs:
        view = refs.apply(files, values=args.values, expect=args.plan_sha256)
    _print_plan(view, args.json, True)
    return 0
