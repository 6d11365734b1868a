//! What the analyst's console reads and keeps in the store, in SQLite (PostgreSQL's twin is
//! `postgres/console.rs`): the alerts' entities (`alert_entities`, written with their alert),
//! the sensors' counters sampled over time, the console's users, and the reads pages need
//! (sensors, health events, activity summaries, search).

use dcwatch_proto::v1::Alert;
use rusqlite::{OptionalExtension as _, params, params_from_iter};

use super::{
    Query, Store, StoreError, StoredActivity,
    alerts::{Dialect, EntityKind, like_escaped, sqlite_value},
    cold, to_u64,
};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS alert_entities (
    alert_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    role TEXT NOT NULL,
    name TEXT NOT NULL,
    address TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alert_entities_alert ON alert_entities (alert_id);
CREATE INDEX IF NOT EXISTS alert_entities_name ON alert_entities (name COLLATE NOCASE);
CREATE INDEX IF NOT EXISTS alert_entities_address ON alert_entities (address);
CREATE TABLE IF NOT EXISTS console_sensor_counters (
    sensor_id TEXT NOT NULL,
    time_ns INTEGER NOT NULL,
    counters TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS console_sensor_counters_sensor
    ON console_sensor_counters (sensor_id, time_ns);
CREATE TABLE IF NOT EXISTS console_users (
    name TEXT PRIMARY KEY COLLATE NOCASE,
    role TEXT NOT NULL,
    hash TEXT NOT NULL,
    created_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS console_activities_ref ON activities (sensor_id, sequence, position);
";

/// SQLite's schema version (`PRAGMA user_version`) once alerts stored before `alert_entities`
/// existed have their entities indexed.
const ALERT_ENTITIES_VERSION: i64 = 1;

/// One row of `alert_entities` per entity of `alert`: (kind, role, name, address), the
/// address lowercased as queries compare it.
pub(crate) fn entity_rows(alert: &Alert) -> Vec<(&'static str, &'static str, String, String)> {
    alert
        .entities
        .iter()
        .map(|entity| {
            (
                EntityKind::of(entity.role()).name(),
                entity.role().as_str_name(),
                entity.name.clone(),
                entity.address.to_lowercase(),
            )
        })
        .collect()
}

/// Replaces `alert`'s rows of `alert_entities`, in the caller's transaction.
pub(super) fn write_entities(
    connection: &rusqlite::Connection,
    alert: &Alert,
) -> rusqlite::Result<()> {
    connection
        .prepare_cached("DELETE FROM alert_entities WHERE alert_id = ?1")?
        .execute([&alert.id])?;
    let mut insert = connection.prepare_cached(
        "INSERT INTO alert_entities (alert_id, kind, role, name, address)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (kind, role, name, address) in entity_rows(alert) {
        insert.execute(params![alert.id, kind, role, name, address])?;
    }
    Ok(())
}

/// Indexes the entities of alerts stored before `alert_entities` existed (once, in one
/// transaction with the new `user_version`).
pub(super) fn migrate(connection: &mut rusqlite::Connection) -> Result<(), StoreError> {
    let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version >= ALERT_ENTITIES_VERSION {
        return Ok(());
    }
    let transaction =
        connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let alerts: Vec<Alert> = {
        let mut statement = transaction.prepare(&format!(
            "SELECT {} FROM alerts",
            super::alerts::ALERT_COLUMNS
        ))?;
        let rows = statement.query_map([], super::alerts::decode_row)?;
        let mut alerts = Vec::new();
        for row in rows {
            // An alert that does not decode has no entities to index; the alert list says so.
            if let Ok(alert) = row? {
                alerts.push(alert);
            }
        }
        alerts
    };
    for alert in &alerts {
        write_entities(&transaction, alert)?;
    }
    transaction.pragma_update(None, "user_version", ALERT_ENTITIES_VERSION)?;
    transaction.commit()?;
    Ok(())
}

/// A sensor as the console lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SensorState {
    pub sensor_id: String,
    pub version: String,
    pub last_seen_ns: i64,
    pub stored_through: u64,
    /// The latest counters it sent, as a JSON object.
    pub counters: Option<String>,
    pub open_issues: u64,
}

/// A sensor's point health event (sensors that predate issues, one-off events).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    pub sensor_id: String,
    pub time_ns: i64,
    pub severity: String,
    pub kind: String,
    pub message: String,
}

/// How many activities of each protocol a query selects, and their first and last times.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProtocolCount {
    pub protocol: String,
    pub count: i64,
    pub first_ns: i64,
    pub last_ns: i64,
}

/// What a search prefix found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// Accounts seen in activities (`DOMAIN\name`, or a name alone).
    pub accounts: Vec<String>,
    /// Addresses seen in activities.
    pub addresses: Vec<String>,
    /// Computers the alerts name.
    pub computers: Vec<String>,
}

/// A console user as stored: name, role, argon2id PHC string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredUser {
    pub name: String,
    pub role: String,
    pub hash: String,
}

/// Adds `found` to `into` unless it is there in any case, up to `limit`.
pub(crate) fn add_distinct(into: &mut Vec<String>, found: String, limit: usize) {
    if into.len() < limit && !into.iter().any(|known| known.eq_ignore_ascii_case(&found)) {
        into.push(found);
    }
}

/// `Alert`'s column of a name whose domain may be known.
pub(crate) fn account_name(domain: Option<String>, account: String) -> String {
    match domain {
        Some(domain) => format!("{domain}\\{account}"),
        None => account,
    }
}

/// Adds the compacted activities `query` selects to `counts` (per protocol, sorted): an
/// account's counts where its blocks keep them, else its activities counted one by one, from
/// their keys alone.
pub(super) fn count_compacted<T: cold::Tier + ?Sized>(
    tier: &mut T,
    cache: &cold::BlockCache,
    query: &Query,
    counts: &mut Vec<ProtocolCount>,
) -> Result<(), StoreError> {
    cold::compacted_counts(tier, cache, query, |protocol, number, first, last| {
        let number = i64::try_from(number).unwrap_or(i64::MAX);
        match counts.iter_mut().find(|count| count.protocol == protocol) {
            Some(count) => {
                count.count = count.count.saturating_add(number);
                count.first_ns = count.first_ns.min(first);
                count.last_ns = count.last_ns.max(last);
            }
            None => counts.push(ProtocolCount {
                protocol: protocol.to_owned(),
                count: number,
                first_ns: first,
                last_ns: last,
            }),
        }
    })?;
    counts.sort_by(|a, b| a.protocol.cmp(&b.protocol));
    Ok(())
}

/// Adds to `accounts` the names starting with `name` found only in the compacted tier: its
/// index keeps them lowercased, without domain (LIKE's `_` there matches any one character: a
/// wider net, filtered here).
pub(super) fn compacted_accounts(
    tier: &mut dyn cold::Tier,
    name: &str,
    limit: usize,
    accounts: &mut Vec<String>,
) -> Result<(), StoreError> {
    let size = i64::try_from(limit).unwrap_or(i64::MAX);
    for name_only in tier.keys_like(&super::blocks::account_key(&format!("{name}%")), size)? {
        let known = accounts.iter().any(|known| {
            known
                .rsplit('\\')
                .next()
                .is_some_and(|known| known.eq_ignore_ascii_case(&name_only))
        });
        if !known && name_only.starts_with(&name.to_lowercase()) {
            add_distinct(accounts, name_only, limit);
        }
    }
    Ok(())
}

/// Adds to `addresses` those starting with `low` (lowercased) in the compacted tier.
pub(super) fn compacted_addresses(
    tier: &mut dyn cold::Tier,
    low: &str,
    limit: usize,
    addresses: &mut Vec<String>,
) -> Result<(), StoreError> {
    let size = i64::try_from(limit).unwrap_or(i64::MAX);
    for address in tier.keys_like(&super::blocks::address_key(&format!("{low}%")), size)? {
        if address.starts_with(low) {
            add_distinct(addresses, address, limit);
        }
    }
    Ok(())
}

impl Store {
    /// The activities `query` selects, newest first (the hot rows, then the compacted tier,
    /// which is older), each handed to `each` until it returns false.
    pub fn newest_activities(
        &self,
        query: &Query,
        each: &mut dyn FnMut(StoredActivity, u64) -> bool,
    ) -> Result<(), StoreError> {
        // One read transaction for both tiers: they are read as of one moment (compaction
        // moves rows from one to the other), and SQLite takes its read locks once, not at each
        // of the compacted tier's ten or so statements (about 3 µs each).
        let transaction = self.connection.unchecked_transaction()?;
        let filter = query.filter(Dialect::Sqlite);
        let mut statement = transaction.prepare(&format!(
            "SELECT id, sensor_id, sequence, position, activity FROM activities {}
             ORDER BY time_ns DESC, sequence DESC, position DESC",
            filter.clause()
        ))?;
        let mut rows = statement.query(params_from_iter(
            filter.values.into_iter().map(sqlite_value),
        ))?;
        while let Some(row) = rows.next()? {
            let ordered = super::hot_row(row)?;
            if !each(ordered.stored, ordered.position) {
                return Ok(());
            }
        }
        drop(rows);
        drop(statement);
        cold::newest_compacted(&mut cold::Sqlite(&transaction), &self.blocks, query, each)?;
        Ok(transaction.commit()?)
    }

    /// Per protocol, how many activities `query` selects and when the first and last were.
    pub fn activity_counts(&self, query: &Query) -> Result<Vec<ProtocolCount>, StoreError> {
        let filter = query.filter(Dialect::Sqlite);
        let mut statement = self.connection.prepare(&format!(
            "SELECT protocol, COUNT(*), MIN(time_ns), MAX(time_ns) FROM activities {}
             GROUP BY protocol ORDER BY protocol",
            filter.clause()
        ))?;
        let rows = statement.query_map(
            params_from_iter(filter.values.into_iter().map(sqlite_value)),
            |row| {
                Ok(ProtocolCount {
                    protocol: row.get(0)?,
                    count: row.get(1)?,
                    first_ns: row.get(2)?,
                    last_ns: row.get(3)?,
                })
            },
        )?;
        let mut counts: Vec<ProtocolCount> = rows.collect::<Result<_, _>>()?;
        count_compacted(
            &mut cold::Sqlite(&self.connection),
            &self.blocks,
            query,
            &mut counts,
        )?;
        Ok(counts)
    }

    pub fn sensors(&self) -> Result<Vec<SensorState>, StoreError> {
        let mut statement = self.connection.prepare(
            "SELECT s.sensor_id, s.version, s.last_seen_ns, s.stored_through, s.counters,
             (SELECT COUNT(*) FROM health_issues h WHERE h.sensor_id = s.sensor_id
              AND h.end_ns IS NULL)
             FROM sensors s ORDER BY s.sensor_id",
        )?;
        let rows = statement.query_map([], |row| {
            Ok(SensorState {
                sensor_id: row.get(0)?,
                version: row.get(1)?,
                last_seen_ns: row.get(2)?,
                stored_through: to_u64(row.get(3)?),
                counters: row.get(4)?,
                open_issues: to_u64(row.get(5)?),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Point health events, newest first, at most `limit`; with `sensor_id`, its only.
    pub fn health_events(
        &self,
        sensor_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut statement = self.connection.prepare(
            "SELECT sensor_id, time_ns, severity, kind, message FROM health_events
             WHERE ?1 IS NULL OR sensor_id = ?1 ORDER BY time_ns DESC, id DESC LIMIT ?2",
        )?;
        let rows = statement.query_map(
            params![sensor_id, i64::try_from(limit).unwrap_or(i64::MAX)],
            |row| {
                Ok(StoredEvent {
                    sensor_id: row.get(0)?,
                    time_ns: row.get(1)?,
                    severity: row.get(2)?,
                    kind: row.get(3)?,
                    message: row.get(4)?,
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records every sensor's latest counters at `now_ns`, keeping `keep` samples per sensor.
    pub fn sample_counters(&mut self, now_ns: i64, keep: i64) -> Result<(), StoreError> {
        let transaction = self.write_transaction()?;
        transaction.execute(
            "INSERT INTO console_sensor_counters (sensor_id, time_ns, counters)
             SELECT sensor_id, ?1, counters FROM sensors WHERE counters IS NOT NULL",
            [now_ns],
        )?;
        transaction.execute(
            "DELETE FROM console_sensor_counters WHERE rowid IN (SELECT rowid FROM
             (SELECT rowid, ROW_NUMBER() OVER (PARTITION BY sensor_id ORDER BY time_ns DESC)
              AS n FROM console_sensor_counters) WHERE n > ?1)",
            [keep],
        )?;
        transaction.commit()?;
        Ok(())
    }

    /// A sensor's sampled counters, newest first: (time, JSON object).
    pub fn counter_samples(
        &self,
        sensor_id: &str,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let mut statement = self.connection.prepare(
            "SELECT time_ns, counters FROM console_sensor_counters WHERE sensor_id = ?1
             ORDER BY time_ns DESC LIMIT ?2",
        )?;
        let rows = statement.query_map(
            params![sensor_id, i64::try_from(limit).unwrap_or(i64::MAX)],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Accounts and addresses seen that start with `prefix` (an account `DOMAIN\name` in that
    /// domain only), and computers alerts name so; at most `limit` of each.
    pub fn search(&self, prefix: &str, limit: usize) -> Result<Found, StoreError> {
        let mut found = Found::default();
        let (domain, name) = prefix
            .split_once('\\')
            .map_or((None, prefix), |(domain, name)| (Some(domain), name));
        let pattern = format!("{}%", like_escaped(name));
        let size = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut statement = self.connection.prepare(
            "SELECT DISTINCT domain, account FROM activities WHERE account LIKE ?1 ESCAPE '\\'
             AND (?2 IS NULL OR domain = ?2 COLLATE NOCASE) LIMIT ?3",
        )?;
        let rows = statement.query_map(params![pattern, domain, size], |row| {
            Ok(account_name(row.get(0)?, row.get(1)?))
        })?;
        found.accounts = rows.collect::<Result<_, _>>()?;
        compacted_accounts(
            &mut cold::Sqlite(&self.connection),
            name,
            limit,
            &mut found.accounts,
        )?;
        // A range, not LIKE: LIKE is case-insensitive and cannot use the addresses' (binary)
        // indexes, so it scanned every activity (0.7-1.0 s on 1,000,000 of them; the range
        // reads only the matching index entries, under a millisecond).
        let low = prefix.to_lowercase();
        let high = format!("{low}\u{10FFFF}");
        let mut statement = self.connection.prepare(
            "SELECT ip FROM (
               SELECT * FROM (SELECT DISTINCT src_ip AS ip FROM activities
                              WHERE src_ip >= ?1 AND src_ip < ?2 LIMIT ?3)
               UNION
               SELECT * FROM (SELECT DISTINCT dst_ip FROM activities
                              WHERE dst_ip >= ?1 AND dst_ip < ?2 LIMIT ?3))
             LIMIT ?3",
        )?;
        let rows = statement.query_map(params![low, high, size], |row| row.get(0))?;
        found.addresses = rows.collect::<Result<_, _>>()?;
        compacted_addresses(
            &mut cold::Sqlite(&self.connection),
            &low,
            limit,
            &mut found.addresses,
        )?;
        let mut statement = self.connection.prepare(
            "SELECT DISTINCT name FROM alert_entities WHERE kind = 'computer' AND name != ''
             AND name LIKE ?1 ESCAPE '\\' ORDER BY name LIMIT ?2",
        )?;
        let rows = statement
            .query_map(params![format!("{}%", like_escaped(prefix)), size], |row| {
                row.get(0)
            })?;
        found.computers = rows.collect::<Result<_, _>>()?;
        Ok(found)
    }

    /// Reopens a closed alert; false when there is no closed alert `id`.
    pub fn reopen_alert(&mut self, id: &str, actor: &str, now_ns: i64) -> Result<bool, StoreError> {
        let transaction = self.write_transaction()?;
        let changed = transaction.execute(
            "UPDATE alerts SET status = 'OPEN', classification = '', closed_ns = NULL,
             updated_ns = ?2 WHERE id = ?1 AND status = 'CLOSED'",
            params![id, now_ns],
        )?;
        if changed > 0 {
            transaction.execute(
                "INSERT INTO alert_history (alert_id, time_ns, event, actor) VALUES
                 (?1, ?2, 'reopened', ?3)",
                params![id, now_ns, actor],
            )?;
        }
        transaction.commit()?;
        Ok(changed > 0)
    }

    /// Adds a history row (`comment`, `assigned`) to an existing alert; false without it.
    pub fn note_alert(
        &self,
        id: &str,
        event: &str,
        actor: &str,
        text: &str,
        now_ns: i64,
    ) -> Result<bool, StoreError> {
        Ok(self.connection.execute(
            "INSERT INTO alert_history (alert_id, time_ns, event, actor, text)
             SELECT id, ?2, ?3, ?4, ?5 FROM alerts WHERE id = ?1",
            params![id, now_ns, event, actor, text],
        )? > 0)
    }

    /// Adds a user (its hash made by the caller); false when the name (in any case) exists.
    pub fn add_user(
        &self,
        name: &str,
        role: &str,
        hash: &str,
        now_ns: i64,
    ) -> Result<bool, StoreError> {
        Ok(self.connection.execute(
            "INSERT INTO console_users (name, role, hash, created_ns) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name) DO NOTHING",
            params![name, role, hash, now_ns],
        )? > 0)
    }

    /// The user named `name` (in any case).
    pub fn user(&self, name: &str) -> Result<Option<StoredUser>, StoreError> {
        Ok(self
            .connection
            .query_row(
                "SELECT name, role, hash FROM console_users WHERE name = ?1",
                [name],
                |row| {
                    Ok(StoredUser {
                        name: row.get(0)?,
                        role: row.get(1)?,
                        hash: row.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    /// The users' names and roles.
    pub fn users(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut statement = self
            .connection
            .prepare("SELECT name, role FROM console_users ORDER BY name")?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn remove_user(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .connection
            .execute("DELETE FROM console_users WHERE name = ?1", [name])?
            > 0)
    }
}

#[cfg(test)]
mod tests {
    use dcwatch_detect::checkpoint::Checkpoint;
    use dcwatch_proto::v1::{AlertEntity, alert_entity::Role};

    use super::*;
    use crate::store::{AlertQuery, EntityKey};

    /// A store whose alerts predate `alert_entities` (user_version 0, no rows) has them
    /// indexed when opened, once.
    #[test]
    fn alerts_stored_before_the_entity_index_are_indexed_on_open() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let mut store = Store::open(directory.path()).expect("open");
        let alert = Alert {
            id: "old".to_owned(),
            entities: vec![AlertEntity {
                role: Role::SourceAccount.into(),
                name: "CORP\\alice".to_owned(),
                ..AlertEntity::default()
            }],
            ..Alert::default()
        };
        store
            .save_alerts_at(&[alert], (0, &Checkpoint::NOTHING), ("cursor", 0), 0, 1)
            .expect("save");
        store
            .connection
            .execute_batch("DELETE FROM alert_entities; PRAGMA user_version = 0;")
            .expect("as an older version left it");
        drop(store);
        let store = Store::open(directory.path()).expect("reopen");
        let query = AlertQuery {
            entity: Some(EntityKey {
                kind: EntityKind::Account,
                key: "corp\\ALICE".to_owned(),
            }),
            ..AlertQuery::default()
        };
        assert_eq!(store.alerts(&query).expect("alerts").len(), 1);
        let version: i64 = store
            .connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .expect("version");
        assert_eq!(version, ALERT_ENTITIES_VERSION);
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_escaped("a_b%c\\"), "a\\_b\\%c\\\\");
    }
}
