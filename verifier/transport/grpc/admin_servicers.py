"""verifier.v1.PolicyService, AdminTokenService and AuditService (admin.proto): what `verifier policy`, `tokens` and
`audit` do on the database, for `--server`. Thin: convert, call the store in a worker thread of the admin lane,
convert back; errors are `VerifierError`s mapped to gRPC status by `interceptors.ErrorInterceptor`.

`interceptors.AdminAuthInterceptor` guards every method (roles in `admin_auth.METHOD_ROLES`) and sets the principal
whose actor string (`current_actor()`, read on the event loop before the work is handed to a thread) the stores
record in the audit log. A created token's text is in the response only: never logged, never audited."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc

from ...appraisal.policy import PolicySet, policy_sha256, policy_to_json
from ...auth import current_actor
from ...bootstrap import Components
from ...errors import RequestError
from ...results.signed_note import parse_verifier
from ...storage import audit
from ...storage.admin_tokens import SqlAdminTokens, TokenInfo
from ...storage.policies import SqlPolicies, StoredPolicy
from ...v1 import admin_pb2 as apb
from ...v1 import admin_pb2_grpc as admin_grpc
from . import convert
from .lanes import Runner

Context = grpc.aio.ServicerContext[Any, Any]
MAX_PAGE_ROWS = 1000
MAX_PAGE_BYTES = 1024 * 1024
DEFAULT_LIMIT = 100
MAX_SIZES = 10_000
MAX_KEYS = 64
MAX_KEY_CHARS = 1000
SOURCES: dict[str, apb.PolicySource] = {
    "built-in": apb.POLICY_SOURCE_BUILT_IN,
    "file": apb.POLICY_SOURCE_FILE,
    "database": apb.POLICY_SOURCE_DATABASE,
}
ROLES: dict[apb.AdminRole, str] = {apb.ADMIN_ROLE_ADMIN: "admin", apb.ADMIN_ROLE_AUDITOR: "auditor"}


def _policy(name: str, body: dict[str, Any], digest: str, source: str, stored: StoredPolicy | None) -> apb.Policy:
    msg = apb.Policy(name=name, source=SOURCES[source], sha256=digest, policy_json=json.dumps(body))
    if stored is not None:
        msg.updated_at.CopyFrom(convert.timestamp(stored.updated_at))
        msg.updated_by = stored.updated_by
    return msg


class PolicyServicer(admin_grpc.PolicyServiceServicer):
    """The server's effective policies (built-ins, its --policy-file, the database through the appraisals' cache)."""

    def __init__(self, components: Components, *, run: Runner = asyncio.to_thread) -> None:
        self._policies: PolicySet = components.service.policies
        self._stored = SqlPolicies(components.database)
        self._clock = components.service.clock
        self._run = run

    def _list(self) -> list[apb.Policy]:
        stored = {p.name: p for p in self._stored.list()}
        messages = []
        for name in self._policies.names():
            found = self._policies.lookup(name)
            if found is None:
                continue
            policy, source = found
            record = stored.get(name) if source == "database" else None
            messages.append(_policy(name, policy_to_json(policy), policy_sha256(policy), source, record))
        return messages

    def _get(self, name: str) -> apb.Policy:
        found = self._policies.lookup(name)
        if found is None:
            raise RequestError("POLICY_UNKNOWN", f"no appraisal policy named {name!r}")
        policy, source = found
        stored = next((p for p in self._stored.list() if p.name == name), None) if source == "database" else None
        return _policy(name, policy_to_json(policy), policy_sha256(policy), source, stored)

    async def ListPolicies(self, request: apb.ListPoliciesRequest, context: Context) -> apb.ListPoliciesResponse:  # noqa: N802
        return apb.ListPoliciesResponse(policies=await self._run(self._list))

    async def GetPolicy(self, request: apb.GetPolicyRequest, context: Context) -> apb.GetPolicyResponse:  # noqa: N802
        return apb.GetPolicyResponse(policy=await self._run(self._get, request.name))

    async def SetPolicy(self, request: apb.SetPolicyRequest, context: Context) -> apb.SetPolicyResponse:  # noqa: N802
        now, actor = self._clock.now(), current_actor()
        stored = await self._run(self._stored.set, request.name, request.policy_json, now=now, actor=actor)
        body = policy_to_json(stored.policy)
        return apb.SetPolicyResponse(policy=_policy(stored.name, body, stored.sha256, "database", stored))


def token_message(info: TokenInfo) -> apb.AdminToken:
    """The record of one token (never its text)."""
    roles = {name: number for number, name in ROLES.items()}
    msg = apb.AdminToken(
        id=info.id,
        name=info.name,
        role=roles.get(info.role, apb.ADMIN_ROLE_UNSPECIFIED),
        state=apb.ADMIN_TOKEN_STATE_ACTIVE if info.active else apb.ADMIN_TOKEN_STATE_REVOKED,
        created_at=convert.timestamp(info.created_at),
        created_by=info.created_by,
        revoked_by=info.revoked_by or "",
    )
    if info.revoked_at is not None:
        msg.revoked_at.CopyFrom(convert.timestamp(info.revoked_at))
    if info.last_used_at is not None:
        msg.last_used_at.CopyFrom(convert.timestamp(info.last_used_at))
    return msg


class AdminTokenServicer(admin_grpc.AdminTokenServiceServicer):
    """Admin tokens (`verifier tokens`); every method needs the admin role (the interceptor's default)."""

    def __init__(self, components: Components, *, run: Runner = asyncio.to_thread) -> None:
        self._tokens = SqlAdminTokens(components.database)
        self._clock = components.service.clock
        self._run = run

    async def CreateAdminToken(  # noqa: N802
        self, request: apb.CreateAdminTokenRequest, context: Context
    ) -> apb.CreateAdminTokenResponse:
        role = ROLES.get(request.role)
        if role is None:
            raise RequestError("TOKEN_ROLE_UNKNOWN", f"role must be one of {', '.join(ROLES.values())}")
        now, actor = self._clock.now(), current_actor()
        info, token = await self._run(self._tokens.create, request.name, role, now=now, actor=actor)
        return apb.CreateAdminTokenResponse(admin_token=token_message(info), token=token)

    async def ListAdminTokens(  # noqa: N802
        self, request: apb.ListAdminTokensRequest, context: Context
    ) -> apb.ListAdminTokensResponse:
        infos = await self._run(self._tokens.list)
        return apb.ListAdminTokensResponse(admin_tokens=[token_message(i) for i in infos])

    async def RevokeAdminToken(  # noqa: N802
        self, request: apb.RevokeAdminTokenRequest, context: Context
    ) -> apb.RevokeAdminTokenResponse:
        now, actor = self._clock.now(), current_actor()
        info = await self._run(self._tokens.revoke, request.id, now=now, actor=actor)
        return apb.RevokeAdminTokenResponse(admin_token=token_message(info))


def entry_message(entry: audit.AuditEntry) -> apb.AuditEntry:
    """One audit row; its details as JSON in the stored key order."""
    return apb.AuditEntry(
        seq=entry.seq,
        at=convert.timestamp(entry.at),
        actor=entry.actor,
        action=entry.action,
        subject=entry.subject,
        details_json=json.dumps(entry.details),
        prev_hash=entry.prev_hash,
        hash=entry.hash,
    )


def check_message(check: audit.ChainCheck) -> apb.VerifyAuditChainResponse:
    """A `ChainCheck` as the wire answer (every field, so the CLI prints what it prints on the database)."""
    msg = apb.VerifyAuditChainResponse(
        ok=check.ok,
        rows=check.rows,
        reason=check.reason,
        head=check.head,
        good=check.good,
        hashes=dict(check.hashes),
        pruned=check.pruned,
        prune_verified=check.prune_verified,
        prunes=[
            apb.AuditPrune(
                through_seq=p.through,
                head=p.head,
                checkpoint_size=p.checkpoint_size,
                checkpoint_head=p.checkpoint_head,
                checkpoint=p.checkpoint,
                pruned_at=convert.timestamp(p.pruned_at),
                pruned_by=p.pruned_by,
            )
            for p in check.prunes
        ],
    )
    if check.bad_seq is not None:
        msg.bad_seq = check.bad_seq
    return msg


class AuditServicer(admin_grpc.AuditServiceServicer):
    """The audit log, read only (auditor): rows, and the chain recomputed here."""

    def __init__(self, components: Components, *, run: Runner = asyncio.to_thread) -> None:
        self._db = components.database
        self._run = run

    async def ListAuditEntries(  # noqa: N802
        self, request: apb.ListAuditEntriesRequest, context: Context
    ) -> apb.ListAuditEntriesResponse:
        if request.after_seq < 0 or request.limit < 0:
            raise RequestError("AUDIT_LIST_INVALID", "after_seq and limit are not negative")
        fetch = min(request.limit or DEFAULT_LIMIT, MAX_PAGE_ROWS)
        rows = await self._run(
            audit.entries, self._db, after=request.after_seq, limit=fetch, action=request.action or None
        )
        reply, size = apb.ListAuditEntriesResponse(), 0
        for entry in rows:
            msg = entry_message(entry)
            size += msg.ByteSize()
            if reply.entries and size > MAX_PAGE_BYTES:
                break
            reply.entries.append(msg)
        if reply.entries and (len(reply.entries) < len(rows) or len(rows) == fetch):
            reply.next_after_seq = reply.entries[-1].seq  # a full (or size-cut) page: more rows may follow
        return reply

    async def VerifyAuditChain(  # noqa: N802
        self, request: apb.VerifyAuditChainRequest, context: Context
    ) -> apb.VerifyAuditChainResponse:
        if len(request.sizes) > MAX_SIZES or len(request.verifier_keys) > MAX_KEYS:
            raise RequestError("AUDIT_VERIFY_TOO_LARGE", f"at most {MAX_SIZES} sizes and {MAX_KEYS} verifier keys")
        if any(len(key) > MAX_KEY_CHARS for key in request.verifier_keys):
            raise RequestError("AUDIT_VERIFY_TOO_LARGE", f"a verifier key has more than {MAX_KEY_CHARS} characters")
        verifiers = [parse_verifier(key) for key in request.verifier_keys]
        check = await self._run(audit.verify_chain, self._db, at=set(request.sizes), verifiers=verifiers)
        return check_message(check)
