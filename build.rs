//! Tells the interop tests whether Node.js 20+ and npm can run here: they
//! are compiled as ignored (with the reason, in cargo's own summary) when
//! they cannot, unless `BEARER_REQUIRE_EXTERNAL=1` asks for them to run,
//! and so fail.

use std::process::Command;

/// The major version `node --version` reports, if node runs.
fn node_major() -> Option<u32> {
    let out = Command::new("node").arg("--version").output().ok()?;
    let version = String::from_utf8(out.stdout).ok()?;
    version
        .trim()
        .strip_prefix('v')?
        .split('.')
        .next()?
        .parse()
        .ok()
}

fn main() {
    println!("cargo::rustc-check-cfg=cfg(has_node)");
    println!("cargo::rerun-if-env-changed=PATH");
    println!("cargo::rerun-if-env-changed=BEARER_REQUIRE_EXTERNAL");
    // npm is a script: on Windows it is `npm.cmd`, which `Command` finds
    // only by that name.
    let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
    let npm_runs = Command::new(npm)
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    let found = node_major().is_some_and(|major| major >= 20) && npm_runs;
    let required = std::env::var("BEARER_REQUIRE_EXTERNAL").as_deref() == Ok("1");
    if found || required {
        println!("cargo::rustc-cfg=has_node");
    } else {
        // Run again once the program is installed into any PATH directory.
        for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
            if dir.is_dir() {
                println!("cargo::rerun-if-changed={}", dir.display());
            }
        }
        println!(
            "cargo::warning=Node.js 20+ with npm is not on PATH: the oidc-provider interop tests are ignored"
        );
    }
}
