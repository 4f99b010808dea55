"""A fake NVIDIA GPU device PKI that mints SPDM attestation reports for tests.

Structure mirrors the real one (../shared/vectors/README.md "NVIDIA GPU"): NVIDIA Device Identity CA (self-signed
root) <- NVIDIA GH100 Identity <- NVIDIA GH100 Provisioner ICA 1 <- GH100 A01 GSP BROM (serialNumber in the subject)
<- GH100 A01 GSP FMC LF (the attestation key), all ECDSA P-384 / SHA-384, valid until 9999-12-31. The leaf carries
the FWID: Hopper in extension 2.23.133.5.4.1 (SEQUENCE { INTEGER 1, SubjectPublicKeyInfo, SEQUENCE { OID sha384,
OCTET STRING } }), Blackwell (GB100 names) in a TCG DICE TcbInfo 2.23.133.5.4.1.1 whose fwids[0] is the FWID and
whose last 48 bytes are another (zero) FWID, as on real GB100 leaves.

Reports are the NVML layout: the 37-byte GET_MEASUREMENTS request then the MEASUREMENTS response, encoded here with
struct (independently of the verifier's code) and signed with the leaf key (raw r || s over everything before the
signature).

Usage::

    pki = FakeNvidiaPki()                         # or FakeNvidiaPki("blackwell")
    evidence = pki.mint(nonce=b"n" * 32)
    ctx = VerifyContext(at=pki.now, anchors=pki.anchors(), collateral=pki.collateral())

`mint` overrides (all optional): nonce, request (the whole 37 bytes), request_version, request_code, param1, param2,
slot, response_version, response_code, number_of_blocks, blocks (list of (index, value) or `Block`), record (raw
bytes), record_length, responder_nonce, opaque (list of (type, value)), opaque_raw (bytes), opaque_length,
signature (raw bytes), trailing (bytes after the signature), key (another signing key), driver_version, vbios
(8 raw bytes), fwid (the opaque FWID; `OMIT` leaves the field out). `pki.chain_pem(certs)` writes any chain.
`pki.ocsp()` signs OCSP responses for the chain as collateral files.
Constructor knobs: architecture, fwid (the leaf's), leaf_fwid (a leaf FWID other than the report's), leaf_extension
(False: no FWID extension), leaf_curve. `pki.foreign()` has identical names and other keys.
"""

from __future__ import annotations

import datetime
import hashlib
import struct
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from verifier.trust.anchors import TrustAnchors

UTC = datetime.UTC
DEFAULT_NOW = datetime.datetime(2025, 3, 1, tzinfo=UTC)
NOT_AFTER = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
OMIT: Any = object()
SHA384_OID = bytes.fromhex("0609608648016503040202")
HOPPER_OID, BLACKWELL_OID = "2.23.133.5.4.1", "2.23.133.5.4.1.1"
GPU_INFO = {"hopper": bytes.fromhex("8001000000000000"), "blackwell": bytes.fromhex("a001000000000000")}
CHIP = {"hopper": "GH100", "blackwell": "GB100"}


@dataclass(frozen=True)
class Block:
    index: int
    value: bytes
    value_type: int = 1
    specification: int = 1


def der(tag: int, value: bytes) -> bytes:
    """One DER element (definite, minimal length)."""
    n = len(value)
    if n < 0x80:
        head = bytes([n])
    else:
        body = n.to_bytes((n.bit_length() + 7) // 8, "big")
        head = bytes([0x80 | len(body)]) + body
    return bytes([tag]) + head + value


def fwid_entry(digest: bytes) -> bytes:
    return der(0x30, SHA384_OID + der(0x04, digest))


def hopper_extension(public_key: ec.EllipticCurvePublicKey, fwid: bytes) -> bytes:
    spki = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return der(0x30, der(0x02, b"\x01") + spki + fwid_entry(fwid))


def blackwell_extension(fwid: bytes, model: str = "GB100 A01 GSP") -> bytes:
    fields = [
        der(0x80, b"NVIDIA"),
        der(0x81, model.encode()),
        der(0x82, b"01"),
        der(0x83, b"\x01"),
        der(0x84, b"\x00"),
        der(0x85, b"\x00"),
        der(0xA6, fwid_entry(fwid) + fwid_entry(bytes(48))),
        der(0x87, bytes.fromhex("0080000001")),
        der(0x88, b"\xc0"),
        der(0x89, b"\x00"),
    ]
    return der(0x30, b"".join(fields))


def _name(*parts: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in parts])


def _usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _cert(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey | Any,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    not_before: datetime.datetime,
    *,
    ca: bool,
    extra: tuple[tuple[str, bytes], ...] = (),
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(NOT_AFTER)
        .add_extension(_usage(ca=ca), critical=True)
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    for oid, value in extra:
        builder = builder.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), critical=False)
    return builder.sign(issuer_key, hashes.SHA384())


def raw_signature(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA384())))
    return r.to_bytes(48, "big") + s.to_bytes(48, "big")


def pem(certs: list[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(Encoding.PEM) for c in certs)


class FakeNvidiaPki:
    def __init__(
        self,
        architecture: str = "hopper",
        now: datetime.datetime = DEFAULT_NOW,
        *,
        fwid: bytes | None = None,
        leaf_fwid: bytes | None = None,
        leaf_extension: bool = True,
        leaf_curve: ec.EllipticCurve | None = None,
    ) -> None:
        self.architecture, self.now = architecture, now
        self.fwid = fwid if fwid is not None else hashlib.sha384(b"fake FMC " + architecture.encode()).digest()
        self._args = (leaf_fwid, leaf_extension, leaf_curve)
        chip = CHIP[architecture]
        p384 = ec.SECP384R1()
        self.root_key, self.identity_key, self.ica_key, self.brom_key = (ec.generate_private_key(p384) for _ in "1234")
        self.leaf_key = ec.generate_private_key(leaf_curve or p384)
        start = now - datetime.timedelta(days=400)
        o, cn, c, sn = NameOID.ORGANIZATION_NAME, NameOID.COMMON_NAME, NameOID.COUNTRY_NAME, NameOID.SERIAL_NUMBER
        root_name = _name((o, "NVIDIA"), (cn, "NVIDIA Device Identity CA"))
        identity_name = _name((o, "NVIDIA Corporation"), (cn, f"NVIDIA {chip} Identity"))
        ica_name = _name((c, "US"), (o, "NVIDIA Corporation"), (cn, f"NVIDIA {chip} Provisioner ICA 1"))
        brom_name = _name(
            (cn, f"{chip} A01 GSP BROM"), (o, "NVIDIA Corporation"), (c, "US"), (sn, "41431D480FE5E87274")
        )
        leaf_name = _name((cn, f"{chip} A01 GSP FMC LF"), (o, "NVIDIA Corporation"), (c, "US"), (sn, "53C22BA15E5D"))
        self.root = _cert(root_name, self.root_key, root_name, self.root_key, start, ca=True)
        self.identity = _cert(identity_name, self.identity_key, root_name, self.root_key, start, ca=True)
        self.ica = _cert(ica_name, self.ica_key, identity_name, self.identity_key, start, ca=True)
        self.brom = _cert(brom_name, self.brom_key, ica_name, self.ica_key, start, ca=True)
        extra: tuple[tuple[str, bytes], ...] = ()
        if leaf_extension:
            value = leaf_fwid if leaf_fwid is not None else self.fwid
            if architecture == "hopper":
                extra = ((HOPPER_OID, hopper_extension(self.leaf_key.public_key(), value)),)
            else:
                extra = ((BLACKWELL_OID, blackwell_extension(value, f"{chip} A01 GSP")),)
        self.leaf = _cert(leaf_name, self.leaf_key, brom_name, self.brom_key, start, ca=False, extra=extra)

    @property
    def chain(self) -> list[x509.Certificate]:
        """Leaf first, as a GPU returns it."""
        return [self.leaf, self.brom, self.ica, self.identity, self.root]

    def chain_pem(self, certs: list[x509.Certificate] | None = None) -> bytes:
        return pem(self.chain if certs is None else certs)

    def collateral(self, certs: list[x509.Certificate] | None = None, /, **extra: bytes) -> dict[str, bytes]:
        return {"cert_chain.pem": self.chain_pem(certs), **extra}

    @property
    def pins(self) -> dict[str, frozenset[str]]:
        return {"nvidia-device": frozenset({hashlib.sha256(self.root.public_bytes(Encoding.DER)).hexdigest()})}

    def anchors(self, *, certificates: bool = False) -> TrustAnchors:
        return TrustAnchors(pins=self.pins, certificates=[self.root] if certificates else ())

    def foreign(self) -> FakeNvidiaPki:
        """Same names and shape, different keys: its root is not in `self.pins`."""
        return FakeNvidiaPki(self.architecture, self.now, fwid=self.fwid)

    def ocsp(self, statuses: dict[str, str] | None = None, **kw: Any) -> dict[str, bytes]:
        """OCSP responses (tests/fakes/nvidia_ocsp.py `ocsp_response`, signed by each issuer) for the BROM, ICA and
        Identity certificates as collateral files "ocsp-<name>.der": good unless `statuses` says otherwise
        (name -> "good" | "revoked" | "unknown"; "omit" leaves one out); `kw` as `ocsp_response` takes them."""
        from tests.fakes.nvidia_ocsp import Issued, ocsp_response

        issuers = {"brom": Issued(self.ica, self.ica_key), "ica": Issued(self.identity, self.identity_key)}
        issuers["identity"] = Issued(self.root, self.root_key)
        files = {}
        for name, issuer in issuers.items():
            status = (statuses or {}).get(name, "good")
            if status != "omit":
                files[f"ocsp-{name}.der"] = ocsp_response(getattr(self, name), issuer, status=status, **kw)  # type: ignore[arg-type]
        return files

    def opaque_fields(
        self, *, driver_version: str = "550.90.07", vbios: bytes | None = None, fwid: Any = None
    ) -> list[tuple[int, bytes]]:
        """The TLVs of a 550-era Hopper report (Blackwell adds SYS_ENABLE_STATUS and OPAQUE_DATA_VERSION)."""
        fields = [
            (6, vbios if vbios is not None else bytes.fromhex("009f009601000000")),
            (14, bytes.fromhex("b1030000")),
            (15, b"882".ljust(9, b"\0")),
            (16, b"0".ljust(5, b"\0")),
            (17, b"1010\0"),
            (18, b"0200\0"),
            (19, b"\0\0"),
            (3, driver_version.encode() + b"\0"),
            (4, GPU_INFO[self.architecture]),
            (12, b"".join(struct.pack("<I", i % 3) for i in range(64))),
            (13, bytes.fromhex("00c00100")),
            (11, b"\x55"),
        ]
        if fwid is not OMIT:
            fields.append((20, self.fwid if fwid is None else fwid))
        fields.append((21, b"\x55"))
        if self.architecture == "blackwell":
            fields += [(33, b"\x07\x07"), (34, b"\0\0")]
        return fields

    @staticmethod
    def blocks(count: int = 64) -> list[Block]:
        return [Block(i, hashlib.sha384(f"measurement {i}".encode()).digest()) for i in range(1, count + 1)]

    @staticmethod
    def record(blocks: list[Block]) -> bytes:
        return b"".join(
            struct.pack("<BBHBH", b.index, b.specification, 3 + len(b.value), b.value_type, len(b.value)) + b.value
            for b in blocks
        )

    @staticmethod
    def tlvs(fields: list[tuple[int, bytes]]) -> bytes:
        return b"".join(struct.pack("<HH", kind, len(value)) + value for kind, value in fields)

    def mint(self, **o: Any) -> bytes:
        """An SPDM report (module docstring for the overrides)."""
        request = o.get("request")
        if request is None:
            head = bytes([o.get("request_version", 0x11), o.get("request_code", 0xE0)])
            head += bytes([o.get("param1", 1), o.get("param2", 0xFF)])
            request = head + o.get("nonce", b"\x42" * 32) + bytes([o.get("slot", 0)])
        blocks = [b if isinstance(b, Block) else Block(*b) for b in o.get("blocks", self.blocks())]
        record = o.get("record", self.record(blocks))
        fields = o.get("opaque") or self.opaque_fields(
            driver_version=o.get("driver_version", "550.90.07"), vbios=o.get("vbios"), fwid=o.get("fwid")
        )
        opaque = o.get("opaque_raw", self.tlvs(fields))
        response = bytes([o.get("response_version", 0x11), o.get("response_code", 0x60), 0, 0])
        response += bytes([o.get("number_of_blocks", len(blocks))])
        response += o.get("record_length", len(record)).to_bytes(3, "little") + record
        response += o.get("responder_nonce", hashlib.sha256(b"responder").digest())
        response += struct.pack("<H", o.get("opaque_length", len(opaque))) + opaque
        signed: bytes = request + response
        signature: bytes = o.get("signature") or raw_signature(o.get("key", self.leaf_key), signed)
        trailing: bytes = o.get("trailing", b"")
        return signed + signature + trailing
