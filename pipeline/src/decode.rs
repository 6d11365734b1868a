//! Frame to packet summary: addresses, ports and transport, decoded with etherparse.

use std::net::{IpAddr, SocketAddr};

use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, TcpSlice, TransportSlice, UdpSlice};

use crate::services::Transport;

/// How a frame's first header is framed: live frames are always Ethernet; capture files may hold
/// the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkType {
    Ethernet,
    /// Linux "cooked" capture (`tcpdump -i any`), version 1.
    LinuxSll,
    /// Linux "cooked" capture, version 2 (newer `tcpdump -i any`).
    LinuxSll2,
    /// An IPv4 or IPv6 header with nothing before it.
    RawIp,
    /// BSD loopback: a 4-byte address family, then the IP header.
    Loopback,
}

/// What one IP packet is, as far as the capture stage needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketSummary {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub transport: Option<Transport>,
    /// Ports, when the packet carries a TCP or UDP header (not a non-first fragment).
    pub ports: Option<(u16, u16)>,
    /// Part of a fragmented IP packet: ports wait for reassembly.
    pub fragment: bool,
}

impl PacketSummary {
    pub fn src_endpoint(&self) -> String {
        endpoint(self.src, self.ports.map(|(src, _)| src))
    }

    pub fn dst_endpoint(&self) -> String {
        endpoint(self.dst, self.ports.map(|(_, dst)| dst))
    }
}

fn endpoint(address: IpAddr, port: Option<u16>) -> String {
    match port {
        Some(port) => SocketAddr::new(address, port).to_string(),
        None => address.to_string(),
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("frame too short for its link header")]
    TooShort,
    #[error("not an IP packet")]
    NotIp,
}

/// Linux cooked-capture header: 16 bytes, the EtherType in the last two.
const LINUX_SLL_HEADER_LEN: usize = 16;
/// Linux cooked-capture v2 header: 20 bytes, the EtherType in the first two.
const LINUX_SLL2_HEADER_LEN: usize = 20;
/// BSD loopback header: the address family, whose values differ by OS; the IP version nibble
/// says the same thing portably.
const LOOPBACK_HEADER_LEN: usize = 4;

/// Slices a frame down to its IP layer, whatever link header it came with.
fn slice(link: LinkType, frame: &[u8]) -> Result<LaxSlicedPacket<'_>, DecodeError> {
    Ok(match link {
        LinkType::Ethernet => {
            LaxSlicedPacket::from_ethernet(frame).map_err(|_| DecodeError::TooShort)?
        }
        LinkType::LinuxSll => {
            let ether_type = frame
                .get(LINUX_SLL_HEADER_LEN - 2..LINUX_SLL_HEADER_LEN)
                .ok_or(DecodeError::TooShort)?;
            LaxSlicedPacket::from_ether_type(
                EtherType(u16::from_be_bytes([ether_type[0], ether_type[1]])),
                &frame[LINUX_SLL_HEADER_LEN..],
            )
        }
        LinkType::LinuxSll2 => {
            let ether_type = frame.get(0..2).ok_or(DecodeError::TooShort)?;
            let packet = frame
                .get(LINUX_SLL2_HEADER_LEN..)
                .ok_or(DecodeError::TooShort)?;
            LaxSlicedPacket::from_ether_type(
                EtherType(u16::from_be_bytes([ether_type[0], ether_type[1]])),
                packet,
            )
        }
        LinkType::RawIp => LaxSlicedPacket::from_ip(frame).map_err(|_| DecodeError::NotIp)?,
        LinkType::Loopback => {
            let packet = frame
                .get(LOOPBACK_HEADER_LEN..)
                .ok_or(DecodeError::TooShort)?;
            LaxSlicedPacket::from_ip(packet).map_err(|_| DecodeError::NotIp)?
        }
    })
}

pub fn decode(link: LinkType, frame: &[u8]) -> Result<PacketSummary, DecodeError> {
    let packet = slice(link, frame)?;
    let (src, dst, payload) = match &packet.net {
        Some(LaxNetSlice::Ipv4(ipv4)) => (
            IpAddr::V4(ipv4.header().source_addr()),
            IpAddr::V4(ipv4.header().destination_addr()),
            ipv4.payload(),
        ),
        Some(LaxNetSlice::Ipv6(ipv6)) => (
            IpAddr::V6(ipv6.header().source_addr()),
            IpAddr::V6(ipv6.header().destination_addr()),
            ipv6.payload(),
        ),
        Some(LaxNetSlice::Arp(_)) | None => return Err(DecodeError::NotIp),
    };
    let transport = match payload.ip_number {
        etherparse::IpNumber::TCP => Some(Transport::Tcp),
        etherparse::IpNumber::UDP => Some(Transport::Udp),
        _ => None,
    };
    let ports = match &packet.transport {
        Some(TransportSlice::Tcp(tcp)) => Some((tcp.source_port(), tcp.destination_port())),
        Some(TransportSlice::Udp(udp)) => Some((udp.source_port(), udp.destination_port())),
        _ => None,
    };
    Ok(PacketSummary {
        src,
        dst,
        transport,
        ports,
        fragment: payload.fragmented,
    })
}

/// An IP packet down to its transport payload, borrowed from the frame: what the flow stage
/// needs.
#[derive(Clone, Copy, Debug)]
pub struct Packet<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ip_number: u8,
    /// Set when this is one fragment of an IP datagram: `transport` is then `Fragment` and the
    /// datagram must be reassembled first.
    pub fragment: Option<Fragment>,
    pub transport: TransportPacket<'a>,
}

/// Where an IP fragment belongs in its datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// IPv4's 16-bit or IPv6's 32-bit identification.
    pub id: u32,
    /// In bytes from the start of the datagram's payload.
    pub offset: usize,
    pub more: bool,
}

#[derive(Clone, Copy, Debug)]
pub enum TransportPacket<'a> {
    Tcp(TcpPacket<'a>),
    Udp {
        src_port: u16,
        dst_port: u16,
        payload: &'a [u8],
    },
    /// The bytes of an IP fragment, from its offset on.
    Fragment(&'a [u8]),
    /// Another transport, or a transport header cut short.
    Other,
}

#[derive(Clone, Copy, Debug)]
pub struct TcpPacket<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    /// The flags byte of the header (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, ...).
    pub flags: u8,
    pub payload: &'a [u8],
}

/// Decodes a frame down to its transport payload.
pub fn packet(link: LinkType, frame: &[u8]) -> Result<Packet<'_>, DecodeError> {
    let sliced = slice(link, frame)?;
    let (src, dst, payload, fragment) = match &sliced.net {
        Some(LaxNetSlice::Ipv4(ipv4)) => {
            let header = ipv4.header();
            let fragment = header.is_fragmenting_payload().then(|| Fragment {
                id: u32::from(header.identification()),
                offset: usize::from(header.fragments_offset().value()) * 8,
                more: header.more_fragments(),
            });
            (
                IpAddr::V4(header.source_addr()),
                IpAddr::V4(header.destination_addr()),
                ipv4.payload(),
                fragment,
            )
        }
        Some(LaxNetSlice::Ipv6(ipv6)) => {
            let source = IpAddr::V6(ipv6.header().source_addr());
            let destination = IpAddr::V6(ipv6.header().destination_addr());
            if let Some((fragment, ip_number, bytes)) = ipv6_fragment(frame, ipv6) {
                return Ok(Packet {
                    src: source,
                    dst: destination,
                    ip_number,
                    fragment: Some(fragment),
                    transport: TransportPacket::Fragment(bytes),
                });
            }
            (source, destination, ipv6.payload(), None)
        }
        Some(LaxNetSlice::Arp(_)) | None => return Err(DecodeError::NotIp),
    };
    let transport = if fragment.is_some() {
        TransportPacket::Fragment(payload.payload)
    } else {
        match &sliced.transport {
            Some(TransportSlice::Tcp(tcp)) => TransportPacket::Tcp(tcp_packet(tcp)),
            Some(TransportSlice::Udp(udp)) => TransportPacket::Udp {
                src_port: udp.source_port(),
                dst_port: udp.destination_port(),
                payload: udp.payload(),
            },
            _ => TransportPacket::Other,
        }
    };
    Ok(Packet {
        src,
        dst,
        ip_number: payload.ip_number.0,
        fragment,
        transport,
    })
}

/// IPv6 extension headers that may follow a Fragment header inside the fragmentable part
/// (RFC 8200 4.1): hop-by-hop, routing, destination options. Each is `next header, length in
/// 8-byte units beyond the first 8, ...`.
const IPV6_FRAGMENTABLE_EXTENSIONS: [u8; 3] = [0, 43, 60];

/// Extension headers skipped in a reassembled datagram before its transport: as many as the
/// capture program parses.
const MAX_IPV6_EXTENSIONS: usize = 6;

/// A fragment of an IPv6 datagram: where it belongs, what its Fragment header says follows, and
/// its bytes, which start right after that header. The extension chain is walked here, from the
/// frame's bytes, rather than with etherparse's iterator: in a fragment, what follows the
/// Fragment header is datagram data, not headers of this packet, and etherparse 0.21's
/// iterator builds header slices unchecked (a fuzzer found it reading past the frame on a
/// chain its lax parser had cut short).
fn ipv6_fragment<'a>(
    frame: &'a [u8],
    ipv6: &etherparse::LaxIpv6Slice<'a>,
) -> Option<(Fragment, u8, &'a [u8])> {
    const HEADER_LEN: usize = 40;
    const FRAGMENT_HEADER: u8 = 44;
    const AUTHENTICATION_HEADER: u8 = 51;
    const FRAGMENT_HEADER_LEN: usize = 8;
    let header = ipv6.header();
    let start = offset_in(frame, header.slice())?;
    let end = start
        .checked_add(HEADER_LEN)?
        .checked_add(usize::from(header.payload_length()))?
        .min(frame.len());
    let packet = frame.get(start..end)?;
    let mut next = header.next_header().0;
    let mut at = HEADER_LEN;
    for _ in 0..MAX_IPV6_EXTENSIONS {
        let extension = packet.get(at..)?;
        let len = match next {
            FRAGMENT_HEADER => {
                let fragment = extension.get(..FRAGMENT_HEADER_LEN)?;
                let word = u16::from_be_bytes([fragment[2], fragment[3]]);
                let offset = usize::from(word >> 3) * 8;
                let more = word & 1 == 1;
                if offset == 0 && !more {
                    // An atomic fragment (RFC 6946): a whole datagram.
                    return None;
                }
                let id = u32::from_be_bytes([fragment[4], fragment[5], fragment[6], fragment[7]]);
                let data = extension.get(FRAGMENT_HEADER_LEN..)?;
                return Some((Fragment { id, offset, more }, fragment[0], data));
            }
            AUTHENTICATION_HEADER => (usize::from(*extension.get(1)?) + 2) * 4,
            next if IPV6_FRAGMENTABLE_EXTENSIONS.contains(&next) => {
                (usize::from(*extension.get(1)?) + 1) * 8
            }
            _ => return None,
        };
        next = *extension.first()?;
        at = at.checked_add(len)?;
    }
    None
}

/// Where `inner`, a slice of `outer`, starts in it.
fn offset_in(outer: &[u8], inner: &[u8]) -> Option<usize> {
    let start = (inner.as_ptr() as usize).checked_sub(outer.as_ptr() as usize)?;
    (start.checked_add(inner.len())? <= outer.len()).then_some(start)
}

/// The transport of a datagram put back together from its fragments.
pub fn transport(mut ip_number: u8, mut datagram: &[u8]) -> TransportPacket<'_> {
    for _ in 0..MAX_IPV6_EXTENSIONS {
        if !IPV6_FRAGMENTABLE_EXTENSIONS.contains(&ip_number) {
            break;
        }
        let (Some(&next), Some(&units)) = (datagram.first(), datagram.get(1)) else {
            return TransportPacket::Other;
        };
        let Some(rest) = datagram.get((usize::from(units) + 1) * 8..) else {
            return TransportPacket::Other;
        };
        ip_number = next;
        datagram = rest;
    }
    match etherparse::IpNumber(ip_number) {
        etherparse::IpNumber::TCP => match TcpSlice::from_slice(datagram) {
            Ok(tcp) => TransportPacket::Tcp(tcp_packet(&tcp)),
            Err(_) => TransportPacket::Other,
        },
        etherparse::IpNumber::UDP => match UdpSlice::from_slice_lax(datagram) {
            Ok(udp) => TransportPacket::Udp {
                src_port: udp.source_port(),
                dst_port: udp.destination_port(),
                payload: udp.payload(),
            },
            Err(_) => TransportPacket::Other,
        },
        _ => TransportPacket::Other,
    }
}

/// Where the flags byte sits in a TCP header (RFC 9293 3.1).
const TCP_FLAGS_OFFSET: usize = 13;

fn tcp_packet<'a>(tcp: &TcpSlice<'a>) -> TcpPacket<'a> {
    TcpPacket {
        src_port: tcp.source_port(),
        dst_port: tcp.destination_port(),
        seq: tcp.sequence_number(),
        ack: tcp.acknowledgment_number(),
        flags: tcp
            .header_slice()
            .get(TCP_FLAGS_OFFSET)
            .copied()
            .unwrap_or(0),
        payload: tcp.payload(),
    }
}

#[cfg(test)]
mod tests {
    use etherparse::PacketBuilder;

    use super::*;

    fn udp_frame(payload_len: usize) -> Vec<u8> {
        let builder = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .single_vlan(etherparse::VlanId::try_new(10).expect("valid VLAN id"))
            .ipv6([0xfd; 16], [0xfe; 16], 64)
            .udp(5353, 88);
        let mut frame = Vec::new();
        builder
            .write(&mut frame, &vec![0; payload_len])
            .expect("write to a Vec");
        frame
    }

    #[test]
    fn decodes_vlan_ipv6_udp() {
        let summary = decode(LinkType::Ethernet, &udp_frame(20)).expect("valid frame");
        assert_eq!(summary.transport, Some(Transport::Udp));
        assert_eq!(summary.ports, Some((5353, 88)));
        assert_eq!(
            summary.dst_endpoint(),
            "[fefe:fefe:fefe:fefe:fefe:fefe:fefe:fefe]:88"
        );
        assert!(!summary.fragment);
    }

    #[test]
    fn a_snap_truncated_frame_still_decodes() {
        let mut frame = udp_frame(3000);
        frame.truncate(100);
        let summary = decode(LinkType::Ethernet, &frame).expect("lax decoding");
        assert_eq!(summary.ports, Some((5353, 88)));
    }

    #[test]
    fn non_ip_and_short_frames_are_errors() {
        let mut arp = vec![0_u8; 60];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(decode(LinkType::Ethernet, &arp), Err(DecodeError::NotIp));
        assert_eq!(
            decode(LinkType::Ethernet, &[0; 5]),
            Err(DecodeError::TooShort)
        );
        assert_eq!(
            decode(LinkType::LinuxSll, &[0; 15]),
            Err(DecodeError::TooShort)
        );
        assert_eq!(
            decode(LinkType::LinuxSll2, &[0; 19]),
            Err(DecodeError::TooShort)
        );
        assert_eq!(decode(LinkType::RawIp, &[0x45]), Err(DecodeError::NotIp));
        assert_eq!(
            decode(LinkType::Loopback, &[2, 0]),
            Err(DecodeError::TooShort)
        );
    }
}

#[cfg(test)]
mod packet_tests {
    use dcwatch_tests::frames;

    use super::*;

    #[test]
    fn ipv6_fragments_carry_their_place_and_bytes() {
        for (offset, more) in [(0_u16, true), (8, true), (16, false)] {
            let piece = [offset as u8; 64];
            let fragment = frames::ipv6_fragment(17, offset, more, &piece);
            let ip = frames::ipv6(frames::CLIENT_V6, frames::DC_V6, 44, &fragment);
            let frame = frames::ethernet(&[], frames::ETHERTYPE_IPV6, &ip);
            let decoded = packet(LinkType::Ethernet, &frame).expect("decodes");
            assert_eq!(
                decoded.fragment,
                Some(Fragment {
                    id: 0xdead_beef,
                    offset: usize::from(offset) * 8,
                    more
                })
            );
            assert_eq!(decoded.ip_number, 17);
            match decoded.transport {
                TransportPacket::Fragment(bytes) => assert_eq!(bytes, piece),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn ipv4_fragments_carry_their_place_and_bytes() {
        let piece = [9_u8; 64];
        let ip = frames::Ipv4 {
            more_fragments: true,
            fragment_offset: 8,
            ..frames::Ipv4::new(frames::CLIENT_V4, frames::DC_V4, 17)
        }
        .packet(&piece);
        let frame = frames::ethernet(&[], frames::ETHERTYPE_IPV4, &ip);
        let decoded = packet(LinkType::Ethernet, &frame).expect("decodes");
        assert_eq!(
            decoded.fragment,
            Some(Fragment {
                id: 0x1234,
                offset: 64,
                more: true
            })
        );
        match decoded.transport {
            TransportPacket::Fragment(bytes) => assert_eq!(bytes, piece),
            other => panic!("{other:?}"),
        }
    }

    /// Found by the `decode` fuzz target: an IPv6 packet whose extension chain the lax parser
    /// cuts short, on which etherparse 0.21's extension iterator read past the frame (a
    /// debug-assertion panic in fuzz builds, an out-of-bounds read in release ones). The chain
    /// is now walked here, bounded by the frame.
    #[test]
    fn a_cut_ipv6_extension_chain_is_read_within_the_frame() {
        let frame = [
            101, 101, 101, 37, 101, 30, 44, 44, 44, 44, 58, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44,
            44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 44, 39, 44, 44, 44, 44, 101, 47, 0, 0, 0,
            2, 255, 39, 44, 44,
        ];
        let decoded = packet(LinkType::RawIp, &frame).expect("an IPv6 header");
        assert_eq!(
            decoded.fragment, None,
            "an atomic fragment: a whole datagram"
        );
        for cut in 0..frame.len() {
            let _ = packet(LinkType::RawIp, &frame[..cut]);
        }
    }
}
