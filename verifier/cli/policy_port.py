"""The port of `verifier policy`: the effective named policies, on the database (`--db`, with the local
`--policy-file`) or on a server (`--server`: the server's own built-ins, policy file and database)."""

from __future__ import annotations

import argparse
import builtins
import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Protocol

import grpc

from ..appraisal.policy import PolicySet, policy_sha256, policy_to_json
from ..auth import current_actor
from ..bootstrap import build_policies
from ..clock import SystemClock
from ..errors import RequestError
from ..settings import Settings
from ..storage.engine import Database
from ..storage.policies import SqlPolicies
from ..v1 import admin_pb2 as apb
from ..v1 import admin_pb2_grpc as admin_grpc
from .admin_port import open_port
from .common import UsageError
from .remote import call

SOURCE_NAMES: dict[apb.PolicySource, str] = {
    apb.POLICY_SOURCE_BUILT_IN: "built-in",
    apb.POLICY_SOURCE_FILE: "file",
    apb.POLICY_SOURCE_DATABASE: "database",
}


@dataclass(frozen=True)
class PolicyView:
    """One effective policy: where it comes from, its SHA-256 and JSON body; `updated_*` for database ones."""

    name: str
    source: str
    sha256: str
    body: dict[str, Any]
    updated_at: dt.datetime | None = None
    updated_by: str | None = None


class PolicyPort(Protocol):
    def show(self, name: str) -> PolicyView:
        """The effective policy of `name`. Raises RequestError / ClientError POLICY_UNKNOWN."""
        ...

    def list(self) -> builtins.list[PolicyView]:
        """Every known policy, sorted by name."""
        ...

    def set(self, name: str, text: str) -> PolicyView:
        """Store `text` (one JSON policy) as `name` in the database, audited. Raises POLICY_INVALID and kin."""
        ...


class DatabasePolicies:
    """`PolicyPort` on the database: built-ins, `--policy-file`, then the `policies` table."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self._stored = SqlPolicies(db)
        self._policies: PolicySet = build_policies(settings, db)

    def show(self, name: str) -> PolicyView:
        found = self._policies.lookup(name)
        if found is None:
            raise RequestError("POLICY_UNKNOWN", f"no appraisal policy named {name!r}")
        policy, source = found
        return PolicyView(name, source, policy_sha256(policy), policy_to_json(policy))

    def list(self) -> builtins.list[PolicyView]:
        stored = {p.name: p for p in self._stored.list()}
        views = []
        for name in self._policies.names():
            found = self._policies.lookup(name)
            if found is None:
                continue
            policy, source = found
            view = PolicyView(name, source, policy_sha256(policy), policy_to_json(policy))
            if source == "database" and name in stored:
                view = replace(view, updated_at=stored[name].updated_at, updated_by=stored[name].updated_by)
            views.append(view)
        return views

    def set(self, name: str, text: str) -> PolicyView:
        stored = self._stored.set(name, text, now=SystemClock().now(), actor=current_actor())
        body = policy_to_json(stored.policy)
        return PolicyView(stored.name, "database", stored.sha256, body, stored.updated_at, stored.updated_by)


def _view(msg: apb.Policy) -> PolicyView:
    updated = msg.updated_at.ToDatetime(tzinfo=dt.UTC) if msg.HasField("updated_at") else None
    body = json.loads(msg.policy_json) if msg.policy_json else {}
    source = SOURCE_NAMES.get(msg.source, "unknown")
    return PolicyView(msg.name, source, msg.sha256, body, updated, msg.updated_by or None)


class RemotePolicies:
    """`PolicyPort` over verifier.v1.PolicyService."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._stub = admin_grpc.PolicyServiceStub(channel)  # type: ignore[no-untyped-call]

    def show(self, name: str) -> PolicyView:
        return _view(call(self._stub.GetPolicy, apb.GetPolicyRequest(name=name)).policy)

    def list(self) -> builtins.list[PolicyView]:
        return [_view(p) for p in call(self._stub.ListPolicies, apb.ListPoliciesRequest()).policies]

    def set(self, name: str, text: str) -> PolicyView:
        return _view(call(self._stub.SetPolicy, apb.SetPolicyRequest(name=name, policy_json=text)).policy)


@contextmanager
def policies(args: argparse.Namespace, base: Settings) -> Iterator[PolicyPort]:
    """The `PolicyPort` the flags name. Raises UsageError for `--policy-file` with `--server` (the server's own
    policy file applies there), and what `open_port` raises."""
    if getattr(args, "server", None) is not None and args.policy_file is not None:
        raise UsageError("--policy-file is local: with --server the server's own policies apply")

    def local(db: Database, settings: Settings) -> PolicyPort:
        return DatabasePolicies(db, settings.with_overrides(policy_file=args.policy_file))

    with open_port(args, base, local=local, remote=RemotePolicies) as port:
        yield port
