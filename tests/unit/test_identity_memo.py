"""verifier.identity_memo: values derived from frozen objects, memoised by identity, never confused by a reused id."""

from __future__ import annotations

import dataclasses
import gc

import pytest

from verifier.appraisal.policy import Policy
from verifier.appraisal.policy_json import policy_sha256
from verifier.identity_memo import IdentityMemo


class Box:
    def __init__(self, value: int) -> None:
        self.value = value


def test_made_once_per_object_and_extra() -> None:
    memo: IdentityMemo[int] = IdentityMemo()
    a, b, calls = Box(1), Box(2), []

    def make(box: Box, extra: int) -> int:
        calls.append((box.value, extra))
        return box.value * 10 + extra

    assert memo.get(a, 1, lambda: make(a, 1)) == 11
    assert memo.get(a, 1, lambda: make(a, 1)) == 11
    assert memo.get(a, 2, lambda: make(a, 2)) == 12
    assert memo.get(b, 1, lambda: make(b, 1)) == 21
    assert calls == [(1, 1), (1, 2), (2, 1)]


def test_an_entry_keeps_its_object_so_its_id_is_never_reused() -> None:
    memo: IdentityMemo[int] = IdentityMemo(size=1)
    memo.get(Box(1), None, lambda: 1)  # the only reference is the memo's
    gc.collect()
    fresh = Box(2)
    assert memo.get(fresh, None, lambda: 2) == 2  # whatever its id, never the other box's value


def test_bounded_and_errors_are_not_kept() -> None:
    memo: IdentityMemo[int] = IdentityMemo(size=2)
    boxes = [Box(i) for i in range(5)]
    for box in boxes:
        memo.get(box, None, lambda box=box: box.value)
    assert len(memo) == 2

    def fails() -> int:
        raise KeyError("x")

    with pytest.raises(KeyError):
        memo.get(boxes[0], "e", fails)
    assert memo.get(boxes[0], "e", lambda: 7) == 7
    with pytest.raises(ValueError):
        IdentityMemo(size=0)


def test_policy_hash_is_memoised_per_policy_and_equal_for_equal_policies() -> None:
    first = Policy(policy_id="memo-test")
    second = dataclasses.replace(first, require_nonce=not first.require_nonce)
    again = Policy(policy_id="memo-test")
    assert policy_sha256(first) == policy_sha256(first) == policy_sha256(again)
    assert policy_sha256(second) != policy_sha256(first)
