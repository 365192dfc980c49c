//! sealwatch against a real systemd host: the QEMU guest of `scripts/podman-vm.sh` (Debian 13,
//! Podman 5.4, journald event backend, socket-activated `podman.socket`). sealwatch runs on the
//! host and watches `tcp://127.0.0.1:PORT`, which the guest proxies to `/run/podman/podman.sock`.
//! The scenario restarts `podman.service` and `podman.socket` the way users do, and stops the
//! socket while the guest's podman CLI keeps changing things. At the end every event counter
//! equals `podman events` in the guest and `/containers` equals `podman ps -a`.
//!
//! The same guest then serves the resource usage checks (`resources`): sealwatch inside the guest
//! on its cgroup v2 tree, and on the host over tcp with Podman's stats stream; and the packaged
//! sealwatch (`package`): the .deb under systemd, then the Quadlet unit running the image.
//!
//! Booting the guest costs about a minute of emulated CPU, so there is one test with one guest
//! (and a second only when the first dies under it: `Guest::run`).
//! A missing piece (QEMU, the image, debootstrap, ...) fails the test, never skips it.
//!
//! Run it alone with `cargo test --test it -- vm::`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::metrics::compare::{count, diff, pod_attribution};
use crate::metrics::str_of;
use crate::support::vm::PodmanVm;
use crate::support::{wait_until, Exposition, Sealwatch};

mod package;
mod resources;

/// Bound for sealwatch to catch up with the guest (TCG is slow; the machine is shared).
pub(super) const CATCH_UP: Duration = Duration::from_secs(120);
/// The image the build imported into the guest from busybox-static.
pub(super) const IMAGE: &str = "localhost/busybox:latest";

/// `podman_events_total` by (type, action) and `podman_container_exits_total` by (pod, exit
/// code), as the guest's `podman events` says they must be.
fn expected(events: &[Value]) -> [BTreeMap<Vec<String>, f64>; 2] {
    let (pod_of, pod_name) = pod_attribution(events);
    let (mut by_type, mut exits) = (BTreeMap::new(), BTreeMap::new());
    for e in events {
        let (kind, action) = (str_of(e, "Type"), str_of(e, "Status"));
        count(&mut by_type, &[kind, action]);
        if kind == "container" && action == "died" {
            let pod = pod_of
                .get(str_of(e, "ID"))
                .map(|p| {
                    *pod_name
                        .get(p)
                        .unwrap_or_else(|| panic!("no name for pod {p}"))
                })
                .unwrap_or("");
            // The CLI leaves out a zero exit code.
            let code = e["ContainerExitCode"].as_i64().unwrap_or(0).to_string();
            count(&mut exits, &[pod, &code]);
        }
    }
    [by_type, exits]
}

/// Polls until every event counter equals the guest's `podman events --since t0` and
/// `/containers?all=true` equals `podman ps -a` (IDs and states); returns the numbers compared.
fn wait_parity(vm: &PodmanVm, sw: &Sealwatch, t0: &str, phase: &str) -> (usize, Exposition) {
    wait_until(
        &format!("parity with the guest after {phase}"),
        CATCH_UP,
        || {
            let events = vm.events_since(t0);
            let [by_type, exits] = expected(&events);
            let m = sw.scrape();
            let mut d = diff(
                "podman_events_total",
                &by_type,
                &m.nonzero_by("podman_events_total", &["type", "action"]),
            );
            d.extend(diff(
                "podman_container_exits_total",
                &exits,
                &m.nonzero_by("podman_container_exits_total", &["pod", "exit_code"]),
            ));
            let ps: BTreeSet<(String, String)> = vm
                .ps_all()
                .as_array()
                .expect("podman ps -a is an array")
                .iter()
                .map(|c| (str_of(c, "Id").to_owned(), str_of(c, "State").to_owned()))
                .collect();
            let (status, body) = sw.try_get("/containers?all=true")?;
            if status != 200 {
                return Err(format!("/containers?all=true: {status} {body}"));
            }
            let ours: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
            let ours: BTreeSet<(String, String)> = ours
                .as_array()
                .ok_or("/containers is not an array")?
                .iter()
                .map(|c| (str_of(c, "id").to_owned(), str_of(c, "state").to_owned()))
                .collect();
            for (id, state) in ps.difference(&ours) {
                d.push(format!(
                    "podman ps -a has {id} {state}; /containers does not"
                ));
            }
            for (id, state) in ours.difference(&ps) {
                d.push(format!(
                    "/containers has {id} {state}; podman ps -a does not"
                ));
            }
            if d.is_empty() {
                Ok((events.len(), m))
            } else {
                Err(d.join("\n"))
            }
        },
    )
}

/// Polls `/-/ready` (and the count of reconnections that synced again) every 20 ms.
fn ready_state(sw: &Sealwatch) -> (u16, f64) {
    let status = sw.try_get("/-/ready").map(|(s, _)| s).unwrap_or(0);
    let reconnects = sw
        .scrape()
        .try_value("sealwatch_engine_reconnects_total", &[])
        .unwrap_or(f64::NAN);
    (status, reconnects)
}

/// Runs `systemctl ACTION UNIT` in the guest, then waits until sealwatch has reconnected (its
/// `sealwatch_engine_reconnects_total` grew) and `/-/ready` is 200. Returns how long that took
/// after systemctl returned; prints it.
fn restart_and_time(vm: &PodmanVm, sw: &Sealwatch, what: &str, commands: &[&[&str]]) -> Duration {
    let (_, before) = ready_state(sw);
    let t_cmd = Instant::now();
    for c in commands {
        vm.ssh(c);
    }
    let returned = Instant::now();
    let deadline = returned + CATCH_UP;
    let mut saw_not_ready = false;
    let last = loop {
        let last = ready_state(sw);
        saw_not_ready |= last.0 != 200;
        if last.0 == 200 && last.1 > before {
            break last;
        }
        assert!(
            Instant::now() < deadline,
            "sealwatch not ready again {CATCH_UP:?} after {what}: /-/ready {}, reconnects {} \
             (before {before})\n--- sealwatch log ---\n{}",
            last.0,
            last.1,
            crate::support::process::tail(&sw.log(), 40)
        );
        thread::sleep(Duration::from_millis(20));
    };
    let ready_after = returned.elapsed();
    eprintln!(
        "vm: {what}: systemctl took {:.2} s (through ssh); sealwatch ready again {:.2} s after it \
         returned (not-ready seen by the 20 ms poll: {saw_not_ready}; reconnects {before} -> {})",
        (returned - t_cmd).as_secs_f64(),
        ready_after.as_secs_f64(),
        last.1
    );
    ready_after
}

/// In the guest: wait (bounded) until container `name` has exited after `restarts` restarts
/// by its restart policy.
fn wait_restart_policy(name: &str, restarts: u32) -> String {
    format!(
        "i=0; while [ \"$(podman inspect --format '{{{{.State.Status}}}} {{{{.RestartCount}}}}' {name})\" != 'exited {restarts}' ]; do \
           i=$((i+1)); [ $i -le 240 ] || {{ echo \"{name}: $(podman inspect --format '{{{{.State.Status}}}} {{{{.RestartCount}}}}' {name}), want exited {restarts}\" >&2; exit 1; }}; \
           sleep 0.5; done"
    )
}

/// The event counters and `/containers` stay equal to Podman's across `systemctl restart
/// podman.service`, `systemctl restart podman.socket` and a stop of the socket with changes made
/// through the guest's podman CLI meanwhile; then resource usage in the same guest (`resources`)
/// and the packaged sealwatch (`package`).
#[test]
fn exact_across_systemd_restarts_of_podman_service_and_socket() {
    // Checked before the boot: a missing or stale static binary fails at once.
    let binary = crate::image::static_binary();
    let mut guest = Guest::boot();
    guest.run("the restarts of podman.service and podman.socket", restarts);
    let took = guest.run("the resource usage phase", |vm| {
        resources::check(vm, &binary)
    });
    eprintln!("vm: resource usage phase: {:.1} s", took.as_secs_f64());
    let took = guest.run("the package and Quadlet phase", |vm| {
        package::check(vm, &binary)
    });
    eprintln!("vm: package and Quadlet phase: {:.1} s", took.as_secs_f64());
}

/// The guest the phases run on, and whether it was booted again because the first one died.
struct Guest {
    vm: PodmanVm,
    rebooted: bool,
}

impl Guest {
    fn boot() -> Self {
        let vm = PodmanVm::start();
        eprintln!(
            "vm: boot until the API and sshd answered on the host: {:.1} s",
            vm.boot_time.as_secs_f64()
        );
        Guest {
            vm,
            rebooted: false,
        }
    }

    /// Runs `phase` on the guest. If the guest itself died during it (its QEMU exited: under
    /// TCG the guest's kernel has been seen to panic, which ends QEMU), says so on the real
    /// stderr, so that a run which then passes still shows it, boots a fresh guest and runs the
    /// phase once more from its start; the failure, with the dead guest's console, is printed
    /// first. A phase that fails on a live guest, or a second death, fails the test.
    fn run<T>(&mut self, what: &str, phase: impl Fn(&PodmanVm) -> T) -> T {
        let vm = &self.vm;
        match panic::catch_unwind(AssertUnwindSafe(|| phase(vm))) {
            Ok(v) => v,
            Err(e) if !self.vm.alive() && !self.rebooted => {
                let why = e
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| e.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)");
                // A failed guest command already carries the console.
                let console = if why.contains("--- guest console") {
                    String::new()
                } else {
                    self.vm.console_tail()
                };
                let _ = writeln!(
                    std::io::stderr(),
                    "vm: the guest died during {what}; booting a fresh guest to run it once \
                     more. The failure it caused:\n{why}\n{console}"
                );
                self.rebooted = true;
                self.vm = PodmanVm::start();
                let _ = writeln!(
                    std::io::stderr(),
                    "vm: the fresh guest booted in {:.1} s; {what} again",
                    self.vm.boot_time.as_secs_f64()
                );
                phase(&self.vm)
            }
            Err(e) => panic::resume_unwind(e),
        }
    }
}

/// The scenario of restarts and outages, with parity checked after each; prints how long
/// sealwatch took to be ready again after each.
fn restarts(vm: &PodmanVm) {
    let info = vm.sh("podman --version; podman info --format '{{.Host.EventLogger}} {{.Host.CgroupsVersion}} {{.Host.CgroupManager}}'; systemctl is-active podman.socket; ps -p 1 -o comm=");
    eprintln!("vm: guest: {}", info.replace('\n', "; "));
    assert!(
        info.contains("journald v2 systemd"),
        "the guest is not the systemd host it should be: {info}"
    );
    let t0 = vm.now();
    let sw = Sealwatch::start(&["--podman.url", &vm.url()]);
    sw.wait_ready(200, CATCH_UP);

    // Before any restart: a long runner, a non-zero exit, stop/start, a pod with a member, a
    // restart policy, rm.
    let script_a = format!(
        "podman run -d --name a-web --label app=web {IMAGE} sleep 1000
         podman run -d --name a-x3 {IMAGE} sh -c 'exit 3'
         podman wait a-x3
         podman stop -t 0 a-web
         podman start a-web
         podman pod create --name a-pod
         podman run -d --pod a-pod --name a-m1 {IMAGE} sleep 1000
         podman run -d --restart on-failure:2 --name a-rp {IMAGE} sh -c 'sleep 1; exit 7'
         podman rm -f -t 0 a-x3
         {}",
        wait_restart_policy("a-rp", 2)
    );
    vm.sh(&script_a);
    let (n, _) = wait_parity(vm, &sw, &t0, "the first changes");
    eprintln!("vm: parity after the first changes: {n} events");

    let mut ready = Vec::new();
    ready.push((
        "restart podman.service",
        restart_and_time(
            vm,
            &sw,
            "systemctl restart podman.service",
            &[&["systemctl", "restart", "podman.service"]],
        ),
    ));
    vm.sh(&format!(
        "podman run -d --name b-web --label app=web {IMAGE} sleep 1000
         podman run -d --name b-x5 {IMAGE} sh -c 'exit 5'
         podman wait b-x5
         podman stop -t 0 a-web
         podman rm a-web
         podman pod stop -t 0 a-pod
         podman pod start a-pod
         podman restart -t 0 b-web"
    ));
    let (n, _) = wait_parity(vm, &sw, &t0, "systemctl restart podman.service");
    eprintln!("vm: parity after the podman.service restart: {n} events");

    ready.push((
        "restart podman.socket",
        restart_and_time(
            vm,
            &sw,
            "systemctl restart podman.socket",
            &[&["systemctl", "restart", "podman.socket"]],
        ),
    ));
    vm.sh(&format!(
        "podman run -d --restart on-failure:1 --name c-rp {IMAGE} sh -c 'sleep 1; exit 9'
         podman pause b-web
         podman unpause b-web
         podman pod rm -f -t 0 a-pod
         {}",
        wait_restart_policy("c-rp", 1)
    ));
    let (n, _) = wait_parity(vm, &sw, &t0, "systemctl restart podman.socket");
    eprintln!("vm: parity after the podman.socket restart: {n} events");

    // The socket stopped (which stops the service), changes through the local CLI meanwhile.
    let t_stop = Instant::now();
    vm.ssh(&["systemctl", "stop", "podman.socket"]);
    sw.wait_ready(503, CATCH_UP);
    eprintln!(
        "vm: /-/ready 503 {:.2} s after `systemctl stop podman.socket` was sent",
        t_stop.elapsed().as_secs_f64()
    );
    vm.sh(&format!(
        "if systemctl is-active -q podman.socket || systemctl is-active -q podman.service; then
           echo 'podman.socket or podman.service still active after the stop' >&2; exit 1
         fi
         podman run -d --name d-web --label app=web {IMAGE} sleep 1000
         podman run -d --name d-x4 {IMAGE} sh -c 'exit 4'
         podman wait d-x4
         podman stop -t 0 b-web
         podman rm -f -t 0 c-rp
         podman pod create --name d-pod
         podman run -d --pod d-pod --name d-m1 {IMAGE} sleep 1000"
    ));
    ready.push((
        "stop podman.socket, changes, start",
        restart_and_time(
            vm,
            &sw,
            "systemctl start podman.socket (after a stop with changes meanwhile)",
            &[&["systemctl", "start", "podman.socket"]],
        ),
    ));
    vm.sh(&format!(
        "podman run -d --name e-x6 {IMAGE} sh -c 'exit 6'
         podman wait e-x6
         podman rm -f -t 0 d-web
         podman pod stop -t 0 d-pod"
    ));
    let (n, m) = wait_parity(vm, &sw, &t0, "the stop and start of podman.socket");
    let exits = m.nonzero_by("podman_container_exits_total", &["pod", "exit_code"]);
    let types = m.nonzero_by("podman_events_total", &["type", "action"]);
    eprintln!(
        "vm: final parity: {n} events, {} (type, action) series, exits {exits:?}, {} containers",
        types.len(),
        vm.ps_all().as_array().map_or(0, Vec::len)
    );
    for (t, a) in [
        ("container", "died"),
        ("container", "restart"),
        ("container", "pause"),
        ("pod", "create"),
        ("pod", "remove"),
    ] {
        assert!(
            types.contains_key(&vec![t.to_owned(), a.to_owned()]),
            "the scenario made no {t}/{a}: {types:?}"
        );
    }
    for code in ["3", "4", "5", "6", "7", "9", "137"] {
        assert!(
            exits.keys().any(|k| k[1] == code),
            "no exit code {code}: {exits:?}"
        );
    }
    let (status, body) = sw.get("/-/ready");
    assert_eq!(status, 200, "/-/ready: {body}");
    for (what, d) in &ready {
        eprintln!("vm: ready again after {what}: {:.2} s", d.as_secs_f64());
    }
}
