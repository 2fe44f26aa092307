-- The text a hot read answers with, computed when the row is written (see
-- src/store/views.rs): a source's card as the API shows it (or 'null' when it
-- is not a card), a customer's default card ids. NULL on rows written before
-- this column, and on kinds without a view; readers then use `data`.
ALTER TABLE stripe_customers ADD COLUMN view TEXT;
ALTER TABLE stripe_sources ADD COLUMN view TEXT;
ALTER TABLE stripe_subscriptions ADD COLUMN view TEXT;
ALTER TABLE stripe_invoices ADD COLUMN view TEXT;
ALTER TABLE stripe_charges ADD COLUMN view TEXT;
ALTER TABLE stripe_payment_intents ADD COLUMN view TEXT;
