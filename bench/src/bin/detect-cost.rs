//! What the detectors cost: the sensor's replay of the bundled corpus with every detector on
//! (`--alerts json`) beside the same replay without them, in the same run.
//!
//! The input is the bundled capture corpus, its frames repeated `COPIES` times with the IP
//! addresses rewritten per copy (bench::build_repeated_corpus), so detectors see as many sources
//! as copies. Both commands run pinned to one CPU, `TRIALS` times, interleaved; the figures are
//! medians of CPU time (user + system) and peak resident memory. The detectors' own share is the
//! difference; issue #13 allows at most 25% more CPU.
#![expect(clippy::print_stdout, reason = "a benchmark's output is its figures")]

use std::{path::PathBuf, process::Stdio};

use anyhow::bail;
use bench::{build_repeated_corpus, count_lines, measure, median};

const COPIES: u16 = 100;
const TRIALS: usize = 5;
const CPU: &str = "1";
/// The CPU the detectors may add to a replay (issue #13).
const BUDGET_PERCENT: f64 = 25.0;

fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let sensor = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/release/dcwatch-sensor"));
    if !sensor.exists() {
        bail!(
            "{} not found: build it with cargo build --release",
            sensor.display()
        );
    }
    let workdir = std::env::temp_dir().join("dcwatch-detect-cost");
    std::fs::create_dir_all(&workdir)?;
    let input = workdir.join("corpus-repeated.pcap");
    let (frames, _) = build_repeated_corpus(COPIES, &input)?;
    let replay = |extra: &[&str]| -> Vec<String> {
        let mut command = vec![
            sensor.display().to_string(),
            "--log-level".into(),
            "warn".into(),
            "replay".into(),
            input.display().to_string(),
        ];
        command.extend(extra.iter().map(|arg| (*arg).to_owned()));
        command
    };
    let baseline = replay(&[]);
    let detecting = replay(&["--alerts", "json"]);
    let activities = count_lines(&replay(&["--output", "json"]))?;
    let alerts = count_lines(&detecting)?;
    println!(
        "input: {COPIES} copies of the bundled corpus: {frames} frames, {activities} activities, {alerts} alerts raised"
    );
    let mut cpu = [Vec::new(), Vec::new()];
    let mut rss = [Vec::new(), Vec::new()];
    for _ in 0..TRIALS {
        for (index, command) in [&baseline, &detecting].into_iter().enumerate() {
            let usage = measure(command, Some(CPU), Stdio::null())?;
            cpu[index].push(usage.cpu.as_secs_f64());
            rss[index].push(usage.peak_rss_kib as f64 / 1024.0);
        }
    }
    let [base_cpu, detect_cpu] = [median(&mut cpu[0]), median(&mut cpu[1])];
    let [base_rss, detect_rss] = [median(&mut rss[0]), median(&mut rss[1])];
    println!(
        "{:<22} {:>9} {:>14} {:>9}",
        "replay", "CPU s", "activities/s", "peak MiB"
    );
    for (name, seconds, peak) in [
        ("without detectors", base_cpu, base_rss),
        ("with every detector", detect_cpu, detect_rss),
    ] {
        println!(
            "{name:<22} {seconds:>9.3} {:>14.0} {peak:>9.1}",
            activities as f64 / seconds
        );
    }
    let detectors = (detect_cpu - base_cpu).max(f64::MIN_POSITIVE);
    println!(
        "detectors alone: {:.0} activities/s per core; CPU with them {:.2}x without (+{:.1}%, \
         issue #13 allows +{BUDGET_PERCENT:.0}%); medians of {TRIALS} runs pinned to CPU {CPU}",
        activities as f64 / detectors,
        detect_cpu / base_cpu,
        (detect_cpu / base_cpu - 1.0) * 100.0
    );
    drop(std::fs::remove_dir_all(&workdir));
    Ok(())
}
