//! The detectors' windows in SQLite: per partition, the journal segments
//! (`dcwatch_detect::checkpoint`) of what its engine judged within the longest window, written
//! with the alerts and the cursor of the chunk that made each ([`Store::save_alerts_at`]) and
//! replayed when a partition's engine is built.

use dcwatch_detect::checkpoint::WindowChanges;
use rusqlite::{Connection, params};

use super::{Store, StoreError};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS windows (
    partition INTEGER NOT NULL,
    segment INTEGER NOT NULL,
    journal BLOB NOT NULL,
    PRIMARY KEY (partition, segment)
) WITHOUT ROWID;
";

/// Stores the chunk's segment and forgets those out of the window, in the caller's
/// transaction.
pub(super) fn write(
    connection: &Connection,
    partition: u32,
    changes: &WindowChanges,
) -> Result<(), StoreError> {
    if let Some((segment, journal)) = &changes.append {
        connection
            .prepare_cached(
                "INSERT OR REPLACE INTO windows (partition, segment, journal) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![partition, segment_row(*segment), journal])?;
    }
    connection
        .prepare_cached("DELETE FROM windows WHERE partition = ?1 AND segment < ?2")?
        .execute(params![partition, segment_row(changes.forget_before)])?;
    Ok(())
}

/// A segment number as both stores keep it (a signed 64-bit integer).
pub(super) fn segment_row(segment: u64) -> i64 {
    i64::try_from(segment).unwrap_or(i64::MAX)
}

impl Store {
    /// A partition's journal segments, in order.
    pub fn load_windows(&self, partition: u32) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT segment, journal FROM windows WHERE partition = ?1 ORDER BY segment",
        )?;
        let rows = statement.query_map([partition], |row| {
            Ok((
                u64::try_from(row.get::<_, i64>(0)?).unwrap_or(0),
                row.get(1)?,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
