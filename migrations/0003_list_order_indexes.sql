-- List reads are `WHERE bucket_id = ? … ORDER BY created DESC, id DESC`. With
-- `id` in the index the rows come out of it in that order: no sort step, so
-- the database no longer copies every selected row (JSON included) into a
-- sorter before the first one is returned.
DROP INDEX IF EXISTS stripe_sources_by_bucket;
CREATE INDEX stripe_sources_by_bucket ON stripe_sources (bucket_id, deleted, created, id);
DROP INDEX IF EXISTS stripe_subscriptions_by_bucket;
CREATE INDEX stripe_subscriptions_by_bucket ON stripe_subscriptions (bucket_id, created, id);
DROP INDEX IF EXISTS stripe_invoices_by_bucket;
CREATE INDEX stripe_invoices_by_bucket ON stripe_invoices (bucket_id, created, id);
DROP INDEX IF EXISTS stripe_charges_by_bucket;
CREATE INDEX stripe_charges_by_bucket ON stripe_charges (bucket_id, created, id);
DROP INDEX IF EXISTS stripe_payment_intents_by_bucket;
CREATE INDEX stripe_payment_intents_by_bucket ON stripe_payment_intents (bucket_id, created, id);
