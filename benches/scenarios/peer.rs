//! The authlib peer: a venv the bench makes itself, and a Python process
//! driving the test kit this bench hosts.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use bearer_testkit::TestServer;

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// The Python of a venv with the pinned requirements, or why there is none.
pub fn python() -> Result<PathBuf, String> {
    let requirements = Path::new(MANIFEST_DIR).join("benches/peers/requirements.txt");
    let wanted = std::fs::read_to_string(&requirements)
        .map_err(|e| format!("{}: {e}", requirements.display()))?;
    let venv = target_dir().join("bench-venv");
    let python = venv.join("bin/python");
    let stamp = venv.join("requirements.installed");
    if python.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(python);
    }
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv",
    )?;
    run(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements),
        "pip install -r benches/peers/requirements.txt",
    )?;
    std::fs::write(&stamp, wanted).map_err(|e| e.to_string())?;
    Ok(python)
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let out = command.output().map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("").to_owned();
        Err(format!("{what} failed: {last}"))
    }
}

/// `target/` (or `CARGO_TARGET_DIR`): the bench binary lives in `<target>/<profile>/deps/`.
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(Path::to_path_buf))
        .unwrap_or_else(|| Path::new(MANIFEST_DIR).join("target"))
}

/// Runs one peer scenario to completion on a blocking thread. `on_warm`
/// runs when the peer reports its warm-up done (the storm revokes then).
pub async fn run_scenario(
    python: &Path,
    server: &TestServer,
    scenario: &str,
    extra: &[String],
    on_warm: impl FnOnce() + Send + 'static,
) -> Result<serde_json::Value, String> {
    let script = Path::new(MANIFEST_DIR).join("benches/peers/authlib_peer.py");
    let mut command = Command::new(python);
    command
        .arg(script)
        .arg(scenario)
        .args(["--token-url", server.token_url().as_str()])
        .args(["--api-url", server.api_url("/api/echo").as_str()])
        .args(["--client-id", server.client_id()])
        .args(["--client-secret", server.client_secret()])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().map_err(|e| format!("python: {e}"))?;
        let stdout = child.stdout.take().expect("piped");
        let mut on_warm = Some(on_warm);
        let mut result = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.map_err(|e| e.to_string())?;
            if line == "warm" {
                if let Some(f) = on_warm.take() {
                    f();
                }
            } else if line.starts_with('{') {
                result = Some(line);
            }
        }
        let output = child.wait_with_output().map_err(|e| e.to_string())?;
        match result {
            Some(json) if output.status.success() => {
                serde_json::from_str(&json).map_err(|e| e.to_string())
            }
            _ => {
                let err = String::from_utf8_lossy(&output.stderr);
                Err(format!(
                    "peer {}: {}",
                    output.status,
                    err.lines().last().unwrap_or("")
                ))
            }
        }
    })
    .await
    .map_err(|e| e.to_string())?
}
