//! Alerts, their history, exclusions and detection's cursors in PostgreSQL: store/alerts.rs's
//! queries and rules (an analyst's close detection has not yet applied keeps the alert
//! closed), in PostgreSQL's dialect.

use ::postgres::{Client, GenericClient, types::ToSql};
use dcwatch_detect::checkpoint::Checkpoint;
use dcwatch_proto::v1::{
    Alert,
    alert::{Classification, Status},
};
use prost::Message as _;

use crate::store::{
    AlertQuery, Closed, DETECTION, Dialect, Excluded, Exclusion, ExclusionKind, HistoryEntry,
    StoreError,
    alerts::{ALERT_COLUMNS, classification_name, status_name, time_of, with_status},
};

pub(super) fn set_state(
    client: &mut impl GenericClient,
    name: &str,
    value: i64,
) -> Result<(), StoreError> {
    client.execute(
        "INSERT INTO detection_state (name, value) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET value = $2",
        &[&name, &value],
    )?;
    Ok(())
}

pub(super) fn save(
    client: &mut Client,
    alerts: &[Alert],
    (partition, checkpoint): (u32, &Checkpoint),
    (cursor_name, cursor): (&str, i64),
    applied_history: i64,
    now_ns: i64,
) -> Result<Vec<bool>, StoreError> {
    let mut transaction = client.transaction()?;
    let mut emit = Vec::with_capacity(alerts.len());
    for alert in alerts {
        // Locked: two detect nodes never interleave their reads and writes of one alert.
        let stored: Option<String> = transaction
            .query_opt(
                "SELECT status FROM alerts WHERE id = $1 FOR UPDATE",
                &[&alert.id],
            )?
            .map(|row| row.get(0));
        let pending_close: bool = transaction
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM alert_history WHERE alert_id = $1 AND id > $2
                 AND event = 'closed')",
                &[&alert.id, &applied_history],
            )?
            .get(0);
        let blob = alert.encode_to_vec();
        let status = status_name(alert.status());
        let count = i64::try_from(alert.count).unwrap_or(i64::MAX);
        let start = time_of(alert.start.as_ref());
        let end = time_of(alert.end.as_ref());
        if pending_close {
            transaction.execute(
                "UPDATE alerts SET severity = $2, start_ns = $3, end_ns = $4, count = $5,
                 updated_ns = $6, alert = $7 WHERE id = $1",
                &[
                    &alert.id,
                    &alert.severity,
                    &start,
                    &end,
                    &count,
                    &now_ns,
                    &blob,
                ],
            )?;
            super::console::write_entities(&mut transaction, alert)?;
            emit.push(false);
            continue;
        }
        transaction.execute(
            "INSERT INTO alerts (id, type, primary_key, status, classification, closed_ns,
             severity, start_ns, end_ns, count, updated_ns, alert)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (id) DO UPDATE SET status = $4, classification = $5, closed_ns = $6,
             severity = $7, start_ns = $8, end_ns = $9, count = $10, updated_ns = $11,
             alert = $12",
            &[
                &alert.id,
                &alert.r#type,
                &alert.primary_key,
                &status,
                &classification_name(alert.classification()),
                &alert.closed.as_ref().map(|time| time_of(Some(time))),
                &alert.severity,
                &start,
                &end,
                &count,
                &now_ns,
                &blob,
            ],
        )?;
        let event = match stored.as_deref() {
            None => Some("raised"),
            Some(before) if before != status && alert.status() == Status::Open => Some("reopened"),
            Some(_) => None,
        };
        if let Some(event) = event {
            transaction.execute(
                "INSERT INTO alert_history (alert_id, time_ns, event, actor, text)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&alert.id, &now_ns, &event, &DETECTION, &alert.description],
            )?;
        }
        super::console::write_entities(&mut transaction, alert)?;
        emit.push(true);
    }
    super::profiles::write(&mut transaction, partition, &checkpoint.profiles)?;
    super::windows::write(&mut transaction, partition, &checkpoint.windows)?;
    set_state(&mut transaction, cursor_name, cursor)?;
    transaction.commit()?;
    Ok(emit)
}

pub(super) fn list(client: &mut Client, query: &AlertQuery) -> Result<Vec<Alert>, StoreError> {
    let (sql, values) = query.select(Dialect::Postgres);
    let values = super::console::bound(values);
    let parameters: Vec<&(dyn ToSql + Sync)> = values.iter().map(AsRef::as_ref).collect();
    select(client, &sql, &parameters)
}

pub(super) fn to_restore(
    client: &mut Client,
    closed_since_ns: i64,
) -> Result<Vec<Alert>, StoreError> {
    select(
        client,
        &format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE status = 'OPEN' OR closed_ns >= $1
             ORDER BY end_ns"
        ),
        &[&closed_since_ns],
    )
}

fn select(
    client: &mut Client,
    sql: &str,
    parameters: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Alert>, StoreError> {
    client
        .query(sql, parameters)?
        .iter()
        .map(|row| {
            let id: String = row.get(0);
            with_status(row.get(1), row.get(2), row.get(3), row.get(4))
                .map_err(|source| StoreError::AlertDecode { id, source })
        })
        .collect()
}

pub(super) fn close(
    client: &mut Client,
    id: &str,
    classification: Classification,
    actor: &str,
    comment: &str,
    now_ns: i64,
) -> Result<Closed, StoreError> {
    let mut transaction = client.transaction()?;
    let status: Option<String> = transaction
        .query_opt("SELECT status FROM alerts WHERE id = $1 FOR UPDATE", &[&id])?
        .map(|row| row.get(0));
    match status.as_deref() {
        None => return Ok(Closed::NoSuchAlert),
        Some(status) if status == status_name(Status::Closed) => {
            return Ok(Closed::AlreadyClosed);
        }
        Some(_) => {}
    }
    let classification = classification_name(classification);
    transaction.execute(
        "UPDATE alerts SET status = 'CLOSED', classification = $2, closed_ns = $3,
         updated_ns = $3 WHERE id = $1",
        &[&id, &classification, &now_ns],
    )?;
    transaction.execute(
        "INSERT INTO alert_history (alert_id, time_ns, event, classification, actor, text)
         VALUES ($1, $2, 'closed', $3, $4, $5)",
        &[&id, &now_ns, &classification, &actor, &comment],
    )?;
    transaction.commit()?;
    Ok(Closed::Closed)
}

pub(super) fn history(
    client: &mut Client,
    alert_id: &str,
    after: i64,
) -> Result<Vec<HistoryEntry>, StoreError> {
    Ok(client
        .query(
            "SELECT id, alert_id, time_ns, event, classification, actor, text FROM alert_history
             WHERE ($1 = '' OR alert_id = $1) AND id > $2 ORDER BY id",
            &[&alert_id, &after],
        )?
        .iter()
        .map(|row| HistoryEntry {
            id: row.get(0),
            alert_id: row.get(1),
            time_ns: row.get(2),
            event: row.get(3),
            classification: row.get(4),
            actor: row.get(5),
            text: row.get(6),
        })
        .collect())
}

pub(super) fn exclusions(client: &mut Client) -> Result<Vec<Exclusion>, StoreError> {
    Ok(client
        .query(
            "SELECT id, type, kind, value, created_ns, comment FROM alert_exclusions ORDER BY id",
            &[],
        )?
        .iter()
        // A kind this version does not know (written by a newer one) is skipped.
        .filter_map(|row| {
            Some(Exclusion {
                id: row.get(0),
                type_name: row.get(1),
                kind: ExclusionKind::from_name(row.get(2))?,
                value: row.get(3),
                created_ns: row.get(4),
                comment: row.get(5),
            })
        })
        .collect())
}

/// store/alerts.rs's `exclude_alert`.
pub(super) fn exclude(
    client: &mut Client,
    id: &str,
    classification: Classification,
    actor: &str,
    now_ns: i64,
) -> Result<Option<Excluded>, StoreError> {
    let query = AlertQuery {
        id: Some(id.to_owned()),
        ..AlertQuery::default()
    };
    let Some(alert) = list(client, &query)?.into_iter().next() else {
        return Ok(None);
    };
    let excluded = Excluded::on_close(&alert, classification);
    let mut transaction = client.transaction()?;
    if let Excluded::Entity(kind, value) = &excluded {
        transaction.execute(
            "INSERT INTO alert_exclusions (type, kind, value, created_ns, comment)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &alert.r#type,
                &kind.name(),
                value,
                &now_ns,
                &format!("closed {id} by {actor}"),
            ],
        )?;
    }
    transaction.execute(
        "INSERT INTO alert_history (alert_id, time_ns, event, actor, text)
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &id,
            &now_ns,
            &excluded.event(),
            &actor,
            &excluded.text(&alert),
        ],
    )?;
    transaction.commit()?;
    Ok(Some(excluded))
}

/// store/alerts.rs's `taught_alerts`.
pub(super) fn taught(client: &mut Client) -> Result<Vec<(Alert, i64)>, StoreError> {
    let taught: Vec<(String, i64)> = client
        .query(
            "SELECT alert_id, MAX(time_ns) FROM alert_history WHERE event = 'taught'
             GROUP BY alert_id",
            &[],
        )?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let mut alerts = Vec::with_capacity(taught.len());
    for (id, time_ns) in taught {
        let query = AlertQuery {
            id: Some(id),
            ..AlertQuery::default()
        };
        alerts.extend(
            list(client, &query)?
                .into_iter()
                .map(|alert| (alert, time_ns)),
        );
    }
    Ok(alerts)
}
