fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    paysync::cli::main()
}

/// glibc gives every thread that allocates a heap ("arena") of its own, up
/// to eight per core. paysync's threads (the runtime's, one per SQLite
/// connection, the log writer) each kept freed memory in theirs: a webhook
/// burst on SQLite left the process at 71 MiB where two arenas hold 58. Two
/// arenas on a small machine cost no measurable contention. `MALLOC_ARENA_MAX`
/// in the environment still decides when set.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: a plain libc call with constant arguments, made before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
