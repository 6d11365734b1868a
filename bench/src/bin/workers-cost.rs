//! Replay with 1 and 2 workers (`dcwatch-sensor replay --workers N`) on the same input, in the
//! same run: wall time, CPU time, and the rate in frames per wall-clock second, with the ratio to
//! 1 worker. The input is the bundled corpus repeated `COPIES` times with addresses rewritten per
//! copy (so the flows spread over the workers as many hosts' would). Nothing is pinned: the
//! workers need both CPUs. With 2 workers the sensor runs 3 threads (the reader, who decodes to
//! route, and two workers) on this 2-CPU machine, so the ratio here is a floor; on a larger machine,
//! run it with `WORKERS=1,2,4,8`.
#![expect(clippy::print_stdout, reason = "a benchmark's output is its figures")]

use std::{path::PathBuf, process::Stdio};

use anyhow::bail;
use bench::{build_repeated_corpus, measure, median};

const COPIES: u16 = 100;
const TRIALS: usize = 5;

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
    let workers: Vec<u16> = std::env::var("WORKERS")
        .unwrap_or_else(|_| "1,2".to_owned())
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let workdir = std::env::temp_dir().join("dcwatch-workers-cost");
    std::fs::create_dir_all(&workdir)?;
    let input = workdir.join("corpus-repeated.pcap");
    let (frames, bytes) = build_repeated_corpus(COPIES, &input)?;
    println!(
        "workers-cost: {COPIES} copies of the bundled corpus, {frames} frames, {:.1} MB; \
         median of {TRIALS} trials, interleaved",
        bytes as f64 / 1e6
    );
    let command = |count: u16| -> Vec<String> {
        [
            sensor.display().to_string(),
            "--log-level".into(),
            "warn".into(),
            "replay".into(),
            "--output".into(),
            "json".into(),
            "--workers".into(),
            count.to_string(),
            input.display().to_string(),
        ]
        .into()
    };
    let mut wall = vec![Vec::new(); workers.len()];
    let mut cpu = vec![Vec::new(); workers.len()];
    for _ in 0..TRIALS {
        for (index, &count) in workers.iter().enumerate() {
            let usage = measure(&command(count), None, Stdio::null())?;
            wall[index].push(usage.wall.as_secs_f64());
            cpu[index].push(usage.cpu.as_secs_f64());
        }
    }
    println!(
        "{:<10} {:>10} {:>10} {:>14} {:>12}",
        "workers", "wall s", "CPU s", "frames/s wall", "vs 1 worker"
    );
    let mut first = None;
    for (index, &count) in workers.iter().enumerate() {
        let wall = median(&mut wall[index]);
        let cpu = median(&mut cpu[index]);
        let rate = frames as f64 / wall;
        let base = *first.get_or_insert(rate);
        println!(
            "{count:<10} {wall:>10.3} {cpu:>10.3} {rate:>14.0} {:>11.2}x",
            rate / base
        );
    }
    Ok(())
}
