//! The compacted tier in SQLite: which blocks and frames a query may want, reading them, and
//! writing and deleting them. The block format itself is [`super::blocks`]'s.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sha2::{Digest as _, Sha256};

use dcwatch_proto::v1::Activity;
use rusqlite::{Connection, OptionalExtension as _, params, params_from_iter, types::Value};

use super::{Query, StoreError, StoredActivity, blocks, time_ns, to_i64, to_u64};

/// A block's row without its data, with the frames the query's keys are in (`None`: every
/// frame may hold a match).
#[derive(Debug)]
pub(crate) struct BlockRow {
    pub(crate) id: i64,
    pub(crate) sensor_id: String,
    pub(crate) min_time_ns: i64,
    first_sequence: u64,
    format: i64,
    dictionary_id: Option<i64>,
    frames: Option<BTreeSet<usize>>,
}

const BLOCK_COLUMNS: &str = "id, sensor_id, min_time_ns, first_sequence, format, dictionary_id";

fn block_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<BlockRow> {
    Ok(BlockRow {
        id: row.get(0)?,
        sensor_id: row.get(1)?,
        min_time_ns: row.get(2)?,
        first_sequence: to_u64(row.get(3)?),
        format: row.get(4)?,
        dictionary_id: row.get(5)?,
        frames: None,
    })
}

/// The blocks that may hold activities `query` selects, oldest first: by time range, sensor,
/// and the index keys of its protocol, account and address, with the frames holding all of
/// those keys.
pub(crate) fn query_blocks(
    connection: &Connection,
    query: &Query,
) -> Result<Vec<BlockRow>, StoreError> {
    let mut conditions = vec!["1".to_owned()];
    let mut values: Vec<Value> = Vec::new();
    let mut condition = |sql: &str, value: Value| {
        values.push(value);
        conditions.push(sql.replace('?', &format!("?{}", values.len())));
    };
    if let Some(since) = query.since_ns {
        condition("max_time_ns >= ?", Value::Integer(since));
    }
    if let Some(until) = query.until_ns {
        condition("min_time_ns < ?", Value::Integer(until));
    }
    if let Some(sensor) = &query.sensor_id {
        condition("sensor_id = ?", Value::Text(sensor.clone()));
    }
    let mut keys = Vec::new();
    if let Some(protocol) = &query.protocol {
        keys.push(blocks::protocol_key(protocol));
    }
    if let Some(account) = &query.account {
        let name = account
            .split_once('\\')
            .map_or(account.as_str(), |(_, name)| name);
        keys.push(blocks::account_key(name));
    }
    if let Some(ip) = query.ip {
        keys.push(blocks::address_key(&ip.to_string()));
    }
    for key in &keys {
        condition(
            "id IN (SELECT block_id FROM activity_block_keys WHERE key = ?)",
            Value::Text(key.clone()),
        );
    }
    let mut found: Vec<BlockRow> = connection
        .prepare(&format!(
            "SELECT {BLOCK_COLUMNS} FROM activity_blocks WHERE {} ORDER BY min_time_ns, id",
            conditions.join(" AND ")
        ))?
        .query_map(params_from_iter(values), block_row)?
        .collect::<Result<_, _>>()?;
    if found.is_empty() {
        return Ok(found);
    }
    // The frames each key is in, intersected: a frame lacking one of them holds no match.
    let mut postings = connection.prepare_cached(
        "SELECT block_id, frames FROM activity_block_keys WHERE key = ?1 AND frames IS NOT NULL",
    )?;
    for key in &keys {
        let mut of_key: HashMap<i64, Vec<u8>> = postings
            .query_map([key], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for block in &mut found {
            if let Some(bytes) = of_key.remove(&block.id) {
                let frames = blocks::frames_of(&bytes).map_err(|source| StoreError::Block {
                    id: block.id,
                    source,
                })?;
                block.frames = Some(match block.frames.take() {
                    Some(before) => before.intersection(&frames).copied().collect(),
                    None => frames,
                });
            }
        }
    }
    Ok(found)
}

/// Reads blocks, keeping one decompressor per dictionary for the reads of one query.
pub(crate) struct BlockReader<'c> {
    connection: &'c Connection,
    decompressors: HashMap<Option<i64>, zstd::bulk::Decompressor<'static>>,
}

impl<'c> BlockReader<'c> {
    pub(crate) fn new(connection: &'c Connection) -> Self {
        Self {
            connection,
            decompressors: HashMap::new(),
        }
    }

    /// The entries of `block`'s frames that may hold activities `query` selects (its keys'
    /// frames, its time range); a format 1 block's every entry.
    pub(crate) fn entries(
        &mut self,
        block: &BlockRow,
        query: &Query,
    ) -> Result<Vec<blocks::Entry>, StoreError> {
        self.read(
            block,
            |index| wanted_frames(block, query, index),
            None,
            |_, _, activity| query.matches_activity(&block.sensor_id, activity),
        )
    }

    /// Hands `each` the keys (time, sensor, endpoints, account, protocol; not the body) of
    /// `block`'s activities that `query` selects, decoding nothing more ([`blocks::decode_frame`]):
    /// what counting them needs.
    fn keys(
        &mut self,
        block: &BlockRow,
        query: &Query,
        each: &mut impl FnMut(&Activity),
    ) -> Result<(), StoreError> {
        let matches = |activity: &Activity| query.matches_activity(&block.sensor_id, activity);
        let whole = self.read(
            block,
            |index| wanted_frames(block, query, index),
            None,
            |_, _, keys| {
                if matches(keys) {
                    each(keys);
                }
                false
            },
        )?;
        // A format 1 block's entries come whole, not through the filter.
        for entry in whole.iter().filter(|entry| matches(&entry.activity)) {
            each(&entry.activity);
        }
        Ok(())
    }

    /// The entries of the frames of `block` that `select` picks from its index, those of them
    /// that `keep` keeps ([`blocks::decode_frame`], with `only`); a format 1 block's every entry.
    fn read(
        &mut self,
        block: &BlockRow,
        select: impl FnOnce(&[blocks::FrameInfo]) -> Vec<usize>,
        only: Option<(u64, u64)>,
        mut keep: impl FnMut(u64, u64, &Activity) -> bool,
    ) -> Result<Vec<blocks::Entry>, StoreError> {
        let failed = |source| StoreError::Block {
            id: block.id,
            source,
        };
        let data: Vec<u8> = self
            .connection
            .prepare_cached("SELECT data FROM activity_blocks WHERE id = ?1")?
            .query_row([block.id], |row| row.get(0))?;
        if block.format == blocks::FORMAT_SINGLE {
            return blocks::decode_single(&data).map_err(failed);
        }
        let index =
            blocks::frame_index(&data, block.first_sequence, block.min_time_ns).map_err(failed)?;
        let mut entries = Vec::new();
        for number in select(&index) {
            let info = index
                .get(number)
                .ok_or(failed(blocks::BlockError::Malformed))?;
            let frame: Vec<u8> = self
                .connection
                .prepare_cached("SELECT data FROM activity_frames WHERE id = ?1")?
                .query_row([frame_id(block.id, number)], |row| row.get(0))?;
            let decompressor = self.decompressor(block.dictionary_id)?;
            entries.extend(
                blocks::decode_frame(
                    &block.sensor_id,
                    &frame,
                    info,
                    decompressor,
                    only,
                    &mut keep,
                )
                .map_err(failed)?,
            );
        }
        Ok(entries)
    }

    fn decompressor(
        &mut self,
        dictionary_id: Option<i64>,
    ) -> Result<&mut zstd::bulk::Decompressor<'static>, StoreError> {
        match self.decompressors.entry(dictionary_id) {
            std::collections::hash_map::Entry::Occupied(known) => Ok(known.into_mut()),
            std::collections::hash_map::Entry::Vacant(new) => {
                let zstd_failed = |error| StoreError::Block {
                    id: dictionary_id.unwrap_or(0),
                    source: blocks::BlockError::Zstd(error),
                };
                let decompressor = match dictionary_id {
                    Some(id) => zstd::bulk::Decompressor::with_prepared_dictionary(
                        prepared_dictionary(self.connection, id)?,
                    ),
                    None => zstd::bulk::Decompressor::new(),
                }
                .map_err(zstd_failed)?;
                Ok(new.insert(decompressor))
            }
        }
    }
}

/// Dictionaries prepared for decompression, by their SHA-256: preparing one costs about as
/// much as a query, and a store has one (a new one only if it is trained again), so each is
/// prepared once per process and kept for its life.
static PREPARED: std::sync::Mutex<
    BTreeMap<[u8; 32], &'static zstd::dict::DecoderDictionary<'static>>,
> = std::sync::Mutex::new(BTreeMap::new());

/// Dictionary `id` of the store, prepared.
fn prepared_dictionary(
    connection: &Connection,
    id: i64,
) -> Result<&'static zstd::dict::DecoderDictionary<'static>, StoreError> {
    let digest: Vec<u8> = connection
        .prepare_cached("SELECT digest FROM activity_dictionaries WHERE id = ?1")?
        .query_row([id], |row| row.get(0))?;
    let digest: [u8; 32] = digest.try_into().map_err(|_| StoreError::Block {
        id,
        source: blocks::BlockError::Malformed,
    })?;
    let mut prepared = PREPARED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(known) = prepared.get(&digest) {
        return Ok(known);
    }
    let data: Vec<u8> = connection.query_row(
        "SELECT data FROM activity_dictionaries WHERE id = ?1",
        [id],
        |row| row.get(0),
    )?;
    let dictionary: &'static _ = Box::leak(Box::new(zstd::dict::DecoderDictionary::copy(&data)));
    prepared.insert(digest, dictionary);
    Ok(dictionary)
}

/// The row id of frame `number` of block `block_id`.
fn frame_id(block_id: i64, number: usize) -> i64 {
    (block_id << blocks::FRAME_ID_BITS) | i64::try_from(number).unwrap_or(0)
}

/// The frames of `block` (given its index) that may hold activities `query` selects: its keys'
/// frames, its time range.
fn wanted_frames(block: &BlockRow, query: &Query, index: &[blocks::FrameInfo]) -> Vec<usize> {
    (0..index.len())
        .filter(|number| {
            let frame = &index[*number];
            block
                .frames
                .as_ref()
                .is_none_or(|frames| frames.contains(number))
                && query
                    .since_ns
                    .is_none_or(|since| frame.max_time_ns >= since)
                && query.until_ns.is_none_or(|until| frame.min_time_ns < until)
        })
        .collect()
}

/// The keys (time, sensor, endpoints, account, protocol; not the body) of every compacted
/// activity `query` selects, in no particular order: what counts need.
pub(crate) fn compacted_keys(
    connection: &Connection,
    query: &Query,
    mut each: impl FnMut(&Activity),
) -> Result<(), StoreError> {
    let mut reader = BlockReader::new(connection);
    for block in query_blocks(connection, query)? {
        reader.keys(&block, query, &mut each)?;
    }
    Ok(())
}

/// The compacted activities `query` selects, block by block (oldest block first, or newest
/// first), each with its position in its batch, until `each` returns false.
pub(crate) fn compacted(
    connection: &Connection,
    query: &Query,
    newest_first: bool,
    mut each: impl FnMut(StoredActivity, u64) -> bool,
) -> Result<(), StoreError> {
    let mut found = query_blocks(connection, query)?;
    if newest_first {
        found.reverse();
    }
    let mut reader = BlockReader::new(connection);
    for block in found {
        let mut entries = reader.entries(&block, query)?;
        // A batch's activities are not all in time order (a request is reported when its
        // answer comes): in time order, as the rows are read.
        entries.sort_by_key(|entry| (time_ns(&entry.activity), entry.sequence, entry.position));
        if newest_first {
            entries.reverse();
        }
        for entry in entries {
            let stored = StoredActivity {
                sensor_id: block.sensor_id.clone(),
                sequence: entry.sequence,
                activity: entry.activity,
            };
            if query.matches(&stored) && !each(stored, entry.position) {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The compacted activity at (`sensor_id`, `sequence`, `position`).
pub(crate) fn activity_at(
    connection: &Connection,
    sensor_id: &str,
    sequence: u64,
    position: u64,
) -> Result<Option<Activity>, StoreError> {
    let candidates: Vec<BlockRow> = connection
        .prepare_cached(&format!(
            "SELECT {BLOCK_COLUMNS} FROM activity_blocks WHERE sensor_id = ?1
             AND first_sequence <= ?2 AND last_sequence >= ?2"
        ))?
        .query_map(params![sensor_id, to_i64(sequence)], block_row)?
        .collect::<Result<_, _>>()?;
    let mut reader = BlockReader::new(connection);
    for block in candidates {
        // Frames hold activities in (sequence, position) order: the one that may hold it is
        // the last that starts at or before it.
        let found = reader
            .read(
                &block,
                |index| {
                    index
                        .iter()
                        .rposition(|frame| {
                            (frame.first_sequence, frame.first_position) <= (sequence, position)
                        })
                        .into_iter()
                        .collect()
                },
                Some((sequence, position)),
                |_, _, _| true,
            )?
            .into_iter()
            .find(|entry| entry.sequence == sequence && entry.position == position);
        if let Some(entry) = found {
            return Ok(Some(entry.activity));
        }
    }
    Ok(None)
}

/// The dictionary new blocks are compressed with, and its id: the newest one stored, else one
/// trained on `samples` (activities about to be compacted, of one sensor each) when there
/// are enough; else none.
pub(crate) fn dictionary(
    transaction: &rusqlite::Transaction<'_>,
    samples: impl FnOnce() -> Result<Vec<(String, Vec<blocks::Entry>)>, StoreError>,
    now_ns: i64,
) -> Result<(Option<i64>, Vec<u8>), StoreError> {
    let newest: Option<(i64, Vec<u8>)> = transaction
        .query_row(
            "SELECT id, data FROM activity_dictionaries ORDER BY id DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    if let Some((id, data)) = newest {
        return Ok((Some(id), data));
    }
    let mut plain = Vec::new();
    let mut activities = 0;
    for (sensor_id, entries) in samples()? {
        activities += entries.len();
        plain.extend(
            blocks::plain_frames(&sensor_id, &entries)
                .map_err(|source| StoreError::Block { id: 0, source })?,
        );
    }
    if activities < blocks::TRAIN_MIN_ACTIVITIES {
        return Ok((None, Vec::new()));
    }
    let Some(data) = blocks::train(&plain) else {
        return Ok((None, Vec::new()));
    };
    transaction.execute(
        "INSERT INTO activity_dictionaries (created_ns, digest, data) VALUES (?1, ?2, ?3)",
        params![now_ns, Sha256::digest(&data).as_slice(), data],
    )?;
    Ok((Some(transaction.last_insert_rowid()), data))
}

/// Writes `entries` (of `sensor_id`, in order) as a block compressed with the dictionary
/// `dictionary_id` (the one `compressor` holds).
pub(crate) fn insert_block(
    transaction: &rusqlite::Transaction<'_>,
    sensor_id: &str,
    entries: &[blocks::Entry],
    compressor: &mut zstd::bulk::Compressor<'_>,
    dictionary_id: Option<i64>,
) -> Result<(), StoreError> {
    let times = entries.iter().map(|entry| time_ns(&entry.activity));
    let sequences = entries.iter().map(|entry| entry.sequence);
    let encoded = blocks::encode(sensor_id, entries, compressor)
        .map_err(|source| StoreError::Block { id: 0, source })?;
    transaction.execute(
        "INSERT INTO activity_blocks (sensor_id, first_sequence, last_sequence, min_time_ns,
         max_time_ns, count, data, format, dictionary_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            sensor_id,
            to_i64(sequences.clone().min().unwrap_or(0)),
            to_i64(sequences.max().unwrap_or(0)),
            times.clone().min().unwrap_or(0),
            times.max().unwrap_or(0),
            i64::try_from(entries.len()).unwrap_or(i64::MAX),
            encoded.index,
            blocks::FORMAT_FRAMES,
            dictionary_id,
        ],
    )?;
    let id = transaction.last_insert_rowid();
    let mut frame =
        transaction.prepare_cached("INSERT INTO activity_frames (id, data) VALUES (?1, ?2)")?;
    for (number, data) in encoded.frames.iter().enumerate() {
        frame.execute(params![frame_id(id, number), data])?;
    }
    let mut key = transaction.prepare_cached(
        "INSERT INTO activity_block_keys (key, block_id, frames) VALUES (?1, ?2, ?3)",
    )?;
    for (name, frames) in &encoded.keys {
        key.execute(params![name, id, frames])?;
    }
    Ok(())
}

/// Deletes blocks with their frames and keys; returns the activities they held.
pub(crate) fn delete_blocks(
    transaction: &rusqlite::Transaction<'_>,
    blocks: &[(i64, i64)],
) -> Result<u64, StoreError> {
    if blocks.is_empty() {
        return Ok(0);
    }
    // The keys are indexed by key, not by block: one pass over them for many blocks (up to
    // 500, well under SQLite's limit on parameters).
    for chunk in blocks.chunks(500) {
        transaction.execute(
            &format!(
                "DELETE FROM activity_block_keys WHERE block_id IN ({})",
                vec!["?"; chunk.len()].join(", ")
            ),
            params_from_iter(chunk.iter().map(|(id, _)| id)),
        )?;
    }
    let mut activities = 0;
    for (id, count) in blocks {
        transaction.execute(
            "DELETE FROM activity_frames WHERE id >= ?1 AND id < ?2",
            [frame_id(*id, 0), frame_id(id + 1, 0)],
        )?;
        transaction.execute("DELETE FROM activity_blocks WHERE id = ?1", [id])?;
        activities += to_u64(*count);
    }
    Ok(activities)
}
