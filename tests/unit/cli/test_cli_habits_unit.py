"""Issue 14 item 9 (CLI habits), the parts without a database: failure classes and exit codes, the error kinds'
exit codes, `--version`, the summary and field output, token reading and tolerant decoding of result tokens."""

from __future__ import annotations

import base64
import importlib.metadata
import io
import json
from typing import Any

import grpc
import pytest

from verifier import __version__
from verifier.cli import result as result_cmd
from verifier.cli import verify as verify_cmd
from verifier.cli.common import (
    EXIT_BROKEN_PIPE,
    EXIT_MEASUREMENT,
    EXIT_NOT_ALLOWED,
    EXIT_PLATFORM,
    EXIT_POLICY,
    FailureClass,
    UsageError,
    exit_code,
    failure_class,
    finding_class,
)
from verifier.cli.main import DISTRIBUTION, EXIT_BY_KIND, main, version_text
from verifier.cli.output import format_fields, progress
from verifier.cli.summary import format_summary, workload_text
from verifier.errors import AccessDeniedError, AuthError, ErrorKind, EvidenceError

C = "contraindicated"


def _f(code: str, claim: str, tier: str = C) -> dict[str, Any]:
    return {"code": code, "claim": claim, "tier": tier}


@pytest.mark.parametrize(
    ("code", "claim", "expected"),
    [
        ("NITRO_SIGNATURE_INVALID", "instance-identity", FailureClass.EVIDENCE),
        ("CERT_EXPIRED", "instance-identity", FailureClass.EVIDENCE),
        ("SNP_CERT_REVOKED", "instance-identity", FailureClass.EVIDENCE),
        ("NONCE_MISMATCH", "instance-identity", FailureClass.EVIDENCE),
        ("CRL_EXPIRED", "instance-identity", FailureClass.PLATFORM),  # stale collateral, not a bad signature
        ("TDX_COLLATERAL_SIGNATURE_INVALID", "instance-identity", FailureClass.PLATFORM),
        ("SNP_CRL_UNAVAILABLE", "hardware", FailureClass.PLATFORM),
        ("TDX_TCB_STATUS_NOT_ACCEPTED", "hardware", FailureClass.PLATFORM),
        ("SNP_TCB_BELOW_MINIMUM", "hardware", FailureClass.PLATFORM),
        ("REFERENCE_VALUE_MISMATCH", "executables", FailureClass.MEASUREMENT),
        ("REFERENCE_VALUE_MISMATCH", "configuration", FailureClass.MEASUREMENT),  # snp.host_data
        ("CLAIM_MISSING", "configuration", FailureClass.MEASUREMENT),
        ("WORKLOAD_NOT_MATCHED", "executables", FailureClass.MEASUREMENT),
        ("NITRO_DEBUG_MODE", "configuration", FailureClass.POLICY),
        ("SNP_DEBUG_ALLOWED", "configuration", FailureClass.POLICY),
        ("WORKLOAD_POLICY_UNKNOWN", "configuration", FailureClass.POLICY),
        ("SOMETHING_NEW", "sourced-data", FailureClass.EVIDENCE),
    ],
)
def test_each_finding_has_a_failure_class(code: str, claim: str, expected: FailureClass) -> None:
    assert finding_class(code, claim) is expected


def test_the_worst_class_wins_and_only_contraindicated_findings_count() -> None:
    debug, unknown = _f("NITRO_DEBUG_MODE", "configuration"), _f("REFERENCE_VALUE_MISMATCH", "executables")
    crl, bad = _f("SNP_CRL_UNAVAILABLE", "hardware"), _f("NITRO_SIGNATURE_INVALID", "instance-identity")
    assert failure_class(C, [debug]) is FailureClass.POLICY
    assert failure_class(C, [debug, unknown]) is FailureClass.MEASUREMENT
    assert failure_class(C, [debug, unknown, crl]) is FailureClass.PLATFORM
    assert failure_class(C, [crl, bad, debug]) is FailureClass.EVIDENCE
    warned = _f("TDX_TCB_STATUS_WARNING", "hardware", "warning")
    assert failure_class(C, [warned, debug]) is FailureClass.POLICY
    assert (
        failure_class(C, [{"code": "CRL_EXPIRED", "claim": "instance-identity", "value": 99}]) is FailureClass.PLATFORM
    )
    assert failure_class(C, []) is FailureClass.EVIDENCE  # contraindicated without a reason: the plain code
    assert failure_class("none", ["not a finding", warned]) is FailureClass.EVIDENCE
    assert failure_class("affirming", [debug]) is None and failure_class("warning", [debug]) is None


def test_exit_codes_by_status_and_by_class() -> None:
    unknown = [_f("REFERENCE_VALUE_MISMATCH", "executables")]
    assert [exit_code(s, unknown, detailed=False) for s in ("affirming", "warning", C, "none", "??")] == [0, 1, 2, 2, 2]
    assert exit_code(C, unknown, detailed=True) == EXIT_MEASUREMENT == 6
    assert exit_code(C, [_f("NITRO_DEBUG_MODE", "configuration")], detailed=True) == EXIT_POLICY == 5
    assert exit_code(C, [_f("SNP_CRL_UNAVAILABLE", "hardware")], detailed=True) == EXIT_PLATFORM == 4
    assert exit_code(C, [_f("CERT_EXPIRED", "instance-identity")], detailed=True) == 2
    assert exit_code("affirming", unknown, detailed=True) == 0 and exit_code("warning", [], detailed=True) == 1


def test_every_error_kind_has_an_exit_code() -> None:
    assert set(EXIT_BY_KIND) == set(ErrorKind)
    assert EXIT_BY_KIND[ErrorKind.AUTH] == EXIT_BY_KIND[ErrorKind.PERMISSION] == EXIT_NOT_ALLOWED == 77
    assert (EXIT_BY_KIND[ErrorKind.REQUEST], EXIT_BY_KIND[ErrorKind.UNAVAILABLE]) == (64, 3)
    assert EXIT_BY_KIND[ErrorKind.EVIDENCE] == 2 and EXIT_BROKEN_PIPE == 141


class _Rpc(grpc.RpcError, grpc.Call):  # type: ignore[misc]
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "no"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (AuthError("UNAUTHENTICATED", "no token"), 77),
        (AccessDeniedError("PERMISSION_DENIED", "reader may not"), 77),
        (EvidenceError("TOKEN_MALFORMED", "no"), 2),
        (_Rpc(grpc.StatusCode.UNAUTHENTICATED), 77),
        (_Rpc(grpc.StatusCode.PERMISSION_DENIED), 77),
        (_Rpc(grpc.StatusCode.UNAVAILABLE), 3),
        (_Rpc(grpc.StatusCode.INVALID_ARGUMENT), 64),
        (_Rpc(grpc.StatusCode.INTERNAL), 70),
        (BrokenPipeError(32, "Broken pipe"), 141),
        (RuntimeError("a bug"), 70),
    ],
)
def test_errors_reaching_main_get_their_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], error: Exception, expected: int
) -> None:
    def handler(*_: Any) -> int:
        raise error

    monkeypatch.setattr(verify_cmd, "run", handler)
    assert main(["verify", "--evidence", "x"]) == expected
    err = capsys.readouterr().err
    assert "Traceback" not in err.split("internal error")[-1]
    if expected == 141:
        assert err == ""  # quietly


def test_version_names_the_installed_version_and_the_token_build(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out == version_text() + "\n"
    assert out.startswith(f"verifier {importlib.metadata.version(DISTRIBUTION)}\n")
    assert f"build {__version__}" in out


def test_fields_and_summary_are_aligned() -> None:
    assert format_fields([("status", "affirming"), ("trust vector", None)]) == (
        "status        affirming\ntrust vector  -\n"
    )
    text = format_summary([("status", C)], [{"tier": C, "code": "X", "claim": "executables", "expected": "aa"}])
    header, row = text.splitlines()[2:]
    assert header.split() == ["TIER", "CODE", "CLAIM", "EXPECTED", "ACTUAL", "MESSAGE"]
    assert row.index("aa") == header.index("EXPECTED") and row.endswith("-")
    assert format_summary([("status", "affirming")], []).splitlines()[-1] == "findings  none"
    assert workload_text({"name": "shop", "version": "1.4", "policy": "strict"}) == "shop 1.4 (policy strict)"
    assert workload_text(None) is None and workload_text("w") == "w"


def test_progress_with_steps_keeps_every_tenth() -> None:
    out = io.StringIO()
    for done in range(250, 2001, 250):
        progress(done, 2000, "appraisals", out, step=250)
    assert out.getvalue().splitlines()[-1] == "appraisals: 2000/2000"
    assert len(out.getvalue().splitlines()) == 8  # every 12.5 % crosses a tenth


def _jwt(header: dict[str, Any], payload: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(payload)}.c2ln"


def test_read_token_from_an_argument_or_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    assert result_cmd.read_token("  Bearer a.b.c\n") == "a.b.c"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"x.y.z\n")))
    assert result_cmd.read_token("-") == "x.y.z"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"a" * (result_cmd.MAX_TOKEN_BYTES + 1))))
    with pytest.raises(UsageError, match="limit"):
        result_cmd.read_token("-")
    for bad in ("", "\u00e9.a.b"):
        with pytest.raises(UsageError):
            result_cmd.read_token(bad)
    with pytest.raises(UsageError, match="compact JWT"):
        result_cmd.decode_unverified("a.b")
    with pytest.raises(UsageError, match="payload"):
        result_cmd.decode_unverified(_jwt({"alg": "ES256"}, {})[:-5].split(".")[0] + ".bm90IGpzb24.x")


def test_findings_are_found_under_loose_or_map_valued_extensions() -> None:
    finding = {"code": "REFERENCE_VALUE_MISMATCH", "claim": "executables", "tier": C}
    assert result_cmd.findings_of({"ear.status": C, "x-verifier.findings": [finding]}) == [finding]
    nested = {"ear.status": C, "tag:example.com,2026:verifier": {"findings": [finding], "workload": {"name": "w"}}}
    assert result_cmd.findings_of(nested) == [finding]
    assert result_cmd._lookup(nested, "workload") == {"name": "w"}
    assert result_cmd.findings_of({"ear.status": "affirming"}) == []


def test_ear_claims_are_read_under_either_spelling() -> None:
    new = {"ear_status": "warning", "ear_trustworthiness_vector": {"hardware": 32}}
    old = {"ear.status": "warning", "ear.trustworthiness-vector": {"hardware": 32}}
    for submod in (new, old):
        assert result_cmd.ear_claim(submod, "ear_status") == "warning"
        assert result_cmd.ear_claim(submod, "ear_trustworthiness_vector") == {"hardware": 32}
    assert result_cmd.ear_claim({}, "ear_status") is None


def test_show_prints_what_a_token_of_another_shape_carries(capsys: pytest.CaptureFixture[str]) -> None:
    token = _jwt(
        {"alg": "ES256", "typ": "application/eat+jwt", "kid": "k1"},
        {
            "iss": "v",
            "iat": 0,
            "ear.status": C,
            "submods": {"snp": {"ear.status": C, "x": {"findings": [_f("A", "b")]}}},
        },
    )
    assert main(["result", "show", token]) == 0
    out = capsys.readouterr()
    assert out.out.startswith(result_cmd.UNVERIFIED) and "UNVERIFIED" in out.err
    lines = [line.split() for line in out.out.splitlines()]
    assert ["header", "typ", "application/eat+jwt"] in lines and ["issued", "at", "1970-01-01T00:00:00Z"] in lines
    assert ["status", "(snp)", C] in lines and [C, "A", "b", "-", "-", "-"] in lines
    assert main(["result", "show", token, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["verified"] is False and shown["header"]["kid"] == "k1"
    assert main(["result", "show", "nope"]) == 64
