//! The live page `/` in a real headless Chromium against a real, private Podman: it lists what
//! ran before it loaded, and rows appear and change without a reload while the test runs, stops
//! and kills containers; Podman-provided strings are shown as text, never as markup; with
//! JavaScript disabled the server-rendered tables hold the same containers. Saves screenshots
//! under `<target>/test-output/page/`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::support::chromium::{Chromium, Tab};
use crate::support::{wait_until, Engine, PodmanService, Run, Sealwatch, BUSYBOX_IMAGE};

/// Generous: a loaded 2-core machine runs Podman, sealwatch and Chromium at once.
const SETTLE: Duration = Duration::from_secs(60);

/// A label value that would be markup if the page ever parsed Podman's strings as HTML.
const HOSTILE: &str = "<img src=x id=pwned onerror=\"document.title='pwned'\"><b>bold</b>&amp;";

/// Where this module's screenshots go: `<target>/test-output/page/`.
fn output_dir() -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent()
        .map_or_else(|| tmp.clone(), |t| t.to_path_buf())
        .join("test-output")
        .join("page")
}

/// The cells of the container row named `name` as the page shows them, or null.
fn container_row(tab: &mut Tab, name: &str) -> Result<Value, String> {
    let expr = format!(
        r#"(function (name) {{
            var tr = Array.prototype.find.call(
                document.querySelectorAll('#containers tbody tr[data-id]'),
                function (t) {{ return t.dataset.name === name; }});
            if (!tr) {{ return null; }}
            function q(c) {{ return tr.querySelector(c).textContent.trim(); }}
            return {{engine: q('.c-engine'), pod: q('.c-pod'), name: q('.c-name-text'),
                     state: q('.c-state'), health: q('.c-health'), exit: q('.c-exit'),
                     restarts: q('.c-restarts'), labels: q('.c-labels'), id: tr.dataset.id}};
        }})({})"#,
        serde_json::to_string(name).unwrap()
    );
    tab.eval(&expr)
}

/// Waits until the row of `name` satisfies `ok`; returns it.
fn wait_row(tab: &mut Tab, name: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    wait_until(&format!("the page to show {name} {what}"), SETTLE, || {
        let row = container_row(tab, name)?;
        if ok(&row) {
            Ok(row)
        } else {
            Err(format!("row: {row}"))
        }
    })
}

/// The marker set in the page's JavaScript world: still there means the page was not reloaded.
fn marker(tab: &mut Tab) -> Value {
    tab.eval("window.__sealwatchNoReload || null").unwrap()
}

/// Chromium loads `/`; a container started before is listed with its pod and labels (as text);
/// a container started afterwards appears, then shows exited with its exit code after `podman
/// stop`, and another one's crash shows its exit code, all without a reload; with JavaScript
/// disabled and as plain HTML the server-rendered table lists the same containers.
#[test]
fn the_page_follows_podman_live_in_a_real_browser() {
    let svc = PodmanService::start_with(Engine::DEFAULT);
    svc.podman(&["pod", "create", "--name", "shop"]);
    svc.run(
        &Run::new(BUSYBOX_IMAGE)
            .name("before")
            .pod("shop")
            .label("app", HOSTILE)
            .sleeping(),
    );
    let url = format!("local={}", svc.url());
    let sw = Sealwatch::start(&["--podman.url", &url, "--labels.allowlist", "app"]);
    sw.wait_ready(200, SETTLE);

    let chromium = Chromium::start();
    let mut tab = chromium.tab();
    let page = format!("{}/", sw.base_url());
    tab.navigate(&page);
    wait_until("the page's feed to be live", SETTLE, || {
        let state = tab.eval("document.getElementById('live').dataset.state")?;
        if state == "live" {
            Ok(())
        } else {
            Err(format!("live indicator: {state}\n{}", chromium.log()))
        }
    });

    // (1) What ran before the page loaded, with its pod; the hostile label is text.
    let before = wait_row(&mut tab, "before", "running", |r| r["state"] == "running");
    assert_eq!(before["engine"], "local");
    assert_eq!(before["pod"], "shop");
    assert_eq!(before["labels"], format!("app={HOSTILE}"));
    let injected = tab
        .eval("[document.querySelectorAll('#pwned, td b').length, document.title]")
        .unwrap();
    assert_eq!(
        injected,
        serde_json::json!([0, "sealwatch"]),
        "a label became markup"
    );
    let pod = tab
        .eval(
            "Array.prototype.map.call(document.querySelectorAll('#pods tbody tr[data-id]'), \
             function (t) { return t.querySelector('.p-name').textContent + ' ' + \
             t.querySelector('.p-state').textContent; })",
        )
        .unwrap();
    assert_eq!(pod, serde_json::json!(["shop running"]));

    tab.eval("window.__sealwatchNoReload = 'same page'; true")
        .unwrap();

    // (2) A container started after the page loaded appears.
    let after_id = svc.run(&Run::new(BUSYBOX_IMAGE).name("after").sleeping());
    let after = wait_row(&mut tab, "after", "running", |r| r["state"] == "running");
    assert_eq!(after["id"], after_id.as_str());
    assert_eq!(after["exit"], "");
    assert_eq!(marker(&mut tab), "same page");

    // (3) Stopped (SIGKILL after no grace: 137) and crashed (exit 3): state and exit code change.
    svc.podman(&["stop", "-t", "0", "after"]);
    let stopped = wait_row(&mut tab, "after", "exited with 137", |r| {
        r["state"] == "exited" && r["exit"] == "137"
    });
    assert_eq!(stopped["id"], after_id.as_str());
    svc.run(&Run::new(BUSYBOX_IMAGE).name("crash").sh("sleep 1; exit 3"));
    wait_row(&mut tab, "crash", "running or exited", |r| !r.is_null());
    wait_row(&mut tab, "crash", "exited with 3", |r| {
        r["state"] == "exited" && r["exit"] == "3"
    });
    svc.podman(&["kill", "before"]);
    wait_row(&mut tab, "before", "exited with 137", |r| {
        r["state"] == "exited" && r["exit"] == "137"
    });
    // A removed container's row goes.
    svc.podman(&["rm", "crash"]);
    wait_until("the page to drop crash", SETTLE, || {
        match container_row(&mut tab, "crash")? {
            Value::Null => Ok(()),
            row => Err(format!("still there: {row}")),
        }
    });
    assert_eq!(marker(&mut tab), "same page", "the page was reloaded");
    assert_eq!(
        tab.eval("document.getElementById('live').dataset.state")
            .unwrap(),
        "live"
    );
    // The engine row counts what the page shows: the pod's infra container, before, after.
    wait_until("the engine row's counts", SETTLE, || {
        let engine = tab
            .eval(
                "(function (tr) { return [tr.querySelector('.e-state').textContent, \
                 tr.querySelector('.e-containers').textContent, \
                 tr.querySelector('.e-pods').textContent]; })\
                 (document.querySelector('#engines tr[data-engine=\"local\"]'))",
            )
            .unwrap();
        if engine == serde_json::json!(["ready", "3", "1"]) {
            Ok(())
        } else {
            Err(format!("engine row: {engine}"))
        }
    });
    let dir = output_dir();
    let live_png = dir.join("page-live.png");
    tab.screenshot(&live_png);
    println!("screenshot of the live page: {}", live_png.display());

    // (4) Without JavaScript: the server-rendered table has the same containers.
    tab.call(
        "Emulation.setScriptExecutionDisabled",
        serde_json::json!({"value": true}),
    );
    tab.navigate(&page);
    assert_eq!(
        tab.eval("document.getElementById('live').dataset.state")
            .unwrap(),
        "static",
        "with JavaScript disabled the page's script must not have run"
    );
    let before = container_row(&mut tab, "before").unwrap();
    assert_eq!(
        (&before["state"], &before["exit"], &before["pod"]),
        (&"exited".into(), &"137".into(), &"shop".into())
    );
    assert_eq!(before["labels"], format!("app={HOSTILE}"));
    let after = container_row(&mut tab, "after").unwrap();
    assert_eq!(
        (&after["state"], &after["exit"]),
        (&"exited".into(), &"137".into())
    );
    assert!(container_row(&mut tab, "crash").unwrap().is_null());
    let static_png = dir.join("page-static.png");
    tab.screenshot(&static_png);
    println!("screenshot without JavaScript: {}", static_png.display());

    // And as plain HTML, as curl sees it.
    let (status, html) = sw.get("/");
    assert_eq!(status, 200);
    for name in ["before", "after"] {
        assert!(
            html.contains(&format!("data-name=\"{name}\"")),
            "{name} missing from the HTML of /"
        );
    }
    assert!(html.contains("&lt;img src=x id=pwned"));
    assert!(!html.contains("<img"));
}
