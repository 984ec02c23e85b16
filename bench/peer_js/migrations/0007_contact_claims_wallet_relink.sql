-- Issue 12, items 2 and 3.
-- A wallet re-linked to another user revokes its old owner's wallet verifications and wallet sessions;
-- an email or phone is only a *pending* claim (with a hashed one-time code) until its owner proves it.
-- users.email / users.phone hold verified contacts only (users.email stays UNIQUE: only verified emails are).

-- A VERIFIED wallet challenge no longer counts for gatekeeper checks once its wallet went to another user.
ALTER TABLE wallet_challenges ADD COLUMN revoked_at TEXT;
-- When the wallet's current owner got it: that owner's sessions for the wallet issued before are void.
ALTER TABLE wallets ADD COLUMN linked_at TEXT;
UPDATE wallets SET linked_at = first_verified_at;
-- Wallets re-linked before this migration: their old owners' verifications stop counting now.
UPDATE wallet_challenges SET revoked_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
  WHERE status = 'VERIFIED'
    AND verified_user_id IS NOT (SELECT w.user_id FROM wallets AS w WHERE w.address = wallet_challenges.wallet_address);

-- One pending claim per user and channel; a new PATCH replaces it (and its code).
CREATE TABLE contact_claims (
  user_id     TEXT NOT NULL REFERENCES users(id),
  channel     TEXT NOT NULL CHECK (channel IN ('email', 'phone')),
  value       TEXT NOT NULL CHECK (length(value) BETWEEN 3 AND 254),
  -- HMAC-SHA256 (key derived from HMAC_SECRET) of user, channel, value and code: never the code itself.
  code_hash   TEXT NOT NULL CHECK (length(code_hash) = 64),
  attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  -- The request that spent the last attempt: only that request may complete a verification.
  attempt_id  TEXT,
  delivery    TEXT NOT NULL CHECK (delivery IN ('SENT', 'FAILED', 'UNAVAILABLE')),
  expires_at  TEXT NOT NULL,
  created_at  TEXT NOT NULL,
  PRIMARY KEY (user_id, channel)
);

-- Every code sent, for the per-user and per-address send caps; the address only as a keyed hash.
CREATE TABLE contact_code_sends (
  id            TEXT PRIMARY KEY,
  user_id       TEXT NOT NULL REFERENCES users(id),
  address_hash  TEXT NOT NULL CHECK (length(address_hash) = 64),
  sent_at       TEXT NOT NULL
);
CREATE INDEX idx_contact_code_sends_user ON contact_code_sends(user_id, sent_at);
CREATE INDEX idx_contact_code_sends_address ON contact_code_sends(address_hash, sent_at);

-- Contacts recorded before this migration were never proved (PATCH /me took any address as given), and they
-- cannot be told apart from an operator's: none may find or notify a user any more. Each becomes an expired
-- pending claim, shown to its owner in GET /me, proved again by a new PATCH /me and its code. The code hash
-- is all zeros, which no HMAC output matches.
INSERT INTO contact_claims (user_id, channel, value, code_hash, attempts, delivery, expires_at, created_at)
  SELECT id, 'email', email, '0000000000000000000000000000000000000000000000000000000000000000', 0, 'UNAVAILABLE',
         strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
  FROM users WHERE email IS NOT NULL;
INSERT INTO contact_claims (user_id, channel, value, code_hash, attempts, delivery, expires_at, created_at)
  SELECT id, 'phone', phone, '0000000000000000000000000000000000000000000000000000000000000000', 0, 'UNAVAILABLE',
         strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
  FROM users WHERE phone IS NOT NULL;
UPDATE users SET email = NULL, phone = NULL WHERE email IS NOT NULL OR phone IS NOT NULL;
