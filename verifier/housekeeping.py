"""Periodic retention (issue 11 item 8): what `verifier db prune` does, run by the server every `interval`.

One pass, bounded per table: expired challenges (at most `CHALLENGE_BATCH`), kept evidence and collateral cache rows
older than `keep_days`, appraisals older than `appraisal_days` and, when a checkpoint directory and its verifier
keys are configured, audit rows older than `audit_days` under the latest signed checkpoint there
(`storage.retention.run_retention`; the pruned prefix is recorded, so `audit verify` still checks the rest). A
pass never raises: a database that is down, a missing checkpoint or a refused prune is a logged warning, and the
next pass tries again. Replicas may all run it: every delete is idempotent and the audit prune takes the append
lock.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import exc as sa_exc

from .errors import ConfigError, UnavailableError
from .results.signed_note import NoteError, NoteVerifier, parse_verifier
from .storage import retention
from .storage.challenges import SqlChallengeStore
from .storage.collateral import SqlCollateralCache
from .storage.engine import Database
from .storage.kept_evidence import SqlKeptEvidence

log = logging.getLogger(__name__)

CHALLENGE_BATCH = 10_000
MAX_KEY_BYTES = 4096


@dataclass(frozen=True)
class RetentionPolicy:
    keep_days: int = 7  # challenges, kept evidence, collateral cache rows
    appraisal_days: int | None = 90  # None: appraisals are kept
    audit_days: int | None = 365  # audit rows, only under a checkpoint (None: kept)
    audit_checkpoints: Path | None = None
    verifier_keys: Sequence[NoteVerifier] = ()


def load_verifier_keys(paths: Sequence[Path]) -> list[NoteVerifier]:
    """The checkpoint verifier keys (one "<name>+<id>+<key>" line per file). Raises ConfigError."""
    keys = []
    for path in paths:
        try:
            with path.open("rb") as f:
                text = f.read(MAX_KEY_BYTES).decode("ascii", errors="replace").strip()
            keys.append(parse_verifier(text))
        except OSError as error:
            raise ConfigError("AUDIT_KEY_UNREADABLE", f"cannot read {path}: {error.strerror}") from None
        except NoteError as error:
            raise ConfigError("AUDIT_KEY_INVALID", f"{path}: {error.message}") from None
    return keys


def run_once(db: Database, policy: RetentionPolicy, now: Callable[[], dt.datetime]) -> dict[str, int]:
    """One retention pass; returns rows deleted per table. Never raises for an unavailable database."""
    at = now()
    before = at - dt.timedelta(days=policy.keep_days)
    counts: dict[str, int] = {}
    steps: list[tuple[str, Callable[[], int]]] = [
        ("challenges", lambda: SqlChallengeStore(db).purge_expired(before, limit=CHALLENGE_BATCH)),
        ("kept_evidence", lambda: SqlKeptEvidence(db).delete_before(before)),
        ("collateral_cache", lambda: SqlCollateralCache(db).delete_old(now=at, before=before)),
    ]
    for table, step in steps:
        try:
            counts[table] = step()
        except (UnavailableError, sa_exc.SQLAlchemyError) as error:
            log.warning("retention of %s skipped: %s", table, getattr(error, "code", type(error).__name__))
    counts.update(
        retention.run_retention(
            db,
            now=at,
            appraisal_days=policy.appraisal_days,
            audit_days=policy.audit_days,
            audit_checkpoints=policy.audit_checkpoints,
            verifier_keys=policy.verifier_keys,
        )
    )
    if any(counts.values()):
        log.info("retention: %s", ", ".join(f"{table} {n}" for table, n in counts.items() if n))
    return counts
