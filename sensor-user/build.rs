//! Builds the XDP programs of `sensor-ebpf` for `bpfel-unknown-none` into `OUT_DIR`, where
//! `include_bytes!` embeds them in the sensor. Only with the `capture` feature: replay alone
//! (`dcwatch-replay`, the benchmarks built without it) needs no eBPF toolchain.

#[cfg(feature = "capture")]
fn main() -> anyhow::Result<()> {
    use anyhow::{Context as _, anyhow};
    use aya_build::{Package, Toolchain};

    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = metadata
        .packages
        .iter()
        .find(|package| package.name.as_str() == "sensor-ebpf")
        .ok_or_else(|| anyhow!("sensor-ebpf is not in the workspace"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("sensor-ebpf's manifest has no parent directory"))?;
    // The eBPF crate needs `-Z build-std=core`, which stable cargo allows only with
    // RUSTC_BOOTSTRAP; aya-build passes the variable through but does not set it (TOOLCHAIN.md).
    // SAFETY: build scripts are single-threaded at this point.
    unsafe { std::env::set_var("RUSTC_BOOTSTRAP", "1") };
    aya_build::build_ebpf(
        [Package {
            name: ebpf.name.as_str(),
            root_dir: root_dir.as_str(),
            ..Default::default()
        }],
        Toolchain::Custom("stable"),
    )
}

#[cfg(not(feature = "capture"))]
fn main() {}
