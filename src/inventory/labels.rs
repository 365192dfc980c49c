//! Which container labels become metric labels, the cap on distinct keys and the cap on
//! distinct values per key.
//!
//! Owns the allowlist and the admitted keys and values. Admission is sticky while it matters: a
//! key or value stays admitted as long as a container has it, and after that until the retention
//! sweep (`inventory::retention`) forgets it, so a counter labelled with it never jumps between
//! `value` and `__other__` while it can still move. Never touches metrics output itself.

use std::sync::Arc;

/// The value that stands for every value past `--labels.max-values` of one key, and (as both
/// key and value) for every key past `--labels.max-keys`.
pub const OTHER_VALUE: &str = "__other__";

/// `OTHER_VALUE`, shared: folding a value allocates nothing.
fn other_value() -> Arc<str> {
    other_held().clone()
}

/// The one `OTHER_VALUE` allocation of the process.
fn other_held() -> &'static Arc<str> {
    static OTHER: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
    OTHER.get_or_init(|| Arc::from(OTHER_VALUE))
}

/// The default of `--labels.max-keys`: far above what compose and systemd labelling use, low
/// enough that `--labels.allowlist '*'` over hostile labels stays bounded.
pub const DEFAULT_MAX_KEYS: usize = 256;

/// The default of `--labels.allowlist`: keys that group containers into projects and services.
pub const DEFAULT_ALLOWLIST: &[&str] = &[
    "io.podman.compose.project",
    "com.docker.compose.project",
    "com.docker.compose.service",
    "PODMAN_SYSTEMD_UNIT",
];

/// The allowlist as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowlist {
    /// `*`: every label key.
    All,
    Keys(Arc<[String]>),
}

impl Allowlist {
    /// Parses the comma-separated flag value; `*` alone means all keys; empty means none.
    pub fn parse(spec: &str) -> Self {
        if spec.trim() == "*" {
            return Allowlist::All;
        }
        let keys: Vec<String> = spec
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect();
        Allowlist::Keys(keys.into())
    }

    pub fn allows(&self, key: &str) -> bool {
        match self {
            Allowlist::All => true,
            Allowlist::Keys(keys) => keys.iter().any(|k| k == key),
        }
    }
}

impl Default for Allowlist {
    fn default() -> Self {
        Allowlist::Keys(DEFAULT_ALLOWLIST.iter().map(|s| s.to_string()).collect())
    }
}

/// The allowlist plus the admitted keys and their admitted values. Cheap to clone (structure is
/// shared), so it travels inside every published snapshot.
#[derive(Debug, Clone)]
pub struct LabelPolicy {
    allowlist: Allowlist,
    max_values: usize,
    max_keys: usize,
    admitted: super::FxMap<Arc<str>, AdmittedValues>,
}

/// One key's admitted values, as a map so that `admit` can hand out the value as held (a
/// reference count) instead of a new string per event.
pub(super) type AdmittedValues = super::FxMap<Arc<str>, ()>;

impl LabelPolicy {
    /// A policy with `max_values` values per key and the default cap on keys.
    pub fn new(allowlist: Allowlist, max_values: usize) -> Self {
        Self {
            allowlist,
            max_values,
            max_keys: DEFAULT_MAX_KEYS,
            admitted: super::FxMap::default(),
        }
    }

    /// The same policy with at most `max_keys` distinct keys admitted at a time.
    pub fn with_max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys;
        self
    }

    pub fn allowlist(&self) -> &Allowlist {
        &self.allowlist
    }

    /// Admits `key` and `value` if there is room, and says what they are to be called in
    /// per-label families: themselves; `value="__other__"` once the key has its
    /// `--labels.max-values`; `label="__other__", value="__other__"` when the key itself did not
    /// fit under `--labels.max-keys`. `None` when the key is not allowlisted.
    pub fn admit(&mut self, key: &str, value: &str) -> Option<(Arc<str>, Arc<str>)> {
        if !self.allowlist.allows(key) {
            return None;
        }
        // The steady state (an admitted value of an admitted key, or a value past the cap)
        // only reads: key and value as held, no write that would copy map nodes a published
        // snapshot shares, no new string.
        match self.admitted.get_key_value(key) {
            Some((held, values)) => {
                if let Some((held_value, ())) = values.get_key_value(value) {
                    return Some((held.clone(), held_value.clone()));
                }
                if values.len() >= self.max_values {
                    return Some((held.clone(), other_value()));
                }
            }
            None if self.admitted.len() >= self.max_keys => {
                return Some((other_value(), other_value()));
            }
            None => {}
        }
        let key: Arc<str> = Arc::from(key);
        let values = self.admitted.entry(key.clone()).or_default();
        if values.len() >= self.max_values {
            return Some((key, other_value()));
        }
        let v: Arc<str> = Arc::from(value);
        values.insert(v.clone(), ());
        Some((key, v))
    }

    /// Whether `other` admitted these very keys and values (pointer comparison of the
    /// admissions; the allowlist and caps are fixed for an engine's life).
    pub fn same_admissions(&self, other: &LabelPolicy) -> bool {
        self.admitted.ptr_eq(&other.admitted)
    }

    /// The admitted keys, sorted: what decides which labels `podman_container_labels` shows.
    pub fn admitted_keys(&self) -> Vec<Arc<str>> {
        let mut keys: Vec<Arc<str>> = self.admitted.keys().cloned().collect();
        keys.sort_unstable();
        keys
    }

    /// Whether `key` is shown as a label: allowlisted and admitted under `--labels.max-keys`
    /// (`podman_container_labels` leaves other keys out: a key cannot be folded into a label
    /// name).
    pub fn shows_key(&self, key: &str) -> bool {
        self.allowlist.allows(key) && self.admitted.contains_key(key)
    }

    /// What `key` and `value` are called in per-label families, without admitting anything (for
    /// scrape-time readers of a snapshot). `None` when the key is not allowlisted.
    pub fn folded<'a>(&self, key: &'a str, value: &'a str) -> Option<(&'a str, &'a str)> {
        if !self.allowlist.allows(key) {
            return None;
        }
        Some(match self.admitted.get(key) {
            Some(values) if values.contains_key(value) => (key, value),
            Some(_) => (key, OTHER_VALUE),
            None => (OTHER_VALUE, OTHER_VALUE),
        })
    }

    /// `folded`, answered with the strings the policy holds: while the admissions stay the same
    /// (`same_admissions`), one key or value is always the same allocation, so a scrape-time
    /// counter can key by address instead of hashing and copying the text.
    pub fn folded_held(&self, key: &str, value: &str) -> Option<(&Arc<str>, &Arc<str>)> {
        if !self.allowlist.allows(key) {
            return None;
        }
        Some(match self.admitted.get_key_value(key) {
            Some((held, values)) => match values.get_key_value(value) {
                Some((held_value, ())) => (held, held_value),
                None => (held, other_held()),
            },
            None => (other_held(), other_held()),
        })
    }

    /// Every admitted key with its admitted values (for the retention sweep).
    pub(super) fn admitted(&self) -> &super::FxMap<Arc<str>, AdmittedValues> {
        &self.admitted
    }

    /// Forgets an admitted value, making room for another (the retention sweep, once no
    /// container has it and its counters are dropped).
    pub(super) fn forget_value(&mut self, key: &str, value: &str) {
        if let Some(values) = self.admitted.get_mut(key) {
            values.remove(value);
        }
    }

    /// Forgets an admitted key and all its values.
    pub(super) fn forget_key(&mut self, key: &str) {
        self.admitted.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_parsing() {
        assert_eq!(Allowlist::parse("*"), Allowlist::All);
        assert!(Allowlist::parse("a, b").allows("b"));
        assert!(!Allowlist::parse("a,b").allows("c"));
        assert!(!Allowlist::parse("").allows(""));
        assert!(Allowlist::default().allows("com.docker.compose.project"));
    }

    #[test]
    fn values_past_the_cap_fold_into_other_and_admission_is_sticky() {
        let mut p = LabelPolicy::new(Allowlist::parse("k"), 2);
        let admit = |p: &mut LabelPolicy, k: &str, v: &str| {
            p.admit(k, v).map(|(k, v)| (k.to_string(), v.to_string()))
        };
        let pair = |k: &str, v: &str| Some((k.to_owned(), v.to_owned()));
        assert_eq!(admit(&mut p, "k", "a"), pair("k", "a"));
        assert_eq!(admit(&mut p, "k", "b"), pair("k", "b"));
        assert_eq!(admit(&mut p, "k", "c"), pair("k", OTHER_VALUE));
        assert_eq!(admit(&mut p, "k", "a"), pair("k", "a"));
        assert_eq!(p.admit("x", "a"), None);
        assert_eq!(p.folded("k", "b"), Some(("k", "b")));
        assert_eq!(p.folded("k", "c"), Some(("k", OTHER_VALUE)));
        assert_eq!(p.folded("x", "c"), None);
    }

    /// An admitted value is handed out as held (no new string per event), and a key with no
    /// room for values at all folds every value without admitting it.
    #[test]
    fn admitted_values_are_shared_and_a_zero_cap_admits_none() {
        let mut p = LabelPolicy::new(Allowlist::parse("k"), 1);
        let (k1, v1) = p.admit("k", "a").unwrap();
        let (k2, v2) = p.admit("k", "a").unwrap();
        assert!(Arc::ptr_eq(&k1, &k2) && Arc::ptr_eq(&v1, &v2));
        let mut none = LabelPolicy::new(Allowlist::parse("k"), 0);
        let (k, v) = none.admit("k", "a").unwrap();
        assert_eq!((&*k, &*v), ("k", OTHER_VALUE));
        assert!(none.shows_key("k"));
        assert_eq!(none.folded("k", "a"), Some(("k", OTHER_VALUE)));
    }

    /// Keys past `--labels.max-keys` are counted as `label="__other__", value="__other__"` and
    /// left out of `podman_container_labels`; the first keys seen keep their places, and a
    /// forgotten key makes room for the next.
    #[test]
    fn keys_past_the_cap_fold_into_other() {
        let mut p = LabelPolicy::new(Allowlist::All, 10).with_max_keys(2);
        let admit = |p: &mut LabelPolicy, k: &str, v: &str| {
            p.admit(k, v).map(|(k, v)| (k.to_string(), v.to_string()))
        };
        let pair = |k: &str, v: &str| Some((k.to_owned(), v.to_owned()));
        assert_eq!(admit(&mut p, "a", "1"), pair("a", "1"));
        assert_eq!(admit(&mut p, "b", "1"), pair("b", "1"));
        assert_eq!(admit(&mut p, "c", "1"), pair(OTHER_VALUE, OTHER_VALUE));
        assert_eq!(
            admit(&mut p, "a", "2"),
            pair("a", "2"),
            "admitted keys take values"
        );
        assert!(p.shows_key("a") && p.shows_key("b") && !p.shows_key("c"));
        assert_eq!(p.folded("c", "1"), Some((OTHER_VALUE, OTHER_VALUE)));
        assert_eq!(p.admitted().len(), 2);
        p.forget_key("a");
        assert_eq!(admit(&mut p, "c", "1"), pair("c", "1"));
        assert!(!p.shows_key("a") && p.shows_key("c"));
    }
}
