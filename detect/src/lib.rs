//! dcwatch's detectors (DETECTIONS.md): activities and the directory in, alerts in Defender for
//! Identity's shape out.
//!
//! - `Engine` is the one entry point: the backend feeds it everything it ingests, a replay feeds
//!   it a capture's activities.
//! - Time comes from the activities (`time`), never the wall clock, so a replay judges as the
//!   live sensor did; activities of several sensors slightly out of order are fine, since every
//!   window is measured on the activities' own times.
//! - `Knowledge` answers "is this a DC, does this account exist, is it a honeytoken" from the
//!   directory, the configuration, or, with neither, from the traffic; the alert's `relied_on`
//!   says which.
//! - Each detection is a module of `detectors`, with its state in bounded tables
//!   (`bounded::BoundedMap`, `bounded::Window`): what is evicted is counted.
//! - The `book` merges findings into alerts: one open alert per (type, primary entity).
//! - `profiles` keep what each computer, user and DC usually does; `learning` holds the
//!   learning periods and the gate behavioural findings pass (Part II).
//! - `checkpoint` is what a backend stores with each chunk's alerts so that an engine rebuilt
//!   elsewhere holds the same profiles and windows.

pub mod book;
pub mod bounded;
pub mod catalogue;
pub mod checkpoint;
pub mod config;
mod damping;
pub mod detectors;
pub mod engine;
pub mod finding;
pub mod knowledge;
pub mod learning;
pub mod observed;
pub mod profiles;
pub mod profiling;
pub mod tickets;
pub mod time;

pub use book::Raised;
pub use config::{Config, Threshold};
pub use detectors::Key;
pub use engine::Engine;
