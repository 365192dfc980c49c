//! Every field of `/containers` and `/pods` equals what `podman inspect` and `podman pod inspect`
//! say within moments of a change, for objects created while sealwatch runs, on a real private
//! Podman service (4.3.1, 5.4.2 and 6.1.1, file and journald events): the fields events do not carry (pid, first health status, Podman's own
//! times, restart count, pod labels) come from sealwatch's follow-up list calls.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::support::{wait_until, Engine, PodmanService, Run, Sealwatch, BUSYBOX_IMAGE};

const SETTLE: Duration = Duration::from_secs(20);
/// The fields must match within about a second; a generous bound for a loaded machine.
const MATCH_WITHIN: Duration = Duration::from_secs(15);

/// Podman's view of one container, in `/containers`' terms.
fn from_inspect(c: &Value) -> BTreeMap<&'static str, Value> {
    let state = c["State"]["Status"].as_str().unwrap_or_default().to_owned();
    let pid = c["State"]["Pid"].as_u64().filter(|p| *p > 0);
    let health = c["State"]["Health"]["Status"]
        .as_str()
        .filter(|h| !h.is_empty());
    let started = c["State"]["StartedAt"].as_str().unwrap_or_default();
    let exited = state == "exited" || state == "stopped";
    BTreeMap::from([
        ("state", Value::from(state.clone())),
        ("pid", pid.map_or(Value::Null, Value::from)),
        (
            "exit_code",
            if exited {
                c["State"]["ExitCode"].clone()
            } else {
                Value::Null
            },
        ),
        ("health", health.map_or(Value::Null, Value::from)),
        ("started_at", Value::from(to_the_second(started))),
        // Podman writes `null` for a container without labels; sealwatch `{}`.
        (
            "labels",
            match &c["Config"]["Labels"] {
                Value::Null => Value::Object(Default::default()),
                l => l.clone(),
            },
        ),
        (
            "pod",
            c["Pod"]
                .as_str()
                .filter(|p| !p.is_empty())
                .map_or(Value::Null, Value::from),
        ),
        ("restarts", c["RestartCount"].clone()),
    ])
}

/// The same fields as sealwatch shows them.
fn from_sealwatch(c: &Value) -> BTreeMap<&'static str, Value> {
    let started = c["started_at"].as_str().unwrap_or_default();
    BTreeMap::from([
        ("state", c["state"].clone()),
        ("pid", c["pid"].clone()),
        ("exit_code", c["exit_code"].clone()),
        ("health", c["health"].clone()),
        ("started_at", Value::from(to_the_second(started))),
        ("labels", c["labels"].clone()),
        ("pod", c["pod"]["id"].clone()),
        ("restarts", c["restarts"].clone()),
    ])
}

/// An RFC 3339 time cut to whole seconds (`""` for Go's zero time or none).
fn to_the_second(t: &str) -> String {
    if t.is_empty() || t.starts_with("0001-") {
        return String::new();
    }
    t.get(..19).unwrap_or(t).to_owned()
}

fn compare(svc: &PodmanService, sw: &Sealwatch, names: &[&str]) {
    wait_until("every field equals podman inspect", MATCH_WITHIN, || {
        let mut args = vec!["inspect"];
        args.extend_from_slice(names);
        let inspected: Value =
            serde_json::from_str(&svc.podman(&args)).map_err(|e| e.to_string())?;
        let mut diffs = Vec::new();
        for c in inspected.as_array().ok_or("inspect: not an array")? {
            let name = c["Name"].as_str().unwrap_or_default();
            let (status, body) = sw.try_get(&format!("/containers/{name}"))?;
            if status != 200 {
                return Err(format!("/containers/{name}: {status} {body}"));
            }
            let ours: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
            let (want, got) = (from_inspect(c), from_sealwatch(&ours));
            if want != got {
                diffs.push(format!(
                    "{name}:\n  podman    {want:?}\n  sealwatch {got:?}"
                ));
            }
        }
        if diffs.is_empty() {
            Ok(())
        } else {
            Err(diffs.join("\n"))
        }
    });
}

/// Creates, starts, a pod with labels, passing and failing healthchecks before and after
/// `podman healthcheck run`, a restart policy at work, and a stop: every field of every object
/// equals `podman inspect` / `podman pod inspect`.
#[test]
fn every_field_equals_podman_inspect_moments_after_a_change() {
    every_field(Engine::DEFAULT);
}
on_other_engines!(
    every_field_equals_podman_inspect_moments_after_a_change,
    every_field
);

fn every_field(engine: Engine) {
    let svc = PodmanService::start_with(engine);
    let sw = Sealwatch::start(&["--podman.url", &format!("local={}", svc.url())]);
    sw.wait_ready(200, SETTLE);

    svc.podman(&["pod", "create", "--name", "shop", "--label", "team=a"]);
    svc.run(
        &Run::new(BUSYBOX_IMAGE)
            .name("member")
            .pod("shop")
            .label("app", "web")
            .sleeping(),
    );
    svc.run(
        &Run::new(BUSYBOX_IMAGE)
            .name("healthy")
            .health_cmd("true")
            .sleeping(),
    );
    svc.run(
        &Run::new(BUSYBOX_IMAGE)
            .name("failing")
            .health_cmd("false")
            .health_retries(1)
            .sleeping(),
    );
    svc.run(
        &Run::new(BUSYBOX_IMAGE)
            .name("crashing")
            .restart("on-failure:2")
            .sh("exit 3"),
    );
    svc.run(&Run::new(BUSYBOX_IMAGE).name("stopped").sleeping());
    svc.podman(&["stop", "-t", "0", "stopped"]);
    wait_until("the restart policy gives up", SETTLE, || {
        let out = svc.podman(&[
            "inspect",
            "--format",
            "{{.State.Status}} {{.RestartCount}}",
            "crashing",
        ]);
        (out.trim() == "exited 2").then_some(()).ok_or(out)
    });
    let names = ["member", "healthy", "failing", "crashing", "stopped"];
    compare(&svc, &sw, &names);

    svc.podman(&["healthcheck", "run", "healthy"]);
    let _ = svc.try_podman(&["healthcheck", "run", "failing"]);
    compare(&svc, &sw, &names);

    let pod: Value = serde_json::from_str(&svc.podman(&["pod", "inspect", "shop"])).unwrap();
    let pod = if pod.is_array() { pod[0].clone() } else { pod };
    wait_until(
        "the pod's fields equal podman pod inspect",
        MATCH_WITHIN,
        || {
            let ours = sw.get_json("/pods/shop");
            let want = (&pod["Labels"], &pod["InfraContainerID"]);
            let got = (&ours["labels"], &ours["infra_id"]);
            (want == got)
                .then_some(())
                .ok_or_else(|| format!("podman {want:?}, sealwatch {got:?}"))
        },
    );
}
