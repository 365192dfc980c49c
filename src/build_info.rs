//! Build facts: version, git revision, rustc version, and the User-Agent sent to Podman.
//!
//! The one home of these constants (set by `build.rs` and Cargo), so `--version`,
//! `sealwatch_build_info`, the landing page, the start-up log and the Podman client agree.
//! Never computed at run time.

/// The crate version, from Cargo.toml.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The short git revision the binary was built from, or `unknown` outside a checkout.
pub const REVISION: &str = env!("SEALWATCH_REVISION");
/// The rustc version that built the binary.
pub const RUSTC: &str = env!("SEALWATCH_RUSTC");
/// What sealwatch calls itself in requests to Podman, so its calls can be told apart in
/// Podman's logs.
pub const USER_AGENT: &str = concat!("sealwatch/", env!("CARGO_PKG_VERSION"));
/// What `--version` prints after the program name.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("SEALWATCH_REVISION"),
    ", rustc ",
    env!("SEALWATCH_RUSTC"),
    ")"
);
