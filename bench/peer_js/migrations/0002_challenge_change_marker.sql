-- Each transition stamps a fresh id here; the rows written with it (history, events, attestations, ...)
-- are guarded on this id, so a request that lost its race writes nothing even if the version numbers match.
ALTER TABLE challenges ADD COLUMN last_change_id TEXT;
