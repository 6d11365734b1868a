//! The embedded store: one SQLite file, `DIR/dcwatch.sqlite3`.
//!
//! Each activity is kept whole (its prost encoding, so nothing the sensor sent is lost and the
//! JSON line printed back is the sensor's own) beside the columns queries filter on: time,
//! protocol, account name, source and destination address, and the sensor and batch it came in.
//! Activities older than the hot window are compacted into compressed blocks ([`blocks`]);
//! queries read both tiers.
//! A batch's activities and its sensor's new `stored_through` are written in one transaction,
//! so a batch is either wholly stored and counted as stored, or not at all: a crash between the
//! two cannot make a resend store it twice.

mod alerts;
pub mod blocks;
mod cold;
mod console;
mod health;
pub mod postgres;
mod profiles;
mod storage;
mod windows;

pub use storage::{ACTIVITY_CURSOR, SharedStore, Storage, open, open_existing};

pub use health::{Recorded, StoredIssue, is_derived};

pub use alerts::{
    AlertQuery, Closed, DETECTION, EntityKey, EntityKind, Excluded, Exclusion, ExclusionKind,
    HistoryEntry, NewActivity,
};
pub(crate) use alerts::{Dialect, Filter, Param};
pub use console::{Found, ProtocolCount, SensorState, StoredEvent, StoredUser};

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use dcwatch_proto::{
    json::{endpoint_ip, protocol_name},
    v1::{Activity, DirectoryDelta, HealthEvent},
};
use prost::Message as _;
use rusqlite::{Connection, OptionalExtension as _, params, params_from_iter};
use sha2::{Digest as _, Sha256};

/// The store's file name inside the data directory.
pub const FILE_NAME: &str = "dcwatch.sqlite3";

/// How long a writer waits for another process (a `token add` while `serve` runs) to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS activities (
    id INTEGER PRIMARY KEY,
    time_ns INTEGER NOT NULL,
    sensor_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    position INTEGER NOT NULL,
    protocol TEXT NOT NULL,
    account TEXT,
    domain TEXT,
    src_ip TEXT,
    dst_ip TEXT,
    activity BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS activities_time ON activities (time_ns, sensor_id, sequence, position);
CREATE INDEX IF NOT EXISTS activities_protocol ON activities (protocol, time_ns);
CREATE INDEX IF NOT EXISTS activities_account ON activities (account COLLATE NOCASE, time_ns);
CREATE INDEX IF NOT EXISTS activities_src ON activities (src_ip, time_ns);
CREATE INDEX IF NOT EXISTS activities_dst ON activities (dst_ip, time_ns);
CREATE TABLE IF NOT EXISTS sensors (
    sensor_id TEXT PRIMARY KEY,
    stored_through INTEGER NOT NULL DEFAULT 0,
    version TEXT NOT NULL DEFAULT '',
    last_seen_ns INTEGER NOT NULL DEFAULT 0,
    counters TEXT
);
CREATE TABLE IF NOT EXISTS refused_batches (
    sensor_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    received_ns INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS health_events (
    id INTEGER PRIMARY KEY,
    sensor_id TEXT NOT NULL,
    time_ns INTEGER NOT NULL,
    severity TEXT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    name TEXT PRIMARY KEY,
    sha256 BLOB NOT NULL UNIQUE,
    created_ns INTEGER NOT NULL
);
";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("store: activity {id} does not decode: {source}")]
    Decode { id: i64, source: prost::DecodeError },
    #[error("writing: {0}")]
    Output(std::io::Error),
    #[error("store: alert {id} does not decode: {source}")]
    AlertDecode {
        id: String,
        source: prost::DecodeError,
    },
    #[error("a token named {0:?} already exists (revoke it first)")]
    TokenExists(String),
    #[error("no store in {} (is --data-dir right?)", .0.display())]
    Missing(PathBuf),
    #[error("store (PostgreSQL): {0}")]
    Postgres(#[from] ::postgres::Error),
    #[error("store (PostgreSQL): migration {version} is unknown to this version of dcwatch")]
    NewerSchema { version: i32 },
    #[error(
        "store (PostgreSQL): migration {version} is not applied (run `dcwatch-backend store migrate`)"
    )]
    MigrationPending { version: i32 },
    #[error("store (PostgreSQL): TLS: {0}")]
    Tls(String),
    #[error("store: activity block {id}: {source}")]
    Block { id: i64, source: blocks::BlockError },
}

/// What one compaction did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Compacted {
    pub blocks: u64,
    pub activities: u64,
}

/// What storing a batch did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// New: its activities are stored and its sequence is the sensor's `stored_through`.
    New,
    /// At or below the sensor's `stored_through`: stored before, nothing written.
    Duplicate,
}

/// Which activities to read back; every filter that is set must match.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// Unix nanoseconds, inclusive.
    pub since_ns: Option<i64>,
    /// Unix nanoseconds, exclusive.
    pub until_ns: Option<i64>,
    /// A JSON line's `protocol` (kerberos, ntlm, ldap...).
    pub protocol: Option<String>,
    /// The account name (case-insensitive), or `DOMAIN\name`.
    pub account: Option<String>,
    /// Source or destination address.
    pub ip: Option<IpAddr>,
    pub sensor_id: Option<String>,
}

/// One stored activity with where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredActivity {
    pub sensor_id: String,
    pub sequence: u64,
    pub activity: Activity,
}

/// Where a sensor sent an activity: the batch `sequence` and the `position` in it, as an
/// alert's evidence cites it (`SENSOR:SEQUENCE:POSITION`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ActivityRef<'s> {
    pub sensor_id: &'s str,
    pub sequence: u64,
    pub position: u64,
}

impl<'s> ActivityRef<'s> {
    /// `reference` read as `SENSOR:SEQUENCE:POSITION` (the sensor's id may hold colons);
    /// `None` when it is not one.
    pub fn parse(reference: &'s str) -> Option<Self> {
        let mut parts = reference.rsplitn(3, ':');
        let position = parts.next()?.parse().ok()?;
        let sequence = parts.next()?.parse().ok()?;
        let sensor_id = parts.next()?;
        Some(Self {
            sensor_id,
            sequence,
            position,
        })
    }
}

#[derive(Debug)]
pub struct Store {
    connection: Connection,
    /// What this store keeps of the compacted blocks it read last.
    blocks: cold::BlockCache,
}

impl Store {
    /// Opens (creating if needed) the store in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(FILE_NAME);
        let open = |path: &Path| -> rusqlite::Result<Connection> {
            let connection = Connection::open(path)?;
            connection.busy_timeout(BUSY_TIMEOUT)?;
            // WAL: readers (`activities`) do not block ingest. FULL: an acknowledged batch is
            // on disk, since the sensor frees its spool copy on the ack.
            connection.pragma_update(None, "journal_mode", "WAL")?;
            connection.pragma_update(None, "synchronous", "FULL")?;
            connection.execute_batch(SCHEMA)?;
            connection.execute_batch(alerts::SCHEMA)?;
            connection.execute_batch(profiles::SCHEMA)?;
            connection.execute_batch(windows::SCHEMA)?;
            connection.execute_batch(health::SCHEMA)?;
            connection.execute_batch(crate::directory::SCHEMA)?;
            connection.execute_batch(blocks::SCHEMA)?;
            connection.execute_batch(console::SCHEMA)?;
            add_column(
                &connection,
                "sensors",
                "spool_instance",
                "TEXT NOT NULL DEFAULT ''",
            )?;
            for (table, column, definition) in blocks::ADDED_COLUMNS {
                add_column(&connection, table, column, definition)?;
            }
            connection.execute_batch(blocks::INDEXES)?;
            Ok(connection)
        };
        let mut connection = open(&path).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        console::migrate(&mut connection)?;
        Ok(Self {
            connection,
            blocks: cold::BlockCache::default(),
        })
    }

    /// A transaction that takes the write lock at once. Detection and the `alerts` commands
    /// write through connections of their own: a deferred transaction that read before writing
    /// would fail at once (SQLITE_BUSY_SNAPSHOT, no busy wait) whenever another connection
    /// committed in between; an immediate one waits its turn (`BUSY_TIMEOUT`).
    fn write_transaction(&mut self) -> rusqlite::Result<rusqlite::Transaction<'_>> {
        self.connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
    }

    /// The highest sequence stored for `sensor_id` (0 for none).
    pub fn stored_through(&self, sensor_id: &str) -> Result<u64, StoreError> {
        Ok(through_in(&self.connection, sensor_id)?)
    }

    /// The spool instance that numbered the sensor's `stored_through` (empty: none known).
    pub fn spool_instance(&self, sensor_id: &str) -> Result<String, StoreError> {
        let instance: Option<String> = self
            .connection
            .query_row(
                "SELECT spool_instance FROM sensors WHERE sensor_id = ?1",
                [sensor_id],
                |row| row.get(0),
            )
            .optional()?;
        Ok(instance.unwrap_or_default())
    }

    /// Records a sensor's hello (its version and when it was seen).
    pub fn sensor_seen(
        &self,
        sensor_id: &str,
        version: &str,
        now_ns: i64,
    ) -> Result<(), StoreError> {
        self.connection.execute(
            "INSERT INTO sensors (sensor_id, version, last_seen_ns) VALUES (?1, ?2, ?3)
             ON CONFLICT (sensor_id) DO UPDATE SET version = ?2, last_seen_ns = ?3",
            params![sensor_id, version, now_ns],
        )?;
        Ok(())
    }

    /// Stores a batch's activities and advances the sensor's `stored_through` to `sequence`
    /// (numbered by the spool `spool_instance`), in one transaction; a batch at or below
    /// `stored_through` is a duplicate and writes nothing.
    pub fn store_batch(
        &mut self,
        sensor_id: &str,
        spool_instance: &str,
        sequence: u64,
        activities: &[Activity],
    ) -> Result<Stored, StoreError> {
        self.store_batch_with_directory(sensor_id, spool_instance, sequence, activities, &[])
    }

    /// [`Self::store_batch`], with the directory deltas the batch carries merged in the same
    /// transaction (`crate::directory`).
    pub fn store_batch_with_directory(
        &mut self,
        sensor_id: &str,
        spool_instance: &str,
        sequence: u64,
        activities: &[Activity],
        directory: &[DirectoryDelta],
    ) -> Result<Stored, StoreError> {
        let transaction = self.write_transaction()?;
        if sequence <= through_in(&transaction, sensor_id)? {
            return Ok(Stored::Duplicate);
        }
        {
            let mut insert = transaction.prepare_cached(
                "INSERT INTO activities (time_ns, sensor_id, sequence, position, protocol, account,
                 domain, src_ip, dst_ip, activity) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            for (position, activity) in activities.iter().enumerate() {
                let account = activity.account.as_ref();
                insert.execute(params![
                    time_ns(activity),
                    sensor_id,
                    to_i64(sequence),
                    i64::try_from(position).unwrap_or(i64::MAX),
                    protocol_name(activity.body.as_ref()),
                    account
                        .map(|account| account.name.as_str())
                        .filter(|name| !name.is_empty()),
                    account
                        .map(|account| account.domain.as_str())
                        .filter(|name| !name.is_empty()),
                    activity
                        .src
                        .as_ref()
                        .and_then(endpoint_ip)
                        .map(|ip| ip.to_string()),
                    activity
                        .dst
                        .as_ref()
                        .and_then(endpoint_ip)
                        .map(|ip| ip.to_string()),
                    activity.encode_to_vec(),
                ])?;
            }
        }
        crate::directory::apply(
            &transaction,
            sensor_id,
            directory,
            crate::directory::now_ns(),
        )?;
        set_through(&transaction, sensor_id, spool_instance, sequence)?;
        transaction.commit()?;
        Ok(Stored::New)
    }

    /// Merges directory deltas that came with no batch (`directory import`), as `sensor_id`.
    pub fn apply_directory(
        &mut self,
        sensor_id: &str,
        deltas: &[DirectoryDelta],
    ) -> Result<(), StoreError> {
        let transaction = self.write_transaction()?;
        crate::directory::apply(&transaction, sensor_id, deltas, crate::directory::now_ns())?;
        transaction.commit()?;
        Ok(())
    }

    pub(crate) fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Records a batch that could not be stored (undecodable, oversized) and moves the sensor's
    /// `stored_through` past it: resending the same bytes cannot succeed, and a batch the sensor
    /// is never told about would come back after every reconnection.
    pub fn refuse_batch(
        &mut self,
        sensor_id: &str,
        spool_instance: &str,
        sequence: u64,
        reason: &str,
        now_ns: i64,
    ) -> Result<Stored, StoreError> {
        let transaction = self.write_transaction()?;
        if sequence <= through_in(&transaction, sensor_id)? {
            return Ok(Stored::Duplicate);
        }
        transaction.execute(
            "INSERT INTO refused_batches (sensor_id, sequence, received_ns, reason)
             VALUES (?1, ?2, ?3, ?4)",
            params![sensor_id, to_i64(sequence), now_ns, reason],
        )?;
        set_through(&transaction, sensor_id, spool_instance, sequence)?;
        transaction.commit()?;
        Ok(Stored::New)
    }

    pub fn store_health(&self, sensor_id: &str, event: &HealthEvent) -> Result<(), StoreError> {
        let time = event
            .time
            .as_ref()
            .map_or(0, |time| timestamp_ns(time.seconds, time.nanos));
        self.connection.execute(
            "INSERT INTO health_events (sensor_id, time_ns, severity, kind, message)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                sensor_id,
                time,
                event.severity().as_str_name(),
                event.kind,
                event.message
            ],
        )?;
        Ok(())
    }

    /// Keeps the latest counters a sensor sent, as a JSON object.
    pub fn store_counters(&self, sensor_id: &str, counters_json: &str) -> Result<(), StoreError> {
        self.connection.execute(
            "UPDATE sensors SET counters = ?2 WHERE sensor_id = ?1",
            params![sensor_id, counters_json],
        )?;
        Ok(())
    }

    /// Deletes activities older than `before_ns` (blocks whose newest activity is); returns
    /// how many.
    pub fn prune(&mut self, before_ns: i64) -> Result<u64, StoreError> {
        cold::prune(self, before_ns)
    }

    /// Bytes the store's pages hold (free pages left out: SQLite reuses them).
    pub fn used_bytes(&self) -> Result<u64, StoreError> {
        let pragma = |name: &str| -> rusqlite::Result<i64> {
            self.connection
                .query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))
        };
        let pages = pragma("page_count")? - pragma("freelist_count")?;
        Ok(to_u64(pages.saturating_mul(pragma("page_size")?)))
    }

    /// Bytes each table and index takes (its pages), largest first: where the store's size
    /// goes.
    pub fn bytes_by_table(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut statement = self.connection.prepare(
            "SELECT name, SUM(pgsize) AS bytes FROM dbstat GROUP BY name ORDER BY bytes DESC",
        )?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, to_u64(row.get(1)?))))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes the oldest activities until the store holds at most `max_bytes`; returns how
    /// many were deleted.
    pub fn prune_to_budget(&mut self, max_bytes: u64) -> Result<u64, StoreError> {
        /// Deleted per step before the size is read again.
        const STEP_BLOCKS: i64 = 2;
        const STEP_ROWS: i64 = 2 * blocks::BLOCK_ACTIVITIES as i64;
        let mut pruned = 0;
        while self.used_bytes()? > max_bytes {
            let transaction = self.write_transaction()?;
            let oldest: Vec<(i64, i64)> = transaction
                .prepare("SELECT id, count FROM activity_blocks ORDER BY min_time_ns LIMIT ?1")?
                .query_map([STEP_BLOCKS], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let step = if oldest.is_empty() {
                // No blocks left: the hot tier's oldest rows, the newest row kept (its id
                // numbers the rows after it).
                transaction.execute(
                    "DELETE FROM activities WHERE id IN (SELECT id FROM activities
                     WHERE id < (SELECT MAX(id) FROM activities) ORDER BY time_ns LIMIT ?1)",
                    [STEP_ROWS],
                )? as u64
            } else {
                cold::delete_blocks(&mut cold::Sqlite(&transaction), &oldest)?
            };
            transaction.commit()?;
            if step == 0 {
                break;
            }
            pruned += step;
        }
        Ok(pruned)
    }

    /// Moves activities stored before `before_ns` that detection has judged (and never the
    /// newest row, whose id numbers the next ones) into compressed blocks of up to
    /// `BLOCK_ACTIVITIES` per sensor.
    pub fn compact(&mut self, before_ns: i64) -> Result<Compacted, StoreError> {
        cold::compact(self, before_ns)
    }

    /// The activity `sensor_id` sent at `position` of its batch `sequence`, in either tier.
    pub fn activity_at(
        &self,
        sensor_id: &str,
        sequence: u64,
        position: u64,
    ) -> Result<Option<Activity>, StoreError> {
        activity_at(
            &self.connection,
            &self.blocks,
            sensor_id,
            sequence,
            position,
        )
    }

    /// The activities at `refs`, in their order, `None` where there is none: what
    /// [`Self::activity_at`] answers for each, read together (an alert's evidence).
    pub fn activities_at(
        &self,
        refs: &[ActivityRef<'_>],
    ) -> Result<Vec<Option<Activity>>, StoreError> {
        activities_at(&self.connection, &self.blocks, refs)
    }

    /// The activities `query` selects, by time, then sensor, then sequence (then their place in
    /// the batch), each handed to `each`.
    pub fn activities(
        &self,
        query: &Query,
        each: impl FnMut(StoredActivity) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let filter = query.filter(Dialect::Sqlite);
        let mut statement = self.connection.prepare(&format!(
            "SELECT id, sensor_id, sequence, position, activity FROM activities {}
             ORDER BY time_ns, sensor_id, sequence, position",
            filter.clause()
        ))?;
        let mut rows = statement.query(params_from_iter(
            filter.values.into_iter().map(alerts::sqlite_value),
        ))?;
        cold::merged(
            &mut cold::Sqlite(&self.connection),
            &self.blocks,
            query,
            |_| rows.next()?.map(hot_row).transpose(),
            each,
        )
    }

    /// Adds a token named `name`; stores only its SHA-256.
    pub fn add_token(&self, name: &str, token: &str, now_ns: i64) -> Result<(), StoreError> {
        let exists: Option<String> = self
            .connection
            .query_row("SELECT name FROM tokens WHERE name = ?1", [name], |row| {
                row.get(0)
            })
            .optional()?;
        if exists.is_some() {
            return Err(StoreError::TokenExists(name.to_owned()));
        }
        self.connection.execute(
            "INSERT INTO tokens (name, sha256, created_ns) VALUES (?1, ?2, ?3)",
            params![name, token_hash(token).as_slice(), now_ns],
        )?;
        Ok(())
    }

    /// The names of the tokens, with their creation times (Unix nanoseconds).
    pub fn tokens(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let mut statement = self
            .connection
            .prepare("SELECT name, created_ns FROM tokens ORDER BY name")?;
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Removes the token named `name`; false when there was none.
    pub fn revoke_token(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .connection
            .execute("DELETE FROM tokens WHERE name = ?1", [name])?
            > 0)
    }

    /// The name of the token `token`, when it is a known one.
    pub fn token_name(&self, token: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .connection
            .query_row(
                "SELECT name FROM tokens WHERE sha256 = ?1",
                [token_hash(token).as_slice()],
                |row| row.get(0),
            )
            .optional()?)
    }
}

impl cold::Compacting for Store {
    fn write<R>(
        &mut self,
        work: impl FnOnce(&mut dyn cold::TierWriter) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let transaction = self.write_transaction()?;
        let done = work(&mut cold::Sqlite(&transaction))?;
        transaction.commit()?;
        Ok(done)
    }
}

/// The highest sequence stored for `sensor_id` (0 for none), read in `connection` or in a
/// transaction on it.
fn through_in(connection: &Connection, sensor_id: &str) -> rusqlite::Result<u64> {
    let through: Option<i64> = connection
        .query_row(
            "SELECT stored_through FROM sensors WHERE sensor_id = ?1",
            [sensor_id],
            |row| row.get(0),
        )
        .optional()?;
    Ok(through.map_or(0, to_u64))
}

/// The sensor's `stored_through`, and the spool that numbered it: together, so the welcome
/// never pairs a sequence with a spool that did not number it.
fn set_through(
    transaction: &rusqlite::Transaction<'_>,
    sensor_id: &str,
    spool_instance: &str,
    sequence: u64,
) -> rusqlite::Result<()> {
    transaction.execute(
        "INSERT INTO sensors (sensor_id, stored_through, spool_instance) VALUES (?1, ?2, ?3)
         ON CONFLICT (sensor_id) DO UPDATE SET stored_through = ?2, spool_instance = ?3",
        params![sensor_id, to_i64(sequence), spool_instance],
    )?;
    Ok(())
}

/// `table.column`, added to stores made before it existed.
fn add_column(
    connection: &Connection,
    table: &str,
    column: &str,
    definition: &str,
) -> rusqlite::Result<()> {
    let present: bool = connection.query_row(
        "SELECT COUNT(*) FROM pragma_table_info(?1) WHERE name = ?2",
        [table, column],
        |row| row.get::<_, i64>(0).map(|count| count > 0),
    )?;
    if !present {
        connection.execute_batch(&format!(
            "ALTER TABLE {table} ADD COLUMN {column} {definition}"
        ))?;
    }
    Ok(())
}

/// An activity in the order queries return them: time, sensor, sequence, position.
#[derive(Debug)]
struct Ordered {
    position: u64,
    stored: StoredActivity,
}

impl Ordered {
    fn time_ns(&self) -> i64 {
        time_ns(&self.stored.activity)
    }
}

impl PartialEq for Ordered {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Ordered {}

impl PartialOrd for Ordered {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ordered {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.time_ns()
            .cmp(&other.time_ns())
            .then_with(|| self.stored.sensor_id.cmp(&other.stored.sensor_id))
            .then(self.stored.sequence.cmp(&other.stored.sequence))
            .then(self.position.cmp(&other.position))
    }
}

fn hot_row(row: &rusqlite::Row<'_>) -> Result<Ordered, StoreError> {
    let id: i64 = row.get(0)?;
    let bytes: Vec<u8> = row.get(4)?;
    let activity =
        Activity::decode(bytes.as_slice()).map_err(|source| StoreError::Decode { id, source })?;
    Ok(Ordered {
        position: to_u64(row.get(3)?),
        stored: StoredActivity {
            sensor_id: row.get(1)?,
            sequence: to_u64(row.get(2)?),
            activity,
        },
    })
}

impl Query {
    /// The query's conditions on the activity rows, in `dialect` (both stores' one builder).
    pub(crate) fn filter(&self, dialect: Dialect) -> Filter {
        let mut filter = Filter::new(dialect);
        if let Some(since) = self.since_ns {
            filter.push("time_ns >= ?", Param::Int(since));
        }
        if let Some(until) = self.until_ns {
            filter.push("time_ns < ?", Param::Int(until));
        }
        if let Some(protocol) = &self.protocol {
            filter.push("protocol = ?", Param::Text(protocol.to_lowercase()));
        }
        if let Some(account) = &self.account {
            let (domain, name) = account
                .split_once('\\')
                .map_or((None, account.as_str()), |(domain, name)| {
                    (Some(domain), name)
                });
            filter.push(&dialect.eq_nocase("account"), Param::Text(name.to_owned()));
            if let Some(domain) = domain {
                filter.push(&dialect.eq_nocase("domain"), Param::Text(domain.to_owned()));
            }
        }
        if let Some(ip) = self.ip {
            // Both placeholders become the same numbered one.
            filter.push("(src_ip = ? OR dst_ip = ?)", Param::Text(ip.to_string()));
        }
        if let Some(sensor) = &self.sensor_id {
            filter.push("sensor_id = ?", Param::Text(sensor.clone()));
        }
        filter
    }

    /// The filter applied to a compacted activity, as the hot tier's SQL applies it.
    fn matches(&self, stored: &StoredActivity) -> bool {
        self.matches_activity(&stored.sensor_id, &stored.activity)
    }

    /// [`Self::matches`], for `activity` stored by `sensor_id`.
    fn matches_activity(&self, sensor_id: &str, activity: &Activity) -> bool {
        let time = time_ns(activity);
        let account = activity.account.as_ref();
        let ips = || {
            [&activity.src, &activity.dst]
                .into_iter()
                .flatten()
                .filter_map(endpoint_ip)
        };
        self.since_ns.is_none_or(|since| time >= since)
            && self.until_ns.is_none_or(|until| time < until)
            && self.protocol.as_ref().is_none_or(|protocol| {
                protocol.to_lowercase() == protocol_name(activity.body.as_ref())
            })
            && self.account.as_ref().is_none_or(|wanted| {
                let (domain, name) = match wanted.split_once('\\') {
                    Some((domain, name)) => (Some(domain), name),
                    None => (None, wanted.as_str()),
                };
                account.is_some_and(|account| {
                    account.name.eq_ignore_ascii_case(name)
                        && domain.is_none_or(|domain| account.domain.eq_ignore_ascii_case(domain))
                })
            })
            && self.ip.is_none_or(|ip| ips().any(|seen| seen == ip))
            && self
                .sensor_id
                .as_ref()
                .is_none_or(|sensor| sensor == sensor_id)
    }
}

/// The activity at (`sensor_id`, `sequence`, `position`) in either tier.
pub(crate) fn activity_at(
    connection: &Connection,
    cache: &cold::BlockCache,
    sensor_id: &str,
    sequence: u64,
    position: u64,
) -> Result<Option<Activity>, StoreError> {
    // One read transaction for both tiers: compaction moving the activity between them cannot
    // hide it, and SQLite takes its read locks once, not at each of the compacted tier's
    // statements.
    let transaction = ReadTransaction::begin(connection)?;
    let hot: Option<(i64, Vec<u8>)> = connection
        .prepare_cached(
            "SELECT id, activity FROM activities WHERE sensor_id = ?1 AND sequence = ?2
             AND position = ?3",
        )?
        .query_row(
            params![sensor_id, to_i64(sequence), to_i64(position)],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let found = match hot {
        Some((id, bytes)) => Activity::decode(bytes.as_slice())
            .map(Some)
            .map_err(|source| StoreError::Decode { id, source })?,
        None => cold::activity_at(
            &mut cold::Sqlite(connection),
            cache,
            sensor_id,
            sequence,
            position,
        )?,
    };
    transaction.end()?;
    Ok(found)
}

/// [`activity_at`] of each of `refs`, in one read transaction: the rows first, one cached
/// statement each, then the compacted tier for those not among them, each block's index read
/// once and each frame decompressed once ([`cold::activities_at`]).
pub(crate) fn activities_at(
    connection: &Connection,
    cache: &cold::BlockCache,
    refs: &[ActivityRef<'_>],
) -> Result<Vec<Option<Activity>>, StoreError> {
    let transaction = ReadTransaction::begin(connection)?;
    let mut found = Vec::with_capacity(refs.len());
    let mut statement = connection.prepare_cached(
        "SELECT id, activity FROM activities WHERE sensor_id = ?1 AND sequence = ?2
         AND position = ?3",
    )?;
    for at in refs {
        let hot: Option<(i64, Vec<u8>)> = statement
            .query_row(
                params![at.sensor_id, to_i64(at.sequence), to_i64(at.position)],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        found.push(match hot {
            Some((id, bytes)) => Some(
                Activity::decode(bytes.as_slice())
                    .map_err(|source| StoreError::Decode { id, source })?,
            ),
            None => None,
        });
    }
    drop(statement);
    cold::fill_compacted(&mut cold::Sqlite(connection), cache, refs, &mut found)?;
    transaction.end()?;
    Ok(found)
}

/// A read transaction begun and ended by cached statements: rusqlite's transaction parses
/// `BEGIN` and `COMMIT` each time, a sixth of an evidence lookup's instructions (callgrind).
/// Rolled back if dropped before [`Self::end`] (a failed read).
struct ReadTransaction<'c> {
    connection: &'c Connection,
    ended: bool,
}

impl<'c> ReadTransaction<'c> {
    fn begin(connection: &'c Connection) -> rusqlite::Result<Self> {
        connection.prepare_cached("BEGIN")?.execute([])?;
        Ok(Self {
            connection,
            ended: false,
        })
    }

    fn end(mut self) -> rusqlite::Result<()> {
        self.connection.prepare_cached("COMMIT")?.execute([])?;
        self.ended = true;
        Ok(())
    }
}

impl Drop for ReadTransaction<'_> {
    fn drop(&mut self) {
        if !self.ended {
            // As rusqlite's own transaction does when dropped: a failed read's error is
            // already the caller's, and a read has nothing to undo.
            let _ = self
                .connection
                .prepare_cached("ROLLBACK")
                .and_then(|mut statement| statement.execute([]));
        }
    }
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// SQLite integers are signed; sequences beyond i64::MAX (never in practice) saturate.
fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// Unix nanoseconds of a protobuf timestamp, saturating.
pub fn timestamp_ns(seconds: i64, nanos: i32) -> i64 {
    seconds
        .saturating_mul(1_000_000_000)
        .saturating_add(i64::from(nanos))
}

/// An activity's time in Unix nanoseconds (0 without one), as the store orders by.
pub(crate) fn time_ns(activity: &Activity) -> i64 {
    activity
        .time
        .as_ref()
        .map_or(0, |time| timestamp_ns(time.seconds, time.nanos))
}

#[cfg(test)]
mod tests {
    use dcwatch_proto::v1::{Account, DnsActivity, Endpoint, KerberosActivity, activity::Body};

    use super::*;

    fn activity(seconds: i64, name: &str, src: [u8; 4]) -> Activity {
        Activity {
            time: Some(pbjson_types::Timestamp { seconds, nanos: 0 }),
            src: Some(Endpoint {
                ip: src.to_vec(),
                port: 5000,
            }),
            dst: Some(Endpoint {
                ip: vec![10, 0, 0, 1],
                port: 53,
            }),
            account: Some(Account {
                domain: "CORP".to_owned(),
                name: name.to_owned(),
                sid: String::new(),
                tags: Vec::new(),
            }),
            body: Some(Body::Dns(DnsActivity::default())),
            ..Activity::default()
        }
    }

    fn all(store: &Store, query: &Query) -> Vec<StoredActivity> {
        let mut out = Vec::new();
        store
            .activities(query, |stored| {
                out.push(stored);
                Ok(())
            })
            .expect("query");
        out
    }

    #[test]
    fn the_spool_instance_is_kept_with_stored_through() {
        let directory = tempfile::tempdir().expect("temporary directory");
        // A store made before spool instances: the column is added on open.
        let old = Connection::open(directory.path().join(FILE_NAME)).expect("sqlite");
        old.execute_batch(
            "CREATE TABLE sensors (sensor_id TEXT PRIMARY KEY,
             stored_through INTEGER NOT NULL DEFAULT 0, version TEXT NOT NULL DEFAULT '',
             last_seen_ns INTEGER NOT NULL DEFAULT 0, counters TEXT);
             INSERT INTO sensors (sensor_id, stored_through) VALUES ('s1', 4);",
        )
        .expect("old schema");
        drop(old);
        let mut store = Store::open(directory.path()).expect("open");
        assert_eq!(store.spool_instance("s1").expect("instance"), "");
        assert_eq!(store.stored_through("s1").expect("through"), 4);
        let batch = [activity(20, "alice", [10, 0, 0, 5])];
        store
            .store_batch("s1", "spool-a", 5, &batch)
            .expect("store");
        assert_eq!(store.spool_instance("s1").expect("instance"), "spool-a");
        // A duplicate does not change which spool numbered stored_through.
        store
            .store_batch("s1", "spool-b", 5, &batch)
            .expect("store");
        assert_eq!(store.spool_instance("s1").expect("instance"), "spool-a");
        store
            .refuse_batch("s1", "spool-b", 6, "undecodable", 0)
            .expect("refuse");
        drop(store);
        let store = Store::open(directory.path()).expect("reopen");
        assert_eq!(store.spool_instance("s1").expect("instance"), "spool-b");
        assert_eq!(store.stored_through("s1").expect("through"), 6);
        assert_eq!(store.spool_instance("s2").expect("instance"), "");
    }

    #[test]
    fn a_batch_is_stored_once_and_queries_filter_and_order() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let mut store = Store::open(directory.path()).expect("open");
        let batch = [
            activity(20, "alice", [10, 0, 0, 5]),
            activity(10, "bob", [10, 0, 0, 6]),
        ];
        assert_eq!(
            store
                .store_batch("s1", "spool-1", 1, &batch)
                .expect("store"),
            Stored::New
        );
        assert_eq!(
            store
                .store_batch("s1", "spool-1", 1, &batch)
                .expect("store"),
            Stored::Duplicate
        );
        assert_eq!(store.stored_through("s1").expect("through"), 1);
        assert_eq!(store.stored_through("s2").expect("through"), 0);
        let every = all(&store, &Query::default());
        assert_eq!(every.len(), 2);
        assert_eq!(every[0].activity, batch[1], "ordered by time");
        let alice = Query {
            account: Some("CORP\\ALICE".to_owned()),
            ..Query::default()
        };
        assert_eq!(all(&store, &alice).len(), 1);
        let by_ip = Query {
            ip: Some("10.0.0.6".parse().expect("ip")),
            protocol: Some("dns".to_owned()),
            ..Query::default()
        };
        assert_eq!(all(&store, &by_ip)[0].activity, batch[1]);
        let by_dst = Query {
            ip: Some("10.0.0.1".parse().expect("ip")),
            since_ns: Some(15_000_000_000),
            ..Query::default()
        };
        assert_eq!(all(&store, &by_dst)[0].activity, batch[0]);
        drop(store);
        let mut store = Store::open(directory.path()).expect("reopen");
        assert_eq!(store.stored_through("s1").expect("through"), 1);
        assert_eq!(
            store.prune(15_000_000_000).expect("prune"),
            1,
            "the older one"
        );
        assert_eq!(all(&store, &Query::default())[0].activity, batch[0]);
        assert_eq!(
            store.stored_through("s1").expect("through"),
            1,
            "kept by pruning"
        );
    }

    /// Stores batches 1 to `batches` of 1000 activities from sensors s1 and s2: activity `n`
    /// (the batch's sequence times 1000, plus its position) of sensor `k` (0 or 1) at
    /// `seconds(n, k)`, of alice, bob or carol in turn, from 10.0.1.(n % 200).
    fn store_two_sensors(store: &mut Store, batches: u64, seconds: impl Fn(i64, i64) -> i64) {
        let names = ["alice", "bob", "carol"];
        for sequence in 1..=batches {
            for (k, sensor) in [(0, "s1"), (1, "s2")] {
                let batch: Vec<Activity> = (0..1000_i64)
                    .map(|i| {
                        let n = i64::try_from(sequence).expect("small") * 1000 + i;
                        let src = [10, 0, 1, (n % 200) as u8];
                        activity(seconds(n, k), names[(n % 3) as usize], src)
                    })
                    .collect();
                store
                    .store_batch(sensor, "spool", sequence, &batch)
                    .expect("store");
            }
        }
    }

    /// The first `count` activities of [`batch`] `sequence`.
    fn first_of(sequence: u64, count: usize) -> Vec<Activity> {
        let mut activities = batch(sequence);
        activities.truncate(count);
        activities
    }

    /// Stores the first `count` activities of each (`sequence`, `count`) of `batches` from
    /// sensor s1, and compacts them into one block.
    fn compact_batches(store: &mut Store, batches: &[(u64, usize)]) {
        for &(sequence, count) in batches {
            store
                .store_batch("s1", "spool", sequence, &first_of(sequence, count))
                .expect("store");
        }
        assert_eq!(store.compact(i64::MAX).expect("compact").blocks, 1);
    }

    /// The ids of the compacted blocks `store` holds.
    fn block_ids(store: &Store) -> Vec<i64> {
        store
            .connection
            .prepare("SELECT id FROM activity_blocks")
            .expect("sql")
            .query_map([], |row| row.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    #[test]
    fn a_block_that_takes_a_deleted_blocks_id_is_read_with_its_own_frame_index_and_frames() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let mut ingest = Store::open(directory.path()).expect("open");
        // The console's store: it keeps the frame index of what it read.
        let console = Store::open(directory.path()).expect("open");
        compact_batches(&mut ingest, &[(1, 1000), (2, 1000)]);
        assert_eq!(all(&console, &Query::default()).len(), 2000);
        // Its fifth frame (batch 1 from position 256) kept by the evidence lookups: decompressed
        // by the first, parsed by the second.
        for position in [270_usize, 271] {
            assert_eq!(
                console.activity_at("s1", 1, position as u64).expect("read"),
                Some(first_of(1, 1000)[position].clone())
            );
        }
        // Everything deleted, then fewer activities compacted: their block takes id 1 again.
        assert_eq!(ingest.prune(i64::MAX).expect("prune"), 2000);
        compact_batches(&mut ingest, &[(7, 300), (8, 300)]);
        assert_eq!(block_ids(&ingest), [1], "the deleted block's id");
        let expected = all(&ingest, &Query::default());
        assert_eq!(expected.len(), 600, "599 compacted, the newest row not");
        assert_eq!(all(&console, &Query::default()), expected);
        // In the new block's fifth frame (batch 7 from position 256, then batch 8), not in
        // the one kept of the deleted block; and again, from the new frame kept.
        for position in [17_usize, 17, 18] {
            assert_eq!(
                console.activity_at("s1", 8, position as u64).expect("read"),
                Some(first_of(8, 300)[position].clone())
            );
        }
    }

    #[test]
    fn the_frame_decompressed_last_answers_for_its_own_block_only() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let mut ingest = Store::open(directory.path()).expect("open");
        let console = Store::open(directory.path()).expect("open");
        compact_batches(&mut ingest, &[(1, 1000), (2, 1000)]);
        // Pieces of evidence one after the other: three in the fifth frame (batch 1 from
        // position 256: decompressed, then read from the buffer, then kept parsed), then one in
        // the sixth (from position 320), whose bytes are left in the buffer.
        for position in [270_usize, 271, 272, 330] {
            assert_eq!(
                console.activity_at("s1", 1, position as u64).expect("read"),
                Some(first_of(1, 1000)[position].clone())
            );
        }
        // Everything deleted, then other activities compacted into a block of the same id,
        // whose sixth frame (batch 7 from position 20) is read from the new block.
        assert_eq!(ingest.prune(i64::MAX).expect("prune"), 2000);
        compact_batches(&mut ingest, &[(6, 300), (7, 300)]);
        assert_eq!(block_ids(&ingest), [1], "the deleted block's id");
        assert_eq!(console.activity_at("s1", 1, 340).expect("read"), None);
        assert_eq!(
            console.activity_at("s1", 7, 40).expect("read"),
            Some(first_of(7, 300)[40].clone())
        );
    }

    #[test]
    fn compacted_activities_answer_queries_as_the_hot_ones_did() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let mut store = Store::open(directory.path()).expect("open");
        // Two sensors, 5 batches of 1000: more than a block's worth each.
        store_two_sensors(&mut store, 5, |n, _| n);
        let queries = [
            Query::default(),
            Query {
                account: Some("CORP\\Bob".to_owned()),
                ..Query::default()
            },
            Query {
                ip: Some("10.0.1.7".parse().expect("ip")),
                since_ns: Some(2_500_000_000_000),
                until_ns: Some(4_200_000_000_000),
                ..Query::default()
            },
            Query {
                protocol: Some("DNS".to_owned()),
                sensor_id: Some("s2".to_owned()),
                ..Query::default()
            },
            Query {
                protocol: Some("kerberos".to_owned()),
                ..Query::default()
            },
        ];
        let before: Vec<Vec<StoredActivity>> = queries.iter().map(|q| all(&store, q)).collect();
        let referenced = store.activity_at("s2", 3, 17).expect("hot").expect("there");
        // Everything older than 4000 s and judged (no detection cursor: all but the newest row).
        let done = store.compact(4_000_000_000_000).expect("compact");
        assert_eq!(
            done.activities,
            2 * 3000,
            "the first three batches of each sensor"
        );
        assert_eq!(done.blocks, 2, "one block of 3000 per sensor");
        for (query, expected) in queries.iter().zip(&before) {
            assert_eq!(&all(&store, query), expected, "{query:?}");
        }
        assert_eq!(before[0].len(), 10_000);
        assert_eq!(before[4].len(), 0);
        assert_eq!(
            store.activity_at("s2", 3, 17).expect("compacted"),
            Some(referenced)
        );
        assert_eq!(store.activity_at("s2", 3, 1000).expect("none"), None);

        // Retention by age counts what it deleted, across both tiers.
        assert_eq!(
            store.prune(3_500_000_000_000).expect("prune"),
            0,
            "blocks straddle it"
        );
        assert_eq!(
            store.prune(4_500_000_000_000).expect("prune"),
            2 * 3000 + 2 * 500
        );
        assert_eq!(all(&store, &Query::default()).len(), 2 * 1500);
        // A budget below what is left deletes the oldest until it fits, keeping the newest row.
        let pruned = store.prune_to_budget(1).expect("budget");
        assert_eq!(pruned, 2 * 1500 - 1);
        let left = all(&store, &Query::default());
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].sequence, 5);
    }

    #[test]
    fn the_newest_activities_come_newest_first_across_tiers_and_sensors() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let mut store = Store::open(directory.path()).expect("open");
        // Two sensors whose activities alternate in time, so their blocks overlap.
        store_two_sensors(&mut store, 4, |n, sensor| 2 * n + sensor);
        let done = store.compact(2 * 3500 * 1_000_000_000).expect("compact");
        assert_eq!(done.blocks, 2, "one per sensor, overlapping in time");
        let queries = [
            Query::default(),
            Query {
                account: Some("CORP\\Bob".to_owned()),
                ..Query::default()
            },
            Query {
                ip: Some("10.0.1.3".parse().expect("ip")),
                until_ns: Some(2 * 4200 * 1_000_000_000),
                ..Query::default()
            },
        ];
        let place = |stored: &StoredActivity| (time_ns(&stored.activity), stored.sensor_id.clone());
        for query in &queries {
            let mut oldest_first: Vec<_> = all(&store, query).iter().map(place).collect();
            oldest_first.reverse();
            for limit in [7, usize::MAX] {
                let mut newest = Vec::new();
                store
                    .newest_activities(query, &mut |stored, _| {
                        newest.push(place(&stored));
                        newest.len() < limit
                    })
                    .expect("query");
                let expected = &oldest_first[..limit.min(oldest_first.len())];
                assert_eq!(newest, expected, "{query:?}, {limit}");
            }
        }
    }

    /// The compacted tier's tables as stores made before format 2 have them.
    const FORMAT_1_SCHEMA: &str = "
        CREATE TABLE activity_blocks (id INTEGER PRIMARY KEY, sensor_id TEXT NOT NULL,
            first_sequence INTEGER NOT NULL, last_sequence INTEGER NOT NULL,
            min_time_ns INTEGER NOT NULL, max_time_ns INTEGER NOT NULL, count INTEGER NOT NULL,
            data BLOB NOT NULL);
        CREATE TABLE activity_block_keys (key TEXT NOT NULL, block_id INTEGER NOT NULL,
            PRIMARY KEY (key, block_id)) WITHOUT ROWID;";

    fn batch(sequence: u64) -> Vec<Activity> {
        let names = ["alice", "bob", "carol"];
        (0..1000_i64)
            .map(|i| {
                let n = i64::try_from(sequence).expect("small") * 1000 + i;
                activity(n, names[(n % 3) as usize], [10, 0, 1, (n % 200) as u8])
            })
            .collect()
    }

    #[test]
    fn a_store_compacted_in_format_1_still_reads_and_compacts_in_format_2() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let old = Connection::open(directory.path().join(FILE_NAME)).expect("sqlite");
        old.execute_batch(FORMAT_1_SCHEMA).expect("old schema");
        // Batch 1 of sensor s1, compacted by the previous version into one format 1 block.
        let entries: Vec<blocks::Entry> = batch(1)
            .into_iter()
            .zip(0..)
            .map(|(activity, position)| blocks::Entry {
                sequence: 1,
                position,
                activity,
            })
            .collect();
        old.execute(
            "INSERT INTO activity_blocks (id, sensor_id, first_sequence, last_sequence,
             min_time_ns, max_time_ns, count, data) VALUES (1, 's1', 1, 1, ?1, ?2, 1000, ?3)",
            params![
                1_000_000_000_000_i64,
                1_999_000_000_000_i64,
                blocks::encode_single(&entries)
            ],
        )
        .expect("old block");
        for key in blocks::single_keys(&entries) {
            old.execute(
                "INSERT INTO activity_block_keys (key, block_id) VALUES (?1, 1)",
                [key],
            )
            .expect("old key");
        }
        drop(old);

        let mut store = Store::open(directory.path()).expect("open migrates");
        for sequence in 2..=12 {
            store
                .store_batch("s1", "spool", sequence, &batch(sequence))
                .expect("store");
        }
        let queries = [
            Query::default(),
            Query {
                account: Some("Bob".to_owned()),
                ..Query::default()
            },
            Query {
                ip: Some("10.0.1.7".parse().expect("ip")),
                since_ns: Some(1_500_000_000_000),
                until_ns: Some(9_200_000_000_000),
                ..Query::default()
            },
        ];
        let before: Vec<Vec<StoredActivity>> = queries.iter().map(|q| all(&store, q)).collect();
        assert_eq!(before[0].len(), 12_000, "the old block's and the rows'");
        assert_eq!(before[0][0].activity, entries[0].activity);
        assert_eq!(before[1].len(), 4_000);
        // Batches 2 to 11 go into format 2 blocks, with a dictionary trained on them.
        let done = store.compact(12_000_000_000_000).expect("compact");
        assert_eq!(done.activities, 10_000);
        for (query, expected) in queries.iter().zip(&before) {
            assert_eq!(&all(&store, query), expected, "{query:?}");
        }
        let formats: Vec<(i64, Option<i64>)> = store
            .connection
            .prepare("SELECT format, dictionary_id FROM activity_blocks ORDER BY id")
            .expect("sql")
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(
            formats,
            [
                (blocks::FORMAT_SINGLE, None),
                (blocks::FORMAT_ACCOUNT_FRAMES, Some(1))
            ]
        );
        assert_eq!(
            store.activity_at("s1", 1, 999).expect("format 1"),
            Some(entries[999].activity.clone())
        );
        assert_eq!(
            store.activity_at("s1", 7, 500).expect("format 2"),
            Some(batch(7)[500].clone())
        );
        // Retention counts both formats' activities: the old block, then batches 2-11.
        assert_eq!(store.prune(2_000_000_000_000).expect("prune"), 1000);
        assert_eq!(store.prune(12_000_000_000_000).expect("prune"), 10_000);
        assert_eq!(all(&store, &Query::default()).len(), 1000);
        let frames: i64 = store
            .connection
            .query_row("SELECT COUNT(*) FROM activity_frames", [], |row| row.get(0))
            .expect("count");
        assert_eq!(frames, 0, "the blocks' frames went with them");
    }

    /// A stored dictionary: its id, its size in bytes, the activities it was trained on.
    type DictionaryRow = (i64, usize, Option<i64>);

    /// The dictionaries of the store, and each block's.
    fn dictionaries(store: &Store) -> (Vec<DictionaryRow>, Vec<Option<i64>>) {
        let of_store = store
            .connection
            .prepare("SELECT id, LENGTH(data), trained_on FROM activity_dictionaries ORDER BY id")
            .expect("sql")
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        let of_blocks = store
            .connection
            .prepare("SELECT dictionary_id FROM activity_blocks ORDER BY id")
            .expect("sql")
            .query_map([], |row| row.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        (of_store, of_blocks)
    }

    #[test]
    fn a_store_compacted_in_format_3_still_reads() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let mut store = Store::open(directory.path()).expect("open");
        for sequence in 1..=5 {
            store
                .store_batch("s1", "spool", sequence, &batch(sequence))
                .expect("store");
        }
        let account = |name: &str| Query {
            account: Some(name.to_owned()),
            ..Query::default()
        };
        let queries = [
            Query::default(),
            account("Bob"),
            Query {
                ip: Some("10.0.1.7".parse().expect("ip")),
                since_ns: Some(1_500_000_000_000),
                until_ns: Some(4_200_000_000_000),
                ..Query::default()
            },
        ];
        let before: Vec<Vec<StoredActivity>> = queries.iter().map(|q| all(&store, q)).collect();
        let counts = store.activity_counts(&account("alice")).expect("counts");
        // Everything but the newest row, in one block, rewritten as format 3 wrote it.
        assert_eq!(store.compact(i64::MAX).expect("compact").activities, 4_999);
        let entries: Vec<blocks::Entry> = (1..=5)
            .flat_map(|sequence| {
                batch(sequence)
                    .into_iter()
                    .zip(0..)
                    .map(move |(activity, position)| blocks::Entry {
                        sequence,
                        position,
                        activity,
                    })
            })
            .take(4_999)
            .collect();
        let encoded =
            blocks::encode_format_3("s1", &entries, &mut blocks::compressor(&[]).expect("zstd"))
                .expect("encodes");
        let id: i64 = store
            .connection
            .query_row("SELECT id FROM activity_blocks", [], |row| row.get(0))
            .expect("one block");
        store
            .connection
            .execute_batch("DELETE FROM activity_frames; DELETE FROM activity_block_keys;")
            .expect("delete");
        store
            .connection
            .execute(
                "UPDATE activity_blocks SET data = ?1, format = ?2, dictionary_id = NULL",
                params![encoded.index, blocks::FORMAT_FRAMES_MICROS],
            )
            .expect("block");
        for (number, frame) in (0..).zip(&encoded.frames) {
            store
                .connection
                .execute(
                    "INSERT INTO activity_frames (id, data) VALUES (?1, ?2)",
                    params![(id << blocks::FRAME_ID_BITS) | number, frame],
                )
                .expect("frame");
        }
        for (key, frames) in &encoded.keys {
            store
                .connection
                .execute(
                    "INSERT INTO activity_block_keys (key, block_id, frames) VALUES (?1, ?2, ?3)",
                    params![key, id, frames],
                )
                .expect("key");
        }
        for (query, expected) in queries.iter().zip(&before) {
            assert_eq!(&all(&store, query), expected, "{query:?}");
        }
        assert_eq!(
            store.activity_counts(&account("alice")).expect("counts"),
            counts
        );
        assert_eq!(
            store.activity_at("s1", 3, 500).expect("format 3"),
            Some(batch(3)[500].clone())
        );
    }

    #[test]
    fn an_accounts_counts_are_the_same_once_compacted() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let mut store = Store::open(directory.path()).expect("open");
        for sequence in 1..=6 {
            let mut batch = batch(sequence);
            // Kerberos among the DNS; a name in another case; names beyond ASCII that the key
            // (lowercased whole) does not tell apart and a query's ASCII-only case does.
            for (at, activity) in batch.iter_mut().enumerate() {
                match at % 10 {
                    0 => activity.body = Some(Body::Kerberos(KerberosActivity::default())),
                    1 => activity.account.as_mut().expect("named").name = "ALICE".to_owned(),
                    2 => activity.account.as_mut().expect("named").name = "jörg".to_owned(),
                    3 => activity.account.as_mut().expect("named").name = "JÖRG".to_owned(),
                    _ => {}
                }
            }
            store
                .store_batch("s1", "spool", sequence, &batch)
                .expect("store");
        }
        let queries: Vec<Query> = [
            "alice",
            "Bob",
            "CORP\\alice",
            "OTHER\\alice",
            "jörg",
            "JÖRG",
        ]
        .into_iter()
        .map(|account| Query {
            account: Some(account.to_owned()),
            ..Query::default()
        })
        .chain([Query {
            account: Some("carol".to_owned()),
            since_ns: Some(2_500_000_000_000),
            ..Query::default()
        }])
        .collect();
        let before: Vec<Vec<ProtocolCount>> = queries
            .iter()
            .map(|query| store.activity_counts(query).expect("counts"))
            .collect();
        assert_eq!(before[0].len(), 2, "{:?}", before[0]);
        assert!(
            before[4][0].count > 0 && before[5][0].count > 0,
            "{before:?}"
        );
        // Everything but the newest row, in format 5 blocks.
        assert_eq!(store.compact(i64::MAX).expect("compact").activities, 5_999);
        for (query, expected) in queries.iter().zip(&before) {
            assert_eq!(
                &store.activity_counts(query).expect("counts"),
                expected,
                "{query:?}"
            );
        }
    }

    #[test]
    fn a_dictionary_trained_on_few_activities_is_replaced_once_a_compaction_has_twice_as_many() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let mut store = Store::open(directory.path()).expect("open");
        let mut stored = 0;
        let mut compact_batches = |store: &mut Store, batches: u64| {
            for _ in 0..batches {
                stored += 1;
                store
                    .store_batch("s1", "spool", stored, &batch(stored))
                    .expect("store");
            }
            // Everything but the newest row (never compacted: the next call takes it).
            store.compact(i64::MAX).expect("compact").activities
        };
        assert_eq!(compact_batches(&mut store, 10), 9_999);
        let (first, blocks_first) = dictionaries(&store);
        assert_eq!(first.len(), 1, "{first:?}");
        assert_eq!(first[0].2, Some(9_999));
        assert!(first[0].1 < blocks::DICTIONARY_BYTES, "{first:?}");
        assert_eq!(blocks_first, [Some(1)]);
        let carol = Query {
            account: Some("carol".to_owned()),
            ..Query::default()
        };
        let (everything, of_carol) = (all(&store, &Query::default()), all(&store, &carol));

        // 15,000 next: fewer than twice 9,999, the dictionary stays.
        assert_eq!(compact_batches(&mut store, 15), 15_000);
        // 20,000 next: twice as many, a new one (in one block of up to 32,768).
        assert_eq!(compact_batches(&mut store, 20), 20_000);
        let (dictionaries, of_blocks) = dictionaries(&store);
        assert_eq!(dictionaries.len(), 2, "{dictionaries:?}");
        assert_eq!(dictionaries[0], first[0], "the old one is kept");
        assert_eq!(dictionaries[1].2, Some(20_000));
        assert_eq!(
            of_blocks,
            [Some(1), Some(1), Some(2)],
            "earlier blocks keep theirs"
        );
        // What was compacted under the first dictionary reads as it did.
        assert_eq!(
            all(&store, &Query::default())[..everything.len()],
            everything
        );
        let carol_now = all(&store, &carol);
        assert_eq!(carol_now[..of_carol.len()], of_carol);
        assert_eq!(carol_now.len(), 45_000 / 3);
        assert_eq!(
            store.activity_at("s1", 3, 500).expect("dictionary 1"),
            Some(batch(3)[500].clone())
        );
        assert_eq!(
            store.activity_at("s1", 40, 500).expect("dictionary 2"),
            Some(batch(40)[500].clone())
        );
    }

    #[test]
    fn tokens_are_kept_as_hashes() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let store = Store::open(directory.path()).expect("open");
        store.add_token("dc1", "secret", 1).expect("add");
        assert!(matches!(
            store.add_token("dc1", "other", 2),
            Err(StoreError::TokenExists(_))
        ));
        assert_eq!(
            store.token_name("secret").expect("lookup").as_deref(),
            Some("dc1")
        );
        assert_eq!(store.token_name("wrong").expect("lookup"), None);
        assert!(store.revoke_token("dc1").expect("revoke"));
        assert_eq!(store.token_name("secret").expect("lookup"), None);
    }
}
