//! `cargo xtask lab`: dcwatch's Active Directory lab, `tests/lab/lab.sh`.
//!
//! A real Samba AD domain controller in one network namespace, a client with Kerberos, LDAP, SMB
//! and impacket tools in another, and a mirror of the DC's traffic into a third, where a sensor
//! listens. This module only checks for root and hands the subcommand to the script, which does
//! the work and prints its own progress; tests/lab/README.md describes the lab.

use std::{path::PathBuf, process::Command};

use anyhow::Context as _;
use clap::{Subcommand, ValueEnum};

use crate::shell;

#[derive(Debug, Subcommand)]
pub(crate) enum LabTask {
    /// Install what the lab needs (Debian packages, impacket in a virtual environment), make the
    /// namespaces and the mirror, provision the domain and start Samba. About a minute the first
    /// time, seconds after that.
    Up,
    /// Stop everything the lab started and remove its namespaces, veths and state directory.
    /// Installed packages and the download cache stay.
    Down,
    /// Which namespaces exist, whether Samba runs, whether the mirror is set up.
    Status,
    /// Run scenarios in the client namespace: names from `scenario list`, or `all`. Each fails
    /// when the traffic it stands for did not happen; output goes to the lab's logs.
    Scenario {
        /// `list`, `all`, or scenario names (benign, kerberoast, dcsync, psexec, golden-ticket,
        /// petitpotam, winevents-syslog...: `scenario list` names them all).
        #[arg(required = true)]
        names: Vec<String>,
        /// Also capture what the sensor sees on the mirror (for winevents-syslog, on its syslog
        /// link), one NAME.pcap per scenario in this directory.
        #[arg(long, value_name = "DIR")]
        capture: Option<PathBuf>,
    },
    /// Check that the mirror sees the DC's traffic in both directions, frame for frame.
    CheckMirror,
    /// Run a shell command in one of the lab's namespaces, with the lab's DNS, hosts and
    /// Kerberos settings (in the client: $DC_IP, $ALICE_PW, $IMP for impacket...).
    Exec {
        /// The namespace.
        #[arg(value_enum)]
        namespace: Namespace,
        /// The command, as one shell command line.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Namespace {
    /// The domain controller, dcwlab-dc.
    Dc,
    /// The client with the attack tools, dcwlab-client.
    Client,
    /// The sensor's end of the mirror, dcwlab-sensor.
    Sensor,
}

pub(crate) fn run(task: LabTask) -> anyhow::Result<()> {
    shell::require_root("lab").context(
        "the lab makes network namespaces, installs Debian packages and runs a domain controller",
    )?;
    let mut script = Command::new(shell::workspace_root().join("tests/lab/lab.sh"));
    match task {
        LabTask::Up => script.arg("up"),
        LabTask::Down => script.arg("down"),
        LabTask::Status => script.arg("status"),
        LabTask::Scenario { names, capture } => {
            if let Some(directory) = capture {
                let directory = std::path::absolute(&directory)
                    .with_context(|| format!("resolving {}", directory.display()))?;
                script.env("CAP", "1").env("CAP_DIR", directory);
            }
            script.arg("scenario").args(names)
        }
        LabTask::CheckMirror => script.arg("check-mirror"),
        LabTask::Exec { namespace, command } => {
            let namespace = match namespace {
                Namespace::Dc => "dc",
                Namespace::Client => "client",
                Namespace::Sensor => "sensor",
            };
            script.args(["exec", namespace]).args(command)
        }
    };
    shell::run(&mut script)
}

/// The names of the lab's scenarios, in the order `scenario all` plays them.
pub(crate) fn scenario_names() -> anyhow::Result<Vec<String>> {
    let listing = shell::output(
        Command::new(shell::workspace_root().join("tests/lab/lab.sh")).args(["scenario", "list"]),
    )
    .context("listing the lab's scenarios")?;
    Ok(listing
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}
