//! Fault injection through a scripted Podman that speaks the exact 4.3.1 wire format: broken
//! lines, error objects, cut streams, oversized lines and replays. Behaviour with the real
//! service is proven in `podman_sync.rs`; this file covers what a real Podman cannot be made to do.

use std::time::Duration;

use crate::support::scripted::{container_event, ScriptedPodman, Step};
use crate::support::{wait_until, Sealwatch};

const BIN: &str = env!("CARGO_BIN_EXE_sealwatch");
const T0: i64 = 4_000_000_000_000_000_000; // far in the future: always after sealwatch's start

fn id(n: u8) -> String {
    format!("{:02x}", n).repeat(32)
}

/// The value of one un-labelled-beyond-engine sample in a metrics text, or 0 when absent.
fn metric(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name_and_labels)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

fn sum_family(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

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
    let sw = Sealwatch::start(BIN, &["--podman.url", &format!("e={}", podman.url())]);
    let text = wait_until("both events applied", Duration::from_secs(10), || {
        let (_, text) = sw.get("/metrics");
        if sum_family(&text, "podman_events_total") == 2.0 {
            Ok(text)
        } else {
            Err(text)
        }
    });
    assert_eq!(
        metric(&text, "sealwatch_event_decode_errors_total{engine=\"e\"}"),
        2.0
    );
    assert_eq!(
        metric(&text, "sealwatch_event_stream_errors_total{engine=\"e\"}"),
        1.0
    );
    assert_eq!(
        metric(&text, "podman_up{engine=\"e\"}"),
        1.0,
        "still connected"
    );
    assert_eq!(
        metric(&text, "sealwatch_engine_reconnects_total{engine=\"e\"}"),
        0.0
    );
    let names: Vec<String> = sw
        .get_json("/containers?all=true")
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["after", "before"]);
}

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
    let sw = Sealwatch::start(BIN, &["--podman.url", &format!("e={}", podman.url())]);
    let text = wait_until(
        "the event after the reconnect",
        Duration::from_secs(15),
        || {
            let (_, text) = sw.get("/metrics");
            if sum_family(&text, "podman_events_total") == 2.0 {
                Ok(text)
            } else {
                Err(text)
            }
        },
    );
    assert!(metric(&text, "sealwatch_engine_reconnects_total{engine=\"e\"}") >= 1.0);
    assert!(metric(&text, "sealwatch_event_decode_errors_total{engine=\"e\"}") >= 1.0);
    let rss = metric(&text, "process_resident_memory_bytes");
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
    let sw = Sealwatch::start(BIN, &["--podman.url", &format!("e={}", podman.url())]);
    let text = wait_until(
        "the replayed stream applied",
        Duration::from_secs(15),
        || {
            let (_, text) = sw.get("/metrics");
            if sum_family(&text, "podman_events_total") >= 4.0 {
                Ok(text)
            } else {
                Err(text)
            }
        },
    );
    assert_eq!(
        sum_family(&text, "podman_events_total"),
        4.0,
        "each event counted once:\n{text}"
    );
    assert_eq!(
        metric(
            &text,
            "sealwatch_replayed_duplicate_events_total{engine=\"e\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(
            &text,
            "podman_events_total{engine=\"e\",type=\"container\",action=\"start\"}"
        ),
        2.0
    );
    let c = sw.get_json(&format!("/containers/{}", id(1)));
    assert_eq!(c["state"], "running");
    assert_eq!(c["restarts"], 1, "the start after the death is a restart");

    let requests = podman.event_requests();
    assert!(requests.len() >= 2, "{requests:?}");
    // since = newest applied (T0 + 2 s) minus the 5 s overlap, as RFC3339Nano.
    let expected = chrono_free_rfc3339(T0 + 2 * s - 5 * s);
    assert!(
        requests[1].contains(&format!("since={expected}")),
        "{requests:?} lacks {expected}"
    );
}

/// RFC3339Nano of unix nanoseconds, percent-encoded as sealwatch sends it.
fn chrono_free_rfc3339(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}%3A{m:02}%3A{s:02}.{frac:09}Z")
}

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
    let sw = Sealwatch::start(BIN, &["--podman.url", &podman.url()]);
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

#[test]
fn a_clean_end_of_stream_reconnects_and_resyncs() {
    let podman = ScriptedPodman::start(vec![vec![Step::End]]);
    let sw = Sealwatch::start(BIN, &["--podman.url", &format!("e={}", podman.url())]);
    wait_until("a second resync", Duration::from_secs(10), || {
        let (_, text) = sw.get("/metrics");
        let resyncs = metric(&text, "sealwatch_engine_resyncs_total{engine=\"e\"}");
        if resyncs >= 2.0 && metric(&text, "podman_up{engine=\"e\"}") == 1.0 {
            Ok(())
        } else {
            Err(text)
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
    let sw = Sealwatch::start(BIN, &["--podman.url", &format!("net=tcp://{addr}")]);
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
