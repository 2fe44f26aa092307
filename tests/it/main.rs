//! Integration tests: real HTTP against an in-process paysync, on SQLite and
//! on Postgres, with localstripe as Stripe (run them with `scripts/test`).

mod common;

mod foundation;
mod reconcile;
mod reconcile_wiremock;
mod stripe_direct;
mod webhooks;
