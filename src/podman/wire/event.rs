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
        let at = self
            .attributes
            .binary_search_by(|(k, _)| self.str(*k).cmp(key))
            .ok()?;
        let (_, v) = self.attributes.get(at)?;
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

    /// Decodes `text` (one JSON object) into this event, reusing its buffers. On an error the
    /// event holds nothing meaningful.
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
