//! `report DIR [--quick]`: runs the benchmarks the performance report covers, each writing its
//! figures to DIR/raw, then writes DIR/report.md with a PNG per figure. `cargo xtask bench
//! --report DIR` builds everything and runs this. The benchmarks are this binary's siblings
//! (target/release); `SURICATA`, `WORKERS` and `BENCH_MACHINE_NOTE` pass through to them.
#![expect(clippy::print_stderr, reason = "progress goes to stderr")]

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Instant, SystemTime},
};

use anyhow::{Context as _, bail};
use bench::{
    render::{self, BenchRun},
    report::{self, DIR_VARIABLE, QUICK_VARIABLE},
};

/// The benchmarks of the report, in its order.
const BENCHES: &[&str] = &[
    "xdp-cost",
    "veth-rate",
    "replay-cost",
    "workers-cost",
    "detect-cost",
    "transport-cost",
];

fn main() -> anyhow::Result<()> {
    let mut dir = None;
    let mut quick = false;
    for arg in std::env::args_os().skip(1) {
        if arg == "--quick" {
            quick = true;
        } else if dir.is_none() {
            dir = Some(PathBuf::from(arg));
        } else {
            bail!("usage: report DIR [--quick]");
        }
    }
    let dir = dir.context("usage: report DIR [--quick]")?;
    let raw = dir.join("raw");
    // Figures of an earlier report must not mix with this one's.
    if raw.exists() {
        std::fs::remove_dir_all(&raw).with_context(|| format!("emptying {}", raw.display()))?;
    }
    std::fs::create_dir_all(&raw)?;
    let binaries = std::env::current_exe()?
        .parent()
        .context("the report binary's folder")?
        .to_path_buf();
    let started = Instant::now();
    let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let load_before = load_average();
    let mut runs = Vec::new();
    for bench in BENCHES {
        eprintln!("report: running {bench}");
        runs.push(run(&binaries.join(bench), bench, &dir, quick)?);
    }
    let mut machine = machine();
    machine.push(format!(
        "Load average (1, 5, 15 min) before: {load_before}; after: {}",
        load_average()
    ));
    let context = render::Context {
        quick,
        machine,
        started: started_at,
        total: started.elapsed(),
    };
    render::report(&dir, &context, &runs)?;
    eprintln!("report: {}", dir.join("report.md").display());
    let failed: Vec<&str> = runs
        .iter()
        .filter(|run| run.failure.is_some())
        .map(|run| run.bench.as_str())
        .collect();
    if !failed.is_empty() {
        bail!("failed: {}", failed.join(", "));
    }
    Ok(())
}

/// Runs one benchmark, its output kept in raw/BENCH.txt; a failure is reported, not fatal, so
/// the other figures still make the report.
fn run(binary: &Path, bench: &str, dir: &Path, quick: bool) -> anyhow::Result<BenchRun> {
    let output = File::create(dir.join("raw").join(format!("{bench}.txt")))?;
    let started = Instant::now();
    let status = Command::new(binary)
        .env(DIR_VARIABLE, dir)
        .env(QUICK_VARIABLE, if quick { "1" } else { "" })
        .stdout(output)
        .stderr(Stdio::inherit())
        .status();
    let wall = started.elapsed();
    let failure = match status {
        Ok(status) if status.success() => None,
        Ok(status) => Some(format!("{status}; see raw/{bench}.txt")),
        Err(error) => Some(format!("{}: {error}", binary.display())),
    };
    let path = report::raw_path(dir, bench);
    let figures = if path.exists() {
        Some(report::read(&path)?)
    } else {
        None
    };
    let failure = failure.or_else(|| {
        figures
            .is_none()
            .then(|| format!("wrote no figures to {}", path.display()))
    });
    Ok(BenchRun {
        bench: bench.to_owned(),
        wall,
        failure,
        figures,
    })
}

/// The machine, as far as the report can tell: CPU model and count, memory, kernel, and the
/// note given in `BENCH_MACHINE_NOTE` (what else ran on it).
fn machine() -> Vec<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or("unknown CPU", |(_, model)| model.trim());
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or_else(
            || "unknown".to_owned(),
            |kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0),
        );
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").map_or_else(
        |_| "unknown".to_owned(),
        |release| release.trim().to_owned(),
    );
    let mut lines = vec![format!(
        "Machine: {model}, {cpus} CPUs, {memory}, Linux {kernel}"
    )];
    if let Ok(note) = std::env::var("BENCH_MACHINE_NOTE")
        && !note.is_empty()
    {
        lines.push(format!("Note: {note}"));
    }
    if let Some(commit) = commit() {
        lines.push(format!("Commit: {commit}"));
    }
    lines
}

fn commit() -> Option<String> {
    let output = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").ok().map_or_else(
        || "unknown".to_owned(),
        |text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(", ")
        },
    )
}
