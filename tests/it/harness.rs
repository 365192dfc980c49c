//! The integration-test harness itself (support/): the private Podman service, the polling
//! helper and the argument builders, with real Podman and no sealwatch.

use std::time::{Duration, Instant};

use crate::support::{wait_until, Exposition, PodmanService, Run, BUSYBOX_IMAGE};

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

/// The private Podman service starts, runs a container, stops and restarts with a change made
/// on its storage while it was down, and leaves no directory or process behind.
#[test]
fn podman_service_starts_and_restarts() {
    let t0 = Instant::now();
    let mut svc = PodmanService::start();
    eprintln!("PodmanService::start took {:?}", t0.elapsed());
    assert!(svc.url().starts_with("unix:///"), "{}", svc.url());
    assert!(svc.socket_path().exists());

    let t = Instant::now();
    let id = svc.run(&Run::new(BUSYBOX_IMAGE).name("c1").sleeping());
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

/// `wait_until` gives up after its timeout with the last error in the message.
#[test]
#[should_panic(expected = "waiting for the impossible; last error: nope")]
fn wait_until_panics_with_last_error() {
    let mut n = 0;
    wait_until::<()>("the impossible", Duration::from_millis(250), || {
        n += 1;
        Err(format!("nope {n}"))
    });
}

/// `Run` writes exactly the `podman` arguments a test would have spelled out, in order.
#[test]
fn run_builder_writes_the_podman_arguments() {
    let args = Run::new("img")
        .pod("p")
        .name("c")
        .label("app", "web")
        .restart("always")
        .health_cmd("test -e /run/ok")
        .health_retries(1)
        .sh("exit 3")
        .args();
    assert_eq!(
        args,
        [
            "run",
            "-d",
            "--pod",
            "p",
            "--name",
            "c",
            "--label",
            "app=web",
            "--restart",
            "always",
            "--health-cmd",
            "test -e /run/ok",
            "--health-interval",
            "disable",
            "--health-retries",
            "1",
            "img",
            "sh",
            "-c",
            "exit 3",
        ]
    );
    assert_eq!(
        Run::create("img").name("c").args(),
        ["create", "--name", "c", "img"]
    );
}

/// The exposition look-ups fail on an absent series, naming it and listing what exists, instead
/// of reading it as 0; only `nonzero_by` reads "0" and "absent" alike, as its name says.
#[test]
fn exposition_lookups_never_read_an_absent_series_as_zero() {
    let m = Exposition::parse_or_panic(
        "# HELP x_total Things.\n# TYPE x_total counter\nx_total{engine=\"a\"} 3\nx_total{engine=\"b\"} 0\n",
    );
    assert_eq!(m.value("x_total", &[("engine", "a")]), 3.0);
    assert_eq!(m.value("x_total", &[("engine", "b")]), 0.0);
    let absent = m.try_value("x_total", &[("engine", "c")]).unwrap_err();
    assert!(
        absent.contains("x_total") && absent.contains("\"engine\", \"a\""),
        "{absent}"
    );
    let ambiguous = m.try_value("x_total", &[]).unwrap_err();
    assert!(ambiguous.contains("2 series"), "{ambiguous}");
    assert!(m.try_value("y_total", &[]).is_err());
    assert!(m.try_sum("y_total").is_err());
    assert_eq!(m.sum("x_total"), 3.0);
    assert_eq!(
        m.nonzero_by("x_total", &["engine"]),
        [(vec!["a".to_owned()], 3.0)].into()
    );
    assert!(m.nonzero_by("y_total", &["engine"]).is_empty());
}
