//! `GET /events` against a real, private Podman: the feed read by a plain HTTP/1.1 client while
//! containers start, die and go equals `podman events` for the same period, with pods, labels,
//! exit codes and health resolved; `?since=` replays and then follows without a gap or a
//! duplicate; SSE framing and filters; 400 for a bad parameter, 503 beyond the feed cap; a quiet
//! feed sends keep-alives; a reader that stops reading gets the "missed" line and its stream
//! ends; and 100 slow feeds over a full 10,000-event buffer keep sealwatch's memory bounded.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::scripted::{container_event, ScriptedPodman, Step};
use crate::support::{wait_until, Engine, PodmanService, Run, Sealwatch, BUSYBOX_IMAGE};

const SETTLE: Duration = Duration::from_secs(30);

fn now_rfc3339_nanos() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn nanos_of(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_nanos_opt()
        .unwrap()
}

/// One open `/events` response, read incrementally (chunked transfer decoding by hand, as a
/// `curl -N` would see it).
struct FeedConn {
    reader: BufReader<TcpStream>,
    status: u16,
    headers: Vec<(String, String)>,
    /// Decoded body bytes; those from `start` on are not yet handed out.
    pending: Vec<u8>,
    start: usize,
    eof: bool,
    /// When the last object (not a keep-alive) arrived: keep-alives defeat the read timeout,
    /// so `next_json` gives up on its own after `QUIET_LIMIT` of nothing but keep-alives.
    last_object: Instant,
}

/// How long `next_json` waits through keep-alives for an object before it fails the test.
const QUIET_LIMIT: Duration = Duration::from_secs(60);

impl FeedConn {
    /// `GET path` with `headers`; with `rcvbuf`, the socket's receive buffer is set that small
    /// before connecting (a client that cannot take much at once). Reads the head only.
    fn open(port: u16, path: &str, headers: &[(&str, &str)], rcvbuf: Option<usize>) -> Self {
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        if let Some(size) = rcvbuf {
            socket.set_recv_buffer_size(size).unwrap();
            // A small segment size too: the sender sizes its send buffer from the segment size
            // (about 1.3 MB at loopback's 64 KiB), so this keeps the kernel's share small.
            let mss: libc::c_int = 536;
            // SAFETY: a valid socket, a c_int option of the size given.
            let rc = unsafe {
                libc::setsockopt(
                    std::os::fd::AsRawFd::as_raw_fd(&socket),
                    libc::IPPROTO_TCP,
                    libc::TCP_MAXSEG,
                    (&mss as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            assert_eq!(rc, 0, "TCP_MAXSEG: {}", std::io::Error::last_os_error());
        }
        socket.connect(&addr.into()).unwrap();
        let mut stream: TcpStream = socket.into();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).unwrap();
        let mut reader = BufReader::new(stream);
        let mut status_line = String::new();
        reader.read_line(&mut status_line).unwrap();
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_lowercase(), v.trim().to_owned()));
            }
        }
        FeedConn {
            reader,
            status,
            headers,
            pending: Vec::new(),
            start: 0,
            eof: false,
            last_object: Instant::now(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Reads one chunk into `pending`; false at the end of the body.
    fn read_chunk(&mut self) -> bool {
        if self.eof {
            return false;
        }
        let chunked = self
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        if !chunked {
            let mut rest = Vec::new();
            self.reader.read_to_end(&mut rest).unwrap();
            self.pending.extend_from_slice(&rest);
            self.eof = true;
            return !rest.is_empty();
        }
        let mut size_line = String::new();
        if self.reader.read_line(&mut size_line).unwrap() == 0 {
            self.eof = true;
            return false;
        }
        let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap(), 16)
            .unwrap_or_else(|e| panic!("chunk size {size_line:?}: {e}"));
        let mut data = vec![0; size + 2];
        self.reader.read_exact(&mut data).unwrap();
        if size == 0 {
            self.eof = true;
            return false;
        }
        self.pending.extend_from_slice(&data[..size]);
        true
    }

    /// The next piece of the body ending with `sep`, without it; `None` at the end of the body.
    fn next_until(&mut self, sep: &[u8]) -> Option<String> {
        loop {
            let unread = &self.pending[self.start..];
            if let Some(at) = memchr::memmem::find(unread, sep) {
                let piece = String::from_utf8(unread[..at].to_vec()).unwrap();
                self.start += at + sep.len();
                return Some(piece);
            }
            // Drop what was read before reading more, so a line costs its own length, not the
            // whole buffer's (a chunk holds hundreds of lines).
            self.pending.drain(..self.start);
            self.start = 0;
            if !self.read_chunk() {
                return None;
            }
        }
    }

    /// The next NDJSON object, skipping keep-alives (empty lines); panics after `QUIET_LIMIT`
    /// of keep-alives only.
    fn next_json(&mut self) -> Option<Value> {
        loop {
            let line = self.next_until(b"\n")?;
            if line.trim().is_empty() {
                assert!(
                    self.last_object.elapsed() < QUIET_LIMIT,
                    "no object for {QUIET_LIMIT:?}, only keep-alives"
                );
                continue;
            }
            self.last_object = Instant::now();
            return Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}")));
        }
    }

    /// Reads objects until one satisfies `last` (included); panics with what it read if the
    /// body ends first.
    fn read_through(&mut self, last: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut out = Vec::new();
        while let Some(v) = self.next_json() {
            let done = last(&v);
            out.push(v);
            if done {
                return out;
            }
        }
        panic!("the feed ended before the awaited event; read: {out:#?}");
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// (type, action, id) of each event `podman events` shows from `since` on, up to `until` (unix
/// nanoseconds, inclusive), counted.
fn podman_events_until(
    svc: &PodmanService,
    since: &str,
    until: i64,
) -> BTreeMap<(String, String, String), usize> {
    let text = svc.podman(&[
        "events",
        "--stream=false",
        "--since",
        since,
        "--format",
        "json",
    ]);
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let e: Value = serde_json::from_str(line).unwrap();
        let t = e["timeNano"]
            .as_i64()
            .filter(|n| *n > 0)
            .unwrap_or_else(|| nanos_of(s(&e["Time"])));
        if t > until {
            continue;
        }
        let key = (
            s(&e["Type"]).to_owned(),
            s(&e["Status"]).to_owned(),
            s(&e["ID"]).to_owned(),
        );
        *out.entry(key).or_insert(0) += 1;
    }
    out
}

/// The same of feed objects whose time is within [`since`, `until`].
fn feed_events(
    events: &[Value],
    since: i64,
    until: i64,
) -> BTreeMap<(String, String, String), usize> {
    let mut out = BTreeMap::new();
    for e in events {
        let t = e["time_unix_nano"].as_i64().unwrap();
        if t < since || t > until {
            continue;
        }
        let key = (
            s(&e["type"]).to_owned(),
            s(&e["action"]).to_owned(),
            s(&e["id"]).to_owned(),
        );
        *out.entry(key).or_insert(0) += 1;
    }
    out
}

/// Asserts that the feed's events within [`since`, `until`] equal what `podman events` shows for
/// the period. Either side may lag the other for a moment (the feed delivers an event after the
/// one that ended `events`; Podman's journal shows one a little later): while the feed lacks an
/// event Podman shows, one more feed object is read into `events`; while only the feed has one,
/// Podman is asked again. Fails with both sides once neither catches up.
fn assert_feed_equals_podman(
    feed: &mut FeedConn,
    events: &mut Vec<Value>,
    svc: &PodmanService,
    since: &str,
    until: i64,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let want = podman_events_until(svc, since, until);
        let got = feed_events(events, nanos_of(since), until);
        if got == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the feed against podman events:\n  feed:   {got:?}\n  podman: {want:?}\nfeed objects: {events:#?}"
        );
        let feed_lacks = want
            .iter()
            .any(|(k, n)| got.get(k).copied().unwrap_or(0) < *n);
        if feed_lacks {
            match feed.next_json() {
                Some(v) => events.push(v),
                None => panic!(
                    "the feed ended while it lacked events podman shows:\n  feed:   {got:?}\n  podman: {want:?}"
                ),
            }
        } else {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// sealwatch on `svc` as engine `local`, with `--labels.allowlist app` unless `extra` says.
fn start(svc: &PodmanService, extra: &[&str]) -> Sealwatch {
    let url = format!("local={}", svc.url());
    let mut args = vec!["--podman.url", &url];
    if !extra.contains(&"--labels.allowlist") {
        args.extend(["--labels.allowlist", "app"]);
    }
    args.extend_from_slice(extra);
    let sw = Sealwatch::start(&args);
    sw.wait_ready(200, SETTLE);
    sw
}

/// While containers in and out of a pod start, get killed, crash, report health and go, the
/// NDJSON feed shows exactly the events `podman events` shows for the same period, each with its
/// pod name (also on `died`, which Podman sends without one), allowlisted labels, exit code,
/// health status and a nanosecond time.
#[test]
fn the_feed_equals_podman_events() {
    feed_equals_podman_events(Engine::DEFAULT);
}
on_other_engines!(the_feed_equals_podman_events, feed_equals_podman_events);

fn feed_equals_podman_events(engine: Engine) {
    let svc = PodmanService::start_with(engine);
    let sw = start(&svc, &[]);
    let mut feed = FeedConn::open(sw.port(), "/events", &[], None);
    assert_eq!(feed.status, 200);
    assert_eq!(feed.header("content-type"), Some("application/x-ndjson"));
    let t0 = now_rfc3339_nanos();

    svc.podman(&["pod", "create", "--name", "shop"]);
    let web = svc.run(
        &Run::new(BUSYBOX_IMAGE)
            .name("web")
            .pod("shop")
            .label("app", "cart")
            .label("secret", "hidden")
            .sleeping(),
    );
    svc.podman(&["kill", "web"]);
    svc.podman(&["wait", "web"]);
    let crash = svc.run(&Run::new(BUSYBOX_IMAGE).name("crash").sh("exit 3"));
    svc.podman(&["wait", "crash"]);
    let hc = svc.run(
        &Run::new(BUSYBOX_IMAGE)
            .name("hc")
            .health_cmd("true")
            .sleeping(),
    );
    // Podman 4.3 reports the status before a check's result in its event: the second says it.
    svc.podman(&["healthcheck", "run", "hc"]);
    svc.podman(&["healthcheck", "run", "hc"]);
    svc.podman(&["rm", "-f", "-t", "0", "crash", "hc"]);
    let shop = svc.podman(&["pod", "inspect", "shop", "--format", "{{.ID}}"]);
    svc.podman(&["pod", "rm", "-f", "shop"]);
    // A last container after everything: with journald events the pod's `remove` can come
    // before its infra container's last events, so the pod's removal is no end marker.
    svc.podman(&["run", "--rm", "--name", "end", BUSYBOX_IMAGE, "true"]);

    // Up to its start: with journald events `podman run --rm` logs its `remove` twice, late.
    let mut events = feed.read_through(|e| e["name"] == "end" && e["action"] == "start");
    let t1 = events.last().unwrap()["time_unix_nano"].as_i64().unwrap();
    assert_feed_equals_podman(&mut feed, &mut events, &svc, &t0, t1);

    let find = |id: &str, action: &str| -> &Value {
        events
            .iter()
            .find(|e| e["id"] == id && e["action"] == action)
            .unwrap_or_else(|| panic!("no {action} of {id} in {events:#?}"))
    };
    let died = find(&web, "died");
    assert_eq!(died["engine"], "local");
    assert_eq!(died["name"], "web");
    assert_eq!(died["pod"]["name"], "shop", "{died}");
    assert_eq!(died["pod"]["id"], shop.as_str());
    assert_eq!(died["exit_code"], 137);
    assert_eq!(died["labels"], serde_json::json!({"app": "cart"}));
    let removed = find(&web, "remove");
    assert_eq!(removed["pod"]["name"], "shop", "{removed}");
    assert_eq!(find(&crash, "died")["exit_code"], 3);
    let health: Vec<&str> = events
        .iter()
        .filter(|e| e["id"] == hc.as_str() && e["action"] == "health_status")
        .map(|e| s(&e["health_status"]))
        .collect();
    assert_eq!(health.last(), Some(&"healthy"), "{health:?}");
    let time = s(&died["time"]);
    let fraction = time.split('.').nth(1).unwrap_or_default();
    assert_eq!(fraction.len(), "123456789Z".len(), "nanoseconds in {time}");
    assert_eq!(nanos_of(time), died["time_unix_nano"].as_i64().unwrap());
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "seq without gaps: {seqs:?}"
    );
}

/// `?since=` replays the kept events from that time and then follows live, while containers keep
/// changing as the feed opens: every event from then on arrives once, in sequence order, with
/// no gap at the seam, and the whole equals `podman events` for the period.
#[test]
fn since_replays_then_follows_without_a_gap_or_a_duplicate() {
    let svc = PodmanService::start_with(Engine::DEFAULT);
    let sw = start(&svc, &[]);
    let t0 = now_rfc3339_nanos();
    for i in 0..3 {
        svc.podman(&[
            "run",
            "--rm",
            "--name",
            &format!("before-{i}"),
            BUSYBOX_IMAGE,
            "true",
        ]);
    }
    // Changes go on while the feed opens, so some events meet the seam.
    let during = std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            for i in 0..4 {
                svc.podman(&[
                    "run",
                    "--rm",
                    "--name",
                    &format!("during-{i}"),
                    BUSYBOX_IMAGE,
                    "true",
                ]);
            }
            svc.podman(&["run", "--rm", "--name", "last", BUSYBOX_IMAGE, "true"])
        });
        let path = format!(
            "/events?since={}",
            t0.replace(':', "%3A").replace('+', "%2B")
        );
        let mut feed = FeedConn::open(sw.port(), &path, &[], None);
        assert_eq!(feed.status, 200);
        worker.join().unwrap();
        let mut during = feed.read_through(|e| e["name"] == "last" && e["action"] == "remove");
        let t1 = during.last().unwrap()["time_unix_nano"].as_i64().unwrap();
        assert_feed_equals_podman(&mut feed, &mut during, &svc, &t0, t1);
        during
    });
    let seqs: Vec<u64> = during.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "every event once and none skipped: {seqs:?}"
    );
    assert!(
        during
            .iter()
            .any(|e| e["name"] == "before-0" && e["action"] == "create"),
        "the replay holds what happened before the feed opened"
    );
}

/// With `Accept: text/event-stream` the feed is SSE (`id:` = sequence number, `data:` = the
/// object); `type` and `action` filter it; a bad parameter is a JSON 400 naming it; beyond
/// `--events.max-feeds` a feed is refused with 503.
#[test]
fn sse_filters_bad_parameters_and_the_cap() {
    let svc = PodmanService::start_with(Engine::DEFAULT);
    let sw = start(&svc, &["--events.max-feeds", "1"]);
    let mut sse = FeedConn::open(
        sw.port(),
        "/events?type=container&action=died",
        &[("Accept", "text/event-stream")],
        None,
    );
    assert_eq!(sse.status, 200);
    assert_eq!(sse.header("content-type"), Some("text/event-stream"));

    let refused = FeedConn::open(sw.port(), "/events", &[], None);
    assert_eq!(
        refused.status, 503,
        "a second feed beyond --events.max-feeds 1"
    );
    drop(refused);
    let (status, body) = sw.get("/events?colour=red");
    assert_eq!(status, 400);
    let err: Value = serde_json::from_str(&body).unwrap();
    assert!(s(&err["error"]).contains("colour"), "{body}");
    let (status, body) = sw.get("/events?since=yesterday");
    assert_eq!(status, 400);
    assert!(body.contains("since"), "{body}");

    let id = svc.run(&Run::new(BUSYBOX_IMAGE).name("dies").sh("exit 7"));
    let frame = sse.next_until(b"\n\n").expect("an SSE frame");
    let mut lines = frame.lines();
    let id_line = lines.next().unwrap();
    assert!(id_line.starts_with("id: "), "{frame:?}");
    let data = lines.next().unwrap().strip_prefix("data: ").unwrap();
    let v: Value = serde_json::from_str(data).unwrap();
    assert_eq!(id_line["id: ".len()..], v["seq"].to_string());
    assert_eq!(
        (s(&v["type"]), s(&v["action"]), s(&v["id"])),
        ("container", "died", id.as_str())
    );
    assert_eq!(v["exit_code"], 7);
    assert_eq!(lines.next(), None);

    // The one slot is free again once the SSE reader goes.
    drop(sse);
    wait_until("the slot is free after the reader left", SETTLE, || {
        let again = FeedConn::open(sw.port(), "/events", &[], None);
        match again.status {
            200 => Ok(()),
            other => Err(format!("status {other}")),
        }
    });
}

/// An SSE client that reconnects with `Last-Event-ID` resumes right after the last event it saw
/// (nothing skipped, nothing twice), and one that reconnects to a restarted sealwatch with the
/// old process's number receives the new process's kept events instead of silently losing them.
#[test]
fn last_event_id_resumes_even_across_a_sealwatch_restart() {
    let svc = PodmanService::start_with(Engine::DEFAULT);
    let sw = start(&svc, &[]);
    let sse_frame = |feed: &mut FeedConn| -> (u64, Value) {
        let frame = feed.next_until(b"\n\n").expect("an SSE frame");
        let mut id = None;
        let mut data = None;
        for line in frame.lines() {
            if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.parse::<u64>().unwrap());
            } else if let Some(v) = line.strip_prefix("data: ") {
                data = Some(serde_json::from_str::<Value>(v).unwrap());
            }
        }
        (id.unwrap(), data.unwrap())
    };
    let sse = [("Accept", "text/event-stream")];
    let mut feed = FeedConn::open(sw.port(), "/events?action=died", &sse, None);
    let first = svc.run(&Run::new(BUSYBOX_IMAGE).name("first").sh("exit 1"));
    let (seen, v) = sse_frame(&mut feed);
    assert_eq!(v["id"], first.as_str());
    drop(feed);
    // While the client is away.
    let second = svc.run(&Run::new(BUSYBOX_IMAGE).name("second").sh("exit 2"));
    svc.podman(&["wait", "second"]);
    wait_until("sealwatch saw the second death", SETTLE, || {
        let (status, body) = sw.get("/containers/second");
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        if status == 200 && v["exit_code"] == 2 {
            Ok(())
        } else {
            Err(format!("{status} {body}"))
        }
    });
    let last = seen.to_string();
    let resume = [
        ("Accept", "text/event-stream"),
        ("Last-Event-ID", last.as_str()),
    ];
    let mut feed = FeedConn::open(sw.port(), "/events?action=died", &resume, None);
    let (id, v) = sse_frame(&mut feed);
    assert_eq!(
        v["id"],
        second.as_str(),
        "the next death after {seen}, not the first again"
    );
    assert!(id > seen);
    drop(feed);

    // sealwatch restarts; the client comes back with the old process's last number.
    drop(sw);
    let sw = start(&svc, &[]);
    let third = svc.run(&Run::new(BUSYBOX_IMAGE).name("third").sh("exit 3"));
    svc.podman(&["wait", "third"]);
    let old = id.to_string();
    let resume = [
        ("Accept", "text/event-stream"),
        ("Last-Event-ID", old.as_str()),
    ];
    let mut feed = FeedConn::open(sw.port(), "/events?action=died", &resume, None);
    let (new_id, v) = sse_frame(&mut feed);
    assert_eq!(v["id"], third.as_str(), "the new process's kept death");
    assert!(
        new_id > id,
        "the new process numbers above the old: {new_id} > {id}"
    );
}

/// A reader that stops reading while events pour in holds no more than the buffer: once it
/// reads again it gets the events that fit, then one line saying how many it missed, and the
/// stream ends.
#[test]
fn a_reader_that_falls_behind_is_told_what_it_missed_and_ended() {
    let svc = PodmanService::start_with(Engine::DEFAULT);
    let sw = start(&svc, &["--events.buffer", "4", "--labels.allowlist", "big"]);
    // A small receive window: the kernel holds little for the stalled reader.
    let mut feed = FeedConn::open(sw.port(), "/events", &[], Some(4096));
    assert_eq!(feed.status, 200);
    // 4 KiB per event: the socket and hyper's queue fill after a few dozen.
    let big = "x".repeat(4 << 10);
    let began = Instant::now();
    // 12 runs of 7 events each: well past what the buffers hold. Three at a time; meanwhile the
    // reader takes one chunk (one event) every 5 s, far slower than the runs make events, but
    // enough that its connection never trips the 30 s write timeout however slow the machine.
    let runs = std::sync::atomic::AtomicUsize::new(0);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let burst: Vec<_> = (0..3)
            .map(|t| {
                let (svc, big, runs) = (&svc, &big, &runs);
                scope.spawn(move || {
                    for i in 0.. {
                        if runs.load(std::sync::atomic::Ordering::SeqCst) >= 12
                            || began.elapsed() > Duration::from_secs(180)
                        {
                            break;
                        }
                        svc.podman(&[
                            "run",
                            "--rm",
                            "--name",
                            &format!("burst-{t}-{i}"),
                            "--label",
                            &format!("big={big}"),
                            BUSYBOX_IMAGE,
                            "true",
                        ]);
                        runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                })
            })
            .collect();
        let (feed, done) = (&mut feed, &done);
        scope.spawn(move || {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(Duration::from_secs(5));
                if !feed.read_chunk() {
                    break;
                }
            }
        });
        for b in burst {
            b.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let runs = runs.into_inner();
    let mut read = 0;
    let last = loop {
        match feed.next_json() {
            Some(v) if v.get("missed").is_some() => break v,
            Some(_) => read += 1,
            None => {
                panic!("the feed ended without a missed line after {read} events ({runs} runs)")
            }
        }
    };
    let missed = last["missed"].as_u64().unwrap();
    assert!(missed > 0, "{last}");
    assert!(s(&last["error"]).contains("--events.buffer"), "{last}");
    assert_eq!(
        feed.next_json(),
        None,
        "the stream ends after the missed line"
    );
    eprintln!("slow reader: {runs} runs; read {read} events, then missed {missed}");
}

/// The feed obeys `--web.config.file` like every endpoint: without valid basic-auth credentials
/// it is a 401 and streams nothing; with them it streams.
#[test]
fn the_feed_asks_for_credentials_like_every_endpoint() {
    use base64::Engine as _;
    let svc = PodmanService::start_with(Engine::DEFAULT);
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("watch-me", 4).unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, format!("basic_auth_users:\n  team: '{hash}'\n")).unwrap();
    let web = web.to_str().unwrap().to_owned();
    let url = format!("local={}", svc.url());
    let port = crate::support::free_port();
    // Not `Sealwatch::start`: its readiness probe has no credentials.
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _sealwatch = Killed(
        crate::support::binary::command()
            .args(["--podman.url", &url, "--web.config.file", &web])
            .args(["--web.listen-address", &format!("127.0.0.1:{port}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("sealwatch listens", SETTLE, || {
        TcpStream::connect(("127.0.0.1", port))
            .map(drop)
            .map_err(|e| e.to_string())
    });
    let basic = |creds: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(creds)
        )
    };
    let refused = FeedConn::open(port, "/events", &[], None);
    assert_eq!(refused.status, 401);
    let wrong = basic("team:guess");
    let refused = FeedConn::open(port, "/events", &[("Authorization", &wrong)], None);
    assert_eq!(refused.status, 401);
    let right = basic("team:watch-me");
    let mut feed = FeedConn::open(port, "/events", &[("Authorization", &right)], None);
    assert_eq!(feed.status, 200);
    let id = svc.run(&Run::new(BUSYBOX_IMAGE).name("seen").sleeping());
    let events = feed.read_through(|e| e["id"] == id.as_str() && e["action"] == "start");
    assert!(events.iter().all(|e| e["engine"] == "local"));
}

/// Across a restart of the Podman service the feed goes on: what happened while Podman's API was
/// down arrives once (sealwatch's reconnect replays it), nothing is sent twice, and the whole
/// equals `podman events` for the period.
#[test]
fn the_feed_survives_a_podman_restart_without_gaps_or_duplicates() {
    survives_a_podman_restart(Engine::DEFAULT);
}
on_other_engines!(
    the_feed_survives_a_podman_restart_without_gaps_or_duplicates,
    survives_a_podman_restart
);

fn survives_a_podman_restart(engine: Engine) {
    let mut svc = PodmanService::start_with(engine);
    let sw = start(&svc, &[]);
    let mut feed = FeedConn::open(sw.port(), "/events", &[], None);
    assert_eq!(feed.status, 200);
    let t0 = now_rfc3339_nanos();
    let before = svc.run(&Run::new(BUSYBOX_IMAGE).name("before").sleeping());
    let mut events = feed.read_through(|e| e["id"] == before.as_str() && e["action"] == "start");
    svc.stop_service();
    svc.podman_direct(&["stop", "-t", "0", "before"]);
    let down = svc.podman_direct(&Run::new(BUSYBOX_IMAGE).name("down").sleeping().args());
    svc.start_service();
    sw.wait_ready(200, SETTLE);
    let after = svc.run(&Run::new(BUSYBOX_IMAGE).name("after").sleeping());
    events.extend(feed.read_through(|e| e["id"] == after.as_str() && e["action"] == "start"));
    let t1 = events.last().unwrap()["time_unix_nano"].as_i64().unwrap();
    assert_feed_equals_podman(&mut feed, &mut events, &svc, &t0, t1);

    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "seq without gaps: {seqs:?}"
    );
    let mut seen = std::collections::BTreeSet::new();
    for e in &events {
        let key = (
            e["type"].to_string(),
            e["action"].to_string(),
            e["id"].to_string(),
            e["time_unix_nano"].to_string(),
        );
        assert!(seen.insert(key), "sent twice: {e}");
    }
    assert!(
        events
            .iter()
            .any(|e| e["id"] == down.as_str() && e["action"] == "start"),
        "the start made while the API was down is in the feed"
    );
    assert!(
        events
            .iter()
            .any(|e| e["id"] == before.as_str() && e["action"] == "died"),
        "the death made while the API was down is in the feed"
    );
}

/// A hundred feeds at once (the cap) each receive every event in the same order, the 101st is
/// refused, and sealwatch's resident memory is printed before and after.
#[test]
fn a_hundred_feeds_each_get_every_event() {
    const FEEDS: usize = 100;
    let svc = PodmanService::start_with(Engine::DEFAULT);
    let sw = start(&svc, &["--events.max-feeds", "100"]);
    let rss = |pid: u32| -> String {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .unwrap_or("VmRSS: ?")
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let idle = rss(sw.pid());
    let mut feeds: Vec<FeedConn> = (0..FEEDS)
        .map(|_| FeedConn::open(sw.port(), "/events", &[], None))
        .collect();
    assert!(feeds.iter().all(|f| f.status == 200));
    let over = FeedConn::open(sw.port(), "/events", &[], None);
    assert_eq!(over.status, 503);
    drop(over);
    let opened = rss(sw.pid());
    for i in 0..5 {
        svc.podman(&[
            "run",
            "--rm",
            "--name",
            &format!("fan-{i}"),
            BUSYBOX_IMAGE,
            "true",
        ]);
    }
    let streams: Vec<Vec<u64>> = feeds
        .iter_mut()
        .map(|f| {
            f.read_through(|e| e["name"] == "fan-4" && e["action"] == "remove")
                .iter()
                .map(|e| e["seq"].as_u64().unwrap())
                .collect()
        })
        .collect();
    let busy = rss(sw.pid());
    assert!(
        streams.iter().all(|s| *s == streams[0]),
        "every feed the same events"
    );
    assert!(streams[0].len() >= 5 * 6, "{:?}", streams[0]);
    eprintln!(
        "{FEEDS} feeds: sealwatch RSS idle {idle}, with {FEEDS} feeds open {opened}, after {} events to each {busy}",
        streams[0].len()
    );
}

/// A quiet feed sends a keep-alive every `--events.keepalive`: an empty line in NDJSON, a
/// `: keep-alive` comment in SSE; events still arrive between them, and the line reader that
/// skips empty lines sees only events.
#[test]
fn a_quiet_feed_sends_keep_alives() {
    let svc = PodmanService::start_with(Engine::DEFAULT);
    let sw = start(&svc, &["--events.keepalive", "300ms"]);
    let mut ndjson = FeedConn::open(sw.port(), "/events", &[], None);
    let mut sse = FeedConn::open(
        sw.port(),
        "/events",
        &[("Accept", "text/event-stream")],
        None,
    );
    assert_eq!((ndjson.status, sse.status), (200, 200));
    let began = Instant::now();
    for _ in 0..3 {
        assert_eq!(
            ndjson.next_until(b"\n").as_deref(),
            Some(""),
            "an NDJSON keep-alive is an empty line"
        );
        assert_eq!(
            sse.next_until(b"\n\n").as_deref(),
            Some(": keep-alive"),
            "an SSE keep-alive is a comment"
        );
    }
    eprintln!(
        "3 keep-alives at --events.keepalive 300ms took {:?}",
        began.elapsed()
    );
    let id = svc.run(&Run::new(BUSYBOX_IMAGE).name("between").sh("exit 3"));
    let events = ndjson.read_through(|e| e["id"] == id.as_str() && e["action"] == "died");
    assert!(
        events.iter().all(|e| e["seq"].is_u64()),
        "only events: {events:#?}"
    );
    // The rest of the container's events (cleanup), then, quiet again, keep-alives again.
    loop {
        let line = ndjson.next_until(b"\n").expect("the feed stays open");
        if line.is_empty() {
            break;
        }
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["id"], id.as_str(), "{line}");
    }
}

/// sealwatch's resident memory in KiB (`VmRSS`, or `VmHWM` for the peak) from /proc.
fn memory_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {field} for {pid}"))
}

/// The sum of `podman_events_total` in one scrape.
fn events_total(sw: &Sealwatch) -> u64 {
    sw.scrape_text("/metrics")
        .lines()
        .filter(|l| l.starts_with("podman_events_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Memory with a full 10,000-event buffer and 100 slow feeds: each feed asks for the whole
/// buffer (`since=1h`) through a 4 KiB receive window, then 30,000 more events arrive while they
/// lag. sealwatch's resident memory grows by far less than 100 copies of the buffer would take
/// (the feeds share the events and are ended with a "missed" line instead of being buffered
/// for), every feed ends that way, and the numbers are printed. Events come from the scripted
/// Podman, the only way to send 40,000 events in seconds.
#[test]
fn a_hundred_slow_feeds_over_a_full_buffer_stay_bounded() {
    const FEEDS: usize = 100;
    const BUFFER: usize = 10_000;
    const BURST: usize = 30_000;
    let t0 = chrono::Utc::now().timestamp_nanos_opt().unwrap() - 60_000_000_000;
    // Realistic events: a compose-sized label and a 64-character ID.
    let line = |n: usize| {
        let id = format!("{:064x}", n % 50 + 1);
        let name = format!("worker-{}", n % 50);
        let project = format!("project-{:0>120}", n % 50);
        container_event(
            "exec",
            &id,
            &name,
            t0 + n as i64 * 1_000,
            &[("app", project.as_str())],
        )
    };
    let chunks = |range: std::ops::Range<usize>| -> Vec<Step> {
        let lines: Vec<usize> = range.collect();
        lines
            .chunks(500)
            .map(|c| Step::Chunk(c.iter().flat_map(|n| line(*n)).collect()))
            .collect()
    };
    let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut session = chunks(0..BUFFER);
    session.push(Step::Gate(open.clone()));
    session.extend(chunks(BUFFER..BUFFER + BURST));
    session.push(Step::Hold);
    let podman = ScriptedPodman::start(vec![session]);
    let url = format!("local={}", podman.url());
    let sw = Sealwatch::start(&[
        "--podman.url",
        &url,
        "--events.buffer",
        &BUFFER.to_string(),
        "--events.max-feeds",
        &FEEDS.to_string(),
        "--labels.allowlist",
        "app",
    ]);
    sw.wait_ready(200, SETTLE);
    wait_until("the buffer is full", SETTLE, || match events_total(&sw) {
        n if n >= BUFFER as u64 => Ok(()),
        n => Err(format!("{n} events")),
    });
    let pid = sw.pid();
    let filled = memory_kib(pid, "VmRSS:");

    let feeds: Vec<FeedConn> = (0..FEEDS)
        .map(|_| FeedConn::open(sw.port(), "/events?since=1h", &[], Some(4096)))
        .collect();
    assert!(feeds.iter().all(|f| f.status == 200));
    // Every feed has started its replay and filled its socket.
    std::thread::sleep(Duration::from_secs(2));
    let opened = memory_kib(pid, "VmRSS:");
    let began = Instant::now();

    open.store(true, std::sync::atomic::Ordering::SeqCst);
    wait_until("the burst is in", SETTLE, || match events_total(&sw) {
        n if n >= (BUFFER + BURST) as u64 => Ok(()),
        n => Err(format!("{n} events")),
    });
    let burst = memory_kib(pid, "VmRSS:");
    eprintln!("burst in after {:?}", began.elapsed());

    // Now every feed reads to its end, all at once (a feed left unread for 30 s would be cut
    // by the stalled-client timeout instead), counting lines without parsing them.
    let readers: Vec<_> = feeds
        .into_iter()
        .map(|mut f| {
            std::thread::spawn(move || {
                let (mut read, mut missed) = (0usize, None);
                while let Some(line) = f.next_until(b"\n") {
                    if line.starts_with("{\"seq\"") {
                        read += 1;
                    } else if !line.is_empty() {
                        let v: Value = serde_json::from_str(&line).unwrap();
                        missed = Some(v["missed"].as_u64().unwrap_or(0));
                    }
                }
                (read, missed)
            })
        })
        .collect();
    let (read, missed): (Vec<usize>, Vec<Option<u64>>) =
        readers.into_iter().map(|r| r.join().unwrap()).unzip();
    eprintln!("read to the end after {:?}", began.elapsed());
    let peak = memory_kib(pid, "VmHWM:");
    let after = memory_kib(pid, "VmRSS:");
    assert!(
        missed.iter().all(|m| m.is_some_and(|m| m > 0)),
        "every feed ends with a missed line: {missed:?}; events read: {read:?}"
    );
    assert!(
        read.iter().all(|n| *n == BUFFER),
        "every feed got its replay first: {read:?}"
    );
    let growth_mib = peak.saturating_sub(filled) / 1024;
    eprintln!(
        "{FEEDS} slow feeds over --events.buffer {BUFFER} (+{BURST} events while they lag): \
         sealwatch RSS filled {filled} KiB, {FEEDS} feeds open {opened} KiB, after the burst \
         {burst} KiB, peak {peak} KiB, after reading to the end {after} KiB; growth to peak \
         {growth_mib} MiB; events read per feed {}..{}, missed {}..{}",
        read.iter().min().unwrap(),
        read.iter().max().unwrap(),
        missed.iter().flatten().min().unwrap(),
        missed.iter().flatten().max().unwrap(),
    );
    // 100 private copies of the buffer would be about 100 x 10,000 x 600 B = 600 MB.
    assert!(
        growth_mib < 64,
        "RSS grew by {growth_mib} MiB with {FEEDS} slow feeds (filled {filled} KiB, peak {peak} KiB)"
    );
}
