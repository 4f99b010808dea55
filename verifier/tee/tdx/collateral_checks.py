"""Intel TDX collateral checks, item by item: signer chains, signatures, id/version, validity windows and CRLs.

The issuer chain of TCB info / QE identity must be exactly [Intel SGX TCB Signing, PINNED Intel SGX Root CA],
validated at `at` (the TCB signing cert is re-issued and never pinned; no other certificate, a PCK or PCK CA least
of all, may sign collateral: `tcb_signer`), and the root CA CRL must not revoke it. CRLs ("SGX PCK Certificate and
CRL Profile"): the root CA CRL is signed by the root, the PCK CRL by its PCK Platform/Processor CA. Each item is
verified on its own (collateral.py combines them).
"""

from __future__ import annotations

import datetime
import hashlib

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import ExtensionOID, NameOID

from verifier.errors import EvidenceError
from verifier.trust.anchors import TrustAnchors, fingerprint
from verifier.trust.certs import load_crl
from verifier.trust.chain import VerifiedLinks, check_ca, check_issued_by, check_validity, validate_chain
from verifier.trust.crl import INTEL_SGX, check_crl
from verifier.trust.crl import check_collateral_window as _window
from verifier.trust.digests import cert_sha256
from verifier.trust.names import issuer_key, subject_key

from .collateral_documents import _PARSED, Chain, SignedJson, TdxCollateral, _digest
from .freshness import PCK_CRL, QE_IDENTITY, ROOT_CA_CRL, TCB_INFO, Candidate, ItemFacts
from .pck import SGX_EXTENSION_OID
from .tcbinfo import QeIdentity, TcbInfo, parse_qe_identity, parse_tcb_info

VENDOR = "intel-sgx"
SIGNER_INVALID = "TDX_COLLATERAL_SIGNER_INVALID"
TCB_SIGNING_CN = "Intel SGX TCB Signing"
SIGNER_RULE = (
    f"[{TCB_SIGNING_CN}, pinned Intel SGX Root CA]: issued by the root, CN={TCB_SIGNING_CN}, not a CA, no SGX extension"
)
BASIC_CONSTRAINTS = ExtensionOID.BASIC_CONSTRAINTS.dotted_string


def _root(chain: Chain, anchors: TrustAnchors, what: str) -> tuple[list[x509.Certificate], x509.Certificate]:
    """Split an issuer chain into (certificates below the root, pinned root): `TrustAnchors.root_for`."""
    certs = list(chain)
    top = certs[-1] if certs else None
    if top is not None and issuer_key(top) == subject_key(top):
        certs = certs[:-1]  # a self-signed root: used when pinned, else replaced by a pinned anchor of its name
    found = anchors.root_for(VENDOR, top, certs[-1].issuer if certs else None)
    if found and found[0] is top:
        return list(chain)[:-1], found[0]
    if not certs or not found:
        raise EvidenceError(
            "CHAIN_ROOT_UNTRUSTED",
            f"the {what} issuer chain does not end at a pinned Intel SGX Root CA",
            expected="pinned intel-sgx fingerprint",
            actual=fingerprint(chain[-1]) if chain else "empty chain",
        )
    return certs, found[0]


def _cn(cert: x509.Certificate) -> str:
    names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return "+".join(names) if names else cert.subject.rfc4514_string()


def tcb_signer(
    chain: Chain, anchors: TrustAnchors, at: datetime.datetime, what: str, links: VerifiedLinks | None = None
) -> x509.Certificate:
    """The Intel SGX TCB Signing certificate of a TCB info / QE identity issuer chain, validated at `at`.

    Intel PCS v4 (TCB-Info-Issuer-Chain, SGX-Enclave-Identity-Issuer-Chain) and "SGX PCK Certificate and CRL
    Profile": the chain is exactly [Intel SGX TCB Signing, Intel SGX Root CA]. The signer must be issued directly
    by the pinned root, have the subject CN "Intel SGX TCB Signing", not be a CA (basicConstraints absent or cA
    false) and carry no SGX extension (1.2.840.113741.1.13.1, which PCK certificates carry): a PCK key, a PCK CA
    or anything below one never signs collateral. Raises EvidenceError TDX_COLLATERAL_SIGNER_INVALID (expected the
    rule, actual what was found), CHAIN_ROOT_UNTRUSTED, or the codes of `validate_chain` (CERT_EXPIRED...)."""
    certs, root = _root(chain, anchors, what)

    def invalid(message: str, actual: str) -> EvidenceError:
        return EvidenceError(SIGNER_INVALID, f"the {what} signer {message}", expected=SIGNER_RULE, actual=actual)

    if len(certs) != 1:
        raise invalid(
            "chain is not [Intel SGX TCB Signing, pinned root]",
            " <- ".join(_cn(c) for c in (*certs, root)) if certs else f"{_cn(root)} alone",
        )
    signer = certs[0]
    if issuer_key(signer) != subject_key(root):
        raise invalid("is not issued directly by the pinned root", f"issuer {signer.issuer.rfc4514_string()}")
    if [str(a.value) for a in signer.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] != [TCB_SIGNING_CN]:
        raise invalid("is not the Intel SGX TCB Signing certificate", f"CN={_cn(signer)}")
    extensions = {ext.oid.dotted_string: ext.value for ext in signer.extensions}
    constraints = extensions.get(BASIC_CONSTRAINTS)
    if isinstance(constraints, x509.BasicConstraints) and constraints.ca:
        raise invalid("is a CA certificate", f"CN={_cn(signer)} basicConstraints cA=true")
    if SGX_EXTENSION_OID in extensions:
        raise invalid("carries the SGX (PCK) extension", f"CN={_cn(signer)} with {SGX_EXTENSION_OID}")
    validate_chain(signer, [], root, at, links)
    return signer


def _check_signature(item: SignedJson, signer: x509.Certificate, what: str, links: VerifiedLinks | None) -> None:
    done = (b"signed-json", hashlib.sha256(item.raw).digest(), item.signature, cert_sha256(signer))
    if links is not None and done in links:  # this exact JSON was verified with this key before (collateral repeats)
        return
    key = signer.public_key()
    der = encode_dss_signature(int.from_bytes(item.signature[:32], "big"), int.from_bytes(item.signature[32:], "big"))
    try:
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
            raise InvalidSignature
        key.verify(der, item.raw, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, UnsupportedAlgorithm, ValueError):
        raise EvidenceError(
            "TDX_COLLATERAL_SIGNATURE_INVALID",
            f"{what} signature does not verify",
            expected=signer.subject.rfc4514_string(),
            actual=item.signature.hex()[:16],
        ) from None
    if links is not None:
        links.add(done)


def crl_of(data: bytes, what: str) -> x509.CertificateRevocationList:
    """The CRL in `data`, parsed once per content (`collateral_documents._PARSED`). Raises EvidenceError
    CRL_MALFORMED naming `what`."""
    return _PARSED.get((b"crl", _digest(data)), lambda: load_crl(data, what))


def tcb_info_of(doc: SignedJson) -> TcbInfo:
    """The TCB info model of `doc`, parsed once per content. Raises EvidenceError (tcbinfo.parse_tcb_info)."""
    return _PARSED.get((b"tcb_info", _digest(doc.raw)), lambda: parse_tcb_info(doc.data))


def qe_identity_of(doc: SignedJson) -> QeIdentity:
    """The QE identity model of `doc`, parsed once per content. Raises EvidenceError (parse_qe_identity)."""
    return _PARSED.get((b"qe_identity", _digest(doc.raw)), lambda: parse_qe_identity(doc.data))


def _check_crl(
    data: bytes, issuer: x509.Certificate, at: datetime.datetime, what: str, links: VerifiedLinks | None
) -> x509.CertificateRevocationList:
    """Parse (memoised) and check with the shared checker (`verifier.trust.crl`, profile INTEL_SGX: window first,
    then issuer and ECDSA signature)."""
    crl = crl_of(data, what)
    check_crl(crl, issuer, at, INTEL_SGX, what=what, links=links)
    return crl


def _crl_facts(item: str, crl: x509.CertificateRevocationList, source: str) -> ItemFacts:
    try:
        number: int | None = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        number = None
    assert crl.next_update_utc is not None  # _check_crl's window requires it
    return ItemFacts(item, number, crl.last_update_utc, crl.next_update_utc, source)


def _supported(what: str, got: tuple[str, int], want: tuple[str, int]) -> None:
    if got != want:
        raise EvidenceError(
            "TDX_COLLATERAL_UNSUPPORTED",
            f"{what} must be id {want[0]} version {want[1]}",
            expected=f"{want[0]} v{want[1]}",
            actual=f"{got[0]} v{got[1]}",
        )


def check_tcb_info(
    col: TdxCollateral, anchors: TrustAnchors, at: datetime.datetime, source: str, links: VerifiedLinks | None = None
) -> Candidate[tuple[TcbInfo, x509.Certificate]]:
    """The TCB info of `col` (TDX, v3): signer chain (`tcb_signer`), signature over the served bytes, window.
    Raises EvidenceError (see the module docstring); `col` must hold the item."""
    assert col.tcb_info is not None
    signer = tcb_signer(col.tcb_info_issuer_chain, anchors, at, "TCB info", links)
    _check_signature(col.tcb_info, signer, "TCB info", links)
    info = tcb_info_of(col.tcb_info)
    _supported("TCB info", (info.id, info.version), ("TDX", 3))
    _window("TCB info", info.issue_date, info.next_update, at)
    facts = ItemFacts(TCB_INFO, info.tcb_evaluation_data_number, info.issue_date, info.next_update, source)
    return Candidate((info, signer), facts)


def check_qe_identity(
    col: TdxCollateral, anchors: TrustAnchors, at: datetime.datetime, source: str, links: VerifiedLinks | None = None
) -> Candidate[tuple[QeIdentity, x509.Certificate]]:
    """The QE identity of `col` (TD_QE, v2), checked like `check_tcb_info`."""
    assert col.qe_identity is not None
    signer = tcb_signer(col.qe_identity_issuer_chain, anchors, at, "QE identity", links)
    _check_signature(col.qe_identity, signer, "QE identity", links)
    identity = qe_identity_of(col.qe_identity)
    _supported("QE identity", (identity.id, identity.version), ("TD_QE", 2))
    _window("QE identity", identity.issue_date, identity.next_update, at)
    facts = ItemFacts(
        QE_IDENTITY, identity.tcb_evaluation_data_number, identity.issue_date, identity.next_update, source
    )
    return Candidate((identity, signer), facts)


def check_pck_crl(
    col: TdxCollateral,
    anchors: TrustAnchors,
    at: datetime.datetime,
    source: str,
    *,
    pck_issuer: x509.Name,
    links: VerifiedLinks | None = None,
) -> Candidate[tuple[x509.CertificateRevocationList, x509.Certificate]]:
    """The PCK CRL of `col`: issuer chain [PCK CA, pinned root] at `at`, signature, window, and it is the CRL of
    `pck_issuer`. The value is (CRL, pinned root). Raises EvidenceError TDX_PCK_CRL_CHAIN_INVALID,
    CRL_ISSUER_MISMATCH, CRL_SIGNATURE_INVALID, TDX_COLLATERAL_EXPIRED, chain codes."""
    assert col.pck_crl is not None
    ca_chain, root = _root(col.pck_crl_issuer_chain, anchors, "PCK CRL")
    if len(ca_chain) != 1:
        raise EvidenceError(
            "TDX_PCK_CRL_CHAIN_INVALID",
            "the PCK CRL issuer chain must be PCK CA and root",
            expected="2 certificates",
            actual=str(len(ca_chain) + 1),
        )
    ca = ca_chain[0]
    for cert, issuer in ((root, root), (ca, root)):
        check_issued_by(cert, issuer, links)
        check_validity(cert, at)
    check_ca(ca, ca_below=0)
    crl = _check_crl(col.pck_crl, ca, at, "PCK CRL", links)
    if crl.issuer != pck_issuer:
        raise EvidenceError(
            "CRL_ISSUER_MISMATCH",
            "the PCK CRL is not the CRL of the PCK certificate's issuer",
            expected=pck_issuer.rfc4514_string(),
            actual=crl.issuer.rfc4514_string(),
        )
    return Candidate((crl, root), _crl_facts(PCK_CRL, crl, source))


def check_root_ca_crl(
    col: TdxCollateral,
    root: x509.Certificate,
    at: datetime.datetime,
    source: str,
    links: VerifiedLinks | None = None,
) -> Candidate[x509.CertificateRevocationList]:
    """The root CA CRL of `col`, signed by the pinned `root`, inside its window at `at`."""
    assert col.root_ca_crl is not None
    crl = _check_crl(col.root_ca_crl, root, at, "root CA CRL", links)
    return Candidate(crl, _crl_facts(ROOT_CA_CRL, crl, source))
