"""Initial schema: reference_values, challenges, appraisals.

Revision ID: 0001
Revises:
Create Date: 2026-11-26

Self-contained on purpose: migrations must not import the models, which keep changing.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    utc = sa.DateTime(timezone=True)
    op.create_table(
        "reference_values",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("created_at", utc, nullable=False),
        sa.Column("expires_at", utc, nullable=True),
        sa.Column("revoked_at", utc, nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reference_values")),
    )
    op.create_index(op.f("ix_reference_values_kind"), "reference_values", ["kind"])
    op.create_index(op.f("ix_reference_values_created_at"), "reference_values", ["created_at"])

    op.create_table(
        "challenges",
        sa.Column("nonce", sa.LargeBinary(length=64), nullable=False),
        sa.Column("created_at", utc, nullable=False),
        sa.Column("expires_at", utc, nullable=False),
        sa.Column("consumed_at", utc, nullable=True),
        sa.CheckConstraint("length(nonce) BETWEEN 1 AND 64", name=op.f("ck_challenges_nonce_length")),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_challenges")),
    )
    op.create_index(op.f("ix_challenges_expires_at"), "challenges", ["expires_at"])

    op.create_table(
        "appraisals",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("appraised_at", utc, nullable=False),
        sa.Column("tee", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("policy_id", sa.String(length=100), nullable=False),
        sa.Column("evidence_sha256", sa.String(length=64), nullable=False),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("token_id", sa.String(length=64), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appraisals")),
    )
    op.create_index(op.f("ix_appraisals_appraised_at"), "appraisals", ["appraised_at"])
    op.create_index(op.f("ix_appraisals_token_id"), "appraisals", ["token_id"])
    op.create_index(op.f("ix_appraisals_request_id"), "appraisals", ["request_id"])


def downgrade() -> None:
    op.drop_table("appraisals")
    op.drop_table("challenges")
    op.drop_table("reference_values")
