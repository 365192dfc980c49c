//! Serde types for what Podman's libpod API sends: events, the container and pod lists, version.
//!
//! Owns the tolerant decoding of Podman 4.x and 5.x shapes: every field that some version omits is
//! optional or defaulted, and unknown `Type`/`Action` values are kept as strings, never errors.
//! Never interprets what a field means for the inventory; that is `inventory`'s job.

use std::collections::BTreeMap;

use serde::Deserialize;

mod event;
mod objects;
pub use event::{Event, ExitCodeAttr, RESERVED_ATTRIBUTES};
pub use objects::{Info, ListImage, ListNetwork, ListVolume};

/// The error object Podman writes inside a 200 event stream (bad `since`, unknown filter key, the
/// `none` backend), and as the body of non-2xx answers.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ApiError {
    #[serde(default)]
    pub cause: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub response: u16,
}

/// One entry of `GET /libpod/containers/json?all=true`.
#[derive(Debug, Clone, Deserialize)]
pub struct ListContainer {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Names", default, deserialize_with = "null_as_default")]
    pub names: Vec<String>,
    #[serde(rename = "Image", default)]
    pub image: String,
    #[serde(rename = "State", default)]
    pub state: String,
    /// The health status (`healthy`, `unhealthy`, `starting`) or empty: not Docker's status text.
    #[serde(rename = "Status", default)]
    pub status: String,
    #[serde(rename = "Pid", default)]
    pub pid: i64,
    #[serde(rename = "Pod", default)]
    pub pod: String,
    #[serde(rename = "PodName", default)]
    pub pod_name: String,
    #[serde(rename = "IsInfra", default)]
    pub is_infra: bool,
    #[serde(rename = "Labels", default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    /// RFC3339 string in libpod (a unix integer only in Docker's compat API; tolerated).
    #[serde(rename = "Created", default)]
    pub created: serde_json::Value,
    /// Unix seconds, `-62135596800` when never set.
    #[serde(rename = "StartedAt", default)]
    pub started_at: i64,
    #[serde(rename = "ExitedAt", default)]
    pub exited_at: i64,
    #[serde(rename = "ExitCode", default)]
    pub exit_code: i64,
    /// Podman's own restart count (restarts by the restart policy); listed from Podman 4.6.
    #[serde(rename = "Restarts", default)]
    pub restarts: Option<u64>,
}

/// One entry of `GET /libpod/pods/json`.
#[derive(Debug, Clone, Deserialize)]
pub struct ListPod {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(rename = "Status", default)]
    pub status: String,
    #[serde(rename = "InfraId", default)]
    pub infra_id: String,
    #[serde(rename = "Labels", default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, String>,
    #[serde(rename = "Created", default)]
    pub created: serde_json::Value,
}

/// `GET /libpod/version` (the Docker-shaped answer).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Version {
    #[serde(rename = "Version", default)]
    pub version: String,
    #[serde(rename = "Components", default, deserialize_with = "null_as_default")]
    pub components: Vec<VersionComponent>,
    #[serde(rename = "ApiVersion", default)]
    pub api_version: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct VersionComponent {
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(rename = "Details", default)]
    pub details: serde_json::Value,
}

impl Version {
    /// The libpod API version (`Components[Podman Engine].Details.APIVersion`), else the version.
    pub fn libpod_api_version(&self) -> String {
        self.components
            .iter()
            .find(|c| c.name == "Podman Engine")
            .and_then(|c| c.details.get("APIVersion"))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| self.version.clone())
    }
}

/// Podman writes `null` for empty maps and lists in some versions; read it as empty.
fn null_as_default<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}

/// What one line of the event stream turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    Event(Box<Event>),
    /// An error object inside a 200 stream: Podman ends the stream after it.
    Error(ApiError),
}

/// Why a line of the event stream could not be used.
#[derive(Debug, thiserror::Error)]
#[error("undecodable event line ({len} bytes): {source}")]
pub struct DecodeError {
    len: usize,
    #[source]
    source: serde_json::Error,
}

/// Decodes one NDJSON line: an event, or the error object Podman sends inside a 200 stream
/// (recognised by `cause`/`response` and no `Type`).
///
/// One pass straight into the typed event for every line Podman really sends; anything unusual
/// (an error object, a line that does not decode, duplicate keys, escaped surrogates, bytes that
/// are not UTF-8) is decoded again the general way, through `serde_json::Value`, so which lines
/// are events, which are errors and which are skipped as undecodable is exactly what that way
/// decides, and its error message is the one reported.
pub fn decode_stream_line(line: &[u8]) -> Result<StreamItem, DecodeError> {
    match decode_event_directly(line) {
        Some(event) => Ok(StreamItem::Event(Box::new(event))),
        None => decode_via_value(line),
    }
}

/// The fields of an event line, decoded in one pass; `None` when the line needs the general
/// way: this answers only when the general way would give the same event.
pub(crate) fn decode_event_directly(line: &[u8]) -> Option<Event> {
    let mut ev = Event::default();
    decode_event_into(line, &mut ev).then_some(ev)
}

/// `decode_event_directly` into an event the caller reuses (the watcher decodes every line into
/// the same one, so a line in steady state allocates nothing). False when the line needs the
/// general way; `ev` then holds nothing meaningful.
pub(crate) fn decode_event_into(line: &[u8], ev: &mut Event) -> bool {
    // Only objects are events here (the general way says what anything else is).
    if line.trim_ascii_start().first() != Some(&b'{') {
        return false;
    }
    // Podman's plain lines (objects, strings without escapes, integers) are read by a scanner
    // of that JSON subset, which accepts only what the general way accepts and reads it the
    // same way. Anything else goes the general way: serde_json's streaming decode would accept
    // some lines `Value` rejects (a number too large for a float in a field no one reads), so
    // it is not a shortcut.
    let Ok(text) = std::str::from_utf8(line) else {
        return false;
    };
    ev.scan_from(text) && !ev.kind().is_empty() && !ev.action().is_empty()
}

/// The general way: the line as a `serde_json::Value`, then an error object or an event.
pub(crate) fn decode_via_value(line: &[u8]) -> Result<StreamItem, DecodeError> {
    let value: serde_json::Value = serde_json::from_slice(line).map_err(|source| DecodeError {
        len: line.len(),
        source,
    })?;
    let is_error = value.get("Type").is_none()
        && (value.get("cause").is_some() || value.get("response").is_some());
    if is_error {
        let err = serde_json::from_value(value).map_err(|source| DecodeError {
            len: line.len(),
            source,
        })?;
        return Ok(StreamItem::Error(err));
    }
    let event: Event = serde_json::from_value(value).map_err(|source| DecodeError {
        len: line.len(),
        source,
    })?;
    if event.kind().is_empty() || event.action().is_empty() {
        let source = serde::de::Error::custom("object has no Type or Action");
        return Err(DecodeError {
            len: line.len(),
            source,
        });
    }
    Ok(StreamItem::Event(Box::new(event)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_real_4x_died_event() {
        let line = br#"{"status":"died","id":"abc","from":"img","Type":"container","Action":"died","Actor":{"ID":"abc","Attributes":{"containerExitCode":"137","name":"x","podId":""}},"scope":"local","time":1795976183,"timeNano":1795976183237049905}"#;
        let StreamItem::Event(e) = decode_stream_line(line).unwrap() else {
            panic!("not an event")
        };
        assert_eq!(e.action(), "died");
        assert_eq!(e.attr("containerExitCode"), Some("137"));
        assert_eq!(e.attr("podId"), None, "empty podId reads as absent");
        assert_eq!(e.nanos(), 1795976183237049905);
    }

    #[test]
    fn exit_codes_are_normalised_or_unparsable() {
        let ev = |v: &str| {
            let line =
                br#"{"Type":"container","Action":"died","Actor":{"ID":"a","Attributes":{}}}"#;
            let StreamItem::Event(e) = decode_stream_line(line).unwrap() else {
                panic!("not an event")
            };
            e.with_attr("containerExitCode", v).exit_code()
        };
        for (v, code) in [
            ("137", 137),
            (" 137", 137),
            ("00137", 137),
            ("0", 0),
            ("000", 0),
            ("255\n", 255),
        ] {
            assert_eq!(ev(v), ExitCodeAttr::Code(code), "{v:?}");
        }
        for v in [
            "abc",
            "-1",
            "+1",
            "256",
            "1e3",
            "13 7",
            "0x10",
            "99999999999999999999",
        ] {
            assert_eq!(ev(v), ExitCodeAttr::Unparsable, "{v:?}");
        }
        assert_eq!(ev(""), ExitCodeAttr::Absent);
    }

    #[test]
    fn decodes_a_5x_event_without_exit_code_or_legacy_keys() {
        let line = br#"{"Type":"container","Action":"start","Actor":{"ID":"abc","Attributes":{"name":"x"}},"time":5,"timeNano":5000000001}"#;
        let StreamItem::Event(e) = decode_stream_line(line).unwrap() else {
            panic!("not an event")
        };
        assert_eq!(e.attr("containerExitCode"), None);
    }

    #[test]
    fn recognises_an_error_object_inside_a_200_stream() {
        let line = br#"{"cause":"bogus is an invalid filter","message":"failed to parse filters: bogus is an invalid filter","response":500}"#;
        let item = decode_stream_line(line).unwrap();
        assert!(matches!(
            item,
            StreamItem::Error(ApiError { response: 500, .. })
        ));
    }

    /// The one-pass decode answers only when the general way (through `Value`) would decode
    /// the same event: it answers on every real line, and on hostile ones (duplicate keys,
    /// arrays, nulls, surrogates, bytes that are not UTF-8, error objects) it agrees or steps
    /// aside, so which lines count as events, errors and undecodable is unchanged.
    #[test]
    fn the_direct_decode_agrees_with_the_general_way_or_steps_aside() {
        let real = [
            include_str!("../../tests/fixtures/events.ndjson"),
            include_str!("../../tests/fixtures/5.4.2/events.ndjson"),
            include_str!("../../tests/fixtures/5.4.2/events-rotation-live-20k.ndjson"),
        ];
        let mut direct = 0;
        for line in real.iter().flat_map(|f| f.lines()) {
            let line = line.trim().as_bytes();
            if line.is_empty() {
                continue;
            }
            let general = decode_via_value(line).unwrap();
            match decode_event_directly(line) {
                Some(fast) => {
                    assert_eq!(StreamItem::Event(Box::new(fast)), general);
                    direct += 1;
                }
                // Only lines with escapes (labels with quotes, `<`, `>`) take the general way.
                None => assert!(line.contains(&b'\\'), "{}", String::from_utf8_lossy(line)),
            }
        }
        assert!(direct > 600, "{direct}");
        let hostile: &[&[u8]] = &[
            br#"{"Type":"container","Type":"pod","Action":"create","Actor":{"ID":"a"}}"#,
            br#"{"Type":"container","Action":"start","Actor":{"ID":"a","ID":"b"}}"#,
            br#"{"Type":"container","Action":"start","Actor":{"ID":"a","Attributes":{"k":"1","k":"2"}}}"#,
            br#"["container","start"]"#,
            br#"{"Type":null,"Action":"start","cause":"x"}"#,
            br#"{"Type":5,"Action":"start"}"#,
            br#"{"Type":"container","Action":null}"#,
            br#"{"Type":"container","Action":"start","Actor":null}"#,
            br#"{"Type":"container","Action":"start","Actor":{"ID":"a","Attributes":null},"HealthStatus":null}"#,
            br#"{"Type":"container","Action":"start","status":"\ud800"}"#,
            br#"{"Type":"container","Action":"start","status":"\uD83D\uDE00"}"#,
            br#"{"Type":"container","Action":"start","Actor":{"ID":"a\u00e9\n"}}"#,
            b"{\"Type\":\"container\",\"Action\":\"start\",\"status\":\"\xff\"}",
            br#"{"Type":"","Action":"start"}"#,
            br#"{"Action":"start"}"#,
            br#"{"cause":"c","message":"m","response":500}"#,
            br#"{"cause":"c","response":70000}"#,
            br#"{"Type":"container","Action":"start","cause":5}"#,
            br#"{"Type":"container","Action":"start","time":1.5}"#,
            br#"{"Type":"container","Action":"start","timeNano":99999999999999999999}"#,
            br#"{"Type":"container","Action":"start","scope":{"deep":[1,2,{"x":null}]}}"#,
            // A float too large for an f64 in a field no one reads: `Value` rejects the line.
            br#"{"Type":"container","Action":"start","x":179590e91398849917066}"#,
            br#"{"Type":"container","Action":"start","x":{"y":1e999}}"#,
            br#"  {"Type":"container","Action":"start"}  "#,
            br#"{"Type":"container","Action":"start"} trailing"#,
            b"\xef\xbb\xbf{\"Type\":\"container\",\"Action\":\"start\"}",
            b"null",
            b"",
        ];
        let mut answered = 0;
        for line in hostile {
            let general = decode_via_value(line);
            if let Some(ev) = decode_event_directly(line) {
                answered += 1;
                assert_eq!(
                    general.as_ref().ok(),
                    Some(&StreamItem::Event(Box::new(ev))),
                    "{}",
                    String::from_utf8_lossy(line)
                );
            }
            // Whatever the path, the public decode gives the general way's answer.
            assert_eq!(
                format!("{:?}", decode_stream_line(line)),
                format!("{general:?}"),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        assert!(answered >= 5, "{answered}");
    }

    #[test]
    fn rejects_garbage_and_objects_without_type() {
        assert!(decode_stream_line(b"not json").is_err());
        assert!(decode_stream_line(br#"{"hello":1}"#).is_err());
    }

    #[test]
    fn unknown_types_and_actions_are_kept() {
        let line = br#"{"Type":"artifact","Action":"frobnicate","Actor":{"ID":"","Attributes":null},"timeNano":1}"#;
        let StreamItem::Event(e) = decode_stream_line(line).unwrap() else {
            panic!("not an event")
        };
        assert_eq!((e.kind(), e.action()), ("artifact", "frobnicate"));
    }

    /// Every line and list of a real Podman 5.4.2 session decodes, and its lists carry Podman's
    /// restart count.
    #[test]
    fn real_5_4_captures_decode() {
        let events = include_str!("../../tests/fixtures/5.4.2/events.ndjson");
        let decoded = events
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| decode_stream_line(l.as_bytes()))
            .filter(|r| matches!(r, Ok(StreamItem::Event(_))))
            .count();
        assert_eq!(decoded, 253);
        let containers: Vec<ListContainer> = serde_json::from_str(include_str!(
            "../../tests/fixtures/5.4.2/containers-json.json"
        ))
        .unwrap();
        assert!(!containers.is_empty());
        assert!(containers.iter().all(|c| c.restarts.is_some()));
        let pods: Vec<ListPod> =
            serde_json::from_str(include_str!("../../tests/fixtures/5.4.2/pods-json.json"))
                .unwrap();
        assert!(!pods.is_empty());
        let version: Version =
            serde_json::from_str(include_str!("../../tests/fixtures/5.4.2/version.json")).unwrap();
        assert_eq!(version.version, "5.4.2");
    }
}
