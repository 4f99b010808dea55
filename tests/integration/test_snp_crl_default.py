"""SEV-SNP revocation is checked by default: a service built from default Settings and the `verifier verify` CLI
fetch the product's ARK-signed CRL from AMD KDS (here the loopback fake) through the cache, like the VCEK, and a
revoked ASK is contraindicated; `--no-check-crl` / VERIFIER_CHECK_CRL=0 is the explicit opt-out."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.fakes.amd_pki import FakeAmdPki
from tests.fakes.kds_server import FakeKds, Reply
from tests.integration.test_cli import Cli
from verifier.appraisal.model import Tier
from verifier.bootstrap import build
from verifier.clock import FixedClock, to_rfc3339
from verifier.service import AppraisalRequest
from verifier.settings import Settings, from_environment
from verifier.storage.engine import Database
from verifier.tee.sevsnp.tcb import Product
from verifier.trust.anchors import PINNED_ROOTS

pytestmark = pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")
MEASUREMENT = hashlib.sha384(b"measurement").digest()
CRL = "/vcek/v1/Genoa/crl"


@pytest.fixture(scope="module")
def pki() -> FakeAmdPki:
    return FakeAmdPki(Product.GENOA)


@pytest.fixture
def kds(pki: FakeAmdPki, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKds]:
    """The fake KDS serving the fake VCEK and cert chain; the fake ARK pinned as if it were AMD's."""
    monkeypatch.setitem(PINNED_ROOTS, "amd-ark", pki.pins["amd-ark"])
    with FakeKds() as server:
        server.serve(f"/vcek/v1/Genoa/{pki.hwid.hex()}", Reply(body=pki.vcek.public_bytes(Encoding.DER)))
        server.serve(
            "/vcek/v1/Genoa/cert_chain",
            Reply(body=pki.ask.public_bytes(Encoding.PEM) + pki.ark.public_bytes(Encoding.PEM)),
        )
        yield server


def _codes(result: object) -> list[str]:
    return [f.code for f in result.appraisal.findings]  # type: ignore[attr-defined]


def test_settings_check_crl_by_default_with_an_explicit_opt_out() -> None:
    assert Settings().check_crl is True
    assert from_environment({}).check_crl is True
    assert from_environment({"VERIFIER_CHECK_CRL": "0"}).check_crl is False
    assert from_environment({"VERIFIER_CHECK_CRL": "1"}).check_crl is True


def test_default_service_fetches_the_crl_and_a_revoked_ask_is_contraindicated(
    kds: FakeKds, pki: FakeAmdPki, db: Database, database_url: str
) -> None:
    kds.serve(CRL, Reply(body=pki.crl([pki.ask.serial_number])))
    components = build(
        Settings(database_url=database_url, development=True, amd_kds_url=kds.url), clock=FixedClock(pki.now)
    )
    try:
        components.references.add("snp.measurement", MEASUREMENT, "image", now=pki.now - dt.timedelta(days=1))
        result = components.service.appraise(AppraisalRequest(tee="snp", evidence=pki.report()))
        assert result.appraisal.status is Tier.CONTRAINDICATED
        assert _codes(result) == ["SNP_CERT_REVOKED"]
        assert kds.count(CRL) == 1
    finally:
        components.close()


def test_default_service_affirms_with_a_clean_crl_fetched_once(
    kds: FakeKds, pki: FakeAmdPki, db: Database, database_url: str
) -> None:
    kds.serve(CRL, Reply(body=pki.crl()))
    components = build(
        Settings(database_url=database_url, development=True, amd_kds_url=kds.url), clock=FixedClock(pki.now)
    )
    try:
        components.references.add("snp.measurement", MEASUREMENT, "image", now=pki.now - dt.timedelta(days=1))
        for _ in range(2):
            result = components.service.appraise(AppraisalRequest(tee="snp", evidence=pki.report()))
            assert result.appraisal.status is Tier.AFFIRMING, _codes(result)
        assert kds.count(CRL) == 1  # the second appraisal is served from the cache
    finally:
        components.close()


@pytest.fixture
def cli(database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, kds: FakeKds) -> Cli:
    monkeypatch.setenv("VERIFIER_DATABASE_URL", database_url)
    monkeypatch.setenv("VERIFIER_AMD_KDS_URL", kds.url)
    monkeypatch.delenv("VERIFIER_OFFLINE", raising=False)
    monkeypatch.delenv("VERIFIER_CHECK_CRL", raising=False)
    runner = Cli(database_url, capsys)
    assert runner("db", "upgrade")[0] == 0
    return runner


def test_default_cli_checks_the_crl_and_no_check_crl_opts_out(
    cli: Cli, kds: FakeKds, pki: FakeAmdPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kds.serve(CRL, Reply(body=pki.crl([pki.ask.serial_number])))
    evidence = tmp_path / "report.bin"
    evidence.write_bytes(pki.report())
    assert cli("refs", "add", "snp.measurement", MEASUREMENT.hex(), "--label", "image")[0] == 0
    args = ["verify", "--tee", "snp", "--evidence", str(evidence), "--at", to_rfc3339(pki.now), "--json"]
    code, result = cli.json(*args)
    assert code == 2 and [f["code"] for f in result["findings"]] == ["SNP_CERT_REVOKED"], result["findings"]
    code, result = cli.json(*args, "--check-crl")  # still accepted
    assert code == 2
    code, result = cli.json(*args, "--no-check-crl")
    assert code == 0 and result["status"] == "affirming", result["findings"]
    monkeypatch.setenv("VERIFIER_CHECK_CRL", "0")
    assert cli.json(*args)[0] == 0


def test_serve_and_verify_flags() -> None:
    from verifier.cli.main import build_parser

    parser = build_parser()
    for command in ("serve", "verify"):
        extra = ["--evidence", "x"] if command == "verify" else []
        args = parser.parse_args([command, *extra])
        assert (args.check_crl, args.collateral_refresh) == (None, None)  # the settings decide
        args = parser.parse_args([command, *extra, "--no-check-crl", "--collateral-refresh", "600"])
        assert (args.check_crl, args.collateral_refresh) == (False, dt.timedelta(minutes=10))
        assert parser.parse_args([command, *extra, "--check-crl"]).check_crl is True
        with pytest.raises(SystemExit) as info:
            parser.parse_args([command, *extra, "--collateral-refresh", "-1"])
        assert info.value.code == 64
