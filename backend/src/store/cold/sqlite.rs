//! The compacted tier's SQL in SQLite (the tables are [`crate::store::blocks::SCHEMA`]'s).

use std::collections::HashMap;

use dcwatch_proto::v1::Activity;
use prost::Message as _;
use rusqlite::{Connection, OptionalExtension as _, params, params_from_iter};

use super::{
    BLOCK_COLUMNS, Blob, BlockRow, NewBlock, StoredDictionary, Tier, TierWriter, frame_id,
    nearest_block_sql,
};
use crate::store::{
    Dialect, Filter, Param, StoreError, alerts::sqlite_value, blocks, to_i64, to_u64,
};

/// A SQLite connection (or a transaction on one) as the compacted tier reads and writes it.
pub(crate) struct Sqlite<'c>(pub(crate) &'c Connection);

fn block_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<BlockRow> {
    Ok(BlockRow {
        id: row.get(0)?,
        sensor_id: row.get(1)?,
        min_time_ns: row.get(2)?,
        first_sequence: to_u64(row.get(3)?),
        format: row.get(4)?,
        dictionary_id: row.get(5)?,
        last_sequence: to_u64(row.get(6)?),
        max_time_ns: row.get(7)?,
        count: row.get(8)?,
        frames: None,
        counts: None,
    })
}

impl Tier for Sqlite<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn block_rows(&mut self, filter: Filter) -> Result<Vec<BlockRow>, StoreError> {
        // Cached: parsing the statement took about 25 µs, a tenth of an account's page.
        Ok(self
            .0
            .prepare_cached(&format!(
                "SELECT {BLOCK_COLUMNS} FROM activity_blocks {} ORDER BY min_time_ns, id",
                filter.clause()
            ))?
            .query_map(
                params_from_iter(filter.values.into_iter().map(sqlite_value)),
                block_row,
            )?
            .collect::<Result<_, _>>()?)
    }

    fn postings(&mut self, key: &str) -> Result<HashMap<i64, Vec<u8>>, StoreError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT block_id, frames FROM activity_block_keys WHERE key = ?1
                 AND frames IS NOT NULL",
            )?
            .query_map([key], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?)
    }

    fn nearest_block(
        &mut self,
        sensor_id: &str,
        sequence: u64,
    ) -> Result<Option<BlockRow>, StoreError> {
        Ok(self
            .0
            .prepare_cached(&nearest_block_sql())?
            .query_row(params![sensor_id, to_i64(sequence)], block_row)
            .optional()?)
    }

    fn blocks_holding(
        &mut self,
        sensor_id: &str,
        sequence: u64,
    ) -> Result<Vec<BlockRow>, StoreError> {
        Ok(self
            .0
            .prepare_cached(&format!(
                "SELECT {BLOCK_COLUMNS} FROM activity_blocks WHERE sensor_id = ?1
                 AND first_sequence <= ?2 AND last_sequence >= ?2"
            ))?
            .query_map(params![sensor_id, to_i64(sequence)], block_row)?
            .collect::<Result<_, _>>()?)
    }

    fn blob(&mut self, blob: Blob, id: i64) -> Result<Vec<u8>, StoreError> {
        Ok(self
            .0
            .prepare_cached(blob.sql())?
            .query_row([id], |row| row.get(0))?)
    }

    fn keys_like(&mut self, pattern: &str, limit: i64) -> Result<Vec<String>, StoreError> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT DISTINCT substr(key, 3) FROM activity_block_keys WHERE key LIKE ?1
                 LIMIT ?2",
            )?
            .query_map(params![pattern, limit], |row| row.get(0))?
            .collect::<Result<_, _>>()?)
    }

    fn holding_key(&self, key: &str) -> (&'static str, Param) {
        (
            "id IN (SELECT block_id FROM activity_block_keys WHERE key = ?)",
            Param::Text(key.to_owned()),
        )
    }
}

impl TierWriter for Sqlite<'_> {
    fn newest_dictionary(&mut self) -> Result<Option<StoredDictionary>, StoreError> {
        Ok(self
            .0
            .query_row(super::NEWEST_DICTIONARY, [], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .optional()?)
    }

    fn insert_dictionary(
        &mut self,
        now_ns: i64,
        digest: &[u8],
        data: &[u8],
        trained_on: i64,
    ) -> Result<i64, StoreError> {
        self.0.execute(
            "INSERT INTO activity_dictionaries (created_ns, digest, data, trained_on)
             VALUES (?1, ?2, ?3, ?4)",
            params![now_ns, digest, data, trained_on],
        )?;
        Ok(self.0.last_insert_rowid())
    }

    fn insert_block(&mut self, block: &NewBlock<'_>) -> Result<i64, StoreError> {
        self.0.execute(
            "INSERT INTO activity_blocks (sensor_id, first_sequence, last_sequence, min_time_ns,
             max_time_ns, count, data, format, dictionary_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                block.sensor_id,
                block.first_sequence,
                block.last_sequence,
                block.min_time_ns,
                block.max_time_ns,
                block.count,
                block.encoded.index,
                block.format,
                block.dictionary_id,
            ],
        )?;
        let id = self.0.last_insert_rowid();
        let mut frame = self
            .0
            .prepare_cached("INSERT INTO activity_frames (id, data) VALUES (?1, ?2)")?;
        for (number, data) in block.encoded.frames.iter().enumerate() {
            frame.execute(params![frame_id(id, number), data])?;
        }
        let mut key = self.0.prepare_cached(
            "INSERT INTO activity_block_keys (key, block_id, frames) VALUES (?1, ?2, ?3)",
        )?;
        for (name, frames) in &block.encoded.keys {
            key.execute(params![name, id, frames])?;
        }
        Ok(id)
    }

    fn delete_block_rows(&mut self, ids: &[i64]) -> Result<(), StoreError> {
        // The keys are indexed by key, not by block: one pass over them for many blocks (up to
        // 500, well under SQLite's limit on parameters).
        for chunk in ids.chunks(500) {
            self.0.execute(
                &format!(
                    "DELETE FROM activity_block_keys WHERE block_id IN ({})",
                    vec!["?"; chunk.len()].join(", ")
                ),
                params_from_iter(chunk),
            )?;
        }
        for id in ids {
            self.0.execute(
                "DELETE FROM activity_frames WHERE id >= ?1 AND id < ?2",
                [frame_id(*id, 0), frame_id(id + 1, 0)],
            )?;
            self.0
                .execute("DELETE FROM activity_blocks WHERE id = ?1", [id])?;
        }
        Ok(())
    }

    fn compact_limit(&mut self) -> Result<i64, StoreError> {
        Ok(self.0.query_row(
            "SELECT MIN(COALESCE((SELECT MAX(id) FROM activities) - 1, 0),
                        COALESCE((SELECT value FROM detection_state WHERE name = 'activity_cursor'),
                                 (SELECT MAX(id) FROM activities) - 1, 0))",
            [],
            |row| row.get(0),
        )?)
    }

    fn compact_sensors(&mut self, limit: i64, before_ns: i64) -> Result<Vec<String>, StoreError> {
        Ok(self
            .0
            .prepare("SELECT DISTINCT sensor_id FROM activities WHERE id <= ?1 AND time_ns < ?2")?
            .query_map(params![limit, before_ns], |row| row.get(0))?
            .collect::<Result<_, _>>()?)
    }

    fn compactable(
        &mut self,
        sensor_id: &str,
        limit: i64,
        before_ns: i64,
        count: usize,
    ) -> Result<(Vec<i64>, Vec<blocks::Entry>), StoreError> {
        let mut statement = self.0.prepare_cached(
            "SELECT id, sequence, position, activity FROM activities
             WHERE sensor_id = ?1 AND id <= ?2 AND time_ns < ?3 ORDER BY id LIMIT ?4",
        )?;
        let mut rows = statement.query(params![
            sensor_id,
            limit,
            before_ns,
            i64::try_from(count).unwrap_or(i64::MAX)
        ])?;
        let (mut ids, mut entries) = (Vec::new(), Vec::new());
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let bytes: Vec<u8> = row.get(3)?;
            entries.push(blocks::Entry {
                sequence: to_u64(row.get(1)?),
                position: to_u64(row.get(2)?),
                activity: Activity::decode(bytes.as_slice())
                    .map_err(|source| StoreError::Decode { id, source })?,
            });
            ids.push(id);
        }
        Ok((ids, entries))
    }

    fn delete_rows(&mut self, ids: &[i64]) -> Result<(), StoreError> {
        let mut delete = self
            .0
            .prepare_cached("DELETE FROM activities WHERE id = ?1")?;
        for id in ids {
            delete.execute([id])?;
        }
        Ok(())
    }

    fn delete_rows_before(&mut self, before_ns: i64) -> Result<u64, StoreError> {
        Ok(self
            .0
            .execute("DELETE FROM activities WHERE time_ns < ?1", [before_ns])? as u64)
    }

    fn blocks_before(&mut self, before_ns: i64) -> Result<Vec<(i64, i64)>, StoreError> {
        Ok(self
            .0
            .prepare("SELECT id, count FROM activity_blocks WHERE max_time_ns < ?1")?
            .query_map([before_ns], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?)
    }
}
