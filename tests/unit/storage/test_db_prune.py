"""`verifier db prune` (issue 11 item 8): old challenges, kept evidence and collateral cache rows go; appraisals,
the audit log and everything else stay."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from sqlalchemy import func, select

from verifier.cli import main
from verifier.cli.common import UsageError
from verifier.cli.db import prune
from verifier.collateral.base import CollateralItem, CollateralKey
from verifier.storage.challenges import SqlChallengeStore
from verifier.storage.collateral import SqlCollateralCache
from verifier.storage.engine import Database
from verifier.storage.kept_evidence import SqlKeptEvidence
from verifier.storage.tables import Base

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)  # the CLI prunes at the real time: keep windows wide (hours)
DAY = dt.timedelta(days=1)


def counts(db: Database) -> dict[str, int]:
    with db.session() as session:
        return {
            name: int(session.scalar(select(func.count()).select_from(table)) or 0)
            for name, table in Base.metadata.tables.items()
        }


def populate(db: Database) -> None:
    challenges = SqlChallengeStore(db, purge_every=0)
    for age in (30, 10, 0):
        challenges.create(os.urandom(16), now=NOW - age * DAY, ttl=dt.timedelta(hours=6))
    kept = SqlKeptEvidence(db, max_days=365, prune_every=1000)
    for n, age in enumerate((30, 10, 0)):
        kept.keep(
            received_at=NOW - age * DAY,
            tee="snp",
            evidence=b"e%d" % n,
            collateral={},
            policy=None,
            status="affirming",
            appraisal_id=f"a{n}",
            workload="w",
        )
    cache = SqlCollateralCache(db)
    for name, fetched, next_update in (
        ("old", NOW - 30 * DAY, NOW + 300 * DAY),
        ("expired", NOW - DAY, NOW - DAY / 2),
        ("fresh", NOW - DAY, NOW + 300 * DAY),
    ):
        cache.put(CollateralItem(CollateralKey("amd.crl", (("product", name),)), b"x", fetched, next_update, "kds"))


def test_prune_deletes_what_it_says(db: Database) -> None:
    populate(db)
    before = counts(db)
    assert prune(db, now=NOW, before=NOW - 7 * DAY) == {"challenges": 2, "kept_evidence": 2, "collateral_cache": 2}
    after = counts(db)
    assert {name for name in before if before[name] != after[name]} == {
        "challenges",
        "kept_evidence",
        "collateral_cache",
    }
    assert (after["challenges"], after["kept_evidence"], after["collateral_cache"]) == (1, 1, 1)
    assert SqlCollateralCache(db).get("amd.crl?product=fresh") is not None
    with pytest.raises(UsageError):
        prune(db, now=NOW, before=NOW + DAY)


def test_the_command(db: Database, database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    populate(db)
    assert main(["db", "prune", "--db", database_url, "--keep-days", "20"]) == 0
    assert "challenges 1, kept_evidence 1, collateral_cache 2" in capsys.readouterr().out
    cutoff = (NOW + dt.timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert main(["db", "prune", "--db", database_url, "--before", cutoff]) == 64  # the future
    assert main(["db", "prune", "--db", database_url, "--keep-days", "0"]) == 0
    assert "challenges 1, kept_evidence 2, collateral_cache 1" in capsys.readouterr().out  # one not expired yet
