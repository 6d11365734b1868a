//! The active name resolution probes wired in the real daemon: `dcwatch-sensor run` with
//! `[nnr] active = true`, in mirror mode on a veth pair in namespaces of the test's own (dcwnp*,
//! removed on drop), sees a NetBIOS name registration from an address, which names it weakly
//! (LOW); it probes the address, whose endpoint mapper (dcwatch_tests::ntlm_rpc, written from
//! C706 and [MS-NLMP]) answers with an NTLM CHALLENGE naming the same host; the next activity
//! from the address is named with HIGH certainty. Needs root.

use std::{
    net::{Ipv4Addr, TcpListener},
    path::Path,
    time::{Duration, Instant},
};

use dcwatch_tests::{
    frames::{self, CLIENT_V4},
    netns::{NetNs, VethPair, ip},
    ntlm_rpc::{self, HostNames},
    sender::send_frames,
    sensor_process::{RunDir, SensorProcess},
    stats_file,
};
use serde_json::Value;

const SENSOR: &str = env!("CARGO_BIN_EXE_dcwatch-sensor");

/// RFC 1001 14.1: the 16-octet NetBIOS name (padded with spaces, then its suffix), each half
/// octet as a letter from 'A'.
fn encoded_name(name: &str, suffix: u8) -> Vec<u8> {
    let mut raw = [b' '; 16];
    raw[..name.len()].copy_from_slice(name.as_bytes());
    raw[15] = suffix;
    let mut encoded = vec![32];
    for octet in raw {
        encoded.push(b'A' + (octet >> 4));
        encoded.push(b'A' + (octet & 0x0f));
    }
    encoded.push(0);
    encoded
}

/// A broadcast name registration request (RFC 1002 4.2.2): `name`<00>, unique, at `address`.
fn registration(id: u16, name: &str, address: Ipv4Addr) -> Vec<u8> {
    let mut packet = id.to_be_bytes().to_vec();
    // Opcode 5 (registration), RD, B; one question, one additional record.
    packet.extend_from_slice(&[0x29, 0x10, 0, 1, 0, 0, 0, 0, 0, 1]);
    packet.extend_from_slice(&encoded_name(name, 0x00));
    // NB, IN.
    packet.extend_from_slice(&[0, 0x20, 0, 1]);
    // The question's name by pointer, NB, IN, TTL 300000 s, RDLENGTH 6, NB_FLAGS 0 (unique,
    // B node), NB_ADDRESS.
    packet.extend_from_slice(&[0xc0, 0x0c, 0, 0x20, 0, 1, 0, 0x04, 0x93, 0xe0, 0, 6, 0, 0]);
    packet.extend_from_slice(&address.octets());
    frames::udp_v4(137, &packet)
}

fn source_computer(line: &str) -> Option<(String, String, String)> {
    let activity: Value = serde_json::from_str(line).ok()?;
    if activity["protocol"] != "netbios" {
        return None;
    }
    let computer = &activity["source_computer"];
    Some((
        computer["name"].as_str()?.to_owned(),
        computer["method"].as_str()?.to_owned(),
        computer["certainty"].as_str()?.to_owned(),
    ))
}

#[test]
fn a_weakly_named_address_is_probed_and_its_next_activity_is_named_with_high_certainty() {
    let peer = NetNs::create("dcwnp").expect("sender namespace");
    let capture = NetNs::create("dcwnp").expect("capture namespace");
    let veth = VethPair::create(&peer, &capture).expect("veth pair");
    // The client's address is local to the sensor's namespace: its probes reach the responder
    // over loopback, beside the mirror port, which sees only what the peer sends.
    ip(&[
        "-n",
        capture.name(),
        "addr",
        "add",
        &format!("{CLIENT_V4}/32"),
        "dev",
        "lo",
    ])
    .expect("the client's address");
    let listener = capture
        .run(|| TcpListener::bind((CLIENT_V4, 135)))
        .expect("the client's endpoint mapper");
    let until = Instant::now() + Duration::from_mins(1);
    let names = HostNames {
        nb_computer: "WS05-NB",
        nb_domain: "PROBE",
        dns_computer: "ws05-nb.probe.example",
        dns_domain: "probe.example",
    };
    let responder = std::thread::spawn(move || ntlm_rpc::serve(&listener, names, 1, until));

    let run = RunDir::create().expect("run directory");
    std::fs::write(
        &run.config,
        format!(
            "[stats]\ninterval_secs = 1\n[nnr]\nactive = true\nprobe_subnets = [\"{CLIENT_V4}/32\"]\n\
             probe_timeout_ms = 2000\n"
        ),
    )
    .expect("config");
    let args = run.run_args(&[&veth.receiver], &["--mode", "mirror", "--output", "json"]);
    let process = SensorProcess::start(&capture, Path::new(SENSOR), &args, 1).expect("starts");

    let first = registration(1, "WS05-NB", CLIENT_V4);
    send_frames(&peer, &veth.sender, [first.as_slice()]).expect("send");
    let stats = stats_file::wait_for(
        &run.stats,
        "nnr_probes_answered",
        1,
        Duration::from_secs(20),
    )
    .expect("stats");
    assert_eq!(
        stats_file::counter(&stats, "nnr_probes_answered"),
        1,
        "the endpoint mapper named the host: {stats:?}"
    );
    // The answer is recorded when the next activity comes; a moment later than the answer, so
    // that it is evidence at that activity's time.
    std::thread::sleep(Duration::from_millis(200));
    let second = registration(2, "WS05-NB", CLIENT_V4);
    send_frames(&peer, &veth.sender, [second.as_slice()]).expect("send");
    stats_file::wait_for(&run.stats, "activities", 2, Duration::from_secs(15)).expect("stats");
    let finished = process.stop().expect("sensor stops");
    assert!(finished.status.success(), "{:?}", finished.stderr);
    assert_eq!(responder.join().expect("responder").expect("serves"), 1);
    let stats = stats_file::read(&run.stats).expect("final stats");

    let named: Vec<_> = finished
        .stdout
        .iter()
        .filter_map(|line| source_computer(line))
        .collect();
    let name = |certainty: &str| {
        (
            "WS05-NB".to_owned(),
            "NETBIOS".to_owned(),
            certainty.to_owned(),
        )
    };
    assert_eq!(
        named,
        [name("LOW"), name("HIGH")],
        "the registration alone, then with the probe's answer: {:?}",
        finished.stdout
    );
    // One address probed once (the second activity was HIGH: no probe asked), by node status
    // (nothing answers on UDP 137) and over RPC.
    assert_eq!(
        stats_file::counter(&stats, "nnr_probes_sent"),
        2,
        "{stats:?}"
    );
    assert_eq!(stats_file::counter(&stats, "nnr_probes_timed_out"), 1);
    assert_eq!(stats_file::counter(&stats, "nnr_probes_failed"), 0);
}
