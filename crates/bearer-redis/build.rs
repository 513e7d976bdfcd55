//! Tells the tests whether `redis-server` (and `redis-cli`) can run here: they are compiled
//! as ignored (with the reason, in cargo's own summary) when it cannot,
//! unless `BEARER_REQUIRE_EXTERNAL=1` asks for them to run, and so fail.

use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(has_redis)");
    println!("cargo::rerun-if-env-changed=PATH");
    println!("cargo::rerun-if-env-changed=BEARER_REQUIRE_EXTERNAL");
    // The cluster tests form their cluster with redis-cli, shipped beside it.
    let found = ["redis-server", "redis-cli"].iter().all(|program| {
        Command::new(program)
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success())
    });
    let required = std::env::var("BEARER_REQUIRE_EXTERNAL").as_deref() == Ok("1");
    if found || required {
        println!("cargo::rustc-cfg=has_redis");
    } else {
        // Run again once the program is installed into any PATH directory.
        for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
            if dir.is_dir() {
                println!("cargo::rerun-if-changed={}", dir.display());
            }
        }
        println!(
            "cargo::warning=redis-server or redis-cli is not on PATH: the Redis tests are ignored (apt install redis-server)"
        );
    }
}
