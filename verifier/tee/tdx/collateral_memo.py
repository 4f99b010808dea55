"""Verified TDX collateral, remembered over the span of appraisal times in which its verification cannot change.

`collateral.verify_collateral` is a pure function of the collateral's bytes (the request's and the source's), the
labels and errors of what the source delivered, the pinned anchors, the PCK certificate's issuer and the appraisal
time `at`, and it consults `at` only by comparing it with instants those inputs carry:

- notBefore / notAfter of every certificate of the three issuer chains and of the pinned Intel roots that stand in
  for a chain's top (RFC 5280 section 6.1.3 (a)(2), `trust.chain.check_validity`: notBefore <= at <= notAfter);
- thisUpdate / nextUpdate of the PCK CRL and the root CA CRL, issueDate / nextUpdate of the TCB info and the QE
  identity (`trust.crl.check_collateral_window`: start <= at < end).

Everything else it checks (signatures, names, constraints, id and version, revocation, which copy is newer) does
not depend on `at`. Between two consecutive such instants every one of those comparisons comes out the same, so a
verification that succeeded at `at0` is the verification at any `at` when no instant lies in the closed span
between `at0` and `at`: the memo returns it only then, and verifies again otherwise (an item past its nextUpdate
is refused at once, as without the memo). Only successes are kept (a failure is re-verified, with its exact code);
an instant of a copy that fails for another reason is still a boundary (a source copy that is not yet valid may
become the newer one). Keys are the contents themselves (bytes, DER), the source's labels and error codes, the
PCK issuer's name key and the anchors' identity (the entry holds the anchors, so an id is never reused while it
lives). Bounded LRU, thread-safe (reads are one dict lookup; writes take a lock)."""

from __future__ import annotations

import bisect
import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass

from cryptography import x509

from verifier.errors import VerifierError
from verifier.trust.anchors import TrustAnchors
from verifier.trust.chain import VerifiedLinks
from verifier.trust.names import NameKey

from .collateral import Fetched, VerifiedCollateral, verify_collateral
from .collateral_checks import VENDOR, crl_of, qe_identity_of, tcb_info_of
from .collateral_documents import SignedJson, TdxCollateral
from .tcbinfo import QeIdentity, TcbInfo

DEFAULT_SIZE = 64


@dataclass(frozen=True)
class _Entry:
    anchors: TrustAnchors
    at: dt.datetime  # the appraisal time it was verified at
    after: dt.datetime | None  # the latest instant before `at` (None: none)
    before: dt.datetime | None  # the earliest instant after `at` (None: none)
    on_instant: bool  # `at` is itself one of the instants: the entry serves exactly `at` only
    value: VerifiedCollateral

    def covers(self, at: dt.datetime) -> bool:
        if at == self.at:
            return True
        if self.on_instant:
            return False
        return (self.after is None or self.after < at) and (self.before is None or at < self.before)


def _signed(doc: SignedJson | None) -> tuple[bytes, bytes] | None:
    return None if doc is None else (doc.raw, doc.signature)


def _content(col: TdxCollateral) -> tuple[Hashable, ...]:
    """Everything of `col` the verification reads, by content (chains compare and hash by DER)."""
    return (
        _signed(col.tcb_info),
        col.tcb_info_issuer_chain,
        _signed(col.qe_identity),
        col.qe_identity_issuer_chain,
        col.pck_crl,
        col.pck_crl_issuer_chain,
        col.root_ca_crl,
    )


def _error_code(error: VerifierError) -> str:
    return error.code


def _key(request: TdxCollateral, fetched: Fetched, pck_issuer: NameKey, anchors: TrustAnchors) -> Hashable:
    return (
        _content(request),
        _content(fetched.collateral),
        tuple(sorted(fetched.sources.items())),
        tuple(sorted((item, _error_code(error)) for item, error in fetched.errors.items())),
        pck_issuer,
        id(anchors),
    )


def _utc(at: dt.datetime) -> dt.datetime:
    return at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)


def _window_of(doc: SignedJson | None, parse: Callable[[SignedJson], TcbInfo | QeIdentity]) -> tuple[dt.datetime, ...]:
    """issueDate and nextUpdate of a TCB info / QE identity (parsed once, as the checks parse it); nothing when it
    does not parse (its check then fails whatever the time)."""
    if doc is None:
        return ()
    try:
        parsed = parse(doc)
    except VerifierError:
        return ()
    return (parsed.issue_date, parsed.next_update)


def _crl_window(data: bytes | None) -> tuple[dt.datetime, ...]:
    if data is None:
        return ()
    try:
        crl = crl_of(data, "CRL")
    except VerifierError:
        return ()
    return tuple(t for t in (crl.last_update_utc, crl.next_update_utc) if t is not None)


def _certificates(col: TdxCollateral, anchors: TrustAnchors) -> Iterator[x509.Certificate]:
    yield from col.tcb_info_issuer_chain
    yield from col.qe_identity_issuer_chain
    yield from col.pck_crl_issuer_chain
    yield from anchors.roots(VENDOR)


def instants(request: TdxCollateral, fetched: TdxCollateral, anchors: TrustAnchors) -> list[dt.datetime]:
    """Every instant (module docstring) that the verification of `request` and `fetched` compares the appraisal
    time with, sorted, in UTC. Never raises."""
    found: set[dt.datetime] = set()
    for col in (request, fetched):
        found.update(_window_of(col.tcb_info, tcb_info_of))
        found.update(_window_of(col.qe_identity, qe_identity_of))
        found.update(_crl_window(col.pck_crl))
        found.update(_crl_window(col.root_ca_crl))
        for cert in _certificates(col, anchors):
            found.update((cert.not_valid_before_utc, cert.not_valid_after_utc))
    return sorted(_utc(t) for t in found)


def _entry(value: VerifiedCollateral, at: dt.datetime, points: list[dt.datetime], anchors: TrustAnchors) -> _Entry:
    low = bisect.bisect_left(points, at)
    high = bisect.bisect_right(points, at)
    after = points[low - 1] if low > 0 else None
    before = points[high] if high < len(points) else None
    return _Entry(anchors, at, after, before, high > low, value)


class VerifiedCollateralMemo:
    """`verify(...)`: `verify_collateral(...)`, or its earlier success when that holds at this time (module
    docstring)."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        if size < 1:
            raise ValueError("size must be >= 1")
        self._size = size
        self._lock = threading.Lock()
        self._items: OrderedDict[Hashable, _Entry] = OrderedDict()

    def verify(
        self,
        request: TdxCollateral,
        anchors: TrustAnchors,
        at: dt.datetime,
        *,
        pck_issuer: x509.Name,
        pck_issuer_key: NameKey,
        fetched: Fetched,
        links: VerifiedLinks | None = None,
    ) -> VerifiedCollateral:
        """What `collateral.verify_collateral` returns for these arguments (`pck_issuer_key`: the name key of
        `pck_issuer`, `trust.names`). Raises what it raises (nothing of a failure is kept)."""
        at = _utc(at)
        key = _key(request, fetched, pck_issuer_key, anchors)
        entry = self._items.get(key)  # one atomic dict read under the GIL
        if entry is not None and entry.anchors is anchors and entry.covers(at):
            return entry.value
        value = verify_collateral(request, anchors, at, pck_issuer=pck_issuer, fetched=fetched, links=links)
        fresh = _entry(value, at, instants(request, fetched.collateral, anchors), anchors)
        with self._lock:
            self._items[key] = fresh
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        """Forget every entry (benchmarks' cold runs, tests)."""
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
