//! DCE-RPC on a DC's dynamic port that no endpoint-mapper answer announced to the sensor, live:
//! the lab's DCSync frames from its DRSUAPI bind on (the endpoint-mapper exchange before it left
//! out, as when the sensor starts after it, or reads the answer after the client connected) sent
//! over a veth pair into the real sensor, with the DC's address configured and without. The XDP
//! program's DCE-RPC header test must copy the bind and name its port, and the sensor must watch
//! the port from then on, so every later segment (continuations of PDUs that do not start with a
//! header among them) is captured. A non-RPC stream to another high port of a DC must stay
//! uncaptured. Needs root.

use std::{net::Ipv4Addr, path::Path, time::Duration};

use dcwatch_pipeline::capture_file::CaptureFile;
use dcwatch_tests::{
    frames::{self, DC_V4, Ipv4, PROTO_TCP},
    netns::{NetNs, VethPair},
    sender::send_frames,
    sensor_process::{RunDir, SensorProcess},
    stats_file,
};

const SENSOR: &str = env!("CARGO_BIN_EXE_dcwatch-sensor");

/// The lab DC of dcsync.pcap, and the DRSUAPI port its endpoint mapper announced there (tshark:
/// frame 46's ept_map answer, tower port 49153; frames 53 on are 10.99.0.2:33952 <->
/// 10.99.0.1:49153).
const LAB_DC: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const DRSUAPI_PORT: u16 = 49_153;
/// Ports the lab capture uses besides DRSUAPI's, all watched by default: SMB and the endpoint
/// mapper.
const WATCHED_IN_CAPTURE: [u16; 2] = [445, 135];

/// Namespace prefix of this file's tests: apart from the lab's `dcwlab-` and the other tests'.
const NAMESPACE_PREFIX: &str = "dcwrpc";

fn frames_of(name: &str) -> Vec<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/pcaps/adlab")
        .join(name);
    let mut file = CaptureFile::open(&path).expect("open the capture");
    let mut frames = Vec::new();
    while let Some(frame) = file.next_frame().expect("read a frame") {
        frames.push(frame.data.to_vec());
    }
    frames
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

/// Whether the TCP payload of an Ethernet + IPv4 frame starts with DCE-RPC 5.0.
fn starts_rpc_pdu(frame: &[u8]) -> bool {
    const ETHERNET: usize = 14;
    let Some(&ihl) = frame.get(ETHERNET) else {
        return false;
    };
    let tcp = ETHERNET + usize::from(ihl & 0x0f) * 4;
    let Some(&offset) = frame.get(tcp + 12) else {
        return false;
    };
    frame
        .get(tcp + usize::from(offset >> 4) * 4..)
        .is_some_and(|payload| payload.starts_with(&[5, 0]))
}

fn on_port(frame: &[u8], port: u16) -> bool {
    tcp_ports(frame).is_some_and(|(src, dst)| src == port || dst == port)
}

/// A sensor in mirror mode on a fresh veth pair, with the lab's DC and the test frames' DC
/// configured, the endpoint-mapper query on (no mapper is reachable from its namespace).
struct Bed {
    process: SensorProcess,
    run: RunDir,
    veth: VethPair,
    peer: NetNs,
    _capture: NetNs,
}

/// Whether the sensor is told where the DCs are.
#[derive(Clone, Copy, PartialEq)]
enum Dcs {
    /// The lab's DC and the fixtures' (`dc_addresses`), each DC's endpoint mapper asked.
    Configured,
    /// No `dc_addresses`: any server may be a DC.
    Unknown,
}

impl Bed {
    fn start(dcs: Dcs) -> Self {
        let peer = NetNs::create(NAMESPACE_PREFIX).expect("sender namespace");
        let capture = NetNs::create(NAMESPACE_PREFIX).expect("capture namespace");
        let veth = VethPair::create(&peer, &capture).expect("veth pair");
        let run = RunDir::create().expect("run directory");
        let capture_section = match dcs {
            Dcs::Configured => format!(
                "[capture]\ndc_addresses = [\"{LAB_DC}\", \"{DC_V4}\"]\nrpc_endpoint_query = true\n"
            ),
            Dcs::Unknown => String::new(),
        };
        std::fs::write(
            &run.config,
            format!("[stats]\ninterval_secs = 1\n{capture_section}"),
        )
        .expect("config");
        let args = run.run_args(&[&veth.receiver], &["--mode", "mirror", "--output", "json"]);
        let process = SensorProcess::start(&capture, Path::new(SENSOR), &args, 1).expect("starts");
        Self {
            process,
            run,
            veth,
            peer,
            _capture: capture,
        }
    }

    fn send(&self, frames: &[Vec<u8>]) {
        send_frames(
            &self.peer,
            &self.veth.sender,
            frames.iter().map(Vec::as_slice),
        )
        .expect("send frames");
    }

    fn wait_for(&self, counter: &str, at_least: u64) -> serde_json::Map<String, serde_json::Value> {
        stats_file::wait_for(&self.run.stats, counter, at_least, Duration::from_secs(15))
            .expect("stats")
    }
}

#[test]
fn a_dcs_dynamic_port_is_watched_after_its_first_dce_rpc_header() {
    watched_after_first_header(Dcs::Configured);
}

/// The flaky lab run's case: the client connected to DRSUAPI's port before the sensor had
/// opened it from the endpoint mapper's answer. With no DC addresses the bind must still be
/// caught by its header, and the whole conversation after it captured.
#[test]
fn without_dc_addresses_a_dynamic_port_is_watched_after_its_first_dce_rpc_header() {
    watched_after_first_header(Dcs::Unknown);
}

/// Sends the lab's DCSync from its DRSUAPI handshake on (the endpoint mapper's answer left
/// out): the bind is copied for its header, and everything after it because its port is then
/// watched.
fn watched_after_first_header(dcs: Dcs) {
    let frames = frames_of("dcsync.pcap");
    let first_on_port = frames
        .iter()
        .position(|frame| on_port(frame, DRSUAPI_PORT))
        .expect("the capture reaches DRSUAPI's port");
    let after_mapper = &frames[first_on_port..];
    assert!(
        after_mapper.iter().all(|frame| on_port(frame, DRSUAPI_PORT)
            || WATCHED_IN_CAPTURE.iter().any(|&port| on_port(frame, port))),
        "every frame sent is on DRSUAPI's port or a watched one"
    );
    // The handshake comes first; the bind is the first segment with a PDU header.
    let bind = after_mapper
        .iter()
        .position(|frame| starts_rpc_pdu(frame))
        .expect("the bind");
    assert!(bind > 0 && on_port(&after_mapper[bind], DRSUAPI_PORT));
    let on_drsuapi = after_mapper
        .iter()
        .filter(|frame| on_port(frame, DRSUAPI_PORT))
        .count() as u64;
    assert!(on_drsuapi > 30, "{on_drsuapi} frames on DRSUAPI's port");

    let bed = Bed::start(dcs);
    // Up to the bind: the handshake is not copied, the bind is, for its header, and its port is
    // watched from then on.
    bed.send(&after_mapper[..=bind]);
    let stats = bed.wait_for("rpc_header_ports_opened", 1);
    assert_eq!(stats_file::counter(&stats, "seen"), bind as u64 + 1);
    assert_eq!(stats_file::counter(&stats, "copied"), 1);
    assert_eq!(stats_file::counter(&stats, "rpc_header_matched"), 1);
    assert_eq!(stats_file::counter(&stats, "rpc_header_ports_opened"), 1);
    assert_eq!(stats_file::counter(&stats, "rpc_ports_watched"), 1);
    bed.send(&after_mapper[bind + 1..]);
    let mut stats = bed.wait_for("seen", after_mapper.len() as u64);
    if dcs == Dcs::Configured {
        stats = bed.wait_for("epm_queries", 1);
    }
    let finished = bed.process.stop().expect("sensor stops");
    assert!(finished.status.success(), "{:?}", finished.stderr);
    let stats = stats_file::read(&bed.run.stats).unwrap_or(stats);
    let counter = |name| stats_file::counter(&stats, name);
    assert_eq!(counter("seen"), after_mapper.len() as u64);
    assert_eq!(
        counter("copied"),
        (after_mapper.len() - bind) as u64,
        "every frame from the bind on captured, DRSUAPI's continuation segments included"
    );
    assert_eq!(counter("ringbuf_full"), 0);
    // Only the bind needed the header test: the port was watched before the next PDU.
    assert_eq!(counter("rpc_header_matched"), 1);
    assert_eq!(counter("rpc_header_ports_opened"), 1);
    match dcs {
        // No endpoint mapper is reachable from the sensor's namespace: asked, and failed,
        // counted.
        Dcs::Configured => {
            assert!(counter("epm_queries") >= 1);
            assert_eq!(counter("epm_query_failures"), counter("epm_queries"));
        }
        // No DC to ask.
        Dcs::Unknown => assert_eq!(counter("epm_queries"), 0),
    }
    assert_eq!(counter("epm_query_ports_opened"), 0);
}

#[test]
fn a_non_rpc_stream_to_a_dcs_high_port_is_not_captured() {
    const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 99, 1, 2);
    const PORT: u16 = 49_160;
    let segment = |to_dc: bool, flags: u8, seq: u32, ack: u32, payload: &[u8]| {
        let (src, dst, sport, dport) = if to_dc {
            (CLIENT, DC_V4, 50_123, PORT)
        } else {
            (DC_V4, CLIENT, PORT, 50_123)
        };
        frames::ethernet(
            &[],
            frames::ETHERTYPE_IPV4,
            &Ipv4::new(src, dst, PROTO_TCP)
                .packet(&frames::tcp_segment(sport, dport, seq, ack, flags, payload)),
        )
    };
    use frames::{TCP_ACK, TCP_PSH, TCP_SYN};
    let hello = b"\x16\x03\x01\x00\x50\x01\x00\x00\x4c\x03\x03 a TLS client hello, not RPC";
    let answer = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    let stream = [
        segment(true, TCP_SYN, 100, 0, &[]),
        segment(false, TCP_SYN | TCP_ACK, 900, 101, &[]),
        segment(true, TCP_ACK, 101, 901, &[]),
        segment(true, TCP_PSH | TCP_ACK, 101, 901, hello),
        segment(
            false,
            TCP_PSH | TCP_ACK,
            901,
            101 + hello.len() as u32,
            answer,
        ),
    ];
    let bed = Bed::start(Dcs::Configured);
    bed.send(&stream);
    bed.wait_for("seen", stream.len() as u64);
    let finished = bed.process.stop().expect("sensor stops");
    assert!(finished.status.success(), "{:?}", finished.stderr);
    let stats = stats_file::read(&bed.run.stats).expect("final stats");
    let counter = |name| stats_file::counter(&stats, name);
    assert_eq!(counter("seen"), stream.len() as u64);
    assert_eq!(counter("matched"), 0);
    assert_eq!(counter("rpc_header_matched"), 0);
    assert_eq!(counter("rpc_ports_watched"), 0);
    assert!(finished.stdout.is_empty(), "{:?}", finished.stdout);
}
