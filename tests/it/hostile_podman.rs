//! A hostile Podman (scripted at the wire level, on a private unix socket): endless bodies and
//! lines, control characters in what it says, exit codes that are not numbers. sealwatch must
//! keep its memory bounded, report the engine not ready with the reason, keep its log lines
//! honest and its label values clean. A real Podman cannot be made to do any of this.

use std::time::Duration;

use crate::support::scripted::{container_event, Answer, ScriptedPodman, Step};
use crate::support::{wait_until, Sealwatch};

const T0: i64 = 4_000_000_000_000_000_000; // far in the future: always after sealwatch's start
const E: &[(&str, &str)] = &[("engine", "e")];

/// The cap the tests set: small, so that hitting it is quick, and large enough to measure.
const CAP_MIB: u64 = 32;

fn id(n: u8) -> String {
    format!("{:02x}", n).repeat(32)
}

/// The peak resident memory (`VmHWM`) of a process, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/PID/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmHWM value");
    kib * 1024
}

/// Starts sealwatch on `podman` with a 32 MiB response cap; waits until the oversized-response
/// counter reaches 2 (a first attempt and a retry after the backoff), then checks: not ready
/// with a reason naming `mention`, logged once, alive, and peak memory under 3 times the cap.
fn capped(podman: &ScriptedPodman, mention: &str) {
    let sw = Sealwatch::start(&[
        "--podman.url",
        &format!("e={}", podman.url()),
        "--podman.max-response-size",
        &format!("{CAP_MIB}MiB"),
    ]);
    let m = wait_until("two oversized answers", Duration::from_secs(30), || {
        let m = sw.scrape();
        match m.try_value("sealwatch_podman_oversized_responses_total", E) {
            Ok(n) if n >= 2.0 => Ok(m),
            Ok(n) => Err(format!("{n} so far")),
            Err(e) => Err(e),
        }
    });
    assert_eq!(m.value("podman_up", E), 0.0);
    let ready = sw.wait_ready(503, Duration::from_secs(5));
    let reason = ready["not_ready"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(mention), "/-/ready reason: {reason}");
    let log = sw.log();
    let warned = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains(mention))
        .count();
    assert_eq!(warned, 1, "the reason is warned about once:\n{log}");
    let peak = peak_rss(sw.pid());
    println!(
        "{mention}: peak RSS {:.1} MiB with a {CAP_MIB} MiB cap (bound {} MiB)",
        peak as f64 / (1 << 20) as f64,
        3 * CAP_MIB
    );
    assert!(peak < 3 * (CAP_MIB << 20), "peak RSS {peak} bytes");
    assert!(sw.try_get("/-/healthy").is_ok(), "still serving");
}

/// An endless `/containers/json` body is cut at the cap: not ready with the reason, memory
/// bounded, retried with backoff, never a crash.
#[test]
fn an_endless_container_list_is_capped_and_reported() {
    let podman = ScriptedPodman::start(vec![]);
    podman.answer(
        "/libpod/containers/json",
        Answer::Endless(br#"{"Id":"aaaa","Names":["x"],"Labels":{"k":"v"}},"#.to_vec()),
    );
    capped(&podman, "/containers/json?all=true answered more than");
}

/// An endless `/version` body (the scripted Podman has no `_ping` version header, so sealwatch
/// asks `/version`) is cut at the cap the same way.
#[test]
fn an_endless_version_body_is_capped_and_reported() {
    let podman = ScriptedPodman::start(vec![]);
    podman.answer(
        "/libpod/version",
        Answer::Endless(b"{\"Version\":\"".to_vec()),
    );
    capped(&podman, "/version answered more than");
}

/// An endless event line (no newline, ever) ends each stream at the 1 MiB line cap: memory
/// bounded, counted as oversized, the engine reconnects.
#[test]
fn an_endless_event_line_is_capped() {
    let sessions = (0..8)
        .map(|_| vec![Step::Endless(b"{\"Type\":\"container\",".to_vec())])
        .collect();
    let podman = ScriptedPodman::start(sessions);
    let sw = Sealwatch::start(&["--podman.url", &format!("e={}", podman.url())]);
    wait_until("two oversized lines", Duration::from_secs(30), || {
        let n = sw
            .scrape()
            .try_value("sealwatch_podman_oversized_responses_total", E)?;
        (n >= 2.0).then_some(()).ok_or(format!("{n} so far"))
    });
    let peak = peak_rss(sw.pid());
    println!(
        "endless event line: peak RSS {:.1} MiB (line cap 1 MiB)",
        peak as f64 / (1 << 20) as f64
    );
    assert!(peak < 64 << 20, "peak RSS {peak} bytes");
    assert!(sw.log().contains("event line longer than"), "{}", sw.log());
}

/// Control characters from Podman are escaped in text logs: an error object in the event
/// stream, an error body and a version string with `\n` cannot forge a log line.
#[test]
fn podman_text_cannot_forge_log_lines() {
    let forged = "\n2099-01-01T00:00:00.000000Z  WARN sealwatch: FORGED";
    let error_object = serde_json::json!({
        "cause": format!("cause{forged}"),
        "message": format!("message{forged}"),
        "response": 500
    });
    let mut line = serde_json::to_vec(&error_object).unwrap();
    line.push(b'\n');
    // The stream error ends the stream; each reconnect's stream ends at once too, so the pod
    // list is asked again until it fails.
    let mut sessions = vec![vec![Step::Chunk(line), Step::End]];
    sessions.extend((0..20).map(|_| vec![Step::End]));
    let podman = ScriptedPodman::start(sessions);
    // After the stream error, the reconnect's pod list fails with a hostile error body.
    let body =
        serde_json::json!({"cause": "x", "message": format!("no pods{forged}"), "response": 500});
    let sw = Sealwatch::start(&["--podman.url", &format!("e={}", podman.url())]);
    wait_until("the stream error logged", Duration::from_secs(15), || {
        sw.log()
            .contains("error in the event stream")
            .then_some(())
            .ok_or("not yet".to_owned())
    });
    podman.answer("/libpod/pods/json", Answer::Status(500, body.to_string()));
    wait_until("the pod list error logged", Duration::from_secs(30), || {
        sw.log()
            .contains("no pods")
            .then_some(())
            .ok_or("not yet".to_owned())
    });
    let log = sw.log();
    assert!(
        !log.lines().any(|l| l.starts_with("2099-01-01")),
        "a forged line:\n{log}"
    );
    assert!(
        log.contains("message\\n2099-01-01"),
        "escaped, not dropped:\n{log}"
    );
    assert!(
        log.contains("no pods\\n2099-01-01"),
        "escaped, not dropped:\n{log}"
    );
}

/// `containerExitCode` values are normalised (` 137` and `00137` are 137) or, when not a number
/// from 0 to 255, counted as unparsable with the exit under `exit_code="unknown"`.
#[test]
fn exit_codes_are_normalised_or_counted_as_unparsable() {
    let died = |n: u8, code: &str, t: i64| {
        container_event(
            "died",
            &id(n),
            &format!("c{n}"),
            t,
            &[("containerExitCode", code)],
        )
    };
    let podman = ScriptedPodman::start(vec![vec![
        Step::Chunk(died(1, " 137", T0)),
        Step::Chunk(died(2, "00137", T0 + 1)),
        Step::Chunk(died(3, "abc", T0 + 2)),
        Step::Chunk(died(4, "99999", T0 + 3)),
        Step::Chunk(died(5, "0", T0 + 4)),
        Step::Hold,
    ]]);
    let sw = Sealwatch::start(&["--podman.url", &format!("e={}", podman.url())]);
    let m = wait_until("five exits", Duration::from_secs(15), || {
        let m = sw.scrape();
        match m.try_sum("podman_container_exits_total") {
            Ok(5.0) => Ok(m),
            Ok(n) => Err(format!("{n} exits")),
            Err(e) => Err(e),
        }
    });
    let codes = m.nonzero_by("podman_container_exits_total", &["exit_code"]);
    let codes: Vec<(String, f64)> = codes.into_iter().map(|(k, v)| (k[0].clone(), v)).collect();
    assert_eq!(
        codes,
        [
            ("0".to_owned(), 1.0),
            ("137".to_owned(), 2.0),
            ("unknown".to_owned(), 2.0)
        ]
    );
    assert_eq!(
        m.value("sealwatch_event_unparsable_exit_codes_total", E),
        2.0
    );
}
