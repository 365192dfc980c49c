//! Which container labels become metric labels, and the cap on distinct values per key.
//!
//! Owns the allowlist and the set of admitted values per key. Admission is sticky: once a value
//! has been admitted it stays admitted for the life of the process, so counters labelled with it
//! never jump between `value` and `__other__`. Never touches metrics output itself.

use std::sync::Arc;

/// The value that stands for every value past `--labels.max-values` of one key.
pub const OTHER_VALUE: &str = "__other__";

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

/// The allowlist plus the admitted values of each key. Cheap to clone (structure is shared), so
/// it travels inside every published snapshot.
#[derive(Debug, Clone)]
pub struct LabelPolicy {
    allowlist: Allowlist,
    max_values: usize,
    admitted: imbl::HashMap<Arc<str>, imbl::HashSet<Arc<str>>>,
}

impl LabelPolicy {
    pub fn new(allowlist: Allowlist, max_values: usize) -> Self {
        Self {
            allowlist,
            max_values,
            admitted: imbl::HashMap::new(),
        }
    }

    pub fn allowlist(&self) -> &Allowlist {
        &self.allowlist
    }

    /// Admits `value` for `key` if there is room, and says what the value is to be called in
    /// per-label families: itself, or `__other__` once the key is full. `None` when the key is not
    /// allowlisted.
    pub fn admit(&mut self, key: &str, value: &str) -> Option<Arc<str>> {
        if !self.allowlist.allows(key) {
            return None;
        }
        let max = self.max_values;
        let values = self.admitted.entry(Arc::from(key)).or_default();
        if values.contains(value) {
            return Some(Arc::from(value));
        }
        if values.len() < max {
            let v: Arc<str> = Arc::from(value);
            values.insert(v.clone());
            return Some(v);
        }
        Some(Arc::from(OTHER_VALUE))
    }

    /// What `value` of `key` is called in per-label families, without admitting anything (for
    /// scrape-time readers of a snapshot). `None` when the key is not allowlisted.
    pub fn folded<'a>(&self, key: &str, value: &'a str) -> Option<&'a str> {
        if !self.allowlist.allows(key) {
            return None;
        }
        let admitted = self.admitted.get(key).is_some_and(|vs| vs.contains(value));
        Some(if admitted { value } else { OTHER_VALUE })
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
        assert_eq!(p.admit("k", "a").as_deref(), Some("a"));
        assert_eq!(p.admit("k", "b").as_deref(), Some("b"));
        assert_eq!(p.admit("k", "c").as_deref(), Some(OTHER_VALUE));
        assert_eq!(p.admit("k", "a").as_deref(), Some("a"));
        assert_eq!(p.admit("x", "a"), None);
        assert_eq!(p.folded("k", "b"), Some("b"));
        assert_eq!(p.folded("k", "c"), Some(OTHER_VALUE));
        assert_eq!(p.folded("x", "c"), None);
    }
}
