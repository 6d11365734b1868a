//! `cargo xtask setup`: everything a fresh machine needs, installed only where missing.

use std::process::Command;

use anyhow::Context as _;

use crate::shell::{self, output};

/// Debian packages: LLVM 22 for bpf-linker (rustc 1.95 emits LLVM 22 bitcode), iproute2 and
/// ethtool for the network-namespace tests and the demo, rsyslog with its GnuTLS driver for the
/// backend's syslog-output tests (a real receiver over UDP, TCP and TLS), a Samba AD DC and
/// openssl for the directory sync tests (sensor-user/tests/directory_sync.rs,
/// tests/lab/tools/sync_dc.sh), Chromium and its WebDriver (one source package, so they always
/// match) for the console's browser tests, PostgreSQL and nats-server for the cluster's tests
/// and benchmark (backend/tests/cluster.rs, bench/src/bin/cluster-scale.rs); MIT krb5's headers,
/// pkg-config and libclang to build the sensor's Kerberos bind (libgssapi-sys runs bindgen), and
/// tcpdump for its test (the session on the wire is sealed); tcpdump and tshark for the replay
/// benchmark and the performance report's test (bench/tests/report.rs).
const APT_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libllvm22",
    "iproute2",
    "ethtool",
    "rsyslog",
    "rsyslog-gnutls",
    "samba",
    "samba-ad-dc",
    "samba-ad-provision",
    "samba-dsdb-modules",
    "python3-samba",
    "openssl",
    "chromium",
    "chromium-driver",
    "postgresql",
    "nats-server",
    "libkrb5-dev",
    "libclang-dev",
    "pkg-config",
    "tcpdump",
    "tshark",
];
/// Services Debian starts when Samba is installed: the tests' DCs run in their own namespaces,
/// never on the host.
const HOST_SAMBA_SERVICES: &[&str] = &["samba-ad-dc", "smbd", "nmbd", "winbind"];
/// Services Debian starts with PostgreSQL and NATS: the tests run their own, unprivileged, on
/// loopback ports of their choosing.
const HOST_CLUSTER_SERVICES: &[&str] = &["postgresql", "nats-server"];

/// Building and booting the virtual appliance (`cargo xtask vm-image`, its boot test in
/// `cargo xtask test --full`): the Debian tree (mmdebstrap), the disk (sfdisk, mkfs.fat, mtools,
/// syslinux's MBR and loader; e2fsprogs is essential), the qcow2 and the emulator. Installed on
/// first use only, not by `setup`: about 120 MiB that the default run never needs.
const VM_PACKAGES: &[&str] = &[
    "mmdebstrap",
    "fdisk",
    "dosfstools",
    "mtools",
    "syslinux",
    "syslinux-common",
    "qemu-utils",
    "qemu-system-x86",
];
const BPF_LINKER_VERSION: &str = "0.13.0";
/// Cargo tools from crates.io, pinned: the crate, its version, and the command whose output
/// names that version once it is installed. cargo-deb builds the .deb packages
/// (`cargo xtask package`); cargo-deny checks licences, bans and sources (deny.toml), typos the
/// spelling (_typos.toml), and cargo-fuzz runs the fuzz targets, all in `cargo xtask test`.
const CARGO_TOOLS: &[(&str, &str, &[&str])] = &[
    ("cargo-deb", "3.8.0", &["cargo", "deb", "--version"]),
    ("cargo-deny", "0.20.2", &["cargo", "deny", "--version"]),
    ("typos-cli", "1.52.0", &["typos", "--version"]),
    ("cargo-fuzz", "0.13.2", &["cargo", "fuzz", "--version"]),
];
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";

pub(crate) fn run() -> anyhow::Result<()> {
    apt_packages()?;
    rust_src()?;
    bpf_linker()?;
    for (name, version, version_command) in CARGO_TOOLS {
        cargo_tool(name, version, version_command)?;
    }
    eprintln!("setup: ready");
    Ok(())
}

fn apt_packages() -> anyhow::Result<()> {
    let installed = |package: &str| {
        output(Command::new("dpkg-query").args(["-W", "-f=${Status}", package]))
            .is_some_and(|status| status.contains("ok installed"))
    };
    let had_samba = installed("samba");
    let had_cluster = installed("postgresql") && installed("nats-server");
    apt_install(APT_PACKAGES)?;
    // Best effort: a machine without systemd runs none of them anyway.
    if !had_samba {
        let _ = Command::new("systemctl")
            .args(["disable", "--now"])
            .args(HOST_SAMBA_SERVICES)
            .status();
    }
    if !had_cluster {
        let _ = Command::new("systemctl")
            .args(["disable", "--now"])
            .args(HOST_CLUSTER_SERVICES)
            .status();
    }
    Ok(())
}

/// What the virtual appliance's build and boot need ([`VM_PACKAGES`]).
pub(crate) fn vm_tools() -> anyhow::Result<()> {
    apt_install(VM_PACKAGES)
}

/// Installs those of `packages` that are missing.
pub(crate) fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|package| {
            output(Command::new("dpkg-query").args(["-W", "-f=${Status}", package]))
                .is_none_or(|status| !status.contains("ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("setup: apt-get install {}", missing.join(" "));
    shell::require_root("setup")?;
    shell::run(Command::new("apt-get").args(["update", "-q"]))?;
    shell::run(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn rust_src() -> anyhow::Result<()> {
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        "stable",
    ]))
    .context("rustup is needed: the eBPF crate builds with `rustup run stable`")?;
    if installed.lines().any(|line| line.starts_with("rust-src")) {
        return Ok(());
    }
    eprintln!("setup: rustup component add rust-src");
    shell::run(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        "stable",
    ]))
}

fn bpf_linker() -> anyhow::Result<()> {
    let version = output(Command::new("bpf-linker").arg("--version")).unwrap_or_default();
    if version.contains(BPF_LINKER_VERSION) {
        return Ok(());
    }
    eprintln!(
        "setup: cargo install bpf-linker@{BPF_LINKER_VERSION} (against LLVM 22, about a minute)"
    );
    // Its default feature wants LLVM 23, which Debian does not ship (TOOLCHAIN.md).
    shell::run(
        shell::cargo()
            .args([
                "install",
                &format!("bpf-linker@{BPF_LINKER_VERSION}"),
                "--locked",
                "--force",
                "--no-default-features",
                "--features",
                "llvm-22",
            ])
            .env("LLVM_PREFIX", LLVM_PREFIX),
    )
}

/// Installs `name@version` unless `version_command` already reports that version.
fn cargo_tool(name: &str, version: &str, version_command: &[&str]) -> anyhow::Result<()> {
    let (program, args) = version_command.split_first().context("a version command")?;
    let mut command = if *program == "cargo" {
        shell::cargo()
    } else {
        Command::new(program)
    };
    let reported = output(command.args(args)).unwrap_or_default();
    if reported.split_whitespace().any(|word| word == version) {
        return Ok(());
    }
    eprintln!("setup: cargo install {name}@{version}");
    shell::run(shell::cargo().args([
        "install",
        &format!("{name}@{version}"),
        "--locked",
        "--force",
    ]))
}
