//! The `dcwatch-sensor` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{Attach, Config, ConfigError, Mode};

const ABOUT: &str = "dcwatch's network sensor for Active Directory domain controllers.";

const LONG_ABOUT: &str = "\
dcwatch's network sensor for Active Directory domain controllers.

It attaches an XDP program to the NIC that receives a mirror (SPAN port, TAP, or a hypervisor's
mirrored vNIC) of a domain controller's traffic, keeps the frames on the ports that matter
(Kerberos, LDAP, DNS, SMB, DCE-RPC, NetBIOS, RDP, RADIUS, syslog, NTP...), and reads them from a
BPF ring buffer. It reassembles TCP and IP fragments, parses Kerberos, NTLM, LDAP, CLDAP, DNS
and HTTP authentication, and turns them into activities: who asked for which ticket, who bound
to the directory and searched for what, which names were looked up. Every frame is either
delivered or counted as dropped, and every cap that bites is counted: see --stats-file.

Examples:
  dcwatch-sensor run --interface ens4                     capture on a mirror NIC
  dcwatch-sensor run -i ens4 --mode host --output json    on a DC's own NIC, print activities
  dcwatch-sensor run --syslog-listen 0.0.0.0:514 --output json
                                                          Windows events from a SIEM only
  dcwatch-sensor replay dc.pcapng --output json           the same pipeline over a capture file
  dcwatch-sensor replay dc.pcapng --output packets        one line per packet instead
  dcwatch-sensor replay a.pcap b.pcap --alerts json       the alerts the detectors raise
  dcwatch-sensor replay a.pcap --alerts cef               the same as CEF lines, as a SIEM gets them
  dcwatch-sensor run -i ens4 --backend https://backend:7443 --token T --ca ca.pem \
      --spool-dir /var/lib/dcwatch/spool                  stream activities to a backend
  dcwatch-sensor directory sync --config dcwatch.toml --out directory.jsonl
                                                          a snapshot of the [directory] domains
  dcwatch-sensor config check --config dcwatch.toml      check a configuration file

`run` reloads its configuration on SIGHUP: capture ports, DC addresses, the log level, the stats
file and the health settings apply at once; other changed keys are named in the log and wait
for a restart.

Needs root (or CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON) and Linux 5.18+ with BTF for `run`.";

#[derive(Debug, Parser)]
#[command(name = "dcwatch-sensor", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    /// Log level: error, warn, info, debug or trace (RUST_LOG overrides it).
    #[arg(long, global = true, default_value = "info", value_name = "LEVEL")]
    pub log_level: String,
    /// Log lines as `text` (with journald priorities under systemd) or `json` objects.
    #[arg(long, global = true, default_value = "text", value_name = "FORMAT")]
    pub log_format: dcwatch_telemetry::logging::LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Capture live on one or more interfaces until SIGINT or SIGTERM.
    Run(RunArgs),
    /// Feed the frames of a pcap or pcapng file through the same pipeline.
    Replay(ReplayArgs),
    /// The directory of the domains in `[directory]`.
    #[command(subcommand)]
    Directory(DirectoryCommand),
    /// Write the man page and the bash, zsh and fish completions into DIR (for packaging).
    #[command(hide = true)]
    Docs {
        #[arg(value_name = "DIR")]
        out: PathBuf,
    },
    /// The configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Read and check the configuration (every key, as `run` would); exit 1 naming the first
    /// bad key.
    Check {
        /// Configuration file (TOML); without it, the defaults are checked.
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// Read every domain with `sync = true` once, in full (paged, tombstones included), and
    /// write a snapshot: JSON lines, a domain per line then an object per line.
    Sync {
        /// Configuration file (TOML) with the `[directory]` section.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// The snapshot file; `-` for standard output.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Interface to attach to; repeat for several (overrides capture.interfaces).
    #[arg(short, long = "interface", value_name = "IF")]
    pub interfaces: Vec<String>,
    /// mirror: a dedicated mirror NIC, frames end in XDP. host: a NIC the host uses, frames go on.
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// auto: native XDP, else generic with a warning. native or generic: that mode only.
    #[arg(long, value_enum)]
    pub attach: Option<Attach>,
    #[command(flatten)]
    pub common: CommonArgs,
    /// Listen for Windows events a SIEM forwards over syslog, on UDP and TCP at ADDR:PORT
    /// (`0.0.0.0:514`, `[::]:6514`); repeat for several (overrides syslog.listen). Layouts:
    /// RSA Security Analytics, ArcSight CEF, Splunk, QRadar; events 4726 4728 4729 4730 4732
    /// 4733 4743 4753 4756 4757 4758 4763 4776 7045 8004. With it, --interface is optional.
    #[arg(long = "syslog-listen", value_name = "ADDR:PORT")]
    pub syslog_listen: Vec<std::net::SocketAddr>,
    /// Stop after this many seconds instead of waiting for a signal.
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<u64>,
    /// Serve Prometheus `/metrics`, `/livez` and `/readyz` at ADDR:PORT (metrics.listen).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The capture files, replayed one after the other as one stream: pcap or pcapng;
    /// Ethernet, Linux cooked, raw IP or loopback.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Judge the traffic with the detectors and print the alerts they raise, one per line,
    /// after the activities (alone without --output). A replay judges in test mode: every
    /// threshold low, so nothing waits for a learning period or a hold.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub alerts: Option<AlertFormat>,
    #[command(flatten)]
    pub common: CommonArgs,
    /// With a backend: how long to wait, once the file is read, for the backend to acknowledge
    /// every batch. What is left stays in the spool, and the exit status is non-zero.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub wait_secs: u64,
    /// A directory snapshot (JSON lines, as `dcwatch-sensor directory sync --out` or
    /// `dcwatch-backend directory export` write it): every activity's account and computers get
    /// their SIDs and tags from it, as the backend would give them; with --alerts, the detectors
    /// learn from it who is who (domain controllers, sensitive accounts, SPNs' owners).
    #[arg(long, value_name = "FILE")]
    pub directory: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct CommonArgs {
    /// Configuration file (TOML); see dcwatch.example.toml for every key and its default.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print what was seen on standard output: `json`, one activity per line; `packets`, one
    /// captured packet per line (to check what the capture keeps).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
    /// Write the counters to FILE as one JSON object, every stats.interval_secs and at exit.
    #[arg(long, value_name = "FILE")]
    pub stats_file: Option<PathBuf>,
    /// Stream activities to this backend, `https://HOST:PORT` (backend.url). `--output` still
    /// prints them too.
    #[arg(long, value_name = "URL")]
    pub backend: Option<String>,
    /// The sensor's access token for the backend (backend.token; the config file keeps it out
    /// of `ps`).
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// PEM file of the CA that signed the backend's certificate (backend.ca; default: the
    /// system's roots).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Where batches wait until the backend acknowledges them (backend.spool_dir).
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,
    /// Threads that decode and dissect, flows shared out by their two addresses
    /// (capture.workers; default: the CPUs less one, at least one).
    #[arg(long, value_name = "N")]
    pub workers: Option<u16>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AlertFormat {
    /// One alert per line, as a JSON object in the proto's JSON form (as the backend prints).
    Json,
    /// One alert per line in CEF, Defender for Identity's layout, as the backend's syslog output
    /// writes it (without the syslog header).
    Cef,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// One activity per line, as a JSON object: `time`, `protocol`, `type`, `src`, `dst`, and
    /// the protocol's fields.
    Json,
    /// One captured packet per line, as a JSON object: addresses, transport, lengths.
    Packets,
}

impl CommonArgs {
    /// The configuration file (or the defaults) with this command line's overrides applied.
    pub fn config(&self) -> Result<Config, ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(path) = &self.stats_file {
            config.stats.file = Some(path.clone());
        }
        let backend = &mut config.backend;
        if let Some(url) = &self.backend {
            backend.url = Some(url.clone());
        }
        if let Some(token) = &self.token {
            backend.token.clone_from(token);
        }
        if let Some(ca) = &self.ca {
            backend.ca = Some(ca.clone());
        }
        if let Some(dir) = &self.spool_dir {
            backend.spool_dir.clone_from(dir);
        }
        if let Some(workers) = self.workers {
            config.capture.workers = Some(workers);
        }
        config
            .validate()
            .map_err(|(key, message)| ConfigError::Key {
                path: PathBuf::from("(command line)"),
                key: key.to_owned(),
                message,
            })?;
        Ok(config)
    }
}

impl RunArgs {
    pub fn config(&self) -> Result<Config, ConfigError> {
        let mut config = self.common.config()?;
        if !self.interfaces.is_empty() {
            config.capture.interfaces.clone_from(&self.interfaces);
        }
        if let Some(mode) = self.mode {
            config.capture.mode = mode;
        }
        if let Some(attach) = self.attach {
            config.capture.attach = attach;
        }
        if !self.syslog_listen.is_empty() {
            config.syslog.listen.clone_from(&self.syslog_listen);
        }
        if let Some(address) = self.metrics_listen {
            config.metrics.listen = Some(address);
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_override_the_config() {
        let cli = Cli::try_parse_from([
            "dcwatch-sensor",
            "run",
            "-i",
            "a",
            "--interface",
            "b",
            "--mode",
            "host",
            "--attach",
            "generic",
            "--stats-file",
            "/tmp/s.json",
            "--syslog-listen",
            "127.0.0.1:5514",
            "--syslog-listen",
            "[::1]:5514",
            "--backend",
            "https://b.example:7443",
            "--token",
            "T",
            "--ca",
            "/tmp/ca.pem",
            "--spool-dir",
            "/tmp/spool",
            "--workers",
            "3",
            "--metrics-listen",
            "127.0.0.1:9464",
            "--log-format",
            "json",
        ])
        .expect("valid command line");
        let Command::Run(args) = cli.command else {
            panic!("not run");
        };
        let config = args.config().expect("defaults");
        assert_eq!(config.capture.interfaces, ["a", "b"]);
        assert_eq!(config.capture.mode, Mode::Host);
        assert_eq!(config.capture.attach, Attach::Generic);
        assert_eq!(config.stats.file, Some(PathBuf::from("/tmp/s.json")));
        assert_eq!(config.syslog.listen.len(), 2);
        assert_eq!(config.syslog.listen[1].to_string(), "[::1]:5514");
        assert_eq!(
            config.backend.url.as_deref(),
            Some("https://b.example:7443")
        );
        assert_eq!(config.backend.token, "T");
        assert_eq!(config.backend.ca, Some(PathBuf::from("/tmp/ca.pem")));
        assert_eq!(config.backend.spool_dir, PathBuf::from("/tmp/spool"));
        assert_eq!(config.capture.workers(), 3);
        assert_eq!(
            config
                .metrics
                .listen
                .map(|address| address.to_string())
                .as_deref(),
            Some("127.0.0.1:9464")
        );
        assert_eq!(cli.log_format, dcwatch_telemetry::logging::LogFormat::Json);
    }
}
