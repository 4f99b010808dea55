"""Recently appraised evidence, kept (bounded) so that a candidate reference-value change can be re-appraised
against real traffic before it is applied (`verifier.impact`).

Retention: at most `max_rows` rows and nothing older than `max_days`; `prune` enforces both and runs on the first
`keep` of a process and then every `prune_every` keeps. `max_rows == 0` disables keeping.

Per request (issue 11 item 8): an item whose evidence and collateral together exceed `max_bytes` (default
`MAX_KEPT_BYTES`, 64 KiB: Nitro documents <= 32 KiB, SNP reports 1184 bytes plus a few KiB of certificates, TDX
quotes ~5-10 KiB plus collateral) keeps no bytes at all: only its SHA-256 and size are logged. Evidence whose
SHA-256 this process kept in the last `max_days` (up to `max_rows` digests remembered) is not kept again: one
client repeating one piece of evidence cannot fill the table with copies."""

from __future__ import annotations

import base64
import builtins
import datetime as dt
import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Table, delete, func, insert, select

from ..reference_values.kept import KeepItem, KeptEvidence
from .engine import Database
from .tables import KeptEvidenceRow, new_id
from .text import storable, storable_optional

log = logging.getLogger(__name__)

MAX_KEPT_EVIDENCE = 64 * 1024  # Nitro documents <= 32 KiB, SNP reports 1184 bytes, TDX quotes ~ 5-10 KiB
MAX_KEPT_COLLATERAL = 512 * 1024
MAX_KEPT_BYTES = 64 * 1024  # evidence + collateral of one request
DEFAULT_MAX_ROWS = 1000
DEFAULT_MAX_DAYS = 7
_INSERT = insert(cast(Table, KeptEvidenceRow.__table__))


def _to_model(row: KeptEvidenceRow) -> KeptEvidence:
    return KeptEvidence(
        id=row.id,
        received_at=row.received_at,
        tee=row.tee,
        evidence=bytes(row.evidence),
        collateral={name: base64.b64decode(data) for name, data in (row.collateral or {}).items()},
        policy=row.policy,
        status=row.status,
        appraisal_id=row.appraisal_id,
        workload=row.workload,
    )


class SqlKeptEvidence:
    def __init__(
        self,
        db: Database,
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_days: int = DEFAULT_MAX_DAYS,
        prune_every: int = 100,
        max_bytes: int = MAX_KEPT_BYTES,
    ) -> None:
        if max_rows < 0 or max_days < 0 or prune_every < 1 or max_bytes < 0:
            raise ValueError("max_rows, max_days and max_bytes must be >= 0, prune_every >= 1")
        self._db = db
        self.max_bytes = max_bytes
        self._digests: OrderedDict[bytes, tuple[dt.datetime, str]] = OrderedDict()  # evidence SHA-256 -> kept
        self.max_rows = max_rows
        self.max_days = max_days
        self.prune_every = prune_every
        self._keeps = 0
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.max_rows > 0

    def keep(
        self,
        *,
        received_at: dt.datetime,
        tee: str,
        evidence: bytes,
        collateral: Mapping[str, bytes],
        policy: str | None,
        status: str,
        appraisal_id: str,
        workload: str,
    ) -> str | None:
        """Store one item; returns its id (the earlier row's for evidence kept recently), or None when keeping is
        disabled or the item is over the size bounds (module docstring). Raises UnavailableError (DATABASE_*)."""
        item = KeepItem(received_at, tee, evidence, collateral, policy, status, appraisal_id, workload)
        return self.keep_many([item])[0]

    def already_kept(self, evidence: bytes, at: dt.datetime) -> bool:
        """True when keeping is off or this process kept these evidence bytes within `max_days` before `at` (what
        `keep_many` would then do: nothing). Never raises."""
        if not self.enabled:
            return True
        with self._lock:
            seen = self._digests.get(hashlib.sha256(evidence).digest())
        return seen is not None and seen[0] > at - dt.timedelta(days=self.max_days)

    def keep_many(self, items: Sequence[KeepItem]) -> builtins.list[str | None]:
        """`keep` for each of `items`, the new rows in one transaction (one multi-row INSERT): the server's
        background worker hands over every item queued meanwhile. Evidence repeated within `items` is kept once.
        Raises UnavailableError (DATABASE_*); nothing of `items` is then kept."""
        if not self.enabled:
            return [None] * len(items)
        ids: list[str | None] = []
        rows: list[dict[str, Any]] = []
        fresh: dict[bytes, tuple[dt.datetime, str]] = {}
        for item in items:
            digest, row = self._row(item, fresh)
            ids.append(row["id"] if isinstance(row, dict) else row)
            if isinstance(row, dict):
                rows.append(row)
                fresh[digest] = (item.received_at, row["id"])
        if rows:
            with self._db.session() as session:
                session.connection().execute(_INSERT, rows)
        due = False
        with self._lock:
            for digest, seen in fresh.items():
                self._digests[digest] = seen
                self._digests.move_to_end(digest)
            while len(self._digests) > self.max_rows:
                self._digests.popitem(last=False)
            for _ in rows:
                due = due or self._keeps % self.prune_every == 0
                self._keeps += 1
        if due:
            self.prune(items[-1].received_at)
        return ids

    def _row(
        self, item: KeepItem, fresh: Mapping[bytes, tuple[dt.datetime, str]]
    ) -> tuple[bytes, dict[str, Any] | str | None]:
        """(evidence SHA-256, the row to insert), or the id of the row that already keeps this evidence, or None
        when the item is over the size bounds."""
        size = len(item.evidence) + sum(len(v) for v in item.collateral.values())
        digest = hashlib.sha256(item.evidence).digest()
        if (
            size > self.max_bytes
            or len(item.evidence) > MAX_KEPT_EVIDENCE
            or size - len(item.evidence) > MAX_KEPT_COLLATERAL
        ):
            log.info(
                "not keeping the %s evidence of appraisal %s: %d bytes with collateral, over %d (sha256 %s)",
                item.tee,
                item.appraisal_id,
                size,
                self.max_bytes,
                digest.hex(),
            )
            return digest, None
        with self._lock:
            seen = fresh.get(digest) or self._digests.get(digest)
        if seen is not None and seen[0] > item.received_at - dt.timedelta(days=self.max_days):
            return digest, seen[1]
        return digest, {  # text as `text.storable` makes it (the workload description is evidence text)
            "id": new_id(),
            "received_at": item.received_at,
            "tee": storable(item.tee, 16),
            "evidence": bytes(item.evidence),
            "collateral": {storable(n, 200): base64.b64encode(d).decode() for n, d in item.collateral.items()},
            "policy": storable_optional(item.policy, 100),
            "status": storable(item.status, 16),
            "appraisal_id": storable(item.appraisal_id, 36),
            "workload": storable(item.workload, 200),
        }

    def recent(self, limit: int) -> builtins.list[KeptEvidence]:
        """The latest `limit` kept items, newest first."""
        if limit <= 0:
            return []
        query = (
            select(KeptEvidenceRow).order_by(KeptEvidenceRow.received_at.desc(), KeptEvidenceRow.id.desc()).limit(limit)
        )
        with self._db.session() as session:
            return [_to_model(row) for row in session.scalars(query)]

    def count(self) -> int:
        with self._db.session() as session:
            return int(session.scalar(select(func.count()).select_from(KeptEvidenceRow)) or 0)

    def delete_before(self, before: dt.datetime) -> int:
        """Delete every row received before `before` (`verifier db prune`); returns how many went."""
        with self._db.session() as session:
            return int(
                session.connection()
                .execute(delete(KeptEvidenceRow).where(KeptEvidenceRow.received_at < before))
                .rowcount
                or 0
            )

    def prune(self, now: dt.datetime) -> int:
        """Delete rows older than `max_days` and all but the newest `max_rows`; returns how many went."""
        with self._db.session() as session:
            removed = (
                session.connection()
                .execute(
                    delete(KeptEvidenceRow).where(KeptEvidenceRow.received_at < now - dt.timedelta(days=self.max_days))
                )
                .rowcount
                or 0
            )
            cutoff = session.execute(
                select(KeptEvidenceRow.received_at, KeptEvidenceRow.id)
                .order_by(KeptEvidenceRow.received_at.desc(), KeptEvidenceRow.id.desc())
                .offset(self.max_rows)
                .limit(1)
            ).first()
            if cutoff is not None:
                at, row_id = cutoff
                older = (KeptEvidenceRow.received_at < at) | (
                    (KeptEvidenceRow.received_at == at) & (KeptEvidenceRow.id <= row_id)
                )
                removed += session.connection().execute(delete(KeptEvidenceRow).where(older)).rowcount or 0
        return int(removed)
