//! One scrape's body as parts: text written for this scrape, interleaved with segments of text
//! kept from earlier scrapes (the series of containers that did not change), and its gzip
//! encoding.
//!
//! Owns the assembly of those parts into the text a client reads, without copying a kept segment
//! (`chunks`), and into one gzip member (`gzip`): every segment is compressed on its own into raw
//! deflate blocks that end byte-aligned and refer to nothing before them, so compressed segments
//! can be laid side by side, closed with an empty final block and the CRC-32 combined from the
//! segments' own (as pigz joins blocks compressed in parallel). A kept segment is compressed
//! once, by the first gzip scrape that needs it, and then reused, so a large scrape of a mostly
//! unchanged inventory compresses only what changed. Never decides what the text says.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress, Status};

/// Text kept between scrapes, with its compressed form once a gzip scrape needed it. Both are
/// held at their exact length: kept for many scrapes, the room their builders left to grow into
/// (a quarter of the text, a third of the compressed form) was about 3 MB at 10,000 containers.
/// Writers build them in reused buffers and copy them out (`copied`), so a kept block is
/// allocated once, with no room cut off beside it for other blocks to fill.
#[derive(Debug, Default)]
pub struct Segment {
    text: Box<str>,
    deflated: OnceLock<Deflated>,
}

impl Segment {
    pub fn new(text: String) -> Self {
        Self {
            text: text.into_boxed_str(),
            deflated: OnceLock::new(),
        }
    }

    /// A segment of a copy of `text`, allocated once at its length.
    pub fn copied(text: &str) -> Self {
        Self {
            text: Box::from(text),
            deflated: OnceLock::new(),
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    fn deflated(&self, compressor: &mut Compressor) -> std::io::Result<&Deflated> {
        if let Some(d) = self.deflated.get() {
            return Ok(d);
        }
        let d = compressor.deflate(self.text.as_bytes())?;
        Ok(self.deflated.get_or_init(|| d))
    }
}

/// A segment compressed on its own: raw deflate blocks ending on a byte boundary (a sync
/// flush), none of them final, and the CRC-32 of the text.
#[derive(Debug)]
struct Deflated {
    bytes: Box<[u8]>,
    crc: crc32fast::Hasher,
}

/// A zlib compressor reused for every segment of one gzip encoding: resetting it forgets the
/// previous segment (nothing may refer across segments) but keeps its buffers. Each segment is
/// compressed into `out`, also reused, and copied out at its length (see `Segment`).
struct Compressor {
    zlib: Compress,
    out: Vec<u8>,
}

impl Compressor {
    fn new() -> Self {
        Self {
            zlib: Compress::new(Compression::fast(), false),
            out: Vec::new(),
        }
    }

    fn deflate(&mut self, text: &[u8]) -> std::io::Result<Deflated> {
        self.zlib.reset();
        let bytes = &mut self.out;
        bytes.clear();
        // Fast-level deflate of text never grows it much; the slack covers the flush markers.
        bytes.reserve(text.len() / 3 + 64);
        let mut input = text;
        loop {
            if bytes.capacity() - bytes.len() < 64 {
                bytes.reserve(bytes.capacity().max(4096));
            }
            let before = self.zlib.total_in();
            let status = self
                .zlib
                .compress_vec(input, bytes, FlushCompress::Sync)
                .map_err(std::io::Error::other)?;
            let used = usize::try_from(self.zlib.total_in() - before).unwrap_or(input.len());
            input = input.get(used..).unwrap_or_default();
            // Done once every byte went in and the flush fit: output room was left over.
            if input.is_empty() && bytes.len() < bytes.capacity() {
                break;
            }
            if status == Status::BufError && used == 0 && bytes.len() < bytes.capacity() {
                return Err(std::io::Error::other("deflate made no progress"));
            }
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(text);
        Ok(Deflated {
            bytes: Box::from(&bytes[..]),
            crc,
        })
    }
}

/// A scrape's body: `text`, with kept segments inserted at byte offsets of it.
#[derive(Debug, Default)]
pub struct Body {
    text: String,
    /// (offset in `text`, segment), offsets non-decreasing.
    kept: Vec<(usize, Arc<Segment>)>,
}

impl Body {
    pub fn new(text: String) -> Self {
        Self {
            text,
            kept: Vec::new(),
        }
    }

    /// The text written so far (kept segments not included).
    pub fn text_mut(&mut self) -> &mut String {
        &mut self.text
    }

    /// Appends a kept segment after the text written so far; an empty one is left out.
    pub fn keep(&mut self, segment: &Arc<Segment>) {
        if !segment.text.is_empty() {
            self.kept.push((self.text.len(), segment.clone()));
        }
    }

    /// The kept segments' addresses, in order (tests tell reuse by them).
    #[cfg(test)]
    pub fn kept_segments(&self) -> Vec<*const Segment> {
        self.kept.iter().map(|(_, s)| Arc::as_ptr(s)).collect()
    }

    /// Length of the whole text in bytes.
    pub fn len(&self) -> usize {
        self.text.len() + self.kept.iter().map(|(_, s)| s.text.len()).sum::<usize>()
    }

    /// The parts in order: written text and kept segments.
    fn parts(&self) -> impl Iterator<Item = Part<'_>> {
        let mut at = 0;
        let mut kept = self.kept.iter();
        let mut pending: Option<&Arc<Segment>> = None;
        std::iter::from_fn(move || loop {
            if let Some(s) = pending.take() {
                return Some(Part::Kept(s));
            }
            match kept.next() {
                Some((offset, s)) => {
                    pending = Some(s);
                    if *offset > at {
                        let part = Part::Written(at..*offset);
                        at = *offset;
                        return Some(part);
                    }
                }
                None if at < self.text.len() => {
                    let part = Part::Written(at..self.text.len());
                    at = self.text.len();
                    return Some(part);
                }
                None => return None,
            }
        })
    }

    /// The whole text as one string (for tests and tools; a scrape uses `chunks`).
    pub fn into_string(self) -> String {
        let mut out = String::with_capacity(self.len());
        for part in self.parts() {
            match part {
                Part::Written(r) => out.push_str(&self.text[r]),
                Part::Kept(s) => out.push_str(&s.text),
            }
        }
        out
    }

    /// The text as shared chunks, in order: kept segments are handed out as they are held.
    pub fn into_chunks(self) -> Vec<Bytes> {
        enum Owned {
            Written(std::ops::Range<usize>),
            Kept(Arc<Segment>),
        }
        let parts: Vec<Owned> = self
            .parts()
            .map(|p| match p {
                Part::Written(r) => Owned::Written(r),
                Part::Kept(s) => Owned::Kept(Arc::clone(s)),
            })
            .collect();
        let text = Bytes::from(self.text);
        parts
            .into_iter()
            .map(|p| match p {
                Owned::Written(r) => text.slice(r),
                Owned::Kept(s) => Bytes::from_owner(SegmentText(s)),
            })
            .collect()
    }

    /// The body as one gzip member; kept segments are compressed once and reused.
    pub fn gzip(&self) -> std::io::Result<Vec<u8>> {
        let mut compressor = Compressor::new();
        // Header: magic, deflate, no flags, no time, no extra flags, unknown OS.
        let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
        let mut crc = crc32fast::Hasher::new();
        for part in self.parts() {
            match part {
                Part::Written(r) => {
                    let d = compressor.deflate(&self.text.as_bytes()[r])?;
                    out.extend_from_slice(&d.bytes);
                    crc.combine(&d.crc);
                }
                Part::Kept(s) => {
                    let d = s.deflated(&mut compressor)?;
                    out.extend_from_slice(&d.bytes);
                    crc.combine(&d.crc);
                }
            }
        }
        // An empty final block with fixed codes: BFINAL=1, BTYPE=01, end-of-block.
        out.extend_from_slice(&[0x03, 0x00]);
        out.extend_from_slice(&crc.finalize().to_le_bytes());
        // ISIZE: the length modulo 2^32, as RFC 1952 defines it.
        out.extend_from_slice(&((self.len() as u64 & 0xffff_ffff) as u32).to_le_bytes());
        Ok(out)
    }
}

enum Part<'a> {
    Written(std::ops::Range<usize>),
    Kept(&'a Arc<Segment>),
}

/// A kept segment's text as the owner of a `Bytes`.
struct SegmentText(Arc<Segment>);

impl AsRef<[u8]> for SegmentText {
    fn as_ref(&self) -> &[u8] {
        self.0.text.as_bytes()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::io::Read;

    /// The text inside a gzip member (for the tests of every body encoder).
    pub(in crate::metrics) fn gunzip(data: &[u8]) -> String {
        let mut out = String::new();
        flate2::read::GzDecoder::new(data)
            .read_to_string(&mut out)
            .expect("valid gzip");
        out
    }

    fn body() -> Body {
        let kept = Arc::new(Segment::new("kept one\n".repeat(1000)));
        let mut b = Body::new(String::new());
        b.keep(&kept);
        b.text_mut().push_str("# written\n");
        b.keep(&Arc::new(Segment::new(String::new())));
        b.keep(&Arc::new(Segment::new("second\n".into())));
        b.keep(&kept);
        b.text_mut().push_str("tail\n");
        b
    }

    /// Written text and kept segments come out in order, as text, as chunks and through gzip.
    #[test]
    fn parts_are_assembled_in_order_in_every_encoding() {
        let want = format!(
            "{}# written\nsecond\n{}tail\n",
            "kept one\n".repeat(1000),
            "kept one\n".repeat(1000)
        );
        assert_eq!(body().len(), want.len());
        let chunks: Vec<u8> = body().into_chunks().concat();
        assert_eq!(String::from_utf8(chunks).unwrap(), want);
        assert_eq!(gunzip(&body().gzip().unwrap()), want);
        assert_eq!(body().into_string(), want);
    }

    /// A kept segment compresses once: a second gzip of a body reuses its deflate blocks, and
    /// the stitched member is read by a strict single-member decoder.
    #[test]
    fn kept_segments_compress_once_and_stitch_into_one_member() {
        let kept = Arc::new(Segment::new("x".repeat(100_000)));
        let mut b = Body::new("a".into());
        b.keep(&kept);
        let first = b.gzip().unwrap();
        let ptr = kept.deflated.get().unwrap().bytes.as_ptr();
        let second = b.gzip().unwrap();
        assert_eq!(first, second);
        assert_eq!(kept.deflated.get().unwrap().bytes.as_ptr(), ptr);
        let mut d = flate2::read::GzDecoder::new(&first[..]);
        let mut out = Vec::new();
        d.read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 100_001);
        assert!(first.len() < 2_000, "{} bytes", first.len());
    }

    /// An empty body is a valid, empty gzip member.
    #[test]
    fn an_empty_body_gzips_to_an_empty_member() {
        assert_eq!(gunzip(&Body::default().gzip().unwrap()), "");
    }
}
