"""TDX quote v4/v5 parsing (quote.py) and the QE report (enclave_report.py) against the real vectors' facts, the
serializer round trip, and one negative case per ParseError code."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import manifest_vectors
from verifier.errors import ParseError
from verifier.tee.tdx.enclave_report import parse_enclave_report
from verifier.tee.tdx.quote import MAX_QUOTE_BYTES, Quote, parse_quote, serialize_quote

VECTORS = manifest_vectors("tdx")
IDS = [v["id"] for v in VECTORS]
BODY_FIELDS = (
    "tee_tcb_svn",
    "mr_seam",
    "mr_signer_seam",
    "seam_attributes",
    "td_attributes",
    "xfam",
    "mr_td",
    "mr_config_id",
    "mr_owner",
    "mr_owner_config",
    "rtmr0",
    "rtmr1",
    "rtmr2",
    "rtmr3",
    "report_data",
    "tee_tcb_svn_2",
    "mr_servicetd",
)


def evidence(vectors_dir: Path, vector_id: str) -> bytes:
    vector = next(v for v in VECTORS if v["id"] == vector_id)
    return Path(vectors_dir, vector["dir"], "evidence.bin").read_bytes()


def offsets(quote: Quote) -> dict[str, int]:
    """Offsets of the length/type fields after the body (Quote Format appendix)."""
    sig_len = len(quote.signed)
    cert = sig_len + 4 + 128
    auth = cert + 6 + 384 + 64
    inner = auth + 2 + len(quote.qe_auth_data)
    return {
        "sig_len": sig_len,
        "cert_type": cert,
        "cert_size": cert + 2,
        "auth_size": auth,
        "inner_type": inner,
        "inner_size": inner + 2,
    }


def patch(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def parse_error(data: bytes) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse_quote(data)
    return info.value


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_vector_parses_to_facts(vectors_dir: Path, vector: dict[str, Any]) -> None:
    data = (vectors_dir / vector["dir"] / "evidence.bin").read_bytes()
    facts = vector["facts"]
    quote = parse_quote(data)
    assert quote.header.version == facts["version"]
    assert quote.header.att_key_type == facts["att_key_type"]
    assert f"0x{quote.header.tee_type:x}" == facts["tee_type"]
    assert quote.header.qe_vendor_id.hex() == facts["qe_vendor_id"]
    if quote.version == 5:
        assert quote.body_type == facts["body_type"]
        assert struct.unpack_from("<HI", data, 48) == (facts["body_type"], facts["body_size"])
    else:
        assert "body_type" not in facts and quote.body_type == 2
    body = {name: getattr(quote.body, name) for name in BODY_FIELDS}
    assert {k: v.hex() for k, v in body.items() if v is not None} == {k: facts[k] for k in BODY_FIELDS if k in facts}
    assert len(quote.signed) == facts["signed_length"] and quote.signed == data[: facts["signed_length"]]
    assert quote.signature_data_length == facts["signature_data_length"]
    assert quote.trailing_bytes == facts["trailing_bytes_after_signature_data"]
    end = facts["signed_length"] + 4 + facts["signature_data_length"]
    assert end + quote.trailing_bytes == len(data) and quote.trailing == data[end:]
    at = offsets(quote)
    assert struct.unpack_from("<H", data, at["cert_type"])[0] == facts["cert_data_type"]
    assert struct.unpack_from("<H", data, at["inner_type"])[0] == facts["inner_cert_data_type"]
    assert parse_enclave_report(quote.qe_report).isvsvn == facts["qe_report_isv_svn"]
    assert (quote.body.td_attributes[0] & 1 == 1) is facts["td_attributes_debug"]
    shipped = (vectors_dir / vector["dir"] / "pck_chain.pem").read_bytes()
    assert quote.pck_chain_pem.rstrip(b"\0") == shipped.rstrip(b"\0")


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_serialize_round_trips(vectors_dir: Path, vector: dict[str, Any]) -> None:
    data = (vectors_dir / vector["dir"] / "evidence.bin").read_bytes()
    assert serialize_quote(parse_quote(data)) == data


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_qe_report_fields(vectors_dir: Path, vector: dict[str, Any]) -> None:
    quote = parse_quote((vectors_dir / vector["dir"] / "evidence.bin").read_bytes())
    report = parse_enclave_report(quote.qe_report)
    raw = quote.qe_report
    assert report.raw == raw and report.cpusvn == raw[:16] and report.report_data == raw[320:]
    assert report.mrenclave == raw[64:96] and report.mrsigner == raw[128:160] and report.attributes == raw[48:64]
    assert report.isvprodid == 2  # Intel's TD QE
    assert report.miscselect == 0 and not report.debug and report.reserved_nonzero == ()


def test_enclave_report_wrong_length_and_reserved() -> None:
    for size in (0, 383, 385):
        with pytest.raises(ParseError) as info:
            parse_enclave_report(bytes(size))
        assert info.value.code == "TDX_QE_REPORT_INVALID" and info.value.actual == str(size)
    raw = bytearray(384)
    raw[16:20] = (5).to_bytes(4, "little")
    raw[48] = 0x02  # ATTRIBUTES.DEBUG
    raw[256:260] = bytes([1, 0, 9, 0])
    raw[21] = raw[300] = 0xAA  # reserved: recorded, not rejected
    report = parse_enclave_report(bytes(raw))
    assert (report.miscselect, report.isvprodid, report.isvsvn, report.debug) == (5, 1, 9, True)
    assert report.reserved_nonzero == (21, 300)


@pytest.fixture(scope="module")
def v4(vectors_dir: Path) -> bytes:
    return evidence(vectors_dir, "tdx-v4-dcapqvl-sample")  # 70 zero bytes after the signature data


@pytest.fixture(scope="module")
def v5(vectors_dir: Path) -> bytes:
    return evidence(vectors_dir, "tdx-v5-gotdxguest-sample")  # no trailing bytes


@pytest.mark.parametrize("cut", [0, 1, 11, 47, 48, 100, 631, 632, 635, 636, 700, 1000, 1300, 4000])
def test_truncated_v4(v4: bytes, cut: int) -> None:
    data = v4[: len(parse_quote(v4).signed) + 4 + parse_quote(v4).signature_data_length][:cut]
    assert parse_error(data).code == "TDX_QUOTE_TRUNCATED"


@pytest.mark.parametrize("cut", [48, 50, 53, 54, 600, 701, 702, 705, 5005])
def test_truncated_v5(v5: bytes, cut: int) -> None:
    assert parse_error(v5[:cut]).code == "TDX_QUOTE_TRUNCATED"


@pytest.mark.parametrize("version", [0, 3, 6, 0xFFFF])
def test_version_unsupported(v4: bytes, version: int) -> None:
    err = parse_error(patch(v4, 0, "<H", version))
    assert (err.code, err.actual) == ("TDX_QUOTE_VERSION_UNSUPPORTED", str(version))


def test_att_key_type_and_tee_type(v4: bytes) -> None:
    assert parse_error(patch(v4, 2, "<H", 3)).code == "TDX_ATT_KEY_TYPE_UNSUPPORTED"
    err = parse_error(patch(v4, 4, "<I", 0))  # SGX
    assert (err.code, err.actual) == ("TDX_TEE_TYPE", "0x0")


@pytest.mark.parametrize(
    ("body_type", "size", "code"),
    [
        (1, 584, "TDX_BODY_TYPE_UNSUPPORTED"),
        (4, 648, "TDX_BODY_TYPE_UNSUPPORTED"),
        (3, 584, "TDX_BODY_SIZE"),
        (3, 647, "TDX_BODY_SIZE"),
        (2, 648, "TDX_BODY_SIZE"),
        (3, 0xFFFFFFFF, "TDX_BODY_SIZE"),
    ],
)
def test_v5_body_descriptor(v5: bytes, body_type: int, size: int, code: str) -> None:
    data = patch(patch(v5, 48, "<H", body_type), 50, "<I", size)
    assert parse_error(data).code == code


def test_v5_tdx10_body_parses(v5: bytes) -> None:
    """A v5 quote with body type 2 carries the 584-byte TDX 1.0 report (go-tdx-guest tdxVersion10BodyType)."""
    quote = parse_quote(v5)
    body = v5[54 : 54 + 584]
    rest = v5[54 + 648 :]
    data = v5[:48] + struct.pack("<HI", 2, 584) + body + rest
    short = parse_quote(data)
    assert short.body_type == 2 and short.body.tee_tcb_svn_2 is None and short.body.mr_servicetd is None
    assert short.body.report_data == quote.body.report_data and serialize_quote(short) == data


@pytest.mark.parametrize("cert_type", [1, 2, 3, 4, 5, 7, 0xFFFF])
def test_cert_data_type_unsupported(v4: bytes, cert_type: int) -> None:
    err = parse_error(patch(v4, offsets(parse_quote(v4))["cert_type"], "<H", cert_type))
    assert (err.code, err.actual) == ("TDX_CERT_DATA_UNSUPPORTED", str(cert_type))


@pytest.mark.parametrize("inner_type", [1, 4, 6, 7])
def test_inner_cert_data_type(v4: bytes, inner_type: int) -> None:
    err = parse_error(patch(v4, offsets(parse_quote(v4))["inner_type"], "<H", inner_type))
    assert (err.code, err.expected) == ("TDX_CERT_DATA_UNSUPPORTED", "5")


@pytest.mark.parametrize(
    ("field", "fmt", "delta", "code"),
    [
        ("sig_len", "<I", 0xFFFFFFFF, "TDX_QUOTE_TRUNCATED"),  # absolute value
        ("sig_len", "<I", -1, "TDX_QUOTE_TRUNCATED"),  # the PCK chain no longer fits
        ("sig_len", "<I", 1, "TDX_LENGTH_MISMATCH"),  # one padding byte swallowed into the signature data
        ("sig_len", "<I", 70, "TDX_LENGTH_MISMATCH"),
        ("sig_len", "<I", 71, "TDX_QUOTE_TRUNCATED"),
        ("cert_size", "<I", 1, "TDX_QUOTE_TRUNCATED"),
        ("cert_size", "<I", -1, "TDX_QUOTE_TRUNCATED"),
        ("cert_size", "<I", 0xFFFFFFFF, "TDX_QUOTE_TRUNCATED"),
        ("auth_size", "<H", 0xFFFF, "TDX_QUOTE_TRUNCATED"),
        ("auth_size", "<H", 1, "TDX_CERT_DATA_UNSUPPORTED"),  # the inner type is read one byte late
        ("inner_size", "<I", -1, "TDX_LENGTH_MISMATCH"),
        ("inner_size", "<I", 1, "TDX_QUOTE_TRUNCATED"),
        ("inner_size", "<I", 0xFFFFFFFF, "TDX_CERT_DATA_TOO_LARGE"),
    ],
)
def test_length_fields(v4: bytes, field: str, fmt: str, delta: int, code: str) -> None:
    at = offsets(parse_quote(v4))[field]
    current = struct.unpack_from(fmt, v4, at)[0]
    value = delta if delta == 0xFFFFFFFF or delta == 0xFFFF else current + delta
    assert parse_error(patch(v4, at, fmt, value)).code == code


def test_too_large(v4: bytes) -> None:
    assert parse_quote(v4 + bytes(MAX_QUOTE_BYTES - len(v4))).trailing_bytes == MAX_QUOTE_BYTES - 4936
    err = parse_error(v4 + bytes(MAX_QUOTE_BYTES - len(v4) + 1))
    assert (err.code, err.actual) == ("TDX_QUOTE_TOO_LARGE", str(MAX_QUOTE_BYTES + 1))


@pytest.mark.parametrize("extra", [b"", bytes(10), b"\x01", b"not signed" * 5])
def test_trailing_bytes_kept_out_of_signed(v5: bytes, extra: bytes) -> None:
    base = parse_quote(v5)
    quote = parse_quote(v5 + extra)
    assert quote.signed == base.signed == v5[:702]
    assert quote.trailing == extra and quote.trailing_bytes == len(extra)
    assert quote.trailing_nonzero is any(extra)
    assert quote.signature == base.signature and quote.pck_chain_pem == base.pck_chain_pem
    assert serialize_quote(quote) == v5 + extra


def test_text_trailer_of_go_tdx_guest(vectors_dir: Path) -> None:
    quote = parse_quote(evidence(vectors_dir, "tdx-v4-gotdxguest-spr-e4"))
    assert quote.trailing == b"\nextra bytes(only for testing purpose)\n" and quote.trailing_nonzero
