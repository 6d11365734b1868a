//! The compacted tier, on either store: which blocks and frames a query may want, reading
//! them, and writing and deleting them. The block format itself is [`super::blocks`]'s; the
//! SQL, all that differs between the stores, is behind [`Tier`] (SQLite's in [`sqlite`],
//! PostgreSQL's in `postgres/cold.rs`).

mod sqlite;

pub(crate) use sqlite::Sqlite;

use std::{
    cell::RefCell,
    collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque},
    sync::Arc,
};

use sha2::{Digest as _, Sha256};

use dcwatch_proto::{json::protocol_name, v1::Activity};

use super::{
    ActivityRef, Compacted, Dialect, Filter, Ordered, Param, Query, StoreError, StoredActivity,
    blocks, time_ns, to_i64, to_u64,
};

/// The compacted tier's reads in one store's SQL.
pub(crate) trait Tier {
    /// The dialect [`query_blocks`] writes its conditions in.
    fn dialect(&self) -> Dialect;
    /// The rows ([`BLOCK_COLUMNS`]) of the blocks `filter` selects, by `min_time_ns` then id.
    fn block_rows(&mut self, filter: Filter) -> Result<Vec<BlockRow>, StoreError>;
    /// The blocks `key` is in that name its frames, with those frames' postings.
    fn postings(&mut self, key: &str) -> Result<HashMap<i64, Vec<u8>>, StoreError>;
    /// The row of `sensor_id`'s block that starts nearest at or before `sequence`: the one
    /// holding it, unless blocks overlap there ([`Self::blocks_holding`]). One index entry
    /// read, where [`Self::blocks_holding`] reads every block of the sensor up to `sequence`.
    fn nearest_block(
        &mut self,
        sensor_id: &str,
        sequence: u64,
    ) -> Result<Option<BlockRow>, StoreError>;
    /// [`Self::nearest_block`] of each of `sequences`, in their order. A store that pays a
    /// round trip a query reads them in one.
    fn nearest_blocks(
        &mut self,
        sensor_id: &str,
        sequences: &[u64],
    ) -> Result<Vec<Option<BlockRow>>, StoreError> {
        sequences
            .iter()
            .map(|&sequence| self.nearest_block(sensor_id, sequence))
            .collect()
    }
    /// The rows of `sensor_id`'s blocks whose batches span `sequence`.
    fn blocks_holding(
        &mut self,
        sensor_id: &str,
        sequence: u64,
    ) -> Result<Vec<BlockRow>, StoreError>;
    /// The blob `blob` of row `id` ([`Blob::sql`]).
    fn blob(&mut self, blob: Blob, id: i64) -> Result<Vec<u8>, StoreError>;
    /// The data of frames `ids` ([`frame_id`]), in their order. A query reads several frames
    /// of a block; a store that pays a round trip a query reads them in one.
    fn frames(&mut self, ids: &[i64]) -> Result<Vec<Vec<u8>>, StoreError> {
        ids.iter().map(|id| self.blob(Blob::Frame, *id)).collect()
    }
    /// Keys matching the LIKE `pattern` without their kind's prefix, distinct, at most
    /// `limit`: the compacted tier's names and addresses a search finds.
    fn keys_like(&mut self, pattern: &str, limit: i64) -> Result<Vec<String>, StoreError>;
    /// The condition on a block's id that it holds index key `key`, and its one value.
    fn holding_key(&self, key: &str) -> (&'static str, Param);
}

/// A blob of the compacted tier, read by its row's id.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Blob {
    /// A block row's data: its frame index (a format 1 block's one frame).
    Block,
    /// A frame's data (its id: [`frame_id`]).
    Frame,
    DictionaryDigest,
    Dictionary,
}

impl Blob {
    /// The query that reads it, in both stores' SQL (SQLite binds `$1` by position too; a
    /// frame, SQLite's only: PostgreSQL slices frames out of their block's row).
    pub(crate) const fn sql(self) -> &'static str {
        match self {
            Self::Block => "SELECT data FROM activity_blocks WHERE id = $1",
            Self::Frame => "SELECT data FROM activity_frames WHERE id = $1",
            Self::DictionaryDigest => "SELECT digest FROM activity_dictionaries WHERE id = $1",
            Self::Dictionary => "SELECT data FROM activity_dictionaries WHERE id = $1",
        }
    }
}

/// The query that reads the newest dictionary ([`StoredDictionary`]), in both stores' SQL.
pub(crate) const NEWEST_DICTIONARY: &str =
    "SELECT id, data, trained_on FROM activity_dictionaries ORDER BY id DESC LIMIT 1";

/// A stored dictionary: its id, data, and how many activities it was trained on (`None`: one
/// trained before that was kept).
pub(crate) type StoredDictionary = (i64, Vec<u8>, Option<i64>);

/// The compacted tier's writes, and the rows compaction takes, in one store's SQL, in a
/// transaction of [`Compacting::write`].
pub(crate) trait TierWriter: Tier {
    /// The newest dictionary.
    fn newest_dictionary(&mut self) -> Result<Option<StoredDictionary>, StoreError>;
    /// Stores a dictionary; its id.
    fn insert_dictionary(
        &mut self,
        now_ns: i64,
        digest: &[u8],
        data: &[u8],
        trained_on: i64,
    ) -> Result<i64, StoreError>;
    /// Stores a block's row, frames and keys; its id.
    fn insert_block(&mut self, block: &NewBlock<'_>) -> Result<i64, StoreError>;
    /// Deletes blocks `ids` with their frames and keys.
    fn delete_block_rows(&mut self, ids: &[i64]) -> Result<(), StoreError>;
    /// The highest activity row compaction may take: detection judged it (the `all` role's
    /// cursor), and it is not the newest row, whose id numbers the next ones.
    fn compact_limit(&mut self) -> Result<i64, StoreError>;
    /// The sensors with rows compaction may take (row id at most `limit`, before `before_ns`).
    fn compact_sensors(&mut self, limit: i64, before_ns: i64) -> Result<Vec<String>, StoreError>;
    /// Up to `count` of `sensor_id`'s oldest rows compaction may take: their row ids and
    /// entries.
    fn compactable(
        &mut self,
        sensor_id: &str,
        limit: i64,
        before_ns: i64,
        count: usize,
    ) -> Result<(Vec<i64>, Vec<blocks::Entry>), StoreError>;
    /// Deletes activity rows `ids`.
    fn delete_rows(&mut self, ids: &[i64]) -> Result<(), StoreError>;
    /// Deletes the activity rows older than `before_ns`; how many.
    fn delete_rows_before(&mut self, before_ns: i64) -> Result<u64, StoreError>;
    /// The blocks whose newest activity is older than `before_ns`: (id, count).
    fn blocks_before(&mut self, before_ns: i64) -> Result<Vec<(i64, i64)>, StoreError>;
}

/// A store whose activities compaction moves into blocks.
pub(crate) trait Compacting {
    /// Runs `work` in one write transaction, committed when it succeeds. Writers of the
    /// compacted tier take turns: on PostgreSQL, several nodes may compact and prune at once.
    fn write<R>(
        &mut self,
        work: impl FnOnce(&mut dyn TierWriter) -> Result<R, StoreError>,
    ) -> Result<R, StoreError>;
}

/// A block as [`TierWriter::insert_block`] stores it.
pub(crate) struct NewBlock<'e> {
    pub(crate) sensor_id: &'e str,
    pub(crate) first_sequence: i64,
    pub(crate) last_sequence: i64,
    pub(crate) min_time_ns: i64,
    pub(crate) max_time_ns: i64,
    pub(crate) count: i64,
    pub(crate) format: i64,
    pub(crate) dictionary_id: Option<i64>,
    pub(crate) encoded: &'e blocks::Encoded,
}

impl NewBlock<'_> {
    /// The bytes the block holds: its index, frames and keys.
    pub(crate) fn bytes(&self) -> i64 {
        let encoded = self.encoded;
        let keys: usize = encoded
            .keys
            .iter()
            .map(|(key, frames)| key.len() + frames.len())
            .sum();
        let frames: usize = encoded.frames.iter().map(Vec::len).sum();
        i64::try_from(encoded.index.len() + frames + keys).unwrap_or(i64::MAX)
    }
}

/// A block's row without its data, with the frames the query's keys are in (`None`: every
/// frame may hold a match).
#[derive(Debug)]
pub(crate) struct BlockRow {
    pub(crate) id: i64,
    pub(crate) sensor_id: String,
    pub(crate) min_time_ns: i64,
    pub(in crate::store) first_sequence: u64,
    pub(in crate::store) format: i64,
    pub(in crate::store) dictionary_id: Option<i64>,
    /// What else the row says of its block: with the above, what tells it from a block that
    /// took its id after it was deleted ([`BlockCache`]).
    pub(in crate::store) last_sequence: u64,
    pub(in crate::store) max_time_ns: i64,
    pub(in crate::store) count: i64,
    /// Set by [`query_blocks`]; `None` from the stores' SQL.
    pub(in crate::store) frames: Option<BTreeSet<usize>>,
    /// The query's account's counts by protocol in the block, when its key keeps them. Set by
    /// [`query_blocks`]; `None` from the stores' SQL.
    pub(in crate::store) counts: Option<Vec<blocks::Count>>,
}

/// The columns of a block's row, in [`BlockRow`]'s order.
pub(in crate::store) const BLOCK_COLUMNS: &str = "id, sensor_id, min_time_ns, first_sequence,
    format, dictionary_id, last_sequence, max_time_ns, count";

/// The query [`Tier::nearest_block`] runs, in both stores' SQL (SQLite binds `$1` by position
/// too). On SQLite: `SEARCH activity_blocks USING COVERING INDEX activity_blocks_holding
/// (sensor_id=? AND first_sequence<?)`, walked from its end: no sort, one entry read.
pub(in crate::store) fn nearest_block_sql() -> String {
    format!(
        "SELECT {BLOCK_COLUMNS} FROM activity_blocks WHERE sensor_id = $1
         AND first_sequence <= $2 ORDER BY first_sequence DESC LIMIT 1"
    )
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

    /// Whether the block's batches span `sequence`. The block starting nearest at or before
    /// it holds it, but where blocks overlap: rows are compacted by id once old enough, so a
    /// late row of an older batch goes to a later block, and a batch cut between two blocks
    /// starts the second.
    fn spans(&self, sequence: u64) -> bool {
        (self.first_sequence..=self.last_sequence).contains(&sequence)
    }

    /// The row without the frames a query's keys are in: what [`BlockCache`] keeps.
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

/// Bytes of parsed frames a store keeps for evidence lookups: about 250 frames of 64
/// activities, the evidence of a few dozen alerts.
const KEPT_FRAME_BYTES: usize = 4 << 20;

/// Frames evidence lookups decompressed whose ids a store keeps ([`Seen`]): about as many as
/// [`KEPT_FRAME_BYTES`] holds parsed. A frame read again after more lookups than that would
/// be dropped before it is read a third time: parsing it (all its activities) would cost more
/// than decoding the one wanted.
const SEEN_FRAMES: usize = 256;

/// The capacity the buffer evidence lookups decompress frames into keeps between lookups: a
/// frame of 64 activities is a few KiB, and one of huge activities up to about 1 MiB.
const KEPT_PLAIN_CAPACITY: usize = 256 << 10;

/// What a store keeps of the compacted blocks it read last, so that reading them again takes
/// neither SQL nor decompression: their frame indexes, the frames evidence was looked up in,
/// and the dictionaries' digests.
#[derive(Debug, Default)]
pub(crate) struct BlockCache {
    indexes: RefCell<Indexes>,
    frames: RefCell<Frames>,
    seen: RefCell<Seen>,
    /// The frame an evidence lookup decompressed last: one buffer, warm in the processor's
    /// caches, not an allocation a lookup.
    plain: RefCell<Plain>,
    /// Each dictionary's SHA-256 by its id: dictionaries are never deleted, so an id names
    /// one for the store's life.
    digests: RefCell<HashMap<i64, [u8; 32]>>,
}

/// The frame indexes of the blocks a store read last, parsed. Reading a block's index (a row
/// of several KB, on overflow pages SQLite reads around its cache) and parsing it cost half of
/// an evidence lookup (store-size: 63 of 130 µs) and a query about 100 µs a block. Kept by
/// block id with the row they were read for, and given back only for that same row; the
/// oldest read is dropped first.
#[derive(Debug, Default)]
struct Indexes {
    by_id: HashMap<i64, (BlockRow, Arc<[blocks::FrameInfo]>)>,
    /// Block ids, the oldest read first.
    order: VecDeque<i64>,
}

/// Frames evidence lookups read more than once, parsed, up to [`KEPT_FRAME_BYTES`]: an
/// alert's evidence is close in time and shares frames, and an alert's page is opened more
/// than once, while a lookup's decompression with the 1 MiB dictionary costs more than the
/// rest of it. Kept by frame id ([`frame_id`]) with the index of the block they were read
/// under, and given back only for that same index (the one [`Indexes`] gives for the block's
/// row: this entry keeps it alive, so no other index takes its address, even once [`Indexes`]
/// dropped it); the oldest parsed is dropped first.
#[derive(Debug, Default)]
struct Frames {
    /// Each frame with the index of the block it was read under.
    by_id: HashMap<i64, (Arc<[blocks::FrameInfo]>, Arc<blocks::ParsedFrame>)>,
    /// Frame ids, the oldest parsed first.
    order: VecDeque<i64>,
    /// The bytes of those kept ([`blocks::ParsedFrame::size`]).
    bytes: usize,
}

/// The frames evidence lookups decompressed once, by id, the newest [`SEEN_FRAMES`]: a frame
/// looked up again is likely to be again (an alert's page reopened), and is kept parsed
/// ([`Frames`]). Only ids: most evidence is looked up once, and keeping each frame it
/// decompressed (allocated, and dropped from a cache that turns over every few hundred
/// lookups) cost such a lookup the allocator's churn (an eighth of its time, perf) and 4 MiB
/// of fresh memory every few hundred lookups, more than decompressing again the frames read
/// twice. An id that a reused block id names again only has that block's frame parsed at its
/// first lookup.
#[derive(Debug, Default)]
struct Seen {
    ids: HashSet<i64>,
    /// The same ids, the oldest seen first.
    order: VecDeque<i64>,
}

/// The buffer evidence lookups decompress frames into, and the frame it holds: an alert's
/// evidence is looked up piece after piece (the console's alert page), in time order, so the
/// next piece is most often in the frame the last one was, which is then read from here, not
/// decompressed again.
#[derive(Debug, Default)]
struct Plain {
    bytes: Vec<u8>,
    /// The frame `bytes` hold ([`frame_id`]) with the index of the block it was read under
    /// (as [`Frames`] keeps it, and for the same reason); `None` while they are written, and
    /// once a decompression failed or the buffer was dropped.
    holds: Option<(i64, Arc<[blocks::FrameInfo]>)>,
}

impl Plain {
    /// Whether the buffer holds frame `id` of the block whose index is `index`.
    fn holds(&self, id: i64, index: &Arc<[blocks::FrameInfo]>) -> bool {
        self.holds
            .as_ref()
            .is_some_and(|(held, kept_for)| *held == id && Arc::ptr_eq(kept_for, index))
    }
}

impl BlockCache {
    fn index(&self, block: &BlockRow) -> Option<Arc<[blocks::FrameInfo]>> {
        let indexes = self.indexes.borrow();
        let (row, index) = indexes.by_id.get(&block.id)?;
        row.same_block(block).then(|| Arc::clone(index))
    }

    fn keep_index(&self, block: &BlockRow, index: Arc<[blocks::FrameInfo]>) {
        let mut indexes = self.indexes.borrow_mut();
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

    /// Frame `id`, if kept for the block whose index is `index`.
    fn frame(&self, id: i64, index: &Arc<[blocks::FrameInfo]>) -> Option<Arc<blocks::ParsedFrame>> {
        let frames = self.frames.borrow();
        let (kept_for, frame) = frames.by_id.get(&id)?;
        Arc::ptr_eq(kept_for, index).then(|| Arc::clone(frame))
    }

    /// Keeps frame `id` of the block whose index is `index`, in place of what was kept of it.
    fn keep_frame(
        &self,
        id: i64,
        index: &Arc<[blocks::FrameInfo]>,
        frame: Arc<blocks::ParsedFrame>,
    ) {
        let size = frame.size();
        if size > KEPT_FRAME_BYTES {
            return;
        }
        let mut frames = self.frames.borrow_mut();
        frames.bytes += size;
        match frames.by_id.insert(id, (Arc::clone(index), frame)) {
            Some((_, replaced)) => frames.bytes -= replaced.size(),
            None => frames.order.push_back(id),
        }
        while frames.bytes > KEPT_FRAME_BYTES {
            let Some(oldest) = frames.order.pop_front() else {
                break;
            };
            if let Some((_, dropped)) = frames.by_id.remove(&oldest) {
                frames.bytes -= dropped.size();
            }
        }
    }

    /// Whether frame `id` was decompressed before (among the last [`SEEN_FRAMES`]); it is
    /// from now on.
    fn seen_before(&self, id: i64) -> bool {
        let mut seen = self.seen.borrow_mut();
        if !seen.ids.insert(id) {
            return true;
        }
        seen.order.push_back(id);
        while seen.order.len() > SEEN_FRAMES {
            if let Some(oldest) = seen.order.pop_front() {
                seen.ids.remove(&oldest);
            }
        }
        false
    }
}

/// The blocks that may hold activities `query` selects, oldest first: by time range, sensor,
/// and the index keys of its protocol, account and address, with the frames holding all of
/// those keys.
pub(crate) fn query_blocks<T: Tier + ?Sized>(
    tier: &mut T,
    query: &Query,
) -> Result<Vec<BlockRow>, StoreError> {
    let mut filter = Filter::new(tier.dialect());
    if let Some(since) = query.since_ns {
        filter.push("max_time_ns >= ?", Param::Int(since));
    }
    if let Some(until) = query.until_ns {
        filter.push("min_time_ns < ?", Param::Int(until));
    }
    if let Some(sensor) = &query.sensor_id {
        filter.push("sensor_id = ?", Param::Text(sensor.clone()));
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
        let (condition, value) = tier.holding_key(key);
        filter.push(condition, value);
    }
    let mut found = tier.block_rows(filter)?;
    if found.is_empty() {
        return Ok(found);
    }
    // The frames each key is in, intersected: a frame lacking one of them holds no match. A
    // block read by its account frames takes the account's alone (the other keys name the
    // other frames).
    for key in &keys {
        let of_account = Some(key) == account_key.as_ref();
        let mut of_key = tier.postings(key)?;
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

/// Reads blocks, finding each dictionary's digest and each block's frame index once while
/// `cache` keeps them.
pub(crate) struct BlockReader<'c, T: ?Sized> {
    tier: &'c mut T,
    cache: &'c BlockCache,
}

impl<'c, T: Tier + ?Sized> BlockReader<'c, T> {
    pub(crate) fn new(tier: &'c mut T, cache: &'c BlockCache) -> Self {
        Self { tier, cache }
    }

    /// The store the reader reads, for the reads of its caller between blocks.
    pub(crate) fn tier(&mut self) -> &mut T {
        self.tier
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
        let numbers = select(&index);
        let infos = numbers
            .iter()
            .map(|number| {
                index.get(*number).ok_or(StoreError::Block {
                    id: block.id,
                    source: blocks::BlockError::Malformed,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<i64> = numbers
            .iter()
            .map(|number| frame_id(block.id, *number))
            .collect();
        let frames = self.tier.frames(&ids)?;
        let mut entries = Vec::new();
        for (data, info) in frames.iter().zip(infos) {
            entries.extend(self.decode(block, data, info, sieve, &mut keep)?);
        }
        Ok(entries)
    }

    /// What `block`'s row holds: a format 2 block's frame index, a format 1 block's entries.
    fn contents(&mut self, block: &BlockRow) -> Result<Contents, StoreError> {
        if let Some(index) = self.cache.index(block) {
            return Ok(Contents::Frames(index));
        }
        let failed = |source| StoreError::Block {
            id: block.id,
            source,
        };
        let data = self.tier.blob(Blob::Block, block.id)?;
        Ok(if block.format == blocks::FORMAT_SINGLE {
            Contents::Whole(blocks::decode_single(&data).map_err(failed)?)
        } else {
            let index: Arc<[blocks::FrameInfo]> =
                blocks::frame_index(&data, block.format, block.first_sequence, block.min_time_ns)
                    .map_err(failed)?
                    .into();
            self.cache.keep_index(block, Arc::clone(&index));
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
        let frame = self.tier.blob(Blob::Frame, frame_id(block.id, number))?;
        self.decode(block, &frame, info, sieve, keep)
    }

    /// The entries of `frame` (a frame of `block`, `info` its index entry) that `sieve`
    /// passes and `keep` keeps.
    fn decode(
        &mut self,
        block: &BlockRow,
        frame: &[u8],
        info: &blocks::FrameInfo,
        sieve: &blocks::Sieve,
        keep: impl FnMut(u64, u64, &Activity) -> bool,
    ) -> Result<Vec<blocks::Entry>, StoreError> {
        self.with_decompressor(block, |decompressor| {
            blocks::decode_frame(&block.sensor_id, frame, info, decompressor, sieve, keep)
        })
    }

    /// The activity at `position` of batch `sequence`, if `block` holds it.
    fn activity_in_block(
        &mut self,
        block: &BlockRow,
        sequence: u64,
        position: u64,
    ) -> Result<Option<Activity>, StoreError> {
        let wanted = [ActivityRef {
            sensor_id: &block.sensor_id,
            sequence,
            position,
        }];
        let mut found = [None];
        self.activities_in_block(block, &wanted, &[0], &mut found)?;
        let [found] = found;
        Ok(found)
    }

    /// The activity at (`sensor_id`, `sequence`, `position`) in a block spanning `sequence`
    /// other than `nearest` (which lacks it): where blocks overlap. Finding them walks every
    /// block of the sensor up to `sequence`.
    fn activity_beside(
        &mut self,
        nearest: Option<&BlockRow>,
        sensor_id: &str,
        sequence: u64,
        position: u64,
    ) -> Result<Option<Activity>, StoreError> {
        let candidates = self.tier.blocks_holding(sensor_id, sequence)?;
        for block in &candidates {
            if nearest.is_some_and(|nearest| nearest.same_block(block)) {
                continue;
            }
            if let Some(activity) = self.activity_in_block(block, sequence, position)? {
                return Ok(Some(activity));
            }
        }
        Ok(None)
    }

    /// Sets `found[at]` for each of `wanted` (indexes of `refs`, of `block`'s sensor) that
    /// `block` holds: its index read once, each frame read and decompressed once for every
    /// reference in it, the frames to read read together ([`Tier::frames`]).
    fn activities_in_block(
        &mut self,
        block: &BlockRow,
        refs: &[ActivityRef<'_>],
        wanted: &[usize],
        found: &mut [Option<Activity>],
    ) -> Result<(), StoreError> {
        let index = match self.contents(block)? {
            Contents::Frames(index) => index,
            Contents::Whole(entries) => {
                for &at in wanted {
                    let place = (refs[at].sequence, refs[at].position);
                    found[at] = entries
                        .iter()
                        .find(|entry| (entry.sequence, entry.position) == place)
                        .map(|entry| entry.activity.clone());
                }
                return Ok(());
            }
        };
        // Each reference with its frame's number; by frame, the one the buffer holds first
        // (before another takes its place), a frame's references in the caller's order.
        let mut by_frame: Vec<(usize, usize)> = wanted
            .iter()
            .filter_map(|&at| {
                blocks::frame_holding(&index, refs[at].sequence, refs[at].position)
                    .map(|number| (number, at))
            })
            .collect();
        let held = {
            let plain = self.cache.plain.borrow();
            by_frame
                .iter()
                .map(|&(number, _)| number)
                .find(|&number| plain.holds(frame_id(block.id, number), &index))
        };
        by_frame.sort_by_key(|&(number, _)| (Some(number) != held, number));
        // The frames that neither the buffer nor the cache hold, read in one go if several.
        let unread: Vec<i64> = if by_frame.len() > 1 {
            by_frame
                .chunk_by(|one, other| one.0 == other.0)
                .map(|of_frame| of_frame[0].0)
                .filter(|&number| Some(number) != held)
                .map(|number| frame_id(block.id, number))
                .filter(|&id| self.cache.frame(id, &index).is_none())
                .collect()
        } else {
            Vec::new()
        };
        let mut data: Vec<(i64, Vec<u8>)> = if unread.len() > 1 {
            unread
                .iter()
                .copied()
                .zip(self.tier.frames(&unread)?)
                .collect()
        } else {
            Vec::new()
        };
        for of_frame in by_frame.chunk_by(|one, other| one.0 == other.0) {
            let number = of_frame[0].0;
            let id = frame_id(block.id, number);
            let read = data
                .iter()
                .position(|(read, _)| *read == id)
                .map(|at| data.swap_remove(at).1);
            self.activities_in_frame(block, &index, number, read, refs, of_frame, found)?;
        }
        Ok(())
    }

    /// Sets `found[at]` for each of `wanted` ((`number`, index of `refs`)) that frame `number` of
    /// `block` (`index` its frame index) holds, the frame read from the cache, else from the
    /// buffer if the last lookup decompressed it ([`Plain`]), else decompressed (from `read`
    /// when read already); kept in the cache parsed for the next lookups in it if it was
    /// decompressed before ([`Seen`]).
    #[expect(
        clippy::too_many_arguments,
        reason = "the frame's place (block, index, number), its data if read, and the references with their answers"
    )]
    fn activities_in_frame(
        &mut self,
        block: &BlockRow,
        index: &Arc<[blocks::FrameInfo]>,
        number: usize,
        read: Option<Vec<u8>>,
        refs: &[ActivityRef<'_>],
        wanted: &[(usize, usize)],
        found: &mut [Option<Activity>],
    ) -> Result<(), StoreError> {
        let failed = |source| StoreError::Block {
            id: block.id,
            source,
        };
        let id = frame_id(block.id, number);
        let info = index
            .get(number)
            .ok_or_else(|| failed(blocks::BlockError::Malformed))?;
        let place = |at: usize| (refs[at].sequence, refs[at].position);
        if let Some(parsed) = self.cache.frame(id, index) {
            for &(_, at) in wanted {
                let (sequence, position) = place(at);
                found[at] = parsed
                    .activity_at(&block.sensor_id, sequence, position)
                    .map_err(failed)?;
            }
            return Ok(());
        }
        let cache = self.cache;
        let mut plain = cache.plain.borrow_mut();
        if !plain.holds(id, index) {
            let frame = match read {
                Some(frame) => frame,
                None => self.tier.blob(Blob::Frame, id)?,
            };
            plain.holds = None;
            self.with_decompressor(block, |decompressor| {
                blocks::decompress_frame_into(&frame, info, decompressor, &mut plain.bytes)
            })?;
            plain.holds = Some((id, Arc::clone(index)));
        }
        let plain = &mut *plain;
        if cache.seen_before(id) {
            let parsed = Arc::new(blocks::ParsedFrame::parse(&plain.bytes, info).map_err(failed)?);
            cache.keep_frame(id, index, Arc::clone(&parsed));
            for &(_, at) in wanted {
                let (sequence, position) = place(at);
                found[at] = parsed
                    .activity_at(&block.sensor_id, sequence, position)
                    .map_err(failed)?;
            }
        } else {
            // One walk of the frame's columns, up to the last wanted.
            let sieve = blocks::Sieve::among(wanted.iter().map(|&(_, at)| place(at)).collect());
            let entries =
                blocks::decode_plain(&block.sensor_id, &plain.bytes, info, &sieve, |_, _, _| true)
                    .map_err(failed)?;
            // The first entry at a place answers for it (as `ParsedFrame::activity_at`), the
            // same place wanted twice given a copy.
            for entry in entries {
                let mut answers = wanted.iter().map(|&(_, at)| at).filter(|&at| {
                    found[at].is_none() && place(at) == (entry.sequence, entry.position)
                });
                let Some(first) = answers.next() else {
                    continue;
                };
                let copies: Vec<usize> = answers.collect();
                for at in copies {
                    found[at] = Some(entry.activity.clone());
                }
                found[first] = Some(entry.activity);
            }
        }
        if plain.bytes.capacity() > KEPT_PLAIN_CAPACITY {
            *plain = Plain::default();
        }
        Ok(())
    }

    /// Runs `work` with this thread's decompressor for `block`'s dictionary; its errors are
    /// `block`'s.
    fn with_decompressor<R>(
        &mut self,
        block: &BlockRow,
        work: impl FnOnce(&mut zstd::bulk::Decompressor<'static>) -> Result<R, blocks::BlockError>,
    ) -> Result<R, StoreError> {
        let digest = match block.dictionary_id {
            Some(id) => Some(self.digest(id)?),
            None => None,
        };
        with_decompressor(self.tier, block.dictionary_id, digest, |decompressor| {
            work(decompressor).map_err(|source| StoreError::Block {
                id: block.id,
                source,
            })
        })
    }

    /// The SHA-256 of dictionary `id` of the store.
    fn digest(&mut self, id: i64) -> Result<[u8; 32], StoreError> {
        let known = self.cache.digests.borrow().get(&id).copied();
        if let Some(known) = known {
            return Ok(known);
        }
        let digest = self.tier.blob(Blob::DictionaryDigest, id)?;
        let digest: [u8; 32] = digest.try_into().map_err(|_| StoreError::Block {
            id,
            source: blocks::BlockError::Malformed,
        })?;
        self.cache.digests.borrow_mut().insert(id, digest);
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
fn with_decompressor<R>(
    tier: &mut (impl Tier + ?Sized),
    id: Option<i64>,
    digest: Option<[u8; 32]>,
    work: impl FnOnce(&mut zstd::bulk::Decompressor<'static>) -> Result<R, StoreError>,
) -> Result<R, StoreError> {
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
                    prepared_dictionary(tier, id, digest)?,
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
    tier: &mut (impl Tier + ?Sized),
    id: i64,
    digest: [u8; 32],
) -> Result<&'static zstd::dict::DecoderDictionary<'static>, StoreError> {
    let mut prepared = PREPARED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(known) = prepared.get(&digest) {
        return Ok(known);
    }
    let data = tier.blob(Blob::Dictionary, id)?;
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
pub(in crate::store) fn frame_id(block_id: i64, number: usize) -> i64 {
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
pub(crate) fn compacted_counts<T: Tier + ?Sized>(
    tier: &mut T,
    cache: &BlockCache,
    query: &Query,
    mut each: impl FnMut(&str, u64, i64, i64),
) -> Result<(), StoreError> {
    let found = query_blocks(tier, query)?;
    let mut reader = BlockReader::new(tier, cache);
    for block in found {
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
pub(crate) fn newest_compacted<T: Tier + ?Sized>(
    tier: &mut T,
    cache: &BlockCache,
    query: &Query,
    mut each: impl FnMut(StoredActivity, u64) -> bool,
) -> Result<(), StoreError> {
    let found = query_blocks(tier, query)?;
    let mut reader = BlockReader::new(tier, cache);
    let wanted = sieve(query);
    // Decoded, not yet handed on: a max-heap, the newest on top.
    let mut ready = std::collections::BinaryHeap::new();
    // Every wanted frame of every block, oldest first (popped from the end): (its newest
    // time, its block, its number, its index entry). A format 1 block is read whole now.
    let mut frames = Vec::new();
    for (at, block) in found.iter().enumerate() {
        match reader.contents(block)? {
            Contents::Whole(entries) => hold(
                &mut ready,
                block,
                entries
                    .into_iter()
                    .filter(|entry| query.matches_activity(&block.sensor_id, &entry.activity)),
            ),
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
        // The frame's entries are those `query` selects already (tested as decoded).
        hold(&mut ready, block, entries);
    }
    Ok(())
}

/// Adds `entries` of `block` to `ready`.
fn hold(
    ready: &mut std::collections::BinaryHeap<Ordered>,
    block: &BlockRow,
    entries: impl IntoIterator<Item = blocks::Entry>,
) {
    ready.extend(entries.into_iter().map(|entry| Ordered {
        position: entry.position,
        stored: StoredActivity {
            sensor_id: block.sensor_id.clone(),
            sequence: entry.sequence,
            activity: entry.activity,
        },
    }));
}

/// The compacted activity at (`sensor_id`, `sequence`, `position`); were there two, the one
/// in the block starting nearest before it ([`Tier::nearest_block`]) if that holds one.
pub(crate) fn activity_at<T: Tier + ?Sized>(
    tier: &mut T,
    cache: &BlockCache,
    sensor_id: &str,
    sequence: u64,
    position: u64,
) -> Result<Option<Activity>, StoreError> {
    let nearest = tier
        .nearest_block(sensor_id, sequence)?
        .filter(|block| block.spans(sequence));
    let mut reader = BlockReader::new(tier, cache);
    if let Some(block) = &nearest
        && let Some(activity) = reader.activity_in_block(block, sequence, position)?
    {
        return Ok(Some(activity));
    }
    reader.activity_beside(nearest.as_ref(), sensor_id, sequence, position)
}

/// [`activity_at`] of each of `refs` whose answer `found` (in their order) lacks, in place:
/// the nearest blocks of a sensor's sequences read together, each block's index once, each
/// frame read and decompressed once for all the references in it (an alert's evidence
/// shares frames), the frames of a block read together (one round trip on PostgreSQL).
pub(crate) fn fill_compacted<T: Tier + ?Sized>(
    tier: &mut T,
    cache: &BlockCache,
    refs: &[ActivityRef<'_>],
    found: &mut [Option<Activity>],
) -> Result<(), StoreError> {
    let mut by_sensor: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (at, reference) in refs.iter().enumerate() {
        if found.get(at).is_some_and(Option::is_none) {
            by_sensor.entry(reference.sensor_id).or_default().push(at);
        }
    }
    for (sensor_id, wanted) in by_sensor {
        let sequences: Vec<u64> = wanted
            .iter()
            .map(|&at| refs[at].sequence)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let nearest = tier.nearest_blocks(sensor_id, &sequences)?;
        // Each reference's nearest block (`None`: no block spans its sequence), and the
        // references each distinct block is the nearest of.
        let mut blocks: Vec<(BlockRow, Vec<usize>)> = Vec::new();
        let mut nearest_of: Vec<Option<usize>> = Vec::with_capacity(wanted.len());
        for &at in &wanted {
            let sequence = refs[at].sequence;
            let block = sequences
                .binary_search(&sequence)
                .ok()
                .and_then(|number| nearest.get(number))
                .and_then(Option::as_ref)
                .filter(|block| block.spans(sequence));
            let Some(block) = block else {
                nearest_of.push(None);
                continue;
            };
            let number = blocks
                .iter()
                .position(|(kept, _)| kept.same_block(block))
                .unwrap_or_else(|| {
                    blocks.push((block.columns(), Vec::new()));
                    blocks.len() - 1
                });
            blocks[number].1.push(at);
            nearest_of.push(Some(number));
        }
        let mut reader = BlockReader::new(tier, cache);
        for (block, in_block) in &blocks {
            reader.activities_in_block(block, refs, in_block, found)?;
        }
        // Those their nearest block lacks, looked for as `activity_at` does.
        for (&at, nearest) in wanted.iter().zip(nearest_of) {
            if found[at].is_some() {
                continue;
            }
            let reference = refs[at];
            found[at] = reader.activity_beside(
                nearest.map(|number| &blocks[number].0),
                sensor_id,
                reference.sequence,
                reference.position,
            )?;
        }
    }
    Ok(())
}

/// The dictionary new blocks are compressed with, and its id: the newest one stored, unless it
/// was trained on fewer than [`blocks::TRAIN_ACTIVITIES`] and `samples` (activities about to
/// be compacted, of one sensor each, up to that many) are twice as many or that many: then
/// one trained on them. With no dictionary yet, one trained on `samples` when they are enough
/// ([`blocks::TRAIN_MIN_ACTIVITIES`]); else none. Blocks keep the id of theirs, so a replaced
/// dictionary stays readable.
pub(crate) fn dictionary(
    writer: &mut dyn TierWriter,
    samples: impl FnOnce(&mut dyn TierWriter) -> Result<Vec<(String, Vec<blocks::Entry>)>, StoreError>,
    now_ns: i64,
) -> Result<(Option<i64>, Vec<u8>), StoreError> {
    const TRAIN: usize = blocks::TRAIN_ACTIVITIES;
    let newest = writer.newest_dictionary()?;
    let (kept_id, kept, trained_on) = match newest {
        Some((id, data, Some(trained_on))) if to_u64(trained_on) < TRAIN as u64 => {
            (Some(id), data, usize::try_from(trained_on).unwrap_or(0))
        }
        Some((id, data, _)) => return Ok((Some(id), data)),
        None => (None, Vec::new(), 0),
    };
    let samples = samples(writer)?;
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
    let id = writer.insert_dictionary(
        now_ns,
        Sha256::digest(&data).as_slice(),
        &data,
        to_i64(activities as u64),
    )?;
    Ok((Some(id), data))
}

/// Writes `entries` (of `sensor_id`, in order) as a block compressed with the dictionary
/// `dictionary_id` (the one `compressor` holds).
pub(crate) fn insert_block(
    writer: &mut dyn TierWriter,
    sensor_id: &str,
    entries: &[blocks::Entry],
    compressor: &mut zstd::bulk::Compressor<'_>,
    dictionary_id: Option<i64>,
) -> Result<(), StoreError> {
    let times = entries.iter().map(|entry| time_ns(&entry.activity));
    let sequences = entries.iter().map(|entry| entry.sequence);
    let encoded = blocks::encode(sensor_id, entries, compressor)
        .map_err(|source| StoreError::Block { id: 0, source })?;
    writer.insert_block(&NewBlock {
        sensor_id,
        first_sequence: to_i64(sequences.clone().min().unwrap_or(0)),
        last_sequence: to_i64(sequences.max().unwrap_or(0)),
        min_time_ns: times.clone().min().unwrap_or(0),
        max_time_ns: times.max().unwrap_or(0),
        count: i64::try_from(entries.len()).unwrap_or(i64::MAX),
        format: blocks::FORMAT_ACCOUNT_FRAMES,
        dictionary_id,
        encoded: &encoded,
    })?;
    Ok(())
}

/// Deletes blocks with their frames and keys; returns the activities they held.
pub(crate) fn delete_blocks(
    writer: &mut dyn TierWriter,
    blocks: &[(i64, i64)],
) -> Result<u64, StoreError> {
    if blocks.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = blocks.iter().map(|(id, _)| *id).collect();
    writer.delete_block_rows(&ids)?;
    Ok(blocks.iter().map(|(_, count)| to_u64(*count)).sum())
}

/// Deletes activities older than `before_ns` (blocks whose newest activity is); how many.
pub(crate) fn prune(store: &mut impl Compacting, before_ns: i64) -> Result<u64, StoreError> {
    store.write(|writer| {
        let rows = writer.delete_rows_before(before_ns)?;
        let blocks = writer.blocks_before(before_ns)?;
        Ok(rows + delete_blocks(writer, &blocks)?)
    })
}

/// Moves activities stored before `before_ns` that detection has judged (and never the
/// newest row, whose id numbers the next ones) into compressed blocks of up to
/// `BLOCK_ACTIVITIES` per sensor.
pub(crate) fn compact(
    store: &mut impl Compacting,
    before_ns: i64,
) -> Result<Compacted, StoreError> {
    let (limit, sensors) = store.write(|writer| {
        let limit = writer.compact_limit()?;
        Ok((limit, writer.compact_sensors(limit, before_ns)?))
    })?;
    let mut done = Compacted::default();
    if sensors.is_empty() {
        return Ok(done);
    }
    let (dictionary_id, dictionary) = store.write(|writer| {
        dictionary(
            writer,
            |writer| {
                let mut samples = Vec::new();
                let mut left = blocks::TRAIN_ACTIVITIES;
                for sensor in &sensors {
                    let (_, entries) = writer.compactable(sensor, limit, before_ns, left)?;
                    left -= entries.len();
                    samples.push((sensor.clone(), entries));
                    if left == 0 {
                        break;
                    }
                }
                Ok(samples)
            },
            crate::directory::now_ns(),
        )
    })?;
    let mut compressor =
        blocks::compressor(&dictionary).map_err(|source| StoreError::Block { id: 0, source })?;
    for sensor in sensors {
        loop {
            let compacted = store.write(|writer| {
                let (ids, entries) =
                    writer.compactable(&sensor, limit, before_ns, blocks::BLOCK_ACTIVITIES)?;
                if !entries.is_empty() {
                    insert_block(writer, &sensor, &entries, &mut compressor, dictionary_id)?;
                    writer.delete_rows(&ids)?;
                }
                Ok(entries.len())
            })?;
            if compacted == 0 {
                break;
            }
            done.blocks += 1;
            done.activities += compacted as u64;
            if compacted < blocks::BLOCK_ACTIVITIES {
                break;
            }
        }
    }
    Ok(done)
}

/// Both tiers' activities `query` selects, in time order (then sensor, sequence, position),
/// each handed to `each`: the hot tier's as `hot` gives them (the next, in that order, read
/// through the store it is handed), merged with the blocks'. A block is opened once the output
/// reaches its oldest activity, so only overlapping blocks are held at once.
pub(crate) fn merged<T: Tier + ?Sized>(
    tier: &mut T,
    cache: &BlockCache,
    query: &Query,
    mut hot: impl FnMut(&mut T) -> Result<Option<Ordered>, StoreError>,
    mut each: impl FnMut(StoredActivity) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut pending = query_blocks(tier, query)?.into_iter().peekable();
    let mut reader = BlockReader::new(tier, cache);
    let mut hot_first = hot(reader.tier())?;
    let mut open: std::collections::BinaryHeap<std::cmp::Reverse<Ordered>> =
        std::collections::BinaryHeap::new();
    loop {
        let open_first = open.peek().map(|top| &top.0);
        let (next_time, from_hot) = match (&hot_first, open_first) {
            (Some(hot), Some(open)) => (Some(hot.time_ns()), hot <= open),
            (Some(hot), None) => (Some(hot.time_ns()), true),
            (None, Some(open)) => (Some(open.time_ns()), false),
            (None, None) => (None, false),
        };
        if let Some(block) =
            pending.next_if(|block| next_time.is_none_or(|time| block.min_time_ns <= time))
        {
            for entry in reader.entries(&block, query)? {
                let stored = StoredActivity {
                    sensor_id: block.sensor_id.clone(),
                    sequence: entry.sequence,
                    activity: entry.activity,
                };
                if query.matches(&stored) {
                    open.push(std::cmp::Reverse(Ordered {
                        position: entry.position,
                        stored,
                    }));
                }
            }
            continue;
        }
        let next = if from_hot {
            let taken = hot_first.take();
            hot_first = hot(reader.tier())?;
            taken
        } else {
            open.pop().map(|top| top.0)
        };
        match next {
            Some(ordered) => each(ordered.stored)?,
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_frames_stay_within_their_bytes_the_oldest_dropped_first() {
        let cache = BlockCache::default();
        let info = blocks::FrameInfo {
            first_sequence: 1,
            first_position: 0,
            last_sequence: 1,
            min_time_ns: 0,
            max_time_ns: 0,
            plain_len: 0,
            format: blocks::FORMAT_ACCOUNT_FRAMES,
            by_account: false,
        };
        // Two blocks' indexes, equal in content: a frame is told apart by the one it was read
        // under.
        let index: Arc<[blocks::FrameInfo]> = vec![info].into();
        let other: Arc<[blocks::FrameInfo]> = vec![info].into();
        let quarter = KEPT_FRAME_BYTES / 4;
        let frame = |length: usize| Arc::new(blocks::ParsedFrame::filler(length));
        for id in 0..6 {
            cache.keep_frame(id, &index, frame(quarter));
        }
        assert!(cache.frames.borrow().bytes <= KEPT_FRAME_BYTES);
        let kept: Vec<i64> = (0..6)
            .filter(|id| cache.frame(*id, &index).is_some())
            .collect();
        assert_eq!(kept, [2, 3, 4, 5], "the four newest fit");
        assert!(
            cache.frame(5, &other).is_none(),
            "given back for the index it was read under only"
        );
        cache.keep_frame(9, &index, frame(KEPT_FRAME_BYTES + 1));
        assert!(
            cache.frame(9, &index).is_none(),
            "larger than the whole cache"
        );
        assert_eq!(
            cache.frame(2, &index).map(|frame| frame.size()),
            Some(quarter)
        );
        // A frame kept again takes the place of what was kept of it, and of its count.
        cache.keep_frame(5, &index, frame(0));
        assert_eq!(cache.frame(5, &index).map(|frame| frame.size()), Some(0));
        assert_eq!(cache.frames.borrow().bytes, 3 * quarter);
    }

    #[test]
    fn frames_seen_are_the_newest_bounded_in_number() {
        let cache = BlockCache::default();
        assert!(!cache.seen_before(7), "new");
        assert!(cache.seen_before(7), "seen once");
        for id in 100..100 + i64::try_from(SEEN_FRAMES).expect("small") {
            assert!(!cache.seen_before(id));
        }
        assert_eq!(cache.seen.borrow().ids.len(), SEEN_FRAMES);
        assert_eq!(cache.seen.borrow().order.len(), SEEN_FRAMES);
        assert!(!cache.seen_before(7), "forgotten once the oldest");
        assert!(cache.seen_before(101), "remembered");
        assert!(!cache.seen_before(100), "the oldest, dropped for 7");
    }
}
