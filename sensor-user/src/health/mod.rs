//! The sensor's health issues (dcwatch-telemetry's model): whatever measures something — the
//! live loop's checks ([`checks`], with the DCs' clock skew from [`skew`]), the directory sync, the resource limiter — says through a
//! [`Health`] whether its condition holds; openings and closings are logged and sent to the
//! backend, and the open ones show in `/metrics`.

pub mod checks;
pub mod skew;

use std::sync::{Arc, Mutex, PoisonError};

use dcwatch_proto::v1::health_event::Severity;
use dcwatch_telemetry::health::Issues;
pub use dcwatch_telemetry::health::{Issue, IssueKind};
use log::{error, info, warn};

use crate::transport::Shared;

/// A handle on the sensor's issues; clones share them.
///
/// ```
/// use sensor_user::health::{Health, IssueKind};
/// let health = Health::default(); // no backend: the log only
/// health.set(IssueKind::TrafficDropped, "", Some("4.0% of matched frames dropped".into()));
/// assert_eq!(health.open().len(), 1);
/// health.set(IssueKind::TrafficDropped, "", None); // closes it
/// assert!(health.open().is_empty());
/// ```
#[derive(Clone, Debug, Default)]
pub struct Health {
    issues: Arc<Mutex<Issues>>,
    backend: Option<Arc<Shared>>,
}

impl Health {
    /// Issues also go to the backend through `backend`'s queue, when given.
    pub fn new(backend: Option<Arc<Shared>>) -> Self {
        Self {
            issues: Arc::default(),
            backend,
        }
    }

    /// Records whether `kind`'s condition holds for `subject` (empty: the sensor as a whole)
    /// now: `Some(detail)` it does, `None` it does not. Cheap when nothing changes; call it
    /// every time the condition is measured.
    pub fn set(&self, kind: IssueKind, subject: &str, condition: Option<String>) {
        let now_ns = crate::transport::unix_now_ns();
        let mut issues = self.issues.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(changed) = issues.set(kind, subject, condition, now_ns) else {
            return;
        };
        let open: Vec<_> = issues.open().map(Issue::to_event).collect();
        drop(issues);
        log_transition(&changed);
        if let Some(backend) = &self.backend {
            backend.issue(changed.to_event(), open);
        }
    }

    /// Closes the open issues of `kind` whose subject `keep` refuses (a DC or an interface no
    /// longer configured).
    pub fn retain(&self, kind: IssueKind, keep: impl FnMut(&str) -> bool) {
        let now_ns = crate::transport::unix_now_ns();
        let mut issues = self.issues.lock().unwrap_or_else(PoisonError::into_inner);
        let closed = issues.retain(kind, keep, now_ns);
        let open: Vec<_> = issues.open().map(Issue::to_event).collect();
        drop(issues);
        for issue in closed {
            log_transition(&issue);
            if let Some(backend) = &self.backend {
                backend.issue(issue.to_event(), open.clone());
            }
        }
    }

    /// The issues open now.
    pub fn open(&self) -> Vec<Issue> {
        self.issues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .open()
            .cloned()
            .collect()
    }
}

fn log_transition(issue: &Issue) {
    let about = if issue.subject.is_empty() {
        String::new()
    } else {
        format!(" ({})", issue.subject)
    };
    let (title, detail) = (issue.kind.title(), &issue.detail);
    if !issue.is_open() {
        info!("health issue closed: {title}{about}: {detail}");
        return;
    }
    match issue.kind.severity() {
        Severity::Error => error!("health issue: {title}{about}: {detail}"),
        Severity::Warning => warn!("health issue: {title}{about}: {detail}"),
        Severity::Info | Severity::Unspecified => info!("health issue: {title}{about}: {detail}"),
    }
}
