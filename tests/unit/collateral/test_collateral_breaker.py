"""Circuit breaker toward a failing collateral vendor (issue 11 item 2): opens after consecutive vendor failures,
fails fast while open with COLLATERAL_VENDOR_UNAVAILABLE and retry_after, probes one at a time when half-open."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from tests.fakes.kds_server import FakeKds, Reply, kds_server_fixture  # noqa: F401 - fixture
from verifier.collateral.base import CollateralItem, CollateralKey, CollateralSource, CollateralUnavailableError
from verifier.collateral.breaker import BreakerState, CircuitBreakerSource
from verifier.collateral.cache import CachedSource
from verifier.collateral.kds import AmdKds
from verifier.collateral.routing import RoutingSource
from verifier.tee.sevsnp.collateral_keys import crl_key
from verifier.tee.sevsnp.tcb import Product

AT = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
KEY = CollateralKey("amd.crl", (("product", "Milan"), ("signer", "vcek")))


class FakeTime:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Inner:
    """A scripted vendor: `error` set -> raise it, else return an item. Counts calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.error: CollateralUnavailableError | None = None
        self.gate: threading.Event | None = None
        self.entered = threading.Event()

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        self.calls += 1
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(5)
        if self.error is not None:
            raise self.error
        return CollateralItem(key=key, data=b"x", fetched_at=at, next_update=at + dt.timedelta(days=1), source="kds")


def _breaker(inner: CollateralSource, clock: FakeTime, **kwargs: float) -> CircuitBreakerSource:
    return CircuitBreakerSource(inner, vendor="AMD KDS", monotonic=clock, **kwargs)  # type: ignore[arg-type]


def _state(breaker: CircuitBreakerSource) -> BreakerState:
    return breaker.state  # a call, so mypy does not keep an earlier assert's narrowing


def _fail(breaker: CircuitBreakerSource, times: int) -> list[str]:
    codes = []
    for _ in range(times):
        with pytest.raises(CollateralUnavailableError) as raised:
            breaker.fetch(KEY, at=AT)
        codes.append(raised.value.code)
    return codes


def test_opens_after_five_failures_and_fails_fast_with_retry_after() -> None:
    inner, clock = Inner(), FakeTime()
    breaker = _breaker(inner, clock)
    inner.error = CollateralUnavailableError("COLLATERAL_FETCH_FAILED", "HTTP 500")
    assert _fail(breaker, 5) == ["COLLATERAL_FETCH_FAILED"] * 5
    assert _state(breaker) is BreakerState.OPEN
    clock.t += 10
    with pytest.raises(CollateralUnavailableError) as raised:
        breaker.fetch(KEY, at=AT)
    assert raised.value.code == "COLLATERAL_VENDOR_UNAVAILABLE"
    assert raised.value.retry_after == pytest.approx(20.0)
    assert inner.calls == 5  # the vendor was not asked while open


def test_success_and_404_reset_the_streak_key_errors_do_not() -> None:
    inner, clock = Inner(), FakeTime()
    breaker = _breaker(inner, clock)
    timeout = CollateralUnavailableError("COLLATERAL_TIMEOUT", "slow")
    for interruption in (None, CollateralUnavailableError("COLLATERAL_NOT_FOUND", "404")):
        inner.error = timeout
        _fail(breaker, 4)
        inner.error = interruption
        if interruption is None:
            breaker.fetch(KEY, at=AT)
        else:
            _fail(breaker, 1)
        inner.error = timeout
        _fail(breaker, 4)
        assert _state(breaker) is BreakerState.CLOSED  # never 5 in a row
        inner.error = None
        breaker.fetch(KEY, at=AT)
    inner.error = timeout
    _fail(breaker, 4)
    inner.error = CollateralUnavailableError("COLLATERAL_KEY_INVALID", "no request was sent")
    _fail(breaker, 1)
    inner.error = timeout
    _fail(breaker, 1)
    assert _state(breaker) is BreakerState.OPEN  # the key error neither counted nor broke the streak


def test_404s_alone_never_open() -> None:
    inner, clock = Inner(), FakeTime()
    breaker = _breaker(inner, clock)
    inner.error = CollateralUnavailableError("COLLATERAL_NOT_FOUND", "404")
    assert _fail(breaker, 20) == ["COLLATERAL_NOT_FOUND"] * 20
    assert _state(breaker) is BreakerState.CLOSED and inner.calls == 20


def test_failures_spread_beyond_the_window_do_not_open() -> None:
    inner, clock = Inner(), FakeTime()
    breaker = _breaker(inner, clock, window=60.0)
    inner.error = CollateralUnavailableError("COLLATERAL_MALFORMED", "garbage")
    for _ in range(10):
        _fail(breaker, 1)
        clock.t += 20  # 5 consecutive failures span 80 s > window
    assert _state(breaker) is BreakerState.CLOSED
    _fail(breaker, 1)
    clock.t += 1
    _fail(breaker, 3)
    assert _state(breaker) is BreakerState.OPEN


def test_retry_after_lengthens_the_cool_down_up_to_the_cap() -> None:
    inner, clock = Inner(), FakeTime()
    breaker = _breaker(inner, clock, cooldown=30.0, max_cooldown=300.0)
    inner.error = CollateralUnavailableError("COLLATERAL_RATE_LIMITED", "429", retry_after=120.0)
    _fail(breaker, 5)
    with pytest.raises(CollateralUnavailableError) as raised:
        breaker.fetch(KEY, at=AT)
    assert raised.value.retry_after == pytest.approx(120.0)
    clock.t += 121
    inner.error = CollateralUnavailableError("COLLATERAL_RATE_LIMITED", "429", retry_after=86400.0)
    _fail(breaker, 1)  # the probe
    with pytest.raises(CollateralUnavailableError) as raised:
        breaker.fetch(KEY, at=AT)
    assert raised.value.code == "COLLATERAL_VENDOR_UNAVAILABLE"
    assert raised.value.retry_after == pytest.approx(300.0)


def test_half_open_probe_failure_doubles_and_success_closes() -> None:
    inner, clock = Inner(), FakeTime()
    breaker = _breaker(inner, clock, cooldown=30.0, max_cooldown=100.0)
    inner.error = CollateralUnavailableError("COLLATERAL_FETCH_FAILED", "HTTP 500")
    _fail(breaker, 5)
    expected = [60.0, 100.0, 100.0]
    clock.t += 30
    for cooldown in expected:
        assert _fail(breaker, 1) == ["COLLATERAL_FETCH_FAILED"]  # the probe reaches the vendor and fails
        with pytest.raises(CollateralUnavailableError) as raised:
            breaker.fetch(KEY, at=AT)
        assert raised.value.retry_after == pytest.approx(cooldown)
        clock.t += cooldown
    calls = inner.calls
    inner.error = None
    breaker.fetch(KEY, at=AT)
    assert _state(breaker) is BreakerState.CLOSED and inner.calls == calls + 1
    inner.error = CollateralUnavailableError("COLLATERAL_FETCH_FAILED", "HTTP 500")
    _fail(breaker, 5)
    with pytest.raises(CollateralUnavailableError) as raised:
        breaker.fetch(KEY, at=AT)
    assert raised.value.retry_after == pytest.approx(30.0)  # the cool-down was reset on closing


def test_half_open_lets_one_probe_through_at_a_time() -> None:
    inner, clock = Inner(), FakeTime()
    breaker = _breaker(inner, clock)
    inner.error = CollateralUnavailableError("COLLATERAL_FETCH_FAILED", "HTTP 500")
    _fail(breaker, 5)
    clock.t += 30
    inner.error = None
    inner.gate = threading.Event()
    inner.entered.clear()
    results: list[CollateralItem] = []
    probe = threading.Thread(target=lambda: results.append(breaker.fetch(KEY, at=AT)))
    probe.start()
    assert inner.entered.wait(5)
    try:
        assert _fail(breaker, 3) == ["COLLATERAL_VENDOR_UNAVAILABLE"] * 3
        assert inner.calls == 6
    finally:
        inner.gate.set()
        probe.join(5)
    assert len(results) == 1 and _state(breaker) is BreakerState.CLOSED


def test_stale_success_is_ignored_after_the_breaker_opened() -> None:
    clock = FakeTime()
    release = threading.Event()
    entered = threading.Event()

    class Vendor:
        calls = 0

        def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
            Vendor.calls += 1
            if Vendor.calls == 1:  # a slow request that will succeed late
                entered.set()
                release.wait(5)
                return CollateralItem(key=key, data=b"x", fetched_at=at, next_update=at, source="kds")
            raise CollateralUnavailableError("COLLATERAL_FETCH_FAILED", "HTTP 500")

    breaker = _breaker(Vendor(), clock)
    slow = threading.Thread(target=lambda: breaker.fetch(KEY, at=AT))
    slow.start()
    assert entered.wait(5)
    _fail(breaker, 5)
    release.set()
    slow.join(5)
    assert _state(breaker) is BreakerState.OPEN


def test_kds_answering_500_is_not_asked_while_open(kds_server: FakeKds) -> None:
    """Through the real stack (cache -> routing -> breaker -> AmdKds -> loopback KDS): the KDS request count stops
    growing once the breaker opens, and every key fails at once with COLLATERAL_VENDOR_UNAVAILABLE."""
    kds_server.serve("/vcek/v1/Milan/crl", Reply(500, b"oops"))
    kds_server.serve("/vcek/v1/Genoa/crl", Reply(500, b"oops"))
    kds_server.serve("/vlek/v1/Milan/crl", Reply(500, b"oops"))
    clock = FakeTime()
    breaker = CircuitBreakerSource(AmdKds(kds_server.url, timeout=2.0), vendor="AMD KDS", monotonic=clock)
    source = CachedSource(RoutingSource({"amd": breaker}), None, failure_backoff=dt.timedelta(0))
    keys = [crl_key(Product.MILAN), crl_key(Product.GENOA), crl_key(Product.MILAN, "vlek")]
    codes = []
    for i in range(15):
        with pytest.raises(CollateralUnavailableError) as raised:
            source.fetch(keys[i % 3], at=AT)
        codes.append(raised.value.code)
    assert codes[:5] == ["COLLATERAL_FETCH_FAILED"] * 5
    assert codes[5:] == ["COLLATERAL_VENDOR_UNAVAILABLE"] * 10
    total = sum(kds_server.count(path) for path in ("/vcek/v1/Milan/crl", "/vcek/v1/Genoa/crl", "/vlek/v1/Milan/crl"))
    assert total == 5
