//! Hostile traffic through `dcwatch-sensor replay`: deep BER nesting, lengths that promise more
//! than ever comes, DNS compression loops, endless out-of-order segments, floods of flows and of
//! IP fragments. The sensor must not panic, must count what it gave up, must keep its memory
//! under the configured budget (the stats file's `memory_peak`), and must still report the
//! ordinary activity that follows.

use std::{path::Path, process::Command};

use dcwatch_tests::{
    frames::{
        self, CLIENT_V4, DC_V4, ETHERTYPE_IPV4, Ipv4, PROTO_TCP, PROTO_UDP, TCP_ACK, TCP_PSH,
        TCP_SYN,
    },
    pcap,
};
use serde_json::Value;

const SENSOR: &str = env!("CARGO_BIN_EXE_dcwatch-sensor");
const MEMORY_MIB: u64 = 1;
const PER_DIRECTION_KIB: u64 = 256;

/// BER length octets, long form with four bytes: what AD sends, and easy to build inside out.
fn ber(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut element = vec![tag, 0x84];
    element.extend_from_slice(&u32::try_from(contents.len()).expect("small").to_be_bytes());
    element.extend_from_slice(contents);
    element
}

/// An LDAP SearchRequest whose filter is `depth` nested NOTs around `(a=b)`.
fn deep_search(depth: usize) -> Vec<u8> {
    let mut filter = ber(0xa3, &[ber(0x04, b"a"), ber(0x04, b"b")].concat());
    for _ in 0..depth {
        filter = ber(0xa2, &filter);
    }
    let search = [
        ber(0x04, b"dc=corp"),
        vec![0x0a, 1, 2, 0x0a, 1, 0, 0x02, 1, 0, 0x02, 1, 0, 0x01, 1, 0],
        filter,
        ber(0x30, &[]),
    ]
    .concat();
    ber(0x30, &[vec![0x02, 1, 7], ber(0x63, &search)].concat())
}

fn tcp(client_port: u16, server_port: u16, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let segment = frames::tcp_segment(client_port, server_port, seq, 1, flags, payload);
    frames::ethernet(
        &[],
        ETHERTYPE_IPV4,
        &Ipv4::new(CLIENT_V4, DC_V4, PROTO_TCP).packet(&segment),
    )
}

fn dns_query(name_bytes: &[u8]) -> Vec<u8> {
    let mut message = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    message.extend_from_slice(name_bytes);
    message.extend_from_slice(&[0, 1, 0, 1]);
    frames::udp_v4(53, &message)
}

fn hostile_capture(path: &Path) {
    let mut frames = Vec::new();
    let mut time = 1_700_000_000_000_000_000_u64;
    let mut push = |frame: Vec<u8>| {
        time += 1_000;
        frames.push((time, frame));
    };
    // LDAP: a filter nested 10,000 deep, on a connection seen from its SYN.
    push(tcp(40_001, 389, 1000, TCP_SYN, &[]));
    push(tcp(
        40_001,
        389,
        1001,
        TCP_ACK | TCP_PSH,
        &deep_search(10_000),
    ));
    // LDAP: a message that declares 2 GiB and sends 10 bytes.
    push(tcp(40_002, 389, 5000, TCP_SYN, &[]));
    let mut huge = vec![0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x02, 0x01, 0x05, 0x63];
    huge.extend_from_slice(&[0; 10]);
    push(tcp(40_002, 389, 5001, TCP_ACK | TCP_PSH, &huge));
    // Not LDAP on the LDAP port, both ways: given up, then no longer reassembled.
    push(tcp(40_004, 389, 7000, TCP_SYN, &[]));
    push(tcp(
        40_004,
        389,
        7001,
        TCP_ACK | TCP_PSH,
        b"GET / HTTP/1.1\r\n\r\n",
    ));
    let handshake = frames::tcp_segment(389, 40_004, 2999, 7001, TCP_SYN | TCP_ACK, &[]);
    push(frames::ethernet(
        &[],
        ETHERTYPE_IPV4,
        &Ipv4::new(DC_V4, CLIENT_V4, PROTO_TCP).packet(&handshake),
    ));
    let reply = frames::tcp_segment(
        389,
        40_004,
        3000,
        7019,
        TCP_ACK | TCP_PSH,
        b"HTTP/1.1 200 OK\r\n\r\n",
    );
    push(frames::ethernet(
        &[],
        ETHERTYPE_IPV4,
        &Ipv4::new(DC_V4, CLIENT_V4, PROTO_TCP).packet(&reply),
    ));
    push(tcp(40_004, 389, 7019, TCP_ACK | TCP_PSH, &[0x30; 100]));
    // DNS: a name that points at itself, and a two-pointer cycle.
    push(dns_query(&[0xc0, 0x0c]));
    push(dns_query(&[0xc0, 0x0e, 0xc0, 0x0c]));
    // Kerberos/TCP: 2,000 segments of 1,000 bytes beyond a hole that never fills.
    push(tcp(40_003, 88, 9000, TCP_SYN, &[]));
    for index in 0..2_000_u32 {
        let seq = 9001 + 100_000 + index * 1000;
        push(tcp(40_003, 88, seq, TCP_ACK | TCP_PSH, &[0x55; 1000]));
    }
    // 3,000 flows, each with one segment beyond its own hole.
    for port in 0..3_000_u16 {
        push(tcp(10_000 + port, 389, 1, TCP_SYN, &[]));
        push(tcp(
            10_000 + port,
            389,
            50_000,
            TCP_ACK | TCP_PSH,
            &[0x30; 1000],
        ));
    }
    // 3,000 first fragments of UDP datagrams to Kerberos that never complete.
    for id in 0..3_000_u16 {
        let mut ip = Ipv4 {
            more_fragments: true,
            ..Ipv4::new(CLIENT_V4, DC_V4, PROTO_UDP)
        }
        .packet(&frames::udp(50_000, 88, &[0x6a; 1000]));
        ip[4..6].copy_from_slice(&id.to_be_bytes());
        push(frames::ethernet(&[], ETHERTYPE_IPV4, &ip));
    }
    // And then an ordinary lookup, which must still be reported.
    push(dns_query(b"\x05_ldap\x04_tcp\x02dc\x04corp\x00"));
    pcap::write(path, frames).expect("write the capture");
}

#[test]
fn hostile_traffic_is_counted_and_memory_stays_under_the_budget() {
    let workdir = tempfile::tempdir().expect("temporary directory");
    let capture = workdir.path().join("hostile.pcap");
    hostile_capture(&capture);
    let config = workdir.path().join("dcwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[dissect]\nmemory_mib = {MEMORY_MIB}\nmax_buffered_per_direction_kib = \
             {PER_DIRECTION_KIB}\n"
        ),
    )
    .expect("write the config");
    let stats_path = workdir.path().join("stats.json");
    let output = Command::new(SENSOR)
        .args(["replay", "--output", "json", "--config"])
        .arg(&config)
        .arg("--stats-file")
        .arg(&stats_path)
        .arg(&capture)
        .output()
        .expect("run the sensor");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let stats: Value =
        serde_json::from_str(&std::fs::read_to_string(&stats_path).expect("stats")).expect("JSON");
    let counter = |name: &str| {
        stats[name]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} missing from {stats}"))
    };
    assert!(
        counter("memory_peak") <= MEMORY_MIB << 20,
        "memory peak {} over the budget",
        counter("memory_peak")
    );
    assert_eq!(
        counter("memory_in_use"),
        0,
        "everything given back at the end"
    );
    assert!(counter("flow_buffer_cap_hits") >= 1, "{stats}");
    assert!(counter("flow_budget_cap_hits") >= 1, "{stats}");
    assert!(counter("flow_gaps") >= 1, "{stats}");
    assert!(counter("fragment_fragments") == 3_000, "{stats}");
    assert!(counter("fragment_reassembled") == 0, "{stats}");
    assert!(
        counter("fragment_budget_cap_hits") + counter("fragment_evicted") >= 1,
        "{stats}"
    );
    assert!(counter("parse_errors") >= 2, "the two DNS loops: {stats}");
    assert!(counter("not_protocol_streams") >= 2, "{stats}");
    assert_eq!(counter("flow_flows_unfollowed"), 1, "{stats}");
    assert!(
        counter("unfinished_pdus") >= 1,
        "the 2 GiB LDAP message: {stats}"
    );

    let activities: Vec<Value> = String::from_utf8(output.stdout)
        .expect("UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    let deep = activities
        .iter()
        .find(|activity| activity["type"] == "SEARCH" && activity["message_id"] == 7)
        .expect("the deeply nested search is reported");
    assert!(
        deep["anomalies"].to_string().contains("too_deep"),
        "the nesting is flagged: {deep}"
    );
    assert!(
        deep["filter"]
            .as_str()
            .is_some_and(|filter| filter.len() <= 8192),
        "{deep}"
    );
    assert!(
        activities.iter().any(|activity| activity["type"] == "QUERY"
            && activity["query_name"] == "_ldap._tcp.dc.corp"),
        "the ordinary lookup after the flood is reported"
    );
}
