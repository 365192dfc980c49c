//! Smoke test for the integration-test harness in tests/support (real Podman, no sealwatch).
use std::time::{Duration, Instant};

use crate::support::{wait_until, PodmanService};

fn state_of(ps: &serde_json::Value, name: &str) -> Option<String> {
    ps.as_array()?
        .iter()
        .find(|c| {
            c["Names"]
                .as_array()
                .is_some_and(|n| n.iter().any(|n| n == name))
        })
        .and_then(|c| c["State"].as_str().map(str::to_string))
}

#[test]
fn podman_service_starts_and_restarts() {
    let t0 = Instant::now();
    let mut svc = PodmanService::start();
    eprintln!("PodmanService::start took {:?}", t0.elapsed());
    assert!(svc.url().starts_with("unix:///"), "{}", svc.url());
    assert!(svc.socket_path().exists());

    let t = Instant::now();
    let id = svc.podman(&[
        "run",
        "-d",
        "--name",
        "c1",
        "localhost/busybox:latest",
        "sleep",
        "1000",
    ]);
    eprintln!("podman run -d took {:?}", t.elapsed());
    assert_eq!(id.len(), 64, "container id: {id:?}");
    assert_eq!(
        state_of(&svc.ps_all(), "c1").as_deref(),
        Some("running"),
        "{:#}",
        svc.ps_all()
    );
    assert_eq!(svc.pod_ps(), serde_json::json!([]));

    let t = Instant::now();
    svc.stop_service();
    eprintln!("stop_service took {:?}", t.elapsed());
    assert!(
        !svc.try_podman(&["ps"]).status.success(),
        "service should be down"
    );

    svc.podman_direct(&["stop", "-t", "0", "c1"]);

    let t = Instant::now();
    svc.start_service();
    eprintln!("start_service (restart) took {:?}", t.elapsed());
    let ps = svc.ps_all();
    assert_eq!(state_of(&ps, "c1").as_deref(), Some("exited"), "{ps:#}");

    assert_eq!(
        wait_until("nothing", Duration::from_secs(1), || Ok::<_, String>(7)),
        7
    );

    let t = Instant::now();
    let dir = svc.dir().to_path_buf();
    let socket_url = svc.url();
    drop(svc);
    eprintln!("drop took {:?}", t.elapsed());
    assert!(
        !dir.exists(),
        "temp dir {} should be removed",
        dir.display()
    );
    let leftovers: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&socket_url) || c.contains(&format!("{}/", dir.display())))
        .collect();
    assert!(
        leftovers.is_empty(),
        "processes left behind: {leftovers:#?}"
    );
}

#[test]
#[should_panic(expected = "waiting for the impossible; last error: nope")]
fn wait_until_panics_with_last_error() {
    let mut n = 0;
    wait_until::<()>("the impossible", Duration::from_millis(250), || {
        n += 1;
        Err(format!("nope {n}"))
    });
}
