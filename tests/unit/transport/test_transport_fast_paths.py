"""The transport's per-call fast paths give the same answers as the straightforward code they replace: the one-hop
interceptor chain, the in-place response and claims conversion, pre-bound metric children, the cached rate-limit
client key, the request-id generator and the server's service registration (issue 13)."""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import uuid
from collections import OrderedDict
from typing import Any, cast

import grpc
import pytest
from google.protobuf.struct_pb2 import Struct
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from verifier import errors
from verifier.appraisal.model import Appraisal, Claim, Finding, Tier, TrustVector
from verifier.auth import CURRENT_PRINCIPAL
from verifier.logging_setup import REQUEST_ID
from verifier.metrics import Metrics
from verifier.service import AppraisalResult
from verifier.settings.parsers import Rate
from verifier.transport.grpc import convert
from verifier.transport.grpc.admin_auth import AdminAuthInterceptor
from verifier.transport.grpc.binding import GenericHandlersOnly
from verifier.transport.grpc.interceptor_base import CALL, InterceptorChain
from verifier.transport.grpc.interceptors import default_chain
from verifier.transport.grpc.limit_interceptors import RateLimitInterceptor
from verifier.transport.grpc.ratelimit import APPRAISE, MethodLimits, RateLimiter, cached_client_key, client_key
from verifier.v1 import verifier_pb2 as pb
from verifier.v1 import workloads_pb2_grpc as wl_grpc

AT = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
TOKEN_DIGEST = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"  # sha256("test")
LIST = "/verifier.v1.ReferenceValues/List"
METHODS = (APPRAISE, "/verifier.v1.Verifier/GetSigningKeys", LIST, "/grpc.health.v1.Health/Check")


# --- the interceptor chain -------------------------------------------------------------------------------------


class Aborted(Exception):
    pass


class Context:
    def __init__(self) -> None:
        self.trailing: Any = None
        self.status: grpc.Status | None = None

    def auth_context(self) -> dict[str, list[bytes]]:
        return {"transport_security_type": [b"insecure"]}

    def peer(self) -> str:
        return "ipv4:127.0.0.1:5000"

    def code(self) -> Any:
        return None

    def set_trailing_metadata(self, metadata: Any) -> None:
        self.trailing = tuple(metadata)

    async def abort_with_status(self, status: grpc.Status) -> None:
        self.status = status
        raise Aborted


class Details:
    def __init__(self, method: str, metadata: tuple[tuple[str, str], ...]) -> None:
        self.method, self.invocation_metadata = method, metadata


async def _run_interceptors(interceptors: list[Any], details: Details, handler: Any) -> Any:
    """What grpc.aio does with a server's interceptors: each one's intercept_service, outermost first."""

    async def run(index: int, call_details: Any) -> Any:
        if index == len(interceptors):
            return handler
        return await interceptors[index].intercept_service(lambda d: run(index + 1, d), call_details)

    return await run(0, details)


def _layers(metrics: Metrics) -> list[Any]:
    limiter = RateLimiter({APPRAISE: MethodLimits(Rate(1000.0, 1000), Rate(0.0, 0))})
    auth = AdminAuthInterceptor((TOKEN_DIGEST,))
    return default_chain(metrics, auth=auth, rate_limiter=limiter, max_request_bytes_in_flight=10_000)


def _outcome(interceptors: list[Any], method: str, metadata: tuple[tuple[str, str], ...], inner: Any) -> Any:
    """(result, or the abort's code, message, ErrorInfo reason and retryable), the trailing metadata, and the request
    id, call state and principal the handler saw; a fresh request id is replaced by "<fresh>"."""
    seen: dict[str, Any] = {}

    async def handler(request: Any, context: Any) -> str:
        state = CALL.get()
        seen["request_id"] = REQUEST_ID.get()
        seen["call"] = (state.method, state.request_id) if state else None
        seen["principal"] = CURRENT_PRINCIPAL.get()
        return str(await inner(request, context))

    async def scenario() -> Any:
        context = Context()
        wrapped = await _run_interceptors(
            interceptors, Details(method, metadata), grpc.unary_unary_rpc_method_handler(handler)
        )
        try:
            result: Any = await wrapped.unary_unary(pb.AppraiseRequest(evidence=b"x" * 10), context)
        except Aborted:
            assert context.status is not None
            trailers = dict(context.status.trailing_metadata)
            raw = trailers["grpc-status-details-bin"]
            assert trailers["x-request-id"] == context.trailing[0][1]  # the abort keeps the echoed id
            info = error_details_pb2.ErrorInfo()
            assert status_pb2.Status.FromString(raw).details[0].Unpack(info)
            result = (context.status.code, context.status.details, info.reason, info.metadata["retryable"])
        assert context.trailing is not None
        ((key, request_id),) = context.trailing
        assert key == "x-request-id"
        if not any(k == "x-request-id" for k, _ in metadata):  # a fresh id for each call
            assert str(uuid.UUID(request_id)) == request_id
        outcome = (result, seen.get("request_id"), seen.get("call"), seen.get("principal"))
        return _scrub(outcome, request_id) if request_id.count("-") == 4 else outcome

    return asyncio.run(scenario())


def _scrub(value: Any, fresh: str) -> Any:
    if isinstance(value, str):
        return value.replace(fresh, "<fresh>")
    if isinstance(value, tuple):
        return tuple(_scrub(item, fresh) for item in value)
    return value


async def _ok(request: Any, context: Any) -> str:
    return "ok"


def _failing(error: BaseException) -> Any:
    async def inner(request: Any, context: Any) -> str:
        raise error

    return inner


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "metadata",
    [(), (("x-request-id", "rid-7"),), (("authorization", "Bearer test"), ("x-request-id", "rid-8"))],
)
@pytest.mark.parametrize(
    "inner",
    [
        _ok,
        _failing(errors.RequestError("BAD", "bad request")),
        _failing(KeyError("secret")),
        _failing(errors.OverloadedError("BUSY", "busy", retry_after=0.5)),
    ],
)
def test_the_chain_answers_as_the_layers_installed_one_by_one(method: str, metadata: Any, inner: Any) -> None:
    one_by_one, chained = Metrics(), Metrics()
    expected = _outcome(_layers(one_by_one), method, metadata, inner)
    got = _outcome([InterceptorChain(_layers(chained))], method, metadata, inner)
    assert got == expected
    assert _counts(one_by_one) == _counts(chained)


def _counts(metrics: Metrics) -> dict[str, float]:
    return {
        f"{sample.name}{sorted(sample.labels.items())}": sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name.startswith("grpc_server_")  # not the process collectors, whose values move
        and not sample.name.endswith("_created")
        and not sample.name.endswith("_sum")
        and "bucket" not in sample.name
    }


def test_the_chain_leaves_out_only_layers_that_would_pass_the_call_through() -> None:
    chain = InterceptorChain(_layers(Metrics()))
    names = {method: [type(layer).__name__ for layer in chain.layers_for(method)] for method in METHODS}
    everywhere = ["RequestIdInterceptor", "MetricsInterceptor", "ErrorInterceptor", "InFlightBytesInterceptor"]
    assert names[APPRAISE] == [*everywhere, "RateLimitInterceptor"]  # limited; no appraisal client CAs
    assert names["/verifier.v1.Verifier/GetSigningKeys"] == everywhere  # not limited, not admin
    assert names[LIST] == [*everywhere, "AdminAuthInterceptor"]
    # health checks are probes, not traffic: no metrics (docs/metrics.md)
    assert names["/grpc.health.v1.Health/Check"] == [n for n in everywhere if n != "MetricsInterceptor"]
    assert chain.layers_for(APPRAISE) is chain.layers_for(APPRAISE)  # computed once per method
    unknown_service = "/verifier.v2.Anything/Call"  # any other verifier.* service is admin (fail closed)
    assert "AdminAuthInterceptor" in [type(layer).__name__ for layer in chain.layers_for(unknown_service)]


def test_applies_is_true_wherever_around_does_more_than_await() -> None:
    auth = AdminAuthInterceptor((TOKEN_DIGEST,), appraisal_cas=cast(Any, object()))  # only its presence matters
    assert auth.applies(APPRAISE) and auth.applies(LIST) and not auth.applies("/grpc.health.v1.Health/Check")
    plain = AdminAuthInterceptor((TOKEN_DIGEST,))
    assert not plain.applies(APPRAISE) and plain.applies("/verifier.v1.Workloads/Get")
    limits = RateLimitInterceptor(RateLimiter({APPRAISE: MethodLimits(Rate(1.0, 1), Rate(0.0, 0))}))
    assert limits.applies(APPRAISE) and not limits.applies("/verifier.v1.Verifier/CreateChallenge")


def test_the_chain_passes_unknown_methods_and_streams_untouched() -> None:
    chain = InterceptorChain(_layers(Metrics()))

    async def scenario() -> tuple[Any, Any]:
        async def none(details: Any) -> Any:
            return None

        stream = grpc.unary_stream_rpc_method_handler(lambda request, context: iter(()))

        async def streaming(details: Any) -> Any:
            return stream

        unknown = await chain.intercept_service(none, Details("/x.Y/Z", ()))  # type: ignore[arg-type]
        passed = await chain.intercept_service(streaming, Details("/grpc.health.v1.Health/Watch", ()))  # type: ignore[arg-type]
        return unknown, passed is stream

    assert asyncio.run(scenario()) == (None, True)


def test_the_chained_handler_is_a_coroutine_function_for_grpc() -> None:
    import inspect

    chain = InterceptorChain(_layers(Metrics()))

    async def continuation(details: Any) -> Any:
        return grpc.unary_unary_rpc_method_handler(_ok)

    handler = asyncio.run(chain.intercept_service(continuation, Details(APPRAISE, ())))  # type: ignore[arg-type]
    assert inspect.iscoroutinefunction(handler.unary_unary)  # grpc.aio awaits it instead of using a thread


# --- conversion ------------------------------------------------------------------------------------------------


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Name(enum.StrEnum):
    ALICE = "alice"


def _reference_struct(claims: dict[Any, Any]) -> Struct:
    """The conversion as it was: protobuf's Struct.update over `_jsonable` values."""
    struct = Struct()
    struct.update({str(k): convert._jsonable(v) for k, v in claims.items()})
    return struct


CLAIMS: list[dict[Any, Any]] = [
    {},
    {"a": "x", "b": True, "c": False, "d": 1.5, "e": 7, "f": None, "g": -(2**53), "h": 2**53 + 1, "i": -(2**60)},
    {"bytes": b"\x00\xff", "ba": bytearray(b"\x01"), "mv": memoryview(b"\x02"), "at": AT, "naive_list": [AT, b"\x03"]},
    {"nested": {"x": {"y": [1, {"z": None}, [], {}]}, 2: "int key"}, "empty_dict": {}, "empty_list": []},
    {1: "a", "1": "b", (1, 2): "tuple key"},  # keys collide once stringified: the later wins, as before
    {"set": {"b", "a", 3}, "frozen": frozenset({2, 1}), "tuple": (1, "x", (2,))},
    {"enum": Color.RED, "int_enum": Level.HIGH, "str_enum": Name.ALICE, "tier": Tier.WARNING, "claim": Claim.HARDWARE},
    {
        "ordered": OrderedDict([("k", 1)]),
        "list_of_enums": [Level.HIGH, Name.ALICE],
        "other": ValueError("shown as text"),
    },
    {"nan": float("nan"), "inf": float("inf"), "bool_list": [True, 0, 1.0]},
]


@pytest.mark.parametrize("claims", CLAIMS)
def test_claims_struct_matches_struct_update(claims: dict[Any, Any]) -> None:
    got = convert.claims_struct(claims)
    expected = _reference_struct(claims)
    assert got.SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True)


def _reference_response(result: AppraisalResult) -> pb.AppraiseResponse:
    """appraise_response as it was: messages built first and copied in."""
    appraisal = result.appraisal
    response = pb.AppraiseResponse(
        status=convert.STATUS_OF_TIER[appraisal.status],
        trust_vector=appraisal.trust_vector.to_json(),
        findings=[convert.finding(f) for f in appraisal.findings],
        token=result.token,
        appraisal_id=result.appraisal_id,
        tee=appraisal.tee,
        policy_id=appraisal.policy_id,
        appraised_at=convert.timestamp(result.appraised_at),
    )
    response.claims.CopyFrom(_reference_struct(dict(appraisal.claims)))
    response.claims_json = convert.claims_json(appraisal.claims)  # the same claims as JSON (test_claims_json.py)
    return response


@pytest.mark.parametrize("claims", CLAIMS)
@pytest.mark.parametrize("findings", [0, 1, 3])
@pytest.mark.parametrize("at", [AT, AT.astimezone(dt.timezone(dt.timedelta(hours=-5)))])
def test_appraise_response_matches_the_copying_build(claims: dict[Any, Any], findings: int, at: dt.datetime) -> None:
    made = tuple(
        Finding(f"CODE_{n}", Claim.EXECUTABLES, 33, f"m{n}", expected="aa" if n else "", actual="bb")
        for n in range(findings)
    )
    appraisal = Appraisal(
        tee="nitro",
        status=Tier.WARNING if findings else Tier.AFFIRMING,
        trust_vector=TrustVector({Claim.EXECUTABLES: 33 if findings else 2}),
        claims=claims,
        findings=made,
        policy_id="default",
    )
    result = AppraisalResult(appraisal, "tok", "jti", "id-1", at)
    got, expected = convert.appraise_response(result), _reference_response(result)
    assert got.SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True)
    assert got.HasField("claims") and got.HasField("appraised_at")


# --- metrics, client keys, request ids ----------------------------------------------------------------------------


def _appraisal(status: Tier, workload: str | None, *codes: str) -> Appraisal:
    findings = tuple(Finding(code, Claim.EXECUTABLES, 33, "m") for code in codes)
    described = {"name": workload, "version": "1"} if workload else None
    return Appraisal("nitro", status, TrustVector({}), {}, findings, "default", workload=described)


def test_metrics_children_count_per_label_set() -> None:
    metrics = Metrics()
    for code in (grpc.StatusCode.OK, grpc.StatusCode.OK, grpc.StatusCode.INTERNAL):
        metrics.rpc(APPRAISE).finish(code, 0.003)
    metrics.rpc(LIST).finish(grpc.StatusCode.OK, 0.2)
    assert metrics.rpc(APPRAISE) is metrics.rpc(APPRAISE)  # made once per method
    metrics.appraised(_appraisal(Tier.AFFIRMING, "shop"))
    metrics.appraised(_appraisal(Tier.AFFIRMING, "shop"))
    metrics.appraised(_appraisal(Tier.WARNING, None, "PCR_UNKNOWN", "PCR_UNKNOWN"))
    text = metrics.exposition().decode()
    appraise = 'grpc_method="Appraise",grpc_service="verifier.v1.Verifier",grpc_type="unary"'
    listing = 'grpc_method="List",grpc_service="verifier.v1.ReferenceValues",grpc_type="unary"'
    assert f'grpc_server_handled_total{{grpc_code="OK",{appraise}}} 2.0' in text
    assert f'grpc_server_handled_total{{grpc_code="Internal",{appraise}}} 1.0' in text
    assert f'grpc_server_handled_total{{grpc_code="OK",{listing}}} 1.0' in text
    assert f"grpc_server_handling_seconds_count{{{appraise}}} 3.0" in text
    assert f'grpc_server_handling_seconds_bucket{{{appraise},le="0.005"}} 3.0' in text
    assert f'grpc_server_handling_seconds_bucket{{{listing},le="0.1"}} 0.0' in text
    assert 'verifier_appraisals_total{status="affirming",tee="nitro",workload="shop"} 2.0' in text
    assert 'verifier_appraisals_total{status="warning",tee="nitro",workload=""} 1.0' in text
    assert 'verifier_findings_total{code="PCR_UNKNOWN",tee="nitro"} 2.0' in text


@pytest.mark.parametrize(
    ("peer", "leaf"),
    [
        ("ipv4:127.0.0.1:5000", None),
        ("ipv6:%5B2001:db8::1%5D:5000", None),
        ("ipv6:[::ffff:192.0.2.1]:5", None),
        ("unix:/tmp/x", None),
        ("ipv4:10.0.0.1:1", b"-----BEGIN CERTIFICATE-----\n"),
    ],
)
def test_cached_client_key_is_client_key(peer: str, leaf: bytes | None) -> None:
    assert cached_client_key(peer, leaf) == client_key(peer, leaf) == cached_client_key(peer, leaf)


# --- service registration ----------------------------------------------------------------------------------------


class RecordingServer:
    def __init__(self) -> None:
        self.generic: list[Any] = []
        self.registered: dict[str, Any] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self.generic.extend(handlers)

    def add_registered_method_handlers(self, name: str, handlers: Any) -> None:
        self.registered[name] = handlers


def test_generic_handlers_only_serves_the_same_methods_without_registering_them() -> None:
    direct, proxied = RecordingServer(), RecordingServer()
    servicer = wl_grpc.WorkloadsServicer()
    wl_grpc.add_WorkloadsServicer_to_server(servicer, direct)  # type: ignore[no-untyped-call]
    wl_grpc.add_WorkloadsServicer_to_server(servicer, GenericHandlersOnly(proxied))  # type: ignore[arg-type, no-untyped-call]
    assert proxied.registered == {} and len(direct.registered) == 1
    (methods,) = direct.registered.values()
    (generic,) = proxied.generic
    for name, handler in methods.items():
        found = generic.service(Details(f"/verifier.v1.Workloads/{name}", ()))
        assert found.unary_unary == handler.unary_unary


def test_the_server_registers_only_the_verifier_service(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from grpc.aio import _server as aio_server

    from verifier.bootstrap import build
    from verifier.settings import Settings
    from verifier.storage.migrate import upgrade
    from verifier.transport.grpc.server import VerifierServer

    registered: list[str] = []
    original = aio_server.Server.add_registered_method_handlers

    def record(self: Any, name: str, handlers: Any) -> None:
        registered.append(name)
        original(self, name, handlers)

    monkeypatch.setattr(aio_server.Server, "add_registered_method_handlers", record)
    url = f"sqlite:///{tmp_path / 'v.db'}"
    upgrade(url)
    settings = Settings(database_url=url, development=True, listen="127.0.0.1:0", http_listen="off", drain_seconds=0)
    components = build(settings)

    async def scenario() -> None:
        server = VerifierServer(components)
        port, _ = await server.start()
        try:  # the generic-only services still answer
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                health = health_pb2_grpc.HealthStub(channel)
                answer = await health.Check(health_pb2.HealthCheckRequest(service="verifier.v1.Workloads"))
                assert answer.status == health_pb2.HealthCheckResponse.SERVING
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await wl_grpc.WorkloadsStub(channel).List(pb.ListWorkloadsRequest())  # type: ignore[no-untyped-call]
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED  # admin auth, not UNIMPLEMENTED
        finally:
            await server.stop(0)

    try:
        asyncio.run(scenario())
    finally:
        components.close()
    assert registered == ["verifier.v1.Verifier"]
