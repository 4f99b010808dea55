"""Named appraisal policies in the database (table `policies`), the top layer of `PolicySet`.

A body is validated with `policy_from_json` (unknown keys refused, tighten-only rules) and stored in its canonical
form (`policy_to_json`) with the SHA-256 of its canonical JSON; each change appends an audit row "policy.set" and
bumps the reference-set version in the same transaction (appraisals read policies from the cache keyed by that
version, `verifier.storage.hot_cache`). Built-in names ("default", "nonce-required") may be redefined only without
loosening them (see `verifier.appraisal.policy.weakenings`)."""

from __future__ import annotations

import builtins
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from ..appraisal.policy import (
    BUILT_IN_NAMES,
    Policy,
    PolicySet,
    policy_from_json,
    policy_sha256,
    policy_to_json,
    weakenings,
)
from ..errors import ConfigError, RequestError
from . import audit
from .engine import Database
from .tables import PolicyRow

MAX_NAME = 100
MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class StoredPolicy:
    name: str
    policy: Policy
    sha256: str
    updated_at: dt.datetime
    updated_by: str


def parse_policy_body(name: str, body_json: str | bytes | dict[str, Any]) -> Policy:
    """Validate one policy body (a JSON object, same schema as a --policy-file entry) for `name`."""
    if not name or len(name) > MAX_NAME or not name.isprintable() or name.strip() != name:
        raise RequestError("POLICY_NAME_INVALID", f"policy names are 1..{MAX_NAME} printable characters")
    if isinstance(body_json, (str, bytes)):
        if len(body_json) > MAX_BODY_BYTES:
            raise RequestError("POLICY_INVALID", f"policy body exceeds {MAX_BODY_BYTES} bytes")
        try:
            body = json.loads(body_json)
        except ValueError as exc:
            raise RequestError("POLICY_INVALID", f"policy body is not JSON: {exc}") from None
    else:
        body = dict(body_json)
    if not isinstance(body, dict):
        raise RequestError("POLICY_INVALID", "a policy body is one JSON object")
    body.setdefault("id", name)
    if body["id"] != name:
        raise RequestError("POLICY_INVALID", f"the body's id {body['id']!r} is not the name {name!r}")
    try:
        policy = policy_from_json(body)
    except ConfigError as exc:
        raise RequestError("POLICY_INVALID", exc.message) from None
    if name in BUILT_IN_NAMES:
        loosened = weakenings(policy, PolicySet().get(name))
        if loosened:
            raise RequestError(
                "POLICY_LOOSENS_BUILT_IN", f"{name!r} is built in and may only be tightened: {'; '.join(loosened)}"
            )
    return policy


class SqlPolicies:
    """`PolicySource` over the `policies` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, name: str) -> Policy | None:
        """The stored policy `name`, or None. A name PostgreSQL text cannot hold (U+0000, lone surrogates) names no
        stored policy (`set` refuses such names), so it is not sent to the database."""
        if not name.isprintable() or len(name) > MAX_NAME:
            return None
        with self._db.session() as session:
            row = session.get(PolicyRow, name)
            body = dict(row.body) if row is not None else None
        if body is None:
            return None
        try:
            return policy_from_json(body)
        except ConfigError as exc:  # edited behind our back: fail closed rather than guess
            raise RequestError("POLICY_INVALID", f"stored policy {name!r} is invalid: {exc.message}") from None

    def set(self, name: str, body_json: str | bytes | dict[str, Any], *, now: dt.datetime, actor: str) -> StoredPolicy:
        policy = parse_policy_body(name, body_json)
        body, digest = policy_to_json(policy), policy_sha256(policy)
        with self._db.session() as session:
            row = session.get(PolicyRow, name, with_for_update=True)
            previous = row.sha256 if row is not None else None
            if row is None:
                row = PolicyRow(name=name, body=body, sha256=digest, updated_at=now, updated_by=actor[:200])
                session.add(row)
            else:
                row.body, row.sha256, row.updated_at, row.updated_by = body, digest, now, actor[:200]
            audit.append(
                session,
                at=now,
                actor=actor,
                action="policy.set",
                subject=name,
                details={"sha256": digest, "previous_sha256": previous, "body": body},
            )
            # A policy decides appraisals as reference values do: the version the hot path's cache is keyed by
            # (`hot_cache`) moves with it, in this transaction.
            audit.bump_reference_set(session, now)
        return StoredPolicy(name, policy, digest, now, actor[:200])

    def list(self) -> builtins.list[StoredPolicy]:
        with self._db.session() as session:
            rows = [
                (r.name, dict(r.body), r.sha256, r.updated_at, r.updated_by)
                for r in session.scalars(select(PolicyRow).order_by(PolicyRow.name))
            ]
        return [StoredPolicy(name, policy_from_json(body), digest, at, by) for name, body, digest, at, by in rows]

    def names(self) -> builtins.list[str]:
        with self._db.session() as session:
            return builtins.list(session.scalars(select(PolicyRow.name).order_by(PolicyRow.name)))
