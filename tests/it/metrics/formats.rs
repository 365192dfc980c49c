//! The exposition formats: lint-clean 0.0.4 text and OpenMetrics, content negotiation, gzip
//! and the telemetry path.

use std::collections::BTreeSet;
use std::io::Read;

use super::compare::wait_gauges_match;
use super::{
    drive_health, metrics_doc, wait_ready, wait_state, ALLOW, ALLOW_FLAG, PROMETHEUS_ACCEPT,
};
use crate::support::process::raw_get;
use crate::support::{
    assert_lint_clean, Exposition, Format, PodmanService, Run, Sealwatch, BUSYBOX_IMAGE as IMAGE,
};

/// Pod p1 with two labelled members, a container that exited 3 and a healthy one outside pods.
fn small_workload(svc: &PodmanService) {
    svc.podman(&["pod", "create", "--name", "p1"]);
    svc.run(
        &Run::new(IMAGE)
            .pod("p1")
            .name("web")
            .label("app", "web")
            .label("io.podman.compose.project", "shop")
            .sleeping(),
    );
    svc.run(
        &Run::new(IMAGE)
            .pod("p1")
            .name("db")
            .label("app", "db")
            .sleeping(),
    );
    svc.run(&Run::new(IMAGE).name("x3").sh("exit 3"));
    svc.run(&Run::new(IMAGE).name("hc").health_cmd("true").sleeping());
    drive_health(svc, "hc", "healthy");
}

/// The gzip-compressed UTF-8 text in `data`.
fn gunzip(data: &[u8]) -> String {
    let mut out = String::new();
    flate2::read::GzDecoder::new(data)
        .read_to_string(&mut out)
        .expect("valid gzip with UTF-8 inside");
    out
}

/// The `podman_*` series of `e` by name and labels; a bucket's `le` is written `10` in the 0.0.4
/// text and `10.0` in OpenMetrics, so it is compared as a number.
fn podman_series(e: &Exposition) -> BTreeSet<(String, Vec<(String, String)>)> {
    e.samples
        .iter()
        .filter(|s| s.name.starts_with("podman_"))
        .map(|s| {
            let labels = s
                .labels
                .iter()
                .map(|(k, v)| match (k.as_str(), v.parse::<f64>()) {
                    ("le", Ok(n)) => (k.clone(), format!("{n:?}")),
                    _ => (k.clone(), v.clone()),
                })
                .collect();
            (s.name.clone(), labels)
        })
        .collect()
}

/// Real output passes `promtool check metrics` and has no duplicate series and HELP/TYPE on every
/// family; OpenMetrics is negotiated and ends in `# EOF`; gzip is honoured; the telemetry path
/// flag moves the endpoint.
#[test]
fn output_is_lint_clean_in_both_formats_with_and_without_gzip() {
    let svc = PodmanService::start();
    let sw = Sealwatch::start(&["--podman.url", &svc.url(), "--labels.allowlist", ALLOW_FLAG]);
    wait_ready(&sw);
    small_workload(&svc);
    wait_state(&svc, "x3", "exited");
    wait_gauges_match(&svc, &sw, ALLOW);

    // 0.0.4 text.
    let text = sw.scrape_text("/metrics");
    let plain = assert_lint_clean(&text, Format::Text);
    // Every family of the contract is there (by sample name, as users query them).
    let families: BTreeSet<&str> = plain.samples.iter().map(|s| s.name.as_str()).collect();
    for f in [
        "podman_up",
        "podman_engine_info",
        "podman_containers",
        "podman_pod_containers",
        "podman_label_containers",
        "podman_pods",
        "podman_pod_info",
        "podman_container_info",
        "podman_container_state",
        "podman_container_labels",
        "podman_container_started_time_seconds",
        "podman_container_exit_code",
        "podman_container_health",
        "podman_container_restarts_total",
        "podman_events_total",
        "podman_pod_container_events_total",
        "podman_label_container_events_total",
        "podman_container_exits_total",
        "sealwatch_build_info",
        "sealwatch_engine_reconnects_total",
        "sealwatch_engine_resyncs_total",
        "sealwatch_event_decode_errors_total",
        "sealwatch_last_event_timestamp_seconds",
        "sealwatch_engine_stats_source",
        "sealwatch_stats_samples_total",
        "podman_container_cpu_seconds_total",
        "podman_container_memory_working_set_bytes",
        "podman_container_pids",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            families.contains(f),
            "family {f} missing; have {families:?}"
        );
    }
    assert_eq!(plain.value("podman_up", &[]), 1.0);
    // ...and documented, each by the name users query.
    let doc = metrics_doc();
    for f in &families {
        assert!(doc.contains(&format!("`{f}`")), "{f} is not in README.md");
    }

    // OpenMetrics, both as asked for plainly and as Prometheus asks.
    for accept in [
        "application/openmetrics-text;version=1.0.0",
        PROMETHEUS_ACCEPT,
    ] {
        let r = raw_get(sw.port(), "/metrics", &[("Accept", accept)]).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("content-type"),
            Some("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            "Accept: {accept}"
        );
        let body = r.text();
        assert!(
            body.ends_with("# EOF\n"),
            "tail: {:?}",
            &body[body.len().saturating_sub(80)..]
        );
        assert_lint_clean(&body, Format::OpenMetrics);
    }
    // The same podman_* series in both formats. Both are scraped back to back, again while they
    // differ: a resource sample may be up to --stats.interval old, so a scrape that takes a
    // fresh one can see a container's cgroup appear or go between two scrapes.
    let mut attempt = 0;
    loop {
        let plain = assert_lint_clean(&sw.scrape_text("/metrics"), Format::Text);
        let r = raw_get(sw.port(), "/metrics", &[("Accept", PROMETHEUS_ACCEPT)]).unwrap();
        let om = assert_lint_clean(&r.text(), Format::OpenMetrics);
        let (om, plain) = (podman_series(&om), podman_series(&plain));
        if om == plain {
            break;
        }
        attempt += 1;
        let diff = format!(
            "OpenMetrics and text differ in podman_* series:\n  only in OpenMetrics: {:?}\n  only in text: {:?}",
            om.difference(&plain).collect::<Vec<_>>(),
            plain.difference(&om).collect::<Vec<_>>()
        );
        assert!(attempt < 5, "{diff}");
        eprintln!("attempt {attempt}: {diff}");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }

    // No Accept at all, or one that does not want OpenMetrics: the 0.0.4 text.
    for headers in [
        &[][..],
        &[("Accept", "*/*")][..],
        &[("Accept", "application/openmetrics-text; q=0, text/plain")][..],
    ] {
        let r = raw_get(sw.port(), "/metrics", headers).unwrap();
        assert_eq!(
            r.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8"),
            "{headers:?}"
        );
        assert!(!r.text().contains("# EOF"));
    }

    // gzip, for both formats.
    for (accept, format) in [
        ("text/plain", Format::Text),
        (PROMETHEUS_ACCEPT, Format::OpenMetrics),
    ] {
        let r = raw_get(
            sw.port(),
            "/metrics",
            &[("Accept", accept), ("Accept-Encoding", "gzip")],
        )
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        assert!(r
            .header("vary")
            .is_some_and(|v| v.contains("Accept-Encoding")));
        assert_eq!(&r.body[..2], &[0x1f, 0x8b], "gzip magic");
        let body = gunzip(&r.body);
        assert_lint_clean(&body, format);
    }
    let r = raw_get(
        sw.port(),
        "/metrics",
        &[("Accept-Encoding", "gzip;q=0, identity")],
    )
    .unwrap();
    assert_eq!(r.header("content-encoding"), None);

    // --web.telemetry-path.
    let custom = Sealwatch::start(&[
        "--podman.url",
        &svc.url(),
        "--web.telemetry-path",
        "/custom",
    ]);
    wait_ready(&custom);
    let text = custom.scrape_text("/custom");
    let e = assert_lint_clean(&text, Format::Text);
    assert_eq!(e.value("podman_up", &[]), 1.0);
    let r = raw_get(custom.port(), "/metrics", &[]).unwrap();
    assert_eq!(r.status, 404, "{}", r.text());

    // --metrics.scrape-cache off: every scrape written anew, the same inventory series as with
    // the cache, in both formats, plain and gzipped, scrape after scrape.
    let uncached = Sealwatch::start(&[
        "--podman.url",
        &svc.url(),
        "--labels.allowlist",
        ALLOW_FLAG,
        "--metrics.scrape-cache",
        "off",
    ]);
    wait_ready(&uncached);
    wait_gauges_match(&svc, &uncached, ALLOW);
    let mut attempt = 0;
    loop {
        let mut differences = Vec::new();
        for (accept, format) in [
            ("text/plain", Format::Text),
            (PROMETHEUS_ACCEPT, Format::OpenMetrics),
        ] {
            let scrape = |port, gzip: bool| {
                let mut headers = vec![("Accept", accept)];
                if gzip {
                    headers.push(("Accept-Encoding", "gzip"));
                }
                let r = raw_get(port, "/metrics", &headers).unwrap();
                assert_eq!(r.status, 200);
                let body = if gzip { gunzip(&r.body) } else { r.text() };
                // The inventory's series: event counters and histograms count from each
                // sealwatch's own start, and this one started later.
                let mut series = podman_series(&assert_lint_clean(&body, format));
                series.retain(|(name, _)| {
                    !["_total", "_bucket", "_count", "_sum"]
                        .iter()
                        .any(|s| name.ends_with(s))
                });
                series
            };
            for gzip in [false, true, false] {
                let (want, got) = (scrape(sw.port(), gzip), scrape(uncached.port(), gzip));
                if want != got {
                    differences.push(format!(
                        "{accept} gzip={gzip}: only with the cache {:?}, only without {:?}",
                        want.difference(&got).collect::<Vec<_>>(),
                        got.difference(&want).collect::<Vec<_>>()
                    ));
                }
            }
        }
        if differences.is_empty() {
            break;
        }
        attempt += 1;
        assert!(attempt < 5, "{differences:?}");
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let e = assert_lint_clean(&uncached.scrape_text("/metrics"), Format::Text);
    assert_eq!(
        e.value("podman_container_exit_code", &[("name", "x3")]),
        3.0
    );
}
