-- The Stripe customer an inbox event is about (its object's customer, the
-- customer itself for a customer object) when that customer had no bucket
-- when the event was stored; '' otherwise. When a customer gets linked to a
-- bucket, its events applied before the link (and ignored then: a customer
-- of no bucket) are put back in line by this index, instead of by a LIKE
-- over every stored event body, which grew with the inbox and ran once for
-- each new customer. Rows stored before this column are filled in right
-- after the migrations run (`store::inbox::fill_customers`).
ALTER TABLE stripe_events ADD COLUMN customer_id TEXT;
-- With `state` in it, the requeue's two conditions are one index lookup: a
-- planner without statistics would otherwise intersect it with the index on
-- state, whose 'applied' entries are nearly the whole inbox.
CREATE INDEX stripe_events_by_customer ON stripe_events (customer_id, state);
-- Linking a customer looks for its rows stored without a bucket, by customer:
-- payment intents had no index for that (every other kind has one).
CREATE INDEX stripe_payment_intents_by_customer ON stripe_payment_intents (customer_id);
