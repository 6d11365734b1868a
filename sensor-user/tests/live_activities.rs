//! Activities live: frames of Samba AD lab captures (testdata/pcaps/adlab) sent over a real veth
//! pair into the real sensor in mirror mode, and the activities it prints compared with those
//! `replay` prints for the same file. The same frames in the same order must give the same
//! activities, whether they came through XDP and the ring buffer or from the file; only the
//! capture times differ. Needs root.

use std::{collections::BTreeMap, path::Path, process::Command, time::Duration};

use dcwatch_tests::{
    netns::{NetNs, VethPair},
    sender::send_frames,
    sensor_process::{RunDir, SensorProcess},
    stats_file,
};
use sensor_user::capture_file::CaptureFile;
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
