"""The appraisal hot path's reads from memory (issue 13 item 3): reference values, workload metadata and database
policies held in one in-process snapshot keyed by the reference-set version.

Every change that can alter an appraisal bumps the reference-set version in its own transaction (reference values:
add, add_missing, apply, revoke, expire, reapprove; workloads: create/ensure, add values, policy, version policy,
revoke, version revoke, confirm; `verifier policy set`, and a manifest's inline policies). So the version alone
says whether a snapshot is current: `HotCache.refresh` reads it (one indexed single-row SELECT, SQLAlchemy Core)
and loads a new snapshot only when it moved. An appraisal (`VerifierService.appraise`) takes `HotCache.pinned`: one
version read, then every read of the appraisal (its policy, the reference values active and members of its kinds,
the workloads of their labels, the workloads' policies) is answered from that snapshot without touching the
database. A revocation committed by any process or replica is therefore seen by the next appraisal of every
process: no notification channel is needed (PostgreSQL LISTEN/NOTIFY would only save the one read). Readers used
outside an appraisal (admin checks, impact analysis) read the version themselves on each call, so they are never
staler than the database either.

The snapshot holds rows, not answers: time-dependent activity (valid_from, expires_at, revoked_at, a value's
revocation and re-approval) is evaluated at each appraisal's own time `at`, exactly as the SQL of
`SqlReferenceValueStore.active` / `members` does, in the database's order (created_at, id). Rows that expired, and
value revocations re-approved, before the snapshot's `cutoff` (the clock at the load, minus `CUTOFF_MARGIN`) are
not held: they cannot matter at any `at` >= cutoff, and an earlier `at` is read from the database instead.

Bounded: a snapshot holds at most `max_rows` rows in all (reference values, open value revocations, workloads,
revoked versions, version policies; default 20,000, about 2 KB each at the stored text limits, MAX_LABEL /
MAX_REASON / MAX_VERSION, so under 40 MB and typically a few hundred bytes each) and at most `max_policies`
database policies of at most `max_policy_bytes` canonical JSON together (256 and 4 MiB). A reference set beyond
these bounds is not held: every read then goes to the database as before the cache (logged once per version).
One snapshot is current at a time (plus the one an appraisal still pins).

Thread-safe: the current snapshot is an immutable object swapped under a lock (one loader at a time; readers never
wait for a load they do not need); the pin is per thread (an appraisal runs on one thread). A snapshot is also
reloaded after `max_age` seconds even when the version did not move, so a change made behind the verifier's back
(SQL by hand, which bumps nothing) is seen within that time; every change made through the verifier is seen at
once. Built by the composition root (`verifier.bootstrap`), one per process: no module state."""

from __future__ import annotations

import builtins
import datetime as dt
import heapq
import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, or_, select

from ..appraisal.policy import Policy, policy_from_json
from ..clock import Clock
from ..errors import ConfigError
from ..reference_values.model import ReferenceValue
from ..workloads.model import WorkloadMeta
from .engine import Database
from .tables import (
    PolicyRow,
    ReferenceSetRow,
    ReferenceValueRow,
    RevokedValueRow,
    WorkloadRow,
    WorkloadVersionPolicyRow,
    WorkloadVersionStateRow,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_ROWS = 20_000
DEFAULT_MAX_POLICIES = 256
DEFAULT_MAX_POLICY_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_AGE_S = 60.0
CUTOFF_MARGIN = dt.timedelta(minutes=10)
LOAD_TRIES = 3  # loads that saw the version move while reading; the last one is used (labelled with its first read)

MAX_MERGED = 64
_VERSION = select(ReferenceSetRow.version).where(ReferenceSetRow.id == 1)

_Revocation = tuple[dt.datetime, dt.datetime | None]  # revoked_at, reapproved_at


@dataclass(frozen=True)
class Snapshot:
    """The reference set at `version`, or only its version when `held` is False (over the bounds)."""

    version: int
    loaded: float  # time.monotonic() of the load
    cutoff: dt.datetime | None = None  # None: nothing held
    # kind -> (position in the database's (created_at, id) order, row), in that order
    by_kind: Mapping[str, tuple[tuple[int, ReferenceValue], ...]] = field(default_factory=dict)
    revocations: Mapping[tuple[str, bytes], tuple[_Revocation, ...]] = field(default_factory=dict)
    workloads: Mapping[str, WorkloadMeta] = field(default_factory=dict)
    # name -> the stored policy, or the message of POLICY_INVALID for a stored body that no longer validates
    policies: Mapping[str, Policy | str] = field(default_factory=dict)
    # kinds asked for -> their rows merged in database order (the snapshot never changes: computed once per kinds)
    _merged: dict[tuple[str, ...], tuple[ReferenceValue, ...]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def held(self) -> bool:
        return self.cutoff is not None

    def answers(self, at: dt.datetime) -> bool:
        """True when the rows held answer reads at `at` (nothing that can matter at `at` was left out)."""
        return self.cutoff is not None and at >= self.cutoff

    def _rows(self, kinds: Sequence[str]) -> tuple[ReferenceValue, ...]:
        key = tuple(kinds)
        merged = self._merged.get(key)
        if merged is None:
            lists = [self.by_kind[k] for k in dict.fromkeys(kinds) if k in self.by_kind]
            merged = tuple(ref for _, ref in heapq.merge(*lists, key=lambda item: item[0]))
            if len(self._merged) < MAX_MERGED:  # one entry per TEE's kinds in practice
                self._merged[key] = merged
        return merged

    def active(self, kinds: Sequence[str], at: dt.datetime) -> builtins.list[ReferenceValue]:
        """`SqlReferenceValueStore.active` on the rows held: active at `at`, value not revoked at `at`."""
        return [r for r in self._rows(kinds) if r.active_at(at) and not self._value_revoked(r, at)]

    def members(self, kinds: Sequence[str], at: dt.datetime) -> builtins.list[ReferenceValue]:
        """`SqlReferenceValueStore.members` on the rows held: not expired at `at`."""
        return [r for r in self._rows(kinds) if r.expires_at is None or r.expires_at > at]

    def _value_revoked(self, ref: ReferenceValue, at: dt.datetime) -> bool:
        return any(
            revoked <= at and (reapproved is None or reapproved > at)
            for revoked, reapproved in self.revocations.get((ref.kind, ref.value), ())
        )


class _OverBoundError(Exception):
    """The reference set is larger than the cache may hold."""


class HotCache:
    """The current `Snapshot` of one database, refreshed by the reference-set version (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_policies: int = DEFAULT_MAX_POLICIES,
        max_policy_bytes: int = DEFAULT_MAX_POLICY_BYTES,
        max_age_s: float = DEFAULT_MAX_AGE_S,
    ) -> None:
        self._db, self._clock = db, clock
        self._max_rows, self._max_policies, self._max_policy_bytes = max_rows, max_policies, max_policy_bytes
        self._max_age_s = max_age_s
        self._lock = threading.Lock()
        self._current: Snapshot | None = None
        self._pins = threading.local()
        self._warned_version: int | None = None
        self.loads = 0  # snapshots loaded (tests, diagnostics)

    # --- freshness ---------------------------------------------------------------------------------------------

    def read_version(self) -> int:
        """The reference-set version in the database: one indexed single-row SELECT. Raises UnavailableError."""
        with self._db.session() as session:
            return _version(session.connection())

    def refresh(self) -> Snapshot:
        """The current snapshot after one version read: the one held if the version did not move (and it is
        younger than `max_age_s`), else a new one loaded now. Raises UnavailableError (DATABASE_*)."""
        version = self.read_version()
        current = self._current
        if current is not None and current.version == version and not self._old(current):
            return current
        with self._lock:  # one loader; threads that need the same load wait for it, then reuse it
            current = self._current
            if current is not None and current.version == version and not self._old(current):
                return current
            snapshot = self._load(current)
            self._current = snapshot
            return snapshot

    def version(self) -> int:
        """`refresh().version`: the reference-set version, for callers that want only it."""
        return self.refresh().version

    @contextmanager
    def pinned(self, *, fresh: bool = True) -> Iterator[int]:
        """One appraisal's reads: refresh once (one version read) and answer every read of this cache's readers on
        this thread from that snapshot until the block ends; yields its version (the token's). With `fresh` False
        the snapshot held is used without a read when it is younger than `max_age_s`: the caller then has the
        version checked where it commits (`SqlAppraisalStore.run(version=...)`) and evaluates again when it moved.
        Raises UnavailableError (DATABASE_*) on entry."""
        previous = getattr(self._pins, "snapshot", None)
        current = self._current
        snapshot = current if not fresh and current is not None and not self._old(current) else self.refresh()
        self._pins.snapshot = snapshot
        try:
            yield snapshot.version
        finally:
            self._pins.snapshot = previous

    def snapshot(self) -> Snapshot:
        """The snapshot this thread's appraisal pinned, else `refresh()` (one version read)."""
        pinned: Snapshot | None = getattr(self._pins, "snapshot", None)
        return pinned if pinned is not None else self.refresh()

    def _old(self, snapshot: Snapshot) -> bool:
        return time.monotonic() - snapshot.loaded >= self._max_age_s

    # --- loading -----------------------------------------------------------------------------------------------

    def _load(self, current: Snapshot | None) -> Snapshot:
        """Read everything at one version: the version, the rows, the version again; equal reads mean no change
        committed in between (every change bumps it), so the rows are exactly that version's. After LOAD_TRIES
        moving reads the last rows are used labelled with their first read: they are at least that new."""
        cutoff = self._clock.now() - CUTOFF_MARGIN
        snapshot: Snapshot | None = None
        with self._db.session() as session:
            connection = session.connection()
            for _ in range(LOAD_TRIES):
                first = _version(connection)
                if current is not None and current.version == first and not self._old(current):
                    return current
                snapshot = self._read(connection, first, cutoff)
                if _version(connection) == first:
                    break
        assert snapshot is not None
        self.loads += 1
        return snapshot

    def _read(self, connection: Connection, version: int, cutoff: dt.datetime) -> Snapshot:
        loaded = time.monotonic()
        try:
            budget = _Budget(self._max_rows)
            refs = budget.take(
                connection,
                select(ReferenceValueRow.__table__)
                .where(or_(ReferenceValueRow.expires_at.is_(None), ReferenceValueRow.expires_at > cutoff))
                .order_by(ReferenceValueRow.created_at, ReferenceValueRow.id),
            )
            revocations = budget.take(
                connection,
                select(
                    RevokedValueRow.kind,
                    RevokedValueRow.value,
                    RevokedValueRow.revoked_at,
                    RevokedValueRow.reapproved_at,
                )
                .where(or_(RevokedValueRow.reapproved_at.is_(None), RevokedValueRow.reapproved_at > cutoff))
                .order_by(RevokedValueRow.revoked_at, RevokedValueRow.id),
            )
            workloads = budget.take(connection, select(WorkloadRow.__table__).order_by(WorkloadRow.name))
            states = budget.take(connection, select(WorkloadVersionStateRow.__table__))
            version_policies = budget.take(connection, select(WorkloadVersionPolicyRow.__table__))
            policies = self._policies(connection)
        except _OverBoundError as over:
            if self._warned_version != version:
                self._warned_version = version
                log.warning(
                    "reference set version %d is not cached (%s): every appraisal reads it from the database",
                    version,
                    over,
                )
            return Snapshot(version, loaded)
        by_kind: dict[str, builtins.list[tuple[int, ReferenceValue]]] = {}
        for position, row in enumerate(refs):
            ref = _reference(row._mapping)
            by_kind.setdefault(ref.kind, []).append((position, ref))
        revoked: dict[tuple[str, bytes], builtins.list[_Revocation]] = {}
        for row in revocations:
            revoked.setdefault((row.kind, bytes(row.value)), []).append(
                (_utc(row.revoked_at), _utc_or_none(row.reapproved_at))
            )
        return Snapshot(
            version=version,
            loaded=loaded,
            cutoff=cutoff,
            by_kind={k: tuple(v) for k, v in by_kind.items()},
            revocations={k: tuple(v) for k, v in revoked.items()},
            workloads=_workloads(workloads, states, version_policies),
            policies=policies,
        )

    def _policies(self, connection: Connection) -> dict[str, Policy | str]:
        rows = connection.execute(
            select(PolicyRow.name, PolicyRow.body).order_by(PolicyRow.name).limit(self._max_policies + 1)
        ).all()
        if len(rows) > self._max_policies:
            raise _OverBoundError(f"more than {self._max_policies} database policies")
        size = sum(len(json.dumps(dict(r.body))) for r in rows)
        if size > self._max_policy_bytes:
            raise _OverBoundError(f"database policies of more than {self._max_policy_bytes} bytes")
        out: dict[str, Policy | str] = {}
        for row in rows:
            try:
                out[row.name] = policy_from_json(dict(row.body))
            except ConfigError as exc:  # as `SqlPolicies.get`: raised when read, never guessed around
                out[row.name] = f"stored policy {row.name!r} is invalid: {exc.message}"
        return out


class _Budget:
    """Rows left for one snapshot; `take` runs a query for at most the rows left and raises _OverBoundError beyond."""

    def __init__(self, rows: int) -> None:
        self.left = rows

    def take(self, connection: Connection, query: Any) -> Sequence[Any]:
        rows = connection.execute(query.limit(self.left + 1)).all()
        if len(rows) > self.left:
            raise _OverBoundError("more rows than the cache's bound")
        self.left -= len(rows)
        return rows


def _version(connection: Connection) -> int:
    version = connection.execute(_VERSION).scalar()
    return int(version) if version is not None else 0


def _utc(value: dt.datetime) -> dt.datetime:
    """What `UTCDateTime` returns (Core selects of a whole table go through it too; this keeps both shapes)."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _utc_or_none(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else _utc(value)


def _reference(row: Mapping[str, Any]) -> ReferenceValue:
    """`reference_rows._to_model` of a Core row."""
    return ReferenceValue(
        id=row["id"],
        kind=row["kind"],
        value=bytes(row["value"]),
        label=row["label"],
        created_at=_utc(row["created_at"]),
        expires_at=_utc_or_none(row["expires_at"]),
        revoked_at=_utc_or_none(row["revoked_at"]),
        revoke_reason=row["revoke_reason"],
        version=row["version"],
        valid_from=_utc_or_none(row["valid_from"]),
        created_by=row["created_by"] or "",
        revoked_by=row["revoked_by"],
    )


def _workloads(workloads: Iterable[Any], states: Iterable[Any], policies: Iterable[Any]) -> dict[str, WorkloadMeta]:
    """`workload_records._meta` of every workload (Core rows)."""
    revoked: dict[str, set[str]] = {}
    for state in states:
        revoked.setdefault(state.workload_id, set()).add(state.version)
    version_policies: dict[str, dict[str, str]] = {}
    for policy in sorted(policies, key=lambda p: p.version):
        if policy.policy is not None:
            version_policies.setdefault(policy.workload_id, {})[policy.version] = policy.policy
    return {
        w.name: WorkloadMeta(
            name=w.name,
            tee=w.tee,
            id=w.id,
            policy=w.policy,
            revoked_at=_utc_or_none(w.revoked_at),
            revoked_versions=frozenset(revoked.get(w.id, ())),
            review=bool(w.review),
            version_policies=version_policies.get(w.id, {}),
        )
        for w in workloads
    }
