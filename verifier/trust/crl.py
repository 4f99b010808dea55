"""Loading X.509 CRLs (RFC 5280 section 5) for every vendor. The loader lives with the certificate loader in
`verifier.trust.certs`; this name stays importable. Signature and window checks are vendor-specific (AMD RSA-PSS,
Intel ECDSA)."""

from __future__ import annotations

from verifier.trust.certs import load_crl

__all__ = ["load_crl"]
