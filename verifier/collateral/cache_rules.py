"""The freshness rules of the collateral cache (`cache.CachedSource`; ARCHITECTURE.md "Collateral freshness").

An item is valid only while `at < next_update` (hard limit: nothing is served past it); it is due for a refetch
once fetched `max_age` ago, or `refresh` ago for the kinds refetched ahead of nextUpdate (revocation lists, Intel
TCB info and QE identity). Of two copies of one key the newer version wins (`ordering.version_of`: CRL number /
thisUpdate, tcbEvaluationDataNumber / issueDate), else the later fetched: a cache never rolls an item back.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from .base import CollateralItem
from .ordering import version_of

REFRESHED_KINDS = frozenset({"amd.crl", "nvidia.rim"})  # NVIDIA re-issues RIMs for the same version
REFRESHED_VENDORS = ("intel.",)


def refreshes(kind: str) -> bool:
    """True for the kinds refetched ahead of nextUpdate: revocation lists, Intel TCB info and QE identity."""
    return kind in REFRESHED_KINDS or kind.startswith(REFRESHED_VENDORS)


def valid(item: CollateralItem, at: dt.datetime) -> bool:
    """The hard limit: `item` may be served at `at` (an item without a nextUpdate never is)."""
    return item.next_update is not None and at < item.next_update


def due(item: CollateralItem, now: dt.datetime, *, refresh: dt.timedelta, max_age: dt.timedelta) -> bool:
    """The soft refresh: `item` is to be refetched at `now` (wall time of the cache's clock)."""
    age = now - item.fetched_at
    return age >= max_age or (refreshes(item.key.kind) and age >= refresh)


def older(item: CollateralItem, than: CollateralItem) -> bool:
    """True when both versions are known and `item` is the older (unknown order: not older)."""
    mine, theirs = version_of(item.key.kind, item.data), version_of(than.key.kind, than.data)
    return mine is not None and theirs is not None and mine.older_than(theirs)


def newest(a: CollateralItem | None, b: CollateralItem | None) -> CollateralItem | None:
    """The newer of two cached copies of one key: by version, else the later fetched (`a` on a tie)."""
    if a is None or b is None:
        return a or b
    if older(a, b):
        return b
    if older(b, a):
        return a
    return b if b.fetched_at > a.fetched_at else a


def as_hit(item: CollateralItem) -> CollateralItem:
    """`item` as the cache serves it (`source` "cache")."""
    return item if item.source == "cache" else dataclasses.replace(item, source="cache")


def rfc3339(value: dt.datetime | None) -> str:
    """`value` in UTC to the second for log lines and messages; "none" for None."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else "none"
