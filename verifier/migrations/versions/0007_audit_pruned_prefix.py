"""Audit log retention: `audit_prune`, one row per prune of the audit log's oldest rows (issue 11 item 8).

Rows 1..`through_seq` of `audit_log` were deleted under the signed checkpoint `checkpoint` (the C2SP signed note
as given, of size `checkpoint_size` >= `through_seq` and head `checkpoint_head`); `head` is the chain hash of row
`through_seq`, which the first remaining row chains from. `verifier audit verify` starts the chain there
(`verifier.storage.retention`, `verifier.storage.audit.verify_chain`). No data step: nothing was ever pruned
before. Downgrade drops the table; it refuses while a prune is recorded, since the log would then look truncated
at its start.

Revision ID: 0007
Revises: 0006
Create Date: 2027-02-01

Self-contained on purpose: migrations must not import the models, which keep changing.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_prune",
        sa.Column("through_seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("head", sa.String(length=64), nullable=False),
        sa.Column("checkpoint_size", sa.Integer(), nullable=False),
        sa.Column("checkpoint_head", sa.String(length=64), nullable=False),
        sa.Column("checkpoint", sa.Text(), nullable=False),
        sa.Column("pruned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pruned_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("through_seq", name=op.f("pk_audit_prune")),
    )


def downgrade() -> None:
    pruned = op.get_bind().execute(sa.text("SELECT count(*) FROM audit_prune")).scalar()
    if pruned:
        raise RuntimeError(
            "audit_prune holds recorded prunes of the audit log: without them its chain no longer verifies; "
            "not downgrading below 0007"
        )
    op.drop_table("audit_prune")
