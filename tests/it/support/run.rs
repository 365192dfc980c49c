//! The argument list of a `podman run -d` or `podman create`, built by name instead of written
//! one string per line. It only writes arguments; running them is
//! [`PodmanService::run`](super::PodmanService::run) or any `podman*` call with [`Run::args`].

/// `podman run -d [options] IMAGE [command]` (or `podman create …`), in that order.
#[derive(Debug, Clone)]
pub struct Run {
    /// `["run", "-d"]` or `["create"]`.
    verb: &'static [&'static str],
    /// Options in the order they were added.
    options: Vec<String>,
    image: String,
    /// The command after the image; empty means the image's own.
    command: Vec<String>,
}

impl Run {
    /// `podman run -d … IMAGE`: starts the container in the background.
    pub fn new(image: &str) -> Self {
        Self::with_verb(&["run", "-d"], image)
    }

    /// `podman create … IMAGE`: a container that is created and never started.
    pub fn create(image: &str) -> Self {
        Self::with_verb(&["create"], image)
    }

    fn with_verb(verb: &'static [&'static str], image: &str) -> Self {
        Run {
            verb,
            options: Vec::new(),
            image: image.to_owned(),
            command: Vec::new(),
        }
    }

    /// `--name NAME`
    pub fn name(self, name: &str) -> Self {
        self.opt("--name").opt(name)
    }

    /// `--pod POD`
    pub fn pod(self, pod: &str) -> Self {
        self.opt("--pod").opt(pod)
    }

    /// `--label KEY=VALUE`
    pub fn label(self, key: &str, value: &str) -> Self {
        self.opt("--label").opt(&format!("{key}={value}"))
    }

    /// `--restart POLICY`
    pub fn restart(self, policy: &str) -> Self {
        self.opt("--restart").opt(policy)
    }

    /// `--stop-timeout SECONDS`
    pub fn stop_timeout(self, seconds: u32) -> Self {
        self.opt("--stop-timeout").opt(&seconds.to_string())
    }

    /// `--health-cmd CMD --health-interval disable`: there are no systemd timers here, so each
    /// check runs only when the test runs `podman healthcheck run NAME`.
    pub fn health_cmd(self, cmd: &str) -> Self {
        self.opt("--health-cmd")
            .opt(cmd)
            .opt("--health-interval")
            .opt("disable")
    }

    /// `--health-retries N`
    pub fn health_retries(self, n: u32) -> Self {
        self.opt("--health-retries").opt(&n.to_string())
    }

    /// Any other option (or option value), verbatim.
    pub fn opt(mut self, arg: &str) -> Self {
        self.options.push(arg.to_owned());
        self
    }

    /// The command to run instead of the image's.
    pub fn cmd<S: AsRef<str>>(mut self, command: impl IntoIterator<Item = S>) -> Self {
        self.command = command.into_iter().map(|s| s.as_ref().to_owned()).collect();
        self
    }

    /// `sleep 1000`: a container that keeps running for the whole test.
    pub fn sleeping(self) -> Self {
        self.cmd(["sleep", "1000"])
    }

    /// `sh -c SCRIPT`
    pub fn sh(self, script: &str) -> Self {
        self.cmd(["sh", "-c", script])
    }

    /// A 32 MiB memory limit and a loop that asks for a 64 MiB buffer every second: the OOM
    /// killer kills `dd` (the largest process) each time and the container keeps running.
    pub fn oom_loop(self) -> Self {
        self.opt("--memory=32m").sh(
            "while :; do dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; sleep 1; done",
        )
    }

    /// The arguments after `podman`.
    pub fn args(&self) -> Vec<String> {
        let verb = self.verb.iter().map(|s| s.to_string());
        verb.chain(self.options.iter().cloned())
            .chain([self.image.clone()])
            .chain(self.command.iter().cloned())
            .collect()
    }
}
