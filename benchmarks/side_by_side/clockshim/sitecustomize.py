"""Fixes the verifier's wall clock for `verifier serve` in the benchmark (and its worker processes, which inherit
the environment): with SIDE_BY_SIDE_FIXED_TIME set, every `verifier.clock.SystemClock` answers that instant.

`verifier serve` has no setting that fixes its clock (the CLI `verify --at` does, the server does not), and the
shared vectors only verify at their MANIFEST.json verify_at (certificates and collateral have long expired). Python
imports `sitecustomize` at start-up from PYTHONPATH, which servers.py puts this folder on for the service only.
"""

from __future__ import annotations

import os

_AT = os.environ.get("SIDE_BY_SIDE_FIXED_TIME")
if _AT:
    from verifier.clock import SystemClock, parse_rfc3339

    _FIXED = parse_rfc3339(_AT)
    SystemClock.now = lambda self: _FIXED  # type: ignore[method-assign]
