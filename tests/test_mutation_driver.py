"""scripts/mutation.py's own operators make the mutants they promise, every mutant of the seven modules parses,
and the equivalents file names real modules with a reason (the run itself is `make mutation`, not part of the tests)."""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path

import pytest
from cosmic_ray.ast import ast_nodes, get_ast_from_path
from cosmic_ray.mutating import mutate_code

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("mutation_driver", ROOT / "scripts" / "mutation.py")
assert _spec is not None and _spec.loader is not None
mutation = importlib.util.module_from_spec(_spec)
sys.modules["mutation_driver"] = mutation
_spec.loader.exec_module(mutation)
mutation.install_operators()


def mutants(operator_name: str, code: str) -> list[str]:
    operator = mutation.CUSTOM[operator_name]()
    found = []
    while (mutated := mutate_code(code, operator, len(found))) is not None:
        found.append(mutated)
    return found


def test_in_and_not_in_swap() -> None:
    assert mutants("ReplaceInWithNotIn", "x = a in b\nfor i in c: pass\n") == ["x = a not in b\nfor i in c: pass\n"]
    assert mutants("ReplaceNotInWithIn", "x = a not in b\n") == ["x = a in b\n"]


def test_strings_but_not_docstrings_types_or_dunder_all() -> None:
    code = (
        '"""Doc."""\n__all__ = ["f"]\nK = Literal["a"]\nx: "T" = "ab"\n'
        'def f(p: "T" = b"q") -> "T":\n    """Doc."""\n    return f"u:{p}!"\n'
    )
    assert mutants("ReplaceString", code) == [
        code.replace('= "ab"', '= "XXabXX"'),
        code.replace('b"q"', 'b"XXqXX"'),
        code.replace('f"u:{p}!"', 'f"XXu:XX{p}!"'),
        code.replace('f"u:{p}!"', 'f"u:{p}XX!XX"'),
    ]


def test_members_are_removed_one_at_a_time() -> None:
    assert mutants("RemoveMember", "S = {A, B}\n") == ["S = {B}\n", "S = {A}\n"]
    assert mutants("RemoveMember", "D = {'a': 1, 'b': 2}\n") == ["D = {'b': 2}\n", "D = {'a': 1}\n"]
    assert mutants("RemoveMember", "T = (1, 2)\n") == ["T = (2,)\n", "T = (1,)\n"]
    assert mutants("RemoveMember", "F = frozenset({A})\n") == ["F = frozenset({})\n"]
    # Not a tuple, not a comprehension, not an except clause's types (cosmic-ray's ExceptionReplacer covers those).
    assert mutants("RemoveMember", "x = (a)\ny = {k for k in z}\ntry: pass\nexcept (A, B): pass\n") == []


def test_a_set_gains_the_names_its_neighbours_hold() -> None:
    code = "T = {1: frozenset({A, B}), 2: frozenset({C})}\nU = {D}\n"
    assert mutants("AddSetMember", code) == [
        code.replace("{A, B}", "{A, B, C}"),
        code.replace("{C}", "{C, A}"),
        code.replace("{C}", "{C, B}"),
    ]


def test_statements_inside_functions_are_deleted() -> None:
    code = 'X = 1\ndef f():\n    """Doc."""\n    y = 2\n    g(y); return y\n'
    assert mutants("DeleteStatement", code) == [
        code.replace("y = 2", "pass"),
        code.replace("g(y);", "pass;"),
        code.replace("return y", "pass"),
    ]


def test_augmented_assignments() -> None:
    assert mutants("ReplaceAugmentedAssignment", "x += 1\ny -= 2\n") == [
        "x -= 1\ny -= 2\n",
        "x = 1\ny -= 2\n",
        "x += 1\ny += 2\n",
        "x += 1\ny = 2\n",
    ]


def test_cosmic_ray_operators_leave_types_and_keyword_only_markers_alone() -> None:
    operator = mutation.cosmic_ray.plugins.get_operator("core/ReplaceBinaryOperator_BitOr_BitAnd")()
    assert mutate_code(
        "def f(a: int | None, *, b: str | None = None) -> int | None:\n    return a | b\n", operator, 0
    ) == ("def f(a: int | None, *, b: str | None = None) -> int | None:\n    return a & b\n")
    operator = mutation.cosmic_ray.plugins.get_operator("core/ReplaceBinaryOperator_Mul_Add")()
    assert mutate_code("def f(a, *, b):\n    return a * b\n", operator, 0) == "def f(a, *, b):\n    return a + b\n"
    assert mutate_code("def f(a, *, b):\n    return a * b\n", operator, 1) is None


def test_only_the_chosen_core_operators_run() -> None:
    assert mutation.core_operator_wanted("ReplaceBinaryOperator_Add_Sub")
    assert not mutation.core_operator_wanted("ReplaceBinaryOperator_Add_BitXor")
    assert mutation.core_operator_wanted("ReplaceComparisonOperator_Lt_LtE")
    assert mutation.core_operator_wanted("ReplaceComparisonOperator_Is_IsNot")
    assert not mutation.core_operator_wanted("ReplaceComparisonOperator_Lt_Is")
    assert mutation.core_operator_wanted("NumberReplacer")
    assert not mutation.core_operator_wanted("VariableReplacer")


@pytest.mark.parametrize("target", mutation.TARGETS, ids=lambda target: target.name)
def test_our_operators_mutants_of_the_seven_modules_parse(target) -> None:
    # A few of each of our operators' mutants per module (all of them take too long for `make test`; the run itself
    # records any that doesn't parse as incompetent, never as killed).
    source = (ROOT / target.path).read_text()
    module = get_ast_from_path(ROOT / target.path)
    count = 0
    for name, operator_class in mutation.CUSTOM.items():
        operator = operator_class()
        positions = sum(1 for node in ast_nodes(module) for _ in operator.mutation_positions(node))
        for occurrence in sorted({0, positions // 2, positions - 1} & set(range(positions))):
            mutated = mutate_code(source, operator, occurrence)
            assert mutated is not None and mutated != source, (name, occurrence)
            compile(mutated, target.path, "exec")
            count += 1
    assert count >= 5
    assert all((ROOT / test.partition("::")[0]).exists() for test in target.tests)


def test_equivalents_name_a_module_an_operator_and_why() -> None:
    entries = tomllib.loads((ROOT / "scripts" / "mutation_equivalents.toml").read_text())["equivalent"]
    names = {target.name for target in mutation.TARGETS}
    operators = set(mutation.CUSTOM) | {name for name in mutation.cosmic_ray.plugins.OPERATOR_PROVIDERS["core"]}
    for entry in entries:
        assert set(entry) - {"nth"} == {"module", "function", "operator", "before", "after", "why"}, entry
        assert entry["module"] in names
        assert entry["operator"].split("/", 1)[1] in operators
        assert entry["before"] != entry["after"] and len(entry["why"]) > 20
    assert len({mutation._key(entry["module"], entry, entry.get("nth", 0)) for entry in entries}) == len(entries)


def test_changed_lines_of_a_diff() -> None:
    diff = "--- mutation diff ---\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-    a = 1\n+    a = 2\n"
    assert mutation.changed_lines(diff) == ("a = 1", "a = 2")
