//! `cargo xtask bench`: builds and runs the benchmarks in bench/, which print their figures.

use crate::shell::{self, cargo};

pub fn run() -> anyhow::Result<()> {
    crate::setup::run()?;
    shell::require_root("bench")?;
    let root = shell::workspace_root();
    shell::run(
        cargo()
            .current_dir(&root)
            .args(["build", "--release", "-p", "sensor-user"]),
    )?;
    for bench in ["xdp-cost", "veth-rate"] {
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
