//! The resource limiter: every tick it measures the host's CPU and memory and the sensor's own
//! memory, and sheds traffic by priority while the host has less free than the configured share,
//! restoring it step by step once load falls.
//!
//! The decisions ([`policy`]) and the ranking of traffic ([`priority`]) are pure functions of
//! what was measured; [`measure`] reads `/proc`; the daemon (`live`) applies the level to the XDP
//! program's `SHED` map and to the activities it emits.

pub mod measure;
pub mod policy;
pub mod priority;

pub use policy::{Level, Limiter, Load, Policy};
pub use priority::{Priority, ShedCounters, Shedder};
