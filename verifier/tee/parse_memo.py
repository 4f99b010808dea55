"""Evidence parsed before, kept by its exact bytes: the same report, quote or document is decoded once per process.

Each TEE's parser (`tee/<kind>/`) is a pure function of the evidence bytes (no time, no I/O, no crypto) and returns
a frozen dataclass of immutable values, so what parsed successfully can be shared by every later appraisal of the
same bytes (issue 13 item 3: parse caches by content). Only successes are kept: malformed evidence raises its
`ParseError` on every call. Everything an appraisal decides about the parsed evidence (signatures, chains at the
appraisal time, revocation, freshness of the nonce, policy) is still decided on every appraisal. The key is the input
`bytes` itself, hashed with Python's randomised SipHash (`verifier.trust.cert_cache.ContentCache`, bounded by entries
and by the bytes of the keys it holds, least recently used evicted first).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from verifier.trust.cert_cache import CacheInfo, ContentCache

T = TypeVar("T")

MAX_ENTRIES = 64
MAX_KEY_BYTES = 1024 * 1024  # evidence larger than an eighth of this (128 KiB) is parsed every time


class ParseMemo(Generic[T]):
    """`memo(data)` is `parse(data)`, decoded once per distinct `data` (thread-safe, bounded)."""

    def __init__(self, name: str, parse: Callable[[bytes], T]) -> None:
        self._parse = parse
        self._cache: ContentCache[T] = ContentCache(name, max_entries=MAX_ENTRIES, max_bytes=MAX_KEY_BYTES)

    def __call__(self, data: bytes) -> T:
        """The parse of `data`; raises whatever the parser raises for it (its `ParseError`), every time."""
        if type(data) is bytes:
            key = data
        elif isinstance(data, bytearray | memoryview):
            key = bytes(data)
        else:  # not bytes at all: the parser refuses it with its own error
            return self._parse(data)
        kept = self._cache.get(key)
        if kept is not None:
            return kept
        return self._cache.put(key, self._parse(key))

    def clear(self) -> None:
        """Forget every parse (cold benchmarks, tests). Never raises."""
        self._cache.clear()

    def info(self) -> CacheInfo:
        """Hits, misses and size. Never raises."""
        return self._cache.info()
