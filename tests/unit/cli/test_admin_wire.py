"""The admin API's messages carry every field the CLI prints: a store record, an audit row and a chain check survive
the trip server message -> CLI port unchanged (so `--server` prints what `--db` prints), and the servicers refuse
malformed requests with stable codes before touching the database."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from verifier.cli.audit_port import check_of, entry_of
from verifier.cli.tokens_port import token_info
from verifier.errors import RequestError
from verifier.storage import audit
from verifier.storage.admin_tokens import TokenInfo
from verifier.transport.grpc.admin_servicers import (
    AdminTokenServicer,
    AuditServicer,
    check_message,
    entry_message,
    token_message,
)
from verifier.v1 import admin_pb2 as apb

T = dt.datetime(2025, 3, 1, 12, 0, 5, 123456, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "info",
    [
        TokenInfo("id1", "ci", "admin", T, "cli:root"),
        TokenInfo("id2", "dash", "auditor", T, "token:x", revoked_at=T, last_used_at=T, revoked_by="cert:alice"),
    ],
)
def test_token_records_round_trip(info: TokenInfo) -> None:
    assert token_info(token_message(info)) == info


def test_audit_rows_and_chain_checks_round_trip() -> None:
    entry = audit.AuditEntry(7, T, "token:a", "policy.set", "p", {"b": 1, "a": [1, "x", None]}, "0" * 64, "f" * 64)
    back = entry_of(entry_message(entry))
    assert back == entry and list(back.details) == ["b", "a"]  # the stored key order is kept
    prune = audit.PruneRecord(3, "a" * 64, 4, "b" * 64, "note\n", T, "cli:ops")
    for check in (
        audit.ChainCheck(True, 9, head="c" * 64, good=9, hashes={0: audit.GENESIS, 4: "b" * 64}, pruned=3),
        audit.ChainCheck(False, 2, 0, "row 0 is odd", prunes=(prune,), pruned=3, prune_verified=True),
        audit.ChainCheck(False, 5, 5, "row 5 was edited", head="d" * 64, good=4),
    ):
        assert check_of(check_message(check)) == check


class _Clock:
    def now(self) -> dt.datetime:
        return T


class _Components:
    """Just what the servicers read; the database is never reached by the refused requests below."""

    def __init__(self) -> None:
        self.database: Any = None
        self.service: Any = type("S", (), {"clock": _Clock(), "policies": None})()


_REFUSED = [
    ("ListAuditEntries", apb.ListAuditEntriesRequest(limit=-1), "AUDIT_LIST_INVALID"),
    ("ListAuditEntries", apb.ListAuditEntriesRequest(after_seq=-1), "AUDIT_LIST_INVALID"),
    ("VerifyAuditChain", apb.VerifyAuditChainRequest(sizes=range(10_001)), "AUDIT_VERIFY_TOO_LARGE"),
    ("VerifyAuditChain", apb.VerifyAuditChainRequest(verifier_keys=["k"] * 65), "AUDIT_VERIFY_TOO_LARGE"),
    ("VerifyAuditChain", apb.VerifyAuditChainRequest(verifier_keys=["k" * 1001]), "AUDIT_VERIFY_TOO_LARGE"),
    ("VerifyAuditChain", apb.VerifyAuditChainRequest(verifier_keys=["not a key"]), "NOTE_KEY_INVALID"),
    ("CreateAdminToken", apb.CreateAdminTokenRequest(name="x"), "TOKEN_ROLE_UNKNOWN"),
]


@pytest.mark.parametrize(("method", "request_message", "code"), _REFUSED)
def test_malformed_requests_are_refused_with_stable_codes(method: str, request_message: Any, code: str) -> None:
    components: Any = _Components()
    servicer = AdminTokenServicer(components) if method == "CreateAdminToken" else AuditServicer(components)
    with pytest.raises(RequestError) as caught:
        asyncio.run(getattr(servicer, method)(request_message, None))
    assert caught.value.code == code
