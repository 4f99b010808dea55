"""Guess the evidence kind from its first bytes (used only when the caller does not say).

Each scheme in `verifier.appraisal.registry` names its own predicate (`verifier.tee.formats` for the built-in
TEEs); `detect_tee` asks every registered scheme, so a new TEE brings its own."""

from __future__ import annotations

from .registry import schemes


def detect_tee(evidence: bytes) -> str | None:
    """The name of the one registered scheme whose format `evidence` shows; None when none or more than one fits.
    Never raises."""
    if not evidence:
        return None
    fits = [scheme.name for scheme in schemes() if scheme.looks_like(evidence)]
    return fits[0] if len(fits) == 1 else None
