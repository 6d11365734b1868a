//! The two ways of sharing captured frames out among workers, live: the real sensor on a real
//! veth pair receives the same traffic with the ring buffer's reader handing frames out
//! (`--fanout reader`) and with the XDP program writing each flow to its worker's own ring
//! (`--fanout xdp`), with 1 and 2 workers. Every counter and every activity must be those of
//! the reader with 1 worker; with 2 XDP rings, both rings must carry frames, and their counts
//! add up to the program's. The traffic: Samba AD lab captures (testdata/pcaps/adlab) replayed
//! once per client, each time with the client's address changed, so flows between 8 pairs of
//! hosts share the rings. Needs root.

use std::{collections::BTreeMap, path::Path, time::Duration};

use dcwatch_pipeline::capture_file::CaptureFile;
use dcwatch_tests::{
    netns::{NetNs, VethPair},
    sender::send_frames,
    sensor_process::{RunDir, SensorProcess},
    stats_file,
};
use serde_json::Value;

const SENSOR: &str = env!("CARGO_BIN_EXE_dcwatch-sensor");
const WAIT: Duration = Duration::from_secs(30);
/// Captures on watched ports only: none depends on a port learned while it runs, which would
/// make what matches depend on how fast the sensor opens the port.
const CAPTURES: [&str; 4] = ["kerberos", "ldap", "smb-ntlm", "dns"];
/// The lab's client, replaced by 10.99.N.2 for N in 1..=CLIENTS.
const LAB_CLIENT: [u8; 4] = [10, 99, 0, 2];
const CLIENTS: u8 = 8;

/// Every capture's frames once per client, the client's address changed (the frames carry no
/// checksums the sensor checks).
fn traffic() -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    for client in 1..=CLIENTS {
        for capture in CAPTURES {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("../testdata/pcaps/adlab/{capture}.pcap"));
            let mut file = CaptureFile::open(&path).expect("open the capture");
            while let Some(frame) = file.next_frame().expect("read a frame") {
                let mut data = frame.data.to_vec();
                // Untagged IPv4: the addresses at 26..30 and 30..34.
                if data.get(12..14) == Some(&[0x08, 0x00][..]) && data.len() >= 34 {
                    for at in [26, 30] {
                        if data[at..at + 4] == LAB_CLIENT {
                            data[at + 2] = client;
                        }
                    }
                }
                frames.push(data);
            }
        }
    }
    frames
}

/// Activities without what differs from run to run (times, the flow id hashed with the
/// first-seen time), counted.
fn activities(lines: &[String]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in lines {
        let mut activity: Value = serde_json::from_str(line).expect("a JSON line");
        let object = activity.as_object_mut().expect("an object");
        for key in ["time", "sensor_id", "flow_id"] {
            object.remove(key);
        }
        *counts.entry(activity.to_string()).or_insert(0) += 1;
    }
    counts
}

struct Run {
    activities: BTreeMap<String, usize>,
    counters: serde_json::Map<String, Value>,
}

fn run(fanout: &str, workers: u16, frames: &[Vec<u8>]) -> Run {
    let peer = NetNs::create("dcwf").expect("sender namespace");
    let capture = NetNs::create("dcwf").expect("capture namespace");
    let veth = VethPair::create(&peer, &capture).expect("veth pair");
    let run = RunDir::create().expect("run directory");
    let workers_arg = workers.to_string();
    let args = run.run_args(
        &[&veth.receiver],
        &[
            "--output",
            "json",
            "--fanout",
            fanout,
            "--workers",
            &workers_arg,
        ],
    );
    let process = SensorProcess::start(&capture, Path::new(SENSOR), &args, 1).expect("starts");
    send_frames(&peer, &veth.sender, frames.iter().map(Vec::as_slice)).expect("send");
    stats_file::wait_for(&run.stats, "seen", frames.len() as u64, WAIT).expect("every frame");
    let finished = process.stop().expect("sensor stops");
    assert!(finished.status.success(), "{:?}", finished.stderr);
    Run {
        activities: activities(&finished.stdout),
        counters: stats_file::read(&run.stats).expect("final stats"),
    }
}

/// The counters that say what was captured and made of it: not the stats file's time, nor
/// what says how (memory gauges, the per-ring split).
fn compared((name, value): &(&String, &Value)) -> bool {
    value.is_u64() && !(name.contains("memory") || (name.starts_with("ring") && name.contains('_')))
}

#[test]
fn xdp_rings_and_the_reader_give_the_same_counters_and_activities_with_1_and_2_workers() {
    let frames = traffic();
    let baseline = run("reader", 1, &frames);
    let counter = |run: &Run, name: &str| stats_file::counter(&run.counters, name);
    assert_eq!(counter(&baseline, "seen"), frames.len() as u64);
    assert_eq!(counter(&baseline, "ringbuf_full"), 0);
    assert_eq!(
        counter(&baseline, "delivered"),
        counter(&baseline, "matched")
    );
    let total: usize = baseline.activities.values().sum();
    assert!(total >= 200, "too few activities: {total}");
    for (fanout, workers) in [("reader", 2), ("xdp", 1), ("xdp", 2)] {
        let other = run(fanout, workers, &frames);
        let label = format!("{fanout}, {workers} workers");
        let differ: Vec<String> = baseline
            .counters
            .iter()
            .filter(compared)
            .filter(|(name, value)| other.counters.get(*name) != Some(value))
            .map(|(name, value)| format!("{name}: {value} vs {:?}", other.counters.get(name)))
            .collect();
        assert!(differ.is_empty(), "{label}: {differ:#?}");
        assert_eq!(
            other.activities, baseline.activities,
            "{label}: activities differ"
        );
        let used = if fanout == "xdp" { workers } else { 1 };
        let rings: Vec<(u64, u64)> = (0..used)
            .map(|ring| {
                (
                    counter(&other, &format!("ring{ring}_copied")),
                    counter(&other, &format!("ring{ring}_full")),
                )
            })
            .collect();
        assert_eq!(
            rings.iter().map(|(copied, _)| copied).sum::<u64>(),
            counter(&other, "copied"),
            "{label}: {rings:?}"
        );
        assert!(
            rings.iter().all(|&(copied, full)| copied > 0 && full == 0),
            "{label}: every ring in use carries frames, none lost: {rings:?}"
        );
        assert_eq!(
            other.counters.contains_key("ring1_copied"),
            used == 2,
            "{label}: rings in use"
        );
    }
}
