-- The sync-health page (GET /admin/ops) counts webhook deliveries per minute
-- and the apply lag of the last minutes: both read the inbox by receipt time.
-- Without this index each look scans the whole inbox (it keeps every event).
-- received_at only grows, so new entries go to the index's right edge.
CREATE INDEX stripe_events_by_received ON stripe_events (received_at);
