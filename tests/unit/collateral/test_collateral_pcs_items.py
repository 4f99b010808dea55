"""Intel PCS items without TEE code (verifier/collateral/pcs_items.py, signed_json.py): `next_update` answers, code
and message for each hostile document exactly as before the issue-12 split out of verifier/tee/tdx/pcs.py (the
outputs below were recorded from the old module). The TDX verifier's parse
(verifier.tee.tdx.collateral_documents.parse_signed_json) calls the same `split_signed_json`, so an item the PCS
client caches is one the verifier can parse, and one it refuses the verifier refuses too
(tests/unit/tee/tdx/test_tdx_signed_json.py pins the verifier's codes and messages)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from verifier.collateral.base import CollateralUnavailableError
from verifier.collateral.pcs_items import KIND_PCK_CRL, KIND_QE_IDENTITY, KIND_ROOT_CA_CRL, KIND_TCB_INFO, next_update
from verifier.collateral.signed_json import MAX_DOC_BYTES

SIG = "ab" * 64
UTC = dt.UTC
BAD = "intel.tcb_info from PCS does not parse: TDX_COLLATERAL_MALFORMED: tcbInfo document is not a signed JSON object"
NEEDS = (
    "intel.tcb_info from PCS does not parse: TDX_COLLATERAL_MALFORMED: tcbInfo document needs 'tcbInfo' and 'signature'"
)
BAD_SIG = (
    "intel.tcb_info from PCS does not parse: TDX_COLLATERAL_MALFORMED: tcbInfo signature must be 64 bytes r||s as hex"
)


def _signed(text: str) -> str:
    return text.replace("SIG", SIG)


# name -> (document text, or (kind, raw envelope bytes)), expected datetime or (code, message)
DOCUMENTS: dict[str, tuple[str, object]] = {
    "valid": (
        _signed('{"tcbInfo":{"nextUpdate":"2025-01-01T00:00:00Z"},"signature":"SIG"}'),
        dt.datetime(2025, 1, 1, tzinfo=UTC),
    ),
    "whitespace, naive time": (
        _signed(' \n{ "tcbInfo" : {"nextUpdate":"2025-01-01T00:00:00"} , "signature" : "SIG" }\r\n'),
        dt.datetime(2025, 1, 1, tzinfo=UTC),
    ),
    "too large": (
        _signed('{"tcbInfo":{"x":"' + "a" * MAX_DOC_BYTES + '"},"signature":"SIG"}'),
        "intel.tcb_info from PCS does not parse: TDX_COLLATERAL_MALFORMED: tcbInfo document too large",
    ),
    "not an object": ("[]", BAD),
    "empty": ("", BAD),
    "duplicate member": (_signed('{"tcbInfo":{},"tcbInfo":{},"signature":"SIG"}'), BAD),
    "duplicate key inside": (_signed('{"tcbInfo":{"a":1,"a":2},"signature":"SIG"}'), BAD),
    "no signature": ('{"tcbInfo":{}}', NEEDS),
    "other member": (_signed('{"enclaveIdentity":{},"signature":"SIG"}'), NEEDS),
    "short signature": ('{"tcbInfo":{},"signature":"' + "00" * 63 + '"}', BAD_SIG),
    "signature not hex": ('{"tcbInfo":{},"signature":"' + "zz" * 64 + '"}', BAD_SIG),
    "signature a number": ('{"tcbInfo":{},"signature":5}', BAD_SIG),
    "member a number": (
        _signed('{"tcbInfo":5,"signature":"SIG"}'),
        "intel.tcb_info from PCS does not parse: TDX_COLLATERAL_MALFORMED: tcbInfo is not a JSON object",
    ),
    "trailing text": (_signed('{"tcbInfo":{},"signature":"SIG"} x'), BAD),
    "NaN inside": (_signed('{"tcbInfo":{"a":NaN},"signature":"SIG"}'), BAD),
    "NaN beside": (_signed('{"tcbInfo":{},"x":NaN,"signature":"SIG"}'), BAD),
    "deep nesting": (_signed('{"tcbInfo":' + "[" * 100000 + "]" * 100000 + ',"signature":"SIG"}'), BAD),
    "key not a string": (_signed('{5:{},"signature":"SIG"}'), BAD),
    "no colon": (_signed('{"tcbInfo" {},"signature":"SIG"}'), BAD),
    "no nextUpdate": (
        _signed('{"tcbInfo":{},"signature":"SIG"}'),
        "intel.tcb_info from PCS does not parse: Invalid isoformat string: 'None'",
    ),
    "nextUpdate a number": (
        _signed('{"tcbInfo":{"nextUpdate":5},"signature":"SIG"}'),
        "intel.tcb_info from PCS does not parse: Invalid isoformat string: '5'",
    ),
    "nextUpdate not a time": (
        _signed('{"tcbInfo":{"nextUpdate":"tomorrow"},"signature":"SIG"}'),
        "intel.tcb_info from PCS does not parse: Invalid isoformat string: 'tomorrow'",
    ),
    "escaped lone surrogate": (
        _signed('{"tcbInfo":{"a":"\\ud800"},"signature":"SIG"}'),
        "intel.tcb_info from PCS does not parse: Invalid isoformat string: 'None'",
    ),
}


def _envelope(body: str) -> bytes:
    return json.dumps({"body": body, "issuer_chain": ""}).encode()


@pytest.mark.parametrize(("doc", "expected"), DOCUMENTS.values(), ids=list(DOCUMENTS))
def test_next_update_of_a_tcb_info(doc: str, expected: object) -> None:
    if isinstance(expected, dt.datetime):
        assert next_update(KIND_TCB_INFO, _envelope(doc)) == expected
        return
    with pytest.raises(CollateralUnavailableError) as info:
        next_update(KIND_TCB_INFO, _envelope(doc))
    assert (info.value.code, info.value.message) == ("COLLATERAL_MALFORMED", expected)


def test_next_update_of_a_qe_identity_is_utc() -> None:
    doc = _signed('{"enclaveIdentity":{"nextUpdate":"2025-02-01T00:00:00+01:00"},"signature":"SIG"}')
    assert next_update(KIND_QE_IDENTITY, _envelope(doc)) == dt.datetime(2025, 1, 31, 23, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kind", "data", "message"),
    [
        (
            KIND_TCB_INFO,
            json.dumps({"body": "\ud800", "issuer_chain": ""}).encode(),
            "not a PCS collateral envelope: 'utf-8' codec can't encode character '\\ud800' in position 0: surrogates "
            "not allowed",
        ),
        (KIND_TCB_INFO, b"garbage", "not a PCS collateral envelope: Expecting value: line 1 column 1 (char 0)"),
        (
            KIND_PCK_CRL,
            _envelope("3000"),
            "intel.pck_crl from PCS does not parse: error parsing asn1 value: ParseError { kind: ShortData { needed: 1 "
            '}, location: ["CertificateRevocationList::tbs_cert_list"] }',
        ),
        (
            KIND_ROOT_CA_CRL,
            _envelope("zz"),
            "not a PCS collateral envelope: non-hexadecimal number found in fromhex() arg at position 0",
        ),
    ],
    ids=["lone surrogate body", "not an envelope", "CRL garbage", "CRL not hex"],
)
def test_next_update_of_what_is_not_an_item(kind: str, data: bytes, message: str) -> None:
    with pytest.raises(CollateralUnavailableError) as info:
        next_update(kind, data)
    assert (info.value.code, info.value.message) == ("COLLATERAL_MALFORMED", message)
