"""A fake AMD SEV-SNP PKI (ARK -> ASK -> VCEK, ARK -> ASVK -> VLEK) that mints signed attestation reports.

Shaped like AMD KDS (pub. 57230): AMD subject names (CN ARK-<product>, SEV-<product>, SEV-VLEK-<product>,
SEV-VCEK, SEV-VLEK), RSA CAs signing with RSASSA-PSS SHA-384 / MGF1-SHA-384 / salt 48, P-384 VCEK/VLEK without
keyUsage or basicConstraints, KDS extensions (productName IA5String, SPLs as DER INTEGERs, hwID raw; the VLEK has
no hwID) and serial number 0 on the VCEK and VLEK: `cryptography` refuses to build serial 0, so those two are
re-encoded with asn1crypto and re-signed. The RSA keys are 2048-bit (AMD uses 4096) to keep tests fast; build one
PKI per product per test module, RSA key generation is the slow part.

Usage::

    pki = FakeAmdPki(Product.MILAN)                     # pki.now is a fixed UTC instant
    report = parse_report(pki.report(report_data=b"\\x01" * 64))
    verify_report(report, pki.certificates("vcek"), TrustAnchors(pins=pki.pins), pki.now)
    crl = pki.crl(revoked=[pki.ask.serial_number])       # DER, signed by the ARK (number=N: cRLNumber)

`report(**overrides)`: `signer` ("vcek" default or "vlek": picks the key and SIGNING_KEY), `signer_key` (another
EC private key to sign with), `signature` (144 raw bytes: R then S, little-endian, 72 each), and any
AttestationReport field (version 2/3/5, reported_tcb, chip_id, mask_chip_key, signing_key...). Defaults:
version 3, CPUID of the product for v3+, REPORTED_TCB/CURRENT_TCB/COMMITTED_TCB/LAUNCH_TCB from the certificate
SPLs, CHIP_ID = VCEK hwID (Turin: 8 bytes then zeros; VLEK reports: zeros).

Constructor knobs for broken PKIs: `spl` (dict bl/tee/snp/ucode/fmc for the VCEK/VLEK), `hwid`, `product_name`
(the productName extension, None to leave it out), `vcek_validity` / `vlek_validity` ((not_before, not_after)),
`ask_signer_key` (an RSA key that signs the ASK instead of the ARK key), `vlek_under_ask` (the VLEK is issued
by the ASK). `pki.foreign()` has the same names and shape with other keys, so its ARK is not in `pki.pins`.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
from collections.abc import Sequence
from typing import Any

from asn1crypto import core
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from verifier.tee.sevsnp.abi import (
    SIGNATURE_ALGO_ECDSA_P384_SHA384,
    SIGNING_KEY_VCEK,
    SIGNING_KEY_VLEK,
    AttestationReport,
    serialize_report,
)
from verifier.tee.sevsnp.certs import SnpCertificates
from verifier.tee.sevsnp.tcb import Product, encode_tcb
from verifier.trust.anchors import TrustAnchors

UTC = datetime.UTC
DAY = datetime.timedelta(days=1)
DEFAULT_NOW = datetime.datetime(2025, 6, 1, tzinfo=UTC)
PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)
KDS = "1.3.6.1.4.1.3704.1"
PRODUCT_NAMES = {Product.MILAN: "Milan-B0", Product.GENOA: "Genoa", Product.TURIN: "Turin"}
CPUID = {Product.MILAN: (0x19, 0x01, 0x01), Product.GENOA: (0x19, 0x11, 0x01), Product.TURIN: (0x1A, 0x02, 0x00)}
DEFAULT_SPL = {"bl": 4, "tee": 0, "snp": 24, "ucode": 219, "fmc": 1}  # ucode 219 encodes as 02 02 00 db


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Advanced Micro Devices"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "CA"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "Santa Clara"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Engineering"),
        ]
    )


def _ca_ku() -> x509.KeyUsage:
    return x509.KeyUsage(False, False, False, False, False, True, True, False, False)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def _serial_zero(cert: x509.Certificate, issuer_key: rsa.RSAPrivateKey) -> x509.Certificate:
    """Re-encode `cert` with serial number 0 (as AMD does) and re-sign its TBS with RSASSA-PSS."""
    parsed = asn1_x509.Certificate.load(_der(cert))
    tbs = parsed["tbs_certificate"]
    tbs["serial_number"] = 0
    tbs_der = tbs.dump(force=True)
    parsed["signature_value"] = issuer_key.sign(tbs_der, PSS, hashes.SHA384())
    return x509.load_der_x509_certificate(parsed.dump(force=True))


class FakeAmdPki:
    def __init__(
        self,
        product: Product = Product.MILAN,
        now: datetime.datetime = DEFAULT_NOW,
        *,
        spl: dict[str, int] | None = None,
        hwid: bytes | None = None,
        product_name: str | None = "",
        vcek_validity: tuple[datetime.datetime, datetime.datetime] | None = None,
        vlek_validity: tuple[datetime.datetime, datetime.datetime] | None = None,
        ask_signer_key: rsa.RSAPrivateKey | None = None,
        vlek_under_ask: bool = False,
    ) -> None:
        self.product = product
        self.now = now
        self.spl = {**DEFAULT_SPL, **(spl or {})}
        if product is not Product.TURIN:
            self.spl["fmc"] = 0
        size = 8 if product is Product.TURIN else 64
        self.hwid = hwid if hwid is not None else hashlib.sha512(b"chip-" + product.value.encode()).digest()[:size]
        self.product_name = PRODUCT_NAMES[product] if product_name == "" else product_name
        self.vlek_product_name = product.value if product_name == "" else product_name  # real VLEKs: "Milan"
        self._knobs: dict[str, Any] = {
            "spl": spl, "hwid": hwid, "product_name": product_name, "vcek_validity": vcek_validity,
            "vlek_validity": vlek_validity, "ask_signer_key": ask_signer_key, "vlek_under_ask": vlek_under_ask,
        }  # fmt: skip
        self.ark_key, self.ask_key, self.asvk_key = (rsa.generate_private_key(65537, 2048) for _ in range(3))
        self.vcek_key = ec.generate_private_key(ec.SECP384R1())
        self.vlek_key = ec.generate_private_key(ec.SECP384R1())
        p = product.value
        self.ark = self._ca(f"ARK-{p}", self.ark_key, f"ARK-{p}", self.ark_key, None)
        self.ask = self._ca(f"SEV-{p}", self.ask_key, f"ARK-{p}", ask_signer_key or self.ark_key, 0)
        self.asvk = self._ca(f"SEV-VLEK-{p}", self.asvk_key, f"ARK-{p}", self.ark_key, 0)
        self.vcek = self._signer(
            "SEV-VCEK",
            self.vcek_key,
            f"SEV-{p}",
            self.ask_key,
            vcek_validity or (now - DAY, now + 7 * 365 * DAY),
            hwid=self.hwid,
        )
        vlek_issuer = (f"SEV-{p}", self.ask_key) if vlek_under_ask else (f"SEV-VLEK-{p}", self.asvk_key)
        self.vlek = self._signer(
            "SEV-VLEK", self.vlek_key, *vlek_issuer, vlek_validity or (now - DAY, now + 365 * DAY), hwid=None
        )

    def _ca(
        self, cn: str, key: rsa.RSAPrivateKey, issuer: str, issuer_key: rsa.RSAPrivateKey, path_length: int | None
    ) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(_name(issuer))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - 365 * DAY)
            .not_valid_after(self.now + 25 * 365 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(_ca_ku(), critical=True)
            .sign(issuer_key, hashes.SHA384(), rsa_padding=PSS)
        )

    def _signer(
        self,
        cn: str,
        key: ec.EllipticCurvePrivateKey,
        issuer: str,
        issuer_key: rsa.RSAPrivateKey,
        validity: tuple[datetime.datetime, datetime.datetime],
        *,
        hwid: bytes | None,
    ) -> x509.Certificate:
        turin = self.product is Product.TURIN
        exts: list[tuple[str, bytes]] = [(f"{KDS}.1", core.Integer(1 if turin else 0).dump())]
        name = self.product_name if cn == "SEV-VCEK" else self.vlek_product_name
        if name is not None:
            exts.append((f"{KDS}.2", core.IA5String(name).dump()))
        spl_oids = {"bl": "3.1", "tee": "3.2", "snp": "3.3", "ucode": "3.8"} | ({"fmc": "3.9"} if turin else {})
        exts += [(f"{KDS}.{oid}", core.Integer(self.spl[name]).dump()) for name, oid in spl_oids.items()]
        exts += [(f"{KDS}.3.{n}", core.Integer(0).dump()) for n in (4, 5, 6, 7) if not (turin and n == 4)]
        if hwid is not None:
            exts.append((f"{KDS}.4", hwid))
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(_name(issuer))
            .public_key(key.public_key())
            .serial_number(1)
            .not_valid_before(validity[0])
            .not_valid_after(validity[1])
        )
        for oid, value in exts:
            builder = builder.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), False)
        return _serial_zero(builder.sign(issuer_key, hashes.SHA384(), rsa_padding=PSS), issuer_key)

    @property
    def pins(self) -> dict[str, frozenset[str]]:
        return {"amd-ark": frozenset({hashlib.sha256(_der(self.ark)).hexdigest()})}

    def anchors(self) -> TrustAnchors:
        return TrustAnchors(pins=self.pins)

    def foreign(self) -> FakeAmdPki:
        """Same names and shape, different keys: its ARK is not in `self.pins`."""
        return FakeAmdPki(self.product, self.now, **self._knobs)

    def certificates(self, kind: str = "vcek") -> SnpCertificates:
        if kind == "vcek":
            return SnpCertificates(ark=self.ark, ask=self.ask, vcek=self.vcek)
        if kind == "vlek":
            return SnpCertificates(ark=self.ark, asvk=self.asvk, vlek=self.vlek)
        raise ValueError(kind)

    def tcb(self) -> bytes:
        s = self.spl
        return encode_tcb(
            self.product, bootloader=s["bl"], tee=s["tee"], snp=s["snp"], microcode=s["ucode"], fmc=s["fmc"]
        )

    def report_fields(self, signer: str = "vcek", version: int = 3) -> dict[str, Any]:
        tcb = self.tcb()
        chip = self.hwid.ljust(64, b"\0") if signer == "vcek" else bytes(64)
        fam, mod, step = CPUID[self.product] if version >= 3 else (None, None, None)
        return {
            "version": version, "guest_svn": 1, "policy": 0x30000, "family_id": bytes(16), "image_id": bytes(16),
            "vmpl": 0, "signature_algo": SIGNATURE_ALGO_ECDSA_P384_SHA384, "current_tcb": tcb,
            "platform_info": 1, "author_key_en": False, "mask_chip_key": False,
            "signing_key": SIGNING_KEY_VCEK if signer == "vcek" else SIGNING_KEY_VLEK,
            "report_data": bytes(64), "measurement": hashlib.sha384(b"measurement").digest(),
            "host_data": bytes(32), "id_key_digest": bytes(48), "author_key_digest": bytes(48),
            "report_id": hashlib.sha256(b"report-id").digest(), "report_id_ma": b"\xff" * 32,
            "reported_tcb": tcb, "cpuid_fam_id": fam, "cpuid_mod_id": mod, "cpuid_step": step, "chip_id": chip,
            "committed_tcb": tcb, "current_build": 3, "current_minor": 55, "current_major": 1,
            "committed_build": 3, "committed_minor": 55, "committed_major": 1, "launch_tcb": tcb,
            "launch_mit_vector": 0 if version >= 5 else None, "current_mit_vector": 0 if version >= 5 else None,
            "signature_r": bytes(72), "signature_s": bytes(72),
        }  # fmt: skip

    def report(self, **overrides: Any) -> bytes:
        """Serialized 0x4A0-byte report signed by the VCEK (or VLEK); see the module docstring."""
        signer = overrides.pop("signer", "vcek")
        key = overrides.pop("signer_key", self.vcek_key if signer == "vcek" else self.vlek_key)
        signature = overrides.pop("signature", None)
        version = overrides.get("version", 3)
        report = AttestationReport(**{**self.report_fields(signer, version), **overrides})
        if signature is None:
            body = serialize_report(report)[:0x2A0]
            r, s = decode_dss_signature(key.sign(body, ec.ECDSA(hashes.SHA384())))
            signature = r.to_bytes(72, "little") + s.to_bytes(72, "little")
        report = dataclasses.replace(report, signature_r=signature[:72], signature_s=signature[72:144])
        return serialize_report(report)

    def crl(
        self,
        revoked: Sequence[int] = (),
        *,
        this_update: datetime.datetime | None = None,
        next_update: datetime.datetime | None = None,
        signer_key: rsa.RSAPrivateKey | None = None,
        issuer_cn: str | None = None,
        number: int | None = None,
    ) -> bytes:
        """DER CRL issued by the ARK (RSASSA-PSS SHA-384) listing `revoked` serials (0 allowed, as for VCEKs);
        `number` adds the cRLNumber extension (RFC 5280 section 5.2.3)."""
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(_name(issuer_cn or f"ARK-{self.product.value}"))
            .last_update(this_update or self.now - DAY)
            .next_update(next_update or self.now + 7 * DAY)
        )
        if number is not None:
            builder = builder.add_extension(x509.CRLNumber(number), critical=False)
        placeholder = {serial or 1 << 100: serial for serial in revoked}
        for serial in placeholder:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(self.now - 2 * DAY).build()
            )
        key = signer_key or self.ark_key
        crl = builder.sign(key, hashes.SHA384(), rsa_padding=PSS)
        if 0 not in revoked:
            return crl.public_bytes(Encoding.DER)
        parsed = asn1_crl.CertificateList.load(crl.public_bytes(Encoding.DER))
        for entry in parsed["tbs_cert_list"]["revoked_certificates"]:
            entry["user_certificate"] = placeholder[entry["user_certificate"].native]
        tbs_der = parsed["tbs_cert_list"].dump(force=True)
        parsed["signature"] = key.sign(tbs_der, PSS, hashes.SHA384())
        return bytes(parsed.dump(force=True))
