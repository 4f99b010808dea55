"""The readers the service is given over a `HotCache` (verifier.storage.hot_cache): reference values (active and
members), workload metadata and database policies, each answered from the snapshot the appraisal pinned (else after
one version read), and by its SQL store when the snapshot does not hold what is asked (over the bounds, or an
appraisal time before the snapshot's cutoff). Each answers exactly what its store would."""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Iterable, Sequence

from ..appraisal.policy import Policy
from ..errors import RequestError
from ..reference_values.model import ReferenceValue
from ..workloads.model import WorkloadMeta
from .hot_cache import HotCache
from .policies import MAX_NAME, SqlPolicies
from .reference_values import SqlReferenceValueStore
from .text import storable
from .workloads import SqlWorkloads


class HotReferences:
    """`ReferenceValueReader` (and `members`) from the cache; the store answers what the snapshot does not hold."""

    def __init__(self, cache: HotCache, store: SqlReferenceValueStore) -> None:
        self._cache, self._store = cache, store

    def active(self, kinds: Sequence[str], at: dt.datetime) -> builtins.list[ReferenceValue]:
        """As `SqlReferenceValueStore.active`. Raises UnavailableError (DATABASE_*)."""
        if not kinds:
            return []
        snapshot = self._cache.snapshot()
        return snapshot.active(kinds, at) if snapshot.answers(at) else self._store.active(kinds, at)

    def members(self, kinds: Sequence[str], at: dt.datetime) -> builtins.list[ReferenceValue]:
        """As `SqlReferenceValueStore.members`. Raises UnavailableError (DATABASE_*)."""
        if not kinds:
            return []
        snapshot = self._cache.snapshot()
        return snapshot.members(kinds, at) if snapshot.answers(at) else self._store.members(kinds, at)


class HotWorkloads:
    """`WorkloadCatalog` from the cache."""

    def __init__(self, cache: HotCache, store: SqlWorkloads) -> None:
        self._cache, self._store = cache, store

    def metadata(self, names: Iterable[str]) -> dict[str, WorkloadMeta]:
        """As `SqlWorkloads.metadata`. Raises UnavailableError (DATABASE_*)."""
        wanted = {storable(n) for n in names if n}
        if not wanted:
            return {}
        snapshot = self._cache.snapshot()
        if not snapshot.held:
            return self._store.metadata(wanted)
        return {n: snapshot.workloads[n] for n in sorted(wanted) if n in snapshot.workloads}


class HotPolicies:
    """`PolicySource` from the cache (the database layer of the service's `PolicySet`)."""

    def __init__(self, cache: HotCache, store: SqlPolicies) -> None:
        self._cache, self._store = cache, store

    def get(self, name: str) -> Policy | None:
        """As `SqlPolicies.get`: None for no such policy, RequestError POLICY_INVALID for a stored body that no
        longer validates, UnavailableError (DATABASE_*)."""
        if not name.isprintable() or len(name) > MAX_NAME:
            return None
        snapshot = self._cache.snapshot()
        if not snapshot.held:
            return self._store.get(name)
        found = snapshot.policies.get(name)
        if isinstance(found, str):
            raise RequestError("POLICY_INVALID", found)
        return found

    def names(self) -> builtins.list[str]:
        """As `SqlPolicies.names`. Raises UnavailableError (DATABASE_*)."""
        snapshot = self._cache.snapshot()
        return builtins.list(snapshot.policies) if snapshot.held else self._store.names()  # the database's order
