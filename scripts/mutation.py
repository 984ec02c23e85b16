"""Mutation testing of the money, identity and signature modules (issue 18): cosmic-ray plus operators of our own.

`make mutation` runs this under `nice -n 19`. Each module is mutated in a copy of the work tree of its own (never the
tree itself: others may be editing it, and two modules run at once), against its own fast test subset; every mutant
is one pytest run of that subset. The operators are cosmic-ray's (arithmetic, comparison, boolean, unary, number,
exception handler, loop, decorator), restricted to the useful replacements, plus ours below: `in`/`not in`, string,
augmented assignment, set/dict/list/tuple member removal, set member addition and statement deletion.

Survivors listed in scripts/mutation_equivalents.toml (matched on module, function, operator and the changed lines,
and `nth` among identical ones) are equivalent: the score is printed with and without them. Exit status 1 when a module scores under --min-score.

    .venv/bin/python scripts/mutation.py [--modules flags,signing] [--jobs 2] [--list] [--max-mutants N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cosmic_ray.plugins
import parso.python.tree as tree
from cosmic_ray.ast import ast_nodes, get_ast, get_ast_from_path
from cosmic_ray.commands import execute, init
from cosmic_ray.config import ConfigDict
from cosmic_ray.mutating import mutate_code
from cosmic_ray.operators.operator import Operator
from cosmic_ray.testing import run_tests
from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkResult
from parso.tree import BaseNode, NodeOrLeaf

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENTS = ROOT / "scripts" / "mutation_equivalents.toml"
# Plugins these tests don't need cost most of a run's startup (hypothesis's plugin alone ~0.6 s; @given works without).
PYTEST = ["-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-p", "no:schemathesis", "-p", "no:pytest_httpx",
          "-p", "no:anyio", "-p", "no:hypothesispytest", "-m", "not slow"]  # fmt: skip


@dataclass(frozen=True)
class Target:
    """One module and the fast tests that must kill its mutants."""

    path: str
    tests: tuple[str, ...]
    conftest: bool = False  # False: pytest --noconftest (the shared fixtures are not needed, startup is faster)
    shards: int = 1  # a big module's mutants split over this many workers (each with its own copy of the tree)

    @property
    def name(self) -> str:
        return self.path.removeprefix("src/")


TARGETS = (
    Target("src/challenges/settlement.py", ("tests/test_settlement_exact.py",)),
    Target(
        "src/challenges/modes.py",
        (
            "tests/test_transition_sets.py",
            "tests/test_state_machine.py::test_table_matches_spec",
            "tests/test_state_machine.py::test_every_status_move_is_in_the_mode_table",
        ),
    ),
    Target("src/core/auth.py", ("tests/test_auth_edges.py",)),
    # The seventh module: the other half of identity (issue 18's auth survivors — the Bearer-scheme guard and
    # whitespace-only headers — are decided here), and the code that turns a credential into a Principal.
    Target("src/accounts/credentials.py", ("tests/test_credentials_edges.py",), conftest=True),
    Target("src/core/flags.py", ("tests/test_flags_cohorts.py",)),
    Target("src/relay/signing.py", ("tests/test_signing_edges.py",)),
    Target("src/chain/signatures.py", ("tests/test_signature_edges.py", "tests/test_signatures.py"), shards=2),
)

# ---- which of cosmic-ray's operators run -------------------------------------------------------------------------

# Binary operators: the replacements that model real slips (not every one of the 11 others, most of them noise).
BINARY = {
    "Add": {"Sub", "Mul"},
    "Sub": {"Add"},
    "Mul": {"Div", "FloorDiv", "Add", "Pow"},
    "Div": {"Mul", "FloorDiv"},
    "FloorDiv": {"Div", "Mul", "Mod"},
    "Mod": {"FloorDiv", "Div"},
    "Pow": {"Mul"},
    "LShift": {"RShift"},
    "RShift": {"LShift"},
    "BitAnd": {"BitOr", "BitXor"},
    "BitOr": {"BitAnd"},
    "BitXor": {"BitOr", "BitAnd"},
}
ORDERING = {"Eq", "NotEq", "Lt", "LtE", "Gt", "GtE"}
IDENTITY = {"Is", "IsNot"}
UNARY = {"Delete_Not", "Delete_USub", "Delete_Invert", "USub_UAdd"}
OTHER_CORE = {
    "AddNot",
    "ReplaceTrueWithFalse",
    "ReplaceFalseWithTrue",
    "ReplaceAndWithOr",
    "ReplaceOrWithAnd",
    "NumberReplacer",
    "ExceptionReplacer",
    "ZeroIterationForLoop",
    "ReplaceBreakWithContinue",
    "ReplaceContinueWithBreak",
    "RemoveDecorator",
}


def core_operator_wanted(name: str) -> bool:
    if name.startswith("ReplaceBinaryOperator_"):
        source, target = name.removeprefix("ReplaceBinaryOperator_").split("_")
        return target in BINARY.get(source, set())
    if name.startswith("ReplaceComparisonOperator_"):
        source, target = name.removeprefix("ReplaceComparisonOperator_").split("_")
        return {source, target} <= ORDERING or {source, target} <= IDENTITY
    if name.startswith("ReplaceUnaryOperator_"):
        return name.removeprefix("ReplaceUnaryOperator_") in UNARY
    return name in OTHER_CORE


# ---- our operators -----------------------------------------------------------------------------------------------

TYPING_NAMES = {"Literal", "Awaitable", "Callable", "Final", "Optional", "Union", "Sequence", "Mapping", "Iterator",
                "Iterable", "type", "dict", "list", "tuple", "set", "frozenset", "ClassVar"}  # fmt: skip


def _ancestors(node: NodeOrLeaf) -> Iterator[BaseNode]:
    parent = node.parent
    while parent is not None:
        yield parent
        parent = parent.parent


def _top_statement(node: NodeOrLeaf) -> NodeOrLeaf:
    while node.parent is not None and node.parent.type != "file_input":
        node = node.parent
    return node


def _is_dunder_all(node: NodeOrLeaf) -> bool:
    top = _top_statement(node)
    return top.type == "simple_stmt" and top.get_code().lstrip().startswith("__all__")


def _in_type_expression(node: NodeOrLeaf) -> bool:
    """Inside `Literal[...]`, `Callable[...]` and the like: no behaviour, only types."""
    child = node
    for ancestor in _ancestors(node):
        if ancestor.type == "trailer" and ancestor.children[0].type == "operator" and ancestor.children[0].value == "[":
            first = ancestor.parent.children[0] if ancestor.parent is not None else None
            if isinstance(first, tree.Name) and first.value in TYPING_NAMES:
                return True
        # `name: <annotation> = value` and `def f(p: <annotation>) -> <annotation>`: only the annotations are types.
        if ancestor.type == "annassign" and child is ancestor.children[1]:
            return True
        if ancestor.type == "tfpdef" and child is not ancestor.children[0]:
            return True
        if ancestor.type == "funcdef" and child.get_previous_sibling() == "->":
            return True
        child = ancestor
    return False


def _is_docstring(node: NodeOrLeaf) -> bool:
    parent = node.parent
    return parent is not None and parent.type == "simple_stmt" and parent.children[0] is node


def _in_function(node: NodeOrLeaf) -> bool:
    return any(ancestor.type == "funcdef" for ancestor in _ancestors(node))


def _replacement(code: str) -> NodeOrLeaf:
    """A node that prints as `code` (cosmic-ray's own operators splice parsed snippets the same way)."""
    return get_ast(code)


class _Custom(Operator):
    @classmethod
    def examples(cls) -> tuple[()]:
        return ()


class ReplaceInWithNotIn(_Custom):
    """`a in b` → `a not in b`."""

    source, target = "in", "not in"

    def mutation_positions(self, node: NodeOrLeaf) -> Iterator[tuple[tuple[int, int], tuple[int, int]]]:
        for op in self._ops(node):
            yield (op.start_pos, op.end_pos)

    def mutate(self, node: Any, index: int) -> NodeOrLeaf:
        op = list(self._ops(node))[index]
        node.children[node.children.index(op)] = _replacement(op.get_first_leaf().prefix + self.target)
        return node

    def _ops(self, node: NodeOrLeaf) -> Iterator[NodeOrLeaf]:
        if node.type == "comparison":
            for op in node.children[1::2]:
                if " ".join(op.get_code().split()) == self.source:
                    yield op


class ReplaceNotInWithIn(ReplaceInWithNotIn):
    """`a not in b` → `a in b`."""

    source, target = "not in", "in"


class ReplaceString(_Custom):
    """A string literal (not a docstring, not a type) gets `XX` at both ends; an f-string's text parts too."""

    def mutation_positions(self, node: NodeOrLeaf) -> Iterator[tuple[tuple[int, int], tuple[int, int]]]:
        if self._wanted(node):
            yield (node.start_pos, node.end_pos)

    def mutate(self, node: Any, index: int) -> NodeOrLeaf:
        if node.type == "fstring_string":
            node.value = "XX" + node.value + "XX"
            return node
        value: str = node.value
        start = next(i for i, char in enumerate(value) if char in "'\"")
        quote = value[start : start + 3] if value[start : start + 3] in ('"""', "'''") else value[start]
        body = value[start + len(quote) : len(value) - len(quote)]
        node.value = value[: start + len(quote)] + "XX" + body + "XX" + quote
        return node

    @staticmethod
    def _wanted(node: NodeOrLeaf) -> bool:
        if node.type == "fstring_string":
            return node.parent is not None and node.parent.type == "fstring" and not _is_dunder_all(node)
        if node.type != "string":
            return False
        return not (_is_docstring(node) or _is_dunder_all(node) or _in_type_expression(node))


class ReplaceAugmentedAssignment(_Custom):
    """`x += y` → `x -= y` and `x = y`; `x -= y` → `x += y` and `x = y`."""

    TARGETS = {"+=": ("-=", "="), "-=": ("+=", "=")}

    def mutation_positions(self, node: NodeOrLeaf) -> Iterator[tuple[tuple[int, int], tuple[int, int]]]:
        if isinstance(node, tree.Operator) and node.value in self.TARGETS:
            for _ in self.TARGETS[node.value]:
                yield (node.start_pos, node.end_pos)

    def mutate(self, node: Any, index: int) -> NodeOrLeaf:
        node.value = self.TARGETS[node.value][index]
        return node


def _display_elements(node: NodeOrLeaf) -> list[list[NodeOrLeaf]] | None:
    """The elements of a set/dict/list/tuple display (each a list of nodes: `k`, `:`, `v` for a dict), or None."""
    if node.type != "atom" or not isinstance(node, BaseNode) or len(node.children) != 3:
        return None
    opening = node.children[0]
    if not isinstance(opening, tree.Operator) or opening.value not in "{[(":
        return None
    middle = node.children[1]
    if middle.type in {"dictorsetmaker", "testlist_comp"} and isinstance(middle, BaseNode):
        if any(child.type in {"comp_for", "sync_comp_for"} for child in middle.children):
            return None
        groups: list[list[NodeOrLeaf]] = [[]]
        for child in middle.children:
            if isinstance(child, tree.Operator) and child.value == ",":
                groups.append([])
            else:
                groups[-1].append(child)
        groups = [group for group in groups if group]
        if opening.value == "(" and len(groups) < 2 and middle.children[-1] != ",":
            return None
        return groups
    if opening.value == "(":
        return None  # a parenthesized expression, not a tuple
    return [[middle]]


def _display_code(node: Any, groups: list[list[NodeOrLeaf]]) -> str:
    opening, closing = node.children[0].value, node.children[2].value
    texts = ["".join(part.get_code() for part in group).strip() for group in groups]
    inner = ", ".join(texts) + ("," if opening == "(" and len(texts) == 1 else "")
    return node.get_first_leaf().prefix + opening + inner + closing


class RemoveMember(_Custom):
    """Each element of a set, dict, list or tuple display, removed in turn (not in `__all__` or `except (...)`)."""

    def mutation_positions(self, node: NodeOrLeaf) -> Iterator[tuple[tuple[int, int], tuple[int, int]]]:
        groups = self._groups(node)
        for _ in groups or ():
            yield (node.start_pos, node.end_pos)

    def mutate(self, node: Any, index: int) -> NodeOrLeaf:
        groups = self._groups(node) or []
        return _replacement(_display_code(node, groups[:index] + groups[index + 1 :]))

    @staticmethod
    def _groups(node: NodeOrLeaf) -> list[list[NodeOrLeaf]] | None:
        if node.type != "atom" or _is_dunder_all(node) or _in_type_expression(node):
            return None
        if node.parent is not None and node.parent.type == "except_clause":
            return None  # cosmic-ray's ExceptionReplacer covers the handler's types
        return _display_elements(node)


class AddSetMember(_Custom):
    """A set of names gains each name that other sets of the same top-level statement hold (a table's missing edge)."""

    def mutation_positions(self, node: NodeOrLeaf) -> Iterator[tuple[tuple[int, int], tuple[int, int]]]:
        for _ in self._additions(node):
            yield (node.start_pos, node.end_pos)

    def mutate(self, node: Any, index: int) -> NodeOrLeaf:
        groups = _display_elements(node) or []
        addition = self._additions(node)[index]
        code = _display_code(node, groups)
        return _replacement(code[:-1] + ", " + addition + code[-1])

    @staticmethod
    def _names(node: NodeOrLeaf) -> list[str] | None:
        if node.type != "atom" or node.children[0].value != "{":  # type: ignore[attr-defined]
            return None
        groups = _display_elements(node)
        if not groups or any(len(group) != 1 or not isinstance(group[0], tree.Name) for group in groups):
            return None
        return [group[0].value for group in groups]  # type: ignore[attr-defined]

    def _additions(self, node: NodeOrLeaf) -> list[str]:
        names = self._names(node)
        if names is None:
            return []
        pool: set[str] = set()
        for other in ast_nodes(_top_statement(node)):
            pool.update(self._names(other) or ())
        return sorted(pool - set(names))


class DeleteStatement(_Custom):
    """A simple statement inside a function becomes `pass` (docstrings and `pass` itself excepted)."""

    def mutation_positions(self, node: NodeOrLeaf) -> Iterator[tuple[tuple[int, int], tuple[int, int]]]:
        if self._wanted(node):
            yield (node.start_pos, node.end_pos)

    def mutate(self, node: Any, index: int) -> NodeOrLeaf:
        return tree.Keyword("pass", node.start_pos, prefix=node.get_first_leaf().prefix)

    @staticmethod
    def _wanted(node: NodeOrLeaf) -> bool:
        parent = node.parent
        if parent is None or parent.type != "simple_stmt" or node.type in {"newline", "operator", "string"}:
            return False
        if isinstance(node, tree.Keyword) and node.value == "pass":
            return False
        return _in_function(node)


CUSTOM: dict[str, type[Operator]] = {
    operator.__name__: operator
    for operator in (ReplaceInWithNotIn, ReplaceNotInWithIn, ReplaceString, ReplaceAugmentedAssignment, RemoveMember,
                     AddSetMember, DeleteStatement)
}  # fmt: skip


class _Provider:
    def __init__(self, operators: dict[str, type[Operator]]) -> None:
        self._operators = operators

    def __iter__(self) -> Iterator[str]:
        return iter(self._operators)

    def __getitem__(self, name: str) -> type[Operator]:
        return self._operators[name]


_NOT_BINARY = {"parameters", "typedargslist", "varargslist", "lambdef"}


def _guarded(operator: type[Operator]) -> type[Operator]:
    """A cosmic-ray operator that leaves types alone (`str | None` in a signature is no behaviour), and the `*` that
    marks keyword-only parameters (its 'binary' replacements can't even parse)."""

    class Guarded(operator):  # type: ignore[misc, valid-type]
        def mutation_positions(self, node: NodeOrLeaf) -> Iterator[tuple[tuple[int, int], tuple[int, int]]]:
            if node.parent is not None and node.parent.type in _NOT_BINARY:
                return
            for position in super().mutation_positions(node):
                if _in_type_expression(node):
                    return
                yield position

    Guarded.__name__ = operator.__name__
    return Guarded


def install_operators() -> None:
    """cosmic-ray's providers become: its core operators we want, plus ours as `th/...` (idempotent)."""
    providers = cosmic_ray.plugins.OPERATOR_PROVIDERS
    if "th" in providers:
        return
    core = providers["core"]
    providers.clear()
    providers.update(
        {
            "core": _Provider({name: _guarded(core[name]) for name in core if core_operator_wanted(name)}),
            "th": _Provider(CUSTOM),
        }
    )


# ---- the work tree copy and the test command ---------------------------------------------------------------------


def copy_tree(destination: Path) -> None:
    """The work tree as it is now (tracked and untracked files, not ignored ones) under `destination`."""
    git = shutil.which("git") or "git"
    listed = subprocess.run(
        [git, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for name in sorted(set(filter(None, listed.split("\0")))):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def test_command(target: Target) -> list[str]:
    return [sys.executable, *PYTEST, *([] if target.conftest else ["--noconftest"]), *target.tests]


# ---- one module (a worker process) -------------------------------------------------------------------------------


def changed_lines(diff: str) -> tuple[str, str]:
    """The removed and added lines of a unified diff, stripped and joined."""
    lines = diff.splitlines()
    before = [line[1:].strip() for line in lines if line.startswith("-") and not line.startswith("---")]
    after = [line[1:].strip() for line in lines if line.startswith("+") and not line.startswith("+++")]
    return "\n".join(before), "\n".join(after)


def run_module(
    target: Target, workdir: Path, max_mutants: int | None, shard: tuple[int, int] = (0, 1)
) -> dict[str, Any]:
    os.chdir(workdir)
    os.environ["PYTHONPATH"] = str(workdir / "src")
    install_operators()
    # cosmic-ray splits the command with shlex; the baseline runs the very same string through cosmic-ray.
    command = shlex.join(test_command(target))
    started = time.monotonic()
    outcome, output = run_tests(command, 600)
    baseline_seconds = time.monotonic() - started
    if outcome != TestOutcome.SURVIVED:
        return {"module": target.name, "error": "the unmutated tests fail:\n" + output[-3000:]}
    timeout = max(20.0, 4 * baseline_seconds + 10)
    config = ConfigDict({"test-command": command, "timeout": timeout, "distributor": {"name": "local"}})
    with use_db(str(workdir / "session.sqlite"), WorkDB.Mode.create) as db:
        init([Path(target.path)], db, {})
        select(db, max_mutants, shard, target.name)
        mark_unparsable(db, Path(target.path))
        execute(db, config)
        mutants = []
        for item, result in db.completed_work_items:
            if result.worker_outcome == WorkerOutcome.SKIPPED:
                continue
            (mutation,) = item.mutations
            before, after = changed_lines(result.diff or "")
            if result.worker_outcome == WorkerOutcome.NORMAL:
                outcome = "survived" if result.test_outcome == TestOutcome.SURVIVED else "killed"
                if result.output == "timeout":
                    outcome = "timeout"
            else:
                outcome = "incompetent" if result.worker_outcome != WorkerOutcome.NO_TEST else "no-mutation"
            mutants.append(
                {
                    "operator": mutation.operator_name,
                    "occurrence": mutation.occurrence,
                    "line": mutation.start_pos[0],
                    "function": mutation.definition_name or "",
                    "before": before,
                    "after": after,
                    "outcome": outcome,
                }
            )
    mutants.sort(key=lambda mutant: (mutant["line"], mutant["operator"], mutant["occurrence"]))
    return {
        "module": target.name,
        "path": target.path,
        "baseline_seconds": round(baseline_seconds, 2),
        "seconds": round(time.monotonic() - started, 1),
        "mutants": mutants,
    }


def mark_unparsable(db: WorkDB, path: Path) -> None:
    """A mutant that does not compile would 'fail' its tests: record it as incompetent instead, untested."""
    source = path.read_text()
    broken = []
    for item in db.pending_work_items:
        (mutation,) = item.mutations
        operator = cosmic_ray.plugins.get_operator(mutation.operator_name)()
        code = mutate_code(source, operator, mutation.occurrence)
        try:
            compile(code or source, str(path), "exec")
        except SyntaxError:
            broken.append(item.job_id)
    if broken:
        db.set_multiple_results(
            broken, WorkResult(worker_outcome=WorkerOutcome.ABNORMAL, test_outcome=TestOutcome.INCOMPETENT)
        )


def select(db: WorkDB, limit: int | None, shard: tuple[int, int], seed: str) -> None:
    """Keeps a fixed pseudo-random `limit` of the module's mutants (all without one), then this worker's shard
    (every n-th of them, from the k-th); the rest are marked skipped. Every worker of a module sees the same order."""
    items = sorted(
        db.pending_work_items, key=lambda item: (item.mutations[0].operator_name, item.mutations[0].occurrence)
    )
    kept = range(len(items))
    if limit is not None and len(items) > limit:
        kept = sorted(random.Random(seed).sample(range(len(items)), limit))  # a reproducible sample
    index, count = shard
    keep = set(list(kept)[index::count])
    skipped = [item.job_id for position, item in enumerate(items) if position not in keep]
    if skipped:
        db.set_multiple_results(skipped, WorkResult(worker_outcome=WorkerOutcome.SKIPPED))


def count_mutants(target: Target) -> Counter[str]:
    install_operators()
    counts: Counter[str] = Counter()
    module = get_ast_from_path(ROOT / target.path)
    for provider_name, provider in cosmic_ray.plugins.OPERATOR_PROVIDERS.items():
        for name in provider:
            operator = provider[name]()
            family = name.split("_")[0] if provider_name == "core" else name
            counts[f"{provider_name}/{family}"] += sum(
                1 for node in ast_nodes(module) for _ in operator.mutation_positions(node)
            )
    return counts


# ---- the report --------------------------------------------------------------------------------------------------


def load_equivalents() -> list[dict[str, str]]:
    if not EQUIVALENTS.exists():
        return []
    return list(tomllib.loads(EQUIVALENTS.read_text())["equivalent"])


Key = tuple[str, str, str, str, str, int]


def _key(module: str, mutant: dict[str, Any], nth: int = 0) -> Key:
    """What an equivalents entry matches; `nth` (1-based, in line order) picks one of identical-looking mutants."""
    return (module, mutant["function"], mutant["operator"], mutant["before"], mutant["after"], nth)


def report(results: list[dict[str, Any]], min_score: float, *, sampled: bool = False) -> bool:
    equivalents = load_equivalents()
    listed = {_key(entry["module"], entry, int(entry.get("nth", 0))): entry for entry in equivalents}
    matched: set[Key] = set()
    ok = True
    rows = []
    survivors: list[tuple[str, dict[str, Any]]] = []
    for result in results:
        if "error" in result:
            print(f"{result['module']}: {result['error']}")
            ok = False
            continue
        mutants = [mutant for mutant in result["mutants"] if mutant["outcome"] not in {"no-mutation"}]
        tested = [mutant for mutant in mutants if mutant["outcome"] != "incompetent"]
        killed = sum(mutant["outcome"] in {"killed", "timeout"} for mutant in tested)
        equivalent = 0
        seen: Counter[Key] = Counter()
        for mutant in tested:
            key = _key(result["module"], mutant)
            seen[key] += 1
            if (nth := _key(result["module"], mutant, seen[key])) in listed:
                key = nth
            if key in listed:
                matched.add(key)
                if mutant["outcome"] == "survived":
                    equivalent += 1
                    continue
                print(
                    f"note: listed as equivalent but killed: {result['module']}:{mutant['line']} {mutant['operator']}"
                )
            if mutant["outcome"] == "survived":
                survivors.append((result["module"], mutant))
        survived = len(tested) - killed
        score = 100 * killed / len(tested) if tested else 100.0
        excluded = 100 * killed / (len(tested) - equivalent) if len(tested) > equivalent else 100.0
        ok = ok and excluded >= min_score
        rows.append((result["module"], len(tested), killed, survived, equivalent,
                     len(mutants) - len(tested), score, excluded, result["seconds"]))  # fmt: skip
    print()
    header = ("module", "mutants", "killed", "survived", "equivalent", "incompetent", "score", "excl. equiv.", "time")
    print("{:<28} {:>7} {:>6} {:>8} {:>10} {:>11} {:>7} {:>12} {:>7}".format(*header))
    for module, total, killed, survived, equivalent, incompetent, score, excluded, seconds in rows:
        print(
            f"{module:<28} {total:>7} {killed:>6} {survived:>8} {equivalent:>10} {incompetent:>11} {score:>6.1f}%"
            f" {excluded:>11.1f}% {seconds:>6.0f}s"
        )
    if survivors:
        print(f"\nSurviving mutants not listed in {EQUIVALENTS.relative_to(ROOT)} ({len(survivors)}):")
        for module, mutant in survivors:
            print(f"  {module}:{mutant['line']} in {mutant['function'] or '<module>'}: {mutant['operator']}")
            print("    - " + mutant["before"].replace("\n", "\n    - "))
            print("    + " + mutant["after"].replace("\n", "\n    + "))
    else:
        print("\nNo surviving mutants beyond the listed equivalents.")
    run_modules = {result["module"] for result in results}
    # A sample leaves out mutants, so entries it did not meet are not stale.
    stale = [] if sampled else [e for k, e in listed.items() if k not in matched and e["module"] in run_modules]
    for entry in stale:
        print(f"note: stale equivalent (no such mutant now): {entry['module']} {entry['operator']}: {entry['before']}")
    return ok


# ---- entry points ------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", help="comma-separated module names (e.g. core/flags.py or flags); default all")
    parser.add_argument("--jobs", type=int, default=2, help="modules mutated at once (default 2)")
    parser.add_argument("--list", action="store_true", help="count the mutants per module and operator, run nothing")
    parser.add_argument("--max-mutants", type=int, help="a fixed random sample of at most N mutants per module")
    parser.add_argument("--min-score", type=float, default=95.0, help="per-module score (excl. equivalents) to pass")
    parser.add_argument("--json", type=Path, help="also write every mutant's outcome to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--shard", default="0/1", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        target = next(target for target in TARGETS if target.name == args.worker)
        index, count = (int(part) for part in args.shard.split("/"))
        args.out.write_text(json.dumps(run_module(target, args.workdir, args.max_mutants, (index, count))))
        return 0
    targets = [
        target
        for target in TARGETS
        if not args.modules or any(wanted in target.name for wanted in args.modules.split(","))
    ]
    if args.list:
        for target in targets:
            counts = count_mutants(target)
            print(f"{target.name}: {sum(counts.values())} mutants")
            for family, count in sorted(counts.items()):
                if count:
                    print(f"  {family}: {count}")
        return 0
    return run_all(targets, args)


def run_all(targets: list[Target], args: argparse.Namespace) -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mutation-") as scratch:
        # The biggest pieces of work first, so the last one to finish is a small one.
        cost = {target.name: sum(count_mutants(target).values()) * (2 if target.conftest else 1) for target in targets}
        pending = sorted(
            ((target, index) for target in targets for index in range(target.shards)),
            key=lambda task: -cost[task[0].name] / task[0].shards,
        )
        running: list[tuple[subprocess.Popen[bytes], str]] = []
        outputs: dict[str, list[Path]] = {target.name: [] for target in targets}
        while pending or running:
            while pending and len(running) < max(1, args.jobs):
                target, index = pending.pop(0)
                label = target.name + (f" (shard {index + 1}/{target.shards})" if target.shards > 1 else "")
                workdir = Path(scratch) / f"{target.name.replace('/', '_').removesuffix('.py')}-{index}"
                copy_tree(workdir)
                out = Path(scratch) / (workdir.name + ".json")
                command = [sys.executable, str(Path(__file__).resolve()), "--worker", target.name,
                           "--workdir", str(workdir), "--out", str(out), "--shard", f"{index}/{target.shards}"]  # fmt: skip
                if args.max_mutants is not None:
                    command += ["--max-mutants", str(args.max_mutants)]
                print(f"mutating {label} against {' '.join(target.tests)}", flush=True)
                running.append((subprocess.Popen(command, stdout=subprocess.DEVNULL), label))
                outputs[target.name].append(out)
            for entry in list(running):
                process, label = entry
                if process.poll() is not None:
                    running.remove(entry)
                    status = "done" if process.returncode == 0 else f"failed ({process.returncode})"
                    print(f"  {label}: {status} after {time.monotonic() - started:.0f}s", flush=True)
            time.sleep(0.5)
        results = [merge(target, outputs[target.name]) for target in targets]
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    ok = report(results, args.min_score, sampled=args.max_mutants is not None)
    print(f"\n{len(targets)} modules in {time.monotonic() - started:.0f}s")
    return 0 if ok else 1


def merge(target: Target, outs: list[Path]) -> dict[str, Any]:
    """One module's result from its shards' (an error if any shard has none)."""
    parts = [json.loads(out.read_text()) if out.exists() else {"error": "no result"} for out in outs]
    errors = [part["error"] for part in parts if "error" in part]
    if errors:
        return {"module": target.name, "error": errors[0]}
    mutants = sorted(
        (mutant for part in parts for mutant in part["mutants"]),
        key=lambda mutant: (mutant["line"], mutant["operator"], mutant["occurrence"]),
    )
    return {
        "module": target.name,
        "path": target.path,
        "baseline_seconds": max(part["baseline_seconds"] for part in parts),
        "seconds": round(sum(part["seconds"] for part in parts), 1),
        "mutants": mutants,
    }


if __name__ == "__main__":
    sys.exit(main())
