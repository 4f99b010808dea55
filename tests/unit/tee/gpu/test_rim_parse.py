"""Parsing NVIDIA RIMs (verifier/tee/gpu/rim.py): the real ones of the 2023 sample, and unsigned fakes that break
one rule each (hardened parser, strict entries)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from tests.conftest import manifest_vectors
from tests.fakes.nvidia_rim import SHA384_NS, SWID, ZERO, rim_document
from verifier.errors import ParseError
from verifier.tee.gpu.rim import MAX_RIM_BYTES, has_signature, parse_rim, parse_xml, rim_kind

SAMPLE = next((v for v in manifest_vectors("gpu") if v["id"] == "gpu-hopper-nvidia-sample-2023"), None)
needs_sample = pytest.mark.skipif(SAMPLE is None, reason="shared vectors not found")
RIM_RESULTS: dict[str, Any] = SAMPLE["expected"]["rim_results"] if SAMPLE else {}
REAL = [RIM_RESULTS["driver"], RIM_RESULTS["vbios"], *RIM_RESULTS["extra"]] if SAMPLE else []


def _xml(**kwargs: Any) -> bytes:
    kwargs.setdefault("version", "545.00")
    kwargs.setdefault("active", {7: [b"\x07" * 48], 23: [b"\x01" * 48, b"\x02" * 48]})
    return etree.tostring(rim_document(**kwargs))


def _resource(root: etree._Element, index: int) -> etree._Element:
    return next(r for r in root.iter(f"{{{SWID}}}Resource") if r.get("index") == str(index))


def _malformed(xml: bytes, code: str = "GPU_RIM_MALFORMED") -> ParseError:
    with pytest.raises(ParseError) as info:
        parse_rim(xml)
    assert info.value.code == code
    return info.value


@needs_sample
@pytest.mark.parametrize("expected", REAL, ids=[r["file"] for r in REAL])
def test_real_rims_parse_to_the_manifest(vectors_dir: Path, expected: dict[str, Any]) -> None:
    assert SAMPLE is not None
    data = Path(vectors_dir, SAMPLE["dir"], expected["file"]).read_bytes()
    rim = parse_rim(data)
    assert (rim.kind, rim.colloquial_version) == (expected["kind"], expected["colloquialVersion"])
    assert (rim.name, rim.product, rim.platform_model, rim.platform_manufacturer) == (
        "GH100",
        "GH100",
        "GH100",
        "NVIDIA Corporation",
    )
    assert len(rim.measurements) == 64 and [m.index for m in rim.measurements] == list(range(64))
    assert [m.index for m in rim.active] == expected["active_indices"]
    multi = {str(m.index): len(m.alternatives) for m in rim.active if len(m.alternatives) > 1}
    assert multi == expected["multi_alternative_indices"]
    assert all(m.size == 48 and all(len(a) == 48 for a in m.alternatives) for m in rim.measurements)
    assert has_signature(parse_xml(data))


def test_a_fake_rim_parses() -> None:
    rim = parse_rim(_xml())
    assert rim.kind == "driver" and rim.colloquial_version == "545.00" and rim.tag_version == "0"
    assert [(m.index, m.alternatives) for m in rim.active] == [(7, (b"\x07" * 48,)), (23, (b"\x01" * 48, b"\x02" * 48))]
    inactive = rim.measurements[0]
    assert (inactive.active, inactive.alternatives, inactive.name) == (False, (ZERO,), "Measurement_0")
    assert not has_signature(parse_xml(_xml()))


@pytest.mark.parametrize(
    ("version", "kind"),
    [
        ("545.00", "driver"),
        ("550.90.07", "driver"),
        ("96.00.5E.00.01", "vbios"),
        ("97.00.88.00.0f", "vbios"),
        ("", None),
        ("GH100", None),
        ("96.00.5E.00", None),
    ],
)
def test_the_kind_follows_the_version_shape(version: str, kind: str | None) -> None:
    assert rim_kind(version) == kind


def test_a_document_type_declaration_is_refused_and_entities_are_never_expanded(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    body = _xml().decode()
    laughs = '<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    external = f'<!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]>'
    for prolog in (laughs, external, "<!DOCTYPE SoftwareIdentity>"):
        error = _malformed((prolog + body.replace('name="GH100"', 'name="&b;"', 1)).encode())
        assert "do not read" not in error.actual
    _malformed(body.replace('name="GH100"', 'name="&b;"', 1).encode())  # an undeclared entity: not well-formed


def test_size_and_well_formedness_bounds() -> None:
    _malformed(b" " * (MAX_RIM_BYTES + 1), "GPU_RIM_TOO_LARGE")
    _malformed(b"<SoftwareIdentity")
    _malformed(b"")
    _malformed(b"<other/>")


def _mutated(change: Any) -> bytes:
    root = rim_document(version="545.00", active={7: [b"\x07" * 48], 23: [b"\x01" * 48, b"\x02" * 48]})
    change(root)
    return etree.tostring(root)


def _set(index: int, name: str, value: str) -> Any:
    return lambda root: _resource(root, index).set(name, value)


def _drop(index: int, name: str) -> Any:
    return lambda root: _resource(root, index).attrib.pop(name)


def _payload(root: etree._Element) -> etree._Element:
    return root.find(f"{{{SWID}}}Payload")


H = f"{{{SHA384_NS}}}"
BROKEN = {
    "active lowercase": _set(7, "active", "true"),
    "active other": _set(7, "active", "yes"),
    "active missing": _drop(7, "active"),
    "index negative": _set(7, "index", "-1"),
    "index too high": _set(7, "index", "254"),
    "index not a number": _set(7, "index", "7a"),
    "index twice": _set(8, "index", "7"),
    "alternatives zero": _set(7, "alternatives", "0"),
    "alternatives more than hashes": _set(7, "alternatives", "2"),
    "more hashes than alternatives": _set(7, f"{H}Hash1", "00" * 48),
    "size zero": _set(7, "size", "0"),
    "size other than the hash": _set(7, "size", "32"),
    "hash not hex": _set(7, f"{H}Hash0", "zz" * 48),
    "hash too short": _set(7, f"{H}Hash0", "00" * 47),
    "hash in another namespace": lambda root: (
        _resource(root, 7).attrib.pop(f"{H}Hash0"),
        _resource(root, 7).set("{http://www.w3.org/2001/04/xmlenc#sha256}Hash0", "00" * 48),
    ),
    "not a measurement": _set(7, "type", "File"),
    "foreign payload child": lambda root: etree.SubElement(_payload(root), f"{{{SWID}}}File"),
    "empty payload": lambda root: [_payload(root).remove(c) for c in list(_payload(root))],
    "too many measurements": lambda root: [
        etree.SubElement(_payload(root), f"{{{SWID}}}Resource", type="Measurement") for _ in range(200)
    ],
    "two payloads": lambda root: root.append(etree.fromstring(etree.tostring(_payload(root)))),
    "no meta": lambda root: root.remove(root.find(f"{{{SWID}}}Meta")),
    "empty version": lambda root: root.find(f"{{{SWID}}}Meta").set("colloquialVersion", ""),
    "no tag id": lambda root: root.attrib.pop("tagId"),
    "long tag id": lambda root: root.set("tagId", "a" * 300),
}


@pytest.mark.parametrize("change", BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_entry_is_malformed(change: Any) -> None:
    _malformed(_mutated(change))


def test_root_in_another_namespace_is_not_a_rim() -> None:
    _malformed(_xml().replace(SWID.encode(), b"urn:other"))
