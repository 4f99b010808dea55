"""The property tests run derandomized in CI (the "ci" profile is the default) and can explore at random."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from tests.property import profiles, test_snp_fuzz


@pytest.mark.skipif(bool(os.environ.get(profiles.ENV)), reason="HYPOTHESIS_PROFILE chooses another profile")
def test_ci_profile_is_loaded_by_default() -> None:
    assert settings.default.derandomize and settings.default.deadline is None
    assert settings.default.max_examples == profiles.CI_EXAMPLES
    assert test_snp_fuzz.FAST.derandomize and test_snp_fuzz.FAST.max_examples == 300  # module settings inherit it
    assert profiles.examples(300) == 300


def test_explore_profile_is_random_and_larger() -> None:
    explore = settings.get_profile("explore")
    assert not explore.derandomize and explore.max_examples == profiles.CI_EXAMPLES * profiles.EXPLORE_FACTOR
    assert settings.get_profile("ci").derandomize
