//! HTTP/1.1 keep-alive load: `conns` connections, each sending its next
//! request as soon as the previous answer is read (closed loop), for a fixed
//! time after a short warm-up. Latency per request into an HDR histogram (µs).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

/// What the connections ask for: a request for random target `i`.
pub trait Target: Send + Sync + 'static {
    fn request(&self, rng: &mut rand::rngs::SmallRng) -> Request<Empty<Bytes>>;
}

/// One HTTP/1.1 connection.
pub async fn connect<B>(addr: SocketAddr) -> anyhow::Result<SendRequest<B>>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

pub struct Outcome {
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub hist: Histogram<u64>,
    pub elapsed: Duration,
    /// CPU seconds (user + system) the server spent in the measured window
    /// (None: its `/proc` entry could not be read).
    pub server_cpu: Option<f64>,
}

impl Outcome {
    pub fn json(&self) -> Value {
        let secs = self.elapsed.as_secs_f64();
        let q = |p: f64| self.hist.value_at_quantile(p) as f64 / 1000.0;
        json!({
            "requests_ok": self.ok,
            "errors": self.errors,
            "first_error": self.first_error,
            "req_per_s": (self.ok as f64 / secs).round(),
            "p50_ms": q(0.50),
            "p99_ms": q(0.99),
            "max_ms": self.hist.max() as f64 / 1000.0,
            "seconds": secs,
            // Less noisy than req/s on a shared machine: what one answer costs the server.
            "server_cpu_us_per_req": self.server_cpu
                .map(|cpu| (cpu * 1e6 / self.ok.max(1) as f64 * 10.0).round() / 10.0),
        })
    }
}

/// CPU seconds (user + system) process `pid` has used so far.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses:
    // state is the first, utime the 12th, stime the 13th; in clock ticks.
    let mut rest = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let utime: f64 = rest.next()?.parse().ok()?;
    let stime: f64 = rest.next()?.parse().ok()?;
    // USER_HZ: 100 on every Linux architecture this runs on.
    Some((utime + stime) / 100.0)
}

/// Closed-loop load on `conns` connections for `warmup + duration`, and the
/// CPU time of process `server` in the measured window.
pub async fn run(
    addr: SocketAddr,
    target: Arc<dyn Target>,
    conns: usize,
    warmup: Duration,
    duration: Duration,
    server: u32,
) -> anyhow::Result<Outcome> {
    let start = Instant::now();
    let measure_from = start + warmup;
    let until = measure_from + duration;
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        let from = cpu_seconds(server)?;
        tokio::time::sleep_until(until.into()).await;
        Some(cpu_seconds(server)? - from)
    });
    let mut tasks = Vec::new();
    for c in 0..conns {
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("hist");
            let (mut ok, mut errors, mut first_error) = (0u64, 0u64, None::<String>);
            let mut rng: rand::rngs::SmallRng = rand::SeedableRng::seed_from_u64(c as u64 + 1);
            let mut sender = connect::<Empty<Bytes>>(addr).await?;
            loop {
                let now = Instant::now();
                if now >= until {
                    break;
                }
                let req = target.request(&mut rng);
                let t = Instant::now();
                let result = async {
                    sender.ready().await?;
                    let resp = sender.send_request(req).await?;
                    let status = resp.status();
                    let body = resp.into_body().collect().await?.to_bytes();
                    anyhow::Ok((status, body))
                }
                .await;
                let took = t.elapsed();
                let counted = t >= measure_from;
                match result {
                    Ok((status, _)) if status.is_success() => {
                        if counted {
                            ok += 1;
                            let _ = hist.record(took.as_micros().max(1) as u64);
                        }
                    }
                    Ok((status, body)) => {
                        if counted {
                            errors += 1;
                        }
                        first_error.get_or_insert_with(|| {
                            format!("{status}: {}", String::from_utf8_lossy(&body))
                        });
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| e.to_string());
                        sender = connect::<Empty<Bytes>>(addr).await?;
                    }
                }
            }
            anyhow::Ok((ok, errors, first_error, hist))
        }));
    }
    let mut out = Outcome {
        ok: 0,
        errors: 0,
        first_error: None,
        hist: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        elapsed: duration,
        server_cpu: None,
    };
    for t in tasks {
        let (ok, errors, first_error, hist) = t.await??;
        out.ok += ok;
        out.errors += errors;
        if out.first_error.is_none() {
            out.first_error = first_error;
        }
        out.hist.add(&hist)?;
    }
    out.server_cpu = cpu.await?;
    Ok(out)
}

/// One-off GET on a fresh connection: (status, body).
pub async fn get(
    addr: SocketAddr,
    path: &str,
    bearer: Option<&str>,
) -> anyhow::Result<(u16, Bytes)> {
    let mut sender = connect::<Empty<Bytes>>(addr).await?;
    let mut req = Request::get(path).header("host", "127.0.0.1");
    if let Some(b) = bearer {
        req = req.header("authorization", format!("Bearer {b}"));
    }
    let resp = sender.send_request(req.body(Empty::new())?).await?;
    let status = resp.status().as_u16();
    Ok((status, resp.into_body().collect().await?.to_bytes()))
}

/// A POST with a body on an existing connection: (status, body).
pub async fn post(
    sender: &mut SendRequest<Full<Bytes>>,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> anyhow::Result<(u16, Bytes)> {
    let mut req = Request::post(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    sender.ready().await?;
    let resp = sender.send_request(req.body(Full::new(body))?).await?;
    let status = resp.status().as_u16();
    Ok((status, resp.into_body().collect().await?.to_bytes()))
}
