//! `oidc-provider` on Node, run by the test that needs it and gone with it.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Notify;
use url::Url;

/// Test-only credentials; `provider.mjs` registers the same clients.
pub const SERVICE_ID: &str = "service";
pub const SERVICE_SECRET: &str = "service-secret-0123456789";
pub const API_ID: &str = "api";
pub const API_SECRET: &str = "api-secret-0123456789";
pub const CLI_ID: &str = "cli";
pub const WEB_ID: &str = "web";
pub const WEB_SECRET: &str = "web-secret-0123456789";
pub const TV_ID: &str = "tv";
/// A client whose tokens must be DPoP-bound (`dpop_bound_access_tokens`).
pub const DPOP_ID: &str = "dpop-service";
pub const DPOP_SECRET: &str = "dpop-service-secret-0123456789";
// Client authentication by assertion (issue 15); the keys are bearer-jose's
// test fixtures, their public halves registered in provider.mjs.
pub const PKJWT_ID: &str = "pkjwt";
pub const SECRETJWT_ID: &str = "secretjwt";
pub const SECRETJWT_SECRET: &str = "secretjwt-secret-0123456789-0123456789-0123456789";

/// Long enough for Node to start on a loaded CI machine; only ever hit on failure.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const SYNC_TIMEOUT: Duration = Duration::from_secs(10);

/// How to run the provider.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Access token lifetime, in whole seconds (oidc-provider's unit).
    pub access_ttl_secs: u64,
    /// Refresh token lifetime, in whole seconds.
    pub refresh_ttl_secs: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            access_ttl_secs: 2,
            refresh_ttl_secs: 60,
        }
    }
}

/// What the provider printed: one JSON event per line, and its stderr.
#[derive(Default)]
struct Output {
    events: Mutex<Vec<Value>>,
    stderr: Mutex<String>,
    changed: Notify,
}

impl Output {
    fn push(&self, event: Value) {
        self.events.lock().unwrap().push(event);
        self.changed.notify_waiters();
    }

    /// Waits until an event satisfies `found`; `None` after `timeout` or
    /// once the provider's stdout has closed without one.
    async fn wait_for(&self, timeout: Duration, found: impl Fn(&Value) -> bool) -> Option<Value> {
        let wait = async {
            loop {
                let changed = self.changed.notified();
                {
                    let events = self.events.lock().unwrap();
                    if let Some(event) = events.iter().find(|e| found(e)) {
                        return Some(event.clone());
                    }
                    if events.iter().any(|e| e["event"] == "eof") {
                        return None;
                    }
                }
                changed.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.ok().flatten()
    }
}

/// A running provider; killed when dropped.
pub struct Provider {
    child: Child,
    stdin: Mutex<Option<ChildStdin>>,
    output: Arc<Output>,
    issuer: Url,
    version: String,
    next_sync: AtomicU64,
}

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// Installs `oidc-provider` from the lockfile when `node_modules` is
/// missing: once per test binary, and safely beside another `cargo test`
/// doing the same (each installs into its own staging directory, and the
/// first to rename it into place wins).
fn ensure_npm_packages(dir: &Path) {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    let installed = INSTALLED.get_or_init(|| {
        if dir
            .join("node_modules/oidc-provider/package.json")
            .is_file()
        {
            return Ok(());
        }
        let staging = dir.join(format!(".npm-staging-{}", std::process::id()));
        let result = npm_ci(dir, &staging);
        let _ = std::fs::remove_dir_all(&staging);
        result
    });
    if let Err(why) = installed {
        panic!(
            "the interop tests need oidc-provider from tests/interop/package-lock.json, \
             and `npm ci` could not install it ({why}); it needs the npm registry. \
             Run `(cd tests/interop && npm ci)` where the registry is reachable."
        );
    }
}

fn npm_ci(dir: &Path, staging: &Path) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(staging);
    std::fs::create_dir_all(staging).map_err(|e| format!("create {}: {e}", staging.display()))?;
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(dir.join(file), staging.join(file))
            .map_err(|e| format!("copy {file}: {e}"))?;
    }
    eprintln!("tests/interop: node_modules is missing; running npm ci (once)");
    let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
    let output = Command::new(npm)
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(staging)
        .output()
        .map_err(|e| format!("cannot run npm: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!(
            "npm ci failed with {}: {}",
            output.status,
            tail.join(" / ")
        ));
    }
    match std::fs::rename(staging.join("node_modules"), dir.join("node_modules")) {
        Ok(()) => Ok(()),
        // Another test run put its copy in place first.
        Err(_)
            if dir
                .join("node_modules/oidc-provider/package.json")
                .is_file() =>
        {
            Ok(())
        }
        Err(e) => Err(format!("move node_modules into place: {e}")),
    }
}

impl Provider {
    /// Starts a provider on an ephemeral loopback port, installing its
    /// npm packages first if they are missing. Tests that call this are
    /// marked `cfg_attr(not(has_node), ignore = ...)`, so a missing Node is
    /// a failure here.
    pub async fn start(options: Options) -> Provider {
        let dir = interop_dir();
        ensure_npm_packages(&dir);
        let mut child = Command::new("node")
            .arg(dir.join("provider.mjs"))
            .args(["--port", "0"])
            .args(["--access-ttl", &options.access_ttl_secs.to_string()])
            .args(["--refresh-ttl", &options.refresh_ttl_secs.to_string()])
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn node tests/interop/provider.mjs (is Node.js 20+ on PATH?)");
        let output = Arc::new(Output::default());
        read_lines(child.stdout.take().unwrap(), output.clone());
        read_stderr(child.stderr.take().unwrap(), output.clone());
        let stdin = Mutex::new(child.stdin.take());
        let mut provider = Provider {
            child,
            stdin,
            output,
            issuer: Url::parse("http://127.0.0.1/").unwrap(),
            version: String::new(),
            next_sync: AtomicU64::new(0),
        };
        let Some(ready) = provider
            .output
            .wait_for(READY_TIMEOUT, |e| e["event"] == "ready")
            .await
        else {
            panic!(
                "oidc-provider did not start; its stderr:\n{}",
                provider.output.stderr.lock().unwrap()
            );
        };
        provider.issuer = ready["issuer"].as_str().unwrap().parse().unwrap();
        provider.version = ready["version"].as_str().unwrap().to_owned();
        provider
    }

    /// `http://127.0.0.1:<port>`, as the provider names itself.
    pub fn issuer(&self) -> &Url {
        &self.issuer
    }

    /// oidc-provider's version, from its `package.json`.
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn introspection_url(&self) -> Url {
        self.issuer.join("/token/introspection").unwrap()
    }

    pub fn revocation_url(&self) -> Url {
        self.issuer.join("/token/revocation").unwrap()
    }

    /// Every event the provider has emitted so far, complete: a `sync`
    /// round trip through its stdin orders this read after them.
    pub async fn events(&self) -> Vec<Value> {
        let id = self.next_sync.fetch_add(1, Ordering::Relaxed).to_string();
        {
            let mut stdin = self.stdin.lock().unwrap();
            let stdin = stdin.as_mut().expect("provider stdin open");
            writeln!(stdin, "sync {id}").expect("write to the provider's stdin");
            stdin.flush().unwrap();
        }
        self.output
            .wait_for(SYNC_TIMEOUT, |e| {
                e["event"] == "sync" && e["id"] == id.as_str()
            })
            .await
            .expect("the provider answers sync");
        let events = self.output.events.lock().unwrap();
        events
            .iter()
            .filter(|e| e["event"] != "sync")
            .cloned()
            .collect()
    }

    /// How many `event`s the provider emitted for `client_id` (and
    /// `grant_type`, when given).
    pub async fn count(&self, event: &str, client_id: &str, grant_type: Option<&str>) -> usize {
        self.events()
            .await
            .iter()
            .filter(|e| e["event"] == event && e["client_id"] == client_id)
            .filter(|e| grant_type.is_none_or(|g| e["grant_type"] == g))
            .count()
    }

    /// Tokens issued to `client_id` by `grant_type`.
    pub async fn issued(&self, client_id: &str, grant_type: &str) -> usize {
        self.count("grant.success", client_id, Some(grant_type))
            .await
    }

    /// Token requests of `client_id` the provider refused, any grant.
    pub async fn refused(&self, client_id: &str) -> usize {
        self.count("grant.error", client_id, None).await
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        // Closing stdin alone ends it; kill in case it is wedged.
        self.stdin.lock().unwrap().take();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads JSON lines into `output`; other lines (oidc-provider's notices) are skipped.
fn read_lines(stdout: impl Read + Send + 'static, output: Arc<Output>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(event @ Value::Object(_)) = serde_json::from_str::<Value>(&line) {
                output.push(event);
            }
        }
        output.push(serde_json::json!({ "event": "eof" }));
    });
}

fn read_stderr(stderr: impl Read + Send + 'static, output: Arc<Output>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let mut text = output.stderr.lock().unwrap();
            text.push_str(&line);
            text.push('\n');
        }
    });
}
