//! Configuration: every option is a CLI flag that can also come from the
//! environment. Parsing is clap's; the checks clap cannot do (a key file that
//! must parse, a plan catalog that must make sense) happen in `Settings::load`,
//! which names the offending setting in its one-line error.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use crate::auth::JwtKeys;
use crate::plans::Catalog;

/// Where the cache lives.
#[derive(Args, Debug, Clone)]
pub struct DbArgs {
    /// `sqlite://FILE` (created if missing) or `postgres://…`.
    #[arg(
        long = "database-url",
        env = "DATABASE_URL",
        default_value = "sqlite://paysync.db"
    )]
    pub database_url: String,
}

/// How to sign and check user tokens.
#[derive(Args, Debug, Clone)]
pub struct JwtArgs {
    /// HS256 secret for user tokens.
    #[arg(
        long = "jwt-secret",
        env = "PAYSYNC_JWT_SECRET",
        hide_env_values = true
    )]
    pub jwt_secret: Option<String>,
    /// PEM file with an RS256 or ES256 public key for user tokens.
    #[arg(long = "jwt-public-key", env = "PAYSYNC_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<PathBuf>,
}

/// How to reach Stripe.
#[derive(Args, Debug, Clone)]
pub struct StripeArgs {
    /// Stripe secret key (`sk_…`).
    #[arg(
        long = "stripe-secret-key",
        env = "STRIPE_SECRET_KEY",
        hide_env_values = true
    )]
    pub stripe_secret_key: Option<String>,
    /// Stripe API base URL (a stand-in such as localstripe in tests).
    #[arg(
        long = "stripe-api-base",
        env = "STRIPE_API_BASE",
        default_value = "https://api.stripe.com"
    )]
    pub stripe_api_base: String,
    /// Time-out of one Stripe HTTP attempt, e.g. `10s`.
    #[arg(long = "stripe-timeout", env = "PAYSYNC_STRIPE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub stripe_timeout: Duration,
    /// Attempts per Stripe call (first try included) on 429, 5xx and connection errors.
    #[arg(
        long = "stripe-max-attempts",
        env = "PAYSYNC_STRIPE_MAX_ATTEMPTS",
        default_value_t = 3
    )]
    pub stripe_max_attempts: u32,
    /// Stripe requests per second, shared by every Stripe call of the process (0: no limit).
    #[arg(long = "stripe-rps", env = "PAYSYNC_STRIPE_RPS", default_value_t = 20)]
    pub stripe_rps: u32,
    /// Stripe API version sent as `Stripe-Version` on every call (`2024-06-20`,
    /// `2025-03-31.basil`, …): Stripe answers in it, whatever the account's default.
    #[arg(
        long = "stripe-api-version",
        env = "PAYSYNC_STRIPE_API_VERSION",
        default_value = crate::stripe::version::DEFAULT
    )]
    pub stripe_api_version: String,
}

/// How the apply worker treats the event inbox (server, `events` and `reconcile` commands).
#[derive(Args, Debug, Clone)]
pub struct SyncArgs {
    /// Attempts to apply an event before it is parked as dead (`paysync events replay` revives it).
    #[arg(
        long = "event-max-attempts",
        env = "PAYSYNC_EVENT_MAX_ATTEMPTS",
        default_value_t = 8
    )]
    pub event_max_attempts: u32,
    /// Wait before the first retry of a failed event; it doubles on every further failure (capped at 1h).
    #[arg(long = "event-backoff", env = "PAYSYNC_EVENT_BACKOFF", default_value = "5s", value_parser = humantime::parse_duration)]
    pub event_backoff: Duration,
    /// How long a replica's claim on a batch of events lasts; a replica that died
    /// holding a claim delays those events by at most this much.
    #[arg(long = "event-lease", env = "PAYSYNC_EVENT_LEASE", default_value = "60s", value_parser = humantime::parse_duration)]
    pub event_lease: Duration,
    /// Fallback poll of the inbox (deliveries wake the worker at once; this catches retries and other replicas' inserts).
    #[arg(long = "event-poll", env = "PAYSYNC_EVENT_POLL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub event_poll: Duration,
    /// Object kinds always re-fetched from Stripe instead of trusting the event's copy
    /// (comma-separated: customer, source, subscription, invoice, charge, payment_intent).
    #[arg(long = "refetch", env = "PAYSYNC_REFETCH", value_delimiter = ',')]
    pub refetch: Vec<String>,
}

/// Checked settings of the apply worker.
#[derive(Clone, Debug)]
pub struct SyncSettings {
    pub max_attempts: u32,
    pub backoff: Duration,
    pub lease: Duration,
    pub poll: Duration,
    pub refetch: Vec<crate::store::Kind>,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            max_attempts: 8,
            backoff: Duration::from_secs(5),
            lease: Duration::from_secs(60),
            poll: Duration::from_secs(5),
            refetch: vec![],
        }
    }
}

impl SyncArgs {
    pub fn settings(&self) -> anyhow::Result<SyncSettings> {
        if self.event_max_attempts == 0 {
            bail!("PAYSYNC_EVENT_MAX_ATTEMPTS: must be at least 1");
        }
        if self.event_lease < Duration::from_secs(1) {
            bail!("PAYSYNC_EVENT_LEASE: must be at least 1s");
        }
        if self.event_poll < Duration::from_millis(10) {
            bail!("PAYSYNC_EVENT_POLL: must be at least 10ms");
        }
        let mut refetch = Vec::new();
        for name in self
            .refetch
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
        {
            let kind = crate::store::Kind::parse(name).with_context(|| {
                format!("PAYSYNC_REFETCH: unknown kind {name:?} (customer, source, subscription, invoice, charge, payment_intent)")
            })?;
            refetch.push(kind);
        }
        Ok(SyncSettings {
            max_attempts: self.event_max_attempts,
            backoff: self.event_backoff,
            lease: self.event_lease,
            poll: self.event_poll,
            refetch,
        })
    }
}

/// Everything `paysync serve` needs.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "PAYSYNC_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub jwt: JwtArgs,
    #[command(flatten)]
    pub stripe: StripeArgs,
    #[command(flatten)]
    pub sync: SyncArgs,
    /// Webhook signing secrets (`whsec_…`), comma-separated: several are accepted during a rotation.
    #[arg(
        long = "stripe-webhook-secret",
        env = "STRIPE_WEBHOOK_SECRET",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub stripe_webhook_secret: Vec<String>,
    /// How old (or how far in the future) a webhook signature timestamp may be.
    #[arg(long = "webhook-tolerance", env = "PAYSYNC_WEBHOOK_TOLERANCE", default_value = "300s", value_parser = humantime::parse_duration)]
    pub webhook_tolerance: Duration,
    /// Bearer token of the admin API (admin routes are off when unset).
    #[arg(
        long = "admin-token",
        env = "PAYSYNC_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
    /// Public URL of this server, given to clients as `node.endpoints.web` (default: from --bind).
    #[arg(long = "public-url", env = "PAYSYNC_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Stripe publishable key (`pk_…`) the billing page (`/billing`) gives
    /// Stripe.js, which turns card details into tokens in the browser; without
    /// it the page cannot add cards.
    #[arg(
        long = "stripe-publishable-key",
        env = "PAYSYNC_STRIPE_PUBLISHABLE_KEY"
    )]
    pub stripe_publishable_key: Option<String>,
    /// Plan catalog (TOML).
    #[arg(long, env = "PAYSYNC_PLANS", default_value = "fixtures/plans.toml")]
    pub plans: PathBuf,
    /// Largest accepted request body, in bytes.
    #[arg(long = "max-body", env = "PAYSYNC_MAX_BODY", default_value_t = 256 * 1024)]
    pub max_body: usize,
    /// Memory for the cards list answers kept ready, in MiB (0: read each from
    /// the database). About 2 KiB a bucket with three cards: the default holds
    /// about 12,000. A miss costs a round trip on Postgres (microseconds in
    /// process on SQLite), so on Postgres the cache should hold the buckets
    /// that are read.
    #[arg(
        long = "cards-cache-mib",
        env = "PAYSYNC_CARDS_CACHE_MIB",
        default_value_t = 24
    )]
    pub cards_cache_mib: usize,
    /// Cron schedule (with seconds) of the job that ends expired trials.
    #[arg(
        long = "trial-cron",
        env = "PAYSYNC_TRIAL_CRON",
        default_value = "0 * * * * *"
    )]
    pub trial_cron: String,
    /// Cron schedule (with seconds) of the Events-API catch-up.
    #[arg(
        long = "catchup-cron",
        env = "PAYSYNC_CATCHUP_CRON",
        default_value = "30 * * * * *"
    )]
    pub catchup_cron: String,
    /// Cron schedule (with seconds) of the full reconcile (default: nightly at 03:00 UTC).
    #[arg(
        long = "reconcile-cron",
        env = "PAYSYNC_RECONCILE_CRON",
        default_value = "0 0 3 * * *"
    )]
    pub reconcile_cron: String,
}

/// Checked settings of a running server.
#[derive(Clone)]
pub struct Settings {
    pub bind: SocketAddr,
    pub database_url: String,
    pub stripe: StripeSettings,
    pub webhook_secrets: Vec<String>,
    pub webhook_tolerance: Duration,
    pub sync: SyncSettings,
    pub admin_token: Option<String>,
    pub public_url: String,
    pub jwt: JwtKeys,
    pub catalog: Catalog,
    /// The Stripe publishable key of the billing page (`pk_…`).
    pub publishable_key: Option<String>,
    pub max_body: usize,
    /// Bytes of cards answers kept in memory (`store::cards_cache`).
    pub cards_cache: usize,
    /// How often a SQLite server looks for changes made by other processes
    /// (`store::changes::LOOK_EVERY`; not a setting, tests lengthen it).
    pub cards_look_every: Duration,
    pub trial_cron: String,
    pub catchup_cron: String,
    pub reconcile_cron: String,
}

#[derive(Clone, Debug)]
pub struct StripeSettings {
    pub secret_key: String,
    pub api_base: String,
    pub timeout: Duration,
    pub max_attempts: u32,
    pub rps: u32,
    /// The `Stripe-Version` of every call.
    pub api_version: String,
}

impl StripeArgs {
    pub fn settings(&self) -> anyhow::Result<StripeSettings> {
        let secret_key = match self.stripe_secret_key.as_deref().map(str::trim) {
            Some(k) if k.starts_with("sk_") || k.starts_with("rk_") => k.to_string(),
            Some(_) => bail!("STRIPE_SECRET_KEY: must be a Stripe secret key (sk_… or rk_…)"),
            None => bail!("STRIPE_SECRET_KEY: missing (the Stripe secret key)"),
        };
        let api_base = url::Url::parse(&self.stripe_api_base)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .map(|_| self.stripe_api_base.trim_end_matches('/').to_string())
            .with_context(|| {
                format!(
                    "STRIPE_API_BASE: not an http(s) URL: {}",
                    self.stripe_api_base
                )
            })?;
        if self.stripe_max_attempts == 0 {
            bail!("PAYSYNC_STRIPE_MAX_ATTEMPTS: must be at least 1");
        }
        let api_version = crate::stripe::version::parse(&self.stripe_api_version)
            .with_context(|| {
                format!(
                    "PAYSYNC_STRIPE_API_VERSION: not a Stripe API version (e.g. 2024-06-20 or 2025-03-31.basil): {}",
                    self.stripe_api_version
                )
            })?;
        Ok(StripeSettings {
            secret_key,
            api_base,
            timeout: self.stripe_timeout,
            max_attempts: self.stripe_max_attempts,
            rps: self.stripe_rps,
            api_version,
        })
    }
}

impl ServeArgs {
    /// Check every setting; the error names the one at fault.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let bind: SocketAddr = self
            .bind
            .parse()
            .with_context(|| format!("PAYSYNC_BIND: not an address:port: {}", self.bind))?;
        crate::store::check_url(&self.db.database_url)?;
        let stripe = self.stripe.settings()?;
        let jwt = JwtKeys::from_args(&self.jwt)?;
        let webhook_secrets: Vec<String> = self
            .stripe_webhook_secret
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if webhook_secrets.is_empty() {
            tracing::warn!("STRIPE_WEBHOOK_SECRET is not set: webhook deliveries will be refused");
        }
        let admin_token = self.admin_token.clone().filter(|t| !t.is_empty());
        if let Some(t) = &admin_token
            && t.len() < 16
        {
            bail!("PAYSYNC_ADMIN_TOKEN: too short (at least 16 characters)");
        }
        let public_url = match &self.public_url {
            Some(u) => {
                url::Url::parse(u)
                    .with_context(|| format!("PAYSYNC_PUBLIC_URL: not a URL: {u}"))?;
                u.trim_end_matches('/').to_string()
            }
            None => format!("http://{bind}"),
        };
        let catalog = Catalog::load(&self.plans)?;
        let publishable_key = match self.stripe_publishable_key.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(k)
                if k.starts_with("pk_")
                    && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                Some(k.to_string())
            }
            Some(_) => {
                bail!("PAYSYNC_STRIPE_PUBLISHABLE_KEY: must be a Stripe publishable key (pk_…)")
            }
        };
        if self.max_body < 1024 {
            bail!("PAYSYNC_MAX_BODY: must be at least 1024 bytes");
        }
        for (name, value) in [
            ("PAYSYNC_TRIAL_CRON", &self.trial_cron),
            ("PAYSYNC_CATCHUP_CRON", &self.catchup_cron),
            ("PAYSYNC_RECONCILE_CRON", &self.reconcile_cron),
        ] {
            tokio_cron_scheduler::Job::new_async(value.as_str(), |_, _| Box::pin(async {}))
                .map_err(|e| anyhow::anyhow!("{name}: not a cron schedule with seconds ({e})"))?;
        }
        Ok(Settings {
            bind,
            database_url: self.db.database_url.clone(),
            stripe,
            webhook_secrets,
            webhook_tolerance: self.webhook_tolerance,
            sync: self.sync.settings()?,
            admin_token,
            public_url,
            jwt,
            catalog,
            publishable_key,
            max_body: self.max_body,
            cards_cache: self.cards_cache_mib.saturating_mul(1024 * 1024),
            cards_look_every: crate::store::changes::LOOK_EVERY,
            trial_cron: self.trial_cron.clone(),
            catchup_cron: self.catchup_cron.clone(),
            reconcile_cron: self.reconcile_cron.clone(),
        })
    }
}
