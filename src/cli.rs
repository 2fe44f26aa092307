//! The `paysync` command line.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::auth::JwtKeys;
use crate::cfg::{DbArgs, ServeArgs};
use crate::store::Db;
use crate::store::buckets::{Member, Role, new_id, valid_id};

#[derive(Parser, Debug)]
#[command(
    name = "paysync",
    version,
    about = "Billing backend of a bucket, mirrored from Stripe"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the HTTP server (and its background jobs).
    Serve(Box<ServeArgs>),
    /// Create or update the database schema, then exit.
    Migrate {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Print the OpenAPI spec (JSON).
    Openapi,
    /// Mint an HS256 user access token (demos and tests).
    Token {
        /// The user id (`sub`).
        #[arg(long)]
        user: String,
        /// Lifetime, e.g. `1h`, `30m`, `7d`.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        #[arg(
            long = "jwt-secret",
            env = "PAYSYNC_JWT_SECRET",
            hide_env_values = true
        )]
        jwt_secret: String,
    },
    /// Manage buckets.
    #[command(subcommand)]
    Bucket(BucketCommand),
    /// Bring the cache in line with Stripe now: catch up from the Events API,
    /// or (--full) compare every bucket's customer with Stripe.
    Reconcile(ReconcileArgs),
    /// The webhook inbox: list failed or dead events, replay them.
    #[command(subcommand)]
    Events(EventsCommand),
    /// The plan catalog in Stripe.
    #[command(subcommand)]
    Plans(PlansCommand),
}

#[derive(Subcommand, Debug)]
pub enum EventsCommand {
    /// List inbox events: failed (being retried), dead (gave up), or pending.
    List {
        /// Events whose apply failed and will be retried.
        #[arg(long, group = "which")]
        failed: bool,
        /// Events parked after too many failed attempts.
        #[arg(long, group = "which")]
        dead: bool,
        /// Events not applied yet.
        #[arg(long, group = "which")]
        pending: bool,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Put failed or dead events back in line and apply them now (when a
    /// Stripe key is configured; else a running server's worker applies them).
    Replay {
        /// Event ids (`evt_…`).
        #[arg(required = true)]
        ids: Vec<String>,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        stripe: crate::cfg::StripeArgs,
        #[command(flatten)]
        sync: crate::cfg::SyncArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum PlansCommand {
    /// Create the catalog's products and plans in Stripe when they are missing
    /// (safe to run again); fails when a Stripe plan's price differs from the catalog.
    Sync {
        /// Plan catalog (TOML).
        #[arg(long, env = "PAYSYNC_PLANS", default_value = "fixtures/plans.toml")]
        plans: std::path::PathBuf,
        #[command(flatten)]
        stripe: crate::cfg::StripeArgs,
    },
}

#[derive(clap::Args, Debug)]
pub struct ReconcileArgs {
    /// Full reconcile of every bucket's customer (resumes an interrupted run).
    #[arg(long)]
    pub full: bool,
    /// Only this bucket (with --full).
    #[arg(long, requires = "full")]
    pub bucket: Option<String>,
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub stripe: crate::cfg::StripeArgs,
    #[command(flatten)]
    pub sync: crate::cfg::SyncArgs,
}

#[derive(Subcommand, Debug)]
pub enum BucketCommand {
    /// Create a bucket with an owner; prints its id.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        owner: String,
        /// Use this id (24 lowercase hex) instead of a fresh one.
        #[arg(long)]
        id: Option<String>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Add a member to a bucket, or change a member's role.
    AddMember {
        id: String,
        user: String,
        #[arg(long, value_parser = ["owner", "admin", "member"])]
        role: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

pub fn main() -> ExitCode {
    let logs = crate::logging::init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // A worker's first allocation gives it a malloc arena of its own
        // (see `limit_malloc_arenas` in main.rs): made here, as it starts.
        .on_thread_start(|| drop(std::hint::black_box(Box::new(0u64))))
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("paysync: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    drop(runtime);
    // Queued log lines first, then the final message.
    drop(logs);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("paysync: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let settings = args.settings()?;
            crate::app::serve(settings).await
        }
        Command::Migrate { db } => {
            Db::open(&db.database_url).await?;
            eprintln!(
                "migrations applied to {}",
                crate::store::redact(&db.database_url)
            );
            Ok(())
        }
        Command::Openapi => {
            println!("{}", crate::api::spec_json());
            Ok(())
        }
        Command::Token {
            user,
            ttl,
            jwt_secret,
        } => {
            let keys = JwtKeys::hs256(&jwt_secret)?;
            println!("{}", keys.mint(&user, ttl)?);
            Ok(())
        }
        Command::Bucket(BucketCommand::Create {
            name,
            owner,
            id,
            db,
        }) => {
            let id = match id {
                Some(id) if valid_id(&id) => id,
                Some(id) => anyhow::bail!("--id: {id:?} is not 24 lowercase hex characters"),
                None => new_id(),
            };
            let db = Db::open(&db.database_url).await?;
            db.put_bucket(
                &id,
                &name,
                &[Member {
                    user_id: owner,
                    role: Role::Owner,
                }],
            )
            .await?;
            println!("{id}");
            Ok(())
        }
        Command::Reconcile(args) => crate::sync::progress::reconcile_command(args).await,
        Command::Events(cmd) => crate::sync::events_cli::run(cmd).await,
        Command::Plans(PlansCommand::Sync { plans, stripe }) => plans_sync(&plans, &stripe).await,
        Command::Bucket(BucketCommand::AddMember { id, user, role, db }) => {
            let role = Role::parse(&role)
                .ok_or_else(|| anyhow::anyhow!("--role: owner, admin or member"))?;
            let db = Db::open(&db.database_url).await?;
            if !db.set_member(&id, &user, role).await? {
                anyhow::bail!("no bucket {id}");
            }
            eprintln!("{user} is now {} of {id}", role.as_str());
            Ok(())
        }
    }
}

/// `paysync plans sync`: one line per paid plan, `NAME STRIPE_ID created|exists|differs: …`.
async fn plans_sync(path: &std::path::Path, stripe: &crate::cfg::StripeArgs) -> anyhow::Result<()> {
    use crate::stripe::plans::PlanSync;
    let catalog = crate::plans::Catalog::load(path)?;
    let stripe = crate::stripe::Stripe::new(&stripe.settings()?)?;
    let done = crate::stripe::plans::sync(&stripe, &catalog)
        .await
        .map_err(|e| anyhow::anyhow!("Stripe: {e}"))?;
    let mut differs = 0;
    for (name, outcome) in &done {
        let id = catalog
            .get(name)
            .and_then(|p| p.stripe_id.as_deref())
            .unwrap_or_default();
        match outcome {
            PlanSync::Created => println!("{name} {id} created"),
            PlanSync::Exists => println!("{name} {id} exists"),
            PlanSync::Differs(d) => {
                differs += 1;
                println!("{name} {id} differs: {d}");
            }
        }
    }
    if differs > 0 {
        anyhow::bail!(
            "{differs} plan(s) differ from the catalog in Stripe (Stripe plans cannot change: give the plan a new stripe_id)"
        );
    }
    Ok(())
}
