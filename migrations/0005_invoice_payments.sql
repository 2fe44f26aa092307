-- InvoicePayments (Stripe API 2025-03-31.basil and later): the objects that
-- link an invoice to the payment intent or charge that paid it, since
-- charges, payment intents and invoices stopped naming each other. Same shape
-- as the other mirrored tables; status = the payment's status (open, paid,
-- canceled), parent_id = the invoice id. The customer is the invoice's.
CREATE TABLE stripe_invoice_payments (
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
    synced_at   BIGINT NOT NULL,
    view        TEXT
);
CREATE INDEX stripe_invoice_payments_by_bucket ON stripe_invoice_payments (bucket_id, created, id);
CREATE INDEX stripe_invoice_payments_by_customer ON stripe_invoice_payments (customer_id);
