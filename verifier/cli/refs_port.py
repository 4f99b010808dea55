"""The port the `verifier refs` handlers are written against (`RefsAdmin`), and what its plan calls return.

Two implementations: `refs_db.DatabaseRefs` (the database of `--db`, today's code) and `refs_grpc.RemoteRefs` (the
ReferenceValues and Workloads admin services of `--server`). Both return the same records, so a handler prints
the same output and returns the same exit code either way (`verifier.cli.admin_port.open_port` picks one)."""

from __future__ import annotations

import builtins
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..reference_values.model import Reapproval, ReferenceValue, State
from ..storage.audit import AuditEntry
from ..workloads.manifest_model import Manifest, ManifestEntry


@dataclass(frozen=True)
class ManifestFiles:
    """The manifests of one plan or apply: the files as given and as parsed here (so a bad file fails before any
    call, with the same message either way)."""

    paths: tuple[Path, ...]
    manifests: tuple[Manifest, ...]
    label: str | None  # the workload of nitro-cli JSON files (--workload)


@dataclass(frozen=True)
class ImpactView:
    """`plan --impact`: the JSON object under "impact" and the text report."""

    report: dict[str, Any]
    text: str

    @property
    def changed(self) -> bool:
        return bool(self.report.get("changed"))


@dataclass(frozen=True)
class PlanView:
    """A plan as `refs plan | apply` print it: its JSON (`Plan.to_json()`), its lines, its SHA-256 and whether it
    changes anything (values or workload metadata)."""

    plan_json: dict[str, Any]
    lines: tuple[str, ...]
    sha256: str
    changes: bool
    impact: ImpactView | None = None


class RefsAdmin(Protocol):
    """Reference values and workload manifests, wherever they are. Every method raises the `VerifierError` of the
    store or the server (the same code either way: REFERENCE_VALUE_REVOKED, REFERENCE_VALUE_NOT_FOUND, ...); the
    remote one also ADMIN_* (credentials, role) and UNAVAILABLE."""

    @property
    def now(self) -> dt.datetime:
        """The instant the states of the returned rows are shown at."""
        ...

    def add(self, entry: ManifestEntry) -> ReferenceValue:
        """Add one row; a labelled value joins the workload of its label (created when missing)."""
        ...

    def list(
        self, *, kind: str | None, label: str | None, state: State | None, include_inactive: bool
    ) -> builtins.list[ReferenceValue]:
        """The rows as `refs list` selects them (active ones by default)."""
        ...

    def revoke(self, ref_id: str, reason: str) -> tuple[ReferenceValue, builtins.list[ReferenceValue]]:
        """Revoke the row and its value: (the row, the other rows of the value revoked with it)."""
        ...

    def reapprove(self, kind: str, value: bytes, reason: str, entry: ManifestEntry | None) -> Reapproval:
        """Close the value's revocations; with `entry` (its label and lifecycle) also add it again."""
        ...

    def history(self, ref_id: str | None, *, kind: str | None, label: str | None) -> builtins.list[AuditEntry]:
        """The audit rows of one row, or of a kind and/or label, oldest first."""
        ...

    def import_entries(self, entries: builtins.list[ManifestEntry]) -> tuple[int, int]:
        """Add the entries not live yet, all or nothing: (added, already present)."""
        ...

    def plan(self, files: ManifestFiles, *, values: bool, impact_limit: int | None) -> PlanView:
        """What `apply` would change; with `impact_limit`, the impact on that many kept appraisals."""
        ...

    def apply(self, files: ManifestFiles, *, values: bool, expect: str | None) -> PlanView:
        """Apply the plan (exactly the one whose SHA-256 is `expect`, when given: PLAN_STALE otherwise)."""
        ...

    def import_version(
        self, name: str, tee: str, entries: builtins.list[ManifestEntry], *, alternative: bool
    ) -> tuple[int, int]:
        """Add one workload version built elsewhere (import-nitro, compute snp --add): (added, already present)."""
        ...
