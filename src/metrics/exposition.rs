//! The one text writer for every family derived from the inventory, in the Prometheus 0.0.4 text
//! format and in OpenMetrics 1.0.
//!
//! Owns the exposition syntax: HELP and TYPE lines (with escaping), the counter `_total` rule,
//! histograms (`_sum`, `_count`, cumulative `_bucket`s with `le`), label-value escaping,
//! integers and unix times written without a float formatter, and `# EOF`. Writes what prometheus-client writes for the same families (a test in `metrics`
//! proves it), about twice as fast, because a large scrape is tens of thousands of series. Never
//! decides which families or samples exist: the family modules do.

/// A family's type, as far as sealwatch's hand-written families need one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
    Histogram,
}

/// Writes one scrape's text into a `String`.
pub struct Exposition<'o> {
    out: &'o mut String,
    openmetrics: bool,
}

impl<'o> Exposition<'o> {
    pub fn new(out: &'o mut String, openmetrics: bool) -> Self {
        Self { out, openmetrics }
    }

    /// The text so far, for family modules that append pre-rendered label text.
    pub fn out(&mut self) -> &mut String {
        self.out
    }

    /// `# HELP` and `# TYPE` of a family. `stem` is the name without `_total`: a counter is
    /// described as `stem_total` in the 0.0.4 text and as `stem` in OpenMetrics, where only its
    /// samples carry the suffix.
    pub fn descriptor(&mut self, stem: &str, help: &str, kind: Kind) {
        descriptor(self.out, self.openmetrics, stem, help, kind);
    }

    /// Whether this is OpenMetrics text (else 0.0.4).
    pub fn openmetrics(&self) -> bool {
        self.openmetrics
    }

    /// One sample: `name{k="v",...} value`, labels whose value is `None` left out. A counter's
    /// sample is named `stem_total` in both formats.
    pub fn sample(
        &mut self,
        stem: &str,
        kind: Kind,
        labels: &[(&str, Option<&str>)],
        value: impl Into<i128>,
    ) {
        self.out.push_str(stem);
        if kind == Kind::Counter {
            self.out.push_str("_total");
        }
        let mut first = true;
        for (key, value) in labels {
            let Some(value) = value else { continue };
            self.out.push(if first { '{' } else { ',' });
            first = false;
            self.out.push_str(key);
            self.out.push_str("=\"");
            push_escaped(self.out, value);
            self.out.push('"');
        }
        if !first {
            self.out.push('}');
        }
        self.out.push(' ');
        push_int(self.out, value);
        self.out.push('\n');
    }

    /// A whole family from an iterator of label sets and values; nothing at all when it yields
    /// none, as prometheus-client leaves out a family without samples.
    pub fn family<'l, const N: usize>(
        &mut self,
        stem: &str,
        help: &str,
        kind: Kind,
        samples: impl IntoIterator<Item = ([(&'l str, Option<&'l str>); N], i128)>,
    ) {
        let mut samples = samples.into_iter().peekable();
        if samples.peek().is_none() {
            return;
        }
        self.descriptor(stem, help, kind);
        for (labels, value) in samples {
            self.sample(stem, kind, &labels, value);
        }
    }

    /// One histogram series, as prometheus-client writes it: `stem_sum` (exact seconds),
    /// `stem_count`, then a cumulative `stem_bucket` per bound (`le` in seconds) and `+Inf`.
    /// `bounds` and `sum_nanos` are nanoseconds; `cumulative` yields one count per bound, then
    /// the total.
    pub fn histogram(
        &mut self,
        stem: &str,
        labels: &[(&str, Option<&str>)],
        bounds: &[i64],
        sum_nanos: i128,
        cumulative: impl IntoIterator<Item = u64>,
    ) {
        let line = |out: &mut String, suffix: &str, le: Option<&str>| {
            out.push_str(stem);
            out.push_str(suffix);
            let mut first = true;
            let le = le.map(|v| ("le", Some(v)));
            for (key, value) in labels.iter().chain(le.iter()) {
                let Some(value) = value else { continue };
                out.push(if first { '{' } else { ',' });
                first = false;
                out.push_str(key);
                out.push_str("=\"");
                push_escaped(out, value);
                out.push('"');
            }
            if !first {
                out.push('}');
            }
            out.push(' ');
        };
        let counts: Vec<u64> = cumulative.into_iter().collect();
        let total = counts.last().copied().unwrap_or(0);
        line(self.out, "_sum", None);
        push_seconds(
            self.out,
            i64::try_from(sum_nanos).unwrap_or(if sum_nanos < 0 { i64::MIN } else { i64::MAX }),
        );
        self.out.push('\n');
        line(self.out, "_count", None);
        push_int(self.out, total);
        self.out.push('\n');
        let mut le = String::new();
        for (i, n) in counts.iter().enumerate() {
            le.clear();
            match bounds.get(i) {
                Some(b) => {
                    push_seconds(&mut le, *b);
                    // As each format's reference writes a float label: `1.0` in OpenMetrics
                    // (which requires it), `1` in the 0.0.4 text.
                    if !self.openmetrics && le.ends_with(".0") {
                        le.truncate(le.len() - 2);
                    }
                }
                None => le.push_str("+Inf"),
            }
            line(self.out, "_bucket", Some(&le));
            push_int(self.out, *n);
            self.out.push('\n');
        }
    }

    /// OpenMetrics' closing line; nothing in the 0.0.4 text.
    pub fn eof(&mut self) {
        if self.openmetrics {
            self.out.push_str("# EOF\n");
        }
    }
}

/// `Exposition::descriptor` for writers that hold the output string directly.
pub fn descriptor(out: &mut String, openmetrics: bool, stem: &str, help: &str, kind: Kind) {
    let suffix = if kind == Kind::Counter && !openmetrics {
        "_total"
    } else {
        ""
    };
    out.push_str("# HELP ");
    out.push_str(stem);
    out.push_str(suffix);
    out.push(' ');
    push_help(out, help, openmetrics);
    out.push_str("\n# TYPE ");
    out.push_str(stem);
    out.push_str(suffix);
    out.push_str(match kind {
        Kind::Gauge => " gauge\n",
        Kind::Counter => " counter\n",
        Kind::Histogram => " histogram\n",
    });
}

/// HELP text: `\\` and newlines escaped in both formats, and `"` in OpenMetrics, whose grammar
/// has no unescaped quote in a descriptor.
fn push_help(out: &mut String, help: &str, openmetrics: bool) {
    let special = |c: char| c == '\\' || c == '\n' || (openmetrics && c == '"');
    if !help.contains(special) {
        out.push_str(help);
        return;
    }
    for ch in help.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if openmetrics => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// Whether `bytes` hold a `\\`, `"` or newline (memchr's vectorised search: label values are
/// most of a large scrape's bytes, and almost never need escaping).
#[inline]
fn needs_escaping(bytes: &[u8]) -> bool {
    memchr::memchr3(b'\\', b'"', b'\n', bytes).is_some()
}

/// Appends a label value, escaped as both text formats require (`\\`, `\"`, `\n`).
#[inline]
pub fn push_escaped(out: &mut String, v: &str) {
    if !needs_escaping(v.as_bytes()) {
        out.push_str(v);
        return;
    }
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Appends `opening` (`,key="`, written as one literal), the escaped value and the closing quote.
#[inline]
pub fn push_value(out: &mut String, opening: &str, value: &str) {
    out.push_str(opening);
    push_escaped(out, value);
    out.push('"');
}

/// Appends unix nanoseconds as seconds: the exact decimal, `.0` on whole seconds (the float
/// text prometheus-client writes, without going through a float formatter).
#[inline]
pub fn push_seconds(out: &mut String, nanos: i64) {
    if nanos < 0 {
        out.push('-');
    }
    let n = nanos.unsigned_abs();
    push_int(out, n / 1_000_000_000);
    let frac = n % 1_000_000_000;
    if frac == 0 {
        out.push_str(".0");
        return;
    }
    let mut digits = [b'0'; 9];
    let mut f = frac;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (f % 10) as u8;
        f /= 10;
    }
    let len = 9 - digits.iter().rev().take_while(|d| **d == b'0').count();
    out.push('.');
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&digits[..len]).unwrap_or("0"));
}

/// Appends an integer without the formatting machinery (this runs tens of thousands of times
/// per large scrape).
#[inline]
pub fn push_int(out: &mut String, v: impl Into<i128>) {
    let v: i128 = v.into();
    if v < 0 {
        out.push('-');
    }
    // Every value written here (exit codes, counts, seconds) fits in a u64.
    let mut n = u64::try_from(v.unsigned_abs()).unwrap_or(u64::MAX);
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or("0"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(openmetrics: bool, f: impl FnOnce(&mut Exposition)) -> String {
        let mut s = String::new();
        f(&mut Exposition::new(&mut s, openmetrics));
        s
    }

    /// A counter is described as `_total` in 0.0.4 and by its stem in OpenMetrics; its samples
    /// end in `_total` in both; a gauge never gets the suffix.
    #[test]
    fn the_counter_total_rule() {
        let write = |e: &mut Exposition| {
            e.descriptor("x", "h", Kind::Counter);
            e.sample("x", Kind::Counter, &[("a", Some("1"))], 2);
            e.descriptor("g", "h", Kind::Gauge);
            e.sample("g", Kind::Gauge, &[], 3);
        };
        assert_eq!(
            text(false, write),
            "# HELP x_total h\n# TYPE x_total counter\nx_total{a=\"1\"} 2\n# HELP g h\n# TYPE g gauge\ng 3\n"
        );
        assert_eq!(
            text(true, write),
            "# HELP x h\n# TYPE x counter\nx_total{a=\"1\"} 2\n# HELP g h\n# TYPE g gauge\ng 3\n"
        );
    }

    /// HELP escapes backslashes and newlines (and quotes in OpenMetrics); label values escape
    /// all three; absent labels are left out; an empty family writes nothing; `# EOF` is
    /// OpenMetrics only.
    #[test]
    fn escaping_absent_labels_empty_families_and_eof() {
        let write = |e: &mut Exposition| {
            e.descriptor("m", "a \\ b\n\"c\"", Kind::Gauge);
            e.sample("m", Kind::Gauge, &[("a", None), ("b", Some("q\"\\\n"))], -1);
            e.family::<1>("empty", "h", Kind::Gauge, []);
            e.eof();
        };
        assert_eq!(
            text(false, write),
            "# HELP m a \\\\ b\\n\"c\"\n# TYPE m gauge\nm{b=\"q\\\"\\\\\\n\"} -1\n"
        );
        assert_eq!(
            text(true, write),
            "# HELP m a \\\\ b\\n\\\"c\\\"\n# TYPE m gauge\nm{b=\"q\\\"\\\\\\n\"} -1\n# EOF\n"
        );
    }

    /// The escape scan finds every special byte at every position, and never mistakes UTF-8.
    #[test]
    fn escaping_finds_every_special_byte_at_every_position() {
        for len in 0..20 {
            let plain = "a".repeat(len);
            assert!(!needs_escaping(plain.as_bytes()));
            for pos in 0..len {
                for special in ['\\', '"', '\n'] {
                    let mut v: Vec<char> = plain.chars().collect();
                    v[pos] = special;
                    let v: String = v.into_iter().collect();
                    assert!(needs_escaping(v.as_bytes()), "{v:?}");
                }
            }
        }
        assert!(!needs_escaping("värde ✓ 日本語 ünïcödé".as_bytes()));
        let mut out = String::new();
        push_escaped(&mut out, "a\\b\"c\nd ✓");
        assert_eq!(out, r#"a\\b\"c\nd ✓"#);
    }

    /// Integers and unix times are written as prometheus-client writes them.
    #[test]
    fn numbers_are_written_like_prometheus_client_writes_them() {
        let text = |f: &dyn Fn(&mut String)| {
            let mut s = String::new();
            f(&mut s);
            s
        };
        assert_eq!(text(&|s| push_int(s, 0u64)), "0");
        assert_eq!(text(&|s| push_int(s, -137i64)), "-137");
        assert_eq!(text(&|s| push_int(s, u64::MAX)), "18446744073709551615");
        assert_eq!(
            text(&|s| push_seconds(s, 1_795_979_959_000_000_000)),
            "1795979959.0"
        );
        assert_eq!(
            text(&|s| push_seconds(s, 1_795_979_959_237_049_905)),
            "1795979959.237049905"
        );
        assert_eq!(
            text(&|s| push_seconds(s, 1_795_979_959_500_000_000)),
            "1795979959.5"
        );
        assert_eq!(text(&|s| push_seconds(s, -1_500_000_000)), "-1.5");
    }
}
