//! Reference programs for the benchmarks and the packet generator, never loaded by the sensor:
//! the cheapest possible XDP programs, to measure the capture program against, and `XDP_TX`, which
//! under `BPF_PROG_TEST_RUN` with live frames turns into an in-kernel packet generator.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
    helpers::bpf_get_prandom_u32,
    macros::{map, xdp},
    maps::PerCpuArray,
    programs::XdpContext,
};
use sensor_ebpf as _;

/// Frames `bench_drop` has seen, so a baseline receiver reports what reached it.
#[map]
static RECEIVED: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[xdp]
fn bench_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[xdp]
fn bench_drop(_ctx: XdpContext) -> u32 {
    if let Some(received) = RECEIVED.get_ptr_mut(0) {
        // SAFETY: this CPU's slot; XDP programs do not nest on a CPU.
        unsafe { *received += 1 };
    }
    xdp_action::XDP_DROP
}

/// Client addresses `bench_tx` spreads an untagged IPv4 frame over: the last byte of its source
/// address becomes 64 to 127 (never the lab's DC, .1).
const TX_SOURCES: u32 = 64;
/// That byte's offset: Ethernet, then the IPv4 header's source address at 12..16.
const TX_SOURCE_LAST_BYTE: usize = 14 + 15;

/// Transmits each frame back out, from one of `TX_SOURCES` clients chosen at random when it is
/// untagged IPv4, so that a receiver sharding flows over workers has flows to share. The IPv4
/// header checksum is left as it was: the generator's frames carry none.
#[xdp]
fn bench_tx(ctx: XdpContext) -> u32 {
    let start = ctx.data();
    if start + TX_SOURCE_LAST_BYTE < ctx.data_end() {
        // SAFETY: both bytes lie within the frame, checked just above.
        unsafe {
            let ethertype = [*((start + 12) as *const u8), *((start + 13) as *const u8)];
            if ethertype == [0x08, 0x00] {
                // SAFETY: a helper without arguments.
                let source = 64 + bpf_get_prandom_u32() % TX_SOURCES;
                *((start + TX_SOURCE_LAST_BYTE) as *mut u8) = source as u8;
            }
        }
    }
    xdp_action::XDP_TX
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
