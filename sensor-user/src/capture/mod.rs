//! Live capture: the XDP program loaded, configured and attached, and the ring buffer it fills.

mod dynamic_ports;
mod error;
mod kernel;
mod loader;
mod reader;

pub use dynamic_ports::{DynamicPortCounters, DynamicPorts, MAX_LEARNED_PORTS, PortChange};
pub use error::CaptureError;
pub use loader::{AttachedInterface, Capture, KernelCounters};
pub use reader::{FrameReader, FrameRing, InvalidRecord};

/// The XDP objects built from `sensor-ebpf` by the build script.
pub mod objects {
    /// The capture program the sensor loads.
    pub static CAPTURE: &[u8] =
        aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/dcwatch-xdp"));
    /// Reference programs (pass, drop, tx) for benchmarks and the packet generator.
    pub static BENCH: &[u8] =
        aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/dcwatch-bench-xdp"));
}
