//! `cargo xtask bench`: builds and runs the benchmarks in bench/, which print their figures.

use crate::shell::{self, cargo};

pub fn run() -> anyhow::Result<()> {
    shell::build_sensor("bench")?;
    let root = shell::workspace_root();
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
