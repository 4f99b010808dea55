"""A fake NVIDIA RIM PKI that mints signed RIMs (SWID tags) for tests.

Structure mirrors NVIDIA's (../shared/vectors README "RIM signature"; the 2023 sample's RIMs): a self-signed P-384
root "NVIDIA CoRIM signing Root CA" whose keyUsage is keyCertSign + cRLSign only (as NVIDIA's, which cryptography's
strict policy refuses), a product CA "NVIDIA Reference Value GH100 CA", an L3 CA "NVIDIA Reference Value L3 GH100
001" (pathLen 0) and a signer "HCC RIM L4 Signer" valid two years, all ECDSA P-384 / SHA-384. RIMs are built as the
real ones are laid out (SWID 2015 namespace as default and ns0, ns2 = the SHA-384 namespace, Meta with TCG
attributes, 64 Measurement Resources) and signed with signxml's XMLSigner, independently of the verifier code:
enveloped, C14N 1.1, digest SHA-384, ecdsa-sha384; KeyInfo lists signer, L3, product CA and root.

Usage::

    pki = FakeRimPki()                                      # fresh keys; pki.now is a fixed UTC instant
    xml = pki.mint(version="545.00", active={7: [b"\\x07" * 48], 23: [b"\\x01" * 48, b"\\x02" * 48]})
    verify_rim(xml, at=pki.now, anchors=pki.anchors())

`mint` knobs: version (colloquialVersion), active (index -> alternatives; every other index 0..entries-1 is
inactive with a zero hash of `size` bytes), entries (count, 64), size (the size attribute, 48), include_root (the
root's copy in KeyInfo), mutate (called with the root element before signing: validly signed malformed RIMs),
sign=False (no signature). `rim_document` builds the unsigned tree, `pki.sign(root)` signs any tree. Constructor
knobs: now, leaf_validity ((not_before, not_after)). `pki.foreign()` has identical names and other keys.
Post-signing mutations: `tamper_hash`, `wrap_payload`.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Callable, Mapping, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml import CanonicalizationMethod, DigestAlgorithm, SignatureMethod, XMLSigner

from verifier.trust.anchors import TrustAnchors

UTC = datetime.UTC
DEFAULT_NOW = datetime.datetime(2025, 3, 1, tzinfo=UTC)
SWID = "http://standards.iso.org/iso/19770/-2/2015/schema.xsd"
SHA384_NS = "http://www.w3.org/2001/04/xmlenc#sha384"
TCG = "https://trustedcomputinggroup.org/resource/tcg-reference-integrity-manifest-rim-information-model/"
DS = "http://www.w3.org/2000/09/xmldsig#"
ZERO = b"\x00" * 48


def _name(cn: str, *, org: str = "NVIDIA Corporation", locality: bool = False) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]
    if locality:
        attributes += [
            x509.NameAttribute(NameOID.LOCALITY_NAME, "Santa Clara"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "CA"),
        ]
    return x509.Name([*attributes, x509.NameAttribute(NameOID.COUNTRY_NAME, "US")])


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _cert(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    validity: tuple[datetime.datetime, datetime.datetime],
    *,
    ca: bool,
    path_length: int | None = None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity[0])
        .not_valid_after(validity[1])
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True)
        .add_extension(_key_usage(ca=ca), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return builder.sign(issuer_key, hashes.SHA384())


def _hash_attributes(alternatives: Sequence[bytes]) -> str:
    return " ".join(f'ns2:Hash{i}="{value.hex()}"' for i, value in enumerate(alternatives))


def rim_document(
    *,
    version: str,
    active: Mapping[int, Sequence[bytes]],
    entries: int = 64,
    size: int = 48,
    tag_id: str = "f0d3a263ab9ef4b93c8fc9727493b61a",
) -> etree._Element:
    """The unsigned RIM tree, laid out like NVIDIA's."""
    resources = []
    for index in range(entries):
        values = active.get(index)
        alternatives = list(values) if values is not None else [bytes(size)]
        resources.append(
            f'        <ns0:Resource type="Measurement" index="{index}" active="{values is not None}" '
            f'alternatives="{len(alternatives)}" {_hash_attributes(alternatives)} name="Measurement_{index}" '
            f'size="{size}"/>'
        )
    body = "\n".join(resources)
    xml = (
        f'<SoftwareIdentity xmlns="{SWID}" xmlns:ns0="{SWID}" xmlns:ns2="{SHA384_NS}" corpus="false" name="GH100" '
        f'patch="false" supplemental="false" tagId="{tag_id}" version="1.0" tagVersion="0">\n'
        '    <ns0:Entity name="NVIDIA Corporation" role="softwareCreator tagCreator"/>\n'
        f'    <ns0:Meta xmlns:ns1="{TCG}" colloquialVersion="{version}" edition="GPU" product="GH100" revision="r1" '
        'PayloadType="direct" ns1:BindingSpec="RIMIM" ns1:BindingSpecVersion="1.01" '
        'ns1:PlatformManufacturerStr="NVIDIA Corporation" ns1:PlatformModel="GH100"/>\n'
        f'    <ns0:Payload xmlns:SHA384="{SHA384_NS}">\n{body}\n    </ns0:Payload>\n'
        "</SoftwareIdentity>"
    )
    return etree.fromstring(xml.encode())


class FakeRimPki:
    """Root, product CA, L3 CA and signer with fresh P-384 keys; `mint` signs RIMs with the signer."""

    def __init__(
        self,
        *,
        now: datetime.datetime = DEFAULT_NOW,
        leaf_validity: tuple[datetime.datetime, datetime.datetime] | None = None,
    ) -> None:
        self.now = now
        year = datetime.timedelta(days=365)
        keys = [ec.generate_private_key(ec.SECP384R1()) for _ in range(4)]
        self.root_key, self.product_key, self.l3_key, self.leaf_key = keys
        root_name = _name("NVIDIA CoRIM signing Root CA", org="NVIDIA")
        product_name = _name("NVIDIA Reference Value GH100 CA")
        l3_name = _name("NVIDIA Reference Value L3 GH100 001")
        long = (now - 2 * year, now + 28 * year)
        self.root = _cert(root_name, self.root_key, root_name, self.root_key, long, ca=True)
        self.product_ca = _cert(product_name, self.product_key, root_name, self.root_key, long, ca=True)
        self.l3_ca = _cert(l3_name, self.l3_key, product_name, self.product_key, long, ca=True, path_length=0)
        validity = leaf_validity or (now - year, now + year)
        leaf_name = _name("HCC RIM L4 Signer", locality=True)
        self.leaf = _cert(leaf_name, self.leaf_key, l3_name, self.l3_key, validity, ca=False)

    @property
    def root_fingerprint(self) -> str:
        return hashlib.sha256(self.root.public_bytes(Encoding.DER)).hexdigest()

    @property
    def pins(self) -> dict[str, frozenset[str]]:
        return {"nvidia-rim": frozenset({self.root_fingerprint})}

    def anchors(self) -> TrustAnchors:
        """Anchors pinning (and holding) this PKI's root."""
        return TrustAnchors(pins=self.pins, certificates=[self.root])

    def foreign(self) -> FakeRimPki:
        """A PKI with the same names and other keys (its RIMs chain to a root `self.pins` does not pin)."""
        return FakeRimPki(now=self.now)

    def sign(self, root: etree._Element, *, include_root: bool = True) -> bytes:
        """`root` signed as NVIDIA signs RIMs; the serialized document."""
        signer = XMLSigner(
            signature_algorithm=SignatureMethod.ECDSA_SHA384,
            digest_algorithm=DigestAlgorithm.SHA384,
            c14n_algorithm=CanonicalizationMethod.CANONICAL_XML_1_1,
        )
        chain = [self.leaf, self.l3_ca, self.product_ca] + ([self.root] if include_root else [])
        pems = [c.public_bytes(Encoding.PEM).decode() for c in chain]
        signed = signer.sign(root, key=self.leaf_key, cert=pems)
        return etree.tostring(signed)

    def mint(
        self,
        *,
        version: str = "545.00",
        active: Mapping[int, Sequence[bytes]] | None = None,
        entries: int = 64,
        size: int = 48,
        include_root: bool = True,
        mutate: Callable[[etree._Element], None] | None = None,
        sign: bool = True,
    ) -> bytes:
        """A signed RIM (module docstring)."""
        root = rim_document(version=version, active=active if active is not None else {7: [b"\x07" * 48]},
                             entries=entries, size=size)  # fmt: skip
        if mutate is not None:
            mutate(root)
        return self.sign(root, include_root=include_root) if sign else etree.tostring(root)


def tamper_hash(xml: bytes, index: int, alternative: int = 0) -> bytes:
    """`xml` with one byte of Measurement `index`'s Hash`alternative` changed (after signing)."""
    root = etree.fromstring(xml)
    for resource in root.iter(f"{{{SWID}}}Resource"):
        if resource.get("index") == str(index):
            name = f"{{{SHA384_NS}}}Hash{alternative}"
            value = bytearray(bytes.fromhex(resource.get(name)))
            value[0] ^= 0x01
            resource.set(name, value.hex())
            return etree.tostring(root)
    raise KeyError(index)


def wrap_payload(xml: bytes, active: Mapping[int, Sequence[bytes]]) -> bytes:
    """Signature wrapping: a second Meta / Payload with `active` golden values hidden in a ds:Object inside the
    signature (the enveloped-signature transform removes the whole signature, so the digest still matches)."""
    root = etree.fromstring(xml)
    signature = root.find(f"{{{DS}}}Signature")
    assert signature is not None
    wrapper = etree.SubElement(signature, f"{{{DS}}}Object")
    fake = rim_document(version="999.99", active=active)
    for child in fake:
        wrapper.append(child)
    return etree.tostring(root)
