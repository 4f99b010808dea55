"""Reference-value records and the store interface the appraisal reads through."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


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

    def active_at(self, at: dt.datetime) -> bool:
        if self.revoked_at is not None and self.revoked_at <= at:
            return False
        if self.expires_at is not None and self.expires_at <= at:
            return False
        return True

    def state(self, at: dt.datetime) -> str:
        if self.revoked_at is not None and self.revoked_at <= at:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= at:
            return "expired"
        return "active"


class ReferenceValueReader(Protocol):
    def active(self, kinds: Sequence[str], at: dt.datetime) -> list[ReferenceValue]:
        """Reference values of these kinds that are neither revoked nor expired at `at`."""
        ...


class ReferenceValueStore(ReferenceValueReader, Protocol):
    def add(
        self, kind: str, value: bytes, label: str, *, now: dt.datetime, expires_at: dt.datetime | None = None
    ) -> ReferenceValue: ...

    def list(
        self, *, kind: str | None = None, include_inactive: bool = False, at: dt.datetime
    ) -> list[ReferenceValue]: ...

    def revoke(self, ref_id: str, reason: str, *, now: dt.datetime) -> ReferenceValue:
        """Mark revoked (never deleted). Raises NotFoundError for an unknown id."""
        ...
