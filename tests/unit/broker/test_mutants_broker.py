"""Tests for a mutant that survived scripts/mutation.py in verifier/broker/release.py: a full pending table
evicts the oldest nonce of the client holding the most, never its newest."""

from __future__ import annotations

import datetime as dt

from verifier.broker.release import PendingNonces

NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def nonce(label: str) -> bytes:
    return label.encode().ljust(32, b"\0")


def test_a_full_table_evicts_the_heaviest_clients_oldest_nonce_and_its_newest_still_redeems() -> None:
    pending = PendingNonces(dt.timedelta(seconds=60), limit=4, per_client=4)
    for i, label in enumerate(("heavy-1", "heavy-2", "heavy-3")):
        pending.add(nonce(label), NOW + dt.timedelta(seconds=i), "198.51.100.9")
    pending.add(nonce("light"), NOW + dt.timedelta(seconds=3), "192.0.2.7")
    pending.add(nonce("new"), NOW + dt.timedelta(seconds=4), "203.0.113.5")  # full: the heavy client loses one
    at = NOW + dt.timedelta(seconds=5)
    assert len(pending) == 4
    assert not pending.consume(nonce("heavy-1"), at)  # its oldest is gone
    assert pending.consume(nonce("heavy-3"), at)  # its newest still redeems
    assert pending.consume(nonce("heavy-2"), at)
    assert pending.consume(nonce("light"), at) and pending.consume(nonce("new"), at)
    assert len(pending) == 0
