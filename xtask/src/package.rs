//! `cargo xtask package`: the Debian packages of both daemons, built with cargo-deb from their
//! `[package.metadata.deb]`: binaries (the sensor's with its eBPF object inside), systemd units,
//! the example configurations as conffiles, maintainer scripts that add and remove the system
//! users, and the man pages and completions each binary generates from its CLI.

use std::{path::PathBuf, sync::Mutex};

use crate::shell::{self, cargo};

/// The packages this process has built. The slow tests that need them (this module's install
/// and purge, the appliance's image) run at once: the second must not remake them while the
/// first installs them.
static BUILT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The packages, by cargo package name and binary.
const PACKAGES: [(&str, &str); 2] = [
    ("sensor-user", "dcwatch-sensor"),
    ("dcwatch-backend", "dcwatch-backend"),
];

/// Builds both packages into `target/debian`, once per process; returns their paths.
pub(crate) fn run() -> anyhow::Result<Vec<PathBuf>> {
    let mut built = BUILT
        .lock()
        .map_err(|_| anyhow::anyhow!("an earlier package build panicked"))?;
    if built.is_empty() {
        *built = build()?;
    }
    Ok(built.clone())
}

fn build() -> anyhow::Result<Vec<PathBuf>> {
    crate::setup::run()?;
    crate::setup::CARGO_DEB.install()?;
    let root = shell::workspace_root();
    let release = root.join("target/release");
    shell::build_release(&root)?;
    // The metadata's assets name target/release/docs.
    let docs = release.join("docs");
    for (_, binary) in PACKAGES {
        shell::run(
            std::process::Command::new(release.join(binary))
                .arg("docs")
                .arg(&docs),
        )?;
    }
    let out = root.join("target/debian");
    let mut built = Vec::new();
    for (package, _) in PACKAGES {
        let path = shell::stdout_of(
            cargo()
                .current_dir(&root)
                .args(["deb", "--no-build", "--package", package, "--output"])
                .arg(&out),
        )?;
        // cargo-deb prints the package's path last.
        let path = path.lines().last().unwrap_or_default().trim().to_owned();
        println!("{path}");
        built.push(PathBuf::from(path));
    }
    Ok(built)
}

#[cfg(test)]
mod tests {
    use std::{os::unix::fs::MetadataExt as _, path::Path, process::Command};

    use super::*;

    fn succeeds(command: &mut Command) -> String {
        shell::stdout_of(command).expect("command succeeds")
    }

    fn user_exists(name: &str) -> bool {
        shell::output(Command::new("getent").args(["passwd", name])).is_some()
    }

    #[test]
    #[ignore = "builds both packages and installs them on this machine: `cargo xtask test --full`"]
    fn packages_install_their_files_users_and_units_and_purge_leaves_nothing() {
        for user in ["dcwatch", "dcwatch-backend"] {
            assert!(
                !user_exists(user),
                "{user} exists before the test: not a clean machine"
            );
        }
        let debs = run().expect("the packages build");
        succeeds(Command::new("dpkg").arg("--install").args(&debs));
        let mut files = Vec::new();
        for (_, binary) in PACKAGES {
            let listed = succeeds(Command::new("dpkg").args(["--listfiles", binary]));
            let listed: Vec<String> = listed.lines().map(str::to_owned).collect();
            for wanted in [
                format!("/usr/bin/{binary}"),
                format!("systemd/system/{binary}.service"),
                format!("/usr/share/man/man8/{binary}.8"),
                format!("/usr/share/bash-completion/completions/{binary}"),
            ] {
                assert!(
                    listed.iter().any(|path| path.contains(&wanted)),
                    "{wanted} not installed: {listed:?}"
                );
            }
            let version = succeeds(Command::new(format!("/usr/bin/{binary}")).arg("--version"));
            assert!(version.starts_with(binary), "{version}");
            files.extend(listed);
        }
        for user in ["dcwatch", "dcwatch-backend"] {
            assert!(user_exists(user), "{user} made by postinst");
        }
        let config = std::fs::metadata("/etc/dcwatch/dcwatch.toml").expect("the conffile");
        assert_eq!(
            config.mode() & 0o777,
            0o640,
            "readable by dcwatch's group only"
        );
        let token = std::fs::metadata("/etc/dcwatch/token").expect("the credential file");
        assert_eq!(token.mode() & 0o777, 0o600);
        let conffiles = succeeds(Command::new("dpkg-query").args([
            "--showformat=${Conffiles}",
            "--show",
            "dcwatch-sensor",
        ]));
        assert!(
            conffiles.contains("/etc/dcwatch/dcwatch.toml"),
            "{conffiles}"
        );

        succeeds(
            Command::new("dpkg")
                .arg("--purge")
                .args(PACKAGES.map(|(_, binary)| binary)),
        );
        for user in ["dcwatch", "dcwatch-backend"] {
            assert!(!user_exists(user), "{user} left after purge");
        }
        let left: Vec<&String> = files
            .iter()
            .filter(|path| {
                let path = Path::new(path.as_str());
                // Shared folders (/usr/bin, /etc...) stay; every file and our own folders go.
                path.exists() && !path.is_dir()
            })
            .collect();
        assert!(left.is_empty(), "left after purge: {left:?}");
        for folder in ["/etc/dcwatch", "/etc/dcwatch-backend", "/var/lib/dcwatch"] {
            assert!(!Path::new(folder).exists(), "{folder} left after purge");
        }
    }
}
