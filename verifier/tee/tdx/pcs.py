"""Turning Intel PCS v4 / PCCS collateral items into `TdxCollateral` for the TDX verifier. The items themselves
(their keys, the JSON envelope {"body": <JSON text, or hex of the DER CRL>, "issuer_chain": "<PEM>"}, nextUpdate)
are `verifier.collateral.pcs_items`, and the client that fetches them (`IntelPcs`) is `verifier.collateral.pcs`,
beside the AMD KDS client: nothing under verifier/tee/ imports an HTTP module, nothing under verifier/collateral/
imports verifier/tee/. Nothing is verified here (collateral.py does).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools

from verifier.collateral.base import CollateralKey, CollateralSource
from verifier.collateral.pcs_items import (
    MEMBERS,
    open_envelope,
    pck_crl_key,
    qe_identity_key,
    root_ca_crl_key,
    tcb_info_key,
)
from verifier.errors import EvidenceError, UnavailableError, VerifierError

from .collateral import NOTHING_FETCHED, Fetched
from .collateral_documents import TdxCollateral, collateral_from_files
from .freshness import PCK_CRL, QE_IDENTITY, ROOT_CA_CRL, TCB_INFO, source_label


def collateral_from_source(source: CollateralSource, fmspc: bytes, ca: str, at: dt.datetime) -> TdxCollateral:
    """Fetch TCB info (for `fmspc`), QE identity, PCK CRL (of the `ca` PCK CA) and root CA CRL."""
    files: dict[str, bytes] = {}
    for key, name in (
        (tcb_info_key(fmspc), "tcb_info"),
        (qe_identity_key(), "qe_identity"),
        (pck_crl_key(ca), "pck_crl"),
        (root_ca_crl_key(), "root_ca_crl"),
    ):
        body, chain = open_envelope(key.kind, source.fetch(key, at=at).data)
        files[f"{name}.json" if key.kind in MEMBERS else f"{name}.der"] = body
        if chain:
            files[f"{name}_issuer_chain.pem"] = chain
    return collateral_from_files(files)


def _keys(fmspc: bytes, ca: str) -> tuple[tuple[str, CollateralKey, str], ...]:
    return (
        (TCB_INFO, tcb_info_key(fmspc), "tcb_info"),
        (QE_IDENTITY, qe_identity_key(), "qe_identity"),
        (PCK_CRL, pck_crl_key(ca), "pck_crl"),
        (ROOT_CA_CRL, root_ca_crl_key(), "root_ca_crl"),
    )


@functools.lru_cache(maxsize=64)
def _item_collateral(kind: str, name: str, data: bytes) -> TdxCollateral:
    """One item's envelope as collateral (memoised by the envelope bytes: a cache serves the same item to many
    appraisals). Raises CollateralUnavailableError COLLATERAL_MALFORMED or EvidenceError like the request's."""
    body, chain = open_envelope(kind, data)
    files = {f"{name}.json" if kind in MEMBERS else f"{name}.der": body}
    if chain:
        files[f"{name}_issuer_chain.pem"] = chain
    return collateral_from_files(files)


def _merge(parts: list[TdxCollateral]) -> TdxCollateral:
    merged = NOTHING_FETCHED.collateral
    for part in parts:
        merged = dataclasses.replace(
            merged, **{f.name: getattr(part, f.name) for f in dataclasses.fields(part) if getattr(part, f.name)}
        )
    return merged


def fetch_collateral(source: CollateralSource, fmspc: bytes, ca: str, at: dt.datetime) -> Fetched:
    """Ask `source` for each of TCB info (for `fmspc`), QE identity, PCK CRL (of the `ca` PCK CA) and root CA CRL.
    Never raises for an item: what the source cannot deliver (UnavailableError, e.g. COLLATERAL_OFFLINE) or
    delivers unparseable (EvidenceError) is recorded in `errors`; `sources` says "cache" or "vendor" per item."""
    parts: list[TdxCollateral] = []
    sources: dict[str, str] = {}
    errors: dict[str, VerifierError] = {}
    for item, key, name in _keys(fmspc, ca):
        try:
            fetched = source.fetch(key, at=at)
            parts.append(_item_collateral(key.kind, name, fetched.data))
        except (UnavailableError, EvidenceError) as error:
            errors[item] = error
            continue
        sources[item] = source_label(fetched.source)
    return Fetched(_merge(parts), sources, errors)
