//! dcwatch's capture program: keeps the frames that matter to domain controllers.
//!
//! It parses Ethernet, up to two 802.1Q/802.1ad tags, IPv4 (with options) and IPv6 (with the
//! common extension headers) down to the TCP or UDP ports, matches them against the watched port
//! set and, when configured, the domain-controller address sets, copies each matched frame (up to
//! the snap length) into the `FRAMES` ring buffer, and counts everything in `COUNTERS`. Non-first
//! IP fragments carry no ports: those to or from a watched address are copied for userspace to
//! reassemble. A TCP segment on an unwatched port in the dynamic range whose payload starts with
//! a DCE-RPC header, that port on the server's side (a DC's, when DC addresses are configured),
//! is copied too, with that port in its record, so userspace watches the port from then on:
//! DCE-RPC to an endpoint announced before the sensor started, or whose client connected before
//! userspace had read the endpoint mapper's answer and opened the port. With decapsulation on
//! (the default), a mirror that arrives in a tunnel (ERSPAN I/II/III, Ethernet over GRE, VXLAN,
//! Geneve) is taken apart first, counted by tunnel type, and its inner frame judged and copied in
//! its place. The resource limiter sheds classes
//! of traffic through the `SHED` map: a shed frame is counted and not copied. The verdict depends
//! on the mode only: `mirror` drops every frame (a mirror NIC's
//! traffic is of no use to the host), `host` passes every frame (never break a host's traffic).
#![no_std]
#![no_main]

use core::{ffi::c_void, ptr};

use aya_ebpf::{
    bindings::xdp_action,
    helpers::{bpf_get_prandom_u32, bpf_ktime_get_ns, generated::bpf_xdp_load_bytes},
    macros::{map, xdp},
    maps::{Array, HashMap, PerCpuArray, RingBuf},
    programs::XdpContext,
};
use sensor_common::{
    Counter, DEFAULT_SNAP_LEN, MAX_DC_ADDRESSES, MAX_SNAP_LEN, NAME_QUERY_PORTS,
    RPC_DYNAMIC_PORT_MIN, RPC_MAX_FRAG_LENGTH, Record, RecordHeader, capture_mode, decap_mode,
    port_flags, shed_class, shed_keep,
    tunnel::{self, MAX_OUTER_LEN},
};
use sensor_ebpf as _;

/// `capture_mode::MIRROR` or `capture_mode::HOST`; set by the loader.
#[unsafe(no_mangle)]
static CAPTURE_MODE: u32 = capture_mode::MIRROR;
/// Non-zero: only frames to or from an address in `DC_V4`/`DC_V6` match; set by the loader.
#[unsafe(no_mangle)]
static FILTER_DC_ADDRESSES: u32 = 0;
/// Bytes copied per frame, at most `MAX_SNAP_LEN`; set by the loader.
#[unsafe(no_mangle)]
static SNAP_LEN: u32 = DEFAULT_SNAP_LEN;
/// `decap_mode::AUTO` or `decap_mode::OFF`; set by the loader.
#[unsafe(no_mangle)]
static DECAP: u32 = decap_mode::AUTO;
/// The UDP port VXLAN arrives on; set by the loader.
#[unsafe(no_mangle)]
static VXLAN_PORT: u32 = tunnel::VXLAN_DEFAULT_PORT as u32;

/// Watched ports: index is the port number, value the `port_flags` of its transports. An array
/// rather than a hash map: its lookup compiles to a bounds check and a load.
#[map]
static PORTS: Array<u8> = Array::with_max_entries(1 << 16, 0);
#[map]
static DC_V4: HashMap<[u8; 4], u8> = HashMap::with_max_entries(MAX_DC_ADDRESSES, 0);
#[map]
static DC_V6: HashMap<[u8; 16], u8> = HashMap::with_max_entries(MAX_DC_ADDRESSES, 0);
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Counter::COUNT, 0);
/// How much of each `shed_class` the resource limiter keeps (`shed_keep`); written by userspace
/// while the program runs.
#[map]
static SHED: Array<u32> = Array::with_max_entries(shed_class::COUNT, 0);
/// Resized by the loader to the configured size.
#[map]
static FRAMES: RingBuf = RingBuf::with_byte_size(1 << 24, 0);
/// Where a record is assembled before it is written to the ring buffer in one piece of exactly its
/// own size (a ring reservation must be of constant size, which would waste room on small frames).
#[map]
static SCRATCH: PerCpuArray<Record> = PerCpuArray::with_max_entries(1, 0);

const ETH_HEADER_LEN: usize = 14;
const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
/// Pre-standard QinQ outer tag, still sent by some switches.
const ETH_P_QINQ_LEGACY: u16 = 0x9100;
const VLAN_TAG_LEN: usize = 4;
/// An outer and an inner tag (QinQ); deeper stacks are counted as malformed.
const MAX_VLAN_TAGS: usize = 2;

const IPV4_MIN_HEADER_LEN: usize = 20;
const IPV4_OFFSET_MASK: u16 = 0x1fff;
const IPV6_HEADER_LEN: usize = 40;
/// Longer extension-header chains are counted as malformed: legitimate traffic has one or two.
const MAX_IPV6_EXT_HEADERS: usize = 6;

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_AH: u8 = 51;
const IPPROTO_DSTOPTS: u8 = 60;

const TCP_MIN_HEADER_LEN: usize = 20;
const UDP_HEADER_LEN: usize = 8;
/// Headers ending past this offset are counted as malformed. Bounding every offset also keeps the
/// verifier's tracking of packet pointers finite.
const MAX_L4_OFFSET: usize = 512;

/// The common header of a connection-oriented DCE-RPC PDU (C706 12.6.3.1).
const RPC_HEADER_LEN: usize = 16;
/// Its sec_trailer, which an auth verifier of auth_length bytes follows.
const RPC_SEC_TRAILER_LEN: usize = 8;

/// What the parser made of a frame.
enum Class {
    /// IP, but not on a watched port or address.
    Unwatched,
    Matched,
    /// On an unwatched port, but a DCE-RPC PDU starts here on this dynamic port of a server that
    /// may be a DC ([`Peers::may_be_dc`]).
    RpcHeader(u16),
    NonIp,
    /// On a watched port, but of a class the resource limiter sheds now.
    Shed,
}

/// The addresses of a frame that passed the DC filter, for the DCE-RPC header test to ask
/// whether the server's side is a DC without a second lookup in the common case.
#[derive(Clone, Copy)]
enum Peers {
    /// No DC filter: no side is known to be a DC, and any server may be one.
    Any,
    V4 {
        src_is_dc: bool,
        dst: [u8; 4],
    },
    V6 {
        src_is_dc: bool,
        dst: [u8; 16],
    },
}

impl Peers {
    /// Whether the source (`false`) or the destination (`true`) may be a DC's: known to be one,
    /// or with no DC filter, any. Without addresses to go by, a DCE-RPC server on a dynamic port
    /// is taken as one rather than its conversation lost whenever the client connects before
    /// userspace has opened the port the endpoint mapper announced.
    #[inline(always)]
    fn may_be_dc(&self, destination: bool) -> bool {
        matches!(self, Self::Any) || self.is_dc(destination)
    }

    /// Whether the source (`false`) or the destination (`true`) is a DC. The frame passed the
    /// filter, so one of them is: only a DC source leaves the destination to look up.
    #[inline(always)]
    fn is_dc(&self, destination: bool) -> bool {
        match *self {
            Self::Any => false,
            Self::V4 { src_is_dc, dst } => {
                if destination {
                    !src_is_dc || DC_V4.get_ptr(dst).is_some()
                } else {
                    src_is_dc
                }
            }
            Self::V6 { src_is_dc, dst } => {
                if destination {
                    !src_is_dc || DC_V6.get_ptr(dst).is_some()
                } else {
                    src_is_dc
                }
            }
        }
    }
}

/// A header was cut short, inconsistent, or nested deeper than the program follows.
struct Malformed;

/// The frame as the classifier sees it: from `base` on, the start of the inner frame of a
/// tunnel (0 for a frame that is not one). Every offset below is relative to `base`, and bounded
/// on its own, so the verifier sees `base + offset` bounded too.
#[derive(Clone, Copy)]
struct View<'a> {
    ctx: &'a XdpContext,
    base: usize,
}

impl View<'_> {
    /// `T` bytes at `offset` from the view's start, or `Malformed`.
    #[inline(always)]
    fn read<T: Copy>(&self, offset: usize) -> Result<T, Malformed> {
        read(self.ctx, self.base + offset)
    }

    #[inline(always)]
    fn read_be16(&self, offset: usize) -> Result<u16, Malformed> {
        self.read::<[u8; 2]>(offset).map(u16::from_be_bytes)
    }

    /// Bytes from the view's start to the end of the frame.
    #[inline(always)]
    fn len(&self) -> usize {
        self.ctx.data_end() - self.ctx.data() - self.base
    }
}

#[xdp]
fn dcwatch_capture(ctx: XdpContext) -> u32 {
    capture(&ctx);
    verdict()
}

/// Counts the frame, and copies it to the ring buffer if it matches.
#[inline(always)]
fn capture(ctx: &XdpContext) {
    let frame_len = ctx.data_end() - ctx.data();
    count(Counter::Seen, 1);
    count(Counter::Bytes, frame_len as u64);
    let Ok(view) = decapsulate(ctx) else {
        count(Counter::Malformed, 1);
        return;
    };
    match classify(view) {
        Ok(Class::Matched) => {
            count(Counter::Matched, 1);
            copy_frame(view, 0);
        }
        Ok(Class::RpcHeader(port)) => {
            count(Counter::Matched, 1);
            count(Counter::RpcHeader, 1);
            copy_frame(view, u32::from(port));
        }
        Ok(Class::Unwatched) => {}
        Ok(Class::Shed) => count(Counter::Shed, 1),
        Ok(Class::NonIp) => count(Counter::NonIp, 1),
        Err(Malformed) => count(Counter::Malformed, 1),
    }
}

/// The same for every frame: what becomes of it depends on the mode alone.
#[inline(always)]
fn verdict() -> u32 {
    // SAFETY: a plain read of a global the loader sets before the program runs.
    if unsafe { ptr::read_volatile(&raw const CAPTURE_MODE) } == capture_mode::HOST {
        xdp_action::XDP_PASS
    } else {
        xdp_action::XDP_DROP
    }
}

#[inline(always)]
fn count(counter: Counter, value: u64) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: the slot is this CPU's, and XDP programs do not nest on a CPU.
        unsafe { *slot += value };
    }
}

/// The one bounds-checked way to look at the frame: `T` bytes at `offset`, or `Malformed`.
#[inline(always)]
fn read<T: Copy>(ctx: &XdpContext, offset: usize) -> Result<T, Malformed> {
    let start = ctx.data();
    if start + offset + size_of::<T>() > ctx.data_end() {
        return Err(Malformed);
    }
    // SAFETY: the range was checked against the end of the frame just above.
    Ok(unsafe { ptr::read_unaligned((start + offset) as *const T) })
}

#[inline(always)]
fn is_vlan_tag(ethertype: u16) -> bool {
    matches!(ethertype, ETH_P_8021Q | ETH_P_8021AD | ETH_P_QINQ_LEGACY)
}

/// The EtherType after up to `MAX_VLAN_TAGS` tags, and where the header it announces starts.
#[inline(always)]
fn ethernet(view: View<'_>) -> Result<(u16, usize), Malformed> {
    let mut ethertype = view.read_be16(ETH_HEADER_LEN - 2)?;
    let mut l3 = ETH_HEADER_LEN;
    for _ in 0..MAX_VLAN_TAGS {
        if !is_vlan_tag(ethertype) {
            break;
        }
        ethertype = view.read_be16(l3 + 2)?;
        l3 += VLAN_TAG_LEN;
    }
    Ok((ethertype, l3))
}

#[inline(always)]
fn classify(view: View<'_>) -> Result<Class, Malformed> {
    let (ethertype, l3) = ethernet(view)?;
    match ethertype {
        ETH_P_IPV4 => classify_ipv4(view, l3),
        ETH_P_IPV6 => classify_ipv6(view, l3),
        tag if is_vlan_tag(tag) => Err(Malformed),
        _ => Ok(Class::NonIp),
    }
}

/// With decapsulation on, a frame whose outer headers are a known tunnel's becomes the view of
/// its inner frame, and its tunnel type is counted; any other frame is viewed whole. An outer IP
/// packet that is a fragment, or whose header is not sound, is not taken apart (its
/// classification says what it is). A tunnel header cut short is `Malformed`.
#[inline(always)]
fn decapsulate(ctx: &XdpContext) -> Result<View<'_>, Malformed> {
    let whole = View { ctx, base: 0 };
    // SAFETY: a plain read of a global the loader sets before the program runs.
    if unsafe { ptr::read_volatile(&raw const DECAP) } != decap_mode::AUTO {
        return Ok(whole);
    }
    let Ok((ethertype, l3)) = ethernet(whole) else {
        return Ok(whole);
    };
    let (protocol, l4) = match ethertype {
        ETH_P_IPV4 => {
            let Ok(header) = whole.read::<[u8; IPV4_MIN_HEADER_LEN]>(l3) else {
                return Ok(whole);
            };
            let header_len = usize::from(header[0] & 0x0f) * 4;
            let flags_offset = u16::from_be_bytes([header[6], header[7]]);
            // More fragments (0x2000) or an offset: a fragment, not a whole tunnel packet.
            if header[0] >> 4 != 4 || header_len < IPV4_MIN_HEADER_LEN || flags_offset & 0x3fff != 0
            {
                return Ok(whole);
            }
            (header[9], l3 + header_len)
        }
        ETH_P_IPV6 => {
            let Ok(header) = whole.read::<[u8; IPV6_HEADER_LEN]>(l3) else {
                return Ok(whole);
            };
            if header[0] >> 4 != 6 {
                return Ok(whole);
            }
            (header[6], l3 + IPV6_HEADER_LEN)
        }
        _ => return Ok(whole),
    };
    let inner = match protocol {
        tunnel::IPPROTO_GRE => gre(whole, l4)?,
        IPPROTO_UDP => udp_tunnel(whole, l4)?,
        _ => None,
    };
    let Some((counter, base)) = inner else {
        return Ok(whole);
    };
    // Headers deeper than followed, or announced past the end of the frame.
    if base > MAX_OUTER_LEN || base > whole.len() {
        return Err(Malformed);
    }
    count(counter, 1);
    Ok(View { ctx, base })
}

/// GRE carrying Ethernet (gretap) or ERSPAN I, II or III: the tunnel type and where the inner
/// frame starts. Other GRE payloads, GRE with routing or of another version: `None`.
#[inline(always)]
fn gre(view: View<'_>, l4: usize) -> Result<Option<(Counter, usize)>, Malformed> {
    let header: [u8; tunnel::GRE_BASE_LEN] = view.read(l4)?;
    let flags = u16::from_be_bytes([header[0], header[1]]);
    if flags & (tunnel::GRE_ROUTING | tunnel::GRE_VERSION) != 0 {
        return Ok(None);
    }
    let optional = |flag: u16| if flags & flag != 0 { 4 } else { 0 };
    let payload = l4
        + tunnel::GRE_BASE_LEN
        + optional(tunnel::GRE_CHECKSUM)
        + optional(tunnel::GRE_KEY)
        + optional(tunnel::GRE_SEQUENCE);
    Ok(match u16::from_be_bytes([header[2], header[3]]) {
        tunnel::TRANSPARENT_ETHERNET => Some((Counter::DecapGreEthernet, payload)),
        tunnel::GRE_ERSPAN if flags & tunnel::GRE_SEQUENCE == 0 => {
            Some((Counter::DecapErspan1, payload))
        }
        tunnel::GRE_ERSPAN => {
            let erspan: [u8; tunnel::ERSPAN2_LEN] = view.read(payload)?;
            if erspan[0] >> 4 != tunnel::ERSPAN2_VERSION {
                return Err(Malformed);
            }
            Some((Counter::DecapErspan2, payload + tunnel::ERSPAN2_LEN))
        }
        tunnel::GRE_ERSPAN3 => {
            let erspan: [u8; tunnel::ERSPAN3_LEN] = view.read(payload)?;
            if erspan[0] >> 4 != tunnel::ERSPAN3_VERSION {
                return Err(Malformed);
            }
            let platform = if erspan[tunnel::ERSPAN3_LEN - 1] & 1 != 0 {
                tunnel::ERSPAN3_PLATFORM_LEN
            } else {
                0
            };
            Some((
                Counter::DecapErspan3,
                payload + tunnel::ERSPAN3_LEN + platform,
            ))
        }
        _ => None,
    })
}

/// VXLAN on its configured port, or Geneve carrying Ethernet: the tunnel type and where the
/// inner frame starts. Any other UDP: `None`.
#[inline(always)]
fn udp_tunnel(view: View<'_>, l4: usize) -> Result<Option<(Counter, usize)>, Malformed> {
    let header: [u8; UDP_HEADER_LEN] = view.read(l4)?;
    let dst_port = u16::from_be_bytes([header[2], header[3]]);
    let payload = l4 + UDP_HEADER_LEN;
    // SAFETY: a plain read of a global the loader sets before the program runs.
    if u32::from(dst_port) == unsafe { ptr::read_volatile(&raw const VXLAN_PORT) } {
        let vxlan: [u8; tunnel::VXLAN_LEN] = view.read(payload)?;
        if vxlan[0] & tunnel::VXLAN_FLAG_I == 0 {
            return Err(Malformed);
        }
        return Ok(Some((Counter::DecapVxlan, payload + tunnel::VXLAN_LEN)));
    }
    if dst_port != tunnel::GENEVE_PORT {
        return Ok(None);
    }
    let geneve: [u8; tunnel::GENEVE_LEN] = view.read(payload)?;
    if geneve[0] >> 6 != 0 {
        return Err(Malformed);
    }
    if u16::from_be_bytes([geneve[2], geneve[3]]) != tunnel::TRANSPARENT_ETHERNET {
        return Ok(None);
    }
    let options = usize::from(geneve[0] & 0x3f) * 4;
    Ok(Some((
        Counter::DecapGeneve,
        payload + tunnel::GENEVE_LEN + options,
    )))
}

// Each fixed-size header is read whole, in one bounds check at a constant offset, before anything
// at a variable offset. Reading fields one by one lets LLVM drop checks it deems implied by a later
// variable-offset check, which the verifier cannot follow.

#[inline(always)]
fn classify_ipv4(view: View<'_>, l3: usize) -> Result<Class, Malformed> {
    let header: [u8; IPV4_MIN_HEADER_LEN] = view.read(l3)?;
    let header_len = usize::from(header[0] & 0x0f) * 4;
    if header[0] >> 4 != 4 || header_len < IPV4_MIN_HEADER_LEN {
        return Err(Malformed);
    }
    let ip_end = l3 + usize::from(u16::from_be_bytes([header[2], header[3]]));
    let l4 = l3 + header_len;
    if ip_end < l4 || ip_end > view.len() {
        return Err(Malformed);
    }
    let fragment_offset = u16::from_be_bytes([header[6], header[7]]) & IPV4_OFFSET_MASK;
    let src = [header[12], header[13], header[14], header[15]];
    let dst = [header[16], header[17], header[18], header[19]];
    // SAFETY: a plain read of a global the loader sets before the program runs.
    let peers = if unsafe { ptr::read_volatile(&raw const FILTER_DC_ADDRESSES) } != 0 {
        let src_is_dc = DC_V4.get_ptr(src).is_some();
        if !src_is_dc && DC_V4.get_ptr(dst).is_none() {
            return Ok(Class::Unwatched);
        }
        Peers::V4 { src_is_dc, dst }
    } else {
        Peers::Any
    };
    if fragment_offset != 0 {
        return Ok(Class::Matched);
    }
    classify_l4(view, header[9], l4, ip_end, peers)
}

#[inline(always)]
fn classify_ipv6(view: View<'_>, l3: usize) -> Result<Class, Malformed> {
    let header: [u8; IPV6_HEADER_LEN] = view.read(l3)?;
    if header[0] >> 4 != 6 {
        return Err(Malformed);
    }
    let ip_end = l3 + IPV6_HEADER_LEN + usize::from(u16::from_be_bytes([header[4], header[5]]));
    if ip_end > view.len() {
        return Err(Malformed);
    }
    let mut src = [0_u8; 16];
    let mut dst = [0_u8; 16];
    src.copy_from_slice(&header[8..24]);
    dst.copy_from_slice(&header[24..40]);
    // SAFETY: a plain read of a global the loader sets before the program runs.
    let peers = if unsafe { ptr::read_volatile(&raw const FILTER_DC_ADDRESSES) } != 0 {
        let src_is_dc = DC_V6.get_ptr(src).is_some();
        if !src_is_dc && DC_V6.get_ptr(dst).is_none() {
            return Ok(Class::Unwatched);
        }
        Peers::V6 { src_is_dc, dst }
    } else {
        Peers::Any
    };
    let mut next_header = header[6];
    let mut offset = l3 + IPV6_HEADER_LEN;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        if !matches!(
            next_header,
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_AH | IPPROTO_FRAGMENT
        ) {
            return classify_l4(view, next_header, offset, ip_end, peers);
        }
        // Every extension header is at least 8 bytes: next header, length, then 6 more.
        let extension: [u8; 8] = view.read(offset)?;
        let header_len = match next_header {
            IPPROTO_FRAGMENT => {
                if u16::from_be_bytes([extension[2], extension[3]]) >> 3 != 0 {
                    return Ok(Class::Matched);
                }
                8
            }
            IPPROTO_AH => (usize::from(extension[1]) + 2) * 4,
            _ => (usize::from(extension[1]) + 1) * 8,
        };
        next_header = extension[0];
        offset += header_len;
        if offset > MAX_L4_OFFSET {
            return Err(Malformed);
        }
    }
    Err(Malformed)
}

#[inline(always)]
fn classify_l4(
    view: View<'_>,
    protocol: u8,
    l4: usize,
    ip_end: usize,
    peers: Peers,
) -> Result<Class, Malformed> {
    if l4 > MAX_L4_OFFSET {
        return Err(Malformed);
    }
    // Where a TCP segment's payload starts; 0 for UDP.
    let mut payload = 0;
    let (transport, ports) = match protocol {
        IPPROTO_TCP => {
            let header: [u8; TCP_MIN_HEADER_LEN] = view.read(l4)?;
            let header_len = usize::from(header[12] >> 4) * 4;
            if header_len < TCP_MIN_HEADER_LEN || l4 + header_len > ip_end {
                return Err(Malformed);
            }
            payload = l4 + header_len;
            (
                port_flags::TCP,
                [header[0], header[1], header[2], header[3]],
            )
        }
        IPPROTO_UDP => {
            let header: [u8; UDP_HEADER_LEN] = view.read(l4)?;
            if l4 + UDP_HEADER_LEN > ip_end {
                return Err(Malformed);
            }
            (
                port_flags::UDP,
                [header[0], header[1], header[2], header[3]],
            )
        }
        _ => return Ok(Class::Unwatched),
    };
    let watched = |port: u16| {
        PORTS
            .get(u32::from(port))
            .is_some_and(|flags| flags & transport != 0)
    };
    let src_port = u16::from_be_bytes([ports[0], ports[1]]);
    let dst_port = u16::from_be_bytes([ports[2], ports[3]]);
    if watched(src_port) || watched(dst_port) {
        if shed_name_query(src_port, dst_port, &peers) {
            return Ok(Class::Shed);
        }
        return Ok(Class::Matched);
    }
    if payload == 0 || (src_port < RPC_DYNAMIC_PORT_MIN && dst_port < RPC_DYNAMIC_PORT_MIN) {
        return Ok(Class::Unwatched);
    }
    Ok(rpc_header(
        view, payload, ip_end, src_port, dst_port, &peers,
    ))
}

#[inline(always)]
fn is_name_port(port: u16) -> bool {
    NAME_QUERY_PORTS.contains(&port)
}

/// Whether the limiter sheds this frame of a name-service exchange: the class is being shed, the
/// client (the side not on the service's port) is not a DC, and the sample does not keep it.
#[inline(always)]
fn shed_name_query(src_port: u16, dst_port: u16, peers: &Peers) -> bool {
    let keep = match SHED.get(shed_class::NAME_QUERIES) {
        Some(&keep) if keep > shed_keep::ALL => keep,
        _ => return false,
    };
    let server_is_destination = is_name_port(dst_port);
    if !server_is_destination && !is_name_port(src_port) {
        return false;
    }
    if peers.is_dc(!server_is_destination) {
        return false;
    }
    // SAFETY: a helper without arguments.
    keep == shed_keep::NONE || unsafe { bpf_get_prandom_u32() } % keep != 0
}

/// The DCE-RPC header test: a connection-oriented PDU of version 5.0 of a known type, with a
/// defined drep (integers either way, ASCII, IEEE floats), a frag_length from 16 to
/// `RPC_MAX_FRAG_LENGTH` and an auth verifier that fits in it, starts the payload, and the
/// server's side (the destination of a client's PDU types, the source of a server's) is a port
/// in the dynamic range of a host that may be a DC ([`Peers::may_be_dc`]). `RpcHeader` with
/// that port, or `Unwatched`.
#[inline(always)]
fn rpc_header(
    view: View<'_>,
    payload: usize,
    ip_end: usize,
    src_port: u16,
    dst_port: u16,
    peers: &Peers,
) -> Class {
    if payload + RPC_HEADER_LEN > ip_end {
        return Class::Unwatched;
    }
    let Ok(header) = view.read::<[u8; RPC_HEADER_LEN]>(payload) else {
        return Class::Unwatched;
    };
    let to_server = match header[2] {
        // request, bind, alter_context, auth3, co_cancel, orphaned
        0 | 11 | 14 | 16 | 18 | 19 => true,
        // response, fault, bind_ack, bind_nak, alter_context_resp, shutdown
        2 | 3 | 12 | 13 | 15 | 17 => false,
        _ => return Class::Unwatched,
    };
    let drep = header[4];
    if header[0] != 5
        || header[1] != 0
        || header[3] & 0x08 != 0
        || (drep != 0x10 && drep != 0x00)
        || header[5] != 0
        || header[6] != 0
        || header[7] != 0
    {
        return Class::Unwatched;
    }
    let (frag_length, auth_length) = if drep == 0x10 {
        (
            u16::from_le_bytes([header[8], header[9]]),
            u16::from_le_bytes([header[10], header[11]]),
        )
    } else {
        (
            u16::from_be_bytes([header[8], header[9]]),
            u16::from_be_bytes([header[10], header[11]]),
        )
    };
    if usize::from(frag_length) < RPC_HEADER_LEN
        || frag_length > RPC_MAX_FRAG_LENGTH
        || (auth_length != 0
            && usize::from(frag_length)
                < RPC_HEADER_LEN + RPC_SEC_TRAILER_LEN + usize::from(auth_length))
    {
        return Class::Unwatched;
    }
    let server_port = if to_server { dst_port } else { src_port };
    if server_port >= RPC_DYNAMIC_PORT_MIN && peers.may_be_dc(to_server) {
        Class::RpcHeader(server_port)
    } else {
        Class::Unwatched
    }
}

/// Writes the frame (the inner one of a tunnel), up to the snap length, behind a header into the
/// ring buffer, and counts the outcome: every matched frame ends up `Copied` or `RingbufFull`.
#[inline(always)]
fn copy_frame(view: View<'_>, rpc_port: u32) {
    let ctx = view.ctx;
    let frame_len = view.len() as u32;
    // SAFETY: a plain read of a global the loader sets before the program runs.
    let snap_len = unsafe { ptr::read_volatile(&raw const SNAP_LEN) };
    let wanted = if frame_len < snap_len {
        frame_len
    } else {
        snap_len
    };
    if wanted == 0 {
        count(Counter::RingbufFull, 1);
        return;
    }
    // The mask changes nothing for wanted <= MAX_SNAP_LEN, and proves 1..=MAX_SNAP_LEN to the
    // verifier, which rejects a plain min() as a possibly zero-sized read.
    let cap_len = ((wanted - 1) & (MAX_SNAP_LEN - 1)) + 1;
    let Some(record) = SCRATCH.get_ptr_mut(0) else {
        count(Counter::RingbufFull, 1);
        return;
    };
    // SAFETY: the per-CPU slot is ours alone while the program runs on this CPU.
    let record = unsafe { &mut *record };
    // SAFETY: the destination holds MAX_SNAP_LEN bytes, the frame at least cap_len.
    let loaded = unsafe {
        bpf_xdp_load_bytes(
            ctx.ctx,
            view.base as u32,
            record.frame.as_mut_ptr().cast::<c_void>(),
            cap_len,
        )
    };
    if loaded != 0 {
        count(Counter::RingbufFull, 1);
        return;
    }
    record.header = RecordHeader {
        // SAFETY: a helper without arguments.
        timestamp_ns: unsafe { bpf_ktime_get_ns() },
        ifindex: ctx.ingress_ifindex() as u32,
        orig_len: frame_len,
        cap_len,
        rpc_port,
    };
    // SAFETY: header and copied bytes lie within the record, cap_len <= MAX_SNAP_LEN.
    let bytes = unsafe {
        core::slice::from_raw_parts(
            ptr::from_ref(record).cast::<u8>(),
            RecordHeader::SIZE + cap_len as usize,
        )
    };
    if FRAMES.output::<[u8]>(bytes, 0).is_ok() {
        count(Counter::Copied, 1);
        if cap_len < frame_len {
            count(Counter::Truncated, 1);
        }
    } else {
        count(Counter::RingbufFull, 1);
    }
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
