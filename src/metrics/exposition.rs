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

/// Whether `bytes` hold a `\\`, `"` or newline. Label values are most of a large scrape's
/// bytes and almost never need escaping, and most are short (IDs, names, label values): those
/// are scanned eight bytes at a time in plain registers (a call into memchr's vector search cost
/// more than the scan itself below a few dozen bytes); longer ones go to memchr.
#[inline]
fn needs_escaping(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Nonzero exactly when some byte of `w` is one of the three (the classic "has a zero
    // byte" test applied to `w` xor each byte repeated).
    fn special(w: u64) -> u64 {
        let zero = |v: u64| v.wrapping_sub(ONES) & !v;
        (zero(w ^ (ONES * u64::from(b'\\')))
            | zero(w ^ (ONES * u64::from(b'"')))
            | zero(w ^ (ONES * u64::from(b'\n'))))
            & HIGHS
    }
    fn word(b: &[u8]) -> u64 {
        u64::from_le_bytes(<[u8; 8]>::try_from(b).unwrap_or_default())
    }
    fn half(b: &[u8]) -> u64 {
        u64::from(u32::from_le_bytes(
            <[u8; 4]>::try_from(b).unwrap_or_default(),
        ))
    }
    let n = bytes.len();
    match n {
        0..4 => bytes.iter().any(|b| matches!(b, b'\\' | b'"' | b'\n')),
        // The first and the last four bytes (overlapping when fewer than eight): a yes/no
        // answer needs no exact cover.
        4..8 => special(half(&bytes[..4]) | (half(&bytes[n - 4..]) << 32)) != 0,
        8..=64 => {
            let mut found = 0;
            let mut chunks = bytes.chunks_exact(8);
            for chunk in &mut chunks {
                found |= special(word(chunk));
            }
            if !chunks.remainder().is_empty() {
                // The last eight bytes, overlapping the chunks before.
                found |= special(word(&bytes[n - 8..]));
            }
            found != 0
        }
        _ => memchr::memchr3(b'\\', b'"', b'\n', bytes).is_some(),
    }
}

/// Appends a label value, escaped as both text formats require (`\\`, `\"`, `\n`).
#[inline(always)]
pub fn push_escaped(out: &mut String, v: &str) {
    if needs_escaping(v.as_bytes()) {
        push_escaped_slowly(out, v);
    } else {
        out.push_str(v);
    }
}

/// The rare value that needs escaping, kept out of line so that the common path stays small.
#[cold]
#[inline(never)]
fn push_escaped_slowly(out: &mut String, v: &str) {
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

/// Two decimal digits per entry, for writing numbers a pair of digits per division.
const PAIRS: &[u8; 200] = b"\
    0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

/// Writes `n` in decimal so that it ends just before `buf[end]`; returns where it starts.
#[inline]
fn write_decimal(buf: &mut [u8], end: usize, mut n: u64) -> usize {
    let mut i = end;
    while n >= 100 {
        let d = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[d..d + 2]);
    }
    if n >= 10 {
        let d = n as usize * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[d..d + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + n as u8;
    }
    i
}

/// Appends ASCII bytes written by this module.
#[inline]
fn push_ascii(out: &mut String, bytes: &[u8]) {
    // Only ASCII digits, signs and points are ever written into these buffers.
    out.push_str(std::str::from_utf8(bytes).unwrap_or("0"));
}

/// Appends unix nanoseconds as seconds: the exact decimal, `.0` on whole seconds (the float
/// text prometheus-client writes, without going through a float formatter).
#[inline]
pub fn push_seconds(out: &mut String, nanos: i64) {
    // Sign and up to 10 digits of seconds before the point, at most 9 digits after it.
    const POINT: usize = 11;
    let mut buf = [b'0'; POINT + 10];
    let n = nanos.unsigned_abs();
    let mut start = write_decimal(&mut buf, POINT, n / 1_000_000_000);
    if nanos < 0 {
        start -= 1;
        buf[start] = b'-';
    }
    buf[POINT] = b'.';
    let frac = n % 1_000_000_000;
    let mut end = POINT + 2;
    if frac != 0 {
        // Nine digits, zero-padded (`buf` holds zeros), then the trailing zeros cut.
        write_decimal(&mut buf, POINT + 10, frac);
        end = POINT + 10;
        while buf[end - 1] == b'0' {
            end -= 1;
        }
    }
    push_ascii(out, &buf[start..end]);
}

/// Appends an integer without the formatting machinery (this runs tens of thousands of times
/// per large scrape).
#[inline]
pub fn push_int(out: &mut String, v: impl Into<i128>) {
    let v: i128 = v.into();
    // Every value written here (exit codes, counts, seconds) fits in a u64.
    let n = u64::try_from(v.unsigned_abs()).unwrap_or(u64::MAX);
    let mut buf = [0u8; 21];
    let mut start = write_decimal(&mut buf, 21, n);
    if v < 0 {
        start -= 1;
        buf[start] = b'-';
    }
    push_ascii(out, &buf[start..]);
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
        for len in 0..100 {
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
        assert_eq!(text(&|s| push_seconds(s, 0)), "0.0");
        assert_eq!(text(&|s| push_seconds(s, 1)), "0.000000001");
        assert_eq!(text(&|s| push_seconds(s, -10)), "-0.00000001");
        assert_eq!(
            text(&|s| push_seconds(s, i64::MIN)),
            "-9223372036.854775808"
        );
        assert_eq!(text(&|s| push_seconds(s, i64::MAX)), "9223372036.854775807");
        assert_eq!(text(&|s| push_int(s, i64::MIN)), "-9223372036854775808");
        for v in [
            1u64,
            9,
            10,
            99,
            100,
            101,
            12_345,
            999_999_999,
            1_000_000_000,
        ] {
            assert_eq!(text(&|s| push_int(s, v)), v.to_string());
            for frac in [0, 1, 10, 123_456_789, 500_000_000, 999_999_999] {
                let nanos = (v * 1_000_000_000 + frac) as i64;
                let want = if frac == 0 {
                    format!("{v}.0")
                } else {
                    format!("{v}.{}", format!("{frac:09}").trim_end_matches('0'))
                };
                assert_eq!(text(&|s| push_seconds(s, nanos)), want);
            }
        }
    }
}
