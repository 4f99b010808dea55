"""Hostile but genuinely signed evidence for the whole-pipeline fuzzers: the fake AWS, AMD, Intel and NVIDIA PKIs
(their roots pinned beside the real ones) sign documents, reports and quotes whose fields are drawn by hypothesis,
so everything after the signature checks (claims, binding, `cnf`, reference values, RIMs, tokens, storage) sees
them. None of their measurements is registered and no RIM for a minted GPU report's measurement blocks exists (they
are never the fake GPUs' of composite_support), so a minted piece of evidence never affirms."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import strategies as st

from tests.fakes.amd_pki import FakeAmdPki
from tests.fakes.aws_pki import FakeAwsPki
from tests.fakes.intel_pki import FakeIntelPki
from tests.fakes.nvidia_pki import OMIT, Block, FakeNvidiaPki
from tests.property.fuzz_support import HOSTILE_BYTES, NUL_TEXT, UNICODE_TEXT, nested_json
from verifier.tee.sevsnp.tcb import Product
from verifier.trust.anchors import PINNED_ROOTS, TrustAnchors

# (nonce, runtime data) -> (evidence, collateral files)
Factory = Callable[[bytes | None, bytes | None], tuple[bytes, dict[str, bytes]]]


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(Encoding.PEM) for c in certs)


@dataclass
class Minted:
    tee: str
    when: dt.datetime
    factory: Factory
    note: str


class FakePkis:
    """One fake PKI per TEE (RSA key generation makes the AMD one slow: build it once per module)."""

    def __init__(self) -> None:
        self.aws = FakeAwsPki()
        self.amd = FakeAmdPki(Product.MILAN)
        self.intel = FakeIntelPki()
        self.nvidia = FakeNvidiaPki()
        self.nvidia_files = self.nvidia.collateral()
        self.nvidia_ocsp = self.nvidia.ocsp()
        # Fixed once: ECDSA signatures vary in length, and hypothesis needs the same bytes for the same draws.
        self.intel_files = self.intel.collateral_files()
        self.amd_files = {"vcek.pem": pem(self.amd.vcek), "ask.pem": pem(self.amd.ask), "ark.pem": pem(self.amd.ark)}

    def anchors(self, directory: Any, *more: dict[str, frozenset[str]]) -> TrustAnchors:
        """The real pins and trust-anchor directory plus the four fake roots (and `more` pins)."""
        pins = dict(PINNED_ROOTS)
        for extra in (self.aws.pins, self.amd.pins, self.intel.pins, self.nvidia.pins, *more):
            for vendor, prints in extra.items():
                pins[vendor] = pins.get(vendor, frozenset()) | prints
        return TrustAnchors.from_directory(directory, pins=pins)


def report_data(nonce: bytes | None, runtime: bytes | None) -> bytes:
    """REPORT_DATA under the default "sha512" binding (README "Binding a workload to its challenge")."""
    return hashlib.sha512((nonce or b"") + (runtime or b"")).digest()


# Measurement blocks no RIM approves: a minted GPU report never has the fake GPUs' blocks (FakeNvidiaPki.blocks()).
MINTED_BLOCKS = [Block(i, hashlib.sha384(b"minted block %d" % i).digest()) for i in range(1, 65)]
BLOCKS = st.lists(
    st.builds(
        Block,
        st.integers(0, 255),
        st.binary(max_size=64).filter(lambda v: v not in {b.value for b in FakeNvidiaPki.blocks()}),
        st.integers(0, 255),
        st.sampled_from([1, 1, 1, 0, 2, 255]),
    ),
    min_size=1,
    max_size=70,
)
TLVS = st.lists(st.tuples(st.sampled_from([*range(0, 37), 255, 0xFFFF]), st.binary(max_size=64)), max_size=24)


@st.composite
def _minted_gpu(draw: st.DrawFn, pkis: FakePkis) -> Minted:
    """A GPU report signed by the fake device's leaf with drawn header values, blocks, opaque data (driver and
    VBIOS versions, FWID, raw TLVs) and trailing bytes; bound: the request's nonce is the signed request nonce."""
    nvidia = pkis.nvidia
    o: dict[str, Any] = {"blocks": draw(st.one_of(st.just(MINTED_BLOCKS), BLOCKS, st.just(MINTED_BLOCKS[:1])))}
    for name, values in (
        ("driver_version", st.one_of(st.just("550.90.07"), UNICODE_TEXT, NUL_TEXT)),
        ("vbios", st.binary(min_size=8, max_size=8)),
        ("fwid", st.one_of(st.just(OMIT), st.binary(max_size=100))),
        ("opaque", TLVS.filter(bool)),
        ("trailing", st.binary(min_size=1, max_size=64)),
        ("number_of_blocks", st.integers(0, 255)),
        ("param1", st.integers(0, 255)),
        ("param2", st.integers(0, 255)),
        ("slot", st.integers(0, 255)),
        ("responder_nonce", st.binary(min_size=32, max_size=32)),
        ("request_version", st.sampled_from([0x10, 0x12, 0x11])),
        ("response_code", st.sampled_from([0x61, 0x60])),
    ):
        if draw(st.integers(0, 4)) == 0:
            o[name] = draw(values)
    bound, free = draw(st.booleans()), draw(st.binary(min_size=32, max_size=32))
    files = draw(st.sampled_from([pkis.nvidia_files, {**pkis.nvidia_files, **pkis.nvidia_ocsp}, {}]))

    def gpu(nonce: bytes | None, runtime: bytes | None) -> tuple[bytes, dict[str, bytes]]:
        chosen = nonce.ljust(32, b"\0")[:32] if bound and nonce else free
        return nvidia.mint(nonce=chosen, **o), files

    return Minted("gpu", nvidia.now, gpu, f"minted GPU report {sorted(o)} bound={bound} files={sorted(files)}")


@st.composite
def minted(draw: st.DrawFn, pkis: FakePkis) -> Minted:
    tee = draw(st.sampled_from(["nitro", "snp", "tdx", "gpu"]))
    if tee == "gpu":
        return draw(_minted_gpu(pkis))
    bound = draw(st.booleans())  # bind the request's nonce and runtime data, or draw REPORT_DATA freely
    free_data = draw(st.binary(min_size=64, max_size=64))
    if tee == "nitro":
        fields: dict[str, Any] = {}
        for name in ("public_key", "user_data", "nonce"):
            fields[name] = draw(st.one_of(st.none(), HOSTILE_BYTES.filter(lambda b: 0 < len(b) <= 1024)))
        if draw(st.booleans()):
            fields["module_id"] = draw(st.one_of(NUL_TEXT, UNICODE_TEXT.filter(bool)))
        if draw(st.booleans()):
            fields["pcrs"] = draw(st.dictionaries(st.integers(0, 31), st.binary(min_size=48, max_size=48), max_size=32))

        def nitro(nonce: bytes | None, runtime: bytes | None) -> tuple[bytes, dict[str, bytes]]:
            chosen = dict(fields)
            if bound:
                chosen["nonce"], chosen["public_key"] = nonce, runtime or chosen["public_key"]
            return pkis.aws.mint(**chosen), {}

        return Minted(tee, pkis.aws.now, nitro, f"minted Nitro document {sorted(fields)} bound={bound}")
    if tee == "snp":
        amd = pkis.amd
        overrides: dict[str, Any] = {}
        if draw(st.booleans()):
            overrides["measurement"] = draw(st.binary(min_size=48, max_size=48))
        if draw(st.booleans()):
            overrides["reported_tcb"] = draw(st.binary(min_size=8, max_size=8))
        if draw(st.booleans()):
            overrides["host_data"] = draw(st.binary(min_size=32, max_size=32))
        version = draw(st.sampled_from([2, 3, 5]))
        files = pkis.amd_files

        def snp(nonce: bytes | None, runtime: bytes | None) -> tuple[bytes, dict[str, bytes]]:
            data = report_data(nonce, runtime) if bound else free_data
            return amd.report(version=version, report_data=data, **overrides), files

        return Minted(tee, amd.now, snp, f"minted SNP report v{version} {sorted(overrides)} bound={bound}")
    intel = pkis.intel
    quote_fields: dict[str, Any] = {"version": draw(st.sampled_from([4, 5]))}
    if draw(st.booleans()):
        quote_fields["mr_td"] = draw(st.binary(min_size=48, max_size=48))
    if draw(st.booleans()):
        quote_fields["td_attributes"] = draw(st.binary(min_size=8, max_size=8))
    if draw(st.booleans()):
        quote_fields["trailing"] = draw(st.binary(max_size=64))
    if draw(st.booleans()):
        quote_fields["qe_auth_data"] = draw(st.binary(max_size=64))
    collateral = pkis.intel_files

    def tdx(nonce: bytes | None, runtime: bytes | None) -> tuple[bytes, dict[str, bytes]]:
        data = report_data(nonce, runtime) if bound else free_data
        return intel.quote(report_data=data, **quote_fields), collateral

    return Minted("tdx", intel.now, tdx, f"minted TDX quote {sorted(quote_fields)} bound={bound}")


def cbor_map(pairs: list[tuple[bytes, bytes]]) -> bytes:
    """A CBOR map of (encoded key, encoded value) pairs written one by one, so keys may repeat or be of any type
    (RFC 8949 section 5.6: a map with duplicate keys is not valid; the Nitro parser must refuse it)."""
    n = len(pairs)
    head = bytes([0xA0 | n]) if n < 24 else bytes([0xB8, n])
    return head + b"".join(k + v for k, v in pairs)


def _enc(value: Any) -> bytes:
    return bytes(cbor2.dumps(value))


def targeted_minted(pkis: FakePkis) -> list[tuple[str, Minted, bytes]]:
    """Deterministic hostile-but-signed cases: (label, evidence factory, runtime data); each is appraised with a
    fresh challenge nonce."""
    aws, amd, intel = pkis.aws, pkis.amd, pkis.intel
    cases: list[tuple[str, Minted, bytes]] = []

    def snp(nonce: bytes | None, rd: bytes | None) -> tuple[bytes, dict[str, bytes]]:
        return amd.report(report_data=report_data(nonce, rd)), pkis.amd_files

    def tdx(nonce: bytes | None, rd: bytes | None) -> tuple[bytes, dict[str, bytes]]:
        return intel.quote(report_data=report_data(nonce, rd)), pkis.intel_files

    for label, runtime in (
        ("JWK member nested 2000 deep", nested_json(2000, "jwk")),
        ("object nested 800 deep", nested_json(800, "object")),
        ("array nested 2048 deep", nested_json(2048, "array")),
    ):
        cases.append((f"SNP bound to runtime data: {label}", Minted("snp", amd.now, snp, label), runtime))
        cases.append((f"TDX bound to runtime data: {label}", Minted("tdx", intel.now, tdx, label), runtime))

    def nitro(**fields: Any) -> Minted:
        def make(nonce: bytes | None, rd: bytes | None) -> tuple[bytes, dict[str, bytes]]:
            return aws.mint(nonce=nonce, **fields), {}

        return Minted("nitro", aws.now, make, str(sorted(fields)))

    deep_key = nested_json(490, "jwk")
    cases.append(("Nitro public_key nested 490 deep", nitro(public_key=deep_key), b""))
    cases.append(("Nitro public_key nested 490 deep = runtime data", nitro(public_key=deep_key), deep_key))
    cases.append(("Nitro module_id with NUL", nitro(module_id="i-0fake\x00enc"), b""))
    cases.append(("Nitro module_id unicode", nitro(module_id="\U0001f600\u202e"), b""))
    fields = [(_enc(k), _enc(v)) for k, v in aws.payload(nonce=None).items()]
    pcrs = [(_enc(k), _enc(v)) for k, v in aws.payload()["pcrs"].items()]
    no_pcrs = [(k, v) for k, v in fields if k != _enc("pcrs")]
    zero = _enc(bytes(48))
    nan = b"\xf9\x7e\x00"  # half-precision NaN: never equal to itself

    def with_pcrs(*extra: tuple[bytes, bytes]) -> bytes:
        return cbor_map([*no_pcrs, (_enc("pcrs"), cbor_map([*extra, *pcrs]))])

    for label, payload in (
        ("payload key pcrs twice", cbor_map([*fields, (_enc("pcrs"), _enc(aws.payload()["pcrs"]))])),
        ("payload key module_id twice", cbor_map([*fields, (_enc("module_id"), _enc("other"))])),
        ("payload key a map", cbor_map([*fields, (b"\xa1\x01\x02", _enc(1))])),
        ("payload key bytes b'pcrs'", cbor_map([*fields, (_enc(b"pcrs"), _enc(1))])),
        ("pcrs index 0 twice", with_pcrs((_enc(0), zero))),
        ("pcrs index 0.0 beside 0", with_pcrs((_enc(0.0), zero))),
        ("pcrs index true beside 1", with_pcrs((_enc(True), zero))),
        ("pcrs index an array", with_pcrs((_enc([1, 2]), zero))),
        ("pcrs index NaN twice", with_pcrs((nan, zero), (nan, zero))),
        (
            "pcrs indefinite-length map repeating 0",
            cbor_map([*no_pcrs, (_enc("pcrs"), b"\xbf" + b"".join(k + v for k, v in pcrs) + _enc(0) + zero + b"\xff")]),
        ),
    ):
        cases.append((f"Nitro {label}", _raw_nitro(aws, payload), b""))
    for label, protected in (
        ("alg twice", cbor_map([(_enc(1), _enc(-35)), (_enc(1), _enc(-35))])),
        ("keys 1 and true", cbor_map([(_enc(1), _enc(-35)), (_enc(True), _enc(-35))])),
        ("key a map", cbor_map([(_enc(1), _enc(-35)), (b"\xa1\x01\x02", _enc(1))])),
    ):
        cases.append((f"Nitro protected header {label}", _raw_nitro(aws, _enc(aws.payload()), protected), b""))
    tcb = bytearray(amd.tcb())
    tcb[2] = 1  # a reserved byte of the Milan TCB_VERSION layout

    def snp_reserved(nonce: bytes | None, rd: bytes | None) -> tuple[bytes, dict[str, bytes]]:
        return amd.report(report_data=report_data(nonce, rd), reported_tcb=bytes(tcb)), pkis.amd_files

    def snp_reserved_bare(nonce: bytes | None, rd: bytes | None) -> tuple[bytes, dict[str, bytes]]:
        return snp_reserved(nonce, rd)[0], {}

    cases += _targeted_gpus(pkis)
    cases.append(("SNP REPORTED_TCB reserved byte set", Minted("snp", amd.now, snp_reserved, "tcb"), b""))
    cases.append(
        ("SNP REPORTED_TCB reserved byte set, no collateral", Minted("snp", amd.now, snp_reserved_bare, "tcb"), b"")
    )
    return cases


def _raw_nitro(aws: FakeAwsPki, payload: bytes, protected: bytes | None = None) -> Minted:
    """A document whose payload (and protected header) bytes are given raw, signed by the fake leaf."""

    def make(nonce: bytes | None, rd: bytes | None) -> tuple[bytes, dict[str, bytes]]:
        if protected is None:
            return aws.mint(payload=payload), {}
        return aws.mint(payload=payload, protected_raw=protected), {}

    return Minted("nitro", aws.now, make, "raw payload")


def _targeted_gpus(pkis: FakePkis) -> list[tuple[str, Minted, bytes]]:
    """GPU reports bound to the challenge, each with one hostile opaque field, block list or trailing byte."""
    nvidia = pkis.nvidia
    fields = nvidia.opaque_fields()
    cases: list[tuple[str, Minted, bytes]] = []
    for label, overrides in (
        ("driver version with NUL", {"driver_version": "550.90\x0007"}),
        ("driver version unicode", {"driver_version": "\U0001f600\u202e550"}),
        ("driver version twice", {"opaque": [*fields, (3, b"1.0\0")]}),
        ("unknown opaque type", {"opaque": [*fields, (40, b"x")]}),
        ("opaque type 255", {"opaque": [*fields, (255, b"")]}),
        ("FWID not the leaf's", {"fwid": b"\x01" * 48}),
        ("FWID absent", {"fwid": OMIT}),
        ("FWID of 47 bytes", {"fwid": b"\x01" * 47}),
        ("254 blocks", {"blocks": [Block(i, bytes(48)) for i in range(1, 255)]}),
        ("block index 0xFF", {"blocks": [*MINTED_BLOCKS[:-1], Block(255, bytes(48))]}),
        ("block index twice", {"blocks": [*MINTED_BLOCKS, MINTED_BLOCKS[0]]}),
        ("trailing zero byte", {"trailing": b"\x00"}),
    ):
        chosen = {"blocks": MINTED_BLOCKS, **overrides}

        def make(nonce: bytes | None, rd: bytes | None, o: dict[str, Any] = chosen) -> tuple[bytes, dict[str, bytes]]:
            return nvidia.mint(nonce=(nonce or bytes(32)).ljust(32, b"\0")[:32], **o), pkis.nvidia_files

        cases.append((f"GPU {label}", Minted("gpu", nvidia.now, make, label), b""))
    return cases
