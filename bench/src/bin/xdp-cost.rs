//! The capture program's cost per packet under `BPF_PROG_TEST_RUN`, beside a bare `XDP_PASS`
//! program measured in the same run, trial by trial.
//!
//! The kernel reports the mean time per run over `REPEAT` runs; each figure printed is the median
//! over `TRIALS` such trials, the cases and the baseline interleaved so drift on a noisy machine
//! hits them alike. The capture program is measured with ring buffers of 16, 64 (the default) and
//! 256 MiB, one after the other, each drained while the program runs by a consumer thread pinned
//! to the other CPU, as the sensor's reader would be. The copied and ring-full counts are printed so the figures say
//! which path they measured. Last, decapsulation: the same frame bare and in each tunnel type.
//! For the report (`BENCH_REPORT_DIR`), the 64 MiB ring's figures and decapsulation's; a quick
//! run (`BENCH_QUICK`) measures the default ring only, with fewer runs.
#![expect(clippy::print_stdout, reason = "a benchmark's output is its figures")]

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use aya::programs::{TestRun, TestRunOptions};
use bench::{
    load_reference_programs, median, pin_to_cpu, reference_program,
    report::{self, BenchFigures, Figure, Row, scaled},
};
use dcwatch_tests::frames;
use sensor_common::Counter;
use sensor_user::{
    capture::{Capture, FrameRing},
    config::CaptureConfig,
};

const REPEAT: u32 = 1_000_000;
const QUICK_REPEAT: u32 = 50_000;
const TRIALS: usize = 7;
const QUICK_TRIALS: usize = 3;
const RING_SIZES_MIB: &[u32] = &[16, 64, 256];
/// The sensor's default ring, the one the report shows.
const DEFAULT_RING_MIB: u32 = 64;
/// The program runs on one CPU, the consumer on the other, as in the sensor.
const RUN_CPU: usize = 0;
const DRAIN_CPU: usize = 1;

/// The capture program with a thread emptying its ring buffer as fast as it can.
struct Drained {
    capture: Capture,
    stop: Arc<AtomicBool>,
    drainer: JoinHandle<u64>,
}

impl Drained {
    fn load(ring_mib: u32) -> anyhow::Result<Self> {
        Self::load_with(CaptureConfig {
            ring_buffer_mib: ring_mib,
            ..CaptureConfig::default()
        })
    }

    fn load_with(config: CaptureConfig) -> anyhow::Result<Self> {
        let mut capture = Capture::load(&config)?;
        let ring = capture.take_frames()?;
        let stop = Arc::new(AtomicBool::new(false));
        let drainer = std::thread::spawn({
            let stop = Arc::clone(&stop);
            move || {
                pin_to_cpu(DRAIN_CPU);
                drain_until(ring, &stop)
            }
        });
        Ok(Self {
            capture,
            stop,
            drainer,
        })
    }

    /// Stops the consumer; returns the counters and how many records it drained.
    fn finish(self) -> anyhow::Result<(sensor_user::capture::KernelCounters, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        let drained = self
            .drainer
            .join()
            .map_err(|_| anyhow::anyhow!("drain thread panicked"))?;
        Ok((self.capture.counters()?, drained))
    }
}

fn drain_until(mut ring: FrameRing, stop: &AtomicBool) -> u64 {
    let mut drained = 0;
    while !stop.load(Ordering::Relaxed) {
        let batch = ring.drain(|_| {});
        drained += batch;
        if batch == 0 {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    drained + ring.drain(|_| {})
}

fn main() -> anyhow::Result<()> {
    let repeat = scaled(REPEAT, QUICK_REPEAT);
    let trials = scaled(TRIALS, QUICK_TRIALS);
    pin_to_cpu(RUN_CPU);
    let mut reference = load_reference_programs()?;
    let pass = reference_program(&mut reference, "bench_pass")?;
    let frames = [
        ("not matched: TCP/80, 64 B", frames::tcp_v4(80, &[0; 10])),
        (
            "matched: UDP/88, 300 B (Kerberos-sized)",
            frames::udp_v4(88, &[0; 258]),
        ),
        (
            "matched: TCP/445, 1514 B (full SMB segment)",
            frames::tcp_v4(445, &[0; 1460]),
        ),
    ];
    println!("xdp-cost: BPF_PROG_TEST_RUN, {repeat} runs per trial, median of {trials} trials");
    println!(
        "{:<46} {:>10} {:>12}",
        "program and frame", "ns/packet", "vs XDP_PASS"
    );
    let method = format!(
        "`BPF_PROG_TEST_RUN`, {repeat} runs per trial (the kernel's mean per run), median of \
         {trials} trials interleaved with the bare program; the capture program on CPU {RUN_CPU}, a \
         consumer draining its ring buffer on CPU {DRAIN_CPU}."
    );
    let mut figures = Vec::new();
    // One ring at a time: two consumer threads and the test run would share two cores.
    let rings = scaled(RING_SIZES_MIB, &[DEFAULT_RING_MIB]);
    for &ring_mib in rings {
        let mut program = Drained::load(ring_mib)?;
        let mut baseline = Vec::new();
        let mut samples = vec![Vec::new(); frames.len()];
        for _ in 0..trials {
            let result = pass.test_run(TestRunOptions {
                data_in: Some(&frames[0].1),
                repeat,
                ..TestRunOptions::new()
            })?;
            baseline.push(result.duration.as_nanos() as f64);
            for ((_, frame), samples) in frames.iter().zip(&mut samples) {
                let result = program.capture.test_run(frame, repeat)?;
                samples.push(result.duration.as_nanos() as f64);
            }
        }
        let (counters, drained) = program.finish()?;
        if ring_mib == DEFAULT_RING_MIB {
            let mut rows = vec![Row::new("bare XDP_PASS, 64 B", baseline.clone())];
            rows.extend(
                frames
                    .iter()
                    .zip(&samples)
                    .map(|((name, _), samples)| Row::new(*name, samples.clone())),
            );
            figures.push(Figure::new(
                "xdp-cost",
                "XDP program: cost per packet (64 MiB ring)",
                "ns per packet",
                format!(
                    "{method} {} frames copied, {} found the ring full.",
                    counters.get(Counter::Copied),
                    counters.get(Counter::RingbufFull)
                ),
                rows,
            ));
        }
        let baseline = median(&mut baseline);
        println!("ring buffer {ring_mib} MiB:");
        println!(
            "  {:<44} {baseline:>10.1} {:>12}",
            "bare XDP_PASS (baseline), 64 B", "1.00x"
        );
        for ((name, _), samples) in frames.iter().zip(&mut samples) {
            let ns = median(samples);
            println!("  {name:<44} {ns:>10.1} {:>11.2}x", ns / baseline);
        }
        println!(
            "  {} frames copied, {} found the ring full, {} drained",
            counters.get(Counter::Copied),
            counters.get(Counter::RingbufFull),
            drained
        );
    }
    rpc_header_costs(pass, repeat, trials)?;
    figures.push(decap_costs(pass, repeat, trials, &method)?);
    report::write(&BenchFigures {
        bench: "xdp-cost".to_owned(),
        figures,
        notes: Vec::new(),
    })
}

/// Decapsulation's cost: a Kerberos-sized frame bare and inside each tunnel type (all matched
/// and copied), and an unwatched one bare and in VXLAN, beside the bare program.
fn decap_costs(
    pass: &aya::programs::Xdp,
    repeat: u32,
    trials: usize,
    method: &str,
) -> anyhow::Result<Figure> {
    let kerberos = frames::udp_v4(88, &[0; 258]);
    let web = frames::tcp_v4(80, &[0; 10]);
    let mut cases = vec![
        ("bare, matched: UDP/88, 300 B".to_owned(), kerberos.clone()),
        ("bare, not matched: TCP/80, 64 B".to_owned(), web.clone()),
        (
            "VXLAN, not matched: TCP/80 inside".to_owned(),
            frames::Tunnel::Vxlan { port: 4789 }.wrap(&web),
        ),
    ];
    for tunnel in frames::Tunnel::ALL {
        cases.push((
            format!("{tunnel:?}, matched: UDP/88 inside"),
            tunnel.wrap(&kerberos),
        ));
    }
    let mut program = Drained::load(64)?;
    let mut baseline = Vec::new();
    let mut samples = vec![Vec::new(); cases.len()];
    for _ in 0..trials {
        let result = pass.test_run(TestRunOptions {
            data_in: Some(&cases[0].1),
            repeat,
            ..TestRunOptions::new()
        })?;
        baseline.push(result.duration.as_nanos() as f64);
        for ((_, frame), samples) in cases.iter().zip(&mut samples) {
            let result = program.capture.test_run(frame, repeat)?;
            samples.push(result.duration.as_nanos() as f64);
        }
    }
    let (counters, drained) = program.finish()?;
    let mut rows = vec![Row::new("bare XDP_PASS, 300 B", baseline.clone())];
    rows.extend(
        cases
            .iter()
            .zip(&samples)
            .map(|((name, _), samples)| Row::new(name.clone(), samples.clone())),
    );
    let figure = Figure::new(
        "xdp-decap",
        "XDP program: decapsulation's cost per packet (64 MiB ring)",
        "ns per packet",
        format!(
            "{method} Kerberos-sized frames (UDP/88, 300 B inside) bare and in each tunnel; \
             {} frames copied, {} found the ring full.",
            counters.get(Counter::Copied),
            counters.get(Counter::RingbufFull)
        ),
        rows,
    );
    let baseline = median(&mut baseline);
    println!("decapsulation, ring buffer 64 MiB:");
    println!(
        "  {:<44} {baseline:>10.1} {:>12}",
        "bare XDP_PASS (baseline), 300 B", "1.00x"
    );
    let mut bare_matched = None;
    for ((name, _), samples) in cases.iter().zip(&mut samples) {
        let ns = median(samples);
        let plain = *bare_matched.get_or_insert(ns);
        println!(
            "  {name:<44} {ns:>10.1} {:>11.2}x  ({:+.1} ns vs bare matched)",
            ns / baseline,
            ns - plain
        );
    }
    println!(
        "  {} frames copied, {} found the ring full, {} drained",
        counters.get(Counter::Copied),
        counters.get(Counter::RingbufFull),
        drained
    );
    Ok(figure)
}

// testdata/pcaps/adlab/dcsync.pcap frame 53, the first 32 bytes of its payload: impacket's
// BIND of DRSUAPI (frag_length 112, auth_length 32).
const DCSYNC_BIND: [u8; 32] = [
    0x05, 0x00, 0x0b, 0x03, 0x10, 0x00, 0x00, 0x00, 0x70, 0x00, 0x20, 0x00, 0x01, 0x00, 0x00, 0x00,
    0xb8, 0x10, 0xb8, 0x10, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
];

fn tcp_frame(
    src: std::net::Ipv4Addr,
    dst: std::net::Ipv4Addr,
    port: u16,
    payload: &[u8],
) -> Vec<u8> {
    let ip =
        frames::Ipv4::new(src, dst, frames::PROTO_TCP).packet(&frames::tcp(33_952, port, payload));
    frames::ethernet(&[], frames::ETHERTYPE_IPV4, &ip)
}

/// The DCE-RPC header test's cost. With DC addresses configured: a segment to a DC's high port
/// that matches (and is copied), one that does not (its payload read and refused), a segment to
/// a DC's unwatched low port (refused on the port alone), and one to another host's high port
/// (refused on the address). Without them (any server may be a DC): an unwatched segment to a
/// high port, whose payload the test now reads, beside one it refuses on the ports alone: what
/// the test adds to a mirror's traffic on no watched port. Beside the bare program.
fn rpc_header_costs(pass: &aya::programs::Xdp, repeat: u32, trials: usize) -> anyhow::Result<()> {
    const OTHER_HOST: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 99, 1, 3);
    const WITH_DCS: usize = 0;
    const WITHOUT_DCS: usize = 1;
    let mut programs = [
        Drained::load_with(CaptureConfig {
            dc_addresses: vec![std::net::IpAddr::V4(frames::DC_V4)],
            ..CaptureConfig::default()
        })?,
        Drained::load_with(CaptureConfig::default())?,
    ];
    let not_rpc = *b"GET / HTTP/1.1\r\nHost: dc.lab\r\n\r\n";
    let cases = [
        (
            "DC high port, DCE-RPC bind: matches, 86 B",
            WITH_DCS,
            tcp_frame(frames::CLIENT_V4, frames::DC_V4, 49_153, &DCSYNC_BIND),
        ),
        (
            "DC high port, not DCE-RPC: no match, 86 B",
            WITH_DCS,
            tcp_frame(frames::CLIENT_V4, frames::DC_V4, 49_153, &not_rpc[..32]),
        ),
        (
            "DC TCP/80 (low port): no match, 86 B",
            WITH_DCS,
            tcp_frame(frames::CLIENT_V4, frames::DC_V4, 80, &DCSYNC_BIND),
        ),
        (
            "non-DC high port, DCE-RPC bind: no match",
            WITH_DCS,
            tcp_frame(frames::CLIENT_V4, OTHER_HOST, 49_153, &DCSYNC_BIND),
        ),
        (
            "DC TCP/445 (watched), 86 B: matches",
            WITH_DCS,
            tcp_frame(frames::CLIENT_V4, frames::DC_V4, 445, &DCSYNC_BIND),
        ),
        (
            "no DCs set, high port, not DCE-RPC: no match",
            WITHOUT_DCS,
            tcp_frame(frames::CLIENT_V4, OTHER_HOST, 49_153, &not_rpc[..32]),
        ),
        (
            "no DCs set, TCP/80 (low port): no match",
            WITHOUT_DCS,
            tcp_frame(frames::CLIENT_V4, OTHER_HOST, 80, &not_rpc[..32]),
        ),
    ];
    let mut baseline = Vec::new();
    let mut samples = vec![Vec::new(); cases.len()];
    for _ in 0..trials {
        let result = pass.test_run(TestRunOptions {
            data_in: Some(&cases[0].2),
            repeat,
            ..TestRunOptions::new()
        })?;
        baseline.push(result.duration.as_nanos() as f64);
        for ((_, program, frame), samples) in cases.iter().zip(&mut samples) {
            let result = programs[*program].capture.test_run(frame, repeat)?;
            samples.push(result.duration.as_nanos() as f64);
        }
    }
    let [with_dcs, without_dcs] = programs;
    without_dcs.finish()?;
    let (counters, drained) = with_dcs.finish()?;
    let baseline = median(&mut baseline);
    println!("DCE-RPC header test, ring buffer 64 MiB:");
    println!(
        "  {:<44} {baseline:>10.1} {:>12}",
        "bare XDP_PASS (baseline), 86 B", "1.00x"
    );
    for ((name, _, _), samples) in cases.iter().zip(&mut samples) {
        let ns = median(samples);
        println!("  {name:<44} {ns:>10.1} {:>11.2}x", ns / baseline);
    }
    println!(
        "  {} frames copied ({} by the header test), {} found the ring full, {} drained",
        counters.get(Counter::Copied),
        counters.get(Counter::RpcHeader),
        counters.get(Counter::RingbufFull),
        drained
    );
    Ok(())
}
