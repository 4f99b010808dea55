"""Exit codes and helpers shared by the subcommands.

The exit codes (README "Command-line habits and exit codes"): 0 affirming, 1 warning, 2 contraindicated, 3 could
not appraise (database or collateral unavailable), 64 usage, 70 internal, 77 not authenticated or not allowed, 141
a closed output pipe. With `--detailed-exitcode`, `verify` and `result verify` split 2 by the class of the worst
failure, as go-sev-guest's `check` does (`failure_class`): 2 the evidence itself (malformed, signature, chain,
identity, freshness), 4 the platform (its TCB or the vendor collateral that judges it: stale, unverifiable, CRL
unavailable), 5 the appraisal policy (debug, configuration), 6 an unapproved measurement (reference values,
workloads).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from ..clock import parse_rfc3339
from ..settings import Settings, add_flags, apply_flags

EXIT_AFFIRMING = 0
EXIT_WARNING = 1
EXIT_CONTRAINDICATED = 2
EXIT_UNAVAILABLE = 3
EXIT_PLATFORM = 4  # --detailed-exitcode: hardware / TCB or its collateral (go-sev-guest check: 3 and 4)
EXIT_POLICY = 5  # --detailed-exitcode: the appraisal policy refuses (go-sev-guest check: 5)
EXIT_MEASUREMENT = 6  # --detailed-exitcode: a measurement no reference value or workload approves
EXIT_INTERNAL = 70
EXIT_USAGE = 64
EXIT_NOT_ALLOWED = 77  # sysexits EX_NOPERM: missing or wrong credentials (AUTH) or a role that may not (PERMISSION)
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a writer whose reader went away (`verifier ... | head`)


class FailureClass(StrEnum):
    """Why a result is contraindicated, worst first (the order `failure_class` picks in)."""

    EVIDENCE = "evidence"
    PLATFORM = "platform"
    MEASUREMENT = "measurement"
    POLICY = "policy"


EXIT_BY_CLASS = {
    FailureClass.EVIDENCE: EXIT_CONTRAINDICATED,
    FailureClass.PLATFORM: EXIT_PLATFORM,
    FailureClass.MEASUREMENT: EXIT_MEASUREMENT,
    FailureClass.POLICY: EXIT_POLICY,
}
EXIT_BY_STATUS = {"affirming": EXIT_AFFIRMING, "warning": EXIT_WARNING}  # anything else: contraindicated
_PLATFORM_MARKS = ("COLLATERAL", "CRL", "_TCB_")  # codes about the vendor collateral or the platform's TCB
_MEASUREMENT_PREFIXES = ("REFERENCE_VALUE_", "CLAIM_MISSING")


def finding_class(code: str, claim: str) -> FailureClass:
    """The failure class of one contraindicated finding, from its code and AR4SI claim: a code about collateral,
    a CRL or the TCB, or the hardware claim: PLATFORM; else instance identity (crypto, chain, revocation,
    freshness): EVIDENCE; a reference-value code or the executables claim: MEASUREMENT; configuration: POLICY;
    any other claim: EVIDENCE (the plain contraindicated code). Never raises."""
    if claim == "hardware" or any(mark in code for mark in _PLATFORM_MARKS):
        return FailureClass.PLATFORM
    if claim == "instance-identity":
        return FailureClass.EVIDENCE
    if claim == "executables" or code.startswith(_MEASUREMENT_PREFIXES):
        return FailureClass.MEASUREMENT
    if claim == "configuration":
        return FailureClass.POLICY
    return FailureClass.EVIDENCE


def failure_class(status: str, findings: Iterable[Any]) -> FailureClass | None:
    """The class of a contraindicated (or `none`) result: the worst class among its contraindicated findings
    (`finding_class` of each finding's `code` and `claim`; `tier`, else `value` >= 96, says contraindicated), EVIDENCE
    when none says why; None for an affirming or warning result. Findings of other shapes are skipped; never
    raises."""
    if status in EXIT_BY_STATUS:
        return None
    order = list(FailureClass)
    worst = len(order)
    for finding in findings:
        if not isinstance(finding, Mapping) or not _contraindicated(finding):
            continue
        found = finding_class(str(finding.get("code", "")), str(finding.get("claim", "")))
        worst = min(worst, order.index(found))
    return order[worst] if worst < len(order) else FailureClass.EVIDENCE


def _contraindicated(finding: Mapping[str, Any]) -> bool:
    tier = finding.get("tier")
    if isinstance(tier, str):
        return tier == "contraindicated"
    value = finding.get("value")
    return isinstance(value, int) and not isinstance(value, bool) and value >= 96


def exit_code(status: str, findings: Iterable[Any], *, detailed: bool) -> int:
    """The exit code of a result of EAR `status`: 0 affirming, 1 warning, else 2, or with `detailed` the code of
    its `failure_class` (2, 4, 5 or 6). Never raises."""
    if status in EXIT_BY_STATUS:
        return EXIT_BY_STATUS[status]
    kind = failure_class(status, findings) if detailed else None
    return EXIT_BY_CLASS[kind] if kind is not None else EXIT_CONTRAINDICATED


def add_detailed_exitcode_flag(parser: argparse.ArgumentParser) -> None:
    """`--detailed-exitcode` (dest `detailed_exitcode`): split exit code 2 by failure class (`exit_code`)."""
    parser.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="split exit 2 by why: 2 evidence (malformed, signature, chain, freshness), 4 platform (TCB or its "
        "collateral), 5 policy, 6 unapproved measurement",
    )


class UsageError(Exception):
    """Bad command-line input: exit 64."""


def rfc3339(text: str) -> dt.datetime:
    try:
        return parse_rfc3339(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def hex_bytes(text: str) -> bytes:
    value = text.strip().lower()
    value = value[2:] if value.startswith("0x") else value
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not hex: {text[:40]!r}") from None


def add_db_flag(parser: argparse.ArgumentParser) -> None:
    """`--db URL` (the `database_url` setting, declared in verifier/settings/table.py)."""
    add_flags(parser, ["database_url"])


def settings_for(args: argparse.Namespace, base: Settings) -> Settings:
    """`base` with `--db` when it was given."""
    return apply_flags(base, args, ["database_url"])


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


def eprint(*parts: object) -> None:
    print(*parts, file=sys.stderr)
