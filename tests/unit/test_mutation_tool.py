"""The mutation tool's mutator (scripts/mutation.py): each operator yields the expected source, once per site."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

_PATH = Path(__file__).resolve().parents[2] / "scripts" / "mutation.py"


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutation_tool", _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("mutation_tool", module)
    spec.loader.exec_module(module)
    return module


mutation = _tool()

SAMPLE = textwrap.dedent(
    '''\
    """Doc."""
    from typing import TYPE_CHECKING

    if TYPE_CHECKING:
        import os

    log = None


    def check(value, limit):
        """Docstring: not a site."""
        if value < limit and value is not None:
            raise ValueError("low")
        verify(value, strict=True)
        log.info("checked %s", value == 1)
        while value in (1, 2):
            value += 1
        return True


    class Thing:
        def __repr__(self):
            return "x" if self == 1 else "y"

        def helper(self):
            assert self == 1
    '''
)


def _by_op(op: str) -> list[tuple[str, str, str]]:
    return [
        (m.ident, m.original.strip(), m.mutated.strip())
        for m in mutation.mutants_of("s.py", SAMPLE)
        if m.operator == op
    ]


def test_negate_condition_of_if_and_while_but_not_type_checking() -> None:
    assert _by_op("negate-cond") == [
        (
            "check:negate-cond:0",
            "if value < limit and value is not None:",
            "if not (value < limit and value is not None):",
        ),
        ("check:negate-cond:1", "while value in (1, 2):", "while not (value in (1, 2)):"),
    ]


def test_raise_becomes_pass() -> None:
    assert _by_op("raise-pass") == [("check:raise-pass:0", 'raise ValueError("low")', "pass")]


def test_each_comparison_operator_flips_once_and_logging_is_skipped() -> None:
    assert _by_op("flip-compare") == [
        (
            "check:flip-compare:0",
            "if value < limit and value is not None:",
            "if (value <= limit) and value is not None:",
        ),
        ("check:flip-compare:1", "if value < limit and value is not None:", "if value < limit and (value is None):"),
        ("check:flip-compare:2", "while value in (1, 2):", "while (value not in (1, 2)):"),
    ]


def test_and_becomes_or() -> None:
    assert _by_op("swap-boolop") == [
        ("check:swap-boolop:0", "if value < limit and value is not None:", "if (value < limit or value is not None):")
    ]


def test_return_bool_bare_call_and_bool_keyword() -> None:
    assert _by_op("flip-return") == [("check:flip-return:0", "return True", "return False")]
    assert _by_op("drop-call") == [("check:drop-call:0", "verify(value, strict=True)", "pass")]
    assert _by_op("flip-kwarg") == [("check:flip-kwarg:0", "verify(value, strict=True)", "verify(value, strict=False)")]


def test_repr_asserts_and_logging_make_no_sites() -> None:
    mutants = mutation.mutants_of("s.py", SAMPLE)
    assert all(m.func == "check" for m in mutants)
    assert len(mutants) == 10
    for m in mutants:  # every mutant compiles and differs from the original
        compile(m.source, "s.py", "exec")
        assert m.source != SAMPLE


def test_kept_names_restrict_the_sites() -> None:
    assert mutation.mutants_of("s.py", SAMPLE, frozenset({"Thing"})) == []
    assert len(mutation.mutants_of("s.py", SAMPLE, frozenset({"check"}))) == 10


def test_ids_survive_line_moves() -> None:
    moved = "\n\n\n" + SAMPLE
    before = [(m.ident, m.mutated) for m in mutation.mutants_of("s.py", SAMPLE)]
    after = [(m.ident, m.mutated) for m in mutation.mutants_of("s.py", moved)]
    assert before == after


def test_multiline_raise_and_non_ascii_columns() -> None:
    source = 'def f(x):\n    if x == "é":\n        raise ValueError(\n            "é",\n        )\n    return 1\n'
    by_op = {m.operator: m for m in mutation.mutants_of("s.py", source)}
    assert by_op["flip-compare"].mutated == "    if (x != 'é'):"
    compile(by_op["raise-pass"].source, "s.py", "exec")
    assert "ValueError" not in by_op["raise-pass"].source


def test_equivalents_file_parses(tmp_path: Path) -> None:
    path = tmp_path / "eq.txt"
    path.write_text("# comment\n\nverifier/a.py | f:flip-compare:0 | both branches raise the same error\n")
    assert mutation.load_equivalents(path) == {
        ("verifier/a.py", "f:flip-compare:0"): "both branches raise the same error"
    }
    path.write_text("verifier/a.py | no reason\n")
    with pytest.raises(ValueError, match="expected"):
        mutation.load_equivalents(path)


def test_the_repository_equivalents_file_is_well_formed() -> None:
    mutation.load_equivalents()
