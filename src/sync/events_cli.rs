//! `paysync events list --failed|--dead|--pending` and `paysync events replay ID…`.
//!
//! `list` prints one event per line (tab-separated: id, type, created, state,
//! attempts, last error). `replay` puts failed or dead events back in line
//! with their attempts reset, then applies them at once when a Stripe key is
//! configured (a re-fetch may need Stripe); without one, a running server's
//! worker picks them up at its next poll.

use crate::cli::EventsCommand;
use crate::store::Db;
use crate::stripe::Stripe;
use crate::sync::worker::Applier;

pub async fn run(cmd: EventsCommand) -> anyhow::Result<()> {
    match cmd {
        EventsCommand::List {
            failed,
            dead,
            pending,
            limit,
            db,
        } => {
            let state = if dead {
                "dead"
            } else if pending {
                "pending"
            } else {
                let _ = failed; // the default
                "failed"
            };
            let db = Db::open(&db.database_url).await?;
            let events = db.events_in_state(state, limit.clamp(1, 100_000)).await?;
            for e in &events {
                let error = e
                    .last_error
                    .as_deref()
                    .unwrap_or("")
                    .replace(['\n', '\t'], " ");
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    e.id, e.r#type, e.created, e.state, e.attempts, error
                );
            }
            eprintln!("{} {state} events", events.len());
            Ok(())
        }
        EventsCommand::Replay {
            ids,
            db,
            stripe,
            sync,
        } => {
            let db = Db::open(&db.database_url).await?;
            let mut requeued = 0;
            let mut refused = Vec::new();
            for id in &ids {
                if db.requeue_event(id).await? {
                    requeued += 1;
                } else {
                    match db.event(id).await? {
                        Some(e) => refused.push(format!(
                            "{id}: {} (only failed or dead events are replayed)",
                            e.state
                        )),
                        None => refused.push(format!("{id}: not in the inbox")),
                    }
                }
            }
            eprintln!("{requeued} events put back in line");
            if stripe.stripe_secret_key.is_some() && requeued > 0 {
                let applier = Applier {
                    db: db.clone(),
                    stripe: Stripe::new(&stripe.settings()?)?,
                    sync: sync.settings()?,
                };
                let done = applier.drain().await?;
                eprintln!(
                    "applied {} events ({} failed again, {} dead)",
                    done.applied, done.failed, done.dead
                );
            }
            for r in &refused {
                eprintln!("{r}");
            }
            if !refused.is_empty() {
                anyhow::bail!("{} of {} events not replayed", refused.len(), ids.len());
            }
            Ok(())
        }
    }
}
