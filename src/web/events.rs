//! `GET /events`: the event feed as newline-delimited JSON, or as Server-Sent Events when the
//! client sends `Accept: text/event-stream`.
//!
//! Owns the feed's query (filters validated like `/containers`: 400 naming the bad parameter),
//! `?since=` and `Last-Event-ID`, the two framings, the keep-alives of an idle feed (an empty
//! line in NDJSON, a comment in SSE) and the final "missed" line of a reader that fell behind.
//! Reads events from `feed::Feed` only; never calls Podman, and never buffers more for a reader
//! than the feed's bounded channel holds.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::broadcast::error::RecvError;

use super::{error, AppState};
use crate::feed::{Cursor, FeedEvent, FeedLabels, Replay, Subscription};

/// The parameters `/events` accepts.
const ALLOWED: &[&str] = &["engine", "pod", "label", "type", "action", "since"];

/// What a reader asked to see. Repeated `type` and `action` values are alternatives; repeated
/// `label`s must all match, as on `/containers`.
#[derive(Debug, Default)]
struct Filters {
    engine: Option<String>,
    pod: Option<String>,
    labels: Vec<(String, Option<String>)>,
    types: Vec<String>,
    actions: Vec<String>,
    since: Option<i64>,
}

/// Parses the query; the error names the bad parameter and what to write instead.
fn parse(query: Option<&str>, now_nanos: i64) -> Result<Filters, String> {
    let mut f = Filters::default();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let v = v.into_owned();
        match k.as_ref() {
            "engine" => f.engine = Some(v).filter(|s| !s.is_empty()),
            "pod" => f.pod = Some(v).filter(|s| !s.is_empty()),
            "label" => {
                let (key, value) = match v.split_once('=') {
                    Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                    None => (v, None),
                };
                if key.is_empty() {
                    return Err("label= needs a key: label=key or label=key=value".into());
                }
                f.labels.push((key, value));
            }
            "type" | "action" => {
                if v.is_empty() {
                    return Err(format!(
                        "{k}= needs a value, e.g. type=container or action=died"
                    ));
                }
                if k == "type" {
                    f.types.push(v);
                } else {
                    f.actions.push(v);
                }
            }
            "since" => f.since = Some(parse_since(&v, now_nanos)?),
            _ => {
                return Err(format!(
                    "unknown query parameter {k:?}; allowed: {}",
                    ALLOWED.join(", ")
                ))
            }
        }
    }
    Ok(f)
}

/// `since=`: an RFC 3339 time, or a duration back from now (`90s`, `10m`, `2h`).
fn parse_since(v: &str, now_nanos: i64) -> Result<i64, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return t
            .timestamp_nanos_opt()
            .ok_or_else(|| format!("since={v:?}: the time is out of range"));
    }
    let back = v
        .strip_suffix('h')
        .and_then(|n| n.parse::<u64>().ok()?.checked_mul(3600))
        .map(Duration::from_secs)
        .or_else(|| crate::config::parse_duration(v));
    match back {
        Some(d) => Ok(now_nanos.saturating_sub(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))),
        None => Err(format!(
            "since={v:?}: use an RFC 3339 time (2026-01-02T15:04:05Z) or a duration (90s, 10m, 2h)"
        )),
    }
}

fn labels_match(labels: &FeedLabels, wanted: &[(String, Option<String>)]) -> bool {
    wanted.iter().all(|(k, v)| match (labels.get(k), v) {
        (Some(_), None) => true,
        (Some(have), Some(want)) => have == want,
        (None, _) => false,
    })
}

impl Filters {
    fn matches(&self, ev: &FeedEvent) -> bool {
        let s = ev.subject();
        self.engine.as_deref().is_none_or(|e| *s.engine == *e)
            && (self.types.is_empty() || self.types.iter().any(|t| *t == *s.kind))
            && (self.actions.is_empty() || self.actions.iter().any(|a| a == ev.action()))
            && self.pod.as_deref().is_none_or(|want| {
                s.pod_id.as_deref().is_some_and(|id| id.starts_with(want))
                    || s.pod_name.as_deref() == Some(want)
            })
            && labels_match(&s.labels, &self.labels)
    }
}

/// The two framings of the feed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Framing {
    Ndjson,
    Sse,
}

impl Framing {
    fn of(headers: &HeaderMap) -> Self {
        let sse = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains("text/event-stream"));
        if sse {
            Framing::Sse
        } else {
            Framing::Ndjson
        }
    }

    fn event(self, ev: &FeedEvent) -> Bytes {
        let json = ev.json();
        match self {
            Framing::Ndjson => {
                let mut out = Vec::with_capacity(json.len() + 1);
                out.extend_from_slice(json);
                out.push(b'\n');
                out.into()
            }
            Framing::Sse => {
                let mut out = Vec::with_capacity(json.len() + 32);
                out.extend_from_slice(format!("id: {}\ndata: ", ev.seq).as_bytes());
                out.extend_from_slice(json);
                out.extend_from_slice(b"\n\n");
                out.into()
            }
        }
    }

    /// What an idle feed sends every `--events.keepalive`, so proxies keep it open and a gone
    /// reader is noticed by the write that fails: nothing a reader could take for an event. In
    /// NDJSON an empty line (whitespace between JSON values: `jq` and line readers that skip
    /// blank lines pass over it), in SSE a comment (ignored by every `EventSource`).
    fn keep_alive(self) -> Bytes {
        match self {
            Framing::Ndjson => Bytes::from_static(b"\n"),
            Framing::Sse => Bytes::from_static(b": keep-alive\n\n"),
        }
    }

    /// The last thing a reader that fell `missed` events behind receives.
    fn missed(self, missed: u64) -> Bytes {
        let json = serde_json::json!({
            "missed": missed,
            "error": format!(
                "this feed fell {missed} events behind the buffer (--events.buffer) and was ended; \
                 reconnect with ?since= to catch up from the buffer"
            ),
        });
        match self {
            Framing::Ndjson => format!("{json}\n").into(),
            Framing::Sse => format!("event: missed\ndata: {json}\n\n").into(),
        }
    }
}

/// One reader's stream: the replay, then live events after the last one sent.
struct Reader {
    replay: Replay,
    sub: Subscription,
    filters: Filters,
    framing: Framing,
    /// The sequence number of the last event taken (sent or filtered out).
    last: u64,
    done: bool,
    keep_alive: tokio::time::Interval,
}

impl Reader {
    async fn next(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        for ev in self.replay.by_ref() {
            self.last = ev.seq;
            if self.filters.matches(&ev) {
                return Some(self.framing.event(&ev));
            }
        }
        loop {
            tokio::select! {
                received = self.sub.live.recv() => match received {
                    Ok(ev) => {
                        // Already sent from the ring.
                        if ev.seq <= self.last {
                            continue;
                        }
                        self.last = ev.seq;
                        if self.filters.matches(&ev) {
                            // A feed that is not idle needs no keep-alive.
                            self.keep_alive.reset();
                            return Some(self.framing.event(&ev));
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        self.done = true;
                        return Some(self.framing.missed(missed));
                    }
                    Err(RecvError::Closed) => return None,
                },
                _ = self.sub.closed.cancelled() => return None,
                _ = self.keep_alive.tick() => return Some(self.framing.keep_alive()),
            }
        }
    }
}

pub async fn events(
    State(app): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    let filters = match parse(q.as_deref(), now) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let framing = Framing::of(&headers);
    // An SSE client that reconnects says where it was; that beats `since`.
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let cursor = match (last_event_id, filters.since) {
        (Some(seq), _) => Cursor::After(seq),
        (None, Some(nanos)) => Cursor::Since(nanos),
        (None, None) => Cursor::Now,
    };
    let Some(mut sub) = app.feed.subscribe(cursor) else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{} event feeds are open (--events.max-feeds); try again later",
                app.feed.max_feeds()
            ),
        );
    };
    let replay = std::mem::take(&mut sub.replay);
    let after = sub.after;
    let every = app.feed.keep_alive();
    let mut keep_alive = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    keep_alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let reader = Reader {
        replay,
        sub,
        filters,
        framing,
        last: after,
        done: false,
        keep_alive,
    };
    let stream = futures_util::stream::unfold(reader, |mut r| async move {
        let chunk = r.next().await?;
        Some((Ok::<_, Infallible>(chunk), r))
    });
    let content_type = match framing {
        Framing::Ndjson => "application/x-ndjson",
        Framing::Sse => "text/event-stream",
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::HeaderName::from_static("x-accel-buffering"),
                HeaderValue::from_static("no"),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Filters parse; unknown parameters and bad values are refused with their name.
    #[test]
    fn filters_parse_and_name_the_bad_parameter() {
        let now = 10_000_000_000_000;
        let f = parse(
            Some("type=container&action=died&action=start&label=app%3Dweb&pod=shop&since=10m"),
            now,
        )
        .unwrap();
        assert_eq!(f.types, vec!["container"]);
        assert_eq!(f.actions, vec!["died", "start"]);
        assert_eq!(f.since, Some(now - 600_000_000_000));
        assert_eq!(
            parse(Some("since=2026-01-02T15:04:05.5Z"), now)
                .unwrap()
                .since,
            Some(1_767_366_245_500_000_000)
        );
        assert_eq!(
            parse(Some("since=2h"), now).unwrap().since,
            Some(now - 7_200_000_000_000)
        );
        assert!(parse(Some("colour=red"), now)
            .unwrap_err()
            .contains("colour"));
        assert!(parse(Some("since=yesterday"), now)
            .unwrap_err()
            .contains("since"));
        assert!(parse(Some("type="), now).unwrap_err().contains("type"));
        assert!(parse(Some("label="), now).unwrap_err().contains("label"));
    }
}
