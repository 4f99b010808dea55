"""Intel TDX collateral verification: the request's collateral and the verifier's source's, item by item.

Each item is verified on its own (collateral_checks.py; documents and parsing in collateral_documents.py); where
the request and the verifier's source both hold an item, both copies are verified and the newer decides
(freshness.py). The root CA CRL must not revoke the Intel SGX TCB Signing certificates used.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cryptography import x509

from verifier.clock import to_rfc3339 as _rfc3339
from verifier.collateral.base import CollateralUnavailableError
from verifier.errors import EvidenceError, VerifierError
from verifier.trust.anchors import TrustAnchors
from verifier.trust.chain import VerifiedLinks
from verifier.trust.crl import is_revoked

from .collateral_checks import check_pck_crl, check_qe_identity, check_root_ca_crl, check_tcb_info
from .collateral_documents import ITEM_FILES, C, TdxCollateral
from .freshness import (
    FROM_REQUEST,
    FROM_VENDOR,
    ITEMS,
    PCK_CRL,
    QE_IDENTITY,
    ROOT_CA_CRL,
    TCB_INFO,
    Candidate,
    ItemFacts,
    Superseded,
    newer,
)
from .tcbinfo import QeIdentity, TcbInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifiedCollateral:
    tcb_info: TcbInfo
    qe_identity: QeIdentity
    pck_crl: x509.CertificateRevocationList
    root_ca_crl: x509.CertificateRevocationList
    next_update: datetime.datetime  # earliest nextUpdate of the four items
    items: tuple[ItemFacts, ...] = ()  # the copies used: TCB info, QE identity, PCK CRL, root CA CRL
    superseded: tuple[Superseded, ...] = ()  # request copies older than the verifier's


@dataclass(frozen=True)
class Fetched:
    """What the verifier's collateral source delivered, item by item (see pcs.fetch_collateral)."""

    collateral: TdxCollateral
    sources: Mapping[str, str] = field(default_factory=dict)  # item -> "cache" | "vendor"
    errors: Mapping[str, VerifierError] = field(default_factory=dict)  # item -> why it was not delivered


NOTHING_FETCHED = Fetched(TdxCollateral(None, (), None, (), None, (), None))


def _same(item: str, a: TdxCollateral, b: TdxCollateral) -> bool:
    """Both hold byte-identical copies of `item` (then one verification serves both)."""
    if item == TCB_INFO:
        return bool(
            a.tcb_info
            and b.tcb_info
            and a.tcb_info.raw == b.tcb_info.raw
            and a.tcb_info.signature == b.tcb_info.signature
            and a.tcb_info_issuer_chain == b.tcb_info_issuer_chain
        )
    if item == QE_IDENTITY:
        return bool(
            a.qe_identity
            and b.qe_identity
            and a.qe_identity.raw == b.qe_identity.raw
            and a.qe_identity.signature == b.qe_identity.signature
            and a.qe_identity_issuer_chain == b.qe_identity_issuer_chain
        )
    if item == PCK_CRL:
        return a.pck_crl == b.pck_crl and a.pck_crl_issuer_chain == b.pck_crl_issuer_chain
    return a.root_ca_crl == b.root_ca_crl


def _decide(
    item: str,
    request: TdxCollateral,
    fetched: Fetched,
    at: datetime.datetime,
    check: Callable[[TdxCollateral, str], Candidate[C]],
) -> tuple[Candidate[C], Superseded | None]:
    """Both copies verified, the newer decides (freshness.newer). The request's copy must verify whenever it is
    present; the source's copy is ignored when it does not verify and the request has one (as when unavailable)."""
    theirs, ours = request.has(item), fetched.collateral.has(item)
    source = fetched.sources.get(item, FROM_VENDOR)
    if theirs and ours and _same(item, request, fetched.collateral):
        return check(fetched.collateral, source), None
    candidate = check(request, FROM_REQUEST) if theirs else None
    verifier: Candidate[C] | None = None
    if ours:
        try:
            verifier = check(fetched.collateral, source)
        except EvidenceError as exc:
            if candidate is None:
                raise
            level = logging.DEBUG if exc.code == "TDX_COLLATERAL_EXPIRED" else logging.WARNING
            log.log(
                level,
                "the verifier's %s does not verify at %s (%s); the request's copy is used",
                item,
                _rfc3339(at),
                exc.code,
            )
    return newer(candidate, verifier)


def _available(request: TdxCollateral, fetched: Fetched) -> None:
    """Every item from the request or the source, else the source's reason (e.g. COLLATERAL_OFFLINE)."""
    lacking = [item for item in ITEMS if not request.has(item) and not fetched.collateral.has(item)]
    if not lacking:
        return
    errors = [fetched.errors[item] for item in lacking if item in fetched.errors]
    unavailable = [e for e in errors if isinstance(e, CollateralUnavailableError)]
    if unavailable or errors:
        raise (unavailable or errors)[0]
    missing = [name for name in request.missing() if any(name in ITEM_FILES[item] for item in lacking)]
    raise CollateralUnavailableError("COLLATERAL_MISSING", f"TDX collateral incomplete: {', '.join(missing)}")


def _check_signers(
    signers: tuple[tuple[str, x509.Certificate], ...],
    root_ca_crl: x509.CertificateRevocationList,
) -> None:
    """The TCB Signing certificate is revoked through the root CA CRL ("SGX PCK Certificate and CRL Profile")."""
    for what, signer in signers:
        if is_revoked(root_ca_crl, signer):
            raise EvidenceError(
                "TDX_COLLATERAL_SIGNER_REVOKED",
                f"the {what} signer is revoked by the root CA CRL",
                expected="not revoked",
                actual=f"serial {signer.serial_number:x}",
            )


def verify_collateral(
    col: TdxCollateral,
    anchors: TrustAnchors,
    at: datetime.datetime,
    *,
    pck_issuer: x509.Name,
    fetched: Fetched = NOTHING_FETCHED,
    links: VerifiedLinks | None = None,
) -> VerifiedCollateral:
    """Chains, signatures, id/version, validity windows and CRLs of the request's collateral `col` and of what the
    verifier's source delivered (`fetched`) at `at`; per item the newer verified copy decides (freshness.py).

    Raises CollateralUnavailableError when an item is in neither (the source's code, else COLLATERAL_MISSING),
    EvidenceError when a used or requested item does not verify (module docstring, `tcb_signer`), and
    TDX_COLLATERAL_SIGNER_REVOKED when the root CA CRL revokes a TCB Signing certificate used."""
    _available(col, fetched)
    at = at.replace(tzinfo=datetime.UTC) if at.tzinfo is None else at.astimezone(datetime.UTC)
    tcb, tcb_old = _decide(TCB_INFO, col, fetched, at, lambda c, s: check_tcb_info(c, anchors, at, s, links))
    qe, qe_old = _decide(QE_IDENTITY, col, fetched, at, lambda c, s: check_qe_identity(c, anchors, at, s, links))
    pck, pck_old = _decide(
        PCK_CRL, col, fetched, at, lambda c, s: check_pck_crl(c, anchors, at, s, pck_issuer=pck_issuer, links=links)
    )
    (pck_crl, root) = pck.value
    root_crl, root_old = _decide(ROOT_CA_CRL, col, fetched, at, lambda c, s: check_root_ca_crl(c, root, at, s, links))
    _check_signers((("TCB info", tcb.value[1]), ("QE identity", qe.value[1])), root_crl.value)
    items = (tcb.facts, qe.facts, pck.facts, root_crl.facts)
    return VerifiedCollateral(
        tcb.value[0],
        qe.value[0],
        pck_crl,
        root_crl.value,
        min(facts.next_update for facts in items),
        items,
        tuple(s for s in (tcb_old, qe_old, pck_old, root_old) if s is not None),
    )
