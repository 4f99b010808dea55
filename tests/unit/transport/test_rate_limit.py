"""Token-bucket rate limits (issue 11 item 9): per client, global, LRU bound, client keys, the interceptor's refusal
and the settings that configure them. The clock is injected: no sleeps, no timing."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from verifier.cli import serve as serve_cli
from verifier.errors import ConfigError
from verifier.metrics import Metrics
from verifier.settings import Rate, Settings, from_environment, rate
from verifier.transport.grpc import ratelimit
from verifier.transport.grpc.interceptors import default_chain
from verifier.transport.grpc.limit_interceptors import RateLimitInterceptor
from verifier.transport.grpc.ratelimit import APPRAISE, CREATE_CHALLENGE, MethodLimits, RateLimiter, client_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(
    clock: Clock, per_client: Rate = Rate(2.0, 3), overall: Rate = Rate(0, 0), max_clients: int = 100
) -> RateLimiter:
    return RateLimiter({CREATE_CHALLENGE: MethodLimits(per_client, overall)}, max_clients=max_clients, clock=clock)


def test_one_client_over_its_limit_does_not_starve_another() -> None:
    clock = Clock()
    lim = limiter(clock, overall=Rate(100.0, 100))
    assert [lim.acquire(CREATE_CHALLENGE, "ip:10.0.0.1").allowed for _ in range(3)] == [True] * 3
    refused = lim.acquire(CREATE_CHALLENGE, "ip:10.0.0.1")
    assert not refused.allowed and refused.scope == "client"
    assert refused.retry_after == pytest.approx(0.5)  # one token at 2/s
    for _ in range(50):  # the attacker keeps hammering: every call refused, nothing spent globally
        assert not lim.acquire(CREATE_CHALLENGE, "ip:10.0.0.1").allowed
    assert lim.acquire(CREATE_CHALLENGE, "ip:10.0.0.2").allowed
    assert lim.acquire(CREATE_CHALLENGE, "cert:" + "ab" * 32).allowed
    clock.now += 0.5  # refilled by exactly one token
    assert lim.acquire(CREATE_CHALLENGE, "ip:10.0.0.1").allowed
    assert not lim.acquire(CREATE_CHALLENGE, "ip:10.0.0.1").allowed


def test_the_global_bucket_caps_all_clients_together() -> None:
    clock = Clock()
    lim = limiter(clock, per_client=Rate(10.0, 10), overall=Rate(1.0, 4))
    allowed = [lim.acquire(CREATE_CHALLENGE, f"ip:10.0.0.{i}").allowed for i in range(6)]
    assert allowed == [True] * 4 + [False] * 2
    refused = lim.acquire(CREATE_CHALLENGE, "ip:10.0.0.9")
    assert refused.scope == "global" and refused.retry_after == pytest.approx(1.0)
    clock.now += 1.0
    assert lim.acquire(CREATE_CHALLENGE, "ip:10.0.0.9").allowed


def test_unlimited_methods_and_disabled_limits_pass() -> None:
    clock = Clock()
    lim = RateLimiter(
        {CREATE_CHALLENGE: MethodLimits(Rate(1.0, 1), Rate(0, 0)), APPRAISE: MethodLimits(Rate(0, 0), Rate(0, 0))},
        clock=clock,
    )
    assert lim.limits(CREATE_CHALLENGE) and not lim.limits(APPRAISE)
    assert not lim.limits("/verifier.v1.Verifier/GetSigningKeys")
    for _ in range(100):
        assert lim.acquire(APPRAISE, "ip:10.0.0.1").allowed
        assert lim.acquire("/verifier.v1.Verifier/GetSigningKeys", "ip:10.0.0.1").allowed
    assert (
        ratelimit.from_settings(
            Settings(
                rate_challenge_per_client=Rate(0, 0),
                rate_challenge_global=Rate(0, 0),
                rate_appraise_per_client=Rate(0, 0),
                rate_appraise_global=Rate(0, 0),
            )
        )
        is None
    )


def test_tracked_clients_are_bounded_lru() -> None:
    clock = Clock()
    lim = limiter(clock, per_client=Rate(1.0, 1), max_clients=3)
    assert lim.acquire(CREATE_CHALLENGE, "ip:10.0.0.1").allowed
    for i in range(2, 6):
        lim.acquire(CREATE_CHALLENGE, f"ip:10.0.0.{i}")
        assert lim.tracked_clients <= 3
    assert lim.tracked_clients == 3
    # 10.0.0.1 was evicted: it starts again with a full bucket (the documented cost of the bound)
    assert lim.acquire(CREATE_CHALLENGE, "ip:10.0.0.1").allowed
    # 10.0.0.5 is still tracked and empty
    assert not lim.acquire(CREATE_CHALLENGE, "ip:10.0.0.5").allowed


def test_a_clock_stepping_back_adds_no_tokens() -> None:
    clock = Clock()
    lim = limiter(clock, per_client=Rate(1.0, 1))
    assert lim.acquire(CREATE_CHALLENGE, "c").allowed
    clock.now -= 100.0
    assert not lim.acquire(CREATE_CHALLENGE, "c").allowed


@pytest.mark.parametrize(
    ("peer", "expected"),
    [
        ("ipv4:192.0.2.7:5555", "ip:192.0.2.7"),
        ("ipv6:[2001:db8:1:2:3:4:5:6]:443", "ip:2001:db8:1:2::/64"),
        ("ipv6:%5B2001:db8:1:2:ffff::1%5D:443", "ip:2001:db8:1:2::/64"),
        ("ipv6:[::ffff:192.0.2.9]:1", "ip:192.0.2.9"),
        ("ipv6:[::1]:50051", "ip:::/64"),
        ("unix:/tmp/sock", "peer:unix:/tmp/sock"),
        ("", "peer:"),
    ],
)
def test_client_key_from_peer(peer: str, expected: str) -> None:
    assert client_key(peer, None) == expected


def test_client_key_prefers_the_certificate() -> None:
    assert client_key("ipv4:192.0.2.7:1", b"PEM A") != client_key("ipv4:192.0.2.7:1", b"PEM B")
    assert client_key("ipv4:192.0.2.7:1", b"PEM A") == client_key("ipv4:192.0.2.8:2", b"PEM A")
    assert client_key("ipv4:192.0.2.7:1", b"PEM A").startswith("cert:")


class FakeContext:
    def __init__(self, peer: str, auth: dict[str, list[bytes]] | None = None) -> None:
        self._peer = peer
        self.auth = auth or {}
        self.status: grpc.Status | None = None

    def peer(self) -> str:
        return self._peer

    def auth_context(self) -> dict[str, list[bytes]]:
        return self.auth

    async def abort_with_status(self, status: grpc.Status) -> None:
        self.status = status
        raise grpc.aio.AbortError()


def _call(interceptor: RateLimitInterceptor, method: str, context: FakeContext) -> Any:
    async def inner(request: Any, ctx: Any) -> str:
        return "ok"

    return asyncio.run(interceptor.around(method, None, inner, None, context))  # type: ignore[arg-type]


def test_interceptor_refuses_with_rate_limited_and_retry_info() -> None:
    clock = Clock()
    interceptor = RateLimitInterceptor(limiter(clock, per_client=Rate(1.0, 1)))
    attacker = FakeContext("ipv4:192.0.2.1:1000")
    other_cert = FakeContext(
        "ipv4:192.0.2.1:1001",
        {"transport_security_type": [b"ssl"], "x509_pem_cert": [b"-----BEGIN CERTIFICATE-----other"]},
    )
    assert _call(interceptor, CREATE_CHALLENGE, attacker) == "ok"
    with pytest.raises(grpc.aio.AbortError):
        _call(interceptor, CREATE_CHALLENGE, attacker)
    assert attacker.status is not None and attacker.status.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    ((_, binary),) = [m for m in attacker.status.trailing_metadata if m[0] == "grpc-status-details-bin"]
    status = status_pb2.Status.FromString(binary)
    info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info) and status.details[1].Unpack(retry)
    assert info.reason == "RATE_LIMITED" and info.domain == "tee-verifier" and info.metadata["retryable"] == "true"
    assert retry.retry_delay.ToNanoseconds() == 1_000_000_000
    # same address, but its own verified client certificate: a different client
    assert _call(interceptor, CREATE_CHALLENGE, other_cert) == "ok"
    # a method the limiter does not limit is never refused
    for _ in range(5):
        assert _call(interceptor, "/verifier.v1.Verifier/GetSigningKeys", attacker) == "ok"


def test_default_chain_places_the_limiter_after_errors_and_before_auth() -> None:
    chain = default_chain(Metrics(), rate_limiter=limiter(Clock()))
    names = [type(i).__name__ for i in chain]
    assert names == [
        "RequestIdInterceptor",
        "MetricsInterceptor",
        "ErrorInterceptor",
        "RateLimitInterceptor",
        "AdminAuthInterceptor",
    ]
    assert "RateLimitInterceptor" not in [type(i).__name__ for i in default_chain(Metrics())]


def test_rate_settings() -> None:
    defaults = Settings()
    assert defaults.rate_challenge_per_client == Rate(20.0, 40) == defaults.rate_appraise_per_client
    assert defaults.rate_challenge_global == Rate(500.0, 1000) == defaults.rate_appraise_global
    assert rate("5") == Rate(5.0, 10) and rate("0.5") == Rate(0.5, 1) and rate("3:7") == Rate(3.0, 7)
    assert rate("0") == Rate(0.0, 0) and not Rate(0.0, 0).enabled
    for bad in ("-1", "x", "nan", "inf", "5:0", "5:x", "1e9"):
        with pytest.raises(ConfigError):
            rate(bad)
    env = from_environment(
        {
            "VERIFIER_RATE_CHALLENGE_PER_CLIENT": "1:2",
            "VERIFIER_RATE_APPRAISE_GLOBAL": "0",
            "VERIFIER_RATE_CLIENTS": "50",
        }
    )
    assert env.rate_challenge_per_client == Rate(1.0, 2) and env.rate_appraise_global == Rate(0.0, 0)
    assert env.rate_clients == 50 and env.rate_appraise_per_client == Rate(20.0, 40)


def test_rate_flags() -> None:
    parser = argparse.ArgumentParser()
    serve_cli.register(parser.add_subparsers())
    args = parser.parse_args(["serve", "--rate-appraise-per-client", "2:3", "--rate-challenge-global", "0"])
    assert args.rate_appraise_per_client == Rate(2.0, 3) and args.rate_challenge_global == Rate(0.0, 0)
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--rate-appraise-global", "-3"])
