//! sealwatch against a real, private Podman service (4.3.1, and for the main two tests also
//! 5.4.2 and 6.1.1, with file and journald events): after every kind of change, what
//! `/containers` and `/pods` show equals what `podman ps -a` and `podman pod ps` say, also across
//! a restart of the service, when sealwatch starts first, and with two engines at once.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::support::{wait_until, Engine, PodmanService, Run, Sealwatch, Version, BUSYBOX_IMAGE};
const SETTLE: Duration = Duration::from_secs(20);

/// (engine, id, name, state, pod id) of every container.
type ContainerKey = (String, String, String, String, String);
/// (engine, id, name, state, infra id, member ids) of every pod.
type PodKey = (String, String, String, String, String, BTreeSet<String>);

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn podman_containers(engine: &str, svc: &PodmanService) -> BTreeSet<ContainerKey> {
    svc.ps_all()
        .as_array()
        .expect("ps array")
        .iter()
        .map(|c| {
            (
                engine.to_owned(),
                str_of(&c["Id"]),
                str_of(&c["Names"][0]),
                str_of(&c["State"]),
                str_of(&c["Pod"]),
            )
        })
        .collect()
}

fn sealwatch_containers(sw: &Sealwatch, query: &str) -> Result<BTreeSet<ContainerKey>, String> {
    let (status, body) = sw.try_get(&format!("/containers?all=true{query}"))?;
    if status != 200 {
        return Err(format!("status {status}: {body}"));
    }
    let v: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    Ok(v.as_array()
        .ok_or("not an array")?
        .iter()
        .map(|c| {
            (
                str_of(&c["engine"]),
                str_of(&c["id"]),
                str_of(&c["name"]),
                str_of(&c["state"]),
                str_of(&c["pod"]["id"]),
            )
        })
        .collect())
}

fn podman_pods(engine: &str, svc: &PodmanService) -> BTreeSet<PodKey> {
    svc.pod_ps()
        .as_array()
        .expect("pod ps array")
        .iter()
        .map(|p| {
            let members = p["Containers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| str_of(&c["Id"]))
                .collect();
            (
                engine.to_owned(),
                str_of(&p["Id"]),
                str_of(&p["Name"]),
                str_of(&p["Status"]).to_lowercase(),
                str_of(&p["InfraId"]),
                members,
            )
        })
        .collect()
}

fn sealwatch_pods(sw: &Sealwatch) -> Result<BTreeSet<PodKey>, String> {
    let (status, body) = sw.try_get("/pods")?;
    if status != 200 {
        return Err(format!("status {status}: {body}"));
    }
    let v: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    Ok(v.as_array()
        .ok_or("not an array")?
        .iter()
        .map(|p| {
            let members = p["container_ids"]
                .as_array()
                .into_iter()
                .flatten()
                .map(str_of)
                .collect();
            (
                str_of(&p["engine"]),
                str_of(&p["id"]),
                str_of(&p["name"]),
                str_of(&p["state"]),
                str_of(&p["infra_id"]),
                members,
            )
        })
        .collect())
}

/// Waits until sealwatch's containers and pods equal Podman's; panics with both sides if not.
fn assert_converges(sw: &Sealwatch, engines: &[(&str, &PodmanService)]) {
    wait_until(
        "sealwatch's inventory equals podman ps -a and podman pod ps",
        SETTLE,
        || {
            let mut want_c = BTreeSet::new();
            let mut want_p = BTreeSet::new();
            for (name, svc) in engines {
                want_c.extend(podman_containers(name, svc));
                want_p.extend(podman_pods(name, svc));
            }
            let got_c = sealwatch_containers(sw, "")?;
            let got_p = sealwatch_pods(sw)?;
            if got_c == want_c && got_p == want_p {
                return Ok(());
            }
            Err(format!(
            "containers only in podman: {:#?}\ncontainers only in sealwatch: {:#?}\npods only in podman: {:#?}\npods only in sealwatch: {:#?}",
            want_c.difference(&got_c).collect::<Vec<_>>(),
            got_c.difference(&want_c).collect::<Vec<_>>(),
            want_p.difference(&got_p).collect::<Vec<_>>(),
            got_p.difference(&want_p).collect::<Vec<_>>(),
        ))
        },
    );
}

/// `podman run -d --name NAME busybox …`, still to be given its command.
fn busybox(name: &str) -> Run {
    Run::new(BUSYBOX_IMAGE).name(name)
}

/// Every lifecycle change a user makes shows up exactly: paused-before-start, created-only,
/// exited non-zero, kill, restart, rename, healthcheck, rm -f, pods with members and infra.
#[test]
fn inventory_equals_podman_after_a_burst_of_changes() {
    burst_of_changes(Engine::DEFAULT);
}
on_other_engines!(
    inventory_equals_podman_after_a_burst_of_changes,
    burst_of_changes
);

fn burst_of_changes(engine: Engine) {
    let svc = PodmanService::start_with(engine);
    // Before sealwatch starts: a paused container, a created-only one, an exited one.
    svc.run(&busybox("paused-early").sleeping());
    svc.podman(&["pause", "paused-early"]);
    svc.run(
        &Run::create(BUSYBOX_IMAGE)
            .name("created-only")
            .cmd(["sleep", "1"]),
    );
    svc.run(&busybox("early-exit").sh("exit 0"));

    let sw = Sealwatch::start(&["--podman.url", &format!("local={}", svc.url())]);
    sw.wait_ready(200, SETTLE);
    assert_converges(&sw, &[("local", &svc)]);

    // The burst, while sealwatch watches.
    svc.run(&busybox("plain").label("app", "web").sleeping());
    svc.podman(&["pod", "create", "--name", "shop", "--label", "team=a"]);
    svc.run(
        &busybox("shop-web")
            .pod("shop")
            .label("app", "web")
            .sleeping(),
    );
    svc.run(&busybox("shop-db").pod("shop").label("app", "db").sleeping());
    svc.run(&busybox("exit3").sh("exit 3"));
    svc.run(&busybox("to-kill").sleeping());
    svc.podman(&["kill", "to-kill"]);
    svc.run(&busybox("to-restart").sleeping());
    svc.podman(&["restart", "-t", "0", "to-restart"]);
    svc.run(&busybox("old-name").sleeping());
    svc.podman(&["rename", "old-name", "new-name"]);
    svc.run(
        &busybox("checked")
            .health_cmd("test -e /run/ok")
            .health_retries(1)
            .sleeping(),
    );
    svc.podman(&["exec", "checked", "touch", "/run/ok"]);
    for _ in 0..2 {
        svc.podman(&["healthcheck", "run", "checked"]);
    }
    svc.run(&busybox("doomed").sleeping());
    svc.podman(&["rm", "-f", "-t", "0", "doomed"]);
    svc.podman(&["pod", "create", "--name", "gone"]);
    svc.run(&busybox("gone-member").pod("gone").sleeping());
    svc.podman(&["pod", "rm", "-f", "-t", "0", "gone"]);
    svc.podman(&["unpause", "paused-early"]);
    svc.podman(&["pause", "plain"]);

    assert_converges(&sw, &[("local", &svc)]);
    assert_eq!(
        sw.scrape()
            .value("sealwatch_engine_resyncs_total", &[("engine", "local")]),
        1.0,
        "events alone, without a resync, must have brought every change"
    );

    // Details beyond ps's columns.
    let c = sw.get_json("/containers/exit3");
    assert_eq!(
        (c["state"].as_str(), c["exit_code"].as_i64()),
        (Some("exited"), Some(3))
    );
    let c = sw.get_json("/containers/to-kill");
    assert_eq!(c["exit_code"], 137);
    // README: Podman 4.6+ lists its own restart count, to which `podman restart` does not
    // add; on 4.3-4.5 sealwatch counts the starts after a death it saw.
    let restarts = match engine.version {
        Version::V4 => 1,
        _ => svc
            .podman(&["inspect", "--format", "{{.RestartCount}}", "to-restart"])
            .parse()
            .expect("RestartCount"),
    };
    let c = sw.get_json("/containers/to-restart");
    assert_eq!(
        (c["state"].as_str(), c["restarts"].as_u64()),
        (Some("running"), Some(restarts))
    );
    let c = sw.get_json("/containers/checked");
    assert_eq!(c["health"], "healthy", "{c}");
    let c = sw.get_json("/containers/shop-web");
    assert_eq!(c["pod"]["name"], "shop");
    assert_eq!(c["labels"]["app"], "web");
    let infra: Vec<Value> = sw
        .get_json("/containers?all=true")
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["infra"] == true)
        .cloned()
        .collect();
    assert_eq!(
        infra.len(),
        1,
        "one infra container, of pod shop: {infra:?}"
    );
    let pod = sw.get_json("/pods/shop");
    assert_eq!(pod["state"], "running");
    assert_eq!(pod["infra_id"], infra[0]["id"]);
    // Two members running; the infra container is in `container_ids` but not counted, as in
    // podman_pod_containers.
    assert_eq!(pod["containers"]["running"], 2);
    assert_eq!(pod["container_ids"].as_array().map(Vec::len), Some(3));

    // Filters.
    let names = |q: &str| -> Vec<String> {
        let mut v: Vec<String> = sw
            .get_json(&format!("/containers{q}"))
            .as_array()
            .unwrap()
            .iter()
            .map(|c| str_of(&c["name"]))
            .collect();
        v.sort();
        v
    };
    assert_eq!(names("?label=app=web&all=true"), ["plain", "shop-web"]);
    assert_eq!(names("?pod=shop&label=app"), ["shop-db", "shop-web"]);
    assert_eq!(names("?state=exited"), ["early-exit", "exit3", "to-kill"]);
    assert!(
        !names("").contains(&"exit3".to_owned()),
        "default shows running and paused only"
    );
    assert!(
        names("").contains(&"plain".to_owned()),
        "paused is shown by default"
    );
    assert_eq!(names("?engine=elsewhere&all=true"), Vec::<String>::new());
    let (status, body) = sw.get("/containers?colour=red");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("colour"), "{body}");
    let (status, _) = sw.get("/containers/no-such-thing");
    assert_eq!(status, 404);
    let short = &c["id"].as_str().unwrap()[..12];
    assert_eq!(
        sw.get_json(&format!("/containers/{short}"))["name"],
        "shop-web"
    );
}

/// A Podman restart: /-/ready turns 503, changes made while it is down are picked up after it
/// comes back, and /-/ready returns to 200.
#[test]
fn changes_while_the_service_is_down_are_picked_up_after_it_returns() {
    changes_while_down(Engine::DEFAULT);
}
on_other_engines!(
    changes_while_the_service_is_down_are_picked_up_after_it_returns,
    changes_while_down
);

fn changes_while_down(engine: Engine) {
    let mut svc = PodmanService::start_with(engine);
    svc.run(&busybox("keeps-running").sleeping());
    svc.run(&busybox("will-stop").sleeping());
    svc.run(&busybox("will-go").sleeping());
    let sw = Sealwatch::start(&["--podman.url", &format!("local={}", svc.url())]);
    sw.wait_ready(200, SETTLE);
    assert_converges(&sw, &[("local", &svc)]);

    svc.stop_service();
    let body = sw.wait_ready(503, SETTLE);
    let reason = body["not_ready"][0]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(reason.contains("disconnected"), "{body}");

    svc.podman_direct(&["stop", "-t", "0", "will-stop"]);
    svc.podman_direct(&["rm", "-f", "-t", "0", "will-go"]);
    svc.podman_direct(&busybox("born-while-down").sleeping().args());
    svc.podman_direct(
        &Run::create(BUSYBOX_IMAGE)
            .name("created-while-down")
            .cmd(["true"])
            .args(),
    );

    svc.start_service();
    sw.wait_ready(200, SETTLE);
    assert_converges(&sw, &[("local", &svc)]);
    assert_eq!(
        sw.scrape()
            .value("sealwatch_engine_resyncs_total", &[("engine", "local")]),
        2.0
    );
}

/// sealwatch started before the Podman service exists: it serves, reports not ready, and syncs
/// once the service comes.
#[test]
fn sealwatch_waits_for_a_service_that_does_not_exist_yet() {
    let mut svc = PodmanService::start();
    svc.stop_service();
    svc.podman_direct(&busybox("before-service").sleeping().args());
    let sw = Sealwatch::start(&["--podman.url", &format!("late={}", svc.url())]);
    let body = sw.wait_ready(503, SETTLE);
    assert_eq!(body["not_ready"][0]["engine"], "late", "{body}");
    assert_eq!(sw.scrape().value("podman_up", &[("engine", "late")]), 0.0);

    svc.start_service();
    sw.wait_ready(200, SETTLE);
    assert_converges(&sw, &[("late", &svc)]);
}

/// Two engines watched at once: each container is attributed to its own engine.
#[test]
fn two_engines_at_once() {
    let a = PodmanService::start();
    let b = PodmanService::start();
    a.run(&busybox("in-a").sleeping());
    b.run(&busybox("in-b").sleeping());
    let sw = Sealwatch::start(&[
        "--podman.url",
        &format!("a={}", a.url()),
        "--podman.url",
        &format!("b={}", b.url()),
    ]);
    sw.wait_ready(200, SETTLE);
    b.run(&busybox("also-in-b").sleeping());
    assert_converges(&sw, &[("a", &a), ("b", &b)]);
    let only_b = sealwatch_containers(&sw, "&engine=b").unwrap();
    assert_eq!(
        only_b.iter().map(|c| c.2.as_str()).collect::<BTreeSet<_>>(),
        ["also-in-b", "in-b"].into()
    );
    let m = sw.scrape();
    assert_eq!(m.value("podman_up", &[("engine", "a")]), 1.0);
    assert_eq!(m.value("podman_up", &[("engine", "b")]), 1.0);
}
