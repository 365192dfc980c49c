//! Newline-delimited JSON framing over a byte stream that arrives in arbitrary chunks.
//!
//! Owns splitting on `\n` (a line may span chunks, a chunk may hold many lines) and the bound on a
//! line's length, so one endless line can never grow memory without limit. Never decodes JSON.

/// Longest line accepted: Podman's largest events (labels merged in) are a few KiB.
pub const MAX_LINE: usize = 1 << 20;

/// A line longer than the bound: the stream is no longer trustworthy and must be reopened.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("event line longer than {max} bytes; dropping the stream")]
pub struct LineTooLong {
    pub max: usize,
}

/// Accumulates chunks and hands out complete lines (without the `\n`; a `\r` before it is dropped
/// too). Blank lines are skipped.
#[derive(Debug)]
pub struct LineSplitter {
    partial: Vec<u8>,
    max: usize,
}

impl LineSplitter {
    pub fn new(max: usize) -> Self {
        Self {
            partial: Vec::new(),
            max,
        }
    }

    /// Feeds one chunk and calls `on_line` for each line it completes, in order.
    pub fn push(
        &mut self,
        chunk: &[u8],
        mut on_line: impl FnMut(&[u8]),
    ) -> Result<(), LineTooLong> {
        let mut rest = chunk;
        while let Some(pos) = memchr::memchr(b'\n', rest) {
            let (head, tail) = rest.split_at(pos);
            rest = &tail[1..];
            if self.partial.is_empty() {
                if head.len() > self.max {
                    return Err(LineTooLong { max: self.max });
                }
                emit(head, &mut on_line);
            } else {
                if self.partial.len() + head.len() > self.max {
                    self.partial.clear();
                    return Err(LineTooLong { max: self.max });
                }
                self.partial.extend_from_slice(head);
                emit(&self.partial, &mut on_line);
                self.partial.clear();
            }
        }
        if self.partial.len() + rest.len() > self.max {
            self.partial.clear();
            return Err(LineTooLong { max: self.max });
        }
        self.partial.extend_from_slice(rest);
        Ok(())
    }

    /// The unterminated rest at the end of the stream, if any (Podman terminates every event with
    /// `\n`, so this is a line cut off by a dropped connection).
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        let rest = std::mem::take(&mut self.partial);
        let trimmed = trim(&rest);
        (!trimmed.is_empty()).then(|| trimmed.to_vec())
    }
}

fn trim(line: &[u8]) -> &[u8] {
    let end = line
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |p| p + 1);
    let start = line[..end]
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(end);
    &line[start..end]
}

fn emit(line: &[u8], on_line: &mut impl FnMut(&[u8])) {
    let line = trim(line);
    if !line.is_empty() {
        on_line(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]], max: usize) -> (Vec<String>, Result<(), LineTooLong>) {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            if let Err(e) = s.push(c, |l| out.push(String::from_utf8_lossy(l).into_owned())) {
                return (out, Err(e));
            }
        }
        (out, Ok(()))
    }

    #[test]
    fn lines_split_across_chunks_are_joined() {
        let (lines, r) = split(&[b"{\"a\"", b":1}\n{\"b\":", b"2}\n"], 100);
        assert_eq!(lines, ["{\"a\":1}", "{\"b\":2}"]);
        assert!(r.is_ok());
    }

    #[test]
    fn many_lines_in_one_chunk_and_blank_lines_and_crlf() {
        let (lines, _) = split(&[b"a\n\n  \nb\r\nc\n"], 100);
        assert_eq!(lines, ["a", "b", "c"]);
    }

    #[test]
    fn partial_line_at_eof_is_returned_by_finish() {
        let mut s = LineSplitter::new(100);
        let mut n = 0;
        s.push(b"a\nhalf", |_| n += 1).unwrap();
        assert_eq!(n, 1);
        assert_eq!(s.finish().as_deref(), Some(&b"half"[..]));
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn an_oversized_line_is_an_error_even_without_a_newline() {
        let (_, r) = split(&[b"0123456789", b"0123456789"], 15);
        assert_eq!(r, Err(LineTooLong { max: 15 }));
        let (lines, r) = split(&[b"ok\n0123456789012345678\n"], 15);
        assert_eq!(lines, ["ok"]);
        assert!(r.is_err());
    }

    #[test]
    fn a_line_exactly_at_the_bound_is_accepted() {
        let (lines, r) = split(&[b"01234", b"56789\n"], 10);
        assert_eq!(lines, ["0123456789"]);
        assert!(r.is_ok());
    }
}
