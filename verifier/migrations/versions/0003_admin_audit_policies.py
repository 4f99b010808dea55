"""Reference-value lifecycle columns, reference-set version, admin tokens, hash-chained audit log, kept evidence
and named policies.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

Self-contained on purpose: migrations must not import the models, which keep changing.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    utc = sa.DateTime(timezone=True)
    with op.batch_alter_table("reference_values") as batch:
        batch.add_column(sa.Column("version", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("valid_from", utc, nullable=True))
        batch.add_column(sa.Column("created_by", sa.String(length=200), nullable=False, server_default=""))
        batch.add_column(sa.Column("revoked_by", sa.String(length=200), nullable=True))
    op.create_table(
        "reference_set",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", utc, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reference_set")),
    )
    op.create_table(
        "admin_tokens",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", utc, nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("revoked_at", utc, nullable=True),
        sa.Column("revoked_by", sa.String(length=200), nullable=True),
        sa.Column("last_used_at", utc, nullable=True),
        sa.CheckConstraint("role IN ('admin', 'auditor')", name=op.f("ck_admin_tokens_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_tokens")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_admin_tokens_token_sha256")),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", utc, nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_log_hash")),
    )
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"])
    op.create_index(op.f("ix_audit_log_action"), "audit_log", ["action"])
    op.create_table(
        "kept_evidence",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("received_at", utc, nullable=False),
        sa.Column("tee", sa.String(length=16), nullable=False),
        sa.Column("evidence", sa.LargeBinary(), nullable=False),
        sa.Column("collateral", sa.JSON(), nullable=False),
        sa.Column("policy", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("appraisal_id", sa.String(length=36), nullable=False),
        sa.Column("workload", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kept_evidence")),
    )
    op.create_index(op.f("ix_kept_evidence_received_at"), "kept_evidence", ["received_at"])
    op.create_index(op.f("ix_kept_evidence_appraisal_id"), "kept_evidence", ["appraisal_id"])
    op.create_table(
        "policies",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("updated_at", utc, nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_policies")),
    )


def downgrade() -> None:
    op.drop_table("policies")
    op.drop_index(op.f("ix_kept_evidence_appraisal_id"), table_name="kept_evidence")
    op.drop_index(op.f("ix_kept_evidence_received_at"), table_name="kept_evidence")
    op.drop_table("kept_evidence")
    op.drop_index(op.f("ix_audit_log_action"), table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_at"), table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("admin_tokens")
    op.drop_table("reference_set")
    with op.batch_alter_table("reference_values") as batch:
        batch.drop_column("revoked_by")
        batch.drop_column("created_by")
        batch.drop_column("valid_from")
        batch.drop_column("version")
