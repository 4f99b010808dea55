"""Workload records as stored (`workloads`, `workload_version_states`, `workload_version_policies`; migrations
0005 and 0006): the action names, the record types, the checks of names, TEEs, policy names, versions and reasons,
and the reads that turn rows into `WorkloadRecord`s (used by `verifier.storage.workloads` and its changes in
`verifier.storage.workload_changes`)."""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import NotFoundError, RequestError
from ..reference_values.kinds import known_tees
from ..reference_values.model import ReferenceValue
from ..workloads.model import WorkloadMeta
from .reference_values import MAX_LABEL, MAX_REASON, MAX_VERSION
from .tables import WorkloadRow, WorkloadVersionPolicyRow, WorkloadVersionStateRow
from .text import storable

MAX_POLICY = 100  # PolicyRow.name
CREATE, POLICY, VERSION_POLICY, REVOKE, REVOKE_VERSION, CONFIRM = (
    "workload.create",
    "workload.policy",
    "workload.version.policy",
    "workload.revoke",
    "workload.version.revoke",
    "workload.confirm",
)
ACTIONS = (CREATE, POLICY, VERSION_POLICY, REVOKE, REVOKE_VERSION, CONFIRM)


@dataclass(frozen=True)
class VersionRevocation:
    version: str
    revoked_at: dt.datetime
    revoked_by: str
    reason: str


@dataclass(frozen=True)
class VersionPolicy:
    """The policy set for one version (None: reset to the workload's), who set it when."""

    version: str
    policy: str | None
    set_at: dt.datetime
    set_by: str


@dataclass(frozen=True)
class WorkloadRecord:
    """Everything stored of one workload besides its values (for listings; the service reads `meta`)."""

    meta: WorkloadMeta
    created_at: dt.datetime
    created_by: str
    revoked_by: str | None = None
    revoke_reason: str | None = None
    review_reason: str | None = None
    version_revocations: tuple[VersionRevocation, ...] = ()
    version_policies: tuple[VersionPolicy, ...] = ()


@dataclass(frozen=True)
class StoredVersion:
    """One version of a workload as stored: its rows in every state, and its revocation if any."""

    version: str
    values: tuple[ReferenceValue, ...]
    revocation: VersionRevocation | None = None

    def state(self, at: dt.datetime, workload_revoked: bool = False) -> str:
        """revoked (the workload, the version, or every row's value), active (some row active), pending (some row
        pending), else expired."""
        if workload_revoked or self.revocation is not None:
            return "revoked"
        states = {v.state(at) for v in self.values}
        for state in ("active", "pending", "expired"):
            if state in states:
                return state
        return "revoked"


def tee_of_kind(kind: str) -> str:
    """The TEE of a reference-value kind `<tee>.<claim>`; RequestError WORKLOAD_TEE_UNKNOWN otherwise."""
    tee = kind.split(".", 1)[0]
    tees = known_tees()
    if "." not in kind or tee not in tees:
        raise RequestError("WORKLOAD_TEE_UNKNOWN", f"{kind!r} is not a kind of a known TEE ({', '.join(tees)})")
    return tee


def _check_name(name: str) -> str:
    name = storable(name)
    if not name:
        raise RequestError("WORKLOAD_NAME_INVALID", "a workload needs a name")
    if len(name) > MAX_LABEL:
        raise RequestError("WORKLOAD_NAME_INVALID", f"a workload name has at most {MAX_LABEL} characters")
    return name


def _check_tee(tee: str) -> str:
    if tee not in known_tees():
        raise RequestError("WORKLOAD_TEE_UNKNOWN", f"tee must be one of {', '.join(known_tees())}")
    return tee


def check_policy_name(policy: str | None) -> str | None:
    """Only the form; whether the name exists is the caller's check against its PolicySet (POLICY_UNKNOWN)."""
    if policy is None:
        return None
    policy = storable(policy)
    if not 0 < len(policy) <= MAX_POLICY or policy.strip() != policy:
        raise RequestError("WORKLOAD_POLICY_INVALID", f"a policy name has 1..{MAX_POLICY} characters, no blanks around")
    return policy


def _check_version(version: str) -> str:
    version = storable(version)
    if len(version) > MAX_VERSION or version.strip() != version:
        raise RequestError(
            "REFERENCE_VERSION_INVALID", f"version must be 0..{MAX_VERSION} characters, no blanks around"
        )
    return version


def _check_reason(reason: str) -> str:
    reason = storable(reason.strip())
    if not reason:
        raise RequestError("REVOKE_REASON_REQUIRED", "a revocation needs a reason")
    if len(reason) > MAX_REASON:
        raise RequestError("REVOKE_REASON_TOO_LONG", f"the reason has more than {MAX_REASON} characters")
    return reason


def _meta(row: WorkloadRow, revoked_versions: Iterable[str], policies: Iterable[VersionPolicy] = ()) -> WorkloadMeta:
    return WorkloadMeta(
        name=row.name,
        tee=row.tee,
        id=row.id,
        policy=row.policy,
        revoked_at=row.revoked_at,
        revoked_versions=frozenset(revoked_versions),
        review=bool(row.review),
        version_policies={p.version: p.policy for p in policies if p.policy is not None},
    )


def _version_policies(session: Session, ids: Sequence[str]) -> dict[str, builtins.list[VersionPolicy]]:
    out: dict[str, builtins.list[VersionPolicy]] = {}
    if not ids:
        return out
    query = (
        select(WorkloadVersionPolicyRow)
        .where(WorkloadVersionPolicyRow.workload_id.in_(builtins.list(ids)))
        .order_by(WorkloadVersionPolicyRow.version)
    )
    for r in session.scalars(query):
        out.setdefault(r.workload_id, []).append(VersionPolicy(r.version, r.policy, r.set_at, r.set_by))
    return out


def _revocations(session: Session, ids: Sequence[str]) -> dict[str, builtins.list[VersionRevocation]]:
    out: dict[str, builtins.list[VersionRevocation]] = {}
    if not ids:
        return out
    query = (
        select(WorkloadVersionStateRow)
        .where(WorkloadVersionStateRow.workload_id.in_(builtins.list(ids)))
        .order_by(WorkloadVersionStateRow.revoked_at, WorkloadVersionStateRow.version)
    )
    for r in session.scalars(query):
        out.setdefault(r.workload_id, []).append(
            VersionRevocation(r.version, r.revoked_at, r.revoked_by, r.revoke_reason)
        )
    return out


def _records(session: Session, rows: Sequence[WorkloadRow]) -> builtins.list[WorkloadRecord]:
    revoked = _revocations(session, [r.id for r in rows])
    policies = _version_policies(session, [r.id for r in rows])
    return [
        WorkloadRecord(
            meta=_meta(r, (v.version for v in revoked.get(r.id, [])), policies.get(r.id, [])),
            created_at=r.created_at,
            created_by=r.created_by,
            revoked_by=r.revoked_by,
            revoke_reason=r.revoke_reason,
            review_reason=r.review_reason,
            version_revocations=tuple(revoked.get(r.id, [])),
            version_policies=tuple(policies.get(r.id, [])),
        )
        for r in rows
    ]


def _row(session: Session, name: str, *, lock: bool = False) -> WorkloadRow | None:
    query = select(WorkloadRow).where(WorkloadRow.name == storable(name))
    if lock:
        query = query.with_for_update()
    return session.scalars(query).first()


def _existing(session: Session, name: str) -> WorkloadRow:
    row = _row(session, name, lock=True)
    if row is None:
        raise NotFoundError("WORKLOAD_NOT_FOUND", f"no workload named {name!r}")
    return row
