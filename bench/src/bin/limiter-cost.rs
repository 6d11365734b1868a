//! What the resource limiter costs and how fast it reacts.
//!
//! 1. Cost of one tick in this process: reading /proc (the host's CPU and memory, the process's
//!    own memory) and deciding, `TICKS` times, against the baseline of reading /proc/stat alone;
//!    and that cost as a share of one CPU at the default 10 s interval.
//! 2. Reaction, with the real sensor at the default settings (10 s ticks, 3 calm ticks a level)
//!    capturing on a veth pair in namespaces of its own: a CPU hog on every CPU starts, and the
//!    seconds until the sensor sheds (its stats file's `limiter_level`, written every second)
//!    and until it sheds all it may; the hog stops, and the seconds until everything is
//!    restored. Needs root. `ROUNDS` rounds, medians.
#![expect(clippy::print_stdout, reason = "a benchmark's output is its figures")]

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use bench::median;
use dcwatch_tests::{
    hog::Hog,
    netns::{NetNs, VethPair},
    sensor_process::{RunDir, SensorProcess},
    stats_file,
};
use sensor_user::{
    config::LimiterConfig,
    limiter::{Level, Limiter, measure::Meter},
};

const TICKS: usize = 2000;
const ROUNDS: usize = 2;
/// Longest wait for a level: restoring three levels takes 9 calm ticks (90 s) at least.
const PATIENCE: Duration = Duration::from_secs(150);

fn main() -> anyhow::Result<()> {
    tick_cost()?;
    reaction()
}

fn tick_cost() -> anyhow::Result<()> {
    let mut meter = Meter::new(Path::new("/proc"));
    let mut limiter = Limiter::new(LimiterConfig::default().policy());
    meter.sample()?;
    let mut tick = Vec::new();
    let mut baseline = Vec::new();
    for _ in 0..TICKS {
        let started = Instant::now();
        std::hint::black_box(std::fs::read_to_string("/proc/stat")?);
        baseline.push(started.elapsed().as_secs_f64());
        let started = Instant::now();
        if let Some(load) = meter.sample()? {
            std::hint::black_box(limiter.decide(&load));
        }
        tick.push(started.elapsed().as_secs_f64());
    }
    let tick = median(&mut tick);
    let baseline = median(&mut baseline);
    let interval = LimiterConfig::default().interval().as_secs_f64();
    println!(
        "tick (read /proc/stat, /proc/meminfo, /proc/self/statm; decide): median {:.1} µs, \
         {:.2}x reading /proc/stat alone ({:.1} µs); {:.6}% of one CPU at a tick every {interval} s",
        tick * 1e6,
        tick / baseline,
        baseline * 1e6,
        tick / interval * 100.0
    );
    Ok(())
}

/// Seconds until the stats file's `limiter_level` satisfies `done`.
fn seconds_until(stats: &Path, since: Instant, done: impl Fn(u64) -> bool) -> anyhow::Result<f64> {
    while since.elapsed() < PATIENCE {
        if let Ok(values) = stats_file::read(stats)
            && done(stats_file::counter(&values, "limiter_level"))
        {
            return Ok(since.elapsed().as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!(
        "the limiter did not get there within {} s (is the host busy with other work?)",
        PATIENCE.as_secs()
    )
}

fn reaction() -> anyhow::Result<()> {
    let sensor = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/dcwatch-sensor");
    let peer = NetNs::create("dcwlimb")?;
    let capture = NetNs::create("dcwlimb")?;
    let veth = VethPair::create(&peer, &capture)?;
    let run = RunDir::create()?;
    let process =
        SensorProcess::start(&capture, &sensor, &run.run_args(&[&veth.receiver], &[]), 1)?;
    let (mut shed, mut full, mut restored) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        if seconds_until(&run.stats, Instant::now(), |level| level == 0).is_err() {
            println!("the limiter is shedding before any hog: the host is busy; stopping");
            break;
        }
        let hog = Hog::start();
        let started = Instant::now();
        shed.push(seconds_until(&run.stats, started, |level| level >= 1)?);
        full.push(seconds_until(&run.stats, started, |level| {
            level >= Level::MAX.number()
        })?);
        drop(hog);
        let stopped = Instant::now();
        match seconds_until(&run.stats, stopped, |level| level == 0) {
            Ok(seconds) => restored.push(seconds),
            Err(error) => println!("round {}: {error}", round + 1),
        }
        println!(
            "round {}: shedding after {:.1} s, all it may after {:.1} s",
            round + 1,
            shed[round],
            full[round],
        );
    }
    process.stop()?;
    if shed.is_empty() {
        return Ok(());
    }
    println!(
        "medians of {ROUNDS}: load arriving to shedding {:.1} s, to shedding all it may {:.1} s; \
         load leaving to everything restored {} (ticks of 10 s: at most 1, 3 and 9 ticks plus \
         the stats file's second)",
        median(&mut shed),
        median(&mut full),
        if restored.is_empty() {
            "not seen (the host stayed busy)".to_owned()
        } else {
            format!(
                "{:.1} s in {} of {ROUNDS} rounds",
                median(&mut restored),
                restored.len()
            )
        }
    );
    Ok(())
}
