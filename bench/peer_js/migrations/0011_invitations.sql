-- Issue 16: the invitation link a sent challenge's counterparty opens (GET /invite/{id}?token=…).
-- One per challenge and purpose, written in the `send` batch. The token is derived, never stored: it is
-- base64url(HMAC-SHA256(k, "invite.v1:" || challenge_id || ":" || nonce)) with k derived from HMAC_SECRET, so
-- the relay can recompute the link for the email from the nonce, while the database alone cannot. What is
-- stored of the token is its sha256 (compared in constant time).
CREATE TABLE challenge_invitations (
  id           TEXT PRIMARY KEY,
  challenge_id TEXT NOT NULL REFERENCES challenges(id),
  purpose      TEXT NOT NULL CHECK (purpose IN ('COUNTERPARTY_INVITE')),
  nonce        TEXT NOT NULL CHECK (length(nonce) BETWEEN 32 AND 64),
  token_hash   TEXT NOT NULL CHECK (length(token_hash) = 64),
  expires_at   TEXT NOT NULL,
  created_at   TEXT NOT NULL,
  UNIQUE (challenge_id, purpose)
);
