"""Workloads: the `workloads` metadata table (one row per workload name, = `reference_values.label`) and
`workload_version_states` (revoked workload versions).

Upgrade also turns today's flat values into workloads: one `workloads` row per distinct non-empty label, so every
(label, version) group becomes one version of that workload with each of its values a required member (the rows
themselves are not touched). `created_at` is the label's earliest row, `created_by` "migration 0005", no policy
(the verifier's default, as before). The TEE is the prefix of the label's kinds (`nitro.pcr0` -> nitro).

`review` is set, with `review_reason` saying why, for what the flat pool cannot tell apart:
- a (label, version) group with two or more live values (neither revoked nor expired at the upgrade) of one kind:
  they become alternatives (either one matches), which may not be what was meant;
- a label with values of several TEEs: a workload has one TEE, the one with the most rows (ties: alphabetical
  order); the values of the other TEEs no longer match anything until they are moved to a workload of their own.
`verifier workloads list --review` lists them; `verifier workloads confirm NAME` clears the flag (audited).
Labels whose kinds have no known TEE prefix get no row. No audit rows are written (the audit chain is written by
the application only). The data step runs online only (it reads the rows); `--sql` offline mode is refused.
Downgrade drops both tables.

Revision ID: 0005
Revises: 0004
Create Date: 2027-01-15

Self-contained on purpose: migrations must not import the models, which keep changing.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import context, op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MIGRATION_ACTOR = "migration 0005"
TEES = ("nitro", "snp", "tdx")
log = logging.getLogger("alembic.runtime.migration")


def upgrade() -> None:
    if context.is_offline_mode():
        raise RuntimeError("migration 0005 reads the reference values to create the workloads: run it online")
    utc = sa.DateTime(timezone=True)
    workloads = op.create_table(
        "workloads",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("tee", sa.String(length=16), nullable=False),
        sa.Column("policy", sa.String(length=100), nullable=True),
        sa.Column("created_at", utc, nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("revoked_at", utc, nullable=True),
        sa.Column("revoked_by", sa.String(length=200), nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=True),
        sa.Column("review", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("review_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workloads")),
        sa.UniqueConstraint("name", name=op.f("uq_workloads_name")),
    )
    op.create_table(
        "workload_version_states",
        sa.Column("workload_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("revoked_at", utc, nullable=False),
        sa.Column("revoked_by", sa.String(length=200), nullable=False),
        sa.Column("revoke_reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workload_id"], ["workloads.id"], name=op.f("fk_workload_version_states_workload_id_workloads")
        ),
        sa.PrimaryKeyConstraint("workload_id", "version", name=op.f("pk_workload_version_states")),
    )
    rows = _migrated_workloads(op.get_bind(), dt.datetime.now(dt.UTC))
    if rows:
        op.bulk_insert(workloads, rows)
    flagged = [r["name"] for r in rows if r["review"]]
    log.info(
        "0005: %d workloads from reference-value labels, %d for review (`verifier workloads list --review`)",
        len(rows),
        len(flagged),
    )


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _migrated_workloads(bind: sa.Connection, now: dt.datetime) -> list[dict[str, Any]]:
    """One `workloads` row per non-empty label (see the module docstring for `review`)."""
    refs = sa.table(
        "reference_values",
        sa.column("kind", sa.String()),
        sa.column("value", sa.LargeBinary()),
        sa.column("label", sa.String()),
        sa.column("version", sa.String()),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("expires_at", sa.DateTime(timezone=True)),
        sa.column("revoked_at", sa.DateTime(timezone=True)),
    )
    query = sa.select(
        refs.c.label, refs.c.version, refs.c.kind, refs.c.value, refs.c.created_at, refs.c.expires_at, refs.c.revoked_at
    ).where(refs.c.label != "")
    created: dict[str, dt.datetime] = {}
    tees: dict[str, Counter[str]] = {}
    live: dict[tuple[str, str], dict[str, set[bytes]]] = {}
    for label, version, kind, value, created_at, expires_at, revoked_at in bind.execute(query):
        created_at, expires_at, revoked_at = _aware(created_at), _aware(expires_at), _aware(revoked_at)
        assert created_at is not None
        created[label] = min(created.get(label, created_at), created_at)
        tee = kind.split(".", 1)[0]
        tees.setdefault(label, Counter())[tee] += 1
        if (revoked_at is None or revoked_at > now) and (expires_at is None or expires_at > now):
            live.setdefault((label, version or ""), {}).setdefault(kind, set()).add(bytes(value))
    out: list[dict[str, Any]] = []
    for label in sorted(created):
        counts = {tee: n for tee, n in tees[label].items() if tee in TEES}
        if not counts:
            log.warning(
                "0005: label %r has no value of a known TEE (%s): no workload", label, ", ".join(sorted(tees[label]))
            )
            continue
        tee = sorted(counts, key=lambda t: (-counts[t], t))[0]
        reasons = []
        if len(tees[label]) > 1:
            spread = ", ".join(f"{t}: {n}" for t, n in sorted(tees[label].items()))
            reasons.append(
                f"values of several TEEs ({spread}); the workload is {tee}, the others no longer match: "
                "move them to a workload of their own"
            )
        for (name, version), kinds in sorted(live.items()):
            if name != label:
                continue
            several = sorted(kind for kind, values in kinds.items() if len(values) > 1)
            if several:
                shown = f"version {version!r}" if version else "the unversioned values"
                reasons.append(
                    f"{shown} has several live values of {', '.join(several)}: migrated as alternatives "
                    "(either one matches)"
                )
        out.append(
            {
                "id": str(uuid.uuid4()),
                "name": label,
                "tee": tee,
                "policy": None,
                "created_at": created[label],
                "created_by": MIGRATION_ACTOR,
                "revoked_at": None,
                "revoked_by": None,
                "revoke_reason": None,
                "review": bool(reasons),
                "review_reason": "; ".join(reasons) if reasons else None,
            }
        )
    return out


def downgrade() -> None:
    op.drop_table("workload_version_states")
    op.drop_table("workloads")
