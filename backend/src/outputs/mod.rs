//! Where alerts and health events go besides the store: syslog destinations (CEF in MDI's
//! layout) and a JSON-lines file.
//!
//! Nothing here waits for a destination: each has a bounded queue that a task or thread of its
//! own drains; a message that finds its queue full is dropped and counted. Detection and ingest
//! only format and enqueue.

pub mod json_file;
pub mod syslog;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use dcwatch_proto::{
    cef::{self, CefContext},
    v1::{Alert, HealthEvent},
};

use crate::config::OutputsConfig;

dcwatch_telemetry::counters! {
    /// What the outputs count (the stats file's names).
    #[derive(Debug, Default)]
    pub struct OutputCounters {
        /// Syslog messages (alerts and health events in CEF) sent.
        counter syslog_sent: AtomicU64,
        /// Syslog messages dropped: a destination's queue was full.
        counter syslog_dropped: AtomicU64,
        /// Syslog messages a destination failed to take.
        counter syslog_send_errors: AtomicU64,
        /// Connections made to TCP or TLS syslog destinations.
        counter syslog_connects: AtomicU64,
        /// Lines written to the JSON output file.
        counter json_written: AtomicU64,
        /// Lines dropped: the JSON file's queue was full.
        counter json_dropped: AtomicU64,
        /// Lines the JSON file failed to take.
        counter json_errors: AtomicU64,
        /// Times the JSON file was reopened (SIGHUP).
        counter json_reopened: AtomicU64,
    }
}

pub(crate) fn add(counter: &AtomicU64, value: u64) {
    counter.fetch_add(value, Ordering::Relaxed);
}

/// Every configured output.
#[derive(Debug)]
pub struct Outputs {
    syslog: Vec<syslog::SyslogOutput>,
    json: Option<json_file::JsonFile>,
    console_url: String,
    hostname: String,
    counters: Arc<OutputCounters>,
}

impl Outputs {
    /// Starts each destination's task (on the current tokio runtime) and opens the JSON file.
    pub fn start(config: &OutputsConfig) -> Result<Self, OutputError> {
        let counters = Arc::new(OutputCounters::default());
        let syslog = config
            .syslog
            .iter()
            .map(|destination| syslog::SyslogOutput::start(destination, Arc::clone(&counters)))
            .collect::<Result<Vec<_>, _>>()?;
        let json = config
            .json
            .as_ref()
            .map(|json| json_file::JsonFile::start(&json.path, Arc::clone(&counters)))
            .transpose()?;
        Ok(Self {
            syslog,
            json,
            console_url: config.console_url.clone(),
            hostname: crate::tls::host_name().unwrap_or_default(),
            counters,
        })
    }

    /// No output at all (tests, and commands that only read the store).
    pub fn none() -> Self {
        Self {
            syslog: Vec::new(),
            json: None,
            console_url: String::new(),
            hostname: String::new(),
            counters: Arc::default(),
        }
    }

    pub fn counters(&self) -> &Arc<OutputCounters> {
        &self.counters
    }

    fn context(&self) -> CefContext<'_> {
        CefContext {
            version: env!("CARGO_PKG_VERSION"),
            console_url: &self.console_url,
        }
    }

    /// Queues an alert (new or an update to emit) to every output.
    pub fn alert(&self, alert: &Alert) {
        if !self.syslog.is_empty() {
            let line = cef::alert_line(alert, &self.context());
            for destination in &self.syslog {
                destination.send(
                    &line,
                    &alert.class,
                    cef::alert_pri(destination.facility(), alert),
                    now_ns(),
                    &self.hostname,
                );
            }
        }
        if let Some(json) = &self.json {
            json.alert(alert);
        }
    }

    /// Queues a sensor's health event to the syslog destinations.
    pub fn health(&self, sensor_id: &str, event: &HealthEvent) {
        if self.syslog.is_empty() {
            return;
        }
        let line = cef::health_line(sensor_id, event, &self.context());
        for destination in &self.syslog {
            destination.send(
                &line,
                cef::HEALTH_CLASS,
                cef::health_pri(destination.facility(), event),
                now_ns(),
                &self.hostname,
            );
        }
    }

    /// Reopens the JSON file (SIGHUP, after logrotate moved it).
    pub fn reopen(&self) {
        if let Some(json) = &self.json {
            json.reopen();
        }
    }

    /// Waits (at most `patience`) for queued messages to go out, then stops the outputs.
    pub async fn finish(self, patience: std::time::Duration) {
        for destination in self.syslog {
            destination.finish(patience).await;
        }
        if let Some(json) = self.json {
            let _ = tokio::task::spawn_blocking(move || json.finish()).await;
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("syslog destination {address}: {message}")]
    Syslog { address: String, message: String },
    #[error("JSON output {path}: {source}")]
    Json {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

pub(crate) fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
        })
}
