"""Which deadline can move a challenge next, per status: kept in next_deadline_at for the timeout job."""

from __future__ import annotations

from typing import Any

from challenges import modes


def next_deadline(mode: str, status: str, row: dict[str, Any]) -> str | None:
    """The one deadline the timeout job must watch in this status, or None."""
    if status == modes.AWAITING_COUNTERPARTY:
        return row.get("accept_deadline")
    if status == modes.AWAITING_GATEKEEPER:
        return row.get("verification_deadline")
    if status == modes.ACTIVE:
        return row.get("response_deadline")
    if status == modes.AWAITING_RESOLUTION:
        if mode == modes.SOLO:
            return row.get("resolution_due_at")
        return row.get("dispute_deadline")
    return None
