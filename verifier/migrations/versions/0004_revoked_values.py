"""Revocation is per value: `revoked_values`, one row per revocation of a (kind, value), open until an explicit
re-approval (`verifier refs reapprove`).

Upgrade also brings existing data under that rule, in plain SQL (so it works offline too):
- every (kind, value) that has a revoked row gets one open revocation, taken from its earliest revoked row (the
  revocation's id is that row's id);
- every other row of such a value that was live at that instant (not revoked, not expired by then) is revoked at
  the same instant, `revoked_by` = "migration 0004" and a reason naming the row that carried the revocation. These
  rows were still matching although their value had been revoked; re-approve them explicitly if that was intended.
  No audit rows are written for them (the audit chain is written by the application only).
Downgrade drops the table; the row revocations made by the upgrade stay.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-10

Self-contained on purpose: migrations must not import the models, which keep changing.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MIGRATION_ACTOR = "migration 0004"


def upgrade() -> None:
    utc = sa.DateTime(timezone=True)
    revoked = op.create_table(
        "revoked_values",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("ref_id", sa.String(length=36), nullable=False),
        sa.Column("revoked_at", utc, nullable=False),
        sa.Column("revoked_by", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("reapproved_at", utc, nullable=True),
        sa.Column("reapproved_by", sa.String(length=200), nullable=True),
        sa.Column("reapprove_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_revoked_values")),
    )
    op.create_index(op.f("ix_revoked_values_kind"), "revoked_values", ["kind"])

    refs = sa.table(
        "reference_values",
        sa.column("id", sa.String()),
        sa.column("kind", sa.String()),
        sa.column("value", sa.LargeBinary()),
        sa.column("expires_at", utc),
        sa.column("revoked_at", utc),
        sa.column("revoke_reason", sa.Text()),
        sa.column("revoked_by", sa.String()),
    )
    row = refs.alias("r")
    earlier = refs.alias("e")
    first_revoked = sa.select(
        row.c.id,
        row.c.kind,
        row.c.value,
        row.c.id.label("ref_id"),
        row.c.revoked_at,
        sa.func.coalesce(row.c.revoked_by, ""),
        sa.func.coalesce(row.c.revoke_reason, ""),
    ).where(
        row.c.revoked_at.is_not(None),
        ~sa.exists().where(
            earlier.c.kind == row.c.kind,
            earlier.c.value == row.c.value,
            earlier.c.revoked_at.is_not(None),
            sa.or_(
                earlier.c.revoked_at < row.c.revoked_at,
                sa.and_(earlier.c.revoked_at == row.c.revoked_at, earlier.c.id < row.c.id),
            ),
        ),
    )
    op.execute(
        revoked.insert().from_select(
            ["id", "kind", "value", "ref_id", "revoked_at", "revoked_by", "reason"], first_revoked
        )
    )

    def of_this_value() -> sa.ColumnElement[bool]:
        return sa.and_(revoked.c.kind == refs.c.kind, revoked.c.value == refs.c.value)

    op.execute(
        refs.update()
        .where(
            refs.c.revoked_at.is_(None),
            sa.exists().where(
                of_this_value(), sa.or_(refs.c.expires_at.is_(None), refs.c.expires_at > revoked.c.revoked_at)
            ),
        )
        .values(
            revoked_at=sa.select(revoked.c.revoked_at).where(of_this_value()).scalar_subquery(),
            revoked_by=MIGRATION_ACTOR,
            revoke_reason=sa.select(
                sa.literal("value revoked with ", sa.Text())
                + revoked.c.ref_id
                + sa.literal(": ", sa.Text())
                + revoked.c.reason
            )
            .where(of_this_value())
            .scalar_subquery(),
        )
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_revoked_values_kind"), table_name="revoked_values")
    op.drop_table("revoked_values")
