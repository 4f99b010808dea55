"""Collateral cache: vendor collateral (AMD KDS VCEKs, cert chains, CRLs) shared by replicas.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

Self-contained on purpose: migrations must not import the models, which keep changing.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    utc = sa.DateTime(timezone=True)
    op.create_table(
        "collateral_cache",
        sa.Column("cache_id", sa.String(length=512), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("fetched_at", utc, nullable=False),
        sa.Column("next_update", utc, nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("cache_id", name=op.f("pk_collateral_cache")),
    )


def downgrade() -> None:
    op.drop_table("collateral_cache")
