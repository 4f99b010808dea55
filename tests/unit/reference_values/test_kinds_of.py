"""kinds_of / known_kind_set (verifier/reference_values/kinds.py): the per-TEE kinds every appraisal asks for, looked up
once, equal to filtering the whole table, and refreshed when a kind is registered."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from verifier.appraisal.registry import get_scheme, tee_names
from verifier.reference_values import kinds as kinds_module
from verifier.reference_values.kinds import kinds_of, known_kind_set, known_kinds, register_kind


@pytest.fixture
def _restored_table() -> Iterator[None]:
    saved = dict(kinds_module._KINDS)
    yield
    kinds_module._KINDS.clear()
    kinds_module._KINDS.update(saved)
    known_kind_set.cache_clear()
    kinds_of.cache_clear()


@pytest.mark.parametrize("tee", tee_names())
def test_the_kinds_of_a_tee_are_the_table_filtered_by_its_scheme(tee: str) -> None:
    scheme = get_scheme(tee)
    assert kinds_of(tee) == tuple(k for k in known_kinds() if scheme.owns_kind(k))
    assert known_kind_set() == frozenset(known_kinds())


@pytest.mark.usefixtures("_restored_table")
def test_registering_a_kind_is_seen_at_once() -> None:
    before = kinds_of("nitro")
    register_kind("nitro.pcr_test_only", 48)
    assert kinds_of("nitro") == tuple(sorted((*before, "nitro.pcr_test_only")))
    assert "nitro.pcr_test_only" in known_kind_set()
