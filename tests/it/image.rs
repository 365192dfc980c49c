//! The container image: the Dockerfile's `prebuilt` target built with Podman (`--pull=never`, no
//! registry) from the host-built static binary, run the way the shipped Quadlet unit runs it,
//! against a private Podman service whose socket is mounted into it.
//!
//! Needs target/x86_64-unknown-linux-gnu/release/sealwatch: `scripts/build-static.sh`.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::process::{http_agent, http_get as get_with};
use crate::support::unit_file::unit_entries;
use crate::support::{free_port, wait_until, Exposition, PodmanService, Run, BUSYBOX_IMAGE};

const IMAGE: &str = "localhost/sealwatch:test";
const STATIC_BINARY: &str = "target/x86_64-unknown-linux-gnu/release/sealwatch";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Whether an ELF file asks for a program interpreter (PT_INTERP): i.e. is dynamically linked.
fn elf_has_interpreter(bytes: &[u8]) -> bool {
    assert!(
        bytes.len() > 64 && &bytes[..4] == b"\x7fELF",
        "not an ELF file"
    );
    assert_eq!(bytes[4], 2, "not a 64-bit ELF");
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
    let phoff = u64::from_le_bytes(bytes[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| u32_at(phoff + i * phentsize) == 3 /* PT_INTERP */)
}

/// The host-built static binary, checked: present (else: run scripts/build-static.sh), static,
/// and not older than the sources it is built from.
pub(crate) fn static_binary() -> PathBuf {
    // scripts/build-static.sh builds into $CARGO_TARGET_DIR when that is set, as cargo does.
    let bin = std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| PathBuf::from(d).join("x86_64-unknown-linux-gnu/release/sealwatch"))
        .unwrap_or_else(|| repo().join(STATIC_BINARY));
    let meta = std::fs::metadata(&bin).unwrap_or_else(|e| {
        panic!(
            "{} is missing ({e}): run scripts/build-static.sh first (scripts/test.sh does)",
            bin.display()
        )
    });
    let bytes = std::fs::read(&bin).unwrap();
    assert!(
        !elf_has_interpreter(&bytes),
        "{} is dynamically linked and cannot run FROM scratch: build it with scripts/build-static.sh",
        bin.display()
    );
    // Stale? The same test cargo makes: any input listed in the build's dep-info newer than it.
    let built = meta.modified().unwrap();
    let dep_info = bin.with_extension("d");
    let deps = std::fs::read_to_string(&dep_info).unwrap_or_else(|e| {
        panic!(
            "{} is missing ({e}): run scripts/build-static.sh first (scripts/test.sh does)",
            dep_info.display()
        )
    });
    let inputs = deps.split_once(": ").map_or("", |(_, d)| d);
    for input in inputs.split_whitespace() {
        let input = in_git_dir(input);
        let changed = std::fs::metadata(&input).and_then(|m| m.modified());
        assert!(
            changed.is_ok_and(|c| c <= built),
            "{} is older than {}: run scripts/build-static.sh first (scripts/test.sh does)",
            bin.display(),
            input.display()
        );
    }
    bin
}

/// Where a dep-info input under `.git/` really is: in a git worktree `.git` is a file that names
/// the repository's git dir, and build.rs's `.git/HEAD` and `.git/refs/heads` live there
/// (`git rev-parse --git-path`). Any other input is returned as it is.
fn in_git_dir(input: &str) -> PathBuf {
    let git = repo().join(".git");
    match Path::new(input).strip_prefix(&git) {
        Ok(rest) if git.is_file() => {
            let out = std::process::Command::new("git")
                .arg("-C")
                .arg(repo())
                .args(["rev-parse", "--path-format=absolute", "--git-path"])
                .arg(rest)
                .output()
                .unwrap_or_else(|e| panic!("cannot run git to find {input}: {e}"));
            assert!(
                out.status.success(),
                "git rev-parse --git-path {input}: {out:?}"
            );
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
        _ => PathBuf::from(input),
    }
}

/// The `podman run` options the shipped Quadlet unit (deploy/quadlet/sealwatch.container) turns
/// into, adapted to the test: the private socket instead of /run/podman/podman.sock, the host
/// network and a free port instead of PublishPort, the test image. Returns (options, Exec args).
fn quadlet_run_args(socket: &Path, port: u16) -> (Vec<String>, Vec<String>) {
    let path = repo().join("deploy/quadlet/sealwatch.container");
    let (mut opts, mut exec) = (Vec::new(), Vec::new());
    let mut saw_listen = false;
    for (section, k, v) in &unit_entries(&path) {
        if section != "Container" {
            continue;
        }
        let v = v.as_str();
        match k.as_str() {
            "ContainerName" => opts.push(format!("--name={v}")),
            "Image" => {} // the image under test instead
            "Volume" => {
                let mut parts = v.splitn(3, ':');
                let (_src, dst) = (parts.next().unwrap(), parts.next().unwrap());
                assert_eq!(dst, "/run/podman/podman.sock", "unexpected Volume= {v}");
                let o = parts.next().map(|o| format!(":{o}")).unwrap_or_default();
                opts.push(format!("--volume={}:{dst}{o}", socket.display()));
            }
            "Environment" => {
                for kv in v.split_whitespace() {
                    if kv.starts_with("SEALWATCH_WEB_LISTEN_ADDRESS=") {
                        saw_listen = true;
                        opts.push(format!(
                            "--env=SEALWATCH_WEB_LISTEN_ADDRESS=127.0.0.1:{port}"
                        ));
                    } else {
                        opts.push(format!("--env={kv}"));
                    }
                }
            }
            "PublishPort" => {} // host network instead (reachable from the test on a free port)
            "ReadOnly" if v == "true" => {
                // What Quadlet generates for ReadOnly=true without VolatileTmp=.
                opts.extend(["--read-only".into(), "--read-only-tmpfs=false".into()])
            }
            "NoNewPrivileges" if v == "true" => {
                opts.push("--security-opt=no-new-privileges".into())
            }
            "DropCapability" => {
                opts.extend(v.split_whitespace().map(|c| format!("--cap-drop={c}")))
            }
            "PodmanArgs" => opts.extend(v.split_whitespace().map(String::from)),
            "Exec" => exec.extend(v.split_whitespace().map(String::from)),
            other => panic!(
                "{}: translate [Container] {other}= in tests/it/image.rs",
                path.display()
            ),
        }
    }
    assert!(
        saw_listen,
        "the Quadlet unit sets no SEALWATCH_WEB_LISTEN_ADDRESS"
    );
    opts.push("--network=host".into());
    (opts, exec)
}

fn http_get(url: &str) -> Result<(u16, String), String> {
    get_with(&http_agent(), url)
}

fn inspect(svc: &PodmanService, what: &str, name: &str) -> Value {
    let v: Value = serde_json::from_str(&svc.podman(&[what, "inspect", name])).unwrap();
    v[0].clone()
}

/// The static binary has the functions a running sealwatch executes laid out side by side, as
/// scripts/build-static.sh has the linker order them (symbol-order.txt beside the binary, from
/// scripts/hot-functions.txt): their span is about their size, not the whole of the code, so
/// fewer of the code's 64 KiB windows are resident (README, "Memory").
#[test]
fn the_static_binary_has_its_hot_code_side_by_side() {
    let bin = static_binary();
    let order_file = bin.with_file_name("symbol-order.txt");
    let order = std::fs::read_to_string(&order_file).unwrap_or_else(|e| {
        panic!(
            "{} is missing ({e}): run scripts/build-static.sh first (scripts/test.sh does)",
            order_file.display()
        )
    });
    let hot: std::collections::HashSet<&str> = order.lines().filter(|l| !l.is_empty()).collect();
    assert!(hot.len() > 500, "only {} symbols to order", hot.len());
    let nm = std::process::Command::new("nm")
        .args(["-S", "--defined-only"])
        .arg(&bin)
        .output()
        .expect("nm (binutils) runs");
    assert!(nm.status.success(), "nm failed: {nm:?}");
    let nm = String::from_utf8_lossy(&nm.stdout);
    let mut found = std::collections::HashSet::new();
    let (mut bytes, mut lo, mut hi, mut code) = (0u64, u64::MAX, 0u64, 0u64);
    for line in nm.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [addr, size, kind, name] = f[..] else {
            continue;
        };
        if !matches!(kind, "t" | "T" | "w" | "W") {
            continue;
        }
        let (addr, size) = (
            u64::from_str_radix(addr, 16).unwrap(),
            u64::from_str_radix(size, 16).unwrap(),
        );
        code += size;
        if hot.contains(name) {
            found.insert(name);
            bytes += size;
            lo = lo.min(addr);
            hi = hi.max(addr + size);
        }
    }
    assert_eq!(
        found.len(),
        hot.len(),
        "every ordered symbol is in the binary"
    );
    let span = hi - lo;
    eprintln!(
        "{} hot functions, {bytes} bytes, span {span} bytes, of {code} bytes of functions",
        found.len()
    );
    assert!(
        span <= bytes + bytes / 10 + 65_536,
        "the hot functions ({bytes} bytes) are spread over {span} bytes"
    );
    assert!(bytes < code / 2, "{bytes} of {code} bytes are hot");
}

/// The `prebuilt` image builds with `podman build --pull=never --format docker` from the host
/// binary and carries what the issue asks for: FROM scratch with one static binary, root (for the
/// socket), the OCI labels, EXPOSE 9882, ENTRYPOINT, STOPSIGNAL and a curl-less HEALTHCHECK. Run
/// as the Quadlet unit runs it (read-only, no capabilities) with the private Podman socket
/// mounted, its /containers (fetched from the host) lists the test containers; `podman
/// healthcheck run` reports it healthy; `podman stop` returns well under the 10 s kill timeout
/// because sealwatch, as PID 1, exits on SIGTERM by itself (exit status 0).
#[test]
fn prebuilt_image_runs_against_mounted_socket_and_stops_fast() {
    let t0 = Instant::now();
    let bin = static_binary();
    let svc = PodmanService::start();

    // Build.
    let t = Instant::now();
    svc.podman(&[
        "build",
        "--pull=never",
        "--format",
        "docker",
        "--target",
        "prebuilt",
        "-t",
        IMAGE,
        env!("CARGO_MANIFEST_DIR"),
    ]);
    eprintln!("podman build --target prebuilt took {:?}", t.elapsed());

    // What the image carries.
    let img = inspect(&svc, "image", IMAGE);
    let cfg = &img["Config"];
    assert_eq!(
        cfg["Entrypoint"],
        serde_json::json!(["/sealwatch"]),
        "{cfg:#}"
    );
    assert_eq!(cfg["User"], "0:0", "{cfg:#}");
    assert!(
        cfg["ExposedPorts"].get("9882/tcp").is_some(),
        "EXPOSE 9882: {cfg:#}"
    );
    let stop = cfg["StopSignal"].as_str().unwrap_or("");
    assert!(
        stop == "SIGTERM" || stop == "15" || stop == "TERM",
        "StopSignal {stop:?}"
    );
    let hc = img["Healthcheck"]
        .as_object()
        .or_else(|| cfg["Healthcheck"].as_object())
        .unwrap_or_else(|| panic!("no HEALTHCHECK (was --format docker used?): {img:#}"));
    assert_eq!(
        hc["Test"],
        serde_json::json!(["CMD", "/sealwatch", "healthcheck"]),
        "{hc:?}"
    );
    for label in [
        "org.opencontainers.image.title",
        "org.opencontainers.image.description",
        "org.opencontainers.image.version",
        "org.opencontainers.image.source",
        "org.opencontainers.image.licenses",
    ] {
        assert!(
            cfg["Labels"][label].as_str().is_some_and(|s| !s.is_empty()),
            "label {label} missing: {:#}",
            cfg["Labels"]
        );
    }
    let size = img["Size"].as_u64().unwrap();
    let bin_size = std::fs::metadata(&bin).unwrap().len();
    eprintln!("image size {size} bytes; the binary alone {bin_size} bytes");
    // FROM scratch: the binary is (almost) all there is.
    assert!(
        size < bin_size + 64 * 1024,
        "image is {size} bytes for a {bin_size}-byte binary: more than the binary in it?"
    );

    // Test containers to find.
    svc.podman(&["pod", "create", "--name", "shop"]);
    svc.run(
        &Run::new(BUSYBOX_IMAGE)
            .pod("shop")
            .name("web")
            .label("app", "web")
            .sleeping(),
    );
    svc.run(&Run::new(BUSYBOX_IMAGE).name("solo").sleeping());
    svc.run(
        &Run::create(BUSYBOX_IMAGE)
            .name("never-started")
            .cmd(["true"]),
    );

    // Run it the Quadlet way.
    let port = free_port();
    let (opts, exec) = quadlet_run_args(svc.socket_path(), port);
    let run = opts
        .iter()
        .fold(Run::new(IMAGE), |run, o| run.opt(o))
        .cmd(exec);
    eprintln!("podman {}", run.args().join(" "));
    svc.run(&run);
    let base = format!("http://127.0.0.1:{port}");
    let logs = || svc.try_podman(&["logs", "sealwatch"]);
    let ready = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(
            "containerised sealwatch ready",
            Duration::from_secs(30),
            || match http_get(&format!("{base}/-/ready"))? {
                (200, _) => Ok(()),
                (s, b) => Err(format!("status {s}: {b}")),
            },
        )
    }));
    if ready.is_err() {
        let l = logs();
        panic!(
            "sealwatch in the container never became ready\n--- podman logs ---\n{}{}\n--- inspect ---\n{:#}",
            String::from_utf8_lossy(&l.stdout),
            String::from_utf8_lossy(&l.stderr),
            inspect(&svc, "container", "sealwatch")["State"]
        );
    }

    // /containers from the containerised sealwatch lists the test containers.
    let (status, body) = http_get(&format!("{base}/containers?all=true")).unwrap();
    assert_eq!(status, 200, "{body}");
    let list: Value = serde_json::from_str(&body).unwrap();
    let find = |name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not in /containers?all=true: {body}"))
    };
    assert_eq!(find("web")["pod"]["name"], "shop");
    assert_eq!(find("web")["labels"]["app"], "web");
    assert_eq!(find("web")["state"], "running");
    assert_eq!(find("solo")["state"], "running");
    assert_eq!(find("never-started")["state"], "created");
    assert_eq!(find("sealwatch")["state"], "running", "it sees itself");
    let (_, metrics) = http_get(&format!("{base}/metrics")).unwrap();
    let metrics = Exposition::parse_or_panic(&metrics);
    assert_eq!(metrics.value("podman_up", &[]), 1.0, "podman_up");

    // HEALTHCHECK: the binary checks its own readiness, no curl in the image.
    let out = svc.try_podman(&["healthcheck", "run", "sealwatch"]);
    assert!(
        out.status.success(),
        "podman healthcheck run sealwatch: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let state = inspect(&svc, "container", "sealwatch")["State"].clone();
    let health = state["Health"]["Status"]
        .as_str()
        .or(state["Healthcheck"]["Status"].as_str())
        .unwrap_or("");
    assert_eq!(health, "healthy", "{state:#}");
    // …and it does fail when nothing answers.
    let out = svc.try_podman(&[
        "exec",
        "sealwatch",
        "/sealwatch",
        "--web.listen-address=127.0.0.1:1",
        "healthcheck",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "healthcheck against a closed port: {out:?}"
    );

    // A glibc-static binary FROM scratch still resolves names (/etc/hosts that Podman injects):
    // the healthcheck reaches its server as localhost.
    let out = svc.try_podman(&[
        "exec",
        "sealwatch",
        "/sealwatch",
        &format!("--web.listen-address=localhost:{port}"),
        "healthcheck",
    ]);
    assert!(out.status.success(), "healthcheck via localhost: {out:?}");

    // podman stop: SIGTERM to PID 1, which must exit by itself (the kill comes after 10 s).
    let t = Instant::now();
    svc.podman(&["stop", "sealwatch"]);
    let took = t.elapsed();
    eprintln!("podman stop sealwatch took {took:?}");
    let state = inspect(&svc, "container", "sealwatch")["State"].clone();
    assert_eq!(state["ExitCode"], 0, "exit status after SIGTERM: {state:#}");
    assert!(
        took < Duration::from_secs(8),
        "podman stop took {took:?}: SIGTERM is not handled by PID 1"
    );
    eprintln!("test took {:?}", t0.elapsed());
}
