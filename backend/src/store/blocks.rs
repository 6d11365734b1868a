//! The compacted tier of the activity store: activities older than the hot window, in blocks
//! of up to [`BLOCK_ACTIVITIES`] per sensor.
//!
//! A block (format 2 on, [`FORMAT_FRAMES`]) is cut into frames of up to [`FRAME_ACTIVITIES`]; each
//! frame is compressed on its own with zstd and the store's trained dictionary, after its
//! protobuf fields are laid out column by column (every activity's field N together). The keys
//! queries filter on (protocol, account, address) are indexed per block, each with the frames
//! that hold it ([`postings`]), so a query decompresses only the frames it may want: the
//! dictionary gives a small frame the context a large block would have. Fields the store can
//! give back exactly are left out: the sensor id (the block's) and the Community ID (a hash of
//! the endpoints), each only when recomputing it gives the same value. A query reads an
//! activity's keys (account, addresses, protocol, time) before the rest, and decodes whole only
//! those it keeps.
//!
//! Format 4 ([`FORMAT_POSITION_DELTAS`]) writes each activity's position in its batch as a
//! difference to the expected one; formats 1 to 3 are still read (format 1: one zstd frame for
//! the whole block, no dictionary, every frame of it in the index): stores compacted before
//! keep them until retention deletes them.
//!
//! A block holds its activities whole: decoding gives back what the sensor sent.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, SocketAddr},
    ops::ControlFlow,
};

use dcwatch_pipeline::{community_id, dissect::datagram_flow_id};
use dcwatch_proto::{
    json::{endpoint_ip, protocol_name},
    v1::{Activity, Endpoint},
};
use prost::Message as _;

/// Activities in one block at most: a block is the unit of the key index, so larger blocks
/// mean fewer index rows per activity (store-size: keys 0.95 bytes an activity with 32,768,
/// 1.01 with 16,384; about 50 s of a sensor's activities each at 1000 packets/s, now 100 s).
pub const BLOCK_ACTIVITIES: usize = 32_768;
/// Activities in one frame at most: the unit a query decompresses. 64 rather than 32: half
/// the frame index and fewer keys' frames, more context a frame (store-size: 9.9 bytes an
/// activity, from 11.2 with 32).
pub const FRAME_ACTIVITIES: usize = 64;
/// Activities in one of the samples a dictionary is trained on: frames of 32, not of
/// [`FRAME_ACTIVITIES`]. zstd's trainer fills a 1 MiB dictionary from 131,072 activities in
/// samples of 32, not in half as many of 64 (it gave 512 KiB, and frames of 9.1 bytes an
/// activity where 1 MiB gives 8.4).
pub const SAMPLE_ACTIVITIES: usize = 32;
/// A frame is cut before this many bytes of protobuf, whatever its count (huge activities).
const FRAME_MAX_PLAIN: usize = 1 << 20;
/// zstd's level for frames: compaction runs in the background, once per activity.
pub const BLOCK_ZSTD_LEVEL: i32 = 19;
/// Activities a dictionary is trained on (a compaction's oldest), and the fewest worth training
/// on: below that, blocks are compressed without one until a later compaction has enough. A
/// dictionary trained on fewer than `TRAIN_ACTIVITIES` is smaller ([`train`]) and replaced by
/// a full one once a compaction has that many.
pub const TRAIN_ACTIVITIES: usize = 131_072;
pub const TRAIN_MIN_ACTIVITIES: usize = 8_192;
/// The dictionary's size: stored once and used by every block after it, so a large one costs
/// little a day (1 MiB is 0.04 bytes an activity over a day at 1000 packets/s) and lets a frame
/// of 32 activities find most of its content in it (store-size: frames of 8.5 bytes an activity
/// with 1 MiB, 10.2 with 512 KiB).
pub const DICTIONARY_BYTES: usize = 1 << 20;
/// The smallest dictionary [`train`] settles for when the samples are too few for a larger one.
const DICTIONARY_MIN_BYTES: usize = 16 << 10;

/// One zstd frame per block, columns, no dictionary (stores compacted before format 2).
pub const FORMAT_SINGLE: i64 = 1;
/// Frames compressed one by one with the store's dictionary, fields left out when recomputable;
/// the frame index's times in nanoseconds from the block's oldest (stores compacted before
/// format 3).
pub const FORMAT_FRAMES: i64 = 2;
/// Format 2 with a smaller frame index: its times in microseconds (a frame's oldest rounded
/// down, its newest up), each frame's oldest and first sequence as differences to the previous
/// frame's (store-size: 0.58 bytes an activity of index in format 2).
pub const FORMAT_FRAMES_MICROS: i64 = 3;
/// Format 3 with each activity's position in its batch written as its difference to the one
/// expected (the previous activity's plus one in the same batch, else 0) instead of whole: an
/// increasing count is new bytes to zstd at every activity, its differences are zeros.
pub const FORMAT_POSITION_DELTAS: i64 = 4;
/// Format 4 with account frames: after the block's frames (every activity, in the order they
/// came), its activities that name an account once more, ordered by account ([`encode`]), so
/// that an account's activities of a block sit in a frame or two rather than in one frame of
/// every stretch of time it was active in. An account's key gives its account frames; every
/// other key, and a query without an account, the others. Sequences are written as signed
/// differences (an account frame goes back in sequence between accounts).
pub const FORMAT_ACCOUNT_FRAMES: i64 = 5;

/// A frame's row id in `activity_frames` is its block's id shifted by this, plus its index.
pub const FRAME_ID_BITS: u32 = 16;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS activity_blocks (
    id INTEGER PRIMARY KEY,
    sensor_id TEXT NOT NULL,
    first_sequence INTEGER NOT NULL,
    last_sequence INTEGER NOT NULL,
    min_time_ns INTEGER NOT NULL,
    max_time_ns INTEGER NOT NULL,
    count INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS activity_blocks_time ON activity_blocks (min_time_ns, max_time_ns);
CREATE TABLE IF NOT EXISTS activity_block_keys (
    key TEXT NOT NULL,
    block_id INTEGER NOT NULL,
    PRIMARY KEY (key, block_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS activity_frames (
    id INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS activity_dictionaries (
    id INTEGER PRIMARY KEY,
    created_ns INTEGER NOT NULL,
    digest BLOB NOT NULL,
    data BLOB NOT NULL
);
";

/// Indexes on the tables with their [`ADDED_COLUMNS`], made once those are. A block is found
/// for an evidence lookup (by sensor and sequence) in its index entry alone: its row's columns
/// after its data (the format and the dictionary, added to format 1's table) sit past the
/// data on its overflow pages, which the index it replaces had every lookup read (a third of a
/// lookup's instructions, callgrind).
pub(crate) const INDEXES: &str = "
DROP INDEX IF EXISTS activity_blocks_ref;
CREATE INDEX IF NOT EXISTS activity_blocks_holding ON activity_blocks (sensor_id, first_sequence,
    last_sequence, min_time_ns, max_time_ns, count, format, dictionary_id);
";

/// Columns added to format 1's tables (by `ALTER TABLE` on stores that lack them): a block's
/// format and dictionary, a key's frames (NULL: every frame), and how many activities a
/// dictionary was trained on (NULL, for those trained before it was kept: enough).
pub(crate) const ADDED_COLUMNS: [(&str, &str, &str); 4] = [
    ("activity_blocks", "format", "INTEGER NOT NULL DEFAULT 1"),
    ("activity_blocks", "dictionary_id", "INTEGER"),
    ("activity_block_keys", "frames", "BLOB"),
    ("activity_dictionaries", "trained_on", "INTEGER"),
];

/// One activity of a block, with its place in the sensor's stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub sequence: u64,
    pub position: u64,
    pub activity: Activity,
}

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("zstd: {0}")]
    Zstd(std::io::Error),
    #[error("block is cut short or inconsistent")]
    Malformed,
    #[error("an activity in the block does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
}

/// A format 2 block as compaction writes it.
#[derive(Debug)]
pub struct Encoded {
    /// The frames' index ([`frame_index`] reads it): the block row's data.
    pub index: Vec<u8>,
    /// Each frame, compressed.
    pub frames: Vec<Vec<u8>>,
    /// Each key of the block with the frames that hold it ([`frames_of`] reads them).
    pub keys: BTreeMap<String, Vec<u8>>,
}

/// How many of a block's activities of one account (by its key) are of one protocol, and the
/// oldest and newest of their times: what a format 5 block's account key keeps with its
/// frames ([`counts_of`]), so that an account's counts by protocol need no frame decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Count {
    pub protocol: String,
    pub count: u64,
    pub first_ns: i64,
    pub last_ns: i64,
}

/// What the index says of one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameInfo {
    pub first_sequence: u64,
    /// The position of the frame's first activity (in batch `first_sequence`).
    pub first_position: u64,
    pub last_sequence: u64,
    pub min_time_ns: i64,
    pub max_time_ns: i64,
    /// Its size once decompressed.
    pub plain_len: usize,
    /// The block's format, which says how the frame lays out its activities.
    pub format: i64,
    /// Whether it is one of a format 5 block's account frames.
    pub by_account: bool,
}

/// The frame of a block's `index` that may hold the activity at `position` of batch
/// `sequence`: a block's frames (its account frames come after them) hold its activities in
/// (sequence, position) order, so it is the last that starts at or before that. Found by
/// bisection: an index has hundreds of frames, and walking them from its end took 13% of an
/// evidence lookup's instructions (callgrind).
pub fn frame_holding(index: &[FrameInfo], sequence: u64, position: u64) -> Option<usize> {
    let frames = index.partition_point(|frame| !frame.by_account);
    index[..frames]
        .partition_point(|frame| {
            (frame.first_sequence, frame.first_position) <= (sequence, position)
        })
        .checked_sub(1)
}

/// The keys of one activity: protocol, account name and addresses, as [`protocol_key`],
/// [`account_key`], [`address_key`] spell them; each with whether it is the account's.
fn activity_keys(activity: &Activity, mut key: impl FnMut(String, bool)) {
    key(protocol_key(protocol_name(activity.body.as_ref())), false);
    if let Some(name) = account_of(activity) {
        key(account_key(name), true);
    }
    for endpoint in [&activity.src, &activity.dst].into_iter().flatten() {
        if let Some(ip) = endpoint_ip(endpoint) {
            key(address_key(&ip.to_string()), false);
        }
    }
}

/// The account name `activity` is indexed by, if it names one.
fn account_of(activity: &Activity) -> Option<&str> {
    activity
        .account
        .as_ref()
        .map(|account| account.name.as_str())
        .filter(|name| !name.is_empty())
}

/// The entries of `entries` (of one sensor, in order) that name an account, ordered by
/// account, then as they came, and the frames format 5 cuts them into: up to `per_frame`
/// each ([`frame_ranges`]), of one account each, so that a query by account decompresses its
/// own activities and few others.
fn by_account(entries: &[Entry], per_frame: usize) -> (Vec<Entry>, Vec<std::ops::Range<usize>>) {
    let mut named: Vec<(String, &Entry)> = entries
        .iter()
        .filter_map(|entry| Some((account_key(account_of(&entry.activity)?), entry)))
        .collect();
    // Stable: within one account, the order they came in.
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let mut ranges = Vec::new();
    let mut start = 0;
    for at in 1..=named.len() {
        if at == named.len() || named[at].0 != named[start].0 {
            let run: Vec<&Entry> = named[start..at].iter().map(|(_, entry)| *entry).collect();
            ranges.extend(
                frame_ranges(&run, per_frame)
                    .into_iter()
                    .map(|range| range.start + start..range.end + start),
            );
            start = at;
        }
    }
    let named = named.into_iter().map(|(_, entry)| entry.clone()).collect();
    (named, ranges)
}

pub fn protocol_key(protocol: &str) -> String {
    format!("p:{}", protocol.to_lowercase())
}

/// Accounts are matched without regard to case, as the hot tier's NOCASE index does.
pub fn account_key(name: &str) -> String {
    format!("a:{}", name.to_lowercase())
}

pub fn address_key(ip: &str) -> String {
    format!("i:{ip}")
}

/// Per-activity flags of format 2: what was left out and how to put it back.
const SENSOR_ID_OF_BLOCK: u64 = 1;
const COMMUNITY_ID_TCP: u64 = 2;
const COMMUNITY_ID_UDP: u64 = 4;
/// The time is in the layout, as a difference to the previous one's, in nanoseconds...
const TIME_NANOS: u64 = 8;
/// ... or in microseconds, when it is a whole number of them (most captures' resolution).
const TIME_MICROS: u64 = 16;
/// The flow id is a UDP exchange's, recomputed from the endpoints.
const FLOW_ID_UDP: u64 = 32;

/// One activity as a frame lays it out: its place, what was left out ([`strip`]), its time
/// when left out of the protobuf, and the rest as protobuf.
struct Row {
    sequence: u64,
    position: u64,
    flags: u64,
    time_ns: i64,
    bytes: Vec<u8>,
}

/// The activity without what the block can give back, as a [`Row`].
fn strip(sensor_id: &str, entry: &Entry) -> Row {
    let activity = &entry.activity;
    let mut stripped = activity.clone();
    let mut flags = 0;
    if stripped.sensor_id == sensor_id {
        stripped.sensor_id.clear();
        flags |= SENSOR_ID_OF_BLOCK;
    }
    if !stripped.community_id.is_empty() {
        for (flag, protocol) in [
            (COMMUNITY_ID_TCP, community_id::TCP),
            (COMMUNITY_ID_UDP, community_id::UDP),
        ] {
            if recomputed_community_id(activity, protocol).as_ref() == Some(&activity.community_id)
            {
                stripped.community_id.clear();
                flags |= flag;
                break;
            }
        }
    }
    if !stripped.flow_id.is_empty()
        && sockets(activity)
            .map(|(src, dst)| datagram_flow_id(src, dst))
            .as_ref()
            == Some(&activity.flow_id)
    {
        stripped.flow_id.clear();
        flags |= FLOW_ID_UDP;
    }
    let mut time_ns = 0;
    if let Some(time) = &activity.time
        && (0..1_000_000_000).contains(&time.nanos)
        && let Some(exact) = time
            .seconds
            .checked_mul(1_000_000_000)
            .and_then(|ns| ns.checked_add(i64::from(time.nanos)))
    {
        stripped.time = None;
        time_ns = exact;
        flags |= if time.nanos % 1000 == 0 {
            TIME_MICROS
        } else {
            TIME_NANOS
        };
    }
    Row {
        sequence: entry.sequence,
        position: entry.position,
        flags,
        time_ns,
        bytes: stripped.encode_to_vec(),
    }
}

/// What [`strip`] left out that costs little to put back: the sensor id and the time.
fn restore_plain(
    sensor_id: &str,
    activity: &mut Activity,
    flags: u64,
    time_ns: i64,
) -> Result<(), BlockError> {
    if flags & SENSOR_ID_OF_BLOCK != 0 {
        sensor_id.clone_into(&mut activity.sensor_id);
    }
    if flags & (TIME_NANOS | TIME_MICROS) != 0 {
        activity.time = Some(pbjson_types::Timestamp {
            seconds: time_ns.div_euclid(1_000_000_000),
            nanos: i32::try_from(time_ns.rem_euclid(1_000_000_000))
                .map_err(|_| BlockError::Malformed)?,
        });
    }
    Ok(())
}

/// The hashes [`strip`] left out, recomputed (a SHA-1 each: done only for what a query keeps).
fn restore_hashes(activity: &mut Activity, flags: u64) -> Result<(), BlockError> {
    let hashed = COMMUNITY_ID_TCP | COMMUNITY_ID_UDP | FLOW_ID_UDP;
    if flags & hashed == 0 {
        return Ok(());
    }
    let (src, dst) = sockets(activity).ok_or(BlockError::Malformed)?;
    if flags & COMMUNITY_ID_TCP != 0 {
        activity.community_id = community_id::community_id(src, dst, community_id::TCP);
    } else if flags & COMMUNITY_ID_UDP != 0 {
        activity.community_id = community_id::community_id(src, dst, community_id::UDP);
    }
    if flags & FLOW_ID_UDP != 0 {
        activity.flow_id = datagram_flow_id(src, dst);
    }
    Ok(())
}

fn recomputed_community_id(activity: &Activity, protocol: u8) -> Option<String> {
    let (src, dst) = sockets(activity)?;
    Some(community_id::community_id(src, dst, protocol))
}

/// The activity's source and destination as socket addresses, when both are.
fn sockets(activity: &Activity) -> Option<(SocketAddr, SocketAddr)> {
    let socket = |endpoint: &Option<Endpoint>| {
        let endpoint = endpoint.as_ref()?;
        Some(SocketAddr::new(
            endpoint_ip(endpoint)?,
            u16::try_from(endpoint.port).ok()?,
        ))
    };
    Some((socket(&activity.src)?, socket(&activity.dst)?))
}

/// The frames `entries` (of one sensor, in order) are cut into: up to `per_frame` each and
/// under [`FRAME_MAX_PLAIN`] bytes unless one activity alone is larger.
fn frame_ranges(
    entries: &[impl std::borrow::Borrow<Entry>],
    per_frame: usize,
) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (index, entry) in entries.iter().enumerate() {
        let size = entry.borrow().activity.encoded_len();
        if index > start && (index - start == per_frame || bytes + size > FRAME_MAX_PLAIN) {
            ranges.push(start..index);
            (start, bytes) = (index, 0);
        }
        bytes += size;
    }
    if start < entries.len() {
        ranges.push(start..entries.len());
    }
    ranges
}

/// The uncompressed frames of `entries` (of one sensor, in order), of up to `per_frame`
/// activities, and its account frames ([`by_account`]) each block's worth: what a dictionary
/// is trained on ([`SAMPLE_ACTIVITIES`]), as [`encode`] compresses them.
pub fn plain_frames(
    sensor_id: &str,
    entries: &[Entry],
    per_frame: usize,
) -> Result<Vec<Vec<u8>>, BlockError> {
    let mut plains = Vec::new();
    for block in entries.chunks(BLOCK_ACTIVITIES) {
        let (named, account_frames) = by_account(block, per_frame);
        for range in frame_ranges(block, per_frame) {
            plains.push(plain_frame(sensor_id, &block[range])?);
        }
        for range in account_frames {
            plains.push(plain_frame(sensor_id, &named[range])?);
        }
    }
    Ok(plains)
}

/// One frame of a format 5 block, uncompressed.
fn plain_frame(sensor_id: &str, frame: &[Entry]) -> Result<Vec<u8>, BlockError> {
    let rows: Vec<Row> = frame.iter().map(|entry| strip(sensor_id, entry)).collect();
    to_columns(&rows, FORMAT_ACCOUNT_FRAMES, Some(frame_base(frame)))
}

/// The time a frame's times are counted from: its oldest, rounded down to a microsecond, as
/// the index keeps it.
fn frame_base(frame: &[Entry]) -> i64 {
    frame
        .iter()
        .map(|entry| super::time_ns(&entry.activity))
        .min()
        .unwrap_or(0)
        .div_euclid(1000)
        .saturating_mul(1000)
}

/// A dictionary trained on `samples` ([`plain_frames`]): [`DICTIONARY_BYTES`], or the largest
/// power-of-two fraction of it that zstd fills, down to [`DICTIONARY_MIN_BYTES`]; failing
/// that, what zstd gives at that size; `None` when it gives nothing.
///
/// zstd's trainer, given more room than its samples can fill, returns a smaller dictionary
/// chosen otherwise, which compresses much worse (store-size: asked for 1 MiB on 65,536
/// activities, it gave 297 KiB and frames of 14.7 bytes an activity, where 512 KiB gave 9.4):
/// a dictionary shorter than asked for is therefore kept only as the last resort.
pub fn train(samples: &[Vec<u8>]) -> Option<Vec<u8>> {
    let mut size = DICTIONARY_BYTES;
    let mut shorter = None;
    while size >= DICTIONARY_MIN_BYTES {
        match zstd::dict::from_samples(samples, size) {
            Ok(dictionary) if dictionary.len() == size => return Some(dictionary),
            Ok(dictionary) => shorter = Some(dictionary),
            Err(_) => {}
        }
        size /= 2;
    }
    shorter
}

/// A compressor for frames, with the store's dictionary (empty: none).
pub fn compressor(dictionary: &[u8]) -> Result<zstd::bulk::Compressor<'static>, BlockError> {
    let mut compressor = zstd::bulk::Compressor::with_dictionary(BLOCK_ZSTD_LEVEL, dictionary)
        .map_err(BlockError::Zstd)?;
    // The block row names its dictionary and the index each frame's size: the frame need not.
    for parameter in [
        zstd::zstd_safe::CParameter::DictIdFlag(false),
        zstd::zstd_safe::CParameter::ContentSizeFlag(false),
    ] {
        compressor
            .set_parameter(parameter)
            .map_err(BlockError::Zstd)?;
    }
    Ok(compressor)
}

/// Compresses `entries` (of `sensor_id`, in order) into a format 5 block: its frames, then
/// its account frames ([`FORMAT_ACCOUNT_FRAMES`]), each bounded in the index by its sequences
/// and times (from the block row's first sequence and oldest time).
pub fn encode(
    sensor_id: &str,
    entries: &[Entry],
    compressor: &mut zstd::bulk::Compressor<'_>,
) -> Result<Encoded, BlockError> {
    let first_sequence = entries
        .iter()
        .map(|entry| entry.sequence)
        .min()
        .unwrap_or(0);
    let min_time = entries
        .iter()
        .map(|entry| super::time_ns(&entry.activity))
        .min()
        .unwrap_or(0);
    let (named, account_frames) = by_account(entries, FRAME_ACTIVITIES);
    let frames_of_block: Vec<(&[Entry], bool)> = frame_ranges(entries, FRAME_ACTIVITIES)
        .into_iter()
        .map(|range| (&entries[range], false))
        .chain(
            account_frames
                .iter()
                .map(|range| (&named[range.clone()], true)),
        )
        .collect();
    let mut index = Vec::new();
    put_varint(&mut index, frames_of_block.len() as u64);
    put_varint(&mut index, account_frames.len() as u64);
    let mut frames = Vec::with_capacity(frames_of_block.len());
    let mut holders: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    let mut previous = (first_sequence, min_time.div_euclid(1000));
    for (number, (frame, by_account)) in frames_of_block.into_iter().enumerate() {
        let plain = plain_frame(sensor_id, frame)?;
        index_frame(
            &mut index,
            FORMAT_ACCOUNT_FRAMES,
            frame,
            plain.len(),
            &mut previous,
        );
        frames.push(compressor.compress(&plain).map_err(BlockError::Zstd)?);
        // An account's key names its account frames only; the other keys, the others.
        for entry in frame {
            activity_keys(&entry.activity, |key, of_account| {
                if of_account == by_account {
                    holders.entry(key).or_default().insert(number as u64);
                }
            });
        }
    }
    let counts = account_counts(&named);
    let keys = holders
        .into_iter()
        .map(|(key, frames)| {
            let postings = postings(&frames);
            let with_counts = match counts.get(&key) {
                Some(Some(counts)) => counted(counts, min_time, &postings),
                _ => postings,
            };
            (key, with_counts)
        })
        .collect();
    Ok(Encoded {
        index,
        frames,
        keys,
    })
}

/// Writes `frame`'s entry in a block's index (format 3 on, `format`): its first sequence and
/// oldest time as differences to the previous frame's (`previous`, in microseconds, updated),
/// its first position, its ranges of sequences and times, and its size once decompressed.
fn index_frame(
    index: &mut Vec<u8>,
    format: i64,
    frame: &[Entry],
    plain_len: usize,
    previous: &mut (u64, i64),
) {
    let (previous_sequence, previous_micros) = *previous;
    let sequences = frame.iter().map(|entry| entry.sequence);
    let times = frame.iter().map(|entry| super::time_ns(&entry.activity));
    let low = sequences.clone().min().unwrap_or(previous_sequence);
    let high = sequences.max().unwrap_or(low);
    // The oldest rounded down (it is also the base the frame's times count from,
    // [`frame_base`]), the newest up: the index bounds the frame's times.
    let earliest = times
        .clone()
        .min()
        .map_or(previous_micros, |oldest| oldest.div_euclid(1000));
    let latest = times.max().map_or(earliest, |newest| {
        newest.saturating_add(999).div_euclid(1000)
    });
    let delta = low.wrapping_sub(previous_sequence);
    put_varint(
        index,
        if format >= FORMAT_ACCOUNT_FRAMES {
            zigzag(delta as i64)
        } else {
            delta
        },
    );
    put_varint(index, frame.first().map_or(0, |entry| entry.position));
    put_varint(index, high.wrapping_sub(low));
    put_varint(index, zigzag(earliest.wrapping_sub(previous_micros)));
    put_varint(index, latest.wrapping_sub(earliest) as u64);
    put_varint(index, plain_len as u64);
    *previous = (low, earliest);
}

/// A format 3 block of `entries` (in order), as stores compacted before format 4 hold them:
/// for the tests that read such stores.
#[cfg(test)]
pub(crate) fn encode_format_3(
    sensor_id: &str,
    entries: &[Entry],
    compressor: &mut zstd::bulk::Compressor<'_>,
) -> Result<Encoded, BlockError> {
    let first_sequence = entries.iter().map(|entry| entry.sequence).min();
    let min_time = entries
        .iter()
        .map(|entry| super::time_ns(&entry.activity))
        .min();
    let ranges = frame_ranges(entries, FRAME_ACTIVITIES);
    let mut index = Vec::new();
    put_varint(&mut index, ranges.len() as u64);
    let mut previous = (
        first_sequence.unwrap_or(0),
        min_time.unwrap_or(0).div_euclid(1000),
    );
    let (mut frames, mut holders) = (Vec::new(), BTreeMap::<String, BTreeSet<u64>>::new());
    for (number, range) in ranges.into_iter().enumerate() {
        let frame = &entries[range];
        let rows: Vec<Row> = frame.iter().map(|entry| strip(sensor_id, entry)).collect();
        let plain = to_columns(&rows, FORMAT_FRAMES_MICROS, Some(frame_base(frame)))?;
        index_frame(
            &mut index,
            FORMAT_FRAMES_MICROS,
            frame,
            plain.len(),
            &mut previous,
        );
        frames.push(compressor.compress(&plain).map_err(BlockError::Zstd)?);
        for entry in frame {
            activity_keys(&entry.activity, |key, _| {
                holders.entry(key).or_default().insert(number as u64);
            });
        }
    }
    let keys = holders
        .into_iter()
        .map(|(key, frames)| (key, postings(&frames)))
        .collect();
    Ok(Encoded {
        index,
        frames,
        keys,
    })
}

/// Per account key of `named`, its [`Count`]s by protocol; `None` for a key some of whose
/// activities spell the name with other than ASCII letters: a query's name matches an
/// activity's ignoring ASCII case only, which the key (lowercased whole) does not tell.
fn account_counts(named: &[Entry]) -> BTreeMap<String, Option<Vec<Count>>> {
    let mut counts: BTreeMap<String, Option<BTreeMap<&str, Count>>> = BTreeMap::new();
    for entry in named {
        let Some(name) = account_of(&entry.activity) else {
            continue;
        };
        let of_key = counts
            .entry(account_key(name))
            .or_insert_with(|| Some(BTreeMap::new()));
        if !name.is_ascii() {
            *of_key = None;
        }
        let Some(of_key) = of_key else {
            continue;
        };
        let protocol = protocol_name(entry.activity.body.as_ref());
        let time = super::time_ns(&entry.activity);
        let count = of_key.entry(protocol).or_insert_with(|| Count {
            protocol: protocol.to_owned(),
            count: 0,
            first_ns: time,
            last_ns: time,
        });
        count.count += 1;
        count.first_ns = count.first_ns.min(time);
        count.last_ns = count.last_ns.max(time);
    }
    counts
        .into_iter()
        .map(|(key, of_key)| (key, of_key.map(|of_key| of_key.into_values().collect())))
        .collect()
}

/// `postings` with `counts` before them (tag 2): their length, then per protocol its name,
/// count, and first and last times (the first from the block's oldest, `min_time_ns`).
fn counted(counts: &[Count], min_time_ns: i64, postings: &[u8]) -> Vec<u8> {
    let mut encoded = Vec::new();
    put_varint(&mut encoded, counts.len() as u64);
    for count in counts {
        put_varint(&mut encoded, count.protocol.len() as u64);
        encoded.extend_from_slice(count.protocol.as_bytes());
        put_varint(&mut encoded, count.count);
        put_varint(
            &mut encoded,
            zigzag(count.first_ns.wrapping_sub(min_time_ns)),
        );
        put_varint(
            &mut encoded,
            count.last_ns.wrapping_sub(count.first_ns) as u64,
        );
    }
    let mut out = vec![2];
    put_varint(&mut out, encoded.len() as u64);
    out.extend(encoded);
    out.extend_from_slice(postings);
    out
}

/// The counts a key's postings keep (format 5's account keys), given the block row's oldest
/// time; `None` when they keep none.
pub fn counts_of(postings: &[u8], min_time_ns: i64) -> Result<Option<Vec<Count>>, BlockError> {
    let (Some(counts), _) = split_counts(postings)? else {
        return Ok(None);
    };
    let mut rest = counts;
    let number = take_len(&mut rest)?;
    // Every count takes at least five bytes: a number beyond that is a lie.
    let mut counts = Vec::with_capacity(number.min(rest.len() / 5));
    for _ in 0..number {
        let length = take_len(&mut rest)?;
        let (name, tail) = split(rest, length)?;
        rest = tail;
        let protocol = std::str::from_utf8(name)
            .map_err(|_| BlockError::Malformed)?
            .to_owned();
        let count = take_varint(&mut rest)?;
        let first_ns = min_time_ns.wrapping_add(unzigzag(take_varint(&mut rest)?));
        let last_ns = first_ns.wrapping_add_unsigned(take_varint(&mut rest)?);
        counts.push(Count {
            protocol,
            count,
            first_ns,
            last_ns,
        });
    }
    if !rest.is_empty() {
        return Err(BlockError::Malformed);
    }
    Ok(Some(counts))
}

/// A key's postings split into the counts before them (tag 2), if any, and the postings
/// themselves.
fn split_counts(postings: &[u8]) -> Result<(Option<&[u8]>, &[u8]), BlockError> {
    match postings.split_first() {
        Some((2, mut rest)) => {
            let length = take_len(&mut rest)?;
            let (counts, postings) = split(rest, length)?;
            Ok((Some(counts), postings))
        }
        _ => Ok((None, postings)),
    }
}

/// The frames a key is in, as the shorter of a bitmap (tag 0) and delta-coded numbers (tag 1).
fn postings(frames: &BTreeSet<u64>) -> Vec<u8> {
    let mut list = vec![1];
    let mut previous = 0;
    for &frame in frames {
        put_varint(&mut list, frame - previous);
        previous = frame;
    }
    let last = frames.last().copied().unwrap_or(0);
    let mut bitmap = vec![0; 1 + usize::try_from(last / 8).unwrap_or(0) + 1];
    for &frame in frames {
        if let Ok(at) = usize::try_from(frame / 8) {
            bitmap[1 + at] |= 1 << (frame % 8);
        }
    }
    if bitmap.len() < list.len() {
        bitmap
    } else {
        list
    }
}

/// The frame numbers a key's postings hold, in order (after its counts, if it keeps some).
pub fn frames_of(postings: &[u8]) -> Result<BTreeSet<usize>, BlockError> {
    let (_, postings) = split_counts(postings)?;
    let (&tag, mut rest) = postings.split_first().ok_or(BlockError::Malformed)?;
    let mut frames = BTreeSet::new();
    match tag {
        0 => {
            for (at, byte) in rest.iter().enumerate() {
                for bit in 0..8 {
                    if byte & (1 << bit) != 0 {
                        frames.insert(at * 8 + bit);
                    }
                }
            }
        }
        1 => {
            let mut frame = 0_usize;
            while !rest.is_empty() {
                frame = frame
                    .checked_add(take_len(&mut rest)?)
                    .ok_or(BlockError::Malformed)?;
                frames.insert(frame);
            }
        }
        _ => return Err(BlockError::Malformed),
    }
    Ok(frames)
}

/// The frames of a format 2 to 5 block (`format`), from its index, given the block row's
/// first sequence and oldest time.
pub fn frame_index(
    index: &[u8],
    format: i64,
    first_sequence: u64,
    min_time_ns: i64,
) -> Result<Vec<FrameInfo>, BlockError> {
    let micros = format >= FORMAT_FRAMES_MICROS;
    let signed = format >= FORMAT_ACCOUNT_FRAMES;
    let mut rest = index;
    let count = take_len(&mut rest)?;
    let account_frames = if signed { take_len(&mut rest)? } else { 0 };
    let first_account_frame = count
        .checked_sub(account_frames)
        .ok_or(BlockError::Malformed)?;
    // Every frame takes at least six bytes: a count beyond that is a lie.
    let mut frames = Vec::with_capacity(count.min(rest.len() / 6));
    let (mut previous_sequence, mut previous_micros) =
        (first_sequence, min_time_ns.div_euclid(1000));
    for number in 0..count {
        let low = if signed {
            previous_sequence.wrapping_add_signed(unzigzag(take_varint(&mut rest)?))
        } else {
            previous_sequence.wrapping_add(take_varint(&mut rest)?)
        };
        let first_position = take_varint(&mut rest)?;
        let high = low.wrapping_add(take_varint(&mut rest)?);
        let (earliest, latest) = if micros {
            let earliest = previous_micros.wrapping_add(unzigzag(take_varint(&mut rest)?));
            let latest = earliest.wrapping_add_unsigned(take_varint(&mut rest)?);
            (previous_sequence, previous_micros) = (low, earliest);
            // Saturating as [`frame_base`] does: the bounds of the extreme times still hold.
            (earliest.saturating_mul(1000), latest.saturating_mul(1000))
        } else {
            let earliest = min_time_ns.wrapping_add_unsigned(take_varint(&mut rest)?);
            (
                earliest,
                earliest.wrapping_add_unsigned(take_varint(&mut rest)?),
            )
        };
        frames.push(FrameInfo {
            first_sequence: low,
            first_position,
            last_sequence: high,
            min_time_ns: earliest,
            max_time_ns: latest,
            plain_len: take_len(&mut rest)?,
            format,
            by_account: number >= first_account_frame,
        });
    }
    if !rest.is_empty() {
        return Err(BlockError::Malformed);
    }
    Ok(frames)
}

/// What an activity of a frame must show before anything of it is decoded, each when set: its
/// place in the sensor's stream, its account name, an address. Tested on its raw fields (the
/// name as bytes anywhere in its account field, ignoring ASCII case as queries do; the
/// address's octets anywhere in its endpoints), it passes every activity a query can select
/// and, in a frame of 64, few others: the query tests those it passes ([`decode_frame`]).
#[derive(Clone, Debug, Default)]
pub struct Sieve {
    /// The places (sequence, position) passed, in order; empty: any.
    at: Vec<(u64, u64)>,
    account: Option<Vec<u8>>,
    address: Option<Vec<u8>>,
}

impl Sieve {
    /// The activities at `places` (sequence, position) only: several looked up in one walk
    /// of a frame.
    pub fn among(mut places: Vec<(u64, u64)>) -> Self {
        places.sort_unstable();
        places.dedup();
        Self {
            at: places,
            ..Self::default()
        }
    }

    /// Activities naming the account `name` (without its domain) and the address `ip`.
    pub fn named(name: Option<&str>, ip: Option<IpAddr>) -> Self {
        Self {
            at: Vec::new(),
            account: name.map(|name| name.as_bytes().to_vec()),
            address: ip.map(|ip| match ip {
                IpAddr::V4(ip) => ip.octets().to_vec(),
                IpAddr::V6(ip) => ip.octets().to_vec(),
            }),
        }
    }

    /// Whether `row` comes after every activity the sieve passes, in a frame in (sequence,
    /// position) order: nothing after it can pass.
    fn is_past(&self, row: &Row) -> bool {
        self.at
            .last()
            .is_some_and(|&last| (row.sequence, row.position) > last)
    }

    fn passes(&self, row: &Row, fields: &[(u32, &[u8])]) -> bool {
        let field = |wanted: &'static [u32]| {
            fields
                .iter()
                .filter(move |(number, _)| wanted.contains(number))
                .map(|(_, bytes)| *bytes)
        };
        (self.at.is_empty() || self.at.binary_search(&(row.sequence, row.position)).is_ok())
            && self.account.as_ref().is_none_or(|name| {
                field(&[ACCOUNT_FIELD]).any(|account| {
                    name.is_empty()
                        || account
                            .windows(name.len())
                            .any(|window| window.eq_ignore_ascii_case(name))
                })
            })
            && self.address.as_ref().is_none_or(|octets| {
                field(&ENDPOINT_FIELDS).any(|endpoint| {
                    endpoint
                        .windows(octets.len())
                        .any(|window| window == octets)
                })
            })
    }
}

/// `Activity`'s field numbers of the account and of the endpoints (source, destination).
const ACCOUNT_FIELD: u32 = 6;
const ENDPOINT_FIELDS: [u32; 2] = [3, 4];

/// The entries of a frame (given what the index says of it) that `keep` keeps, given their
/// sequence, position and activity, among those `sieve` passes. `keep` sees the activity's
/// keys only (time, sensor, endpoints, account, protocol: [`keys_of`]); those it keeps are
/// decoded whole, their hashes recomputed.
pub fn decode_frame(
    sensor_id: &str,
    frame: &[u8],
    info: &FrameInfo,
    decompressor: &mut zstd::bulk::Decompressor<'_>,
    sieve: &Sieve,
    keep: impl FnMut(u64, u64, &Activity) -> bool,
) -> Result<Vec<Entry>, BlockError> {
    let plain = decompress_frame(frame, info, decompressor)?;
    decode_plain(sensor_id, &plain, info, sieve, keep)
}

/// A frame (given what the index says of it) decompressed: what [`decode_plain`] reads.
pub fn decompress_frame(
    frame: &[u8],
    info: &FrameInfo,
    decompressor: &mut zstd::bulk::Decompressor<'_>,
) -> Result<Vec<u8>, BlockError> {
    let mut plain = Vec::new();
    decompress_frame_into(frame, info, decompressor, &mut plain)?;
    Ok(plain)
}

/// [`decompress_frame`] into `plain`, replacing what it held: a buffer reused between frames.
pub fn decompress_frame_into(
    frame: &[u8],
    info: &FrameInfo,
    decompressor: &mut zstd::bulk::Decompressor<'_>,
    plain: &mut Vec<u8>,
) -> Result<(), BlockError> {
    plain.clear();
    plain.reserve(info.plain_len);
    decompressor
        .decompress_to_buffer(frame, plain)
        .map_err(BlockError::Zstd)?;
    if plain.len() != info.plain_len {
        return Err(BlockError::Malformed);
    }
    Ok(())
}

/// [`decode_frame`] on a frame already decompressed ([`decompress_frame`]).
pub fn decode_plain(
    sensor_id: &str,
    plain: &[u8],
    info: &FrameInfo,
    sieve: &Sieve,
    mut keep: impl FnMut(u64, u64, &Activity) -> bool,
) -> Result<Vec<Entry>, BlockError> {
    let mut entries = Vec::new();
    let mut bytes = Vec::new();
    from_columns(plain, info.format, Some(info.min_time_ns), |row, fields| {
        // A block's frames (not its account frames) are in (sequence, position) order.
        if !info.by_account && sieve.is_past(row) {
            return Ok(ControlFlow::Break(()));
        }
        if !sieve.passes(row, fields) {
            return Ok(ControlFlow::Continue(()));
        }
        keys_of(fields, &mut bytes);
        let mut activity = Activity::decode(bytes.as_slice())?;
        restore_plain(sensor_id, &mut activity, row.flags, row.time_ns)?;
        if !keep(row.sequence, row.position, &activity) {
            return Ok(ControlFlow::Continue(()));
        }
        // The other fields merged into the keys, not the whole decoded again: a query by
        // account keeps nearly every activity its sieve passes.
        rest_of(fields, &mut bytes);
        activity.merge(bytes.as_slice())?;
        restore_hashes(&mut activity, row.flags)?;
        entries.push(Entry {
            sequence: row.sequence,
            position: row.position,
            activity,
        });
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(entries)
}

/// A decompressed frame with each activity's place found: looking one up decodes that one
/// alone, where [`decode_plain`] walks the layout and every stream up to it. What evidence
/// lookups keep of a frame they read again (an alert's evidence shares frames).
#[derive(Debug)]
pub struct ParsedFrame {
    rows: Vec<RowAt>,
    /// Each row's protobuf as [`strip`] left it, one after the other.
    bytes: Vec<u8>,
}

/// One activity of a [`ParsedFrame`]: its place in the sensor's stream, what [`strip`] left
/// out, and where its protobuf ends (it starts where the previous row's ends).
#[derive(Debug)]
struct RowAt {
    sequence: u64,
    position: u64,
    flags: u64,
    time_ns: i64,
    end: usize,
}

impl ParsedFrame {
    /// `plain` ([`decompress_frame`]) with each of its activities located.
    pub fn parse(plain: &[u8], info: &FrameInfo) -> Result<Self, BlockError> {
        let mut rows = Vec::with_capacity(FRAME_ACTIVITIES);
        let mut bytes = Vec::with_capacity(plain.len());
        from_columns(plain, info.format, Some(info.min_time_ns), |row, fields| {
            // The fields in the order they came: the protobuf `strip` wrote.
            for (_, field) in fields {
                bytes.extend_from_slice(field);
            }
            rows.push(RowAt {
                sequence: row.sequence,
                position: row.position,
                flags: row.flags,
                time_ns: row.time_ns,
                end: bytes.len(),
            });
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(Self { rows, bytes })
    }

    /// The bytes it takes, as a cache counts them.
    pub fn size(&self) -> usize {
        self.bytes.len() + self.rows.len() * size_of::<RowAt>()
    }

    /// A frame of no activity taking `bytes` bytes, to fill a cache.
    #[cfg(test)]
    pub(crate) fn filler(bytes: usize) -> Self {
        Self {
            rows: Vec::new(),
            bytes: vec![0; bytes],
        }
    }

    /// The activity at `position` of batch `sequence` (the first, were there two), whole.
    pub fn activity_at(
        &self,
        sensor_id: &str,
        sequence: u64,
        position: u64,
    ) -> Result<Option<Activity>, BlockError> {
        let Some(at) = self
            .rows
            .iter()
            .position(|row| (row.sequence, row.position) == (sequence, position))
        else {
            return Ok(None);
        };
        let start = match at.checked_sub(1) {
            Some(before) => self.rows.get(before).map_or(0, |row| row.end),
            None => 0,
        };
        let row = self.rows.get(at).ok_or(BlockError::Malformed)?;
        let bytes = self
            .bytes
            .get(start..row.end)
            .ok_or(BlockError::Malformed)?;
        let mut activity = Activity::decode(bytes)?;
        restore_plain(sensor_id, &mut activity, row.flags, row.time_ns)?;
        restore_hashes(&mut activity, row.flags)?;
        Ok(Some(activity))
    }
}

/// The fields of an activity a query filters on (`Query::matches_activity`), as protobuf in
/// `out`: the sensor id, time, endpoints and account as they are, and the body's field with
/// nothing in it, which is enough to name the protocol.
fn keys_of(fields: &[(u32, &[u8])], out: &mut Vec<u8>) {
    out.clear();
    for &(number, field) in fields {
        if is_key(number) {
            out.extend_from_slice(field);
        } else if number >= 16 {
            put_varint(out, (u64::from(number) << 3) | 2);
            put_varint(out, 0);
        }
    }
}

/// The fields of an activity [`keys_of`] leaves out or empties, as protobuf in `out`: merged
/// into the keys decoded, they give the whole activity (its body merged into the empty one).
fn rest_of(fields: &[(u32, &[u8])], out: &mut Vec<u8>) {
    out.clear();
    for &(number, field) in fields {
        if !is_key(number) {
            out.extend_from_slice(field);
        }
    }
}

/// Whether field `number` of an activity is one [`keys_of`] keeps as it is: the sensor id,
/// time, endpoints and account (each a single field, so decoding it once is enough).
fn is_key(number: u32) -> bool {
    matches!(number, 1..=4 | 6)
}

/// A format 1 block's entries, in the order they were encoded.
pub fn decode_single(block: &[u8]) -> Result<Vec<Entry>, BlockError> {
    let plain = zstd::stream::decode_all(block).map_err(BlockError::Zstd)?;
    let mut entries = Vec::new();
    let mut bytes = Vec::new();
    from_columns(&plain, FORMAT_SINGLE, None, |row, fields| {
        bytes.clear();
        for (_, field) in fields {
            bytes.extend_from_slice(field);
        }
        entries.push(Entry {
            sequence: row.sequence,
            position: row.position,
            activity: Activity::decode(bytes.as_slice())?,
        });
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(entries)
}

/// Marks the end of an activity's field numbers in the layout stream (0 is no field number).
const END_OF_ACTIVITY: u32 = 0;

/// Rows laid out column by column: a layout stream (per row: sequence delta, position, then
/// in format 2 on its flags and its time as a difference to the previous row's, starting from
/// `base_ns`; then the field numbers in the order they came) and one stream per top-level
/// field number. `base_ns` is `None` for format 1, which has neither flags nor times. From
/// format 4 (`format`) on, a position is its difference to the one expected ([`expected`]);
/// from format 5 on, a sequence's difference is signed.
fn to_columns(rows: &[Row], format: i64, base_ns: Option<i64>) -> Result<Vec<u8>, BlockError> {
    let mut layout = Vec::new();
    let mut fields: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
    let mut previous = None;
    let mut previous_ns = base_ns.unwrap_or(0);
    for row in rows {
        let previous_sequence = previous.map_or(0, |(sequence, _)| sequence);
        let delta = row.sequence.wrapping_sub(previous_sequence);
        put_varint(
            &mut layout,
            if format >= FORMAT_ACCOUNT_FRAMES {
                zigzag(delta as i64)
            } else {
                delta
            },
        );
        let base = if format >= FORMAT_POSITION_DELTAS {
            expected(previous, row.sequence)
        } else {
            0
        };
        put_varint(&mut layout, row.position.wrapping_sub(base));
        previous = Some((row.sequence, row.position));
        if base_ns.is_some() {
            put_varint(&mut layout, row.flags);
            if row.flags & TIME_MICROS != 0 {
                let delta = (row.time_ns / 1000).wrapping_sub(previous_ns.div_euclid(1000));
                put_varint(&mut layout, zigzag(delta));
                previous_ns = row.time_ns;
            } else if row.flags & TIME_NANOS != 0 {
                put_varint(&mut layout, zigzag(row.time_ns.wrapping_sub(previous_ns)));
                previous_ns = row.time_ns;
            }
        }
        let mut rest = row.bytes.as_slice();
        while !rest.is_empty() {
            let (number, length) = field_extent(rest).ok_or(BlockError::Malformed)?;
            put_varint(&mut layout, u64::from(number));
            let (field, tail) = rest.split_at(length);
            fields.entry(number).or_default().extend_from_slice(field);
            rest = tail;
        }
        put_varint(&mut layout, u64::from(END_OF_ACTIVITY));
    }
    let mut plain = Vec::new();
    put_varint(&mut plain, rows.len() as u64);
    put_varint(&mut plain, fields.len() as u64);
    put_varint(&mut plain, layout.len() as u64);
    for (number, bytes) in &fields {
        put_varint(&mut plain, u64::from(*number));
        put_varint(&mut plain, bytes.len() as u64);
    }
    plain.extend_from_slice(&layout);
    for bytes in fields.values() {
        plain.extend_from_slice(bytes);
    }
    Ok(plain)
}

/// [`to_columns`] undone: each row (its protobuf left empty) handed to `each` with its fields
/// (number and bytes, tag included) in the order they came, before what was left out is put
/// back, until `each` breaks.
fn from_columns(
    plain: &[u8],
    format: i64,
    base_ns: Option<i64>,
    mut each: impl FnMut(&Row, &[(u32, &[u8])]) -> Result<ControlFlow<()>, BlockError>,
) -> Result<(), BlockError> {
    let mut header = plain;
    let count = take_varint(&mut header)?;
    let streams = take_varint(&mut header)?;
    let layout_len = take_len(&mut header)?;
    let mut lengths = Vec::new();
    for _ in 0..streams {
        let number = u32::try_from(take_varint(&mut header)?).map_err(|_| BlockError::Malformed)?;
        lengths.push((number, take_len(&mut header)?));
    }
    let (mut layout, mut body) = split(header, layout_len)?;
    // By field number, as [`to_columns`] wrote them (a frame's dozen or so streams: searched
    // for every field of every row, faster in a vector than in a map).
    let mut fields: Vec<(u32, &[u8])> = Vec::with_capacity(lengths.len());
    for (number, length) in lengths {
        let (stream, rest) = split(body, length)?;
        fields.push((number, stream));
        body = rest;
    }
    if !fields.is_sorted_by_key(|(number, _)| *number) {
        return Err(BlockError::Malformed);
    }
    let mut previous = None;
    let mut previous_ns = base_ns.unwrap_or(0);
    let mut row_fields: Vec<(u32, &[u8])> = Vec::new();
    for _ in 0..count {
        let delta = take_varint(&mut layout)?;
        let previous_sequence = previous.map_or(0_u64, |(sequence, _)| sequence);
        let sequence = if format >= FORMAT_ACCOUNT_FRAMES {
            previous_sequence.wrapping_add_signed(unzigzag(delta))
        } else {
            previous_sequence.wrapping_add(delta)
        };
        let base = if format >= FORMAT_POSITION_DELTAS {
            expected(previous, sequence)
        } else {
            0
        };
        let position = base.wrapping_add(take_varint(&mut layout)?);
        previous = Some((sequence, position));
        let mut row = Row {
            sequence,
            position,
            flags: 0,
            time_ns: 0,
            bytes: Vec::new(),
        };
        if base_ns.is_some() {
            row.flags = take_varint(&mut layout)?;
            if row.flags & TIME_MICROS != 0 {
                let micros = previous_ns
                    .div_euclid(1000)
                    .wrapping_add(unzigzag(take_varint(&mut layout)?));
                row.time_ns = micros.checked_mul(1000).ok_or(BlockError::Malformed)?;
                previous_ns = row.time_ns;
            } else if row.flags & TIME_NANOS != 0 {
                row.time_ns = previous_ns.wrapping_add(unzigzag(take_varint(&mut layout)?));
                previous_ns = row.time_ns;
            }
        }
        row_fields.clear();
        loop {
            let number =
                u32::try_from(take_varint(&mut layout)?).map_err(|_| BlockError::Malformed)?;
            if number == END_OF_ACTIVITY {
                break;
            }
            let at = fields
                .binary_search_by_key(&number, |(number, _)| *number)
                .map_err(|_| BlockError::Malformed)?;
            let (_, stream) = fields.get_mut(at).ok_or(BlockError::Malformed)?;
            let (_, length) = field_extent(stream).ok_or(BlockError::Malformed)?;
            let (field, rest) = split(stream, length)?;
            row_fields.push((number, field));
            *stream = rest;
        }
        if each(&row, &row_fields)?.is_break() {
            break;
        }
    }
    Ok(())
}

/// The position a row of batch `sequence` is expected at, after the row at `previous`
/// (sequence, position): the next in the same batch, else the first.
fn expected(previous: Option<(u64, u64)>, sequence: u64) -> u64 {
    match previous {
        Some((previous_sequence, position)) if previous_sequence == sequence => {
            position.wrapping_add(1)
        }
        _ => 0,
    }
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

fn split(bytes: &[u8], at: usize) -> Result<(&[u8], &[u8]), BlockError> {
    bytes.split_at_checked(at).ok_or(BlockError::Malformed)
}

fn take_len(bytes: &mut &[u8]) -> Result<usize, BlockError> {
    usize::try_from(take_varint(bytes)?).map_err(|_| BlockError::Malformed)
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub(crate) fn take_varint(bytes: &mut &[u8]) -> Result<u64, BlockError> {
    let (value, used) = varint(bytes).ok_or(BlockError::Malformed)?;
    *bytes = &bytes[used..];
    Ok(value)
}

/// A varint at the start of `bytes`, and its length.
fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0_u64;
    for (index, byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Some((value, index + 1));
        }
    }
    None
}

/// The field number of the protobuf field at the start of `bytes`, and its length in bytes
/// (tag included); `None` for a cut field or a group (prost's messages have none).
fn field_extent(bytes: &[u8]) -> Option<(u32, usize)> {
    let (tag, tag_len) = varint(bytes)?;
    let number = u32::try_from(tag >> 3).ok().filter(|&number| number != 0)?;
    let rest = bytes.get(tag_len..)?;
    let value_len = match tag & 7 {
        0 => varint(rest)?.1,
        1 => 8,
        2 => {
            let (length, used) = varint(rest)?;
            used.checked_add(usize::try_from(length).ok()?)?
        }
        5 => 4,
        _ => return None,
    };
    let total = tag_len.checked_add(value_len)?;
    (total <= bytes.len()).then_some((number, total))
}

/// A format 1 block, as stores compacted before format 2 hold them: for the tests that read
/// such stores.
#[cfg(test)]
pub(crate) fn encode_single(entries: &[Entry]) -> Vec<u8> {
    let rows: Vec<Row> = entries
        .iter()
        .map(|entry| Row {
            sequence: entry.sequence,
            position: entry.position,
            flags: 0,
            time_ns: 0,
            bytes: entry.activity.encode_to_vec(),
        })
        .collect();
    zstd::bulk::compress(
        &to_columns(&rows, FORMAT_SINGLE, None).expect("columns"),
        15,
    )
    .expect("zstd")
}

/// Format 1's keys of a block, for the same tests.
#[cfg(test)]
pub(crate) fn single_keys(entries: &[Entry]) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for entry in entries {
        activity_keys(&entry.activity, |key, _| {
            keys.insert(key);
        });
    }
    keys
}

#[cfg(test)]
mod tests {
    use dcwatch_proto::v1::{Account, DnsActivity, Endpoint, KerberosActivity, activity::Body};

    use super::*;

    fn entry(sequence: u64, position: u64, name: &str, body: Body) -> Entry {
        let src = Endpoint {
            ip: vec![10, 0, 0, 5],
            port: 50_000 + u32::try_from(sequence % 7).expect("small"),
        };
        let dst = Endpoint {
            ip: vec![10, 0, 0, 1],
            port: 88,
        };
        let mut activity = Activity {
            // In nanoseconds, in microseconds, none, and out of range (kept as it came).
            time: match position % 5 {
                0 | 1 => Some(5),
                2 | 3 => Some(123_000),
                _ if sequence.is_multiple_of(2) => None,
                _ => Some(1_500_000_000),
            }
            .map(|nanos| pbjson_types::Timestamp {
                seconds: 1_700_000_000 + i64::try_from(sequence).expect("small"),
                nanos,
            }),
            sensor_id: if sequence.is_multiple_of(4) {
                "other"
            } else {
                "s1"
            }
            .to_owned(),
            src: Some(src),
            dst: Some(dst),
            account: (!name.is_empty()).then(|| Account {
                domain: "CORP".to_owned(),
                name: name.to_owned(),
                ..Account::default()
            }),
            body: Some(body),
            ..Activity::default()
        };
        let (from, to) = sockets(&activity).expect("endpoints");
        activity.flow_id = match position % 3 {
            0 => datagram_flow_id(from, to),
            1 => "0123456789abcdef".to_owned(),
            _ => String::new(),
        };
        activity.community_id = match position % 4 {
            // TCP's and UDP's, recomputable; one that is not; none.
            0 => recomputed_community_id(&activity, community_id::TCP).expect("endpoints"),
            1 => recomputed_community_id(&activity, community_id::UDP).expect("endpoints"),
            2 => "1:not-the-hash-of-these-endpoints=".to_owned(),
            _ => String::new(),
        };
        Entry {
            sequence,
            position,
            activity,
        }
    }

    fn entries(count: u64) -> Vec<Entry> {
        (0..count)
            .map(|i| {
                let body = if i % 3 == 0 {
                    Body::Dns(DnsActivity {
                        query_name: format!("host{i}.corp.example"),
                        ..DnsActivity::default()
                    })
                } else {
                    Body::Kerberos(KerberosActivity {
                        service: format!("cifs/fs{}", i % 7),
                        ..KerberosActivity::default()
                    })
                };
                let name = if i % 5 == 0 {
                    ""
                } else if i == 151 {
                    "Mallory"
                } else {
                    "Alice"
                };
                entry(100 + i / 10, i % 10, name, body)
            })
            .collect()
    }

    /// Every entry of the block's frames, and of its account frames.
    fn decode_all(
        sensor_id: &str,
        entries: &[Entry],
        encoded: &Encoded,
        dictionary: &[u8],
    ) -> (Vec<Entry>, Vec<Entry>) {
        let first = origin(entries);
        let mut decompressor = zstd::bulk::Decompressor::with_dictionary(dictionary).expect("zstd");
        let index =
            frame_index(&encoded.index, FORMAT_ACCOUNT_FRAMES, first.0, first.1).expect("index");
        assert_eq!(index.len(), encoded.frames.len());
        let (mut in_order, mut by_account) = (Vec::new(), Vec::new());
        for (info, frame) in index.iter().zip(&encoded.frames) {
            let found = decode_frame(
                sensor_id,
                frame,
                info,
                &mut decompressor,
                &Sieve::default(),
                |_, _, _| true,
            )
            .expect("frame");
            if info.by_account {
                by_account.extend(found);
            } else {
                in_order.extend(found);
            }
        }
        (in_order, by_account)
    }

    /// The entries of `entries` naming `names`, each name's together.
    fn named(entries: &[Entry], names: &[&str]) -> Vec<Entry> {
        names
            .iter()
            .flat_map(|name| {
                entries.iter().filter(|entry| {
                    entry
                        .activity
                        .account
                        .as_ref()
                        .is_some_and(|account| account.name == *name)
                })
            })
            .cloned()
            .collect()
    }

    /// The first sequence and oldest time of a block of `entries`, as the block row keeps them.
    fn origin(entries: &[Entry]) -> (u64, i64) {
        (
            entries
                .iter()
                .map(|entry| entry.sequence)
                .min()
                .expect("some"),
            frame_base(entries),
        )
    }

    #[test]
    fn a_block_gives_back_every_activity_byte_for_byte() {
        let entries = entries(300);
        let samples = plain_frames("s1", &entries, SAMPLE_ACTIVITIES).expect("plain");
        for dictionary in [Vec::new(), train(&samples).unwrap_or_default()] {
            let mut compressor = compressor(&dictionary).expect("compressor");
            let encoded = encode("s1", &entries, &mut compressor).expect("encodes");
            // Alice's 239 activities in account frames of their own, Mallory's one in hers.
            let in_order = 300_usize.div_ceil(FRAME_ACTIVITIES);
            let alices = 239_usize.div_ceil(FRAME_ACTIVITIES);
            assert_eq!(encoded.frames.len(), in_order + alices + 1);
            let (back, by_account) = decode_all("s1", &entries, &encoded, &dictionary);
            assert_eq!(back, entries);
            assert_eq!(by_account, named(&entries, &["Alice", "Mallory"]));
            for (original, decoded) in entries.iter().zip(&back) {
                assert_eq!(
                    original.activity.encode_to_vec(),
                    decoded.activity.encode_to_vec()
                );
            }
            let raw: usize = entries
                .iter()
                .chain(&by_account)
                .map(|e| e.activity.encoded_len())
                .sum();
            let compressed: usize = encoded.frames.iter().map(Vec::len).sum();
            assert!(compressed * 4 < raw, "{compressed} of {raw} bytes");
            for key in ["p:dns", "p:kerberos", "i:10.0.0.5", "i:10.0.0.1"] {
                let frames = frames_of(&encoded.keys[key]).expect("postings");
                assert_eq!(frames, (0..in_order).collect(), "{key} in every frame");
            }
            // An account's key names its account frames only.
            assert_eq!(
                frames_of(&encoded.keys["a:alice"]).expect("postings"),
                (in_order..in_order + alices).collect()
            );
            assert_eq!(
                frames_of(&encoded.keys["a:mallory"]).expect("postings"),
                BTreeSet::from([in_order + alices])
            );
            assert_eq!(encoded.keys.len(), 6);
        }
    }

    #[test]
    fn a_parsed_frame_gives_back_each_activity_by_its_place() {
        let entries = entries(300);
        let mut compressor = compressor(&[]).expect("compressor");
        let encoded = encode("s1", &entries, &mut compressor).expect("encodes");
        let first = origin(&entries);
        let index =
            frame_index(&encoded.index, FORMAT_ACCOUNT_FRAMES, first.0, first.1).expect("index");
        let mut decompressor = zstd::bulk::Decompressor::new().expect("zstd");
        let mut found = Vec::new();
        for (info, frame) in index.iter().zip(&encoded.frames) {
            let plain = decompress_frame(frame, info, &mut decompressor).expect("frame");
            let parsed = ParsedFrame::parse(&plain, info).expect("parses");
            // Every activity, in order frames and account frames alike, found by its place in
            // each frame holding it, and nothing that is not there.
            for entry in &entries {
                if let Some(activity) = parsed
                    .activity_at("s1", entry.sequence, entry.position)
                    .expect("decodes")
                {
                    assert_eq!(activity, entry.activity);
                    found.push((info.by_account, entry.sequence, entry.position));
                }
            }
            assert_eq!(parsed.activity_at("s1", 99, 0).expect("decodes"), None);
            assert_eq!(parsed.activity_at("s1", 100, 10).expect("decodes"), None);
        }
        let in_order = found.iter().filter(|(by_account, ..)| !by_account).count();
        assert_eq!(
            in_order, 300,
            "each activity in one frame of the block's order"
        );
        assert_eq!(
            found.len(),
            300 + 240,
            "and Alice's and Mallory's in theirs"
        );
        // A cut frame is an error, not a panic.
        let info = index.first().expect("a frame");
        let plain = decompress_frame(&encoded.frames[0], info, &mut decompressor).expect("frame");
        for cut in [0, 1, plain.len() / 2, plain.len() - 1] {
            assert!(
                ParsedFrame::parse(&plain[..cut], info).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_query_sees_an_activitys_keys_and_decodes_only_what_it_keeps() {
        let entries = entries(300);
        let encoded = encode("s1", &entries, &mut compressor(&[]).expect("zstd")).expect("encodes");
        let (first, oldest) = origin(&entries);
        let index =
            frame_index(&encoded.index, FORMAT_ACCOUNT_FRAMES, first, oldest).expect("index");
        let mut decompressor = zstd::bulk::Decompressor::new().expect("zstd");
        let mut seen = Vec::new();
        let mut kept = Vec::new();
        for (info, frame) in index.iter().zip(&encoded.frames) {
            if info.by_account {
                continue;
            }
            kept.extend(
                decode_frame(
                    "s1",
                    frame,
                    info,
                    &mut decompressor,
                    &Sieve::default(),
                    |_, _, keys| {
                        seen.push(keys.clone());
                        keys.account
                            .as_ref()
                            .is_some_and(|account| account.name == "Mallory")
                    },
                )
                .expect("frame"),
            );
        }
        assert_eq!(kept, [entries[151].clone()]);
        assert_eq!(seen.len(), entries.len());
        for (keys, entry) in seen.iter().zip(&entries) {
            let original = &entry.activity;
            assert_eq!(
                (&keys.time, &keys.sensor_id, &keys.src, &keys.dst),
                (
                    &original.time,
                    &original.sensor_id,
                    &original.src,
                    &original.dst
                )
            );
            assert_eq!(keys.account, original.account);
            assert_eq!(
                protocol_name(keys.body.as_ref()),
                protocol_name(original.body.as_ref())
            );
            assert_ne!(keys.body, original.body, "the body itself is not decoded");
        }
    }

    #[test]
    fn the_sieve_passes_what_a_query_may_select_and_few_others() {
        let mut entries = entries(300);
        // Mallory in another case, a name holding hers, her name in the domain only.
        for (at, name, domain) in [
            (11, "MALLORY", "CORP"),
            (12, "mallory2", "CORP"),
            (13, "Alice", "MALLORY"),
            (41, "mallory", "CORP"),
        ] {
            let account = entries[at].activity.account.as_mut().expect("named");
            (account.name, account.domain) = (name.to_owned(), domain.to_owned());
        }
        let other = vec![10, 0, 0, 77];
        entries[40]
            .activity
            .src
            .as_mut()
            .expect("src")
            .ip
            .clone_from(&other);
        entries[41]
            .activity
            .dst
            .as_mut()
            .expect("dst")
            .ip
            .clone_from(&other);
        let encoded = encode("s1", &entries, &mut compressor(&[]).expect("zstd")).expect("encodes");
        let (first, oldest) = origin(&entries);
        let index =
            frame_index(&encoded.index, FORMAT_ACCOUNT_FRAMES, first, oldest).expect("index");
        let mut decompressor = zstd::bulk::Decompressor::new().expect("zstd");
        // (what the sieve passed, what an exact test on the account name then kept), by index.
        let mut sift = |sieve: &Sieve| {
            let mut passed = Vec::new();
            let mut kept = Vec::new();
            for (info, frame) in index.iter().zip(&encoded.frames) {
                if info.by_account {
                    continue;
                }
                let found =
                    decode_frame("s1", frame, info, &mut decompressor, sieve, |s, p, keys| {
                        passed.push((s - 100) * 10 + p);
                        keys.account.as_ref().is_some_and(|account| {
                            sieve.account.is_none() || account.name.eq_ignore_ascii_case("mallory")
                        })
                    })
                    .expect("frame");
                kept.extend(
                    found
                        .iter()
                        .map(|entry| (entry.sequence - 100) * 10 + entry.position),
                );
            }
            (passed, kept)
        };
        let mallory = sift(&Sieve::named(Some("mallory"), None));
        assert_eq!(mallory, (vec![11, 12, 13, 41, 151], vec![11, 41, 151]));
        let address = "10.0.0.77".parse().expect("ip");
        assert_eq!(sift(&Sieve::named(None, Some(address))).0, [40, 41]);
        assert_eq!(
            sift(&Sieve::named(Some("mallory"), Some(address))),
            (vec![41], vec![41])
        );
        let everyone = sift(&Sieve::default()).0;
        assert_eq!(everyone, (0..300).collect::<Vec<u64>>());
        // An activity without an account passes an empty name only if it has the field.
        let unnamed = sift(&Sieve::named(Some(""), None)).0;
        assert_eq!(unnamed.len(), 300 - 300 / 5, "those with an account");
    }

    #[test]
    fn the_index_bounds_each_frame() {
        let entries = entries(200);
        let encoded = encode("s1", &entries, &mut compressor(&[]).expect("zstd")).expect("encodes");
        let (first, oldest) = origin(&entries);
        let index =
            frame_index(&encoded.index, FORMAT_ACCOUNT_FRAMES, first, oldest).expect("index");
        for (info, chunk) in index.iter().zip(entries.chunks(FRAME_ACTIVITIES)) {
            let times: Vec<i64> = chunk
                .iter()
                .map(|entry| super::super::time_ns(&entry.activity))
                .collect();
            assert_eq!(info.first_sequence, chunk[0].sequence);
            assert_eq!(info.first_position, chunk[0].position);
            assert_eq!(info.last_sequence, chunk[chunk.len() - 1].sequence);
            // In whole microseconds, the oldest rounded down and the newest up.
            let (oldest, newest) = (
                times.iter().min().expect("some"),
                times.iter().max().expect("some"),
            );
            assert_eq!(info.min_time_ns, oldest / 1000 * 1000, "{oldest}");
            assert_eq!(info.max_time_ns, (newest + 999) / 1000 * 1000, "{newest}");
        }
        // One activity of a frame, alone.
        let wanted = &entries[FRAME_ACTIVITIES + 8];
        let mut decompressor = zstd::bulk::Decompressor::new().expect("zstd");
        let only = decode_frame(
            "s1",
            &encoded.frames[1],
            &index[1],
            &mut decompressor,
            &Sieve::among(vec![(wanted.sequence, wanted.position)]),
            |_, _, _| true,
        )
        .expect("frame");
        assert_eq!(only, std::slice::from_ref(wanted));
        // Several of the frame's, asked out of order and one twice, in one walk: in the
        // frame's order, each once; a place the frame lacks passes nothing.
        let places = [12, 3, 40, 12, 63].map(|at| {
            let entry = &entries[FRAME_ACTIVITIES + at];
            (entry.sequence, entry.position)
        });
        let mut asked = places.to_vec();
        asked.push((u64::MAX, 0));
        let several = decode_frame(
            "s1",
            &encoded.frames[1],
            &index[1],
            &mut decompressor,
            &Sieve::among(asked),
            |_, _, _| true,
        )
        .expect("frame");
        let expected: Vec<Entry> = [3, 12, 40, 63]
            .map(|at| entries[FRAME_ACTIVITIES + at].clone())
            .to_vec();
        assert_eq!(several, expected);
    }

    #[test]
    fn a_format_2_index_still_reads() {
        // Two frames: sequences and times from the block's first and oldest, in nanoseconds.
        let mut index = Vec::new();
        for value in [2, 0, 3, 1, 5, 7, 400, 1, 0, 0, 1_000_000_123, 9, 350] {
            put_varint(&mut index, value);
        }
        let read = frame_index(&index, FORMAT_FRAMES, 100, 1_000).expect("index");
        assert_eq!(
            read,
            [
                FrameInfo {
                    first_sequence: 100,
                    first_position: 3,
                    last_sequence: 101,
                    min_time_ns: 1_005,
                    max_time_ns: 1_012,
                    plain_len: 400,
                    format: FORMAT_FRAMES,
                    by_account: false,
                },
                FrameInfo {
                    first_sequence: 101,
                    first_position: 0,
                    last_sequence: 101,
                    min_time_ns: 1_000_001_123,
                    max_time_ns: 1_000_001_132,
                    plain_len: 350,
                    format: FORMAT_FRAMES,
                    by_account: false,
                },
            ]
        );
    }

    #[test]
    fn format_3_and_4_frames_still_read_and_format_5_frames_are_smaller_than_format_3() {
        let entries = entries(640);
        let mut compressor = compressor(&[]).expect("zstd");
        let encoded = encode("s1", &entries, &mut compressor).expect("encodes");
        let mut decompressor = zstd::bulk::Decompressor::new().expect("zstd");
        // Frames of the same activities as formats 3 (positions whole) and 4 (unsigned
        // sequence differences) laid them out.
        let mut format_3_bytes = 0;
        for format in [FORMAT_FRAMES_MICROS, FORMAT_POSITION_DELTAS] {
            for chunk in entries.chunks(FRAME_ACTIVITIES) {
                let rows: Vec<Row> = chunk.iter().map(|entry| strip("s1", entry)).collect();
                let plain = to_columns(&rows, format, Some(frame_base(chunk))).expect("columns");
                let frame = compressor.compress(&plain).expect("compress");
                if format == FORMAT_FRAMES_MICROS {
                    format_3_bytes += frame.len();
                }
                let info = FrameInfo {
                    first_sequence: chunk[0].sequence,
                    first_position: chunk[0].position,
                    last_sequence: chunk[chunk.len() - 1].sequence,
                    min_time_ns: frame_base(chunk),
                    max_time_ns: i64::MAX,
                    plain_len: plain.len(),
                    format,
                    by_account: false,
                };
                let every = Sieve::default();
                let back =
                    decode_frame("s1", &frame, &info, &mut decompressor, &every, |_, _, _| {
                        true
                    })
                    .expect("frame");
                assert_eq!(back, chunk, "format {format}");
            }
        }
        let in_order = entries.len().div_ceil(FRAME_ACTIVITIES);
        let format_5_bytes: usize = encoded.frames[..in_order].iter().map(Vec::len).sum();
        assert!(
            format_5_bytes < format_3_bytes,
            "{format_5_bytes} bytes in format 5, {format_3_bytes} in format 3"
        );
    }

    #[test]
    fn positions_and_sequences_are_written_as_differences() {
        let row = |sequence, position| Row {
            sequence,
            position,
            flags: 0,
            time_ns: 0,
            bytes: Vec::new(),
        };
        // The next in the batch, a gap, a new batch at 0, a new batch elsewhere, a step back,
        // an earlier batch (an account frame's).
        let places = [(7, 3), (7, 4), (7, 9), (8, 0), (9, 5), (9, 2), (4, 1)];
        let rows: Vec<Row> = places.iter().map(|&(s, p)| row(s, p)).collect();
        for format in [FORMAT_POSITION_DELTAS, FORMAT_ACCOUNT_FRAMES] {
            let plain = to_columns(&rows, format, Some(0)).expect("columns");
            let mut back = Vec::new();
            from_columns(&plain, format, Some(0), |row, _| {
                back.push((row.sequence, row.position));
                Ok(ControlFlow::Continue(()))
            })
            .expect("layout");
            assert_eq!(back, places, "format {format}");
            if format == FORMAT_ACCOUNT_FRAMES {
                // After the header (count, streams, layout length), per row: sequence delta
                // (signed), position delta, flags, end of fields. The steps back wrap around.
                let mut layout = vec![14, 3, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 2, 0, 0, 0, 2, 5];
                layout.extend([
                    0, 0, 0, 0xfc, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                ]);
                layout.extend([0x01, 0, 0, 9, 1, 0, 0]);
                assert_eq!(plain[3..], layout);
            }
        }
    }

    #[test]
    fn an_accounts_activities_sit_in_its_own_account_frames() {
        // Eight accounts taking turns, and activities naming none between them.
        let mut entries = entries(1024);
        for (at, entry) in entries.iter_mut().enumerate() {
            if let Some(account) = entry.activity.account.as_mut() {
                account.name = format!("user{}", at % 8);
            }
        }
        let mut compressor = compressor(&[]).expect("zstd");
        let encoded = encode("s1", &entries, &mut compressor).expect("encodes");
        let (first, oldest) = origin(&entries);
        let index =
            frame_index(&encoded.index, FORMAT_ACCOUNT_FRAMES, first, oldest).expect("index");
        let mut decompressor = zstd::bulk::Decompressor::new().expect("zstd");
        for user in 0..8 {
            let name = format!("user{user}");
            let frames = frames_of(&encoded.keys[&account_key(&name)]).expect("postings");
            let mut found = Vec::new();
            for &number in &frames {
                assert!(index[number].by_account, "{name}: frame {number}");
                found.extend(
                    decode_frame(
                        "s1",
                        &encoded.frames[number],
                        &index[number],
                        &mut decompressor,
                        &Sieve::default(),
                        |_, _, _| true,
                    )
                    .expect("frame"),
                );
            }
            // Its frames hold its activities, all of them, and no one else's.
            let its = named(&entries, &[&name]);
            assert_eq!(found, its, "{name}");
            assert_eq!(frames.len(), its.len().div_ceil(FRAME_ACTIVITIES), "{name}");
        }
    }

    #[test]
    fn format_3_and_4_indexes_still_read() {
        // Two frames: sequences from the previous frame's, times in microseconds from it.
        let mut index = Vec::new();
        for value in [2, 0, 3, 1, 10, 7, 400, 1, 0, 0, 2_000_000, 9, 350] {
            put_varint(&mut index, value);
        }
        for format in [FORMAT_FRAMES_MICROS, FORMAT_POSITION_DELTAS] {
            let frame =
                |first_sequence, first_position, min_time_ns, max_time_ns, plain_len| FrameInfo {
                    first_sequence,
                    first_position,
                    last_sequence: 101,
                    min_time_ns,
                    max_time_ns,
                    plain_len,
                    format,
                    by_account: false,
                };
            assert_eq!(
                frame_index(&index, format, 100, 1_000).expect("index"),
                [
                    frame(100, 3, 6_000, 13_000, 400),
                    frame(101, 0, 1_000_006_000, 1_000_015_000, 350),
                ]
            );
        }
    }

    #[test]
    fn an_account_key_keeps_its_counts_by_protocol() {
        let mut entries = entries(300);
        // Names in another case count with the key's; a name beyond ASCII keeps no counts.
        entries[21].activity.account.as_mut().expect("named").name = "ALICE".to_owned();
        entries[22].activity.account.as_mut().expect("named").name = "Zoë".to_owned();
        let encoded = encode("s1", &entries, &mut compressor(&[]).expect("zstd")).expect("encodes");
        let min_time = entries
            .iter()
            .map(|entry| super::super::time_ns(&entry.activity))
            .min()
            .expect("some");
        let alice: Vec<&Entry> = entries
            .iter()
            .filter(|entry| {
                entry
                    .activity
                    .account
                    .as_ref()
                    .is_some_and(|account| account.name.eq_ignore_ascii_case("alice"))
            })
            .collect();
        let mut expected = Vec::new();
        for protocol in ["dns", "kerberos"] {
            let times: Vec<i64> = alice
                .iter()
                .filter(|entry| protocol_name(entry.activity.body.as_ref()) == protocol)
                .map(|entry| super::super::time_ns(&entry.activity))
                .collect();
            expected.push(Count {
                protocol: protocol.to_owned(),
                count: times.len() as u64,
                first_ns: *times.iter().min().expect("some"),
                last_ns: *times.iter().max().expect("some"),
            });
        }
        assert_eq!(
            counts_of(&encoded.keys["a:alice"], min_time).expect("counts"),
            Some(expected)
        );
        assert_eq!(
            counts_of(&encoded.keys["a:zoë"], min_time).expect("read"),
            None
        );
        assert_eq!(
            counts_of(&encoded.keys["p:dns"], min_time).expect("read"),
            None
        );
        // The frames read past the counts.
        assert_eq!(
            frames_of(&encoded.keys["a:mallory"])
                .expect("postings")
                .len(),
            1
        );
        // Cut within the counts: an error, not a panic.
        let counted = &encoded.keys["a:alice"];
        let postings = split_counts(counted).expect("split").1;
        for cut in 1..=counted.len() - postings.len() {
            let damaged = &counted[..cut];
            assert!(
                counts_of(damaged, 0).is_err() || frames_of(damaged).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn postings_read_back_as_bitmaps_and_lists() {
        for frames in [
            BTreeSet::from([0]),
            BTreeSet::from([3, 200, 255]),
            (0..256).collect(),
            (0..256).step_by(3).collect(),
        ] {
            let encoded = postings(&frames);
            let back: BTreeSet<u64> = frames_of(&encoded)
                .expect("postings")
                .into_iter()
                .map(|frame| frame as u64)
                .collect();
            assert_eq!(back, frames);
        }
        assert!(postings(&(0..256).collect()).len() <= 33, "dense: a bitmap");
        assert!(frames_of(&[]).is_err());
        assert!(frames_of(&[9, 1]).is_err());
        assert!(frames_of(&[1, 0xff]).is_err(), "a cut varint");
    }

    #[test]
    fn a_damaged_block_is_an_error_not_a_panic() {
        let entries = entries(3);
        let mut compressor = compressor(&[]).expect("zstd");
        let encoded = encode("s1", &entries, &mut compressor).expect("encodes");
        let (first, oldest) = origin(&entries);
        let info =
            frame_index(&encoded.index, FORMAT_ACCOUNT_FRAMES, first, oldest).expect("index")[0];
        let mut decompressor = zstd::bulk::Decompressor::new().expect("zstd");
        let plain = decompressor
            .decompress(&encoded.frames[0], info.plain_len)
            .expect("zstd");
        let sized = |plain_len| FrameInfo { plain_len, ..info };
        let all = |_, _, _: &Activity| true;
        let every = Sieve::default();
        for cut in 0..plain.len() {
            let damaged = compressor.compress(&plain[..cut]).expect("compress");
            assert!(
                decode_frame("s1", &damaged, &sized(cut), &mut decompressor, &every, all).is_err(),
                "cut at {cut}"
            );
        }
        let mut lying = plain.clone();
        lying[0] = 0x7f; // claims 127 activities
        let lying = compressor.compress(&lying).expect("compress");
        assert!(decode_frame("s1", &lying, &info, &mut decompressor, &every, all).is_err());
        assert!(
            decode_frame(
                "s1",
                b"not zstd",
                &sized(10),
                &mut decompressor,
                &every,
                all
            )
            .is_err()
        );
        assert!(
            decode_frame(
                "s1",
                &encoded.frames[0],
                &sized(info.plain_len - 1),
                &mut decompressor,
                &every,
                all
            )
            .is_err(),
            "a wrong size"
        );
        for cut in 0..encoded.index.len() {
            assert!(
                frame_index(&encoded.index[..cut], FORMAT_ACCOUNT_FRAMES, 0, 0).is_err(),
                "cut at {cut}"
            );
        }
        // Format 1 too.
        let single = zstd::stream::decode_all(encode_single(&entries).as_slice()).expect("zstd");
        for cut in 0..single.len() {
            let damaged = zstd::bulk::compress(&single[..cut], 1).expect("compress");
            assert!(decode_single(&damaged).is_err(), "cut at {cut}");
        }
        assert!(decode_single(b"not zstd").is_err());
    }

    #[test]
    fn a_format_1_block_still_reads() {
        let entries = entries(50);
        assert_eq!(
            decode_single(&encode_single(&entries)).expect("decodes"),
            entries
        );
    }
}
