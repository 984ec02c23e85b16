"""The state machines of SPEC §8: one transition table per mode, and which action may produce which move."""

from __future__ import annotations

from typing import Final

SOLO, GATEKEEPER, FIRE, ENFORCED = "SOLO", "GATEKEEPER", "FIRE", "ENFORCED"
MODES: Final = (SOLO, GATEKEEPER, FIRE, ENFORCED)

DRAFT = "DRAFT"
AWAITING_COUNTERPARTY = "AWAITING_COUNTERPARTY"
AWAITING_GATEKEEPER = "AWAITING_GATEKEEPER"
INTENT_LOCKED = "INTENT_LOCKED"
ACTIVE = "ACTIVE"
AWAITING_RESOLUTION = "AWAITING_RESOLUTION"
COMPLETED = "COMPLETED"
CANCELLED = "CANCELLED"
EXPIRED = "EXPIRED"
DISPUTED = "DISPUTED"
STATUSES: Final = (
    DRAFT,
    AWAITING_COUNTERPARTY,
    AWAITING_GATEKEEPER,
    INTENT_LOCKED,
    ACTIVE,
    AWAITING_RESOLUTION,
    COMPLETED,
    CANCELLED,
    EXPIRED,
    DISPUTED,
)
TERMINAL: Final = frozenset({COMPLETED, CANCELLED, EXPIRED})

# Nothing else may move a status: every write goes through allowed().
TRANSITIONS: Final[dict[str, dict[str, frozenset[str]]]] = {
    SOLO: {
        DRAFT: frozenset({INTENT_LOCKED, CANCELLED}),
        INTENT_LOCKED: frozenset({AWAITING_RESOLUTION, COMPLETED}),
        AWAITING_RESOLUTION: frozenset({COMPLETED, EXPIRED}),
    },
    GATEKEEPER: {
        DRAFT: frozenset({AWAITING_COUNTERPARTY, CANCELLED}),
        AWAITING_COUNTERPARTY: frozenset({AWAITING_GATEKEEPER, EXPIRED, CANCELLED}),
        AWAITING_GATEKEEPER: frozenset({INTENT_LOCKED, CANCELLED, EXPIRED}),
        INTENT_LOCKED: frozenset({AWAITING_RESOLUTION, COMPLETED, DISPUTED}),
        AWAITING_RESOLUTION: frozenset({COMPLETED, DISPUTED, EXPIRED}),
        DISPUTED: frozenset({COMPLETED}),
    },
    FIRE: {
        DRAFT: frozenset({AWAITING_COUNTERPARTY, CANCELLED}),
        AWAITING_COUNTERPARTY: frozenset({INTENT_LOCKED, EXPIRED, CANCELLED}),
        INTENT_LOCKED: frozenset({AWAITING_RESOLUTION}),
        AWAITING_RESOLUTION: frozenset({COMPLETED, DISPUTED}),
        DISPUTED: frozenset({COMPLETED}),
    },
    ENFORCED: {
        DRAFT: frozenset({AWAITING_COUNTERPARTY, CANCELLED}),
        AWAITING_COUNTERPARTY: frozenset({INTENT_LOCKED, EXPIRED, CANCELLED}),
        INTENT_LOCKED: frozenset({ACTIVE, EXPIRED}),
        ACTIVE: frozenset({AWAITING_RESOLUTION, EXPIRED}),
        AWAITING_RESOLUTION: frozenset({COMPLETED, DISPUTED, EXPIRED}),
        DISPUTED: frozenset({COMPLETED}),
    },
}

# The moves each user action can make (SPEC §7). An action is possible in a status when one of its
# moves is in that mode's table; `stake` moves nothing by itself but only before intent lock.
ACTION_MOVES: Final[dict[str, frozenset[str]]] = {
    "send": frozenset({AWAITING_COUNTERPARTY}),
    "confirm": frozenset({INTENT_LOCKED}),
    "accept": frozenset({AWAITING_GATEKEEPER, INTENT_LOCKED}),
    "verify": frozenset({INTENT_LOCKED, CANCELLED}),
    "respond": frozenset({AWAITING_RESOLUTION}),
    "complete": frozenset({COMPLETED}),
    "resolve": frozenset({COMPLETED, DISPUTED}),
    "dispute": frozenset({DISPUTED}),
    "cancel": frozenset({CANCELLED}),
}
ACTION_MODES: Final[dict[str, frozenset[str]]] = {
    "send": frozenset({GATEKEEPER, FIRE, ENFORCED}),
    "confirm": frozenset({SOLO}),
    "accept": frozenset({GATEKEEPER, FIRE, ENFORCED}),
    "verify": frozenset({GATEKEEPER}),
    "respond": frozenset({ENFORCED}),
    "complete": frozenset({SOLO, GATEKEEPER}),
    "resolve": frozenset(MODES),
    "dispute": frozenset({GATEKEEPER, FIRE, ENFORCED}),
    "cancel": frozenset(MODES),
}
# Where an action starts from, beyond what the table implies (e.g. `verify` re-runs while AWAITING_GATEKEEPER).
ACTION_FROM: Final[dict[str, frozenset[str]]] = {
    "send": frozenset({DRAFT}),
    "confirm": frozenset({DRAFT}),
    "accept": frozenset({AWAITING_COUNTERPARTY}),
    "verify": frozenset({AWAITING_GATEKEEPER}),
    "respond": frozenset({ACTIVE}),
    "complete": frozenset({INTENT_LOCKED, AWAITING_RESOLUTION}),
    "resolve": frozenset({INTENT_LOCKED, AWAITING_RESOLUTION, DISPUTED}),
    "dispute": frozenset({INTENT_LOCKED, AWAITING_RESOLUTION}),
    "cancel": frozenset({DRAFT, AWAITING_COUNTERPARTY, AWAITING_GATEKEEPER}),
}


def allowed(mode: str, from_status: str, to_status: str) -> bool:
    return to_status in TRANSITIONS.get(mode, {}).get(from_status, frozenset())


def action_allowed(mode: str, status: str, action: str) -> bool:
    """May `action` be attempted on a `mode` challenge in `status`? (Who may do it is checked elsewhere.)"""
    if mode not in ACTION_MODES.get(action, frozenset()) or status not in ACTION_FROM.get(action, frozenset()):
        return False
    return any(allowed(mode, status, target) for target in ACTION_MOVES[action])
