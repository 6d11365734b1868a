//! The fuzz targets in `cargo xtask test`: every target of the fuzz packages, built once with
//! cargo-fuzz (libFuzzer, AddressSanitizer) and run from its tracked seeds for a fixed time,
//! one per core. A crash, a leak, an out-of-memory or a hang fails the run and names the input
//! libFuzzer saved.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Mutex, PoisonError},
    time::Instant,
};

use anyhow::{Context as _, bail};

use crate::shell::{self, cargo};

/// The packages holding fuzz targets (each `<dir>/fuzz`, a workspace of its own).
const FUZZ_PACKAGES: &[&str] = &["parsers", "pipeline", "detect"];
/// libFuzzer's per-input limit: the slowest input of the recorded runs took under a second, so
/// one that takes this long is a hang, not a slow machine.
const INPUT_TIMEOUT_SECS: u64 = 10;
/// The recorded runs peaked near 700 MB (the packages' READMEs); libFuzzer's own default.
const RSS_LIMIT_MB: u64 = 2048;

/// One target of one package.
#[derive(Debug)]
struct Target {
    package: &'static str,
    name: String,
}

/// Builds every target, then runs each for `seconds` from its seeds, as many at once as there
/// are cores.
pub(crate) fn run(seconds: u64) -> anyhow::Result<()> {
    let root = shell::workspace_root();
    let target_dir = root.join("target/fuzz");
    let started = Instant::now();
    let mut targets = Vec::new();
    for package in FUZZ_PACKAGES {
        let dir = root.join(package);
        // One target directory for the three packages: what they share (the parsers, the
        // protobuf types) builds once.
        shell::run(
            fuzz_command(&dir)
                .args(["build", "--target-dir"])
                .arg(&target_dir),
        )?;
        let listed = shell::stdout_of(fuzz_command(&dir).arg("list"))?;
        targets.extend(listed.lines().map(|name| Target {
            package,
            name: name.trim().to_owned(),
        }));
    }
    let built = started.elapsed().as_secs();
    let binaries = target_dir.join("x86_64-unknown-linux-gnu/release");
    let queue = Mutex::new(targets.iter());
    let failures = Mutex::new(Vec::new());
    let jobs = std::thread::available_parallelism().map_or(1, usize::from);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                while let Some(target) = next(&queue) {
                    if let Err(error) = run_target(&root, &binaries, target, seconds) {
                        failures
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(format!("{error:#}"));
                    }
                }
            });
        }
    });
    eprintln!(
        "fuzz: {} targets, built in {built}s, ran {seconds}s each, {}s in all",
        targets.len(),
        started.elapsed().as_secs()
    );
    let failures = failures
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    if !failures.is_empty() {
        bail!("fuzzing failed:\n{}", failures.join("\n"));
    }
    Ok(())
}

fn next<'a>(queue: &Mutex<std::slice::Iter<'a, Target>>) -> Option<&'a Target> {
    queue.lock().unwrap_or_else(PoisonError::into_inner).next()
}

/// `cargo fuzz` in a package. cargo-fuzz passes `-Z` flags to cargo: stable takes them with
/// `RUSTC_BOOTSTRAP=1`, as the eBPF build does (TOOLCHAIN.md), so no nightly is needed.
fn fuzz_command(package_dir: &Path) -> Command {
    let mut command = cargo();
    command
        .current_dir(package_dir)
        .arg("fuzz")
        .env("RUSTC_BOOTSTRAP", "1");
    command
}

/// Runs one target for `seconds` on a fresh corpus beside its seeds; its output goes to a log
/// whose end is shown when it fails, with the input libFuzzer saved.
fn run_target(root: &Path, binaries: &Path, target: &Target, seconds: u64) -> anyhow::Result<()> {
    let Target { package, name } = target;
    let fuzz_dir = root.join(package).join("fuzz");
    let work = root.join("target/fuzz/runs").join(name);
    let corpus = work.join("corpus");
    let artifacts = fuzz_dir.join("artifacts").join(name);
    let _ = std::fs::remove_dir_all(&corpus);
    std::fs::create_dir_all(&corpus).with_context(|| format!("creating {}", corpus.display()))?;
    std::fs::create_dir_all(&artifacts)
        .with_context(|| format!("creating {}", artifacts.display()))?;
    let log_path = work.join("log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let before = files_in(&artifacts);
    let mut command = Command::new(binaries.join(name));
    command.arg(&corpus);
    let seeds = fuzz_dir.join("seeds").join(name);
    if seeds.is_dir() {
        command.arg(&seeds);
    }
    // libFuzzer wants the prefix as a path ending in a slash.
    let mut prefix = artifacts.clone().into_os_string();
    prefix.push("/");
    let mut prefix_arg = std::ffi::OsString::from("-artifact_prefix=");
    prefix_arg.push(prefix);
    command
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_SECS}"))
        .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
        .arg(prefix_arg)
        .stdout(Stdio::null())
        .stderr(log);
    let status = command
        .status()
        .with_context(|| format!("starting {command:?}"))?;
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    if status.success() {
        eprintln!("fuzz: {package}/{name}: {}", summary(&text));
        return Ok(());
    }
    let saved: Vec<String> = files_in(&artifacts)
        .into_iter()
        .filter(|file| !before.contains(file))
        .map(|file| file.display().to_string())
        .collect();
    let tail: Vec<&str> = text.lines().rev().take(40).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    bail!(
        "{package}/{name} failed ({status}); input saved: {}\n\
         replay: cd {package} && RUSTC_BOOTSTRAP=1 cargo fuzz run {name} ARTIFACT\n\
         log: {}\n{}",
        if saved.is_empty() {
            "none".to_owned()
        } else {
            saved.join(", ")
        },
        log_path.display(),
        tail.join("\n")
    )
}

/// libFuzzer's closing figures: "Done 123 runs in 30 second(s)" and the last coverage line.
fn summary(log: &str) -> String {
    let done = log
        .lines()
        .rev()
        .find(|line| line.starts_with("Done "))
        .unwrap_or("no closing line");
    let coverage = log
        .lines()
        .rev()
        .find_map(|line| line.split_once(" cov: "))
        .map(|(_, rest)| {
            rest.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    format!("{done}, cov: {coverage}")
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .collect()
}
