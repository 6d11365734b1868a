//! Activities live: frames of Samba AD lab captures (testdata/pcaps/adlab) sent over a real veth
//! pair into the real sensor in mirror mode, and the activities it prints compared with those
//! `replay` prints for the same file. The same frames in the same order must give the same
//! activities, whether they came through XDP and the ring buffer or from the file; only the
//! capture times differ. Needs root.

use std::{collections::BTreeMap, path::Path, process::Command, time::Duration};

use dcwatch_pipeline::capture_file::CaptureFile;
use dcwatch_tests::{
    netns::{NetNs, VethPair},
    sender::send_frames,
    sensor_process::{RunDir, SensorProcess},
    stats_file,
};
use serde_json::Value;

const SENSOR: &str = env!("CARGO_BIN_EXE_dcwatch-sensor");

fn lab_capture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/pcaps/adlab")
        .join(name)
}

fn frames(path: &Path) -> Vec<Vec<u8>> {
    let mut file = CaptureFile::open(path).expect("open the capture");
    let mut frames = Vec::new();
    while let Some(frame) = file.next_frame().expect("read a frame") {
        frames.push(frame.data.to_vec());
    }
    frames
}

/// Activities without what differs between live and replay: the capture time and the sensor's
/// name (the same host here, but not the point).
fn activities(lines: impl IntoIterator<Item = String>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in lines {
        let mut activity: Value = serde_json::from_str(&line).expect("a JSON line");
        let object = activity.as_object_mut().expect("an object");
        object.remove("time");
        object.remove("sensor_id");
        // Hashed with the flow's first-seen time, which live capture and replay stamp apart;
        // the Community ID, from the 5-tuple alone, is compared.
        object.remove("flow_id");
        *counts.entry(activity.to_string()).or_insert(0) += 1;
    }
    counts
}

fn replayed(path: &Path) -> BTreeMap<String, usize> {
    let output = Command::new(SENSOR)
        .args(["replay", "--output", "json"])
        .arg(path)
        .output()
        .expect("run replay");
    assert!(output.status.success());
    activities(
        String::from_utf8(output.stdout)
            .expect("UTF-8")
            .lines()
            .map(str::to_owned),
    )
}

fn live(path: &Path) -> BTreeMap<String, usize> {
    let frames = frames(path);
    let peer = NetNs::create("dcwa").expect("sender namespace");
    let capture = NetNs::create("dcwa").expect("capture namespace");
    let veth = VethPair::create(&peer, &capture).expect("veth pair");
    let run = RunDir::create().expect("run directory");
    let args = run.run_args(&[&veth.receiver], &["--mode", "mirror", "--output", "json"]);
    let process = SensorProcess::start(&capture, Path::new(SENSOR), &args, 1).expect("starts");
    send_frames(&peer, &veth.sender, frames.iter().map(Vec::as_slice))
        .expect("send the capture's frames");
    stats_file::wait_for(
        &run.stats,
        "seen",
        frames.len() as u64,
        Duration::from_secs(15),
    )
    .expect("every frame seen");
    let finished = process.stop().expect("sensor stops");
    assert!(finished.status.success(), "{:?}", finished.stderr);
    let stats = stats_file::read(&run.stats).expect("final stats");
    assert_eq!(
        stats_file::counter(&stats, "ringbuf_full"),
        0,
        "nothing lost in the ring"
    );
    activities(finished.stdout)
}

fn live_matches_replay(capture: &str, at_least: usize) {
    let path = lab_capture(capture);
    let replayed = replayed(&path);
    let total: usize = replayed.values().sum();
    assert!(
        total >= at_least,
        "{capture}: only {total} activities replayed"
    );
    let live = live(&path);
    assert_eq!(
        live, replayed,
        "{capture}: live and replayed activities differ"
    );
}

#[test]
fn ldap_lab_capture_live_matches_replay() {
    live_matches_replay("ldap.pcap", 100);
}

#[test]
fn kerberos_lab_capture_live_matches_replay() {
    live_matches_replay("kerberos.pcap", 50);
}

/// The TCP ports of an Ethernet + IPv4 frame (the lab's captures have nothing else).
fn tcp_ports(frame: &[u8]) -> Option<(u16, u16)> {
    const ETHERNET: usize = 14;
    if frame.get(12..14)? != [0x08, 0x00] || *frame.get(ETHERNET + 9)? != 6 {
        return None;
    }
    let header = usize::from(frame.get(ETHERNET)? & 0x0f) * 4;
    let tcp = frame.get(ETHERNET + header..ETHERNET + header + 4)?;
    Some((
        u16::from_be_bytes([tcp[0], tcp[1]]),
        u16::from_be_bytes([tcp[2], tcp[3]]),
    ))
}

/// DCSync in the lab: impacket asks the endpoint mapper (TCP 135) where DRSUAPI is, then
/// connects to the dynamic port it announced, which no configuration lists. The port must be
/// dropped by the XDP filter before the announcement and captured after it, so that live
/// capture gives the DsGetNCChanges calls replay gives.
#[test]
fn a_port_an_endpoint_mapper_announces_is_captured_from_then_on() {
    let path = lab_capture("dcsync.pcap");
    let replayed = replayed(&path);
    let announced: Vec<u16> = replayed
        .keys()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .flat_map(|activity| {
            activity["endpoints"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|endpoint| endpoint.as_str()?.rsplit(':').next()?.parse().ok())
                .collect::<Vec<u16>>()
        })
        .collect();
    let &[drsuapi] = announced.as_slice() else {
        panic!("expected one announced port, got {announced:?}");
    };
    assert!(
        replayed.keys().any(|line| line.contains("DsGetNCChanges")),
        "replay sees the DCSync call"
    );
    let frames = frames(&path);
    let first_on_port = frames
        .iter()
        .position(|frame| {
            tcp_ports(frame).is_some_and(|(src, dst)| src == drsuapi || dst == drsuapi)
        })
        .expect("the capture reaches the announced port");

    let peer = NetNs::create("dcwp").expect("sender namespace");
    let capture = NetNs::create("dcwp").expect("capture namespace");
    let veth = VethPair::create(&peer, &capture).expect("veth pair");
    let run = RunDir::create().expect("run directory");
    let args = run.run_args(&[&veth.receiver], &["--mode", "mirror", "--output", "json"]);
    let process = SensorProcess::start(&capture, Path::new(SENSOR), &args, 1).expect("starts");
    let probe = dcwatch_tests::frames::tcp_v4(drsuapi, &[0; 8]);
    send_frames(&peer, &veth.sender, [probe.as_slice()]).expect("send the probe");
    let stats = stats_file::wait_for(&run.stats, "seen", 1, Duration::from_secs(15))
        .expect("the probe seen");
    assert_eq!(
        stats_file::counter(&stats, "matched"),
        0,
        "the port is not watched before the announcement"
    );
    send_frames(
        &peer,
        &veth.sender,
        frames[..first_on_port].iter().map(Vec::as_slice),
    )
    .expect("send up to the announcement");
    stats_file::wait_for(&run.stats, "rpc_ports_learned", 1, Duration::from_secs(15))
        .expect("the announced port learned");
    send_frames(
        &peer,
        &veth.sender,
        frames[first_on_port..].iter().map(Vec::as_slice),
    )
    .expect("send the rest");
    stats_file::wait_for(
        &run.stats,
        "seen",
        1 + frames.len() as u64,
        Duration::from_secs(15),
    )
    .expect("every frame seen");
    let finished = process.stop().expect("sensor stops");
    assert!(finished.status.success(), "{:?}", finished.stderr);
    let stats = stats_file::read(&run.stats).expect("final stats");
    assert_eq!(stats_file::counter(&stats, "rpc_ports_watched"), 1);
    assert_eq!(stats_file::counter(&stats, "ringbuf_full"), 0);
    assert_eq!(
        activities(finished.stdout),
        replayed,
        "live capture, learning the port, gives replay's activities"
    );
}
