//! The reference XDP programs the XDP benchmarks compare against (the `ebpf` feature's).

use anyhow::Context as _;
use aya::{Ebpf, programs::Xdp};

/// The reference programs (`bench_pass`, `bench_drop`, `bench_tx`), loaded.
pub fn load_reference_programs() -> anyhow::Result<Ebpf> {
    let mut ebpf = Ebpf::load(sensor_user::capture::objects::BENCH)
        .context("loading the reference XDP programs")?;
    for name in ["bench_pass", "bench_drop", "bench_tx"] {
        reference_program(&mut ebpf, name)?.load()?;
    }
    Ok(ebpf)
}

pub fn reference_program<'a>(ebpf: &'a mut Ebpf, name: &str) -> anyhow::Result<&'a mut Xdp> {
    let program = ebpf
        .program_mut(name)
        .with_context(|| format!("{name} missing from the reference object"))?;
    Ok(program.try_into()?)
}

/// Frames `bench_drop` has received, summed over CPUs.
pub fn bare_drop_received(ebpf: &Ebpf) -> anyhow::Result<u64> {
    let map = ebpf
        .map("RECEIVED")
        .context("RECEIVED missing from the reference object")?;
    let received: aya::maps::PerCpuArray<_, u64> = aya::maps::PerCpuArray::try_from(map)?;
    Ok(received.get(&0, 0)?.iter().sum())
}
