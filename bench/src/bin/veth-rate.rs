//! End to end on veth: how many packets per second the real sensor captures into userspace, and
//! how many it drops, in mirror and in host mode, beside a bare `XDP_DROP` receiver fed by the
//! same generator in the same run.
//!
//! The generator is the kernel itself: `bench_tx` (`XDP_TX`) run under `BPF_PROG_TEST_RUN` with
//! live frames transmits each frame out of the sender's veth, about as fast as this machine can
//! make packets. Where the kernel refuses live frames (EPERM: some sandboxed kernels filter the
//! flag), a userspace AF_PACKET sender takes its place (bench::packet_socket), slower, and the
//! output says which one ran. The receiver end, in its own namespace, runs either the bare
//! program (which counts what reaches it) or the sensor binary with its default configuration
//! (no output, counting only). The generator rewrites each frame's client address to one of 64
//! at random, so that workers have flows to share. "captured/s" is what reached XDP (bare) or
//! was copied to the ring buffer (sensor) per second of generation; frames the veth queue could
//! not take never reach XDP, which is why `seen` can fall short of what was generated. The
//! sensor runs with 1 up to as many workers as CPUs (`WORKERS=1,2,4` to choose).
//! Besides the rate: the sensor's own CPU time per captured frame, from the first frame until
//! the last is delivered (the XDP program's time is the kernel's, not the sensor's). Figures
//! are medians over `TRIALS` trials, the receivers interleaved; a quick run (`BENCH_QUICK`)
//! sends fewer frames.
#![expect(clippy::print_stdout, reason = "a benchmark's output is its figures")]

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use aya::{
    programs::{ProgramError, TestRun, TestRunAttrs, TestRunOptions, XdpMode},
    sys::SyscallError,
};
use bench::{
    bare_drop_received, load_reference_programs, median, packet_socket, reference_program,
    report::{self, BenchFigures, Figure, Row, scaled, worker_counts},
};
use dcwatch_tests::{
    frames,
    netns::{NetNs, VethPair},
    sensor_process::{RunDir, SensorProcess},
    stats_file,
};

const PACKETS: u32 = 2_000_000;
const QUICK_PACKETS: u32 = 200_000;
const BATCH: u32 = 256;
const TRIALS: usize = 3;
/// The offset of the IPv4 source address's last byte in an untagged frame (as `bench_tx` has it).
const SOURCE_LAST_BYTE: usize = 14 + 15;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Receiver {
    BareDrop,
    /// The sensor in a mode with a number of workers.
    Sensor(&'static str, u16),
}

impl Receiver {
    fn name(self) -> String {
        match self {
            Self::BareDrop => "bare XDP_DROP".to_owned(),
            Self::Sensor(mode, workers) => {
                let plural = if workers == 1 { "" } else { "s" };
                format!("dcwatch-sensor, {mode} mode, {workers} worker{plural}")
            }
        }
    }
}

/// What puts the frames on the wire.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Generator {
    /// `bench_tx` under a live-frames test run: in the kernel, from one of 64 clients at random.
    LiveFrames,
    /// AF_PACKET `sendmmsg` from userspace, cycling through the same 64 clients.
    PacketSocket,
}

impl Generator {
    fn description(self) -> &'static str {
        match self {
            Self::LiveFrames => "an in-kernel `XDP_TX` live-frames generator",
            Self::PacketSocket => {
                "a userspace AF_PACKET `sendmmsg` generator (this kernel refused live-frames \
                 test runs)"
            }
        }
    }
}

#[derive(Default)]
struct Figures {
    generated_pps: Vec<f64>,
    captured_pps: Vec<f64>,
    seen: Vec<f64>,
    delivered: Vec<f64>,
    ringbuf_full: Vec<f64>,
    /// The sensor's CPU nanoseconds per captured frame.
    cpu_ns: Vec<f64>,
}

fn main() -> anyhow::Result<()> {
    let sensor = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/dcwatch-sensor");
    if !sensor.exists() {
        bail!(
            "{} not found: run `cargo build --release -p sensor-user` first",
            sensor.display()
        );
    }
    // Kerberos-sized request: 128-byte frames to UDP/88 (from 64 clients: `bench_tx`).
    let frame = frames::udp_v4(88, &[0x6a; 86]);
    let packets = scaled(PACKETS, QUICK_PACKETS);
    let mut receivers = vec![Receiver::BareDrop];
    let workers = worker_counts()?;
    for mode in ["mirror", "host"] {
        receivers.extend(workers.iter().map(|&count| Receiver::Sensor(mode, count)));
    }
    let generator = choose_generator(&frame)?;
    let mut figures: Vec<Figures> = receivers.iter().map(|_| Figures::default()).collect();
    for _ in 0..TRIALS {
        for (receiver, figures) in receivers.iter().zip(&mut figures) {
            trial(*receiver, generator, &sensor, &frame, packets, figures)?;
        }
    }

    println!(
        "veth-rate: {packets} frames of {} B per trial from {}, median of {TRIALS} trials",
        frame.len(),
        generator.description()
    );
    let rows = receivers
        .iter()
        .zip(&figures)
        .map(|(receiver, figures)| Row::new(receiver.name(), figures.captured_pps.clone()))
        .collect();
    let mut lost = Vec::new();
    for (receiver, figures) in receivers.iter().zip(&figures) {
        if figures.ringbuf_full.iter().any(|&full| full > 0.0) {
            lost.push(format!(
                "{}: frames found the ring buffer full, by trial: {:?}",
                receiver.name(),
                figures.ringbuf_full
            ));
        }
        if figures.seen.iter().any(|&seen| seen < f64::from(packets)) {
            lost.push(format!(
                "{}: of {packets} frames sent, XDP saw {:?} by trial (the rest never left the \
                 veth queue: before the sensor)",
                receiver.name(),
                figures.seen
            ));
        }
    }
    let cpu_rows = receivers
        .iter()
        .zip(&figures)
        .filter(|(receiver, _)| **receiver != Receiver::BareDrop)
        .map(|(receiver, figures)| Row::new(receiver.name(), figures.cpu_ns.clone()))
        .collect();
    report::write(&BenchFigures {
        bench: "veth-rate".to_owned(),
        figures: vec![
            Figure::new(
                "veth-rate",
                "Capture rate on veth, by mode and workers",
                "frames captured per second",
                format!(
                    "{packets} frames of {} B (UDP/88) per trial from {} \
                 into a veth pair; the sensor with its default configuration and no output; \
                 \"captured\" is what reached XDP (bare) or was copied to the ring buffer \
                 (sensor) per second of generation. The generator shares the machine's CPUs \
                 with the receiver. Median of {TRIALS} trials, receivers interleaved.",
                    frame.len(),
                    generator.description()
                ),
                rows,
            ),
            Figure::new(
                "veth-cpu",
                "Sensor CPU per captured frame on veth, by mode and workers",
                "CPU ns per captured frame",
                format!(
                    "The same runs: the sensor process's CPU time (all its threads, \
                     /proc/PID/task/*/schedstat) from just before the generator starts until \
                     every copied frame is delivered, over the frames copied. The XDP program's \
                     own time is the kernel's and not in it. Median of {TRIALS} trials."
                ),
                cpu_rows,
            ),
        ],
        notes: lost,
    })?;
    println!(
        "{:<52} {:>12} {:>12} {:>10} {:>12} {:>12} {:>12} {:>10}",
        "receiver",
        "generated/s",
        "captured/s",
        "vs bare",
        "seen",
        "delivered",
        "ringbuf_full",
        "CPU ns/fr"
    );
    let bare = median(&mut figures[0].captured_pps);
    for (receiver, figures) in receivers.iter().zip(&mut figures) {
        let name = receiver.name();
        let generated = median(&mut figures.generated_pps);
        let captured = median(&mut figures.captured_pps);
        let or_dash = |values: &mut Vec<f64>| {
            if values.is_empty() {
                "-".to_owned()
            } else {
                format!("{:.0}", median(values))
            }
        };
        println!(
            "{name:<52} {generated:>12.0} {captured:>12.0} {:>9.2}x {:>12.0} {:>12} {:>12} {:>10}",
            captured / bare,
            median(&mut figures.seen),
            or_dash(&mut figures.delivered),
            or_dash(&mut figures.ringbuf_full),
            or_dash(&mut figures.cpu_ns),
        );
    }
    Ok(())
}

/// Live frames where the kernel allows them (one frame sent between two fresh namespaces to
/// find out), else the packet socket.
fn choose_generator(frame: &[u8]) -> anyhow::Result<Generator> {
    let peer = NetNs::create("dcwb")?;
    let capture = NetNs::create("dcwb")?;
    let veth = VethPair::create(&peer, &capture)?;
    let mut reference = load_reference_programs()?;
    let generator = reference_program(&mut reference, "bench_tx")?;
    match peer.run(|| Ok(send_live(generator, &veth.sender, frame, 1))) {
        Ok(Ok(_)) => Ok(Generator::LiveFrames),
        Ok(Err(ProgramError::SyscallError(SyscallError { io_error, .. })))
            if io_error.raw_os_error() == Some(libc::EPERM) =>
        {
            Ok(Generator::PacketSocket)
        }
        Ok(Err(error)) => Err(error).context("a live-frames test run"),
        Err(error) => Err(error.into()),
    }
}

fn send_live(
    generator: &aya::programs::Xdp,
    interface: &str,
    frame: &[u8],
    packets: u32,
) -> Result<Duration, ProgramError> {
    let ifindex = if_index(interface).map_err(|io_error| SyscallError {
        call: "if_nametoindex",
        io_error,
    })?;
    let context = xdp_md(frame.len(), ifindex);
    let started = Instant::now();
    generator.test_run(TestRunOptions {
        data_in: Some(frame),
        ctx_in: Some(&context),
        repeat: packets,
        attrs: TestRunAttrs::new().xdp_live_frames(BATCH),
        ..TestRunOptions::new()
    })?;
    Ok(started.elapsed())
}

/// The frame from each of `bench_tx`'s 64 clients: the last byte of the IPv4 source address 64
/// to 127 (the packet socket's frames, prepared once).
fn frames_from_clients(frame: &[u8]) -> Vec<Vec<u8>> {
    (64..128_u8)
        .map(|client| {
            let mut copy = frame.to_vec();
            if copy.get(12..14) == Some(&[0x08, 0x00]) && copy.len() > SOURCE_LAST_BYTE {
                copy[SOURCE_LAST_BYTE] = client;
            }
            copy
        })
        .collect()
}

fn trial(
    receiver: Receiver,
    generator_kind: Generator,
    sensor: &std::path::Path,
    frame: &[u8],
    packets: u32,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let peer = NetNs::create("dcwb")?;
    let capture = NetNs::create("dcwb")?;
    let veth = VethPair::create(&peer, &capture)?;
    let run = RunDir::create()?;
    let stats = &run.stats;

    let mut reference = load_reference_programs()?;
    let mut running = None;
    match receiver {
        Receiver::BareDrop => {
            let program = reference_program(&mut reference, "bench_drop")?;
            capture.run(|| {
                program
                    .attach(&veth.receiver, XdpMode::Driver)
                    .map_err(std::io::Error::other)
            })?;
        }
        Receiver::Sensor(mode, workers) => {
            let workers = workers.to_string();
            let args = run.run_args(
                &[&veth.receiver],
                &["--mode", mode, "--attach", "native", "--workers", &workers],
            );
            running = Some(SensorProcess::start(&capture, sensor, &args, 1)?);
        }
    }
    let cpu_before = running.as_ref().map(SensorProcess::cpu_time).transpose()?;

    let generator = reference_program(&mut reference, "bench_tx")?;
    let elapsed = peer.run(|| match generator_kind {
        Generator::LiveFrames => {
            send_live(generator, &veth.sender, frame, packets).map_err(std::io::Error::other)
        }
        Generator::PacketSocket => packet_socket::send(
            if_index(&veth.sender)?,
            &frames_from_clients(frame),
            packets,
        ),
    })?;
    figures
        .generated_pps
        .push(f64::from(packets) / elapsed.as_secs_f64());

    if receiver == Receiver::BareDrop {
        // The veth queue empties within milliseconds of the generator's end.
        std::thread::sleep(Duration::from_millis(200));
        let received = bare_drop_received(&reference)? as f64;
        figures.captured_pps.push(received / elapsed.as_secs_f64());
        figures.seen.push(received);
    }
    if let Some(process) = running {
        // Let the sensor empty the ring buffer before stopping it.
        let copied_then = stats_file::wait_for(stats, "seen", 1, Duration::from_secs(10))?;
        let target = stats_file::counter(&copied_then, "copied").max(1);
        stats_file::wait_for(stats, "delivered", target, Duration::from_secs(30))?;
        let cpu = process
            .cpu_time()?
            .saturating_sub(cpu_before.unwrap_or_default());
        let finished = process.stop()?;
        if !finished.status.success() {
            bail!("sensor failed: {}", finished.stderr.join("\n"));
        }
        let counters = stats_file::read(stats).context("final stats")?;
        let counter = |name| stats_file::counter(&counters, name) as f64;
        figures
            .captured_pps
            .push(counter("copied") / elapsed.as_secs_f64());
        figures.seen.push(counter("seen"));
        figures.delivered.push(counter("delivered"));
        figures.ringbuf_full.push(counter("ringbuf_full"));
        figures
            .cpu_ns
            .push(cpu.as_nanos() as f64 / counter("copied").max(1.0));
    }
    Ok(())
}

fn if_index(interface: &str) -> std::io::Result<u32> {
    let name = std::ffi::CString::new(interface).map_err(std::io::Error::other)?;
    // SAFETY: a plain libc call with a valid C string.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(std::io::Error::last_os_error()),
        index => Ok(index),
    }
}

/// `struct xdp_md` for a live-frames run: data from 0 to the frame's end, no metadata, the
/// interface the frames are transmitted from.
fn xdp_md(frame_len: usize, ifindex: u32) -> Vec<u8> {
    let frame_len = u32::try_from(frame_len).unwrap_or(u32::MAX);
    [0, frame_len, 0, ifindex, 0, 0]
        .iter()
        .flat_map(|word: &u32| word.to_ne_bytes())
        .collect()
}
