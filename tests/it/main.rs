//! Integration tests: real HTTP against an in-process paysync, on SQLite and
//! on Postgres, with localstripe as Stripe (run them with `scripts/test`).

mod common;

mod apply_batch;
mod banks;
mod cancel;
mod cancel_wiremock;
mod cards;
mod cards_wiremock;
mod contract;
mod foundation;
mod leader;
mod pages;
mod reconcile;
mod reconcile_wiremock;
mod spec_contract;
mod stripe_direct;
mod stripe_versions;
mod subscriptions;
mod subscriptions_wiremock;
mod webhooks;
