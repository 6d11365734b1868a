//! dcwatch's end-to-end test bed: what the sensor's integration tests, the benchmarks and the demo
//! need to put real frames on a real interface, all inside network namespaces made here and
//! removed when their guards drop.
//!
//! Deliberately free of the sensor's own crates, so `cargo xtask` can use it before the eBPF
//! toolchain is installed.

pub mod backend_process;
pub mod cluster_servers;
pub mod corpus;
pub mod exposition;
pub mod fixture;
pub mod frames;
pub mod hog;
pub mod netns;
pub mod ntlm_rpc;
pub mod pcap;
pub mod sender;
pub mod sensor_process;
pub mod stats_file;
pub mod traffic;
