"""Composition root: builds the service and its dependencies from Settings, for the server and the CLI."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from .appraisal.policy import PolicySet
from .background import BestEffortWorker
from .challenges import Challenge, ChallengeStore, ConsumeOutcome
from .clock import Clock, FixedClock, SystemClock
from .collateral.base import CollateralSource, OfflineSource
from .collateral.breaker import CircuitBreakerSource
from .collateral.cache import CachedSource
from .collateral.kds import AmdKds
from .collateral.nvidia import NvidiaOcsp, NvidiaRimService
from .collateral.pcs import DEFAULT_BASE_URL as DEFAULT_PCS_URL
from .collateral.pcs import DEFAULT_ROOT_CA_CRL_URL, IntelPcs
from .collateral.rim_directory import RimDirectory
from .collateral.routing import RoutingSource
from .errors import ConfigError
from .recording import AppraisalRecord, Done, Recorder, RecordingUnit
from .results.keys import ephemeral_key, load_keys
from .results.signer import ResultSigner
from .service import VerifierService
from .settings import Settings
from .storage.appraisals import SqlAppraisalStore
from .storage.challenges import SqlChallengeStore
from .storage.collateral import SqlCollateralCache
from .storage.engine import Database
from .storage.hot_cache import HotCache
from .storage.hot_readers import HotPolicies, HotReferences, HotWorkloads
from .storage.kept_evidence import SqlKeptEvidence
from .storage.policies import SqlPolicies
from .storage.reference_values import SqlReferenceValueStore
from .storage.workloads import SqlWorkloads
from .trust.anchors import TrustAnchors

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class Components:
    settings: Settings
    database: Database
    references: SqlReferenceValueStore
    service: VerifierService
    kept: SqlKeptEvidence | None = None
    background: BestEffortWorker | None = None
    hot: HotCache | None = None  # the appraisals' reads (reference values, workloads, policies) by version

    def close(self) -> None:
        """Stop the vendor-fetch pool (never waits for a stuck fetch), finish best-effort writes, dispose."""
        source = self.service.collateral_source
        if isinstance(source, CachedSource):
            source.close()
        if self.background is not None:
            self.background.close(timeout=5.0)  # finish queued best-effort writes before the database goes
        self.database.dispose()


def build_signer(settings: Settings, *, clock: Clock | None = None) -> ResultSigner:
    if settings.signing_key_dir is not None:
        if settings.signing_keys:
            raise ConfigError(
                "SIGNING_KEY_CONFLICT",
                "configure either --signing-key-dir (a keyring) or --signing-key files, not both",
            )
        return ResultSigner.from_keyring(settings.signing_key_dir, clock=clock or SystemClock())
    if settings.signing_keys:
        return ResultSigner(load_keys(list(settings.signing_keys)))
    if settings.development:
        log.warning(
            "DEVELOPMENT MODE: results are signed with an ephemeral key generated at start-up; relying parties "
            "cannot pin it and it is lost on restart. Configure --signing-key for any real use."
        )
        return ResultSigner([ephemeral_key()], development=True)
    raise ConfigError(
        "SIGNING_KEY_MISSING",
        "no result-signing key configured: pass --signing-key FILE (create one with `verifier keys generate`) "
        "or --dev for an ephemeral development key",
    )


def _rims(settings: Settings) -> CollateralSource:
    """NVIDIA's RIM service behind its breaker, with the configured RIM directory asked first."""
    service = CircuitBreakerSource(
        NvidiaRimService(settings.nvidia_rim_url, timeout=settings.collateral_timeout), vendor="NVIDIA RIM service"
    )
    return RimDirectory(settings.nvidia_rim_dir, service) if settings.nvidia_rim_dir is not None else service


def build_collateral_source(settings: Settings, database: Database) -> CollateralSource:
    """Offline: nothing is ever fetched. Otherwise AMD KDS, Intel PCS, NVIDIA's RIM service and OCSP responder,
    each behind its own circuit breaker (`collateral.breaker`), behind the shared database cache, which refetches
    revocation lists, NVIDIA RIMs and Intel TCB info / QE identity every `collateral_refresh` (wall clock)."""
    if settings.offline:
        offline = OfflineSource()
        return RimDirectory(settings.nvidia_rim_dir, offline) if settings.nvidia_rim_dir is not None else offline
    routes: dict[str, CollateralSource] = {
        "amd": CircuitBreakerSource(
            AmdKds(settings.amd_kds_url, timeout=settings.collateral_timeout), vendor="AMD KDS"
        ),
        "intel": CircuitBreakerSource(
            IntelPcs(
                settings.intel_pcs_url,
                timeout=settings.collateral_timeout,
                root_ca_crl_url=_root_ca_crl_url(settings.intel_pcs_url),
            ),
            vendor="Intel PCS",
        ),
        "nvidia.rim": _rims(settings),
        "nvidia.ocsp": CircuitBreakerSource(
            NvidiaOcsp(settings.nvidia_ocsp_url, timeout=settings.collateral_timeout), vendor="NVIDIA OCSP"
        ),
    }
    try:
        return CachedSource(
            RoutingSource(routes),
            SqlCollateralCache(database),
            refresh=settings.collateral_refresh,
            fetch_workers=settings.fetch_workers,
            fetch_queue=settings.fetch_queue,
            fetch_wait=settings.fetch_wait,
        )
    except ValueError as error:
        raise ConfigError("SETTING_INVALID", f"collateral cache: {error}") from None


def _root_ca_crl_url(pcs_url: str) -> str:
    """Intel PCS: the Root CA CRL lives on Intel's certificate host; a PCCS serves it itself."""
    if pcs_url.rstrip("/") == DEFAULT_PCS_URL:
        return DEFAULT_ROOT_CA_CRL_URL
    return pcs_url.rstrip("/") + "/sgx/certification/v4/rootcacrl"


def open_database(settings: Settings) -> Database:
    """The database of `settings` with its bounds (timeouts, pool, deadline): the one place a `Database` is made
    for the server and the CLI. Connects lazily; raises ConfigError for a malformed URL."""
    return Database(
        settings.database_url,
        connect_timeout_s=settings.db_connect_timeout_s,
        statement_timeout_ms=settings.db_statement_timeout_ms,
        lock_timeout_ms=settings.db_lock_timeout_ms,
        busy_timeout_ms=settings.db_busy_timeout_ms,
        pool_size=max(1, settings.db_pool_size),
        pool_timeout_s=float(settings.db_pool_timeout_s),
        deadline_s=float(settings.db_deadline_s),
    )


def build_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    signer: ResultSigner | None = None,
    background_writes: bool = False,
    challenge_clock: Clock | None = None,
) -> Components:
    """Everything from `settings`, every port wired (database stores, signer, collateral source, policies), the
    service appraising at `clock` (default: now). `background_writes` (the server) moves best-effort writes (kept
    evidence) off the answer's path; the CLI and tests keep them inline. With `challenge_clock`, challenges are made,
    expire and are consumed on that clock instead (`build_server_app`). Raises ConfigError (signing keys, trust
    anchors, collateral settings)."""
    database = open_database(settings)
    anchors = (
        TrustAnchors.from_directory(settings.trust_anchors) if settings.trust_anchors is not None else TrustAnchors()
    )
    references = SqlReferenceValueStore(database)
    service_clock = clock or SystemClock()
    # The hot path's reads (issue 13 item 3): one snapshot per reference-set version, one version read per appraisal.
    hot = HotCache(database, service_clock)
    kept = (
        SqlKeptEvidence(database, max_rows=settings.keep_evidence, max_days=settings.keep_evidence_days)
        if settings.keep_evidence > 0
        else None
    )
    policies = build_policies(settings, database, hot)
    for name in (settings.default_policy, *(settings.selectable_policies or ())):
        if name is not None and policies.lookup(name) is None:
            raise ConfigError(
                "POLICY_UNKNOWN", f"no appraisal policy named {name!r} (--default-policy, --selectable-policy)"
            )
    # The appraisal unit of work (`verifier.recording.Recorder`) consumes the challenges of the challenge store, in
    # the same database, in the transaction that records the appraisal and its audit row.
    challenges, appraisals = _challenge_ports(database, challenge_clock)
    service = VerifierService(
        clock=service_clock,
        anchors=anchors,
        references=HotReferences(hot, references),
        signer=signer or build_signer(settings, clock=clock),
        challenges=challenges,
        appraisals=appraisals,
        issuer=settings.issuer,
        token_lifetime=settings.token_lifetime,
        challenge_ttl=settings.challenge_ttl,
        policies=policies,
        default_policy=settings.default_policy,
        selectable_policies=(
            frozenset(settings.selectable_policies) if settings.selectable_policies is not None else None
        ),
        collateral_source=build_collateral_source(settings, database),
        check_crl=settings.check_crl,
        kept=kept,
        reference_set_version=hot.version,
        reads=hot.pinned,
        workloads=HotWorkloads(hot, SqlWorkloads(database)),
    )
    background = BestEffortWorker("kept-evidence") if background_writes and kept is not None else None
    service.background = background
    return Components(settings, database, references, service, kept=kept, background=background, hot=hot)


build = build_app  # the older name, used by tests and callers


def fixed_clock(settings: Settings) -> FixedClock | None:
    """The fixed appraisal clock `settings` ask `verifier serve` for (`fixed_time`, `--at`), None for the system
    clock. Raises ConfigError FIXED_CLOCK_NEEDS_DEV when it is set without `development`."""
    if settings.fixed_time is None:
        return None
    if not settings.development:
        raise ConfigError(
            "FIXED_CLOCK_NEEDS_DEV",
            "--at (VERIFIER_FIXED_TIME) fixes the appraisal clock, for development and benchmarks only: "
            "it needs --dev (VERIFIER_DEVELOPMENT=1)",
        )
    return FixedClock(settings.fixed_time)


def build_server_app(settings: Settings, *, signer: ResultSigner | None = None) -> Components:
    """The app of `verifier serve` (its one process, or one worker after the fork with the supervisor's `signer`):
    best-effort writes in the background and, with `fixed_time`, the service appraising at that instant
    (`fixed_clock`) while challenges keep real time and a signing keyring its own (the system) clock. Raises
    ConfigError (FIXED_CLOCK_NEEDS_DEV and those of `build_app`)."""
    clock = fixed_clock(settings)
    if clock is None:
        return build_app(settings, signer=signer, background_writes=True)
    return build_app(
        settings,
        clock=clock,
        signer=signer or build_signer(settings),
        background_writes=True,
        challenge_clock=SystemClock(),
    )


def _challenge_ports(database: Database, clock: Clock | None) -> tuple[ChallengeStore, Recorder]:
    """The challenge store and the appraisal unit of work of `database`; with `clock`, both on that clock."""
    challenges, appraisals = SqlChallengeStore(database), SqlAppraisalStore(database)
    if clock is None:
        return challenges, appraisals
    return _ClockedChallenges(challenges, clock), _ClockedRecorder(appraisals, clock)


class _ClockedChallenges:
    """A challenge store whose challenges are made, expire and are consumed on `clock`, whatever instant the
    service passes: with a fixed appraisal clock (`--at`) a challenge still lives `challenge_ttl` of real time, and
    the expired ones are still purged."""

    def __init__(self, store: ChallengeStore, clock: Clock) -> None:
        self._store, self._clock = store, clock

    def create(self, nonce: bytes, *, now: dt.datetime, ttl: dt.timedelta) -> Challenge:
        return self._store.create(nonce, now=self._clock.now(), ttl=ttl)

    def consume(self, nonce: bytes, *, at: dt.datetime) -> ConsumeOutcome:
        return self._store.consume(nonce, at=self._clock.now())


class _ClockedRecorder:
    """An appraisal unit of work whose challenges are consumed on `clock` (see `_ClockedChallenges`); the appraisal
    is recorded at its own time."""

    def __init__(self, recorder: Recorder, clock: Clock) -> None:
        self._recorder, self._clock = recorder, clock

    @property
    def validates_version(self) -> bool:
        return self._recorder.validates_version

    def run(self, work: Callable[[RecordingUnit], T], *, version: int | None = None) -> T:
        return self._recorder.run(lambda unit: work(_ClockedUnit(unit, self._clock)), version=version)

    def submit(self, work: Callable[[RecordingUnit], T], done: Done[T], *, version: int | None = None) -> None:
        self._recorder.submit(lambda unit: work(_ClockedUnit(unit, self._clock)), done, version=version)

    @contextmanager
    def begin(self) -> Iterator[RecordingUnit]:
        with self._recorder.begin() as unit:
            yield _ClockedUnit(unit, self._clock)


class _ClockedUnit:
    def __init__(self, unit: RecordingUnit, clock: Clock) -> None:
        self._unit, self._clock = unit, clock

    def consume(self, nonce: bytes, *, at: dt.datetime) -> ConsumeOutcome:
        return self._unit.consume(nonce, at=self._clock.now())

    def record(self, record: AppraisalRecord) -> None:
        self._unit.record(record)


def build_policies(settings: Settings, database: Database, hot: HotCache | None = None) -> PolicySet:
    """Built-ins, then `--policy-file`, then the database (`verifier policy set`), which wins; read through `hot`
    (the service's cache) when given, else directly (the CLI)."""
    base = PolicySet.from_file(settings.policy_file) if settings.policy_file else PolicySet()
    stored = SqlPolicies(database)
    return base.with_store(HotPolicies(hot, stored) if hot is not None else stored)
