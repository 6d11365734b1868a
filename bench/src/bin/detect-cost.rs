//! What the detectors cost: the sensor's replay (`dcwatch-replay`) of the bundled corpus with
//! every detector on (`--alerts json`) beside the same replay without them, in the same run.
//!
//! The input is the bundled capture corpus, its frames repeated `COPIES` times with the IP
//! addresses rewritten per copy (bench::build_repeated_corpus), so detectors see as many sources
//! as copies. Both commands run pinned to one CPU, `TRIALS` times (11 by default), interleaved,
//! the order swapped every other trial; the figures are medians of CPU time (user + system) and
//! peak resident memory. Issue #13 allows the detectors at most 25% more CPU: the verdict is the
//! median of the trials' own ratios (with detectors over without, in the same trial), which a
//! machine whose speed drifts over seconds disturbs less than the ratio of the two medians (both
//! are printed, with the trials' spread). For the report (`BENCH_REPORT_DIR`): the activities
//! per CPU-second of both and of the detectors alone (trial by trial); a quick run
//! (`BENCH_QUICK`) uses 10 copies and 3 trials.
#![expect(clippy::print_stdout, reason = "a benchmark's output is its figures")]

use std::process::Stdio;

use bench::{
    build_repeated_corpus, count_lines, measure, median, replay_binary, replay_command,
    report::{self, BenchFigures, Figure, Row, scaled},
};

const COPIES: u16 = 100;
/// Enough for the detectors' share to stand out of the CPU accounting's granularity.
const QUICK_COPIES: u16 = 10;
/// Enough trials for a median ratio on a machine whose runs of one binary spread over 20 points.
const TRIALS: usize = 11;
const QUICK_TRIALS: usize = 3;
const CPU: &str = "1";
/// The CPU the detectors may add to a replay (issue #13).
const BUDGET_PERCENT: f64 = 25.0;

fn main() -> anyhow::Result<()> {
    let binary = replay_binary()?;
    let copies = scaled(COPIES, QUICK_COPIES);
    let trials = match std::env::var("TRIALS") {
        Ok(count) => count
            .parse()
            .map_err(|error| anyhow::anyhow!("TRIALS={count}: {error}"))?,
        Err(_) => scaled(TRIALS, QUICK_TRIALS),
    };
    let workdir = std::env::temp_dir().join("dcwatch-detect-cost");
    std::fs::create_dir_all(&workdir)?;
    let input = workdir.join("corpus-repeated.pcap");
    let (frames, _) = build_repeated_corpus(copies, &input)?;
    let input_arg = input.display().to_string();
    let replay = |extra: &[&str]| -> Vec<String> {
        replay_command(&binary, &[[input_arg.as_str()].as_slice(), extra].concat())
    };
    let baseline = replay(&[]);
    let detecting = replay(&["--alerts", "json"]);
    let activities = count_lines(&replay(&["--output", "json"]))?;
    let alerts = count_lines(&detecting)?;
    println!(
        "input: {copies} copies of the bundled corpus: {frames} frames, {activities} activities, {alerts} alerts raised"
    );
    let mut cpu = [Vec::new(), Vec::new()];
    let mut rss = [Vec::new(), Vec::new()];
    for trial in 0..trials {
        // Which of the two runs second alternates, so that neither always meets a cache or a
        // frequency the other left behind.
        let order = if trial % 2 == 0 { [0, 1] } else { [1, 0] };
        for index in order {
            let command = [&baseline, &detecting][index];
            let usage = measure(command, Some(CPU), Stdio::null())?;
            cpu[index].push(usage.cpu.as_secs_f64());
            rss[index].push(usage.peak_rss_kib as f64 / 1024.0);
        }
    }
    let mut ratios: Vec<f64> = cpu[1]
        .iter()
        .zip(&cpu[0])
        .map(|(with, without)| with / without)
        .collect();
    let rate = |runs: &[f64]| -> Vec<f64> {
        runs.iter()
            .map(|seconds| activities as f64 / seconds)
            .collect()
    };
    // The detectors' own CPU, trial by trial: with them less without, in the same trial. A
    // trial where the replay with them took no more CPU than without (noise on a short run) has
    // no such rate: it is left out and said.
    let alone: Vec<f64> = cpu[1]
        .iter()
        .zip(&cpu[0])
        .filter(|(with, without)| with > without)
        .map(|(with, without)| activities as f64 / (with - without))
        .collect();
    let mut notes = Vec::new();
    if alone.len() < cpu[0].len() {
        notes.push(format!(
            "detectors alone: {} of {trials} trials left out, the replay with detectors used no \
             more CPU than without",
            cpu[0].len() - alone.len()
        ));
    }
    let figure = Figure::new(
        "detect-rate",
        "The detection engine: activities per CPU-second",
        "activities per CPU-second",
        format!(
            "`dcwatch-replay FILE` without and with `--alerts json` (every detector, test mode) on \
             the bundled corpus repeated {copies} times: {frames} frames, {activities} \
             activities, {alerts} alerts; pinned to CPU {CPU}, {trials} runs interleaved. \
             \"detectors alone\" is the activities over the CPU the detectors added in each \
             trial."
        ),
        vec![
            Row::new("replay without detectors", rate(&cpu[0])),
            Row::new("replay with every detector", rate(&cpu[1])),
            Row::new("detectors alone", alone),
        ],
    );
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
    let percent = |ratio: f64| (ratio - 1.0) * 100.0;
    let trial_ratio = median(&mut ratios);
    println!(
        "detectors alone: {:.0} activities/s per core; ratio of the medians {:.2}x ({:+.1}%)",
        activities as f64 / detectors,
        detect_cpu / base_cpu,
        percent(detect_cpu / base_cpu)
    );
    println!(
        "CPU with detectors over without, trial by trial: median {:+.1}% (trials {:+.1}% to \
         {:+.1}%); issue #13 allows +{BUDGET_PERCENT:.0}%; {trials} trials pinned to CPU {CPU}",
        percent(trial_ratio),
        percent(ratios.first().copied().unwrap_or(1.0)),
        percent(ratios.last().copied().unwrap_or(1.0)),
    );
    drop(std::fs::remove_dir_all(&workdir));
    report::write(&BenchFigures {
        bench: "detect-cost".to_owned(),
        figures: vec![figure],
        notes,
    })
}
