"""A fake Intel SGX/TDX PKI (Intel "SGX PCK Certificate and CRL Profile") that mints signed TDX quotes.

Shape: P-256 "Intel SGX Root CA" (self-signed, pathLen 1) -> "Intel SGX PCK Platform CA" (or Processor CA,
pathLen 0) -> "Intel SGX PCK Certificate" leaf with the SGX extension 1.2.840.113741.1.13.1 (PPID .1, TCB .2 with
16 components .2.1-.2.16, PCESVN .2.17 and CPUSVN .2.18, PCE-ID .3, FMSPC .4, SGX type .5 ENUMERATED, and for
platform CAs PlatformInstanceID .6 and Configuration .7); root -> "Intel SGX TCB Signing" (signs TCB info and QE
identity). CRLs are DER, ECDSA SHA-256, with CRLNumber and AKI like Intel's. Subject names are Intel's, so real and
fake differ only by keys.

Usage::

    pki = FakeIntelPki()                                  # pki.now is a fixed UTC instant
    quote = parse_quote(pki.quote(version=5, body_type=3, td_attributes=b"\\x01" + bytes(7)))
    verify_quote(quote, pki.anchors(), pki.now, pck_crl=load(pki.pck_crl([pki.pck.serial_number])))
    files = pki.collateral_files()                        # tcb_info.json, qe_identity.json, ... (as in vectors/)

Constructor knobs: `fmspc`, `pce_id`, `tcb_components` (16 ints), `cpusvn` (16 bytes; default = components),
`pcesvn`, `ppid`, `sgx_type` (1 platform / 0 processor: picks the CA name), `pck_validity` (not_before,
not_after), `pck_curve` (e.g. ec.SECP384R1() for a wrong-curve leaf). `pki.foreign()` has the same names and
knobs with other keys, so its root is not in `pki.pins`.

`quote(**overrides)`: `version` (4 or 5), `body_type` (2 or 3; v5 default 3), any TdReport field (mr_td,
td_attributes (DEBUG is bit 0), tee_tcb_svn, report_data, ...), `user_data`, `trailing`; QE report fields
`qe_mrsigner`, `qe_isvprodid` (2), `qe_isvsvn`, `qe_miscselect`, `qe_attributes`, `qe_cpusvn`, `qe_mrenclave`,
`qe_report_data` (64 raw bytes, replaces the binding), `qe_auth_data`; knobs to break one step each:
`bad_qe_report_signature`, `unbound_report_data`, `bad_signature`, `attestation_key` (64 raw X||Y bytes, the
binding still covers them), `pck_chain_pem`.

`issue(cn, issuer=(cn, key), ca=None, sgx=None)` mints another certificate (e.g. a look-alike "Intel SGX TCB
Signing" under the PCK CA); `pck_crl` / `root_ca_crl` take `revoked`, `this_update`, `next_update`, `signer_key` and
`number` (the cRLNumber).

Collateral (tests/fakes/intel_collateral.py): `sign_json`, `tcb_info`, `qe_identity`, `collateral_files`,
`collateral_signed_by`.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import struct
from collections.abc import Sequence
from typing import Any

from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from tests.fakes.intel_collateral import IntelCollateral
from verifier.tee.tdx.quote import (
    ATT_KEY_ECDSA_P256,
    BODY_TDX10,
    BODY_TDX15,
    INTEL_QE_VENDOR_ID,
    TEE_TYPE_TDX,
    Quote,
    QuoteHeader,
    TdReport,
    parse_quote,
    serialize_quote,
)
from verifier.trust.anchors import TrustAnchors, fingerprint

UTC = datetime.UTC
DAY = datetime.timedelta(days=1)
DEFAULT_NOW = datetime.datetime(2025, 7, 1, tzinfo=UTC)
SGX = "1.2.840.113741.1.13.1"
TD_QE_MRSIGNER = bytes.fromhex("dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5")
DEFAULT_TCB = (3, 3, 2, 2, 4, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0)
DEFAULT_TEE_TCB_SVN = bytes([3, 1, 2]) + bytes(13)  # module ISVSVN 3, major version 1 (TDX_01)


def _name(cn: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Intel Corporation"),
        x509.NameAttribute(NameOID.LOCALITY_NAME, "Santa Clara"),
        x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "CA"),
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
    ])  # fmt: skip


def _seq(*items: bytes) -> bytes:
    return bytes(core.Sequence(contents=b"".join(items)).dump())


def _pair(oid: str, value: bytes) -> bytes:
    return _seq(core.ObjectIdentifier(oid).dump(), value)


def raw_rs(signature_der: bytes) -> bytes:
    """DER ECDSA signature -> raw r||s, 32 bytes each, big-endian."""
    r, s = decode_dss_signature(signature_der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _sha384(label: str) -> bytes:
    return hashlib.sha384(label.encode()).digest()


class FakeIntelPki(IntelCollateral):
    def __init__(
        self,
        now: datetime.datetime = DEFAULT_NOW,
        *,
        fmspc: bytes = bytes.fromhex("90c06f000000"),
        pce_id: bytes = bytes(2),
        tcb_components: Sequence[int] = DEFAULT_TCB,
        cpusvn: bytes | None = None,
        pcesvn: int = 11,
        ppid: bytes = hashlib.sha256(b"ppid").digest()[:16],
        sgx_type: int = 1,
        pck_validity: tuple[datetime.datetime, datetime.datetime] | None = None,
        pck_curve: ec.EllipticCurve | None = None,
    ) -> None:
        self.now = now
        self._knobs: dict[str, Any] = {
            "fmspc": fmspc, "pce_id": pce_id, "tcb_components": tcb_components, "cpusvn": cpusvn,
            "pcesvn": pcesvn, "ppid": ppid, "sgx_type": sgx_type, "pck_validity": pck_validity,
            "pck_curve": pck_curve,
        }  # fmt: skip
        self.fmspc, self.pce_id, self.pcesvn, self.ppid, self.sgx_type = fmspc, pce_id, pcesvn, ppid, sgx_type
        self.tcb_components = tuple(tcb_components)
        self.cpusvn = cpusvn if cpusvn is not None else bytes(self.tcb_components)
        self.root_key, self.pck_ca_key, self.tcb_key, self.att_key = (
            ec.generate_private_key(ec.SECP256R1()) for _ in range(4)
        )
        self.pck_key = ec.generate_private_key(pck_curve or ec.SECP256R1())
        self.ca_name = "Intel SGX PCK Platform CA" if sgx_type == 1 else "Intel SGX PCK Processor CA"
        year = 365 * DAY
        self.root = self._cert(
            "Intel SGX Root CA",
            self.root_key,
            "Intel SGX Root CA",
            self.root_key,
            (now - 5 * year, now + 25 * year),
            ca=1,
        )
        self.pck_ca = self._cert(
            self.ca_name, self.pck_ca_key, "Intel SGX Root CA", self.root_key, (now - 5 * year, now + 10 * year), ca=0
        )
        self.pck = self._cert(
            "Intel SGX PCK Certificate",
            self.pck_key,
            self.ca_name,
            self.pck_ca_key,
            pck_validity or (now - year, now + 6 * year),
            sgx=self.sgx_extension(),
        )
        self.tcb_signing = self._cert(
            "Intel SGX TCB Signing", self.tcb_key, "Intel SGX Root CA", self.root_key, (now - year, now + 6 * year)
        )

    def _cert(
        self,
        cn: str,
        key: Any,
        issuer: str,
        issuer_key: ec.EllipticCurvePrivateKey,
        validity: tuple[datetime.datetime, datetime.datetime],
        *,
        ca: int | None = None,
        sgx: bytes | None = None,
    ) -> x509.Certificate:
        issuer_pub = issuer_key.public_key()
        ku = (False, False, False, False, False, True, True) if ca is not None else (True, True) + (False,) * 5
        builder = (
            x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(issuer))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(validity[0]).not_valid_after(validity[1])
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_pub), False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(x509.KeyUsage(*ku, False, False), critical=True)
            .add_extension(x509.BasicConstraints(ca=ca is not None, path_length=ca), critical=True)
        )  # fmt: skip
        if sgx is not None:
            builder = builder.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(SGX), sgx), False)
        return builder.sign(issuer_key, hashes.SHA256())

    def sgx_extension(self) -> bytes:
        """DER value of the SGX extension, in the order and types Intel uses."""
        comps = [_pair(f"{SGX}.2.{i + 1}", core.Integer(v).dump()) for i, v in enumerate(self.tcb_components)]
        comps.append(_pair(f"{SGX}.2.17", core.Integer(self.pcesvn).dump()))
        comps.append(_pair(f"{SGX}.2.18", core.OctetString(self.cpusvn).dump()))
        items = [
            _pair(f"{SGX}.1", core.OctetString(self.ppid).dump()),
            _pair(f"{SGX}.2", _seq(*comps)),
            _pair(f"{SGX}.3", core.OctetString(self.pce_id).dump()),
            _pair(f"{SGX}.4", core.OctetString(self.fmspc).dump()),
            _pair(f"{SGX}.5", b"\x0a\x01" + bytes([self.sgx_type])),  # ENUMERATED
        ]
        if self.sgx_type == 1:
            flags = [_pair(f"{SGX}.7.{i}", core.Boolean(False).dump()) for i in (1, 2, 3)]
            items += [
                _pair(f"{SGX}.6", core.OctetString(hashlib.sha256(b"instance").digest()[:16]).dump()),
                _pair(f"{SGX}.7", _seq(*flags)),
            ]
        return _seq(*items)

    @property
    def pins(self) -> dict[str, frozenset[str]]:
        return {"intel-sgx": frozenset({fingerprint(self.root)})}

    def anchors(self) -> TrustAnchors:
        return TrustAnchors(pins=self.pins)

    def foreign(self) -> FakeIntelPki:
        """Same names and shape, other keys: its root is not in `self.pins`."""
        return FakeIntelPki(self.now, **self._knobs)

    def pck_chain_pem(self) -> bytes:
        return b"".join(c.public_bytes(Encoding.PEM) for c in (self.pck, self.pck_ca, self.root))

    def issue(
        self,
        cn: str,
        *,
        issuer: tuple[str, ec.EllipticCurvePrivateKey] | None = None,
        ca: int | None = None,
        sgx: bytes | None = None,
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """A certificate for a new P-256 key with subject CN `cn`, issued by (issuer CN, issuer key), by default the
        root; `ca` is the pathLen of a CA certificate (None: not a CA), `sgx` an SGX extension value."""
        key = ec.generate_private_key(ec.SECP256R1())
        name, issuer_key = issuer or ("Intel SGX Root CA", self.root_key)
        cert = self._cert(cn, key, name, issuer_key, (self.now - 365 * DAY, self.now + 365 * DAY), ca=ca, sgx=sgx)
        return cert, key

    def _crl(
        self,
        issuer: str,
        key: ec.EllipticCurvePrivateKey,
        revoked: Sequence[int],
        this_update: datetime.datetime | None,
        next_update: datetime.datetime | None,
        number: int,
    ) -> bytes:
        builder = (
            x509.CertificateRevocationListBuilder().issuer_name(_name(issuer))
            .last_update(this_update or self.now - DAY).next_update(next_update or self.now + 29 * DAY)
            .add_extension(x509.CRLNumber(number), False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), False)
        )  # fmt: skip
        for serial in revoked:
            entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(self.now - 2 * DAY)
            builder = builder.add_revoked_certificate(entry.build())
        return builder.sign(key, hashes.SHA256()).public_bytes(Encoding.DER)

    def pck_crl(
        self,
        revoked: Sequence[int] = (),
        *,
        this_update: datetime.datetime | None = None,
        next_update: datetime.datetime | None = None,
        signer_key: ec.EllipticCurvePrivateKey | None = None,
        number: int = 1,
    ) -> bytes:
        """DER CRL of the PCK Platform/Processor CA (30-day window like Intel's), cRLNumber `number`."""
        return self._crl(self.ca_name, signer_key or self.pck_ca_key, revoked, this_update, next_update, number)

    def root_ca_crl(
        self,
        revoked: Sequence[int] = (),
        *,
        this_update: datetime.datetime | None = None,
        next_update: datetime.datetime | None = None,
        signer_key: ec.EllipticCurvePrivateKey | None = None,
        number: int = 1,
    ) -> bytes:
        """DER CRL of the Intel SGX Root CA (revokes intermediates and the TCB signing certificate)."""
        return self._crl("Intel SGX Root CA", signer_key or self.root_key, revoked, this_update, next_update, number)

    def td_report(self, body_type: int = BODY_TDX10, **fields: Any) -> TdReport:
        defaults: dict[str, Any] = {
            "tee_tcb_svn": DEFAULT_TEE_TCB_SVN, "mr_seam": _sha384("mrseam"), "mr_signer_seam": bytes(48),
            "seam_attributes": bytes(8), "td_attributes": bytes(8), "xfam": bytes.fromhex("e702060000000000"),
            "mr_td": _sha384("mrtd"), "mr_config_id": bytes(48), "mr_owner": bytes(48),
            "mr_owner_config": bytes(48), "rtmr0": _sha384("rtmr0"), "rtmr1": _sha384("rtmr1"),
            "rtmr2": _sha384("rtmr2"), "rtmr3": bytes(48), "report_data": bytes(64),
        }  # fmt: skip
        if body_type == BODY_TDX15:
            defaults |= {"tee_tcb_svn_2": fields.get("tee_tcb_svn", DEFAULT_TEE_TCB_SVN), "mr_servicetd": bytes(48)}
        return TdReport(**(defaults | fields))

    def qe_report(
        self,
        report_data: bytes,
        *,
        cpusvn: bytes | None = None,
        miscselect: int = 0,
        attributes: bytes = b"\x11" + bytes(15),
        mrenclave: bytes = hashlib.sha256(b"td-qe").digest(),
        mrsigner: bytes = TD_QE_MRSIGNER,
        isvprodid: int = 2,
        isvsvn: int = 4,
    ) -> bytes:
        """SGX REPORT body (384 bytes) of the TD quoting enclave."""
        raw = bytearray(384)
        raw[0:16] = cpusvn if cpusvn is not None else self.cpusvn
        raw[16:20] = struct.pack("<I", miscselect)
        raw[48:64], raw[64:96], raw[128:160] = attributes, mrenclave, mrsigner
        raw[256:260] = struct.pack("<HH", isvprodid, isvsvn)
        raw[320:384] = report_data
        return bytes(raw)

    def quote(self, **overrides: Any) -> bytes:
        """Serialized quote; see the module docstring for the overrides."""
        version = overrides.pop("version", 4)
        body_type = overrides.pop("body_type", BODY_TDX15 if version == 5 else BODY_TDX10)
        att_pub = self.att_key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)[1:]
        att_key = overrides.pop("attestation_key", att_pub)
        auth = overrides.pop("qe_auth_data", bytes(range(32)))
        binding = hashlib.sha256(att_key + auth).digest()
        if overrides.pop("unbound_report_data", False):
            binding = hashlib.sha256(b"unbound" + att_key + auth).digest()
        qe_data = overrides.pop("qe_report_data", binding + bytes(32))
        qe_fields = {k[3:]: overrides.pop(k) for k in list(overrides) if k.startswith("qe_")}
        qe_report = self.qe_report(qe_data, **qe_fields)
        qe_signer = (
            ec.generate_private_key(ec.SECP256R1()) if overrides.pop("bad_qe_report_signature", False) else self.pck_key
        )
        qe_sig = (
            raw_rs(qe_signer.sign(qe_report, ec.ECDSA(hashes.SHA256())))
            if isinstance(qe_signer.curve, ec.SECP256R1)
            else bytes(64)
        )  # a wrong-curve leaf: no P-256 r||s
        signer = ec.generate_private_key(ec.SECP256R1()) if overrides.pop("bad_signature", False) else self.att_key
        chain = overrides.pop("pck_chain_pem", self.pck_chain_pem())
        trailing = overrides.pop("trailing", b"")
        header = QuoteHeader(
            version, ATT_KEY_ECDSA_P256, TEE_TYPE_TDX, 0, 0, INTEL_QE_VENDOR_ID, overrides.pop("user_data", bytes(20))
        )
        quote = Quote(
            header,
            body_type,
            self.td_report(body_type, **overrides),
            bytes(64),
            att_key,
            qe_report,
            qe_sig,
            auth,
            chain,
            b"",
            0,
            trailing,
        )
        signed = parse_quote(serialize_quote(quote)).signed
        signature = raw_rs(signer.sign(signed, ec.ECDSA(hashes.SHA256())))
        return serialize_quote(dataclasses.replace(quote, signature=signature))
