//! dcwatch's sensor: captures the traffic of Active Directory domain controllers with XDP and
//! turns it into what the backend's detectors need.
//!
//! The `dcwatch-sensor` binary is a thin command line over this library.

pub mod activity;
pub mod capture;
pub mod capture_file;
pub mod cli;
pub mod community_id;
pub mod config;
pub mod decode;
pub mod directory;
pub mod dissect;
pub mod epm_query;
pub mod flow;
pub mod frame;
pub mod limiter;
pub mod live;
pub mod output;
pub mod pipeline;
pub mod replay;
pub mod services;
pub mod stats;
pub mod syslog;
pub mod transport;
