-- When the counterparty accepted. FIRE and ENFORCED lock intent only once the counterparty has accepted
-- and every required stake is held, in whichever order those happen.
ALTER TABLE challenges ADD COLUMN accepted_at TEXT;
