//! Directory sync (`[directory]`): this sensor reads the directory of the domains it is the
//! synchroniser of (`sync = true`) over LDAPS, StartTLS or Kerberos-sealed LDAP, and sends it to the backend as deltas
//! on the activity stream (spooled like batches). The LDAP-entry mapping and the replica are
//! pure (`dcwatch_entity::{ldap, replica}`); this module connects, schedules and reports.

pub mod client;
pub mod config;
pub mod kerberos;
pub mod secret;
pub mod sync;

use std::thread;

use dcwatch_entity::{Domain, Object};
use dcwatch_proto::v1::health_event::Severity;
use log::{error, warn};
use tokio::sync::watch;

use self::{
    config::DirectoryConfig,
    sync::{DomainSync, Health, log_report},
};
use crate::{health::IssueKind, transport::DirectorySink};

/// Health events into the log alone (no backend, or a one-shot sync).
#[derive(Debug)]
pub struct LogHealth;

impl Health for LogHealth {
    fn report(&self, _severity: Severity, _kind: &str, _message: String) {
        // The sync has logged the message already.
    }
}

impl Health for DirectorySink {
    fn report(&self, severity: Severity, kind: &str, message: String) {
        self.shared().health(severity, kind, message);
    }
}

/// The daemon's: events to the backend (when there is one), issues to the sensor's health.
#[derive(Debug)]
struct DaemonHealth {
    sink: Option<DirectorySink>,
    issues: crate::health::Health,
}

impl Health for DaemonHealth {
    fn report(&self, severity: Severity, kind: &str, message: String) {
        if let Some(sink) = &self.sink {
            sink.report(severity, kind, message);
        }
    }

    fn issue(&self, kind: IssueKind, subject: &str, condition: Option<String>) {
        self.issues.set(kind, subject, condition);
    }
}

/// The running sync: its thread, stopped by [`DirectorySync::stop`] or on drop.
#[derive(Debug)]
pub struct DirectorySync {
    stop: watch::Sender<bool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl DirectorySync {
    /// Starts syncing the domains this sensor synchronises, when there are any. Without a
    /// backend (`sink` None) the sync still runs, and its health shows in the log.
    pub fn start(
        config: &DirectoryConfig,
        sink: Option<DirectorySink>,
        issues: crate::health::Health,
    ) -> std::io::Result<Option<Self>> {
        let domains: Vec<DomainSync> = config
            .domains
            .iter()
            .filter(|domain| domain.sync)
            .cloned()
            .map(DomainSync::new)
            .collect();
        if domains.is_empty() {
            return Ok(None);
        }
        if sink.is_none() {
            warn!("directory sync runs without a backend: what it reads goes nowhere but the log");
        }
        let (stop, stopped) = watch::channel(false);
        let settings = config.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = thread::Builder::new()
            .name("directory".to_owned())
            .spawn(move || {
                let health = DaemonHealth { sink, issues };
                runtime.block_on(run(settings, domains, health, stopped));
            })?;
        Ok(Some(Self {
            stop,
            thread: Some(thread),
        }))
    }

    pub fn stop(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        self.stop.send_replace(true);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            error!("the directory sync thread panicked");
        }
    }
}

impl Drop for DirectorySync {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

async fn run(
    settings: DirectoryConfig,
    mut domains: Vec<DomainSync>,
    health: DaemonHealth,
    mut stopped: watch::Receiver<bool>,
) {
    let sink = health.sink.as_ref();
    let mut ticks = tokio::time::interval(settings.interval());
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stopped.changed() => return,
        }
        for domain in &mut domains {
            let synced = tokio::select! {
                synced = domain.sync(&settings, &health) => synced,
                _ = stopped.changed() => return,
            };
            if let Some(mut report) = synced {
                let deltas = domain.take_deltas();
                report.changed = deltas.iter().map(|delta| delta.objects.len()).sum();
                log_report(&domain.config.dns_name(), &report);
                if let Some(sink) = sink {
                    for delta in deltas {
                        if !sink.send(delta).await {
                            return;
                        }
                    }
                }
            }
            domain.check_lag(&settings, &health);
        }
    }
}

/// One full sync of every domain this sensor synchronises, for `directory sync --out`: the
/// domains (those not synced too) and the objects read. Fails on the first domain that fails.
pub async fn snapshot(config: &DirectoryConfig) -> Result<(Vec<Domain>, Vec<Object>), String> {
    let mut domains = Vec::new();
    let mut objects = Vec::new();
    for domain_config in &config.domains {
        let mut domain = DomainSync::new(domain_config.clone());
        if domain_config.sync {
            let report = domain.sync(config, &LogHealth).await.ok_or_else(|| {
                format!(
                    "directory {}: the sync failed (see above)",
                    domain_config.dns_name()
                )
            })?;
            let mut report = report;
            report.changed = domain.replica().len();
            log_report(&domain_config.dns_name(), &report);
            objects.extend(domain.replica().objects());
        }
        domains.push(domain.replica().domain().clone());
    }
    Ok((domains, objects))
}
