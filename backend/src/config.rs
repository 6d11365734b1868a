//! The backend's configuration file (TOML). Every key is optional; command-line options override
//! the file. `dcwatch-backend.example.toml` at the root of the crate shows each key.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

/// Where the backend listens unless told otherwise: gRPC's customary port, every IPv4 address.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:50051";
/// Where the store, the tokens and the generated certificates live unless told otherwise.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/dcwatch-backend";

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub tls: TlsConfig,
    pub retention: RetentionConfig,
    pub limits: Limits,
    pub stats: StatsConfig,
    /// Thresholds, exclusions and the facts the traffic cannot tell: the detection library's
    /// own configuration (`dcwatch_detect::Config`).
    pub detect: dcwatch_detect::Config,
    pub outputs: OutputsConfig,
    pub entities: EntitiesConfig,
    pub console: crate::console::ConsoleConfig,
    pub cluster: ClusterConfig,
    /// error, warn, info, debug or trace; unset: `--log-level`. A SIGHUP applies a change.
    pub log_level: Option<String>,
    pub metrics: MetricsConfig,
}

/// The Prometheus `/metrics`, `/livez` and `/readyz` endpoints.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where to serve them (`--metrics-listen`); unset: not served.
    pub listen: Option<SocketAddr>,
}

/// When one backend is not enough (README "Scaling out"): PostgreSQL as the shared store, NATS
/// JetStream between the ingest and detect roles.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// The shared store, `postgres://USER:PASSWORD@HOST:PORT/DATABASE` or libpq's `key=value`
    /// form. Empty: the SQLite store in `data_dir` (the `all` role alone).
    pub postgres_url: String,
    /// The PEM CA PostgreSQL's certificate chains to: with `sslmode=verify-full` (the name
    /// checked too), `verify-ca` or `require` in the URL, TLS verified against it.
    pub postgres_ca: Option<PathBuf>,
    /// The NATS servers (`nats://` or `tls://HOST:PORT`); any one is enough to start.
    pub nats_urls: Vec<String>,
    /// A NATS credentials file (JWT and NKey seed), when the servers ask for one.
    pub nats_credentials: Option<PathBuf>,
    /// The PEM CA the NATS servers' certificates chain to (implies TLS).
    pub nats_ca: Option<PathBuf>,
    /// Partitions of the activity stream per key (source, account, ticket: three times as many
    /// in all), and so the most detect nodes that share the work of one key.
    pub partitions: u32,
    /// Copies JetStream keeps of the stream (3 on a 3-node cluster).
    pub replicas: usize,
    /// What the stream may hold before ingest refuses batches (the sensors spool them).
    pub stream_max_mib: u64,
    /// This node's name in partition claims; empty: the host name and process id.
    pub node: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            postgres_url: String::new(),
            postgres_ca: None,
            nats_urls: Vec::new(),
            nats_credentials: None,
            nats_ca: None,
            partitions: 16,
            replicas: 1,
            stream_max_mib: 1024,
            node: String::new(),
        }
    }
}

/// What the configuration adds to the directory's own facts when entities are tagged.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EntitiesConfig {
    /// Accounts tagged honeytoken: sAMAccountName, DOMAIN\name, UPN, DN or SID.
    pub honeytokens: Vec<String>,
    /// Groups or accounts tagged sensitive beyond the built-in groups, named the same ways.
    pub sensitive: Vec<String>,
}

impl EntitiesConfig {
    pub fn tag_config(&self) -> dcwatch_entity::TagConfig {
        dcwatch_entity::TagConfig {
            honeytokens: self.honeytokens.clone(),
            sensitive: self.sensitive.clone(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 50051))),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            tls: TlsConfig::default(),
            retention: RetentionConfig::default(),
            limits: Limits::default(),
            stats: StatsConfig::default(),
            detect: dcwatch_detect::Config::default(),
            outputs: OutputsConfig::default(),
            entities: EntitiesConfig::default(),
            console: crate::console::ConsoleConfig::default(),
            cluster: ClusterConfig::default(),
            log_level: None,
            metrics: MetricsConfig::default(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// The server's certificate chain (PEM). With `key`; without both, the backend makes its own
    /// CA and server certificate in DATA_DIR/tls/ on first start.
    pub cert: Option<PathBuf>,
    /// The server certificate's private key (PEM).
    pub key: Option<PathBuf>,
    /// Names (DNS names or addresses) the generated server certificate holds besides localhost,
    /// 127.0.0.1, ::1 and the host name: the names sensors use to reach this backend.
    pub sans: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Activities older than this many days are deleted (at start, then hourly); 0 keeps them all.
    pub days: u32,
    /// The store may use this many MiB; past it the oldest activities are deleted (hourly).
    /// 0: no budget.
    pub max_mib: u64,
    /// Activities older than this many seconds (and judged by detection) are compacted into
    /// compressed blocks (bench/RESULTS.md, store-size); 0: never.
    pub compact_after_secs: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            days: 0,
            max_mib: 0,
            // The last hour stays in rows: the window detection and the console read most.
            compact_after_secs: 3600,
        }
    }
}

/// What a batch may weigh; a batch over a limit is refused (counted in `bad_batches`), the
/// stream goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// A batch's payload as sent (compressed).
    pub max_batch_bytes: usize,
    /// A batch's payload once decompressed: the decompression buffer is at most this big.
    pub max_uncompressed_bytes: usize,
    /// Activities in one batch.
    pub max_activities: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            // A sensor's batches are a few hundred KiB; this leaves room for bursts.
            max_batch_bytes: 8 << 20,
            // zstd compresses activities about 5-10x.
            max_uncompressed_bytes: 64 << 20,
            max_activities: 200_000,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatsConfig {
    /// Write the counters here, as one JSON object, every `interval_secs` and at exit.
    pub file: Option<PathBuf>,
    pub interval_secs: u64,
}

impl Default for StatsConfig {
    fn default() -> Self {
        Self {
            file: None,
            interval_secs: 5,
        }
    }
}

impl StatsConfig {
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs.max(1))
    }
}

/// Where alerts and health events go besides the store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputsConfig {
    /// An alert's address in a console, CEF's `cs1` (`{id}` is replaced by the alert's id, else
    /// the id is appended). Empty: no `cs1`.
    pub console_url: String,
    /// Syslog destinations, each with its own queue and connection.
    pub syslog: Vec<SyslogDestination>,
    /// Alerts as JSON lines in a file.
    pub json: Option<JsonOutput>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonOutput {
    /// Appended to; reopened on SIGHUP (after logrotate moved it).
    pub path: PathBuf,
}

/// One syslog destination: CEF lines of alerts and health events.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyslogDestination {
    /// `host:port`.
    pub address: String,
    pub transport: SyslogTransport,
    pub format: SyslogFormat,
    /// TCP and TLS only: how messages are delimited.
    pub framing: SyslogFraming,
    /// TLS: the CA file (PEM) the receiver's certificate must chain to.
    pub ca: Option<PathBuf>,
    /// TLS: the name the receiver's certificate must hold (default: the address's host).
    pub server_name: Option<String>,
    /// The syslog facility, 0..=23 (default 4, auth, as MDI's lines: `Auth.Warning`).
    pub facility: u8,
    /// Messages waiting while the destination is slow or away; beyond it they are dropped and
    /// counted.
    pub queue: usize,
}

impl Default for SyslogDestination {
    fn default() -> Self {
        Self {
            address: String::new(),
            transport: SyslogTransport::default(),
            format: SyslogFormat::default(),
            framing: SyslogFraming::default(),
            ca: None,
            server_name: None,
            facility: 4,
            queue: DEFAULT_SYSLOG_QUEUE,
        }
    }
}

/// Messages a syslog destination holds while it is unreachable: about a minute of a busy
/// backend's alerts and health events, a few MB.
pub const DEFAULT_SYSLOG_QUEUE: usize = 10_000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogTransport {
    #[default]
    Udp,
    Tcp,
    Tls,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogFormat {
    #[default]
    Rfc5424,
    Rfc3164,
}

/// RFC 6587: octet counting (3.4.1, `LEN SP MSG`) or a line feed after each message (3.4.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogFraming {
    #[default]
    OctetCounting,
    Newline,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config: Self = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })?;
        config.check().map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        Ok(config)
    }

    /// What serde cannot check: alert types the catalogue knows, usable syslog destinations.
    pub fn check(&self) -> Result<(), String> {
        self.detect.check().map_err(|failure| failure.to_string())?;
        if !(1..=1024).contains(&self.cluster.partitions) {
            return Err(format!(
                "cluster.partitions: {} is not 1..=1024",
                self.cluster.partitions
            ));
        }
        if let Some(level) = &self.log_level {
            dcwatch_telemetry::logging::parse_level(level)
                .map_err(|message| format!("log_level: {message}"))?;
        }
        for destination in &self.outputs.syslog {
            if destination.address.rsplit_once(':').is_none() {
                return Err(format!(
                    "outputs.syslog: address {:?} is not host:port",
                    destination.address
                ));
            }
            if destination.facility > 23 {
                return Err(format!(
                    "outputs.syslog {}: facility {} is not 0..=23",
                    destination.address, destination.facility
                ));
            }
            if destination.transport == SyslogTransport::Tls && destination.ca.is_none() {
                return Err(format!(
                    "outputs.syslog {}: TLS needs ca (the receiver's CA file)",
                    destination.address
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_parses_and_unknown_ones_are_refused() {
        let config: Config = toml::from_str(
            r#"
            listen = "127.0.0.1:6000"
            data_dir = "/tmp/dcw"
            [tls]
            sans = ["backend.corp.example"]
            [retention]
            days = 30
            [limits]
            max_batch_bytes = 1000
            max_uncompressed_bytes = 2000
            max_activities = 10
            [stats]
            file = "/tmp/stats.json"
            interval_secs = 2
            [detect]
            thresholds = { dcsync = "low" }
            exclusions = { accounts = ["CORP\\aadsync"], subnets = ["10.9.0.0/16"] }
            [outputs]
            console_url = "https://console.example/alerts/{id}"
            [[outputs.syslog]]
            address = "127.0.0.1:6514"
            transport = "tls"
            ca = "/etc/ssl/siem-ca.pem"
            format = "rfc3164"
            framing = "newline"
            [[outputs.syslog]]
            address = "siem.example:514"
            [outputs.json]
            path = "/var/log/dcwatch/alerts.jsonl"
            "#,
        )
        .expect("parses");
        assert_eq!(config.listen.port(), 6000);
        assert_eq!(config.limits.max_activities, 10);
        assert_eq!(config.tls.sans, ["backend.corp.example"]);
        assert_eq!(
            config.detect.threshold("dcsync"),
            dcwatch_detect::config::Threshold::Low
        );
        assert_eq!(config.outputs.syslog.len(), 2);
        assert_eq!(config.outputs.syslog[0].transport, SyslogTransport::Tls);
        assert_eq!(config.outputs.syslog[0].framing, SyslogFraming::Newline);
        assert_eq!(config.outputs.syslog[1].transport, SyslogTransport::Udp);
        assert_eq!(config.outputs.syslog[1].facility, 4);
        assert!(config.check().is_ok());
        assert!(toml::from_str::<Config>("[limits]\nmax_size = 1").is_err());
        let unknown_type: Config =
            toml::from_str("[detect.thresholds]\ndcsinc = \"low\"").expect("parses");
        assert!(unknown_type.check().is_err());
        let tls_without_ca: Config =
            toml::from_str("[[outputs.syslog]]\naddress = \"h:1\"\ntransport = \"tls\"")
                .expect("parses");
        assert!(tls_without_ca.check().is_err());
    }

    #[test]
    fn the_example_file_is_the_defaults() {
        let example: Config =
            toml::from_str(include_str!("../dcwatch-backend.example.toml")).expect("parses");
        // dcwatch_detect::Config has no PartialEq: compare the debug forms.
        assert_eq!(format!("{example:?}"), format!("{:?}", Config::default()));
    }
}
