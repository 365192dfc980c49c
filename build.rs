//! Records the git revision and rustc version for `sealwatch_build_info` and `--version`.
use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn main() {
    let revision = std::env::var("SEALWATCH_REVISION")
        .ok()
        .or_else(|| output("git", &["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = output(&rustc, &["--version"])
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=SEALWATCH_REVISION={revision}");
    println!("cargo:rustc-env=SEALWATCH_RUSTC={rustc_version}");
    println!("cargo:rerun-if-env-changed=SEALWATCH_REVISION");
    // The files that change when HEAD moves, wherever git keeps them (in a worktree `.git` is a
    // file, and a missing path makes cargo rerun this script on every build).
    let git_dir = output("git", &["rev-parse", "--git-dir"]);
    let common = output("git", &["rev-parse", "--git-common-dir"]);
    match (git_dir, common) {
        (Some(dir), Some(common)) => {
            // Only paths that exist: cargo reruns the script on every build for a missing one.
            let head = output("git", &["symbolic-ref", "-q", "HEAD"]);
            let paths = [
                Some(format!("{dir}/HEAD")),
                head.map(|h| format!("{common}/{h}")),
                Some(format!("{common}/packed-refs")),
            ];
            for path in paths.into_iter().flatten() {
                if std::path::Path::new(&path).exists() {
                    println!("cargo:rerun-if-changed={path}");
                }
            }
        }
        // Not a git checkout (a source tarball): nothing to watch but the variable above.
        _ => println!("cargo:rerun-if-changed=build.rs"),
    }
}
