//! What the benchmarks share: the reference programs, robust statistics, the replay binary, and
//! the performance report's figures, plots and Markdown.

pub mod packet_socket;
pub mod plot;
pub mod render;
pub mod report;
pub mod synthetic;
#[cfg(feature = "ebpf")]
mod xdp;

#[cfg(feature = "ebpf")]
pub use xdp::{bare_drop_received, load_reference_programs, reference_program};

use std::{
    fs::File,
    io::{BufRead as _, BufReader, BufWriter, Read as _, Write as _},
    os::unix::process::ExitStatusExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use dcwatch_pipeline::{
    capture_file::CaptureFile,
    decode::{LinkType, packet},
    dissect::Dissector,
};
use dcwatch_proto::v1::Activity;
use dcwatch_tests::corpus;
use sensor_user::config::Config;

/// Pins the calling thread to `cpu`, so the scheduler cannot move it mid-measurement; a failure
/// (fewer CPUs than asked for) leaves it unpinned.
pub fn pin_to_cpu(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes a bit of the set we own; sched_setaffinity(0) is this thread.
    unsafe {
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set);
    }
}

/// The sensor's replay without live capture (`dcwatch-replay`, which the replay benchmarks run:
/// it builds without the eBPF toolchain): the benchmark's first argument, or
/// target/release/dcwatch-replay.
pub fn replay_binary() -> anyhow::Result<PathBuf> {
    let binary = std::env::args().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/dcwatch-replay"),
        PathBuf::from,
    );
    if !binary.exists() {
        bail!(
            "{} not found: build it with cargo build --release -p sensor-user --bin dcwatch-replay",
            binary.display()
        );
    }
    Ok(binary)
}

/// `binary` (`dcwatch-replay`) logging warnings only, then `args`.
pub fn replay_command(binary: &Path, args: &[&str]) -> Vec<String> {
    let mut command = vec![
        binary.display().to_string(),
        "--log-level".into(),
        "warn".into(),
    ];
    command.extend(args.iter().map(|&arg| arg.to_owned()));
    command
}

/// The median of `values` (the mean of the middle two for an even count); 0 for none.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        len if len % 2 == 1 => values[len / 2],
        len => f64::midpoint(values[len / 2 - 1], values[len / 2]),
    }
}

/// Writes the bundled corpus's Ethernet frames `copies` times into one pcap at `output`, with
/// both IP addresses rewritten per copy and the times shifted, so that each copy is new hosts
/// and connections to a reassembler rather than retransmissions of the first. Returns its frame
/// and byte counts.
pub fn build_repeated_corpus(copies: u16, output: &Path) -> anyhow::Result<(u64, u64)> {
    // Each capture's frames keep their own spacing, except that a pause longer than MAX_GAP
    // (one capture spans six years) is shortened to it; captures follow one another a second
    // apart.
    const NS_PER_SECOND: u64 = 1_000_000_000;
    // Longer than every timeout of the sensor (TCP idle 300 s), so a shortened pause still
    // closes what the original did.
    const MAX_GAP: u64 = 600 * NS_PER_SECOND;
    let corpus_dir = corpus::dir();
    let mut frames = Vec::new();
    let mut offset = 0_u64;
    for capture in corpus::captures().context("the corpus manifest")? {
        let path = corpus_dir.join(&capture);
        let mut file = CaptureFile::open(&path)?;
        let mut previous = None;
        let mut relative = 0;
        while let Some(frame) = file.next_frame()? {
            if frame.link == LinkType::Ethernet {
                let gap =
                    previous.map_or(0, |previous| frame.timestamp_ns.saturating_sub(previous));
                previous = Some(frame.timestamp_ns);
                relative += gap.min(MAX_GAP);
                frames.push((offset + relative, frame.orig_len, frame.data.to_vec()));
            }
        }
        offset += relative + NS_PER_SECOND;
    }
    let span = offset;
    let mut out = BufWriter::new(File::create(output)?);
    // pcap header: nanosecond magic, version 2.4, snap length 262144, Ethernet.
    out.write_all(&0xa1b2_3c4d_u32.to_le_bytes())?;
    out.write_all(&2_u16.to_le_bytes())?;
    out.write_all(&4_u16.to_le_bytes())?;
    out.write_all(&[0; 8])?;
    out.write_all(&262_144_u32.to_le_bytes())?;
    out.write_all(&1_u32.to_le_bytes())?;
    let (mut count, mut bytes) = (0_u64, 0_u64);
    for copy in 0..copies {
        for (time, orig_len, data) in &frames {
            let time = 1_700_000_000 * NS_PER_SECOND + u64::from(copy) * span + time;
            let mut data = data.clone();
            rewrite_addresses(&mut data, copy);
            out.write_all(&u32::try_from(time / NS_PER_SECOND)?.to_le_bytes())?;
            out.write_all(&u32::try_from(time % NS_PER_SECOND)?.to_le_bytes())?;
            out.write_all(&u32::try_from(data.len())?.to_le_bytes())?;
            out.write_all(&orig_len.to_le_bytes())?;
            out.write_all(&data)?;
            count += 1;
            bytes += data.len() as u64;
        }
    }
    out.flush()?;
    Ok((count, bytes))
}

/// The activities of a capture file, as `replay` makes them (the default configuration), each
/// named as coming from `sensor_id`.
pub fn dissect(input: &Path, sensor_id: &str) -> anyhow::Result<Vec<Activity>> {
    let config = Config::default();
    let mut dissector = Dissector::new(config.dissect_limits());
    let mut file = CaptureFile::open(input)?;
    let mut activities = Vec::new();
    let mut last = 0;
    while let Some(frame) = file.next_frame()? {
        last = last.max(frame.timestamp_ns);
        if let Ok(decoded) = packet(frame.link, frame.data) {
            dissector.packet(frame.timestamp_ns, &decoded, &mut activities);
        }
    }
    dissector.finish(last, &mut activities);
    for activity in &mut activities {
        sensor_id.clone_into(&mut activity.sensor_id);
    }
    Ok(activities)
}

/// Rewrites both addresses of an IPv4 or IPv6 packet the same way for a given copy, so each copy
/// is a distinct set of hosts and connections. Checksums are left alone: none of the tools
/// checks them.
fn rewrite_addresses(frame: &mut [u8], copy: u16) {
    const ETHERNET_LEN: usize = 14;
    let [high, low] = copy.to_be_bytes();
    let mut at = ETHERNET_LEN;
    let mut ether_type = frame
        .get(12..14)
        .map(|bytes| u16::from_be_bytes([bytes[0], bytes[1]]));
    // Up to two VLAN tags.
    for _ in 0..2 {
        if matches!(ether_type, Some(0x8100 | 0x88a8)) {
            ether_type = frame
                .get(at + 2..at + 4)
                .map(|bytes| u16::from_be_bytes([bytes[0], bytes[1]]));
            at += 4;
        }
    }
    let (offsets, span): (&[usize], usize) = match ether_type {
        Some(0x0800) => (&[12, 16], 4),
        Some(0x86dd) => (&[8, 24], 16),
        _ => return,
    };
    for offset in offsets {
        let start = at + offset + span - 3;
        if let Some(bytes) = frame.get_mut(start..start + 2) {
            bytes[0] ^= high;
            bytes[1] ^= low;
        }
    }
}

/// What a finished child process used.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    /// User + system CPU time.
    pub cpu: Duration,
    /// From spawning to its exit.
    pub wall: Duration,
    pub peak_rss_kib: i64,
}

/// Runs `command` to its end with `stdout` (and stderr discarded), pinned to `cpu` if given
/// (`taskset -c CPU`); what it used, from `wait4`. Fails if it does not exit with success.
pub fn measure(command: &[String], cpu: Option<&str>, stdout: Stdio) -> anyhow::Result<Usage> {
    let mut process = if let Some(cpu) = cpu {
        let mut process = Command::new("taskset");
        process.args(["-c", cpu]).args(command);
        process
    } else {
        let mut process = Command::new(&command[0]);
        process.args(&command[1..]);
        process
    };
    let started = Instant::now();
    let child = process
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", command[0]))?;
    let pid = i32::try_from(child.id())?;
    let mut status = 0;
    // SAFETY: rusage is plain data; zero is a valid value to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child, with pointers to locals that outlive the call; the Child
    // handle is not waited on afterwards.
    let waited = unsafe { libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
    let wall = started.elapsed();
    if waited != pid {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    let exit = std::process::ExitStatus::from_raw(status);
    if !exit.success() {
        bail!("{} failed: {exit}", command[0]);
    }
    let time = |value: libc::timeval| {
        Duration::from_secs(u64::try_from(value.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(value.tv_usec).unwrap_or(0))
    };
    Ok(Usage {
        cpu: time(usage.ru_utime) + time(usage.ru_stime),
        wall,
        peak_rss_kib: usage.ru_maxrss,
    })
}

/// User + system CPU seconds a running process has used so far (/proc/PID/stat).
pub fn process_cpu(pid: u32) -> anyhow::Result<f64> {
    let mut stat = String::new();
    File::open(format!("/proc/{pid}/stat"))?.read_to_string(&mut stat)?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let after = stat.rsplit_once(')').context("/proc/PID/stat")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after ')'.
    let ticks = |index: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(index)
            .context("/proc/PID/stat")?
            .parse::<f64>()?)
    };
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok((ticks(11)? + ticks(12)?) / hz.max(1.0))
}

/// CPU seconds of `pid` and of its living children (PostgreSQL's backends).
pub fn tree_cpu(pid: u32) -> anyhow::Result<f64> {
    let mut total = process_cpu(pid)?;
    for entry in std::fs::read_dir("/proc")?.filter_map(Result::ok) {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // The parent is the second field after the command name in parentheses.
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, after)| after.split_whitespace().nth(1))
            .and_then(|parent| parent.parse::<u32>().ok());
        if parent == Some(pid) {
            total += process_cpu(child).unwrap_or(0.0);
        }
    }
    Ok(total)
}

/// Hands each line `command` prints to `line` as it comes (holding them would swell this
/// process's resident memory, which every tool forked from it afterwards starts its own
/// `ru_maxrss` with); fails unless the command exits with success.
pub fn each_line(command: &[String], mut line: impl FnMut(&[u8])) -> anyhow::Result<()> {
    let mut child = Command::new(&command[0])
        .args(&command[1..])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("running {}", command[0]))?;
    let stdout = child.stdout.take().context("no stdout")?;
    for read in BufReader::new(stdout).split(b'\n') {
        line(&read?);
    }
    if !child.wait()?.success() {
        bail!("{} failed", command[0]);
    }
    Ok(())
}

/// Lines `command` prints; fails unless it exits with success.
pub fn count_lines(command: &[String]) -> anyhow::Result<u64> {
    let mut lines = 0;
    each_line(command, |_| lines += 1)?;
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[expect(clippy::float_cmp, reason = "the medians of small integers are exact")]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }
}
