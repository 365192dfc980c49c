//! Recognising events that a `since` replay delivers a second time.
//!
//! Owns the set of recently applied event keys `(timeNano, Actor.ID, Action)` and its pruning.
//! Never decides what an event does; it only answers "seen before?".

use std::collections::BTreeSet;
use std::hash::BuildHasher;

use crate::podman::wire::Event;

/// How far back a reconnect replays (`since = newest - overlap`), to cover events Podman wrote
/// out of time order.
pub const REPLAY_OVERLAP_NANOS: i64 = 5_000_000_000;

/// How far back keys are kept: at least the replay overlap, or replayed events would count twice.
pub const DEFAULT_WINDOW_NANOS: i64 = 2 * REPLAY_OVERLAP_NANOS;

/// Keys are `(timeNano, hash of (Actor.ID, Action))`: 16 bytes instead of two strings, so a
/// busy engine's window stays small. Two different events would have to share the nanosecond
/// and a 64-bit hash to be confused.
#[derive(Debug, Clone)]
pub struct Dedup {
    keys: BTreeSet<(i64, u64)>,
    hasher: std::collections::hash_map::RandomState,
    newest: i64,
    window: i64,
}

impl Default for Dedup {
    fn default() -> Self {
        Self::new(DEFAULT_WINDOW_NANOS)
    }
}

impl Dedup {
    pub fn new(window_nanos: i64) -> Self {
        Self {
            keys: BTreeSet::new(),
            hasher: std::collections::hash_map::RandomState::new(),
            newest: i64::MIN,
            window: window_nanos,
        }
    }

    /// Podman's time of the newest event seen, in unix nanoseconds.
    pub fn newest(&self) -> Option<i64> {
        (self.newest != i64::MIN).then_some(self.newest)
    }

    /// True the first time an event is offered, false for a replayed copy. Events older than
    /// the window are never replayed (the watcher's `since` excludes them), so they are not kept.
    pub fn first_time(&mut self, ev: &Event) -> bool {
        let t = ev.nanos();
        let fresh = self
            .keys
            .insert((t, self.hasher.hash_one((&ev.actor.id, &ev.action))));
        if !fresh {
            return false;
        }
        if t > self.newest {
            self.newest = t;
            let horizon = self.newest.saturating_sub(self.window);
            // Keys are ordered by time first: drop the expired prefix.
            while let Some(first) = self.keys.first() {
                if first.0 >= horizon {
                    break;
                }
                self.keys.pop_first();
            }
        }
        true
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: i64, id: &str, action: &str) -> Event {
        serde_json::from_value(serde_json::json!({
            "Type": "container", "Action": action, "timeNano": t, "Actor": {"ID": id, "Attributes": {}}
        }))
        .unwrap()
    }

    #[test]
    fn a_replayed_event_is_recognised_once() {
        let mut d = Dedup::new(100);
        assert!(d.first_time(&ev(10, "a", "start")));
        assert!(!d.first_time(&ev(10, "a", "start")));
        assert!(
            d.first_time(&ev(10, "a", "died")),
            "same time, other action"
        );
        assert!(
            d.first_time(&ev(10, "b", "start")),
            "same time, other container"
        );
        assert_eq!(d.newest(), Some(10));
    }

    #[test]
    fn keys_older_than_the_window_are_pruned() {
        let mut d = Dedup::new(100);
        for t in 0..1000 {
            d.first_time(&ev(t, "a", "x"));
        }
        assert!(d.len() <= 101, "kept {}", d.len());
        assert!(
            !d.first_time(&ev(950, "a", "x")),
            "inside the window still known"
        );
    }

    #[test]
    fn late_written_older_events_count_once() {
        let mut d = Dedup::new(100);
        d.first_time(&ev(500, "a", "x"));
        assert!(d.first_time(&ev(450, "img", "pull")));
        assert!(!d.first_time(&ev(450, "img", "pull")));
        assert_eq!(d.newest(), Some(500));
    }
}
