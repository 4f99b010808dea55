"""Issue 11 item 8: the server prunes by itself. A retention pass every `retention_interval_s` deletes appraisals
past their retention and, with a checkpoint directory and its verifier key configured, the audit rows under the
latest signed checkpoint, recorded so `audit verify` still checks the rest."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.integration.test_grpc_server import running
from tests.unit.storage.test_retention import ORIGIN, note, record_appraisals
from verifier.bootstrap import build
from verifier.clock import FixedClock
from verifier.errors import ConfigError
from verifier.results.signed_note import generate_signer
from verifier.settings import Settings
from verifier.storage import audit
from verifier.storage.engine import Database
from verifier.storage.tables import AppraisalRow
from verifier.transport.grpc.server import VerifierServer

NOW = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)


def _appraisals(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(AppraisalRow)) or 0)


def test_the_server_prunes_appraisals_and_the_audit_log_on_its_own(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    signer = generate_signer(ORIGIN)
    record_appraisals(db, [200, 120, 100, 3, 0], NOW)  # audit rows 1..5
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    (checkpoints / "000000000004.checkpoint").write_text(note(db, signer, 4))
    key = tmp_path / "audit.vkey"
    key.write_text(signer.verifier.encode() + "\n")
    settings = Settings(
        database_url=database_url,
        development=True,
        listen="127.0.0.1:0",
        http_listen="off",
        retention_interval_s=1,
        retention_appraisal_days=90,
        retention_audit_days=30,
        audit_checkpoint_dir=checkpoints,
        audit_checkpoint_keys=(key,),
    )
    components = build(settings, clock=FixedClock(NOW))

    async def scenario() -> None:
        async with running(components):
            deadline = time.monotonic() + 20
            while _appraisals(db) > 2 or audit.verify_chain(db).pruned < 3:
                assert time.monotonic() < deadline, "no retention pass within 20 s"
                await asyncio.sleep(0.2)

    try:
        asyncio.run(scenario())
    finally:
        components.close()
    assert _appraisals(db) == 2  # 3 and 0 days old
    check = audit.verify_chain(db, verifiers=[signer.verifier])
    assert check.ok and check.pruned == 3  # row 4 is 3 days old: kept, though the checkpoint covers it


def test_a_checkpoint_directory_without_keys_is_refused(database_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=database_url, development=True, audit_checkpoint_dir=tmp_path)
    components = build(settings)
    try:
        with pytest.raises(ConfigError) as refused:
            VerifierServer(dataclasses.replace(components, settings=settings))
        assert refused.value.code == "AUDIT_CHECKPOINT_CONFIG"
    finally:
        components.close()
