//! The HTTP client for one Podman API service, over a unix socket or tcp.
//!
//! Owns connecting, the versioned libpod paths, timeouts, turning Podman's error bodies into typed
//! errors, and opening the event stream. Never retries and never interprets what it fetched: the
//! watcher decides what a failure means.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;

pub use super::endpoint::Endpoint;
use super::wire::{
    ApiError, Info, ListContainer, ListImage, ListNetwork, ListPod, ListVolume, Version,
};

/// Every libpod route is versioned; 4.0.0 is libpod's minimal API and is served by 4.x and 5.x.
const API_PREFIX: &str = "/v4.0.0/libpod";
/// What must be escaped in a query value; `-`, `.` and `_` stay readable in logs.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A list of 10,000 containers is tens of MB of JSON: give it time, but not forever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The default cap on one response body (`--podman.max-response-size`). Podman 4.3.1 lists a
/// plain container in about 600 bytes of JSON (tests/fixtures/containers-json.json) and one with
/// many labels, ports and mounts in a few KiB: 256 MiB holds 50,000 containers at 5 KiB each.
pub const DEFAULT_MAX_RESPONSE: usize = 256 << 20;

/// Error bodies are a short JSON object; more than this is not an error message.
const MAX_ERROR_BODY: usize = 64 << 10;

/// Everything that can go wrong talking to Podman, with enough context to act on.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {endpoint}: {source}{}", connect_hint(.endpoint, .source))]
    Connect {
        endpoint: Endpoint,
        #[source]
        source: std::io::Error,
    },
    #[error("timed out after {after:?} {what}")]
    Timeout { what: String, after: Duration },
    #[error("HTTP error on {path}: {source}")]
    Http {
        path: String,
        #[source]
        source: hyper::Error,
    },
    /// The request could not even be built (a path sealwatch made is not a valid URI); nothing
    /// was sent.
    #[error("cannot build the request for {path}: {source}")]
    Request {
        path: String,
        #[source]
        source: hyper::http::Error,
    },
    #[error("{path} answered {status}: {cause}")]
    Status {
        path: String,
        status: StatusCode,
        cause: String,
    },
    /// The body was longer than the cap: dropped unread, as a hostile or broken answer.
    #[error("{path} answered more than {max} bytes; dropped it (raise --podman.max-response-size if the host really lists that much)")]
    TooLarge { path: String, max: usize },
    #[error("cannot decode the answer of {path}: {source}")]
    Decode {
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

fn connect_hint(endpoint: &Endpoint, err: &std::io::Error) -> &'static str {
    match (endpoint, err.kind()) {
        (Endpoint::Unix(_), std::io::ErrorKind::PermissionDenied) => {
            "; the rootful socket needs root: run as root, or watch a rootless socket as its user"
        }
        (Endpoint::Unix(_), std::io::ErrorKind::NotFound) => {
            "; is the Podman API service running? (systemctl enable --now podman.socket, or podman system service)"
        }
        (_, std::io::ErrorKind::ConnectionRefused) => "; is the Podman API service running?",
        _ => "",
    }
}

/// A client for one engine. Cheap to clone; every request opens its own connection, which keeps
/// the event stream (one long request) independent of the rare list requests.
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: Endpoint,
    /// The longest response body read; longer ones are `ClientError::TooLarge`.
    max_response: usize,
    /// Counts the responses dropped for their size (`sealwatch_podman_oversized_responses`).
    oversized: prometheus_client::metrics::counter::Counter,
}

impl Client {
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            max_response: DEFAULT_MAX_RESPONSE,
            oversized: Default::default(),
        }
    }

    /// Caps every response body at `max_response` bytes and counts the ones over it.
    pub fn with_max_response(
        mut self,
        max_response: usize,
        oversized: prometheus_client::metrics::counter::Counter,
    ) -> Self {
        self.max_response = max_response;
        self.oversized = oversized;
        self
    }

    /// Counts a stream line dropped for its length, with the oversized responses.
    pub fn note_oversized(&self) {
        self.oversized.inc();
    }

    /// Reads a whole body, at most `max` bytes of it: one endless answer must never grow
    /// memory without bound. The chunks are joined once, at the end.
    async fn read_body(
        &self,
        path: &str,
        body: Incoming,
        max: usize,
    ) -> Result<Bytes, ClientError> {
        let too_large = || {
            self.oversized.inc();
            ClientError::TooLarge {
                path: path.to_owned(),
                max,
            }
        };
        if hyper::body::Body::size_hint(&body)
            .exact()
            .is_some_and(|n| n > max as u64)
        {
            return Err(too_large());
        }
        let mut body = body;
        let mut chunks: Vec<Bytes> = Vec::new();
        let mut total = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|source| ClientError::Http {
                path: path.to_owned(),
                source,
            })?;
            if let Ok(data) = frame.into_data() {
                total += data.len();
                if total > max {
                    return Err(too_large());
                }
                chunks.push(data);
            }
        }
        Ok(match chunks.len() {
            0 => Bytes::new(),
            1 => chunks.swap_remove(0),
            _ => {
                let mut joined = Vec::with_capacity(total);
                for c in &chunks {
                    joined.extend_from_slice(c);
                }
                Bytes::from(joined)
            }
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    async fn send(&self, path_and_query: &str) -> Result<Response<Incoming>, ClientError> {
        let connect_err = |source| ClientError::Connect {
            endpoint: self.endpoint.clone(),
            source,
        };
        let connect = async {
            match &self.endpoint {
                Endpoint::Unix(path) => {
                    let io = tokio::net::UnixStream::connect(path)
                        .await
                        .map_err(connect_err)?;
                    Ok::<_, ClientError>(handshake(TokioIo::new(io), path_and_query).await?)
                }
                Endpoint::Tcp(addr) => {
                    let io = tokio::net::TcpStream::connect(addr)
                        .await
                        .map_err(connect_err)?;
                    let _ = io.set_nodelay(true);
                    // Podman never sends a heartbeat on an idle event stream: without keepalive a
                    // silently dead peer would look connected forever.
                    let keepalive = socket2::TcpKeepalive::new()
                        .with_time(Duration::from_secs(30))
                        .with_interval(Duration::from_secs(10))
                        .with_retries(3);
                    let _ = socket2::SockRef::from(&io).set_tcp_keepalive(&keepalive);
                    Ok(handshake(TokioIo::new(io), path_and_query).await?)
                }
            }
        };
        let mut sender = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| ClientError::Timeout {
                what: format!("connecting to {}", self.endpoint),
                after: CONNECT_TIMEOUT,
            })??;
        let host = match &self.endpoint {
            Endpoint::Unix(_) => "d",
            Endpoint::Tcp(addr) => addr.as_str(),
        };
        let req = Request::get(path_and_query)
            .header(hyper::header::HOST, host)
            .header(hyper::header::USER_AGENT, crate::build_info::USER_AGENT)
            .body(Empty::<Bytes>::new())
            .map_err(|source| ClientError::Request {
                path: path_and_query.to_owned(),
                source,
            })?;
        sender
            .send_request(req)
            .await
            .map_err(|source| ClientError::Http {
                path: path_and_query.to_owned(),
                source,
            })
    }

    /// GETs a libpod path and decodes its JSON answer; non-2xx answers become `ClientError::Status`
    /// with Podman's `cause`.
    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let full = format!("{API_PREFIX}{path}");
        let work = async {
            let resp = self.send(&full).await?;
            let status = resp.status();
            let max = if status.is_success() {
                self.max_response
            } else {
                MAX_ERROR_BODY
            };
            let body = self.read_body(&full, resp.into_body(), max).await?;
            if !status.is_success() {
                return Err(status_error(&full, status, &body));
            }
            serde_json::from_slice(&body).map_err(|source| ClientError::Decode {
                path: full.clone(),
                source,
            })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, work)
            .await
            .map_err(|_| ClientError::Timeout {
                what: format!("waiting for {full} from {}", self.endpoint),
                after: REQUEST_TIMEOUT,
            })?
    }

    /// Podman's version. `_ping` names it in its `Libpod-Api-Version` header and answers in
    /// milliseconds, where `/version` runs conmon and the OCI runtime to ask theirs (about 0.5 s
    /// on Podman 4.3.1): the difference is most of the time to ready after Podman returns. A
    /// service without that header is asked `/version`.
    pub async fn version(&self) -> Result<Version, ClientError> {
        match self.ping().await? {
            Some(version) => Ok(Version {
                version,
                ..Version::default()
            }),
            None => self.get_json("/version").await,
        }
    }

    /// `GET /libpod/_ping`: the `Libpod-Api-Version` header where the service answered 200 with
    /// it, `None` for any other answer.
    async fn ping(&self) -> Result<Option<String>, ClientError> {
        let full = format!("{API_PREFIX}/_ping");
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, self.send(&full))
            .await
            .map_err(|_| ClientError::Timeout {
                what: format!("waiting for {full} from {}", self.endpoint),
                after: REQUEST_TIMEOUT,
            })??;
        let version = resp
            .headers()
            .get("libpod-api-version")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty() && resp.status().is_success())
            .map(str::to_owned);
        Ok(version)
    }

    /// All containers: `all=true`, or paused and created ones would be missing.
    pub async fn containers(&self) -> Result<Vec<ListContainer>, ClientError> {
        let list: Option<Vec<ListContainer>> = self.get_json("/containers/json?all=true").await?;
        Ok(list.unwrap_or_default())
    }

    pub async fn pods(&self) -> Result<Vec<ListPod>, ClientError> {
        let list: Option<Vec<ListPod>> = self.get_json("/pods/json").await?;
        Ok(list.unwrap_or_default())
    }

    /// The images `podman images` lists (not `all=true`: intermediate build layers stay out).
    pub async fn images(&self) -> Result<Vec<ListImage>, ClientError> {
        let list: Option<Vec<ListImage>> = self.get_json("/images/json").await?;
        Ok(list.unwrap_or_default())
    }

    pub async fn volumes(&self) -> Result<Vec<ListVolume>, ClientError> {
        let list: Option<Vec<ListVolume>> = self.get_json("/volumes/json").await?;
        Ok(list.unwrap_or_default())
    }

    pub async fn networks(&self) -> Result<Vec<ListNetwork>, ClientError> {
        let list: Option<Vec<ListNetwork>> = self.get_json("/networks/json").await?;
        Ok(list.unwrap_or_default())
    }

    /// `GET /libpod/info`: component versions, and the host's total memory.
    pub async fn info(&self) -> Result<Info, ClientError> {
        self.get_json("/info").await
    }

    /// The containers with these IDs (`filters={"id":[...]}`), in any state.
    pub async fn containers_with_ids(
        &self,
        ids: &[String],
    ) -> Result<Vec<ListContainer>, ClientError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let path = format!("/containers/json?all=true&filters={}", id_filter(ids));
        let list: Option<Vec<ListContainer>> = self.get_json(&path).await?;
        Ok(list.unwrap_or_default())
    }

    /// The pods with these IDs.
    pub async fn pods_with_ids(&self, ids: &[String]) -> Result<Vec<ListPod>, ClientError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let path = format!("/pods/json?filters={}", id_filter(ids));
        let list: Option<Vec<ListPod>> = self.get_json(&path).await?;
        Ok(list.unwrap_or_default())
    }

    /// Opens `GET /libpod/events?stream=true&since=…` and returns once the response head has
    /// arrived. Podman 5.1 and 5.2 hold the head until the first event, so the caller must not
    /// put a short timeout on this future. `since_nanos` is exclusive on Podman's side.
    pub async fn events(&self, since_nanos: Option<i64>) -> Result<EventStream, ClientError> {
        let mut path = format!("{API_PREFIX}/events?stream=true");
        if let Some(nanos) = since_nanos {
            path.push_str("&since=");
            let since = rfc3339_nanos(nanos);
            path.extend(percent_encoding::utf8_percent_encode(&since, QUERY_VALUE));
        }
        self.open_stream(&path).await
    }

    /// Opens `GET /libpod/containers/stats?stream=true&interval=N` for every running container
    /// (no `containers` parameter: Podman lists the containers again at each interval, so new
    /// ones appear on the same stream). Podman writes the response head with its first report,
    /// which takes a moment with many containers: the head is awaited up to `REQUEST_TIMEOUT`.
    /// The body is one JSON report per line, every `interval_secs` seconds.
    pub async fn stats_stream(&self, interval_secs: u64) -> Result<EventStream, ClientError> {
        let path = format!("{API_PREFIX}/containers/stats?stream=true&interval={interval_secs}");
        tokio::time::timeout(REQUEST_TIMEOUT, self.open_stream(&path))
            .await
            .map_err(|_| ClientError::Timeout {
                what: format!("waiting for {path} from {}", self.endpoint),
                after: REQUEST_TIMEOUT,
            })?
    }

    /// The engine's total memory (`GET /libpod/info` `host.memTotal`), which Podman's stats
    /// report as the limit of a container without one.
    pub async fn host_memory(&self) -> Result<u64, ClientError> {
        let info: Info = self.get_json("/info").await?;
        Ok(info.host.mem_total)
    }

    /// Sends a streaming GET and returns its body once a 2xx head has arrived; any other status
    /// becomes `ClientError::Status` with Podman's `cause`.
    async fn open_stream(&self, path: &str) -> Result<EventStream, ClientError> {
        let resp = self.send(path).await?;
        let status = resp.status();
        if !status.is_success() {
            let read = self.read_body(path, resp.into_body(), MAX_ERROR_BODY);
            let body = match tokio::time::timeout(Duration::from_secs(5), read).await {
                Ok(Err(e @ ClientError::TooLarge { .. })) => return Err(e),
                Ok(Ok(body)) => body,
                _ => Bytes::new(),
            };
            return Err(status_error(path, status, &body));
        }
        Ok(EventStream {
            body: resp.into_body(),
        })
    }
}

/// The most hyper reads from Podman at once (see `handshake`).
const READ_BUFFER: usize = 64 * 1024;

async fn handshake<T>(
    io: TokioIo<T>,
    path: &str,
) -> Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>, ClientError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    // hyper's read buffer grows to about 400 KiB while a burst fills it (the replay after a
    // reconnect, a large list) and keeps that size for the connection's life, which for the
    // event stream is the process's: 64 KiB reads cost no measurable ingest CPU (the ingest
    // bench's 64 KiB chunks are its cheapest way in) and keep a few hundred KiB less resident.
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(READ_BUFFER)
        .handshake(io)
        .await
        .map_err(|source| ClientError::Http {
            path: path.to_owned(),
            source,
        })?;
    // The connection task ends when the response body is dropped or the peer goes away.
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::trace!(error = %e, "podman connection closed");
        }
    });
    Ok(sender)
}

fn status_error(path: &str, status: StatusCode, body: &[u8]) -> ClientError {
    let cause = serde_json::from_slice::<ApiError>(body)
        .ok()
        .map(|e| {
            if e.message.is_empty() {
                e.cause
            } else {
                e.message
            }
        })
        .unwrap_or_else(|| {
            String::from_utf8_lossy(body)
                .trim()
                .chars()
                .take(200)
                .collect()
        });
    ClientError::Status {
        path: path.to_owned(),
        status,
        cause: super::printable(&cause).into_owned(),
    }
}

/// `{"id":[...]}`, percent-encoded for a query value.
fn id_filter(ids: &[String]) -> String {
    let json = serde_json::json!({ "id": ids }).to_string();
    percent_encoding::utf8_percent_encode(&json, QUERY_VALUE).to_string()
}

/// Formats unix nanoseconds as RFC3339 with nanoseconds, the only `since` format Podman parses
/// without float rounding.
pub fn rfc3339_nanos(nanos: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(nanos)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// The body of an open event stream, read chunk by chunk.
#[derive(Debug)]
pub struct EventStream {
    body: Incoming,
}

impl EventStream {
    /// The next chunk of bytes; `Ok(None)` at a clean end of the stream. A Podman restart usually
    /// ends the body without its terminating chunk, which is an `Err` here.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, hyper::Error> {
        loop {
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => return Err(e),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        if !data.is_empty() {
                            return Ok(Some(data));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ID filter is the JSON Podman expects, percent-encoded.
    #[test]
    fn id_filters_are_encoded_json() {
        assert_eq!(
            id_filter(&["ab".into(), "c-d".into()]),
            "%7B%22id%22%3A%5B%22ab%22%2C%22c-d%22%5D%7D"
        );
    }

    #[test]
    fn since_is_rfc3339_with_nanoseconds() {
        assert_eq!(
            rfc3339_nanos(1795976183237049905),
            "2026-11-29T18:16:23.237049905Z"
        );
    }
}
