"""The code catalog (verifier/error_catalog.py) against the source tree (issue 12).

Every stable code a `VerifierError` subclass is built with anywhere in verifier/ (found by an AST scan, following a
code through module constants, local variables, loop tuples and the parameters of helpers such as `_fail(code)`)
is catalogued with the kind of the class that raises it; every catalog entry is raised somewhere; evidence codes
carry an AR4SI claim and value and no other code does; and `_evidence_finding` reads its tier from the catalog,
giving every code the claim and value the old suffix inference gave.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from verifier.appraisal import registry
from verifier.appraisal.model import CONTRAINDICATED, CRYPTO_FAILED, NOT_RECOGNIZED, Claim
from verifier.client.sync import ClientError
from verifier.error_catalog import CATALOG, CodeInfo, code_info
from verifier.errors import ErrorKind, EvidenceError, VerifierError
from verifier.findings import evidence_finding as _evidence_finding
from verifier.storage.db_faults import MESSAGES as DATABASE_FAULTS

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "verifier"
SKIPPED = ("verifier/v1/", "verifier/migrations/")  # generated stubs; frozen migrations raise no VerifierError

# Sites whose code is not a constant the scan can follow: (file, code expression) -> the codes they add. Most pass
# a code through that another site raised already (a re-raise with more context, a stored failure, a client
# decoding the server's code); the database faults come from storage.db_faults.classify. A new such site fails
# test_every_site_is_followed until it is listed here.
PASS_THROUGH: dict[tuple[str, str], frozenset[str]] = {
    ("verifier/client/sync.py", "code"): frozenset(),  # ClientError: the server's code (or gRPC status name)
    ("verifier/collateral/cache.py", "failed[1].code"): frozenset(),  # the stored CollateralUnavailableError
    ("verifier/workloads/manifest.py", "exc.code"): frozenset(),  # normalize_value's RequestError
    ("verifier/service.py", "verified.incomplete"): frozenset(),  # the verifier's CollateralUnavailableError
    ("verifier/tee/sevsnp/evidence.py", "exc.code"): frozenset(),  # CollateralUnavailableError, said as incomplete
    ("verifier/storage/engine.py", "code"): frozenset(DATABASE_FAULTS),  # the fail-fast state's last fault
    ("verifier/storage/engine.py", "fault.code"): frozenset(DATABASE_FAULTS),  # db_faults.classify
}


@dataclass(frozen=True)
class Site:
    path: str
    line: int
    cls: str
    kind: ErrorKind | None
    expr: str
    codes: frozenset[str]
    unresolved: tuple[str, ...]


def _files() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if not rel.startswith(SKIPPED):
            yield rel, ast.parse(path.read_text(), rel)


def _module(rel: str) -> str:
    return rel.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def _name(node: ast.expr) -> str | None:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None


def _error_classes(files: list[tuple[str, ast.Module]]) -> dict[str, type[VerifierError]]:
    """Every VerifierError subclass defined in verifier/, by class name (the names are unique)."""
    defined = {
        node.name: (rel, [n for b in node.bases if (n := _name(b))])
        for rel, tree in files
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
    }
    found = {"VerifierError"}
    while grown := {c for c, (_, bases) in defined.items() if c not in found and found & set(bases)}:
        found |= grown
    classes = {c: getattr(importlib.import_module(_module(defined[c][0])), c) for c in found}
    assert all(issubclass(cls, VerifierError) for cls in classes.values())
    return classes


class _Resolver:
    """The string constants an expression can hold, within one file."""

    def __init__(self, rel: str, tree: ast.Module) -> None:
        self.rel, self.tree = rel, tree
        self.unresolved: list[str] = []
        self.parent = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}

    def codes(self, expr: ast.expr, depth: int = 0) -> set[str]:
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return {expr.value}
        if isinstance(expr, ast.IfExp):
            return self.codes(expr.body, depth) | self.codes(expr.orelse, depth)
        if isinstance(expr, ast.BoolOp):
            return {c for value in expr.values for c in self.codes(value, depth)}
        if isinstance(expr, ast.Name) and depth < 5:
            return self._name(expr, depth + 1)
        self.unresolved.append(ast.unparse(expr))
        return set()

    def _scopes(self, node: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
        while node in self.parent:
            node = self.parent[node]
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield node

    def _name(self, expr: ast.Name, depth: int) -> set[str]:
        for scope in self._scopes(expr):
            params = [*scope.args.posonlyargs, *scope.args.args]
            names = [a.arg for a in params]
            if expr.id in names or expr.id in [a.arg for a in scope.args.kwonlyargs]:
                return self._parameter(scope, expr.id, depth)
            values = self._assigned(scope, expr.id)
            if values:
                return {c for v in values for c in self.codes(v, depth)}
        value = getattr(importlib.import_module(_module(self.rel)), expr.id, None)
        if isinstance(value, str):
            return {value}
        self.unresolved.append(expr.id)
        return set()

    def _assigned(self, scope: ast.AST, name: str) -> list[ast.expr]:
        values: list[ast.expr] = []
        for node in ast.walk(scope):
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                values.append(node.value)
            elif isinstance(node, ast.For) and isinstance(node.target, ast.Tuple):
                slots = [isinstance(t, ast.Name) and t.id == name for t in node.target.elts]
                if any(slots) and isinstance(node.iter, ast.Tuple | ast.List):
                    at = slots.index(True)
                    values += [row.elts[at] for row in node.iter.elts if isinstance(row, ast.Tuple)]
        return values

    def _parameter(self, scope: ast.FunctionDef | ast.AsyncFunctionDef, name: str, depth: int) -> set[str]:
        """The parameter's default and what every call of the function in this file passes for it."""
        params = [a.arg for a in [*scope.args.posonlyargs, *scope.args.args]]
        defaults = dict(zip(params[::-1], scope.args.defaults[::-1], strict=False))
        defaults |= {a.arg: d for a, d in zip(scope.args.kwonlyargs, scope.args.kw_defaults, strict=True) if d}
        found = self.codes(defaults[name], depth) if name in defaults else set()
        position = params.index(name) - (params[:1] in (["self"], ["cls"])) if name in params else None
        for call in ast.walk(self.tree):
            if not isinstance(call, ast.Call) or _name(call.func) != scope.name:
                continue
            passed = [k.value for k in call.keywords if k.arg == name]
            if position is not None and position < len(call.args):
                passed.append(call.args[position])
            found |= {c for value in passed for c in self.codes(value, depth)}
        return found


def _kind(cls: type[VerifierError], call: ast.Call) -> ErrorKind | None:
    """The class's kind; a ClientError's follows its gRPC status (None when that is not a constant)."""
    if cls is not ClientError:
        return cls.kind
    status = next(k.value for k in call.keywords if k.arg == "status")
    if not isinstance(status, ast.Attribute):
        return None
    return ClientError("X", "x", status=grpc.StatusCode[status.attr]).kind


def _sites() -> list[Site]:
    files = list(_files())
    classes = _error_classes(files)
    sites = []
    for rel, tree in files:
        resolver = _Resolver(rel, tree)
        for call in ast.walk(tree):
            if not isinstance(call, ast.Call) or (cls := classes.get(_name(call.func) or "")) is None:
                continue
            expr = call.args[0] if call.args else next(k.value for k in call.keywords if k.arg == "code")
            resolver.unresolved = []
            codes = resolver.codes(expr)
            if resolver.unresolved:
                codes |= PASS_THROUGH.get((rel, ast.unparse(expr)), {"<unfollowed>"})
            kind = _kind(cls, call)
            unresolved = tuple(resolver.unresolved)
            sites.append(Site(rel, call.lineno, cls.__name__, kind, ast.unparse(expr), frozenset(codes), unresolved))
    return sites


SITES = _sites()
RAISED: dict[str, set[ErrorKind]] = {}
for _site in SITES:
    for _code in _site.codes:
        assert _site.kind is not None, f"{_site.path}:{_site.line}: a ClientError of an unknown status raises {_code}"
        RAISED.setdefault(_code, set()).add(_site.kind)


def test_every_site_is_followed() -> None:
    unfollowed = [f"{s.path}:{s.line} {s.cls}({s.unresolved})" for s in SITES if "<unfollowed>" in s.codes]
    assert unfollowed == [], "list the site in PASS_THROUGH (and its codes in the catalog)"
    assert len(SITES) > 300 and len(RAISED) > 250  # the scan does see the tree
    needed = {(s.path, s.expr) for s in SITES if s.unresolved}
    assert set(PASS_THROUGH) == needed, "a PASS_THROUGH entry no site needs"


def test_every_raised_code_is_catalogued_with_the_kind_of_its_class() -> None:
    missing = sorted(code for code in RAISED if code not in CATALOG)
    assert missing == [], "add these codes to verifier/error_catalog.py"
    wrong = {
        code: (CATALOG[code].kind, sorted(kinds))
        for code, kinds in RAISED.items()
        if kinds != {CATALOG[code].kind, *CATALOG[code].also}
    }
    assert wrong == {}


def test_every_catalogued_code_is_raised() -> None:
    assert sorted(set(CATALOG) - set(RAISED)) == []


def test_evidence_codes_and_only_they_have_a_claim_and_value() -> None:
    claims = {c.value for c in Claim}
    for code, info in CATALOG.items():
        assert code == code.upper() and code.isascii(), code
        if info.kind is ErrorKind.EVIDENCE:
            assert info.claim in claims and isinstance(info.value, int) and -128 <= info.value <= 127, code
        else:
            assert (info.claim, info.value) == (None, None), code
        assert info.kind not in info.also, code


def test_a_code_outside_the_catalog_is_a_failed_cryptographic_check() -> None:
    assert code_info("NOT_A_CATALOGUED_CODE") is None
    finding = _evidence_finding(registry.get_scheme("snp"), EvidenceError("NOT_A_CATALOGUED_CODE", "m"))
    assert (finding.claim, finding.value) == (Claim.INSTANCE_IDENTITY, CRYPTO_FAILED)


# What `_evidence_finding` gave before the catalog (CHAIN_ROOT_UNTRUSTED 97; a code ending in _REVOKED 96; TDX's
# contraindicated_codes hardware 96; anything else instance-identity 99), written down from that code.
BEFORE = [
    ("nitro", "CHAIN_ROOT_UNTRUSTED", Claim.INSTANCE_IDENTITY, NOT_RECOGNIZED),
    ("snp", "CHAIN_ROOT_UNTRUSTED", Claim.INSTANCE_IDENTITY, NOT_RECOGNIZED),
    ("tdx", "CHAIN_ROOT_UNTRUSTED", Claim.INSTANCE_IDENTITY, NOT_RECOGNIZED),
    ("snp", "SNP_CERT_REVOKED", Claim.INSTANCE_IDENTITY, CONTRAINDICATED),
    ("tdx", "TDX_PCK_REVOKED", Claim.INSTANCE_IDENTITY, CONTRAINDICATED),
    ("tdx", "TDX_COLLATERAL_SIGNER_REVOKED", Claim.INSTANCE_IDENTITY, CONTRAINDICATED),
    ("tdx", "TDX_TCB_LEVEL_NOT_FOUND", Claim.HARDWARE, CONTRAINDICATED),
    ("tdx", "TDX_FMSPC_MISMATCH", Claim.HARDWARE, CONTRAINDICATED),
    ("tdx", "TDX_PCEID_MISMATCH", Claim.HARDWARE, CONTRAINDICATED),
    ("tdx", "TDX_QE_IDENTITY_MISMATCH", Claim.HARDWARE, CONTRAINDICATED),
    ("tdx", "TDX_MODULE_IDENTITY_NOT_FOUND", Claim.HARDWARE, CONTRAINDICATED),
    ("tdx", "TDX_MODULE_IDENTITY_MISMATCH", Claim.INSTANCE_IDENTITY, CRYPTO_FAILED),  # not one of TDX's TCB codes
    ("tdx", "TDX_QE_TCB_LEVEL_NOT_FOUND", Claim.INSTANCE_IDENTITY, CRYPTO_FAILED),
    ("nitro", "NITRO_SIGNATURE_INVALID", Claim.INSTANCE_IDENTITY, CRYPTO_FAILED),
    ("snp", "SNP_SIGNATURE_INVALID", Claim.INSTANCE_IDENTITY, CRYPTO_FAILED),
    ("tdx", "TDX_QUOTE_SIGNATURE_INVALID", Claim.INSTANCE_IDENTITY, CRYPTO_FAILED),
    ("snp", "CERT_EXPIRED", Claim.INSTANCE_IDENTITY, CRYPTO_FAILED),
    ("nitro", "NITRO_CBOR_INVALID", Claim.INSTANCE_IDENTITY, CRYPTO_FAILED),  # a ParseError
    ("snp", "SNP_TCB_MISMATCH", Claim.INSTANCE_IDENTITY, CRYPTO_FAILED),
]


@pytest.mark.parametrize(("tee", "code", "claim", "value"), BEFORE, ids=[f"{t}-{c}" for t, c, _, _ in BEFORE])
def test_the_evidence_finding_keeps_the_tier_it_had(tee: str, code: str, claim: Claim, value: int) -> None:
    error = EvidenceError(code, "why", expected="e", actual="a")
    finding = _evidence_finding(registry.get_scheme(tee), error)
    assert (finding.code, finding.claim, finding.value) == (code, claim, value)
    assert (finding.message, finding.expected, finding.actual) == ("why", "e", "a")
    info = code_info(code)
    assert isinstance(info, CodeInfo) and (info.claim, info.value) == (claim.value, value)


# The old rule, for every evidence code at once (TDX's five TCB codes were its scheme's contraindicated_codes; only
# the TDX verifier raises them).
OLD_TDX_TCB_CODES = {
    "TDX_TCB_LEVEL_NOT_FOUND",
    "TDX_FMSPC_MISMATCH",
    "TDX_PCEID_MISMATCH",
    "TDX_QE_IDENTITY_MISMATCH",
    "TDX_MODULE_IDENTITY_NOT_FOUND",
}


def _old_tier(code: str) -> tuple[str, int]:
    if code == "CHAIN_ROOT_UNTRUSTED":
        return Claim.INSTANCE_IDENTITY.value, NOT_RECOGNIZED
    if code.endswith("_REVOKED"):
        return Claim.INSTANCE_IDENTITY.value, CONTRAINDICATED
    if code in OLD_TDX_TCB_CODES:
        return Claim.HARDWARE.value, CONTRAINDICATED
    return Claim.INSTANCE_IDENTITY.value, CRYPTO_FAILED


def test_every_evidence_code_keeps_the_tier_the_suffix_rule_gave() -> None:
    evidence = {code: info for code, info in CATALOG.items() if info.kind is ErrorKind.EVIDENCE}
    assert OLD_TDX_TCB_CODES <= set(evidence)
    assert {code: (i.claim, i.value) for code, i in evidence.items()} == {code: _old_tier(code) for code in evidence}
