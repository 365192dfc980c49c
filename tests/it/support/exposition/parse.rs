//! The strict parser: a body that ends in a newline, no empty lines, `# HELP`/`# TYPE`/`# EOF`
//! comments, and samples with correctly escaped label values.

use super::{Exposition, Sample};

/// See [`Exposition::parse`].
pub(super) fn parse(text: &str) -> Result<Exposition, String> {
    let mut e = Exposition::default();
    let lines: Vec<&str> = text.split('\n').collect();
    if lines.last() != Some(&"") {
        return Err("the body does not end with a newline".into());
    }
    let lines = &lines[..lines.len() - 1];
    for (i, line) in lines.iter().enumerate() {
        let at = |msg: String| format!("line {}: {msg}: {line:?}", i + 1);
        if let Some(rest) = line.strip_prefix('#') {
            let rest = rest.strip_prefix(' ').unwrap_or(rest);
            let mut parts = rest.splitn(3, ' ');
            match parts.next() {
                Some("HELP") => {
                    let name = parts.next().ok_or_else(|| at("HELP without name".into()))?;
                    e.help
                        .push((name.to_owned(), parts.next().unwrap_or("").to_owned()));
                }
                Some("TYPE") => {
                    let name = parts.next().ok_or_else(|| at("TYPE without name".into()))?;
                    let kind = parts.next().ok_or_else(|| at("TYPE without type".into()))?;
                    e.types.push((name.to_owned(), kind.to_owned()));
                }
                Some("EOF") => {
                    if i + 1 != lines.len() {
                        return Err(at("# EOF before the end".into()));
                    }
                    e.eof_last = true;
                }
                _ => {}
            }
            continue;
        }
        if line.is_empty() {
            return Err(at("empty line".into()));
        }
        e.samples.push(parse_sample(line).map_err(at)?);
    }
    Ok(e)
}

/// `name{k="v",…} value [timestamp]`, escapes decoded.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let mut chars = line.chars().peekable();
    let mut name = String::new();
    while let Some(&c) = chars.peek() {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            name.push(c);
            chars.next();
        } else {
            break;
        }
    }
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut labels = Vec::new();
    if chars.peek() == Some(&'{') {
        chars.next();
        loop {
            match chars.peek() {
                Some('}') => {
                    chars.next();
                    break;
                }
                None => return Err("unterminated label set".into()),
                _ => {}
            }
            let mut key = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_ascii_alphanumeric() || c == '_' {
                    key.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
            if chars.next() != Some('=') || chars.next() != Some('"') {
                return Err(format!("label {key:?} is not followed by =\""));
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        other => return Err(format!("bad escape \\{other:?} in {key}")),
                    },
                    Some('"') => break,
                    Some('\n') => return Err(format!("raw newline in value of {key}")),
                    Some(c) => value.push(c),
                    None => return Err(format!("unterminated value of {key}")),
                }
            }
            labels.push((key, value));
            match chars.next() {
                Some(',') => {}
                Some('}') => break,
                other => return Err(format!("expected , or }} after a label, got {other:?}")),
            }
        }
    }
    if chars.next() != Some(' ') {
        return Err("no space before the value".into());
    }
    let rest: String = chars.collect();
    let mut fields = rest.split(' ');
    let v = fields.next().unwrap_or("");
    let value = match v {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().map_err(|e| format!("value {v:?}: {e}"))?,
    };
    if let Some(ts) = fields.next() {
        ts.parse::<f64>()
            .map_err(|e| format!("timestamp {ts:?}: {e}"))?;
    }
    if fields.next().is_some() {
        return Err("trailing fields".into());
    }
    Ok(Sample {
        name,
        labels,
        value,
    })
}

/// A label name Prometheus accepts and does not reserve (`[a-zA-Z_][a-zA-Z0-9_]*`, no `__`).
pub(super) fn valid_label_name(k: &str) -> bool {
    let mut cs = k.chars();
    cs.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !k.starts_with("__")
}
