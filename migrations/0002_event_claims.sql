-- Claims on inbox events, so several replicas sharing one database never
-- apply the same event at the same time: a replica claims a batch by writing
-- its claim token and a lease end; a claim whose lease has run out (the
-- replica died) may be taken over. Portable SQL (SQLite and Postgres).
ALTER TABLE stripe_events ADD COLUMN claimed_by TEXT;
ALTER TABLE stripe_events ADD COLUMN claimed_until BIGINT NOT NULL DEFAULT 0;
