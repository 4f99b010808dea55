"""verifier/trust/ owns every trust decision (issue 12, move 2), checked on the source tree.

- certificates and CRLs are loaded only in verifier/trust/ (the shared loader: full decode, bounded count, one code);
- a supplied root is accepted only by `TrustAnchors.root_for` (nothing else asks whether a root is pinned);
- link signatures, CRL signatures and revoked-serial lookups are checked only in verifier/trust/;
- nothing under verifier/tee/ imports an HTTP module or a vendor client (the AMD KDS and Intel PCS clients live in
  verifier/collateral/kds.py and pcs.py), and nothing under verifier/collateral/ imports verifier/tee/;
- the verified-link cache is injected: no module-level cache is consulted, each TEE verifier owns one.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from verifier.errors import EvidenceError
from verifier.tee.nitro.evidence import NitroVerifier
from verifier.tee.sevsnp.evidence import SnpVerifier
from verifier.tee.tdx.evidence import TdxVerifier
from verifier.trust.anchors import TrustAnchors
from verifier.trust.chain import VerifiedLinks, check_issued_by

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "verifier"
TRUST = PACKAGE / "trust"
TEE = PACKAGE / "tee"
# Still loading certificates themselves, outside the files this move owned. Each entry is a debt: when its file
# is fixed, remove it here (the test insists the list is exact, so it only ever shrinks).
KNOWN_LOADERS: set[str] = set()
# verifier/client/ is the installable client library; it may keep its own loader (it has none today).
CLIENT = PACKAGE / "client"
HTTP_MODULES = (
    "urllib",
    "http",
    "requests",
    "httpx",
    "aiohttp",
    "verifier.collateral.http",
    "verifier.collateral.kds",
    "verifier.collateral.pcs",
)
COLLATERAL = PACKAGE / "collateral"
# The one lazy (function-level) import, a deprecated re-export of IntelPcs for old imports in
# tests/unit/tee/tdx/test_tdx_pcs.py and tests/integration/test_tdx_end_to_end.py; the run-time test below shows it
# loads nothing on import. Remove it (and this entry) once they import verifier.collateral.pcs.
COMPAT_SHIMS: set[str] = set()
TRUST_ONLY_CALLS = ("verify_directly_issued_by", "is_signature_valid", "get_revoked_certificate_by_serial_number")


def _sources(under: Path) -> list[Path]:
    return sorted(p for p in under.rglob("*.py") if "_pb2" not in p.name)


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module `path` imports (relative imports resolved), including lazy imports inside functions and
    `importlib.import_module("...")` with a literal name."""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return found


def _loads_certificates(path: Path) -> list[str]:
    """`x509.load_*` calls and `load_*` names imported from cryptography.x509 in `path`."""
    hits: list[str] = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Attribute) and node.attr.startswith("load_") and "x509" in node.attr:
            hits.append(f"{_rel(path)}:{node.lineno} {node.attr}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cryptography.x509"):
            hits += [f"{_rel(path)}:{node.lineno} {a.name}" for a in node.names if a.name.startswith("load_")]
    return hits


def _calls(path: Path, names: tuple[str, ...]) -> list[str]:
    return [
        f"{_rel(path)}:{node.lineno} {node.attr}"
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.Attribute) and node.attr in names
    ]


def test_certificates_and_crls_are_loaded_only_in_trust() -> None:
    outside = [p for p in _sources(PACKAGE) if TRUST not in p.parents and CLIENT not in p.parents]
    hits = {path: _loads_certificates(path) for path in outside}
    offenders = {_rel(path) for path, found in hits.items() if found}
    assert offenders - KNOWN_LOADERS == set(), [h for p, found in hits.items() for h in found]
    assert offenders == KNOWN_LOADERS, f"fixed, remove from KNOWN_LOADERS: {sorted(KNOWN_LOADERS - offenders)}"


def test_only_root_for_decides_whether_a_root_is_pinned() -> None:
    anchors = TRUST / "anchors.py"
    callers = [h for p in _sources(PACKAGE) if p != anchors for h in _calls(p, ("is_pinned",))]
    assert callers == []
    # and inside anchors.py, `root_for` and `roots` are the only users
    tree = _tree(anchors)
    users = {
        fn.name
        for fn in ast.walk(tree)
        if isinstance(fn, ast.FunctionDef)
        and fn.name != "is_pinned"
        and any(isinstance(n, ast.Attribute) and n.attr == "is_pinned" for n in ast.walk(fn))
    }
    assert users == {"root_for", "roots"}


def test_signatures_and_revocation_are_checked_only_in_trust() -> None:
    outside = [p for p in _sources(PACKAGE) if TRUST not in p.parents and CLIENT not in p.parents]
    assert [h for p in outside for h in _calls(p, TRUST_ONLY_CALLS)] == []


def test_no_http_import_under_tee() -> None:
    bad = [
        f"{_rel(p)}: {module}"
        for p in _sources(TEE)
        for module in sorted(_imports(p))
        if any(module == m or module.startswith(m + ".") for m in HTTP_MODULES)
    ]
    assert set(bad) - COMPAT_SHIMS == set(), bad


def test_the_pcs_client_lives_beside_the_kds_client() -> None:
    from verifier.collateral import pcs

    assert pcs.IntelPcs.__module__ == "verifier.collateral.pcs"
    assert "verifier.collateral.http" in _imports(PACKAGE / "collateral" / "pcs.py")


def test_collateral_imports_no_tee_module() -> None:
    """The vendor clients build URLs from the keys alone (the key vocabulary is collateral/kds_keys.py and
    pcs_items.py): the dependency runs tee -> collateral only."""
    bad = [
        f"{_rel(p)}: {module}"
        for p in _sources(COLLATERAL)
        for module in sorted(_imports(p))
        if module == "verifier.tee" or module.startswith("verifier.tee.")
    ]
    assert bad == []


def test_importing_the_tee_verifiers_loads_no_http_client() -> None:
    """At run time too, SEV-SNP included (its KDS keys come from verifier.tee.sevsnp.collateral_keys): no HTTP
    client and neither vendor client is loaded."""
    code = (
        "import sys; import verifier.tee.sevsnp.evidence, verifier.tee.tdx.evidence, verifier.tee.tdx.pcs, "
        "verifier.tee.nitro.verify;"
        "bad = sorted(m for m in sys.modules if m.startswith(('urllib.request', 'http.client')) or m in ("
        "'verifier.collateral.http', 'verifier.collateral.kds', 'verifier.collateral.pcs')); print(bad); "
        "sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_module_level_link_cache_exists() -> None:
    """The verified-link cache is injected (a `VerifiedLinks` per verifier, shared by the composition root): no
    module of verifier/ holds one at module level."""
    globals_ = [
        f"{_rel(p)}:{node.lineno}"
        for p in _sources(PACKAGE)
        for node in _tree(p).body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        and isinstance(node.value, ast.Call)
        and getattr(node.value.func, "id", getattr(node.value.func, "attr", None)) == "VerifiedLinks"
    ]
    assert globals_ == []


def test_each_tee_verifier_owns_an_injectable_link_cache() -> None:
    shared = VerifiedLinks()
    for kind in (SnpVerifier, TdxVerifier, NitroVerifier):
        assert kind().links is not kind().links
        assert kind(shared).links is shared


def test_an_injected_link_cache_never_accepts_a_forged_signature() -> None:
    """A cached success for one (cert, issuer) pair must not vouch for another cert or another issuer."""
    from tests.fakes.aws_pki import FakeAwsPki

    links = VerifiedLinks()
    pki, foreign = FakeAwsPki(), FakeAwsPki().foreign()
    check_issued_by(pki.regional, pki.root, links)  # cached now
    check_issued_by(pki.regional, pki.root, links)  # hit
    with pytest.raises(EvidenceError) as info:
        check_issued_by(foreign.regional, pki.root, links)  # same names, other key: must still fail
    assert info.value.code == "CHAIN_SIGNATURE_INVALID"
    with pytest.raises(EvidenceError):
        check_issued_by(pki.regional, foreign.root, links)


def test_link_cache_is_bounded() -> None:
    links = VerifiedLinks(capacity=2)
    for n in range(3):
        links.add((bytes([n]),))
    assert (b"\x00",) not in links and (b"\x01",) in links and (b"\x02",) in links


def test_root_for_takes_a_supplied_root_only_when_pinned() -> None:
    from tests.fakes.aws_pki import FakeAwsPki

    pki = FakeAwsPki()
    foreign = pki.foreign()
    anchors = TrustAnchors(pins=pki.pins, certificates=[pki.root])
    assert anchors.root_for("aws-nitro", pki.root, None) == [pki.root]
    assert anchors.root_for("aws-nitro", foreign.root, None) == []  # unpinned, no stand-in allowed
    # unpinned: a pinned anchor named as the chain's issuer stands in, never the supplied one
    assert anchors.root_for("aws-nitro", foreign.root, pki.regional.issuer) == [pki.root]
    assert anchors.root_for("aws-nitro", None, lambda c: c.subject == pki.root.subject) == [pki.root]
    assert anchors.root_for("amd-ark", pki.root, pki.regional.issuer) == []  # pinned for another vendor only
    assert TrustAnchors(pins=pki.pins).root_for("aws-nitro", foreign.root, pki.regional.issuer) == []
