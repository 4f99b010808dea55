"""The port of `verifier audit`: the audit log's rows and its recomputed chain, on the database (`--db`) or through a
server's AuditService (`--server`, auditor role). Checkpoints are compared and signed by the caller either way: the
signing key never leaves the workstation; over `--server` the chain is recomputed by the server, which the caller
trusts for that reading (the signed checkpoints it compares with are its own)."""

from __future__ import annotations

import argparse
import builtins
import datetime as dt
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

import grpc

from ..results.signed_note import NoteVerifier
from ..settings import Settings
from ..storage import audit
from ..storage.engine import Database
from ..v1 import admin_pb2 as apb
from ..v1 import admin_pb2_grpc as admin_grpc
from .admin_port import open_port
from .remote import LONG_CALL_TIMEOUT_SECONDS, call

PAGE_ROWS = 1000  # what the server answers at most per ListAuditEntries call


class AuditPort(Protocol):
    def verify_chain(self, at: set[int], verifiers: Sequence[NoteVerifier]) -> audit.ChainCheck:
        """The chain recomputed (`storage.audit.verify_chain`), with the chain hash at each size in `at`."""
        ...

    def entries(self, *, after: int, limit: int, action: str | None) -> builtins.list[audit.AuditEntry]:
        """Up to `limit` rows after seq `after` in order (only `action` ones when given)."""
        ...


class DatabaseAudit:
    """`AuditPort` on the database."""

    def __init__(self, db: Database, _settings: Settings | None = None) -> None:
        self._db = db

    def verify_chain(self, at: set[int], verifiers: Sequence[NoteVerifier]) -> audit.ChainCheck:
        return audit.verify_chain(self._db, at=at, verifiers=verifiers)

    def entries(self, *, after: int, limit: int, action: str | None) -> builtins.list[audit.AuditEntry]:
        return audit.entries(self._db, after=after, limit=limit, action=action)


def _utc(stamp: object) -> dt.datetime:
    value: dt.datetime = stamp.ToDatetime(tzinfo=dt.UTC)  # type: ignore[attr-defined]
    return value


def entry_of(msg: apb.AuditEntry) -> audit.AuditEntry:
    """The wire row as `storage.audit.AuditEntry`."""
    details = json.loads(msg.details_json) if msg.details_json else {}
    return audit.AuditEntry(msg.seq, _utc(msg.at), msg.actor, msg.action, msg.subject, details, msg.prev_hash, msg.hash)


def check_of(msg: apb.VerifyAuditChainResponse) -> audit.ChainCheck:
    """The wire answer as `storage.audit.ChainCheck`."""
    prunes = tuple(
        audit.PruneRecord(
            p.through_seq, p.head, p.checkpoint_size, p.checkpoint_head, p.checkpoint, _utc(p.pruned_at), p.pruned_by
        )
        for p in msg.prunes
    )
    return audit.ChainCheck(
        ok=msg.ok,
        rows=msg.rows,
        bad_seq=msg.bad_seq if msg.HasField("bad_seq") else None,
        reason=msg.reason,
        head=msg.head,
        good=msg.good,
        hashes=dict(msg.hashes),
        pruned=msg.pruned,
        prunes=prunes,
        prune_verified=msg.prune_verified,
    )


class RemoteAudit:
    """`AuditPort` over verifier.v1.AuditService (rows fetched page by page)."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._stub = admin_grpc.AuditServiceStub(channel)  # type: ignore[no-untyped-call]

    def verify_chain(self, at: set[int], verifiers: Sequence[NoteVerifier]) -> audit.ChainCheck:
        request = apb.VerifyAuditChainRequest(sizes=sorted(at), verifier_keys=[v.encode() for v in verifiers])
        return check_of(call(self._stub.VerifyAuditChain, request, timeout=LONG_CALL_TIMEOUT_SECONDS))

    def entries(self, *, after: int, limit: int, action: str | None) -> builtins.list[audit.AuditEntry]:
        rows: builtins.list[audit.AuditEntry] = []
        while len(rows) < limit:
            request = apb.ListAuditEntriesRequest(
                after_seq=after, limit=min(limit - len(rows), PAGE_ROWS), action=action or ""
            )
            reply = call(self._stub.ListAuditEntries, request)
            rows.extend(entry_of(e) for e in reply.entries[: limit - len(rows)])
            if reply.next_after_seq <= after:  # 0: no more rows (and never a page that does not move on)
                break
            after = reply.next_after_seq
        return rows


@contextmanager
def audit_log(args: argparse.Namespace, base: Settings) -> Iterator[AuditPort]:
    """The `AuditPort` the flags name (what `admin_port.open_port` raises)."""
    local: Callable[[Database, Settings], AuditPort] = DatabaseAudit
    remote: Callable[[grpc.Channel], AuditPort] = RemoteAudit
    with open_port(args, base, local=local, remote=remote) as port:
        yield port
