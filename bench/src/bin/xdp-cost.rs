//! The capture program's cost per packet under `BPF_PROG_TEST_RUN`, beside a bare `XDP_PASS`
//! program measured in the same run, trial by trial.
//!
//! The kernel reports the mean time per run over `REPEAT` runs; each figure printed is the median
//! over `TRIALS` such trials, the cases interleaved so drift on a noisy machine hits them alike.
//! Matched frames are drained from the ring buffer by a second thread while the program runs;
//! the copied and ring-full counts are printed so the figures say which path they measured.
#![expect(clippy::print_stdout, reason = "a benchmark's output is its figures")]

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use aya::programs::{TestRun, TestRunOptions};
use bench::{load_reference_programs, median, reference_program};
use dcwatch_tests::frames;
use sensor_common::Counter;
use sensor_user::{capture::Capture, config::CaptureConfig};

const REPEAT: u32 = 1_000_000;
const TRIALS: usize = 7;

struct Case {
    name: &'static str,
    frame: Vec<u8>,
    ns_per_packet: Vec<f64>,
}

fn main() -> anyhow::Result<()> {
    let mut reference = load_reference_programs()?;
    let mut capture = Capture::load(&CaptureConfig {
        ring_buffer_mib: 256,
        ..CaptureConfig::default()
    })?;
    let mut ring = capture.take_frames()?;
    let stop = Arc::new(AtomicBool::new(false));
    let drainer = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut drained = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                let batch = ring.drain(|_| {});
                drained += batch;
                if batch == 0 {
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
            drained + ring.drain(|_| {})
        })
    };

    let mut baseline = Vec::new();
    let mut cases = [
        Case {
            name: "not matched: TCP/80, 64 B",
            frame: frames::tcp_v4(80, &[0; 10]),
            ns_per_packet: Vec::new(),
        },
        Case {
            name: "matched: UDP/88, 300 B (Kerberos-sized)",
            frame: frames::udp_v4(88, &[0; 258]),
            ns_per_packet: Vec::new(),
        },
        Case {
            name: "matched: TCP/445, 1514 B (full SMB segment)",
            frame: frames::tcp_v4(445, &[0; 1460]),
            ns_per_packet: Vec::new(),
        },
    ];
    let pass = reference_program(&mut reference, "bench_pass")?;
    for _ in 0..TRIALS {
        let result = pass.test_run(TestRunOptions {
            data_in: Some(&cases[0].frame),
            repeat: REPEAT,
            ..TestRunOptions::new()
        })?;
        baseline.push(result.duration.as_nanos() as f64);
        for case in &mut cases {
            let result = capture.test_run(&case.frame, REPEAT)?;
            case.ns_per_packet.push(result.duration.as_nanos() as f64);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let drained = drainer
        .join()
        .map_err(|_| anyhow::anyhow!("drain thread panicked"))?;
    let counters = capture.counters()?;

    let baseline = median(&mut baseline);
    println!("xdp-cost: BPF_PROG_TEST_RUN, {REPEAT} runs per trial, median of {TRIALS} trials");
    println!(
        "{:<46} {:>10} {:>12}",
        "program and frame", "ns/packet", "vs XDP_PASS"
    );
    println!(
        "{:<46} {:>10.1} {:>12}",
        "bare XDP_PASS (baseline), 64 B", baseline, "1.00x"
    );
    for case in &mut cases {
        let ns = median(&mut case.ns_per_packet);
        println!("{:<46} {:>10.1} {:>11.2}x", case.name, ns, ns / baseline);
    }
    println!(
        "matched frames: {} copied to the ring buffer, {} found it full, {} drained",
        counters.get(Counter::Copied),
        counters.get(Counter::RingbufFull),
        drained
    );
    Ok(())
}
