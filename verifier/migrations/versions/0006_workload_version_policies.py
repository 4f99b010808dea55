"""Workload version policies: `workload_version_policies`, the policy one version of a workload is appraised under
(issue 10 item 1: "per version: ... the policy it is appraised under").

One row per (workload, version) whose policy was set (`verifier workloads set-policy NAME P --version V`, or
`versions[].policy` in a workload manifest): `policy` is a policy name (NULL: reset to the workload's own policy;
the row is kept with who reset it when). A version without a row (or with NULL) is appraised under the workload's
policy (`workloads.policy`), else the verifier's default. No data step: every version starts under its workload's
policy, as before. Downgrade drops the table (the versions fall back to their workload's policy).

Revision ID: 0006
Revises: 0005
Create Date: 2027-01-20

Self-contained on purpose: migrations must not import the models, which keep changing.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "workload_version_policies",
        sa.Column("workload_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("policy", sa.String(length=100), nullable=True),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("set_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["workload_id"], ["workloads.id"], name=op.f("fk_workload_version_policies_workload_id_workloads")
        ),
        sa.PrimaryKeyConstraint("workload_id", "version", name=op.f("pk_workload_version_policies")),
    )


def downgrade() -> None:
    op.drop_table("workload_version_policies")
