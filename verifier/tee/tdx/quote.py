"""Intel TDX DCAP quotes, versions 4 and 5 (Intel TDX DCAP Quoting Library API, appendix "Quote Format";
the same layout as Phala-Network/dcap-qvl src/quote.rs and google/go-tdx-guest abi/abi.go). Pure parsing.

v4:  header (48) | TD report 1.0 (584) | u32 signature-data length | signature data
v5:  header (48) | body type u16, body size u32 | body (584 type 2 / 648 type 3) | u32 length | signature data
Signature data (ECDSA-256 with P-256): quote signature r||s (64) | attestation key X||Y (64) | certification data
(type u16, size u32) of type 6 = QE report certification data: QE report (384) | QE report signature (64) |
u16 QE authentication data size | QE authentication data | certification data type 5 (PCK chain, PEM).
Bytes after the signature data are not signed: zero padding from fixed-size quote buffers is common, and
go-tdx-guest's test quotes even append text. They are kept out of every hash and reported (`trailing_bytes`,
`trailing_nonzero`); appraisal decides what non-zero trailing data means."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from verifier.errors import ParseError

HEADER_SIZE = 48
TD_REPORT10_SIZE = 584
TD_REPORT15_SIZE = 648
BODY_DESCRIPTOR_SIZE = 6
QE_REPORT_SIZE = 384
MAX_QUOTE_BYTES = 64 * 1024
MAX_CERT_DATA_BYTES = 32 * 1024
ATT_KEY_ECDSA_P256 = 2
TEE_TYPE_TDX = 0x81
BODY_TDX10, BODY_TDX15 = 2, 3
CERT_DATA_PCK_CHAIN = 5
CERT_DATA_QE_REPORT = 6
INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")


@dataclass(frozen=True)
class QuoteHeader:
    version: int
    att_key_type: int
    tee_type: int
    reserved1: int  # QE SVN in SGX quotes; reserved for TDX
    reserved2: int  # PCE SVN in SGX quotes; reserved for TDX
    qe_vendor_id: bytes
    user_data: bytes


@dataclass(frozen=True)
class TdReport:
    """TD report body: 1.0 (584 bytes) or 1.5 (648 bytes, adds TEE_TCB_SVN_2 and MRSERVICETD)."""

    tee_tcb_svn: bytes
    mr_seam: bytes
    mr_signer_seam: bytes
    seam_attributes: bytes
    td_attributes: bytes
    xfam: bytes
    mr_td: bytes
    mr_config_id: bytes
    mr_owner: bytes
    mr_owner_config: bytes
    rtmr0: bytes
    rtmr1: bytes
    rtmr2: bytes
    rtmr3: bytes
    report_data: bytes
    tee_tcb_svn_2: bytes | None = None
    mr_servicetd: bytes | None = None


_TD_FIELDS = (
    ("tee_tcb_svn", 16),
    ("mr_seam", 48),
    ("mr_signer_seam", 48),
    ("seam_attributes", 8),
    ("td_attributes", 8),
    ("xfam", 8),
    ("mr_td", 48),
    ("mr_config_id", 48),
    ("mr_owner", 48),
    ("mr_owner_config", 48),
    ("rtmr0", 48),
    ("rtmr1", 48),
    ("rtmr2", 48),
    ("rtmr3", 48),
    ("report_data", 64),
)
_TD15_FIELDS = (("tee_tcb_svn_2", 16), ("mr_servicetd", 48))


@dataclass(frozen=True)
class Quote:
    header: QuoteHeader
    body_type: int  # 2 (TDX 1.0) or 3 (TDX 1.5); v4 quotes are always 2
    body: TdReport
    signature: bytes  # ECDSA P-256 r||s, big-endian, 64 bytes
    attestation_key: bytes  # P-256 public key X||Y, 64 bytes
    qe_report: bytes  # the QE's SGX REPORT body, 384 bytes (parsed in enclave_report.py)
    qe_report_signature: bytes  # r||s by the PCK key
    qe_auth_data: bytes
    pck_chain_pem: bytes
    signed: bytes  # header (+ v5 descriptor) + body: exactly what the attestation key signed
    signature_data_length: int
    trailing: bytes  # unsigned bytes after the signature data (usually zero padding)

    @property
    def trailing_bytes(self) -> int:
        """How many unsigned bytes follow the signature data (module docstring). Never raises."""
        return len(self.trailing)

    @property
    def trailing_nonzero(self) -> bool:
        """True when any of those trailing bytes is not zero (appraisal reports TDX_TRAILING_DATA). Never raises."""
        return any(self.trailing)

    @property
    def version(self) -> int:
        """The quote header's version, 4 or 5 ("Quote Format"). Never raises."""
        return self.header.version


class _Reader:
    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data, self.pos = data, pos

    def take(self, size: int, what: str) -> bytes:
        if size < 0 or self.pos + size > len(self.data):
            raise ParseError(
                "TDX_QUOTE_TRUNCATED",
                f"quote ends inside {what}",
                expected=f"{size} bytes at offset {self.pos}",
                actual=f"{len(self.data) - self.pos}",
            )
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def u16(self, what: str) -> int:
        return int(struct.unpack("<H", self.take(2, what))[0])

    def u32(self, what: str) -> int:
        return int(struct.unpack("<I", self.take(4, what))[0])


def parse_quote(data: bytes) -> Quote:
    """Parse a TDX quote v4/v5 by its length fields. Raises ParseError with TDX_* codes."""
    if len(data) > MAX_QUOTE_BYTES:
        raise ParseError(
            "TDX_QUOTE_TOO_LARGE",
            "quote exceeds the size limit",
            expected=f"<= {MAX_QUOTE_BYTES}",
            actual=str(len(data)),
        )
    r = _Reader(data)
    version, att_key_type, tee_type, res1, res2 = struct.unpack("<HHIHH", r.take(12, "header"))
    header = QuoteHeader(version, att_key_type, tee_type, res1, res2, r.take(16, "header"), r.take(20, "header"))
    if version not in (4, 5):
        raise ParseError(
            "TDX_QUOTE_VERSION_UNSUPPORTED", "quote version must be 4 or 5", expected="4|5", actual=str(version)
        )
    if att_key_type != ATT_KEY_ECDSA_P256:
        raise ParseError(
            "TDX_ATT_KEY_TYPE_UNSUPPORTED",
            "attestation key type must be 2 (ECDSA P-256)",
            expected="2",
            actual=str(att_key_type),
        )
    if tee_type != TEE_TYPE_TDX:
        raise ParseError("TDX_TEE_TYPE", "TEE type must be 0x81 (TDX)", expected="0x81", actual=f"0x{tee_type:x}")
    body_type, size = BODY_TDX10, TD_REPORT10_SIZE
    if version == 5:
        body_type, size = r.u16("body descriptor"), r.u32("body descriptor")
        expected = {BODY_TDX10: TD_REPORT10_SIZE, BODY_TDX15: TD_REPORT15_SIZE}.get(body_type)
        if expected is None:
            raise ParseError(
                "TDX_BODY_TYPE_UNSUPPORTED",
                "v5 body type must be 2 (TDX 1.0) or 3 (TDX 1.5)",
                expected="2|3",
                actual=str(body_type),
            )
        if size != expected:
            raise ParseError(
                "TDX_BODY_SIZE", "body size does not match its type", expected=str(expected), actual=str(size)
            )
    body = _td_report(r.take(size, "TD report"), body_type)
    signed = data[: r.pos]
    sig_len = r.u32("signature data length")
    sig = _Reader(r.take(sig_len, "signature data"))
    signature, att_key = sig.take(64, "quote signature"), sig.take(64, "attestation key")
    cert_type, cert_size = sig.u16("certification data"), sig.u32("certification data")
    if cert_type != CERT_DATA_QE_REPORT:
        raise ParseError(
            "TDX_CERT_DATA_UNSUPPORTED",
            "certification data type must be 6 (QE report)",
            expected="6",
            actual=str(cert_type),
        )
    outer = _Reader(sig.take(cert_size, "QE report certification data"))
    qe_report, qe_sig = outer.take(QE_REPORT_SIZE, "QE report"), outer.take(64, "QE report signature")
    qe_auth = outer.take(outer.u16("QE authentication data size"), "QE authentication data")
    inner_type, inner_size = outer.u16("PCK certification data"), outer.u32("PCK certification data")
    if inner_type != CERT_DATA_PCK_CHAIN:
        raise ParseError(
            "TDX_CERT_DATA_UNSUPPORTED",
            "QE report certification data must wrap type 5 (PCK chain)",
            expected="5",
            actual=str(inner_type),
        )
    if inner_size > MAX_CERT_DATA_BYTES:
        raise ParseError(
            "TDX_CERT_DATA_TOO_LARGE",
            "PCK chain too large",
            expected=f"<= {MAX_CERT_DATA_BYTES}",
            actual=str(inner_size),
        )
    pck_chain = outer.take(inner_size, "PCK chain")
    for reader, what in ((outer, "QE report certification data"), (sig, "signature data")):
        if reader.pos != len(reader.data):
            raise ParseError(
                "TDX_LENGTH_MISMATCH",
                f"bytes left over inside the {what}",
                expected="0",
                actual=str(len(reader.data) - reader.pos),
            )
    return Quote(
        header,
        body_type,
        body,
        signature,
        att_key,
        qe_report,
        qe_sig,
        qe_auth,
        pck_chain,
        signed,
        sig_len,
        data[r.pos :],
    )


def _td_report(raw: bytes, body_type: int) -> TdReport:
    fields = _TD_FIELDS + (_TD15_FIELDS if body_type == BODY_TDX15 else ())
    values, pos = {}, 0
    for name, size in fields:
        values[name] = raw[pos : pos + size]
        pos += size
    return TdReport(**values)


def serialize_quote(quote: Quote) -> bytes:
    """Bytes of `quote` (parse -> serialize round-trips, including the trailing bytes)."""
    h = quote.header
    out = struct.pack("<HHIHH", h.version, h.att_key_type, h.tee_type, h.reserved1, h.reserved2)
    out += h.qe_vendor_id + h.user_data
    body = serialize_body(quote.body, quote.body_type)
    if h.version == 5:
        out += struct.pack("<HI", quote.body_type, len(body))
    out += body
    inner = struct.pack("<HI", CERT_DATA_PCK_CHAIN, len(quote.pck_chain_pem)) + quote.pck_chain_pem
    outer = quote.qe_report + quote.qe_report_signature + struct.pack("<H", len(quote.qe_auth_data))
    outer += quote.qe_auth_data + inner
    sig = quote.signature + quote.attestation_key + struct.pack("<HI", CERT_DATA_QE_REPORT, len(outer)) + outer
    out += struct.pack("<I", len(sig)) + sig
    return out + quote.trailing


def serialize_body(body: TdReport, body_type: int) -> bytes:
    """The wire bytes of a TD report body (584 bytes; 648 for body type 3, TDX 1.5), fields in "Quote Format"
    order. Raises ValueError (no error code: a caller bug) when a field has the wrong length or is missing."""
    fields = _TD_FIELDS + (_TD15_FIELDS if body_type == BODY_TDX15 else ())
    out = b""
    for name, size in fields:
        value = getattr(body, name)
        if value is None or len(value) != size:
            raise ValueError(f"{name} must be {size} bytes")
        out += value
    return out
