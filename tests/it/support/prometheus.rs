//! A real Prometheus server (Debian's `prometheus`) on a free loopback port, scraping the given
//! targets every second, and a small client for its HTTP query API.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::process::{free_port, http_agent, wait_until};

pub struct Prometheus {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    agent: ureq::Agent,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (`host:port`) as job `sealwatch` every second, with
    /// an optional rules file; waits until it is ready. Panics (never skips) if it is missing.
    pub fn start(targets: &[String], rule_file: Option<&Path>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sealwatch-prom-")
            .tempdir()
            .expect("temp dir");
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let rules = rule_file
            .map(|p| format!("rule_files: ['{}']\n", p.display()))
            .unwrap_or_default();
        let config = format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n{rules}scrape_configs:\n  - job_name: sealwatch\n    static_configs: [{{targets: [{}]}}]\n",
            targets.join(", ")
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log clone")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start prometheus ({e}); install Debian's `prometheus` package (see README)")
            });
        let agent = http_agent();
        let p = Prometheus {
            child,
            port,
            dir,
            agent,
        };
        wait_until("prometheus ready", Duration::from_secs(30), || {
            let url = format!("http://127.0.0.1:{}/-/ready", p.port);
            match p.agent.get(&url).call() {
                Ok(r) if r.status() == 200 => Ok(()),
                Ok(r) => Err(format!("status {}", r.status())),
                Err(e) => Err(format!("{e}; log: {}", p.log())),
            }
        });
        p
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Runs an instant query; returns `data.result` (panics on an API error, with its message).
    pub fn query(&self, expr: &str) -> Vec<serde_json::Value> {
        let url = format!("http://127.0.0.1:{}/api/v1/query", self.port);
        let mut resp = self
            .agent
            .get(&url)
            .query("query", expr)
            .call()
            .unwrap_or_else(|e| panic!("query {expr}: {e}"));
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        let body: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("query {expr}: not JSON ({e}): {text}"));
        assert_eq!(body["status"], "success", "query {expr} failed: {body}");
        body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Polls `expr` until it returns at least one series (Prometheus needs a few seconds to
    /// discover targets and take the first scrape).
    pub fn wait_for_data(&self, expr: &str, timeout: Duration) -> Vec<serde_json::Value> {
        wait_until(&format!("data for {expr}"), timeout, || {
            let r = self.query(expr);
            if r.is_empty() {
                Err("empty result".into())
            } else {
                Ok(r)
            }
        })
    }

    /// GET an API path (e.g. `/api/v1/rules`) as JSON.
    pub fn api(&self, path: &str) -> serde_json::Value {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let mut resp = self
            .agent
            .get(&url)
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {text}"))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of an instant-vector sample as f64.
pub fn sample_value(series: &serde_json::Value) -> f64 {
    series["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Metric names selected anywhere in a parsed PromQL expression; an error for a selector without
/// a metric name (a dashboard or rule should never scan every series).
pub fn metric_names(
    expr: &promql_parser::parser::Expr,
) -> Result<std::collections::BTreeSet<String>, String> {
    use promql_parser::label::MatchOp;
    use promql_parser::parser::Expr;
    use promql_parser::util::{walk_expr, ExprVisitor};

    struct Names(std::collections::BTreeSet<String>);
    impl ExprVisitor for Names {
        type Error = String;
        fn pre_visit(&mut self, e: &Expr) -> Result<bool, String> {
            let vs = match e {
                Expr::VectorSelector(vs) => vs,
                Expr::MatrixSelector(ms) => &ms.vs,
                _ => return Ok(true),
            };
            let by_matcher = vs
                .matchers
                .matchers
                .iter()
                .find(|m| m.name == "__name__" && matches!(m.op, MatchOp::Equal))
                .map(|m| m.value.clone());
            let name = vs
                .name
                .clone()
                .or(by_matcher)
                .ok_or_else(|| format!("selector without a metric name: {vs}"))?;
            self.0.insert(name);
            Ok(true)
        }
    }
    let mut names = Names(std::collections::BTreeSet::new());
    walk_expr(&mut names, expr)?;
    Ok(names.0)
}
