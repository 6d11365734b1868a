//! Health issues at the backend: those sensors send (stored as they open and close, and
//! reconciled when a sensor reconnects), and those the backend derives about a sensor — it
//! stopped communicating ([`SENSOR_SILENT_AFTER_SECS`]), or runs an older version than the
//! backend. `dcwatch-backend health` lists them; the outputs get each opening and closing as a
//! CEF line; `/metrics` counts the open ones.

use std::io::{self, Write};

use dcwatch_proto::v1::HealthEvent;
use dcwatch_telemetry::health::{Issue, IssueKind, SENSOR_SILENT_AFTER_SECS};

use crate::store::{Recorded, Storage, StoreError, StoredIssue, is_derived};

/// The backend's version: a sensor below it is outdated.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Stores what a sensor's health event says. Returns the event to hand the outputs: a point
/// event (from sensors that predate issues), or an issue that opened or closed; `None` for an
/// issue sent again.
pub fn receive(
    store: &mut dyn Storage,
    sensor_id: &str,
    event: &HealthEvent,
) -> Result<Option<HealthEvent>, StoreError> {
    match Issue::from_event(event) {
        None => {
            store.store_health(sensor_id, event)?;
            Ok(Some(event.clone()))
        }
        // A sensor does not decide whether it is silent or outdated.
        Some(issue) if is_derived(issue.kind) => Ok(None),
        Some(issue) => match store.record_issue(sensor_id, &issue)? {
            Recorded::Opened | Recorded::Closed => Ok(Some(event.clone())),
            Recorded::Unchanged => Ok(None),
        },
    }
}

/// A reconnected sensor's open issues: those it lists are recorded (opened if the backend
/// missed them), the others it had open are closed now. Returns the events of what changed.
pub fn reconcile(
    store: &mut dyn Storage,
    sensor_id: &str,
    open: &[HealthEvent],
    now_ns: u64,
) -> Result<Vec<HealthEvent>, StoreError> {
    let open: Vec<Issue> = open
        .iter()
        .filter_map(Issue::from_event)
        .filter(|issue| issue.is_open() && !is_derived(issue.kind))
        .collect();
    let mut changed = Vec::new();
    for issue in &open {
        if store.record_issue(sensor_id, issue)? == Recorded::Opened {
            changed.push(issue.to_event());
        }
    }
    let closed = store.reconcile_issues(sensor_id, &open, now_ns)?;
    changed.extend(closed.iter().map(Issue::to_event));
    Ok(changed)
}

/// Opens and closes the issues the backend derives, for every sensor it knows, as of `now_ns`.
/// Returns what changed, by sensor.
pub fn derive(store: &mut dyn Storage, now_ns: u64) -> Result<Vec<(String, Issue)>, StoreError> {
    let open = store.issues(None, true)?;
    let is_open = |sensor: &str, kind: IssueKind| {
        open.iter()
            .any(|stored| stored.sensor_id == sensor && stored.issue.kind == kind)
    };
    let mut changed = Vec::new();
    for (sensor, last_seen_ns, version) in store.sensors_seen()? {
        let last_seen_ns = u64::try_from(last_seen_ns).unwrap_or_default();
        let silent_ns = now_ns.saturating_sub(last_seen_ns);
        let silent = silent_ns >= SENSOR_SILENT_AFTER_SECS * 1_000_000_000;
        let conditions = [
            (
                IssueKind::SensorSilent,
                silent.then(|| {
                    format!(
                        "no message from the sensor for {} minutes",
                        silent_ns / 60_000_000_000
                    )
                }),
                // It stopped communicating when it was last heard from.
                last_seen_ns,
            ),
            (
                IssueKind::SensorOutdated,
                older(&version, VERSION).then(|| {
                    format!("the sensor runs {version}, the backend {VERSION}: upgrade it")
                }),
                now_ns,
            ),
        ];
        for (kind, condition, start_ns) in conditions {
            let issue = match (condition, is_open(&sensor, kind)) {
                (Some(detail), false) => Issue {
                    kind,
                    subject: String::new(),
                    detail,
                    start_ns,
                    end_ns: None,
                },
                (None, true) => Issue {
                    kind,
                    subject: String::new(),
                    detail: String::new(),
                    start_ns: 0,
                    end_ns: Some(now_ns),
                },
                _ => continue,
            };
            store.record_issue(&sensor, &issue)?;
            changed.push((sensor.clone(), issue));
        }
    }
    Ok(changed)
}

/// Whether dotted version `version` is below `than` (numbers compared part by part; a version
/// that is not numbers is never older).
pub fn older(version: &str, than: &str) -> bool {
    let parts = |text: &str| -> Option<Vec<u64>> {
        text.split(['-', '+'])
            .next()?
            .split('.')
            .map(|part| part.parse().ok())
            .collect()
    };
    match (parts(version), parts(than)) {
        (Some(version), Some(than)) => version < than,
        _ => false,
    }
}

/// `dcwatch-backend health`: one line per issue, or a JSON object per line.
pub fn print(issues: &[StoredIssue], json: bool, out: &mut impl Write) -> io::Result<()> {
    for stored in issues {
        let issue = &stored.issue;
        let start = rfc3339(issue.start_ns);
        let end = issue.end_ns.map(rfc3339);
        if json {
            let line = serde_json::json!({
                "sensor": stored.sensor_id,
                "kind": issue.kind.name(),
                "title": issue.kind.title(),
                "severity": issue.kind.severity().as_str_name(),
                "subject": issue.subject,
                "state": if issue.is_open() { "open" } else { "closed" },
                "start": start,
                "end": end,
                "detail": issue.detail,
            });
            writeln!(out, "{line}")?;
        } else {
            let state = match &end {
                None => format!("OPEN   since {start}"),
                Some(end) => format!("closed {start} .. {end}"),
            };
            let subject = if issue.subject.is_empty() {
                String::new()
            } else {
                format!(" [{}]", issue.subject)
            };
            writeln!(
                out,
                "{state}  {}  {} {}{subject}: {}: {}",
                stored.sensor_id,
                issue.kind.severity().as_str_name(),
                issue.kind.name(),
                issue.kind.title(),
                issue.detail
            )?;
        }
    }
    Ok(())
}

fn rfc3339(unix_ns: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(unix_ns);
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn versions_compare_by_number() {
        assert!(older("0.1.0", "0.2.0"));
        assert!(older("0.9.9", "0.10.0"));
        assert!(!older("0.10.0", "0.9.9"));
        assert!(!older("0.2.0", "0.2.0"));
        assert!(!older("", "0.2.0"), "unknown: not older");
        assert!(older("1.2.3-rc1", "1.2.4"));
    }

    #[test]
    fn silent_and_outdated_sensors_are_derived_and_cleared() {
        let directory = tempfile::tempdir().expect("directory");
        let mut store = Store::open(directory.path()).expect("store");
        let minute: u64 = 60_000_000_000;
        store
            .sensor_seen("old", "0.0.1", i64::try_from(minute).expect("fits"))
            .expect("seen");
        store
            .sensor_seen("new", VERSION, i64::try_from(5 * minute).expect("fits"))
            .expect("seen");
        let changed = derive(&mut store, 7 * minute).expect("derive");
        let kinds: Vec<(&str, IssueKind)> = changed
            .iter()
            .map(|(sensor, issue)| (sensor.as_str(), issue.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("old", IssueKind::SensorSilent),
                ("old", IssueKind::SensorOutdated),
            ]
        );
        assert_eq!(
            changed[0].1.start_ns, minute,
            "silent since it was last heard"
        );
        assert!(
            derive(&mut store, 8 * minute).expect("again").is_empty(),
            "no repeat"
        );
        store
            .sensor_seen("old", VERSION, i64::try_from(9 * minute).expect("fits"))
            .expect("back, upgraded");
        let changed = derive(&mut store, 9 * minute).expect("derive");
        assert_eq!(changed.len(), 2);
        assert!(changed.iter().all(|(_, issue)| !issue.is_open()));
        assert!(store.issues(None, true).expect("open").is_empty());
        assert_eq!(store.issues(None, false).expect("all").len(), 2);
    }

    #[test]
    fn sent_issues_are_stored_once_and_reconciled() {
        let directory = tempfile::tempdir().expect("directory");
        let mut store = Store::open(directory.path()).expect("store");
        let opened = Issue {
            kind: IssueKind::SpoolEvicting,
            subject: String::new(),
            detail: "evicted 3".into(),
            start_ns: 100,
            end_ns: None,
        };
        assert!(
            receive(&mut store, "s", &opened.to_event())
                .expect("receive")
                .is_some()
        );
        assert!(
            receive(&mut store, "s", &opened.to_event())
                .expect("again")
                .is_none()
        );
        let spoofed = Issue {
            kind: IssueKind::SensorSilent,
            ..opened.clone()
        };
        assert!(
            receive(&mut store, "s", &spoofed.to_event())
                .expect("derived")
                .is_none()
        );
        let changed = reconcile(&mut store, "s", &[], 500).expect("reconcile");
        assert_eq!(changed.len(), 1);
        let closed = Issue::from_event(&changed[0]).expect("an issue");
        assert_eq!(closed.end_ns, Some(500));
        assert_eq!(store.issues(Some("s"), false).expect("all").len(), 1);
    }
}
