-- Issue 14 item 1: an Idempotency-Key is claimed inside the batch that writes its action, so a key row
-- always means the action committed. response_status is the action's success status, set with the claim;
-- response_body follows after the response (a crash in between: resource_id says what to rebuild it from).
ALTER TABLE idempotency_keys ADD COLUMN resource_id TEXT;
-- Keys expire 24 h after their claim; the scheduled job deletes them oldest first.
CREATE INDEX idx_idempotency_keys_created ON idempotency_keys(created_at);
-- Keys claimed before their action ran, and never answered: their requests died; they must not block a retry.
DELETE FROM idempotency_keys WHERE response_status IS NULL;
