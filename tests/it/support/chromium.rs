//! A real headless Chromium (Debian's `chromium` package) driven over the Chrome DevTools
//! Protocol: started with a fresh profile in a temp dir on a DevTools port it picks itself, one
//! page target spoken to over a websocket (`tungstenite`), JavaScript evaluated in the page and
//! screenshots taken. Stopped (its whole process group, which it started) when dropped. A missing
//! `chromium` fails the test with the package to install, never skips it.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use tempfile::TempDir;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use super::process::{http_agent, http_get, read_lossy, tail, wait_until};

/// How long Chromium may take to start and open its DevTools port on a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// How long one DevTools call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A running headless Chromium with its own profile directory.
pub struct Chromium {
    child: Child,
    port: u16,
    log: PathBuf,
    _profile: TempDir,
}

impl Chromium {
    /// Starts `chromium --headless` on `about:blank`; waits for its DevTools port.
    pub fn start() -> Self {
        let bin = std::env::var("SEALWATCH_CHROMIUM").unwrap_or_else(|_| "chromium".into());
        let profile = tempfile::Builder::new()
            .prefix("sealwatch-chromium-")
            .tempdir()
            .expect("a temp dir for the Chromium profile");
        let log = profile.path().join("chromium.log");
        let out = std::fs::File::create(&log).expect("the Chromium log file");
        let err = out.try_clone().expect("the Chromium log file");
        let child = Command::new(&bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--hide-scrollbars",
                "--mute-audio",
                "--window-size=1400,900",
                "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Its own process group: dropping it stops the browser and every helper it forked.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `{bin}` ({e}): the page test needs a real Chromium; install \
                     Debian's `chromium` package (apt-get install chromium; scripts/test.sh does)"
                )
            });
        let mut chromium = Chromium {
            child,
            port: 0,
            log,
            _profile: profile,
        };
        let port_file = chromium._profile.path().join("DevToolsActivePort");
        chromium.port = wait_until("Chromium's DevToolsActivePort", START_TIMEOUT, || {
            if let Ok(Some(status)) = chromium.child.try_wait() {
                panic!(
                    "chromium exited early ({status}); its log:\n{}",
                    tail(&read_lossy(&chromium.log), 40)
                );
            }
            let text = std::fs::read_to_string(&port_file).map_err(|e| e.to_string())?;
            text.lines()
                .next()
                .and_then(|l| l.trim().parse::<u16>().ok())
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("no port yet in {text:?}"))
        });
        chromium
    }

    /// Chromium's output so far, for failure messages.
    pub fn log(&self) -> String {
        tail(&read_lossy(&self.log), 60)
    }

    /// The first page target (the `about:blank` tab), connected.
    pub fn tab(&self) -> Tab {
        let agent = http_agent();
        let list_url = format!("http://127.0.0.1:{}/json/list", self.port);
        let ws_url = wait_until("a page target in Chromium", START_TIMEOUT, || {
            let (status, body) = http_get(&agent, &list_url)?;
            if status != 200 {
                return Err(format!("{list_url}: HTTP {status}"));
            }
            let targets: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
            targets
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["type"] == "page")
                .and_then(|t| t["webSocketDebuggerUrl"].as_str())
                .map(str::to_owned)
                .ok_or_else(|| format!("no page target yet: {body}"))
        });
        let (ws, _) = tungstenite::connect(ws_url.as_str())
            .unwrap_or_else(|e| panic!("DevTools websocket {ws_url}: {e}\n{}", self.log()));
        if let MaybeTlsStream::Plain(stream) = ws.get_ref() {
            stream
                .set_read_timeout(Some(CALL_TIMEOUT))
                .expect("a read timeout on the DevTools socket");
        }
        let mut tab = Tab { ws, next_id: 0 };
        tab.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1400, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
        );
        tab
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // The group this test started (process_group(0) above), and nothing else.
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on a process group id we created; no memory is involved.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// One page target spoken to over the DevTools protocol.
pub struct Tab {
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Tab {
    /// Calls `method` with `params`; returns its `result`, or the protocol's error as `Err`.
    pub fn try_call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws
            .send(Message::text(msg))
            .map_err(|e| format!("{method}: send: {e}"))?;
        loop {
            let msg = match self.ws.read() {
                Ok(m) => m,
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    return Err(format!("{method}: no answer in {CALL_TIMEOUT:?}"));
                }
                Err(e) => return Err(format!("{method}: read: {e}")),
            };
            let Message::Text(text) = msg else { continue };
            let v: Value = serde_json::from_str(text.as_str())
                .map_err(|e| format!("{method}: bad DevTools message: {e}"))?;
            // Events (no id) and answers to earlier calls are not ours.
            if v["id"].as_u64() != Some(id) {
                continue;
            }
            if let Some(err) = v.get("error") {
                return Err(format!("{method}: {err}"));
            }
            return Ok(v["result"].clone());
        }
    }

    /// Like [`try_call`](Self::try_call); a protocol error fails the test.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.try_call(method, params)
            .unwrap_or_else(|e| panic!("DevTools {e}"))
    }

    /// Evaluates `expression` in the page and returns its value (promises awaited); an exception
    /// in the page is `Err` with its description.
    pub fn eval(&mut self, expression: &str) -> Result<Value, String> {
        let r = self.try_call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        )?;
        if let Some(ex) = r.get("exceptionDetails") {
            return Err(format!(
                "the page threw: {}",
                ex["exception"]["description"]
                    .as_str()
                    .unwrap_or(&ex.to_string())
            ));
        }
        Ok(r["result"]["value"].clone())
    }

    /// Navigates to `url` and waits until the new document has loaded.
    pub fn navigate(&mut self, url: &str) {
        // Gone with the old document: its absence says the new one is in place.
        self.eval("window.__sealwatchOldDocument = true")
            .unwrap_or_else(|e| panic!("marking the old document: {e}"));
        let r = self.call("Page.navigate", json!({"url": url}));
        if let Some(err) = r["errorText"].as_str() {
            panic!("navigating to {url}: {err}");
        }
        wait_until(&format!("{url} loaded"), START_TIMEOUT, || {
            let state =
                self.eval("window.__sealwatchOldDocument ? 'old document' : document.readyState")?;
            match state.as_str() {
                Some("complete") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        });
    }

    /// Saves a PNG of the whole page to `path`.
    pub fn screenshot(&mut self, path: &Path) {
        use base64::Engine as _;
        let r = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        );
        let data = r["data"].as_str().expect("screenshot data");
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("screenshot base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("the screenshot directory");
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
}
