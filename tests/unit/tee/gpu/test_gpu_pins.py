"""Workload pins for GPUs (issue 15 item 2): a policy (a workload's, or one a request tightens to) may allow only some
driver versions, VBIOS versions (ignoring case) and architectures; anything else is contraindicated with its own
code, and widening a pin is a weakening the tighten-only rule names."""

from __future__ import annotations

import pytest

from tests.unit.tee.gpu.test_gpu_appraisal import _appraise, _codes, _verify
from verifier.appraisal.model import Claim, Tier
from verifier.appraisal.policy import Policy, weakenings
from verifier.appraisal.policy_json import policy_from_json
from verifier.appraisal.policy_model import GpuRules
from verifier.errors import ConfigError


def _pinned(**rules: tuple[str, ...]) -> Policy:
    return Policy(gpu=GpuRules(**rules))  # type: ignore[arg-type]


def test_pins_that_hold_affirm() -> None:
    verified = _verify()
    policy = _pinned(
        allowed_driver_versions=("550.90.07", "570.1"),
        allowed_vbios_versions=("96.00.9F.00.01",),  # the report says 96.00.9f.00.01
        allowed_architectures=("Hopper",),
    )
    status, findings, _ = _appraise(verified, policy)
    assert (status, findings) == (Tier.AFFIRMING, [])


@pytest.mark.parametrize(
    ("rules", "code", "claim"),
    [
        ({"allowed_driver_versions": ("570.1",)}, "GPU_DRIVER_VERSION_NOT_ALLOWED", Claim.EXECUTABLES),
        ({"allowed_vbios_versions": ("96.00.5e.00.01",)}, "GPU_VBIOS_VERSION_NOT_ALLOWED", Claim.EXECUTABLES),
        ({"allowed_architectures": ("blackwell",)}, "GPU_ARCHITECTURE_NOT_ALLOWED", Claim.HARDWARE),
    ],
)
def test_a_pin_that_does_not_hold_is_contraindicated(
    rules: dict[str, tuple[str, ...]], code: str, claim: Claim
) -> None:
    status, findings, _ = _appraise(_verify(), _pinned(**rules))
    assert status is Tier.CONTRAINDICATED and _codes(findings) == [code]
    assert findings[0].claim is claim and findings[0].expected == next(iter(rules.values()))[0]


def test_widening_a_pin_is_a_weakening_and_pins_load_from_json() -> None:
    base = _pinned(allowed_driver_versions=("550.90.07",), allowed_vbios_versions=("96.00.9F.00.01",))
    assert weakenings(_pinned(allowed_vbios_versions=("96.00.9f.00.01",)), base) == ["gpu: allows more driver versions"]
    assert weakenings(Policy(), _pinned(allowed_architectures=("hopper",))) == ["gpu: allows more architectures"]
    assert weakenings(base, Policy()) == []
    loaded = policy_from_json({"id": "gpu-pinned", "gpu": {"allowed_driver_versions": ["550.90.07"]}})
    assert loaded.gpu.allowed_driver_versions == ("550.90.07",)
    with pytest.raises(ConfigError):
        policy_from_json({"id": "bad", "gpu": {"allowed_driver_versions": [""]}})
