//! `cargo xtask vm-image [--out DIR]`: the virtual sensor appliance (vm-images/README.md), a small
//! Debian qcow2 that boots into dcwatch-sensor configured from a seed. mmdebstrap builds the tree
//! from the Debian mirror this machine's apt uses (its sources files), vm-images/customize.sh
//! installs the sensor's package and the appliance's files, and the disk is put together without
//! mounting anything: an MBR with syslinux, a FAT boot partition holding the kernel and initrd,
//! and an ext4 root filled by mke2fs from the tree. The image is rebuilt only when its inputs
//! change. `cargo xtask vm-seed DIR` makes a seed from a folder.

use std::{
    fs,
    io::Write as _,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, bail};
use sha2::{Digest as _, Sha256};

use crate::shell;

/// The image's file name in the output folder.
const IMAGE: &str = "dcwatch-sensor.qcow2";
/// The root filesystem's label, which the kernel command line (vm-images/syslinux.cfg) and the
/// appliance's fstab name.
const ROOT_LABEL: &str = "dcwatch-root";
/// The disk as the guest sees it; the qcow2 holds only what was written. The spool
/// (`spool_max_mib`, 1 GiB by default) and the journal live on the root filesystem.
const DISK_MIB: u64 = 4096;
/// The boot partition (FAT: syslinux, the kernel and the initrd) starts after the first MiB.
const BOOT_MIB: u64 = 128;
/// Packages beyond Debian's minbase: the kernel (XDP in generic mode on any NIC, BTF), systemd
/// as init with networkd, the tools the first-boot script and the report use, and SSH for when
/// the seed turns it on. Recommends are never installed.
const PACKAGES: &[&str] = &[
    "linux-image-amd64",
    "systemd-sysv",
    "udev",
    "kmod",
    "initramfs-tools",
    "iproute2",
    "ethtool",
    "openssh-server",
];
/// What dpkg never unpacks into the image (copyright files excepted).
const PATH_EXCLUDES: &[&str] = &[
    "/usr/share/doc/*",
    "/usr/share/man/*",
    "/usr/share/info/*",
    "/usr/share/locale/*",
    "/usr/share/lintian/*",
];
/// syslinux's master boot record, which jumps to the active partition's boot sector.
const MBR: &str = "/usr/lib/syslinux/mbr/mbr.bin";
/// The seed's filesystem, as NoCloud names it.
const SEED_LABEL: &str = "CIDATA";

/// Builds the packages, then the image into `out` (default `target/vm-image`) unless it is up
/// to date; returns its path.
pub(crate) fn run(out: Option<&Path>) -> anyhow::Result<PathBuf> {
    shell::require_root("vm-image")?;
    crate::setup::vm_tools()?;
    let debs = crate::package::run()?;
    let sensor_deb = debs
        .iter()
        .find(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("dcwatch-sensor_"))
        })
        .context("`cargo xtask package` made no dcwatch-sensor package")?;
    let out = out.map_or_else(default_out, Path::to_path_buf);
    build(sensor_deb, &out)
}

/// `target/vm-image`.
fn default_out() -> PathBuf {
    shell::workspace_root().join("target/vm-image")
}

fn vm_images() -> PathBuf {
    shell::workspace_root().join("vm-images")
}

fn build(deb: &Path, out: &Path) -> anyhow::Result<PathBuf> {
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let image = out.join(IMAGE);
    let stamp = out.join(format!("{IMAGE}.inputs"));
    let sources = apt_sources()?;
    let inputs = inputs_digest(deb, &sources)?;
    if image.exists() && fs::read_to_string(&stamp).is_ok_and(|old| old == inputs) {
        eprintln!("vm-image: up to date ({})", image.display());
        print_size(&image)?;
        return Ok(image);
    }
    let started = Instant::now();
    let work = out.join("build");
    if work.exists() {
        fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    }
    let root = work.join("root");
    let boot = work.join("boot");
    fs::create_dir_all(&boot)?;
    debian_tree(&root, &boot, deb, &sources)?;
    let raw = work.join("disk.raw");
    disk(&root, &boot, &raw)?;
    let partial = out.join(format!("{IMAGE}.partial"));
    shell::run(
        Command::new("qemu-img")
            .args(["convert", "-c", "-f", "raw", "-O", "qcow2"])
            .arg(&raw)
            .arg(&partial),
    )?;
    fs::rename(&partial, &image)?;
    fs::write(&stamp, &inputs)?;
    fs::remove_dir_all(&work)?;
    eprintln!(
        "vm-image: built in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    print_size(&image)?;
    Ok(image)
}

/// The apt sources files of this machine: the image is built from, and keeps, the same mirror.
fn apt_sources() -> anyhow::Result<Vec<PathBuf>> {
    let mut sources = Vec::new();
    let list = Path::new("/etc/apt/sources.list");
    if fs::read_to_string(list).is_ok_and(|text| {
        text.lines()
            .any(|line| line.trim_start().starts_with("deb "))
    }) {
        sources.push(list.to_path_buf());
    }
    let mut parts: Vec<PathBuf> = fs::read_dir("/etc/apt/sources.list.d")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| {
                    path.extension()
                        .is_some_and(|extension| extension == "list" || extension == "sources")
                })
                .collect()
        })
        .unwrap_or_default();
    parts.sort();
    sources.extend(parts);
    if sources.is_empty() {
        bail!("no apt sources on this machine (/etc/apt/sources.list, sources.list.d)");
    }
    Ok(sources)
}

/// A digest of everything the image is made of: the package, vm-images/ (its guide and example
/// seed aside), the apt sources, and this recipe's lists and sizes.
fn inputs_digest(deb: &Path, sources: &[PathBuf]) -> anyhow::Result<String> {
    let mut files = vec![deb.to_path_buf()];
    files.extend(files_under(&vm_images())?.into_iter().filter(|path| {
        path.extension().is_none_or(|extension| extension != "md")
            && !path
                .components()
                .any(|part| part.as_os_str() == "seed-example")
    }));
    files.extend(sources.iter().cloned());
    let mut digest = Sha256::new();
    for file in &files {
        digest.update(file.to_string_lossy().as_bytes());
        digest.update(fs::read(file).with_context(|| format!("reading {}", file.display()))?);
    }
    digest.update(format!(
        "{PACKAGES:?}{PATH_EXCLUDES:?}{DISK_MIB}{BOOT_MIB}{ROOT_LABEL}"
    ));
    Ok(format!("{:x}\n", digest.finalize()))
}

/// Every file under `dir`, sorted.
fn files_under(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The release this machine runs (bookworm...): the image's, so the package built here runs there.
fn suite() -> anyhow::Result<String> {
    let release = fs::read_to_string("/etc/os-release").context("reading /etc/os-release")?;
    release
        .lines()
        .find_map(|line| line.strip_prefix("VERSION_CODENAME="))
        .map(|name| name.trim_matches('"').to_owned())
        .context("/etc/os-release has no VERSION_CODENAME")
}

/// The Debian tree in `root`, the kernel and initrd in `boot`.
fn debian_tree(root: &Path, boot: &Path, deb: &Path, sources: &[PathBuf]) -> anyhow::Result<()> {
    let customize = vm_images().join("customize.sh");
    let hook = format!(
        "sh {} \"$1\" {} {}",
        quoted(&customize),
        quoted(deb),
        quoted(boot)
    );
    let mut command = Command::new("mmdebstrap");
    command.args([
        "--mode=root",
        "--variant=minbase",
        "--aptopt=APT::Install-Recommends \"false\"",
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    ]);
    for exclude in PATH_EXCLUDES {
        command.arg(format!("--dpkgopt=path-exclude={exclude}"));
    }
    command
        .arg(format!("--include={}", PACKAGES.join(",")))
        .arg(format!("--customize-hook={hook}"))
        .arg(suite()?)
        .arg(root)
        .args(sources);
    shell::run(&mut command)
}

/// A path as one single-quoted shell word.
fn quoted(path: &Path) -> String {
    format!("'{}'", path.to_string_lossy().replace('\'', r"'\''"))
}

/// The raw disk: MBR and partition table, the FAT boot partition with syslinux, the kernel, the
/// initrd and syslinux.cfg, and the ext4 root filled from `root`.
fn disk(root: &Path, boot: &Path, raw: &Path) -> anyhow::Result<()> {
    const MIB: u64 = 1024 * 1024;
    fs::File::create(raw)?.set_len(DISK_MIB * MIB)?;
    let root_start = 1 + BOOT_MIB;
    let table = format!(
        "label: dos\nstart=1MiB, size={BOOT_MIB}MiB, type=e, bootable\nstart={root_start}MiB, type=83\n"
    );
    let mut sfdisk = Command::new("sfdisk")
        .arg("--quiet")
        .arg(raw)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .context("starting sfdisk")?;
    sfdisk
        .stdin
        .take()
        .context("sfdisk's stdin")?
        .write_all(table.as_bytes())?;
    if !sfdisk.wait()?.success() {
        bail!("sfdisk could not write the partition table");
    }
    // The boot partition, written in place (offsets in 512-byte sectors, sizes in KiB).
    shell::run(
        Command::new("mkfs.fat")
            .args([
                "-F",
                "16",
                "-n",
                "DCWBOOT",
                "--offset",
                &(MIB / 512).to_string(),
            ])
            .arg(raw)
            .arg((BOOT_MIB * 1024).to_string()),
    )?;
    let fat = format!("{}@@{MIB}", raw.display());
    shell::run(
        Command::new("mcopy")
            .args(["-i", &fat])
            .arg(boot.join("vmlinuz"))
            .arg(boot.join("initrd.img"))
            .arg(vm_images().join("syslinux.cfg"))
            .arg("::/"),
    )?;
    shell::run(
        Command::new("syslinux")
            .args(["--offset", &MIB.to_string(), "--install"])
            .arg(raw),
    )?;
    let mbr = fs::read(MBR).with_context(|| format!("reading {MBR}"))?;
    let mut disk = fs::OpenOptions::new().write(true).open(raw)?;
    // The boot code only: the partition table after it stays.
    disk.write_all(
        mbr.get(..440)
            .context("mbr.bin is shorter than 440 bytes")?,
    )?;
    drop(disk);
    shell::run(
        Command::new("mkfs.ext4")
            .args(["-F", "-q", "-m", "1", "-L", ROOT_LABEL])
            .arg("-E")
            .arg(format!("offset={}", root_start * MIB))
            .arg("-d")
            .arg(root)
            .arg(raw)
            .arg(format!("{}M", DISK_MIB - root_start)),
    )
}

/// Prints the image's size on disk, in MiB.
fn print_size(image: &Path) -> anyhow::Result<()> {
    let bytes = fs::metadata(image)?.len();
    println!(
        "vm-image: {} is {:.1} MiB",
        image.display(),
        bytes as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}

/// `cargo xtask vm-seed DIR --out FILE`: the seed the appliance reads at first boot, a FAT image
/// labelled CIDATA holding DIR's files (meta-data, dcwatch/...: vm-images/README.md).
pub(crate) fn seed(dir: &Path, out: &Path) -> anyhow::Result<()> {
    crate::setup::vm_tools()?;
    if !dir.join("meta-data").is_file() {
        bail!("{} has no meta-data file", dir.display());
    }
    if out.exists() {
        fs::remove_file(out)?;
    }
    shell::run(
        Command::new("mkfs.fat")
            .args(["-C", "-n", SEED_LABEL])
            .arg(out)
            .arg("8192"),
    )?;
    // It holds the token and the directory password.
    fs::set_permissions(out, fs::Permissions::from_mode(0o600))?;
    let mut copy = Command::new("mcopy");
    copy.args(["-s", "-i"]).arg(out);
    for entry in fs::read_dir(dir)? {
        copy.arg(entry?.path());
    }
    shell::run(copy.arg("::/"))
}

#[cfg(test)]
mod tests;
