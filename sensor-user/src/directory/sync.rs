//! Syncing one domain: a full read (paged, tombstones included) when the replica is new, the DC
//! changed or a reconciliation is due, else the changes since the last uSNChanged; then the
//! changed objects as deltas. The health of it (credentials refused, no DC reachable, lagging)
//! is reported when it changes, not at every interval.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use dcwatch_entity::{Domain, ldap::RawEntry, replica::Replica};
use dcwatch_proto::v1::{DirectoryDelta, DirectoryDomain, DirectoryObject, health_event::Severity};
use log::{info, warn};

use crate::health::IssueKind;
use prost::Message as _;

use super::{
    client::{ClientError, Credentials, Session},
    config::{BindMode, DirectoryConfig, DomainConfig},
    kerberos::{self, KerberosError},
    secret,
};

/// A delta's encoded size at most: well inside a spool record (1 MiB) even uncompressed.
pub const MAX_DELTA_BYTES: usize = 512 * 1024;

pub const CREDENTIALS_REFUSED: &str = "DIRECTORY_CREDENTIALS_REFUSED";
pub const DC_UNREACHABLE: &str = "DIRECTORY_DC_UNREACHABLE";
pub const SYNC_FAILED: &str = "DIRECTORY_SYNC_FAILED";
pub const SYNC_LAGGING: &str = "DIRECTORY_SYNC_LAGGING";
pub const SYNC_RECOVERED: &str = "DIRECTORY_SYNC_RECOVERED";

/// What one sync did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub full: bool,
    pub dc: String,
    /// Entries the DC returned.
    pub entries: u64,
    /// Objects whose view changed (what the deltas carry).
    pub changed: usize,
    /// Objects the reconciliation found gone.
    pub gone: usize,
    pub elapsed: Duration,
}

/// Where health events go: the backend's stream in the daemon, the log alone otherwise.
pub trait Health {
    fn report(&self, severity: Severity, kind: &str, message: String);

    /// Whether a health issue's condition holds (`crate::health::Health::set`); by default
    /// nowhere (a one-shot sync, tests).
    fn issue(&self, _kind: IssueKind, _subject: &str, _condition: Option<String>) {}
}

#[derive(Debug)]
pub struct DomainSync {
    pub config: DomainConfig,
    replica: Replica,
    /// Names the replica's life: the backend reconciles a full sync against it.
    sync_id: String,
    /// Where the next incremental sync starts; 0: a full sync is due.
    next_usn: u64,
    /// The DC the USNs belong to (each DC numbers its own changes).
    dc: String,
    last_full: Option<Instant>,
    last_ok: Instant,
    /// The health event kind of the current trouble, reported once.
    trouble: Option<&'static str>,
    full_pending_complete: bool,
}

fn new_sync_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

impl DomainSync {
    pub fn new(config: DomainConfig) -> Self {
        let domain = Domain {
            name: config.dns_name(),
            dc_addresses: if config.dc_addresses.is_empty() {
                config.dcs.clone()
            } else {
                config.dc_addresses.clone()
            },
            ..Domain::default()
        };
        Self {
            config,
            replica: Replica::new(domain),
            sync_id: new_sync_id(),
            next_usn: 0,
            dc: String::new(),
            last_full: None,
            last_ok: Instant::now(),
            trouble: None,
            full_pending_complete: false,
        }
    }

    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// Connects to the first DC that answers, then syncs. Health and logs on failure.
    pub async fn sync(
        &mut self,
        settings: &DirectoryConfig,
        health: &dyn Health,
    ) -> Option<SyncReport> {
        let name = self.config.dns_name();
        match self.try_sync(settings).await {
            Ok(report) => {
                health.issue(IssueKind::DirectoryUnreachable, &name, None);
                if self.trouble.take().is_some() {
                    health.report(
                        Severity::Info,
                        SYNC_RECOVERED,
                        format!("directory {name}: synced again from {}", report.dc),
                    );
                }
                self.last_ok = Instant::now();
                Some(report)
            }
            Err(error) => {
                let (kind, severity) = match &error {
                    SyncError::Client(ClientError::Credentials { .. })
                    | SyncError::Secret(_)
                    | SyncError::Keytab(_)
                    | SyncError::Kerberos(KerberosError::Refused(_)) => {
                        (CREDENTIALS_REFUSED, Severity::Error)
                    }
                    SyncError::NoDc(_) | SyncError::Kerberos(KerberosError::Unreachable(_)) => {
                        (DC_UNREACHABLE, Severity::Error)
                    }
                    SyncError::Client(_) => (SYNC_FAILED, Severity::Warning),
                };
                let message = format!("directory {name}: {error}");
                warn!("{message}");
                if severity == Severity::Error {
                    health.issue(
                        IssueKind::DirectoryUnreachable,
                        &name,
                        Some(message.clone()),
                    );
                }
                if self.trouble != Some(kind) {
                    self.trouble = Some(kind);
                    health.report(severity, kind, message);
                }
                None
            }
        }
    }

    /// Raises SYNC_LAGGING once the domain has gone without a sync for `settings.lag()`.
    pub fn check_lag(&mut self, settings: &DirectoryConfig, health: &dyn Health) {
        let late = self.last_ok.elapsed();
        if late >= settings.lag() && self.trouble != Some(SYNC_LAGGING) {
            let message = format!(
                "directory {}: not synced for {}s (interval {}s); entity data may be stale",
                self.config.dns_name(),
                late.as_secs(),
                settings.interval_secs
            );
            warn!("{message}");
            self.trouble = Some(SYNC_LAGGING);
            health.report(Severity::Warning, SYNC_LAGGING, message);
        }
    }

    async fn try_sync(&mut self, settings: &DirectoryConfig) -> Result<SyncReport, SyncError> {
        let started = Instant::now();
        let credentials = self.credentials()?;
        let timeout = Duration::from_secs(settings.timeout_secs);
        let mut failures = Vec::new();
        let mut session = None;
        for index in 0..self.config.dcs.len() {
            match Session::open(
                &self.config,
                index,
                &credentials,
                settings.page_size,
                timeout,
            )
            .await
            {
                Ok(opened) => {
                    session = Some(opened);
                    break;
                }
                // The same account on another DC would be refused too.
                Err(error @ ClientError::Credentials { .. }) => return Err(error.into()),
                Err(error) => failures.push(error.to_string()),
            }
        }
        drop(credentials);
        let mut session = session.ok_or_else(|| SyncError::NoDc(failures.join("; ")))?;
        let result = self.read(&mut session, settings).await;
        let dc = session.dc.clone();
        session.close().await;
        let mut report = result?;
        report.dc = dc;
        report.elapsed = started.elapsed();
        Ok(report)
    }

    /// The password, or the keytab's Kerberos credentials with their tickets in a memory cache
    /// named after this replica (the same cache at every sync: tickets are reused while valid).
    fn credentials(&self) -> Result<Credentials, SyncError> {
        match self.config.bind {
            BindMode::Simple => secret::read(&self.config)
                .map(Credentials::Password)
                .map_err(SyncError::Secret),
            BindMode::Kerberos => {
                let keytab = self.config.keytab.as_deref().unwrap_or(Path::new(""));
                secret::check_private(keytab).map_err(SyncError::Keytab)?;
                let cache = format!("MEMORY:dcwatch-directory-{}", self.sync_id);
                kerberos::acquire(keytab, &self.config.principal, &cache)
                    .map(Credentials::Keytab)
                    .map_err(SyncError::Kerberos)
            }
        }
    }

    async fn read(
        &mut self,
        session: &mut Session,
        settings: &DirectoryConfig,
    ) -> Result<SyncReport, SyncError> {
        let root = session.root_dse().await?;
        let reconcile = Duration::from_secs(settings.reconcile_hours.saturating_mul(3600));
        let full = self.next_usn == 0
            || self.dc != session.dc
            || self.last_full.is_none_or(|at| at.elapsed() >= reconcile);
        let base_dn = self.config.base_dn.clone();
        if full {
            self.read_domain(session, &root.configuration_nc).await?;
            self.replica.begin_full();
        }
        let from = if full { 0 } else { self.next_usn };
        let mut ranged: Vec<(RawEntry, u64)> = Vec::new();
        let replica = &mut self.replica;
        let mut unmapped = 0_u64;
        let entries = session
            .changed(&base_dn, from, root.highest_usn, |entry| {
                let is_group = entry
                    .values("objectClass")
                    .iter()
                    .any(|class| class.eq_ignore_ascii_case(b"group"));
                let members = if is_group {
                    match entry.members() {
                        Ok(members) => Some(members),
                        Err(next) => {
                            ranged.push((entry, next));
                            return;
                        }
                    }
                } else {
                    None
                };
                if replica.apply(&entry, members).is_err() {
                    unmapped += 1;
                }
            })
            .await?;
        for (entry, next) in ranged {
            let mut members = entry.ranged_values();
            members.extend(session.member_ranges(&entry.dn, next).await?);
            if self.replica.apply(&entry, Some(members)).is_err() {
                unmapped += 1;
            }
        }
        if unmapped > 0 {
            warn!(
                "directory {}: {unmapped} entries without an objectGUID skipped",
                self.config.dns_name()
            );
        }
        let gone = if full {
            self.last_full = Some(Instant::now());
            self.full_pending_complete = true;
            self.replica.end_full()
        } else {
            0
        };
        self.next_usn = root.highest_usn.saturating_add(1);
        self.dc = session.dc.clone();
        Ok(SyncReport {
            full,
            entries,
            gone,
            ..SyncReport::default()
        })
    }

    /// The domain object's SID and the crossRef's NetBIOS name.
    async fn read_domain(
        &mut self,
        session: &mut Session,
        configuration_nc: &str,
    ) -> Result<(), SyncError> {
        let base_dn = self.config.base_dn.clone();
        if let Some(entry) = session.base(&base_dn, vec!["objectSid".into()]).await?
            && let Some(sid) = entry
                .first("objectSid")
                .and_then(dcwatch_entity::ldap::sid_to_string)
        {
            self.replica.domain_mut().sid = sid;
        }
        if !configuration_nc.is_empty() {
            let netbios = session.netbios_name(configuration_nc, &base_dn).await?;
            if !netbios.is_empty() {
                self.replica.domain_mut().netbios_name = netbios;
            }
        }
        Ok(())
    }

    /// The changes since the last call, cut into deltas; the last delta of a full sync says
    /// so (even when nothing changed), for the backend's reconciliation.
    pub fn take_deltas(&mut self) -> Vec<DirectoryDelta> {
        let changes = self.replica.take_changes();
        let domain = DirectoryDomain::from(self.replica.domain());
        let usn = self.next_usn.saturating_sub(1);
        let empty = || DirectoryDelta {
            domain: Some(domain.clone()),
            objects: Vec::new(),
            sync_id: self.sync_id.clone(),
            full_sync_complete: false,
            usn,
        };
        let mut deltas = Vec::new();
        let mut current = empty();
        let mut size = current.encoded_len();
        for object in &changes {
            let object = DirectoryObject::from(object);
            let len = object.encoded_len() + 8;
            if !current.objects.is_empty() && size + len > MAX_DELTA_BYTES {
                deltas.push(std::mem::replace(&mut current, empty()));
                size = current.encoded_len();
            }
            size += len;
            current.objects.push(object);
        }
        if !current.objects.is_empty() || self.full_pending_complete {
            deltas.push(current);
        }
        if self.full_pending_complete {
            if let Some(last) = deltas.last_mut() {
                last.full_sync_complete = true;
            }
            self.full_pending_complete = false;
        }
        deltas
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("the directory password: {0}")]
    Secret(secret::SecretError),
    #[error("the keytab: {0}")]
    Keytab(secret::SecretError),
    #[error(transparent)]
    Kerberos(KerberosError),
    #[error("no DC answered: {0}")]
    NoDc(String),
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// Logs what a sync did.
pub fn log_report(domain: &str, report: &SyncReport) {
    info!(
        "directory {domain}: {} sync from {}: {} entries read, {} objects changed, {} gone, in {:.1}s",
        if report.full { "full" } else { "incremental" },
        report.dc,
        report.entries,
        report.changed,
        report.gone,
        report.elapsed.as_secs_f64()
    );
}
