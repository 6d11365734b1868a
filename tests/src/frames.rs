//! Frames assembled byte by byte, so tests can make exactly the packet they mean, malformed ones
//! included. Checksums are left zero: nothing here is meant for a socket.

use std::net::{Ipv4Addr, Ipv6Addr};

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const TPID_8021Q: u16 = 0x8100;
pub const TPID_8021AD: u16 = 0x88a8;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMP: u8 = 1;
pub const IPV6_HOP_BY_HOP: u8 = 0;
pub const IPV6_ROUTING: u8 = 43;
pub const IPV6_FRAGMENT: u8 = 44;
pub const IPV6_DESTINATION: u8 = 60;

const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

/// An Ethernet frame: `tags` are VLAN tag protocol identifiers, outermost first, each followed by
/// a TCI of VLAN 100 + its position.
pub fn ethernet(tags: &[u16], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(14 + 4 * tags.len() + payload.len());
    frame.extend_from_slice(&DST_MAC);
    frame.extend_from_slice(&SRC_MAC);
    for (position, tpid) in (0_u16..).zip(tags) {
        frame.extend_from_slice(&tpid.to_be_bytes());
        frame.extend_from_slice(&(100 + position).to_be_bytes());
    }
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// IPv4 fields a test may want to bend.
#[derive(Clone, Copy, Debug)]
pub struct Ipv4 {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    /// Bytes of options (a multiple of 4, at most 40).
    pub options_len: usize,
    pub more_fragments: bool,
    /// In 8-byte units.
    pub fragment_offset: u16,
}

impl Ipv4 {
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8) -> Self {
        Self {
            src,
            dst,
            protocol,
            options_len: 0,
            more_fragments: false,
            fragment_offset: 0,
        }
    }

    pub fn packet(&self, payload: &[u8]) -> Vec<u8> {
        let header_len = 20 + self.options_len;
        let total_len = u16::try_from(header_len + payload.len()).unwrap_or(u16::MAX);
        let mut packet = Vec::with_capacity(header_len + payload.len());
        packet.push(0x40 | u8::try_from(header_len / 4).unwrap_or(0x0f));
        packet.push(0);
        packet.extend_from_slice(&total_len.to_be_bytes());
        packet.extend_from_slice(&0x1234_u16.to_be_bytes());
        let flags = if self.more_fragments { 0x2000 } else { 0 };
        packet.extend_from_slice(&(flags | self.fragment_offset).to_be_bytes());
        packet.extend_from_slice(&[64, self.protocol, 0, 0]);
        packet.extend_from_slice(&self.src.octets());
        packet.extend_from_slice(&self.dst.octets());
        // Options: NOPs (type 1).
        packet.resize(header_len, 1);
        packet.extend_from_slice(payload);
        packet
    }
}

/// An IPv6 packet whose payload starts with the header named by `next_header`.
pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, payload: &[u8]) -> Vec<u8> {
    let mut packet = Vec::with_capacity(40 + payload.len());
    packet.extend_from_slice(&[0x60, 0, 0, 0]);
    packet.extend_from_slice(
        &u16::try_from(payload.len())
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    packet.extend_from_slice(&[next_header, 64]);
    packet.extend_from_slice(&src.octets());
    packet.extend_from_slice(&dst.octets());
    packet.extend_from_slice(payload);
    packet
}

/// An IPv6 extension header (hop-by-hop, routing or destination options) of `units` 8-byte units
/// beyond the first, padded with PadN-free zero bytes.
pub fn ipv6_extension(next_header: u8, units: u8, payload: &[u8]) -> Vec<u8> {
    let mut header = vec![0_u8; 8 * (usize::from(units) + 1)];
    header[0] = next_header;
    header[1] = units;
    header.extend_from_slice(payload);
    header
}

/// An IPv6 fragment header; `offset` in 8-byte units.
pub fn ipv6_fragment(next_header: u8, offset: u16, more: bool, payload: &[u8]) -> Vec<u8> {
    let mut header = vec![next_header, 0];
    header.extend_from_slice(&(offset << 3 | u16::from(more)).to_be_bytes());
    header.extend_from_slice(&0xdead_beef_u32.to_be_bytes());
    header.extend_from_slice(payload);
    header
}

pub fn udp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut segment = Vec::with_capacity(8 + payload.len());
    segment.extend_from_slice(&src_port.to_be_bytes());
    segment.extend_from_slice(&dst_port.to_be_bytes());
    segment.extend_from_slice(&u16::try_from(8 + payload.len()).unwrap_or(0).to_be_bytes());
    segment.extend_from_slice(&[0, 0]);
    segment.extend_from_slice(payload);
    segment
}

/// A TCP segment with a 20-byte header (PSH+ACK).
pub fn tcp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut segment = Vec::with_capacity(20 + payload.len());
    segment.extend_from_slice(&src_port.to_be_bytes());
    segment.extend_from_slice(&dst_port.to_be_bytes());
    segment.extend_from_slice(&1_u32.to_be_bytes());
    segment.extend_from_slice(&1_u32.to_be_bytes());
    segment.extend_from_slice(&[0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    segment.extend_from_slice(payload);
    segment
}

pub const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(10, 99, 1, 2);
pub const DC_V4: Ipv4Addr = Ipv4Addr::new(10, 99, 1, 1);
pub const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 2);
pub const DC_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x99, 0, 0, 0, 0, 0, 1);

/// Client to DC over IPv4: the most common frame in the tests.
pub fn udp_v4(dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let ip = Ipv4::new(CLIENT_V4, DC_V4, PROTO_UDP).packet(&udp(50_000, dst_port, payload));
    ethernet(&[], ETHERTYPE_IPV4, &ip)
}

pub fn tcp_v4(dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let ip = Ipv4::new(CLIENT_V4, DC_V4, PROTO_TCP).packet(&tcp(50_000, dst_port, payload));
    ethernet(&[], ETHERTYPE_IPV4, &ip)
}

pub fn udp_v6(dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let ip = ipv6(CLIENT_V6, DC_V6, PROTO_UDP, &udp(50_000, dst_port, payload));
    ethernet(&[], ETHERTYPE_IPV6, &ip)
}

pub fn tcp_v6(dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let ip = ipv6(CLIENT_V6, DC_V6, PROTO_TCP, &tcp(50_000, dst_port, payload));
    ethernet(&[], ETHERTYPE_IPV6, &ip)
}

/// TCP header flags (RFC 9293 3.1).
pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_ACK: u8 = 0x10;
pub const TCP_PSH: u8 = 0x08;

/// A TCP segment with chosen sequence numbers and flags (20-byte header).
pub fn tcp_segment(
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut segment = Vec::with_capacity(20 + payload.len());
    segment.extend_from_slice(&src_port.to_be_bytes());
    segment.extend_from_slice(&dst_port.to_be_bytes());
    segment.extend_from_slice(&seq.to_be_bytes());
    segment.extend_from_slice(&ack.to_be_bytes());
    segment.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    segment.extend_from_slice(payload);
    segment
}

/// The mirror's source and the sensor, the ends of the tunnels below.
pub const SWITCH_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const SENSOR_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
pub const PROTO_GRE: u8 = 47;

/// The ways a mirror arrives in a tunnel, with the header fields tests vary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tunnel {
    /// GRE 0x88BE without a sequence number.
    ErspanI,
    /// GRE 0x88BE with a sequence number, then the 8-byte ERSPAN II header.
    ErspanII,
    /// GRE 0x22EB, the 12-byte ERSPAN III header, and with `platform` its 8-byte subheader.
    ErspanIII { platform: bool },
    /// GRE 0x6558 with a key (gretap).
    GreEthernet,
    /// VXLAN to `port`.
    Vxlan { port: u16 },
    /// Geneve carrying Ethernet, with `option_words` 4-byte words of options.
    Geneve { option_words: u8 },
}

impl Tunnel {
    /// Every type, in the order of the sensor's `decap_*` counters.
    pub const ALL: [Self; 6] = [
        Self::ErspanI,
        Self::ErspanII,
        Self::ErspanIII { platform: true },
        Self::GreEthernet,
        Self::Vxlan { port: 4789 },
        Self::Geneve { option_words: 2 },
    ];

    /// The tunnel's headers from the outer IP payload on (GRE or UDP), up to the inner frame.
    pub fn headers(self) -> (u8, Vec<u8>) {
        let gre = |flags: u16, protocol: u16, extra: &[u8]| {
            let mut header = flags.to_be_bytes().to_vec();
            header.extend_from_slice(&protocol.to_be_bytes());
            // Key and sequence number, each present when its flag is.
            for flag in [0x2000, 0x1000] {
                if flags & flag != 0 {
                    header.extend_from_slice(&7_u32.to_be_bytes());
                }
            }
            header.extend_from_slice(extra);
            (PROTO_GRE, header)
        };
        match self {
            Self::ErspanI => gre(0, 0x88be, &[]),
            // Version 1, VLAN 0, session 5; index 0.
            Self::ErspanII => gre(0x1000, 0x88be, &[0x10, 0, 0, 5, 0, 0, 0, 0]),
            Self::ErspanIII { platform } => {
                // Version 2, session 5, a timestamp; the O bit last.
                let mut extra = vec![0x20, 0, 0, 5, 0, 0, 0x12, 0x34, 0, 0, 0, u8::from(platform)];
                if platform {
                    extra.extend_from_slice(&[0x08, 0, 0, 0, 0, 0, 0, 1]);
                }
                gre(0x1000, 0x22eb, &extra)
            }
            Self::GreEthernet => gre(0x2000, 0x6558, &[]),
            // The I flag, VNI 42. The UDP header's length is filled in by `wrap`.
            Self::Vxlan { port } => {
                let mut header = udp(40_000, port, &[]);
                header.extend_from_slice(&[0x08, 0, 0, 0, 0, 0, 42, 0]);
                (PROTO_UDP, header)
            }
            Self::Geneve { option_words } => {
                let mut header = udp(40_000, 6081, &[]);
                header.extend_from_slice(&[option_words & 0x3f, 0, 0x65, 0x58, 0, 0, 42, 0]);
                header.extend(std::iter::repeat_n(0xab, 4 * usize::from(option_words)));
                (PROTO_UDP, header)
            }
        }
    }

    /// `inner`, a whole Ethernet frame, in this tunnel from the switch to the sensor.
    pub fn wrap(self, inner: &[u8]) -> Vec<u8> {
        let (protocol, mut payload) = self.headers();
        if protocol == PROTO_UDP {
            let len = u16::try_from(payload.len() + inner.len()).unwrap_or(u16::MAX);
            payload[4..6].copy_from_slice(&len.to_be_bytes());
        }
        payload.extend_from_slice(inner);
        ethernet(
            &[],
            ETHERTYPE_IPV4,
            &Ipv4::new(SWITCH_V4, SENSOR_V4, protocol).packet(&payload),
        )
    }
}
