"""The typed facts the SEV-SNP verifier (`evidence.py`) hands to its appraiser (`verifier/appraisal/snp.py`):
`VerifiedEvidence[AttestationReport, SnpFacts].facts`.

Revocation (AMD pub. 57230 "Certificate Revocation List"; which CRL decides: `revocation.py`): "checked" when a
CRL signed by the pinned ARK-<product> was applied to the ASK/ASVK and the VCEK/VLEK, "off" when the operator
turned CRL checking off (`VerifyContext.check_crl`), "unavailable" when no valid CRL could be had (`crl_reason`
says why; policy decides: fail closed by default, `crl_fail_open` makes it a warning)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ...collateral.ordering import ItemVersion
from ..base import CollateralUsed
from .tcb import Product

RevocationState = Literal["checked", "off", "unavailable"]


@dataclass(frozen=True)
class SupersededCrl:
    """A CRL sent with the request that lost to the verifier's newer copy (cRLNumber, then thisUpdate:
    `verifier.collateral.ordering`): the version the request brought and the version that decided."""

    request: ItemVersion
    used: ItemVersion


@dataclass(frozen=True)
class SnpFacts:
    """What verification established besides the report itself (module docstring).

    `product`: the product the report verified for (its ARK, ASK/ASVK and TCB_VERSION layout), None when the
    verification failed before it was established; `crl`: the CRL that decided (revocation "checked" only);
    `crl_superseded`: the older request CRL it beat, if any; `crl_reason`: the error code that made revocation
    unavailable; `crl_request_error`: the error code of a request CRL that did not verify (the source's decided)."""

    revocation: RevocationState
    product: Product | None = None
    crl: CollateralUsed | None = None
    crl_superseded: SupersededCrl | None = None
    crl_reason: str | None = None
    crl_request_error: str | None = None
