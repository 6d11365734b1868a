//! What the benchmarks share: the reference programs and robust statistics.

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

/// Pins the calling thread to `cpu`, so the scheduler cannot move it mid-measurement; a failure
/// (fewer CPUs than asked for) leaves it unpinned.
pub fn pin_to_cpu(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes a bit of the set we own; sched_setaffinity(0) is this thread.
    unsafe {
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
    }
}

/// The median of `values` (the mean of the middle two for an even count); 0 for none.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        len if len % 2 == 1 => values[len / 2],
        len => (values[len / 2 - 1] + values[len / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }
}
