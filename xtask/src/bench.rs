//! `cargo xtask bench`: builds and runs the benchmarks in bench/, which print their figures; with
//! `--report DIR`, the performance report instead (bench/src/bin/report.rs).

use std::path::Path;

use crate::shell::{self, cargo};

/// Every benchmark, in the order `cargo xtask bench` runs them.
const BENCHES: &[&str] = &[
    "xdp-cost",
    "veth-rate",
    "replay-cost",
    "workers-cost",
    "detect-cost",
    "transport-cost",
    "alert-latency",
    "cluster-scale",
    "directory-cost",
    "profile-cost",
    "store-size",
    "limiter-cost",
];

pub(crate) fn run(report: Option<&Path>, quick: bool, full: bool) -> anyhow::Result<()> {
    crate::setup::run()?;
    shell::require_root("bench")?;
    let root = shell::workspace_root();
    // One build of the daemons (the sensor, `dcwatch-replay`, the backend the transport and
    // cluster benchmarks run) and the benchmarks, so they share one set of features.
    shell::run(cargo().current_dir(&root).args([
        "build",
        "--release",
        "-p",
        "sensor-user",
        "-p",
        "dcwatch-backend",
        "-p",
        "bench",
        "--bins",
    ]))?;
    let binaries = root.join("target/release");
    if let Some(dir) = report {
        let mut command = std::process::Command::new(binaries.join("report"));
        command.arg(dir);
        if quick {
            command.arg("--quick");
        }
        return shell::run(&mut command);
    }
    for bench in BENCHES {
        let mut command = std::process::Command::new(binaries.join(bench));
        if full && *bench == "directory-cost" {
            command.arg("--full");
        }
        shell::run(&mut command)?;
    }
    Ok(())
}
