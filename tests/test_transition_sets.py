"""The (mode, from, to) moves of SPEC §8 as exact sets: adding or dropping any edge of any mode fails here."""

from __future__ import annotations

import itertools

import pytest

from challenges import modes

# Written out from SPEC §8, independently of challenges.modes.
SPEC_EDGES: dict[str, set[tuple[str, str]]] = {
    "SOLO": {
        ("DRAFT", "INTENT_LOCKED"), ("DRAFT", "CANCELLED"),
        ("INTENT_LOCKED", "AWAITING_RESOLUTION"), ("INTENT_LOCKED", "COMPLETED"),
        ("AWAITING_RESOLUTION", "COMPLETED"), ("AWAITING_RESOLUTION", "EXPIRED"),
    },
    "GATEKEEPER": {
        ("DRAFT", "AWAITING_COUNTERPARTY"), ("DRAFT", "CANCELLED"),
        ("AWAITING_COUNTERPARTY", "AWAITING_GATEKEEPER"), ("AWAITING_COUNTERPARTY", "EXPIRED"),
        ("AWAITING_COUNTERPARTY", "CANCELLED"),
        ("AWAITING_GATEKEEPER", "INTENT_LOCKED"), ("AWAITING_GATEKEEPER", "CANCELLED"),
        ("AWAITING_GATEKEEPER", "EXPIRED"),
        ("INTENT_LOCKED", "AWAITING_RESOLUTION"), ("INTENT_LOCKED", "COMPLETED"), ("INTENT_LOCKED", "DISPUTED"),
        ("AWAITING_RESOLUTION", "COMPLETED"), ("AWAITING_RESOLUTION", "DISPUTED"), ("AWAITING_RESOLUTION", "EXPIRED"),
        ("DISPUTED", "COMPLETED"),
    },
    "FIRE": {
        ("DRAFT", "AWAITING_COUNTERPARTY"), ("DRAFT", "CANCELLED"),
        ("AWAITING_COUNTERPARTY", "INTENT_LOCKED"), ("AWAITING_COUNTERPARTY", "EXPIRED"),
        ("AWAITING_COUNTERPARTY", "CANCELLED"),
        ("INTENT_LOCKED", "AWAITING_RESOLUTION"),
        ("AWAITING_RESOLUTION", "COMPLETED"), ("AWAITING_RESOLUTION", "DISPUTED"),
        ("DISPUTED", "COMPLETED"),
    },
    "ENFORCED": {
        ("DRAFT", "AWAITING_COUNTERPARTY"), ("DRAFT", "CANCELLED"),
        ("AWAITING_COUNTERPARTY", "INTENT_LOCKED"), ("AWAITING_COUNTERPARTY", "EXPIRED"),
        ("AWAITING_COUNTERPARTY", "CANCELLED"),
        ("INTENT_LOCKED", "ACTIVE"), ("INTENT_LOCKED", "EXPIRED"),
        ("ACTIVE", "AWAITING_RESOLUTION"), ("ACTIVE", "EXPIRED"),
        ("AWAITING_RESOLUTION", "COMPLETED"), ("AWAITING_RESOLUTION", "DISPUTED"), ("AWAITING_RESOLUTION", "EXPIRED"),
        ("DISPUTED", "COMPLETED"),
    },
}  # fmt: skip
SPEC_STATUSES = (
    "DRAFT",
    "AWAITING_COUNTERPARTY",
    "AWAITING_GATEKEEPER",
    "INTENT_LOCKED",
    "ACTIVE",
    "AWAITING_RESOLUTION",
    "COMPLETED",
    "CANCELLED",
    "EXPIRED",
    "DISPUTED",
)
# SPEC §7's action table: which status each action moves to, in which modes, and from where.
SPEC_ACTION_MOVES = {
    "send": {"AWAITING_COUNTERPARTY"},
    "confirm": {"INTENT_LOCKED"},
    "accept": {"AWAITING_GATEKEEPER", "INTENT_LOCKED"},
    "verify": {"INTENT_LOCKED", "CANCELLED"},
    "respond": {"AWAITING_RESOLUTION"},
    "complete": {"COMPLETED"},
    "resolve": {"COMPLETED", "DISPUTED"},
    "dispute": {"DISPUTED"},
    "cancel": {"CANCELLED"},
}
SPEC_ACTION_MODES = {
    "send": {"GATEKEEPER", "FIRE", "ENFORCED"},
    "confirm": {"SOLO"},
    "accept": {"GATEKEEPER", "FIRE", "ENFORCED"},
    "verify": {"GATEKEEPER"},
    "respond": {"ENFORCED"},
    "complete": {"SOLO", "GATEKEEPER"},
    "resolve": {"SOLO", "GATEKEEPER", "FIRE", "ENFORCED"},
    "dispute": {"GATEKEEPER", "FIRE", "ENFORCED"},
    "cancel": {"SOLO", "GATEKEEPER", "FIRE", "ENFORCED"},
}
SPEC_ACTION_FROM = {
    "send": {"DRAFT"},
    "confirm": {"DRAFT"},
    "accept": {"AWAITING_COUNTERPARTY"},
    "verify": {"AWAITING_GATEKEEPER"},
    "respond": {"ACTIVE"},
    "complete": {"INTENT_LOCKED", "AWAITING_RESOLUTION"},
    "resolve": {"INTENT_LOCKED", "AWAITING_RESOLUTION", "DISPUTED"},
    "dispute": {"INTENT_LOCKED", "AWAITING_RESOLUTION"},
    "cancel": {"DRAFT", "AWAITING_COUNTERPARTY", "AWAITING_GATEKEEPER"},
}


def test_statuses_modes_and_terminals_are_the_spec_lists() -> None:
    assert modes.STATUSES == SPEC_STATUSES
    assert modes.MODES == ("SOLO", "GATEKEEPER", "FIRE", "ENFORCED")
    assert {"COMPLETED", "CANCELLED", "EXPIRED"} == modes.TERMINAL
    assert (modes.SOLO, modes.GATEKEEPER, modes.FIRE, modes.ENFORCED) == modes.MODES
    assert (modes.DRAFT, modes.AWAITING_COUNTERPARTY, modes.AWAITING_GATEKEEPER, modes.INTENT_LOCKED, modes.ACTIVE,
            modes.AWAITING_RESOLUTION, modes.COMPLETED, modes.CANCELLED, modes.EXPIRED,
            modes.DISPUTED) == SPEC_STATUSES  # fmt: skip


@pytest.mark.parametrize("mode", list(SPEC_EDGES))
def test_allowed_moves_are_exactly_the_spec_edges(mode: str) -> None:
    moves = {
        (before, after)
        for before, after in itertools.product(SPEC_STATUSES, SPEC_STATUSES)
        if modes.allowed(mode, before, after)
    }
    assert moves == SPEC_EDGES[mode]


@pytest.mark.parametrize("mode", list(SPEC_EDGES))
def test_the_table_holds_exactly_the_spec_edges(mode: str) -> None:
    table = modes.TRANSITIONS[mode]
    assert {(before, after) for before, targets in table.items() for after in targets} == SPEC_EDGES[mode]
    # No status maps to an empty set (it would mean the same as no entry, and hide a typo).
    assert all(table.values())


def test_no_mode_beyond_the_four() -> None:
    assert set(modes.TRANSITIONS) == set(SPEC_EDGES)


def test_terminal_statuses_and_unknown_names_never_move() -> None:
    for mode, before, after in itertools.product(SPEC_EDGES, modes.TERMINAL, SPEC_STATUSES):
        assert not modes.allowed(mode, before, after)
    assert not modes.allowed("NOPE", "DRAFT", "CANCELLED")
    assert not modes.allowed("SOLO", "NOPE", "CANCELLED")
    assert not modes.allowed("SOLO", "DRAFT", "NOPE")
    assert not modes.allowed("solo", "DRAFT", "CANCELLED")


def test_action_tables_are_the_spec_action_table() -> None:
    assert {action: set(moves) for action, moves in modes.ACTION_MOVES.items()} == SPEC_ACTION_MOVES
    assert {action: set(names) for action, names in modes.ACTION_MODES.items()} == SPEC_ACTION_MODES
    assert {action: set(names) for action, names in modes.ACTION_FROM.items()} == SPEC_ACTION_FROM


def test_unknown_actions_modes_and_statuses_are_never_allowed() -> None:
    assert not modes.action_allowed("SOLO", "DRAFT", "stake")
    assert not modes.action_allowed("SOLO", "DRAFT", "nope")
    assert not modes.action_allowed("NOPE", "DRAFT", "cancel")
    assert not modes.action_allowed("SOLO", "NOPE", "cancel")
    assert modes.action_allowed("SOLO", "DRAFT", "cancel")


def test_an_action_needs_its_mode_its_start_and_a_move_in_the_table() -> None:
    # Each guard alone refuses: the mode (confirm is SOLO only), the start (cancel never from INTENT_LOCKED),
    # and the table (FIRE may dispute from INTENT_LOCKED by ACTION_FROM, but its table has no such edge).
    assert not modes.action_allowed("GATEKEEPER", "DRAFT", "confirm")
    assert not modes.action_allowed("SOLO", "INTENT_LOCKED", "cancel")
    assert not modes.action_allowed("FIRE", "INTENT_LOCKED", "dispute")
    assert not modes.action_allowed("FIRE", "INTENT_LOCKED", "resolve")
    assert not modes.action_allowed("SOLO", "AWAITING_GATEKEEPER", "cancel")
    assert modes.action_allowed("FIRE", "AWAITING_COUNTERPARTY", "accept")
    assert modes.action_allowed("GATEKEEPER", "AWAITING_COUNTERPARTY", "accept")
    assert modes.action_allowed("GATEKEEPER", "INTENT_LOCKED", "dispute")
