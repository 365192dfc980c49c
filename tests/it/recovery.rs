//! Podman's own failures against a real private Podman service (4.3.1; 5.4.2 and 6.1.1, file and
//! journald events): sealwatch is back moments
//! after the service returns, however long it was away, and counts and logs what happened.

use std::time::{Duration, Instant};

use crate::support::{Engine, PodmanService, Run, Sealwatch, BUSYBOX_IMAGE};

const SETTLE: Duration = Duration::from_secs(20);
/// Far below the 30 s the backoff reaches after a long outage, far above the milliseconds the
/// socket watch takes: a test that tells the two apart on a loaded machine.
const BACK_WITHIN: Duration = Duration::from_secs(5);

/// After outages of 3 s and of 45 s (the backoff at its 30 s cap: its next attempt would come
/// about 15 s after the service is back), sealwatch is ready again moments after the service
/// answers (the socket's return is noticed, not waited out with the backoff); each return counts as one
/// reconnection, the failed attempts in between are counted apart, and every new break is
/// logged as a warning, also when its text repeats an earlier one; the engine's version is
/// Podman's own.
#[test]
fn ready_again_moments_after_podman_returns_however_long_the_outage() {
    ready_again(Engine::DEFAULT, [3, 45]);
}
// The backoff is sealwatch's own and the same on every engine; what differs is how each Podman
// stops and comes back. 20 s puts the backoff at its 16 s step: its next attempt would come
// about 10 s after the service is back, still far from moments.
on_other_engines!(
    ready_again_moments_after_podman_returns_however_long_the_outage,
    |engine| ready_again(engine, [3, 20])
);

fn ready_again(engine: Engine, outages: [u64; 2]) {
    let mut svc = PodmanService::start_with(engine);
    svc.run(&Run::new(BUSYBOX_IMAGE).name("steady").sleeping());
    let sw = Sealwatch::start(&["--podman.url", &format!("local={}", svc.url())]);
    sw.wait_ready(200, SETTLE);
    let mut warnings = Vec::new();
    for outage in outages {
        let logged = sw.log().len();
        let down = Instant::now();
        svc.stop_service();
        sw.wait_ready(503, SETTLE);
        if let Some(rest) = Duration::from_secs(outage).checked_sub(down.elapsed()) {
            std::thread::sleep(rest);
        }
        svc.start_service();
        let answered = Instant::now();
        sw.wait_ready(200, BACK_WITHIN);
        eprintln!(
            "{engine:?}: outage of {outage} s: ready {:.2} s after the service answered",
            answered.elapsed().as_secs_f64()
        );
        let log = sw.log();
        let new = log.get(logged..).unwrap_or_default();
        warnings.push(
            new.lines()
                .filter(|l| l.contains("WARN") && l.contains("disconnected"))
                .count(),
        );
    }
    let m = sw.scrape();
    assert_eq!(
        m.value("sealwatch_engine_reconnects_total", &[("engine", "local")]),
        2.0
    );
    // The version comes from `_ping`'s header (fast), and is the one Podman itself reports.
    let version = svc.podman(&["version", "--format", "{{.Client.Version}}"]);
    assert_eq!(
        m.value(
            "podman_engine_info",
            &[("engine", "local"), ("version", version.trim())]
        ),
        1.0
    );
    assert!(
        m.value(
            "sealwatch_engine_connect_failures_total",
            &[("engine", "local")]
        ) >= 2.0,
        "every outage has at least one failed attempt"
    );
    assert!(
        warnings[0] > 0 && warnings[1] > 0,
        "the second outage is logged like the first at the default level: {warnings:?}\n{}",
        sw.log()
    );
}
