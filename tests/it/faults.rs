//! Fault injection through a scripted Podman that speaks the exact 4.3.1 wire format: broken
//! lines, error objects, cut streams, oversized lines and replays. Behaviour with the real
//! service is proven in `sync.rs`; this module covers what a real Podman cannot be made to do.

use std::time::Duration;

use crate::support::scripted::{container_event, ScriptedPodman, Step};
use crate::support::{wait_until, Exposition, Sealwatch};

const T0: i64 = 4_000_000_000_000_000_000; // far in the future: always after sealwatch's start

fn id(n: u8) -> String {
    format!("{:02x}", n).repeat(32)
}

/// The engine every test here names `e`.
const E: &[(&str, &str)] = &[("engine", "e")];

/// Scrapes until the events of `podman_events_total` add up to `done`; returns that scrape.
fn wait_for_events(
    sw: &Sealwatch,
    what: &str,
    timeout: Duration,
    done: impl Fn(f64) -> bool,
) -> Exposition {
    wait_until(what, timeout, || {
        let m = sw.scrape();
        match m.try_sum("podman_events_total") {
            Ok(n) if done(n) => Ok(m),
            Ok(n) => Err(format!("{n} events")),
            Err(e) => Err(e),
        }
    })
}

/// Garbage lines and error objects in the event stream are skipped and counted, and the same
/// stream carries on: no reconnect, the events around them applied.
#[test]
fn garbage_lines_and_error_objects_are_skipped_and_counted_and_the_watcher_carries_on() {
    let podman = ScriptedPodman::start(vec![vec![
        Step::Chunk(container_event("create", &id(1), "before", T0, &[])),
        Step::Chunk(b"this is not json\n".to_vec()),
        Step::Chunk(b"{\"no\":\"type\"}\n".to_vec()),
        Step::Chunk(br#"{"cause":"bogus is an invalid filter","message":"failed to parse filters","response":500}"#.to_vec()),
        Step::Chunk(b"\n".to_vec()),
        Step::Chunk(container_event("create", &id(2), "after", T0 + 1, &[])),
        Step::Hold,
    ]]);
    let sw = Sealwatch::start(&["--podman.url", &format!("e={}", podman.url())]);
    let m = wait_for_events(&sw, "both events applied", Duration::from_secs(10), |n| {
        n == 2.0
    });
    assert_eq!(m.value("sealwatch_event_decode_errors_total", E), 2.0);
    assert_eq!(m.value("sealwatch_event_stream_errors_total", E), 1.0);
    assert_eq!(m.value("podman_up", E), 1.0, "still connected");
    assert_eq!(m.value("sealwatch_engine_reconnects_total", E), 0.0);
    let names: Vec<String> = sw
        .get_json("/containers?all=true")
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["after", "before"]);
}

/// A line longer than 1 MiB ends the stream with a reconnect (and a logged reason) instead of
/// growing memory without bound; the events after the reconnect are applied.
#[test]
fn an_oversized_line_leads_to_a_reconnect_not_unbounded_memory() {
    // 64 MiB without a newline, in 1 MiB chunks, then nothing: sealwatch must give up at 1 MiB.
    let mut first = vec![Step::Chunk(container_event(
        "create",
        &id(1),
        "c1",
        T0,
        &[],
    ))];
    first.extend((0..64).map(|_| Step::Chunk(vec![b'x'; 1 << 20])));
    first.push(Step::Hold);
    let second = vec![
        Step::Chunk(container_event("create", &id(2), "c2", T0 + 1, &[])),
        Step::Hold,
    ];
    let podman = ScriptedPodman::start(vec![first, second]);
    let sw = Sealwatch::start(&["--podman.url", &format!("e={}", podman.url())]);
    let m = wait_for_events(
        &sw,
        "the event after the reconnect",
        Duration::from_secs(15),
        |n| n == 2.0,
    );
    assert!(m.value("sealwatch_engine_reconnects_total", E) >= 1.0);
    assert!(m.value("sealwatch_event_decode_errors_total", E) >= 1.0);
    let rss = m.value("process_resident_memory_bytes", &[]);
    assert!(
        rss > 0.0 && rss < 48.0 * 1024.0 * 1024.0,
        "resident memory {rss} bytes"
    );
    assert!(
        sw.log().contains("longer than"),
        "the reason is logged:\n{}",
        sw.log()
    );
}

/// After a cut stream, the replay from `since` is de-duplicated: every event is counted once, and
/// a start after a death is a restart. The events are stamped in 2096: `since` is still never
/// later than now, or Podman would send nothing until then.
#[test]
fn a_replay_after_a_cut_stream_is_deduplicated_and_resumes_from_since() {
    let ev =
        |n: u8, action: &str, t: i64| container_event(action, &id(n), &format!("c{n}"), t, &[]);
    let s = 1_000_000_000;
    let first = vec![
        Step::Chunk(ev(1, "create", T0)),
        Step::Chunk(ev(1, "start", T0 + s)),
        Step::Chunk(ev(1, "died", T0 + 2 * s)),
        Step::Cut,
    ];
    // Podman replays from `since` (exclusive): the last two events again, then a new one.
    let second = vec![
        Step::Chunk(ev(1, "start", T0 + s)),
        Step::Chunk(ev(1, "died", T0 + 2 * s)),
        Step::Chunk(ev(1, "start", T0 + 3 * s)),
        Step::Hold,
    ];
    let podman = ScriptedPodman::start(vec![first, second]);
    // What Podman lists at either sync: the container, running.
    let listed = serde_json::json!([{
        "Id": id(1), "Names": ["c1"], "Image": "localhost/busybox:latest", "State": "running",
        "Status": "", "Pid": 4242, "Pod": "", "PodName": "", "IsInfra": false, "Labels": {},
        "Created": "2096-10-02T07:06:40Z", "StartedAt": T0 / 1_000_000_000 + 3,
        "ExitedAt": T0 / 1_000_000_000 + 2, "ExitCode": 0
    }]);
    podman.set_lists(&listed.to_string(), "[]");
    let sw = Sealwatch::start(&["--podman.url", &format!("e={}", podman.url())]);
    let m = wait_for_events(
        &sw,
        "the replayed stream applied",
        Duration::from_secs(15),
        |n| n >= 4.0,
    );
    assert_eq!(
        m.sum("podman_events_total"),
        4.0,
        "each event counted once: {:?}",
        m.series("podman_events_total").collect::<Vec<_>>()
    );
    assert_eq!(m.value("sealwatch_replayed_duplicate_events_total", E), 2.0);
    assert_eq!(
        m.value(
            "podman_events_total",
            &[("engine", "e"), ("type", "container"), ("action", "start")]
        ),
        2.0
    );
    let c = sw.get_json(&format!("/containers/{}", id(1)));
    assert_eq!(c["state"], "running");
    assert_eq!(c["restarts"], 1, "the start after the death is a restart");

    let requests = podman.event_requests();
    assert!(requests.len() >= 2, "{requests:?}");
    let since = requests[1]
        .split("since=")
        .nth(1)
        .and_then(|v| v.split('&').next())
        .map(|v| v.replace("%3A", ":"))
        .unwrap_or_default();
    let since = chrono::DateTime::parse_from_rfc3339(&since)
        .unwrap_or_else(|e| panic!("{requests:?}: since {since:?}: {e}"));
    let now = chrono::Utc::now();
    assert!(
        since <= now && since > now - chrono::Duration::minutes(5),
        "since {since} is not just before now ({now}): {requests:?}"
    );
}

/// Event lines split across HTTP chunks, and several lines in one chunk, are all applied.
#[test]
fn lines_split_across_chunks_and_many_per_chunk_are_all_applied() {
    let a = container_event("create", &id(1), "a", T0, &[]);
    let b = container_event("create", &id(2), "b", T0 + 1, &[]);
    let c = container_event("create", &id(3), "c", T0 + 2, &[]);
    let mut joined = b.clone();
    joined.extend_from_slice(&c);
    let podman = ScriptedPodman::start(vec![vec![
        Step::Chunk(a[..10].to_vec()),
        Step::Chunk(a[10..].to_vec()),
        Step::Chunk(joined),
        Step::Hold,
    ]]);
    let sw = Sealwatch::start(&["--podman.url", &podman.url()]);
    wait_until("three containers", Duration::from_secs(10), || {
        let v = sw.get_json("/containers?all=true");
        let n = v.as_array().map_or(0, |a| a.len());
        if n == 3 {
            Ok(())
        } else {
            Err(format!("{n} containers: {v}"))
        }
    });
}

/// A cleanly ended event stream is followed by a reconnect and a fresh resync, and the engine is
/// up again.
#[test]
fn a_clean_end_of_stream_reconnects_and_resyncs() {
    let podman = ScriptedPodman::start(vec![vec![Step::End]]);
    let sw = Sealwatch::start(&["--podman.url", &format!("e={}", podman.url())]);
    wait_until("a second resync", Duration::from_secs(10), || {
        let m = sw.scrape();
        let resyncs = m.try_value("sealwatch_engine_resyncs_total", E)?;
        let up = m.try_value("podman_up", E)?;
        if resyncs >= 2.0 && up == 1.0 {
            Ok(())
        } else {
            Err(format!("{resyncs} resyncs, podman_up {up}"))
        }
    });
    assert!(sw.log().contains("event stream ended"), "{}", sw.log());
}

/// A `tcp://` engine works like a unix one (through a loopback TCP relay to the scripted socket).
#[test]
fn a_tcp_engine_is_watched_like_a_unix_one() {
    let podman = ScriptedPodman::start(vec![vec![
        Step::Chunk(container_event("create", &id(7), "over-tcp", T0, &[])),
        Step::Hold,
    ]]);
    let sock = podman.url().trim_start_matches("unix://").to_owned();
    let relay = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = relay.local_addr().unwrap();
    std::thread::spawn(move || {
        for tcp in relay.incoming().flatten() {
            let Ok(unix) = std::os::unix::net::UnixStream::connect(&sock) else {
                return;
            };
            let (mut t1, mut u1) = (tcp.try_clone().unwrap(), unix.try_clone().unwrap());
            let (mut t2, mut u2) = (tcp, unix);
            std::thread::spawn(move || std::io::copy(&mut t1, &mut u1));
            std::thread::spawn(move || std::io::copy(&mut u2, &mut t2));
        }
    });
    let sw = Sealwatch::start(&["--podman.url", &format!("net=tcp://{addr}")]);
    wait_until(
        "the container seen over tcp",
        Duration::from_secs(10),
        || {
            let v = sw.get_json("/containers?all=true&engine=net");
            if v[0]["name"] == "over-tcp" {
                Ok(())
            } else {
                Err(v.to_string())
            }
        },
    );
}
