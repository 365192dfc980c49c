//! The live page `/` in a real headless Chromium against a real, private Podman: it lists what
//! ran before it loaded, and rows appear and change without a reload while the test runs, stops
//! and kills containers; Podman-provided strings are shown as text, never as markup; with
//! JavaScript disabled the server-rendered tables hold the same containers. Saves screenshots
//! under `<target>/test-output/page/`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::support::chromium::{Chromium, Tab};
use crate::support::{wait_until, Engine, PodmanService, Run, Sealwatch, Version, BUSYBOX_IMAGE};

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
            let page = tab.eval(
                "[document.getElementById('live').dataset.state, document.body.dataset.synced, \
                 document.body.dataset.syncError]",
            )?;
            Err(format!("row: {row}; live, syncs, last sync error: {page}"))
        }
    })
}

/// The page's re-reads of `/containers`, `/pods` and `/-/ready` work: at least one has
/// succeeded and the last one did not fail.
fn assert_reads_work(tab: &mut Tab) {
    let state = tab
        .eval("[Number(document.body.dataset.synced || 0) > 0, document.body.dataset.syncError || null]")
        .unwrap();
    assert_eq!(
        state,
        serde_json::json!([true, null]),
        "the page's reads fail"
    );
}

/// The marker set in the page's JavaScript world: still there means the page was not reloaded.
fn marker(tab: &mut Tab) -> Value {
    tab.eval("window.__sealwatchNoReload || null").unwrap()
}

/// Chromium loads `/`; a container started before is listed with its pod and labels (as text);
/// a container started afterwards appears, shows exited with its exit code after `podman stop`,
/// a restart after `podman start`, another one's crash its exit code, a checked one its health,
/// a removed one goes, all without a reload; with JavaScript disabled and as plain HTML the
/// server-rendered table lists the same containers.
#[test]
fn the_page_follows_podman_live_in_a_real_browser() {
    page_follows_podman(Engine::DEFAULT);
}
on_other_engines!(
    the_page_follows_podman_live_in_a_real_browser,
    page_follows_podman
);

fn page_follows_podman(engine: Engine) {
    let svc = PodmanService::start_with(engine);
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
    // Started again after its death; stopped again. The restarts column says what sealwatch
    // says (README: Podman 4.6+ lists its own restart count, to which a manual start does not
    // add; on 4.3-4.5 sealwatch counts the starts after a death it saw).
    svc.podman(&["start", "after"]);
    let restarts = match engine.version {
        Version::V4 => "1".to_owned(),
        _ => svc.podman(&["inspect", "--format", "{{.RestartCount}}", "after"]),
    };
    wait_row(
        &mut tab,
        "after",
        &format!("running with {restarts} restarts"),
        |r| r["state"] == "running" && r["restarts"] == restarts.as_str() && r["exit"] == "",
    );
    svc.podman(&["stop", "-t", "0", "after"]);
    wait_row(&mut tab, "after", "exited with 137 again", |r| {
        r["state"] == "exited" && r["exit"] == "137" && r["restarts"] == restarts.as_str()
    });
    // Health: a checked container's health shows.
    svc.run(
        &Run::new(BUSYBOX_IMAGE)
            .name("checked")
            .health_cmd("true")
            .sleeping(),
    );
    wait_row(&mut tab, "checked", "running", |r| r["state"] == "running");
    // Podman 4.3 reports the status before a check's result in its event: the second says it.
    svc.podman(&["healthcheck", "run", "checked"]);
    svc.podman(&["healthcheck", "run", "checked"]);
    wait_row(&mut tab, "checked", "healthy", |r| r["health"] == "healthy");
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
    // A re-read leaves unchanged rows alone: the same element, not flashed as changed.
    let row_js = "Array.prototype.find.call(document.querySelectorAll('#containers tr[data-id]'), \
                  function (t) { return t.dataset.name === 'before'; })";
    wait_until("the rows' flashes to end", SETTLE, || {
        match tab.eval("document.querySelectorAll('tr.changed').length")? {
            n if n == 0 => Ok(()),
            n => Err(format!("{n} rows flashing")),
        }
    });
    tab.eval(&format!("window.__beforeRow = {row_js}; true"))
        .unwrap();
    let syncs = || "Number(document.body.dataset.synced || 0)";
    let synced = tab.eval(syncs()).unwrap().as_u64().unwrap();
    svc.podman(&["run", "--rm", "--name", "blip", BUSYBOX_IMAGE, "true"]);
    wait_until("a re-read after blip came and went", SETTLE, || {
        let now = tab.eval(syncs())?.as_u64().unwrap_or(0);
        let blip = container_row(&mut tab, "blip")?;
        if now > synced && blip.is_null() {
            Ok(())
        } else {
            Err(format!("syncs {now} (were {synced}), blip row {blip}"))
        }
    });
    assert_eq!(
        tab.eval(&format!(
            "[window.__beforeRow === {row_js}, window.__beforeRow.classList.contains('changed')]"
        ))
        .unwrap(),
        serde_json::json!([true, false]),
        "an unchanged row was rebuilt or flashed"
    );
    assert_eq!(marker(&mut tab), "same page", "the page was reloaded");
    assert_reads_work(&mut tab);
    assert_eq!(
        tab.eval("document.getElementById('live').dataset.state")
            .unwrap(),
        "live"
    );
    // The engine row counts what the page shows: the pod's infra container, before, after,
    // checked.
    wait_until("the engine row's counts", SETTLE, || {
        let engine = tab
            .eval(
                "(function (tr) { return [tr.querySelector('.e-state').textContent, \
                 tr.querySelector('.e-containers').textContent, \
                 tr.querySelector('.e-pods').textContent]; })\
                 (document.querySelector('#engines tr[data-engine=\"local\"]'))",
            )
            .unwrap();
        if engine == serde_json::json!(["ready", "4", "1"]) {
            Ok(())
        } else {
            Err(format!("engine row: {engine}"))
        }
    });
    let dir = output_dir();
    let tag = format!("{:?}-{:?}", engine.version, engine.events).to_lowercase();
    let live_png = dir.join(format!("page-live-{tag}.png"));
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
        (&after["state"], &after["exit"], &after["restarts"]),
        (&"exited".into(), &"137".into(), &restarts.as_str().into())
    );
    let checked = container_row(&mut tab, "checked").unwrap();
    assert_eq!(
        (&checked["state"], &checked["health"]),
        (&"running".into(), &"healthy".into())
    );
    assert!(container_row(&mut tab, "crash").unwrap().is_null());
    let static_png = dir.join(format!("page-static-{tag}.png"));
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

/// sealwatch started by hand (not `Sealwatch::start`, whose readiness probe has no
/// credentials) on a fixed port; killed when dropped.
struct Guarded {
    child: std::process::Child,
}

impl Guarded {
    fn start(
        podman_url: &str,
        web_config: &std::path::Path,
        port: u16,
        log: &std::path::Path,
    ) -> Self {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let err = out.try_clone().unwrap();
        let child = crate::support::binary::command()
            .args(["--podman.url", podman_url])
            .args(["--web.config.file", web_config.to_str().unwrap()])
            .args(["--web.listen-address", &format!("127.0.0.1:{port}")])
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        wait_until(
            "sealwatch answers (401 without credentials)",
            SETTLE,
            || {
                let reply = crate::support::process::raw_get(port, "/", &[])?;
                if reply.status == 401 {
                    Ok(())
                } else {
                    Err(format!("HTTP {}", reply.status))
                }
            },
        );
        Guarded { child }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn live_state(tab: &mut Tab) -> Result<Value, String> {
    tab.eval("document.getElementById('live').dataset.state")
}

/// Under `--web.config.file` the page works with credentials given once to the browser (its feed
/// and its reads are same-origin and carry them); when sealwatch goes away the indicator stops
/// saying live, and when it is back on the same address the page reconnects by itself and shows
/// what Podman did meanwhile, without a reload.
#[test]
fn the_page_asks_for_credentials_and_reconnects_after_a_sealwatch_restart() {
    let svc = PodmanService::start_with(Engine::DEFAULT);
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("watch-me", 4).unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, format!("basic_auth_users:\n  team: '{hash}'\n")).unwrap();
    let log = dir.path().join("sealwatch.log");
    let url = format!("local={}", svc.url());
    let port = crate::support::free_port();
    let sealwatch = Guarded::start(&url, &web, port, &log);
    svc.run(&Run::new(BUSYBOX_IMAGE).name("seen").sleeping());

    let chromium = Chromium::start();
    let mut tab = chromium.tab();
    tab.navigate(&format!("http://team:watch-me@127.0.0.1:{port}/"));
    wait_until("the page's feed to be live", SETTLE, || {
        match live_state(&mut tab)? {
            v if v == "live" => Ok(()),
            v => Err(format!(
                "live indicator: {v}\n{}",
                crate::support::process::read_lossy(&log)
            )),
        }
    });
    wait_row(&mut tab, "seen", "running", |r| r["state"] == "running");
    let later_id = svc.run(&Run::new(BUSYBOX_IMAGE).name("later").sleeping());
    let later = wait_row(&mut tab, "later", "running", |r| r["state"] == "running");
    assert_eq!(later["id"], later_id.as_str());
    tab.eval("window.__sealwatchNoReload = 'same page'; true")
        .unwrap();

    drop(sealwatch);
    wait_until(
        "the indicator to leave live",
        SETTLE,
        || match live_state(&mut tab)? {
            v if v == "live" => Err("still live".into()),
            _ => Ok(()),
        },
    );
    // While sealwatch is away: one container stops, one goes, one comes.
    svc.podman(&["stop", "-t", "0", "seen"]);
    svc.podman(&["rm", "-f", "-t", "0", "later"]);
    svc.run(&Run::new(BUSYBOX_IMAGE).name("meanwhile").sleeping());
    let _sealwatch = Guarded::start(&url, &web, port, &log);
    wait_until(
        "the page's feed to be live again",
        SETTLE,
        || match live_state(&mut tab)? {
            v if v == "live" => Ok(()),
            v => Err(format!("live indicator: {v}")),
        },
    );
    wait_row(&mut tab, "seen", "exited with 137", |r| {
        r["state"] == "exited" && r["exit"] == "137"
    });
    wait_row(&mut tab, "meanwhile", "running", |r| {
        r["state"] == "running"
    });
    wait_until("the page to drop later", SETTLE, || {
        match container_row(&mut tab, "later")? {
            Value::Null => Ok(()),
            row => Err(format!("still there: {row}")),
        }
    });
    // And live again after the restart: an event of the new process reaches the page.
    svc.podman(&["stop", "-t", "0", "meanwhile"]);
    wait_row(&mut tab, "meanwhile", "exited with 137", |r| {
        r["state"] == "exited" && r["exit"] == "137"
    });
    assert_eq!(marker(&mut tab), "same page", "the page was reloaded");
    assert_reads_work(&mut tab);
    let png = output_dir().join("page-auth-reconnected.png");
    tab.screenshot(&png);
    println!("screenshot after the restart: {}", png.display());
}
