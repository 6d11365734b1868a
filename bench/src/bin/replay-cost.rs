//! The sensor's replay beside tshark and tcpdump on the same capture, in the same run.
//!
//! The input is the bundled capture corpus (testdata/pcaps), its Ethernet frames repeated
//! `COPIES` times with the IP addresses rewritten per copy (and the times shifted), so that each
//! copy is new connections to a reassembler rather than retransmissions of the first. Each tool
//! runs on one CPU (`taskset -c 1`) with its output thrown away, `TRIALS` times, interleaved;
//! the figures are medians of CPU time (user + system, from `wait4`) and peak resident memory.
//!
//! - `dcwatch-sensor replay FILE --output json`: every activity as a JSON line;
//! - `tshark -r FILE -T fields -e ...`: the same fields from tshark's dissectors;
//! - `tcpdump -nn -r FILE`: a floor that decodes and prints headers only.
#![expect(clippy::print_stdout, reason = "a benchmark's output is its figures")]

use std::{
    fs::File,
    io::{BufWriter, Write},
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, bail};
use bench::median;
use dcwatch_tests::corpus;
use sensor_user::{capture_file::CaptureFile, decode::LinkType};

/// Copies of the corpus in the input.
const COPIES: u16 = 100;
const TRIALS: usize = 5;
/// The CPU every tool is pinned to.
const CPU: &str = "1";

/// tshark's fields for what the sensor reports of Kerberos, NTLM, LDAP and DNS.
const TSHARK_FIELDS: &[&str] = &[
    "frame.time_epoch",
    "ip.src",
    "ip.dst",
    "kerberos.msg_type",
    "kerberos.CNameString",
    "kerberos.realm",
    "kerberos.SNameString",
    "kerberos.etype",
    "kerberos.error_code",
    "ntlmssp.messagetype",
    "ntlmssp.auth.username",
    "ntlmssp.auth.domain",
    "ntlmssp.auth.hostname",
    "ldap.protocolOp",
    "ldap.name",
    "ldap.baseObject",
    "ldap.scope",
    "ldap.filter",
    "ldap.resultCode",
    "dns.qry.name",
    "dns.qry.type",
    "dns.flags.rcode",
    "dns.a",
    "dns.aaaa",
    "dns.srv.target",
];

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
    let workdir = std::env::temp_dir().join("dcwatch-replay-cost");
    std::fs::create_dir_all(&workdir)?;
    let input = workdir.join("corpus-repeated.pcap");
    let (frames, bytes) = build_input(&corpus::dir(), &input)?;
    println!(
        "input: {} copies of the bundled corpus: {frames} frames, {:.1} MB ({})",
        COPIES,
        bytes as f64 / 1e6,
        input.display()
    );

    let mut fields = vec![
        "-r".to_owned(),
        input.display().to_string(),
        "-T".into(),
        "fields".into(),
    ];
    for field in TSHARK_FIELDS {
        fields.push("-e".into());
        fields.push((*field).to_owned());
    }
    let tools: Vec<(&str, Vec<String>)> = vec![
        (
            "dcwatch",
            vec![
                sensor.display().to_string(),
                "--log-level".into(),
                "warn".into(),
                "replay".into(),
                "--output".into(),
                "json".into(),
                input.display().to_string(),
            ],
        ),
        ("tshark", [vec!["tshark".to_owned()], fields].concat()),
        (
            "tcpdump",
            vec![
                "tcpdump".into(),
                "-nn".into(),
                "-r".into(),
                input.display().to_string(),
            ],
        ),
    ];
    let activities = count_lines(&tools[0].1)?;
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); tools.len()];
    let mut rss: Vec<Vec<f64>> = vec![Vec::new(); tools.len()];
    for _ in 0..TRIALS {
        for (index, (_, command)) in tools.iter().enumerate() {
            let usage = measure(command)?;
            cpu[index].push(usage.cpu.as_secs_f64());
            rss[index].push(usage.peak_rss_kib as f64 / 1024.0);
        }
    }
    let medians: Vec<(f64, f64)> = cpu
        .iter_mut()
        .zip(rss.iter_mut())
        .map(|(cpu, rss)| (median(cpu), median(rss)))
        .collect();
    let tcpdump_cpu = medians[2].0;
    println!(
        "{:<8} {:>9} {:>12} {:>10} {:>12} {:>9} {:>10} {:>9}",
        "tool", "CPU s", "packets/s", "MB/s", "activities/s", "peak MiB", "/tcpdump", "/tshark"
    );
    for ((name, _), (seconds, peak)) in tools.iter().zip(&medians) {
        let activities_per_second = if *name == "dcwatch" {
            format!("{:.0}", activities as f64 / seconds)
        } else {
            "-".to_owned()
        };
        println!(
            "{:<8} {:>9.3} {:>12.0} {:>10.1} {:>12} {:>9.1} {:>9.2}x {:>8.2}x",
            name,
            seconds,
            frames as f64 / seconds,
            bytes as f64 / 1e6 / seconds,
            activities_per_second,
            peak,
            seconds / tcpdump_cpu,
            seconds / medians[1].0,
        );
    }
    println!(
        "(medians of {TRIALS} runs, each pinned to CPU {CPU}; {activities} activities per dcwatch \
         run; CPU s = user + system)"
    );
    Ok(())
}

/// Writes the corpus `COPIES` times into one pcap; returns its frame and byte counts.
fn build_input(corpus: &Path, output: &Path) -> anyhow::Result<(u64, u64)> {
    // Each capture's frames keep their own spacing; captures follow one another a second apart.
    const NS_PER_SECOND: u64 = 1_000_000_000;
    let mut frames = Vec::new();
    let mut offset = 0_u64;
    for capture in corpus::captures().context("the corpus manifest")? {
        let path = corpus.join(&capture);
        let mut file = CaptureFile::open(&path)?;
        let mut first = None;
        let mut last = 0;
        while let Some(frame) = file.next_frame()? {
            if frame.link == LinkType::Ethernet {
                let start = *first.get_or_insert(frame.timestamp_ns);
                let relative = frame.timestamp_ns.saturating_sub(start);
                last = last.max(relative);
                frames.push((offset + relative, frame.orig_len, frame.data.to_vec()));
            }
        }
        offset += last + NS_PER_SECOND;
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
    for copy in 0..COPIES {
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

/// Lines a command prints, read as they come: holding them would swell this process's resident
/// memory, which every tool forked from it afterwards starts its own `ru_maxrss` with.
fn count_lines(command: &[String]) -> anyhow::Result<u64> {
    let mut child = Command::new(&command[0])
        .args(&command[1..])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("running {}", command[0]))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = 0;
    for line in std::io::BufRead::split(std::io::BufReader::new(stdout), b'\n') {
        line?;
        lines += 1;
    }
    child.wait()?;
    Ok(lines)
}

struct Usage {
    cpu: Duration,
    peak_rss_kib: i64,
}

/// Runs `command` pinned to one CPU with its output discarded; its CPU time and peak memory.
fn measure(command: &[String]) -> anyhow::Result<Usage> {
    let child = Command::new("taskset")
        .args(["-c", CPU])
        .args(command)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", command[0]))?;
    let pid = i32::try_from(child.id())?;
    let mut status = 0;
    // SAFETY: rusage is plain data; zero is a valid value to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child, with pointers to locals that outlive the call; the Child
    // handle is not waited on afterwards.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
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
        peak_rss_kib: usage.ru_maxrss,
    })
}
