//! Tunnelled mirrors live: the frames of a Samba AD lab capture (testdata/pcaps/adlab) arrive at
//! the real sensor (mirror mode, two workers) over a real veth pair inside a tunnel, and the
//! activities it prints must equal those `replay` prints for the plain capture; the outer frames
//! are counted by tunnel type. VXLAN is the kernel's own encapsulation (a vxlan interface in the
//! sender's namespace); ERSPAN I/II/III, Ethernet over GRE and Geneve, whose kernel modules this
//! machine does not have, are wrapped byte by byte (`frames::Tunnel`). Needs root.

use std::{collections::BTreeMap, path::Path, process::Command, time::Duration};

use dcwatch_pipeline::capture_file::CaptureFile;
use dcwatch_tests::{
    frames::Tunnel,
    netns::{NetNs, VethPair, ip},
    sender::send_frames,
    sensor_process::{RunDir, SensorProcess},
    stats_file,
};
use sensor_common::Counter;
use serde_json::Value;

const SENSOR: &str = env!("CARGO_BIN_EXE_dcwatch-sensor");
const WAIT: Duration = Duration::from_secs(20);

fn lab_capture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/pcaps/adlab/kerberos.pcap")
}

fn frames(path: &Path) -> Vec<Vec<u8>> {
    let mut file = CaptureFile::open(path).expect("open the capture");
    let mut frames = Vec::new();
    while let Some(frame) = file.next_frame().expect("read a frame") {
        frames.push(frame.data.to_vec());
    }
    frames
}

/// Activities without what differs between live and replay (times, the flow id hashed with
/// the first-seen time), counted.
fn activities(lines: impl IntoIterator<Item = String>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in lines {
        let mut activity: Value = serde_json::from_str(&line).expect("a JSON line");
        let object = activity.as_object_mut().expect("an object");
        for key in ["time", "sensor_id", "flow_id"] {
            object.remove(key);
        }
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
    let replayed = activities(
        String::from_utf8(output.stdout)
            .expect("UTF-8")
            .lines()
            .map(str::to_owned),
    );
    assert!(replayed.values().sum::<usize>() >= 50, "too few activities");
    replayed
}

/// Runs the sensor on `veth`'s receiver in `capture`, lets `send` put the traffic in, waits
/// until `counter` reaches `outer` frames, and returns the activities and final counters.
fn live(
    capture: &NetNs,
    veth: &VethPair,
    counter: Counter,
    outer: u64,
    send: impl FnOnce(),
) -> (BTreeMap<String, usize>, serde_json::Map<String, Value>) {
    let run = RunDir::create().expect("run directory");
    let args = run.run_args(
        &[&veth.receiver],
        &["--mode", "mirror", "--output", "json", "--workers", "2"],
    );
    let process = SensorProcess::start(capture, Path::new(SENSOR), &args, 1).expect("starts");
    send();
    stats_file::wait_for(&run.stats, counter.name(), outer, WAIT).expect("every outer frame");
    let finished = process.stop().expect("sensor stops");
    assert!(finished.status.success(), "{:?}", finished.stderr);
    let stats = stats_file::read(&run.stats).expect("final stats");
    (activities(finished.stdout), stats)
}

#[test]
fn a_lab_capture_in_every_crafted_tunnel_gives_the_plain_captures_activities() {
    let path = lab_capture();
    let plain = frames(&path);
    let replayed = replayed(&path);
    let counters = [
        Counter::DecapErspan1,
        Counter::DecapErspan2,
        Counter::DecapErspan3,
        Counter::DecapGreEthernet,
        Counter::DecapVxlan,
        Counter::DecapGeneve,
    ];
    for (tunnel, counter) in Tunnel::ALL.into_iter().zip(counters) {
        let wrapped: Vec<Vec<u8>> = plain.iter().map(|frame| tunnel.wrap(frame)).collect();
        let peer = NetNs::create("dcwt").expect("sender namespace");
        let capture = NetNs::create("dcwt").expect("capture namespace");
        let veth = VethPair::create(&peer, &capture).expect("veth pair");
        // Room for a full-size inner frame and the deepest tunnel headers around it.
        for (namespace, interface) in [(&peer, &veth.sender), (&capture, &veth.receiver)] {
            ip(&[
                "-n",
                namespace.name(),
                "link",
                "set",
                interface,
                "mtu",
                "2000",
            ])
            .expect("mtu");
        }
        let (live, stats) = live(&capture, &veth, counter, plain.len() as u64, || {
            send_frames(&peer, &veth.sender, wrapped.iter().map(Vec::as_slice)).expect("send");
        });
        assert_eq!(
            live, replayed,
            "{tunnel:?}: live and replayed activities differ"
        );
        for other in counters {
            let expected = if other == counter {
                plain.len() as u64
            } else {
                0
            };
            assert_eq!(
                stats_file::counter(&stats, other.name()),
                expected,
                "{tunnel:?}"
            );
        }
        for name in ["malformed", "ringbuf_full"] {
            assert_eq!(stats_file::counter(&stats, name), 0, "{tunnel:?}: {name}");
        }
    }
}

/// The MAC address of `interface` in `namespace`.
fn mac(namespace: &NetNs, interface: &str) -> String {
    let output = Command::new("ip")
        .args([
            "-n",
            namespace.name(),
            "-br",
            "link",
            "show",
            "dev",
            interface,
        ])
        .output()
        .expect("ip link show");
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .split_whitespace()
        .nth(2)
        .expect("a MAC address")
        .to_owned()
}

#[test]
fn a_lab_capture_through_the_kernels_vxlan_gives_the_plain_captures_activities() {
    let path = lab_capture();
    let plain = frames(&path);
    let replayed = replayed(&path);
    let peer = NetNs::create("dcwv").expect("sender namespace");
    let capture = NetNs::create("dcwv").expect("capture namespace");
    let veth = VethPair::create(&peer, &capture).expect("veth pair");
    let (sender, receiver) = (veth.sender.as_str(), veth.receiver.as_str());
    let (peer_ns, capture_ns) = (peer.name(), capture.name());
    let receiver_mac = mac(&capture, receiver);
    for command in [
        vec!["-n", peer_ns, "link", "set", sender, "mtu", "2000"],
        vec!["-n", capture_ns, "link", "set", receiver, "mtu", "2000"],
        vec!["-n", peer_ns, "addr", "add", "192.0.2.1/24", "dev", sender],
        // The receiver has no address (the sensor refuses mirror mode on one that has), and mirror
        // mode drops every frame in XDP: the tunnel's far end is a static neighbour.
        vec![
            "-n",
            peer_ns,
            "neigh",
            "add",
            "192.0.2.2",
            "lladdr",
            receiver_mac.as_str(),
            "dev",
            sender,
            "nud",
            "permanent",
        ],
        vec![
            "-n",
            peer_ns,
            "link",
            "add",
            "vx0",
            "mtu",
            "1900",
            "type",
            "vxlan",
            "id",
            "42",
            "local",
            "192.0.2.1",
            "remote",
            "192.0.2.2",
            "dstport",
            "4789",
            "dev",
            sender,
        ],
        vec!["-n", peer_ns, "link", "set", "vx0", "up"],
    ] {
        ip(&command).expect("set up the tunnel");
    }
    let (live, stats) = live(
        &capture,
        &veth,
        Counter::DecapVxlan,
        plain.len() as u64,
        || {
            send_frames(&peer, "vx0", plain.iter().map(Vec::as_slice)).expect("send into vx0");
        },
    );
    assert_eq!(
        live, replayed,
        "live through VXLAN and replayed activities differ"
    );
    assert_eq!(
        stats_file::counter(&stats, Counter::DecapVxlan.name()),
        plain.len() as u64
    );
    assert_eq!(stats_file::counter(&stats, "malformed"), 0);
}
