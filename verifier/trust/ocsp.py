"""OCSP status of a certificate chain (RFC 6960), as NVIDIA's verifiers check the GPU device chain and the RIM
signing chains (nv-local-gpu-verifier cc_admin_utils.py `ocsp_certificate_chain_validation`).

`check_chain` checks every certificate of a verified chain (leaf first, root last) except the root, and except the
leaf when `skip_leaf` (NVIDIA skips the device chain's FMC leaf), each against its issuer, the next certificate:

1. the responses supplied with the evidence (DER OCSPResponses, e.g. the collateral files "ocsp/*.der"), each
   verified by `verifier.trust.ocsp_response.verify_response` (signer = the issuing CA or its delegated responder
   with id-kp-OCSPSigning, ECDSA signature, CertID, window thisUpdate <= at < nextUpdate);
2. the `OcspCache` of responses verified before, while the appraisal time is within their window;
3. only when neither gives a usable status, `fetch` (NVIDIA's responder through the collateral source; offline:
   none): a request with a SHA-384 CertID and a fresh 32-byte nonce, which the response must echo.

Of several usable responses the newest (thisUpdate) decides, revoked winning a tie, so an old "good" cannot mask a
newer "revoked". Outcome: "revoked" as soon as one certificate is revoked (any reason, certificateHold included:
NVIDIA's verifier passes a held certificate only with `--allow_hold_cert`, and never for the device chain);
"unavailable" when some certificate has no usable status (no response, a response for another certificate, a bad
signature or signer, a wrong nonce, outside its window, status unknown); else "good". `check_chain` never raises:
every problem is said in `detail` (which certificate, by subject CN, and why). A response fetched from the source
that fails for a reason that does not depend on the appraisal time is handed back (`OcspFetcher.reject_ocsp`) so
the collateral cache drops it.

The cache keeps verified statuses by (SHA-256 of the issuer certificate, serial number) until their nextUpdate,
never past it; the verifier owns one (like `verifier.trust.chain.VerifiedLinks`), there is no module-level cache.
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509 import ocsp

from verifier.errors import UnavailableError
from verifier.trust.digests import cert_sha256
from verifier.trust.ocsp_response import (
    CLOCK_SKEW,
    NONCE_BYTES,
    CertId,
    OcspResponseError,
    VerifiedStatus,
    build_request,
    cert_id,
    common_name,
    load_response,
    verify_response,
)

__all__ = [
    "CertId",
    "CertStatus",
    "FetchedOcsp",
    "OcspCache",
    "OcspFetcher",
    "OcspOutcome",
    "build_request",
    "cert_id",
    "check_chain",
    "new_nonce",
]

MAX_CHAIN = 8
MAX_RESPONSES = 16  # supplied with one piece of evidence
MAX_DETAIL = 600
Status = Literal["good", "revoked", "unavailable"]


@dataclass(frozen=True)
class CertStatus:
    """One checked certificate: its subject CN, status, why (`detail`), where the status came from ("request",
    "cache", "responder" or "none") and the window of the response used."""

    subject: str
    status: Status
    detail: str
    source: str = "none"
    this_update: dt.datetime | None = None
    next_update: dt.datetime | None = None


@dataclass(frozen=True)
class OcspOutcome:
    status: Status
    detail: str  # which certificate (subject CN) and why, for findings and logs
    next_update: dt.datetime | None  # the earliest nextUpdate of the responses used
    certificates: tuple[CertStatus, ...] = ()  # every certificate checked, in chain order


@dataclass(frozen=True)
class FetchedOcsp:
    """A response from the responder: the DER OCSPResponse, the nonce its request carried, and whatever the
    fetcher needs to take it back (`handle`, e.g. the collateral item)."""

    response: bytes
    nonce: bytes | None
    handle: object = None


class OcspFetcher(Protocol):
    """Where a missing status comes from (`verifier.collateral.nvidia_keys.SourceOcspFetcher`: the collateral
    source with NVIDIA's responder behind it)."""

    def fetch_ocsp(self, cid: CertId, *, at: dt.datetime) -> FetchedOcsp:
        """The responder's answer for `cid`. Raises UnavailableError (offline, network, timeout...)."""
        ...

    def reject_ocsp(self, fetched: FetchedOcsp, *, reason: str) -> None:
        """`fetched` failed verification for `reason` (not the appraisal time): forget it. Never raises."""
        ...


def new_nonce() -> bytes:
    """A fresh random OCSP nonce of NONCE_BYTES bytes."""
    return secrets.token_bytes(NONCE_BYTES)


def _utc(at: dt.datetime) -> dt.datetime:
    return at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)


def _newer(a: VerifiedStatus, b: VerifiedStatus) -> bool:
    """`a` decides over `b`: a later thisUpdate, or the same one and revoked."""
    return (a.this_update, a.status == "revoked") > (b.this_update, b.status == "revoked")


class OcspCache:
    """Verified statuses (good or revoked) by (issuer SHA-256, serial), at most `max_entries` (least recently used
    dropped first). An entry is served only while thisUpdate - CLOCK_SKEW <= at < nextUpdate; one without a
    nextUpdate is never kept. Of two statuses for one key the newer (`_newer`) is kept. Thread-safe."""

    def __init__(self, max_entries: int = 1024) -> None:
        self._max = max_entries
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple[bytes, int], VerifiedStatus] = OrderedDict()

    def get(self, key: tuple[bytes, int], at: dt.datetime) -> VerifiedStatus | None:
        """The status kept for `key` if usable at `at` (UTC). Never raises."""
        with self._lock:
            held = self._items.get(key)
            if held is None or held.next_update is None:
                return None
            if not held.this_update - CLOCK_SKEW <= at < held.next_update:
                return None
            self._items.move_to_end(key)
            return held

    def put(self, key: tuple[bytes, int], status: VerifiedStatus) -> None:
        """Keep `status` for `key` unless it is unknown, has no nextUpdate, or an entry held is newer."""
        if status.status == "unknown" or status.next_update is None:
            return
        with self._lock:
            held = self._items.get(key)
            if held is None or not _newer(held, status):
                self._items[key] = status
            self._items.move_to_end(key)
            while len(self._items) > self._max:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


def check_chain(
    chain: Sequence[x509.Certificate],
    *,
    at: dt.datetime,
    responses: Sequence[bytes] = (),
    fetch: OcspFetcher | None = None,
    skip_leaf: bool = True,
    cache: OcspCache | None = None,
) -> OcspOutcome:
    """The OCSP status of `chain` (leaf first, root last, already validated) at `at` (module docstring). Never
    raises: anything wrong is status "unavailable" with a `detail`."""
    at = _utc(at)
    if len(chain) > MAX_CHAIN:
        return OcspOutcome("unavailable", f"a chain of {len(chain)} certificates exceeds {MAX_CHAIN}", None)
    if len(responses) > MAX_RESPONSES:
        return OcspOutcome("unavailable", f"{len(responses)} OCSP responses exceed {MAX_RESPONSES}", None)
    loaded: list[ocsp.OCSPResponse] = []
    problems: list[str] = []
    for der in responses:
        try:
            loaded.append(load_response(bytes(der)))
        except OcspResponseError as error:
            problems.append(error.message)
    results: list[CertStatus] = []
    for index in range(1 if skip_leaf else 0, len(chain) - 1):
        try:
            result = _check_one(chain[index], chain[index + 1], at, loaded, fetch, cache)
        except (ValueError, TypeError, UnsupportedAlgorithm) as error:  # a certificate cryptography cannot encode
            result = CertStatus(common_name(chain[index]), "unavailable", f"cannot be checked: {str(error)[:120]}")
        if result.status == "unavailable" and problems:
            result = CertStatus(result.subject, result.status, f"{result.detail}; supplied: {problems[0]}")
        results.append(result)
        if result.status == "revoked":
            break
    return _combine(results)


def _check_one(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    at: dt.datetime,
    supplied: Sequence[ocsp.OCSPResponse],
    fetch: OcspFetcher | None,
    cache: OcspCache | None,
) -> CertStatus:
    """The status of `cert`: supplied responses and the cache, else the fetcher (module docstring)."""
    subject = common_name(cert)
    if cert.issuer != issuer.subject:
        return CertStatus(subject, "unavailable", f"{subject}: not issued by the next certificate of the chain")
    best: tuple[VerifiedStatus, str] | None = None
    problem = "no OCSP response"
    for response in supplied:
        try:
            verified = verify_response(response, cert, issuer, at=at)
        except OcspResponseError as error:
            if error.problem != "other-certificate":
                problem = f"supplied response refused: {error.message}"
            continue
        if verified.status == "unknown":
            problem = "supplied response: status unknown"
        elif best is None or _newer(verified, best[0]):
            best = (verified, "request")
    key = (cert_sha256(issuer), cert.serial_number)
    cached = cache.get(key, at) if cache is not None else None
    if cached is not None and (best is None or _newer(cached, best[0])):
        best = (cached, "cache")
    if best is None and fetch is not None:
        fetched, why = _fetch(cert, issuer, at, fetch)
        best = (fetched, "responder") if fetched is not None else None
        problem = why if problem == "no OCSP response" else f"{problem}; {why}"
    if best is None:
        return CertStatus(subject, "unavailable", f"{subject}: {problem}")
    verified, source = best
    if cache is not None and source != "cache":
        cache.put(key, verified)
    return _result(subject, verified, source)


def _fetch(
    cert: x509.Certificate, issuer: x509.Certificate, at: dt.datetime, fetch: OcspFetcher
) -> tuple[VerifiedStatus | None, str]:
    """The responder's status for `cert`, or None and why not."""
    try:
        fetched = fetch.fetch_ocsp(cert_id(cert, issuer), at=at)
    except UnavailableError as error:
        return None, f"no OCSP response ({error.code}: {error.message})"
    except (KeyError, ValueError, TypeError) as error:
        return None, f"no OCSP request possible: {str(error)[:120]}"
    try:
        verified = verify_response(load_response(fetched.response), cert, issuer, at=at, nonce=fetched.nonce)
    except OcspResponseError as error:
        if error.problem != "time":
            fetch.reject_ocsp(fetched, reason=f"OCSP_RESPONSE_{error.problem.upper().replace('-', '_')}")
        return None, f"responder's answer refused: {error.message}"
    if verified.status == "unknown":
        return None, "the responder does not know the certificate (status unknown)"
    return verified, ""


def _result(subject: str, verified: VerifiedStatus, source: str) -> CertStatus:
    window = f"thisUpdate {_rfc3339(verified.this_update)}"
    if verified.status == "revoked":
        detail = f"{subject}: revoked ({verified.reason}) per OCSP response ({source}, {window})"
        return CertStatus(subject, "revoked", detail, source, verified.this_update, verified.next_update)
    detail = f"{subject}: good per OCSP response ({source}, {window})"
    return CertStatus(subject, "good", detail, source, verified.this_update, verified.next_update)


def _combine(results: Sequence[CertStatus]) -> OcspOutcome:
    nexts = [r.next_update for r in results if r.next_update is not None]
    next_update = min(nexts) if nexts else None
    revoked = [r for r in results if r.status == "revoked"]
    missing = [r for r in results if r.status == "unavailable"]
    if revoked:
        return OcspOutcome("revoked", revoked[0].detail[:MAX_DETAIL], next_update, tuple(results))
    if missing:
        detail = _grouped(missing)
        return OcspOutcome("unavailable", detail[:MAX_DETAIL], next_update, tuple(results))
    if not results:
        return OcspOutcome("good", "no certificate to check (only the root, and the leaf when skipped)", None, ())
    detail = f"{len(results)} certificate(s) good per OCSP: " + ", ".join(r.subject for r in results)
    return OcspOutcome("good", detail[:MAX_DETAIL], next_update, tuple(results))


def _grouped(missing: Sequence[CertStatus]) -> str:
    """ "A, B: why; C: why else": the certificates of one problem named together, in chain order."""
    problems: dict[str, list[str]] = {}
    for result in missing:
        prefix = f"{result.subject}: "
        problem = result.detail[len(prefix) :] if result.detail.startswith(prefix) else result.detail
        problems.setdefault(problem, []).append(result.subject)
    return "; ".join(f"{', '.join(subjects)}: {problem}" for problem, subjects in problems.items())


def _rfc3339(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
