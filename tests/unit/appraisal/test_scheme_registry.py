"""One scheme per TEE (issue 12, move 1): the registry is the only per-TEE dispatch outside the TEE's own files.

- no per-TEE string comparison (`tee == "snp"`, `tee in ("snp", "tdx")`, `"nitro" != kind`) anywhere under
  verifier/ outside verifier/tee/ and verifier/appraisal/<kind>.py, and no TEE name at all in the service or the
  binding rules;
- every registered scheme provides every member of the `Scheme` protocol, consistently;
- a fourth scheme registered by a test is reachable end to end through `VerifierService.appraise` (verification,
  appraisal, binding, the `cnf` key, tier mapping, incomplete collateral), the CLI's --tee choices and
  `workload_description`, with no edit to service.py.
"""

from __future__ import annotations

import ast
import datetime as dt
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from verifier.appraisal import registry
from verifier.appraisal.binding import ReportDataBinding
from verifier.appraisal.detect import detect_tee
from verifier.appraisal.model import AFFIRMING, CONTRAINDICATED, Claim, Finding, Tier
from verifier.appraisal.policy import Policy
from verifier.appraisal.scheme import CollateralUsed, Scheme, TeeScheme, Verified
from verifier.cli.main import build_parser
from verifier.errors import EvidenceError, RequestError, UnavailableError
from verifier.reference_values.kinds import known_kinds
from verifier.reference_values.model import ReferenceValue
from verifier.results.keys import ephemeral_key
from verifier.results.signer import ResultSigner
from verifier.service import AppraisalRequest, VerifierService, workload_description
from verifier.tee.base import VerifiedEvidence, VerifyContext
from verifier.transport.grpc.convert import TEE_OF_KIND
from verifier.trust.anchors import TrustAnchors
from verifier.v1 import verifier_pb2 as pb

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "verifier"
# The TEE's own files may name their TEE: its package and its appraiser.
OWN_FILES = {PACKAGE / "appraisal" / f"{kind}.py" for kind in ("nitro", "snp", "tdx")}
# Files that must not name any TEE at all (they ask the registry for everything per-TEE).
NO_TEE_NAMES = (
    *(PACKAGE / name for name in ("service.py", "requests.py", "findings.py", "workload_policies.py")),
    PACKAGE / "appraisal" / "binding.py",
)
_COMPARE_OPS = (ast.Eq, ast.NotEq, ast.In, ast.NotIn)


def _tee_names() -> set[str]:
    return {n for s in registry.schemes() for n in (s.name, *s.aliases)}


def _sources() -> list[Path]:
    return sorted(
        p
        for p in PACKAGE.rglob("*.py")
        if "_pb2" not in p.name and PACKAGE / "tee" not in p.parents and p not in OWN_FILES
    )


def _strings(node: ast.expr) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [s for element in node.elts for s in _strings(element)]
    return []


def _per_tee_comparisons(path: Path, names: set[str]) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if not isinstance(node, ast.Compare) or not any(isinstance(op, _COMPARE_OPS) for op in node.ops):
            continue
        for operand in (node.left, *node.comparators):
            if names & set(_strings(operand)):
                where = path.relative_to(ROOT) if ROOT in path.parents else path.name
                found.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
                break
    return found


def test_no_per_tee_comparison_outside_the_schemes() -> None:
    names = _tee_names()
    bad = [line for path in _sources() for line in _per_tee_comparisons(path, names)]
    assert bad == [], "per-TEE dispatch outside verifier/tee/ (ask verifier.appraisal.registry):\n" + "\n".join(bad)


def test_the_comparison_scan_sees_the_forms_it_forbids(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        'a = tee == "snp"\nb = v.tee in ("snp", "tdx")\nc = "nitro" != kind\nd = x not in ["sev-snp"]\n'
        'e = tee == other\nf = "snp" + tee\n'
    )
    assert [line.split(": ", 1)[1] for line in _per_tee_comparisons(sample, _tee_names())] == [
        "tee == 'snp'",
        "v.tee in ('snp', 'tdx')",
        "'nitro' != kind",
        "x not in ['sev-snp']",
    ]


@pytest.mark.parametrize("path", NO_TEE_NAMES, ids=lambda p: p.name)
def test_service_and_binding_name_no_tee(path: Path) -> None:
    names = _tee_names()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    named = [
        f"{node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names
    ]
    assert named == [], f"{path.name} names a TEE (the scheme should say): {named}"


_MEMBERS = sorted(n for n in vars(Scheme) if not n.startswith("_"))


def test_the_protocol_lists_what_the_service_needs() -> None:
    assert set(_MEMBERS) >= {
        "name",
        "aliases",
        "proto_kind",
        "verifier",
        "appraise",
        "binding",
        "main_measurement",
        "measurement",
        "owns_kind",
        "contraindicated_codes",
    }


@pytest.mark.parametrize("scheme", registry.schemes(), ids=lambda s: s.name)
def test_each_scheme_provides_every_member(scheme: Scheme) -> None:
    missing = [m for m in _MEMBERS if not hasattr(scheme, m)]
    assert missing == []
    assert scheme.name == scheme.name.lower() and scheme.verifier.tee == scheme.name
    assert all(isinstance(a, str) and a == a.lower() for a in scheme.aliases)
    assert registry.get_scheme(scheme.name.upper()) is scheme
    assert all(registry.get_scheme(alias) is scheme for alias in scheme.aliases)
    assert scheme.proto_kind is not None and TEE_OF_KIND[pb.EvidenceKind.Value(scheme.proto_kind)] == scheme.name
    assert all(callable(getattr(scheme.binding, m)) for m in ("check", "covers_key", "evidence_key"))
    assert callable(scheme.appraise) and callable(scheme.verifier.verify)
    assert isinstance(scheme.contraindicated_codes, frozenset)
    # The main measurement is a reference-value kind of the scheme (what a workload is approved by).
    assert f"{scheme.name}.{scheme.main_measurement}" in known_kinds()
    assert scheme.owns_kind(f"{scheme.name}.{scheme.main_measurement}")


def test_every_kind_belongs_to_one_scheme_and_every_proto_kind_to_a_scheme() -> None:
    for kind in known_kinds():
        assert [s.name for s in registry.schemes() if s.owns_kind(kind)] == [kind.split(".")[0]], kind
    on_the_wire = {v for v in pb.EvidenceKind.values() if v != pb.EVIDENCE_KIND_UNSPECIFIED}
    assert set(TEE_OF_KIND) == on_the_wire


def test_the_main_measurements_are_read_as_before() -> None:
    nitro, snp, tdx = (registry.get_scheme(n) for n in ("nitro", "snp", "tdx"))
    assert workload_description(nitro, {"pcrs": {"0": "ab" * 48}}) == f"nitro pcr0 {'ab' * 8}"
    assert workload_description(nitro, {"pcrs": {0: bytes(48)}, "module_id": "m"}) == f"nitro pcr0 {'00' * 8}"
    assert workload_description(nitro, {"pcrs": {}, "module_id": "i-1-enc"}) == "nitro module i-1-enc"
    assert workload_description(snp, {"measurement": "cd" * 48}) == f"snp measurement {'cd' * 8}"
    assert workload_description(tdx, {"mr_td": "ef" * 48}) == f"tdx mr_td {'ef' * 8}"
    assert workload_description(tdx, {}) == "tdx"


# --- a fourth scheme, registered by this test only -----------------------------------------------------------

FAKE = "faketee"
HARDWARE_BAD = "FAKE_TCB_OUT_OF_DATE"


class FakeVerifier:
    """Evidence is b"ok:<report_data hex>", b"bad:<code>" or b"nocollateral"."""

    tee = FAKE

    def verify(self, evidence: bytes, ctx: VerifyContext) -> Verified:
        text = evidence.decode()
        if text.startswith("bad:"):
            return Verified(FAKE, text, {}, EvidenceError(text[4:], "fake failure"))
        if text == "nocollateral":
            return Verified(FAKE, text, {"digest": "00"}, incomplete="FAKE_COLLATERAL_UNAVAILABLE", retry_after=7.0)
        claims = {"digest": "12" * 32, "report_data": text.removeprefix("ok:")}
        used = (CollateralUsed("fake.crl", 3, "2026-01-01T00:00:00Z", None, "request"),)
        return Verified(FAKE, text, claims, revocation="checked", collateral=used)


def appraise_fake(
    verified: VerifiedEvidence, policy: Policy, references: Sequence[ReferenceValue], at: dt.datetime
) -> tuple[dict[Claim, int], list[Finding], list[ReferenceValue]]:
    baseline = {c: AFFIRMING for c in (Claim.INSTANCE_IDENTITY, Claim.HARDWARE, Claim.EXECUTABLES)}
    findings = []
    if verified.claims.get("digest") != "12" * 32:
        findings.append(Finding("FAKE_DIGEST", Claim.EXECUTABLES, CONTRAINDICATED, "bad digest", "12..", "other"))
    return baseline, findings, []


class NoReferences:
    def active(self, kinds: Sequence[str], at: dt.datetime) -> list[ReferenceValue]:
        assert list(kinds) == []  # no known kind is the fake scheme's
        return []


class FixedClock:
    def now(self) -> dt.datetime:
        return dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


@pytest.fixture
def fake_scheme() -> Iterator[TeeScheme]:
    scheme = TeeScheme(
        FAKE,
        FakeVerifier(),
        appraise_fake,
        ReportDataBinding(),
        "digest",
        aliases=("fake-tee",),
        contraindicated_codes=frozenset({HARDWARE_BAD}),
        detect=lambda evidence: evidence.startswith(FAKE_MAGIC),
    )
    registry.register(scheme)
    try:
        yield scheme
    finally:
        registry.unregister(FAKE)
    assert FAKE not in registry.tee_names()


FAKE_MAGIC = b"FAKE-TEE\x00"


def test_each_built_in_kind_is_detected_from_its_evidence() -> None:
    from tests.fakes.amd_pki import FakeAmdPki
    from tests.fakes.aws_pki import FakeAwsPki
    from tests.fakes.intel_pki import FakeIntelPki
    from verifier.tee.sevsnp.tcb import Product

    assert detect_tee(FakeAwsPki().mint()) == "nitro"
    assert detect_tee(FakeAmdPki(Product.GENOA).report()) == "snp"
    assert detect_tee(FakeIntelPki().quote()) == "tdx"
    assert detect_tee(b"") is None and detect_tee(b"\x00" * 2000) is None and detect_tee(FAKE_MAGIC) is None


def test_a_fourth_scheme_brings_its_own_detection(fake_scheme: TeeScheme) -> None:
    assert detect_tee(FAKE_MAGIC + b"report") == FAKE
    assert fake_scheme.looks_like(FAKE_MAGIC) and not fake_scheme.looks_like(b"\x84")


def _service() -> VerifierService:
    return VerifierService(
        clock=FixedClock(),
        anchors=TrustAnchors(pins={}),
        references=NoReferences(),
        signer=ResultSigner([ephemeral_key()]),
    )


def _spki() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_a_fourth_scheme_is_appraised_end_to_end(fake_scheme: TeeScheme) -> None:
    nonce, key = b"n" * 32, _spki()
    report_data = hashlib.sha512(nonce + key).hexdigest()
    service = _service()
    result = service.appraise(
        AppraisalRequest(tee="Fake-TEE", evidence=f"ok:{report_data}".encode(), nonce=nonce, runtime_data=key)
    )
    appraisal = result.appraisal
    assert appraisal.tee == FAKE and appraisal.status is Tier.AFFIRMING, appraisal.findings
    assert appraisal.revocation == "checked"
    assert appraisal.collateral == (
        {"item": "fake.crl", "number": 3, "issued": "2026-01-01T00:00:00Z", "next_update": None, "source": "request"},
    )
    assert result.incomplete is None
    claims = _token_claims(result.token)
    assert claims["cnf"]["jwk"]["kty"] == "EC"  # the runtime key, bound by the scheme's REPORT_DATA rule

    unbound = service.appraise(AppraisalRequest(tee=FAKE, evidence=b"ok:" + b"00" * 64, nonce=nonce, runtime_data=key))
    assert [f.code for f in unbound.appraisal.findings] == ["REPORT_DATA_MISMATCH"]
    assert unbound.appraisal.status is Tier.CONTRAINDICATED and "cnf" not in _token_claims(unbound.token)


def test_a_fourth_scheme_maps_its_own_failures_and_missing_collateral(fake_scheme: TeeScheme) -> None:
    service = _service()
    (hardware,) = service.appraise(
        AppraisalRequest(tee=FAKE, evidence=f"bad:{HARDWARE_BAD}".encode())
    ).appraisal.findings
    assert (hardware.claim, hardware.value) == (Claim.HARDWARE, CONTRAINDICATED)
    (crypto,) = service.appraise(AppraisalRequest(tee=FAKE, evidence=b"bad:FAKE_SIGNATURE")).appraisal.findings
    assert (crypto.claim, crypto.value) == (Claim.INSTANCE_IDENTITY, 99)
    with pytest.raises(UnavailableError) as raised:
        service.appraise(AppraisalRequest(tee=FAKE, evidence=b"nocollateral"))
    assert (raised.value.code, raised.value.retry_after) == ("FAKE_COLLATERAL_UNAVAILABLE", 7.0)
    incomplete = service.appraise(AppraisalRequest(tee=FAKE, evidence=b"nocollateral"), allow_incomplete=True)
    assert incomplete.incomplete == "FAKE_COLLATERAL_UNAVAILABLE"


def test_a_fourth_scheme_is_a_cli_choice_and_describes_its_workload(fake_scheme: TeeScheme) -> None:
    args = build_parser().parse_args(["verify", "--tee", FAKE, "--evidence", "x.bin"])
    assert args.tee == FAKE
    assert workload_description(fake_scheme, {"digest": "34" * 32}) == f"{FAKE} digest {'34' * 8}"


def test_an_unregistered_kind_is_unsupported() -> None:
    with pytest.raises(RequestError) as raised:
        _service().appraise(AppraisalRequest(tee=FAKE, evidence=b"ok:"))
    assert raised.value.code == "EVIDENCE_KIND_UNSUPPORTED"


def _token_claims(token: str) -> Mapping[str, Any]:
    import base64
    import json

    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))  # type: ignore[no-any-return]
