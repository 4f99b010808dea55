"""Hypothesis profiles for the property tests (loaded by tests/property/conftest.py before any test module).

"ci" (the default): derandomized, so every run of the suite draws the same examples and a CI failure reproduces
locally with the same command; at most CI_EXAMPLES examples unless a test asks for its own count; no deadline
(shared CI machines are slow and timing is not what these tests check); no example database.
"explore": random and EXPLORE_FACTOR times as many examples, for local bug hunting::

    HYPOTHESIS_PROFILE=explore .venv/bin/python -m pytest -q tests/property

Tests that set their own example count scale it with `examples(n)`, so "explore" multiplies those too."""

from __future__ import annotations

import os

from hypothesis import settings

CI_EXAMPLES = 100
EXPLORE_FACTOR = 10
ENV = "HYPOTHESIS_PROFILE"

settings.register_profile(
    "ci", max_examples=CI_EXAMPLES, derandomize=True, deadline=None, database=None, print_blob=True
)
settings.register_profile(
    "explore", max_examples=CI_EXAMPLES * EXPLORE_FACTOR, derandomize=False, deadline=None, print_blob=True
)


def load() -> str:
    """Load the profile named by HYPOTHESIS_PROFILE ("ci" when unset); an unknown name raises InvalidArgument."""
    name = os.environ.get(ENV) or "ci"
    settings.load_profile(name)
    return name


def examples(count: int) -> int:
    """`count` examples under "ci", scaled by the active profile's max_examples (x10 under "explore")."""
    return max(1, round(count * settings.default.max_examples / CI_EXAMPLES))
