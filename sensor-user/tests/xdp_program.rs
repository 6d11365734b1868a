//! The XDP capture program run by the kernel on crafted frames (`BPF_PROG_TEST_RUN`): for each
//! frame, the exact verdict, the exact change of every counter, and what reached the ring buffer.
//! Needs root.

use std::net::{IpAddr, Ipv4Addr};

use dcwatch_pipeline::decap::{DecapConfig, DecapMode, Decapsulated, decapsulate};
use dcwatch_tests::{
    fixture::{DCSYNC_BIND, DCSYNC_REQUEST, DCSYNC_RESPONSE, DRSUAPI_PORT, hex},
    frames::{
        self, CLIENT_V4, CLIENT_V6, DC_V4, DC_V6, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6,
        IPV6_DESTINATION, IPV6_FRAGMENT, IPV6_HOP_BY_HOP, IPV6_ROUTING, Ipv4, PROTO_TCP, PROTO_UDP,
        TPID_8021AD, TPID_8021Q, Tunnel, ipv6, ipv6_extension, ipv6_fragment, tcp, udp,
    },
    traffic::WATCHED,
};
use sensor_common::{Counter, shed_class, shed_keep};
use sensor_user::{
    capture::{Capture, FrameRing, KernelCounters, PortChange},
    config::{CaptureConfig, Mode},
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Matched,
    Unwatched,
    NonIp,
    Malformed,
    /// On a watched port, shed by the resource limiter.
    Shed,
}

struct Harness {
    capture: Capture,
    ring: FrameRing,
    verdict: u32,
    snap_len: usize,
}

impl Harness {
    fn new(config: CaptureConfig) -> Self {
        let mut capture = Capture::load(&config).expect("load the XDP program (as root)");
        let ring = capture.take_frames().expect("ring buffer");
        Self {
            capture,
            ring,
            verdict: if config.mode == Mode::Host {
                XDP_PASS
            } else {
                XDP_DROP
            },
            snap_len: config.snap_len as usize,
        }
    }

    fn mirror() -> Self {
        Self::new(CaptureConfig {
            ring_buffer_mib: 4,
            ..CaptureConfig::default()
        })
    }

    fn counters(&self) -> KernelCounters {
        self.capture.counters().expect("counters")
    }

    /// Runs `frame` once: the verdict, how each counter moved, and what reached the ring buffer.
    fn run(&mut self, frame: &[u8]) -> Run {
        let before = self.counters();
        let verdict = self
            .capture
            .test_run(frame, 1)
            .expect("test run")
            .return_value;
        let after = self.counters();
        let mut records = Vec::new();
        let mut rpc_ports = Vec::new();
        self.ring.drain(|record| {
            let frame = record.expect("whole record");
            records.push((frame.orig_len, frame.data.to_vec()));
            rpc_ports.push(frame.rpc_port);
        });
        Run {
            verdict,
            before,
            after,
            records,
            rpc_ports,
        }
    }

    /// Runs `frame` once and checks verdict, counters and ring contents against `outcome`.
    fn expect(&mut self, what: &str, frame: &[u8], outcome: Outcome) {
        let run = self.run(frame);
        let delta = |counter| run.delta(counter);
        assert_eq!(run.verdict, self.verdict, "{what}: verdict");
        assert_eq!(delta(Counter::Seen), 1, "{what}: seen");
        assert_eq!(delta(Counter::Bytes), frame.len() as u64, "{what}: bytes");
        let one_if = |wanted| u64::from(outcome == wanted);
        assert_eq!(
            delta(Counter::Matched),
            one_if(Outcome::Matched),
            "{what}: matched"
        );
        assert_eq!(
            delta(Counter::Copied),
            one_if(Outcome::Matched),
            "{what}: copied"
        );
        assert_eq!(
            delta(Counter::NonIp),
            one_if(Outcome::NonIp),
            "{what}: non_ip"
        );
        assert_eq!(
            delta(Counter::Malformed),
            one_if(Outcome::Malformed),
            "{what}: malformed"
        );
        assert_eq!(delta(Counter::Shed), one_if(Outcome::Shed), "{what}: shed");
        assert_eq!(delta(Counter::RingbufFull), 0, "{what}: ringbuf_full");
        assert_eq!(delta(Counter::RpcHeader), 0, "{what}: rpc_header_matched");
        let truncated = outcome == Outcome::Matched && frame.len() > self.snap_len;
        assert_eq!(
            delta(Counter::Truncated),
            u64::from(truncated),
            "{what}: truncated"
        );

        if outcome == Outcome::Matched {
            let captured = &frame[..frame.len().min(self.snap_len)];
            assert_eq!(
                run.records,
                [(frame.len() as u32, captured.to_vec())],
                "{what}: ring contents"
            );
        } else {
            assert!(
                run.records.is_empty(),
                "{what}: {} records",
                run.records.len()
            );
        }
    }
}

/// One run of the program on one frame.
struct Run {
    verdict: u32,
    before: KernelCounters,
    after: KernelCounters,
    /// Original length and bytes of each record the run left in the ring buffer.
    records: Vec<(u32, Vec<u8>)>,
    /// The port the DCE-RPC header test put in each record.
    rpc_ports: Vec<Option<u16>>,
}

impl Run {
    fn delta(&self, counter: Counter) -> u64 {
        self.after.get(counter) - self.before.get(counter)
    }
}

fn ipv4_frame(ip: Ipv4, l4: &[u8]) -> Vec<u8> {
    frames::ethernet(&[], ETHERTYPE_IPV4, &ip.packet(l4))
}

fn ipv6_frame(next_header: u8, payload: &[u8]) -> Vec<u8> {
    frames::ethernet(
        &[],
        ETHERTYPE_IPV6,
        &ipv6(CLIENT_V6, DC_V6, next_header, payload),
    )
}

fn is_watched(transport: &str, port: u16) -> bool {
    WATCHED.iter().any(|&(watched_transport, watched_port, _)| {
        watched_transport == transport && watched_port == port
    })
}

#[test]
fn every_default_port_matches_over_its_transports_in_both_directions() {
    let mut harness = Harness::mirror();
    let payload = [7_u8; 32];
    for &(transport, port, protocol) in WATCHED {
        let (to_server, from_server, other_transport) = if transport == "tcp" {
            (
                frames::tcp_v4(port, &payload),
                tcp(port, 50_000, &payload),
                "udp",
            )
        } else {
            (
                frames::udp_v4(port, &payload),
                udp(port, 50_000, &payload),
                "tcp",
            )
        };
        let reply_protocol = if transport == "tcp" {
            PROTO_TCP
        } else {
            PROTO_UDP
        };
        let reply = ipv4_frame(Ipv4::new(DC_V4, CLIENT_V4, reply_protocol), &from_server);
        harness.expect(&format!("{protocol} request"), &to_server, Outcome::Matched);
        harness.expect(&format!("{protocol} reply"), &reply, Outcome::Matched);
        let over_ipv6 = if transport == "tcp" {
            frames::tcp_v6(port, &payload)
        } else {
            frames::udp_v6(port, &payload)
        };
        harness.expect(
            &format!("{protocol} over IPv6"),
            &over_ipv6,
            Outcome::Matched,
        );
        if !is_watched(other_transport, port) {
            let wrong = if other_transport == "tcp" {
                frames::tcp_v4(port, &payload)
            } else {
                frames::udp_v4(port, &payload)
            };
            let what = format!("{other_transport}/{port}, watched on {transport} only");
            harness.expect(&what, &wrong, Outcome::Unwatched);
        }
    }
    harness.expect("http", &frames::tcp_v4(80, &payload), Outcome::Unwatched);
    harness.expect(
        "udp/5000",
        &frames::udp_v6(5000, &payload),
        Outcome::Unwatched,
    );
}

#[test]
fn vlan_tags_are_followed_two_deep() {
    let mut harness = Harness::mirror();
    let ip = Ipv4::new(CLIENT_V4, DC_V4, PROTO_UDP).packet(&udp(50_000, 88, &[1; 20]));
    for (what, tags, outcome) in [
        ("802.1Q", &[TPID_8021Q][..], Outcome::Matched),
        (
            "QinQ 802.1ad",
            &[TPID_8021AD, TPID_8021Q][..],
            Outcome::Matched,
        ),
        (
            "QinQ legacy 0x9100",
            &[0x9100, TPID_8021Q][..],
            Outcome::Matched,
        ),
        (
            "three tags",
            &[TPID_8021AD, TPID_8021Q, TPID_8021Q][..],
            Outcome::Malformed,
        ),
    ] {
        harness.expect(what, &frames::ethernet(tags, ETHERTYPE_IPV4, &ip), outcome);
    }
    let arp_in_vlan = frames::ethernet(&[TPID_8021Q], ETHERTYPE_ARP, &[0; 28]);
    harness.expect("ARP in 802.1Q", &arp_in_vlan, Outcome::NonIp);
}

#[test]
fn ipv4_options_are_skipped() {
    let mut harness = Harness::mirror();
    for options_len in [4, 12, 40] {
        let ip = Ipv4 {
            options_len,
            ..Ipv4::new(CLIENT_V4, DC_V4, PROTO_TCP)
        };
        let frame = ipv4_frame(ip, &tcp(50_000, 445, &[2; 10]));
        harness.expect(
            &format!("{options_len} bytes of options"),
            &frame,
            Outcome::Matched,
        );
    }
}

#[test]
fn ipv6_extension_headers_are_followed() {
    let mut harness = Harness::mirror();
    let udp_88 = udp(50_000, 88, &[3; 16]);
    let cases = [
        (
            "hop-by-hop",
            IPV6_HOP_BY_HOP,
            ipv6_extension(PROTO_UDP, 0, &udp_88),
            Outcome::Matched,
        ),
        (
            "routing (24 bytes)",
            IPV6_ROUTING,
            ipv6_extension(PROTO_UDP, 2, &udp_88),
            Outcome::Matched,
        ),
        (
            "hop-by-hop, destination options, routing",
            IPV6_HOP_BY_HOP,
            ipv6_extension(
                IPV6_DESTINATION,
                0,
                &ipv6_extension(IPV6_ROUTING, 1, &ipv6_extension(PROTO_UDP, 0, &udp_88)),
            ),
            Outcome::Matched,
        ),
        (
            "first fragment",
            IPV6_FRAGMENT,
            ipv6_fragment(PROTO_UDP, 0, true, &udp_88),
            Outcome::Matched,
        ),
        (
            "first fragment, unwatched port",
            IPV6_FRAGMENT,
            ipv6_fragment(PROTO_UDP, 0, true, &udp(50_000, 80, &[3; 16])),
            Outcome::Unwatched,
        ),
        (
            "non-first fragment",
            IPV6_FRAGMENT,
            ipv6_fragment(PROTO_UDP, 100, false, &[3; 24]),
            Outcome::Matched,
        ),
        (
            "ICMPv6",
            58,
            vec![128, 0, 0, 0, 0, 1, 0, 1],
            Outcome::Unwatched,
        ),
        ("no next header", 59, Vec::new(), Outcome::Unwatched),
    ];
    for (what, next_header, payload, outcome) in cases {
        harness.expect(what, &ipv6_frame(next_header, &payload), outcome);
    }
    let mut chain = udp_88.clone();
    let mut next = PROTO_UDP;
    for _ in 0..7 {
        chain = ipv6_extension(next, 0, &chain);
        next = IPV6_DESTINATION;
    }
    harness.expect(
        "seven extension headers",
        &ipv6_frame(next, &chain),
        Outcome::Malformed,
    );
}

#[test]
fn ipv4_fragments_first_by_port_the_rest_by_address() {
    let mut harness = Harness::mirror();
    let first = |port| {
        Ipv4 {
            more_fragments: true,
            ..Ipv4::new(CLIENT_V4, DC_V4, PROTO_UDP)
        }
        .packet(&udp(50_000, port, &[4; 64]))
    };
    let later = |src, dst| Ipv4 {
        fragment_offset: 185,
        ..Ipv4::new(src, dst, PROTO_UDP)
    };
    harness.expect(
        "first fragment to 88",
        &frames::ethernet(&[], ETHERTYPE_IPV4, &first(88)),
        Outcome::Matched,
    );
    harness.expect(
        "first fragment to 80",
        &frames::ethernet(&[], ETHERTYPE_IPV4, &first(80)),
        Outcome::Unwatched,
    );
    let stranger = Ipv4Addr::new(192, 0, 2, 7);
    harness.expect(
        "later fragment, no address filter",
        &ipv4_frame(later(stranger, CLIENT_V4), &[4; 64]),
        Outcome::Matched,
    );

    let mut filtered = Harness::new(CaptureConfig {
        ring_buffer_mib: 4,
        dc_addresses: vec![IpAddr::V4(DC_V4), IpAddr::V6(DC_V6)],
        ..CaptureConfig::default()
    });
    filtered.expect(
        "later fragment to a DC",
        &ipv4_frame(later(CLIENT_V4, DC_V4), &[4; 64]),
        Outcome::Matched,
    );
    filtered.expect(
        "later fragment between others",
        &ipv4_frame(later(stranger, CLIENT_V4), &[4; 64]),
        Outcome::Unwatched,
    );
}

#[test]
fn dc_address_sets_restrict_matching() {
    let mut harness = Harness::new(CaptureConfig {
        ring_buffer_mib: 4,
        dc_addresses: vec![IpAddr::V4(DC_V4), IpAddr::V6(DC_V6)],
        ..CaptureConfig::default()
    });
    let payload = [5_u8; 16];
    harness.expect(
        "client to DC",
        &frames::udp_v4(88, &payload),
        Outcome::Matched,
    );
    let reply = ipv4_frame(
        Ipv4::new(DC_V4, CLIENT_V4, PROTO_UDP),
        &udp(88, 50_000, &payload),
    );
    harness.expect("DC to client", &reply, Outcome::Matched);
    let elsewhere = ipv4_frame(
        Ipv4::new(CLIENT_V4, Ipv4Addr::new(10, 99, 1, 3), PROTO_UDP),
        &udp(50_000, 88, &payload),
    );
    harness.expect("client to another server", &elsewhere, Outcome::Unwatched);
    harness.expect(
        "IPv6 client to DC",
        &frames::tcp_v6(389, &payload),
        Outcome::Matched,
    );
    let v6_elsewhere = frames::ethernet(
        &[],
        ETHERTYPE_IPV6,
        &ipv6(CLIENT_V6, CLIENT_V6, PROTO_TCP, &tcp(50_000, 389, &payload)),
    );
    harness.expect("IPv6 between others", &v6_elsewhere, Outcome::Unwatched);
}

#[test]
fn the_limiter_sheds_name_queries_of_clients_that_are_not_dcs() {
    let mut harness = Harness::new(CaptureConfig {
        ring_buffer_mib: 4,
        dc_addresses: vec![IpAddr::V4(DC_V4)],
        ..CaptureConfig::default()
    });
    let payload = [7_u8; 24];
    let query = frames::udp_v4(53, &payload);
    harness.expect("DNS query, nothing shed yet", &query, Outcome::Matched);
    let set = |harness: &mut Harness, keep| {
        harness
            .capture
            .set_shed(shed_class::NAME_QUERIES, keep)
            .expect("SHED map");
    };
    set(&mut harness, shed_keep::NONE);
    harness.expect("DNS query to the DC", &query, Outcome::Shed);
    let answer = ipv4_frame(
        Ipv4::new(DC_V4, CLIENT_V4, PROTO_UDP),
        &udp(53, 50_000, &payload),
    );
    harness.expect("its answer", &answer, Outcome::Shed);
    harness.expect(
        "NetBIOS name query",
        &frames::udp_v4(137, &payload),
        Outcome::Shed,
    );
    harness.expect("DNS over TCP", &frames::tcp_v4(53, &payload), Outcome::Shed);
    let dc_asks = ipv4_frame(
        Ipv4::new(DC_V4, Ipv4Addr::new(10, 99, 1, 3), PROTO_UDP),
        &udp(50_000, 53, &payload),
    );
    harness.expect("the DC's own query", &dc_asks, Outcome::Matched);
    harness.expect("Kerberos", &frames::udp_v4(88, &payload), Outcome::Matched);
    harness.expect("LDAP", &frames::tcp_v4(389, &payload), Outcome::Matched);

    // One in four kept, at random: each frame is exactly one of matched or shed.
    set(&mut harness, 4);
    let before = harness.counters();
    for _ in 0..400 {
        harness.run(&query);
    }
    let after = harness.counters();
    let delta = |counter| after.get(counter) - before.get(counter);
    assert_eq!(delta(Counter::Matched) + delta(Counter::Shed), 400);
    assert_eq!(delta(Counter::Copied), delta(Counter::Matched));
    // 300 expected, standard deviation 8.7.
    assert!(
        (240..=360).contains(&delta(Counter::Shed)),
        "{}",
        delta(Counter::Shed)
    );

    set(&mut harness, shed_keep::ALL);
    harness.expect("restored", &query, Outcome::Matched);

    // Without DC addresses every client is not a DC.
    let mut any = Harness::mirror();
    any.capture
        .set_shed(shed_class::NAME_QUERIES, shed_keep::NONE)
        .expect("SHED map");
    any.expect("DNS, no DC filter", &query, Outcome::Shed);
    any.expect(
        "Kerberos, no DC filter",
        &frames::udp_v4(88, &payload),
        Outcome::Matched,
    );
}

#[test]
fn headers_cut_short_at_every_layer_are_malformed() {
    let mut harness = Harness::mirror();
    let ipv4 = Ipv4::new(CLIENT_V4, DC_V4, PROTO_TCP);
    let tcp_445 = tcp(50_000, 445, &[6; 8]);
    let whole_ipv4 = ipv4.packet(&tcp_445);
    let mut long_ihl = whole_ipv4[..20].to_vec();
    long_ihl[0] = 0x4f;
    let mut total_len_beyond_frame = whole_ipv4.clone();
    total_len_beyond_frame[2..4].copy_from_slice(&1000_u16.to_be_bytes());
    let mut total_len_below_header = whole_ipv4.clone();
    total_len_below_header[2..4].copy_from_slice(&12_u16.to_be_bytes());
    let mut wrong_version = whole_ipv4.clone();
    wrong_version[0] = 0x65;
    let mut tcp_offset_4 = tcp_445.clone();
    tcp_offset_4[12] = 0x40;
    let mut tcp_offset_beyond_packet = tcp_445.clone();
    tcp_offset_beyond_packet[12] = 0xf0;
    let whole_ipv6 = ipv6(CLIENT_V6, DC_V6, PROTO_UDP, &udp(50_000, 88, &[6; 8]));
    let mut ipv6_payload_beyond_frame = whole_ipv6.clone();
    ipv6_payload_beyond_frame[4..6].copy_from_slice(&900_u16.to_be_bytes());

    let on_ipv4 = |payload: &[u8]| frames::ethernet(&[], ETHERTYPE_IPV4, payload);
    let on_ipv6 = |payload: &[u8]| frames::ethernet(&[], ETHERTYPE_IPV6, payload);
    let cases = [
        (
            "VLAN tag with no room for it",
            frames::ethernet(&[], TPID_8021Q, &[0, 100]),
        ),
        ("IPv4 header of 19 bytes", on_ipv4(&whole_ipv4[..19])),
        ("IPv4 IHL 15, 20 bytes present", on_ipv4(&long_ihl)),
        (
            "IPv4 total length beyond frame",
            on_ipv4(&total_len_beyond_frame),
        ),
        (
            "IPv4 total length below header",
            on_ipv4(&total_len_below_header),
        ),
        ("version 6 in an IPv4 EtherType", on_ipv4(&wrong_version)),
        ("IPv6 header of 39 bytes", on_ipv6(&whole_ipv6[..39])),
        (
            "IPv6 payload length beyond frame",
            on_ipv6(&ipv6_payload_beyond_frame),
        ),
        ("IPv4 EtherType on IPv6", on_ipv4(&whole_ipv6)),
        ("TCP header of 19 bytes", ipv4_frame(ipv4, &tcp_445[..19])),
        ("TCP data offset 4", ipv4_frame(ipv4, &tcp_offset_4)),
        (
            "TCP data offset beyond packet",
            ipv4_frame(ipv4, &tcp_offset_beyond_packet),
        ),
        (
            "UDP header of 7 bytes",
            ipv4_frame(
                Ipv4::new(CLIENT_V4, DC_V4, PROTO_UDP),
                &udp(50_000, 88, &[])[..7],
            ),
        ),
        (
            "IPv6 extension header cut short",
            ipv6_frame(IPV6_HOP_BY_HOP, &[PROTO_UDP, 0, 0]),
        ),
        (
            "IPv6 routing header, then no room for UDP",
            ipv6_frame(IPV6_ROUTING, &ipv6_extension(PROTO_UDP, 0, &[])),
        ),
    ];
    for (what, frame) in cases {
        harness.expect(what, &frame, Outcome::Malformed);
    }
}

#[test]
fn non_ip_frames_are_counted_apart() {
    let mut harness = Harness::mirror();
    harness.expect(
        "ARP",
        &frames::ethernet(&[], ETHERTYPE_ARP, &[0; 28]),
        Outcome::NonIp,
    );
    harness.expect(
        "LLDP",
        &frames::ethernet(&[], 0x88cc, &[0; 40]),
        Outcome::NonIp,
    );
    harness.expect(
        "802.3 length field",
        &frames::ethernet(&[], 46, &[0; 46]),
        Outcome::NonIp,
    );
    harness.expect(
        "bare Ethernet header",
        &frames::ethernet(&[], ETHERTYPE_IPV4, &[]),
        Outcome::Malformed,
    );
}

#[test]
fn frames_longer_than_the_snap_length_are_truncated_and_counted() {
    let mut harness = Harness::mirror();
    let jumbo = frames::tcp_v4(445, &vec![8; 3000 - 54]);
    assert_eq!(jumbo.len(), 3000);
    harness.expect("3000-byte frame, snap 2048", &jumbo, Outcome::Matched);

    let mut short_snap = Harness::new(CaptureConfig {
        ring_buffer_mib: 1,
        snap_len: 64,
        ..CaptureConfig::default()
    });
    short_snap.expect(
        "100-byte frame, snap 64",
        &frames::udp_v4(53, &[9; 58]),
        Outcome::Matched,
    );
    short_snap.expect(
        "64-byte frame, snap 64",
        &frames::udp_v4(53, &[9; 22]),
        Outcome::Matched,
    );
}

#[test]
fn host_mode_passes_every_frame() {
    let mut harness = Harness::new(CaptureConfig {
        mode: Mode::Host,
        ring_buffer_mib: 1,
        ..CaptureConfig::default()
    });
    harness.expect("matched", &frames::udp_v4(88, &[1; 10]), Outcome::Matched);
    harness.expect(
        "unwatched",
        &frames::tcp_v4(80, &[1; 10]),
        Outcome::Unwatched,
    );
    harness.expect(
        "non-IP",
        &frames::ethernet(&[], ETHERTYPE_ARP, &[0; 28]),
        Outcome::NonIp,
    );
    harness.expect(
        "malformed",
        &frames::ethernet(&[], ETHERTYPE_IPV4, &[0x45, 0]),
        Outcome::Malformed,
    );
}

#[test]
fn ports_learned_at_run_time_are_watched_until_unwatched() {
    let mut harness = Harness::mirror();
    let dynamic = 49_667;
    harness.expect(
        "before",
        &frames::tcp_v4(dynamic, &[1; 10]),
        Outcome::Unwatched,
    );
    harness
        .capture
        .apply_port_change(PortChange::Watch(dynamic))
        .expect("watch");
    harness.expect(
        "learned",
        &frames::tcp_v4(dynamic, &[1; 10]),
        Outcome::Matched,
    );
    harness.expect(
        "learned, UDP",
        &frames::udp_v4(dynamic, &[1; 10]),
        Outcome::Unwatched,
    );
    harness
        .capture
        .apply_port_change(PortChange::Unwatch(dynamic))
        .expect("unwatch");
    harness.expect(
        "forgotten",
        &frames::tcp_v4(dynamic, &[1; 10]),
        Outcome::Unwatched,
    );
    // A port also watched over UDP keeps that when TCP is learned and forgotten.
    harness
        .capture
        .apply_port_change(PortChange::Watch(88))
        .expect("watch a UDP and TCP port");
    harness
        .capture
        .apply_port_change(PortChange::Unwatch(88))
        .expect("unwatch it over TCP");
    harness.expect("UDP kept", &frames::udp_v4(88, &[1; 10]), Outcome::Matched);
    harness.expect(
        "TCP gone",
        &frames::tcp_v4(88, &[1; 10]),
        Outcome::Unwatched,
    );
}

#[test]
fn a_full_ring_buffer_is_counted_never_silent() {
    let mut harness = Harness::new(CaptureConfig {
        ring_buffer_mib: 1,
        ..CaptureConfig::default()
    });
    let frame = frames::tcp_v4(445, &[10; 1460]);
    let runs = 2000;
    harness.capture.test_run(&frame, runs).expect("test run");
    let counters = harness.counters();
    let copied = counters.get(Counter::Copied);
    let full = counters.get(Counter::RingbufFull);
    assert_eq!(counters.get(Counter::Matched), u64::from(runs));
    assert_eq!(
        copied + full,
        u64::from(runs),
        "every matched frame is copied or counted"
    );
    assert!(full > 0, "2000 frames of 1514 bytes cannot fit 1 MiB");
    let drained = harness.ring.drain(|record| assert!(record.is_ok()));
    assert_eq!(drained, copied, "every copied frame reaches userspace");
}

/// A small deterministic generator, so a failure names a reproducible case.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// `frame` cut, flipped or re-tagged at random: what a hostile or broken network might send.
fn mutate(random: &mut XorShift, mut frame: Vec<u8>) -> Vec<u8> {
    for _ in 0..=random.below(3) {
        match random.below(4) {
            0 => {
                let keep = 14 + random.below(frame.len().saturating_sub(14).max(1));
                frame.truncate(keep);
            }
            1 | 2 => {
                // Headers live in the first 100 bytes; flip one of them.
                let at = random.below(frame.len().min(100));
                frame[at] ^= 1 << random.below(8);
            }
            _ => {
                let tag = [[0x81, 0x00], [0x88, 0xa8]][random.below(2)];
                frame.splice(12..12, [tag[0], tag[1], 0, 7]);
            }
        }
    }
    frame
}

/// What etherparse, an independent parser, makes of an IP frame.
struct EtherparseView {
    /// A TCP or UDP header with a watched source or destination port.
    watched: bool,
    fragmented: bool,
    /// Whole and well-formed, within the depth the XDP program follows (two VLAN tags, six IPv6
    /// extension headers).
    whole: bool,
}

/// `None` when etherparse does not see an IP packet at all.
fn etherparse_view(frame: &[u8]) -> Option<EtherparseView> {
    use etherparse::{LaxNetSlice, LaxSlicedPacket, TransportSlice};
    let packet = LaxSlicedPacket::from_ethernet(frame).ok()?;
    let (payload, extensions) = match &packet.net {
        Some(LaxNetSlice::Ipv4(ipv4)) => (ipv4.payload(), 0),
        Some(LaxNetSlice::Ipv6(ipv6)) => (
            ipv6.payload(),
            extension_count(ipv6.header().next_header().0, ipv6.extensions().slice()),
        ),
        _ => return None,
    };
    let watched = match &packet.transport {
        Some(TransportSlice::Tcp(tcp)) => [tcp.source_port(), tcp.destination_port()]
            .iter()
            .any(|&port| is_watched("tcp", port)),
        Some(TransportSlice::Udp(udp)) => [udp.source_port(), udp.destination_port()]
            .iter()
            .any(|&port| is_watched("udp", port)),
        _ => false,
    };
    // Lax parsing falls back to the frame's length when the IP header's is impossible; the XDP
    // program, rightly, calls such a packet malformed.
    let whole = packet.stop_err.is_none()
        && packet.link_exts.len() <= 2
        && extensions <= 6
        && !payload.incomplete
        && payload.len_source != etherparse::LenSource::Slice;
    Some(EtherparseView {
        watched,
        fragmented: payload.fragmented,
        whole,
    })
}

/// IPv6 extension headers in the bytes etherparse parsed as such (`chain`, whose first header is
/// of kind `first`), counted by walking their lengths: etherparse 0.21's own iterator builds
/// header slices unchecked and can read past a chain its lax parser cut short.
fn extension_count(first: u8, chain: &[u8]) -> usize {
    const FRAGMENT: u8 = 44;
    const AUTHENTICATION: u8 = 51;
    let (mut kind, mut at, mut count) = (first, 0, 0);
    while let Some(header) = chain.get(at..).filter(|rest| rest.len() >= 8) {
        let len = match kind {
            FRAGMENT => 8,
            AUTHENTICATION => (usize::from(header[1]) + 2) * 4,
            _ => (usize::from(header[1]) + 1) * 8,
        };
        count += 1;
        kind = header[0];
        at += len;
    }
    count
}

/// Whatever the XDP program matches, etherparse must see as IP on a watched port, or a fragment.
fn etherparse_agrees_it_is_watched(frame: &[u8]) -> bool {
    etherparse_view(frame).is_some_and(|view| view.fragmented || view.watched)
}

/// What the XDP program must not miss: a whole, unfragmented packet on a watched port.
fn etherparse_sees_clean_watched_packet(frame: &[u8]) -> bool {
    etherparse_view(frame).is_some_and(|view| view.whole && !view.fragmented && view.watched)
}

#[test]
fn mutated_frames_keep_the_counters_whole_and_agree_with_etherparse_both_ways() {
    let mut harness = Harness::mirror();
    let mut bases: Vec<Vec<u8>> = dcwatch_tests::traffic::mix()
        .into_iter()
        .map(|sample| sample.frame)
        .collect();
    bases.push(ipv6_frame(
        IPV6_HOP_BY_HOP,
        &ipv6_extension(PROTO_UDP, 1, &udp(50_000, 88, &[1; 40])),
    ));
    bases.push(ipv4_frame(
        Ipv4 {
            options_len: 8,
            ..Ipv4::new(CLIENT_V4, DC_V4, PROTO_TCP)
        },
        &tcp(50_000, 389, &[2; 40]),
    ));
    // Every tunnel type around some of them: the mutations then hit outer and tunnel headers.
    let tunnelled: Vec<Vec<u8>> = bases
        .iter()
        .step_by(3)
        .zip(Tunnel::ALL.into_iter().cycle())
        .map(|(inner, tunnel)| tunnel.wrap(inner))
        .collect();
    bases.extend(tunnelled);
    let decap = DecapConfig::default();
    let mut random = XorShift(0x005e_eddc_a7c4);
    let cases = 20_000;
    let (mut matched, mut decapsulated) = (0, 0);
    for case in 0..cases {
        let base = bases[random.below(bases.len())].clone();
        let frame = mutate(&mut random, base);
        let run = harness.run(&frame);
        let delta = |counter| run.delta(counter);
        assert_eq!(run.verdict, XDP_DROP, "case {case}: {frame:02x?}");
        assert_eq!(delta(Counter::Seen), 1, "case {case}");
        let outcomes = delta(Counter::Matched) + delta(Counter::NonIp) + delta(Counter::Malformed);
        assert!(outcomes <= 1, "case {case}: counted twice: {frame:02x?}");
        assert_eq!(
            delta(Counter::Matched),
            delta(Counter::Copied),
            "case {case}"
        );
        // The replay's decapsulation, an independent implementation of the same rule, says
        // which frame the program must have judged.
        let (judged, tunnel) = match decapsulate(&decap, &frame) {
            Decapsulated::Plain => (frame.as_slice(), None),
            Decapsulated::Inner(counter, inner) => (inner, Some(counter)),
            Decapsulated::Malformed => {
                assert_eq!(delta(Counter::Malformed), 1, "case {case}: {frame:02x?}");
                (&[][..], None)
            }
        };
        for counter in DECAP_COUNTERS {
            assert_eq!(
                delta(counter),
                u64::from(tunnel == Some(counter)),
                "case {case}: {}: {frame:02x?}",
                counter.name()
            );
        }
        decapsulated += usize::from(tunnel.is_some());
        if delta(Counter::Matched) == 1 {
            matched += 1;
            assert_eq!(
                run.records,
                [(judged.len() as u32, judged.to_vec())],
                "case {case}: ring contents"
            );
            assert!(
                etherparse_agrees_it_is_watched(judged),
                "case {case}: XDP matched what etherparse does not see as watched: {frame:02x?}"
            );
        } else {
            assert!(
                run.records.is_empty(),
                "case {case}: copied without a match"
            );
            assert!(
                !etherparse_sees_clean_watched_packet(judged),
                "case {case}: XDP missed a clean packet on a watched port: {frame:02x?}"
            );
        }
    }
    // The mutations must leave enough frames intact for the agreement check to mean something.
    assert!(
        matched > cases / 10,
        "only {matched} of {cases} mutated frames matched"
    );
    assert!(
        decapsulated > cases / 20,
        "only {decapsulated} of {cases} mutated frames were tunnels taken apart"
    );
}

const OTHER_HOST_V4: Ipv4Addr = Ipv4Addr::new(10, 99, 1, 3);

/// Runs `frame` and returns the port its record names when the DCE-RPC header test matched it.
/// Every other counter is checked to move as a match (or nothing) must move it.
fn rpc_header_run(harness: &mut Harness, what: &str, frame: &[u8]) -> Option<u16> {
    let run = harness.run(frame);
    let matched = run.delta(Counter::Matched);
    assert_eq!(
        run.delta(Counter::RpcHeader),
        matched,
        "{what}: rpc_header_matched"
    );
    assert_eq!(run.delta(Counter::Copied), matched, "{what}: copied");
    assert_eq!(run.delta(Counter::Malformed), 0, "{what}: malformed");
    assert_eq!(run.records.len() as u64, matched, "{what}: records");
    if matched == 1 {
        assert_eq!(run.records[0].1, frame, "{what}: ring contents");
    }
    run.rpc_ports.first().copied().flatten()
}

fn dc_harness() -> Harness {
    Harness::new(CaptureConfig {
        ring_buffer_mib: 4,
        dc_addresses: vec![IpAddr::V4(DC_V4), IpAddr::V6(DC_V6)],
        ..CaptureConfig::default()
    })
}

#[test]
fn dce_rpc_headers_on_a_dcs_dynamic_port_are_copied_with_the_port() {
    let mut harness = dc_harness();
    let to_dc = |payload: &str| {
        ipv4_frame(
            Ipv4::new(CLIENT_V4, DC_V4, PROTO_TCP),
            &tcp(33_952, DRSUAPI_PORT, &hex(payload)),
        )
    };
    for (what, payload) in [("bind", DCSYNC_BIND), ("request", DCSYNC_REQUEST)] {
        assert_eq!(
            rpc_header_run(&mut harness, what, &to_dc(payload)),
            Some(DRSUAPI_PORT),
            "{what}"
        );
    }
    let response = ipv4_frame(
        Ipv4::new(DC_V4, CLIENT_V4, PROTO_TCP),
        &tcp(DRSUAPI_PORT, 33_952, &hex(DCSYNC_RESPONSE)),
    );
    assert_eq!(
        rpc_header_run(&mut harness, "response", &response),
        Some(DRSUAPI_PORT)
    );
    // The same bind under an 802.1Q tag, and over IPv6 to the DC's IPv6 address.
    let tagged = frames::ethernet(
        &[TPID_8021Q],
        ETHERTYPE_IPV4,
        &Ipv4::new(CLIENT_V4, DC_V4, PROTO_TCP).packet(&tcp(
            33_952,
            DRSUAPI_PORT,
            &hex(DCSYNC_BIND),
        )),
    );
    assert_eq!(
        rpc_header_run(&mut harness, "802.1Q bind", &tagged),
        Some(DRSUAPI_PORT)
    );
    let v6 = ipv6_frame(PROTO_TCP, &tcp(33_952, DRSUAPI_PORT, &hex(DCSYNC_BIND)));
    assert_eq!(
        rpc_header_run(&mut harness, "IPv6 bind", &v6),
        Some(DRSUAPI_PORT)
    );
    // Big-endian integers (drep 0x00): frag_length 0x0070 read the other way round.
    let mut big_endian = hex(DCSYNC_BIND);
    big_endian[4] = 0x00;
    big_endian[8..10].copy_from_slice(&112_u16.to_be_bytes());
    big_endian[10..12].copy_from_slice(&32_u16.to_be_bytes());
    let big_endian = ipv4_frame(
        Ipv4::new(CLIENT_V4, DC_V4, PROTO_TCP),
        &tcp(33_952, DRSUAPI_PORT, &big_endian),
    );
    assert_eq!(
        rpc_header_run(&mut harness, "big-endian bind", &big_endian),
        Some(DRSUAPI_PORT)
    );
}

#[test]
fn what_is_not_dce_rpc_to_a_dcs_dynamic_port_is_not_copied() {
    let mut harness = dc_harness();
    let to_dc = |port: u16, payload: &[u8]| {
        ipv4_frame(
            Ipv4::new(CLIENT_V4, DC_V4, PROTO_TCP),
            &tcp(33_952, port, payload),
        )
    };
    let bind = hex(DCSYNC_BIND);
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "HTTP to a DC's high port",
            to_dc(DRSUAPI_PORT, b"GET / HTTP/1.1\r\nHost: dc\r\n\r\n"),
        ),
        (
            "an RPC bind to a DC's port below 49152",
            to_dc(49_151, &bind),
        ),
        ("a header cut short", to_dc(DRSUAPI_PORT, &bind[..15])),
        ("no payload", to_dc(DRSUAPI_PORT, &[])),
        (
            "an RPC bind to another host's high port",
            ipv4_frame(
                Ipv4::new(CLIENT_V4, OTHER_HOST_V4, PROTO_TCP),
                &tcp(33_952, DRSUAPI_PORT, &bind),
            ),
        ),
        (
            // The DC is the client here: the server, on 49153, is not a DC.
            "a DC's request to another host's high port",
            ipv4_frame(
                Ipv4::new(DC_V4, CLIENT_V4, PROTO_TCP),
                &tcp(50_000, DRSUAPI_PORT, &hex(DCSYNC_REQUEST)),
            ),
        ),
        (
            "IPv6 non-RPC to a DC's high port",
            ipv6_frame(
                PROTO_TCP,
                &tcp(
                    33_952,
                    DRSUAPI_PORT,
                    &[0x16, 3, 1, 0, 0x50, 1, 0, 0, 0x4c, 3, 3, 0, 0, 0, 0, 0],
                ),
            ),
        ),
    ];
    // One field at a time outside what a PDU header may hold.
    for (what, at, value) in [
        ("version 4", 0, 4),
        ("minor version 1", 1, 1),
        ("PTYPE 20", 2, 20),
        ("PTYPE 1 (connectionless ping)", 2, 1),
        ("flag 0x08", 3, 0x0b),
        ("EBCDIC drep", 4, 0x11),
        ("drep byte 2", 6, 1),
        ("frag_length 15", 8, 15),
    ] {
        let mut payload = bind.clone();
        payload[at] = value;
        if at == 8 {
            payload[9] = 0;
        }
        cases.push((what, to_dc(DRSUAPI_PORT, &payload)));
    }
    let mut too_long = bind.clone();
    too_long[8..10].copy_from_slice(&5841_u16.to_le_bytes());
    cases.push(("frag_length 5841", to_dc(DRSUAPI_PORT, &too_long)));
    let mut auth_too_long = bind.clone();
    auth_too_long[10..12].copy_from_slice(&100_u16.to_le_bytes());
    cases.push((
        "auth_length past frag_length",
        to_dc(DRSUAPI_PORT, &auth_too_long),
    ));
    // UDP carries no connection-oriented PDU.
    cases.push((
        "UDP",
        ipv4_frame(
            Ipv4::new(CLIENT_V4, DC_V4, PROTO_UDP),
            &udp(33_952, DRSUAPI_PORT, &bind),
        ),
    ));
    for (what, frame) in cases {
        assert_eq!(rpc_header_run(&mut harness, what, &frame), None, "{what}");
    }
}

/// Without DC addresses no host is known to be a DC, and any server may be one: the header test
/// runs on every server's dynamic port, so a client that connected to a port the endpoint mapper
/// announced before the sensor opened it is still caught by its bind.
#[test]
fn without_dc_addresses_any_servers_dynamic_port_is_tested() {
    let mut harness = Harness::mirror();
    let between = |src: Ipv4Addr, dst: Ipv4Addr, ports: (u16, u16), payload: &[u8]| {
        ipv4_frame(
            Ipv4::new(src, dst, PROTO_TCP),
            &tcp(ports.0, ports.1, payload),
        )
    };
    let bind = hex(DCSYNC_BIND);
    for (what, frame) in [
        (
            "bind to a DC's high port",
            between(CLIENT_V4, DC_V4, (33_952, DRSUAPI_PORT), &bind),
        ),
        (
            "bind to another host's high port",
            between(CLIENT_V4, OTHER_HOST_V4, (33_952, DRSUAPI_PORT), &bind),
        ),
        (
            "response from the server's high port",
            between(
                OTHER_HOST_V4,
                CLIENT_V4,
                (DRSUAPI_PORT, 33_952),
                &hex(DCSYNC_RESPONSE),
            ),
        ),
    ] {
        assert_eq!(
            rpc_header_run(&mut harness, what, &frame),
            Some(DRSUAPI_PORT),
            "{what}"
        );
    }
    // The server's side decides, not whichever port is high: a bind from a high client port to
    // a low one, and an answer from a low port to a high client port, are not tested.
    for (what, frame) in [
        (
            "bind from a high port to a low one",
            between(CLIENT_V4, DC_V4, (50_000, 49_151), &bind),
        ),
        (
            "response from a low port to a high one",
            between(DC_V4, CLIENT_V4, (49_151, 50_000), &hex(DCSYNC_RESPONSE)),
        ),
        (
            "HTTP to a high port",
            between(
                CLIENT_V4,
                DC_V4,
                (33_952, DRSUAPI_PORT),
                b"GET / HTTP/1.1\r\n\r\n",
            ),
        ),
    ] {
        assert_eq!(rpc_header_run(&mut harness, what, &frame), None, "{what}");
    }
}

#[test]
fn a_watched_port_matches_as_watched_not_by_its_header() {
    let mut harness = dc_harness();
    harness
        .capture
        .apply_port_change(PortChange::Watch(DRSUAPI_PORT))
        .expect("watch");
    let frame = ipv4_frame(
        Ipv4::new(CLIENT_V4, DC_V4, PROTO_TCP),
        &tcp(33_952, DRSUAPI_PORT, &hex(DCSYNC_BIND)),
    );
    let run = harness.run(&frame);
    assert_eq!(run.delta(Counter::Matched), 1);
    assert_eq!(run.delta(Counter::RpcHeader), 0);
    assert_eq!(run.rpc_ports, [None]);
}

/// The `decap_*` counter of each tunnel type, in `Tunnel::ALL`'s order.
const DECAP_COUNTERS: [Counter; 6] = [
    Counter::DecapErspan1,
    Counter::DecapErspan2,
    Counter::DecapErspan3,
    Counter::DecapGreEthernet,
    Counter::DecapVxlan,
    Counter::DecapGeneve,
];

/// Runs a tunnelled frame and checks it exactly: the verdict, one count of `tunnel` (or none),
/// the inner frame's outcome, and the inner frame (only) in the ring buffer.
fn expect_tunnelled(
    harness: &mut Harness,
    what: &str,
    frame: &[u8],
    tunnel: Option<Counter>,
    inner: &[u8],
    outcome: Outcome,
) {
    let run = harness.run(frame);
    assert_eq!(run.verdict, harness.verdict, "{what}: verdict");
    assert_eq!(run.delta(Counter::Seen), 1, "{what}: seen");
    assert_eq!(
        run.delta(Counter::Bytes),
        frame.len() as u64,
        "{what}: bytes"
    );
    for counter in DECAP_COUNTERS {
        assert_eq!(
            run.delta(counter),
            u64::from(tunnel == Some(counter)),
            "{what}: {}",
            counter.name()
        );
    }
    let one_if = |wanted| u64::from(outcome == wanted);
    for (counter, wanted) in [
        (Counter::Matched, Outcome::Matched),
        (Counter::Copied, Outcome::Matched),
        (Counter::NonIp, Outcome::NonIp),
        (Counter::Malformed, Outcome::Malformed),
    ] {
        assert_eq!(
            run.delta(counter),
            one_if(wanted),
            "{what}: {}",
            counter.name()
        );
    }
    assert_eq!(run.delta(Counter::RingbufFull), 0, "{what}: ringbuf_full");
    if outcome == Outcome::Matched {
        let captured = &inner[..inner.len().min(harness.snap_len)];
        assert_eq!(
            run.records,
            [(inner.len() as u32, captured.to_vec())],
            "{what}: the inner frame alone is copied"
        );
    } else {
        assert!(
            run.records.is_empty(),
            "{what}: {} records",
            run.records.len()
        );
    }
}

#[test]
fn every_tunnel_type_is_taken_apart_and_its_inner_frame_judged_and_copied() {
    let mut harness = Harness::mirror();
    let kerberos = frames::udp_v4(88, &[1; 40]);
    let tagged_ldap = frames::ethernet(
        &[TPID_8021Q],
        ETHERTYPE_IPV6,
        &ipv6(CLIENT_V6, DC_V6, PROTO_TCP, &tcp(50_000, 389, &[2; 30])),
    );
    let web = frames::tcp_v4(80, &[3; 20]);
    let arp = frames::ethernet(&[], ETHERTYPE_ARP, &[0; 28]);
    for (tunnel, counter) in Tunnel::ALL.into_iter().zip(DECAP_COUNTERS) {
        let what = format!("{tunnel:?}");
        for (inner, outcome) in [
            (&kerberos, Outcome::Matched),
            (&tagged_ldap, Outcome::Matched),
            (&web, Outcome::Unwatched),
            (&arp, Outcome::NonIp),
        ] {
            expect_tunnelled(
                &mut harness,
                &format!("{what} around {outcome:?}"),
                &tunnel.wrap(inner),
                Some(counter),
                inner,
                outcome,
            );
        }
    }
    // ERSPAN III without its platform subheader, Geneve without options.
    for (tunnel, counter) in [
        (Tunnel::ErspanIII { platform: false }, Counter::DecapErspan3),
        (Tunnel::Geneve { option_words: 0 }, Counter::DecapGeneve),
    ] {
        expect_tunnelled(
            &mut harness,
            &format!("{tunnel:?}"),
            &tunnel.wrap(&kerberos),
            Some(counter),
            &kerberos,
            Outcome::Matched,
        );
    }
}

#[test]
fn tunnels_cut_short_or_of_the_wrong_version_are_malformed() {
    let mut harness = Harness::mirror();
    let kerberos = frames::udp_v4(88, &[1; 40]);
    for (tunnel, counter) in Tunnel::ALL.into_iter().zip(DECAP_COUNTERS) {
        let whole = tunnel.wrap(&kerberos);
        let outer = whole.len() - kerberos.len();
        // Cut inside the tunnel's own headers (options and subheaders included): the outer frame
        // is malformed, and no tunnel is counted.
        expect_tunnelled(
            &mut harness,
            &format!("{tunnel:?} cut in its header"),
            &whole[..outer - 3],
            None,
            &[],
            Outcome::Malformed,
        );
        // Cut inside the inner IP header: a tunnel whose inner frame is malformed.
        expect_tunnelled(
            &mut harness,
            &format!("{tunnel:?} cut in the inner IP header"),
            &whole[..outer + 14 + 10],
            Some(counter),
            &[],
            Outcome::Malformed,
        );
    }
    let mut no_vni = Tunnel::Vxlan { port: 4789 }.wrap(&kerberos);
    no_vni[14 + 20 + 8] = 0;
    expect_tunnelled(
        &mut harness,
        "VXLAN without its I flag",
        &no_vni,
        None,
        &[],
        Outcome::Malformed,
    );
    let mut erspan = Tunnel::ErspanII.wrap(&kerberos);
    erspan[14 + 20 + 8] = 0x20;
    expect_tunnelled(
        &mut harness,
        "ERSPAN II of version 2",
        &erspan,
        None,
        &[],
        Outcome::Malformed,
    );
    let mut geneve = Tunnel::Geneve { option_words: 0 }.wrap(&kerberos);
    geneve[14 + 20 + 8] = 0x40;
    expect_tunnelled(
        &mut harness,
        "Geneve version 1",
        &geneve,
        None,
        &[],
        Outcome::Malformed,
    );
}

#[test]
fn one_tunnel_level_is_taken_apart_and_other_gre_and_udp_are_plain() {
    let mut harness = Harness::mirror();
    let kerberos = frames::udp_v4(88, &[1; 40]);
    // VXLAN in ERSPAN: the outer level is counted; the inner frame, itself a tunnel, is UDP to
    // 4789, which is not watched.
    let vxlan = Tunnel::Vxlan { port: 4789 }.wrap(&kerberos);
    expect_tunnelled(
        &mut harness,
        "VXLAN inside ERSPAN II",
        &Tunnel::ErspanII.wrap(&vxlan),
        Some(Counter::DecapErspan2),
        &vxlan,
        Outcome::Unwatched,
    );
    // GRE carrying IPv4 (not Ethernet), and a fragment of a VXLAN packet: not taken apart.
    let gre_ip = frames::ethernet(
        &[],
        ETHERTYPE_IPV4,
        &Ipv4::new(frames::SWITCH_V4, frames::SENSOR_V4, frames::PROTO_GRE)
            .packet(&[0, 0, 0x08, 0x00, 0x45, 0, 0, 20]),
    );
    expect_tunnelled(
        &mut harness,
        "GRE carrying IPv4",
        &gre_ip,
        None,
        &[],
        Outcome::Unwatched,
    );
    let (_, headers) = Tunnel::Vxlan { port: 4789 }.headers();
    let fragment = ipv4_frame(
        Ipv4 {
            more_fragments: true,
            ..Ipv4::new(frames::SWITCH_V4, frames::SENSOR_V4, PROTO_UDP)
        },
        &[headers.as_slice(), kerberos.as_slice()].concat(),
    );
    expect_tunnelled(
        &mut harness,
        "first fragment of a VXLAN packet",
        &fragment,
        None,
        &[],
        Outcome::Unwatched,
    );
}

#[test]
fn decapsulation_follows_the_configuration() {
    let kerberos = frames::udp_v4(88, &[1; 40]);
    let linux_vxlan = Tunnel::Vxlan { port: 8472 }.wrap(&kerberos);
    let mut default = Harness::mirror();
    expect_tunnelled(
        &mut default,
        "VXLAN on 8472, default port",
        &linux_vxlan,
        None,
        &[],
        Outcome::Unwatched,
    );
    let mut on_8472 = Harness::new(CaptureConfig {
        ring_buffer_mib: 1,
        vxlan_port: 8472,
        ..CaptureConfig::default()
    });
    expect_tunnelled(
        &mut on_8472,
        "VXLAN on 8472, configured",
        &linux_vxlan,
        Some(Counter::DecapVxlan),
        &kerberos,
        Outcome::Matched,
    );
    let mut off = Harness::new(CaptureConfig {
        ring_buffer_mib: 1,
        decap: DecapMode::Off,
        ..CaptureConfig::default()
    });
    for tunnel in Tunnel::ALL {
        expect_tunnelled(
            &mut off,
            &format!("{tunnel:?}, decap off"),
            &tunnel.wrap(&kerberos),
            None,
            &[],
            Outcome::Unwatched,
        );
    }
    // The snap length applies to the inner frame, whose own length the record carries.
    let mut short_snap = Harness::new(CaptureConfig {
        ring_buffer_mib: 1,
        snap_len: 64,
        ..CaptureConfig::default()
    });
    let long = frames::udp_v4(88, &[5; 200]);
    let run = short_snap.run(&Tunnel::ErspanIII { platform: true }.wrap(&long));
    assert_eq!(run.records, [(long.len() as u32, long[..64].to_vec())]);
    assert_eq!(run.delta(Counter::Truncated), 1);
}
