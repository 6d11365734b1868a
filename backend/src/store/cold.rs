//! The compacted tier in SQLite: which blocks and frames a query may want, reading them, and
//! writing and deleting them. The block format itself is [`super::blocks`]'s.

use std::{
    cell::RefCell,
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    sync::Arc,
};

use sha2::{Digest as _, Sha256};

use dcwatch_proto::{json::protocol_name, v1::Activity};
use rusqlite::{Connection, OptionalExtension as _, params, params_from_iter, types::Value};

use super::{Ordered, Query, StoreError, StoredActivity, blocks, time_ns, to_i64, to_u64};

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
    /// What else the row says of its block: with the above, what tells it from a block that
    /// took its id after it was deleted ([`IndexCache`]).
    last_sequence: u64,
    max_time_ns: i64,
    count: i64,
    frames: Option<BTreeSet<usize>>,
    /// The query's account's counts by protocol in the block, when its key keeps them.
    counts: Option<Vec<blocks::Count>>,
}

const BLOCK_COLUMNS: &str = "id, sensor_id, min_time_ns, first_sequence, format, dictionary_id,
    last_sequence, max_time_ns, count";

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

impl BlockRow {
    /// Whether `other` is this row: the same block, not one that took its id once it was
    /// deleted (a block is never rewritten; ids are reused after the highest is deleted).
    fn same_block(&self, other: &Self) -> bool {
        (
            self.id,
            &self.sensor_id,
            self.first_sequence,
            self.last_sequence,
            self.min_time_ns,
            self.max_time_ns,
            self.count,
            self.format,
            self.dictionary_id,
        ) == (
            other.id,
            &other.sensor_id,
            other.first_sequence,
            other.last_sequence,
            other.min_time_ns,
            other.max_time_ns,
            other.count,
            other.format,
            other.dictionary_id,
        )
    }

    /// The row without the frames a query's keys are in: what [`IndexCache`] keeps.
    fn columns(&self) -> Self {
        Self {
            id: self.id,
            sensor_id: self.sensor_id.clone(),
            min_time_ns: self.min_time_ns,
            first_sequence: self.first_sequence,
            format: self.format,
            dictionary_id: self.dictionary_id,
            last_sequence: self.last_sequence,
            max_time_ns: self.max_time_ns,
            count: self.count,
            frames: None,
            counts: None,
        }
    }
}

/// Blocks whose parsed frame index a store keeps: 256 of 512 frames take about 6 MiB, and at
/// 32,768 activities a block, 8.4 million activities (about 7 hours at 1000 packets/s).
const INDEXED_BLOCKS: usize = 256;

/// The frame indexes of the blocks a store read last, parsed. Reading a block's index (a row
/// of several KB, on overflow pages SQLite reads around its cache) and parsing it cost half of
/// an evidence lookup (store-size: 63 of 130 µs) and a query about 100 µs a block. Kept by
/// block id with the row they were read for, and given back only for that same row; the
/// oldest read is dropped first.
#[derive(Debug, Default)]
pub(crate) struct IndexCache(RefCell<Indexes>);

#[derive(Debug, Default)]
struct Indexes {
    by_id: HashMap<i64, (BlockRow, Arc<[blocks::FrameInfo]>)>,
    /// Block ids, the oldest read first.
    order: VecDeque<i64>,
}

impl IndexCache {
    fn get(&self, block: &BlockRow) -> Option<Arc<[blocks::FrameInfo]>> {
        let indexes = self.0.borrow();
        let (row, index) = indexes.by_id.get(&block.id)?;
        row.same_block(block).then(|| Arc::clone(index))
    }

    fn insert(&self, block: &BlockRow, index: Arc<[blocks::FrameInfo]>) {
        let mut indexes = self.0.borrow_mut();
        if indexes
            .by_id
            .insert(block.id, (block.columns(), index))
            .is_none()
        {
            indexes.order.push_back(block.id);
        }
        while indexes.order.len() > INDEXED_BLOCKS {
            if let Some(oldest) = indexes.order.pop_front() {
                indexes.by_id.remove(&oldest);
            }
        }
    }
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
    let account_key = query
        .account
        .as_ref()
        .map(|account| blocks::account_key(account_name(account)));
    keys.extend(account_key.clone());
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
    // The frames each key is in, intersected: a frame lacking one of them holds no match. A
    // block read by its account frames takes the account's alone (the other keys name the
    // other frames).
    let mut postings = connection.prepare_cached(
        "SELECT block_id, frames FROM activity_block_keys WHERE key = ?1 AND frames IS NOT NULL",
    )?;
    for key in &keys {
        let of_account = Some(key) == account_key.as_ref();
        let mut of_key: HashMap<i64, Vec<u8>> = postings
            .query_map([key], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for block in &mut found {
            if by_account(block, query) && !of_account {
                continue;
            }
            if let Some(bytes) = of_key.remove(&block.id) {
                let failed = |source| StoreError::Block {
                    id: block.id,
                    source,
                };
                let frames = blocks::frames_of(&bytes).map_err(failed)?;
                if of_account {
                    block.counts = blocks::counts_of(&bytes, block.min_time_ns).map_err(failed)?;
                }
                block.frames = Some(match block.frames.take() {
                    Some(before) => before.intersection(&frames).copied().collect(),
                    None => frames,
                });
            }
        }
    }
    Ok(found)
}

/// What a block's row holds ([`BlockReader::contents`]).
enum Contents {
    /// A format 2 or 3 block's frame index.
    Frames(Arc<[blocks::FrameInfo]>),
    /// A format 1 block's every entry (its one zstd frame, decoded).
    Whole(Vec<blocks::Entry>),
}

/// Reads blocks, finding each dictionary's digest once for the reads of one query, and each
/// block's frame index once while `indexes` keeps it.
pub(crate) struct BlockReader<'c> {
    connection: &'c Connection,
    indexes: &'c IndexCache,
    digests: HashMap<i64, [u8; 32]>,
}

impl<'c> BlockReader<'c> {
    pub(crate) fn new(connection: &'c Connection, indexes: &'c IndexCache) -> Self {
        Self {
            connection,
            indexes,
            digests: HashMap::new(),
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
            &sieve(query),
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
            &sieve(query),
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
    /// that `sieve` passes and `keep` keeps ([`blocks::decode_frame`]); a format 1 block's
    /// every entry.
    fn read(
        &mut self,
        block: &BlockRow,
        select: impl FnOnce(&[blocks::FrameInfo]) -> Vec<usize>,
        sieve: &blocks::Sieve,
        mut keep: impl FnMut(u64, u64, &Activity) -> bool,
    ) -> Result<Vec<blocks::Entry>, StoreError> {
        let index = match self.contents(block)? {
            Contents::Frames(index) => index,
            Contents::Whole(entries) => return Ok(entries),
        };
        let mut entries = Vec::new();
        for number in select(&index) {
            let info = index.get(number).ok_or(StoreError::Block {
                id: block.id,
                source: blocks::BlockError::Malformed,
            })?;
            entries.extend(self.frame(block, number, info, sieve, &mut keep)?);
        }
        Ok(entries)
    }

    /// What `block`'s row holds: a format 2 block's frame index, a format 1 block's entries.
    fn contents(&mut self, block: &BlockRow) -> Result<Contents, StoreError> {
        if let Some(index) = self.indexes.get(block) {
            return Ok(Contents::Frames(index));
        }
        let failed = |source| StoreError::Block {
            id: block.id,
            source,
        };
        let data: Vec<u8> = self
            .connection
            .prepare_cached("SELECT data FROM activity_blocks WHERE id = ?1")?
            .query_row([block.id], |row| row.get(0))?;
        Ok(if block.format == blocks::FORMAT_SINGLE {
            Contents::Whole(blocks::decode_single(&data).map_err(failed)?)
        } else {
            let index: Arc<[blocks::FrameInfo]> =
                blocks::frame_index(&data, block.format, block.first_sequence, block.min_time_ns)
                    .map_err(failed)?
                    .into();
            self.indexes.insert(block, Arc::clone(&index));
            Contents::Frames(index)
        })
    }

    /// The entries of frame `number` of `block` (`info` its index entry) that `sieve` passes
    /// and `keep` keeps.
    fn frame(
        &mut self,
        block: &BlockRow,
        number: usize,
        info: &blocks::FrameInfo,
        sieve: &blocks::Sieve,
        keep: impl FnMut(u64, u64, &Activity) -> bool,
    ) -> Result<Vec<blocks::Entry>, StoreError> {
        let frame: Vec<u8> = self
            .connection
            .prepare_cached("SELECT data FROM activity_frames WHERE id = ?1")?
            .query_row([frame_id(block.id, number)], |row| row.get(0))?;
        let digest = match block.dictionary_id {
            Some(id) => Some(self.digest(id)?),
            None => None,
        };
        with_decompressor(
            self.connection,
            block.dictionary_id,
            digest,
            |decompressor| {
                blocks::decode_frame(&block.sensor_id, &frame, info, decompressor, sieve, keep)
                    .map_err(|source| StoreError::Block {
                        id: block.id,
                        source,
                    })
            },
        )
    }

    /// The SHA-256 of dictionary `id` of the store.
    fn digest(&mut self, id: i64) -> Result<[u8; 32], StoreError> {
        if let Some(known) = self.digests.get(&id) {
            return Ok(*known);
        }
        let digest: Vec<u8> = self
            .connection
            .prepare_cached("SELECT digest FROM activity_dictionaries WHERE id = ?1")?
            .query_row([id], |row| row.get(0))?;
        let digest: [u8; 32] = digest.try_into().map_err(|_| StoreError::Block {
            id,
            source: blocks::BlockError::Malformed,
        })?;
        self.digests.insert(id, digest);
        Ok(digest)
    }
}

/// Decompressors most recently used on this thread, by their dictionary's SHA-256 (`None`: no
/// dictionary). Creating one costs an allocation of about 160 KiB and referencing the prepared
/// dictionary; an evidence lookup decodes one frame, so a decompressor per lookup cost as much
/// as the decoding. Kept per thread (a decompressor is used by one at a time), and by digest
/// since a thread may read several stores.
const KEPT_DECOMPRESSORS: usize = 4;

/// A decompressor and its dictionary's SHA-256 (`None`: no dictionary).
type Kept = (Option<[u8; 32]>, zstd::bulk::Decompressor<'static>);

thread_local! {
    static DECOMPRESSORS: RefCell<Vec<Kept>> = const { RefCell::new(Vec::new()) };
}

/// Runs `work` with this thread's decompressor for dictionary `id` of the store (its SHA-256
/// `digest`), created if it has none.
fn with_decompressor<T>(
    connection: &Connection,
    id: Option<i64>,
    digest: Option<[u8; 32]>,
    work: impl FnOnce(&mut zstd::bulk::Decompressor<'static>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    DECOMPRESSORS.with(|kept| {
        let mut kept = kept.borrow_mut();
        let at = if let Some(at) = kept.iter().position(|(known, _)| *known == digest) {
            at
        } else {
            let zstd_failed = |error| StoreError::Block {
                id: id.unwrap_or(0),
                source: blocks::BlockError::Zstd(error),
            };
            let decompressor = match (id, digest) {
                (Some(id), Some(digest)) => zstd::bulk::Decompressor::with_prepared_dictionary(
                    prepared_dictionary(connection, id, digest)?,
                ),
                _ => zstd::bulk::Decompressor::new(),
            }
            .map_err(zstd_failed)?;
            if kept.len() == KEPT_DECOMPRESSORS {
                kept.remove(0);
            }
            kept.push((digest, decompressor));
            kept.len() - 1
        };
        work(&mut kept[at].1)
    })
}

/// Dictionaries prepared for decompression, by their SHA-256: preparing one costs about as
/// much as a query, and a store has one (a new one only if it is trained again), so each is
/// prepared once per process and kept for its life.
static PREPARED: std::sync::Mutex<
    BTreeMap<[u8; 32], &'static zstd::dict::DecoderDictionary<'static>>,
> = std::sync::Mutex::new(BTreeMap::new());

/// Dictionary `id` of the store (its SHA-256 `digest`), prepared.
fn prepared_dictionary(
    connection: &Connection,
    id: i64,
    digest: [u8; 32],
) -> Result<&'static zstd::dict::DecoderDictionary<'static>, StoreError> {
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

/// The account name `account` (`DOMAIN\name` or a name) names, as blocks index it.
fn account_name(account: &str) -> &str {
    account.split_once('\\').map_or(account, |(_, name)| name)
}

/// What an activity must show, undecoded, to be one `query` may select: its account name and
/// address.
fn sieve(query: &Query) -> blocks::Sieve {
    blocks::Sieve::named(query.account.as_deref().map(account_name), query.ip)
}

/// The row id of frame `number` of block `block_id`.
fn frame_id(block_id: i64, number: usize) -> i64 {
    (block_id << blocks::FRAME_ID_BITS) | i64::try_from(number).unwrap_or(0)
}

/// Whether `query` reads `block` by its account frames (a format 5 block, a query naming an
/// account): each activity is in one of those and in one of the others, read from one only.
fn by_account(block: &BlockRow, query: &Query) -> bool {
    block.format >= blocks::FORMAT_ACCOUNT_FRAMES && query.account.is_some()
}

/// The frames of `block` (given its index) that may hold activities `query` selects: its
/// account frames or the others ([`by_account`]), its keys' frames, its time range.
fn wanted_frames(block: &BlockRow, query: &Query, index: &[blocks::FrameInfo]) -> Vec<usize> {
    let by_account = by_account(block, query);
    let wanted = |number: &usize| {
        index.get(*number).is_some_and(|frame| {
            frame.by_account == by_account
                && query
                    .since_ns
                    .is_none_or(|since| frame.max_time_ns >= since)
                && query.until_ns.is_none_or(|until| frame.min_time_ns < until)
        })
    };
    // The keys' frames when known (a few of hundreds), else every frame.
    match &block.frames {
        Some(frames) => frames.iter().copied().filter(wanted).collect(),
        None => (0..index.len()).filter(wanted).collect(),
    }
}

/// Per protocol, how many compacted activities `query` selects and their first and last
/// times, handed to `each` (protocol, count, first, last) a block or an activity at a time.
/// An account's blocks that keep its counts ([`counted`]) are answered from them; the others
/// from their activities' keys (time, sensor, endpoints, account, protocol; not the body).
pub(crate) fn compacted_counts(
    connection: &Connection,
    indexes: &IndexCache,
    query: &Query,
    mut each: impl FnMut(&str, u64, i64, i64),
) -> Result<(), StoreError> {
    let mut reader = BlockReader::new(connection, indexes);
    for block in query_blocks(connection, query)? {
        if let Some(counts) = block.counts.as_ref().filter(|_| counted(query)) {
            for count in counts {
                each(&count.protocol, count.count, count.first_ns, count.last_ns);
            }
            continue;
        }
        reader.keys(&block, query, &mut |keys| {
            let time = time_ns(keys);
            each(protocol_name(keys.body.as_ref()), 1, time, time);
        })?;
    }
    Ok(())
}

/// Whether an account's counts kept with its key ([`blocks::Count`]) answer `query`: it asks
/// for an account by a name alone, in ASCII (matched ignoring ASCII case, as the counts were
/// made), and for nothing else a block's counts cannot tell (its sensor is the block's).
fn counted(query: &Query) -> bool {
    query
        .account
        .as_ref()
        .is_some_and(|account| !account.is_empty() && account.is_ascii() && !account.contains('\\'))
        && query.protocol.is_none()
        && query.ip.is_none()
        && query.since_ns.is_none()
        && query.until_ns.is_none()
}

/// The compacted activities `query` selects, newest first (by time, then sensor, sequence and
/// position), each with its position in its batch, until `each` returns false.
///
/// Frames are opened newest first, by the newest time the index gives each, and an activity is
/// handed on once no frame left unopened may hold a newer one: a page of the newest 100
/// decodes the frames those 100 are in (and any that overlap them in time), not every frame
/// of every block holding the query's keys.
pub(crate) fn newest_compacted(
    connection: &Connection,
    indexes: &IndexCache,
    query: &Query,
    mut each: impl FnMut(StoredActivity, u64) -> bool,
) -> Result<(), StoreError> {
    let found = query_blocks(connection, query)?;
    let mut reader = BlockReader::new(connection, indexes);
    let wanted = sieve(query);
    // Decoded, not yet handed on: a max-heap, the newest on top.
    let mut ready = std::collections::BinaryHeap::new();
    // Every wanted frame of every block, oldest first (popped from the end): (its newest
    // time, its block, its number, its index entry). A format 1 block is read whole now.
    let mut frames = Vec::new();
    for (at, block) in found.iter().enumerate() {
        match reader.contents(block)? {
            Contents::Whole(entries) => hold(&mut ready, query, block, entries),
            Contents::Frames(index) => frames.extend(
                wanted_frames(block, query, &index)
                    .into_iter()
                    .map(|number| (index[number].max_time_ns, at, number, index[number])),
            ),
        }
    }
    frames.sort_unstable_by_key(|&(newest, at, number, _)| (newest, at, number));
    loop {
        let unopened = frames.last().map(|&(newest, ..)| newest);
        if let Some(top) = ready.peek_mut()
            && unopened.is_none_or(|newest| top.time_ns() > newest)
        {
            let top = std::collections::binary_heap::PeekMut::pop(top);
            if !each(top.stored, top.position) {
                break;
            }
            continue;
        }
        let Some((_, at, number, info)) = frames.pop() else {
            break;
        };
        let block = &found[at];
        let entries = reader.frame(block, number, &info, &wanted, |_, _, activity| {
            query.matches_activity(&block.sensor_id, activity)
        })?;
        hold(&mut ready, query, block, entries);
    }
    Ok(())
}

/// Adds the entries of `block` that `query` selects to `ready`.
fn hold(
    ready: &mut std::collections::BinaryHeap<Ordered>,
    query: &Query,
    block: &BlockRow,
    entries: Vec<blocks::Entry>,
) {
    for entry in entries {
        let stored = StoredActivity {
            sensor_id: block.sensor_id.clone(),
            sequence: entry.sequence,
            activity: entry.activity,
        };
        if query.matches(&stored) {
            ready.push(Ordered {
                position: entry.position,
                stored,
            });
        }
    }
}

/// The compacted activity at (`sensor_id`, `sequence`, `position`).
pub(crate) fn activity_at(
    connection: &Connection,
    indexes: &IndexCache,
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
    let mut reader = BlockReader::new(connection, indexes);
    for block in candidates {
        // A block's frames (not its account frames) hold activities in (sequence, position)
        // order: the one that may hold it is the last that starts at or before it.
        let found = reader
            .read(
                &block,
                |index| {
                    index
                        .iter()
                        .rposition(|frame| {
                            !frame.by_account
                                && (frame.first_sequence, frame.first_position)
                                    <= (sequence, position)
                        })
                        .into_iter()
                        .collect()
                },
                &blocks::Sieve::at(sequence, position),
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

/// The dictionary new blocks are compressed with, and its id: the newest one stored, unless it
/// was trained on fewer than [`blocks::TRAIN_ACTIVITIES`] and `samples` (activities about to
/// be compacted, of one sensor each, up to that many) are twice as many or that many: then
/// one trained on them. With no dictionary yet, one trained on `samples` when they are enough
/// ([`blocks::TRAIN_MIN_ACTIVITIES`]); else none. Blocks keep the id of theirs, so a replaced
/// dictionary stays readable.
pub(crate) fn dictionary(
    transaction: &rusqlite::Transaction<'_>,
    samples: impl FnOnce() -> Result<Vec<(String, Vec<blocks::Entry>)>, StoreError>,
    now_ns: i64,
) -> Result<(Option<i64>, Vec<u8>), StoreError> {
    const TRAIN: usize = blocks::TRAIN_ACTIVITIES;
    let newest: Option<(i64, Vec<u8>, Option<i64>)> = transaction
        .query_row(
            "SELECT id, data, trained_on FROM activity_dictionaries ORDER BY id DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()?;
    let (kept_id, kept, trained_on) = match newest {
        Some((id, data, Some(trained_on))) if to_u64(trained_on) < TRAIN as u64 => {
            (Some(id), data, usize::try_from(trained_on).unwrap_or(0))
        }
        Some((id, data, _)) => return Ok((Some(id), data)),
        None => (None, Vec::new(), 0),
    };
    let samples = samples()?;
    let activities: usize = samples.iter().map(|(_, entries)| entries.len()).sum();
    // Retrained only on twice the samples (or the full count): a store that grows slowly
    // keeps a handful of dictionaries, not one a compaction.
    if activities < blocks::TRAIN_MIN_ACTIVITIES
        || (trained_on > 0 && activities < (2 * trained_on).min(TRAIN))
    {
        return Ok((kept_id, kept));
    }
    let mut plain = Vec::new();
    for (sensor_id, entries) in &samples {
        plain.extend(
            blocks::plain_frames(sensor_id, entries, blocks::SAMPLE_ACTIVITIES)
                .map_err(|source| StoreError::Block { id: 0, source })?,
        );
    }
    let Some(data) = blocks::train(&plain) else {
        return Ok((kept_id, kept));
    };
    transaction.execute(
        "INSERT INTO activity_dictionaries (created_ns, digest, data, trained_on)
         VALUES (?1, ?2, ?3, ?4)",
        params![
            now_ns,
            Sha256::digest(&data).as_slice(),
            data,
            to_i64(activities as u64)
        ],
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
            blocks::FORMAT_ACCOUNT_FRAMES,
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
