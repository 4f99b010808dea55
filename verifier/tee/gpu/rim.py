"""NVIDIA RIMs (reference integrity manifests): ISO/IEC 19770-2:2015 SWID tags with TCG RIM attributes, parsed
into frozen dataclasses. No cryptography here: `verifier.tee.gpu.rim_verify` checks the XML signature and the
signing chain and parses only what the signature covers.

Shape (nv-local-gpu-verifier rim/__init__.py, NVIDIA's driver and VBIOS RIMs; ../shared/vectors/README.md section
"NVIDIA GPU"): root `SoftwareIdentity` (tagId, name, version, tagVersion), `Meta` (colloquialVersion = the driver or
VBIOS version, product, edition, revision, TCG PlatformManufacturerStr / PlatformModel), `Payload` with one
`Resource type="Measurement"` per SPDM measurement slot: `index` (0-based), `active` ("True" / "False"),
`alternatives` N, `size` (bytes) and attributes `Hash0`..`HashN-1` in the namespace of SHA-384
(http://www.w3.org/2001/04/xmlenc#sha384), then the enveloped `ds:Signature`.

The parser is hardened (lxml without DTD loading, entity resolution or network access; a document type declaration
is refused; bounded input size and counts) and strict where NVIDIA's code is lax: `active` must be exactly "True"
or "False" (NVIDIA takes anything but "False" as active), every Hash must be hex of exactly `size` bytes, an index
appears once, no Payload child other than a Measurement Resource. Failures are ParseError GPU_RIM_TOO_LARGE or
GPU_RIM_MALFORMED.

The document does not say whether it is a driver or a VBIOS RIM (both are named "GH100"; the names
NV_GPU_DRIVER_GH100_<version> / NV_GPU_VBIOS_<...> are the RIM service's file ids): `Rim.kind` is derived from the
shape of colloquialVersion (VBIOS: five dotted hex pairs, e.g. 96.00.5E.00.01; driver: dotted decimals, e.g.
545.00 or 550.90.07), None when it is neither.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from lxml import etree  # type: ignore[import-untyped]  # lxml ships no type information

from verifier.errors import ParseError

SWID_NS = "http://standards.iso.org/iso/19770/-2/2015/schema.xsd"
TCG_RIM_NS = "https://trustedcomputinggroup.org/resource/tcg-reference-integrity-manifest-rim-information-model/"
SHA384_NS = "http://www.w3.org/2001/04/xmlenc#sha384"
DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"

MAX_RIM_BYTES = 1024 * 1024  # NVIDIA's RIMs are ~20 KB
MAX_MEASUREMENTS = 256  # SPDM has at most 254 blocks (index 1..254); NVIDIA's RIMs list 64
MAX_ALTERNATIVES = 64  # NVIDIA's RIMs have up to 4
MAX_INDEX = 253  # RIM index k is SPDM block k + 1, and block indices 0 and 255 are not measurement blocks
MAX_SIZE = 64  # bytes of one measurement value (48 for SHA-384)
_ATTR_LIMIT = 256  # characters of a text attribute kept (tag id, names, versions)

RimKind = Literal["driver", "vbios"]
_VBIOS_VERSION = re.compile(r"[0-9A-Fa-f]{2}(?:\.[0-9A-Fa-f]{2}){4}")
_DRIVER_VERSION = re.compile(r"[0-9]{1,4}(?:\.[0-9]{1,4}){1,3}")
_HEX = re.compile(r"[0-9A-Fa-f]*")


@dataclass(frozen=True)
class RimMeasurement:
    """One `Resource type="Measurement"`: the golden values of SPDM measurement block `index + 1`."""

    index: int
    active: bool
    size: int
    alternatives: tuple[bytes, ...]  # Hash0..HashN-1, each `size` bytes
    name: str


@dataclass(frozen=True)
class Rim:
    """A parsed RIM. `kind` is derived from `colloquial_version` (module docstring)."""

    tag_id: str
    name: str
    version: str
    tag_version: str
    colloquial_version: str
    product: str
    edition: str
    revision: str
    platform_manufacturer: str
    platform_model: str
    kind: RimKind | None
    measurements: tuple[RimMeasurement, ...]

    @property
    def active(self) -> tuple[RimMeasurement, ...]:
        """The active entries, in document order (only those are compared)."""
        return tuple(m for m in self.measurements if m.active)


def _malformed(message: str, *, expected: str = "", actual: str = "") -> ParseError:
    return ParseError("GPU_RIM_MALFORMED", message, expected=expected, actual=actual[:_ATTR_LIMIT])


def rim_kind(colloquial_version: str) -> RimKind | None:
    """ "vbios" or "driver" from the shape of a RIM's colloquialVersion, None for neither. Never raises."""
    if _VBIOS_VERSION.fullmatch(colloquial_version):
        return "vbios"
    if _DRIVER_VERSION.fullmatch(colloquial_version):
        return "driver"
    return None


def parse_xml(xml: bytes) -> etree._Element:
    """The root element of `xml`, parsed without DTD loading, entity resolution or network access; a document type
    declaration, an entity reference or more than MAX_RIM_BYTES are refused. Raises ParseError GPU_RIM_TOO_LARGE,
    GPU_RIM_MALFORMED. (A new parser per call: a parser is never shared between threads.)"""
    if len(xml) > MAX_RIM_BYTES:
        raise ParseError(
            "GPU_RIM_TOO_LARGE", "RIM too large", expected=f"<= {MAX_RIM_BYTES} bytes", actual=str(len(xml))
        )
    parser = hardened_parser()
    try:
        root = etree.fromstring(xml, parser)
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise _malformed("RIM is not well-formed XML", actual=str(exc)) from None
    if root is None:
        raise _malformed("RIM is empty")
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise _malformed("RIM has a document type declaration", expected="no DTD")
    if any(True for _ in root.iter(etree.Entity)):
        raise _malformed("RIM has entity references", expected="no entities")
    return root


def hardened_parser() -> etree.XMLParser:
    """An lxml parser that loads no DTD, resolves no entity, never touches the network and keeps libxml2's
    limits for huge documents. Never raises."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        collect_ids=False,
    )


def _tag(element: etree._Element) -> str:
    tag = element.tag
    return tag if isinstance(tag, str) else ""  # comments and processing instructions have a callable tag


def _children(element: etree._Element) -> list[etree._Element]:
    """Element children (comments and processing instructions are skipped)."""
    return [child for child in element if isinstance(child.tag, str)]


def _text_attr(element: etree._Element, name: str, *, required: bool = False) -> str:
    value = element.get(name)
    if not isinstance(value, str):  # None: absent
        if required:
            raise _malformed(f"{etree.QName(element).localname} lacks attribute {name}", expected=name)
        return ""
    if len(value) > _ATTR_LIMIT:
        raise _malformed(f"attribute {name} too long", expected=f"<= {_ATTR_LIMIT} characters", actual=value)
    return value


def _int_attr(element: etree._Element, name: str, low: int, high: int) -> int:
    raw = _text_attr(element, name, required=True)
    if not raw.isascii() or not raw.isdigit() or len(raw) > 4 or not low <= int(raw) <= high:
        raise _malformed(f"Measurement attribute {name} out of range", expected=f"{low}..{high}", actual=raw)
    return int(raw)


def _only_child(parent: etree._Element, localname: str) -> etree._Element:
    found = [c for c in _children(parent) if _tag(c) == f"{{{SWID_NS}}}{localname}"]
    if len(found) != 1:
        raise _malformed(f"RIM must have exactly one {localname}", expected="1", actual=str(len(found)))
    return found[0]


def _hash(element: etree._Element, position: int, size: int) -> bytes:
    raw = element.get(f"{{{SHA384_NS}}}Hash{position}")
    if raw is None:
        raise _malformed(f"Measurement lacks Hash{position}", expected=f"{{{SHA384_NS}}}Hash{position}")
    if len(raw) != 2 * size or not _HEX.fullmatch(raw):
        raise _malformed(f"Hash{position} is not {size} bytes of hex", expected=f"{2 * size} hex digits", actual=raw)
    return bytes.fromhex(raw)


def _measurement(element: etree._Element) -> RimMeasurement:
    """One Payload child: a `Resource type="Measurement"` with Hash0..HashN-1 (and no other SHA-384 attribute)."""
    if _tag(element) != f"{{{SWID_NS}}}Resource" or element.get("type") != "Measurement":
        raise _malformed("Payload child is not a Measurement Resource", expected="Resource type=Measurement")
    active = _text_attr(element, "active", required=True)
    if active not in ("True", "False"):
        raise _malformed("Measurement attribute active is not True or False", expected="True|False", actual=active)
    index = _int_attr(element, "index", 0, MAX_INDEX)
    count = _int_attr(element, "alternatives", 1, MAX_ALTERNATIVES)
    size = _int_attr(element, "size", 1, MAX_SIZE)
    known = {f"{{{SHA384_NS}}}Hash{i}" for i in range(count)}
    extra = sorted(str(k) for k in element.attrib if str(k).startswith(f"{{{SHA384_NS}}}") and k not in known)
    if extra:
        raise _malformed("Measurement has more hashes than alternatives", expected=str(count), actual=extra[0])
    return RimMeasurement(
        index=index,
        active=active == "True",
        size=size,
        alternatives=tuple(_hash(element, i, size) for i in range(count)),
        name=_text_attr(element, "name"),
    )


def _measurements(payload: etree._Element) -> tuple[RimMeasurement, ...]:
    children = _children(payload)
    if not children:
        raise _malformed("RIM has no measurements", expected=">= 1 Measurement")
    if len(children) > MAX_MEASUREMENTS:
        raise _malformed("RIM has too many measurements", expected=f"<= {MAX_MEASUREMENTS}", actual=str(len(children)))
    measurements = tuple(_measurement(child) for child in children)
    seen: set[int] = set()
    for m in measurements:
        if m.index in seen:
            raise _malformed("RIM lists a measurement index twice", expected="unique indices", actual=str(m.index))
        seen.add(m.index)
    return measurements


def rim_from_element(root: etree._Element) -> Rim:
    """The RIM whose root element is `root` (for a verified RIM: the element the signature covers). Children of
    the root other than Meta and Payload (Entity, the signature) are ignored; Meta and Payload must appear exactly
    once. Raises ParseError GPU_RIM_MALFORMED."""
    if _tag(root) != f"{{{SWID_NS}}}SoftwareIdentity":
        raise _malformed("RIM root is not a SWID SoftwareIdentity", expected="SoftwareIdentity", actual=_tag(root))
    meta = _only_child(root, "Meta")
    colloquial = _text_attr(meta, "colloquialVersion", required=True)
    if not colloquial:
        raise _malformed("RIM colloquialVersion is empty", expected="the driver or VBIOS version")
    return Rim(
        tag_id=_text_attr(root, "tagId", required=True),
        name=_text_attr(root, "name"),
        version=_text_attr(root, "version"),
        tag_version=_text_attr(root, "tagVersion"),
        colloquial_version=colloquial,
        product=_text_attr(meta, "product"),
        edition=_text_attr(meta, "edition"),
        revision=_text_attr(meta, "revision"),
        platform_manufacturer=_text_attr(meta, f"{{{TCG_RIM_NS}}}PlatformManufacturerStr"),
        platform_model=_text_attr(meta, f"{{{TCG_RIM_NS}}}PlatformModel"),
        kind=rim_kind(colloquial),
        measurements=_measurements(_only_child(root, "Payload")),
    )


def parse_rim(xml: bytes) -> Rim:
    """Parse a RIM WITHOUT checking its signature (tools, tests; appraisals use `rim_verify.verify_rim`). Raises
    ParseError GPU_RIM_TOO_LARGE, GPU_RIM_MALFORMED."""
    return rim_from_element(parse_xml(xml))


def has_signature(root: etree._Element) -> bool:
    """Whether the root element has a ds:Signature child. Never raises."""
    return any(_tag(c) == f"{{{DSIG_NS}}}Signature" for c in _children(root))
