"""Identifiers the service mints for what it records: appraisal ids, token ids (`jti`) and request ids.

UUID version 7 (RFC 9562 s5.7): 48 bits of Unix time in milliseconds, then 74 random bits (the version and variant
bits set as the RFC says). Ids made close in time sort close together, so the B-tree indexes they key (appraisals'
primary key, `token_id`, `request_id`) take each batch's rows on one or two leaf pages at the right edge instead of
on a random page each: fewer pages read back and written per commit (SQLite's WAL frames, PostgreSQL's full-page
writes), a cache that stays small as the tables grow. 74 random bits per millisecond keep them unguessable and
unique. The time in an id is the wall clock's at minting (`time.time_ns`), not the appraisal time (which a test or
`--at` may fix): an id tells when it was minted to the millisecond, which the token's `iat` already says to the
second.
"""

from __future__ import annotations

import os
import time

_MS_MASK = (1 << 48) - 1


def uuid7_bytes() -> bytes:
    """16 bytes of a fresh UUIDv7 (RFC 9562 s5.7): unix_ts_ms (48), ver=7 (4), rand_a (12), var=0b10 (2), rand_b
    (62). Never raises."""
    millis = (time.time_ns() // 1_000_000) & _MS_MASK
    raw = bytearray(millis.to_bytes(6, "big") + os.urandom(10))
    raw[6] = (raw[6] & 0x0F) | 0x70  # version 7
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 9562 variant
    return bytes(raw)


def uuid7_hex() -> str:
    """A fresh UUIDv7 as 32 lowercase hex digits (a token's `jti`). Never raises."""
    return uuid7_bytes().hex()


def uuid7() -> str:
    """A fresh UUIDv7 in the canonical 8-4-4-4-12 form (an appraisal or request id). Never raises."""
    text = uuid7_bytes().hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
