"""AMD SEV-SNP: ATTESTATION_REPORT parsing, VCEK/VLEK chains, KDS extensions and report verification."""
