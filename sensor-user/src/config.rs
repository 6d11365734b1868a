//! The sensor's configuration file (TOML). Every key is optional; `dcwatch.example.toml` at the
//! root of the crate documents each one with its default.

use std::{
    collections::BTreeMap,
    fmt,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use sensor_common::{DEFAULT_SNAP_LEN, MAX_SNAP_LEN};
use serde::Deserialize;

use dcwatch_pipeline::{
    decap::{DecapConfig, DecapMode},
    dissect::{DissectLimits, radius::RadiusSecrets},
    flow::{FlowLimits, FragmentLimits},
    services::{Transport, default_ports},
};

/// Most worker threads `capture.workers` may ask for.
pub const MAX_WORKERS: u16 = 256;

/// What the XDP program does with a frame once it has looked at it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A dedicated mirror NIC (SPAN, TAP): frames end in XDP (`XDP_DROP`).
    #[default]
    Mirror,
    /// The sensor shares the NIC with the host (a DC's own NIC): frames go on (`XDP_PASS`).
    Host,
}

/// How the XDP program is attached to an interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Attach {
    /// Native (driver) mode, falling back to generic mode with a warning.
    #[default]
    Auto,
    /// Native (driver) mode only: fails where the driver has no XDP support.
    Native,
    /// Generic (SKB) mode only: works on every interface, costs more per packet.
    Generic,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub sensor: SensorConfig,
    pub capture: CaptureConfig,
    pub dissect: DissectConfig,
    pub radius: RadiusConfig,
    pub stats: StatsConfig,
    pub syslog: SyslogConfig,
    pub backend: BackendConfig,
    /// The detectors a replay with `--alerts` runs (the backend's `[detect]` takes the same keys).
    pub detect: dcwatch_detect::Config,
    pub nnr: NnrConfig,
    pub directory: crate::directory::config::DirectoryConfig,
    pub health: HealthConfig,
    pub metrics: MetricsConfig,
    pub limiter: LimiterConfig,
}

/// When the health checks (`crate::health::checks`) call a source silent.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// A capture interface, a configured DC, the syslog listener (when configured) or RADIUS
    /// (when secrets are configured) silent this long opens its health issue.
    pub silent_minutes: u64,
    /// A DC whose clock (from its KRB-ERRORs) is further than this from the sensor's opens
    /// `CLOCK_SKEW`: Kerberos' own tolerance by default.
    pub max_clock_skew_minutes: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            silent_minutes: 10,
            max_clock_skew_minutes: dcwatch_telemetry::health::MAX_CLOCK_SKEW_SECS / 60,
        }
    }
}

impl HealthConfig {
    pub fn silent_after_ns(&self) -> u64 {
        self.silent_minutes.saturating_mul(60_000_000_000)
    }

    pub fn max_clock_skew_ns(&self) -> u64 {
        self.max_clock_skew_minutes.saturating_mul(60_000_000_000)
    }
}

/// The Prometheus `/metrics`, `/livez` and `/readyz` endpoints.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where to serve them (`--metrics-listen` overrides); unset: not served.
    pub listen: Option<SocketAddr>,
}

/// The resource limiter (`crate::limiter`): what share of the host it keeps free, how often it
/// looks, and the sensor's own memory cap, which the flow and reassembly budgets derive from.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimiterConfig {
    pub enabled: bool,
    pub interval_secs: u64,
    pub min_free_cpu_percent: u8,
    pub min_free_memory_percent: u8,
    pub restore_margin_percent: u8,
    pub restore_ticks: u32,
    pub memory_mib: u32,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_secs: 10,
            min_free_cpu_percent: 15,
            min_free_memory_percent: 15,
            restore_margin_percent: 10,
            restore_ticks: 3,
            memory_mib: 512,
        }
    }
}

/// Of the memory cap, the share reassembly may hold by default.
const REASSEMBLY_SHARE_OF_CAP: u32 = 16;
/// Of the memory cap, the share the flow table may take by default, at [`FLOW_BUDGET_BYTES`]
/// per flow.
const FLOW_SHARE_OF_CAP: u64 = 4;
/// What one followed TCP connection is budgeted: its table entry, TCP state and session state.
pub const FLOW_BUDGET_BYTES: u64 = 1280;
/// Of the memory cap, the share the ring buffer, reassembly and flows may take together; the rest
/// is for everything else (batches, the spool writer, name resolution, the allocator's slack).
const FIXED_SHARE_NUMERATOR: u64 = 3;
const FIXED_SHARE_DENOMINATOR: u64 = 4;

impl LimiterConfig {
    pub fn policy(&self) -> crate::limiter::Policy {
        let share = |percent: u8| f64::from(percent) / 100.0;
        crate::limiter::Policy {
            min_free_cpu: share(self.min_free_cpu_percent),
            min_free_memory: share(self.min_free_memory_percent),
            restore_margin: share(self.restore_margin_percent),
            restore_ticks: self.restore_ticks,
            memory_cap_bytes: u64::from(self.memory_mib) << 20,
        }
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs)
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.interval_secs == 0 {
            return Err(("limiter.interval_secs", "must be at least 1".to_owned()));
        }
        for (key, percent) in [
            ("limiter.min_free_cpu_percent", self.min_free_cpu_percent),
            (
                "limiter.min_free_memory_percent",
                self.min_free_memory_percent,
            ),
            (
                "limiter.restore_margin_percent",
                self.restore_margin_percent,
            ),
        ] {
            if percent > 90 {
                return Err((key, "must be from 0 to 90".to_owned()));
            }
        }
        if self.memory_mib < 64 {
            return Err(("limiter.memory_mib", "must be at least 64".to_owned()));
        }
        Ok(())
    }
}

/// Network name resolution (`dcwatch_entity::nnr`): how long evidence stays good and how close
/// two names for one address must be to conflict.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NnrConfig {
    pub lease_secs: u64,
    pub conflict_window_secs: u64,
    /// Active probes (`crate::probe`) of addresses named with LOW certainty or not at all.
    pub active: bool,
    /// The only addresses probed.
    pub probe_subnets: Vec<dcwatch_detect::config::Subnet>,
    /// Where PTR queries go; unset: the first of `capture.dc_addresses`, if any.
    pub probe_dns_server: Option<IpAddr>,
    pub probe_rate_per_sec: u32,
    pub probe_retry_secs: u64,
    pub probe_timeout_ms: u64,
}

impl Default for NnrConfig {
    fn default() -> Self {
        let defaults = dcwatch_entity::nnr::NnrConfig::default();
        Self {
            lease_secs: u64::try_from(defaults.lease_ms / 1000).unwrap_or(u64::MAX),
            conflict_window_secs: u64::try_from(defaults.conflict_window_ms / 1000)
                .unwrap_or(u64::MAX),
            active: false,
            probe_subnets: Vec::new(),
            probe_dns_server: None,
            probe_rate_per_sec: 10,
            probe_retry_secs: 3600,
            probe_timeout_ms: 1000,
        }
    }
}

impl NnrConfig {
    /// The probes' settings when they are on; `dcs`: the configured DCs, whose DNS server
    /// answers PTR queries unless `probe_dns_server` says otherwise.
    pub fn probes(&self, dcs: &[IpAddr]) -> Option<crate::probe::ProbeSettings> {
        self.active.then(|| crate::probe::ProbeSettings {
            subnets: self.probe_subnets.clone(),
            dns_server: self
                .probe_dns_server
                .or_else(|| dcs.first().copied())
                .map(|server| SocketAddr::new(server, 53)),
            netbios_port: crate::probe::NETBIOS_PORT,
            rpc_port: crate::epm_query::EPM_PORT,
            rate_per_sec: self.probe_rate_per_sec,
            retry: Duration::from_secs(self.probe_retry_secs),
            timeout: Duration::from_millis(self.probe_timeout_ms),
        })
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if !self.active {
            return Ok(());
        }
        if self.probe_subnets.is_empty() {
            return Err((
                "nnr.probe_subnets",
                "active probes need the subnets they may probe".to_owned(),
            ));
        }
        if !(1..=1000).contains(&self.probe_rate_per_sec) {
            return Err((
                "nnr.probe_rate_per_sec",
                "must be from 1 to 1000".to_owned(),
            ));
        }
        if !(10..=10_000).contains(&self.probe_timeout_ms) {
            return Err((
                "nnr.probe_timeout_ms",
                "must be from 10 to 10000".to_owned(),
            ));
        }
        Ok(())
    }

    pub fn table_config(&self) -> dcwatch_entity::nnr::NnrConfig {
        let ms = |secs: u64| i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        dcwatch_entity::nnr::NnrConfig {
            lease_ms: ms(self.lease_secs),
            conflict_window_ms: ms(self.conflict_window_secs),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SensorConfig {
    /// Names the sensor in its activities; empty: the host name.
    pub id: String,
    /// error, warn, info, debug or trace; unset: `--log-level`. A SIGHUP applies a change.
    pub log_level: Option<String>,
}

impl SensorConfig {
    pub fn id(&self) -> String {
        if !self.id.is_empty() {
            return self.id.clone();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_owned())
            .unwrap_or_default()
    }
}

/// Limits of reassembly and dissection: the memory they may hold and how long flows live.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DissectConfig {
    /// Default: a sixteenth of `limiter.memory_mib`.
    pub memory_mib: Option<u32>,
    /// Default: what a quarter of `limiter.memory_mib` holds at `FLOW_BUDGET_BYTES` a flow.
    pub max_flows: Option<u32>,
    pub tcp_idle_timeout_secs: u64,
    pub max_buffered_per_direction_kib: u32,
    pub max_fragmented_datagrams: u32,
    pub fragment_timeout_secs: u64,
    /// Probe TCP flows on ports no service names for DCE-RPC by their content.
    pub rpc_by_content: bool,
}

impl Default for DissectConfig {
    fn default() -> Self {
        Self {
            memory_mib: None,
            max_flows: None,
            tcp_idle_timeout_secs: 300,
            max_buffered_per_direction_kib: 1024,
            max_fragmented_datagrams: 4096,
            fragment_timeout_secs: 30,
            rpc_by_content: true,
        }
    }
}

impl DissectConfig {
    /// Reassembly memory in MiB: as configured, or derived from the limiter's memory cap.
    pub fn memory_mib(&self, limiter: &LimiterConfig) -> u32 {
        self.memory_mib
            .unwrap_or((limiter.memory_mib / REASSEMBLY_SHARE_OF_CAP).max(1))
    }

    /// Flows followed at once: as configured, or derived from the limiter's memory cap.
    pub fn max_flows(&self, limiter: &LimiterConfig) -> u32 {
        self.max_flows.unwrap_or_else(|| {
            let bytes = (u64::from(limiter.memory_mib) << 20) / FLOW_SHARE_OF_CAP;
            u32::try_from(bytes / FLOW_BUDGET_BYTES)
                .unwrap_or(u32::MAX)
                .max(1)
        })
    }

    pub fn limits(&self, limiter: &LimiterConfig) -> DissectLimits {
        const KIB: usize = 1024;
        const NS_PER_SECOND: u64 = 1_000_000_000;
        let memory_bytes = self.memory_mib(limiter) as usize * KIB * KIB;
        DissectLimits {
            flows: FlowLimits {
                max_flows: self.max_flows(limiter) as usize,
                idle_timeout_ns: self.tcp_idle_timeout_secs.saturating_mul(NS_PER_SECOND),
                max_buffered_per_direction: self.max_buffered_per_direction_kib as usize * KIB,
                max_buffered_total: memory_bytes,
            },
            fragments: FragmentLimits {
                max_datagrams: self.max_fragmented_datagrams as usize,
                timeout_ns: self.fragment_timeout_secs.saturating_mul(NS_PER_SECOND),
                ..FragmentLimits::default()
            },
            memory_bytes,
            radius: RadiusSecrets::default(),
            rpc_by_content: self.rpc_by_content,
        }
    }
}

impl Config {
    /// The dissector's limits, with the RADIUS secrets of the `[radius]` section.
    /// The name resolver: its lease and conflict window, and the configured DCs.
    pub fn resolver(&self) -> dcwatch_entity::nnr::Resolver {
        dcwatch_entity::nnr::Resolver::new(
            self.nnr.table_config(),
            self.capture.dc_addresses.iter().copied(),
        )
    }

    pub fn dissect_limits(&self) -> DissectLimits {
        DissectLimits {
            radius: self.radius.secrets(),
            ..self.dissect.limits(&self.limiter)
        }
    }
}

/// RADIUS shared secrets, to check the authenticator of Accounting-Requests (RFC 2866 3).
/// `Debug` never shows them.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RadiusConfig {
    /// The secret of every NAS not listed in `secrets`; empty: none.
    pub secret: String,
    /// Secrets by NAS address (the source address of its requests).
    pub secrets: BTreeMap<IpAddr, String>,
}

impl fmt::Debug for RadiusConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RadiusConfig")
            .field("secret", &(!self.secret.is_empty()).then_some("<redacted>"))
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl RadiusConfig {
    pub fn secrets(&self) -> RadiusSecrets {
        RadiusSecrets::new(
            &self.secret,
            self.secrets
                .iter()
                .map(|(nas, secret)| (*nas, secret.as_str())),
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaptureConfig {
    pub interfaces: Vec<String>,
    pub mode: Mode,
    pub attach: Attach,
    pub snap_len: u32,
    pub ring_buffer_mib: u32,
    pub dc_addresses: Vec<IpAddr>,
    /// Ask each DC's endpoint mapper for its TCP endpoints and watch their ports.
    pub rpc_endpoint_query: bool,
    pub ports: PortsConfig,
    /// Tunnelled mirrors (ERSPAN, Ethernet over GRE, VXLAN, Geneve): taken apart, or not.
    pub decap: DecapMode,
    /// The UDP port VXLAN arrives on.
    pub vxlan_port: u16,
    /// Threads that decode and dissect; `None`: the CPUs less one (the reader's), at least one.
    pub workers: Option<u16>,
}

impl CaptureConfig {
    /// How many threads decode and dissect.
    pub fn workers(&self) -> usize {
        match self.workers {
            Some(workers) => usize::from(workers),
            None => std::thread::available_parallelism()
                .map_or(1, |cpus| cpus.get().saturating_sub(1).max(1)),
        }
    }

    /// How frames in tunnels are taken apart, live (in XDP) and in replay alike.
    pub fn decap(&self) -> DecapConfig {
        DecapConfig {
            mode: self.decap,
            vxlan_port: self.vxlan_port,
        }
    }
}

impl Default for CaptureConfig {
    fn default() -> Self {
        Self {
            interfaces: Vec::new(),
            mode: Mode::default(),
            attach: Attach::default(),
            snap_len: DEFAULT_SNAP_LEN,
            ring_buffer_mib: 64,
            dc_addresses: Vec::new(),
            rpc_endpoint_query: true,
            ports: PortsConfig::default(),
            decap: DecapMode::default(),
            vxlan_port: DecapConfig::default().vxlan_port,
            workers: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PortsConfig {
    pub tcp: Vec<u16>,
    pub udp: Vec<u16>,
}

impl Default for PortsConfig {
    fn default() -> Self {
        Self {
            tcp: default_ports(Transport::Tcp),
            udp: default_ports(Transport::Udp),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatsConfig {
    pub file: Option<PathBuf>,
    pub interval_secs: u64,
}

impl Default for StatsConfig {
    fn default() -> Self {
        Self {
            file: None,
            interval_secs: 10,
        }
    }
}

impl StatsConfig {
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs)
    }
}

/// The syslog listener for Windows events forwarded by a SIEM (`crate::syslog`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyslogConfig {
    /// Addresses to listen on, UDP and TCP each; empty: no listener.
    pub listen: Vec<SocketAddr>,
    /// TCP connections open at once; more are closed at once and counted.
    pub max_connections: u32,
    /// A TCP connection silent for this long is closed.
    pub idle_timeout_secs: u64,
}

impl Default for SyslogConfig {
    fn default() -> Self {
        Self {
            listen: Vec::new(),
            max_connections: 64,
            idle_timeout_secs: 300,
        }
    }
}

/// Where activities are streamed (`dcwatch-backend`'s gRPC ingest), and the spool that keeps them
/// until the backend has them.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackendConfig {
    /// `https://HOST:PORT`; unset: activities are not streamed.
    pub url: Option<String>,
    /// The access token `dcwatch-backend token add` printed for this sensor.
    pub token: String,
    /// The name of a systemd credential holding the token instead (`LoadCredential=NAME:...`).
    pub token_credential: Option<String>,
    /// PEM file of the CA that signed the backend's certificate; unset: the system's roots.
    pub ca: Option<PathBuf>,
    pub spool_dir: PathBuf,
    pub spool_max_mib: u32,
    pub batch_max_kib: u32,
    pub batch_max_secs: u64,
}

impl Default for BackendConfig {
    fn default() -> Self {
        Self {
            url: None,
            token: String::new(),
            token_credential: None,
            ca: None,
            spool_dir: PathBuf::from("/var/lib/dcwatch/spool"),
            spool_max_mib: 1024,
            batch_max_kib: 256,
            batch_max_secs: 1,
        }
    }
}

impl SyslogConfig {
    pub fn settings(&self) -> crate::syslog::ListenerSettings {
        crate::syslog::ListenerSettings {
            listen: self.listen.clone(),
            max_connections: self.max_connections as usize,
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
        }
    }
}

impl BackendConfig {
    /// The transport's settings when a backend is configured.
    pub fn transport(&self, sensor_id: String) -> Option<crate::transport::TransportConfig> {
        const MIB: u64 = 1024 * 1024;
        const KIB: usize = 1024;
        Some(crate::transport::TransportConfig {
            url: self.url.clone()?,
            token: self.token.clone(),
            ca: self.ca.clone(),
            spool: crate::transport::spool::SpoolOptions::new(
                self.spool_dir.clone(),
                u64::from(self.spool_max_mib) * MIB,
            ),
            batch: crate::transport::batcher::BatchLimits {
                max_bytes: self.batch_max_kib as usize * KIB,
                max_activities: crate::transport::batcher::MAX_BATCH_ACTIVITIES,
                max_age: Duration::from_secs(self.batch_max_secs),
            },
            sensor_id,
        })
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        use crate::transport::{batcher::MAX_BATCH_MAX_BYTES, spool};
        if let Some(url) = &self.url {
            let uri: tonic::transport::Uri = url
                .parse()
                .map_err(|error| ("backend.url", format!("not a URL: {error}")))?;
            let host = uri.host().unwrap_or_default();
            match uri.scheme_str() {
                Some("https") if !host.is_empty() => {}
                Some("http") if crate::transport::client::is_loopback(host) => {}
                Some("http") => {
                    return Err((
                        "backend.url",
                        "plain http:// only to a loopback address; use https://".to_owned(),
                    ));
                }
                _ => return Err(("backend.url", "must be https://HOST:PORT".to_owned())),
            }
            if self.token.is_empty() == self.token_credential.is_none() {
                return Err((
                    "backend.token",
                    "a backend needs the sensor's access token: token or token_credential, not \
                     both"
                        .to_owned(),
                ));
            }
        }
        let min_mib = spool::MIN_SEGMENTS * spool::MIN_SEGMENT_BYTES / (1024 * 1024);
        if u64::from(self.spool_max_mib) < min_mib {
            return Err((
                "backend.spool_max_mib",
                format!("must be at least {min_mib}"),
            ));
        }
        let max_kib = MAX_BATCH_MAX_BYTES / 1024;
        if !(1..=max_kib).contains(&(self.batch_max_kib as usize)) {
            return Err((
                "backend.batch_max_kib",
                format!("must be from 1 to {max_kib}"),
            ));
        }
        if !(1..=60).contains(&self.batch_max_secs) {
            return Err(("backend.batch_max_secs", "must be from 1 to 60".to_owned()));
        }
        Ok(())
    }
}

/// A configuration that cannot be used, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config file {path}: key `{key}`: {message}")]
    Key {
        path: PathBuf,
        key: String,
        message: String,
    },
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates `text`; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let deserializer =
            toml::Deserializer::parse(text).map_err(|error| ConfigError::Syntax {
                path: path.to_owned(),
                message: one_line(error.message()),
            })?;
        let config: Self = serde_path_to_error::deserialize(deserializer).map_err(|error| {
            let key = error.path().to_string();
            let message = one_line(error.inner().message());
            if key == "." {
                ConfigError::Syntax {
                    path: path.to_owned(),
                    message,
                }
            } else {
                ConfigError::Key {
                    path: path.to_owned(),
                    key,
                    message,
                }
            }
        })?;
        config
            .validate()
            .map_err(|(key, message)| ConfigError::Key {
                path: path.to_owned(),
                key: key.to_owned(),
                message,
            })?;
        Ok(config)
    }

    /// Range checks serde cannot express; also applied after command-line overrides.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let capture = &self.capture;
        if !(64..=MAX_SNAP_LEN).contains(&capture.snap_len) {
            return Err((
                "capture.snap_len",
                format!(
                    "{} is out of range: 64 to {MAX_SNAP_LEN} bytes",
                    capture.snap_len
                ),
            ));
        }
        if !(1..=1024).contains(&capture.ring_buffer_mib)
            || !capture.ring_buffer_mib.is_power_of_two()
        {
            return Err((
                "capture.ring_buffer_mib",
                format!(
                    "{} is not a power of two from 1 to 1024",
                    capture.ring_buffer_mib
                ),
            ));
        }
        if let Some(workers) = capture.workers
            && !(1..=MAX_WORKERS).contains(&workers)
        {
            return Err((
                "capture.workers",
                format!("{workers} is out of range: 1 to {MAX_WORKERS}"),
            ));
        }
        if capture.ports.tcp.is_empty() && capture.ports.udp.is_empty() {
            return Err((
                "capture.ports",
                "no port to watch: list at least one in `tcp` or `udp`".to_owned(),
            ));
        }
        if capture.dc_addresses.len() > sensor_common::MAX_DC_ADDRESSES as usize {
            return Err((
                "capture.dc_addresses",
                format!(
                    "{} addresses, more than the {} the sensor holds",
                    capture.dc_addresses.len(),
                    sensor_common::MAX_DC_ADDRESSES
                ),
            ));
        }
        let dissect = &self.dissect;
        if !(1..=65536).contains(&dissect.memory_mib(&self.limiter)) {
            return Err(("dissect.memory_mib", "must be from 1 to 65536".to_owned()));
        }
        if dissect.max_flows(&self.limiter) == 0 {
            return Err(("dissect.max_flows", "must be at least 1".to_owned()));
        }
        self.limiter.validate()?;
        self.fits_memory_cap()?;
        if dissect.tcp_idle_timeout_secs == 0 {
            return Err((
                "dissect.tcp_idle_timeout_secs",
                "must be at least 1".to_owned(),
            ));
        }
        if dissect.max_buffered_per_direction_kib == 0 {
            return Err((
                "dissect.max_buffered_per_direction_kib",
                "must be at least 1".to_owned(),
            ));
        }
        if dissect.fragment_timeout_secs == 0 {
            return Err((
                "dissect.fragment_timeout_secs",
                "must be at least 1".to_owned(),
            ));
        }
        if !(1..=65536).contains(&self.syslog.max_connections) {
            return Err((
                "syslog.max_connections",
                "must be from 1 to 65536".to_owned(),
            ));
        }
        if self.syslog.idle_timeout_secs == 0 {
            return Err(("syslog.idle_timeout_secs", "must be at least 1".to_owned()));
        }
        if self.stats.interval_secs == 0 {
            return Err(("stats.interval_secs", "must be at least 1".to_owned()));
        }
        if let Some(level) = &self.sensor.log_level {
            dcwatch_telemetry::logging::parse_level(level)
                .map_err(|message| ("sensor.log_level", message))?;
        }
        if self.health.silent_minutes == 0 {
            return Err(("health.silent_minutes", "must be at least 1".to_owned()));
        }
        self.backend.validate()?;
        self.nnr.validate()?;
        self.directory.validate()
    }
}

impl Config {
    /// The ring buffer, reassembly and the flow table fit in their share of the memory cap.
    fn fits_memory_cap(&self) -> Result<(), (&'static str, String)> {
        const MIB: u64 = 1 << 20;
        let limiter = &self.limiter;
        let fixed = u64::from(self.capture.ring_buffer_mib) * MIB
            + u64::from(self.dissect.memory_mib(limiter)) * MIB
            + u64::from(self.dissect.max_flows(limiter)) * FLOW_BUDGET_BYTES;
        let allowed =
            (u64::from(limiter.memory_mib) * MIB) / FIXED_SHARE_DENOMINATOR * FIXED_SHARE_NUMERATOR;
        if fixed > allowed {
            return Err((
                "limiter.memory_mib",
                format!(
                    "{} MiB is too small: the ring buffer, reassembly and {} flows at {} B take {} \
                     MiB, more than three quarters of it",
                    limiter.memory_mib,
                    self.dissect.max_flows(limiter),
                    FLOW_BUDGET_BYTES,
                    fixed.div_ceil(MIB)
                ),
            ));
        }
        Ok(())
    }
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("test.toml")).map_err(|error| error.to_string())
    }

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(parse(""), Ok(Config::default()));
    }

    #[test]
    fn flow_and_reassembly_budgets_derive_from_the_memory_cap() {
        let defaults = Config::default();
        assert_eq!(defaults.dissect.memory_mib(&defaults.limiter), 512 / 16);
        // A quarter of 512 MiB at 1280 bytes a flow.
        assert_eq!(defaults.dissect.max_flows(&defaults.limiter), 104_857);
        let doubled = parse("[limiter]\nmemory_mib = 1024\n").expect("valid");
        assert_eq!(doubled.dissect_limits().memory_bytes, 64 << 20);
        assert_eq!(doubled.dissect_limits().flows.max_flows, 209_715);
        let explicit = parse("[dissect]\nmax_flows = 10\n").expect("valid");
        assert_eq!(
            explicit.dissect_limits().flows.max_flows,
            10,
            "a set key wins"
        );
        // 64 MiB: the default 64 MiB ring buffer alone is more than three quarters of it.
        let error = parse("[limiter]\nmemory_mib = 64\n").expect_err("too small");
        assert!(error.contains("limiter.memory_mib"), "{error}");
        let fits = "[limiter]\nmemory_mib = 64\n[capture]\nring_buffer_mib = 8\n";
        parse(fits).expect("a smaller ring buffer fits");
        let error = parse("[limiter]\nmin_free_cpu_percent = 95\n").expect_err("too much");
        assert!(error.contains("limiter.min_free_cpu_percent"), "{error}");
    }

    #[test]
    fn example_file_documents_the_defaults() {
        let example = include_str!("../dcwatch.example.toml");
        assert_eq!(parse(example), Ok(Config::default()));
    }

    #[test]
    fn reads_every_section() {
        let config = parse(
            r#"
            [capture]
            interfaces = ["ens4"]
            mode = "host"
            attach = "generic"
            snap_len = 4096
            ring_buffer_mib = 128
            dc_addresses = ["10.0.0.1", "fd00::1"]
            ports = { tcp = [88], udp = [] }
            [stats]
            file = "/run/dcwatch/stats.json"
            interval_secs = 5
            [syslog]
            listen = ["0.0.0.0:514", "[::]:6514"]
            max_connections = 8
            idle_timeout_secs = 60
            [backend]
            url = "https://backend.example:7443"
            token = "secret"
            ca = "/etc/dcwatch/ca.pem"
            spool_dir = "/tmp/spool"
            spool_max_mib = 64
            batch_max_kib = 128
            batch_max_secs = 2
            "#,
        )
        .expect("valid config");
        assert_eq!(config.capture.mode, Mode::Host);
        assert_eq!(config.capture.attach, Attach::Generic);
        assert_eq!(config.capture.ports.tcp, [88]);
        assert_eq!(config.capture.dc_addresses.len(), 2);
        assert_eq!(config.stats.interval(), Duration::from_secs(5));
        assert_eq!(
            config.syslog.listen,
            [
                "0.0.0.0:514".parse::<SocketAddr>().expect("address"),
                "[::]:6514".parse().expect("address")
            ]
        );
        assert_eq!(config.syslog.settings().max_connections, 8);
        let transport = config.backend.transport("s".to_owned()).expect("a backend");
        assert_eq!(transport.url, "https://backend.example:7443");
        assert_eq!(transport.spool.max_bytes, 64 << 20);
        assert_eq!(transport.batch.max_bytes, 128 << 10);
        assert_eq!(transport.batch.max_age, Duration::from_secs(2));
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("[capture]\nmode = \"tap\"", "key `capture.mode`"),
            (
                "[capture.ports]\ntcp = [70000]",
                "key `capture.ports.tcp[0]`",
            ),
            (
                "[capture]\ndc_addresses = [\"dc1\"]",
                "key `capture.dc_addresses[0]`",
            ),
            ("[capture]\nsnap_len = 10", "key `capture.snap_len`"),
            ("[capture]\nworkers = 0", "key `capture.workers`"),
            ("[capture]\ndecap = \"on\"", "key `capture.decap`"),
            (
                "[capture]\nring_buffer_mib = 3",
                "key `capture.ring_buffer_mib`",
            ),
            (
                "[capture]\nsnapl_len = 10",
                "key `capture.snapl_len`: unknown field",
            ),
            ("[stats]\ninterval_secs = 0", "key `stats.interval_secs`"),
            ("[syslog]\nlisten = [\"514\"]", "key `syslog.listen[0]`"),
            (
                "[syslog]\nmax_connections = 0",
                "key `syslog.max_connections`",
            ),
            (
                "[backend]\nurl = \"http://10.0.0.1:7443\"\ntoken = \"t\"",
                "key `backend.url`",
            ),
            ("[backend]\nurl = \"https://b:7443\"", "key `backend.token`"),
            (
                "[backend]\nspool_max_mib = 1",
                "key `backend.spool_max_mib`",
            ),
            (
                "[backend]\nbatch_max_kib = 4096",
                "key `backend.batch_max_kib`",
            ),
        ];
        for (text, expected) in cases {
            let error = parse(text).expect_err(text);
            assert!(error.contains(expected), "{text:?} gave {error:?}");
            assert!(!error.contains('\n'), "{error:?} is not one line");
        }
    }

    #[test]
    fn radius_secrets_are_read_and_never_shown() {
        let config = parse(
            r#"
            [radius]
            secret = "fallback-secret"
            secrets = { "10.0.0.1" = "nas-one-secret" }
            "#,
        )
        .expect("valid config");
        let nas: IpAddr = "10.0.0.1".parse().expect("address");
        let secrets = config.dissect_limits().radius;
        assert_eq!(secrets.for_nas(nas), Some(&b"nas-one-secret"[..]));
        let other: IpAddr = "10.0.0.2".parse().expect("address");
        assert_eq!(secrets.for_nas(other), Some(&b"fallback-secret"[..]));
        let shown = format!("{config:?} {secrets:?}");
        assert!(!shown.contains("fallback-secret") && !shown.contains("nas-one-secret"));
        let error = parse("[radius]\nsecrets = { \"nas1\" = \"x\" }").expect_err("not an address");
        assert!(error.contains("key `radius.secrets"), "{error}");
    }

    #[test]
    fn directory_domains_are_read_and_clear_text_is_refused() {
        let domain = r#"
            [[directory.domains]]
            base_dn = "DC=lab,DC=example"
            dcs = ["dc1.lab.example"]
            user = "sync@lab.example"
            password_credential = "directory"
            sync = true
            "#;
        let config = parse(&format!("[directory]\ninterval_secs = 60\n{domain}")).expect("valid");
        let read = &config.directory.domains[0];
        assert_eq!(read.dns_name(), "lab.example");
        assert_eq!(read.port(), 636);
        assert_eq!(config.directory.lag(), Duration::from_secs(180));
        let cases = [
            (
                "tls = \"none\"",
                "\"none\" only with bind = \"kerberos\": a simple bind would send the password",
            ),
            (
                "tls = \"clear\"",
                "key `directory.domains[0].tls`: unknown variant",
            ),
            ("bind = \"anonymous\"", "key `directory.domains[0].bind`"),
            (
                "password_file = \"/p\"",
                "exactly one of password_file and password_credential",
            ),
            ("password = \"x\"", "unknown field `password`"),
            (
                "dc_addresses = [\"1.2.3.4\", \"5.6.7.8\"]",
                "one address per DC",
            ),
        ];
        for (line, expected) in cases {
            let text = domain.replace("sync = true", &format!("sync = true\n{line}"));
            let error = parse(&text).expect_err(line);
            assert!(error.contains(expected), "{line:?} gave {error:?}");
        }
    }

    #[test]
    fn active_probes_need_their_subnets_and_ask_the_first_dc_by_default() {
        let text = "[capture]\ndc_addresses = [\"10.0.0.1\"]\n[nnr]\nactive = true\n";
        let error = parse(text).expect_err("no subnets");
        assert!(error.contains("nnr.probe_subnets"), "{error}");
        let config = parse(&format!("{text}probe_subnets = [\"10.1.0.0/16\"]\n")).expect("valid");
        let probes = config
            .nnr
            .probes(&config.capture.dc_addresses)
            .expect("probes on");
        assert_eq!(
            probes.dns_server,
            Some("10.0.0.1:53".parse().expect("address"))
        );
        assert!(probes.subnets[0].contains("10.1.2.3".parse().expect("address")));
        assert_eq!(Config::default().nnr.probes(&[]), None, "off by default");
        let error = parse(&format!(
            "{text}probe_subnets = [\"10.1.0.0/16\"]\nprobe_rate_per_sec = 0\n"
        ))
        .expect_err("zero rate");
        assert!(error.contains("nnr.probe_rate_per_sec"), "{error}");
    }

    #[test]
    fn a_kerberos_bind_needs_a_keytab_and_a_principal_with_its_realm() {
        let domain = r#"
            [[directory.domains]]
            base_dn = "DC=lab,DC=example"
            dcs = ["dc1.lab.example"]
            bind = "kerberos"
            tls = "none"
            keytab = "/etc/dcwatch/dcwatch.keytab"
            principal = "dcwatch@LAB.EXAMPLE"
            sync = true
            "#;
        let config = parse(domain).expect("valid");
        let read = &config.directory.domains[0];
        assert_eq!(read.port(), 389);
        assert_eq!(read.realm(), Some("LAB.EXAMPLE"));
        let cases = [
            (
                "principal = \"dcwatch@LAB.EXAMPLE\"",
                "principal = \"dcwatch\"",
                "name@REALM",
            ),
            (
                "principal = \"dcwatch@LAB.EXAMPLE\"",
                "principal = \"@LAB\"",
                "name@REALM",
            ),
            (
                "keytab = \"/etc/dcwatch/dcwatch.keytab\"",
                "",
                "needs a keytab",
            ),
            (
                "sync = true",
                "sync = true\npassword_file = \"/p\"",
                "not a password",
            ),
            (
                "tls = \"none\"",
                "tls = \"ldaps\"",
                "signed and sealed by Kerberos itself",
            ),
        ];
        for (line, replacement, expected) in cases {
            let error = parse(&domain.replace(line, replacement)).expect_err(replacement);
            assert!(error.contains(expected), "{replacement:?} gave {error:?}");
        }
    }

    #[test]
    fn syntax_errors_are_one_line() {
        let error = parse("[capture\nmode = ").expect_err("broken TOML");
        assert!(error.starts_with("config file test.toml: "), "{error}");
        assert!(!error.contains('\n'), "{error:?}");
    }
}
