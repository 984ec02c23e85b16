-- A party's resolve is a proposal the other party can read: who made it, when, and the event row that
-- announced it. The dispute window runs from that announcement, and the timeout job settles only a
-- proposal whose announcement exists; a proposal stored before this migration has none, so the job
-- announces it first and restarts its window.
ALTER TABLE challenges ADD COLUMN proposed_by TEXT REFERENCES users(id);
ALTER TABLE challenges ADD COLUMN proposed_at TEXT;
ALTER TABLE challenges ADD COLUMN proposal_event_id TEXT;
