//! The one reader of sealwatch's `/metrics` for the whole suite: a strict parser of the 0.0.4
//! text and OpenMetrics formats ([`parse`]), a linter for what promtool does not check
//! ([`lint`]), and look-ups under which an absent series is a failure that names the series and
//! lists what exists, never a silent 0. The one exception says so in its name:
//! [`Exposition::nonzero_by`], for comparisons with Podman's lists.

mod lint;
mod parse;

use std::collections::{BTreeMap, BTreeSet};

pub use lint::{assert_lint_clean, Format};

/// One sample line.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    /// In the order they were written.
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// The value of label `key`, if the sample has it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn matches(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.name == name && labels.iter().all(|(k, v)| self.label(k) == Some(*v))
    }
}

/// One parsed `/metrics` body (0.0.4 text or OpenMetrics text).
#[derive(Debug, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    /// `# HELP` lines in order: (family, text).
    help: Vec<(String, String)>,
    /// `# TYPE` lines in order: (family, type).
    types: Vec<(String, String)>,
    /// Saw `# EOF` as the very last line.
    eof_last: bool,
}

impl Exposition {
    /// Parses `text` strictly: any line that is not a valid comment or sample is an error.
    pub fn parse(text: &str) -> Result<Self, String> {
        parse::parse(text)
    }

    /// [`parse`](Self::parse), panicking with the first problem and the start of the body.
    pub fn parse_or_panic(text: &str) -> Self {
        Self::parse(text).unwrap_or_else(|e| {
            panic!(
                "unparsable exposition: {}\n--- body ---\n{}",
                clip(&e),
                clip(text)
            )
        })
    }

    /// Every sample name (as users query them).
    pub fn names(&self) -> BTreeSet<String> {
        self.samples.iter().map(|s| s.name.clone()).collect()
    }

    /// Every sample called `name`; empty if there is none.
    pub fn series<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// The value of the one sample called `name` that has all of `labels` (it may have more);
    /// an error naming the series and listing what exists when there is none, or several.
    pub fn try_value(&self, name: &str, labels: &[(&str, &str)]) -> Result<f64, String> {
        let found: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.matches(name, labels))
            .collect();
        match found.as_slice() {
            [one] => Ok(one.value),
            [] => Err(format!(
                "no series {name}{labels:?}; {}",
                self.what_exists(name)
            )),
            many => Err(format!(
                "{} series match {name}{labels:?}, expected one: {many:?}",
                many.len()
            )),
        }
    }

    /// [`try_value`](Self::try_value), panicking when there is not exactly one such series.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.try_value(name, labels)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The sum over every sample called `name`; an error when there is none.
    pub fn try_sum(&self, name: &str) -> Result<f64, String> {
        let mut values = self.series(name).map(|s| s.value).peekable();
        if values.peek().is_none() {
            return Err(format!("no series {name}; {}", self.what_exists(name)));
        }
        Ok(values.sum())
    }

    /// [`try_sum`](Self::try_sum), panicking when there is no sample called `name`.
    pub fn sum(&self, name: &str) -> f64 {
        self.try_sum(name).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The samples of `name` keyed by the values of `keys` (absent label = ""), summed, with
    /// zeros dropped: the one look-up under which "0" and "no series" read the same, as they
    /// must when the other side of a comparison (Podman's own lists) only has what exists, and
    /// sealwatch leaves out a family that has no series at all.
    pub fn nonzero_by(&self, name: &str, keys: &[&str]) -> BTreeMap<Vec<String>, f64> {
        let mut out: BTreeMap<Vec<String>, f64> = BTreeMap::new();
        for s in self.series(name) {
            let k = keys
                .iter()
                .map(|k| s.label(k).unwrap_or("").to_owned())
                .collect();
            *out.entry(k).or_default() += s.value;
        }
        out.retain(|_, v| *v != 0.0);
        out
    }

    /// The family a sample belongs to: its name, or its name without a type suffix.
    fn family_of(&self, sample: &str) -> Option<String> {
        let declared = |n: &str| self.types.iter().any(|(t, _)| t == n);
        if declared(sample) {
            return Some(sample.to_owned());
        }
        ["_total", "_created", "_count", "_sum", "_bucket", "_info"]
            .iter()
            .filter_map(|s| sample.strip_suffix(s))
            .find(|n| declared(n))
            .map(str::to_owned)
    }

    /// For failure messages: the series of `name` if it has some, else every sample name.
    fn what_exists(&self, name: &str) -> String {
        let same: Vec<String> = self
            .series(name)
            .map(|s| format!("{}{:?} {}", s.name, s.labels, s.value))
            .collect();
        if same.is_empty() {
            format!("the samples are: {:?}", self.names())
        } else {
            format!("its series are:\n  {}", same.join("\n  "))
        }
    }
}

/// At most 2,000 characters of `s`, for failure messages about huge bodies.
pub fn clip(s: &str) -> String {
    match s.char_indices().nth(2000) {
        Some((i, _)) => format!("{}… ({} bytes)", &s[..i], s.len()),
        None => s.to_owned(),
    }
}
