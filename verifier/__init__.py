"""Remote-attestation verifier: appraises TEE evidence and signs EAR attestation results."""

__version__ = "0.1.0"
