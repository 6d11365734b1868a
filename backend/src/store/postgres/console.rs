//! What the console reads and keeps, in PostgreSQL: store/console.rs's queries in PostgreSQL's
//! dialect (migration 4), over the same tables.

use ::postgres::{
    Client, GenericClient,
    types::{ToSql, Type},
};
use dcwatch_proto::v1::{Activity, Alert};
use prost::Message as _;

use crate::store::{
    ActivityRef, Dialect, Found, Param, ProtocolCount, Query, SensorState, StoreError,
    StoredActivity, StoredEvent, StoredUser,
    alerts::{ALERT_COLUMNS, like_escaped, with_status},
    cold::{self, BlockCache},
    console::{
        account_name, compacted_accounts, compacted_addresses, count_compacted, entity_rows,
    },
    to_i64, to_u64,
};

use super::cold::Pg;

/// A shared query's values as PostgreSQL binds them.
pub(super) fn bound(values: Vec<Param>) -> Vec<Box<dyn ToSql + Sync>> {
    typed(values).into_iter().map(|(value, _)| value).collect()
}

/// `values` with their types, for a statement sent in one round trip (`query_typed`: no
/// prepare beforehand, which `query` makes a round trip of its own).
pub(super) fn typed(values: Vec<Param>) -> Vec<(Box<dyn ToSql + Sync>, Type)> {
    values
        .into_iter()
        .map(|value| -> (Box<dyn ToSql + Sync>, Type) {
            match value {
                Param::Int(value) => (Box::new(value), Type::INT8),
                Param::Text(value) => (Box::new(value), Type::TEXT),
            }
        })
        .collect()
}

/// Replaces `alert`'s rows of `alert_entities`, in the caller's transaction.
pub(super) fn write_entities(
    client: &mut impl GenericClient,
    alert: &Alert,
) -> Result<(), StoreError> {
    client.execute(
        "DELETE FROM alert_entities WHERE alert_id = $1",
        &[&alert.id],
    )?;
    for (kind, role, name, address) in entity_rows(alert) {
        client.execute(
            "INSERT INTO alert_entities (alert_id, kind, role, name, address)
             VALUES ($1, $2, $3, $4, $5)",
            &[&alert.id, &kind, &role, &name, &address],
        )?;
    }
    Ok(())
}

/// Migration 4's data: the entities of the alerts stored before it, indexed.
pub(super) fn index_stored_alerts(client: &mut impl GenericClient) -> Result<(), StoreError> {
    let rows = client.query(&format!("SELECT {ALERT_COLUMNS} FROM alerts"), &[])?;
    for row in rows {
        // An alert that does not decode has no entities to index; the alert list says so.
        if let Ok(alert) = with_status(row.get(1), row.get(2), row.get(3), row.get(4)) {
            write_entities(client, &alert)?;
        }
    }
    Ok(())
}

pub(super) fn activity_at(
    client: &mut Client,
    cache: &BlockCache,
    sensor_id: &str,
    sequence: u64,
    position: u64,
) -> Result<Option<Activity>, StoreError> {
    let Some(row) = client.query_opt(
        "SELECT id, activity FROM activities WHERE sensor_id = $1 AND sequence = $2
         AND position = $3",
        &[&sensor_id, &to_i64(sequence), &to_i64(position)],
    )?
    else {
        return cold::activity_at(&mut Pg(client), cache, sensor_id, sequence, position);
    };
    let id: i64 = row.get(0);
    Activity::decode(row.get::<_, &[u8]>(1))
        .map(Some)
        .map_err(|source| StoreError::Decode { id, source })
}

/// [`activity_at`] of each of `refs`, in their order: the rows in one statement, then the
/// compacted tier for those not among them ([`cold::fill_compacted`]: a round trip for the
/// nearest blocks of a sensor's references and one for the frames of each block, not three a
/// reference).
pub(super) fn activities_at(
    client: &mut Client,
    cache: &BlockCache,
    refs: &[ActivityRef<'_>],
) -> Result<Vec<Option<Activity>>, StoreError> {
    let sensors: Vec<&str> = refs.iter().map(|at| at.sensor_id).collect();
    let sequences: Vec<i64> = refs.iter().map(|at| to_i64(at.sequence)).collect();
    let positions: Vec<i64> = refs.iter().map(|at| to_i64(at.position)).collect();
    let rows = client.query_typed(
        "SELECT wanted.at, a.id, a.activity
         FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[]) WITH ORDINALITY
             AS wanted (sensor_id, sequence, position, at)
         JOIN activities a ON a.sensor_id = wanted.sensor_id AND a.sequence = wanted.sequence
             AND a.position = wanted.position",
        &[
            (&sensors, Type::TEXT_ARRAY),
            (&sequences, Type::INT8_ARRAY),
            (&positions, Type::INT8_ARRAY),
        ],
    )?;
    let mut found: Vec<Option<Activity>> = vec![None; refs.len()];
    for row in &rows {
        let Some(slot) = usize::try_from(row.get::<_, i64>(0) - 1)
            .ok()
            .and_then(|at| found.get_mut(at))
        else {
            continue;
        };
        let id: i64 = row.get(1);
        *slot = Some(
            Activity::decode(row.get::<_, &[u8]>(2))
                .map_err(|source| StoreError::Decode { id, source })?,
        );
    }
    cold::fill_compacted(&mut Pg(client), cache, refs, &mut found)?;
    Ok(found)
}

pub(super) fn newest_activities(
    client: &mut Client,
    cache: &BlockCache,
    query: &Query,
    each: &mut dyn FnMut(StoredActivity, u64) -> bool,
) -> Result<(), StoreError> {
    let filter = query.filter(Dialect::Postgres);
    let clause = filter.clause();
    let values = bound(filter.values);
    let parameters: Vec<&(dyn ToSql + Sync)> = values.iter().map(AsRef::as_ref).collect();
    let mut transaction = client.transaction()?;
    let portal = transaction.bind(
        &format!(
            "SELECT id, sensor_id, sequence, position, activity FROM activities {clause}
             ORDER BY time_ns DESC, sequence DESC, position DESC"
        ),
        &parameters,
    )?;
    loop {
        let rows = transaction.query_portal(&portal, super::PAGE)?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            let id: i64 = row.get(0);
            let activity = Activity::decode(row.get::<_, &[u8]>(4))
                .map_err(|source| StoreError::Decode { id, source })?;
            let stored = StoredActivity {
                sensor_id: row.get(1),
                sequence: to_u64(row.get(2)),
                activity,
            };
            if !each(stored, to_u64(row.get(3))) {
                return Ok(());
            }
        }
    }
    // The compacted tier, older.
    cold::newest_compacted(&mut Pg(&mut transaction), cache, query, each)?;
    transaction.commit()?;
    Ok(())
}

pub(super) fn activity_counts(
    client: &mut Client,
    cache: &BlockCache,
    query: &Query,
) -> Result<Vec<ProtocolCount>, StoreError> {
    let filter = query.filter(Dialect::Postgres);
    let clause = filter.clause();
    let values = bound(filter.values);
    let parameters: Vec<&(dyn ToSql + Sync)> = values.iter().map(AsRef::as_ref).collect();
    let mut counts = client
        .query(
            &format!(
                "SELECT protocol, COUNT(*), MIN(time_ns), MAX(time_ns) FROM activities {clause}
                 GROUP BY protocol ORDER BY protocol"
            ),
            &parameters,
        )?
        .iter()
        .map(|row| ProtocolCount {
            protocol: row.get(0),
            count: row.get(1),
            first_ns: row.get(2),
            last_ns: row.get(3),
        })
        .collect();
    count_compacted(&mut Pg(client), cache, query, &mut counts)?;
    Ok(counts)
}

pub(super) fn sensors(client: &mut Client) -> Result<Vec<SensorState>, StoreError> {
    Ok(client
        .query(
            "SELECT s.sensor_id, s.version, s.last_seen_ns, s.stored_through, s.counters,
             (SELECT COUNT(*) FROM health_issues h WHERE h.sensor_id = s.sensor_id
              AND h.end_ns IS NULL)
             FROM sensors s ORDER BY s.sensor_id",
            &[],
        )?
        .iter()
        .map(|row| SensorState {
            sensor_id: row.get(0),
            version: row.get(1),
            last_seen_ns: row.get(2),
            stored_through: to_u64(row.get(3)),
            counters: row.get(4),
            open_issues: to_u64(row.get(5)),
        })
        .collect())
}

pub(super) fn health_events(
    client: &mut Client,
    sensor_id: Option<&str>,
    limit: usize,
) -> Result<Vec<StoredEvent>, StoreError> {
    Ok(client
        .query(
            "SELECT sensor_id, time_ns, severity, kind, message FROM health_events
             WHERE $1::TEXT IS NULL OR sensor_id = $1 ORDER BY time_ns DESC, id DESC LIMIT $2",
            &[&sensor_id, &i64::try_from(limit).unwrap_or(i64::MAX)],
        )?
        .iter()
        .map(|row| StoredEvent {
            sensor_id: row.get(0),
            time_ns: row.get(1),
            severity: row.get(2),
            kind: row.get(3),
            message: row.get(4),
        })
        .collect())
}

pub(super) fn sample_counters(
    client: &mut Client,
    now_ns: i64,
    keep: i64,
) -> Result<(), StoreError> {
    let mut transaction = client.transaction()?;
    transaction.execute(
        "INSERT INTO console_sensor_counters (sensor_id, time_ns, counters)
         SELECT sensor_id, $1, counters FROM sensors WHERE counters IS NOT NULL",
        &[&now_ns],
    )?;
    transaction.execute(
        "DELETE FROM console_sensor_counters WHERE id IN (SELECT id FROM
         (SELECT id, ROW_NUMBER() OVER (PARTITION BY sensor_id ORDER BY time_ns DESC) AS n
          FROM console_sensor_counters) AS numbered WHERE n > $1)",
        &[&keep],
    )?;
    transaction.commit()?;
    Ok(())
}

pub(super) fn counter_samples(
    client: &mut Client,
    sensor_id: &str,
    limit: usize,
) -> Result<Vec<(i64, String)>, StoreError> {
    Ok(client
        .query(
            "SELECT time_ns, counters FROM console_sensor_counters WHERE sensor_id = $1
             ORDER BY time_ns DESC LIMIT $2",
            &[&sensor_id, &i64::try_from(limit).unwrap_or(i64::MAX)],
        )?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

pub(super) fn search(client: &mut Client, prefix: &str, limit: usize) -> Result<Found, StoreError> {
    let (domain, name) = prefix
        .split_once('\\')
        .map_or((None, prefix), |(domain, name)| (Some(domain), name));
    let size = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut accounts = client
        .query(
            "SELECT DISTINCT domain, account FROM activities
             WHERE lower(account) LIKE lower($1) ESCAPE '\\'
             AND ($2::TEXT IS NULL OR lower(domain) = lower($2)) LIMIT $3",
            &[&format!("{}%", like_escaped(name)), &domain, &size],
        )?
        .iter()
        .map(|row| account_name(row.get(0), row.get(1)))
        .collect();
    compacted_accounts(&mut Pg(client), name, limit, &mut accounts)?;
    let low = prefix.to_lowercase();
    let mut addresses = client
        .query(
            "SELECT ip FROM (
               (SELECT DISTINCT src_ip AS ip FROM activities WHERE src_ip LIKE $1 ESCAPE '\\'
                LIMIT $2)
               UNION
               (SELECT DISTINCT dst_ip FROM activities WHERE dst_ip LIKE $1 ESCAPE '\\'
                LIMIT $2)) AS found
             LIMIT $2",
            &[&format!("{}%", like_escaped(&low)), &size],
        )?
        .iter()
        .map(|row| row.get(0))
        .collect();
    compacted_addresses(&mut Pg(client), &low, limit, &mut addresses)?;
    let computers = client
        .query(
            "SELECT DISTINCT name FROM alert_entities WHERE kind = 'computer' AND name != ''
             AND lower(name) LIKE lower($1) ESCAPE '\\' ORDER BY name LIMIT $2",
            &[&format!("{}%", like_escaped(prefix)), &size],
        )?
        .iter()
        .map(|row| row.get(0))
        .collect();
    Ok(Found {
        accounts,
        addresses,
        computers,
    })
}

pub(super) fn reopen_alert(
    client: &mut Client,
    id: &str,
    actor: &str,
    now_ns: i64,
) -> Result<bool, StoreError> {
    let mut transaction = client.transaction()?;
    let changed = transaction.execute(
        "UPDATE alerts SET status = 'OPEN', classification = '', closed_ns = NULL,
         updated_ns = $2 WHERE id = $1 AND status = 'CLOSED'",
        &[&id, &now_ns],
    )?;
    if changed > 0 {
        transaction.execute(
            "INSERT INTO alert_history (alert_id, time_ns, event, actor)
             VALUES ($1, $2, 'reopened', $3)",
            &[&id, &now_ns, &actor],
        )?;
    }
    transaction.commit()?;
    Ok(changed > 0)
}

pub(super) fn note_alert(
    client: &mut Client,
    id: &str,
    event: &str,
    actor: &str,
    text: &str,
    now_ns: i64,
) -> Result<bool, StoreError> {
    Ok(client.execute(
        "INSERT INTO alert_history (alert_id, time_ns, event, actor, text)
         SELECT id, $2, $3, $4, $5 FROM alerts WHERE id = $1",
        &[&id, &now_ns, &event, &actor, &text],
    )? > 0)
}

pub(super) fn add_user(
    client: &mut Client,
    name: &str,
    role: &str,
    hash: &str,
    now_ns: i64,
) -> Result<bool, StoreError> {
    Ok(client.execute(
        "INSERT INTO console_users (name, role, hash, created_ns) VALUES ($1, $2, $3, $4)
         ON CONFLICT ((lower(name))) DO NOTHING",
        &[&name, &role, &hash, &now_ns],
    )? > 0)
}

pub(super) fn user(client: &mut Client, name: &str) -> Result<Option<StoredUser>, StoreError> {
    Ok(client
        .query_opt(
            "SELECT name, role, hash FROM console_users WHERE lower(name) = lower($1)",
            &[&name],
        )?
        .map(|row| StoredUser {
            name: row.get(0),
            role: row.get(1),
            hash: row.get(2),
        }))
}

pub(super) fn users(client: &mut Client) -> Result<Vec<(String, String)>, StoreError> {
    Ok(client
        .query("SELECT name, role FROM console_users ORDER BY name", &[])?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

pub(super) fn remove_user(client: &mut Client, name: &str) -> Result<bool, StoreError> {
    Ok(client.execute(
        "DELETE FROM console_users WHERE lower(name) = lower($1)",
        &[&name],
    )? > 0)
}
