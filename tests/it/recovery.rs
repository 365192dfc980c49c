//! Podman's own failures against a real private Podman 4.3.1 service: sealwatch is back moments
//! after the service returns, however long it was away, and counts and logs what happened.

use std::time::{Duration, Instant};

use crate::support::{PodmanService, Run, Sealwatch, BUSYBOX_IMAGE};

const SETTLE: Duration = Duration::from_secs(20);
/// Far below the 30 s the backoff reaches after a long outage, far above the milliseconds the
/// socket watch takes: a test that tells the two apart on a loaded machine.
const BACK_WITHIN: Duration = Duration::from_secs(5);

/// After outages of 3 s and of 60 s, sealwatch is ready again moments after the service answers
/// (the socket's return is noticed, not waited out with the backoff); each return counts as one
/// reconnection, the failed attempts in between are counted apart, and every new break is
/// logged as a warning, also when its text repeats an earlier one.
#[test]
fn ready_again_moments_after_podman_returns_however_long_the_outage() {
    let mut svc = PodmanService::start();
    svc.run(&Run::new(BUSYBOX_IMAGE).name("steady").sleeping());
    let sw = Sealwatch::start(&["--podman.url", &format!("local={}", svc.url())]);
    sw.wait_ready(200, SETTLE);
    let mut warnings = Vec::new();
    for outage in [3u64, 60] {
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
            "outage of {outage} s: ready {:.2} s after the service answered",
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
