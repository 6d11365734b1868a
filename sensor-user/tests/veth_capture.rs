//! The real sensor binary on a real veth pair: a sender namespace puts a known mix of frames on
//! the wire, the sensor captures in its own namespace, and its counters and JSON lines must match
//! what was sent exactly. Native and generic XDP, mirror and host mode. Needs root.

use std::{collections::BTreeMap, path::Path, time::Duration};

use dcwatch_tests::{
    netns::{NetNs, VethPair},
    sensor_process::{RunDir, SensorProcess},
    stats_file,
    traffic::{self, Expect},
};
use serde_json::Value;

const ROUNDS: u64 = 5;
const SENSOR: &str = env!("CARGO_BIN_EXE_dcwatch-sensor");

fn capture_the_mix(mode: &str, attach: &str, stop_signal: libc::c_int) {
    let peer = NetNs::create("dcwt").expect("sender namespace");
    let capture = NetNs::create("dcwt").expect("capture namespace");
    let veth = VethPair::create(&peer, &capture).expect("veth pair");
    let run = RunDir::create().expect("run directory");
    let args = run.run_args(
        &[&veth.receiver],
        &["--mode", mode, "--attach", attach, "--output", "packets"],
    );
    let process =
        SensorProcess::start(&capture, Path::new(SENSOR), &args, 1).expect("sensor starts");
    let stats = &run.stats;

    let samples = traffic::mix();
    let expected = traffic::expected(&samples, ROUNDS);
    traffic::send(&peer, &veth.sender, &samples, ROUNDS).expect("send the mix");
    stats_file::wait_for(stats, "seen", expected.seen, Duration::from_secs(15))
        .expect("stats file");
    let finished = process.stop_with(stop_signal).expect("sensor stops");
    assert!(
        finished.status.success(),
        "sensor failed: {:?}",
        finished.stderr
    );
    let attached_line = format!("capturing on {}", veth.receiver);
    let mode_word = if attach == "native" {
        "native XDP"
    } else {
        "generic XDP"
    };
    assert!(
        finished
            .stderr
            .iter()
            .any(|line| line.contains(&attached_line) && line.contains(mode_word)),
        "no '{attached_line} ... {mode_word}' in {:?}",
        finished.stderr
    );

    let counters = stats_file::read(stats).expect("final stats");
    let counter = |name| stats_file::counter(&counters, name);
    assert_eq!(counter("seen"), expected.seen, "seen: {counters:?}");
    assert_eq!(counter("bytes"), expected.bytes, "bytes");
    assert_eq!(counter("matched"), expected.matched, "matched");
    assert_eq!(counter("copied"), expected.matched, "copied");
    assert_eq!(counter("delivered"), expected.matched, "delivered");
    assert_eq!(counter("non_ip"), expected.non_ip, "non_ip");
    assert_eq!(counter("malformed"), expected.malformed, "malformed");
    assert_eq!(counter("ringbuf_full"), 0, "ringbuf_full");
    assert_eq!(counter("truncated"), 0, "truncated");
    assert_eq!(counter("decode_errors"), 0, "decode_errors");

    // One JSON line per matched frame, with the protocol its port implies.
    let mut wanted: BTreeMap<&str, u64> = BTreeMap::new();
    for sample in &samples {
        if let Expect::Matched(protocol) = sample.expect {
            *wanted.entry(protocol).or_default() += ROUNDS;
        }
    }
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for line in &finished.stdout {
        let packet: Value = serde_json::from_str(line).expect("a JSON line");
        assert_eq!(packet["interface"], veth.receiver.as_str(), "{line}");
        for key in ["time", "src", "dst", "transport", "len", "captured_len"] {
            assert!(packet.get(key).is_some(), "{key} missing: {line}");
        }
        let protocol = packet["protocol"].as_str().expect("protocol").to_owned();
        *seen.entry(protocol).or_default() += 1;
    }
    let seen: BTreeMap<&str, u64> = seen.iter().map(|(name, n)| (name.as_str(), *n)).collect();
    assert_eq!(seen, wanted);

    // Detached: the interface carries no XDP program any more.
    let link = capture
        .command("ip")
        .args(["link", "show", &veth.receiver])
        .output()
        .expect("ip link");
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(!link.contains("xdp"), "still attached: {link}");
}

#[test]
fn mirror_mode_native_xdp() {
    capture_the_mix("mirror", "native", libc::SIGINT);
}

#[test]
fn mirror_mode_generic_xdp() {
    capture_the_mix("mirror", "generic", libc::SIGTERM);
}

#[test]
fn host_mode_native_xdp() {
    capture_the_mix("host", "native", libc::SIGTERM);
}

#[test]
fn host_mode_generic_xdp() {
    capture_the_mix("host", "generic", libc::SIGINT);
}

#[test]
fn several_interfaces_share_one_ring() {
    let peer = NetNs::create("dcwt").expect("sender namespace");
    let capture = NetNs::create("dcwt").expect("capture namespace");
    let first = VethPair::create(&peer, &capture).expect("first veth pair");
    let second = VethPair::create(&peer, &capture).expect("second veth pair");
    let run = RunDir::create().expect("run directory");
    let args = run.run_args(
        &[&first.receiver, &second.receiver],
        &["--output", "packets"],
    );
    let process = SensorProcess::start(&capture, Path::new(SENSOR), &args, 2)
        .expect("sensor starts on two interfaces");
    let kerberos = [traffic::Sample {
        what: "kerberos",
        frame: dcwatch_tests::frames::udp_v4(88, &[1; 40]),
        expect: Expect::Matched("kerberos"),
    }];
    traffic::send(&peer, &first.sender, &kerberos, 3).expect("send on the first pair");
    traffic::send(&peer, &second.sender, &kerberos, 5).expect("send on the second pair");
    stats_file::wait_for(&run.stats, "seen", 8, Duration::from_secs(15)).expect("stats file");
    let finished = process.stop().expect("sensor stops");
    assert!(finished.status.success(), "{:?}", finished.stderr);
    let mut per_interface: BTreeMap<String, u32> = BTreeMap::new();
    for line in &finished.stdout {
        let packet: Value = serde_json::from_str(line).expect("JSON line");
        let interface = packet["interface"].as_str().expect("interface").to_owned();
        *per_interface.entry(interface).or_default() += 1;
    }
    assert_eq!(per_interface.get(&first.receiver), Some(&3));
    assert_eq!(per_interface.get(&second.receiver), Some(&5));
    assert_eq!(per_interface.len(), 2);
}
