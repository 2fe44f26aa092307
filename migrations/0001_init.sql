-- paysync schema. Portable SQL: the same file runs on SQLite and Postgres.
-- Numbers are BIGINT (unix seconds for times), flags are BIGINT 0/1, Stripe
-- objects are kept whole as JSON text.

CREATE TABLE buckets (
    id                  TEXT PRIMARY KEY,          -- 24 lowercase hex
    name                TEXT NOT NULL,
    stripe_customer_id  TEXT UNIQUE,               -- set once the customer exists in Stripe
    created_at          BIGINT NOT NULL
);

CREATE TABLE members (
    bucket_id  TEXT NOT NULL REFERENCES buckets(id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    PRIMARY KEY (bucket_id, user_id)
);
CREATE INDEX members_by_user ON members (user_id);

-- One trial per bucket, ever: the row stays after the trial ends.
CREATE TABLE trials (
    bucket_id   TEXT PRIMARY KEY REFERENCES buckets(id) ON DELETE CASCADE,
    plan        TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    ends_at     BIGINT NOT NULL,
    ended       BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX trials_running ON trials (ended, ends_at);

-- Mirrored Stripe objects. Every table has the same shape:
--   data        the full Stripe object JSON, as last applied
--   deleted     1 = tombstone: Stripe deleted/detached it; kept so a late event cannot resurrect it
--   wm_created  watermark: `created` of the last event applied (or the time of our own write)
--   wm_event    watermark: id of that event (`api:<route>` for our own writes)
--   bucket_id   the owning bucket, resolved from the customer when stored
CREATE TABLE stripe_customers (
    id          TEXT PRIMARY KEY,
    bucket_id   TEXT,
    customer_id TEXT NOT NULL,
    status      TEXT,
    parent_id   TEXT,
    created     BIGINT NOT NULL DEFAULT 0,
    data        TEXT NOT NULL,
    deleted     BIGINT NOT NULL DEFAULT 0,
    wm_created  BIGINT NOT NULL,
    wm_event    TEXT NOT NULL,
    synced_at   BIGINT NOT NULL
);
CREATE INDEX stripe_customers_by_bucket ON stripe_customers (bucket_id);

-- Cards, SEPA debit sources, and card PaymentMethods. status = the object type
-- ('card', 'sepa_debit', 'payment_method').
CREATE TABLE stripe_sources (
    id          TEXT PRIMARY KEY,
    bucket_id   TEXT,
    customer_id TEXT NOT NULL,
    status      TEXT,
    parent_id   TEXT,
    created     BIGINT NOT NULL DEFAULT 0,
    data        TEXT NOT NULL,
    deleted     BIGINT NOT NULL DEFAULT 0,
    wm_created  BIGINT NOT NULL,
    wm_event    TEXT NOT NULL,
    synced_at   BIGINT NOT NULL
);
CREATE INDEX stripe_sources_by_bucket ON stripe_sources (bucket_id, deleted, created);
CREATE INDEX stripe_sources_by_customer ON stripe_sources (customer_id);

-- status = subscription status; parent_id = the Stripe plan id.
CREATE TABLE stripe_subscriptions (
    id          TEXT PRIMARY KEY,
    bucket_id   TEXT,
    customer_id TEXT NOT NULL,
    status      TEXT,
    parent_id   TEXT,
    created     BIGINT NOT NULL DEFAULT 0,
    data        TEXT NOT NULL,
    deleted     BIGINT NOT NULL DEFAULT 0,
    wm_created  BIGINT NOT NULL,
    wm_event    TEXT NOT NULL,
    synced_at   BIGINT NOT NULL
);
CREATE INDEX stripe_subscriptions_by_bucket ON stripe_subscriptions (bucket_id, created);
CREATE INDEX stripe_subscriptions_by_customer ON stripe_subscriptions (customer_id);

-- status = invoice status; parent_id = subscription id.
CREATE TABLE stripe_invoices (
    id          TEXT PRIMARY KEY,
    bucket_id   TEXT,
    customer_id TEXT NOT NULL,
    status      TEXT,
    parent_id   TEXT,
    created     BIGINT NOT NULL DEFAULT 0,
    data        TEXT NOT NULL,
    deleted     BIGINT NOT NULL DEFAULT 0,
    wm_created  BIGINT NOT NULL,
    wm_event    TEXT NOT NULL,
    synced_at   BIGINT NOT NULL
);
CREATE INDEX stripe_invoices_by_bucket ON stripe_invoices (bucket_id, created);
CREATE INDEX stripe_invoices_by_customer ON stripe_invoices (customer_id);

-- status = charge status; parent_id = invoice id.
CREATE TABLE stripe_charges (
    id          TEXT PRIMARY KEY,
    bucket_id   TEXT,
    customer_id TEXT NOT NULL,
    status      TEXT,
    parent_id   TEXT,
    created     BIGINT NOT NULL DEFAULT 0,
    data        TEXT NOT NULL,
    deleted     BIGINT NOT NULL DEFAULT 0,
    wm_created  BIGINT NOT NULL,
    wm_event    TEXT NOT NULL,
    synced_at   BIGINT NOT NULL
);
CREATE INDEX stripe_charges_by_bucket ON stripe_charges (bucket_id, created);
CREATE INDEX stripe_charges_by_customer ON stripe_charges (customer_id);

-- status = intent status; parent_id = invoice id.
CREATE TABLE stripe_payment_intents (
    id          TEXT PRIMARY KEY,
    bucket_id   TEXT,
    customer_id TEXT NOT NULL,
    status      TEXT,
    parent_id   TEXT,
    created     BIGINT NOT NULL DEFAULT 0,
    data        TEXT NOT NULL,
    deleted     BIGINT NOT NULL DEFAULT 0,
    wm_created  BIGINT NOT NULL,
    wm_event    TEXT NOT NULL,
    synced_at   BIGINT NOT NULL
);
CREATE INDEX stripe_payment_intents_by_bucket ON stripe_payment_intents (bucket_id, created);

-- The webhook inbox: every verified event, stored before it is acknowledged.
-- state: pending | applied | failed (will be retried) | dead (gave up; replayable)
CREATE TABLE stripe_events (
    id              TEXT PRIMARY KEY,
    type            TEXT NOT NULL,
    created         BIGINT NOT NULL,
    body            TEXT NOT NULL,
    source          TEXT NOT NULL,            -- webhook | catchup
    received_at     BIGINT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending',
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    applied_at      BIGINT
);
CREATE INDEX stripe_events_due ON stripe_events (state, next_attempt_at);

-- Named positions of the sync jobs (the Events API cursor, the full-reconcile progress).
CREATE TABLE sync_cursors (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);
