"""AWS Nitro Enclaves attestation documents: parse (no crypto), verify (chain + COSE ES384), claims."""
