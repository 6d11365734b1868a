//! `cargo xtask bench`: builds and runs the benchmarks in bench/, which print their figures.

use crate::{
    setup,
    shell::{self, cargo},
};

/// The tools `replay-cost` measures the sensor against.
const BASELINE_PACKAGES: &[&str] = &["tshark", "tcpdump"];

pub fn run() -> anyhow::Result<()> {
    shell::build_sensor("bench")?;
    setup::apt_install(BASELINE_PACKAGES)?;
    let root = shell::workspace_root();
    // transport-cost, alert-latency and cluster-scale run a real backend.
    shell::run(cargo().current_dir(&root).args([
        "build",
        "--release",
        "-p",
        "dcwatch-backend",
        "--bin",
        "dcwatch-backend",
    ]))?;
    for bench in [
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
    ] {
        shell::run(cargo().current_dir(&root).args([
            "run",
            "--release",
            "-q",
            "-p",
            "bench",
            "--bin",
            bench,
        ]))?;
    }
    Ok(())
}
