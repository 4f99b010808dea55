"""Appraisal policies. The default policy is the contract of ARCHITECTURE.md: debug forbidden, the TEE's
measurement reference values required, other reference-value kinds checked only when some are registered."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import RequestError

DEFAULT_POLICY_ID = "default"


@dataclass(frozen=True)
class Policy:
    """A named appraisal policy. Tightening knobs only: no policy may allow what the default forbids silently."""

    policy_id: str = DEFAULT_POLICY_ID
    allow_debug: bool = False
    # Reference-value kinds that must be registered and matched, per TEE.
    required_kinds: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {"nitro": ("nitro.pcr0", "nitro.pcr1", "nitro.pcr2")}
    )
    # When a nonce is given, the evidence must carry it (Nitro: the `nonce` field).
    require_nonce: bool = False

    def required(self, tee: str) -> tuple[str, ...]:
        return self.required_kinds.get(tee, ())


# Built-in named policies. Issue 6 moves these into the database; the names stay stable.
_POLICIES: dict[str, Policy] = {
    DEFAULT_POLICY_ID: Policy(),
    "nonce-required": Policy(policy_id="nonce-required", require_nonce=True),
}


def get_policy(name: str | None) -> Policy:
    key = name or DEFAULT_POLICY_ID
    try:
        return _POLICIES[key]
    except KeyError:
        raise RequestError("POLICY_UNKNOWN", f"no appraisal policy named {key!r}") from None


def policy_names() -> list[str]:
    return sorted(_POLICIES)
