//! One line of `GET /libpod/events` as sealwatch holds it: every string of the event decoded
//! into one buffer, and the fields as spans of it.
//!
//! Owns the event's decoding (its `Deserialize`, also used through `serde_json::Value` by the
//! general way in `wire`) and what is read straight off it (time, attributes, exit code). Never
//! interprets what an event means for the inventory.
//!
//! Why one buffer: a Podman 4.3 event line carries the container's labels merged into its
//! attributes, twenty or so strings. Decoded into owned strings and a map, each event cost as
//! many allocations and frees as strings, more than the rest of "one event in" together. Here
//! an event is one buffer and one list of spans, and the watcher decodes every line into the
//! same `Event`, so a line in steady state allocates nothing.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

/// Attribute keys Podman adds to an event's `Actor.Attributes` on top of the container's labels.
pub const RESERVED_ATTRIBUTES: &[&str] = &[
    "image",
    "name",
    "podId",
    "containerExitCode",
    "network",
    "error",
    "oomKilled",
    "execID",
];

/// Where one decoded string lies in the event's buffer. Lines are at most
/// `ndjson::MAX_LINE` (1 MiB) long, and decoding never makes a string longer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

/// One event.
///
/// Keys are taken from the libpod endpoint (`Type`, `Action`, `Actor`, `timeNano`), not the
/// Docker legacy lower-case ones, which newer Podman versions strip. Read like the JSON: a key
/// given twice counts with its last value, `Attributes: null` is empty, unknown keys are
/// ignored, and a value of the wrong type (a `null` `Type`, a string `time`) fails the event.
#[derive(Clone, Default)]
pub struct Event {
    /// Every decoded string of the event, one after the other.
    text: String,
    kind: Span,
    action: Span,
    id: Span,
    /// `HealthStatus`: only on `health_status` events (`starting`, `healthy`, `unhealthy`).
    health: Option<Span>,
    /// `Actor.Attributes`, sorted by key, each key once.
    attributes: Vec<(Span, Span)>,
    /// Unix seconds; only a fallback when `timeNano` is missing.
    time: i64,
    time_nano: i64,
}

impl Event {
    /// An event of `kind` and `action` about `id`, with no attributes and no time (for tests
    /// and tools; Podman's events are decoded).
    pub fn new(kind: &str, action: &str, id: &str) -> Self {
        let mut ev = Self::default();
        ev.kind = ev.push(kind);
        ev.action = ev.push(action);
        ev.id = ev.push(id);
        ev
    }

    /// The same event at `nanos` (unix nanoseconds, Podman's `timeNano`).
    pub fn at(mut self, nanos: i64) -> Self {
        self.time_nano = nanos;
        self
    }

    /// The same event at `secs` (unix seconds, Podman's `time`, read when `timeNano` is 0).
    pub fn with_time_secs(mut self, secs: i64) -> Self {
        self.time = secs;
        self
    }

    /// The same event with attribute `key` set to `value` (replacing one already there).
    pub fn with_attr(mut self, key: &str, value: &str) -> Self {
        let pair = (self.push(key), self.push(value));
        self.attributes.push(pair);
        self.settle_attributes();
        self
    }

    /// The same event with `HealthStatus` set.
    pub fn with_health(mut self, health: &str) -> Self {
        self.health = Some(self.push(health));
        self
    }

    /// `Type`: `container`, `pod`, `image`, ... (kept as sent, whatever it is).
    pub fn kind(&self) -> &str {
        self.str(self.kind)
    }

    /// `Action`: `create`, `start`, `died`, ... (kept as sent, whatever it is).
    pub fn action(&self) -> &str {
        self.str(self.action)
    }

    /// `Actor.ID`: the object's full ID (empty for events about no object).
    pub fn id(&self) -> &str {
        self.str(self.id)
    }

    /// `HealthStatus`, on `health_status` events.
    pub fn health_status(&self) -> Option<&str> {
        self.health.map(|s| self.str(s))
    }

    /// Podman's time of the event in unix nanoseconds (`timeNano`, else `time` in seconds).
    pub fn nanos(&self) -> i64 {
        if self.time_nano != 0 {
            self.time_nano
        } else {
            self.time.saturating_mul(1_000_000_000)
        }
    }

    /// An attribute, with Podman's empty string read as absent.
    pub fn attr(&self, key: &str) -> Option<&str> {
        // A dozen attributes at most on a real event: comparing lengths first rules out
        // nearly all of them without reading a byte of text.
        let text = self.text.as_bytes();
        let (_, v) = self.attributes.iter().find(|(k, _)| {
            k.end.saturating_sub(k.start) as usize == key.len()
                && text.get(k.start as usize..k.end as usize) == Some(key.as_bytes())
        })?;
        Some(self.str(*v)).filter(|v| !v.is_empty())
    }

    /// Every attribute as sent (empty values included), sorted by key.
    pub fn attributes(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.attributes
            .iter()
            .map(|(k, v)| (self.str(*k), self.str(*v)))
    }

    /// `containerExitCode` (on `died` events) as a number: surrounding spaces and leading zeros
    /// are dropped (` 137` and `00137` are 137), so one exit never becomes several label values.
    pub fn exit_code(&self) -> ExitCodeAttr {
        match self.attr("containerExitCode") {
            None => ExitCodeAttr::Absent,
            Some(v) => parse_exit_code(v).map_or(ExitCodeAttr::Unparsable, ExitCodeAttr::Code),
        }
    }

    /// Reads `text` into this event, reusing its buffers, when it is in the plain shape Podman
    /// writes: objects, strings without escapes or control characters, integers that fit
    /// `i64`. False for anything else (the caller then decodes the line the general way,
    /// through `serde_json::Value`, which decides); when true, the line is one `Value` accepts
    /// and the event is exactly what decoding it gives. Cheaper than serde_json's walk on
    /// Podman's lines, most of whose bytes are fields no one reads.
    pub(crate) fn scan_from(&mut self, text: &str) -> bool {
        self.clear();
        // One look at the whole line first: with no backslash and no control character
        // anywhere, every `"` delimits a string without escapes, and the line itself is the
        // event's buffer (the fields are spans of it, nothing is copied field by field).
        if u32::try_from(text.len()).is_err() || !plain_bytes(text.as_bytes()) {
            return false;
        }
        self.text.push_str(text);
        let mut scan = Scanner {
            text,
            at: 0,
            sorted: true,
        };
        if scan.event(self).is_none() || !scan.at_end() {
            return false;
        }
        if !scan.sorted {
            self.settle_attributes();
        }
        true
    }

    /// Decodes `text` (one JSON object) into this event with serde_json's streaming decode,
    /// reusing its buffers (the scanner's tests compare with it). On an error the event holds
    /// nothing meaningful.
    #[cfg(test)]
    pub(crate) fn decode_from(&mut self, text: &str) -> Result<(), serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        Fill(self).deserialize(&mut de)?;
        de.end()
    }

    /// Bytes the event's buffers hold on to (to drop a reused event that grew large).
    pub(crate) fn buffer_capacity(&self) -> usize {
        self.text.capacity() + self.attributes.capacity() * std::mem::size_of::<(Span, Span)>()
    }

    fn str(&self, s: Span) -> &str {
        self.text
            .get(s.start as usize..s.end as usize)
            .unwrap_or_default()
    }

    fn push(&mut self, s: &str) -> Span {
        let start = self.text.len();
        self.text.push_str(s);
        Span {
            start: u32::try_from(start).unwrap_or(u32::MAX),
            end: u32::try_from(self.text.len()).unwrap_or(u32::MAX),
        }
    }

    fn clear(&mut self) {
        self.text.clear();
        self.attributes.clear();
        self.kind = Span::default();
        self.action = Span::default();
        self.id = Span::default();
        self.health = None;
        self.time = 0;
        self.time_nano = 0;
    }

    /// Sorts the attributes by key and keeps the last value of a key given twice, as a map
    /// would. Go writes a map's keys sorted, so Podman's attributes already are: then this only
    /// looks.
    fn settle_attributes(&mut self) {
        let text = &self.text;
        let key = |s: Span| {
            text.get(s.start as usize..s.end as usize)
                .unwrap_or_default()
        };
        if self
            .attributes
            .windows(2)
            .all(|w| key(w[0].0) < key(w[1].0))
        {
            return;
        }
        // Stable: of equal keys, the one sent last stays last.
        self.attributes.sort_by(|a, b| key(a.0).cmp(key(b.0)));
        let mut kept: Vec<(Span, Span)> = Vec::with_capacity(self.attributes.len());
        for pair in self.attributes.drain(..) {
            match kept.last_mut() {
                Some(last) if key(last.0) == key(pair.0) => *last = pair,
                _ => kept.push(pair),
            }
        }
        self.attributes = kept;
    }
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.kind() == other.kind()
            && self.action() == other.action()
            && self.id() == other.id()
            && self.health_status() == other.health_status()
            && self.time == other.time
            && self.time_nano == other.time_nano
            && self.attributes().eq(other.attributes())
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("kind", &self.kind())
            .field("action", &self.action())
            .field("id", &self.id())
            .field("attributes", &self.attributes().collect::<Vec<_>>())
            .field("time", &self.time)
            .field("time_nano", &self.time_nano)
            .field("health_status", &self.health_status())
            .finish()
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let mut ev = Event::default();
        Fill(&mut ev).deserialize(de)?;
        Ok(ev)
    }
}

/// The keys of an event (and of its `Actor`) that sealwatch reads.
enum Key {
    Type,
    Action,
    Actor,
    Time,
    TimeNano,
    HealthStatus,
    Id,
    Attributes,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: serde::de::Error>(self, k: &str) -> Result<Key, E> {
                Ok(match k {
                    "Type" => Key::Type,
                    "Action" => Key::Action,
                    "Actor" => Key::Actor,
                    "time" => Key::Time,
                    "timeNano" => Key::TimeNano,
                    "HealthStatus" => Key::HealthStatus,
                    "ID" => Key::Id,
                    "Attributes" => Key::Attributes,
                    _ => Key::Other,
                })
            }
        }
        de.deserialize_identifier(KeyVisitor)
    }
}

/// Decodes an event object into an `Event`, clearing it first.
struct Fill<'e>(&'e mut Event);

impl<'de> DeserializeSeed<'de> for Fill<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Fill<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let ev = self.0;
        ev.clear();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Type => ev.kind = map.next_value_seed(Text(&mut ev.text))?,
                Key::Action => ev.action = map.next_value_seed(Text(&mut ev.text))?,
                Key::Actor => {
                    // A second `Actor` replaces the first, as a map would.
                    ev.id = Span::default();
                    ev.attributes.clear();
                    map.next_value_seed(ActorFill(&mut *ev))?;
                }
                Key::Time => ev.time = map.next_value()?,
                Key::TimeNano => ev.time_nano = map.next_value()?,
                Key::HealthStatus => ev.health = map.next_value_seed(OptionalText(&mut ev.text))?,
                Key::Id | Key::Attributes | Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        ev.settle_attributes();
        Ok(())
    }
}

/// Decodes `Actor` (`ID` and `Attributes`) into the event.
struct ActorFill<'e>(&'e mut Event);

impl<'de> DeserializeSeed<'de> for ActorFill<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ActorFill<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an Actor object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let ev = self.0;
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Id => ev.id = map.next_value_seed(Text(&mut ev.text))?,
                Key::Attributes => {
                    ev.attributes.clear();
                    map.next_value_seed(AttributesFill(&mut *ev))?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// Decodes `Attributes` (an object of strings, or `null` for none) into the event.
struct AttributesFill<'e>(&'e mut Event);

impl<'de> DeserializeSeed<'de> for AttributesFill<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for AttributesFill<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of strings or null")
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_map(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let ev = self.0;
        while let Some(k) = map.next_key_seed(Text(&mut ev.text))? {
            let v = map.next_value_seed(Text(&mut ev.text))?;
            ev.attributes.push((k, v));
        }
        Ok(())
    }
}

/// Decodes one JSON string onto the end of the buffer.
struct Text<'b>(&'b mut String);

impl<'de> DeserializeSeed<'de> for Text<'_> {
    type Value = Span;
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Span, D::Error> {
        de.deserialize_str(self)
    }
}

impl Visitor<'_> for Text<'_> {
    type Value = Span;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Span, E> {
        let start = self.0.len();
        self.0.push_str(s);
        let span = |n: usize| u32::try_from(n).map_err(|_| E::custom("event too long"));
        Ok(Span {
            start: span(start)?,
            end: span(self.0.len())?,
        })
    }
}

/// Decodes a JSON string or `null` onto the end of the buffer.
struct OptionalText<'b>(&'b mut String);

impl<'de> DeserializeSeed<'de> for OptionalText<'_> {
    type Value = Option<Span>;
    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Option<Span>, D::Error> {
        de.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for OptionalText<'_> {
    type Value = Option<Span>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or null")
    }
    fn visit_none<E>(self) -> Result<Option<Span>, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Option<Span>, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<Option<Span>, D::Error> {
        Text(self.0).deserialize(de).map(Some)
    }
}

/// A reader of the plain JSON subset Podman writes (see `Event::scan_from`), over a line that
/// `plain_bytes` passed. Every method answers `None` at the first byte outside that subset,
/// whether or not it is valid JSON. Strings are answered as spans of the line, which is also the
/// event's buffer.
struct Scanner<'t> {
    text: &'t str,
    at: usize,
    /// The attributes read so far came sorted by key, each key once (as Go writes a map).
    sorted: bool,
}

/// Objects nested deeper than this in a field no one reads are left to serde_json.
const SCAN_DEPTH: usize = 8;

/// Whether a line has no backslash and no control character (bytes below 0x20, JSON's
/// whitespace included): then the scanner may read it. Podman writes its lines without either
/// unless a string holds an escape. No early exit in a block, so that it runs a vector's width
/// of bytes at a time.
fn plain_bytes(bytes: &[u8]) -> bool {
    bytes.chunks(64).all(|block| {
        block.iter().fold(0u8, |bad, &b| {
            bad | u8::from(b < 0x20) | u8::from(b == b'\\')
        }) == 0
    })
}

/// Where the first `"` in `bytes` is. The first eight bytes inline (most keys of an event are
/// shorter: a call to a vectorised search costs more than the search), the rest vectorised.
fn quote_at(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let Some(first) = bytes.first_chunk::<8>() else {
        return bytes.iter().position(|&b| b == b'"');
    };
    let w = u64::from_le_bytes(*first) ^ (ONES * u64::from(b'"'));
    // Bytes equal to zero set their high bit here; borrows can also flag bytes after a true
    // match, never before one, so the lowest flag is exact.
    let found = w.wrapping_sub(ONES) & !w & HIGH;
    if found != 0 {
        return Some(found.trailing_zeros() as usize / 8);
    }
    memchr::memchr(b'"', bytes.get(8..)?).map(|i| i + 8)
}

/// `a < b` for attribute keys, deciding on the first byte when it differs (it nearly always
/// does) without a call to compare memory.
fn key_less(a: &str, b: &str) -> bool {
    match (a.as_bytes().first(), b.as_bytes().first()) {
        (Some(x), Some(y)) if x != y => x < y,
        _ => a < b,
    }
}

impl<'t> Scanner<'t> {
    /// The next byte after JSON whitespace (only spaces get this far: `plain_bytes`).
    #[inline(always)]
    fn peek(&mut self) -> Option<u8> {
        let bytes = self.text.as_bytes();
        while let Some(b' ') = bytes.get(self.at) {
            self.at += 1;
        }
        bytes.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }

    /// After an object's member: true if another follows, false at the object's end.
    fn more(&mut self) -> Option<bool> {
        match self.peek()? {
            b',' => {
                self.at += 1;
                Some(true)
            }
            b'}' => {
                self.at += 1;
                Some(false)
            }
            _ => None,
        }
    }

    /// Opens an object: true if it has members, false if it is `{}` (and now closed).
    fn open(&mut self) -> Option<bool> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(false);
        }
        Some(true)
    }

    /// A string, as the span of its contents: the line has no backslash (`plain_bytes`), so
    /// the next quote ends it and there is nothing to decode. Inlined: two dozen a line.
    #[inline(always)]
    fn string(&mut self) -> Option<Span> {
        self.eat(b'"')?;
        let start = self.at;
        let len = quote_at(self.text.as_bytes().get(start..)?)?;
        self.at = start + len + 1;
        // Lines are shorter than `u32::MAX` (`scan_from`).
        Some(Span {
            start: u32::try_from(start).ok()?,
            end: u32::try_from(start + len).ok()?,
        })
    }

    /// The text of a span of the line (cut at ASCII quotes of a `str`: always a character
    /// boundary).
    fn str(&self, s: Span) -> Option<&'t str> {
        self.text.get(s.start as usize..s.end as usize)
    }

    /// An integer in JSON's form (no fraction, no exponent, no leading zero) that fits `i64`.
    fn integer(&mut self) -> Option<i64> {
        self.peek()?;
        let bytes = self.text.as_bytes();
        let negative = bytes.get(self.at) == Some(&b'-');
        if negative {
            self.at += 1;
        }
        let digits = self.at;
        // Up to 19 digits cannot overflow a u64 (10^19 < 2^64); 20 or more never fit an i64.
        let mut magnitude = 0u64;
        while let Some(&d) = bytes.get(self.at).filter(|d| d.is_ascii_digit()) {
            magnitude = magnitude.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
            self.at += 1;
        }
        let n = self.at - digits;
        if n == 0 || (n > 1 && bytes.get(digits) == Some(&b'0')) {
            return None;
        }
        if matches!(bytes.get(self.at), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        if n > 19 {
            return None;
        }
        if negative {
            0i64.checked_sub_unsigned(magnitude)
        } else {
            i64::try_from(magnitude).ok()
        }
    }

    /// Skips a value no one reads: a string, an integer or an object of those.
    fn skip(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'-' | b'0'..=b'9' => self.integer().map(drop),
            b'{' if depth < SCAN_DEPTH => {
                if self.open()? {
                    loop {
                        self.string()?;
                        self.eat(b':')?;
                        self.skip(depth + 1)?;
                        if !self.more()? {
                            break;
                        }
                    }
                }
                Some(())
            }
            _ => None,
        }
    }

    fn event(&mut self, ev: &mut Event) -> Option<()> {
        if !self.open()? {
            return Some(());
        }
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            match self.str(key)? {
                "Type" => ev.kind = self.string()?,
                "Action" => ev.action = self.string()?,
                "Actor" => {
                    // A second `Actor` replaces the first, as in `decode_from`.
                    ev.id = Span::default();
                    ev.attributes.clear();
                    self.sorted = true;
                    self.actor(ev)?;
                }
                "time" => ev.time = self.integer()?,
                "timeNano" => ev.time_nano = self.integer()?,
                "HealthStatus" => ev.health = Some(self.string()?),
                _ => self.skip(0)?,
            }
            if !self.more()? {
                return Some(());
            }
        }
    }

    fn actor(&mut self, ev: &mut Event) -> Option<()> {
        if !self.open()? {
            return Some(());
        }
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            match self.str(key)? {
                "ID" => ev.id = self.string()?,
                "Attributes" => {
                    ev.attributes.clear();
                    self.sorted = true;
                    if self.open()? {
                        let mut last: Option<&str> = None;
                        loop {
                            let k = self.string()?;
                            self.eat(b':')?;
                            let v = self.string()?;
                            let key = self.str(k)?;
                            if let Some(last) = last {
                                self.sorted &= key_less(last, key);
                            }
                            last = Some(key);
                            ev.attributes.push((k, v));
                            if !self.more()? {
                                break;
                            }
                        }
                    }
                }
                _ => self.skip(0)?,
            }
            if !self.more()? {
                return Some(());
            }
        }
    }
}

/// What an event's `containerExitCode` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCodeAttr {
    Absent,
    /// A process exit status, 0 to 255.
    Code(u8),
    /// Anything else (`abc`, `-1`, `256`, `1e3`): counted, never a label value.
    Unparsable,
}

/// An exit status is 0 to 255 in decimal digits, with optional surrounding whitespace.
fn parse_exit_code(v: &str) -> Option<u8> {
    let v = v.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = v.trim_start_matches('0');
    if digits.len() > 3 {
        return None;
    }
    if digits.is_empty() {
        return Some(0);
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real_lines() -> Vec<&'static str> {
        [
            include_str!("../../../tests/fixtures/events.ndjson"),
            include_str!("../../../tests/fixtures/5.4.2/events.ndjson"),
            include_str!("../../../tests/fixtures/5.4.2/events-rotation-live-20k.ndjson"),
        ]
        .iter()
        .flat_map(|f| f.lines())
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect()
    }

    /// The scanner answers every real line without escapes, with what serde_json decodes from
    /// it, and leaves the lines with escapes to serde_json.
    #[test]
    fn the_scanner_reads_every_real_line_as_serde_json_does() {
        let (mut scanned, mut decoded) = (Event::default(), Event::default());
        let lines = real_lines();
        let mut escaped = 0;
        for line in &lines {
            if line.contains('\\') {
                escaped += 1;
                assert!(!scanned.scan_from(line), "{line}");
                continue;
            }
            assert!(scanned.scan_from(line), "{line}");
            decoded.decode_from(line).unwrap();
            assert_eq!(scanned, decoded, "{line}");
        }
        assert!(
            lines.len() > 600 && escaped < 20,
            "{} {escaped}",
            lines.len()
        );
    }

    /// Whenever the scanner answers on a mangled line (a byte deleted, or one of JSON's
    /// structural bytes, escapes, literals or number parts put in, at every position of real
    /// lines), serde_json decodes the same event from it: the scanner never accepts what
    /// serde_json rejects, nor reads a field differently.
    #[test]
    fn on_mangled_lines_the_scanner_agrees_with_serde_json_or_steps_aside() {
        let inserts = [
            "\"",
            "\\",
            "{",
            "}",
            "[",
            ",",
            ":",
            " ",
            "\t",
            "0",
            "-",
            ".",
            "e",
            "null",
            "1.5",
            "\u{1}",
            "é",
            "\\n",
            "{}",
            "\"x\":1,",
            "\"Type\":\"pod\",",
            "\"Actor\":{\"ID\":\"b\"},",
            "\"Attributes\":{\"k\":\"v\"},",
        ];
        let (mut scanned, mut decoded) = (Event::default(), Event::default());
        let (mut answered, mut stepped_aside) = (0, 0);
        for line in real_lines().iter().step_by(37) {
            let mut variants: Vec<String> = Vec::new();
            for (at, _) in line.char_indices() {
                let mut cut = line.to_string();
                cut.remove(at);
                variants.push(cut);
                for ins in inserts {
                    let mut v = line.to_string();
                    v.insert_str(at, ins);
                    variants.push(v);
                }
            }
            for v in &variants {
                if scanned.scan_from(v) {
                    answered += 1;
                    assert!(decoded.decode_from(v).is_ok(), "serde_json rejects {v}");
                    assert_eq!(scanned, decoded, "{v}");
                } else {
                    stepped_aside += 1;
                }
            }
        }
        assert!(
            answered > 1_000 && stepped_aside > 1_000,
            "{answered} {stepped_aside}"
        );
    }

    /// `plain_bytes` refuses a backslash or a control character at every offset and block
    /// position, as a plain byte search does; `quote_at` finds the first quote at every
    /// offset and word position; `key_less` orders as `str` does.
    #[test]
    fn plain_bytes_finds_every_special_byte_and_keys_order_as_str() {
        let plain = |b: &[u8]| !b.iter().any(|&c| c == b'\\' || c < 0x20);
        for len in 0..140 {
            for at in 0..=len {
                for special in [b'"', b'\\', 0x00, 0x1f, b'\n', b' ', 0x7f, 0xc3] {
                    let mut bytes: Vec<u8> =
                        (0..len).map(|i| b"a ~!\x7f\xc3\xa9#"[i % 8]).collect();
                    if at < len {
                        bytes[at] = special;
                    }
                    assert_eq!(plain_bytes(&bytes), plain(&bytes), "{bytes:?}");
                    let quote = bytes.iter().position(|&c| c == b'"');
                    assert_eq!(quote_at(&bytes), quote, "{bytes:?}");
                }
            }
        }
        let keys = ["", "a", "ab", "b", "B", "podId", "name", "n", "\u{e9}", "z"];
        for a in keys {
            for b in keys {
                assert_eq!(key_less(a, b), a < b, "{a:?} {b:?}");
            }
        }
    }

    /// A key given twice counts with its last value, in attributes too, and attributes come
    /// out sorted by key whatever their order on the line: as a map reads them.
    #[test]
    fn repeated_keys_keep_the_last_value_and_attributes_are_sorted() {
        let line = r#"{"Type":"container","Action":"start","Action":"died","Actor":{"ID":"a","Attributes":{"z":"1","b":"2","z":"3"}},"Actor":{"ID":"b","Attributes":{"k":"v","a":""}}}"#;
        for scan in [true, false] {
            let mut ev = Event::default();
            if scan {
                assert!(ev.scan_from(line));
            } else {
                ev.decode_from(line).unwrap();
            }
            assert_eq!((ev.action(), ev.id()), ("died", "b"));
            assert_eq!(ev.attributes().collect::<Vec<_>>(), [("a", ""), ("k", "v")]);
            assert_eq!(ev.attr("a"), None, "an empty value reads as absent");
        }
        let mut ev = Event::default();
        ev.decode_from(r#"{"Actor":{"Attributes":{"z":"1","b":"2","z":"3"}}}"#)
            .unwrap();
        assert_eq!(
            ev.attributes().collect::<Vec<_>>(),
            [("b", "2"), ("z", "3")]
        );
    }

    /// A reused event keeps nothing of the line before: fields the new line lacks are empty.
    #[test]
    fn a_reused_event_forgets_the_previous_line() {
        let mut ev = Event::default();
        assert!(ev.scan_from(r#"{"Type":"container","Action":"health_status","HealthStatus":"healthy","Actor":{"ID":"a","Attributes":{"k":"v"}},"timeNano":5}"#));
        assert!(ev.scan_from(r#"{"Type":"pod","Action":"create","time":7}"#));
        assert_eq!(ev, Event::new("pod", "create", "").at(0).with_time_secs(7));
        ev.decode_from(
            r#"{"Type":"container","Action":"start","Actor":{"ID":"c","Attributes":{"x":"y"}}}"#,
        )
        .unwrap();
        assert_eq!(
            ev,
            Event::new("container", "start", "c").with_attr("x", "y")
        );
        assert_eq!((ev.health_status(), ev.nanos()), (None, 0));
    }

    /// The builders make what decoding the same JSON makes, and `with_attr` replaces a key.
    #[test]
    fn builders_match_decoded_events() {
        let built = Event::new("container", "died", "abc")
            .at(42)
            .with_attr("name", "x")
            .with_attr("containerExitCode", "1")
            .with_attr("name", "y")
            .with_health("healthy");
        let decoded: Event = serde_json::from_value(serde_json::json!({
            "Type": "container", "Action": "died", "timeNano": 42, "HealthStatus": "healthy",
            "Actor": {"ID": "abc", "Attributes": {"name": "y", "containerExitCode": "1"}}
        }))
        .unwrap();
        assert_eq!(built, decoded);
        assert_eq!(built.exit_code(), ExitCodeAttr::Code(1));
    }
}
