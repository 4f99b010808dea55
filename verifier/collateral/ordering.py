"""Which of two versions of one collateral item is the newer (ARCHITECTURE.md "Collateral freshness").

- CRLs (AMD KDS `amd.crl`; Intel `intel.pck_crl`, `intel.root_ca_crl`): the cRLNumber extension (RFC 5280
  section 5.2.3: "a monotonically increasing sequence number" per issuer), then thisUpdate (section 5.1.2.4).
- Intel TCB info and QE identity (`intel.tcb_info`, `intel.qe_identity`; Intel PCS API v4): tcbEvaluationDataNumber
  (incremented by each TCB recovery), then issueDate.
- Certificates (`amd.vcek`, `amd.cert_chain`) have no order here: `version_of` answers None.

Intel items are stored as the JSON envelope of `verifier.collateral.pcs_items` ({"body": JSON text or hex DER CRL,
"issuer_chain": PEM}); it is read here directly so ordering needs no TDX code. Nothing is verified: the order of
unverified bytes only decides what a cache keeps, never what is trusted.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from ..clock import parse_iso_utc
from ..errors import EvidenceError
from ..trust.certs import load_crl

CRL_KINDS = frozenset({"amd.crl", "intel.pck_crl", "intel.root_ca_crl"})
SIGNED_JSON_MEMBERS = {"intel.tcb_info": "tcbInfo", "intel.qe_identity": "enclaveIdentity"}


@dataclass(frozen=True)
class ItemVersion:
    """The version of one collateral item: its sequence number (CRL number, tcbEvaluationDataNumber; None when
    absent) and when it was issued (thisUpdate, issueDate; UTC)."""

    number: int | None
    issued: dt.datetime

    def compare(self, other: ItemVersion) -> int:
        """-1, 0 or 1 as `self` is older than, as new as, or newer than `other`: the numbers decide when both
        have one and they differ, else the issue times."""
        if self.number is not None and other.number is not None and self.number != other.number:
            return -1 if self.number < other.number else 1
        if self.issued != other.issued:
            return -1 if self.issued < other.issued else 1
        return 0

    def older_than(self, other: ItemVersion) -> bool:
        return self.compare(other) < 0

    def to_json(self) -> dict[str, Any]:
        return {"number": self.number, "issued": _rfc3339(self.issued)}


def crl_version(crl: x509.CertificateRevocationList) -> ItemVersion:
    """cRLNumber (None without the extension) and thisUpdate of a parsed CRL."""
    try:
        number: int | None = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except (x509.ExtensionNotFound, ValueError):
        number = None
    return ItemVersion(number, crl.last_update_utc)


def version_of(kind: str, data: bytes) -> ItemVersion | None:
    """The version of the item `data` of `kind`, or None when the kind has no order or the bytes do not parse
    (never raises)."""
    try:
        if kind == "amd.crl":
            return crl_version(load_crl(data))
        if kind in CRL_KINDS:
            return crl_version(load_crl(bytes.fromhex(_envelope_body(data))))
        member = SIGNED_JSON_MEMBERS.get(kind)
        if member is not None:
            body = json.loads(_envelope_body(data))[member]
            number = body.get("tcbEvaluationDataNumber")
            issued = _parse_time(str(body["issueDate"]))
            return ItemVersion(number if isinstance(number, int) and not isinstance(number, bool) else None, issued)
    except (EvidenceError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None
    return None


def _envelope_body(data: bytes) -> str:
    body = json.loads(data)["body"]
    if not isinstance(body, str):
        raise TypeError("envelope body is not a string")
    return body


def _parse_time(text: str) -> dt.datetime:
    return parse_iso_utc(text)  # ValueError for a bad or out-of-range date: version_of answers None


def _rfc3339(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
