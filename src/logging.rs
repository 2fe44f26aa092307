//! Logs with `tracing`: human-readable by default, JSON lines with
//! `PAYSYNC_LOG_FORMAT=json`, filtered by `RUST_LOG` (default `info`).
//!
//! The server logs every request, so the path of a line matters. Lines are
//! appended to a buffer in memory and a writer thread writes the buffer to
//! stderr every [`FLUSH_EVERY`] (or at once when it holds [`FLUSH_AT`]):
//! one `write` system call per line cost a fifth of the CPU of a cached read,
//! and handing each line to a writer thread through a channel (what
//! `tracing-appender` does) still woke that thread for nearly every line.
//! Nothing is dropped: past [`HOLD_AT`] a logging thread writes the buffer
//! itself. The returned guard writes what is left when it is dropped, at exit.
//! Colours only when stderr is a terminal.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How long a line may wait in memory.
const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// A buffer this large wakes the writer thread before its time.
const FLUSH_AT: usize = 64 * 1024;
/// A buffer this large is written by the thread that logs (the writer thread
/// is behind, stderr is slow): memory stays bounded and no line is lost.
const HOLD_AT: usize = 1024 * 1024;

/// Start logging; keep the guard until the process ends.
pub fn init() -> Guard {
    let json = std::env::var("PAYSYNC_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let ansi = std::io::stderr().is_terminal();
    let (writer, guard) = Batched::start(Box::new(std::io::stderr()));
    let builder = tracing_subscriber::fmt()
        // Everything reaches the filter below (the builder's own is `info`).
        .with_max_level(LevelFilter::TRACE)
        .with_ansi(ansi)
        .with_writer(writer);
    // One of the two filters is set (a `None` layer lets everything through).
    let (targets, env) = filter();
    let _ = if json {
        builder.json().finish().with(targets).with(env).try_init()
    } else {
        builder.finish().with(targets).with(env).try_init()
    };
    guard
}

/// `RUST_LOG` (default `info`). A list of `target=level` directives is
/// applied as [`Targets`], which decides once per call site; only a spec that
/// filters by span or field (`[…]`) needs [`EnvFilter`], which also takes a
/// shared lock on every enter and exit of every span (each request's, on each
/// poll): a few percent of a cached read's CPU.
fn filter() -> (Option<Targets>, Option<EnvFilter>) {
    let spec = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    if !spec.contains('[')
        && let Ok(targets) = spec.parse::<Targets>()
    {
        return (Some(targets), None);
    }
    let env = EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new("info"));
    (None, Some(env))
}

#[derive(Default)]
struct State {
    lines: Vec<u8>,
    stopping: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// Where lines go (stderr). Its lock is taken before a batch is taken out
    /// of the buffer and held while it is written, so batches keep their order.
    out: Mutex<Box<dyn Write + Send>>,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Take everything buffered and write it, in order with other batches.
    /// `spare` (empty) takes the buffer's place.
    fn flush(&self, spare: &mut Vec<u8>) {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::swap(&mut self.state().lines, spare);
        if !spare.is_empty() {
            // A log that cannot be written has nowhere to report it.
            let _ = out.write_all(spare);
            let _ = out.flush();
        }
        spare.clear();
    }
}

/// The [`MakeWriter`] handed to the subscriber: every line is one `write_all`
/// of the formatted line, appended to the shared buffer.
#[derive(Clone)]
struct Batched(Arc<Shared>);

impl Batched {
    fn start(out: Box<dyn Write + Send>) -> (Batched, Guard) {
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            wake: Condvar::new(),
            out: Mutex::new(out),
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("paysync-log".into())
                .spawn(move || write_batches(&shared))
                .ok()
        };
        (Batched(shared.clone()), Guard { shared, thread })
    }
}

fn write_batches(shared: &Shared) {
    let mut spare = Vec::with_capacity(FLUSH_AT);
    loop {
        let stopping = {
            let state = shared.state();
            let (state, _) = shared
                .wake
                .wait_timeout_while(state, FLUSH_EVERY, |s| {
                    !s.stopping && s.lines.len() < FLUSH_AT
                })
                .unwrap_or_else(PoisonError::into_inner);
            state.stopping
        };
        shared.flush(&mut spare);
        if stopping {
            return;
        }
    }
}

impl Write for &Batched {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let held = {
            let mut state = self.0.state();
            state.lines.extend_from_slice(buf);
            state.lines.len()
        };
        if held >= HOLD_AT {
            self.0.flush(&mut Vec::new());
        } else if held >= FLUSH_AT {
            self.0.wake.notify_one();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Batched {
    type Writer = &'a Batched;
    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

/// Writes what is buffered when dropped (the end of `main`).
pub struct Guard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.shared.state().stopping = true;
        self.shared.wake.notify_one();
        match self.thread.take() {
            Some(t) => {
                let _ = t.join();
            }
            None => self.shared.flush(&mut Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` whose bytes the test can read afterwards.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_whole_and_in_order() {
        let sink = Sink::default();
        let (writer, guard) = Batched::start(Box::new(sink.clone()));
        // Four loggers, enough lines to pass both thresholds many times.
        let loggers: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..50_000 {
                        let line = format!("logger {t} line {i} {}\n", "x".repeat(i % 90));
                        (&writer).write_all(line.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for l in loggers {
            l.join().unwrap();
        }
        drop(guard);
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let mut next = [0usize; 4];
        for line in text.lines() {
            let mut words = line.split(' ');
            let (t, i): (usize, usize) = match (words.nth(1), words.nth(1)) {
                (Some(t), Some(i)) => (t.parse().unwrap(), i.parse().unwrap()),
                _ => panic!("a torn line: {line:?}"),
            };
            assert_eq!(i, next[t], "logger {t}'s lines out of order or lost");
            assert_eq!(line, format!("logger {t} line {i} {}", "x".repeat(i % 90)));
            next[t] += 1;
        }
        assert_eq!(next, [50_000; 4], "every line arrived");
    }
}
