-- Relay: notifications are claimed with a lease like webhook deliveries, so they need an owner too;
-- an endpoint's delivery history is listed newest first.
ALTER TABLE notifications ADD COLUMN lease_owner TEXT;
CREATE INDEX idx_deliveries_endpoint ON webhook_deliveries(endpoint_id, created_at DESC, id DESC);
