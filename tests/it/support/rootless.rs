//! Real rootless Podman services of real users, for the discovery tests: a user (created once
//! with `useradd -m`, which gives a subuid range), their runtime directory `/run/user/<uid>`,
//! their Podman configuration (runc, cgroupfs, the file event log, as on these machines) and
//! `podman system service` as that user on `/run/user/<uid>/podman/podman.sock`, exactly where a
//! logged-in user's `podman.socket` puts it. Needs root and `uidmap` (newuidmap, newgidmap);
//! fails, never skips, without them.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::process::{check_output, run_bounded, wait_until};
use super::BUSYBOX_IMAGE;

const CMD_TIMEOUT: Duration = Duration::from_secs(120);

/// A system user for rootless Podman.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub uid: u32,
    home: PathBuf,
}

impl User {
    /// The user `name`, created if missing, with their containers configuration and the
    /// busybox image imported.
    pub fn ensure(name: &str) -> Self {
        assert!(
            Path::new("/usr/bin/newuidmap").exists(),
            "rootless Podman needs newuidmap: apt-get install uidmap"
        );
        if id_u(name).is_none() {
            let out = run_bounded(
                {
                    let mut c = Command::new("useradd");
                    c.args(["-m", "-s", "/bin/sh", name]);
                    c
                },
                CMD_TIMEOUT,
            )
            .unwrap_or_else(|e| panic!("useradd {name}: {e}"));
            check_output(&format!("useradd -m {name}"), out);
        }
        let uid = id_u(name).unwrap_or_else(|| panic!("no uid for {name}"));
        let user = User {
            name: name.to_owned(),
            uid,
            home: PathBuf::from(format!("/home/{name}")),
        };
        let conf = user.home.join(".config/containers");
        fs::create_dir_all(&conf).expect("containers config dir");
        fs::write(
            conf.join("containers.conf"),
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\"]\n\n[engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
        )
        .expect("containers.conf");
        chown_r(&user.home.join(".config"), &user.name);
        user.login();
        // A clean slate: containers and storage left by an earlier run are gone.
        let _ = run_bounded(
            {
                let mut c = Command::new("pkill");
                c.args(["-u", &uid.to_string()]);
                c
            },
            CMD_TIMEOUT,
        );
        user.podman(&["system", "reset", "--force"]);
        user.login();
        user.import_busybox();
        user
    }

    pub fn runtime_dir(&self) -> PathBuf {
        PathBuf::from(format!("/run/user/{}", self.uid))
    }

    pub fn socket(&self) -> PathBuf {
        self.runtime_dir().join("podman/podman.sock")
    }

    pub fn url(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// What logind does at login: `/run/user/<uid>`, owned by the user, mode 0700.
    pub fn login(&self) {
        let dir = self.runtime_dir();
        fs::create_dir_all(&dir).expect("runtime dir");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).expect("chmod runtime dir");
        chown_r(&dir, &self.name);
    }

    /// What logind does at the last logout: the runtime directory is removed.
    pub fn logout(&self) {
        let _ = fs::remove_dir_all(self.runtime_dir());
    }

    /// `podman ARGS` as this user; panics with its output on failure.
    pub fn podman(&self, args: &[&str]) -> String {
        let out = run_bounded(self.command("podman", args), CMD_TIMEOUT)
            .unwrap_or_else(|e| panic!("podman {args:?} as {}: {e}", self.name));
        check_output(&format!("podman {args:?} as {}", self.name), out)
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new("runuser");
        c.args(["-u", &self.name, "--", "env", "-i"])
            .arg(format!("HOME={}", self.home.display()))
            .arg(format!("USER={}", self.name))
            .arg(format!("XDG_RUNTIME_DIR={}", self.runtime_dir().display()))
            .arg("PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .arg(program)
            .args(args)
            .current_dir(&self.home)
            .stdin(Stdio::null());
        c
    }

    fn import_busybox(&self) {
        if self
            .podman(&["images", "-q", BUSYBOX_IMAGE])
            .trim()
            .is_empty()
        {
            let dir = tempfile::tempdir().expect("temp dir");
            let rootfs = dir.path().join("rootfs");
            fs::create_dir_all(rootfs.join("bin")).expect("rootfs");
            let busybox = ["/bin/busybox", "/usr/bin/busybox"]
                .into_iter()
                .find(|p| Path::new(p).exists())
                .expect("/bin/busybox (apt-get install busybox-static)");
            fs::copy(busybox, rootfs.join("bin/busybox")).expect("copy busybox");
            for applet in ["sh", "sleep", "true"] {
                std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))
                    .expect("applet");
            }
            let tar = dir.path().join("busybox.tar");
            let out = run_bounded(
                {
                    let mut c = Command::new("tar");
                    c.arg("-C").arg(&rootfs).arg("-cf").arg(&tar).arg(".");
                    c
                },
                CMD_TIMEOUT,
            )
            .expect("tar");
            check_output("tar busybox", out);
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
            fs::set_permissions(&tar, fs::Permissions::from_mode(0o644)).expect("chmod");
            self.podman(&[
                "import",
                "--quiet",
                &tar.display().to_string(),
                BUSYBOX_IMAGE,
            ]);
        }
    }

    /// `podman system service --time=0` as this user, serving `socket()`; waits until it answers.
    pub fn serve(&self) -> Service {
        self.login();
        let log = tempfile::NamedTempFile::new().expect("service log");
        let child = self
            .command("podman", &["system", "service", "--time=0"])
            .stdout(Stdio::from(log.reopen().expect("log")))
            .stderr(Stdio::from(log.reopen().expect("log")))
            .spawn()
            .expect("podman system service");
        let service = Service {
            user: self.clone(),
            child,
            log,
        };
        let socket = self.socket();
        wait_until(
            &format!("{}'s podman service", self.name),
            Duration::from_secs(60),
            || {
                std::os::unix::net::UnixStream::connect(&socket)
                    .map(|_| ())
                    .map_err(|e| format!("{e}; log: {}", service.log()))
            },
        );
        service
    }
}

/// A running rootless service; stopped (and the user's containers removed, the pause process
/// ended) on drop.
pub struct Service {
    user: User,
    child: Child,
    log: tempfile::NamedTempFile,
}

impl Service {
    pub fn log(&self) -> String {
        fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Stops the service (SIGTERM, then SIGKILL after 10 s).
    pub fn stop(&mut self) {
        // runuser forwards SIGTERM to podman.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- {}'s podman service log ---\n{}",
                self.user.name,
                self.log()
            );
        }
        self.stop();
        self.user.login();
        let _ = run_bounded(
            self.user.command("podman", &["rm", "-af", "-t", "0"]),
            CMD_TIMEOUT,
        );
        // Podman leaves a catatonit pause process per user.
        let _ = run_bounded(
            {
                let mut c = Command::new("pkill");
                c.args(["-u", &self.user.uid.to_string(), "catatonit"]);
                c
            },
            CMD_TIMEOUT,
        );
    }
}

fn id_u(name: &str) -> Option<u32> {
    let out = Command::new("id").args(["-u", name]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn chown_r(path: &Path, user: &str) {
    let out = Command::new("chown")
        .arg("-R")
        .arg(format!("{user}:{user}"))
        .arg(path)
        .output()
        .expect("chown");
    assert!(out.status.success(), "chown -R {user} {}", path.display());
}
