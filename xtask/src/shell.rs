//! Running commands, with their command line in the error when they fail.

use std::{
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

/// Runs `command` with inherited output; fails unless it exits 0.
pub(crate) fn run(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("starting {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(())
}

/// What `cargo test` reported over all its test binaries.
#[derive(Debug, Default)]
pub(crate) struct TestTotals {
    pub passed: u64,
    pub failed: u64,
}

/// Runs `cargo test ...`, passing its output through, and adds up its `test result:` lines.
pub(crate) fn run_tests(command: &mut Command) -> anyhow::Result<TestTotals> {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {command:?}"))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut totals = TestTotals::default();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if let Some(result) = line.strip_prefix("test result: ") {
            totals.passed += count_before(result, " passed");
            totals.failed += count_before(result, " failed");
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!(
            "{command:?} failed: {status} ({} passed, {} failed)",
            totals.passed,
            totals.failed
        );
    }
    Ok(totals)
}

/// The number just before `label` in `text` ("ok. 5 passed; 0 failed" gives 5 for " passed").
fn count_before(text: &str, label: &str) -> u64 {
    text.split_once(label)
        .and_then(|(before, _)| before.rsplit(' ').next())
        .and_then(|number| number.parse().ok())
        .unwrap_or(0)
}

/// Runs `command` and returns its standard output; `None` if it cannot start or fails.
pub(crate) fn output(command: &mut Command) -> Option<String> {
    let output = command.output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs `command` and returns its standard output, or an error with its standard error.
pub(crate) fn stdout_of(command: &mut Command) -> anyhow::Result<String> {
    let output = command
        .output()
        .with_context(|| format!("starting {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `cargo`, as the one running this task (falls back to PATH).
pub(crate) fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// The workspace root: xtask lives one level below it.
pub(crate) fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default()
}

pub(crate) fn require_root(task: &str) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "`cargo xtask {task}` must run as root: it loads XDP programs and makes network namespaces"
        );
    }
    Ok(())
}

/// Whether a task builds the daemons or finds them built.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Binaries {
    Build,
    /// `cargo test --release` of this process built them (and set up the machine).
    BuiltByTests,
}

/// Sets up, checks for root, builds the sensor in release mode unless it is built, and returns
/// its binary's path: the prologue of every task that runs it.
pub(crate) fn sensor(task: &str, binaries: Binaries) -> anyhow::Result<std::path::PathBuf> {
    let root = workspace_root();
    if let Binaries::Build = binaries {
        crate::setup::run()?;
        require_root(task)?;
        build_release(&root)?;
    }
    Ok(root.join("target/release/dcwatch-sensor"))
}

/// Builds both daemons in release mode.
pub(crate) fn build_release(root: &std::path::Path) -> anyhow::Result<()> {
    run(cargo().current_dir(root).args([
        "build",
        "--release",
        "-p",
        "sensor-user",
        "-p",
        "dcwatch-backend",
    ]))
}
