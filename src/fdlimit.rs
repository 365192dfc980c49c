//! The process's open-files limit: raised once at start, and the HTTP connection cap derived
//! from it.
//!
//! Owns the one `setrlimit` call of the process (made by `main` before anything opens files, as
//! Go programs do) and the split of the descriptors between HTTP clients and everything else.
//! Never opens or counts files itself.

/// Descriptors kept out of the connection cap's half for the listener, the log, the runtime,
/// the Podman connections (about four per engine) and inotify.
const RESERVED: u64 = 128;
const MIN_CONNECTIONS: u64 = 16;
const MAX_CONNECTIONS: u64 = 65_536;

/// Raises the soft open-files limit to the hard one and returns the soft limit in force
/// afterwards (`None` if it cannot be read). The cgroup sampler keeps six to nine files open per
/// running container (a `pread` of a kept file costs a fifth of opening it again), so the
/// usual soft limit of 1,024 is too low for a large host.
pub fn raise_open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    Some(limit.rlim_cur)
}

/// The default cap on open HTTP connections for a soft open-files limit: half of what is left
/// after `RESERVED`, so that the other half stays for the cgroup sampler's kept files and a flood
/// of clients can never make the watcher fail with "Too many open files".
pub fn connection_cap(open_files: Option<u64>) -> usize {
    let limit = open_files.unwrap_or(1024);
    let cap = (limit.saturating_sub(RESERVED) / 2).clamp(MIN_CONNECTIONS, MAX_CONNECTIONS);
    usize::try_from(cap).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cap is half of the limit after the reserve, within bounds.
    #[test]
    fn connection_cap_follows_the_limit() {
        assert_eq!(connection_cap(Some(1024)), 448);
        assert_eq!(connection_cap(Some(256)), 64);
        assert_eq!(connection_cap(Some(100)), 16);
        assert_eq!(connection_cap(Some(524_288)), 65_536);
        assert_eq!(connection_cap(Some(u64::MAX)), 65_536);
        assert_eq!(connection_cap(None), 448);
    }
}
