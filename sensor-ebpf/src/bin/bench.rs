//! Reference programs for the benchmarks and the packet generator, never loaded by the sensor:
//! the cheapest possible XDP programs, to measure the capture program against, and `XDP_TX`, which
//! under `BPF_PROG_TEST_RUN` with live frames turns into an in-kernel packet generator.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
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

#[xdp]
fn bench_tx(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_TX
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
