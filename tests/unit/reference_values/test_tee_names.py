"""One list of TEE names: the reference-value kinds table names the same TEEs as the scheme registry, and the
workload, manifest and broker checks read that list (issue 12)."""

from __future__ import annotations

import pytest

from verifier.appraisal.registry import tee_names
from verifier.broker.config import ReleaseRule
from verifier.errors import RequestError
from verifier.reference_values.kinds import known_tees, register_kind
from verifier.storage.workload_records import tee_of_kind


def test_kinds_name_the_registered_schemes() -> None:
    assert list(known_tees()) == tee_names()


def test_broker_rule_defaults_to_every_tee() -> None:
    rule = ReleaseRule(name="s", secret=b"x", workload="w")
    assert rule.tees == known_tees()


@pytest.mark.parametrize("kind", ["snp.measurement", "tdx.mr_td", "nitro.pcr0"])
def test_kind_of_each_tee(kind: str) -> None:
    assert tee_of_kind(kind) == kind.partition(".")[0]


@pytest.mark.parametrize("kind", ["sgx.mrenclave", "measurement", ".x"])
def test_kind_of_unknown_tee(kind: str) -> None:
    with pytest.raises(RequestError) as info:
        tee_of_kind(kind)
    assert info.value.code == "WORKLOAD_TEE_UNKNOWN"


def test_a_new_kind_names_its_tee(monkeypatch: pytest.MonkeyPatch) -> None:
    from verifier.reference_values import kinds

    monkeypatch.setattr(kinds, "_KINDS", dict(kinds._KINDS))
    register_kind("gpu.driver_hash", 48)
    assert "gpu" in known_tees()
    assert tee_of_kind("gpu.driver_hash") == "gpu"
