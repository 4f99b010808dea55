"""Workload changes inside the caller's transaction (which holds the reference-value change lock): create or
update a workload (`ensure_in`), store a manifest's inline policies under their reserved names, set the policy of
one version; each audited (subject: the workload name). `verifier.storage.workloads.SqlWorkloads` runs them in its
own transactions, as the reference-value store's add paths do."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ..appraisal.policy import policy_sha256, policy_to_json
from ..errors import RequestError
from ..workloads.manifest_model import inline_policy_name
from . import audit
from .policies import parse_policy_body
from .tables import PolicyRow, WorkloadRow, WorkloadVersionPolicyRow, new_id
from .text import storable
from .workload_records import (
    CREATE,
    POLICY,
    VERSION_POLICY,
    _check_name,
    _check_tee,
    _check_version,
    _row,
    check_policy_name,
)


def _audit(session: Session, row: WorkloadRow, action: str, now: dt.datetime, actor: str, **details: Any) -> None:
    body = {"id": row.id, "tee": row.tee, **{k: v for k, v in details.items() if v is not None}}
    audit.append(session, at=now, actor=actor, action=action, subject=row.name, details=body)


def ensure_in(
    session: Session,
    name: str,
    tee: str,
    *,
    now: dt.datetime,
    actor: str,
    policy: str | None = None,
    version_policies: Mapping[str, str] | None = None,
    inline_policies: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[WorkloadRow, bool]:
    """`SqlWorkloads.ensure` inside the caller's transaction (which must hold the reference-value change lock, e.g.
    a `SqlReferenceValueStore` change): (row, created). Does not bump the reference-set version: the caller's
    change does. Raises like `ensure`."""
    name, tee, policy, actor = _check_name(name), _check_tee(tee), check_policy_name(policy), storable(actor, 200)
    wanted = {_check_version(v): check_policy_name(p) for v, p in (version_policies or {}).items()}
    row = _row(session, name, lock=True)
    created = row is None
    if row is None:
        row = WorkloadRow(
            id=new_id(), name=name, tee=tee, policy=policy, created_at=now, created_by=actor, review=False
        )
        session.add(row)
        session.flush()
        _audit(session, row, CREATE, now, actor, policy=policy)
    elif row.tee != tee:
        raise RequestError("WORKLOAD_TEE_MISMATCH", f"workload {name!r} is a {row.tee} workload, not {tee}")
    for policy_name, body in sorted((inline_policies or {}).items()):
        _store_inline_policy(session, row, policy_name, body, now=now, actor=actor)
    if not created and policy is not None and row.policy != policy:
        previous, row.policy = row.policy, policy
        session.flush()
        _audit(session, row, POLICY, now, actor, policy=policy, previous=previous or "(default)")
    for version, version_policy in sorted(wanted.items()):
        _set_version_policy_in(session, row, version, version_policy, now=now, actor=actor)
    return row, created


def _store_inline_policy(
    session: Session, row: WorkloadRow, name: str, body: Mapping[str, Any], *, now: dt.datetime, actor: str
) -> None:
    """Store a manifest's inline policy under its reserved name (validated like `verifier policy set`; audited
    policy.set when its body changes). RequestError WORKLOAD_POLICY_CONFLICT when the name is not one of this
    workload's (`inline_policy_name`) or another workload references it; POLICY_INVALID / POLICY_NAME_INVALID."""
    if name != inline_policy_name(row.name) and not name.startswith(inline_policy_name(row.name) + "@"):
        raise RequestError(
            "WORKLOAD_POLICY_CONFLICT", f"{name!r} is not an inline policy name of workload {row.name!r}"
        )
    others = session.scalars(
        select(WorkloadRow.name)
        .where(
            WorkloadRow.id != row.id,
            or_(
                WorkloadRow.policy == name,
                WorkloadRow.id.in_(
                    select(WorkloadVersionPolicyRow.workload_id).where(WorkloadVersionPolicyRow.policy == name)
                ),
            ),
        )
        .limit(1)
    ).first()
    if others is not None:
        raise RequestError(
            "WORKLOAD_POLICY_CONFLICT",
            f"the inline policy name {name!r} of workload {row.name!r} is "
            f"already the policy of workload {others!r}; rename one of the workloads",
        )
    policy = parse_policy_body(name, dict(body))
    canonical, digest = policy_to_json(policy), policy_sha256(policy)
    stored = session.get(PolicyRow, name, with_for_update=True)
    if stored is not None and stored.sha256 == digest:
        return
    previous = stored.sha256 if stored is not None else None
    if stored is None:
        session.add(PolicyRow(name=name, body=canonical, sha256=digest, updated_at=now, updated_by=actor))
    else:
        stored.body, stored.sha256, stored.updated_at, stored.updated_by = canonical, digest, now, actor
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action="policy.set",
        subject=name,
        details={"sha256": digest, "previous_sha256": previous, "body": canonical, "workload": row.name},
    )


def _set_version_policy_in(
    session: Session, row: WorkloadRow, version: str, policy: str | None, *, now: dt.datetime, actor: str
) -> bool:
    """Set (None: reset) the policy of one version; False when it already is (no audit row)."""
    current = session.get(WorkloadVersionPolicyRow, (row.id, version), with_for_update=True)
    previous = current.policy if current is not None else None
    if previous == policy:
        return False
    if current is None:
        session.add(
            WorkloadVersionPolicyRow(workload_id=row.id, version=version, policy=policy, set_at=now, set_by=actor)
        )
    else:
        current.policy, current.set_at, current.set_by = policy, now, actor
    session.flush()
    _audit(
        session,
        row,
        VERSION_POLICY,
        now,
        actor,
        version=version,
        policy=policy or f"(the workload's: {row.policy or '(default)'})",
        previous=previous or "(the workload's)",
    )
    return True
