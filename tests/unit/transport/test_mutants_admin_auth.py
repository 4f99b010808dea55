"""Issue 16, surviving mutants of verifier/transport/grpc/admin_auth.py: the client CA configuration errors, the CA
flag of intermediates, the validity edges (both ends inclusive), the refusal budget of the audit log, the
no-credentials warning, the reset of CURRENT_PRINCIPAL after an admin call, and what a refusal records in the audit
log (the credential kind and the request id)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import types
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration.test_admin_auth import CA_KEY_USAGE, Issued, _ca, _leaf
from tests.unit.transport.test_issue16_admin_certs import _ca_between
from tests.unit.transport.test_transport_interceptors import DIGEST, Details, FakeContext, FakeTokens, ok, raising
from verifier import errors
from verifier.auth import CURRENT_PRINCIPAL, current_actor
from verifier.logging_setup import REQUEST_ID
from verifier.storage import audit
from verifier.storage.engine import Database
from verifier.transport.grpc import admin_auth
from verifier.transport.grpc.admin_auth import (
    REFUSALS_AUDITED_PER_MINUTE,
    AdminAuthInterceptor,
    ClientCertVerifier,
    _RefusalBudget,
)

LIST = "/verifier.v1.ReferenceValues/List"
# A fixed validity window (whole seconds: X.509 times have no fraction) far from the real clock.
NOT_BEFORE = dt.datetime(2031, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
NOT_AFTER = dt.datetime(2031, 3, 5, 5, 6, 7, tzinfo=dt.UTC)
TICK = dt.timedelta(microseconds=1)


def _cert(
    issuer: Issued | None,
    cn: str,
    not_before: dt.datetime,
    not_after: dt.datetime,
    *,
    basic_constraints: x509.BasicConstraints | None,
    key_usage: x509.KeyUsage | None = None,
) -> Issued:
    """A certificate signed by `issuer` (self-signed when None), with `basic_constraints` or none at all, and
    `key_usage` (critical) when given."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer is not None else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if basic_constraints is not None:
        builder = builder.add_extension(basic_constraints, critical=True)
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    return Issued(key, builder.sign(issuer.key if issuer is not None else key, hashes.SHA256()))


LEAF_BC = x509.BasicConstraints(ca=False, path_length=None)


# --- ClientCertVerifier configuration ------------------------------------------------------------------------------


def _config_error(fn: Any, *args: Any) -> str:
    with pytest.raises(errors.ConfigError) as info:
        fn(*args)
    return info.value.code


def test_an_empty_client_ca_list_is_a_config_error() -> None:
    assert _config_error(ClientCertVerifier, []) == "CLIENT_CA_EMPTY"
    assert _config_error(ClientCertVerifier, ()) == "CLIENT_CA_EMPTY"
    assert _config_error(ClientCertVerifier.from_files) == "CLIENT_CA_EMPTY"  # no file at all


def test_an_unreadable_client_ca_file_is_a_config_error(tmp_path: Path) -> None:
    good = tmp_path / "admin-ca.pem"
    good.write_bytes(_ca("admin ca").pem)
    missing = tmp_path / "missing.pem"
    assert _config_error(ClientCertVerifier.from_files, missing) == "CLIENT_CA_UNREADABLE"
    assert _config_error(ClientCertVerifier.from_files, good, missing) == "CLIENT_CA_UNREADABLE"
    assert _config_error(ClientCertVerifier.from_files, tmp_path) == "CLIENT_CA_UNREADABLE"  # a directory


@pytest.mark.parametrize(
    "content",
    [b"", b"not a certificate\n", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"],
    ids=["empty", "text", "broken-pem"],
)
def test_a_client_ca_file_without_a_certificate_is_a_config_error(tmp_path: Path, content: bytes) -> None:
    admin = _ca("admin ca")
    good, bad = tmp_path / "admin-ca.pem", tmp_path / "bad.pem"
    good.write_bytes(admin.pem)
    bad.write_bytes(content)
    assert _config_error(ClientCertVerifier.from_files, bad) == "CLIENT_CA_INVALID"
    # A bad file next to a good one still fails the whole configuration (not silently skipped).
    assert _config_error(ClientCertVerifier.from_files, good, bad) == "CLIENT_CA_INVALID"
    assert _config_error(ClientCertVerifier.from_files, bad, good) == "CLIENT_CA_INVALID"
    # The control: the good file alone loads and accepts its leaf.
    alice = _leaf(admin, "alice")
    now = dt.datetime.now(dt.UTC)
    assert ClientCertVerifier.from_files(good).verify(alice.pem, None, at=now) == alice.cert


# --- intermediates must be CAs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("constraints", "is_ca"),
    [
        (None, False),
        (x509.BasicConstraints(ca=False, path_length=None), False),
        (x509.BasicConstraints(ca=True, path_length=None), True),
    ],
    ids=["no-basic-constraints", "ca-false", "ca-true"],
)
def test_only_a_certificate_with_the_ca_flag_serves_as_an_intermediate(
    constraints: x509.BasicConstraints | None, is_ca: bool
) -> None:
    admin = _ca("admin ca")
    now = dt.datetime.now(dt.UTC)
    span = (now - dt.timedelta(minutes=5), now + dt.timedelta(hours=1))
    middle = _cert(admin, "ops", *span, basic_constraints=constraints, key_usage=CA_KEY_USAGE)  # keyCertSign: ok
    bob = _cert(middle, "bob", *span, basic_constraints=LEAF_BC)
    verifier = ClientCertVerifier([admin.cert])
    assert verifier.verify(bob.pem, bob.pem + middle.pem, at=now) == (bob.cert if is_ca else None)
    code = asyncio.run(_call(AdminAuthInterceptor(admin_cas=verifier), LIST, leaf=bob.pem, chain=bob.pem + middle.pem))
    assert code == ("ok" if is_ca else "ADMIN_CERT_INVALID")


# --- validity edges: not_before and not_after are both valid instants ----------------------------------------------


@pytest.mark.parametrize(
    ("at", "valid"),
    [
        (NOT_BEFORE - TICK, False),
        (NOT_BEFORE, True),  # the first valid instant
        (NOT_BEFORE + TICK, True),
        (NOT_AFTER - TICK, True),
        (NOT_AFTER, True),  # the last valid instant
        (NOT_AFTER + TICK, False),
    ],
    ids=["before-not-before", "at-not-before", "after-not-before", "before-not-after", "at-not-after", "expired"],
)
def test_leaf_validity_edges_are_inclusive(at: dt.datetime, valid: bool) -> None:
    admin = _ca_between("admin ca", NOT_BEFORE - dt.timedelta(days=30), NOT_AFTER + dt.timedelta(days=30))
    alice = _cert(admin, "alice", NOT_BEFORE, NOT_AFTER, basic_constraints=LEAF_BC)
    assert (alice.cert.not_valid_before_utc, alice.cert.not_valid_after_utc) == (NOT_BEFORE, NOT_AFTER)
    assert ClientCertVerifier([admin.cert]).verify(alice.pem, None, at=at) == (alice.cert if valid else None)


@pytest.mark.parametrize(
    ("at", "valid"),
    [(NOT_BEFORE - TICK, False), (NOT_BEFORE, True), (NOT_AFTER, True), (NOT_AFTER + TICK, False)],
    ids=["before-not-before", "at-not-before", "at-not-after", "expired"],
)
def test_admin_ca_validity_edges_are_inclusive(at: dt.datetime, valid: bool) -> None:
    admin = _ca_between("admin ca", NOT_BEFORE, NOT_AFTER)
    alice = _cert(
        admin, "alice", NOT_BEFORE - dt.timedelta(days=30), NOT_AFTER + dt.timedelta(days=30), basic_constraints=LEAF_BC
    )
    assert ClientCertVerifier([admin.cert]).verify(alice.pem, None, at=at) == (alice.cert if valid else None)


@pytest.mark.parametrize(
    ("at", "valid"),
    [(NOT_BEFORE - TICK, False), (NOT_BEFORE, True), (NOT_AFTER, True), (NOT_AFTER + TICK, False)],
    ids=["before-not-before", "at-not-before", "at-not-after", "expired"],
)
def test_intermediate_validity_edges_are_inclusive(at: dt.datetime, valid: bool) -> None:
    wide = (NOT_BEFORE - dt.timedelta(days=30), NOT_AFTER + dt.timedelta(days=30))
    admin = _ca_between("admin ca", *wide)
    ops = _cert(
        admin,
        "ops",
        NOT_BEFORE,
        NOT_AFTER,
        basic_constraints=x509.BasicConstraints(ca=True, path_length=0),
        key_usage=CA_KEY_USAGE,
    )
    bob = _cert(ops, "bob", *wide, basic_constraints=LEAF_BC)
    got = ClientCertVerifier([admin.cert]).verify(bob.pem, bob.pem + ops.pem, at=at)
    assert got == (bob.cert if valid else None)


# --- the refusal budget --------------------------------------------------------------------------------------------


class FakeMonotonic:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def monotonic(monkeypatch: pytest.MonkeyPatch) -> FakeMonotonic:
    """The clock of admin_auth only (its `time` module replaced), so the event loop keeps the real one."""
    clock = FakeMonotonic(5000.0)
    monkeypatch.setattr(admin_auth, "time", types.SimpleNamespace(monotonic=clock))
    return clock


def test_the_refusal_budget_allows_per_minute_takes_and_renews_exactly_a_minute_later(monotonic: FakeMonotonic) -> None:
    start = monotonic.now
    budget = _RefusalBudget(3)
    assert [budget.take() for _ in range(4)] == [True, True, True, False]
    assert budget.suppressed == 1
    monotonic.now = start + 59.999  # still the same window
    assert budget.take() is False and budget.suppressed == 2
    monotonic.now = start + 60.0  # exactly a minute after the window opened: a new window
    assert [budget.take() for _ in range(4)] == [True, True, True, False]
    assert budget.suppressed == 3
    monotonic.now = start + 60.0 + 59.0  # the window opened at start + 60, not at the last take
    assert budget.take() is False
    monotonic.now = start + 120.0
    assert budget.take() is True


def test_a_zero_budget_never_takes(monotonic: FakeMonotonic) -> None:
    budget = _RefusalBudget(0)
    assert budget.take() is False
    monotonic.now += 60.0
    assert budget.take() is False and budget.suppressed == 2


# --- the audit of refusals ------------------------------------------------------------------------------------------


async def _call(
    interceptor: AdminAuthInterceptor,
    method: str,
    *,
    header: str | None = None,
    leaf: bytes | None = None,
    chain: bytes | None = None,
    inner: Any = ok,
) -> str:
    """One admin call: "ok", or the refusal's code."""
    auth: dict[str, list[bytes]] = {}
    if leaf is not None:
        auth = {"transport_security_type": [b"ssl"], "x509_pem_cert": [leaf]}
        if chain is not None:
            auth["x509_pem_cert_chain"] = [chain]
    metadata = (("authorization", header),) if header is not None else ()
    try:
        return str(await interceptor.around(method, Details("/x", metadata), inner, None, FakeContext(auth)))  # type: ignore[arg-type]
    except (errors.AuthError, errors.AccessDeniedError) as error:
        return error.code


def _refusals(db: Database) -> list[audit.AuditEntry]:
    return audit.entries(db, action="admin.refused", limit=1000)


def test_the_audit_log_takes_at_most_the_budget_of_refusals_a_minute(
    sqlite_db: Database, monotonic: FakeMonotonic
) -> None:
    interceptor = AdminAuthInterceptor((DIGEST,), audit_db=sqlite_db)

    async def refused(count: int) -> list[str]:
        return [await _call(interceptor, LIST, header="Bearer wrong") for _ in range(count)]

    budget = REFUSALS_AUDITED_PER_MINUTE
    assert asyncio.run(refused(budget + 1)) == ["ADMIN_TOKEN_INVALID"] * (budget + 1)  # every one still refused
    assert len(_refusals(sqlite_db)) == budget
    monotonic.now += 60.0
    assert asyncio.run(refused(2)) == ["ADMIN_TOKEN_INVALID"] * 2
    assert len(_refusals(sqlite_db)) == budget + 2


def test_a_refusal_records_the_kind_of_credential_presented(sqlite_db: Database) -> None:
    admin, foreign = _ca("admin ca"), _ca("foreign ca")
    interceptor = AdminAuthInterceptor((DIGEST,), admin_cas=ClientCertVerifier([admin.cert]), audit_db=sqlite_db)
    alice, mallory = _leaf(admin, "alice"), _leaf(foreign, "mallory")

    async def scenario() -> list[str]:
        return [
            await _call(interceptor, LIST, header="Bearer wrong", leaf=alice.pem),  # a bad token beats a good cert
            await _call(interceptor, LIST, header="Bearer wrong"),
            await _call(interceptor, LIST, leaf=mallory.pem),
            await _call(interceptor, LIST),
        ]

    assert asyncio.run(scenario()) == [
        "ADMIN_TOKEN_INVALID",
        "ADMIN_TOKEN_INVALID",
        "ADMIN_CERT_INVALID",
        "ADMIN_AUTH_REQUIRED",
    ]
    details = [e.details for e in _refusals(sqlite_db)]
    assert [d["credential"] for d in details] == ["bearer", "bearer", "cert", "none"]
    assert [d["reason"] for d in details] == [
        "ADMIN_TOKEN_INVALID",
        "ADMIN_TOKEN_INVALID",
        "ADMIN_CERT_INVALID",
        "ADMIN_AUTH_REQUIRED",
    ]
    assert details[2]["certificate"] == "unverified mallory"


def test_a_refusal_records_the_request_id(sqlite_db: Database) -> None:
    interceptor = AdminAuthInterceptor((DIGEST,), audit_db=sqlite_db)

    async def scenario() -> None:
        assert await _call(interceptor, LIST) == "ADMIN_AUTH_REQUIRED"  # no request id set
        token = REQUEST_ID.set("rid-7")
        try:
            assert await _call(interceptor, LIST) == "ADMIN_AUTH_REQUIRED"
        finally:
            REQUEST_ID.reset(token)

    asyncio.run(scenario())
    assert [e.details["request_id"] for e in _refusals(sqlite_db)] == ["", "rid-7"]


# --- the principal is set for the handler only ---------------------------------------------------------------------


def test_the_principal_is_reset_after_the_handler_in_the_same_task() -> None:
    interceptor = AdminAuthInterceptor((DIGEST,), tokens=FakeTokens("admin"))
    seen: list[str] = []

    async def inner(request: Any, context: Any) -> str:
        seen.append(current_actor())
        return "ok"

    async def scenario() -> None:
        assert CURRENT_PRINCIPAL.get() is None
        assert await _call(interceptor, LIST, header="Bearer db-token", inner=inner) == "ok"
        assert CURRENT_PRINCIPAL.get() is None  # not left behind for the next call on this task
        with pytest.raises(RuntimeError):
            await _call(interceptor, LIST, header="Bearer tok", inner=raising(RuntimeError("boom")))
        assert CURRENT_PRINCIPAL.get() is None  # also when the handler raises
        assert await _call(interceptor, LIST, header="Bearer tok", inner=inner) == "ok"
        assert CURRENT_PRINCIPAL.get() is None

    asyncio.run(scenario())
    assert seen[0] == "token:ci" and seen[1].startswith("static:") and len(seen) == 2


# --- the warning when no admin credential is configured ------------------------------------------------------------


def _cas() -> ClientCertVerifier:
    return ClientCertVerifier([_ca("admin ca").cert])


@pytest.mark.parametrize(
    ("make", "warns"),
    [
        (lambda: AdminAuthInterceptor(), True),
        (lambda: AdminAuthInterceptor(("  ", "")), True),  # blank digests are no credential
        (lambda: AdminAuthInterceptor(appraisal_cas=_cas()), True),  # appraisal CAs are no admin credential
        (lambda: AdminAuthInterceptor((DIGEST,)), False),
        (lambda: AdminAuthInterceptor(tokens=FakeTokens("admin")), False),
        (lambda: AdminAuthInterceptor(admin_cas=_cas()), False),
        (lambda: AdminAuthInterceptor((DIGEST,), tokens=FakeTokens("admin")), False),
        (lambda: AdminAuthInterceptor((DIGEST,), admin_cas=_cas()), False),
        (lambda: AdminAuthInterceptor(tokens=FakeTokens("admin"), admin_cas=_cas()), False),
    ],
    ids=[
        "nothing",
        "blank-digests",
        "appraisal-cas-only",
        "digest",
        "tokens",
        "admin-cas",
        "digest+tokens",
        "digest+admin-cas",
        "tokens+admin-cas",
    ],
)
def test_the_operator_is_warned_when_no_admin_credential_is_configured(
    make: Any, warns: bool, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=admin_auth.__name__):
        make()
    warnings = [r for r in caplog.records if "no admin credentials configured" in r.getMessage()]
    assert [r.levelno for r in warnings] == ([logging.WARNING] if warns else [])
