-- The inbox keeps every event, and nearly all of them are 'applied'; only
-- the others (pending, failed, dead) are ever looked up by state: by the
-- apply worker's claim, the backlog and dead-event counts, the CLI's lists
-- and the sync-health page. So the index by state holds only those: each
-- stored event, nearly always stored already applied, no longer adds an
-- entry to it (one index write less per event). Queries that use it repeat
-- its condition (`state <> 'applied'`, see `store::inbox::UNAPPLIED`): SQLite
-- uses a partial index only when the query's WHERE contains its condition.
DROP INDEX IF EXISTS stripe_events_due;
CREATE INDEX stripe_events_due ON stripe_events (state, next_attempt_at) WHERE state <> 'applied';
