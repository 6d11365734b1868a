//! `cargo xtask demo`: the sensor capturing generated traffic on a veth pair, no hardware needed.
//!
//! A sender namespace puts a known mix of frames (every watched AD service, IPv6, VLANs, and
//! frames that must not match) on one end of a veth pair; the sensor runs in mirror mode on the
//! other end, in its own namespace, and prints one JSON line per captured packet; then the
//! counters, beside what the mix should give.

use std::time::Duration;

use anyhow::{Context as _, bail};
use dcwatch_tests::{
    netns::{NetNs, VethPair},
    sensor_process::{RunDir, SensorProcess},
    stats_file, traffic,
};

use crate::shell;

pub fn run(rounds: u32) -> anyhow::Result<()> {
    let sensor = shell::build_sensor("demo")?;

    let peer = NetNs::create("dcwdemo")?;
    let capture = NetNs::create("dcwdemo")?;
    let veth = VethPair::create(&peer, &capture)?;
    let run = RunDir::create()?;
    let stats = &run.stats;
    eprintln!(
        "demo: sensor on {} (namespace {}), traffic from {} (namespace {})",
        veth.receiver,
        capture.name(),
        veth.sender,
        peer.name()
    );
    let args = run.run_args(
        &[&veth.receiver],
        &["--mode", "mirror", "--output", "packets"],
    );
    let process = SensorProcess::start(&capture, &sensor, &args, 1)?;

    let samples = traffic::mix();
    let expected = traffic::expected(&samples, u64::from(rounds));
    traffic::send(&peer, &veth.sender, &samples, u64::from(rounds))
        .context("sending the traffic mix")?;
    stats_file::wait_for(
        stats,
        "delivered",
        expected.matched,
        Duration::from_secs(10),
    )?;
    let finished = process.stop()?;
    for line in &finished.stdout {
        println!("{line}");
    }
    let counters = stats_file::read(stats)?;
    println!();
    println!("{:<14} {:>10} {:>10}", "counter", "sensor", "expected");
    for (name, want) in [
        ("seen", expected.seen),
        ("bytes", expected.bytes),
        ("matched", expected.matched),
        ("copied", expected.matched),
        ("delivered", expected.matched),
        ("non_ip", expected.non_ip),
        ("malformed", expected.malformed),
        ("ringbuf_full", 0),
        ("truncated", 0),
        ("decode_errors", 0),
    ] {
        println!(
            "{name:<14} {:>10} {want:>10}",
            stats_file::counter(&counters, name)
        );
    }
    if !finished.status.success() {
        bail!(
            "the sensor exited with {}: {}",
            finished.status,
            finished.stderr.join("\n")
        );
    }
    Ok(())
}
