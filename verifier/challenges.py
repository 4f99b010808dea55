"""Single-use challenges (the domain side): a `Challenge`, the outcome of consuming one, and the `ChallengeStore`
port the service creates and consumes them through (`verifier.storage.challenges.SqlChallengeStore` implements
it; the composition root passes it in)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


@dataclass(frozen=True)
class Challenge:
    nonce: bytes
    created_at: dt.datetime
    expires_at: dt.datetime


class ConsumeOutcome(StrEnum):
    OK = "ok"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    ALREADY_USED = "already_used"


# How a consumption counts in `verifier_challenges_total{outcome}` (docs/metrics.md), beside "issued".
OUTCOME_NAMES = {
    ConsumeOutcome.OK: "consumed",
    ConsumeOutcome.UNKNOWN: "unknown",
    ConsumeOutcome.EXPIRED: "expired",
    ConsumeOutcome.ALREADY_USED: "replayed",
}


class ChallengeStore(Protocol):
    def create(self, nonce: bytes, *, now: dt.datetime, ttl: dt.timedelta) -> Challenge:
        """Store a new single-use challenge for `nonce`, expiring `ttl` after `now`, and return it. Raises RequestError
        CHALLENGE_NONCE_LENGTH, CHALLENGE_TTL or CHALLENGE_NONCE_EXISTS, and UnavailableError (DATABASE_*)."""
        ...

    def consume(self, nonce: bytes, *, at: dt.datetime) -> ConsumeOutcome:
        """Mark `nonce` used at `at`, atomically: OK for exactly one caller, else UNKNOWN, EXPIRED or ALREADY_USED.
        Raises UnavailableError (DATABASE_*) when the store cannot answer."""
        ...
