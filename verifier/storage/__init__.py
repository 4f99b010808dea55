"""SQL storage (SQLite or PostgreSQL via SQLAlchemy 2): reference values, challenges, appraisal records."""

from __future__ import annotations

from .appraisals import SqlAppraisalStore
from .challenges import SqlChallengeStore
from .engine import DEFAULT_DATABASE_URL, Database, normalize_url, redact_url
from .reference_values import SqlReferenceValueStore

__all__ = [
    "DEFAULT_DATABASE_URL",
    "Database",
    "SqlAppraisalStore",
    "SqlChallengeStore",
    "SqlReferenceValueStore",
    "normalize_url",
    "redact_url",
]
