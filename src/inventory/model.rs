//! The records the inventory keeps: containers and pods as sealwatch knows them.
//!
//! Owns their fields and what is read straight off them (short ID, compose project). Never
//! changes them: transitions live in `inventory::Inventory`; pod state lives in `inventory::pods`.

use std::sync::{Arc, OnceLock, Weak};

/// A container's or pod's labels, sorted by key with each key once, as Podman lists them. They
/// never change for a record's life (new labels are a new `Labels`), and clones share them (a
/// pointer bump), so two records' labels are told apart by address (`same`).
///
/// Keys and values lie end to end in one string, with where each ends beside it. Held as a
/// `BTreeMap<String, String>` they cost a 544-byte node and a string allocation per key and per
/// value: about 1 KiB for the six labels of a compose container, 11 MB of a 10,000-container
/// inventory's heap (valgrind's massif under `benches/soak.rs`). Here they are three blocks,
/// about 300 bytes, and a scrape reads three places instead of fourteen.
#[derive(Clone)]
pub struct Labels(Arc<LabelText>);

#[derive(PartialEq, Eq)]
struct LabelText {
    /// Each label's key then its value.
    text: Box<str>,
    /// Where each key and each value ends in `text`: two per label.
    ends: Box<[u32]>,
}

impl Labels {
    pub fn len(&self) -> usize {
        self.0.ends.len() / 2
    }

    pub fn is_empty(&self) -> bool {
        self.0.ends.is_empty()
    }

    /// The `i`th label in key order.
    fn pair(&self, i: usize) -> (&str, &str) {
        let LabelText { text, ends } = &*self.0;
        let start = i.checked_sub(1).map_or(0, |p| ends[2 * p + 1] as usize);
        let (key_end, end) = (ends[2 * i] as usize, ends[2 * i + 1] as usize);
        (
            text.get(start..key_end).unwrap_or(""),
            text.get(key_end..end).unwrap_or(""),
        )
    }

    /// The labels in key order.
    pub fn iter(
        &self,
    ) -> impl DoubleEndedIterator<Item = (&str, &str)> + ExactSizeIterator + Clone {
        (0..self.len()).map(|i| self.pair(i))
    }

    /// The keys in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator + Clone {
        self.iter().map(|(k, _)| k)
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            let (k, v) = self.pair(mid);
            match k.cmp(key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(v),
            }
        }
        None
    }

    /// Whether `other` is this very set of labels (a clone of it), not just equal to it.
    pub fn same(&self, other: &Labels) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// A reference that tells whether a `Labels` is this one (`LabelsRef::is`) without keeping
    /// it alive.
    pub fn downgrade(&self) -> LabelsRef {
        LabelsRef(Arc::downgrade(&self.0))
    }
}

/// A `Labels` remembered by address, not kept alive (`Labels::downgrade`): while it is held, no
/// other labels can take that address.
#[derive(Debug, Clone)]
pub struct LabelsRef(Weak<LabelText>);

impl LabelsRef {
    pub fn is(&self, labels: &Labels) -> bool {
        std::ptr::eq(self.0.as_ptr(), Arc::as_ptr(&labels.0))
    }
}

impl Default for Labels {
    /// No labels; every empty `Labels` is the same one.
    fn default() -> Self {
        static EMPTY: OnceLock<Labels> = OnceLock::new();
        EMPTY
            .get_or_init(|| {
                Labels(Arc::new(LabelText {
                    text: Box::from(""),
                    ends: Box::new([]),
                }))
            })
            .clone()
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for Labels {
    /// Sorted by key; of a key given twice, the last value counts (as a map would keep it).
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        let mut pairs: Vec<(K, V)> = pairs.into_iter().collect();
        if pairs.is_empty() {
            return Self::default();
        }
        // Stable: of equal keys the last given stays last, and is the one kept below.
        pairs.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        let len = pairs
            .iter()
            .map(|(k, v)| k.as_ref().len() + v.as_ref().len());
        let mut text = String::with_capacity(len.sum());
        let mut ends = Vec::with_capacity(2 * pairs.len());
        for (i, (k, v)) in pairs.iter().enumerate() {
            let (k, v) = (k.as_ref(), v.as_ref());
            if pairs.get(i + 1).is_some_and(|next| next.0.as_ref() == k) {
                continue;
            }
            // Labels beyond 4 GiB of text cannot come from Podman (its answers are bounded far
            // below that); they would be dropped, never misread.
            let (Ok(key_end), Ok(end)) = (
                u32::try_from(text.len() + k.len()),
                u32::try_from(text.len() + k.len() + v.len()),
            ) else {
                break;
            };
            text.push_str(k);
            text.push_str(v);
            ends.extend([key_end, end]);
        }
        Labels(Arc::new(LabelText {
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
        }))
    }
}

impl PartialEq for Labels {
    fn eq(&self, other: &Self) -> bool {
        self.same(other) || self.0 == other.0
    }
}

impl Eq for Labels {}

impl std::fmt::Debug for Labels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl serde::Serialize for Labels {
    /// As a JSON object, keys in order.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

/// Label keys that name a compose project, in the order they are consulted.
pub const PROJECT_LABELS: &[&str] = &["io.podman.compose.project", "com.docker.compose.project"];

/// An immutable string shared by reference count: a container record copied on write (the first
/// change after a snapshot was published) clones its strings as pointer bumps, not allocations.
/// Reads like a `&str` (`Deref`, `as_str`, comparisons with `str` and `String`).
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SharedStr(Arc<str>);

impl SharedStr {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The same string as an `Arc<str>` (for map keys that share it).
    pub fn as_arc(&self) -> &Arc<str> {
        &self.0
    }
}

impl std::ops::Deref for SharedStr {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SharedStr {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for SharedStr {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SharedStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Display for SharedStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for SharedStr {
    fn from(s: &str) -> Self {
        Self(Arc::from(s))
    }
}

impl From<String> for SharedStr {
    fn from(s: String) -> Self {
        Self(Arc::from(s))
    }
}

impl From<Arc<str>> for SharedStr {
    fn from(s: Arc<str>) -> Self {
        Self(s)
    }
}

impl From<SharedStr> for String {
    fn from(s: SharedStr) -> Self {
        s.0.as_ref().to_owned()
    }
}

impl PartialEq<str> for SharedStr {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for SharedStr {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<String> for SharedStr {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<SharedStr> for str {
    fn eq(&self, other: &SharedStr) -> bool {
        *self == *other.0
    }
}

impl PartialEq<SharedStr> for &str {
    fn eq(&self, other: &SharedStr) -> bool {
        **self == *other.0
    }
}

impl PartialEq<SharedStr> for String {
    fn eq(&self, other: &SharedStr) -> bool {
        **self == *other.0
    }
}

impl serde::Serialize for SharedStr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Podman's state words and health words as one shared string each for the process's life:
/// setting a container's state or health allocates nothing.
pub fn word(w: &str) -> SharedStr {
    static WORDS: std::sync::OnceLock<Vec<SharedStr>> = std::sync::OnceLock::new();
    let words = WORDS.get_or_init(|| {
        [
            "created",
            "initialized",
            "running",
            "paused",
            "stopped",
            "exited",
            "removing",
            "healthy",
            "unhealthy",
            "starting",
        ]
        .into_iter()
        .map(SharedStr::from)
        .collect()
    });
    words
        .iter()
        .find(|k| k.as_str() == w)
        .cloned()
        .unwrap_or_else(|| SharedStr::from(w))
}

#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    pub id: SharedStr,
    pub name: SharedStr,
    pub image: SharedStr,
    /// Podman's own state word: created, initialized, running, paused, stopped, exited, ...
    pub state: SharedStr,
    /// The main process, known from a list; a live `start` event does not carry it.
    pub pid: Option<u32>,
    pub pod_id: Option<SharedStr>,
    pub infra: bool,
    pub labels: Labels,
    /// Unix nanoseconds.
    pub created_at: Option<i64>,
    pub started_at: Option<i64>,
    pub exited_at: Option<i64>,
    /// Exit code of the last run while the container is exited (Podman resets it on start).
    pub exit_code: Option<i64>,
    /// healthy, unhealthy or starting; `None` without a healthcheck.
    pub health: Option<SharedStr>,
    /// Starts seen after a `died` of this container.
    pub restarts: u64,
    /// A `died` was seen and no `start` since: the next start is a restart.
    pub awaiting_restart: bool,
    /// The record came from the last resync's list (not from events).
    pub listed: bool,
}

impl Container {
    /// The 12-character short ID that `podman ps` shows and metrics use.
    pub fn short_id(&self) -> &str {
        short_id(&self.id)
    }

    /// The compose project the container belongs to, from its labels.
    pub fn project(&self) -> Option<&str> {
        PROJECT_LABELS.iter().find_map(|k| self.labels.get(k))
    }
}

pub fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pod {
    pub id: String,
    pub name: String,
    pub infra_id: Option<String>,
    /// Pod labels: known from the list only (pod events carry none).
    pub labels: Labels,
    pub created_at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Labels come out sorted by key whatever order they went in, a key given twice keeps its
    /// last value (as a map would), and `get` finds every key and nothing else.
    #[test]
    fn labels_are_a_sorted_map() {
        let labels: Labels = [
            ("tier", "web"),
            ("app", "x"),
            ("b", ""),
            ("app", "shop"),
            ("é", "ü"),
        ]
        .into_iter()
        .collect();
        let pairs: Vec<_> = labels.iter().collect();
        assert_eq!(
            pairs,
            [("app", "shop"), ("b", ""), ("tier", "web"), ("é", "ü")]
        );
        assert_eq!(labels.len(), 4);
        assert_eq!(labels.keys().next_back(), Some("é"));
        for (k, v) in &pairs {
            assert_eq!(labels.get(k), Some(*v), "{k}");
        }
        for missing in ["", "a", "apq", "c", "tier2", "z", "ü"] {
            assert_eq!(labels.get(missing), None, "{missing}");
        }
        assert_eq!(
            serde_json::to_string(&labels).unwrap(),
            r#"{"app":"shop","b":"","tier":"web","é":"ü"}"#
        );
        assert_eq!(
            format!("{labels:?}"),
            r#"{"app": "shop", "b": "", "tier": "web", "é": "ü"}"#
        );
    }

    /// Empty labels, however made, are one shared value; equal labels compare equal without being
    /// the same; a `LabelsRef` knows only its own labels.
    #[test]
    fn labels_identity_and_equality() {
        let none: Labels = Vec::<(String, String)>::new().into_iter().collect();
        assert!(none.is_empty() && none.same(&Labels::default()));
        assert_eq!(none.iter().count(), 0);
        assert_eq!(none.get("a"), None);
        let a: Labels = [("k", "v")].into_iter().collect();
        let b: Labels = [("k".to_owned(), "v".to_owned())].into_iter().collect();
        let c: Labels = [("k", "w")].into_iter().collect();
        assert!(a == b && !a.same(&b) && a != c && a != none);
        // A key that is a prefix of the next one's text does not run into it.
        let d: Labels = [("k", "v"), ("kv", "")].into_iter().collect();
        assert_ne!(a, d);
        let r = a.downgrade();
        assert!(r.is(&a) && r.is(&a.clone()) && !r.is(&b));
    }
}
