//! Recognising events that Podman delivers a second time: replayed by a `since` after a
//! reconnect, or re-sent on a live stream after Podman rotated its file event log.
//!
//! Owns the set of recently applied event keys `(timeNano, Actor.ID, Action)`, bounded by time and
//! by count, and the `since` of the next stream. Never decides what an event does; it only answers
//! "seen before?". When it cannot tell (an event older than what it still remembers), it answers
//! "seen": a counter may miss an event Podman wrote very late, but never counts one twice.

use std::collections::{BTreeSet, VecDeque};
use std::hash::{BuildHasher, Hash, Hasher};

use rustc_hash::FxHasher;

use crate::podman::wire::Event;

/// How far back a reconnect replays (`since = newest - overlap`), to cover events Podman wrote
/// out of time order.
pub const REPLAY_OVERLAP_NANOS: i64 = 5_000_000_000;

/// How far back keys are kept. Podman 5.4 re-sends events up to ~20 s older than the newest one
/// already delivered after rotating its log; a minute covers that with room to spare.
pub const DEFAULT_WINDOW_NANOS: i64 = 60_000_000_000;

/// At most this many keys are kept (16 bytes each, about 1.6 MB in the ring), whatever the
/// rate: a burst of a million events within one second of Podman time must not hold a million
/// keys.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// Keys are `(timeNano, hash of (Actor.ID, Action))`: 16 bytes instead of two strings. Two
/// different events would have to share the nanosecond and a 64-bit hash to be confused. The
/// hash is FxHash with a seed drawn per process (a fraction of SipHash's cost per event): no one
/// picks Podman's event times to the nanosecond, so flood resistance buys nothing here, and
/// the seed keeps a collision from repeating across runs.
///
/// The keys are kept sorted in a ring: Podman writes events in time order (give or take a few
/// out of order), so a new key nearly always goes at the back, found by one comparison, and
/// the oldest leave at the front; an earlier key is found by a binary search. A tree of 100,000
/// keys cost several times as much per event. A key that belongs further than `NEAR_BACK`
/// places from the back goes into a tree beside the ring instead: inserting it into the ring
/// would move up to half of it (800 KB at the cap), which a Podman sending times out of order on
/// purpose could make every event pay.
#[derive(Debug, Clone)]
pub struct Dedup {
    keys: VecDeque<(i64, u64)>,
    /// Keys that came far out of time order (see above); each is older than the ring's newest.
    late: BTreeSet<(i64, u64)>,
    seed: usize,
    /// Podman's time of the newest event seen, but never later than this machine's clock was
    /// then: an event stamped years ahead must not make every later event look too old, nor the
    /// next `since` ask for the future (Podman then sends nothing until that time). `i64::MIN`
    /// before the first.
    newest: i64,
    /// Events older than this are no longer remembered and are answered "seen".
    horizon: i64,
    window: i64,
    max_keys: usize,
}

/// A seed that differs per process (std's random hash keys, drawn from the OS once).
fn random_seed() -> usize {
    std::collections::hash_map::RandomState::new().hash_one(0u8) as usize
}

/// The ring's capacity (keys) below which it is never shrunk: 64 KiB.
const SHRINK_ABOVE: usize = 4096;

/// How far from the ring's back a late key is still inserted into the ring (moving at most this
/// many keys); later ones go into the tree.
const NEAR_BACK: usize = 64;

impl Default for Dedup {
    fn default() -> Self {
        Self::new(DEFAULT_WINDOW_NANOS, DEFAULT_MAX_KEYS)
    }
}

impl Dedup {
    pub fn new(window_nanos: i64, max_keys: usize) -> Self {
        Self {
            keys: VecDeque::new(),
            late: BTreeSet::new(),
            seed: random_seed(),
            newest: i64::MIN,
            horizon: i64::MIN,
            window: window_nanos,
            max_keys: max_keys.max(1),
        }
    }

    /// Podman's time of the newest event seen, in unix nanoseconds.
    pub fn newest(&self) -> Option<i64> {
        (self.newest != i64::MIN).then_some(self.newest)
    }

    /// Where the next stream starts: a little before the newest event seen (to catch events
    /// Podman wrote out of order), never before `first` (when watching began) and never after
    /// `now`.
    pub fn next_since(&self, first: i64, now: i64) -> i64 {
        self.newest()
            .map_or(first, |n| n.saturating_sub(REPLAY_OVERLAP_NANOS))
            .max(first)
            .min(now.max(first))
    }

    /// True the first time an event is offered, false for a copy of one already offered, and
    /// false for an event older than what is still remembered. `now` is this machine's clock in
    /// unix nanoseconds. An event without a time cannot be recognised: it is always new.
    pub fn first_time(&mut self, ev: &Event, now: i64) -> bool {
        let t = ev.nanos();
        if t == 0 {
            return true;
        }
        if t < self.horizon {
            return false;
        }
        let mut hasher = FxHasher::with_seed(self.seed);
        (ev.id(), ev.action()).hash(&mut hasher);
        let key = (t, hasher.finish());
        // Every key in `late` is older than the ring's newest, so a key past the back is new.
        match self.keys.back() {
            Some(last) if *last >= key => match self.keys.binary_search(&key) {
                Ok(_) => return false,
                // Out of time order: a few places from the back, as Podman writes late events.
                Err(at) if self.keys.len() - at <= NEAR_BACK => self.keys.insert(at, key),
                Err(_) => {
                    if !self.late.insert(key) {
                        return false;
                    }
                }
            },
            _ => self.keys.push_back(key),
        }
        let t = t.min(now);
        if t > self.newest {
            self.newest = t;
            self.horizon = self.horizon.max(t.saturating_sub(self.window));
        }
        // Keys are ordered by time first: drop the expired oldest, then the oldest past the cap,
        // whether in the ring or the tree.
        loop {
            let (front, first_late) = (self.keys.front().copied(), self.late.first().copied());
            let Some(oldest) = front.into_iter().chain(first_late).min() else {
                break;
            };
            if oldest.0 >= self.horizon && self.len() <= self.max_keys {
                break;
            }
            if first_late == Some(oldest) {
                self.late.pop_first();
            } else {
                self.keys.pop_front();
            }
            self.horizon = self.horizon.max(oldest.0);
        }
        // A burst (a replay after a long outage) grows the ring up to `max_keys` (2 MB at the
        // default); once those keys have expired, the room is given back rather than held for
        // the process's life. Shrinking only below a quarter, to twice the length, leaves room
        // to grow again before the next shrink.
        if self.keys.capacity() > SHRINK_ABOVE && self.keys.capacity() > 4 * self.keys.len() {
            self.keys.shrink_to(2 * self.keys.len());
        }
        true
    }

    fn len(&self) -> usize {
        self.keys.len() + self.late.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_976_183_000_000_000;

    fn ev(t: i64, id: &str, action: &str) -> Event {
        serde_json::from_value(serde_json::json!({
            "Type": "container", "Action": action, "timeNano": t, "Actor": {"ID": id, "Attributes": {}}
        }))
        .unwrap()
    }

    /// The same (time, ID, action) is new once; another action or container at the same time is
    /// new.
    #[test]
    fn a_replayed_event_is_recognised_once() {
        let mut d = Dedup::new(100, 1000);
        assert!(d.first_time(&ev(10, "a", "start"), NOW));
        assert!(!d.first_time(&ev(10, "a", "start"), NOW));
        assert!(
            d.first_time(&ev(10, "a", "died"), NOW),
            "same time, other action"
        );
        assert!(
            d.first_time(&ev(10, "b", "start"), NOW),
            "same time, other container"
        );
        assert_eq!(d.newest(), Some(10));
    }

    /// A burst's room is given back once its keys expire, and the ring still answers rightly
    /// after it shrank.
    #[test]
    fn the_ring_gives_back_a_bursts_room() {
        let mut d = Dedup::new(1_000_000, 100_000);
        for t in 1..=50_000 {
            assert!(d.first_time(&ev(t, "a", "x"), NOW));
        }
        assert!(d.keys.capacity() >= 50_000);
        // Far past the window: every burst key expires.
        for t in 2_000_000..2_000_010 {
            assert!(d.first_time(&ev(t, "a", "x"), NOW));
        }
        assert_eq!(d.len(), 10);
        assert!(
            d.keys.capacity() <= 2 * SHRINK_ABOVE,
            "{}",
            d.keys.capacity()
        );
        assert!(!d.first_time(&ev(2_000_005, "a", "x"), NOW), "still seen");
        assert!(
            !d.first_time(&ev(40_000, "a", "x"), NOW),
            "older than the window"
        );
        assert!(d.first_time(&ev(2_000_010, "a", "x"), NOW));
    }

    /// Keys older than the window are dropped, and events older than the window are answered
    /// "seen", so a re-delivery older than the window can never count twice.
    #[test]
    fn keys_older_than_the_window_are_pruned_and_older_events_are_not_counted() {
        let mut d = Dedup::new(100, 1000);
        for t in 1..1000 {
            d.first_time(&ev(t, "a", "x"), NOW);
        }
        assert!(d.len() <= 101, "kept {}", d.len());
        assert!(
            !d.first_time(&ev(950, "a", "x"), NOW),
            "inside the window still known"
        );
        assert!(
            !d.first_time(&ev(10, "a", "x"), NOW),
            "older than the window"
        );
        assert!(
            d.first_time(&ev(950, "late", "x"), NOW),
            "late but inside the window"
        );
    }

    /// Podman 5.4 re-sends events up to ~20 s old on a live stream after a log rotation: none of
    /// them counts twice with the default window.
    #[test]
    fn rotation_redeliveries_twenty_seconds_old_count_once() {
        let mut d = Dedup::default();
        let second = 1_000_000_000;
        let mut fresh = 0;
        for s in 0..30 {
            fresh +=
                usize::from(d.first_time(&ev(NOW + s * second, "c", "start"), NOW + 60 * second));
        }
        for s in 10..30 {
            fresh +=
                usize::from(d.first_time(&ev(NOW + s * second, "c", "start"), NOW + 60 * second));
        }
        assert_eq!(fresh, 30);
    }

    /// A burst of events in one second of Podman time keeps at most `max_keys` keys, and what
    /// fell out is answered "seen".
    #[test]
    fn memory_is_bounded_by_count_as_well_as_by_time() {
        let mut d = Dedup::new(DEFAULT_WINDOW_NANOS, 1000);
        for i in 0..100_000 {
            assert!(d.first_time(&ev(NOW + i, "c", "exec"), NOW));
        }
        assert!(d.len() <= 1000, "kept {}", d.len());
        assert!(!d.first_time(&ev(NOW + 5, "c", "exec"), NOW));
        assert!(!d.first_time(&ev(NOW + 99_999, "c", "exec"), NOW));
    }

    /// An event stamped ten years ahead neither moves `since` into the future nor makes the
    /// next real events look too old; i64 extremes do not wrap.
    #[test]
    fn future_and_extreme_times_do_not_move_since_past_now() {
        let mut d = Dedup::default();
        let ten_years = 10 * 365 * 86_400 * 1_000_000_000i64;
        assert!(d.first_time(&ev(NOW + ten_years, "c", "start"), NOW));
        assert_eq!(d.newest(), Some(NOW));
        assert_eq!(
            d.next_since(NOW - 1_000, NOW),
            NOW - 1_000,
            "never past now"
        );
        assert_eq!(d.next_since(0, NOW), NOW - REPLAY_OVERLAP_NANOS);
        assert!(
            d.first_time(&ev(NOW - 1_000, "c", "died"), NOW),
            "a real event after it"
        );
        assert!(d.first_time(&ev(i64::MAX, "c", "x"), NOW));
        assert!(d.next_since(0, NOW) <= NOW);
        let mut d = Dedup::default();
        assert!(d.first_time(&ev(i64::MIN, "c", "x"), NOW));
        assert_eq!(
            d.next_since(NOW - 7, NOW),
            NOW - 7,
            "never before watching began"
        );
    }

    /// Events out of time order (late by a little or a lot, repeated) are each new once, as a
    /// set of every key seen says, while nothing falls out of the window.
    #[test]
    fn out_of_order_events_are_recognised_as_a_set_would() {
        let mut d = Dedup::new(DEFAULT_WINDOW_NANOS, 1_000_000);
        let mut seen = std::collections::HashSet::new();
        let mut x: u64 = 12345;
        for i in 0..20_000i64 {
            // A small deterministic generator: mostly in order, some late, some repeats.
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let late = match (x >> 33) % 10 {
                0..=5 => 0,
                6 | 7 => ((x >> 40) % 50) as i64,
                _ => ((x >> 40) % 5_000) as i64,
            };
            let t = NOW + (i - late).max(0);
            let id = ["a", "b", "c"][((x >> 20) % 3) as usize];
            let fresh = d.first_time(&ev(t, id, "start"), NOW + 1_000_000);
            assert_eq!(fresh, seen.insert((t, id)), "{t} {id}");
        }
        assert_eq!(d.len(), seen.len());
        assert!(
            !d.late.is_empty() && d.keys.len() > d.late.len(),
            "both the ring and the tree were used: {} and {}",
            d.keys.len(),
            d.late.len()
        );
    }

    /// With a small cap and window and events far out of order (a Podman sending times back and
    /// forth), every answer and what is remembered equal one sorted set that drops its oldest
    /// keys (the tree the ring replaced), and the ring stays sorted.
    #[test]
    fn a_ring_with_a_tree_beside_answers_as_one_sorted_set() {
        struct Model {
            keys: BTreeSet<(i64, u64)>,
            newest: i64,
            horizon: i64,
        }
        const WINDOW: i64 = 3_000;
        const CAP: usize = 500;
        let mut d = Dedup::new(WINDOW, CAP);
        let mut m = Model {
            keys: BTreeSet::new(),
            newest: i64::MIN,
            horizon: i64::MIN,
        };
        let mut x: u64 = 99;
        for i in 0..30_000i64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // Zig-zag: every other event up to 2,000 ns back, some repeats of recent ones.
            let t = NOW + i
                - if i % 2 == 0 {
                    ((x >> 33) % 2_000) as i64
                } else {
                    0
                };
            let id = ["a", "b", "c", "d"][((x >> 20) % 4) as usize];
            let e = ev(t, id, "start");
            let got = d.first_time(&e, NOW + 1_000_000);
            let mut h = FxHasher::with_seed(d.seed);
            (e.id(), e.action()).hash(&mut h);
            let key = (t, h.finish());
            let want = if t < m.horizon || !m.keys.insert(key) {
                false
            } else {
                if t > m.newest {
                    m.newest = t;
                    m.horizon = m.horizon.max(t - WINDOW);
                }
                while let Some(&first) = m.keys.first() {
                    if first.0 >= m.horizon && m.keys.len() <= CAP {
                        break;
                    }
                    m.keys.pop_first();
                    m.horizon = m.horizon.max(first.0);
                }
                true
            };
            assert_eq!(got, want, "event {i} at {t} {id}");
            assert_eq!(d.len(), m.keys.len(), "event {i}");
        }
        let mut all: Vec<_> = d.keys.iter().chain(&d.late).copied().collect();
        assert!(d.keys.iter().zip(d.keys.iter().skip(1)).all(|(a, b)| a < b));
        all.sort_unstable();
        assert_eq!(all, m.keys.into_iter().collect::<Vec<_>>());
        assert!(!d.late.is_empty(), "the tree was used");
    }

    /// Events without `time`/`timeNano` never collapse into one key.
    #[test]
    fn events_without_a_time_are_each_new() {
        let mut d = Dedup::default();
        assert!(d.first_time(&ev(0, "img", "pull"), NOW));
        assert!(d.first_time(&ev(0, "img", "pull"), NOW));
        assert_eq!(d.newest(), None);
    }

    /// Before any event, the first stream starts when watching began; later, 5 s before the
    /// newest event.
    #[test]
    fn since_starts_at_the_first_event_minus_the_overlap() {
        let mut d = Dedup::default();
        assert_eq!(d.next_since(NOW - 100, NOW), NOW - 100);
        d.first_time(&ev(NOW - 10, "c", "x"), NOW);
        assert_eq!(d.next_since(0, NOW), NOW - 10 - REPLAY_OVERLAP_NANOS);
    }

    /// A real Podman 5.4.2 live stream across five log rotations (298 lines, re-deliveries
    /// included) counts each of its 191 distinct events exactly once.
    #[test]
    fn a_real_rotating_5_4_stream_counts_each_event_once() {
        let text = include_str!("../../tests/fixtures/5.4.2/events-rotation-live-20k.ndjson");
        let events: Vec<Event> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(
                |l| match crate::podman::wire::decode_stream_line(l.as_bytes()) {
                    Ok(crate::podman::wire::StreamItem::Event(e)) => *e,
                    other => panic!("not an event: {other:?}"),
                },
            )
            .collect();
        let distinct: std::collections::HashSet<(i64, &str, &str)> = events
            .iter()
            .map(|e| (e.nanos(), e.id(), e.action()))
            .collect();
        let now = events.iter().map(Event::nanos).max().unwrap_or(0);
        let mut d = Dedup::default();
        let fresh = events.iter().filter(|e| d.first_time(e, now)).count();
        assert_eq!((events.len(), distinct.len()), (298, 191));
        assert_eq!(fresh, distinct.len());
    }
}
