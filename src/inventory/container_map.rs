//! Where the inventory keeps its container records: a persistent map by ID whose entries are
//! cheap to copy.
//!
//! Owns how a record is stored and found by its ID. Never decides what a record holds
//! (transitions live in `Inventory`, list merging in `lists`).
//!
//! Why not a map keyed by the ID string: the first change after a snapshot was published copies
//! the map nodes on the changed key's path, and every entry copied bumps the reference count of
//! its key and of its record, each a cache miss on a random line when there are thousands of
//! containers; dropping the replaced snapshot later drops both again. Keyed by a 64-bit hash of
//! the ID, an entry's key is a plain number: one reference count an entry (the record's), and a
//! lookup compares numbers before it reads the record it wants anyway. Two IDs with the same
//! hash are possible in principle (Podman's IDs are random): the second one lives in a small
//! map by ID beside, so every lookup stays exact.

use std::hash::BuildHasher;
use std::sync::Arc;

use rustc_hash::FxBuildHasher;

use super::{Container, FxMap};

/// Container records by ID. Cloning it shares all structure (O(1)).
#[derive(Debug, Clone, Default)]
pub struct ContainerMap {
    /// Records by the hash of their ID (`id_hash`).
    by_hash: FxMap<u64, Arc<Container>>,
    /// The records whose ID hashes like another record's already in `by_hash`; nearly always
    /// empty.
    collided: FxMap<Arc<str>, Arc<Container>>,
    /// Every ID hashes the same (tests of the collision path).
    #[cfg(test)]
    collide_all: bool,
}

impl ContainerMap {
    fn id_hash(&self, id: &str) -> u64 {
        #[cfg(test)]
        if self.collide_all {
            return 7;
        }
        FxBuildHasher.hash_one(id)
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Container>> {
        match self.by_hash.get(&self.id_hash(id)) {
            Some(c) if c.id == *id => Some(c),
            _ if self.collided.is_empty() => None,
            _ => self.collided.get(id),
        }
    }

    pub fn contains_key(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    /// The record for writing: copies the map nodes on its path that a snapshot shares.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Arc<Container>> {
        let h = self.id_hash(id);
        if self.by_hash.get(&h).is_some_and(|c| c.id == *id) {
            return self.by_hash.get_mut(&h);
        }
        if self.collided.is_empty() {
            return None;
        }
        self.collided.get_mut(id)
    }

    /// Adds a record, replacing the one with the same ID.
    pub fn insert(&mut self, c: Arc<Container>) {
        let h = self.id_hash(&c.id);
        match self.by_hash.get(&h).map(|held| held.id == c.id) {
            Some(true) => {
                self.by_hash.insert(h, c);
            }
            Some(false) => {
                self.collided.insert(c.id.as_arc().clone(), c);
            }
            // A collided record stays where it is, even once its slot is free again.
            None if !self.collided.is_empty() && self.collided.contains_key(c.id.as_str()) => {
                self.collided.insert(c.id.as_arc().clone(), c);
            }
            None => {
                self.by_hash.insert(h, c);
            }
        }
    }

    pub fn remove(&mut self, id: &str) -> Option<Arc<Container>> {
        let h = self.id_hash(id);
        if self.by_hash.get(&h).is_some_and(|c| c.id == *id) {
            return self.by_hash.remove(&h);
        }
        if self.collided.is_empty() {
            return None;
        }
        self.collided.remove(id)
    }

    /// Every record, in no particular order (the same order for the same map).
    pub fn values(&self) -> impl Iterator<Item = &Arc<Container>> + '_ {
        self.by_hash.values().chain(self.collided.values())
    }

    pub fn len(&self) -> usize {
        self.by_hash.len() + self.collided.len()
    }

    /// Whether `other` holds these very records (pointer comparisons only).
    pub fn ptr_eq(&self, other: &ContainerMap) -> bool {
        self.by_hash.ptr_eq(&other.by_hash) && self.collided.ptr_eq(&other.collided)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::model::word;
    use crate::inventory::SharedStr;

    fn record(id: &str, restarts: u64) -> Arc<Container> {
        Arc::new(Container {
            id: SharedStr::from(id),
            name: SharedStr::from("n"),
            image: SharedStr::default(),
            state: word("running"),
            pid: None,
            pod_id: None,
            infra: false,
            labels: Default::default(),
            created_at: None,
            started_at: None,
            exited_at: None,
            exit_code: None,
            health: None,
            restarts,
            awaiting_restart: false,
            listed: false,
        })
    }

    /// Inserts, replacements, writes and removals give what a map by ID gives, with real
    /// hashes and with every ID hashing the same (every record past the first collides).
    #[test]
    fn records_are_found_by_id_as_in_a_map_by_id_even_when_hashes_collide() {
        for collide_all in [false, true] {
            let mut map = ContainerMap {
                collide_all,
                ..ContainerMap::default()
            };
            let mut model: std::collections::BTreeMap<String, u64> = Default::default();
            let ids = ["a", "b", "c", "d"];
            let mut x: u64 = 99;
            for step in 0..2_000u64 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let id = ids[((x >> 33) % 4) as usize];
                match (x >> 40) % 4 {
                    0 | 1 => {
                        map.insert(record(id, step));
                        model.insert(id.to_owned(), step);
                    }
                    2 => {
                        let removed = map.remove(id).map(|c| c.restarts);
                        assert_eq!(removed, model.remove(id));
                    }
                    _ => {
                        if let Some(c) = map.get_mut(id) {
                            Arc::make_mut(c).restarts += 1;
                        }
                        if let Some(n) = model.get_mut(id) {
                            *n += 1;
                        }
                    }
                }
                let snapshot = map.clone();
                assert!(snapshot.ptr_eq(&map));
                for id in ids {
                    assert_eq!(map.get(id).map(|c| c.restarts), model.get(id).copied());
                    assert_eq!(map.contains_key(id), model.contains_key(id));
                }
                let mut listed: Vec<(String, u64)> = map
                    .values()
                    .map(|c| (c.id.to_string(), c.restarts))
                    .collect();
                listed.sort();
                let expected: Vec<(String, u64)> =
                    model.iter().map(|(k, v)| (k.clone(), *v)).collect();
                assert_eq!(listed, expected);
                assert_eq!(map.len(), model.len());
            }
        }
    }
}
