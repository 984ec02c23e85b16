-- Lists of "my challenges" include those inviting one of my wallets: keep that branch index-backed too.
CREATE INDEX idx_challenges_counterparty_wallet ON challenges(counterparty_wallet, created_at DESC, id DESC)
  WHERE counterparty_wallet IS NOT NULL;
