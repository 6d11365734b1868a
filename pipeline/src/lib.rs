//! dcwatch's pipeline: captured frames, from the ring buffer or a capture file, to activities.
//! Decode, flows and IP fragments, TCP reassembly, and the protocol dissectors. No aya and no
//! tokio: replay, fuzzing and benchmarks use it offline, and the sensor daemon wires it live.

pub mod activity;
pub mod capture_file;
pub mod community_id;
pub mod decap;
pub mod decode;
pub mod dissect;
pub mod flow;
pub mod frame;
pub mod services;
pub mod workers;
