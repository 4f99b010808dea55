"""SQLAlchemy models. The schema itself is created only by the alembic migrations in verifier/migrations/."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NONCE_MAX_BYTES = 64

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """`DateTime(timezone=True)` that stores UTC, rejects naive values and always returns aware UTC.

    SQLite keeps no offset (it stores the UTC wall time as text) and hands back naive values: they are UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use timezone-aware UTC")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ReferenceValueRow(Base):
    __tablename__ = "reference_values"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)
    label: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    revoke_reason: Mapped[str | None] = mapped_column(Text)
    # Lifecycle (migration 0003): an optional version, the start of validity, and who created / revoked it.
    version: Mapped[str | None] = mapped_column(String(64))
    valid_from: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(200), default="", server_default="")
    revoked_by: Mapped[str | None] = mapped_column(String(200))


class RevokedValueRow(Base):
    """One revocation of a reference value (kind and value), whichever row carried it (`ref_id`). Open while
    `reapproved_at` is NULL: the value is revoked, every add path refuses it and appraisal never matches it, until
    an explicit re-approval closes the revocation (migration 0004)."""

    __tablename__ = "revoked_values"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)
    ref_id: Mapped[str] = mapped_column(String(36))
    revoked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    revoked_by: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    reapproved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    reapproved_by: Mapped[str | None] = mapped_column(String(200))
    reapprove_reason: Mapped[str | None] = mapped_column(Text)


class ChallengeRow(Base):
    __tablename__ = "challenges"
    __table_args__ = (CheckConstraint(f"length(nonce) BETWEEN 1 AND {NONCE_MAX_BYTES}", name="nonce_length"),)

    nonce: Mapped[bytes] = mapped_column(LargeBinary(NONCE_MAX_BYTES), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    consumed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class AppraisalRow(Base):
    __tablename__ = "appraisals"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    appraised_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    tee: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    policy_id: Mapped[str] = mapped_column(String(100))
    evidence_sha256: Mapped[str] = mapped_column(String(64))
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    token_id: Mapped[str | None] = mapped_column(String(64), index=True)
    request_id: Mapped[str | None] = mapped_column(String(64), index=True)


class CollateralCacheRow(Base):
    """Vendor collateral shared by replicas (verifier.collateral.cache); keyed by CollateralKey.cache_id()."""

    __tablename__ = "collateral_cache"

    cache_id: Mapped[str] = mapped_column(String(512), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    fetched_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    next_update: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    source: Mapped[str] = mapped_column(String(32))


class ReferenceSetRow(Base):
    """One row: the version of the reference-value set, bumped in the same transaction as every change to it, so
    a result token can say which set it was appraised against."""

    __tablename__ = "reference_set"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class AdminTokenRow(Base):
    """Admin API bearer tokens: only the SHA-256 of the token is stored; role `admin` (write) or `auditor` (read)."""

    __tablename__ = "admin_tokens"
    __table_args__ = (CheckConstraint("role IN ('admin', 'auditor')", name="role"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(200))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    revoked_by: Mapped[str | None] = mapped_column(String(200))
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class AuditRow(Base):
    """Append-only, hash-chained audit log: hash = SHA-256 over the previous row's hash and this row's content."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditPruneRow(Base):
    """One prune of the audit log (migration 0007): rows 1..`through_seq` were deleted under the signed checkpoint
    `checkpoint` (the signed note, of size `checkpoint_size` >= `through_seq`, head `checkpoint_head`); `head` is
    the chain hash of row `through_seq`, which the first remaining row chains from (`verifier.storage.retention`)."""

    __tablename__ = "audit_prune"

    through_seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    head: Mapped[str] = mapped_column(String(64))
    checkpoint_size: Mapped[int] = mapped_column(Integer)
    checkpoint_head: Mapped[str] = mapped_column(String(64))
    checkpoint: Mapped[str] = mapped_column(Text)
    pruned_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    pruned_by: Mapped[str] = mapped_column(String(200))


class KeptEvidenceRow(Base):
    """Recent evidence kept (bounded retention) so a candidate change can be re-appraised before it is applied."""

    __tablename__ = "kept_evidence"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    tee: Mapped[str] = mapped_column(String(16))
    evidence: Mapped[bytes] = mapped_column(LargeBinary)
    collateral: Mapped[dict[str, str]] = mapped_column(JSON)  # file name -> base64
    policy: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))
    appraisal_id: Mapped[str] = mapped_column(String(36), index=True)
    workload: Mapped[str] = mapped_column(String(200))  # a short description: TEE and main measurement


class PolicyRow(Base):
    """Named appraisal policies (JSON form of verifier.appraisal.policy), with the SHA-256 of their canonical JSON."""

    __tablename__ = "policies"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    sha256: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str] = mapped_column(String(200))


class WorkloadRow(Base):
    """Metadata of one workload (migration 0005); its values are the `reference_values` rows whose `label` is
    `name` (one workload version per `version`). Never deleted: revoked with who and why. `review`: migrated from
    flat values in a shape an admin should confirm (`review_reason` says why; `verifier workloads confirm`)."""

    __tablename__ = "workloads"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    tee: Mapped[str] = mapped_column(String(16))
    policy: Mapped[str | None] = mapped_column(String(100))  # a policy name; NULL = the verifier's default
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(200))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    revoked_by: Mapped[str | None] = mapped_column(String(200))
    revoke_reason: Mapped[str | None] = mapped_column(Text)
    review: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    review_reason: Mapped[str | None] = mapped_column(Text)


class WorkloadVersionStateRow(Base):
    """A revoked version of a workload (migration 0005): "" is the unversioned one. One row per revocation, kept."""

    __tablename__ = "workload_version_states"

    workload_id: Mapped[str] = mapped_column(String(36), ForeignKey("workloads.id"), primary_key=True)
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    revoked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    revoked_by: Mapped[str] = mapped_column(String(200))
    revoke_reason: Mapped[str] = mapped_column(Text)


class WorkloadVersionPolicyRow(Base):
    """The policy one version of a workload is appraised under (migration 0006); `policy` NULL: the workload's own
    (reset, kept with who reset it when). A version without a row is appraised under the workload's policy."""

    __tablename__ = "workload_version_policies"

    workload_id: Mapped[str] = mapped_column(String(36), ForeignKey("workloads.id"), primary_key=True)
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    policy: Mapped[str | None] = mapped_column(String(100))
    set_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    set_by: Mapped[str] = mapped_column(String(200))
