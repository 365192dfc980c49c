//! Discovery of rootless users' Podman services by a root sealwatch, against real rootless
//! services of two users beside a rootful one: a user whose service runs at start is found, a
//! user who logs in later is found within seconds (inotify, no polling), each engine is named by
//! its user and lists exactly that user's containers, counters never mix users, a user who logs
//! out is shown down and then dropped after the retention, and comes back under the same name.

use std::time::{Duration, Instant};

use crate::support::rootless::User;
use crate::support::{wait_until, Engine, Exposition, PodmanService, Sealwatch, BUSYBOX_IMAGE};

const SETTLE: Duration = Duration::from_secs(30);

/// The sum of `podman_events_total` for one engine and action; 0 when there is none.
fn events(m: &Exposition, engine: &str, action: &str) -> f64 {
    m.series("podman_events_total")
        .filter(|s| {
            s.matches(
                "podman_events_total",
                &[("engine", engine), ("action", action)],
            )
        })
        .map(|s| s.value)
        .sum()
}

/// Names of every container (any state) `/containers?engine=E&all=true` lists.
fn listed(sw: &Sealwatch, engine: &str) -> Vec<String> {
    let v = sw.get_json(&format!("/containers?engine={engine}&all=true"));
    let mut names: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("/containers?engine={engine}: {v}"))
        .iter()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// Two real rootless users beside a rootful service: found at start and when logging in,
/// separate inventories and counters, down then dropped after logging out, same name again.
#[test]
fn rootless_users_are_found_by_themselves_and_kept_apart() {
    let alice = User::ensure("swtest-alice");
    let bob = User::ensure("swtest-bob");
    bob.logout();
    let rootful = PodmanService::start_with(Engine::DEFAULT);
    let _alice_service = alice.serve();
    let sw = Sealwatch::start(&[
        "--podman.url",
        &format!("host={}", rootful.url()),
        "--podman.discover",
        "rootless",
        "--metrics.removed-retention",
        "3s",
    ]);

    // Found at start, named by the login name.
    wait_until("alice's engine up", SETTLE, || {
        let m = sw.scrape();
        match m.try_value("podman_up", &[("engine", "swtest-alice")])? {
            1.0 => Ok(()),
            v => Err(format!("podman_up {v}")),
        }
    });
    assert!(
        sw.scrape()
            .try_value("podman_up", &[("engine", "swtest-bob")])
            .is_err(),
        "bob is not logged in"
    );

    // Bob logs in later and starts his service: found without a restart.
    let t0 = Instant::now();
    let mut bob_service = bob.serve();
    let served = t0.elapsed();
    wait_until("bob's engine up", SETTLE, || {
        match sw
            .scrape()
            .try_value("podman_up", &[("engine", "swtest-bob")])?
        {
            1.0 => Ok(()),
            v => Err(format!("podman_up {v}")),
        }
    });
    eprintln!(
        "bob's service answered {served:?} after its start; sealwatch had his engine up {:?} after \
         that start",
        t0.elapsed()
    );

    // Each user's containers in their own engine; counters never mix.
    alice.podman(&[
        "--url",
        &alice.url(),
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "a1",
        BUSYBOX_IMAGE,
        "sleep",
        "1000",
    ]);
    for name in ["b1", "b2"] {
        bob.podman(&[
            "--url",
            &bob.url(),
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            name,
            BUSYBOX_IMAGE,
            "sleep",
            "1000",
        ]);
    }
    rootful.podman(&["run", "-d", "--name", "r1", BUSYBOX_IMAGE, "sleep", "1000"]);
    wait_until("each engine's starts", SETTLE, || {
        let m = sw.scrape();
        let got = (
            events(&m, "swtest-alice", "start"),
            events(&m, "swtest-bob", "start"),
            events(&m, "host", "start"),
        );
        if got == (1.0, 2.0, 1.0) {
            Ok(())
        } else {
            Err(format!("starts (alice, bob, host) = {got:?}"))
        }
    });
    assert_eq!(listed(&sw, "swtest-alice"), ["a1"]);
    assert_eq!(listed(&sw, "swtest-bob"), ["b1", "b2"]);
    assert_eq!(listed(&sw, "host"), ["r1"]);

    // Bob logs out: his service ends and his runtime directory goes away.
    bob_service.stop();
    bob.logout();
    wait_until("bob's engine down", SETTLE, || {
        match sw
            .scrape()
            .try_value("podman_up", &[("engine", "swtest-bob")])?
        {
            0.0 => Ok(()),
            v => Err(format!("podman_up {v}")),
        }
    });
    let (status, body) = sw.get("/-/ready");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("swtest-bob"), "/-/ready names bob: {body}");
    wait_until(
        "bob's engine dropped after the retention",
        SETTLE,
        || match sw
            .scrape()
            .try_value("podman_up", &[("engine", "swtest-bob")])
        {
            Err(_) => Ok(()),
            Ok(v) => Err(format!("still there: podman_up {v}")),
        },
    );
    let m = sw.scrape();
    assert_eq!(events(&m, "swtest-alice", "start"), 1.0, "alice unchanged");
    assert_eq!(m.value("podman_up", &[("engine", "swtest-alice")]), 1.0);
    let (status, body) = sw.get("/-/ready");
    assert_eq!(status, 200, "ready again without bob: {body}");

    // Bob comes back: the same name.
    let _bob_again = bob.serve();
    wait_until("bob's engine up again", SETTLE, || {
        match sw
            .scrape()
            .try_value("podman_up", &[("engine", "swtest-bob")])?
        {
            1.0 => Ok(()),
            v => Err(format!("podman_up {v}")),
        }
    });
    // After a logout Podman may have reset or forgotten his containers' runtime state; what
    // sealwatch lists must be what his Podman lists.
    wait_until("bob's containers as his Podman lists them", SETTLE, || {
        let mut podman: Vec<String> = bob
            .podman(&["--url", &bob.url(), "ps", "-a", "--format", "{{.Names}}"])
            .lines()
            .map(str::to_owned)
            .collect();
        podman.sort();
        let names = listed(&sw, "swtest-bob");
        if names == podman {
            Ok(())
        } else {
            Err(format!("sealwatch {names:?}, podman {podman:?}"))
        }
    });
}
