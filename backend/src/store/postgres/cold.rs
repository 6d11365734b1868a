//! The compacted tier's SQL in PostgreSQL (migrations 6 to 8's tables, the keys' groups in
//! key_groups.rs), and its disk budget.
//!
//! Compaction and pruning write through transactions that first take one advisory lock
//! ([`LOCK`]): several ingest/api nodes share the store, and two compacting at once would
//! otherwise both read the same rows, write each into a block, and count them twice. With the
//! lock, the second waits, then reads what the first left.
//!
//! Reads go out with their parameters' types (`query_typed`): one round trip a statement,
//! where `query` first prepares it in a round trip of its own; a compacted query makes several
//! statements (blocks, postings, frames), each of which paid that extra round trip.

use std::collections::HashMap;

use ::postgres::{GenericClient, Row, Transaction, types::Type};
use dcwatch_proto::v1::Activity;
use prost::Message as _;

use super::key_groups;
use crate::store::{
    Dialect, Filter, Ordered, Param, StoreError, StoredActivity, blocks,
    cold::{
        BLOCK_COLUMNS, Blob, BlockRow, NEWEST_DICTIONARY, NewBlock, StoredDictionary, Tier,
        TierWriter, delete_blocks, nearest_block_sql,
    },
    to_i64, to_u64,
};

/// Serialises the writers of the compacted tier across nodes (compaction, pruning).
pub(super) const LOCK: i64 = 0x0064_6377_636f_6c64;

/// A PostgreSQL client (or a transaction) as the compacted tier reads and writes it.
pub(super) struct Pg<'c, C>(pub(super) &'c mut C);

/// Takes [`LOCK`] for the rest of `transaction`.
pub(super) fn lock(transaction: &mut Transaction<'_>) -> Result<(), StoreError> {
    transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])?;
    Ok(())
}

fn block_row(row: &Row) -> BlockRow {
    BlockRow {
        id: row.get(0),
        sensor_id: row.get(1),
        min_time_ns: row.get(2),
        first_sequence: to_u64(row.get(3)),
        format: row.get(4),
        dictionary_id: row.get(5),
        last_sequence: to_u64(row.get(6)),
        max_time_ns: row.get(7),
        count: row.get(8),
        frames: None,
        counts: None,
    }
}

/// `frames` one after the other, and where each starts followed by where the last ends, as
/// migration 7's `frames` and `frame_starts` hold them.
fn joined(frames: &[Vec<u8>]) -> Result<(Vec<u8>, Vec<i32>), StoreError> {
    let mut all = Vec::with_capacity(frames.iter().map(Vec::len).sum());
    let mut starts = vec![0];
    for frame in frames {
        all.extend_from_slice(frame);
        // PostgreSQL holds at most 1 GiB a value: the insert would fail past that anyway.
        starts.push(i32::try_from(all.len()).map_err(|_| StoreError::Block {
            id: 0,
            source: blocks::BlockError::Malformed,
        })?);
    }
    Ok((all, starts))
}

/// A hot row (`id, sensor_id, sequence, position, activity`) in the order queries return.
pub(super) fn hot_row(row: &Row) -> Result<Ordered, StoreError> {
    let id: i64 = row.get(0);
    let activity = Activity::decode(row.get::<_, &[u8]>(4))
        .map_err(|source| StoreError::Decode { id, source })?;
    Ok(Ordered {
        position: to_u64(row.get(3)),
        stored: StoredActivity {
            sensor_id: row.get(1),
            sequence: to_u64(row.get(2)),
            activity,
        },
    })
}

impl<C: GenericClient> Tier for Pg<'_, C> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn block_rows(&mut self, filter: Filter) -> Result<Vec<BlockRow>, StoreError> {
        let clause = filter.clause();
        let values = super::console::typed(filter.values);
        let parameters: Vec<(&(dyn ::postgres::types::ToSql + Sync), Type)> = values
            .iter()
            .map(|(value, kind)| (value.as_ref(), kind.clone()))
            .collect();
        Ok(self
            .0
            .query_typed(
                &format!(
                    "SELECT {BLOCK_COLUMNS} FROM activity_blocks {clause} ORDER BY min_time_ns, id"
                ),
                &parameters,
            )?
            .iter()
            .map(block_row)
            .collect())
    }

    fn postings(&mut self, key: &str) -> Result<HashMap<i64, Vec<u8>>, StoreError> {
        let (bucket, suffix) = key_groups::split(key);
        let mut found = HashMap::new();
        for row in self.0.query_typed(
            "SELECT block_id::BIGINT, keys, postings FROM activity_key_groups
             WHERE bucket = $1 AND strpos(keys || chr(1), $2) > 0",
            &[
                (&bucket, Type::TEXT),
                (&key_groups::needle(suffix), Type::TEXT),
            ],
        )? {
            let id: i64 = row.get(0);
            let postings = key_groups::postings_of(row.get(1), row.get(2), suffix)
                .map_err(|source| StoreError::Block { id, source })?;
            if let Some(postings) = postings {
                found.insert(id, postings.to_vec());
            }
        }
        Ok(found)
    }

    fn nearest_block(
        &mut self,
        sensor_id: &str,
        sequence: u64,
    ) -> Result<Option<BlockRow>, StoreError> {
        Ok(self
            .0
            .query_typed_opt(
                &nearest_block_sql(),
                &[(&sensor_id, Type::TEXT), (&to_i64(sequence), Type::INT8)],
            )?
            .as_ref()
            .map(block_row))
    }

    /// One round trip: each sequence's nearest block found beside the others on the server.
    fn nearest_blocks(
        &mut self,
        sensor_id: &str,
        sequences: &[u64],
    ) -> Result<Vec<Option<BlockRow>>, StoreError> {
        let wanted: Vec<i64> = sequences.iter().map(|&sequence| to_i64(sequence)).collect();
        let rows = self.0.query_typed(
            &format!(
                "SELECT nearest.*, wanted.at
                 FROM unnest($2::BIGINT[]) WITH ORDINALITY AS wanted (sequence, at)
                 CROSS JOIN LATERAL (SELECT {BLOCK_COLUMNS} FROM activity_blocks
                     WHERE sensor_id = $1 AND first_sequence <= wanted.sequence
                     ORDER BY first_sequence DESC LIMIT 1) AS nearest"
            ),
            &[(&sensor_id, Type::TEXT), (&wanted, Type::INT8_ARRAY)],
        )?;
        let mut found: Vec<Option<BlockRow>> = sequences.iter().map(|_| None).collect();
        for row in &rows {
            if let Some(slot) = usize::try_from(row.get::<_, i64>(9) - 1)
                .ok()
                .and_then(|at| found.get_mut(at))
            {
                *slot = Some(block_row(row));
            }
        }
        Ok(found)
    }

    fn blocks_holding(
        &mut self,
        sensor_id: &str,
        sequence: u64,
    ) -> Result<Vec<BlockRow>, StoreError> {
        Ok(self
            .0
            .query_typed(
                &format!(
                    "SELECT {BLOCK_COLUMNS} FROM activity_blocks WHERE sensor_id = $1
                     AND first_sequence <= $2 AND last_sequence >= $2"
                ),
                &[(&sensor_id, Type::TEXT), (&to_i64(sequence), Type::INT8)],
            )?
            .iter()
            .map(block_row)
            .collect())
    }

    fn blob(&mut self, blob: Blob, id: i64) -> Result<Vec<u8>, StoreError> {
        if let Blob::Frame = blob {
            return Ok(self.frames(&[id])?.pop().unwrap_or_default());
        }
        Ok(self
            .0
            .query_typed_one(blob.sql(), &[(&id, Type::INT8)])?
            .get(0))
    }

    /// Each frame sliced out of its block's frames (migration 7), reading only the TOAST
    /// chunks it is in. Its bounds are taken in one slice of `frame_starts` (kept out of line:
    /// each subscript of the column would fetch it again).
    fn frames(&mut self, ids: &[i64]) -> Result<Vec<Vec<u8>>, StoreError> {
        let (block_ids, numbers): (Vec<i64>, Vec<i32>) = ids
            .iter()
            .map(|id| {
                let number = id & ((1 << blocks::FRAME_ID_BITS) - 1);
                (
                    id >> blocks::FRAME_ID_BITS,
                    i32::try_from(number).unwrap_or(i32::MAX),
                )
            })
            .unzip();
        let rows = self.0.query_typed(
            "SELECT wanted.at, substring(b.frames FROM bounds[1] + 1 FOR bounds[2] - bounds[1])
             FROM unnest($1::BIGINT[], $2::INTEGER[]) WITH ORDINALITY
                 AS wanted (block_id, number, at)
             JOIN activity_blocks b ON b.id = wanted.block_id
             CROSS JOIN LATERAL (SELECT b.frame_starts[wanted.number + 1 : wanted.number + 2]
                                 AS bounds OFFSET 0) AS frame",
            &[(&block_ids, Type::INT8_ARRAY), (&numbers, Type::INT4_ARRAY)],
        )?;
        let mut found: Vec<Option<Vec<u8>>> = vec![None; ids.len()];
        for row in &rows {
            let at: i64 = row.get(0);
            if let Some(slot) = usize::try_from(at - 1)
                .ok()
                .and_then(|at| found.get_mut(at))
            {
                *slot = row.get(1);
            }
        }
        found
            .into_iter()
            .zip(block_ids)
            .map(|(frame, block)| {
                frame.ok_or(StoreError::Block {
                    id: block,
                    source: blocks::BlockError::Malformed,
                })
            })
            .collect()
    }

    fn keys_like(&mut self, pattern: &str, limit: i64) -> Result<Vec<String>, StoreError> {
        let (longer, shorter) = key_groups::buckets_matching(pattern);
        Ok(self
            .0
            .query(
                "SELECT DISTINCT substr(bucket || suffix, 3)
                 FROM activity_key_groups,
                     unnest((string_to_array(keys, chr(1)))[2:]) AS held (suffix)
                 WHERE (bucket LIKE $1 OR bucket = ANY($2::TEXT[]))
                     AND bucket || suffix LIKE $3 LIMIT $4",
                &[&longer, &shorter.as_slice(), &pattern, &limit],
            )?
            .iter()
            .map(|row| row.get(0))
            .collect())
    }

    fn holding_key(&self, key: &str) -> (&'static str, Param) {
        (
            key_groups::HOLDING_KEY,
            Param::Text(key_groups::key_value(key)),
        )
    }
}

impl<C: GenericClient> TierWriter for Pg<'_, C> {
    fn newest_dictionary(&mut self) -> Result<Option<StoredDictionary>, StoreError> {
        Ok(self
            .0
            .query_opt(NEWEST_DICTIONARY, &[])?
            .map(|row| (row.get(0), row.get(1), row.get(2))))
    }

    fn insert_dictionary(
        &mut self,
        now_ns: i64,
        digest: &[u8],
        data: &[u8],
        trained_on: i64,
    ) -> Result<i64, StoreError> {
        Ok(self
            .0
            .query_one(
                "INSERT INTO activity_dictionaries (created_ns, digest, data, trained_on)
                 VALUES ($1, $2, $3, $4) RETURNING id",
                &[&now_ns, &digest, &data, &trained_on],
            )?
            .get(0))
    }

    fn insert_block(&mut self, block: &NewBlock<'_>) -> Result<i64, StoreError> {
        let (frames, starts) = joined(&block.encoded.frames)?;
        let id: i64 = self
            .0
            .query_one(
                "INSERT INTO activity_blocks (sensor_id, first_sequence, last_sequence,
                 min_time_ns, max_time_ns, count, data, format, dictionary_id, bytes, frames,
                 frame_starts)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
                &[
                    &block.sensor_id,
                    &block.first_sequence,
                    &block.last_sequence,
                    &block.min_time_ns,
                    &block.max_time_ns,
                    &block.count,
                    &block.encoded.index,
                    &block.format,
                    &block.dictionary_id,
                    &block.bytes(),
                    &frames,
                    &starts,
                ],
            )?
            .get(0);
        insert_groups(
            self.0,
            id,
            block
                .encoded
                .keys
                .iter()
                .map(|(key, postings)| (key.as_str(), Some(postings.as_slice()))),
        )?;
        Ok(id)
    }

    /// The blocks' key groups found through migration 8's BRIN index of block ids, whose ranges the
    /// deleted keys were in are then desummarised: the blocks written next fill those pages,
    /// and a range summarised still would keep the deleted ids as its lower bound, so that
    /// deleting any block between them and the new ones would read it. Vacuum summarises the
    /// range again from the rows it then holds.
    fn delete_block_rows(&mut self, ids: &[i64]) -> Result<(), StoreError> {
        self.0.execute(
            "WITH deleted AS (DELETE FROM activity_key_groups WHERE block_id = ANY($1::BIGINT[])
                 RETURNING ctid)
             SELECT brin_desummarize_range('activity_key_groups_block', page)
             FROM (SELECT DISTINCT ((ctid::TEXT::POINT)[0])::BIGINT AS page FROM deleted)
                 AS pages",
            &[&ids],
        )?;
        self.0
            .execute("DELETE FROM activity_blocks WHERE id = ANY($1)", &[&ids])?;
        Ok(())
    }

    fn compact_limit(&mut self) -> Result<i64, StoreError> {
        Ok(self
            .0
            .query_one(
                "SELECT LEAST(COALESCE((SELECT MAX(id) FROM activities) - 1, 0),
                     COALESCE((SELECT value FROM detection_state WHERE name = 'activity_cursor'),
                              (SELECT MAX(id) FROM activities) - 1, 0))",
                &[],
            )?
            .get(0))
    }

    fn compact_sensors(&mut self, limit: i64, before_ns: i64) -> Result<Vec<String>, StoreError> {
        Ok(self
            .0
            .query(
                "SELECT DISTINCT sensor_id FROM activities WHERE id <= $1 AND time_ns < $2",
                &[&limit, &before_ns],
            )?
            .iter()
            .map(|row| row.get(0))
            .collect())
    }

    fn compactable(
        &mut self,
        sensor_id: &str,
        limit: i64,
        before_ns: i64,
        count: usize,
    ) -> Result<(Vec<i64>, Vec<blocks::Entry>), StoreError> {
        let rows = self.0.query(
            "SELECT id, sequence, position, activity FROM activities
             WHERE sensor_id = $1 AND id <= $2 AND time_ns < $3 ORDER BY id LIMIT $4",
            &[
                &sensor_id,
                &limit,
                &before_ns,
                &i64::try_from(count).unwrap_or(i64::MAX),
            ],
        )?;
        let (mut ids, mut entries) = (Vec::new(), Vec::new());
        for row in &rows {
            let id: i64 = row.get(0);
            entries.push(blocks::Entry {
                sequence: to_u64(row.get(1)),
                position: to_u64(row.get(2)),
                activity: Activity::decode(row.get::<_, &[u8]>(3))
                    .map_err(|source| StoreError::Decode { id, source })?,
            });
            ids.push(id);
        }
        Ok((ids, entries))
    }

    fn delete_rows(&mut self, ids: &[i64]) -> Result<(), StoreError> {
        self.0
            .execute("DELETE FROM activities WHERE id = ANY($1)", &[&ids])?;
        Ok(())
    }

    fn delete_rows_before(&mut self, before_ns: i64) -> Result<u64, StoreError> {
        Ok(self
            .0
            .execute("DELETE FROM activities WHERE time_ns < $1", &[&before_ns])?)
    }

    fn blocks_before(&mut self, before_ns: i64) -> Result<Vec<(i64, i64)>, StoreError> {
        Ok(self
            .0
            .query(
                "SELECT id, count FROM activity_blocks WHERE max_time_ns < $1",
                &[&before_ns],
            )?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect())
    }
}

/// Writes block `id`'s `keys` (in key order) as their groups (key_groups.rs). Migration 8's
/// block ids are 4 bytes: past 2^31 blocks the cast fails the insert.
pub(super) fn insert_groups<'k>(
    client: &mut impl GenericClient,
    id: i64,
    keys: impl IntoIterator<Item = (&'k str, Option<&'k [u8]>)>,
) -> Result<(), StoreError> {
    let groups = key_groups::groups(keys);
    let buckets: Vec<&str> = groups.iter().map(|group| group.bucket.as_str()).collect();
    let suffixes: Vec<&str> = groups.iter().map(|group| group.keys.as_str()).collect();
    let postings: Vec<&[u8]> = groups
        .iter()
        .map(|group| group.postings.as_slice())
        .collect();
    client.execute(
        "INSERT INTO activity_key_groups (block_id, bucket, keys, postings)
         SELECT $4::BIGINT::INTEGER, bucket, keys, postings
         FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BYTEA[]) AS g (bucket, keys, postings)",
        &[&buckets, &suffixes, &postings, &id],
    )?;
    Ok(())
}

/// Migration 8's rows: migration 7's keys, a row a key, written as their blocks' groups,
/// block by block.
pub(super) fn group_keys(transaction: &mut Transaction<'_>) -> Result<(), StoreError> {
    let ids: Vec<i64> = transaction
        .query(
            "SELECT DISTINCT block_id FROM activity_block_keys ORDER BY block_id",
            &[],
        )?
        .iter()
        .map(|row| row.get(0))
        .collect();
    for id in ids {
        let rows = transaction.query(
            "SELECT key, frames FROM activity_block_keys WHERE block_id = $1 ORDER BY key",
            &[&id],
        )?;
        insert_groups(
            transaction,
            id,
            rows.iter().map(|row| (row.get(0), row.get(1))),
        )?;
    }
    Ok(())
}

/// The bytes the store's activities hold, as the disk budget counts them: the compacted
/// tier's as written (each block's index, frames and keys, and the dictionaries), the hot
/// tier's rows (`pg_column_size`) scaled by the table's whole size (its indexes) over its
/// heap. Not the tables' sizes: PostgreSQL keeps the space of deleted rows for its next
/// inserts, so the tables do not shrink as the budget deletes, and measuring them would
/// delete everything; live bytes fall as rows go, and the space they free is what the next
/// days reuse.
struct StoredBytes {
    /// The blocks' and the dictionaries' bytes.
    compacted: u64,
    /// The hot tier's bytes, and its rows.
    hot: u64,
    rows: u64,
}

impl StoredBytes {
    fn measure(client: &mut impl GenericClient) -> Result<Self, StoreError> {
        let row = client.query_one(
            "SELECT (SELECT COALESCE(SUM(bytes), 0) FROM activity_blocks)::BIGINT,
                    (SELECT COALESCE(SUM(octet_length(data)), 0)
                        FROM activity_dictionaries)::BIGINT,
                    hot.bytes, hot.rows
             FROM (SELECT (COALESCE(SUM(pg_column_size(a.*)), 0)::NUMERIC
                         * pg_total_relation_size('activities')
                         / GREATEST(pg_relation_size('activities'), 1))::BIGINT AS bytes,
                         COUNT(*) AS rows
                   FROM activities a) AS hot",
            &[],
        )?;
        let (blocks, dictionaries, hot, rows): (i64, i64, i64, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        Ok(Self {
            compacted: to_u64(blocks) + to_u64(dictionaries),
            hot: to_u64(hot),
            rows: to_u64(rows),
        })
    }

    fn total(&self) -> u64 {
        self.compacted + self.hot
    }

    /// How many of the hot tier's rows hold `excess` bytes, at their mean size (at least one).
    fn rows_holding(&self, excess: u64) -> i64 {
        let per_row = self.hot.div_ceil(self.rows.max(1)).max(1);
        to_i64(excess.div_ceil(per_row).max(1))
    }
}

/// Deletes the oldest activities until [`StoredBytes`] is at most `max_bytes`: the oldest
/// blocks whose bytes cover the excess, or with none left, as many of the oldest rows as hold
/// it at their mean size (the newest kept: its id numbers the next ones), measuring again
/// after each deletion (measuring reads every row: a pass, not a step of rows, between two);
/// how many activities.
pub(super) fn prune_to_budget(
    client: &mut ::postgres::Client,
    max_bytes: u64,
) -> Result<u64, StoreError> {
    let mut pruned = 0;
    loop {
        let mut transaction = client.transaction()?;
        lock(&mut transaction)?;
        let used = StoredBytes::measure(&mut transaction)?;
        if used.total() <= max_bytes {
            break;
        }
        let excess = used.total() - max_bytes;
        let oldest: Vec<(i64, i64)> = transaction
            .query(
                "SELECT id, count FROM (SELECT id, count, min_time_ns,
                     (SUM(bytes) OVER (ORDER BY min_time_ns, id) - bytes)::BIGINT AS before
                     FROM activity_blocks) AS running
                 WHERE before < $1 ORDER BY min_time_ns, id",
                &[&to_i64(excess)],
            )?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        let step = if oldest.is_empty() {
            transaction.execute(
                "DELETE FROM activities WHERE id IN (SELECT id FROM activities
                 WHERE id < (SELECT MAX(id) FROM activities) ORDER BY time_ns LIMIT $1)",
                &[&used.rows_holding(excess)],
            )?
        } else {
            delete_blocks(&mut Pg(&mut transaction), &oldest)?
        };
        transaction.commit()?;
        if step == 0 {
            break;
        }
        pruned += step;
    }
    Ok(pruned)
}
