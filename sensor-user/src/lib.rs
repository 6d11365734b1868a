//! dcwatch's sensor: captures the traffic of Active Directory domain controllers with XDP and
//! turns it into what the backend's detectors need.
//!
//! The `dcwatch-sensor` binary is a thin command line over this library; what turns frames into
//! activities is the `dcwatch-pipeline` crate. Live capture (`capture`, `live`) is the `capture`
//! feature's: without it, nothing here needs the eBPF programs or aya.

#[cfg(feature = "capture")]
pub mod capture;
pub mod cli;
pub mod config;
pub mod directory;
pub mod epm_query;
pub mod health;
pub mod limiter;
#[cfg(feature = "capture")]
pub mod live;
pub mod output;
pub mod pipeline;
pub mod probe;
pub mod reload;
pub mod replay;
pub mod stats;
pub mod syslog;
pub mod transport;
