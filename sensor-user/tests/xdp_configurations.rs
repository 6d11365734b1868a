//! Every load-time setting of the XDP program through the kernel's verifier: the program is
//! loaded for each combination of the settings the loader sets in it (mode, DC filter,
//! decapsulation, snap length at its bounds and default, VXLAN port), attached to a veth in its
//! own namespace (natively and generically in turn), and run once (`BPF_PROG_TEST_RUN`) on a
//! frame of each path that copies: IPv4 and IPv6, plain and in VXLAN, by watched port and by
//! DCE-RPC header.
//! The verifier judges each configuration apart (the settings are constants it prunes by), so a
//! program it accepts in one may be refused in another. Needs root; takes seconds.

use std::net::IpAddr;

use dcwatch_pipeline::decap::DecapMode;
use dcwatch_tests::{
    fixture::{DCSYNC_BIND, DRSUAPI_PORT, hex},
    frames::{
        self, CLIENT_V4, CLIENT_V6, DC_V4, DC_V6, ETHERTYPE_IPV4, ETHERTYPE_IPV6, Ipv4, PROTO_TCP,
        PROTO_UDP, Tunnel,
    },
    netns::{NetNs, VethPair},
};
use sensor_common::{Counter, DEFAULT_SNAP_LEN, MAX_SNAP_LEN};
use sensor_user::{
    capture::{Capture, FrameRing},
    config::{Attach, CaptureConfig, Mode},
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
/// The smallest snap length the configuration takes (`capture.snap_len`).
const MIN_SNAP_LEN: u32 = 64;
/// Linux's own VXLAN port, the other one a mirror may use.
const VXLAN_LINUX_PORT: u16 = 8472;

/// A frame to run, and what must come of it under a configuration.
struct Case {
    what: &'static str,
    frame: Vec<u8>,
    /// What is copied when it matches: the frame itself, or its inner frame.
    copied: Vec<u8>,
    /// Matched only through the DCE-RPC header test.
    by_rpc_header: bool,
    /// Matched only when tunnels are taken apart.
    tunnelled: bool,
}

fn cases(vxlan_port: u16) -> Vec<Case> {
    let kerberos_v4 = frames::ethernet(
        &[],
        ETHERTYPE_IPV4,
        &Ipv4::new(CLIENT_V4, DC_V4, PROTO_UDP).packet(&frames::udp(40_000, 88, &[1; 40])),
    );
    let ldap_v6 = frames::ethernet(
        &[],
        ETHERTYPE_IPV6,
        &frames::ipv6(
            CLIENT_V6,
            DC_V6,
            PROTO_TCP,
            &frames::tcp(40_000, 389, &[2; 40]),
        ),
    );
    let bind = frames::tcp(33_952, DRSUAPI_PORT, &hex(DCSYNC_BIND));
    let bind_v4 = frames::ethernet(
        &[],
        ETHERTYPE_IPV4,
        &Ipv4::new(CLIENT_V4, DC_V4, PROTO_TCP).packet(&bind),
    );
    let bind_v6 = frames::ethernet(
        &[],
        ETHERTYPE_IPV6,
        &frames::ipv6(CLIENT_V6, DC_V6, PROTO_TCP, &bind),
    );
    let plain = |what, frame: Vec<u8>, by_rpc_header| Case {
        what,
        copied: frame.clone(),
        frame,
        by_rpc_header,
        tunnelled: false,
    };
    let vxlan = |what, inner: &Vec<u8>, by_rpc_header| Case {
        what,
        frame: Tunnel::Vxlan { port: vxlan_port }.wrap(inner),
        copied: inner.clone(),
        by_rpc_header,
        tunnelled: true,
    };
    vec![
        vxlan("Kerberos over IPv4 in VXLAN", &kerberos_v4, false),
        vxlan("LDAP over IPv6 in VXLAN", &ldap_v6, false),
        vxlan("DCE-RPC bind over IPv6 in VXLAN", &bind_v6, true),
        plain("Kerberos over IPv4", kerberos_v4, false),
        plain("LDAP over IPv6", ldap_v6, false),
        plain("DCE-RPC bind over IPv4", bind_v4, true),
        plain("DCE-RPC bind over IPv6", bind_v6, true),
    ]
}

/// Loads and attaches the program with `config`, then checks each case: its verdict, whether it
/// was copied, and with which DCE-RPC port.
fn check(config: &CaptureConfig, attach: Attach, namespace: &NetNs, interface: &str) {
    let name = format!(
        "{:?} attached {attach:?}, dc filter {}, decap {:?}, snap {}, vxlan {}",
        config.mode,
        !config.dc_addresses.is_empty(),
        config.decap,
        config.snap_len,
        config.vxlan_port,
    );
    let mut capture = Capture::load(config)
        .unwrap_or_else(|error| panic!("{name}: the verifier refused the program: {error}"));
    namespace
        .run(|| {
            capture
                .attach(interface, attach)
                .map(|_| ())
                .map_err(std::io::Error::other)
        })
        .unwrap_or_else(|error| panic!("{name}: attach: {error}"));
    let mut ring: FrameRing = capture.take_frames().expect("ring buffer");
    let verdict = if config.mode == Mode::Host {
        XDP_PASS
    } else {
        XDP_DROP
    };
    for case in cases(config.vxlan_port) {
        let what = format!("{name}: {}", case.what);
        // The header test runs with the DC filter on and off (off, any server may be a DC).
        let matches = !case.tunnelled || config.decap == DecapMode::Auto;
        let before = capture.counters().expect("counters");
        let run = capture.test_run(&case.frame, 1).expect("test run");
        let after = capture.counters().expect("counters");
        assert_eq!(run.return_value, verdict, "{what}: verdict");
        let delta = |counter| after.get(counter) - before.get(counter);
        assert_eq!(delta(Counter::Copied), u64::from(matches), "{what}: copied");
        assert_eq!(
            delta(Counter::RpcHeader),
            u64::from(matches && case.by_rpc_header),
            "{what}: rpc_header_matched"
        );
        assert_eq!(delta(Counter::Malformed), 0, "{what}: malformed");
        let mut records = Vec::new();
        ring.drain(|record| {
            let frame = record.expect("whole record");
            records.push((frame.data.to_vec(), frame.rpc_port));
        });
        let expected = if matches {
            let snapped = case.copied.len().min(config.snap_len as usize);
            let port = case.by_rpc_header.then_some(DRSUAPI_PORT);
            vec![(case.copied[..snapped].to_vec(), port)]
        } else {
            Vec::new()
        };
        assert_eq!(records, expected, "{what}: ring buffer");
    }
}

/// Every configuration the loader can make of the program: each combination of the settings it
/// sets in it, the attach mode alternating.
fn configurations() -> Vec<(CaptureConfig, Attach)> {
    let mut all = Vec::new();
    for mode in [Mode::Mirror, Mode::Host] {
        for dc_addresses in [Vec::new(), vec![IpAddr::V4(DC_V4), IpAddr::V6(DC_V6)]] {
            for decap in [DecapMode::Auto, DecapMode::Off] {
                for snap_len in [MIN_SNAP_LEN, DEFAULT_SNAP_LEN, MAX_SNAP_LEN] {
                    for vxlan_port in [4789, VXLAN_LINUX_PORT] {
                        let config = CaptureConfig {
                            mode,
                            snap_len,
                            vxlan_port,
                            ring_buffer_mib: 1,
                            dc_addresses: dc_addresses.clone(),
                            decap,
                            ..CaptureConfig::default()
                        };
                        all.push((config, [Attach::Native, Attach::Generic][all.len() % 2]));
                    }
                }
            }
        }
    }
    all
}

#[test]
fn every_load_time_setting_passes_the_verifier_and_copies_on_every_path() {
    let configurations = configurations();
    assert_eq!(configurations.len(), 2 * 2 * 2 * 3 * 2);
    let namespace = NetNs::create("dcwxc").expect("namespace");
    let veth = VethPair::create(&namespace, &namespace).expect("veth pair");
    for (config, attach) in &configurations {
        check(config, *attach, &namespace, &veth.receiver);
    }
}
