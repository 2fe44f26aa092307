fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    paysync::cli::main()
}

/// glibc gives every thread that allocates a heap ("arena") of its own, up
/// to eight per core. paysync's threads (the runtime's, one per SQLite
/// connection, the log writer) each kept freed memory in theirs: a webhook
/// burst on SQLite left the process at 71 MiB where fewer arenas hold 58.
///
/// The cap is one arena per runtime worker (one per core) plus two, for the
/// main thread and the log writer, which start first: the threads that
/// allocate first get arenas of their own, and the runtime's workers touch
/// the allocator as they start (`cli`), before any SQLite thread exists. A
/// cap of two made the two workers of a 2-core machine share one arena in
/// about a third of the starts (whichever arena was free when each first
/// allocated): every request's allocations then waited on that arena's
/// lock, three times the futex calls, a third more CPU per cached read
/// (15 -> 21 us). `MALLOC_ARENA_MAX` in the environment still decides when set.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let arenas = libc::c_int::try_from(workers + 2).unwrap_or(libc::c_int::MAX);
        // SAFETY: a plain libc call with an integer argument, made before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}
