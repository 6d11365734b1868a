//! `cargo xtask test`: what CI runs.

use std::process::Command;

use crate::shell::{self, cargo};

/// How long each fuzz target runs: a smoke run by default, longer with `--full`.
const SMOKE_FUZZ_SECS: u64 = 30;
const FULL_FUZZ_SECS: u64 = 300;

pub(crate) fn run(end_to_end: bool, full: bool) -> anyhow::Result<()> {
    crate::setup::run()?;
    shell::require_root("test")?;
    let root = shell::workspace_root();
    shell::run(
        cargo()
            .current_dir(&root)
            .args(["fmt", "--all", "--", "--check"]),
    )?;
    shell::run(cargo().current_dir(&root).args([
        "clippy",
        "--release",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The eBPF crate, checked for its own target.
    shell::run(
        cargo()
            .current_dir(root.join("sensor-ebpf"))
            .args([
                "clippy",
                "--release",
                "--target",
                "bpfel-unknown-none",
                "-Z",
                "build-std=core",
                "--bins",
                "--",
                "-D",
                "warnings",
            ])
            .env("RUSTC_BOOTSTRAP", "1"),
    )?;
    // Licences, banned crates and sources (deny.toml); advisories need the RustSec database,
    // which CI cannot fetch.
    shell::run(
        cargo()
            .current_dir(&root)
            .args(["deny", "check", "licenses", "bans", "sources"]),
    )?;
    // Spelling, with the project's own words in _typos.toml.
    shell::run(Command::new(crate::setup::typos_binary()).current_dir(&root))?;
    let mut totals = shell::run_tests(cargo().current_dir(&root).args(["test", "--release"]))?;
    crate::fuzz::run(if full {
        FULL_FUZZ_SECS
    } else {
        SMOKE_FUZZ_SECS
    })?;
    if full {
        let slow = shell::run_tests(cargo().current_dir(&root).args([
            "test",
            "--release",
            "--",
            "--ignored",
        ]))?;
        totals.passed += slow.passed;
        totals.failed += slow.failed;
    }
    if end_to_end {
        // Each lab scenario counts as one test. `cargo test` has just built both daemons: a
        // `cargo build` of them alone would build them again, its features unified without the
        // tests' dev-dependencies (minutes on a fresh machine).
        let scenarios = crate::e2e::play_all(&[], false, None, shell::Binaries::BuiltByTests)?;
        totals.passed += scenarios.passed;
        totals.failed += scenarios.failed;
    }
    // One closing line for the whole run, where cargo prints one per test binary.
    println!("{} passed, {} failed", totals.passed, totals.failed);
    if totals.failed > 0 {
        anyhow::bail!("{} test(s) failed", totals.failed);
    }
    Ok(())
}
