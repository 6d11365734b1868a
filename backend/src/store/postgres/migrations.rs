//! The PostgreSQL schema, as numbered migrations applied in order by `dcwatch-backend store
//! migrate`. A migration, once released, never changes: a change is a new migration.
//!
//! The tables are SQLite's (store.rs, store/alerts.rs, directory.rs) in PostgreSQL's types:
//! BYTEA for blobs, identity columns for row ids, `lower()` indexes where SQLite compares
//! with NOCASE.

use postgres::{Client, GenericClient};

use crate::store::StoreError;

/// (version, SQL), in order.
pub const MIGRATIONS: &[(i32, &str)] = &[
    (1, INITIAL),
    (2, HEALTH_ISSUES),
    (3, PROFILES),
    (ALERT_ENTITIES, CONSOLE),
    (5, WINDOWS),
    (6, COMPACTED),
    (7, BLOCK_FRAMES),
    (KEY_GROUPS, GROUPED_KEYS),
];

/// The migration whose data (the stored alerts' entities) is written by code after its SQL.
const ALERT_ENTITIES: i32 = 4;
/// The migration whose rows (the keys' groups) are written by code after its SQL, then
/// [`GROUPED_KEYS_INDEXED`] run.
const KEY_GROUPS: i32 = 8;

/// store/console.rs's tables (the alerts' entities, the console's counters and users), and
/// the prefix indexes its search reads.
const CONSOLE: &str = "
CREATE TABLE alert_entities (
    alert_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    role TEXT NOT NULL,
    name TEXT NOT NULL,
    address TEXT NOT NULL
);
CREATE INDEX alert_entities_alert ON alert_entities (alert_id);
CREATE INDEX alert_entities_name ON alert_entities (lower(name) text_pattern_ops);
CREATE INDEX alert_entities_address ON alert_entities (address);
CREATE TABLE console_sensor_counters (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sensor_id TEXT NOT NULL,
    time_ns BIGINT NOT NULL,
    counters TEXT NOT NULL
);
CREATE INDEX console_sensor_counters_sensor ON console_sensor_counters (sensor_id, time_ns);
CREATE TABLE console_users (
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    hash TEXT NOT NULL,
    created_ns BIGINT NOT NULL
);
CREATE UNIQUE INDEX console_users_name ON console_users (lower(name));
CREATE INDEX activities_account_prefix ON activities (lower(account) text_pattern_ops);
CREATE INDEX activities_src_prefix ON activities (src_ip text_pattern_ops);
CREATE INDEX activities_dst_prefix ON activities (dst_ip text_pattern_ops);
";

/// The compacted tier (store/blocks.rs's SQLite tables, with format 2's columns): blocks of
/// activities, their frames, the keys that find them, the dictionaries they are compressed
/// with. A block row also keeps its bytes (index, frames, keys) for the disk budget. Keys are
/// compared byte by byte (`C`), so a search's prefix LIKE reads the key index.
const COMPACTED: &str = "
CREATE TABLE activity_blocks (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sensor_id TEXT NOT NULL,
    first_sequence BIGINT NOT NULL,
    last_sequence BIGINT NOT NULL,
    min_time_ns BIGINT NOT NULL,
    max_time_ns BIGINT NOT NULL,
    count BIGINT NOT NULL,
    data BYTEA NOT NULL,
    format BIGINT NOT NULL,
    dictionary_id BIGINT,
    bytes BIGINT NOT NULL
);
CREATE INDEX activity_blocks_time ON activity_blocks (min_time_ns, max_time_ns);
CREATE INDEX activity_blocks_ref ON activity_blocks (sensor_id, first_sequence);
CREATE TABLE activity_block_keys (
    key TEXT COLLATE \"C\" NOT NULL,
    block_id BIGINT NOT NULL,
    frames BYTEA,
    PRIMARY KEY (key, block_id)
);
CREATE INDEX activity_block_keys_block ON activity_block_keys (block_id);
CREATE TABLE activity_frames (
    id BIGINT PRIMARY KEY,
    data BYTEA NOT NULL
);
ALTER TABLE activity_frames ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE TABLE activity_dictionaries (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_ns BIGINT NOT NULL,
    digest BYTEA NOT NULL,
    data BYTEA NOT NULL,
    trained_on BIGINT
);
";

/// A block's frames in one value of its row, uncompressed and out of line (`EXTERNAL`), so that
/// `substring` reads only the TOAST chunks a frame is in; `frame_starts` holds where each frame
/// starts, then where the last ends (frame `n` is bytes `frame_starts[n + 1]` to
/// `frame_starts[n + 2]`, arrays counting from 1). A row a frame cost a 24-byte header and a
/// primary-key entry per frame of 64 activities. Migration 6's frames are moved into their
/// blocks (a frame's id was its block's shifted by 16, plus its number).
const BLOCK_FRAMES: &str = r"
ALTER TABLE activity_blocks ADD COLUMN frames BYTEA NOT NULL DEFAULT ''::BYTEA,
    ADD COLUMN frame_starts INTEGER[] NOT NULL DEFAULT '{0}';
ALTER TABLE activity_blocks ALTER COLUMN frames SET STORAGE EXTERNAL;
UPDATE activity_blocks SET frames = moved.data, frame_starts = moved.starts
FROM (SELECT block_id, string_agg(data, ''::BYTEA ORDER BY id) AS data,
             array_prepend(0, array_agg(ends ORDER BY id)) AS starts
      FROM (SELECT id, id >> 16 AS block_id, data,
                   (SUM(octet_length(data)) OVER (PARTITION BY id >> 16 ORDER BY id))::INTEGER
                       AS ends
            FROM activity_frames) AS frames
      GROUP BY block_id) AS moved
WHERE activity_blocks.id = moved.block_id;
ALTER TABLE activity_blocks ALTER COLUMN frames DROP DEFAULT,
    ALTER COLUMN frame_starts DROP DEFAULT;
DROP TABLE activity_frames;
";

/// The keys grouped (key_groups.rs): a row a bucket of a block's keys (its suffixes and
/// postings in one value each) where migration 6 wrote a row a key. The block id is 4 bytes
/// and first (no padding before it); cold.rs's `group_keys` writes the rows from migration 7's,
/// block by block, then [`GROUPED_KEYS_INDEXED`] drops those and indexes the groups.
const GROUPED_KEYS: &str = r#"
CREATE TABLE activity_key_groups (
    block_id INTEGER NOT NULL,
    bucket TEXT COLLATE "C" NOT NULL,
    keys TEXT NOT NULL,
    postings BYTEA NOT NULL
);
"#;

/// Migration 8's indexes once its rows are written: the buckets' B-tree (collation C: a LIKE
/// prefix is a range of it), and a BRIN index of block ids, a page range an entry, through
/// which a block's groups are deleted (they are written together, into the pages deleted
/// blocks left; cold.rs desummarises those ranges as it deletes, so that a range's bounds stay
/// those of the blocks it now holds).
const GROUPED_KEYS_INDEXED: &str = "
DROP TABLE activity_block_keys;
CREATE INDEX activity_key_groups_bucket ON activity_key_groups (bucket);
CREATE INDEX activity_key_groups_block ON activity_key_groups USING BRIN (block_id)
    WITH (pages_per_range = 16);
";

/// store/windows.rs's table.
const WINDOWS: &str = "
CREATE TABLE windows (
    partition BIGINT NOT NULL,
    segment BIGINT NOT NULL,
    journal BYTEA NOT NULL,
    PRIMARY KEY (partition, segment)
);
";

/// store/profiles.rs's table.
const PROFILES: &str = "
CREATE TABLE profiles (
    partition BIGINT NOT NULL,
    key TEXT NOT NULL,
    profile BYTEA NOT NULL,
    PRIMARY KEY (partition, key)
);
";

/// store/health.rs's table.
const HEALTH_ISSUES: &str = "
CREATE TABLE health_issues (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sensor_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    severity TEXT NOT NULL,
    detail TEXT NOT NULL,
    start_ns BIGINT NOT NULL,
    end_ns BIGINT
);
CREATE INDEX health_issues_open ON health_issues (sensor_id, kind, subject, end_ns);
CREATE INDEX health_issues_start ON health_issues (start_ns);
";

const INITIAL: &str = "
CREATE TABLE activities (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time_ns BIGINT NOT NULL,
    sensor_id TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    position BIGINT NOT NULL,
    protocol TEXT NOT NULL,
    account TEXT,
    domain TEXT,
    src_ip TEXT,
    dst_ip TEXT,
    activity BYTEA NOT NULL,
    UNIQUE (sensor_id, sequence, position)
);
CREATE INDEX activities_time ON activities (time_ns, sensor_id, sequence, position);
CREATE INDEX activities_protocol ON activities (protocol, time_ns);
CREATE INDEX activities_account ON activities (lower(account), time_ns);
CREATE INDEX activities_src ON activities (src_ip, time_ns);
CREATE INDEX activities_dst ON activities (dst_ip, time_ns);
CREATE TABLE sensors (
    sensor_id TEXT PRIMARY KEY,
    stored_through BIGINT NOT NULL DEFAULT 0,
    spool_instance TEXT NOT NULL DEFAULT '',
    version TEXT NOT NULL DEFAULT '',
    last_seen_ns BIGINT NOT NULL DEFAULT 0,
    counters TEXT
);
CREATE TABLE refused_batches (
    sensor_id TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    received_ns BIGINT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE health_events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sensor_id TEXT NOT NULL,
    time_ns BIGINT NOT NULL,
    severity TEXT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE TABLE tokens (
    name TEXT PRIMARY KEY,
    sha256 BYTEA NOT NULL UNIQUE,
    created_ns BIGINT NOT NULL
);
CREATE TABLE alerts (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    primary_key TEXT NOT NULL,
    status TEXT NOT NULL,
    classification TEXT NOT NULL,
    closed_ns BIGINT,
    severity INTEGER NOT NULL,
    start_ns BIGINT NOT NULL,
    end_ns BIGINT NOT NULL,
    count BIGINT NOT NULL,
    updated_ns BIGINT NOT NULL,
    alert BYTEA NOT NULL
);
CREATE INDEX alerts_end ON alerts (end_ns);
CREATE INDEX alerts_status ON alerts (status, end_ns);
CREATE INDEX alerts_type ON alerts (type, end_ns);
CREATE TABLE alert_history (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id TEXT NOT NULL,
    time_ns BIGINT NOT NULL,
    event TEXT NOT NULL,
    classification TEXT NOT NULL DEFAULT '',
    actor TEXT NOT NULL DEFAULT '',
    text TEXT NOT NULL DEFAULT ''
);
CREATE INDEX alert_history_alert ON alert_history (alert_id, id);
CREATE TABLE alert_exclusions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    created_ns BIGINT NOT NULL,
    comment TEXT NOT NULL DEFAULT ''
);
CREATE TABLE detection_state (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
CREATE TABLE directory_domains (
    name TEXT NOT NULL,
    domain BYTEA NOT NULL,
    sensor_id TEXT NOT NULL,
    sync_id TEXT NOT NULL,
    usn BIGINT NOT NULL,
    updated_ns BIGINT NOT NULL
);
CREATE UNIQUE INDEX directory_domains_name ON directory_domains (lower(name));
CREATE TABLE directory_objects (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    guid TEXT NOT NULL UNIQUE,
    domain TEXT NOT NULL,
    sensor_id TEXT NOT NULL,
    sync_id TEXT NOT NULL,
    deleted BOOLEAN NOT NULL,
    object BYTEA NOT NULL
);
CREATE INDEX directory_objects_sync ON directory_objects (lower(domain), sensor_id, sync_id);
";

/// Serialises migrators: two nodes started at once do not both run migration 1.
const LOCK: i64 = 0x0064_6377_6174_6368;

/// The migrations applied (none: an empty database).
fn applied(client: &mut impl GenericClient) -> Result<Vec<i32>, StoreError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    Ok(client
        .query("SELECT version FROM schema_migrations", &[])?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

/// Applies the migrations not yet applied, each in its own transaction with its record;
/// returns their versions.
pub fn migrate(client: &mut Client, now_ns: i64) -> Result<Vec<i32>, StoreError> {
    let mut transaction = client.transaction()?;
    transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])?;
    let done = applied(&mut transaction)?;
    if done.is_empty() {
        transaction.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version INTEGER PRIMARY KEY,
                 applied_ns BIGINT NOT NULL
             )",
        )?;
    }
    check_known(&done)?;
    let mut ran = Vec::new();
    for (version, sql) in MIGRATIONS {
        if done.contains(version) {
            continue;
        }
        transaction.batch_execute(sql)?;
        if *version == ALERT_ENTITIES {
            super::console::index_stored_alerts(&mut transaction)?;
        }
        if *version == KEY_GROUPS {
            super::cold::group_keys(&mut transaction)?;
            transaction.batch_execute(GROUPED_KEYS_INDEXED)?;
        }
        transaction.execute(
            "INSERT INTO schema_migrations (version, applied_ns) VALUES ($1, $2)",
            &[version, &now_ns],
        )?;
        ran.push(*version);
    }
    transaction.commit()?;
    Ok(ran)
}

/// Refuses a database a newer dcwatch migrated, or one with migrations still to run.
pub fn check_current(client: &mut Client) -> Result<(), StoreError> {
    let done = applied(client)?;
    check_known(&done)?;
    if let Some((version, _)) = MIGRATIONS
        .iter()
        .find(|(version, _)| !done.contains(version))
    {
        return Err(StoreError::MigrationPending { version: *version });
    }
    Ok(())
}

fn check_known(done: &[i32]) -> Result<(), StoreError> {
    match done
        .iter()
        .find(|version| !MIGRATIONS.iter().any(|(known, _)| known == *version))
    {
        Some(version) => Err(StoreError::NewerSchema { version: *version }),
        None => Ok(()),
    }
}
