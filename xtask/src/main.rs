//! `cargo xtask`: dcwatch's development tasks, one module per subcommand.
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool reports progress on stderr and results on stdout"
)]

mod bench;
mod demo;
mod e2e;
mod forward;
mod fuzz;
mod lab;
mod package;
mod setup;
mod shell;
mod test;
mod vm_image;

use clap::{Parser, Subcommand};

/// dcwatch's development tasks. Each one first runs `setup`, so any of them works on a fresh
/// machine.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install what building and testing need, idempotently: apt packages (LLVM 22, iproute2,
    /// ethtool...), rust-src, bpf-linker 0.13.0 built against LLVM 22, pinned cargo tools
    /// (cargo-deny, cargo-fuzz) and typos (PyPI's wheel). cargo-deb comes with `package`.
    Setup,
    /// Set up, then run every check CI runs: rustfmt, clippy, cargo-deny (licences, bans,
    /// sources), typos, the tests (as root: they load XDP programs and make network namespaces),
    /// 30 seconds of every fuzz target, and the end-to-end run against the AD lab.
    Test {
        /// Skip the end-to-end run (the lab): for a quick check while developing.
        #[arg(long)]
        no_e2e: bool,
        /// Also run the slow tests (`#[ignore]`d ones: floods, a minute of CPU hog, the .deb
        /// install and purge, the backend's cluster under faults, the appliance image booted under
        /// qemu, the profiles' bounds), and each fuzz target for 5 minutes instead of 30 seconds.
        #[arg(long)]
        full: bool,
    },
    /// Set up, build, bring up the AD lab, watch its mirror port while every scenario plays,
    /// summarise each, then keep watching until Ctrl-C and take the lab down.
    Demo {
        /// Instead of the live lab: the sensor on a veth pair, fed a generated traffic mix and
        /// the lab's bundled captures (no Samba needed).
        #[arg(long)]
        captures: bool,
        /// Rounds of the traffic mix to send, with `--captures`.
        #[arg(long, default_value_t = 3)]
        rounds: u32,
    },
    /// Set up, then build every fuzz target (cargo-fuzz, AddressSanitizer) and run each from
    /// its seeds for the given time, one per core: what `cargo xtask test` runs.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
    },
    /// Set up, build, then run the benchmarks and print their figures.
    Bench {
        /// Instead: the performance report, DIR/report.md with a PNG per figure and the raw runs
        /// (XDP cost, capture rate on veth, replay beside tcpdump and tshark (and Suricata 8 with
        /// SURICATA=PATH), by workers, peak memory, detection and ingest rates).
        #[arg(long, value_name = "DIR")]
        report: Option<std::path::PathBuf>,
        /// With --report: small inputs and three trials, to check the report is made.
        #[arg(long, requires = "report")]
        quick: bool,
        /// Also the slow parts: directory-cost's full syncs of larger DCs (filled for up to
        /// BENCH_FILL_MINUTES, 30 by default, a run), extrapolated to 100,000 objects.
        #[arg(long, conflicts_with = "report")]
        full: bool,
    },
    /// Set up, build, then make the Debian packages of both daemons (cargo-deb) in
    /// target/debian: binaries, systemd units, conffiles, the system users, man pages and
    /// completions.
    Package,
    /// Build the virtual sensor appliance (vm-images/README.md): a Debian qcow2 holding the
    /// dcwatch-sensor package, configured at first boot from a seed. Rebuilt only when its
    /// inputs change; prints its size.
    VmImage {
        /// Where the image goes (default target/vm-image).
        #[arg(long, value_name = "DIR")]
        out: Option<std::path::PathBuf>,
    },
    /// Make the appliance's seed (a FAT image labelled CIDATA) from a folder laid out as
    /// vm-images/seed-example.
    VmSeed {
        /// The folder: meta-data, dcwatch/appliance.conf, dcwatch/dcwatch.toml, dcwatch/token...
        dir: std::path::PathBuf,
        /// The seed image to write.
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
    },
    /// Set up, build, bring up the lab, and play each scenario with the sensor on the lab's
    /// mirror port: checks the activities each scenario must produce and that no frame was lost,
    /// then takes the lab down.
    E2e {
        /// Scenarios to play (default: all of them).
        scenarios: Vec<String>,
        /// Leave the lab running afterwards.
        #[arg(long)]
        keep: bool,
        /// Write each scenario's activities to DIR/SCENARIO.jsonl, its alerts to
        /// DIR/SCENARIO.alerts.jsonl, and the lab's directory to DIR/entities.jsonl.
        #[arg(long, value_name = "DIR")]
        save: Option<std::path::PathBuf>,
    },
    /// The Samba Active Directory lab (tests/lab/lab.sh, as root): a domain controller, a client
    /// with attack tools and a mirror port for the sensor, in network namespaces. `cargo xtask lab
    /// up`, then `lab scenario all` (or `lab scenario --capture DIR kerberoast`), then `lab down`.
    Lab {
        #[command(subcommand)]
        task: lab::LabTask,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Setup => setup::run(),
        Task::Test { no_e2e, full } => test::run(!no_e2e, full),
        Task::Demo { captures, rounds } => demo::run(rounds, !captures),
        Task::Fuzz { seconds } => setup::run().and_then(|()| fuzz::run(seconds)),
        Task::Bench {
            report,
            quick,
            full,
        } => bench::run(report.as_deref(), quick, full),
        Task::Package => package::run().map(drop),
        Task::E2e {
            scenarios,
            keep,
            save,
        } => e2e::run(&scenarios, keep, save.as_deref()),
        Task::Lab { task } => lab::run(task),
        Task::VmImage { out } => vm_image::run(out.as_deref()).map(drop),
        Task::VmSeed { dir, out } => vm_image::seed(&dir, &out),
    }
}
