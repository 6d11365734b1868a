//! Health issues in the store: one row per issue (sensor, kind, subject, start, end), open while
//! `end_ns` is NULL. Sensors open and close theirs; the backend derives the ones about a sensor
//! (silent, outdated) itself.

use dcwatch_telemetry::health::{Issue, IssueKind};
use rusqlite::{OptionalExtension as _, params};

use super::{Store, StoreError, to_i64};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS health_issues (
    id INTEGER PRIMARY KEY,
    sensor_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    severity TEXT NOT NULL,
    detail TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER
);
CREATE INDEX IF NOT EXISTS health_issues_open ON health_issues (sensor_id, kind, subject, end_ns);
CREATE INDEX IF NOT EXISTS health_issues_start ON health_issues (start_ns);
";

/// A stored issue with its sensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredIssue {
    pub id: i64,
    pub sensor_id: String,
    pub issue: Issue,
}

/// What recording an issue changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    Opened,
    Closed,
    /// Already as recorded (an open issue sent again, a close of nothing open).
    Unchanged,
}

impl Store {
    /// Records an issue a sensor (or the backend) opened or closed: an open issue is inserted
    /// unless one of its kind and subject is open already (its detail is then updated); a
    /// closed one closes the open one at its end time.
    pub fn record_issue(&self, sensor_id: &str, issue: &Issue) -> Result<Recorded, StoreError> {
        let open: Option<i64> = self
            .connection
            .query_row(
                "SELECT id FROM health_issues
                 WHERE sensor_id = ?1 AND kind = ?2 AND subject = ?3 AND end_ns IS NULL",
                params![sensor_id, issue.kind.name(), issue.subject],
                |row| row.get(0),
            )
            .optional()?;
        match (open, issue.end_ns) {
            (Some(id), None) => {
                self.connection.execute(
                    "UPDATE health_issues SET detail = ?2 WHERE id = ?1",
                    params![id, issue.detail],
                )?;
                Ok(Recorded::Unchanged)
            }
            (None, None) => {
                self.connection.execute(
                    "INSERT INTO health_issues
                     (sensor_id, kind, subject, severity, detail, start_ns)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        sensor_id,
                        issue.kind.name(),
                        issue.subject,
                        issue.kind.severity().as_str_name(),
                        issue.detail,
                        to_i64(issue.start_ns),
                    ],
                )?;
                Ok(Recorded::Opened)
            }
            (Some(id), Some(end_ns)) => {
                self.connection.execute(
                    "UPDATE health_issues SET end_ns = MAX(start_ns, ?2), detail = ?3
                     WHERE id = ?1",
                    params![id, to_i64(end_ns), issue.detail],
                )?;
                Ok(Recorded::Closed)
            }
            (None, Some(_)) => Ok(Recorded::Unchanged),
        }
    }

    /// Issues, newest first; with `sensor_id`, that sensor's only; `open_only`: still open.
    pub fn issues(
        &self,
        sensor_id: Option<&str>,
        open_only: bool,
    ) -> Result<Vec<StoredIssue>, StoreError> {
        let mut statement = self.connection.prepare(
            "SELECT id, sensor_id, kind, subject, detail, start_ns, end_ns FROM health_issues
             WHERE (?1 IS NULL OR sensor_id = ?1) AND (?2 = 0 OR end_ns IS NULL)
             ORDER BY start_ns DESC, id DESC",
        )?;
        let rows = statement.query_map(params![sensor_id, open_only], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
                row.get::<_, i64>(5)?,
                row.get::<_, Option<i64>>(6)?,
            ))
        })?;
        let mut issues = Vec::new();
        for row in rows {
            let (id, sensor_id, kind, subject, detail, start_ns, end_ns) = row?;
            // A kind from a newer sensor this backend does not know: not shown as an issue.
            let Some(kind) = IssueKind::from_name(&kind) else {
                continue;
            };
            issues.push(StoredIssue {
                id,
                sensor_id,
                issue: Issue {
                    kind,
                    subject,
                    detail,
                    start_ns: u64::try_from(start_ns).unwrap_or_default(),
                    end_ns: end_ns.map(|end| u64::try_from(end).unwrap_or_default()),
                },
            });
        }
        Ok(issues)
    }

    /// Every sensor with the last time it was heard from (unix ns) and its version.
    pub fn sensors_seen(&self) -> Result<Vec<(String, i64, String)>, StoreError> {
        let mut statement = self
            .connection
            .prepare("SELECT sensor_id, last_seen_ns, version FROM sensors ORDER BY sensor_id")?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Marks `sensor_id` as heard from at `now_ns` (any message on its stream).
    pub fn sensor_heard(&self, sensor_id: &str, now_ns: i64) -> Result<(), StoreError> {
        self.connection.execute(
            "UPDATE sensors SET last_seen_ns = MAX(last_seen_ns, ?2) WHERE sensor_id = ?1",
            params![sensor_id, now_ns],
        )?;
        Ok(())
    }
}

/// The kinds the backend opens and closes itself, never a sensor.
pub fn is_derived(kind: IssueKind) -> bool {
    matches!(kind, IssueKind::SensorSilent | IssueKind::SensorOutdated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Storage as _;

    fn issue(kind: IssueKind, subject: &str, start_ns: u64, end_ns: Option<u64>) -> Issue {
        Issue {
            kind,
            subject: subject.to_owned(),
            detail: format!("{subject} detail"),
            start_ns,
            end_ns,
        }
    }

    #[test]
    fn issues_open_close_and_reconcile() {
        let directory = tempfile::tempdir().expect("directory");
        let mut store = Store::open(directory.path()).expect("store");
        let dropped = issue(IssueKind::TrafficDropped, "", 10, None);
        assert_eq!(
            store.record_issue("s1", &dropped).expect("record"),
            Recorded::Opened
        );
        assert_eq!(
            store.record_issue("s1", &dropped).expect("again"),
            Recorded::Unchanged
        );
        let eth = issue(IssueKind::NicDown, "eth1", 20, None);
        store.record_issue("s1", &eth).expect("record");
        let silent = issue(IssueKind::SensorSilent, "", 30, None);
        store.record_issue("s1", &silent).expect("record");
        store
            .record_issue("s2", &issue(IssueKind::NicDown, "eth1", 25, None))
            .expect("other sensor");
        assert_eq!(store.issues(Some("s1"), true).expect("open").len(), 3);

        let closed = issue(IssueKind::TrafficDropped, "", 10, Some(40));
        assert_eq!(
            store.record_issue("s1", &closed).expect("close"),
            Recorded::Closed
        );
        let all = store.issues(Some("s1"), false).expect("all");
        let stored = all
            .iter()
            .find(|stored| stored.issue.kind == IssueKind::TrafficDropped)
            .expect("kept");
        assert_eq!(stored.issue.end_ns, Some(40));

        // The sensor reconnects with only eth1 still down... then with nothing open.
        let reconciled = store
            .reconcile_issues("s1", std::slice::from_ref(&eth), 50)
            .expect("reconcile");
        assert!(reconciled.is_empty(), "{reconciled:?}");
        let reconciled = store.reconcile_issues("s1", &[], 60).expect("reconcile");
        assert_eq!(reconciled.len(), 1);
        assert_eq!(reconciled[0].end_ns, Some(60));
        let open: Vec<IssueKind> = store
            .issues(Some("s1"), true)
            .expect("open")
            .into_iter()
            .map(|stored| stored.issue.kind)
            .collect();
        assert_eq!(open, [IssueKind::SensorSilent], "derived issues stay");
        assert_eq!(store.issues(None, true).expect("open").len(), 2);
    }
}
