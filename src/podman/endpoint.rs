//! Where a Podman API service listens: `unix:///path` or `tcp://host:port`, parsed from the
//! command line and shown in logs and on `/-/ready`, and the short name an engine gets when the
//! user gives none.
//!
//! Owns the URL forms, their error messages and the well-known socket paths (rootful, rootless).
//! Never connects: `client` does.

use std::ffi::CStr;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where rootful Podman serves its API (`podman.socket`).
pub const ROOTFUL_SOCKET: &str = "/run/podman/podman.sock";

/// Where every user's runtime directory lives (`/run/user/<uid>`, made by logind at log-in).
pub const USER_RUNTIME_ROOT: &str = "/run/user";

/// A user's rootless socket below `/run/user/<uid>`.
pub const ROOTLESS_SOCKET_SUFFIX: &str = "podman/podman.sock";

/// Where a Podman API service listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp(String),
}

impl Endpoint {
    /// Parses `unix:///abs/path` or `tcp://host:port`, the schemes `podman system service` serves.
    pub fn parse(url: &str) -> Result<Self, String> {
        if let Some(path) = url.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(format!(
                    "{url:?}: unix URL has no socket path (use unix:///path/to/podman.sock)"
                ));
            }
            // Podman's own client fixes `unix://rel` to an absolute path; so do we.
            let path = if path.starts_with('/') {
                path.to_owned()
            } else {
                format!("/{path}")
            };
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if let Some(rest) = url.strip_prefix("tcp://") {
            let hostport = rest.trim_end_matches('/');
            let valid = hostport
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !valid || hostport.contains('/') {
                return Err(format!("{url:?}: tcp URL must be tcp://host:port"));
            }
            return Ok(Endpoint::Tcp(hostport.to_owned()));
        }
        if url.starts_with("ssh://") {
            return Err(format!(
                "{url:?}: ssh:// is not supported; forward the socket (ssh -L) and use unix:// or tcp://"
            ));
        }
        Err(format!(
            "{url:?}: expected unix:///path/to/podman.sock or tcp://host:port"
        ))
    }
}

impl Endpoint {
    /// The rootful socket, `unix:///run/podman/podman.sock`.
    pub fn rootful() -> Self {
        Endpoint::Unix(PathBuf::from(ROOTFUL_SOCKET))
    }

    /// The rootless socket of the user `uid`, `unix:///run/user/<uid>/podman/podman.sock`.
    pub fn rootless(uid: u32) -> Self {
        Endpoint::Unix(
            Path::new(USER_RUNTIME_ROOT)
                .join(uid.to_string())
                .join(ROOTLESS_SOCKET_SUFFIX),
        )
    }

    /// Whether this is the rootful socket (also by its old `/var/run` path).
    pub fn is_rootful(&self) -> bool {
        matches!(self, Endpoint::Unix(p)
            if p == Path::new(ROOTFUL_SOCKET) || p == Path::new("/var/run/podman/podman.sock"))
    }

    /// The user whose rootless socket this is, from `/run/user/<uid>/podman/podman.sock`.
    pub fn rootless_uid(&self) -> Option<u32> {
        let Endpoint::Unix(p) = self else {
            return None;
        };
        let rest = p
            .strip_prefix(USER_RUNTIME_ROOT)
            .or_else(|_| p.strip_prefix("/var/run/user"))
            .ok()?;
        let mut parts = rest.components();
        let uid = parts.next()?.as_os_str().to_str()?;
        // Only canonical decimal UIDs: `/run/user/01000` is not user 1000's directory.
        if uid.starts_with('0') && uid != "0" {
            return None;
        }
        let uid: u32 = uid.parse().ok()?;
        (parts.as_path() == Path::new(ROOTLESS_SOCKET_SUFFIX)).then_some(uid)
    }

    /// A short, readable, stable engine name for an endpoint the user did not name:
    /// - `root` for the rootful socket;
    /// - the login name for a user's rootless socket (`login_name` looks it up; the UID where
    ///   the user has no name);
    /// - `host:port` for tcp;
    /// - for any other socket, its file name without `.sock`, or, when that is the generic
    ///   `podman`, the nearest directory above it that is not named `podman`
    ///   (`/srv/ci-a/podman.sock` is `ci-a`, `/home/u/.local/podman/podman.sock` is `.local`);
    ///   the whole path if nothing else is left.
    ///
    /// Names are not unique by themselves (`/a/x.sock` and `/b/x.sock` are both `x`):
    /// `unique_name` settles collisions.
    pub fn short_name(&self, login_name: impl FnOnce(u32) -> Option<String>) -> String {
        if self.is_rootful() {
            return "root".into();
        }
        if let Some(uid) = self.rootless_uid() {
            return login_name(uid).unwrap_or_else(|| uid.to_string());
        }
        match self {
            Endpoint::Tcp(hostport) => hostport.clone(),
            Endpoint::Unix(path) => {
                let file = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
                let stem = file.strip_suffix(".sock").unwrap_or(file);
                if !stem.is_empty() && stem != "podman" {
                    return stem.to_owned();
                }
                path.ancestors()
                    .skip(1)
                    .filter_map(|a| a.file_name()?.to_str())
                    .find(|name| *name != "podman")
                    .map_or_else(|| path.display().to_string(), str::to_owned)
            }
        }
    }
}

/// `name` if no engine has it yet, else `name-2`, `name-3`, ...: derived names never clash with
/// each other or with names the user chose.
pub fn unique_name(name: String, taken: impl Fn(&str) -> bool) -> String {
    if !taken(&name) {
        return name;
    }
    (2u32..)
        .map(|n| format!("{name}-{n}"))
        .find(|candidate| !taken(candidate))
        .unwrap_or(name)
}

/// The login name of `uid`, or `None` when the user has none or the lookup fails.
///
/// A dynamically linked sealwatch asks the C library (`getpwuid_r`: `/etc/passwd`, and LDAP or
/// SSSD through NSS where the host has them). The static build (packages, container image)
/// reads `/etc/passwd` itself: a statically linked glibc would load the host's NSS modules,
/// built for another glibc, into the process. Users known only to NSS then get their UID.
pub fn login_name(uid: u32) -> Option<String> {
    if cfg!(target_feature = "crt-static") {
        let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
        return passwd_name(&passwd, uid);
    }
    libc_login_name(uid)
}

/// The name of `uid` in the text of an `/etc/passwd` file (`name:x:uid:gid:...`).
fn passwd_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id: u32 = fields.nth(1)?.parse().ok()?;
        (id == uid && !name.is_empty() && !name.starts_with(['#', '+', '-']))
            .then(|| name.to_owned())
    })
}

fn libc_login_name(uid: u32) -> Option<String> {
    let mut buf = vec![0u8; 1024];
    loop {
        // SAFETY: all-zero is a valid `passwd` (null pointers, zero ids) for getpwuid_r to fill.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; `buf` outlives the use of `pwd`'s
        // strings, which point into it.
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        // SAFETY: getpwuid_r succeeded, so pw_name is a NUL-terminated string inside `buf`.
        let name = unsafe { CStr::from_ptr(pwd.pw_name) };
        return name
            .to_str()
            .ok()
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix://{}", p.display()),
            Endpoint::Tcp(h) => write!(f, "tcp://{h}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_url_forms_podman_serves() {
        assert_eq!(
            Endpoint::parse("unix:///run/podman/podman.sock"),
            Ok(Endpoint::Unix("/run/podman/podman.sock".into()))
        );
        assert_eq!(
            Endpoint::parse("unix://run/p.sock"),
            Ok(Endpoint::Unix("/run/p.sock".into()))
        );
        assert_eq!(
            Endpoint::parse("tcp://127.0.0.1:8080"),
            Ok(Endpoint::Tcp("127.0.0.1:8080".into()))
        );
        assert!(Endpoint::parse("tcp://host").is_err());
        assert!(Endpoint::parse("http://x").is_err());
        assert!(Endpoint::parse("ssh://u@h/run/podman/podman.sock")
            .unwrap_err()
            .contains("ssh"));
        assert!(Endpoint::parse("unix://").is_err());
    }

    fn named(url: &str) -> String {
        Endpoint::parse(url)
            .unwrap()
            .short_name(|uid| (uid == 1001).then(|| "alice".to_owned()))
    }

    #[test]
    fn short_names_for_unnamed_engines() {
        assert_eq!(named("unix:///run/podman/podman.sock"), "root");
        assert_eq!(named("unix:///var/run/podman/podman.sock"), "root");
        assert_eq!(named("unix:///run/user/1001/podman/podman.sock"), "alice");
        assert_eq!(named("unix:///run/user/1002/podman/podman.sock"), "1002");
        assert_eq!(named("tcp://10.0.0.5:8080"), "10.0.0.5:8080");
        assert_eq!(named("unix:///tmp/sw-x1/podman.sock"), "sw-x1");
        assert_eq!(named("unix:///srv/ci/engine.sock"), "engine");
        assert_eq!(named("unix:///home/u/.local/podman/podman.sock"), ".local");
        assert_eq!(named("unix:///podman.sock"), "/podman.sock");
        // Not a rootless socket: other files in the runtime dir, non-canonical UIDs.
        assert_eq!(named("unix:///run/user/1001/other.sock"), "other");
        assert_eq!(named("unix:///run/user/01001/podman/podman.sock"), "01001");
    }

    #[test]
    fn well_known_sockets_round_trip() {
        assert!(Endpoint::rootful().is_rootful());
        assert_eq!(Endpoint::rootless(7).rootless_uid(), Some(7));
        assert_eq!(
            Endpoint::rootless(7).to_string(),
            "unix:///run/user/7/podman/podman.sock"
        );
        assert_eq!(Endpoint::rootful().rootless_uid(), None);
    }

    #[test]
    fn unique_names_get_a_suffix() {
        let taken = ["a", "a-2"];
        assert_eq!(unique_name("a".into(), |n| taken.contains(&n)), "a-3");
        assert_eq!(unique_name("b".into(), |n| taken.contains(&n)), "b");
    }

    /// The password database answers for root, and a UID nobody has gives no name.
    #[test]
    fn login_names_come_from_the_password_database() {
        for lookup in [login_name, libc_login_name] {
            assert_eq!(lookup(0).as_deref(), Some("root"));
            assert_eq!(lookup(3_999_999_999), None);
        }
        let passwd = "root:x:0:0:root:/root:/bin/bash\n# comment:x:5\nalice:x:1001:1001::/home/alice:/bin/sh\n";
        assert_eq!(passwd_name(passwd, 1001).as_deref(), Some("alice"));
        assert_eq!(passwd_name(passwd, 5), None);
        assert_eq!(passwd_name(passwd, 2), None);
    }
}
