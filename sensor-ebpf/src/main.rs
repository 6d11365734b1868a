//! dcwatch's capture program: keeps the frames that matter to domain controllers.
//!
//! It parses Ethernet, up to two 802.1Q/802.1ad tags, IPv4 (with options) and IPv6 (with the
//! common extension headers) down to the TCP or UDP ports, matches them against the watched port
//! set and, when configured, the domain-controller address sets, copies each matched frame (up to
//! the snap length) into the `FRAMES` ring buffer, and counts everything in `COUNTERS`. Non-first
//! IP fragments carry no ports: those to or from a watched address are copied for userspace to
//! reassemble. The verdict depends on the mode only: `mirror` drops every frame (a mirror NIC's
//! traffic is of no use to the host), `host` passes every frame (never break a host's traffic).
#![no_std]
#![no_main]

use core::{ffi::c_void, ptr};

use aya_ebpf::{
    bindings::xdp_action,
    helpers::{bpf_ktime_get_ns, generated::bpf_xdp_load_bytes},
    macros::{map, xdp},
    maps::{Array, HashMap, PerCpuArray, RingBuf},
    programs::XdpContext,
};
use sensor_common::{
    Counter, DEFAULT_SNAP_LEN, MAX_DC_ADDRESSES, MAX_SNAP_LEN, Record, RecordHeader, capture_mode,
    port_flags,
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

/// What the parser made of a frame.
enum Class {
    /// IP, but not on a watched port or address.
    Unwatched,
    Matched,
    NonIp,
}

/// A header was cut short, inconsistent, or nested deeper than the program follows.
struct Malformed;

#[xdp]
pub fn dcwatch_capture(ctx: XdpContext) -> u32 {
    capture(&ctx);
    verdict()
}

/// Counts the frame, and copies it to the ring buffer if it matches.
#[inline(always)]
fn capture(ctx: &XdpContext) {
    let frame_len = ctx.data_end() - ctx.data();
    count(Counter::Seen, 1);
    count(Counter::Bytes, frame_len as u64);
    match classify(ctx) {
        Ok(Class::Matched) => {
            count(Counter::Matched, 1);
            copy_frame(ctx, frame_len as u32);
        }
        Ok(Class::Unwatched) => {}
        Ok(Class::NonIp) => count(Counter::NonIp, 1),
        Err(Malformed) => count(Counter::Malformed, 1),
    }
}

/// The same for every frame: what becomes of it depends on the mode alone.
#[inline(always)]
fn verdict() -> u32 {
    // SAFETY: a plain read of a global the loader sets before the program runs.
    if unsafe { ptr::read_volatile(&CAPTURE_MODE) } == capture_mode::HOST {
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
fn read_be16(ctx: &XdpContext, offset: usize) -> Result<u16, Malformed> {
    read::<[u8; 2]>(ctx, offset).map(u16::from_be_bytes)
}

#[inline(always)]
fn is_vlan_tag(ethertype: u16) -> bool {
    matches!(ethertype, ETH_P_8021Q | ETH_P_8021AD | ETH_P_QINQ_LEGACY)
}

#[inline(always)]
fn classify(ctx: &XdpContext) -> Result<Class, Malformed> {
    let mut ethertype = read_be16(ctx, ETH_HEADER_LEN - 2)?;
    let mut l3 = ETH_HEADER_LEN;
    for _ in 0..MAX_VLAN_TAGS {
        if !is_vlan_tag(ethertype) {
            break;
        }
        ethertype = read_be16(ctx, l3 + 2)?;
        l3 += VLAN_TAG_LEN;
    }
    match ethertype {
        ETH_P_IPV4 => classify_ipv4(ctx, l3),
        ETH_P_IPV6 => classify_ipv6(ctx, l3),
        tag if is_vlan_tag(tag) => Err(Malformed),
        _ => Ok(Class::NonIp),
    }
}

// Each fixed-size header is read whole, in one bounds check at a constant offset, before anything
// at a variable offset. Reading fields one by one lets LLVM drop checks it deems implied by a later
// variable-offset check, which the verifier cannot follow.

#[inline(always)]
fn classify_ipv4(ctx: &XdpContext, l3: usize) -> Result<Class, Malformed> {
    let header: [u8; IPV4_MIN_HEADER_LEN] = read(ctx, l3)?;
    let header_len = usize::from(header[0] & 0x0f) * 4;
    if header[0] >> 4 != 4 || header_len < IPV4_MIN_HEADER_LEN {
        return Err(Malformed);
    }
    let ip_end = l3 + usize::from(u16::from_be_bytes([header[2], header[3]]));
    let l4 = l3 + header_len;
    if ip_end < l4 || ip_end > ctx.data_end() - ctx.data() {
        return Err(Malformed);
    }
    let fragment_offset = u16::from_be_bytes([header[6], header[7]]) & IPV4_OFFSET_MASK;
    let src = [header[12], header[13], header[14], header[15]];
    let dst = [header[16], header[17], header[18], header[19]];
    // SAFETY: a plain read of a global the loader sets before the program runs.
    if unsafe { ptr::read_volatile(&FILTER_DC_ADDRESSES) } != 0
        && DC_V4.get_ptr(src).is_none()
        && DC_V4.get_ptr(dst).is_none()
    {
        return Ok(Class::Unwatched);
    }
    if fragment_offset != 0 {
        return Ok(Class::Matched);
    }
    classify_l4(ctx, header[9], l4, ip_end)
}

#[inline(always)]
fn classify_ipv6(ctx: &XdpContext, l3: usize) -> Result<Class, Malformed> {
    let header: [u8; IPV6_HEADER_LEN] = read(ctx, l3)?;
    if header[0] >> 4 != 6 {
        return Err(Malformed);
    }
    let ip_end = l3 + IPV6_HEADER_LEN + usize::from(u16::from_be_bytes([header[4], header[5]]));
    if ip_end > ctx.data_end() - ctx.data() {
        return Err(Malformed);
    }
    let mut src = [0_u8; 16];
    let mut dst = [0_u8; 16];
    src.copy_from_slice(&header[8..24]);
    dst.copy_from_slice(&header[24..40]);
    // SAFETY: a plain read of a global the loader sets before the program runs.
    if unsafe { ptr::read_volatile(&FILTER_DC_ADDRESSES) } != 0
        && DC_V6.get_ptr(src).is_none()
        && DC_V6.get_ptr(dst).is_none()
    {
        return Ok(Class::Unwatched);
    }
    let mut next_header = header[6];
    let mut offset = l3 + IPV6_HEADER_LEN;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        if !matches!(
            next_header,
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_AH | IPPROTO_FRAGMENT
        ) {
            return classify_l4(ctx, next_header, offset, ip_end);
        }
        // Every extension header is at least 8 bytes: next header, length, then 6 more.
        let extension: [u8; 8] = read(ctx, offset)?;
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
    ctx: &XdpContext,
    protocol: u8,
    l4: usize,
    ip_end: usize,
) -> Result<Class, Malformed> {
    if l4 > MAX_L4_OFFSET {
        return Err(Malformed);
    }
    let (transport, ports) = match protocol {
        IPPROTO_TCP => {
            let header: [u8; TCP_MIN_HEADER_LEN] = read(ctx, l4)?;
            let header_len = usize::from(header[12] >> 4) * 4;
            if header_len < TCP_MIN_HEADER_LEN || l4 + header_len > ip_end {
                return Err(Malformed);
            }
            (
                port_flags::TCP,
                [header[0], header[1], header[2], header[3]],
            )
        }
        IPPROTO_UDP => {
            let header: [u8; UDP_HEADER_LEN] = read(ctx, l4)?;
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
    if watched(u16::from_be_bytes([ports[0], ports[1]]))
        || watched(u16::from_be_bytes([ports[2], ports[3]]))
    {
        Ok(Class::Matched)
    } else {
        Ok(Class::Unwatched)
    }
}

/// Writes the frame, up to the snap length, behind a header into the ring buffer, and counts the
/// outcome: every matched frame ends up `Copied` or `RingbufFull`.
#[inline(always)]
fn copy_frame(ctx: &XdpContext, frame_len: u32) {
    // SAFETY: a plain read of a global the loader sets before the program runs.
    let snap_len = unsafe { ptr::read_volatile(&SNAP_LEN) };
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
            0,
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
        reserved: 0,
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
