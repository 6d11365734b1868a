//! The programs of this crate are its binaries, built for `bpfel-unknown-none` by sensor-user's
//! build script. This library lets sensor-user name the crate as a build dependency (so cargo
//! rebuilds the programs when their sources change) and holds what every program needs.
#![no_std]

/// Nothing in a verified program can panic at run time; a reachable panic fails verification.
#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
