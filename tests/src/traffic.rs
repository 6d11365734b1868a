//! A known mix of frames, and what a correct sensor must make of each: the ground truth of the
//! veth tests and the traffic of the demo.

use std::io;

use crate::frames::{
    self, CLIENT_V4, DC_V4, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, Ipv4, PROTO_ICMP,
    PROTO_TCP, TPID_8021AD, TPID_8021Q,
};
use crate::{netns::NetNs, sender::send_frames};

/// What the XDP program must decide about a frame (with the default configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Matched and copied; the protocol the sensor should guess from the port.
    Matched(&'static str),
    /// IP, on no watched port.
    Unwatched,
    NonIp,
    Malformed,
}

#[derive(Clone, Debug)]
pub struct Sample {
    pub what: &'static str,
    pub frame: Vec<u8>,
    pub expect: Expect,
}

/// The default watch list as (transport, port, protocol), written down independently of the
/// sensor's own table so a test can catch either drifting.
pub const WATCHED: &[(&str, u16, &str)] = &[
    ("udp", 88, "kerberos"),
    ("tcp", 88, "kerberos"),
    ("udp", 464, "kpasswd"),
    ("tcp", 464, "kpasswd"),
    ("tcp", 389, "ldap"),
    ("udp", 389, "cldap"),
    ("tcp", 3268, "ldap-gc"),
    ("udp", 53, "dns"),
    ("tcp", 53, "dns"),
    ("tcp", 445, "smb"),
    ("udp", 137, "netbios-ns"),
    ("tcp", 139, "netbios-ssn"),
    ("tcp", 135, "dcerpc-epm"),
    ("tcp", 3389, "rdp"),
    ("udp", 1812, "radius"),
    ("udp", 1813, "radius-acct"),
    ("udp", 514, "syslog"),
    ("tcp", 514, "syslog"),
    ("udp", 123, "ntp"),
    ("tcp", 636, "ldaps"),
    ("tcp", 3269, "ldaps-gc"),
    ("tcp", 9389, "adws"),
];

/// Every watched service once over IPv4 (and a few over IPv6 and VLANs), plus frames that must
/// not match: other ports, ICMP, ARP, and a frame cut short inside its IPv4 header.
pub fn mix() -> Vec<Sample> {
    let payload = [0x5a_u8; 48];
    let mut samples: Vec<Sample> = WATCHED
        .iter()
        .map(|&(transport, port, protocol)| Sample {
            what: protocol,
            frame: if transport == "tcp" {
                frames::tcp_v4(port, &payload)
            } else {
                frames::udp_v4(port, &payload)
            },
            expect: Expect::Matched(protocol),
        })
        .collect();
    let ip_over_vlans = |tags: &[u16]| {
        let ip = Ipv4::new(CLIENT_V4, DC_V4, PROTO_TCP).packet(&frames::tcp(50_001, 389, &payload));
        frames::ethernet(tags, ETHERTYPE_IPV4, &ip)
    };
    let icmp = Ipv4::new(CLIENT_V4, DC_V4, PROTO_ICMP).packet(&[8, 0, 0, 0, 0, 1, 0, 1]);
    let cut_short = Ipv4::new(CLIENT_V4, DC_V4, PROTO_TCP).packet(&[])[..12].to_vec();
    samples.extend([
        Sample {
            what: "kerberos over IPv6",
            frame: frames::udp_v6(88, &payload),
            expect: Expect::Matched("kerberos"),
        },
        Sample {
            what: "smb over IPv6",
            frame: frames::tcp_v6(445, &payload),
            expect: Expect::Matched("smb"),
        },
        Sample {
            what: "ldap in 802.1Q",
            frame: ip_over_vlans(&[TPID_8021Q]),
            expect: Expect::Matched("ldap"),
        },
        Sample {
            what: "ldap in QinQ",
            frame: ip_over_vlans(&[TPID_8021AD, TPID_8021Q]),
            expect: Expect::Matched("ldap"),
        },
        Sample {
            what: "http",
            frame: frames::tcp_v4(80, &payload),
            expect: Expect::Unwatched,
        },
        Sample {
            what: "udp 5000 over IPv6",
            frame: frames::udp_v6(5000, &payload),
            expect: Expect::Unwatched,
        },
        Sample {
            what: "kerberos port over the wrong transport (tcp 123)",
            frame: frames::tcp_v4(123, &payload),
            expect: Expect::Unwatched,
        },
        Sample {
            what: "icmp echo",
            frame: frames::ethernet(&[], ETHERTYPE_IPV4, &icmp),
            expect: Expect::Unwatched,
        },
        Sample {
            what: "arp",
            frame: frames::ethernet(&[], ETHERTYPE_ARP, &[0; 28]),
            expect: Expect::NonIp,
        },
        Sample {
            what: "ipv4 header cut short",
            frame: frames::ethernet(&[], ETHERTYPE_IPV4, &cut_short),
            expect: Expect::Malformed,
        },
        Sample {
            what: "ipv6 header cut short",
            frame: frames::ethernet(&[], ETHERTYPE_IPV6, &[0x60, 0, 0, 0]),
            expect: Expect::Malformed,
        },
    ]);
    samples
}

/// Counters a correct XDP program shows after seeing `samples` `rounds` times.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expected {
    pub seen: u64,
    pub bytes: u64,
    pub matched: u64,
    pub non_ip: u64,
    pub malformed: u64,
}

pub fn expected(samples: &[Sample], rounds: u64) -> Expected {
    let mut expected = Expected::default();
    for sample in samples {
        expected.seen += rounds;
        expected.bytes += rounds * sample.frame.len() as u64;
        match sample.expect {
            Expect::Matched(_) => expected.matched += rounds,
            Expect::NonIp => expected.non_ip += rounds,
            Expect::Malformed => expected.malformed += rounds,
            Expect::Unwatched => {}
        }
    }
    expected
}

/// Sends every sample `rounds` times, in order, out of `interface` in `namespace`.
pub fn send(namespace: &NetNs, interface: &str, samples: &[Sample], rounds: u64) -> io::Result<()> {
    let rounds = (0..rounds).flat_map(|_| samples.iter().map(|sample| sample.frame.as_slice()));
    send_frames(namespace, interface, rounds)
}
