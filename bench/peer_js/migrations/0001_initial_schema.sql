-- TattleHash Gatekeeper v2: the full schema for every phase.
-- Conventions: ids are UUIDv4 TEXT; times are RFC 3339 UTC TEXT of fixed width ('2026-01-01T00:00:00.000Z'),
-- so text order is time order; token amounts are decimal TEXT (D1 numbers are JS doubles);
-- addresses are lowercase '0x' + 40 hex.

CREATE TABLE users (
  id            TEXT PRIMARY KEY,
  email         TEXT UNIQUE CHECK (email IS NULL OR (length(email) BETWEEN 3 AND 254 AND email LIKE '%_@_%')),
  phone         TEXT CHECK (phone IS NULL OR (phone GLOB '+[1-9]*' AND length(phone) BETWEEN 8 AND 16)),
  display_name  TEXT CHECK (display_name IS NULL OR length(display_name) <= 100),
  created_at    TEXT NOT NULL,
  updated_at    TEXT NOT NULL
);

CREATE TABLE api_keys (
  id            TEXT PRIMARY KEY,
  user_id       TEXT NOT NULL REFERENCES users(id),
  key_hash      TEXT NOT NULL UNIQUE CHECK (length(key_hash) = 64),
  key_prefix    TEXT NOT NULL,
  created_at    TEXT NOT NULL,
  last_used_at  TEXT,
  revoked_at    TEXT
);
CREATE INDEX idx_api_keys_user ON api_keys(user_id);

CREATE TABLE wallets (
  address            TEXT PRIMARY KEY CHECK (length(address) = 42 AND address = lower(address) AND substr(address, 1, 2) = '0x'),
  user_id            TEXT NOT NULL REFERENCES users(id),
  first_verified_at  TEXT NOT NULL,
  last_verified_at   TEXT NOT NULL
);
CREATE INDEX idx_wallets_user ON wallets(user_id);

CREATE TABLE wallet_challenges (
  id                TEXT PRIMARY KEY,
  wallet_address    TEXT NOT NULL CHECK (length(wallet_address) = 42 AND wallet_address = lower(wallet_address)),
  chain_id          TEXT NOT NULL CHECK (chain_id LIKE 'eip155:%'),
  requested_by      TEXT REFERENCES users(id),
  format            TEXT NOT NULL CHECK (format IN ('plain', 'siwe')),
  message           TEXT NOT NULL,
  nonce             TEXT NOT NULL UNIQUE,
  status            TEXT NOT NULL CHECK (status IN ('PENDING', 'VERIFIED', 'EXPIRED')),
  issued_at         TEXT NOT NULL,
  expires_at        TEXT NOT NULL,
  verified_at       TEXT,
  verified_user_id  TEXT REFERENCES users(id),
  signature_type    TEXT CHECK (signature_type IS NULL OR signature_type IN ('EOA', 'EIP1271')),
  CHECK ((status = 'VERIFIED') = (verified_at IS NOT NULL))
);
CREATE INDEX idx_wallet_challenges_wallet ON wallet_challenges(wallet_address, status, verified_at);
CREATE INDEX idx_wallet_challenges_pending ON wallet_challenges(status, expires_at);

CREATE TABLE challenges (
  id                     TEXT PRIMARY KEY,
  mode                   TEXT NOT NULL CHECK (mode IN ('SOLO', 'GATEKEEPER', 'FIRE', 'ENFORCED')),
  status                 TEXT NOT NULL CHECK (status IN ('DRAFT', 'AWAITING_COUNTERPARTY', 'AWAITING_GATEKEEPER',
                           'INTENT_LOCKED', 'ACTIVE', 'AWAITING_RESOLUTION', 'COMPLETED', 'CANCELLED', 'EXPIRED', 'DISPUTED')),
  -- Bumped by every transition; writes that must follow a transition are guarded on it.
  version                INTEGER NOT NULL DEFAULT 0 CHECK (version >= 0),
  title                  TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
  description            TEXT CHECK (description IS NULL OR length(description) <= 5000),
  creator_user_id        TEXT NOT NULL REFERENCES users(id),
  counterparty_user_id   TEXT REFERENCES users(id),
  counterparty_wallet    TEXT CHECK (counterparty_wallet IS NULL OR length(counterparty_wallet) = 42),
  expires_at             TEXT,
  resolution_due_at      TEXT,
  accept_deadline        TEXT,
  verification_deadline  TEXT,
  response_deadline      TEXT,
  dispute_deadline       TEXT,
  -- The earliest deadline that can move this challenge; NULL when none applies (hot query for the cron job).
  next_deadline_at       TEXT,
  intent_locked_at       TEXT,
  completed_at           TEXT,
  outcome                TEXT CHECK (outcome IS NULL OR outcome IN ('CREATOR_WIN', 'COUNTERPARTY_WIN', 'DRAW', 'NO_CONTEST')),
  proposed_outcome       TEXT CHECK (proposed_outcome IS NULL OR proposed_outcome IN ('CREATOR_WIN', 'COUNTERPARTY_WIN', 'DRAW', 'NO_CONTEST')),
  resolution_data        TEXT,
  initiator_hash         TEXT,
  counter_hash           TEXT,
  final_hash             TEXT,
  created_at             TEXT NOT NULL,
  updated_at             TEXT NOT NULL,
  CHECK (mode <> 'SOLO' OR (counterparty_user_id IS NULL AND counterparty_wallet IS NULL))
);
CREATE INDEX idx_challenges_creator ON challenges(creator_user_id, created_at DESC, id DESC);
CREATE INDEX idx_challenges_counterparty ON challenges(counterparty_user_id, created_at DESC, id DESC);
CREATE INDEX idx_challenges_deadline ON challenges(next_deadline_at, status) WHERE next_deadline_at IS NOT NULL;

CREATE TABLE fire_configs (
  challenge_id          TEXT PRIMARY KEY REFERENCES challenges(id),
  honesty_bond_amount   TEXT NOT NULL CHECK (length(honesty_bond_amount) BETWEEN 1 AND 78),
  currency_code         TEXT NOT NULL CHECK (length(currency_code) BETWEEN 1 AND 16),
  resolution_strategy   TEXT NOT NULL CHECK (resolution_strategy IN ('ORACLE', 'MODERATOR')),
  oracle_network        TEXT,
  oracle_feed_address   TEXT,
  oracle_comparator     TEXT CHECK (oracle_comparator IS NULL OR oracle_comparator IN ('gte', 'lte')),
  oracle_threshold      TEXT,
  oracle_resolve_after  TEXT,
  oracle_next_check_at  TEXT,
  CHECK (resolution_strategy <> 'ORACLE' OR (oracle_network IS NOT NULL AND oracle_feed_address IS NOT NULL
         AND oracle_comparator IS NOT NULL AND oracle_threshold IS NOT NULL AND oracle_resolve_after IS NOT NULL))
);
CREATE INDEX idx_fire_oracle_due ON fire_configs(oracle_next_check_at) WHERE oracle_next_check_at IS NOT NULL;

CREATE TABLE enforced_configs (
  challenge_id              TEXT PRIMARY KEY REFERENCES challenges(id),
  accept_timeout_seconds    INTEGER NOT NULL CHECK (accept_timeout_seconds BETWEEN 60 AND 604800),
  response_timeout_seconds  INTEGER NOT NULL CHECK (response_timeout_seconds BETWEEN 300 AND 2592000),
  dispute_timeout_seconds   INTEGER NOT NULL CHECK (dispute_timeout_seconds BETWEEN 3600 AND 2592000),
  stake_amount              TEXT,
  currency_code             TEXT
);

-- Each side's wallet requirement of a GATEKEEPER challenge.
CREATE TABLE challenge_wallet_requirements (
  challenge_id    TEXT NOT NULL REFERENCES challenges(id),
  side            TEXT NOT NULL CHECK (side IN ('CREATOR', 'COUNTERPARTY')),
  wallet_address  TEXT NOT NULL CHECK (length(wallet_address) = 42 AND wallet_address = lower(wallet_address)),
  network         TEXT NOT NULL,
  wallet_status   TEXT NOT NULL DEFAULT 'PENDING' CHECK (wallet_status IN ('PENDING', 'VERIFIED')),
  PRIMARY KEY (challenge_id, side)
);

CREATE TABLE funds_requirements (
  id               TEXT PRIMARY KEY,
  challenge_id     TEXT NOT NULL REFERENCES challenges(id),
  side             TEXT NOT NULL CHECK (side IN ('CREATOR', 'COUNTERPARTY')),
  position         INTEGER NOT NULL,
  wallet_address   TEXT NOT NULL,
  network          TEXT NOT NULL,
  asset_type       TEXT NOT NULL CHECK (asset_type IN ('NATIVE', 'ERC20')),
  token_address    TEXT,
  min_balance      TEXT NOT NULL CHECK (length(min_balance) BETWEEN 1 AND 78),
  currency_symbol  TEXT,
  status           TEXT NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'PASSED', 'FAILED')),
  attestation_id   TEXT,
  checked_at       TEXT,
  CHECK ((asset_type = 'ERC20') = (token_address IS NOT NULL)),
  UNIQUE (challenge_id, side, position)
);

-- One row per funds check; the balance itself is never stored, only a salted commitment.
CREATE TABLE funds_attestations (
  id                  TEXT PRIMARY KEY,
  challenge_id        TEXT REFERENCES challenges(id),
  requirement_id      TEXT REFERENCES funds_requirements(id),
  requested_by        TEXT REFERENCES users(id),
  wallet_address      TEXT NOT NULL,
  network             TEXT NOT NULL,
  chain_id            INTEGER NOT NULL,
  asset_type          TEXT NOT NULL CHECK (asset_type IN ('NATIVE', 'ERC20')),
  token_address       TEXT,
  min_balance         TEXT NOT NULL,
  status              TEXT NOT NULL CHECK (status IN ('PASSED', 'FAILED')),
  block_number        INTEGER NOT NULL CHECK (block_number >= 0),
  provider_host       TEXT NOT NULL,
  balance_commitment  TEXT NOT NULL CHECK (length(balance_commitment) = 64),
  salt                TEXT NOT NULL CHECK (length(salt) = 64),
  checked_at          TEXT NOT NULL
);
CREATE INDEX idx_funds_attestations_challenge ON funds_attestations(challenge_id);

CREATE TABLE stakes (
  id                 TEXT PRIMARY KEY,
  challenge_id       TEXT NOT NULL REFERENCES challenges(id),
  user_id            TEXT NOT NULL REFERENCES users(id),
  type               TEXT NOT NULL CHECK (type IN ('HONESTY_BOND', 'BASE')),
  amount             TEXT NOT NULL CHECK (length(amount) BETWEEN 1 AND 78),
  currency_code      TEXT NOT NULL,
  status             TEXT NOT NULL CHECK (status IN ('HELD', 'RELEASED', 'SLASHED', 'REFUNDED')),
  provider           TEXT NOT NULL DEFAULT 'LEDGER',
  payment_reference  TEXT,
  created_at         TEXT NOT NULL,
  processed_at       TEXT,
  CHECK ((status = 'HELD') = (processed_at IS NULL)),
  UNIQUE (challenge_id, user_id, type)
);
CREATE INDEX idx_stakes_challenge ON stakes(challenge_id, status);

-- Double-entry style movements: every stake ends in entries that sum to what was held.
CREATE TABLE ledger_entries (
  id             TEXT PRIMARY KEY,
  stake_id       TEXT NOT NULL REFERENCES stakes(id),
  challenge_id   TEXT NOT NULL REFERENCES challenges(id),
  entry_type     TEXT NOT NULL CHECK (entry_type IN ('HOLD', 'RELEASE', 'REFUND', 'SLASH_WINNER', 'SLASH_TREASURY',
                   'SLASH_BURN', 'SLASH_PROVERS')),
  account        TEXT NOT NULL,
  amount         TEXT NOT NULL CHECK (length(amount) BETWEEN 1 AND 78),
  currency_code  TEXT NOT NULL,
  created_at     TEXT NOT NULL
);
CREATE INDEX idx_ledger_stake ON ledger_entries(stake_id);

-- A party's recorded action where both must act: completion, ENFORCED response, proposed resolution.
CREATE TABLE challenge_party_actions (
  challenge_id  TEXT NOT NULL REFERENCES challenges(id),
  user_id       TEXT NOT NULL REFERENCES users(id),
  action        TEXT NOT NULL CHECK (action IN ('COMPLETE', 'RESPOND', 'RESOLVE')),
  payload       TEXT,
  created_at    TEXT NOT NULL,
  PRIMARY KEY (challenge_id, user_id, action)
);

CREATE TABLE attestations (
  id               TEXT PRIMARY KEY,
  challenge_id     TEXT NOT NULL REFERENCES challenges(id),
  kind             TEXT NOT NULL CHECK (kind IN ('INITIATOR', 'COUNTER', 'FINAL')),
  hash             TEXT NOT NULL CHECK (length(hash) = 64),
  canonical_input  TEXT NOT NULL,
  created_at       TEXT NOT NULL,
  UNIQUE (challenge_id, kind)
);

CREATE TABLE challenge_status_history (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  challenge_id  TEXT NOT NULL REFERENCES challenges(id),
  from_status   TEXT,
  to_status     TEXT NOT NULL,
  actor         TEXT NOT NULL,
  reason        TEXT,
  created_at    TEXT NOT NULL
);
CREATE INDEX idx_history_challenge ON challenge_status_history(challenge_id, id);

-- Transactional outbox: written in the same batch as the change it reports.
CREATE TABLE events (
  id             TEXT PRIMARY KEY,
  type           TEXT NOT NULL,
  challenge_id   TEXT REFERENCES challenges(id),
  user_id        TEXT REFERENCES users(id),
  payload        TEXT NOT NULL,
  created_at     TEXT NOT NULL,
  dispatched_at  TEXT
);
CREATE INDEX idx_events_undispatched ON events(created_at) WHERE dispatched_at IS NULL;
CREATE INDEX idx_events_challenge ON events(challenge_id, created_at);

CREATE TABLE webhook_endpoints (
  id               TEXT PRIMARY KEY,
  user_id          TEXT NOT NULL REFERENCES users(id),
  url              TEXT NOT NULL CHECK (length(url) <= 2048),
  description      TEXT CHECK (description IS NULL OR length(description) <= 500),
  event_types      TEXT,
  secret           TEXT NOT NULL,
  status           TEXT NOT NULL CHECK (status IN ('ACTIVE', 'DISABLED', 'DELETED')),
  disabled_reason  TEXT,
  created_at       TEXT NOT NULL,
  updated_at       TEXT NOT NULL
);
CREATE INDEX idx_webhook_endpoints_user ON webhook_endpoints(user_id, status);

CREATE TABLE webhook_deliveries (
  id               TEXT PRIMARY KEY,
  endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints(id),
  event_id         TEXT NOT NULL REFERENCES events(id),
  status           TEXT NOT NULL CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED', 'CANCELLED')),
  attempt_count    INTEGER NOT NULL DEFAULT 0,
  next_attempt_at  TEXT,
  lease_until      TEXT,
  lease_owner      TEXT,
  last_status_code INTEGER,
  last_error       TEXT,
  created_at       TEXT NOT NULL,
  updated_at       TEXT NOT NULL,
  delivered_at     TEXT,
  UNIQUE (endpoint_id, event_id)
);
CREATE INDEX idx_deliveries_due ON webhook_deliveries(next_attempt_at) WHERE status = 'PENDING';

CREATE TABLE webhook_attempts (
  id              TEXT PRIMARY KEY,
  delivery_id     TEXT NOT NULL REFERENCES webhook_deliveries(id),
  attempt_number  INTEGER NOT NULL CHECK (attempt_number >= 1),
  started_at      TEXT NOT NULL,
  duration_ms     INTEGER NOT NULL,
  status_code     INTEGER,
  error           TEXT,
  UNIQUE (delivery_id, attempt_number)
);

CREATE TABLE notifications (
  id                   TEXT PRIMARY KEY,
  event_id             TEXT NOT NULL REFERENCES events(id),
  user_id              TEXT NOT NULL REFERENCES users(id),
  channel              TEXT NOT NULL CHECK (channel IN ('EMAIL', 'SMS')),
  template             TEXT NOT NULL,
  status               TEXT NOT NULL CHECK (status IN ('PENDING', 'SENT', 'SKIPPED', 'FAILED')),
  attempt_count        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at      TEXT,
  lease_until          TEXT,
  provider_message_id  TEXT,
  error                TEXT,
  created_at           TEXT NOT NULL,
  updated_at           TEXT NOT NULL,
  UNIQUE (event_id, user_id, channel)
);
CREATE INDEX idx_notifications_due ON notifications(next_attempt_at) WHERE status = 'PENDING';

CREATE TABLE idempotency_keys (
  user_id          TEXT NOT NULL REFERENCES users(id),
  idempotency_key  TEXT NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
  route            TEXT NOT NULL,
  request_hash     TEXT NOT NULL,
  response_status  INTEGER,
  response_body    TEXT,
  created_at       TEXT NOT NULL,
  PRIMARY KEY (user_id, idempotency_key)
);
