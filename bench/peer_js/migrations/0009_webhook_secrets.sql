-- Webhook secrets: the secret replaced by a rotation keeps signing (second signature) until
-- previous_secret_until; both columns hold sealed values (relay/secretbox.py). Rows written before
-- encryption still hold `whsec_…` in plain form: they keep working and the relay job re-seals them.
ALTER TABLE webhook_endpoints ADD COLUMN previous_secret TEXT;
ALTER TABLE webhook_endpoints ADD COLUMN previous_secret_until TEXT;
-- Attempt errors used to quote up to 200 characters of the receiver's answer: keep only the classified
-- reason (the same mapping as relay/webhooks.py public_reason).
UPDATE webhook_attempts SET error = CASE
    WHEN error LIKE 'HTTP %' THEN 'http_status'
    WHEN error LIKE 'timeout%' THEN 'timeout'
    WHEN error LIKE 'URL not allowed%' THEN 'url_not_allowed'
    WHEN error LIKE 'event payload is not valid JSON%' THEN 'invalid_payload'
    WHEN error LIKE 'connection error%refused%' THEN 'connection_refused'
    WHEN error LIKE 'connection error%' THEN 'connection_error'
    ELSE 'request_failed' END
  WHERE error IS NOT NULL AND error NOT IN ('http_status', 'timeout', 'connection_refused', 'connection_error',
    'dns_error', 'tls_error', 'blocked_address', 'url_not_allowed', 'invalid_payload', 'request_failed');
UPDATE webhook_deliveries SET last_error = CASE
    WHEN last_error LIKE 'HTTP %' THEN 'http_status'
    WHEN last_error LIKE 'timeout%' THEN 'timeout'
    WHEN last_error LIKE 'URL not allowed%' THEN 'url_not_allowed'
    WHEN last_error LIKE 'event payload is not valid JSON%' THEN 'invalid_payload'
    WHEN last_error LIKE 'connection error%refused%' THEN 'connection_refused'
    WHEN last_error LIKE 'connection error%' THEN 'connection_error'
    ELSE 'request_failed' END
  WHERE last_error IS NOT NULL AND last_error NOT IN ('http_status', 'timeout', 'connection_refused',
    'connection_error', 'dns_error', 'tls_error', 'blocked_address', 'url_not_allowed', 'invalid_payload',
    'request_failed');
-- Deleted endpoints held a fresh random secret in plain form; they need none.
UPDATE webhook_endpoints SET secret = 'deleted' WHERE status = 'DELETED';
