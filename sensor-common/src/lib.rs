//! Types that cross the kernel boundary between the XDP program (`sensor-ebpf`) and userspace
//! (`sensor-user`).
//!
//! Everything here is `no_std`, `#[repr(C)]`, integer-only and free of implicit padding, so the two
//! sides agree on layout byte for byte.
#![no_std]

/// Largest number of bytes of one frame the XDP program copies into the ring buffer.
///
/// A power of two: the program bounds the copy length with a mask, the form the verifier accepts.
pub const MAX_SNAP_LEN: u32 = 16384;

/// Default number of bytes copied per frame: every standard-MTU frame (1518 bytes plus two VLAN
/// tags) fits whole.
pub const DEFAULT_SNAP_LEN: u32 = 2048;

/// Entries in each of the domain-controller address sets.
pub const MAX_DC_ADDRESSES: u32 = 1024;

/// Ports a DC's dynamic DCE-RPC endpoints live on: Windows' dynamic range (49152-65535).
/// A segment on such a port of a DC whose payload starts with a DCE-RPC header is copied even
/// when the port is not watched.
pub const RPC_DYNAMIC_PORT_MIN: u16 = 49152;

/// Largest frag_length the XDP program's DCE-RPC header test accepts: the largest fragment
/// Windows negotiates over TCP (5840; Samba and impacket offer 4280). A later PDU of a
/// connection that negotiated more is still seen once the port is watched.
pub const RPC_MAX_FRAG_LENGTH: u16 = 5840;

/// Value bits of the port map: which transports a port is watched on.
pub mod port_flags {
    pub const TCP: u8 = 1 << 0;
    pub const UDP: u8 = 1 << 1;
}

/// Tunnelled mirrors the XDP program takes apart before its filter (and replay the same way):
/// what marks each encapsulation on the wire.
pub mod tunnel {
    /// IP protocol number of GRE.
    pub const IPPROTO_GRE: u8 = 47;
    /// GRE protocol of ERSPAN types I and II (type I has no GRE sequence number, type II has).
    pub const GRE_ERSPAN: u16 = 0x88be;
    /// GRE protocol of ERSPAN type III.
    pub const GRE_ERSPAN3: u16 = 0x22eb;
    /// GRE protocol of transparent Ethernet bridging (gretap), and Geneve's for Ethernet.
    pub const TRANSPARENT_ETHERNET: u16 = 0x6558;
    /// GRE flag bits (RFC 2890): each present flag adds 4 bytes to the 4-byte base header.
    pub const GRE_CHECKSUM: u16 = 0x8000;
    pub const GRE_ROUTING: u16 = 0x4000;
    pub const GRE_KEY: u16 = 0x2000;
    pub const GRE_SEQUENCE: u16 = 0x1000;
    pub const GRE_VERSION: u16 = 0x0007;
    pub const GRE_BASE_LEN: usize = 4;
    /// ERSPAN type II header, version field 1.
    pub const ERSPAN2_LEN: usize = 8;
    pub const ERSPAN2_VERSION: u8 = 1;
    /// ERSPAN type III header, version field 2; its O bit (last byte, lowest bit) announces an
    /// 8-byte platform-specific subheader.
    pub const ERSPAN3_LEN: usize = 12;
    pub const ERSPAN3_VERSION: u8 = 2;
    pub const ERSPAN3_PLATFORM_LEN: usize = 8;
    /// VXLAN (RFC 7348): an 8-byte header whose I flag says the VNI is valid.
    pub const VXLAN_DEFAULT_PORT: u16 = 4789;
    pub const VXLAN_LEN: usize = 8;
    pub const VXLAN_FLAG_I: u8 = 0x08;
    /// Geneve (RFC 8926): an 8-byte header, version 0, then options of 4-byte words.
    pub const GENEVE_PORT: u16 = 6081;
    pub const GENEVE_LEN: usize = 8;
    /// Outer headers deeper than this are not taken apart (the deepest real stack, Ethernet
    /// with two tags, IPv4 with options, UDP and Geneve with the most options, is 346 bytes).
    pub const MAX_OUTER_LEN: usize = 384;
}

/// Values of the `DECAP` global, set by the loader.
pub mod decap_mode {
    /// Frames are classified as they are: a tunnel is just its outer packet.
    pub const OFF: u32 = 0;
    /// Known tunnels are taken apart and their inner frame classified and copied.
    pub const AUTO: u32 = 1;
}

/// Which worker a frame's flow belongs to: a hash of its two IP addresses that does not depend
/// on their order, so both directions of a connection (and every fragment of a datagram, and the
/// connections an endpoint mapper's answer announces between the same hosts) meet in one worker.
/// FNV-1a of each address, combined by a commutative operation.
pub fn flow_affinity(a: &[u8], b: &[u8]) -> u32 {
    fn fnv1a(bytes: &[u8]) -> u32 {
        let mut hash: u32 = 0x811c_9dc5;
        for &byte in bytes {
            hash = (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
        }
        hash
    }
    let (x, y) = (fnv1a(a), fnv1a(b));
    // Sum and xor are both symmetric; mixing both keeps a == b from collapsing to 0.
    let mixed = x.wrapping_add(y) ^ (x ^ y).rotate_left(16);
    mixed ^ (mixed >> 15)
}

/// Classes of traffic the resource limiter can shed in the XDP program: indices into the `SHED`
/// map, whose value says how much of the class is kept ([`shed_keep`]).
pub mod shed_class {
    /// DNS, NetBIOS name and datagram, LLMNR and mDNS exchanges of a client that is not a DC
    /// (any client when no DC addresses are configured): the traffic worth least.
    pub const NAME_QUERIES: u32 = 0;
    /// Entries in the `SHED` map.
    pub const COUNT: u32 = 1;
}

/// Values of the `SHED` map: keep one frame of the class in N, sampled at random.
pub mod shed_keep {
    /// Keep every frame (0 reads the same: a map entry never written).
    pub const ALL: u32 = 1;
    /// Keep none.
    pub const NONE: u32 = u32::MAX;
}

/// The ports of the name services whose exchanges make up `shed_class::NAME_QUERIES`: DNS,
/// NetBIOS name service and datagram service, mDNS, LLMNR.
pub const NAME_QUERY_PORTS: [u16; 5] = [53, 137, 138, 5353, 5355];

/// Values of the `CAPTURE_MODE` global, set by the loader.
pub mod capture_mode {
    /// The sensor shares the NIC with the host: every frame continues up the stack (`XDP_PASS`).
    pub const HOST: u32 = 0;
    /// A dedicated mirror NIC: frames end in XDP after the copy (`XDP_DROP`).
    pub const MIRROR: u32 = 1;
}

/// Names of the maps and globals in the XDP object, so the loader and the program cannot drift.
pub mod names {
    pub const PROGRAM: &str = "dcwatch_capture";
    pub const PORTS: &str = "PORTS";
    pub const DC_V4: &str = "DC_V4";
    pub const DC_V6: &str = "DC_V6";
    pub const COUNTERS: &str = "COUNTERS";
    pub const FRAMES: &str = "FRAMES";
    pub const CAPTURE_MODE: &str = "CAPTURE_MODE";
    pub const FILTER_DC_ADDRESSES: &str = "FILTER_DC_ADDRESSES";
    pub const SNAP_LEN: &str = "SNAP_LEN";
    pub const DECAP: &str = "DECAP";
    pub const VXLAN_PORT: &str = "VXLAN_PORT";
    pub const SHED: &str = "SHED";
}

/// The per-CPU packet counters kept by the XDP program, indices into the `COUNTERS` map.
///
/// Every frame bumps `Seen` and `Bytes`; a tunnelled one, taken apart, also exactly one of the
/// `Decap*` counters (its outer frame) and is then judged by its inner frame. Then exactly one of
/// `NonIp`, `Malformed`, `Matched`, or `Shed`, or none of them (an IP frame that is not watched).
/// Every matched frame is then exactly one of `Copied` or `RingbufFull`, so
/// `Matched == Copied + RingbufFull` always holds; `RpcHeader` counts the matched frames the
/// DCE-RPC header test let through. Each counter's meaning is its [`Counter::help`] (the stats
/// file's and `/metrics`' text).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    Seen = 0,
    Bytes = 1,
    Matched = 2,
    Copied = 3,
    RingbufFull = 4,
    Truncated = 5,
    NonIp = 6,
    Malformed = 7,
    RpcHeader = 8,
    DecapErspan1 = 9,
    DecapErspan2 = 10,
    DecapErspan3 = 11,
    DecapGreEthernet = 12,
    DecapVxlan = 13,
    DecapGeneve = 14,
    Shed = 15,
}

impl Counter {
    pub const ALL: [Self; 16] = [
        Self::Seen,
        Self::Bytes,
        Self::Matched,
        Self::Copied,
        Self::RingbufFull,
        Self::Truncated,
        Self::NonIp,
        Self::Malformed,
        Self::RpcHeader,
        Self::DecapErspan1,
        Self::DecapErspan2,
        Self::DecapErspan3,
        Self::DecapGreEthernet,
        Self::DecapVxlan,
        Self::DecapGeneve,
        Self::Shed,
    ];

    /// Number of entries in the `COUNTERS` map.
    pub const COUNT: u32 = Self::ALL.len() as u32;

    /// The counter's name in stats files and logs.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Seen => "seen",
            Self::Bytes => "bytes",
            Self::Matched => "matched",
            Self::Copied => "copied",
            Self::RingbufFull => "ringbuf_full",
            Self::Truncated => "truncated",
            Self::NonIp => "non_ip",
            Self::Malformed => "malformed",
            Self::RpcHeader => "rpc_header_matched",
            Self::DecapErspan1 => "decap_erspan1",
            Self::DecapErspan2 => "decap_erspan2",
            Self::DecapErspan3 => "decap_erspan3",
            Self::DecapGreEthernet => "decap_gre_ethernet",
            Self::DecapVxlan => "decap_vxlan",
            Self::DecapGeneve => "decap_geneve",
            Self::Shed => "limiter_shed_frames",
        }
    }

    /// What the counter counts.
    pub const fn help(self) -> &'static str {
        match self {
            Self::Seen => "Frames the program ran on.",
            Self::Bytes => "Bytes of those frames.",
            Self::Matched => {
                "Frames on a watched port (and, when configured, to or from a watched address)."
            }
            Self::Copied => "Matched frames written to the ring buffer.",
            Self::RingbufFull => {
                "Matched frames that did not reach the ring buffer: no room in it (the only place \
                 such a loss shows), or, in theory, a failed copy."
            }
            Self::Truncated => "Copied frames longer than the snap length, copied up to it.",
            Self::NonIp => "Frames whose EtherType (after VLAN tags) is neither IPv4 nor IPv6.",
            Self::Malformed => {
                "Frames whose headers are cut short or inconsistent, or nest deeper than the \
                 program parses."
            }
            Self::RpcHeader => {
                "Of the matched frames, the TCP segments on an unwatched port of a DC's (at least \
                 RPC_DYNAMIC_PORT_MIN; any server's without DC addresses) matched only because their payload starts with a DCE-RPC \
                 connection-oriented header; their record carries that port in rpc_port."
            }
            Self::DecapErspan1 => {
                "Outer frames of ERSPAN type I (GRE 0x88BE without a sequence number), taken apart."
            }
            Self::DecapErspan2 => {
                "Outer frames of ERSPAN type II (GRE 0x88BE with a sequence number), taken apart."
            }
            Self::DecapErspan3 => "Outer frames of ERSPAN type III (GRE 0x22EB), taken apart.",
            Self::DecapGreEthernet => {
                "Outer frames of Ethernet over GRE (0x6558, gretap), taken apart."
            }
            Self::DecapVxlan => "Outer frames of VXLAN, taken apart.",
            Self::DecapGeneve => "Outer frames of Geneve carrying Ethernet, taken apart.",
            Self::Shed => {
                "Frames on a watched port that the resource limiter shed (the SHED map): never \
                 copied, never counted as matched."
            }
        }
    }
}

/// The header in front of every frame in the ring buffer; `cap_len` bytes of frame follow it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// `CLOCK_MONOTONIC` nanoseconds when the program saw the frame.
    pub timestamp_ns: u64,
    /// Interface the frame arrived on.
    pub ifindex: u32,
    /// Length of the frame on the wire.
    pub orig_len: u32,
    /// Bytes of the frame that follow this header: `min(orig_len, snap length)`.
    pub cap_len: u32,
    /// The DC's port when the frame was copied for its DCE-RPC header alone (`Counter::RpcHeader`),
    /// for userspace to watch from then on; otherwise 0.
    pub rpc_port: u32,
}

impl RecordHeader {
    pub const SIZE: usize = size_of::<Self>();

    /// Reads a header from the front of a ring-buffer record; `None` when the record is shorter.
    pub fn parse(record: &[u8]) -> Option<Self> {
        let field = |at: usize| -> Option<[u8; 4]> { record.get(at..at + 4)?.try_into().ok() };
        let timestamp: [u8; 8] = record.get(0..8)?.try_into().ok()?;
        Some(Self {
            timestamp_ns: u64::from_ne_bytes(timestamp),
            ifindex: u32::from_ne_bytes(field(8)?),
            orig_len: u32::from_ne_bytes(field(12)?),
            cap_len: u32::from_ne_bytes(field(16)?),
            rpc_port: u32::from_ne_bytes(field(20)?),
        })
    }
}

/// What the program writes into its per-CPU scratch slot before handing it to the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Record {
    pub header: RecordHeader,
    pub frame: [u8; MAX_SNAP_LEN as usize],
}

const _: () = assert!(RecordHeader::SIZE == 24);
const _: () = assert!(MAX_SNAP_LEN.is_power_of_two());
const _: () = assert!(DEFAULT_SNAP_LEN <= MAX_SNAP_LEN);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_through_bytes() {
        let header = RecordHeader {
            timestamp_ns: 0x0102_0304_0506_0708,
            ifindex: 7,
            orig_len: 3000,
            cap_len: 2048,
            rpc_port: 49_667,
        };
        // SAFETY: RecordHeader is repr(C), integer-only and padding-free.
        let bytes: [u8; RecordHeader::SIZE] = unsafe { core::mem::transmute(header) };
        assert_eq!(RecordHeader::parse(&bytes), Some(header));
        assert_eq!(RecordHeader::parse(&bytes[..RecordHeader::SIZE - 1]), None);
    }

    #[test]
    fn flow_affinity_is_symmetric_and_spreads() {
        let a = [10, 0, 0, 1];
        let b = [10, 0, 0, 2];
        assert_eq!(flow_affinity(&a, &b), flow_affinity(&b, &a));
        assert_ne!(flow_affinity(&a, &b), flow_affinity(&a, &[10, 0, 0, 3]));
        // 256 clients of one server over 4 workers: none is left idle or takes most.
        let mut per_worker = [0_u32; 4];
        for last in 0..=255_u8 {
            per_worker[(flow_affinity(&[192, 168, 1, last], &a) % 4) as usize] += 1;
        }
        assert!(
            per_worker.iter().all(|&n| (32..=96).contains(&n)),
            "{per_worker:?}"
        );
    }

    #[test]
    fn counter_indices_are_dense_and_named_uniquely() {
        for (index, counter) in Counter::ALL.iter().enumerate() {
            assert_eq!(*counter as usize, index);
            for other in &Counter::ALL[index + 1..] {
                assert_ne!(counter.name(), other.name());
            }
        }
    }
}
