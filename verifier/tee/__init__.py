"""TEE-specific evidence parsers and verifiers (one subpackage per TEE family)."""
