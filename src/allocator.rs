//! The C allocator's settings, chosen by measurement (`cargo bench --bench resources` with
//! `SEALWATCH_BENCH_PROCESS_ONLY=1`: the real binary at 1,000 containers, scraped 23 times).
//!
//! Owns the two `mallopt` calls made once at start. A scrape builds a body of megabytes; with
//! glibc's default, the threshold for serving such a block by `mmap` rises after the first one
//! is freed, so later bodies come from the heap and their pages stay resident after the scrape
//! (RSS 8.5 MB when ready, 20.2 MB after the scrapes). A fixed 256 KiB threshold returns every
//! body's pages when it is freed (14.0 MB after, 17.7 MB peak), for a page-fault cost of well under
//! a millisecond per scrape. Environment variables glibc reads (`MALLOC_MMAP_THRESHOLD_`,
//! `MALLOC_ARENA_MAX`) win over these. Never allocates itself.

/// Sets the allocator up; call once, first thing in `main`.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
            // SAFETY: mallopt only changes the allocator's parameters.
            unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024) };
        }
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            // SAFETY: as above. Two arenas: the async workers and the blocking renderers do not
            // contend on one lock, and a burst of blocking threads cannot leave an arena each.
            unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
        }
    }
}
