-- Issue 12 items 8 and 9.
-- The public proof publishes only hash inputs without private fields; those enter as salted commitments
-- whose openings ({field: {value, salt}}, JSON) stay here, server-side, for the challenge's parties.
ALTER TABLE attestations ADD COLUMN openings TEXT;

-- Balance commitments are keyed with a secret derived from HMAC_SECRET, so a copy of the database
-- alone cannot brute-force balances. NULL marks rows written before: plain sha256(balance ":" salt), until the
-- scheduled job wraps them in place (HMAC-SHA256-WRAPPED-V1: HMAC(key, "sha256:" + old commitment)).
ALTER TABLE funds_attestations ADD COLUMN commitment_scheme TEXT
  CHECK (commitment_scheme IS NULL OR commitment_scheme IN ('HMAC-SHA256-V1', 'HMAC-SHA256-WRAPPED-V1'));
