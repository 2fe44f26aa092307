//! The paysync process under test: start it, time it to `/readyz` 200,
//! sample its memory, stop it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::load;

pub const JWT_SECRET: &str = "bench-secret-0123456789abcdef";
pub const WEBHOOK_SECRET: &str = "whsec_bench0123456789abcdef";
pub const STRIPE_KEY: &str = "sk_test_bench";

pub struct Paysync {
    pub child: Child,
    pub addr: SocketAddr,
    /// From spawn to the first `/readyz` 200.
    pub ready_in: Duration,
}

/// A TCP port nobody listens on (bound, then released).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

pub struct Start<'a> {
    pub bin: &'a Path,
    pub root: &'a Path,
    pub database_url: &'a str,
    pub stripe_base: &'a str,
    pub log: PathBuf,
    pub rust_log: &'a str,
}

impl Paysync {
    pub async fn start(s: Start<'_>) -> anyhow::Result<Paysync> {
        let port = free_port()?;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let log = std::fs::File::create(&s.log)?;
        let started = Instant::now();
        let child = Command::new(s.bin)
            .arg("serve")
            .current_dir(s.root)
            .env("DATABASE_URL", s.database_url)
            .env("PAYSYNC_BIND", addr.to_string())
            .env("PAYSYNC_JWT_SECRET", JWT_SECRET)
            .env("STRIPE_SECRET_KEY", STRIPE_KEY)
            .env("STRIPE_API_BASE", s.stripe_base)
            // The stand-in answers in the shapes of that version.
            .env(
                "PAYSYNC_STRIPE_API_VERSION",
                paysync::stripe::version::LEGACY,
            )
            .env("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env("PAYSYNC_PLANS", s.root.join("fixtures/plans.toml"))
            .env("RUST_LOG", s.rust_log)
            // The scheduled catch-up and full reconcile would run against the stand-in in the
            // middle of a measure (a fresh catch-up cursor asks for a full reconcile): once a
            // year is never, for a benchmark. The backfill measure runs the reconcile itself.
            .env("PAYSYNC_CATCHUP_CRON", "0 0 0 1 1 *")
            .env("PAYSYNC_RECONCILE_CRON", "0 0 0 1 1 *")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut p = Paysync {
            child,
            addr,
            ready_in: Duration::ZERO,
        };
        let deadline = started + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = load::get(addr, "/readyz", None).await {
                p.ready_in = started.elapsed();
                return Ok(p);
            }
            if let Some(status) = p.child.try_wait()? {
                anyhow::bail!(
                    "paysync exited ({status}) before it was ready; see {}",
                    s.log.display()
                );
            }
            if Instant::now() > deadline {
                p.stop();
                anyhow::bail!("paysync not ready after 30 s; see {}", s.log.display());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// (VmRSS, VmHWM) in MiB.
    pub fn memory(&self) -> (f64, f64) {
        memory(self.pid())
    }

    /// SIGTERM (graceful shutdown), then wait; SIGKILL after 10 s.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Paysync {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// (VmRSS, VmHWM) of a process, in MiB (0 when unreadable).
pub fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kb| (kb / 1024.0 * 10.0).round() / 10.0)
            .unwrap_or(0.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}
