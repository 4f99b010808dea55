"""Loads the hypothesis profile (tests/property/profiles.py) before the property test modules are imported, so
their `settings(...)` objects inherit it: "ci" (derandomized) unless HYPOTHESIS_PROFILE names another."""

from __future__ import annotations

from tests.property import profiles

profiles.load()
