//! What the benchmarks measure with: CPU clocks of this thread and process, another process's
//! RSS and CPU from /proc, and a plain HTTP GET. Shared by the bench binaries (each includes it
//! with `#[path]`); never used by sealwatch itself.

#![allow(dead_code)]

use std::io::{Read, Write};

fn clock(id: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes into the struct we pass.
    unsafe { libc::clock_gettime(id, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// CPU time of this thread, in seconds (`CLOCK_THREAD_CPUTIME_ID`, nanosecond resolution).
pub fn thread_cpu() -> f64 {
    clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU of the whole process (every thread), seconds.
pub fn process_cpu() -> f64 {
    clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// (kB) `field` of /proc/<pid>/status.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of `pid`, seconds.
pub fn process_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // SAFETY: sysconf only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) as f64 / hz
}

/// `GET path` on 127.0.0.1:`port` with extra `headers` (each ending in CRLF); the whole
/// response, head included (a gzipped body stays compressed). Empty when nothing answers.
pub fn http_get(port: u16, path: &str, headers: &str) -> Vec<u8> {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return Vec::new();
    };
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: bench\r\n{headers}Connection: close\r\n\r\n"
    );
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}
