//! Backfill: `paysync reconcile --full` against the stand-in, compared with
//! merely paging through the same lists — the same requests, one at a time,
//! answers parsed as JSON, nothing stored — with the request budget off.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::seed::customer_id;
use crate::server::STRIPE_KEY;

/// Run the real CLI; returns (elapsed, stdout summary line).
pub fn reconcile(
    bin: &Path,
    root: &Path,
    database_url: &str,
    stripe_base: &str,
) -> anyhow::Result<(Duration, String)> {
    let started = Instant::now();
    let out = Command::new(bin)
        .args(["reconcile", "--full"])
        .current_dir(root)
        .env("DATABASE_URL", database_url)
        .env("STRIPE_SECRET_KEY", STRIPE_KEY)
        .env("STRIPE_API_BASE", stripe_base)
        // The stand-in answers in the shapes of that version.
        .env(
            "PAYSYNC_STRIPE_API_VERSION",
            paysync::stripe::version::LEGACY,
        )
        .env("PAYSYNC_STRIPE_RPS", "0")
        .env("RUST_LOG", "warn")
        .output()?;
    let took = started.elapsed();
    if !out.status.success() {
        anyhow::bail!(
            "paysync reconcile --full failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok((
        took,
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    ))
}

/// The reads a full reconcile makes for customer `i`, in its order.
fn requests(base: &str, i: usize) -> Vec<String> {
    let c = customer_id(i);
    vec![
        format!("{base}/v1/customers/{c}?expand%5B0%5D=sources"),
        format!("{base}/v1/payment_methods?customer={c}&type=card&limit=100"),
        format!("{base}/v1/subscriptions?customer={c}&status=all&limit=100"),
        format!("{base}/v1/invoices?customer={c}&limit=100"),
        format!("{base}/v1/charges?customer={c}&limit=100"),
    ]
}

/// Page through every customer's lists, one request at a time; returns (elapsed, requests).
pub async fn page(base: &str, customers: usize) -> anyhow::Result<(Duration, u64)> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(60))
        .build()?;
    let started = Instant::now();
    let mut n = 0;
    for i in 0..customers {
        for url in requests(base, i) {
            let resp = http.get(&url).bearer_auth(STRIPE_KEY).send().await?;
            anyhow::ensure!(resp.status().is_success(), "{url}: {}", resp.status());
            let v: Value = serde_json::from_slice(&resp.bytes().await?)?;
            std::hint::black_box(&v);
            n += 1;
        }
    }
    Ok((started.elapsed(), n))
}
