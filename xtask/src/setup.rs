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
/// benchmark and the performance report's test (bench/tests/report.rs); python3-venv for the
/// virtual environment typos is installed into.
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
    "python3-venv",
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
/// names that version once it is installed. cargo-deny checks licences, bans and sources
/// (deny.toml) and cargo-fuzz runs the fuzz targets, both in `cargo xtask test`.
const CARGO_TOOLS: &[CargoTool] = &[
    CargoTool {
        name: "cargo-deny",
        version: "0.20.2",
        version_command: &["cargo", "deny", "--version"],
    },
    CargoTool {
        name: "cargo-fuzz",
        version: "0.13.2",
        version_command: &["cargo", "fuzz", "--version"],
    },
];
/// cargo-deb builds the .deb packages (`cargo xtask package`, in `--full` only): installed on
/// first use, not by `setup`.
pub(crate) const CARGO_DEB: CargoTool = CargoTool {
    name: "cargo-deb",
    version: "3.8.0",
    version_command: &["cargo", "deb", "--version"],
};
/// typos checks the spelling (_typos.toml) in `cargo xtask test`. Its authors publish the same
/// binary as a wheel on PyPI, which installs in seconds where `cargo install typos-cli` builds
/// for minutes; it goes into a virtual environment of its own.
const TYPOS_VERSION: &str = "1.52.0";
const TOOLS_VENV: &str = "/var/cache/dcwatch/tools";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";

pub(crate) fn run() -> anyhow::Result<()> {
    apt_packages()?;
    rust_src()?;
    bpf_linker()?;
    for tool in CARGO_TOOLS {
        tool.install()?;
    }
    typos()?;
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
        tool_install()
            .args([
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

/// A command-line tool installed with `cargo install`.
pub(crate) struct CargoTool {
    name: &'static str,
    version: &'static str,
    version_command: &'static [&'static str],
}

impl CargoTool {
    /// Installs `name@version` unless `version_command` already reports that version.
    pub(crate) fn install(&self) -> anyhow::Result<()> {
        let (program, args) = self
            .version_command
            .split_first()
            .context("a version command")?;
        let mut command = if *program == "cargo" {
            shell::cargo()
        } else {
            Command::new(program)
        };
        if reports_version(command.args(args), self.version) {
            return Ok(());
        }
        eprintln!("setup: cargo install {}@{}", self.name, self.version);
        shell::run(tool_install().args([
            &format!("{}@{}", self.name, self.version),
            "--locked",
            "--force",
        ]))
    }
}

/// `cargo install` for tools this project only runs: their own release profiles ask for fat LTO
/// in one codegen unit (cargo-deny) or full debug information (bpf-linker), which on a fresh
/// 2-core machine cost minutes of the test run and buy nothing a check or a link needs.
fn tool_install() -> Command {
    let mut command = shell::cargo();
    command
        .arg("install")
        .env("CARGO_PROFILE_RELEASE_LTO", "off")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false");
    command
}

/// Whether `command` runs and prints `version` as one of its words.
fn reports_version(command: &mut Command, version: &str) -> bool {
    output(command)
        .unwrap_or_default()
        .split_whitespace()
        .any(|word| word == version)
}

/// Where [`typos`] installs the typos binary.
pub(crate) fn typos_binary() -> std::path::PathBuf {
    std::path::Path::new(TOOLS_VENV).join("bin/typos")
}

/// Installs the typos binary from PyPI where missing ([`TYPOS_VERSION`]).
fn typos() -> anyhow::Result<()> {
    if reports_version(Command::new(typos_binary()).arg("--version"), TYPOS_VERSION) {
        return Ok(());
    }
    eprintln!("setup: typos {TYPOS_VERSION} from PyPI into {TOOLS_VENV}");
    // Debian's python3, whatever else is first on PATH: python3-venv is what apt installed.
    shell::run(
        Command::new("/usr/bin/python3")
            .args(["-m", "venv"])
            .arg(TOOLS_VENV),
    )?;
    shell::run(
        Command::new(std::path::Path::new(TOOLS_VENV).join("bin/pip"))
            .args(["install", "-q", "--disable-pip-version-check"])
            .arg(format!("typos=={TYPOS_VERSION}")),
    )
}
