"""verifier.collateral.ordering: which version of a collateral item is newer, from the stored bytes alone."""

from __future__ import annotations

import datetime as dt
import json

from tests.fakes.kds_server import make_crl
from verifier.collateral.ordering import ItemVersion, version_of

T = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def _envelope(body: str) -> bytes:
    return json.dumps({"body": body, "issuer_chain": "-----BEGIN CERTIFICATE-----\n"}).encode()


def test_crl_number_then_this_update() -> None:
    v7 = version_of("amd.crl", make_crl(T + 7 * DAY, this_update=T, number=7))
    v8_earlier = version_of("amd.crl", make_crl(T + 7 * DAY, this_update=T - DAY, number=8))
    assert v7 == ItemVersion(7, T)
    assert v7 is not None and v8_earlier is not None and v7.older_than(v8_earlier)  # the number decides
    plain = version_of("amd.crl", make_crl(T + 7 * DAY, this_update=T + DAY))
    assert plain == ItemVersion(None, T + DAY)
    assert v7.older_than(plain)  # one without a number: thisUpdate decides
    assert ItemVersion(3, T).compare(ItemVersion(3, T)) == 0


def test_intel_crl_envelope() -> None:
    der = make_crl(T + 7 * DAY, this_update=T, number=42)
    assert version_of("intel.pck_crl", _envelope(der.hex())) == ItemVersion(42, T)
    assert version_of("intel.root_ca_crl", _envelope(der.hex())) == ItemVersion(42, T)


def test_intel_tcb_info_and_qe_identity() -> None:
    tcb = json.dumps(
        {"tcbInfo": {"issueDate": "2025-01-02T03:04:05Z", "tcbEvaluationDataNumber": 17}, "signature": "00"}
    )
    qe = json.dumps({"enclaveIdentity": {"issueDate": "2025-01-02T03:04:05Z", "tcbEvaluationDataNumber": 16}})
    issued = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert version_of("intel.tcb_info", _envelope(tcb)) == ItemVersion(17, issued)
    assert version_of("intel.qe_identity", _envelope(qe)) == ItemVersion(16, issued)
    assert version_of("intel.qe_identity", _envelope(tcb)) is None  # the wrong member


def test_unknown_kinds_and_garbage_have_no_order() -> None:
    assert version_of("amd.vcek", b"\x30\x00") is None
    assert version_of("amd.cert_chain", b"-----BEGIN CERTIFICATE-----") is None
    assert version_of("amd.crl", b"not a crl") is None
    for data in (
        b"",
        b"{",
        b"[]",
        b'{"body": 5}',
        _envelope("zz"),
        _envelope("{}"),
        _envelope(json.dumps({"tcbInfo": {"issueDate": "yesterday"}})),
    ):
        assert version_of("intel.tcb_info", data) is None
        assert version_of("intel.pck_crl", data) is None
