//! The C allocator's settings, chosen by measurement (`cargo bench --bench resources` with
//! `SEALWATCH_BENCH_PROCESS_ONLY=1`: the real binary at 1,000 containers, scraped 23 times).
//!
//! Owns the two `mallopt` calls made once at start. A scrape builds a body of megabytes; with
//! glibc's default, the threshold for serving such a block by `mmap` rises after the first one
//! is freed, so later bodies come from the heap and their pages stay resident after the scrape
//! (RSS 8.5 MB when ready, 20.2 MB after the scrapes). A fixed 256 KiB threshold returns every
//! body's pages when it is freed (14.0 MB after, 17.7 MB peak), for a page-fault cost of well under
//! a millisecond per scrape. And `trim` after churn: see there. Environment variables glibc reads
//! (`MALLOC_MMAP_THRESHOLD_`, `MALLOC_ARENA_MAX`) win over these. Never allocates itself.
//!
//! Why glibc's malloc and not another allocator: `scripts/soak.sh` ran builds with mimalloc and
//! jemalloc (`--features mimalloc` / `jemalloc`, run through `SEALWATCH_SOAK_BIN`) beside it.
//! mimalloc with its defaults held 117-165 MB at 10,000 containers; jemalloc with its defaults
//! 91-119 MB. Told to purge at once into one arena (`dirty_decay_ms:0,muzzy_decay_ms:0,
//! narenas:1`), jemalloc was 52-63 MB across 20 reconnects (52-54 after the first) where glibc
//! with one arena is 63-69 MB, but 11.1 MB at 50 containers where glibc is 9.7 MB: glibc stays
//! (the usual host is small; no C library to build; no purge on every free). Measured again on
//! 2026-12-01 with the code as it is: at 10,000 containers glibc 60.9 MiB, jemalloc (also without
//! thread caches, the settings `.cargo/config.toml` builds in) 51.0, and 31.0 with
//! `--metrics.scrape-cache off`; at 50 containers, static, glibc 6.3 MiB and jemalloc 7.2-7.3.
//! README, "Memory".

/// Sets the allocator up; call once, first thing in `main`.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
            // SAFETY: mallopt only changes the allocator's parameters.
            unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024) };
        }
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            // SAFETY: as above. One arena: with two, the watcher's churn (records that live for
            // many events, between snapshot nodes and decode buffers that live for one chunk)
            // fragments both, and `scripts/soak.sh` at 10,000 containers measured 73-87 MB
            // across 20 reconnects with two arenas against 63-69 MB with one, at the same CPU
            // per scrape (README, "Memory").
            unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
        }
    }
}

/// Hands the free pages inside the heap back to the kernel (`malloc_trim`). glibc returns memory
/// only from the top of each arena by itself; after a resync replaced every record, the freed
/// records lie between live blocks and stay resident, so each reconnect of a large engine would
/// leave RSS higher (`scripts/soak.sh` measured 30 -> 74 MB over 4 reconnects at 10,000
/// containers). Called only after such a turnover, never per scrape: it walks every arena.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only releases free memory of the allocator's own arenas.
        unsafe { libc::malloc_trim(0) };
    }
}

/// Events applied since the last trim (`note_events`), across engines.
static CHURN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Events applied before a scrape trims the heap (`trim_after_churn`).
const TRIM_AFTER_EVENTS: u64 = 100_000;

/// Counts `n` applied events toward the next trim: each replaced snapshot frees map nodes and
/// records scattered between live ones, which glibc keeps resident.
pub fn note_events(n: u64) {
    CHURN.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
}

/// Trims the heap (`trim`) if at least 100,000 events were applied since the last trim. Called
/// by a scrape after it rendered (on a blocking thread, never an async worker): the work is
/// paid for by churn, at most once per scrape, and nothing runs while sealwatch is idle.
/// `scripts/soak.sh` (1,000,000 events at 10,000 containers): see the README's "Memory".
pub fn trim_after_churn() {
    use std::sync::atomic::Ordering;
    if CHURN.load(Ordering::Relaxed) >= TRIM_AFTER_EVENTS {
        CHURN.store(0, Ordering::Relaxed);
        trim();
    }
}
