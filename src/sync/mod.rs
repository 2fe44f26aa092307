//! Keeping the cache in step with Stripe: background jobs (and, later, the
//! webhook inbox worker and the reconciler).

pub mod jobs;
