//! Content negotiation for `/metrics`: which text format (`Accept`) and whether to gzip
//! (`Accept-Encoding`), both read by one q-value parser, and the gzip encoder.
//!
//! Owns the RFC 9110 list syntax (`value;param=x;q=0.5, ...`, case-insensitive `q`, `q=0` meaning
//! "not acceptable"). Never renders metrics.

/// One element of a comma-separated header list and its weight.
#[derive(Debug, PartialEq)]
struct Weighted<'a> {
    /// The media range or coding, without parameters.
    value: &'a str,
    /// The `q` parameter, 1 when absent or unreadable.
    q: f32,
}

/// The elements of an `Accept` or `Accept-Encoding` header, empty ones skipped.
fn weighted(header: &str) -> impl Iterator<Item = Weighted<'_>> {
    header.split(',').filter_map(|element| {
        let mut params = element.split(';').map(str::trim);
        let value = params.next().filter(|v| !v.is_empty())?;
        let q = params
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .and_then(|(_, v)| v.trim().parse::<f32>().ok())
            .filter(|q| (0.0..=1.0).contains(q))
            .unwrap_or(1.0);
        Some(Weighted { value, q })
    })
}

/// Whether an `Accept` header asks for OpenMetrics (Prometheus lists it first, with the highest
/// q) rather than the 0.0.4 text.
pub fn wants_openmetrics(accept: &str) -> bool {
    weighted(accept)
        .any(|w| w.value.eq_ignore_ascii_case("application/openmetrics-text") && w.q > 0.0)
}

/// Whether `Accept-Encoding` accepts gzip: by name with a non-zero weight, or else through `*`.
pub fn accepts_gzip(accept_encoding: &str) -> bool {
    let mut star = None;
    for w in weighted(accept_encoding) {
        if w.value.eq_ignore_ascii_case("gzip") {
            return w.q > 0.0;
        }
        if w.value == "*" {
            star = Some(w.q > 0.0);
        }
    }
    star.unwrap_or(false)
}

/// Compresses a scrape with gzip's fastest level: a large scrape shrinks about five times and
/// the time to compress stays a fraction of the render.
pub fn gzip_bytes(data: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 8),
        flate2::Compression::fast(),
    );
    enc.write_all(data)?;
    enc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prometheus's own Accept picks OpenMetrics; q=0 in any spelling refuses it.
    #[test]
    fn accept_negotiation() {
        assert!(wants_openmetrics(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        ));
        assert!(!wants_openmetrics("text/plain"));
        assert!(!wants_openmetrics("*/*"));
        assert!(!wants_openmetrics(
            "*/*;q=0.5, APPLICATION/OPENMETRICS-TEXT;version=1.0.0;Q=0.000"
        ));
        for refused in ["q=0", "q=0.0", "Q=0", "q = 0.000", "q=0.000"] {
            assert!(
                !wants_openmetrics(&format!("application/openmetrics-text; {refused}")),
                "{refused}"
            );
        }
    }

    /// gzip by name or through `*`, never with a zero weight, and an explicit gzip entry wins
    /// over `*`.
    #[test]
    fn gzip_negotiation() {
        assert!(accepts_gzip("gzip"));
        assert!(accepts_gzip("GZIP"));
        assert!(accepts_gzip("deflate, gzip;q=1.0, *;q=0.5"));
        assert!(accepts_gzip("*"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("GZIP;Q=0"));
        assert!(!accepts_gzip("gzip;q=0.000"));
        assert!(!accepts_gzip("*;q=0.5, gzip;q=0"));
        assert!(!accepts_gzip("identity"));
        assert!(!accepts_gzip(""));
    }
}
