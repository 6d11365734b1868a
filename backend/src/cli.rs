//! The `dcwatch-backend` command line.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use clap::{Parser, Subcommand};

use crate::{
    config::{Config, ConfigError},
    store::Query,
};

const ABOUT: &str =
    "dcwatch's backend: receives sensors' activities, stores them and raises alerts.";

const LONG_ABOUT: &str = "\
dcwatch's backend: receives sensors' activities and stores them.

`serve` listens for dcwatch sensors over gRPC with TLS. Each sensor presents an access token
(made with `token add`), then streams numbered, zstd-compressed batches of activities; the
backend stores each batch once (a resent batch is acknowledged, not stored again) in an embedded
SQLite store in the data directory, and acknowledges it so the sensor can free its spool.

Without a configured certificate, the first `serve` makes a CA and a server certificate in
DATA_DIR/tls/ and logs where the CA file is: give that file to sensors (their --ca).

Examples:
  dcwatch-backend token add dc1 --data-dir /var/lib/dcwatch-backend    prints dc1's token
  dcwatch-backend serve --data-dir /var/lib/dcwatch-backend --san backend.corp.example
  dcwatch-backend activities --data-dir /var/lib/dcwatch-backend --since 1h --protocol kerberos
  dcwatch-backend activities --data-dir DIR --account 'CORP\\alice' --ip 10.0.0.5
  dcwatch-backend alerts --data-dir DIR --status open --since 1day --json
  dcwatch-backend alerts close ID --classification btp --comment 'approved pentest'
  dcwatch-backend alerts exclude --type dcsync --account 'CORP\\aadsync' --data-dir DIR
  dcwatch-backend learning --json --data-dir DIR          learning periods per detection and entity
  dcwatch-backend alerts test-syslog --config /etc/dcwatch-backend.toml
  dcwatch-backend user add alice --role analyst --data-dir DIR < password-file
  dcwatch-backend serve --data-dir DIR --console 0.0.0.0:8443        with the console
  dcwatch-backend health --data-dir DIR --open                        the open health issues
  dcwatch-backend config check --config /etc/dcwatch-backend.toml

Every stored activity goes through the detectors; alerts are kept in the store and sent to
the outputs the configuration names (syslog in CEF, a JSON-lines file). SIGHUP reopens the
JSON file (logrotate) and reads the configuration again: the log level and the stats settings
apply at once; other changed keys are named in the log and wait for a restart.

Stop `serve` with SIGINT or SIGTERM: open streams end, the counters are logged and written to
the stats file.";

#[derive(Debug, Parser)]
#[command(name = "dcwatch-backend", version, about = ABOUT, long_about = LONG_ABOUT)]
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
    /// Receive sensors' streams until SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// Manage the access tokens sensors present.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Print stored activities as JSON lines (the sensor's --output json form), oldest first.
    Activities(ActivitiesArgs),
    /// List alerts (latest first), or close, comment, exclude, test the syslog destinations.
    Alerts(AlertsArgs),
    /// Print the directory's entities (synced by sensors) as JSON lines, with their tags.
    Entities(EntitiesArgs),
    /// The directory the sensors synced.
    #[command(subcommand)]
    Directory(DirectoryCommand),
    /// Where each entity stands in each learning detection (Part II): "learning until T" or
    /// "active", from the stored profiles and the configuration's thresholds.
    Learning(LearningArgs),
    /// Manage the console's users.
    #[command(subcommand)]
    User(crate::console::cli::UserCommand),
    /// The store's schema.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Write the man page and the bash, zsh and fish completions into DIR (for packaging).
    #[command(hide = true)]
    Docs {
        #[arg(value_name = "DIR")]
        out: PathBuf,
    },
    /// List the sensors' health issues (newest first): those sensors raise, and those the
    /// backend derives (a sensor silent for 5 minutes, a sensor older than the backend).
    Health(HealthArgs),
    /// The configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, clap::Args)]
pub struct HealthArgs {
    #[command(flatten)]
    pub location: Location,
    /// Only the issues still open.
    #[arg(long)]
    pub open: bool,
    /// Only this sensor's.
    #[arg(long, value_name = "ID")]
    pub sensor: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Read and check the configuration as `serve` would; exit 1 naming what is wrong.
    Check {
        /// Configuration file (TOML); without it, the defaults are checked.
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Apply the PostgreSQL store's migrations not yet applied ([cluster] postgres_url), in
    /// order; the SQLite store makes its own schema when opened.
    Migrate {
        #[command(flatten)]
        location: Location,
    },
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AlertsArgs {
    #[command(subcommand)]
    pub command: Option<AlertsCommand>,
    #[command(flatten)]
    pub list: AlertListArgs,
}

/// `alerts` with no subcommand: which alerts to print.
#[derive(Debug, clap::Args)]
pub struct AlertListArgs {
    #[command(flatten)]
    pub location: Location,
    /// Alerts whose latest evidence is from this time on: RFC 3339 or an age (15m, 2h, 1day).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: Option<i64>,
    #[arg(long, value_name = "STATUS")]
    pub status: Option<StatusArg>,
    /// Only this alert type (dcsync, brute_force, ...).
    #[arg(long = "type", value_name = "TYPE")]
    pub type_name: Option<String>,
    /// Only this alert.
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// One JSON object per line (the alert's proto3 JSON, as the JSON output file writes it);
    /// without it, one summary line per alert.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum StatusArg {
    Open,
    Closed,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ClassificationArg {
    /// True positive: malicious.
    Tp,
    /// Benign true positive: it happened, and it was allowed (a pentest, an admin tool).
    Btp,
    /// False positive: it did not happen.
    Fp,
}

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Close an alert with a classification. A running `serve` applies it within a second; the
    /// same activity within 24 hours reopens it.
    Close {
        id: String,
        #[arg(long, value_name = "CLASS")]
        classification: ClassificationArg,
        /// Why (kept in the alert's history; required for fp: why it did not happen).
        #[arg(long, value_name = "TEXT", default_value = "")]
        comment: String,
        /// Also exclude: a learning detection's alert (Part II) teaches its entity's profile
        /// the behaviour (the same behaviour stops alerting, new behaviour still does); any
        /// other alert's primary entity is excluded from its detection.
        #[arg(long)]
        exclude: bool,
        #[command(flatten)]
        location: Location,
    },
    /// Add a comment to an alert's history.
    Comment {
        id: String,
        text: String,
        #[command(flatten)]
        location: Location,
    },
    /// Print an alert's history (raised, reopened, closed, comments) as JSON lines.
    History {
        id: String,
        #[command(flatten)]
        location: Location,
    },
    /// Exclude accounts, computers or source subnets from one detection (--type) or all. Kept
    /// in the store; a running `serve` applies it within a second. Also --list and --remove.
    Exclude(ExcludeArgs),
    /// Send a test message to every configured syslog destination and say what happened.
    TestSyslog {
        #[command(flatten)]
        location: Location,
    },
}

#[derive(Debug, clap::Args)]
pub struct ExcludeArgs {
    #[command(flatten)]
    pub location: Location,
    /// The alert type the exclusion applies to; without it, every detection.
    #[arg(long = "type", value_name = "TYPE")]
    pub type_name: Option<String>,
    /// An account, in any name form (alice, CORP\alice, alice@corp.example); repeatable.
    #[arg(long = "account", value_name = "NAME")]
    pub accounts: Vec<String>,
    /// A computer by name; repeatable.
    #[arg(long = "computer", value_name = "NAME")]
    pub computers: Vec<String>,
    /// Source addresses: 10.20.0.0/16, or one address; repeatable.
    #[arg(long = "subnet", value_name = "PREFIX")]
    pub subnets: Vec<String>,
    /// Why (kept with the exclusion).
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub comment: String,
    /// Print the exclusions the store holds.
    #[arg(long, conflicts_with_all = ["accounts", "computers", "subnets", "remove"])]
    pub list: bool,
    /// Remove the exclusion with this number (from --list).
    #[arg(long, value_name = "N", conflicts_with_all = ["accounts", "computers", "subnets"])]
    pub remove: Option<i64>,
}

#[derive(Debug, clap::Args)]
pub struct LearningArgs {
    #[command(flatten)]
    pub location: Location,
    /// One JSON object per line: detection, entity, state, until (RFC 3339), why.
    #[arg(long)]
    pub json: bool,
    /// Only this detection (an alert type).
    #[arg(long = "type", value_name = "TYPE")]
    pub type_name: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct EntitiesArgs {
    #[command(flatten)]
    pub location: Location,
    /// Only this kind: user, computer, group or other.
    #[arg(long, value_name = "KIND", value_parser = parse_kind)]
    pub kind: Option<dcwatch_entity::ObjectKind>,
    /// Only entities with this tag: sensitive, honeytoken, dc, rodc, exchange_server,
    /// dns_server, disabled, expired, new, dont_req_preauth.
    #[arg(long, value_name = "TAG", value_parser = parse_tag)]
    pub tag: Option<dcwatch_entity::TagName>,
    /// Only this entity (any name form: alice, LAB\alice, alice@lab.example, WS01$, an SPN) or
    /// those whose DN contains NAME.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// One JSON object per line (the only format so far, and the default).
    #[arg(long)]
    pub json: bool,
}

impl EntitiesArgs {
    pub fn filter(&self) -> crate::directory::EntityFilter {
        crate::directory::EntityFilter {
            kind: self.kind,
            tag: self.tag,
            name: self.name.clone(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// Write the stored directory as a snapshot (JSON lines, the form `dcwatch-sensor directory
    /// sync --out` writes and `dcwatch-sensor replay --directory` reads).
    Export {
        /// The snapshot file; `-` for standard output.
        file: PathBuf,
        #[command(flatten)]
        location: Location,
    },
    /// Store a snapshot as the directory (a backend no sensor syncs for, or a lab's saved
    /// directory): its rows count as one full sync, so a later import replaces them; what
    /// sensors sync is kept beside it.
    Import {
        /// The snapshot file (JSON lines, as `export` or `dcwatch-sensor directory sync --out`
        /// write it).
        file: PathBuf,
        #[command(flatten)]
        location: Location,
    },
}

fn parse_kind(text: &str) -> Result<dcwatch_entity::ObjectKind, String> {
    serde_json::from_value(serde_json::Value::String(text.to_lowercase()))
        .map_err(|_| format!("{text:?} is not one of user, computer, group, other"))
}

fn parse_tag(text: &str) -> Result<dcwatch_entity::TagName, String> {
    serde_json::from_value(serde_json::Value::String(text.to_lowercase()))
        .map_err(|_| format!("{text:?} is not a tag name"))
}

/// Where the data directory is: `--data-dir`, else the configuration file's `data_dir`, else
/// the default.
#[derive(Clone, Debug, clap::Args)]
pub struct Location {
    /// Holds the store (dcwatch.sqlite3, tokens included) and the generated certificates (tls/).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Configuration file (TOML); see dcwatch-backend.example.toml for every key and its default.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl Location {
    pub fn config(&self) -> Result<Config, ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(dir) = &self.data_dir {
            config.data_dir.clone_from(dir);
        }
        Ok(config)
    }
}

#[derive(Clone, Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub location: Location,
    /// Address and port to listen on (port 0: any free port, logged). Default 0.0.0.0:50051.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// A name or address sensors reach this backend by, added to the generated server
    /// certificate (besides localhost, 127.0.0.1, ::1 and the host name); repeatable.
    #[arg(long = "san", value_name = "NAME")]
    pub sans: Vec<String>,
    /// Write the counters to FILE as one JSON object, every stats.interval_secs and at exit.
    #[arg(long, value_name = "FILE")]
    pub stats_file: Option<PathBuf>,
    /// Serve the analyst's console (HTTPS) on this address ([console] listen).
    #[arg(long, value_name = "ADDR:PORT")]
    pub console: Option<SocketAddr>,
    /// Which parts to run: all (one process, the default), or one role of a cluster (ingest,
    /// detect, api) over [cluster]'s PostgreSQL and NATS.
    #[arg(long, value_enum, default_value_t)]
    pub role: crate::serve::Role,
    /// Serve Prometheus `/metrics`, `/livez` and `/readyz` at ADDR:PORT (metrics.listen).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_listen: Option<SocketAddr>,
}

impl ServeArgs {
    pub fn config(&self) -> Result<Config, ConfigError> {
        let mut config = self.location.config()?;
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        config.tls.sans.extend(self.sans.iter().cloned());
        if let Some(file) = &self.stats_file {
            config.stats.file = Some(file.clone());
        }
        if self.console.is_some() {
            config.console.listen = self.console;
        }
        if self.metrics_listen.is_some() {
            config.metrics.listen = self.metrics_listen;
        }
        Ok(config)
    }
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token for a sensor and print it (only its SHA-256 is kept: note it now). The
    /// token admits only the sensor whose id is NAME.
    Add {
        /// The sensor's id (its `[sensor] id`, the host name by default): a sensor presenting
        /// this token under another id is refused with PERMISSION_DENIED.
        name: String,
        #[command(flatten)]
        location: Location,
    },
    /// Print the tokens' names and when they were made.
    List {
        #[command(flatten)]
        location: Location,
    },
    /// Delete a token: sensors presenting it are refused from their next connection on.
    Revoke {
        name: String,
        #[command(flatten)]
        location: Location,
    },
}

#[derive(Debug, clap::Args)]
pub struct ActivitiesArgs {
    #[command(flatten)]
    pub location: Location,
    /// From this time on: RFC 3339 (2026-11-22T03:00:00Z) or an age (15m, 2h, 1day).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: Option<i64>,
    /// Before this time: RFC 3339 or an age.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub until: Option<i64>,
    /// Only this protocol: kerberos, ntlm, ldap, dns, smb, dcerpc, netbios, rdp, radius,
    /// windows_event.
    #[arg(long, value_name = "PROTOCOL")]
    pub protocol: Option<String>,
    /// Only this account: a name (any case) or DOMAIN\name.
    #[arg(long, value_name = "ACCOUNT")]
    pub account: Option<String>,
    /// Only activities from or to this address.
    #[arg(long, value_name = "IP")]
    pub ip: Option<IpAddr>,
    /// Only activities from this sensor id.
    #[arg(long, value_name = "ID")]
    pub sensor: Option<String>,
    /// One JSON object per line (the only format so far, and the default).
    #[arg(long)]
    pub json: bool,
}

impl ActivitiesArgs {
    pub fn query(&self) -> Query {
        Query {
            since_ns: self.since,
            until_ns: self.until,
            protocol: self.protocol.clone(),
            account: self.account.clone(),
            ip: self.ip,
            sensor_id: self.sensor.clone(),
        }
    }
}

/// RFC 3339, or an age before now, to Unix nanoseconds.
fn parse_time(text: &str) -> Result<i64, String> {
    let time = if let Ok(time) = humantime::parse_rfc3339_weak(text) {
        time
    } else {
        let age = humantime::parse_duration(text).map_err(|_| {
            format!("{text:?} is neither an RFC 3339 time nor an age like 15m or 2h")
        })?;
        SystemTime::now().checked_sub(age).unwrap_or(UNIX_EPOCH)
    };
    let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    Ok(i64::try_from(since.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_ages() {
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Ok(1_000_000_000));
        let hour_ago = parse_time("1h").expect("an age");
        let now = parse_time("0s").expect("an age");
        assert!((now - hour_ago - 3_600_000_000_000).abs() < 1_000_000_000);
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn serve_options_override_the_file() {
        let cli = Cli::parse_from([
            "dcwatch-backend",
            "serve",
            "--data-dir",
            "/tmp/d",
            "--listen",
            "127.0.0.1:0",
            "--san",
            "b.example",
        ]);
        let Command::Serve(args) = cli.command else {
            panic!("serve");
        };
        let config = args.config().expect("config");
        assert_eq!(config.data_dir, PathBuf::from("/tmp/d"));
        assert_eq!(config.listen.port(), 0);
        assert_eq!(config.tls.sans, ["b.example"]);
    }
}
