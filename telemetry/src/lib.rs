//! What both daemons say about themselves, declared once: counters (the stats file's pairs and
//! the Prometheus metrics from one declaration, [`counters!`]), health issues ([`health`]), the
//! stats file ([`stats_file`]), the Prometheus exposition ([`prometheus`]) served with the
//! liveness and readiness probes ([`probe`]), the logs ([`logging`]), and their man pages and
//! completions ([`docs`]).

pub mod counters;
#[cfg(feature = "docs")]
pub mod docs;
pub mod health;
#[cfg(feature = "logging")]
pub mod logging;
#[cfg(feature = "probe")]
pub mod probe;
pub mod prometheus;
pub mod reload;
pub mod stats_file;

pub use counters::{CounterSet, Entry, Kind, Metric, Snapshot, Value};
