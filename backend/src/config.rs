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

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub tls: TlsConfig,
    pub retention: RetentionConfig,
    pub limits: Limits,
    pub stats: StatsConfig,
    pub console: crate::console::ConsoleConfig,
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
            console: crate::console::ConsoleConfig::default(),
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

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Activities older than this many days are deleted (at start, then hourly); 0 keeps them all.
    pub days: u32,
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
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
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
            "#,
        )
        .expect("parses");
        assert_eq!(config.listen.port(), 6000);
        assert_eq!(config.limits.max_activities, 10);
        assert_eq!(config.tls.sans, ["backend.corp.example"]);
        assert!(toml::from_str::<Config>("[limits]\nmax_size = 1").is_err());
    }

    #[test]
    fn the_example_file_is_the_defaults() {
        let example: Config =
            toml::from_str(include_str!("../dcwatch-backend.example.toml")).expect("parses");
        assert_eq!(example, Config::default());
    }
}
