"""The tighten-only rule covers the GPU revocation key: `best-effort` over a base that requires OCSP is a weakening
(so `verifier policy set default ...` or `--policy-file` cannot loosen the built-in), `require` never is."""

from __future__ import annotations

from verifier.appraisal.policy import Policy, weakenings
from verifier.appraisal.policy_model import GpuRules


def test_best_effort_ocsp_over_require_is_named() -> None:
    assert weakenings(Policy(gpu=GpuRules(ocsp="best-effort")), Policy()) == ["gpu: OCSP best-effort"]


def test_require_and_equal_settings_are_not_weakenings() -> None:
    assert weakenings(Policy(), Policy(gpu=GpuRules(ocsp="best-effort"))) == []
    best = Policy(gpu=GpuRules(ocsp="best-effort"))
    assert weakenings(best, best) == []
    assert weakenings(Policy(), Policy()) == []
