-- The aggregate load reads a challenge's slash entries on every request (challenges.store): without this index
-- each read scanned the whole ledger.
CREATE INDEX idx_ledger_entries_challenge ON ledger_entries(challenge_id, entry_type);
