"""verifier.ids: UUIDv7 (RFC 9562 s5.7) for appraisal, token and request ids, and where the service uses them."""

from __future__ import annotations

import time
import uuid

from tests.service_helpers import make_harness
from verifier.ids import uuid7, uuid7_bytes, uuid7_hex
from verifier.logging_setup import accept_request_id
from verifier.service import AppraisalRequest
from verifier.storage.engine import Database


def _millis(value: uuid.UUID) -> int:
    return value.int >> 80


def test_uuid7_is_a_canonical_version_7_rfc_9562_uuid() -> None:
    seen = set()
    for _ in range(5000):
        text = uuid7()
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (7, uuid.RFC_4122, text)
        seen.add(text)
    assert len(seen) == 5000


def test_uuid7_hex_is_the_same_form_without_dashes() -> None:
    text = uuid7_hex()
    assert len(text) == 32 and text == text.lower()
    assert uuid.UUID(hex=text).version == 7


def test_uuid7_carries_the_wall_clock_in_milliseconds_and_sorts_by_it() -> None:
    before = time.time_ns() // 1_000_000
    first = uuid.UUID(bytes=uuid7_bytes())
    time.sleep(0.003)
    second = uuid.UUID(bytes=uuid7_bytes())
    after = time.time_ns() // 1_000_000
    assert before <= _millis(first) < _millis(second) <= after
    assert str(first) < str(second) and first.hex < second.hex  # text order is time order across milliseconds


def test_uuid7_keeps_74_random_bits() -> None:
    """Two ids of the same millisecond differ (the random part is not a counter that a caller could guess), and
    every one of the 74 bits outside the time, version and variant takes both values over 200 ids: none of them is
    overwritten by the version or variant bits or left constant."""
    values = [uuid.UUID(bytes=uuid7_bytes()) for _ in range(200)]
    randoms = [((v.int >> 64) & 0xFFF) << 62 | (v.int & ((1 << 62) - 1)) for v in values]
    assert len(set(randoms)) == 200
    for bit in range(74):
        assert {(r >> bit) & 1 for r in randoms} == {0, 1}, bit


def test_a_minted_request_id_is_a_uuid7() -> None:
    assert uuid.UUID(accept_request_id(None)).version == 7
    assert uuid.UUID(accept_request_id("bad id with spaces")).version == 7
    assert accept_request_id("caller-1") == "caller-1"


def test_appraisal_ids_and_token_ids_are_uuid7_in_minting_order(db: Database) -> None:
    h = make_harness(db)
    h.approve()
    results = []
    for _ in range(3):
        results.append(h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint())))
        time.sleep(0.002)
    appraisal_ids = [uuid.UUID(r.appraisal_id) for r in results]
    token_ids = [uuid.UUID(hex=r.token_id) for r in results]
    assert {u.version for u in appraisal_ids + token_ids} == {7}
    assert [str(u) for u in appraisal_ids] == sorted(str(u) for u in appraisal_ids)
    assert [u.hex for u in token_ids] == sorted(u.hex for u in token_ids)
