"""Reference-value records and the store interface the appraisal reads through.

Lifecycle of one row (rows are never deleted): `pending` until `valid_from`, then `active`, until it is
`expired` (`expires_at` reached, or a manifest dropped it) or `revoked` (explicitly, with who and why). Only an
active row affirms an appraisal.

Revocation is per value, not per row: revoking a row revokes its (kind, value) (a `ValueRevocation`), which revokes
every live row with that kind and value, makes every add path refuse the value (REFERENCE_VALUE_REVOKED) and keeps
appraisal from matching it, until an explicit, audited re-approval (`Reapproval`) closes the revocation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

State = Literal["active", "expired", "revoked", "pending"]
STATES: tuple[State, ...] = ("active", "pending", "expired", "revoked")


@dataclass(frozen=True)
class ReferenceValue:
    id: str
    kind: str
    value: bytes
    label: str
    created_at: dt.datetime
    expires_at: dt.datetime | None = None
    revoked_at: dt.datetime | None = None
    revoke_reason: str | None = None
    version: str | None = None
    valid_from: dt.datetime | None = None
    created_by: str = ""
    revoked_by: str | None = None

    def active_at(self, at: dt.datetime) -> bool:
        return self.state(at) == "active"

    def state(self, at: dt.datetime) -> State:
        """Revoked wins over expired, expired over pending (same order as the SQL in storage)."""
        if self.revoked_at is not None and self.revoked_at <= at:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= at:
            return "expired"
        if self.valid_from is not None and self.valid_from > at:
            return "pending"
        return "active"


@dataclass(frozen=True)
class ValueRevocation:
    """One revocation of a (kind, value), carried by the row `ref_id`; in force from `revoked_at` until
    `reapproved_at` (None: still revoked)."""

    id: str
    kind: str
    value: bytes
    ref_id: str
    revoked_at: dt.datetime
    revoked_by: str
    reason: str
    reapproved_at: dt.datetime | None = None
    reapproved_by: str | None = None
    reapprove_reason: str | None = None

    def in_force_at(self, at: dt.datetime) -> bool:
        return self.revoked_at <= at and (self.reapproved_at is None or self.reapproved_at > at)


@dataclass(frozen=True)
class Reapproval:
    """What `reapprove` did: the revocations it closed and, when a label was given, the row it added."""

    kind: str
    value: bytes
    revocations: tuple[ValueRevocation, ...]
    added: ReferenceValue | None = None


class ReferenceValueReader(Protocol):
    def active(self, kinds: Sequence[str], at: dt.datetime) -> list[ReferenceValue]:
        """Reference values of these kinds that are valid (valid_from reached), not revoked nor expired at `at`,
        and whose (kind, value) has no revocation in force at `at`, whichever row carried it."""
        ...


class ReferenceValueStore(ReferenceValueReader, Protocol):
    def add(
        self,
        kind: str,
        value: bytes,
        label: str,
        *,
        now: dt.datetime,
        expires_at: dt.datetime | None = None,
        valid_from: dt.datetime | None = None,
        version: str | None = None,
        actor: str = "",
    ) -> ReferenceValue: ...

    def list(
        self,
        *,
        kind: str | None = None,
        label: str | None = None,
        state: State | None = None,
        include_inactive: bool = False,
        at: dt.datetime,
    ) -> list[ReferenceValue]: ...

    def revoke(self, ref_id: str, reason: str, *, now: dt.datetime, actor: str = "") -> ReferenceValue:
        """Mark revoked (never deleted), and with it the value in every live row. NotFoundError for an unknown id."""
        ...

    def reapprove(
        self,
        kind: str,
        value: bytes,
        reason: str,
        *,
        now: dt.datetime,
        actor: str = "",
        label: str | None = None,
        expires_at: dt.datetime | None = None,
        valid_from: dt.datetime | None = None,
        version: str | None = None,
    ) -> Reapproval:
        """Close the revocations of a revoked value (and add it under `label` when given)."""
        ...
