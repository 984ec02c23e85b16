"""The challenge aggregate's store: all of its SQL; reads in one D1 batch parsed into typed records, writes as
statements for the action's one batch."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from operator import itemgetter
from typing import Any, TypeVar

from challenges.attestation import AttestationRow, parse_openings
from challenges.records import (
    ChallengeRecord,
    EnforcedConfigRecord,
    FireConfigRecord,
    FundsRequirementRecord,
    HistoryEntry,
    SlashEntry,
    StakeRecord,
    WalletRequirementRecord,
)
from core.auth import Caller, Principal, preloaded_or_read
from core.errors import ApiError
from core.ids import is_uuid4
from db.port import Database, QueryResult, Row, Statement, select_in

PARTY_ACTIONS = ("COMPLETE", "RESPOND", "RESOLVE")
_Record = TypeVar("_Record")


@dataclass(frozen=True)
class Aggregate:
    """A challenge with everything an endpoint or action needs, loaded in one batch, as typed records."""

    challenge: ChallengeRecord
    # The caller's role (CREATOR, COUNTERPARTY, ADMIN) or None; None also when loaded without a caller.
    role: str | None = None
    wallet_requirements: list[WalletRequirementRecord] = field(default_factory=list)
    funds_requirements: list[FundsRequirementRecord] = field(default_factory=list)
    stakes: list[StakeRecord] = field(default_factory=list)
    slash_entries: list[SlashEntry] = field(default_factory=list)
    fire_config: FireConfigRecord | None = None
    enforced_config: EnforcedConfigRecord | None = None
    # action (COMPLETE, RESPOND, RESOLVE) → user id → payload: each party's latest action of that kind.
    party_actions: dict[str, dict[str, str | None]] = field(default_factory=dict)
    # (wallet address, user id) pairs with a live (unrevoked) wallet verification, for this challenge's wallets.
    verified_wallets: frozenset[tuple[str, str]] = frozenset()
    attestations: dict[str, AttestationRow] = field(default_factory=dict)
    # When the standing proposal was announced (its event's time): loaded only by timeouts_due.
    proposal_announced_at: str | None = None

    @property
    def id(self) -> str:
        return self.challenge.id

    @property
    def held_stakes(self) -> list[StakeRecord]:
        return [stake for stake in self.stakes if stake.status == "HELD"]

    def actions(self, action: str) -> dict[str, str | None]:
        return dict(self.party_actions.get(action, {}))

    def wallet_verified(self, wallet: str, user_id: str | None) -> bool:
        return user_id is not None and (wallet, user_id) in self.verified_wallets


@dataclass(frozen=True)
class Timeline:
    """A challenge's status history and its events (GET /challenges/{id}/events)."""

    history: list[HistoryEntry]
    events: list[dict[str, Any]]


@dataclass(frozen=True)
class _Scope:
    """Which challenges a statement loads: `rows_sql` selects their rows (all of `challenges`' columns, and any
    extra one an Aggregate field reads), bound with `params`; `order` sorts them."""

    rows_sql: str
    params: tuple[Any, ...]
    order: str = ""


def _single(challenge_id: str) -> _Scope:
    return _Scope("SELECT * FROM challenges WHERE id = ?", (challenge_id,))


@dataclass(frozen=True)
class _Child:
    """Rows of a table under the aggregate, selected per challenge `p` as one JSON array of arrays (`columns`,
    in their order) in a column of the challenge's own row, so a whole aggregate is one row of one statement."""

    name: str
    source: str  # FROM … WHERE …, correlated with the challenge row `p`
    columns: tuple[str, ...]

    def sql(self) -> str:
        values = ", ".join(self.columns)
        return f"(SELECT json_group_array(json_array({values})) FROM {self.source}) AS {self.name}"  # noqa: S608


def _columns_of(cls: type, table: str = "t") -> tuple[str, ...]:
    """The record's fields as columns of `table`, in field order (the record is built positionally from them)."""
    return tuple(f"{table}.{column.name}" for column in fields(cls))


_WALLETS = _Child(
    "agg_wallet_requirements",
    "challenge_wallet_requirements t WHERE t.challenge_id = p.id",
    _columns_of(WalletRequirementRecord),
)
_FUNDS = _Child(
    "agg_funds_requirements", "funds_requirements t WHERE t.challenge_id = p.id", _columns_of(FundsRequirementRecord)
)
_STAKES = _Child("agg_stakes", "stakes t WHERE t.challenge_id = p.id", _columns_of(StakeRecord))
_SLASHES = _Child(
    "agg_slash_entries",
    "ledger_entries t WHERE t.challenge_id = p.id AND t.entry_type LIKE 'SLASH_%'",
    _columns_of(SlashEntry),
)
_FIRE = _Child("agg_fire_config", "fire_configs t WHERE t.challenge_id = p.id", _columns_of(FireConfigRecord))
_ENFORCED = _Child(
    "agg_enforced_config", "enforced_configs t WHERE t.challenge_id = p.id", _columns_of(EnforcedConfigRecord)
)
# Only what a single challenge's actions and proof pages need (not loaded for list pages).
_ACTIONS = _Child(
    "agg_party_actions", "challenge_party_actions t WHERE t.challenge_id = p.id", ("t.action", "t.user_id", "t.payload")
)
# Revoked when the wallet was re-linked to another user (gatekeeper.wallet): it no longer counts.
_VERIFIED = _Child(
    "agg_verified_wallets",
    "wallet_challenges w JOIN challenge_wallet_requirements r ON r.wallet_address = w.wallet_address"
    " WHERE r.challenge_id = p.id AND w.status = 'VERIFIED' AND w.revoked_at IS NULL"
    " AND w.verified_user_id IS NOT NULL",
    ("w.wallet_address", "w.verified_user_id"),
)
_ATTESTATIONS = _Child(
    "agg_attestations",
    "attestations t WHERE t.challenge_id = p.id",
    ("t.kind", "t.hash", "t.canonical_input", "t.openings", "t.created_at"),
)
_CHILDREN = ", ".join(child.sql() for child in (_WALLETS, _FUNDS, _STAKES, _SLASHES, _FIRE, _ENFORCED))
_DETAIL = ", ".join(child.sql() for child in (_ACTIONS, _VERIFIED, _ATTESTATIONS))
_NONE = "[]"  # what json_group_array gives for a challenge without such rows (most of them): nothing to decode


def _aggregate_statement(db: Database, scope: _Scope, *, detail: bool, caller: Caller | None = None) -> Statement:
    """The statement that loads every challenge of `scope` whole, one row each (children as JSON columns);
    with `caller`, each row also says whether the caller holds the challenge's invited wallet (for the role)."""
    columns = f"p.*, {_CHILDREN}, {_DETAIL}" if detail else f"p.*, {_CHILDREN}"
    params = scope.params
    if caller is not None:
        # The caller's id is a bound parameter or a fixed subquery on the bound key hash (core.auth.Caller).
        columns += (
            f", EXISTS (SELECT 1 FROM wallets WHERE user_id = {caller.sql}"  # noqa: S608
            " AND address = p.counterparty_wallet) AS agg_caller_holds_wallet"
        )
        params = (*caller.params, *params)  # the select list's placeholders come before the scope's
    # Only fixed SQL is interpolated; every value is bound.
    return db.prepare(f"SELECT {columns} FROM ({scope.rows_sql}) p{scope.order}").bind(*params)  # noqa: S608


def _rows(cls: type[_Record], value: str) -> list[_Record]:
    return [] if value == _NONE else [cls(*values) for values in json.loads(value)]


@dataclass(frozen=True)
class _FieldSpec:
    """How a record class is built from a row: its fields' values in order, and which are INTEGER columns."""

    values: Callable[[Row], tuple[Any, ...]]
    int_positions: tuple[int, ...]


# Per record class, computed once: rows are parsed per request, a list page's rows by the dozen.
_FIELD_SPECS: dict[type, _FieldSpec] = {}


def _field_spec(cls: type) -> _FieldSpec:
    spec = _FIELD_SPECS.get(cls)
    if spec is None:
        columns = fields(cls)
        names = [column.name for column in columns]
        getter = itemgetter(*names)
        values = getter if len(names) > 1 else (lambda row: (getter(row),))
        spec = _FieldSpec(values, tuple(i for i, column in enumerate(columns) if column.type == "int"))
        _FIELD_SPECS[cls] = spec
    return spec


def _record(cls: type[_Record], row: Row) -> _Record:
    """The record of `row`: each of the dataclass's fields from the column of that name (others ignored);
    INTEGER columns (fields typed `int`) as ints whatever number type the driver returned (D1: floats)."""
    spec = _field_spec(cls)
    values = spec.values(row)
    if not spec.int_positions:
        return cls(*values)
    converted = list(values)
    for position in spec.int_positions:
        converted[position] = int(converted[position])
    return cls(*converted)


def _records(cls: type[_Record], rows: list[Row] | None) -> list[_Record]:
    return [_record(cls, row) for row in rows or []]


def _optional(cls: type[_Record], rows: list[Row] | None) -> _Record | None:
    return _record(cls, rows[0]) if rows else None


def _aggregate(row: Row, *, detail: bool) -> Aggregate:
    """One row of `_aggregate_statement`, parsed into its records here, once. Children are sorted in Python,
    as each table's key orders them (SQLite does not promise an aggregate's input order)."""
    wallets = _rows(WalletRequirementRecord, row["agg_wallet_requirements"])
    funds = _rows(FundsRequirementRecord, row["agg_funds_requirements"])
    stakes = _rows(StakeRecord, row["agg_stakes"])
    fire = _rows(FireConfigRecord, row["agg_fire_config"])
    enforced = _rows(EnforcedConfigRecord, row["agg_enforced_config"])
    party_actions: dict[str, dict[str, str | None]] = {}
    verified: frozenset[tuple[str, str]] = frozenset()
    attestations: dict[str, AttestationRow] = {}
    if detail:
        if (actions := row["agg_party_actions"]) != _NONE:
            for action, user_id, payload in json.loads(actions):
                party_actions.setdefault(action, {})[user_id] = payload
        if (pairs := row["agg_verified_wallets"]) != _NONE:
            verified = frozenset((wallet, user_id) for wallet, user_id in json.loads(pairs))
        if (attested := row["agg_attestations"]) != _NONE:
            for kind, hash_, canonical_input, openings, created_at in json.loads(attested):
                attestations[kind] = AttestationRow(
                    kind=kind,
                    hash=hash_,
                    canonical_input=canonical_input,
                    openings=parse_openings(openings),
                    created_at=created_at,
                )
    return Aggregate(
        challenge=_record(ChallengeRecord, row),
        wallet_requirements=sorted(wallets, key=lambda wallet: wallet.side),
        funds_requirements=sorted(funds, key=lambda funds: (funds.side, funds.position)),
        stakes=sorted(stakes, key=lambda stake: (stake.created_at, stake.id)),
        slash_entries=_rows(SlashEntry, row["agg_slash_entries"]),
        fire_config=fire[0] if fire else None,
        enforced_config=enforced[0] if enforced else None,
        party_actions=party_actions,
        verified_wallets=verified,
        attestations=attestations,
        proposal_announced_at=row.get("proposal_announced_at"),
    )


def _parse(result: QueryResult, *, detail: bool) -> list[Aggregate]:
    """The aggregates of an `_aggregate_statement`'s result, in its order."""
    return [_aggregate(row, detail=detail) for row in result.results]


def role_of(challenge: ChallengeRecord, principal: Principal | None, holds_invited_wallet: bool) -> str | None:
    """CREATOR, COUNTERPARTY, ADMIN or None. An invited wallet's verified owner counts as the counterparty."""
    if principal is None:
        return None
    if principal.is_admin:
        return "ADMIN"
    if principal.user_id == challenge.creator_user_id:
        return "CREATOR"
    if challenge.counterparty_user_id is not None:
        return "COUNTERPARTY" if principal.user_id == challenge.counterparty_user_id else None
    if challenge.counterparty_wallet and principal.user_id and holds_invited_wallet:
        return "COUNTERPARTY"
    return None


def read_back(db: Database, challenge_id: str) -> Statement:
    """The SELECT that rebuilds the aggregate, to append to a write batch (the response comes from it)."""
    return _aggregate_statement(db, _single(challenge_id), detail=True)


def parse_read_back(results: Sequence[QueryResult]) -> Aggregate | None:
    """The aggregate from the last result of a batch that ended with `read_back`."""
    loaded = _parse(results[-1], detail=True)
    return loaded[0] if loaded else None


async def load(db: Database, challenge_id: str) -> Aggregate | None:
    """The whole aggregate, no caller (jobs, public proof); one round trip."""
    if not is_uuid4(challenge_id):
        return None
    return parse_read_back([await read_back(db, challenge_id).all()])


def users_statement(db: Database, user_ids: list[str]) -> Statement:
    """Which of `user_ids` exist (a named counterparty at creation), as rows of `id`."""
    marks = ", ".join("?" for _ in user_ids)
    return db.prepare(f"SELECT id FROM users WHERE id IN ({marks})").bind(*user_ids)  # noqa: S608 — marks only


def known_users(result: QueryResult) -> set[str]:
    """The ids `users_statement` found."""
    return {row["id"] for row in result.results}


def visible_statements(db: Database, challenge_id: str, caller: Caller, *, timeline: bool = False) -> list[Statement]:
    """The reads of GET /challenges/{id} (and its actions): the aggregate with what the caller's role needs;
    with `timeline`, also its history and events. Empty for an id that cannot exist (nothing to read).

    Built on a Caller, so they can ride in the auth lookup's batch (core.auth.Preload).
    """
    if not is_uuid4(challenge_id):
        return []
    statements = [_aggregate_statement(db, _single(challenge_id), detail=True, caller=caller)]
    if timeline:
        statements += [
            db.prepare(
                "SELECT from_status, to_status, actor, reason, created_at FROM challenge_status_history "
                "WHERE challenge_id = ? ORDER BY id"
            ).bind(challenge_id),
            db.prepare(
                "SELECT id, type, created_at, payload FROM events WHERE challenge_id = ? ORDER BY created_at, rowid"
            ).bind(challenge_id),
        ]
    return statements


async def _load_for(
    db: Database, challenge_id: str, principal: Principal | None, *, timeline: bool
) -> tuple[Aggregate, list[QueryResult]]:
    """The aggregate with the caller's role (plus the timeline's results), from the auth batch when the reads
    rode there, else in one batch of its own; 404 E3010 for strangers."""
    if not is_uuid4(challenge_id):
        raise ApiError("E3010")
    if principal is not None:
        results = await preloaded_or_read(
            db, principal, lambda caller: visible_statements(db, challenge_id, caller, timeline=timeline)
        )
    else:
        results = await db.batch(visible_statements(db, challenge_id, Caller.user(""), timeline=timeline))
    rows = results[0].results
    if not rows:
        raise ApiError("E3010")
    aggregate = _aggregate(rows[0], detail=True)
    role = role_of(aggregate.challenge, principal, bool(rows[0]["agg_caller_holds_wallet"]))
    if role is None:
        # Strangers get the same 404 as for a missing challenge, so existence never leaks.
        raise ApiError("E3010")
    return replace(aggregate, role=role), list(results[1:])


async def load_visible(db: Database, challenge_id: str, principal: Principal | None) -> Aggregate:
    """The aggregate as the caller may see it (with their role) in one round trip; 404 E3010 for strangers."""
    aggregate, _ = await _load_for(db, challenge_id, principal, timeline=False)
    return aggregate


async def load_timeline(db: Database, challenge_id: str, principal: Principal | None) -> tuple[Aggregate, Timeline]:
    """The visible aggregate with its history and events, in the same single round trip."""
    aggregate, (history, events) = await _load_for(db, challenge_id, principal, timeline=True)
    return aggregate, Timeline(
        history=_records(HistoryEntry, history.results),
        events=[
            {"id": row["id"], "type": row["type"], "created_at": row["created_at"], "data": json.loads(row["payload"])}
            for row in events.results
        ],
    )


# -- writes: the statements an action's batch is made of ----------------------------------------------------
#
# Every write of the aggregate is built here. A write that belongs to a state change is guarded: it runs
# only if that change's conditional UPDATE won its race (the challenge still carries the change's id).

# SQL + params that hold only after a given change committed: the condition of guarded INSERT … WHERE EXISTS.
Guard = tuple[str, tuple[Any, ...]]
_GUARD = "SELECT 1 FROM challenges WHERE id = ? AND last_change_id = ?"

# Columns a transition may set besides status/version/updated_at; names never come from input.
UPDATABLE_COLUMNS = frozenset(
    {
        "counterparty_user_id",
        "accepted_at",
        "accept_deadline",
        "verification_deadline",
        "response_deadline",
        "dispute_deadline",
        "next_deadline_at",
        "intent_locked_at",
        "completed_at",
        "outcome",
        "proposed_outcome",
        "proposed_by",
        "proposed_at",
        "proposal_event_id",
        "resolution_data",
        "initiator_hash",
        "counter_hash",
        "final_hash",
    }
)


def guard(challenge_id: str, change_id: str) -> Guard:
    """The guard of every write that depends on the change `change_id` of `challenge_id`."""
    return _GUARD, (challenge_id, change_id)


def _guarded_insert(db: Database, guarded_by: Guard, insert_sql: str, *values: Any) -> Statement:
    """`insert_sql` is 'INSERT INTO t (cols) SELECT ?, ?, …' without a WHERE; it runs only if the change won."""
    guard_sql, guard_params = guarded_by
    return db.prepare(f"{insert_sql} WHERE EXISTS ({guard_sql})").bind(*values, *guard_params)


def _guarded_update(db: Database, guarded_by: Guard, update_sql: str, *values: Any) -> Statement:
    """`update_sql` is 'UPDATE t SET … WHERE …'; it gets AND EXISTS(guard) so it runs only if the change won."""
    guard_sql, guard_params = guarded_by
    return db.prepare(f"{update_sql} AND EXISTS ({guard_sql})").bind(*values, *guard_params)


def transition_update(
    db: Database,
    challenge_id: str,
    *,
    from_status: str,
    version: int,
    to_status: str,
    change_id: str,
    stamp: str,
    set_columns: dict[str, Any],
) -> Statement:
    """The conditional UPDATE of a change: it lands only on (status, version) as loaded, and marks the row with
    the change's id (what its guarded writes check). ValueError for a column outside UPDATABLE_COLUMNS."""
    unknown = set(set_columns) - UPDATABLE_COLUMNS
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    # Only names from UPDATABLE_COLUMNS are interpolated; every value is bound.
    assignments = "".join(f", {name} = ?" for name in set_columns)
    return db.prepare(
        f"UPDATE challenges SET status = ?, version = version + 1, last_change_id = ?, updated_at = ?{assignments} "  # noqa: S608
        "WHERE id = ? AND status = ? AND version = ?"
    ).bind(to_status, change_id, stamp, *set_columns.values(), challenge_id, from_status, version)


def history_insert(
    db: Database,
    guarded_by: Guard,
    challenge_id: str,
    from_status: str,
    to_status: str,
    actor: str,
    reason: str,
    stamp: str,
) -> Statement:
    """One status history entry of a change."""
    return _guarded_insert(
        db,
        guarded_by,
        "INSERT INTO challenge_status_history (challenge_id, from_status, to_status, actor, reason, created_at) "
        "SELECT ?, ?, ?, ?, ?, ?",
        challenge_id,
        from_status,
        to_status,
        actor,
        reason,
        stamp,
    )


def party_action_upsert(
    db: Database, guarded_by: Guard, challenge_id: str, user_id: str, action: str, payload: str | None, stamp: str
) -> Statement:
    """A party's latest `action` (COMPLETE, RESPOND, RESOLVE), replacing its previous one."""
    return _guarded_insert(
        db,
        guarded_by,
        "INSERT OR REPLACE INTO challenge_party_actions (challenge_id, user_id, action, payload, created_at)"
        " SELECT ?, ?, ?, ?, ?",
        challenge_id,
        user_id,
        action,
        payload,
        stamp,
    )


def attestation_insert(
    db: Database,
    guarded_by: Guard,
    *,
    attestation_id: str,
    challenge_id: str,
    kind: str,
    hash: str,
    canonical_input: str,
    openings: str | None,
    stamp: str,
) -> Statement:
    """One attestation row (hash, canonical input, openings) of a change."""
    return _guarded_insert(
        db,
        guarded_by,
        "INSERT INTO attestations (id, challenge_id, kind, hash, canonical_input, openings, created_at) "
        "SELECT ?, ?, ?, ?, ?, ?, ?",
        attestation_id,
        challenge_id,
        kind,
        hash,
        canonical_input,
        openings,
        stamp,
    )


def stake_insert(
    db: Database,
    guarded_by: Guard,
    *,
    stake_id: str,
    challenge_id: str,
    user_id: str,
    stake_type: str,
    amount: str,
    currency_code: str,
    payment_reference: str | None,
    stamp: str,
) -> Statement:
    """A HELD stake on the ledger provider."""
    return _guarded_insert(
        db,
        guarded_by,
        "INSERT INTO stakes (id, challenge_id, user_id, type, amount, currency_code, status, provider,"
        " payment_reference, created_at) SELECT ?, ?, ?, ?, ?, ?, 'HELD', 'LEDGER', ?, ?",
        stake_id,
        challenge_id,
        user_id,
        stake_type,
        amount,
        currency_code,
        payment_reference,
        stamp,
    )


def stake_end_update(db: Database, guarded_by: Guard, stake_id: str, status: str, stamp: str) -> Statement:
    """End a stake (RELEASED, SLASHED, REFUNDED): only from HELD, so it ends exactly once."""
    return _guarded_update(
        db,
        guarded_by,
        "UPDATE stakes SET status = ?, processed_at = ? WHERE id = ? AND status = 'HELD'",
        status,
        stamp,
        stake_id,
    )


def ledger_insert(
    db: Database,
    guarded_by: Guard,
    *,
    entry_id: str,
    stake_id: str,
    challenge_id: str,
    entry_type: str,
    account: str,
    amount: str,
    currency_code: str,
    stamp: str,
) -> Statement:
    """One ledger movement of (part of) a stake."""
    return _guarded_insert(
        db,
        guarded_by,
        "INSERT INTO ledger_entries (id, stake_id, challenge_id, entry_type, account, amount, currency_code,"
        " created_at) SELECT ?, ?, ?, ?, ?, ?, ?, ?",
        entry_id,
        stake_id,
        challenge_id,
        entry_type,
        account,
        amount,
        currency_code,
        stamp,
    )


def funds_result_update(
    db: Database, guarded_by: Guard, requirement_id: str, status: str, attestation_id: str, stamp: str
) -> Statement:
    """A funds requirement's PASSED/FAILED with the attestation behind it (never the balance)."""
    return _guarded_update(
        db,
        guarded_by,
        "UPDATE funds_requirements SET status = ?, attestation_id = ?, checked_at = ? WHERE id = ?",
        status,
        attestation_id,
        stamp,
        requirement_id,
    )


def wallet_verified_update(db: Database, guarded_by: Guard, challenge_id: str, side: str) -> Statement:
    """A side's wallet requirement is met (its wallet is verified by the side's own user)."""
    return _guarded_update(
        db,
        guarded_by,
        "UPDATE challenge_wallet_requirements SET wallet_status = 'VERIFIED' WHERE challenge_id = ? AND side = ?",
        challenge_id,
        side,
    )


def oracle_unschedule(db: Database, guarded_by: Guard, challenge_id: str) -> Statement:
    """Stop the oracle job from checking the feed again (the change resolves or disputes the challenge)."""
    return _guarded_update(
        db,
        guarded_by,
        "UPDATE fire_configs SET oracle_next_check_at = NULL WHERE challenge_id = ?",
        challenge_id,
    )


async def commit(db: Database, writes: Sequence[Statement], challenge_id: str) -> tuple[int, Aggregate | None]:
    """Run `writes` and the aggregate's read-back as one batch (one round trip): the rows the first write
    changed, and the aggregate as it stands after the batch."""
    results = await db.batch([*writes, read_back(db, challenge_id)])
    return results[0].changes, parse_read_back(results)


# -- creation: the rows of a new challenge (unguarded: the batch creates the row the guard would check) -------


def challenge_insert(
    db: Database,
    *,
    challenge_id: str,
    mode: str,
    title: str,
    description: str | None,
    creator_user_id: str,
    counterparty_user_id: str | None,
    counterparty_wallet: str | None,
    expires_at: str | None,
    resolution_due_at: str | None,
    stamp: str,
) -> Statement:
    """A new challenge in DRAFT, version 0."""
    return db.prepare(
        "INSERT INTO challenges (id, mode, status, version, title, description, creator_user_id,"
        " counterparty_user_id, counterparty_wallet, expires_at, resolution_due_at, created_at, updated_at)"
        " VALUES (?, ?, 'DRAFT', 0, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ).bind(
        challenge_id,
        mode,
        title,
        description,
        creator_user_id,
        counterparty_user_id,
        counterparty_wallet,
        expires_at,
        resolution_due_at,
        stamp,
        stamp,
    )


def created_history_insert(db: Database, challenge_id: str, actor: str, stamp: str) -> Statement:
    """The first history entry: NULL → DRAFT, 'created'."""
    return db.prepare(
        "INSERT INTO challenge_status_history (challenge_id, from_status, to_status, actor, reason, created_at)"
        " VALUES (?, NULL, 'DRAFT', ?, 'created', ?)"
    ).bind(challenge_id, actor, stamp)


def wallet_requirement_insert(
    db: Database, challenge_id: str, side: str, wallet_address: str, network: str
) -> Statement:
    """A side's wallet requirement (PENDING until its wallet is verified)."""
    return db.prepare(
        "INSERT INTO challenge_wallet_requirements (challenge_id, side, wallet_address, network) VALUES (?, ?, ?, ?)"
    ).bind(challenge_id, side, wallet_address, network)


def funds_requirement_insert(
    db: Database,
    *,
    requirement_id: str,
    challenge_id: str,
    side: str,
    position: int,
    wallet_address: str,
    network: str,
    asset_type: str,
    token_address: str | None,
    min_balance: str,
    currency_symbol: str | None,
) -> Statement:
    """One funds check of a side (PENDING until it runs)."""
    return db.prepare(
        "INSERT INTO funds_requirements (id, challenge_id, side, position, wallet_address, network,"
        " asset_type, token_address, min_balance, currency_symbol) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ).bind(
        requirement_id,
        challenge_id,
        side,
        position,
        wallet_address,
        network,
        asset_type,
        token_address,
        min_balance,
        currency_symbol,
    )


def fire_config_insert(
    db: Database,
    *,
    challenge_id: str,
    honesty_bond_amount: str,
    currency_code: str,
    resolution_strategy: str,
    oracle_network: str | None,
    oracle_feed_address: str | None,
    oracle_comparator: str | None,
    oracle_threshold: str | None,
    oracle_resolve_after: str | None,
    oracle_next_check_at: str | None,
) -> Statement:
    """A FIRE challenge's config (bond, strategy, and its oracle when it resolves by ORACLE)."""
    return db.prepare(
        "INSERT INTO fire_configs (challenge_id, honesty_bond_amount, currency_code, resolution_strategy,"
        " oracle_network, oracle_feed_address, oracle_comparator, oracle_threshold, oracle_resolve_after,"
        " oracle_next_check_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ).bind(
        challenge_id,
        honesty_bond_amount,
        currency_code,
        resolution_strategy,
        oracle_network,
        oracle_feed_address,
        oracle_comparator,
        oracle_threshold,
        oracle_resolve_after,
        oracle_next_check_at,
    )


def enforced_config_insert(
    db: Database,
    *,
    challenge_id: str,
    accept_timeout_seconds: int,
    response_timeout_seconds: int,
    dispute_timeout_seconds: int,
    stake_amount: str | None,
    currency_code: str | None,
) -> Statement:
    """An ENFORCED challenge's config (timeouts, and the base stake if it takes one)."""
    return db.prepare(
        "INSERT INTO enforced_configs (challenge_id, accept_timeout_seconds, response_timeout_seconds,"
        " dispute_timeout_seconds, stake_amount, currency_code) VALUES (?, ?, ?, ?, ?, ?)"
    ).bind(
        challenge_id,
        accept_timeout_seconds,
        response_timeout_seconds,
        dispute_timeout_seconds,
        stake_amount,
        currency_code,
    )


# -- reads for other packages ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Parties:
    """Who a challenge's parties are (the counterparty may not be known yet)."""

    challenge_id: str
    creator_user_id: str
    counterparty_user_id: str | None

    @property
    def user_ids(self) -> set[str]:
        return {user for user in (self.creator_user_id, self.counterparty_user_id) if user}


async def parties_of(db: Database, challenge_id: str) -> Parties | None:
    """A challenge's parties (gatekeeper.funds.ensure_challenge_access), or None when it does not exist."""
    if not is_uuid4(challenge_id):
        return None
    found = await parties_of_many(db, [challenge_id])
    return found.get(challenge_id)


async def parties_of_many(db: Database, challenge_ids: Iterable[str]) -> dict[str, Parties]:
    """The parties of each existing challenge among `challenge_ids` (relay.delivery's fan-out), by id; one
    statement per MAX_BOUND_PARAMETERS ids, all in one batch (one round trip)."""
    rows = await select_in(
        db, "SELECT id, creator_user_id, counterparty_user_id FROM challenges WHERE id IN ({marks})", challenge_ids
    )
    return {row["id"]: Parties(row["id"], row["creator_user_id"], row["counterparty_user_id"]) for row in rows}


# -- the API view ------------------------------------------------------------------------------------------


def requirements_view(aggregate: Aggregate) -> dict[str, dict[str, Any]]:
    """Each side's wallet requirement and funds checks with PASSED/FAILED (never a balance)."""
    result: dict[str, dict[str, Any]] = {}
    for side in aggregate.wallet_requirements:
        result[side.side.lower()] = {
            "wallet_address": side.wallet_address,
            "network": side.network,
            "wallet_status": side.wallet_status,
            "funds_checks": [],
        }
    for check in aggregate.funds_requirements:
        checks = result.get(check.side.lower())
        if checks is None:
            continue
        checks["funds_checks"].append(
            {
                "asset_type": check.asset_type,
                "token_address": check.token_address,
                "min_balance": check.min_balance,
                "currency_symbol": check.currency_symbol,
                "status": check.status,
                "checked_at": check.checked_at,
            }
        )
    return result


def _settlement(aggregate: Aggregate) -> dict[str, str] | None:
    if not aggregate.slash_entries:
        return None
    parts = {"winner": 0, "treasury": 0, "burn": 0, "provers": 0}
    for entry in aggregate.slash_entries:
        parts[entry.entry_type.removeprefix("SLASH_").lower()] += int(entry.amount)
    return {name: str(amount) for name, amount in parts.items()}


def _fire_view(config: FireConfigRecord | None) -> dict[str, Any] | None:
    """The FIRE config as the API shows it: every column but the challenge id and the oracle's schedule."""
    if config is None:
        return None
    return {
        "honesty_bond_amount": config.honesty_bond_amount,
        "currency_code": config.currency_code,
        "resolution_strategy": config.resolution_strategy,
        "oracle_network": config.oracle_network,
        "oracle_feed_address": config.oracle_feed_address,
        "oracle_comparator": config.oracle_comparator,
        "oracle_threshold": config.oracle_threshold,
        "oracle_resolve_after": config.oracle_resolve_after,
    }


def _enforced_view(config: EnforcedConfigRecord | None) -> dict[str, Any] | None:
    """The ENFORCED config as the API shows it: every column but the challenge id."""
    if config is None:
        return None
    return {
        "accept_timeout_seconds": config.accept_timeout_seconds,
        "response_timeout_seconds": config.response_timeout_seconds,
        "dispute_timeout_seconds": config.dispute_timeout_seconds,
        "stake_amount": config.stake_amount,
        "currency_code": config.currency_code,
    }


def proposal(challenge: ChallengeRecord) -> dict[str, Any] | None:
    """The standing outcome proposal as both parties see it (SPEC §7 `resolve`), or None."""
    if not challenge.proposed_outcome:
        return None
    announced = challenge.proposed_at is not None
    return {
        "outcome": challenge.proposed_outcome,
        "proposed_by": challenge.proposed_by,
        "proposed_at": challenge.proposed_at,
        # ENFORCED only (the others have no dispute deadline); it ran from the announcement.
        "dispute_window_ends_at": challenge.dispute_deadline if announced else None,
        "event_id": challenge.proposal_event_id,
    }


def history_view(timeline: Timeline) -> list[dict[str, Any]]:
    """The status history as GET /challenges/{id}/events shows it."""
    return [
        {
            "from_status": entry.from_status,
            "to_status": entry.to_status,
            "actor": entry.actor,
            "reason": entry.reason,
            "created_at": entry.created_at,
        }
        for entry in timeline.history
    ]


def serialize(aggregate: Aggregate) -> dict[str, Any]:
    """The API view of a challenge (ChallengeOut), from its loaded aggregate: no query."""
    challenge = aggregate.challenge
    mode = challenge.mode
    return {
        "id": challenge.id,
        "mode": mode,
        "status": challenge.status,
        "title": challenge.title,
        "description": challenge.description,
        "creator_user_id": challenge.creator_user_id,
        "counterparty_user_id": challenge.counterparty_user_id,
        "counterparty_wallet": challenge.counterparty_wallet,
        "expires_at": challenge.expires_at,
        "deadlines": {
            "accept": challenge.accept_deadline,
            "verification": challenge.verification_deadline,
            "response": challenge.response_deadline,
            "dispute": challenge.dispute_deadline,
            "resolution_due_at": challenge.resolution_due_at,
        },
        "created_at": challenge.created_at,
        "updated_at": challenge.updated_at,
        "intent_locked_at": challenge.intent_locked_at,
        "completed_at": challenge.completed_at,
        "initiator_hash": challenge.initiator_hash,
        "counter_hash": challenge.counter_hash,
        "final_hash": challenge.final_hash,
        "requirements": requirements_view(aggregate),
        "stakes": [
            {
                "id": stake.id,
                "user_id": stake.user_id,
                "type": stake.type,
                "amount": stake.amount,
                "currency_code": stake.currency_code,
                "status": stake.status,
            }
            for stake in aggregate.stakes
        ],
        "outcome": challenge.outcome,
        "proposed_outcome": proposal(challenge),
        "settlement": _settlement(aggregate),
        # Only the mode's own config is shown, as before (a config row of another mode never exists anyway).
        "fire_config": _fire_view(aggregate.fire_config) if mode == "FIRE" else None,
        "enforced_config": _enforced_view(aggregate.enforced_config) if mode == "ENFORCED" else None,
    }


# -- listing -----------------------------------------------------------------------------------------------


def encode_cursor(created_at: str, challenge_id: str) -> str:
    raw = json.dumps([created_at, challenge_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[str, str]:
    bad = ApiError(
        "E9004",
        "Invalid cursor",
        {"fields": [{"field": "cursor", "message": "is not a cursor from a previous page", "type": "cursor"}]},
    )
    try:
        created_at, challenge_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError):
        raise bad from None
    if not isinstance(created_at, str) or not is_uuid4(challenge_id):
        raise bad
    return created_at, challenge_id


def _page_scope(caller: Caller, *, status: str | None, mode: str | None, limit: int, cursor: str | None) -> _Scope:
    """The caller's own challenges (as creator or counterparty), newest first, keyset-paginated, limit + 1 rows.

    One indexed, limited branch per way of being a party, merged: an OR across the three would scan
    the whole table and sort it, which gets slower with every challenge ever created.
    """
    filters = ""
    filter_params: list[Any] = []
    if status is not None:
        filters += " AND status = ?"
        filter_params.append(status)
    if mode is not None:
        filters += " AND mode = ?"
        filter_params.append(mode)
    if cursor is not None:
        created_at, challenge_id = decode_cursor(cursor)
        filters += " AND (created_at < ? OR (created_at = ? AND id < ?))"
        filter_params += [created_at, created_at, challenge_id]
    page = limit + 1
    # The caller's id is a bound parameter or a fixed subquery on the bound key hash (core.auth.Caller).
    me, mine = caller.sql, list(caller.params)
    branches = (
        (f"creator_user_id = {me}", mine),
        (f"counterparty_user_id = {me}", mine),
        (f"counterparty_wallet IN (SELECT address FROM wallets WHERE user_id = {me})", mine),  # noqa: S608
    )
    # Only fixed condition strings are joined; every value is bound. The branches select ids alone (with the sort
    # key): the page's ids are merged, deduplicated and sorted on two columns, not on whole rows.
    parts = [
        f"SELECT * FROM (SELECT id, created_at FROM challenges WHERE {party}{filters}"  # noqa: S608
        " ORDER BY created_at DESC, id DESC LIMIT ?)"
        for party, _ in branches
    ]
    params: list[Any] = []
    for _, party_params in branches:
        params += [*party_params, *filter_params, page]
    ids_sql = "SELECT id FROM (" + " UNION ".join(parts) + " ORDER BY created_at DESC, id DESC LIMIT ?)"  # noqa: S608 — fixed SQL only
    challenges_sql = f"SELECT * FROM challenges WHERE id IN ({ids_sql})"  # noqa: S608
    return _Scope(challenges_sql, (*params, page), " ORDER BY p.created_at DESC, p.id DESC")


def list_statements(
    db: Database, caller: Caller, *, status: str | None, mode: str | None, limit: int, cursor: str | None
) -> list[Statement]:
    """The read of GET /challenges: the page (limit + 1 rows) with what its view needs; raises on a bad cursor."""
    scope = _page_scope(caller, status=status, mode=mode, limit=limit, cursor=cursor)
    return [_aggregate_statement(db, scope, detail=False)]


async def list_for_user(
    db: Database,
    principal: Principal,
    *,
    status: str | None,
    mode: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Aggregate], str | None]:
    """A page of the caller's challenges with what their view needs, in one round trip (the auth batch's when
    the reads rode there); and the next cursor."""
    if cursor is not None:
        decode_cursor(cursor)  # a bad cursor is a 400 whether or not the reads rode in the auth batch
    results = await preloaded_or_read(
        db,
        principal,
        lambda caller: list_statements(db, caller, status=status, mode=mode, limit=limit, cursor=cursor),
    )
    aggregates = _parse(results[0], detail=False)
    next_cursor = None
    if len(aggregates) > limit:
        last = aggregates[limit - 1].challenge
        next_cursor = encode_cursor(last.created_at, last.id)
    return aggregates[:limit], next_cursor


# -- jobs --------------------------------------------------------------------------------------------------


async def oracle_due(db: Database, stamp: str, limit: int) -> list[Aggregate]:
    """ORACLE challenges awaiting resolution whose next feed check is due, whole, in one batch."""
    page = (
        "SELECT c.*, f.oracle_next_check_at AS agg_next_check_at FROM challenges c"
        " JOIN fire_configs f ON f.challenge_id = c.id"
        " WHERE f.oracle_next_check_at IS NOT NULL AND f.oracle_next_check_at <= ? AND c.status = 'AWAITING_RESOLUTION'"
        " ORDER BY f.oracle_next_check_at LIMIT ?"
    )
    scope = _Scope(page, (stamp, limit), " ORDER BY p.agg_next_check_at")
    return _parse(await _aggregate_statement(db, scope, detail=False).all(), detail=False)


async def reschedule_oracle(db: Database, challenge_id: str, next_check_at: str) -> None:
    await (
        db.prepare("UPDATE fire_configs SET oracle_next_check_at = ? WHERE challenge_id = ?")
        .bind(next_check_at, challenge_id)
        .run()
    )


# The announcement of the standing proposal (if its event row exists): a proposal settles money only once
# its dispute window (the ENFORCED config's, loaded with the aggregate), measured from the announcement, passed.
_DUE_SQL = (
    "SELECT c.*, e.created_at AS proposal_announced_at"
    " FROM challenges c"
    " LEFT JOIN events e ON e.id = c.proposal_event_id AND e.challenge_id = c.id"
    " AND e.type = 'challenge.outcome_proposed'"
    " WHERE c.next_deadline_at IS NOT NULL AND c.next_deadline_at <= ?"
    " AND c.status NOT IN ('COMPLETED', 'CANCELLED', 'EXPIRED') ORDER BY c.next_deadline_at LIMIT ?"
)


async def timeouts_due(db: Database, stamp: str, limit: int) -> list[Aggregate]:
    """Challenges whose watched deadline passed, whole, in one batch, each with its proposal's announcement
    time (`Aggregate.proposal_announced_at`)."""
    scope = _Scope(_DUE_SQL, (stamp, limit), " ORDER BY p.next_deadline_at")
    return _parse(await _aggregate_statement(db, scope, detail=True).all(), detail=True)


# -- invitations (challenges.invites) ----------------------------------------------------------------------


@dataclass(frozen=True)
class InvitationRecord:
    """A `challenge_invitations` row: the nonce its link's token is derived from, and the token's sha256."""

    id: str
    challenge_id: str
    purpose: str
    nonce: str
    token_hash: str
    expires_at: str
    created_at: str


def invitation_insert(
    db: Database,
    guarded_by: Guard,
    *,
    invitation_id: str,
    challenge_id: str,
    purpose: str,
    nonce: str,
    token_hash: str,
    expires_at: str,
    stamp: str,
) -> Statement:
    """The invitation of a `send`, guarded by its change (a lost race writes none)."""
    return _guarded_insert(
        db,
        guarded_by,
        "INSERT INTO challenge_invitations (id, challenge_id, purpose, nonce, token_hash, expires_at, created_at)"
        " SELECT ?, ?, ?, ?, ?, ?, ?",
        invitation_id,
        challenge_id,
        purpose,
        nonce,
        token_hash,
        expires_at,
        stamp,
    )


def invitation_statement(db: Database, challenge_id: str, purpose: str) -> Statement:
    """The challenge's invitation of `purpose` (at most one row); it can ride in another batch."""
    return db.prepare(
        "SELECT id, challenge_id, purpose, nonce, token_hash, expires_at, created_at FROM challenge_invitations"
        " WHERE challenge_id = ? AND purpose = ?"
    ).bind(challenge_id, purpose)


def invitation_from(result: QueryResult) -> InvitationRecord | None:
    """The record `invitation_statement` found, or None."""
    return _optional(InvitationRecord, result.results)


async def load_invitation(db: Database, challenge_id: str, purpose: str) -> InvitationRecord | None:
    """The invitation alone (the relay's email, an admin's read); one round trip."""
    if not is_uuid4(challenge_id):
        return None
    return invitation_from(await invitation_statement(db, challenge_id, purpose).all())


async def load_with_invitation(
    db: Database, challenge_id: str, purpose: str
) -> tuple[Aggregate | None, InvitationRecord | None]:
    """The whole aggregate (no caller) and its invitation, in one round trip (the invitation page)."""
    if not is_uuid4(challenge_id):
        return None, None
    results = await db.batch([invitation_statement(db, challenge_id, purpose), read_back(db, challenge_id)])
    return parse_read_back(results), invitation_from(results[0])
