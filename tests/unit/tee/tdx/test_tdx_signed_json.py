"""Issue 12 (each trust rule written once): the TDX verifier's split of Intel's PCS v4 signed JSON documents
(verifier/tee/tdx/collateral_documents.py: `parse_signed_json` and the dcap-qvl collateral.json path) is the one in
verifier/collateral/signed_json.py. The EvidenceError each hostile document gets (code, message, actual) was
recorded from the TDX module's own copy of the parse before it was replaced by a call to `split_signed_json`, so
the change of implementation changed no finding."""

from __future__ import annotations

import json

import pytest

from verifier.collateral import signed_json
from verifier.errors import EvidenceError
from verifier.tee.tdx import collateral_documents
from verifier.tee.tdx.collateral_documents import MAX_DOC_BYTES, collateral_from_files, parse_signed_json

SIG = "ab" * 64
MALFORMED = "TDX_COLLATERAL_MALFORMED"
NOT_SIGNED_JSON = "tcbInfo document is not a signed JSON object"
NEEDS = "tcbInfo document needs 'tcbInfo' and 'signature'"
BAD_SIG = "tcbInfo signature must be 64 bytes r||s as hex"
DEPTH = 100_000


def _signed(text: str) -> bytes:
    return text.replace("SIG", SIG).encode()


# name -> (document, message, actual); the code is always TDX_COLLATERAL_MALFORMED
HOSTILE: dict[str, tuple[bytes, str, str]] = {
    "duplicate member": (
        _signed('{"tcbInfo":{},"tcbInfo":{},"signature":"SIG"}'),
        NOT_SIGNED_JSON,
        "bad or duplicate key 'tcbInfo'",
    ),
    "duplicate signature": (
        _signed('{"tcbInfo":{},"signature":"SIG","signature":"SIG"}'),
        NOT_SIGNED_JSON,
        "bad or duplicate key 'signature'",
    ),
    "duplicate key inside": (_signed('{"tcbInfo":{"a":1,"a":2},"signature":"SIG"}'), NOT_SIGNED_JSON, "duplicate key"),
    "duplicate key deep inside": (
        _signed('{"tcbInfo":{"a":[{"b":1,"b":1}]},"signature":"SIG"}'),
        NOT_SIGNED_JSON,
        "duplicate key",
    ),
    "duplicate key beside": (
        _signed('{"tcbInfo":{},"x":{"b":1,"b":1},"signature":"SIG"}'),
        NOT_SIGNED_JSON,
        "duplicate key",
    ),
    "trailing data": (_signed('{"tcbInfo":{},"signature":"SIG"} x'), NOT_SIGNED_JSON, "'}' expected at the end"),
    "second object": (_signed('{"tcbInfo":{},"signature":"SIG"}{}'), NOT_SIGNED_JSON, "'}' expected at the end"),
    "wrong member": (_signed('{"enclaveIdentity":{},"signature":"SIG"}'), NEEDS, "enclaveIdentity,signature"),
    "no signature": (b'{"tcbInfo":{}}', NEEDS, "tcbInfo"),
    "signature not hex": (
        b'{"tcbInfo":{},"signature":"' + b"zz" * 64 + b'"}',
        BAD_SIG,
        repr("zz" * 64),
    ),
    "signature short": (b'{"tcbInfo":{},"signature":"' + b"00" * 63 + b'"}', BAD_SIG, repr("00" * 63)),
    "signature a number": (b'{"tcbInfo":{},"signature":5}', BAD_SIG, "5"),
    "member a list": (_signed('{"tcbInfo":[],"signature":"SIG"}'), "tcbInfo is not a JSON object", ""),
    "oversize": (
        _signed('{"tcbInfo":{"x":"' + "a" * MAX_DOC_BYTES + '"},"signature":"SIG"}'),
        "tcbInfo document too large",
        str(MAX_DOC_BYTES + 163),
    ),
    "non-UTF-8": (
        b"\xff",
        NOT_SIGNED_JSON,
        "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte",
    ),
    "non-UTF-8 in member": (
        b'{"tcbInfo":{"a":"\xc3\x28"},"signature":"' + SIG.encode() + b'"}',
        NOT_SIGNED_JSON,
        "'utf-8' codec can't decode byte 0xc3 in position 17: invalid continuation byte",
    ),
    "nested depth in member": (
        _signed('{"tcbInfo":' + "[" * DEPTH + "]" * DEPTH + ',"signature":"SIG"}'),
        NOT_SIGNED_JSON,
        "maximum recursion depth exceeded while decoding a JSON array from a unicode string",
    ),
    "nested depth beside": (
        _signed('{"x":' + '{"a":' * DEPTH + "1" + "}" * DEPTH + ',"tcbInfo":{},"signature":"SIG"}'),
        NOT_SIGNED_JSON,
        "maximum recursion depth exceeded while decoding a JSON object from a unicode string",
    ),
    "NaN": (
        _signed('{"tcbInfo":{"a":NaN},"signature":"SIG"}'),
        NOT_SIGNED_JSON,
        "could not convert string to float: 'NaNx'",
    ),
    "-Infinity": (
        _signed('{"tcbInfo":{"a":-Infinity},"signature":"SIG"}'),
        NOT_SIGNED_JSON,
        "could not convert string to float: '-Infinityx'",
    ),
    "empty": (b"", NOT_SIGNED_JSON, "not a JSON object"),
    "key not a string": (_signed('{5:{},"signature":"SIG"}'), NOT_SIGNED_JSON, "bad or duplicate key 5"),
}


def _cj(data: object) -> bytes:
    return json.dumps(data).encode()


# dcap-qvl collateral.json: the same member and signature rules, reached through collateral_from_files
HOSTILE_COLLATERAL_JSON: dict[str, tuple[bytes, str, str]] = {
    "not JSON": (
        b"{",
        "collateral.json is not JSON",
        "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
    ),
    "not UTF-8": (
        b'{"a":"\xff"}',
        "collateral.json is not JSON",
        "'utf-8' codec can't decode byte 0xff in position 6: invalid start byte",
    ),
    "not an object": (b"[]", "collateral.json is not a JSON object", ""),
    "duplicate key": (b'{"root_ca_crl":"00","root_ca_crl":"00"}', "collateral.json is not JSON", "duplicate key"),
    "nested depth": (
        b"[" * DEPTH + b"]" * DEPTH,
        "collateral.json is not JSON",
        "maximum recursion depth exceeded while decoding a JSON array from a unicode string",
    ),
    "NaN": (b'{"a":NaN}', "collateral.json is not JSON", "could not convert string to float: 'NaNx'"),
    "member not JSON": (
        _cj({"tcb_info": "{", "tcb_info_signature": SIG}),
        "tcbInfo is not JSON",
        "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
    ),
    "member a list": (
        _cj({"qe_identity": "[]", "qe_identity_signature": SIG}),
        "enclaveIdentity is not a JSON object",
        "",
    ),
    "member duplicate key": (
        _cj({"tcb_info": '{"a":1,"a":1}', "tcb_info_signature": SIG}),
        "tcbInfo is not JSON",
        "duplicate key",
    ),
    "signature missing": (_cj({"tcb_info": "{}"}), "tcb_info signature must be 64 bytes r||s as hex", "None"),
    "signature not hex": (
        _cj({"qe_identity": "{}", "qe_identity_signature": "zz" * 64}),
        "qe_identity signature must be 64 bytes r||s as hex",
        repr("zz" * 64),
    ),
}


def _refusal(call: object) -> tuple[str, str, str, str]:
    with pytest.raises(EvidenceError) as info:
        call()  # type: ignore[operator]
    error = info.value
    assert type(error) is EvidenceError
    assert error.__cause__ is None  # and no ValueError shown chained on (`from None`)
    assert error.__context__ is None or error.__suppress_context__
    return error.code, error.message, error.actual, error.expected


@pytest.mark.parametrize(("doc", "message", "actual"), HOSTILE.values(), ids=list(HOSTILE))
def test_hostile_signed_json_code_and_message(doc: bytes, message: str, actual: str) -> None:
    assert _refusal(lambda: parse_signed_json(doc, "tcbInfo")) == (MALFORMED, message, actual, "")


@pytest.mark.parametrize(
    ("doc", "message", "actual"), HOSTILE_COLLATERAL_JSON.values(), ids=list(HOSTILE_COLLATERAL_JSON)
)
def test_hostile_collateral_json_code_and_message(doc: bytes, message: str, actual: str) -> None:
    assert _refusal(lambda: collateral_from_files({"collateral.json": doc})) == (MALFORMED, message, actual, "")


def test_the_member_name_is_the_one_asked_for() -> None:
    doc = _signed('{"tcbInfo":{},"signature":"SIG"}')
    assert _refusal(lambda: parse_signed_json(doc, "enclaveIdentity")) == (
        MALFORMED,
        "enclaveIdentity document needs 'enclaveIdentity' and 'signature'",
        "tcbInfo,signature",
        "",
    )


def test_actual_is_cut_at_200_characters() -> None:
    sig = "0" * 300
    code, message, actual, _ = _refusal(
        lambda: parse_signed_json(_signed('{"tcbInfo":{},"signature":"' + sig + '"}'), "tcbInfo")
    )
    assert (code, message, actual) == (MALFORMED, BAD_SIG, repr(sig)[:200])


def test_one_signed_json_type_and_size_bound() -> None:
    """The TDX model's SignedJson and MAX_DOC_BYTES are the collateral package's (no second copy to drift)."""
    assert collateral_documents.SignedJson is signed_json.SignedJson
    assert MAX_DOC_BYTES == signed_json.MAX_DOC_BYTES == 1 << 20
    parsed = parse_signed_json(_signed(' {"tcbInfo" : {"b": [1, 2]} , "signature":"SIG"} '), "tcbInfo")
    assert parsed == signed_json.SignedJson(b'{"b": [1, 2]}', bytes.fromhex(SIG), {"b": [1, 2]})
