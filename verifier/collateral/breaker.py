"""A circuit breaker in front of one collateral vendor (AMD KDS or Intel PCS).

Without it, every appraisal whose collateral is not cached asks a vendor that is down again (about 70 requests/s
into a vendor answering 429, 500 or garbage, each waiting out the HTTP timeout). States (the usual closed / open /
half-open breaker):

- closed: fetches go through. `failures` consecutive vendor failures, all within `window` seconds, open it.
  A vendor failure is a CollateralUnavailableError whose code says the vendor did not answer usefully
  (COLLATERAL_FETCH_FAILED, COLLATERAL_TIMEOUT, COLLATERAL_RATE_LIMITED, COLLATERAL_MALFORMED,
  COLLATERAL_TOO_LARGE). A 404 (COLLATERAL_NOT_FOUND) is a real answer and counts as a success; errors raised
  before any request is sent (COLLATERAL_KEY_INVALID, COLLATERAL_NOT_DOWNLOADABLE, anything else) count as nothing.
- open: every fetch fails at once with COLLATERAL_VENDOR_UNAVAILABLE, `retry_after` = seconds left, for the
  cool-down: `cooldown`, or the largest Retry-After the vendor sent in the failures that opened it (RFC 9110
  section 10.2.3), whichever is longer, never more than `max_cooldown`.
- half-open (after the cool-down): one probe fetch at a time goes through, the others fail at once. A successful
  probe closes the breaker (cool-down back to `cooldown`); a failed one reopens it with the cool-down doubled
  (capped at `max_cooldown`).

Outcomes of fetches admitted before the last state change are ignored (a slow request started while closed says
nothing about the vendor after the breaker opened). Time is `monotonic` (injectable), so wall-clock steps do not
shorten or stretch a cool-down. It sits beneath `cache.CachedSource`, which keeps serving cached copies (and
remembers the error per key) while the breaker is open.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from .base import CollateralItem, CollateralKey, CollateralSource, CollateralUnavailableError

log = logging.getLogger(__name__)

DEFAULT_FAILURES = 5
DEFAULT_WINDOW = 60.0
DEFAULT_COOLDOWN = 30.0
DEFAULT_MAX_COOLDOWN = 300.0
VENDOR_FAILURE_CODES = frozenset(
    {
        "COLLATERAL_FETCH_FAILED",
        "COLLATERAL_TIMEOUT",
        "COLLATERAL_RATE_LIMITED",
        "COLLATERAL_MALFORMED",
        "COLLATERAL_TOO_LARGE",
    }
)
HEALTHY_ANSWER_CODES = frozenset({"COLLATERAL_NOT_FOUND"})
UNAVAILABLE_CODE = "COLLATERAL_VENDOR_UNAVAILABLE"


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class _Outcome(enum.Enum):
    SUCCESS = enum.auto()
    FAILURE = enum.auto()
    NEUTRAL = enum.auto()


class CircuitBreakerSource:
    """A `CollateralSource` that stops asking `inner` (one vendor, named `vendor` in messages) while it fails."""

    def __init__(
        self,
        inner: CollateralSource,
        *,
        vendor: str,
        failures: int = DEFAULT_FAILURES,
        window: float = DEFAULT_WINDOW,
        cooldown: float = DEFAULT_COOLDOWN,
        max_cooldown: float = DEFAULT_MAX_COOLDOWN,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1 or window <= 0 or cooldown <= 0 or max_cooldown < cooldown:
            raise ValueError("need failures >= 1, window > 0 and 0 < cooldown <= max_cooldown")
        self._inner = inner
        self._vendor = vendor
        self._threshold = failures
        self._window = window
        self._base_cooldown = cooldown
        self._max_cooldown = max_cooldown
        self._now = monotonic
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._generation = 0
        self._streak: deque[float] = deque()  # times of the consecutive vendor failures (closed state)
        self._streak_retry_after = 0.0  # largest Retry-After among them
        self._last_code = ""
        self._cooldown = cooldown  # the next open period (doubles on each failed probe)
        self._open_until = 0.0
        self._probing = False

    @property
    def state(self) -> BreakerState:
        """The current state (OPEN stays OPEN until a fetch arrives after the cool-down)."""
        with self._lock:
            return self._state

    def fetch(self, key: CollateralKey, *, at: dt.datetime) -> CollateralItem:
        """`inner.fetch(key, at=at)` unless the breaker is open. Raises CollateralUnavailableError: the inner
        source's error, or COLLATERAL_VENDOR_UNAVAILABLE (with `retry_after`) while open or while a half-open
        probe is in flight."""
        generation = self._admit()
        try:
            item = self._inner.fetch(key, at=at)
        except CollateralUnavailableError as error:
            self._record(generation, _classify(error.code), error)
            raise
        except BaseException:
            self._record(generation, _Outcome.NEUTRAL, None)
            raise
        self._record(generation, _Outcome.SUCCESS, None)
        return item

    def _admit(self) -> int:
        with self._lock:
            now = self._now()
            if self._state is BreakerState.OPEN:
                if now < self._open_until:
                    remaining = self._open_until - now
                    raise CollateralUnavailableError(
                        UNAVAILABLE_CODE,
                        f"{self._vendor} is failing ({self._last_code}); not asked again for {remaining:.1f}s",
                        retry_after=remaining,
                    )
                self._state = BreakerState.HALF_OPEN
                self._generation += 1
                self._probing = False
            if self._state is BreakerState.HALF_OPEN:
                if self._probing:
                    raise CollateralUnavailableError(
                        UNAVAILABLE_CODE,
                        f"{self._vendor} is failing ({self._last_code}); a probe request is in flight",
                        retry_after=1.0,
                    )
                self._probing = True
            return self._generation

    def _record(self, generation: int, outcome: _Outcome, error: CollateralUnavailableError | None) -> None:
        with self._lock:
            if generation != self._generation:
                return  # admitted before the last state change
            now = self._now()
            if self._state is BreakerState.HALF_OPEN:
                self._probing = False
                if outcome is _Outcome.SUCCESS:
                    log.info("collateral vendor %s answers again: circuit closed", self._vendor)
                    self._close()
                elif outcome is _Outcome.FAILURE and error is not None:
                    self._cooldown = min(self._max_cooldown, self._cooldown * 2)
                    self._open(now, error, self._cooldown)
                return
            if outcome is _Outcome.SUCCESS:
                self._streak.clear()
                self._streak_retry_after = 0.0
            elif outcome is _Outcome.FAILURE and error is not None:
                while self._streak and self._streak[0] <= now - self._window:
                    self._streak.popleft()
                if not self._streak:
                    self._streak_retry_after = 0.0
                self._streak.append(now)
                self._streak_retry_after = max(self._streak_retry_after, error.retry_after or 0.0)
                if len(self._streak) >= self._threshold:
                    self._open(now, error, max(self._cooldown, self._streak_retry_after))

    def _open(self, now: float, error: CollateralUnavailableError, cooldown: float) -> None:
        period = min(self._max_cooldown, max(cooldown, error.retry_after or 0.0))
        log.warning("collateral vendor %s failing (%s): circuit open for %.1fs", self._vendor, error.code, period)
        self._state = BreakerState.OPEN
        self._generation += 1
        self._open_until = now + period
        self._last_code = error.code
        self._streak.clear()
        self._streak_retry_after = 0.0
        self._probing = False

    def _close(self) -> None:
        self._state = BreakerState.CLOSED
        self._generation += 1
        self._cooldown = self._base_cooldown
        self._streak.clear()
        self._streak_retry_after = 0.0


def _classify(code: str) -> _Outcome:
    if code in VENDOR_FAILURE_CODES:
        return _Outcome.FAILURE
    if code in HEALTHY_ANSWER_CODES:
        return _Outcome.SUCCESS
    return _Outcome.NEUTRAL
