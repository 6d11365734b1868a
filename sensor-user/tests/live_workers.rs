//! Workers, live: the real sensor on a real veth pair receives the same traffic with 1 worker and
//! with 2, the ring buffer's reader handing each flow's frames to its worker. Every counter and
//! every activity with 2 workers must be those with 1. The traffic: Samba AD lab captures
//! (testdata/pcaps/adlab) replayed once per client, each time with the client's address
//! changed, so flows between 8 pairs of hosts are shared by both workers (checked). Needs root.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    path::Path,
    time::Duration,
};

use dcwatch_pipeline::{capture_file::CaptureFile, workers::worker_of};
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
/// The lab's DC.
const LAB_DC: [u8; 4] = [10, 99, 0, 1];
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

fn run(workers: u16, frames: &[Vec<u8>]) -> Run {
    let peer = NetNs::create("dcwf").expect("sender namespace");
    let capture = NetNs::create("dcwf").expect("capture namespace");
    let veth = VethPair::create(&peer, &capture).expect("veth pair");
    let run = RunDir::create().expect("run directory");
    let workers_arg = workers.to_string();
    let args = run.run_args(
        &[&veth.receiver],
        &["--output", "json", "--workers", &workers_arg],
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

/// The counters that say what was captured and made of it: not the stats file's time, nor the
/// memory gauges.
fn compared((name, value): &(&String, &Value)) -> bool {
    value.is_u64() && !name.contains("memory")
}

#[test]
fn two_workers_give_the_counters_and_activities_of_one() {
    let frames = traffic();
    // The traffic must give both workers flows, or the test would show nothing of the sharing.
    let shares: BTreeSet<usize> = (1..=CLIENTS)
        .map(|client| {
            let client = IpAddr::from([LAB_CLIENT[0], LAB_CLIENT[1], client, LAB_CLIENT[3]]);
            worker_of(client, IpAddr::from(LAB_DC), 2)
        })
        .collect();
    assert_eq!(shares.len(), 2, "the clients' flows all go to one worker");
    let one = run(1, &frames);
    let counter = |run: &Run, name: &str| stats_file::counter(&run.counters, name);
    assert_eq!(counter(&one, "seen"), frames.len() as u64);
    assert_eq!(counter(&one, "ringbuf_full"), 0);
    assert_eq!(counter(&one, "delivered"), counter(&one, "matched"));
    let total: usize = one.activities.values().sum();
    assert!(total >= 200, "too few activities: {total}");
    let two = run(2, &frames);
    let differ: Vec<String> = one
        .counters
        .iter()
        .filter(compared)
        .filter(|(name, value)| two.counters.get(*name) != Some(value))
        .map(|(name, value)| format!("{name}: {value} vs {:?}", two.counters.get(name)))
        .collect();
    assert!(differ.is_empty(), "2 workers: {differ:#?}");
    assert_eq!(
        two.activities, one.activities,
        "2 workers: activities differ"
    );
}
