//! Where a Podman API service listens: `unix:///path` or `tcp://host:port`, parsed from the
//! command line and shown in logs and on `/-/ready`.
//!
//! Owns the URL forms and their error messages. Never connects: `client` does.

use std::fmt;
use std::path::PathBuf;

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
}
