//! Takes the cgroup source's next sample just before the next scrape is expected, so that a
//! scrape finds a fresh sample and only renders it.
//!
//! Owns the guess of when the next scrape comes (`Cadence`, pure: Prometheus scrapes a target at
//! a fixed interval, so the gap between the last two scrapes predicts the next one) and one
//! thread that waits for that moment and calls the work it was given. Each scrape schedules at
//! most one prefetch: when scrapes stop, at most one more sample is taken and then nothing runs.
//! A scrape that comes earlier or later than guessed still gets a sample no older than
//! `--stats.interval` (it takes one itself, as without prefetching). Never reads a file itself
//! and never calls Podman.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Gaps between scrapes longer than this are not a cadence (a person's curl, a paused scraper).
const LONGEST_INTERVAL: Duration = Duration::from_secs(10 * 60);

/// When to sample for the next scrape, from the times of the scrapes so far.
#[derive(Debug, Default)]
pub struct Cadence {
    last: Option<Instant>,
}

/// A prefetch: sample at `due` for the scrape expected at `expected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    pub due: Instant,
    pub expected: Instant,
}

impl Cadence {
    /// A scrape came at `now`. The next one is expected one gap later; the sample is taken
    /// half of `max_age` (at most half the gap) before it, so that it is still fresh when a
    /// scrape comes somewhat late and is already there when it comes somewhat early. `None`
    /// without a previous scrape, after a long pause, or when every scrape samples
    /// (`max_age` zero).
    pub fn scraped(&mut self, now: Instant, max_age: Duration) -> Option<Due> {
        let gap = self
            .last
            .replace(now)
            .map(|last| now.saturating_duration_since(last))?;
        if max_age.is_zero() || gap.is_zero() || gap > LONGEST_INTERVAL {
            return None;
        }
        let expected = now + gap;
        let lead = (max_age / 2).min(gap / 2);
        Some(Due {
            due: expected - lead,
            expected,
        })
    }
}

#[derive(Default)]
struct State {
    next: Option<Due>,
    stop: bool,
}

/// One thread that runs `work(expected)` at each scheduled `due`; a later schedule replaces an
/// earlier one that has not run. The thread ends when the `Prefetcher` is dropped.
pub struct Prefetcher {
    shared: Arc<(Mutex<State>, Condvar)>,
}

impl std::fmt::Debug for Prefetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefetcher").finish_non_exhaustive()
    }
}

impl Prefetcher {
    /// Starts the thread. `None` when the thread cannot be started: scrapes then sample as they
    /// would without prefetching.
    pub fn start(work: impl Fn(Instant) + Send + 'static) -> Option<Self> {
        let shared: Arc<(Mutex<State>, Condvar)> = Arc::default();
        let theirs = shared.clone();
        std::thread::Builder::new()
            .name("sealwatch-prefetch".into())
            .spawn(move || run(&theirs, work))
            .map_err(|e| tracing::warn!("cannot start the resource prefetch thread: {e}"))
            .ok()?;
        Some(Self { shared })
    }

    pub fn schedule(&self, due: Due) {
        let (state, wake) = &*self.shared;
        state.lock().unwrap_or_else(|p| p.into_inner()).next = Some(due);
        wake.notify_one();
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        let (state, wake) = &*self.shared;
        state.lock().unwrap_or_else(|p| p.into_inner()).stop = true;
        wake.notify_one();
    }
}

fn run(shared: &(Mutex<State>, Condvar), work: impl Fn(Instant)) {
    let (state, wake) = shared;
    let mut guard = state.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if guard.stop {
            return;
        }
        match guard.next {
            None => guard = wake.wait(guard).unwrap_or_else(|p| p.into_inner()),
            Some(next) => {
                let now = Instant::now();
                if now < next.due {
                    guard = wake
                        .wait_timeout(guard, next.due - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                    continue;
                }
                guard.next = None;
                drop(guard);
                work(next.expected);
                guard = state.lock().unwrap_or_else(|p| p.into_inner());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    const S: Duration = Duration::from_secs(1);

    /// The first scrape has no cadence; the second predicts the third one gap later and samples
    /// half of max_age before it.
    #[test]
    fn cadence_predicts_one_gap_ahead() {
        let t0 = Instant::now();
        let mut c = Cadence::default();
        assert_eq!(c.scraped(t0, 5 * S), None);
        let due = c.scraped(t0 + 15 * S, 5 * S).unwrap();
        assert_eq!(due.expected, t0 + 30 * S);
        assert_eq!(due.due, t0 + 30 * S - 5 * S / 2);
    }

    /// Scrapes closer than max_age: the lead is half the gap, so the sample is never scheduled
    /// before the scrape that scheduled it.
    #[test]
    fn cadence_lead_is_at_most_half_the_gap() {
        let t0 = Instant::now();
        let mut c = Cadence::default();
        c.scraped(t0, 5 * S);
        let due = c.scraped(t0 + S, 5 * S).unwrap();
        assert_eq!(due.due, t0 + S + S / 2);
    }

    /// No prefetch after a long pause, or when every scrape is to sample itself.
    #[test]
    fn cadence_none_after_a_pause_or_with_zero_max_age() {
        let t0 = Instant::now();
        let mut c = Cadence::default();
        c.scraped(t0, 5 * S);
        assert_eq!(c.scraped(t0 + 11 * 60 * S, 5 * S), None);
        assert!(c.scraped(t0 + 11 * 60 * S + 15 * S, 5 * S).is_some());
        assert_eq!(c.scraped(t0 + 11 * 60 * S + 30 * S, Duration::ZERO), None);
    }

    /// The thread runs the work once per schedule, with the expected time, and a newer
    /// schedule replaces one that has not run.
    #[test]
    fn prefetcher_runs_the_latest_schedule_once() {
        let (tx, rx) = mpsc::channel();
        let p = Prefetcher::start(move |expected| tx.send(expected).unwrap()).unwrap();
        let now = Instant::now();
        let far = Due {
            due: now + 3600 * S,
            expected: now + 3600 * S,
        };
        let soon = Due {
            due: now + Duration::from_millis(20),
            expected: now + S,
        };
        p.schedule(far);
        p.schedule(soon);
        assert_eq!(rx.recv_timeout(10 * S).unwrap(), now + S);
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        drop(p);
    }
}
