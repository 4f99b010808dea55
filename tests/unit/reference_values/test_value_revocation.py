"""Revocation is per value (kind and value), not per row, on SQLite and PostgreSQL: revoking one row revokes every
live row with that value (each audited), appraisal never matches a revoked value whichever row carried the
revocation, every add path refuses a revoked value (REFERENCE_VALUE_REVOKED) and only an explicit, audited
re-approval (`ref.reapprove`) lifts it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fakes.aws_pki import FakeAwsPki
from tests.service_helpers import make_harness
from verifier.appraisal.model import Tier
from verifier.errors import NotFoundError, RequestError
from verifier.service import AppraisalRequest
from verifier.storage import audit
from verifier.storage.engine import Database
from verifier.storage.reference_values import SqlReferenceValueStore
from verifier.storage.tables import ReferenceValueRow, new_id
from verifier.workloads.manifest import load_manifest_file
from verifier.workloads.manifest_model import ManifestEntry

T0 = dt.datetime(2025, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
A, B = b"\xaa" * 48, b"\xbb" * 48


@pytest.fixture
def store(db: Database) -> SqlReferenceValueStore:
    return SqlReferenceValueStore(db)


def ids(refs: Any) -> set[str]:
    return {r.id for r in refs}


def ref_rows(db: Database) -> list[audit.AuditEntry]:
    return [e for e in audit.entries(db, limit=10_000) if e.action.startswith("ref.")]


def manifest(tmp_path: Path, document: dict[str, Any], name: str = "m.yaml") -> Any:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document))
    return load_manifest_file(path)


# --- revoking one row revokes the value -------------------------------------------------------------------------


def test_revoking_one_row_revokes_every_live_row_of_the_value(db: Database, store: SqlReferenceValueStore) -> None:
    x = store.add("nitro.pcr0", A, "x", now=T0, actor="cli:a")
    y = store.add("nitro.pcr0", A, "y", now=T0, actor="cli:a")
    pending = store.add("nitro.pcr0", A, "z", now=T0, valid_from=T0 + 5 * HOUR)
    old = store.add("nitro.pcr0", A, "old", now=T0 - 2 * HOUR, expires_at=T0 - HOUR)
    other_kind = store.add("nitro.pcr1", A, "x", now=T0)
    other_value = store.add("nitro.pcr0", B, "x", now=T0)

    store.revoke(x.id, "CVE-2025-1", now=T0 + HOUR, actor="token:sec")

    assert ids(store.active(["nitro.pcr0"], T0 + HOUR)) == {other_value.id}
    assert ids(store.active(["nitro.pcr0"], T0 + 6 * HOUR)) == {other_value.id}  # the pending row never activates
    assert ids(store.active(["nitro.pcr0"], T0)) == {x.id, y.id, other_value.id}  # history: active before
    at = T0 + HOUR
    states = {r.id: r.state(at) for r in store.list(include_inactive=True, at=at)}
    assert states == {
        x.id: "revoked",
        y.id: "revoked",
        pending.id: "revoked",
        old.id: "expired",
        other_kind.id: "active",
        other_value.id: "active",
    }
    for r in store.list(state="revoked", at=at):
        assert (r.revoked_at, r.revoked_by, r.revoke_reason) == (at, "token:sec", "CVE-2025-1")
    revokes = [e for e in ref_rows(db) if e.action == "ref.revoke"]
    assert revokes[0].subject == x.id and {e.subject for e in revokes[1:]} == {y.id, pending.id}
    assert len(revokes) == 3
    assert all(e.actor == "token:sec" and e.details["reason"] == "CVE-2025-1" for e in revokes)
    assert "via" not in revokes[0].details and {e.details["via"] for e in revokes[1:]} == {x.id}
    assert audit.verify_chain(db).ok


def test_appraisal_never_matches_a_revoked_value_whichever_row_carried_it(
    db: Database, store: SqlReferenceValueStore
) -> None:
    first = store.add("nitro.pcr0", A, "first", now=T0)
    store.revoke(first.id, "bad build", now=T0 + HOUR)
    # A row of the same value that the revocation did not mark (written before this rule, or by a racing writer).
    stray = new_id()
    with db.session() as session:
        session.add(
            ReferenceValueRow(
                id=stray, kind="nitro.pcr0", value=A, label="stray", created_at=T0 + 2 * HOUR, created_by="legacy"
            )
        )
    assert stray in ids(store.list(at=T0 + 2 * HOUR))
    assert store.active(["nitro.pcr0"], T0 + 2 * HOUR) == []
    assert stray in ids(store.active(["nitro.pcr0"], T0))  # before the revocation it matched


def test_service_appraisal_stops_affirming_when_another_row_of_the_value_is_revoked(db: Database) -> None:
    h = make_harness(db, FakeAwsPki())
    h.approve(label="img 1.0")
    pcr0 = FakeAwsPki.default_pcrs()[0]
    h.refs.add("nitro.pcr0", pcr0, "img 1.0 hotfix", now=h.clock.now() - HOUR)
    assert h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint())).appraisal.status is Tier.AFFIRMING
    first = next(r for r in h.refs.list(kind="nitro.pcr0", at=h.clock.now()) if r.label == "img 1.0")
    h.refs.revoke(first.id, "compromised", now=h.clock.now(), actor="cli:sec")

    result = h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint()))
    assert result.appraisal.status is Tier.CONTRAINDICATED
    assert "REFERENCE_VALUE_MISSING" in [f.code for f in result.appraisal.findings]

    with pytest.raises(RequestError) as info:
        h.refs.add("nitro.pcr0", pcr0, "img 1.0 again", now=h.clock.now())
    assert info.value.code == "REFERENCE_VALUE_REVOKED"

    h.clock.at += dt.timedelta(seconds=1)
    h.refs.reapprove("nitro.pcr0", pcr0, "false alarm", now=h.clock.now(), actor="cli:sec", label="img 1.0")
    h.clock.at += dt.timedelta(seconds=1)
    result = h.service.appraise(AppraisalRequest(tee="nitro", evidence=h.pki.mint()))
    assert result.appraisal.status is Tier.AFFIRMING, [f.code for f in result.appraisal.findings]


# --- adding a revoked value is refused in every path ------------------------------------------------------------


def test_every_add_path_refuses_a_revoked_value_and_changes_nothing(
    tmp_path: Path, db: Database, store: SqlReferenceValueStore
) -> None:
    ref = store.add("nitro.pcr0", A, "x", now=T0)
    store.revoke(ref.id, "withdrawn", now=T0 + HOUR, actor="cli:sec")
    before = (store.list(include_inactive=True, at=T0), audit.reference_set_version(db), len(ref_rows(db)))
    later = T0 + 2 * HOUR
    attempts: list[Callable[[], object]] = [
        lambda: store.add("nitro.pcr0", A, "x", now=later),
        lambda: store.add("nitro.pcr0", A, "another label", now=later, valid_from=later + HOUR, version="2"),
        lambda: store.add_missing(
            [ManifestEntry("nitro.pcr1", B, "y"), ManifestEntry("nitro.pcr0", A, "y")], now=later
        ),
        lambda: store.apply(
            [manifest(tmp_path, {"reference_values": [{"kind": "nitro.pcr0", "value": A.hex(), "label": "app"}]})],
            now=later,
        ),
        lambda: store.plan(
            [
                manifest(
                    tmp_path, {"reference_values": [{"kind": "nitro.pcr0", "value": A.hex(), "label": "app"}]}, "p.yaml"
                )
            ],
            now=later,
        ),
    ]
    for attempt in attempts:
        with pytest.raises(RequestError) as info:
            attempt()
        assert info.value.code == "REFERENCE_VALUE_REVOKED"
        assert "withdrawn" in info.value.message and "reapprove" in info.value.message
    after = (store.list(include_inactive=True, at=T0), audit.reference_set_version(db), len(ref_rows(db)))
    assert after == before  # add_missing is all or nothing: pcr1 was not added either


def test_add_missing_skips_present_values_in_one_transaction(db: Database, store: SqlReferenceValueStore) -> None:
    store.add("nitro.pcr0", A, "y", now=T0)
    version = audit.reference_set_version(db)
    added, skipped = store.add_missing(
        [ManifestEntry("nitro.pcr0", A, "y"), ManifestEntry("nitro.pcr1", B, "y", version="1")], now=T0, actor="cli:imp"
    )
    assert [(r.kind, r.version, r.created_by) for r in added] == [("nitro.pcr1", "1", "cli:imp")] and skipped == 1
    assert audit.reference_set_version(db) == version + 1
    assert store.add_missing([ManifestEntry("nitro.pcr1", B, "y")], now=T0) == ([], 1)
    assert audit.reference_set_version(db) == version + 1


# --- explicit re-approval -----------------------------------------------------------------------------------------


def test_reapprove_lifts_the_revocation_audited_and_only_from_then_on(
    db: Database, store: SqlReferenceValueStore
) -> None:
    x = store.add("nitro.pcr0", A, "x", now=T0)
    store.revoke(x.id, "suspected", now=T0 + HOUR, actor="cli:sec")
    version = audit.reference_set_version(db)
    result = store.reapprove("nitro.pcr0", A, "  investigated: a false alarm ", now=T0 + 2 * HOUR, actor="cli:lead")
    assert result.added is None
    [closed] = result.revocations
    assert (closed.ref_id, closed.revoked_at, closed.revoked_by, closed.reason) == (
        x.id,
        T0 + HOUR,
        "cli:sec",
        "suspected",
    )
    assert (closed.reapproved_at, closed.reapproved_by, closed.reapprove_reason) == (
        T0 + 2 * HOUR,
        "cli:lead",
        "investigated: a false alarm",
    )
    assert audit.reference_set_version(db) == version + 1
    [entry] = [e for e in ref_rows(db) if e.action == "ref.reapprove"]
    assert (entry.actor, entry.subject) == ("cli:lead", f"nitro.pcr0:{A.hex()}")
    assert entry.details["reason"] == "investigated: a false alarm"
    assert entry.details["kind"] == "nitro.pcr0" and entry.details["value"] == A.hex()
    assert [r["ref_id"] for r in entry.details["revocations"]] == [x.id]

    assert store.active(["nitro.pcr0"], T0 + 2 * HOUR) == []  # the revoked row itself stays revoked
    again = store.add("nitro.pcr0", A, "x", now=T0 + 3 * HOUR, actor="cli:lead")
    assert ids(store.active(["nitro.pcr0"], T0 + 3 * HOUR)) == {again.id}
    # Time travel: between the revocation and the re-approval the value was revoked, whatever row asks.
    assert store.active(["nitro.pcr0"], T0 + HOUR + HOUR / 2) == []
    assert ids(store.active(["nitro.pcr0"], T0)) == {x.id, again.id}
    assert [e.action for e in store.history(kind="nitro.pcr0")] == ["ref.add", "ref.revoke", "ref.reapprove", "ref.add"]
    assert audit.verify_chain(db).ok


def test_reapprove_with_a_label_adds_the_value_in_the_same_change(db: Database, store: SqlReferenceValueStore) -> None:
    x = store.add("nitro.pcr0", A, "x", now=T0)
    store.revoke(x.id, "r", now=T0 + HOUR)
    version = audit.reference_set_version(db)
    result = store.reapprove(
        "nitro.pcr0",
        A,
        "fixed",
        now=T0 + 2 * HOUR,
        actor="cli:lead",
        label="x 2",
        version="2",
        expires_at=T0 + 9 * HOUR,
    )
    assert result.added is not None
    assert (result.added.label, result.added.version, result.added.created_by) == ("x 2", "2", "cli:lead")
    assert ids(store.active(["nitro.pcr0"], T0 + 2 * HOUR)) == {result.added.id}
    assert audit.reference_set_version(db) == version + 1
    assert [e.action for e in ref_rows(db)][-2:] == ["ref.reapprove", "ref.add"]


def test_revoked_again_after_a_reapproval(store: SqlReferenceValueStore) -> None:
    x = store.add("nitro.pcr0", A, "x", now=T0)
    store.revoke(x.id, "first", now=T0 + HOUR)
    y = store.reapprove("nitro.pcr0", A, "ok", now=T0 + 2 * HOUR, label="y").added
    assert y is not None
    store.revoke(y.id, "second", now=T0 + 3 * HOUR)
    assert store.active(["nitro.pcr0"], T0 + 3 * HOUR) == []
    assert ids(store.active(["nitro.pcr0"], T0 + 2 * HOUR)) == {y.id}
    with pytest.raises(RequestError, match="second"):
        store.add("nitro.pcr0", A, "z", now=T0 + 4 * HOUR)
    [closed] = store.reapprove("nitro.pcr0", A, "ok again", now=T0 + 4 * HOUR).revocations
    assert closed.reason == "second" and closed.ref_id == y.id
    first, second = store.revocations("nitro.pcr0", A)
    assert (first.ref_id, first.reapprove_reason, second.ref_id, second.reapprove_reason) == (
        x.id,
        "ok",
        y.id,
        "ok again",
    )
    assert [first.in_force_at(T0 + HOUR), first.in_force_at(T0 + 2 * HOUR), second.in_force_at(T0 + 3 * HOUR)] == [
        True,
        False,
        True,
    ]


@pytest.mark.parametrize(
    ("kind", "value", "reason", "label", "code"),
    [
        ("nitro.pcr0", B, "never revoked", None, "REFERENCE_VALUE_NOT_REVOKED"),
        ("nitro.pcr0", A, "   ", None, "REAPPROVE_REASON_REQUIRED"),
        ("nitro.pcr0", A, "x" * 1001, None, "REAPPROVE_REASON_TOO_LONG"),
        ("nitro.pcr0", A, "ok", "l" * 201, "REFERENCE_LABEL_TOO_LONG"),
    ],
)
def test_reapprove_refusals_change_nothing(
    db: Database, store: SqlReferenceValueStore, kind: str, value: bytes, reason: str, label: str | None, code: str
) -> None:
    x = store.add("nitro.pcr0", A, "x", now=T0)
    store.add("nitro.pcr0", B, "x", now=T0)
    store.revoke(x.id, "r", now=T0 + HOUR)
    before = (audit.reference_set_version(db), len(ref_rows(db)))
    with pytest.raises(RequestError) as info:
        store.reapprove(kind, value, reason, now=T0 + 2 * HOUR, label=label)
    assert info.value.code == code
    assert (audit.reference_set_version(db), len(ref_rows(db))) == before
    with pytest.raises(RequestError, match="REFERENCE_VALUE_REVOKED"):
        store.add("nitro.pcr0", A, "x", now=T0 + 2 * HOUR)


def test_a_reapproval_not_after_the_revocation_is_refused(store: SqlReferenceValueStore) -> None:
    x = store.add("nitro.pcr0", A, "x", now=T0)
    store.revoke(x.id, "r", now=T0 + HOUR)
    with pytest.raises(RequestError) as info:  # e.g. a clock behind the revoking replica's
        store.reapprove("nitro.pcr0", A, "ok", now=T0 + HOUR)
    assert info.value.code == "REAPPROVE_BEFORE_REVOCATION"


# --- manifests --------------------------------------------------------------------------------------------------


def test_a_manifest_revocation_reaches_every_row_of_the_value_and_plan_says_so(
    tmp_path: Path, store: SqlReferenceValueStore
) -> None:
    mine = store.add("nitro.pcr0", A, "app", now=T0)
    foreign = store.add("nitro.pcr0", A, "someone else", now=T0)
    m = manifest(
        tmp_path,
        {
            "managed_labels": ["app"],
            "reference_values": [],
            "revoke": [{"kind": "nitro.pcr0", "value": A.hex(), "reason": "CVE"}],
        },
    )
    plan = store.plan([m], now=T0 + HOUR)
    assert {r.ref.id for r in plan.revoke} == {mine.id, foreign.id} and plan.expire == ()
    applied = store.apply([m], now=T0 + HOUR)
    assert {r.ref.id for r in applied.revoke} == {mine.id, foreign.id}
    assert store.active(["nitro.pcr0"], T0 + HOUR) == []
    assert store.plan([m], now=T0 + 2 * HOUR).empty


def test_a_revoke_entry_can_no_longer_be_narrowed_to_a_label(tmp_path: Path) -> None:
    with pytest.raises(RequestError) as info:
        manifest(
            tmp_path,
            {"reference_values": [], "revoke": [{"kind": "nitro.pcr0", "value": A.hex(), "reason": "r", "label": "x"}]},
        )
    assert info.value.code == "MANIFEST_INVALID" and "per value" in info.value.message


def test_apply_revoking_one_row_of_a_value_cascades_within_the_transaction(
    tmp_path: Path, db: Database, store: SqlReferenceValueStore
) -> None:
    store.apply(
        [manifest(tmp_path, {"reference_values": [{"kind": "nitro.pcr0", "value": A.hex(), "label": "a"}]})], now=T0
    )
    store.apply(
        [manifest(tmp_path, {"reference_values": [{"kind": "nitro.pcr0", "value": A.hex(), "label": "b"}]}, "b.yaml")],
        now=T0,
    )
    [a] = store.list(label="a", at=T0)
    store.revoke(a.id, "bad", now=T0 + HOUR)
    assert [r.state(T0 + HOUR) for r in store.list(label="b", include_inactive=True, at=T0 + HOUR)] == ["revoked"]
    with pytest.raises(RequestError, match="REFERENCE_VALUE_REVOKED"):  # b's manifest cannot bring it back
        store.apply(
            [
                manifest(
                    tmp_path, {"reference_values": [{"kind": "nitro.pcr0", "value": A.hex(), "label": "b"}]}, "b2.yaml"
                )
            ],
            now=T0 + 2 * HOUR,
        )


# --- hostile text from the admin API ----------------------------------------------------------------------------


def test_nul_and_surrogates_in_admin_text_are_stored_not_a_crash(db: Database, store: SqlReferenceValueStore) -> None:
    """PostgreSQL text cannot hold U+0000: labels, versions, reasons, actors and filters go through
    `text.storable` (U+0000 -> U+2400) instead of failing in the driver."""
    ref = store.add("nitro.pcr0", A, "img\x00", now=T0, version="1\x00", actor="token:a\x00")
    assert (ref.label, ref.version, ref.created_by) == ("img\u2400", "1\u2400", "token:a\u2400")
    revoked = store.revoke(ref.id, "why\x00\ud800", now=T0 + HOUR, actor="token:b\x00")
    assert revoked.revoke_reason == "why\u2400\ufffd"
    assert store.list(label="img\x00", include_inactive=True, at=T0) == [revoked]
    assert store.list(kind="nitro.pcr0\x00", at=T0) == []
    result = store.reapprove("nitro.pcr0", A, "ok\x00", now=T0 + 2 * HOUR, actor="cli:c\x00", label="l\x00")
    assert result.revocations[0].reason == "why\u2400\ufffd" and result.revocations[0].reapprove_reason == "ok\u2400"
    assert result.added is not None and result.added.label == "l\u2400"
    assert [e.action for e in store.history(label="img\x00")] == ["ref.add", "ref.revoke", "ref.reapprove"]
    for bad_id in ("\x00", "id\x00"):
        with pytest.raises(NotFoundError):
            store.revoke(bad_id, "r", now=T0 + 3 * HOUR)
        with pytest.raises(NotFoundError):
            store.get(bad_id)
        with pytest.raises(NotFoundError):
            store.history(bad_id)
    assert audit.verify_chain(db).ok
