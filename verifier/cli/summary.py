"""The human summary of an appraisal result, shared by `verifier verify` and `verifier result verify|show`: aligned
`name  value` lines (status, TEE, policy, workload, trust vector...) and the findings as a table with what was
expected beside what was found. Works on JSON shapes (the `--json` object of `verify`, an EAR submodule), so it
reads tokens of other builds too: what is missing shows as `-`."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from .output import format_fields, format_table

FINDING_COLUMNS = ("tier", "code", "claim", "expected", "actual", "message")


def workload_text(workload: Any) -> str | None:
    """`name version (policy P)` of a matched-workload object, its text for any other value, None for none.
    Never raises."""
    if workload is None or workload == {}:
        return None
    if not isinstance(workload, Mapping):
        return str(workload)
    name = " ".join(str(workload[k]) for k in ("name", "version") if workload.get(k) not in (None, ""))
    policy = workload.get("policy")
    return (name or str(workload.get("id", "?"))) + (f" (policy {policy})" if policy else "")


def vector_text(vector: Any) -> str | None:
    """An AR4SI trust vector as `claim value, ...` (None when empty). Never raises."""
    if not isinstance(vector, Mapping) or not vector:
        return None
    return ", ".join(f"{claim} {value}" for claim, value in vector.items())


def finding_rows(findings: Any) -> list[dict[str, Any]]:
    """The findings that are JSON objects, with `-` for what an object lacks (format_table does that). Never
    raises."""
    return [dict(f) for f in findings if isinstance(f, Mapping)] if isinstance(findings, list | tuple) else []


def format_summary(fields: Sequence[tuple[str, Any]], findings: Any) -> str:
    """The summary text: the fields (with `findings none` when there are none), then a blank line and the findings
    table. Never raises."""
    rows = finding_rows(findings)
    if not rows:
        return format_fields([*fields, ("findings", "none")])
    return format_fields(fields) + "\n" + format_table(rows, FINDING_COLUMNS)


def print_summary(fields: Sequence[tuple[str, Any]], findings: Any, out: TextIO | None = None) -> None:
    """Write `format_summary(fields, findings)` to `out` (stdout by default)."""
    (out or sys.stdout).write(format_summary(fields, findings))
