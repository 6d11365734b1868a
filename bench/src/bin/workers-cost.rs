//! Replay with 1 up to N workers (`dcwatch-replay --workers N`, the sensor's replay) on the same
//! input, in the same run: wall time, CPU time, packets per wall-clock second and packets and
//! activities per CPU-second, each with the ratio to 1 worker. The input is the bundled corpus
//! repeated `COPIES` times with addresses rewritten per copy (so the flows spread over the
//! workers as many hosts' would). Nothing is pinned: the workers need every CPU. With N workers
//! the sensor runs N + 1 threads (the reader, who decodes to route, and the workers), so on a
//! 2-CPU machine the ratio for 2 is a floor. N runs from 1 to the CPUs; on a larger machine, or
//! to choose, `WORKERS=1,2,4,8`. A quick run (`BENCH_QUICK`) uses 2 copies and 3 trials.
#![expect(clippy::print_stdout, reason = "a benchmark's output is its figures")]

use std::process::Stdio;

use bench::{
    build_repeated_corpus, count_lines, measure, median, replay_binary, replay_command,
    report::{self, BenchFigures, Figure, Row, scaled, worker_counts},
};

const COPIES: u16 = 100;
const QUICK_COPIES: u16 = 2;
const TRIALS: usize = 5;
const QUICK_TRIALS: usize = 3;

fn main() -> anyhow::Result<()> {
    let replay = replay_binary()?;
    let workers = worker_counts()?;
    let (copies, trials) = (scaled(COPIES, QUICK_COPIES), scaled(TRIALS, QUICK_TRIALS));
    let workdir = std::env::temp_dir().join("dcwatch-workers-cost");
    std::fs::create_dir_all(&workdir)?;
    let input = workdir.join("corpus-repeated.pcap");
    let (frames, bytes) = build_repeated_corpus(copies, &input)?;
    let input = input.display().to_string();
    let command = |count: u16| {
        let count = count.to_string();
        replay_command(&replay, &["--output", "json", "--workers", &count, &input])
    };
    let activities = count_lines(&command(1))?;
    println!(
        "workers-cost: {copies} copies of the bundled corpus, {frames} frames, {:.1} MB, \
         {activities} activities; median of {trials} trials, interleaved",
        bytes as f64 / 1e6
    );
    let mut wall = vec![Vec::new(); workers.len()];
    let mut cpu = vec![Vec::new(); workers.len()];
    for _ in 0..trials {
        for (index, &count) in workers.iter().enumerate() {
            let usage = measure(&command(count), None, Stdio::null())?;
            wall[index].push(usage.wall.as_secs_f64());
            cpu[index].push(usage.cpu.as_secs_f64());
        }
    }
    println!(
        "{:<10} {:>10} {:>10} {:>14} {:>12} {:>16}",
        "workers", "wall s", "CPU s", "frames/s wall", "vs 1 worker", "frames/CPU s"
    );
    let mut first = None;
    for (index, &count) in workers.iter().enumerate() {
        let wall = median(&mut wall[index].clone());
        let cpu = median(&mut cpu[index].clone());
        let rate = frames as f64 / wall;
        let base = *first.get_or_insert(rate);
        println!(
            "{count:<10} {wall:>10.3} {cpu:>10.3} {rate:>14.0} {:>11.2}x {:>16.0}",
            rate / base,
            frames as f64 / cpu
        );
    }
    let per = |count: u64, seconds: &[Vec<f64>]| -> Vec<Row> {
        workers
            .iter()
            .zip(seconds)
            .map(|(&workers, runs)| {
                let label = if workers == 1 {
                    "1 worker".to_owned()
                } else {
                    format!("{workers} workers")
                };
                Row::new(label, runs.iter().map(|run| count as f64 / run).collect())
            })
            .collect()
    };
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let method = format!(
        "`dcwatch-replay --output json --workers N` on the bundled corpus repeated {copies} times \
         (addresses rewritten per copy): {frames} frames, {activities} activities; output to \
         /dev/null, nothing pinned, {cpus} CPUs; N workers are N + 1 threads (the reader \
         decodes to route). Median of {trials} runs, worker counts interleaved."
    );
    report::write(&BenchFigures {
        bench: "workers-cost".to_owned(),
        figures: vec![
            Figure::new(
                "workers-wall",
                "Replay by workers: packets per second (wall clock)",
                "packets per second",
                method.clone(),
                per(frames, &wall),
            ),
            Figure::new(
                "workers-packets-cpu",
                "Replay by workers: packets per CPU-second",
                "packets per CPU-second",
                method.clone(),
                per(frames, &cpu),
            ),
            Figure::new(
                "workers-activities-cpu",
                "Replay by workers: activities per CPU-second",
                "activities per CPU-second",
                method,
                per(activities, &cpu),
            ),
        ],
        notes: Vec::new(),
    })
}
