"""Kept evidence (the domain side): one recently appraised item as impact analysis re-appraises it, and the
`KeptEvidenceReader` port `verifier.impact` reads them through
(`verifier.storage.kept_evidence.SqlKeptEvidence` implements it; the caller passes it in). The service writes
through its own port, `verifier.service.EvidenceKeeper`."""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class KeptEvidence:
    id: str
    received_at: dt.datetime
    tee: str
    evidence: bytes
    collateral: dict[str, bytes]
    policy: str | None
    status: str
    appraisal_id: str
    workload: str


@dataclass(frozen=True)
class KeepItem:
    """One appraisal's evidence to keep (`SqlKeptEvidence.keep_many`): what `KeptEvidence` holds but its id."""

    received_at: dt.datetime
    tee: str
    evidence: bytes
    collateral: Mapping[str, bytes]
    policy: str | None
    status: str
    appraisal_id: str
    workload: str


class KeptEvidenceReader(Protocol):
    def recent(self, limit: int) -> builtins.list[KeptEvidence]:
        """The latest `limit` kept items, newest first (none for `limit` <= 0)."""
        ...
