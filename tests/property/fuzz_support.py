"""Shared pieces of the whole-pipeline fuzzers (`test_service_fuzz.py` in-process, `test_grpc_fuzz.py` over a real
gRPC server): the real vectors with the reference values that make them affirm, an independent definition of the
bytes each TEE signs, mutation strategies and hostile text.

Signed bytes, per TEE (what a mutation must change for "never affirming" to be required):

- SEV-SNP: REPORT bytes 0x000-0x29F (the ECDSA P-384 message, ABI spec pub. 56860, ATTESTATION_REPORT) and the
  signature R and S, each 72 bytes little-endian at 0x2A0 and 0x2E8 (their zero extension included: a non-zero high
  byte makes R or S >= 2^384 > n, an invalid signature). Bytes 0x330-0x49F are reserved inside the signature block:
  not signed (the parser rejects non-zero ones, but that is not what this property is about), and bytes past 0x4A0
  are not signed either.
- Nitro: the COSE_Sign1 protected header, payload and signature byte strings (RFC 9052 Sig_structure); the
  unprotected header, the CBOR tag and bytes after the array are not signed. Compared after decoding with cbor2, so
  a different encoding of the same three byte strings counts as unchanged.
- TDX: the quote up to the end of its signature data (header, v5 body descriptor, TD report, quote signature,
  attestation key, QE report, its signature, QE authentication data and the certification data framing), with
  the PCK chain compared as its DER certificates (PEM text around or inside the base64 that decodes to the same
  certificates is not a change). Bytes after the signature data are not signed.
- NVIDIA GPU: the SPDM GET_MEASUREMENTS request and the MEASUREMENTS response up to its signature, and the signature
  (`gpu_support`, located from the length fields); bytes after the signature are not signed. Its RIMs (collateral)
  mean their signed canonical XML (`gpu_support.rim_content`).
"""

from __future__ import annotations

import datetime as dt
import json
import struct
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import settings
from hypothesis import strategies as st

from tests.conftest import _vectors_dir
from tests.property.gpu_support import gpu_focus, gpu_signed, rim_content, targeted_gpu
from tests.property.profiles import examples
from verifier.clock import parse_rfc3339

TEES = ("snp", "tdx", "nitro", "gpu")
# Registered before the earliest vector's verify_at, so every reference value is active at each vector's time.
REGISTERED_AT = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)

# The fuzzed servers' default policy: the built-in default with `gpu.ocsp` best-effort. They run offline and the real
# GPU vectors ship no OCSP responses, so under "require" (the default) no GPU report would ever affirm. A request's
# own policy may only tighten it (workload_policies.py), so it must be the server's default.
GPU_POLICY = "gpu-best-effort"

SNP_SIGNED_END = 0x2A0 + 2 * 72  # message 0x000-0x29F, then R and S (72 bytes each)
TDX_HEADER, TDX_BODY10 = 48, 584
# A PCK chain is the PCK leaf, the PCK Platform or Processor CA, then the Intel SGX Root CA (Intel PCK spec).
PCK_ISSUED = 2


@dataclass(frozen=True)
class Vector:
    id: str
    tee: str
    verify_at: dt.datetime
    evidence: bytes
    collateral: dict[str, bytes] = field(hash=False)
    facts: dict[str, Any] = field(hash=False)

    def reference_values(self) -> list[tuple[str, bytes]]:
        """The genuine measurements the default policy requires (MANIFEST `facts`); none for a GPU, whose reference
        values are its RIMs (collateral)."""
        if self.tee == "snp" and "measurement" in self.facts:
            return [("snp.measurement", bytes.fromhex(self.facts["measurement"]))]
        if self.tee == "tdx" and "mr_td" in self.facts:
            return [("tdx.mr_td", bytes.fromhex(self.facts["mr_td"]))]
        if self.tee == "nitro" and "pcrs" in self.facts:
            return [(f"nitro.pcr{i}", bytes.fromhex(self.facts["pcrs"][str(i)])) for i in (0, 1, 2)]
        return []


def load_vectors() -> list[Vector]:
    """Every SNP, TDX, Nitro and GPU vector of MANIFEST.json (empty when the vectors are missing and not required)."""
    root = _vectors_dir()
    if root is None:
        return []
    manifest = json.loads((root / "MANIFEST.json").read_text())
    found = []
    for entry in manifest["vectors"]:
        if entry["tee"] not in TEES:
            continue
        folder = Path(root, entry["dir"])
        files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
        evidence = files.pop("evidence.bin")
        found.append(
            Vector(
                entry["id"], entry["tee"], parse_rfc3339(entry["verify_at"]), evidence, files, entry.get("facts", {})
            )
        )
    return found


def policy_file(directory: Path) -> Path:
    """A policy file in `directory` defining GPU_POLICY."""
    path = directory / "policies.json"
    path.write_text(json.dumps({"policies": [{"id": GPU_POLICY, "gpu": {"ocsp": "best-effort"}}]}))
    return path


# --- signed content ---------------------------------------------------------------------------------------------


def signed_content(tee: str, evidence: bytes) -> object:
    """What the TEE's signature covers, in a comparable form; None when the structure cannot even be located."""
    if tee == "snp":
        return evidence[:SNP_SIGNED_END] if len(evidence) >= SNP_SIGNED_END else None
    if tee == "nitro":
        return _nitro_signed(evidence)
    if tee == "tdx":
        return _tdx_signed(evidence)
    if tee == "gpu":
        return gpu_signed(evidence)
    raise ValueError(tee)


def _nitro_signed(evidence: bytes) -> object:
    try:
        item = cbor2.loads(evidence)
    except Exception:
        return None
    if isinstance(item, cbor2.CBORTag):
        item = item.value
    if not isinstance(item, list) or len(item) != 4:
        return None
    protected, _, payload, signature = item
    if not all(isinstance(x, bytes) for x in (protected, payload, signature)):
        return None
    return protected, payload, signature


def _u16(data: bytes, pos: int) -> int:
    return int(struct.unpack_from("<H", data, pos)[0])


def _u32(data: bytes, pos: int) -> int:
    return int(struct.unpack_from("<I", data, pos)[0])


@dataclass(frozen=True)
class TdxLayout:
    """Offsets in a quote (quote.py layout): the u32 signature-data length at `sig_length`, the certification
    data (type 6) at `cert`, the PCK chain (type 5) in `pem_start:pem_end` with its u32 length at `pem_start - 4`,
    the signature data ending at `sig_end`."""

    sig_length: int
    sig_end: int
    cert: int
    pem_start: int
    pem_end: int


def tdx_layout(quote: bytes) -> TdxLayout | None:
    """None when the quote is not a v4/v5 quote with QE report certification data wrapping a PCK chain."""
    try:
        version = _u16(quote, 0)
        if version not in (4, 5):
            return None
        pos = TDX_HEADER + TDX_BODY10 if version == 4 else TDX_HEADER + 6 + _u32(quote, TDX_HEADER + 2)
        sig_end = pos + 4 + _u32(quote, pos)
        cert = pos + 4 + 128  # quote signature (64) and attestation key (64)
        if sig_end > len(quote) or _u16(quote, cert) != 6:
            return None
        auth_end = cert + 6 + 384 + 64 + 2 + _u16(quote, cert + 6 + 448)
        pem_start = auth_end + 6
        pem_end = pem_start + _u32(quote, auth_end + 2)
        if _u16(quote, auth_end) != 5 or pem_end > sig_end or pem_end > cert + 6 + _u32(quote, cert + 2):
            return None
    except struct.error:
        return None
    return TdxLayout(pos, sig_end, cert, pem_start, pem_end)


def _tdx_signed(quote: bytes) -> object:
    """Header | [v5 descriptor] | body | u32 length | signature data, with the PCK chain as DER."""
    layout = tdx_layout(quote)
    if layout is None:
        if len(quote) < 2 or _u16(quote, 0) not in (4, 5):
            return quote  # not a quote this verifier reads: every byte counts
        try:
            pos = TDX_HEADER + TDX_BODY10 if _u16(quote, 0) == 4 else TDX_HEADER + 6 + _u32(quote, TDX_HEADER + 2)
            sig_end = pos + 4 + _u32(quote, pos)
        except struct.error:
            return None
        return quote[:sig_end] if sig_end <= len(quote) else None
    at = layout  # the three enclosing lengths are framing: what they delimit is compared, not their values
    framed = quote[: at.sig_length] + quote[at.sig_length + 4 : at.cert + 2] + quote[at.cert + 6 : at.pem_start - 4]
    return framed, pem_ders(quote[at.pem_start : at.pem_end], PCK_ISSUED), quote[at.pem_end : at.sig_end]


def pem_ders(data: bytes, keep: int | None = None) -> object:
    """The first `keep` DER certificates of a PEM bundle (all when None), or the raw bytes when cryptography
    cannot read it. What follows the leaf and intermediates is the root, which travels with evidence only as a
    hint: the verifier trusts its pinned copy (ARCHITECTURE.md "Seams"), so a changed or extra certificate there
    is not a change of anything signed."""
    try:
        certs = x509.load_pem_x509_certificates(data)
    except Exception:
        return data
    return tuple(c.public_bytes(Encoding.DER) for c in certs)[:keep]


def _issued(data: bytes) -> int | None:
    """How many certificates of a genuine PEM bundle come before its (self-issued) root."""
    try:
        certs = x509.load_pem_x509_certificates(data)
    except Exception:
        return None
    return next((i for i, c in enumerate(certs) if c.issuer == c.subject), len(certs))


def collateral_content(name: str, data: bytes, genuine: bytes) -> object:
    """A collateral file's meaning, compared with the `genuine` file it replaces: certificates as DER (a PEM
    bundle without the root that follows its leaf and intermediates), CRLs as DER, JSON as its ordered pairs, an
    NVIDIA RIM as its signed content (`gpu_support.rim_content`); anything else as bytes."""
    lower = name.lower()
    try:
        if lower.endswith(".xml"):
            return rim_content(data, genuine)
        if lower.endswith(".pem") and b"CERTIFICATE-----" in genuine:
            return pem_ders(data, _issued(genuine))
        if lower.endswith(".der") and "crl" in lower:
            return x509.load_der_x509_crl(data).public_bytes(Encoding.DER)
        if lower.endswith(".der"):
            return x509.load_der_x509_certificate(data).public_bytes(Encoding.DER)
        if lower == "collateral.json":  # dcap-qvl: PEM chains and hex DER CRLs as string members
            mutated, original = json.loads(data, object_pairs_hook=list), dict(json.loads(genuine))
            return [(k, _member_content(k, v, original.get(k))) for k, v in mutated]
        if lower.endswith(".json"):
            return json.loads(data, object_pairs_hook=list)
    except Exception:
        return data
    return data


def _member_content(name: str, value: object, genuine: object) -> object:
    if isinstance(value, str) and isinstance(genuine, str):
        if name.endswith("issuer_chain"):
            return collateral_content(f"{name}.pem", value.encode(), genuine.encode())
        if name.endswith("crl"):
            try:
                return collateral_content(f"{name}.der", bytes.fromhex(value), bytes.fromhex(genuine))
            except ValueError:
                return value
    return value


def why_not_affirming(
    origin: Vector | None,
    affirming: Collection[str],
    tee: str,
    evidence: bytes,
    nonce: bytes,
    runtime_data: bytes,
    collateral: Mapping[str, bytes],
    affirms: Callable[[dict[str, bytes]], bool],
) -> str | None:
    """None when "affirming" is a correct answer to this request, else why it is not. `origin` is the genuine
    vector the evidence was derived from, `affirming` the ids of the vectors that affirm unmutated, `tee` the kind
    the request named; `affirms(collateral)` appraises the same evidence with other collateral (used to tell a
    changed file the verdict depends on from one it ignores)."""
    if origin is None or origin.id not in affirming:
        return "the evidence is not derived from a genuine vector that affirms"
    if tee != origin.tee:
        return f"evidence of {origin.tee} appraised as {tee}"
    if signed_content(origin.tee, evidence) != signed_content(origin.tee, origin.evidence):
        return f"the signed bytes of {origin.tee} evidence were mutated"
    if nonce and not (origin.tee == "gpu" and nonce.hex() == origin.facts.get("nonce")):
        return "the request carries a nonce the evidence cannot be bound to"  # a GPU report signs its own
    if runtime_data and runtime_data.hex() != origin.facts.get("public_key"):
        return "the request carries runtime data the evidence is not bound to"
    for name, content in collateral.items():
        genuine = origin.collateral.get(name)
        if genuine is not None and collateral_content(name, content, genuine) == collateral_content(
            name, genuine, genuine
        ):
            continue
        # Changed in meaning (or foreign): acceptable only when the verdict does not depend on the file at all.
        if not affirms({n: c for n, c in collateral.items() if n != name}):
            return f"{origin.tee} collateral {name!r} was changed and the verdict depends on it"
    return None


# --- mutations --------------------------------------------------------------------------------------------------


def mutate(
    draw: Callable[..., Any], data: bytes, pool: Sequence[bytes] = (), focus: tuple[int, int] | None = None
) -> bytes:
    """1..4 byte-level mutations: flip a bit, set a byte, truncate, extend, insert, delete, or splice in a piece
    of another input from `pool`. `focus` (start, end) biases positions into a range (e.g. the signed bytes)."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "flip", "set", "set", "truncate", "extend", "insert", "delete", "splice"]))
        if focus is not None and focus[1] <= len(out) and draw(st.booleans()):
            pos = draw(st.integers(focus[0], max(focus[0], focus[1] - 1)))
        else:
            pos = draw(st.integers(0, max(len(out) - 1, 0)))
        if op == "flip" and out:
            out[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and out:
            out[pos] = draw(st.integers(0, 255))
        elif op == "truncate":
            del out[pos:]
        elif op == "extend":
            out += draw(st.binary(min_size=1, max_size=64))
        elif op == "insert":
            out[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del out[pos : pos + draw(st.integers(1, 16))]
        elif op == "splice" and pool:
            other = draw(st.sampled_from(list(pool)))
            start = draw(st.integers(0, max(len(other) - 1, 0)))
            piece = other[start : start + draw(st.integers(1, 256))]
            out[pos : pos + len(piece)] = piece
    return bytes(out)


def focus_range(tee: str, evidence: bytes) -> tuple[int, int]:
    """The byte range holding the signed content (the SNP message and signature; otherwise the whole input)."""
    if tee == "snp":
        return 0, SNP_SIGNED_END
    if tee == "gpu":
        return gpu_focus(evidence)
    return 0, len(evidence)


def targeted_evidence(vector: Vector) -> list[tuple[str, bytes]]:
    """A deterministic list of mutations of one real vector: bit flips at every field boundary and at a stride
    through the signed bytes, signature-only changes, truncations at structure boundaries and extensions."""
    data = vector.evidence
    if vector.tee == "gpu":
        return targeted_gpu(data)
    cases: list[tuple[str, bytes]] = []

    def flip(pos: int, mask: int = 0x01) -> None:
        if 0 <= pos < len(data):
            out = bytearray(data)
            out[pos] ^= mask
            cases.append((f"xor {pos:#x} {mask:#04x}", bytes(out)))

    if vector.tee == "snp":
        for start in SNP_FIELD_STARTS:
            flip(start)
            flip(start, 0x80)
        for pos in range(0, SNP_SIGNED_END, 23):
            flip(pos)
        for pos in (0x2A0 + 47, 0x2A0 + 48, 0x2A0 + 71, 0x2E8, 0x2E8 + 48, 0x2E8 + 71):  # R, S and their extension
            flip(pos)
        cuts: tuple[int, ...] = (0, 1, 0x2A0, SNP_SIGNED_END, 0x49F)
    elif vector.tee == "tdx":
        for pos in range(0, min(len(data), 4096), 29):
            flip(pos)
        for pos in (0, 2, 4, 8, 10, 12, 28, 47, 48, 632, 636, 700, 764, 766, 770):
            flip(pos, 0x80)
        cuts = (0, 47, 48, 631, 632, 636, 764, len(data) - 1)
    else:
        for pos in range(0, len(data), 31):
            flip(pos)
        cuts = (0, 1, len(data) // 2, len(data) - 97, len(data) - 1)
    for cut in cuts:
        cases.append((f"truncate {cut:#x}", data[:cut]))
    cases.append(("extend 00", data + b"\x00"))
    cases.append(("extend ff*64", data + b"\xff" * 64))
    cases.append(("doubled", data + data))
    return [(label, ev) for label, ev in cases if ev]


# Named ATTESTATION_REPORT field offsets (ABI spec pub. 56860, Table "ATTESTATION_REPORT Structure").
SNP_FIELD_STARTS = (
    0x00,
    0x04,
    0x08,
    0x10,
    0x20,
    0x30,
    0x34,
    0x38,
    0x3A,
    0x3E,
    0x40,
    0x48,
    0x4C,
    0x50,
    0x90,
    0xC0,
    0xE0,
    0x110,
    0x140,
    0x160,
    0x180,
    0x182,
    0x186,
    0x187,
    0x188,
    0x189,
    0x18A,
    0x18B,
    0x1A0,
    0x1E0,
    0x1E8,
    0x1EB,
    0x1EC,
    0x1EF,
    0x1F0,
    0x1F8,
    0x200,
    0x208,
    0x29F,
)


# --- hostile text -----------------------------------------------------------------------------------------------

UNICODE_TEXT = st.text(st.characters(codec="utf-8"), max_size=40)  # no lone surrogates: protobuf refuses them
NUL_TEXT = st.builds(lambda a, b: f"{a}\x00{b}", UNICODE_TEXT, UNICODE_TEXT)


def nested_json(depth: int, kind: str) -> bytes:
    """Deeply nested JSON: arrays, objects, or a JWK whose member is nested."""
    if kind == "array":
        return b"[" * depth + b"]" * depth
    if kind == "object":
        return b'{"a":' * depth + b"1" + b"}" * depth
    return b'{"kty":"EC","crv":"P-256","x":' + b"[" * depth + b"]" * depth + b',"y":"AA"}'


HOSTILE_BYTES = st.one_of(
    st.binary(max_size=200),
    st.builds(nested_json, st.integers(1, 3000), st.sampled_from(["array", "object", "jwk"])),
    NUL_TEXT.map(lambda s: s.encode()),
    st.just(b'{"kty":"EC","crv":"P-256","x":"' + b"A" * 43 + b'","y":"' + b"A" * 43 + b'"}'),
    st.just(b'{"kty":"oct","k":"AAAA"}'),
)


# --- hypothesis settings ----------------------------------------------------------------------------------------


def fuzz_settings(count: int, **extra: Any) -> Callable[[Any], Any]:
    """`count` examples under the "ci" profile (derandomized), scaled by "explore" (tests/property/profiles.py)."""
    return settings(max_examples=examples(count), deadline=None, **extra)


def diff_summary(original: bytes, mutated: bytes, limit: int = 12) -> str:
    """A reproducer for a mutation of `original`: its changed offsets with old and new bytes, or the length change."""
    if len(original) == len(mutated):
        changed = [i for i in range(len(original)) if original[i] != mutated[i]]
        shown = ", ".join(f"{i:#x}: {original[i]:02x}->{mutated[i]:02x}" for i in changed[:limit])
        return f"same length {len(original)}; {len(changed)} bytes changed ({shown})"
    prefix = next(
        (i for i, (a, b) in enumerate(zip(original, mutated, strict=False)) if a != b), min(len(original), len(mutated))
    )
    return (
        f"length {len(original)} -> {len(mutated)}; equal up to {prefix:#x}; "
        f"mutated[{prefix:#x}:{prefix + 32:#x}] = {mutated[prefix : prefix + 32].hex()}"
    )
