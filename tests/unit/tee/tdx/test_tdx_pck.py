"""PCK chain loading and the SGX extension (Intel SGX PCK Certificate and CRL Profile) of every vector's leaf, and
malformed extensions on throwaway certificates."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import manifest_vectors
from verifier.errors import EvidenceError
from verifier.tee.tdx.pck import SGX_EXTENSION_OID, PckInfo, pck_chain, pck_info
from verifier.tee.tdx.quote import parse_quote

VECTORS = manifest_vectors("tdx")
IDS = [v["id"] for v in VECTORS]
SGX = SGX_EXTENSION_OID


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_leaf_extension_matches_facts(vectors_dir: Path, vector: dict[str, Any]) -> None:
    facts = vector["facts"]
    chain = pck_chain(parse_quote((vectors_dir / vector["dir"] / "evidence.bin").read_bytes()).pck_chain_pem)
    assert len(chain) == 3
    assert chain[0].issuer.rfc4514_string() == facts["pck_issuer"]
    assert chain[2].subject.rfc4514_string().endswith("CN=Intel SGX Root CA")
    info = pck_info(chain[0])
    assert info.fmspc.hex() == facts["fmspc"]
    assert info.cpusvn.hex() == facts["pck_cpu_svn"]
    assert info.pcesvn == facts["pck_pce_svn"]
    assert info.pce_id.hex() == facts["pck_pce_id"]
    assert bytes(info.tcb_components) == info.cpusvn  # true for these platforms, not required by the profile
    assert info.sgx_type == 1 and info.ppid is not None and len(info.ppid) == 16  # Platform CA: scalable
    assert info.platform_instance_id is not None and info.dynamic_platform is True


def test_chain_tolerates_trailing_nul_and_rejects_garbage(vectors_dir: Path) -> None:
    pem = (vectors_dir / "tdx/tdx-v4-dcapqvl-sample/pck_chain.pem").read_bytes()
    assert len(pck_chain(pem + b"\0")) == 3
    for bad in (b"", b"garbage", b"\0" * 10, b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"):
        with pytest.raises(EvidenceError) as info:
            pck_chain(bad)
        assert info.value.code == "CERT_MALFORMED"
    assert len(pck_chain(pem + pem[: pem.index(b"-----END") + 26])) == 4
    with pytest.raises(EvidenceError) as info:
        pck_chain(pem * 2)
    assert (info.value.code, info.value.actual) == ("CERT_MALFORMED", "6")


# --- hand-built DER (independent of asn1crypto) --------------------------------------------------------------


def tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    width = (n.bit_length() + 7) // 8
    size = bytes([n]) if n < 128 else bytes([0x80 | width]) + n.to_bytes(width, "big")
    return bytes([tag]) + size + body


def oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    out = bytes([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        while p > 0x7F:
            p >>= 7
            chunk.append(0x80 | (p & 0x7F))
        out += bytes(reversed(chunk))
    return tlv(0x06, out)


def integer(v: int) -> bytes:
    return tlv(0x02, v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big", signed=True))


def octets(b: bytes) -> bytes:
    return tlv(0x04, b)


def seq(*items: bytes) -> bytes:
    return tlv(0x30, b"".join(items))


def pair(sub: str, value: bytes) -> bytes:
    return seq(oid(f"{SGX}.{sub}"), value)


def tcb(overrides: dict[str, bytes | None] | None = None) -> bytes:
    entries: dict[str, bytes | None] = {f"2.{i}": integer(i % 4) for i in range(1, 17)}
    entries["2.17"] = integer(13)
    entries["2.18"] = octets(bytes(range(16)))
    entries.update(overrides or {})
    return seq(*(pair(k, v) for k, v in entries.items() if v is not None))


def extension(overrides: dict[str, bytes | None] | None = None, tcb_value: bytes | None = None) -> bytes:
    entries: dict[str, bytes | None] = {
        "1": octets(b"\x11" * 16),
        "2": tcb_value if tcb_value is not None else tcb(),
        "3": octets(b"\0\0"),
        "4": octets(bytes.fromhex("90c06f000000")),
        "5": tlv(0x0A, b"\0"),
    }
    entries.update(overrides or {})
    return seq(*(pair(k, v) for k, v in entries.items() if v is not None))


_KEY = ec.generate_private_key(ec.SECP256R1())


def cert_with(value: bytes | None) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Intel SGX PCK Certificate")])
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(_KEY.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
    )
    if value is not None:
        builder = builder.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(SGX), value), critical=False)
    return builder.sign(_KEY, hashes.SHA256())


def test_built_extension_parses() -> None:
    info = pck_info(cert_with(extension()))
    assert info == PckInfo(
        fmspc=bytes.fromhex("90c06f000000"),
        pce_id=b"\0\0",
        cpusvn=bytes(range(16)),
        tcb_components=tuple(i % 4 for i in range(1, 17)),
        pcesvn=13,
        ppid=b"\x11" * 16,
        sgx_type=0,
        platform_instance_id=None,
    )
    minimal = pck_info(cert_with(extension({"1": None, "5": None, "9": octets(b"future")})))
    assert minimal.ppid is None and minimal.sgx_type is None and minimal.fmspc.hex() == "90c06f000000"
    config = seq(pair("7.1", tlv(0x01, b"\xff")), pair("7.3", tlv(0x01, b"\0")))
    flags = pck_info(cert_with(extension({"6": octets(bytes(16)), "7": config})))
    assert (flags.dynamic_platform, flags.cached_keys, flags.smt_enabled) == (True, None, False)


MALFORMED = {
    "no extension": None,
    "not DER": b"\x30\x05\x02",
    "trailing data": extension() + b"\0",
    "not a sequence": octets(b"x"),
    "entry not a pair": seq(seq(oid(f"{SGX}.4"))),
    "entry key not an OID": seq(seq(integer(4), octets(b"123456"))),
    "FMSPC missing": extension({"4": None}),
    "FMSPC wrong length": extension({"4": octets(b"\x90\xc0\x6f")}),
    "FMSPC wrong type": extension({"4": integer(5)}),
    "PCE-ID missing": extension({"3": None}),
    "PCE-ID wrong length": extension({"3": octets(b"\0")}),
    "TCB missing": extension({"2": None}),
    "TCB not a sequence": extension({"2": octets(b"tcb")}),
    "component missing": extension(tcb_value=tcb({"2.7": None})),
    "component not an integer": extension(tcb_value=tcb({"2.3": octets(b"\x01")})),
    "component negative": extension(tcb_value=tcb({"2.1": integer(-1)})),
    "component over 255": extension(tcb_value=tcb({"2.16": integer(256)})),
    "PCESVN missing": extension(tcb_value=tcb({"2.17": None})),
    "PCESVN over 65535": extension(tcb_value=tcb({"2.17": integer(1 << 16)})),
    "CPUSVN missing": extension(tcb_value=tcb({"2.18": None})),
    "CPUSVN short": extension(tcb_value=tcb({"2.18": octets(bytes(15))})),
    "PPID wrong length": extension({"1": octets(bytes(8))}),
    "SGX type not enumerated": extension({"5": integer(0)}),
    "duplicate FMSPC": seq(pair("4", octets(bytes(6))), pair("4", octets(bytes(6)))),
    "configuration not a sequence": extension({"7": tlv(0x01, b"\xff")}),
    "configuration flag not boolean": extension({"7": seq(pair("7.1", integer(1)))}),
}


@pytest.mark.parametrize("value", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_extension(value: bytes | None) -> None:
    with pytest.raises(EvidenceError) as info:
        pck_info(cert_with(value))
    assert info.value.code == "TDX_PCK_EXTENSION_INVALID"
    assert info.value.expected and info.value.actual
