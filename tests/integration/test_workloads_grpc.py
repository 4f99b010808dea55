"""verifier.v1.Workloads through the real gRPC server on port 0 (SQLite and PostgreSQL): create, add version, get,
list, revoke version, revoke; unauthenticated calls refused, an auditor reads but cannot write; every service of
the API but Verifier is admin-only, listed or not (fail closed)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from tests.fakes.aws_pki import FakeAwsPki
from tests.integration.test_grpc_server import (  # noqa: F401 (fixtures)
    ADMIN,
    components,
    error_info,
    pki,
    running,
)
from verifier.bootstrap import Components
from verifier.errors import AuthError
from verifier.storage import audit
from verifier.storage.admin_tokens import SqlAdminTokens
from verifier.storage.reference_values import SqlReferenceValueStore
from verifier.transport.grpc.admin_auth import AdminAuthInterceptor
from verifier.v1 import verifier_pb2 as pb
from verifier.v1 import workloads_pb2_grpc as wl_grpc

P0, P1, P2 = "10" * 48, "11" * 48, "12" * 48


async def _refused(call: Awaitable[Any], code: grpc.StatusCode, reason: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    assert error_info(caught.value).reason == reason


def _version(version: str, *values: tuple[str, str]) -> pb.AddWorkloadVersionRequest:
    return pb.AddWorkloadVersionRequest(
        name="my-enclave", version=version, values=[pb.WorkloadValue(kind=k, value=v) for k, v in values]
    )


def test_create_add_get_list_revoke_with_roles(components: Components, pki: FakeAwsPki) -> None:  # noqa: F811
    _, auditor_token = SqlAdminTokens(components.database).create(
        "dashboards", "auditor", now=pki.now, actor="cli:test"
    )
    auditor = (("authorization", f"Bearer {auditor_token}"),)
    invalid, denied = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED

    async def scenario() -> None:
        async with running(components) as r:
            w = wl_grpc.WorkloadsStub(r.channel)
            for start in (
                lambda: w.List(pb.ListWorkloadsRequest()),  # one after the other (a call starts at once)
                lambda: w.Get(pb.GetWorkloadRequest(name="my-enclave")),
                lambda: w.Create(pb.CreateWorkloadRequest(name="x", tee="nitro")),
            ):
                await _refused(start(), grpc.StatusCode.UNAUTHENTICATED, "ADMIN_AUTH_REQUIRED")
            await _refused(
                w.Create(
                    pb.CreateWorkloadRequest(name="x", tee="nitro"), metadata=(("authorization", "Bearer wrong"),)
                ),
                grpc.StatusCode.UNAUTHENTICATED,
                "ADMIN_TOKEN_INVALID",
            )
            for start in (
                lambda: w.Create(pb.CreateWorkloadRequest(name="x", tee="nitro"), metadata=auditor),
                lambda: w.AddVersion(_version("1", ("nitro.pcr0", P0)), metadata=auditor),
                lambda: w.RevokeVersion(
                    pb.RevokeWorkloadVersionRequest(name="x", version="1", reason="r"), metadata=auditor
                ),
                lambda: w.Revoke(pb.RevokeWorkloadRequest(name="x", reason="r"), metadata=auditor),
            ):
                await _refused(start(), denied, "ADMIN_ROLE_INSUFFICIENT")

            await _refused(
                w.Create(pb.CreateWorkloadRequest(name="my-enclave", tee="nitro", policy="no-such"), metadata=ADMIN),
                invalid,
                "POLICY_UNKNOWN",
            )
            await _refused(
                w.Create(pb.CreateWorkloadRequest(name="my-enclave", tee="sgx"), metadata=ADMIN),
                invalid,
                "WORKLOAD_TEE_UNKNOWN",
            )
            made = await w.Create(
                pb.CreateWorkloadRequest(name="my-enclave", tee="nitro", policy="default"), metadata=ADMIN
            )
            assert (made.name, made.tee, made.policy, made.state, made.created_by) == (
                "my-enclave",
                "nitro",
                "default",
                "active",
                f"static:{_static_id()}",
            )
            await _refused(
                w.Create(pb.CreateWorkloadRequest(name="my-enclave", tee="nitro"), metadata=ADMIN),
                invalid,
                "WORKLOAD_EXISTS",
            )

            added = await w.AddVersion(
                _version("1.5", ("nitro.pcr0", P0), ("nitro.pcr1", P1), ("nitro.pcr2", "0x" + P2)), metadata=ADMIN
            )
            [version] = added.versions
            assert (version.version, version.state) == ("1.5", "active")
            assert sorted((v.kind, v.label, v.version) for v in version.reference_values) == [
                ("nitro.pcr0", "my-enclave", "1.5"),
                ("nitro.pcr1", "my-enclave", "1.5"),
                ("nitro.pcr2", "my-enclave", "1.5"),
            ]
            await _refused(
                w.AddVersion(_version("1.5", ("nitro.pcr0", P1)), metadata=ADMIN), invalid, "WORKLOAD_VERSION_EXISTS"
            )
            await _refused(
                w.AddVersion(_version("1.6", ("snp.measurement", P0)), metadata=ADMIN), invalid, "WORKLOAD_TEE_MISMATCH"
            )
            await _refused(
                w.AddVersion(_version("1.6", ("nitro.pcr0", "zz")), metadata=ADMIN), invalid, "REFERENCE_VALUE_NOT_HEX"
            )
            await _refused(w.AddVersion(_version("1.6"), metadata=ADMIN), invalid, "WORKLOAD_VERSION_EMPTY")
            await _refused(
                w.AddVersion(_version("", ("nitro.pcr0", P1)), metadata=ADMIN), invalid, "WORKLOAD_VERSION_REQUIRED"
            )
            await w.AddVersion(
                _version("1.6", ("nitro.pcr0", P1), ("nitro.pcr1", P1), ("nitro.pcr2", P2)), metadata=ADMIN
            )
            vm = await w.AddVersion(
                pb.AddWorkloadVersionRequest(
                    name="vm", version="1", values=[pb.WorkloadValue(kind="snp.measurement", value=P0)]
                ),
                metadata=ADMIN,
            )  # created when missing, TEE of its kinds
            assert (vm.tee, vm.policy, [v.version for v in vm.versions]) == ("snp", "", ["1"])

            got = await w.Get(pb.GetWorkloadRequest(name="my-enclave"), metadata=auditor)
            assert [v.version for v in got.versions] == ["1.5", "1.6"] and got.id == made.id
            await _refused(
                w.Get(pb.GetWorkloadRequest(name="nope"), metadata=auditor),
                grpc.StatusCode.NOT_FOUND,
                "WORKLOAD_NOT_FOUND",
            )
            listed = await w.List(pb.ListWorkloadsRequest(), metadata=auditor)
            assert [x.name for x in listed.workloads] == ["my-enclave", "vm"]
            assert not any(x.versions for x in listed.workloads)
            assert not (await w.List(pb.ListWorkloadsRequest(review_only=True), metadata=auditor)).workloads

            await _refused(
                w.RevokeVersion(pb.RevokeWorkloadVersionRequest(name="my-enclave", version="1.5"), metadata=ADMIN),
                invalid,
                "REVOKE_REASON_REQUIRED",
            )
            await _refused(
                w.RevokeVersion(
                    pb.RevokeWorkloadVersionRequest(name="my-enclave", version="9", reason="r"), metadata=ADMIN
                ),
                grpc.StatusCode.NOT_FOUND,
                "WORKLOAD_VERSION_NOT_FOUND",
            )
            gone = await w.RevokeVersion(
                pb.RevokeWorkloadVersionRequest(name="my-enclave", version="1.5", reason="bad build"), metadata=ADMIN
            )
            assert list(gone.revoked_versions) == ["1.5"]
            [revoked] = gone.versions
            assert (revoked.state, revoked.revoke_reason, revoked.revoked_by) == (
                "revoked",
                "bad build",
                f"static:{_static_id()}",
            )
            got = await w.Get(pb.GetWorkloadRequest(name="my-enclave"), metadata=auditor)
            assert [(v.version, v.state) for v in got.versions] == [("1.5", "revoked"), ("1.6", "active")]

            retired = await w.Revoke(pb.RevokeWorkloadRequest(name="vm", reason="retired"), metadata=ADMIN)
            assert (retired.state, retired.revoke_reason) == ("revoked", "retired")
            assert retired.HasField("revoked_at")
            await _refused(
                w.Revoke(pb.RevokeWorkloadRequest(name="vm", reason="again"), metadata=ADMIN),
                invalid,
                "WORKLOAD_REVOKED",
            )

    asyncio.run(scenario())
    db = components.database
    actions = [e.action for e in audit.entries(db, limit=1000) if e.action.startswith("workload.")]
    assert actions == ["workload.create", "workload.create", "workload.version.revoke", "workload.revoke"]
    refusals = [e for e in audit.entries(db, action="admin.refused", limit=1000)]
    assert [(e.subject.rsplit("/", 1)[1], e.actor) for e in refusals] == [
        ("List", "anonymous"),
        ("Get", "anonymous"),
        ("Create", "anonymous"),
        ("Create", "anonymous"),
        *[(m, "token:dashboards") for m in ("Create", "AddVersion", "RevokeVersion", "Revoke")],
    ]
    assert {e.subject.split("/")[1] for e in refusals} == {"verifier.v1.Workloads"}
    assert audit.verify_chain(db).ok
    now = components.service.clock.now()
    assert {r.label for r in SqlReferenceValueStore(db).list(at=now)} == {"my-enclave", "vm"}


def test_add_version_of_a_revoked_value_is_refused_and_adds_nothing(components: Components) -> None:  # noqa: F811
    store, now = SqlReferenceValueStore(components.database), components.service.clock.now()
    old = store.add("nitro.pcr1", bytes.fromhex(P1), "elsewhere", now=now, actor="cli:test")
    store.revoke(old.id, "CVE", now=now, actor="cli:test")

    async def scenario() -> None:
        async with running(components) as r:
            w = wl_grpc.WorkloadsStub(r.channel)
            await _refused(
                w.AddVersion(_version("1", ("nitro.pcr0", P0), ("nitro.pcr1", P1)), metadata=ADMIN),
                grpc.StatusCode.INVALID_ARGUMENT,
                "REFERENCE_VALUE_REVOKED",
            )
            assert not (await w.List(pb.ListWorkloadsRequest(), metadata=ADMIN)).workloads

    asyncio.run(scenario())
    assert store.list(label="my-enclave", include_inactive=True, at=now) == []


def _static_id() -> str:
    import hashlib

    from tests.integration.test_grpc_server import TOKEN

    return hashlib.sha256(TOKEN.encode()).hexdigest()[:12]


@dataclass
class _Details:
    method: str
    invocation_metadata: tuple[tuple[str, str], ...] = ()


class _Context:
    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"

    def auth_context(self) -> dict[str, Any]:
        return {}


@pytest.mark.parametrize(
    ("method", "admin"),
    [
        ("/verifier.v1.Workloads/List", True),
        ("/verifier.v1.ReferenceValues/List", True),
        ("/verifier.v2.Future/Do", True),  # a service added later is admin-only until said otherwise
        ("/verifier.v1.Verifier/Appraise", False),
        ("/grpc.health.v1.Health/Check", False),
    ],
)
def test_every_api_service_but_appraisal_needs_admin_credentials(method: str, admin: bool) -> None:
    interceptor = AdminAuthInterceptor(("0" * 64,), admin_services=())  # even with nothing listed: fail closed

    async def inner(request: Any, context: Any) -> str:
        return "ran"

    async def call() -> Any:
        return await interceptor.around(method, _Details(method), inner, None, _Context())  # type: ignore[arg-type]

    if admin:
        with pytest.raises(AuthError) as info:
            asyncio.run(call())
        assert info.value.code == "ADMIN_AUTH_REQUIRED"
    else:
        assert asyncio.run(call()) == "ran"
