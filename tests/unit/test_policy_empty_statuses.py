"""A TDX policy whose `accepted_statuses` is an empty object is refused: before, `{}` silently became the default
mapping (UpToDate affirming, SWHardeningNeeded warning), looser than what the admin wrote (found while killing
issue 16's mutants). Omitting the key still means the default."""

from __future__ import annotations

import pytest

from verifier.appraisal.policy import TdxRules, policy_from_json
from verifier.errors import ConfigError


def test_an_empty_accepted_statuses_object_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        policy_from_json({"id": "p", "tdx": {"accepted_statuses": {}}})
    assert info.value.code == "POLICY_FILE_INVALID"
    assert "p.tdx.accepted_statuses names no status" in info.value.message


@pytest.mark.parametrize("entry", [{"id": "p", "tdx": {}}, {"id": "p", "tdx": {"accepted_statuses": None}}])
def test_an_omitted_accepted_statuses_is_the_default(entry: dict[str, object]) -> None:
    policy = policy_from_json(entry)
    assert policy.tdx.accepted_statuses == TdxRules().accepted_statuses
