"""Pinned vendor root certificates (see ../shared/trust-anchors/README.md for provenance).

A root is trusted only if the SHA-256 of its DER encoding is pinned for the vendor; a certificate found in a
directory or inside evidence is never trusted because of where it came from. `TrustAnchors.root_for` is the one
place that decides which root a chain may end at; every TEE calls it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

from cryptography import x509

from verifier.errors import ConfigError, EvidenceError
from verifier.trust.certs import load_der_certificate, load_pem_certificates
from verifier.trust.digests import cert_sha256

PINNED_ROOTS: dict[str, frozenset[str]] = {
    # AWS Nitro Enclaves Root-G1, the value AWS publishes
    "aws-nitro": frozenset({"641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"}),
    # Intel SGX Root CA (root of PCK, TCB signing and CRL issuers)
    "intel-sgx": frozenset({"44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"}),
    # AMD ARK-Milan, ARK-Genoa, ARK-Turin
    "amd-ark": frozenset(
        {
            "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd",
            "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1",
            "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a",
        }
    ),
    # NVIDIA Device Identity CA: root of every GPU device chain (Hopper GH100, Blackwell GB100)
    "nvidia-device": frozenset({"102bf659d5419614c9d8e6aecebc80454eb26b1df6a769ac720b9a690b167b48"}),
    # NVIDIA CoRIM signing Root CA: root of the chains that sign NVIDIA's RIMs (driver and VBIOS SWID tags)
    "nvidia-rim": frozenset({"12977b5115acb0381179279fffeb5a8c4d264971ebb32298023a465fa41df5d1"}),
}


def fingerprint(cert: x509.Certificate) -> str:
    """Lowercase hex SHA-256 of the certificate's DER encoding."""
    return cert_sha256(cert).hex()


MAX_FILE_CERTS = 1000  # certificates in one anchor file (a bound, far above any vendor bundle)
RootMatch = x509.Name | Callable[[x509.Certificate], bool] | None


def _load_file(path: Path) -> list[x509.Certificate]:
    """The certificates of one anchor file, fully decoded by the shared loader; ConfigError TRUST_ANCHOR_INVALID."""
    data = path.read_bytes()
    try:
        if path.suffix.lower() == ".pem":
            return list(load_pem_certificates(data, str(path), max_count=MAX_FILE_CERTS))
        return [load_der_certificate(data, str(path))]
    except EvidenceError as exc:
        raise ConfigError("TRUST_ANCHOR_INVALID", f"cannot load certificate file {path}: {exc}") from None


class TrustAnchors:
    """Pins (vendor -> SHA-256 fingerprints) plus optional anchor certificates loaded from disk."""

    def __init__(
        self,
        pins: Mapping[str, frozenset[str]] = PINNED_ROOTS,
        certificates: Sequence[x509.Certificate] = (),
    ) -> None:
        self.pins: Mapping[str, frozenset[str]] = MappingProxyType({k: frozenset(v) for k, v in pins.items()})
        unique: dict[str, x509.Certificate] = {}
        for cert in certificates:
            unique.setdefault(fingerprint(cert), cert)
        self.certificates: tuple[x509.Certificate, ...] = tuple(unique.values())

    @classmethod
    def from_directory(cls, path: str | Path, pins: Mapping[str, frozenset[str]] = PINNED_ROOTS) -> TrustAnchors:
        """Load every *.pem (possibly several certificates) and *.der below `path`, recursively."""
        root = Path(path)
        if not root.is_dir():
            raise ConfigError("TRUST_ANCHOR_DIRECTORY", f"trust anchor directory not found: {root}")
        certs: list[x509.Certificate] = []
        for file in sorted(root.rglob("*")):
            if file.is_file() and file.suffix.lower() in (".pem", ".der"):
                certs.extend(_load_file(file))
        return cls(pins=pins, certificates=certs)

    def is_pinned(self, vendor: str, cert: x509.Certificate) -> bool:
        """Whether the SHA-256 of `cert`'s DER is pinned for `vendor`."""
        return fingerprint(cert) in self.pins.get(vendor, frozenset())

    def roots(self, vendor: str) -> list[x509.Certificate]:
        """Loaded certificates whose fingerprint is pinned for `vendor` (unpinned files are ignored)."""
        return [c for c in self.certificates if self.is_pinned(vendor, c)]

    def root_for(self, vendor: str, supplied: x509.Certificate | None, issuer: RootMatch) -> list[x509.Certificate]:
        """The roots a chain of `vendor` may end at, best first; empty when there is none (the caller raises its
        CHAIN_ROOT_UNTRUSTED). Never raises.

        `supplied` (the root the evidence or collateral brought) is used alone when its SHA-256 is pinned for
        `vendor`; otherwise pinned anchors stand in for it: those whose subject is `issuer` (the name the top
        certificate below the root names as issuer), or those `issuer` accepts when it is a predicate (SEV-SNP
        picks the ARK of a product by CN). `issuer` None: no anchor may stand in (only a pinned `supplied`)."""
        if supplied is not None and self.is_pinned(vendor, supplied):
            return [supplied]
        if issuer is None:
            return []
        if isinstance(issuer, x509.Name):
            return [c for c in self.roots(vendor) if c.subject == issuer]
        return [c for c in self.roots(vendor) if issuer(c)]
