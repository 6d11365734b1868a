//! Health issues in PostgreSQL: store/health.rs's queries in PostgreSQL's dialect (migration 2).

use ::postgres::Client;
use dcwatch_telemetry::health::{Issue, IssueKind};

use crate::store::{Recorded, StoreError, StoredIssue, to_i64};

pub(super) fn record_issue(
    client: &mut Client,
    sensor_id: &str,
    issue: &Issue,
) -> Result<Recorded, StoreError> {
    let mut transaction = client.transaction()?;
    // One writer per sensor's issues at a time: two api or ingest nodes never open one twice.
    transaction.execute(
        "SELECT pg_advisory_xact_lock(hashtext('health:' || $1))",
        &[&sensor_id],
    )?;
    let open: Option<i64> = transaction
        .query_opt(
            "SELECT id FROM health_issues
             WHERE sensor_id = $1 AND kind = $2 AND subject = $3 AND end_ns IS NULL",
            &[&sensor_id, &issue.kind.name(), &issue.subject],
        )?
        .map(|row| row.get(0));
    let recorded = match (open, issue.end_ns) {
        (Some(id), None) => {
            transaction.execute(
                "UPDATE health_issues SET detail = $2 WHERE id = $1",
                &[&id, &issue.detail],
            )?;
            Recorded::Unchanged
        }
        (None, None) => {
            transaction.execute(
                "INSERT INTO health_issues (sensor_id, kind, subject, severity, detail, start_ns)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &sensor_id,
                    &issue.kind.name(),
                    &issue.subject,
                    &issue.kind.severity().as_str_name(),
                    &issue.detail,
                    &to_i64(issue.start_ns),
                ],
            )?;
            Recorded::Opened
        }
        (Some(id), Some(end_ns)) => {
            transaction.execute(
                "UPDATE health_issues SET end_ns = GREATEST(start_ns, $2), detail = $3
                 WHERE id = $1",
                &[&id, &to_i64(end_ns), &issue.detail],
            )?;
            Recorded::Closed
        }
        (None, Some(_)) => Recorded::Unchanged,
    };
    transaction.commit()?;
    Ok(recorded)
}

pub(super) fn issues(
    client: &mut Client,
    sensor_id: Option<&str>,
    open_only: bool,
) -> Result<Vec<StoredIssue>, StoreError> {
    let rows = client.query(
        "SELECT id, sensor_id, kind, subject, detail, start_ns, end_ns FROM health_issues
         WHERE ($1::TEXT IS NULL OR sensor_id = $1) AND (NOT $2 OR end_ns IS NULL)
         ORDER BY start_ns DESC, id DESC",
        &[&sensor_id, &open_only],
    )?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            // A kind from a newer sensor this backend does not know: not shown as an issue.
            let kind = IssueKind::from_name(row.get::<_, &str>(2))?;
            Some(StoredIssue {
                id: row.get(0),
                sensor_id: row.get(1),
                issue: Issue {
                    kind,
                    subject: row.get(3),
                    detail: row.get(4),
                    start_ns: u64::try_from(row.get::<_, i64>(5)).unwrap_or_default(),
                    end_ns: row
                        .get::<_, Option<i64>>(6)
                        .map(|end| u64::try_from(end).unwrap_or_default()),
                },
            })
        })
        .collect())
}

pub(super) fn sensors_seen(client: &mut Client) -> Result<Vec<(String, i64, String)>, StoreError> {
    Ok(client
        .query(
            "SELECT sensor_id, last_seen_ns, version FROM sensors ORDER BY sensor_id",
            &[],
        )?
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect())
}

pub(super) fn sensor_heard(
    client: &mut Client,
    sensor_id: &str,
    now_ns: i64,
) -> Result<(), StoreError> {
    client.execute(
        "UPDATE sensors SET last_seen_ns = GREATEST(last_seen_ns, $2) WHERE sensor_id = $1",
        &[&sensor_id, &now_ns],
    )?;
    Ok(())
}
