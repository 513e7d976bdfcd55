//! `cargo bench --bench scenarios [-- --quick] [SCENARIO...]`: the token
//! layer under load, against the test kit on loopback, beside baselines
//! (no cache; a mutex held across the fetch, as Go's x/oauth2) and a peer
//! (authlib). Prints one `RESULT <scenario> key=value ... impl=<name>` line
//! per measurement, then tables. Figures are printed, never asserted;
//! correctness checks (the soak's accounting) are, and fail the run.
//!
//! Scenarios: overhead, stampede, expiry, storm, outage, composition, soak.
//! BENCHMARKS.md explains each and quotes a full run.

#[path = "scenarios/baselines.rs"]
mod baselines;
#[path = "scenarios/common.rs"]
mod common;
#[path = "scenarios/composition.rs"]
mod composition;
#[path = "scenarios/expiry.rs"]
mod expiry;
#[path = "scenarios/outage.rs"]
mod outage;
#[path = "scenarios/overhead.rs"]
mod overhead;
#[path = "scenarios/peer.rs"]
mod peer;
#[path = "shared/throughput.rs"]
mod shared;
#[path = "scenarios/soak.rs"]
mod soak;
#[path = "scenarios/stampede.rs"]
mod stampede;
#[path = "scenarios/storm.rs"]
mod storm;
#[path = "scenarios/table.rs"]
mod table;

use std::process::ExitCode;
use std::time::Instant;

use common::{Mode, Report};

const SCENARIOS: [&str; 7] = [
    "overhead",
    "stampede",
    "expiry",
    "storm",
    "outage",
    "composition",
    "soak",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = Mode {
        quick: args.iter().any(|a| a == "--quick"),
    };
    // cargo passes `--bench`; anything else not a flag picks scenarios.
    let picked: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with("--"))
        .map(String::as_str)
        .collect();
    if let Some(unknown) = picked.iter().find(|p| !SCENARIOS.contains(p)) {
        eprintln!(
            "unknown scenario {unknown}; known: {}",
            SCENARIOS.join(", ")
        );
        return ExitCode::from(2);
    }
    let wanted = |name: &str| picked.is_empty() || picked.contains(&name);
    // Like a service: a subscriber that keeps errors only. Without any,
    // tracing's `log` fallback (switched on in this build by axum, via the
    // test kit) formats every span's fields, the middleware's disabled
    // debug span included; SCENARIOS_NO_SUBSCRIBER=1 measures that case.
    let subscriber = std::env::var_os("SCENARIOS_NO_SUBSCRIBER").is_none();
    if subscriber {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::ERROR)
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    let mut report = Report::default();
    println!(
        "mode: {}; tracing subscriber: {}",
        if mode.quick { "quick" } else { "full" },
        if subscriber { "errors only" } else { "none" }
    );
    runtime.block_on(async {
        let needs_peer = ["stampede", "expiry", "storm"].iter().any(|s| wanted(s));
        let python = if needs_peer {
            match peer::python() {
                Ok(p) => Some(p),
                Err(why) => {
                    report.note(format!("SKIPPED: authlib peer ({why})"));
                    None
                }
            }
        } else {
            None
        };
        let python = python.as_deref();
        for name in SCENARIOS.into_iter().filter(|s| wanted(s)) {
            let t = Instant::now();
            match name {
                "overhead" => overhead::run(mode, &mut report).await,
                "stampede" => stampede::run(mode, &mut report, python).await,
                "expiry" => expiry::run(mode, &mut report, python).await,
                "storm" => storm::run(mode, &mut report, python).await,
                "outage" => outage::run(mode, &mut report).await,
                "composition" => composition::run(mode, &mut report).await,
                "soak" => soak::run(mode, &mut report).await,
                _ => unreachable!("checked above"),
            }
            eprintln!("[{name}: {:.1} s]", t.elapsed().as_secs_f64());
        }
    });
    println!();
    print!("{}", table::render(&report));
    println!("run time: {:.1} s", started.elapsed().as_secs_f64());
    if report.failed_checks.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("failed checks:\n  {}", report.failed_checks.join("\n  "));
        ExitCode::FAILURE
    }
}
