//! The spool: every batch is written here before it is sent, and stays until the backend
//! acknowledges it, across backend outages, sensor restarts and `kill -9`.
//!
//! On disk, in the spool folder:
//! - segment files `NNNNNNNNNNNNNNNNNNNN.seg` (a 20-digit segment number, increasing), each
//!   preallocated to the segment size (`posix_fallocate`, or zeros written where the file
//!   system lacks it: never sparse, so a full disk shows when a segment is made, not as a
//!   SIGBUS on a mapped page) and memory-mapped; recovery maps a segment only if its length
//!   is still the one in its header (a truncated file would SIGBUS on read). A segment begins
//!   with a [`SEGMENT_HEADER_LEN`]-byte header (magic `DCWSPOOL`, format version, segment
//!   number, the file's length as made, `u64` at byte 24), then records one after the other, each at an 8-byte-aligned offset; zeros after the last one.
//! - a record: a [`RECORD_HEADER_LEN`]-byte header, little-endian: magic `u32`
//!   ([`RECORD_MAGIC`]), payload length `u32`, sequence `u64`, activity count `u32`,
//!   uncompressed length `u32`, compression `u32` (the proto enum), CRC-32 (IEEE) `u32` of header
//!   bytes 4..28 and the payload; then the payload (the batch as sent).
//! - `state`: `acked_through=N`, `next_sequence=M` and `instance=HEX` lines (the instance: a
//!   random id made with the spool, sent in the hello, so the backend's welcome says whether
//!   its `stored_through` is this spool's numbering), replaced whole (write, fsync, rename).
//!   It may lag behind: after a crash the sensor resends a few acknowledged batches, which the
//!   backend's welcome (`stored_through`) or its deduplication absorbs.
//!
//! Recovery reads every segment: records with a good CRC come back; anything else (a torn record
//! after a crash, flipped bits) is skipped up to the next good record and counted once per
//! damaged stretch. A segment with damage at its end is not appended to again.

use std::{
    collections::VecDeque,
    fs::{self, File, OpenOptions},
    io::{self, Write as _},
    path::{Path, PathBuf},
};

use memmap2::MmapMut;

/// Segment size when the quota allows it: large enough that a segment holds many batches
/// (hundreds at the batcher's default cut), small enough that freeing one returns disk soon.
pub const SEGMENT_BYTES: u64 = 16 * 1024 * 1024;
/// Smallest segment: still holds the largest batch the batcher cuts ([`MAX_RECORD_PAYLOAD`]).
pub const MIN_SEGMENT_BYTES: u64 = 2 * 1024 * 1024;
/// The quota holds at least this many segments, so that eviction frees a fraction of it, not
/// all of it.
pub const MIN_SEGMENTS: u64 = 4;
/// Largest record payload: a batch beyond it is refused (the batcher cuts far below it).
pub const MAX_RECORD_PAYLOAD: usize = 1024 * 1024;
/// Segments kept at most, whatever the quota: bounds open mappings and file descriptors.
pub const MAX_SEGMENTS: usize = 4096;

pub const SEGMENT_MAGIC: &[u8; 8] = b"DCWSPOOL";
pub const SEGMENT_VERSION: u32 = 1;
pub const SEGMENT_HEADER_LEN: usize = 32;
/// Where a segment's header holds the file length it was made with (zero in older segments):
/// recovery maps only a file that still has it.
const SEGMENT_LENGTH_AT: usize = 24;
pub const RECORD_MAGIC: u32 = 0x5243_5744; // "DWCR" little-endian
pub const RECORD_HEADER_LEN: usize = 32;
/// Records start at multiples of this, so a scan for the next good record after damage only
/// tries aligned offsets.
pub const RECORD_ALIGN: usize = 8;

const STATE_FILE: &str = "state";
/// Held with `flock` while a spool is open: two sensors on one folder would overwrite each
/// other's records.
const LOCK_FILE: &str = "lock";
const SEGMENT_SUFFIX: &str = ".seg";

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("spool: a batch of {0} bytes is larger than a record may be ({MAX_RECORD_PAYLOAD})")]
    TooLarge(usize),
    #[error("spool: {0} segments, the most the spool keeps")]
    TooManySegments(usize),
    #[error("spool {0} is in use by another process (another sensor with the same --spool-dir?)")]
    Locked(PathBuf),
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where the spool lives and how much disk it may take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoolOptions {
    pub dir: PathBuf,
    /// The quota: segment files together never exceed it.
    pub max_bytes: u64,
    /// Size of one segment file; [`SpoolOptions::new`] derives it from the quota.
    pub segment_bytes: u64,
}

impl SpoolOptions {
    /// Segments of [`SEGMENT_BYTES`], smaller when the quota would hold fewer than
    /// [`MIN_SEGMENTS`] of them, never below [`MIN_SEGMENT_BYTES`].
    pub fn new(dir: PathBuf, max_bytes: u64) -> Self {
        let segment_bytes = (max_bytes / MIN_SEGMENTS).clamp(MIN_SEGMENT_BYTES, SEGMENT_BYTES);
        Self {
            dir,
            max_bytes: max_bytes.max(segment_bytes.saturating_mul(2)),
            segment_bytes,
        }
    }
}

/// A batch as spooled and sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpooledBatch {
    pub sequence: u64,
    pub compression: i32,
    pub activity_count: u32,
    pub uncompressed_len: u32,
    pub payload: Vec<u8>,
}

/// What eviction or acknowledgement took out of the spool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Removed {
    pub batches: u64,
    pub activities: u64,
}

dcwatch_telemetry::counters! {
    /// The spool's counters, for the stats file.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct SpoolCounters {
        /// Bytes of segment files on disk (what the quota bounds).
        gauge bytes: u64,
        /// Unacknowledged batches held.
        gauge batches: u64,
        /// Unacknowledged activities held.
        gauge activities: u64,
        counter evicted_batches: u64,
        counter evicted_activities: u64,
        counter corrupt_records: u64,
    }
}

#[derive(Clone, Copy, Debug)]
struct RecordMeta {
    sequence: u64,
    offset: usize,
    activity_count: u32,
}

#[derive(Debug)]
struct Segment {
    number: u64,
    path: PathBuf,
    map: MmapMut,
    /// Where the next record goes; `None`: sealed (full, or damaged at its end).
    write_at: Option<usize>,
    records: Vec<RecordMeta>,
    /// Written since its last synchronous flush (`append` only starts an asynchronous one).
    unflushed: bool,
}

impl Segment {
    /// Writes the mapping's dirty pages synchronously if anything was written since the last
    /// time.
    fn flush(&mut self) -> Result<(), SpoolError> {
        if self.unflushed {
            self.map.flush().map_err(io_error(&self.path))?;
            self.unflushed = false;
        }
        Ok(())
    }

    fn last_sequence(&self) -> Option<u64> {
        self.records.last().map(|record| record.sequence)
    }
}

#[derive(Debug)]
pub struct Spool {
    options: SpoolOptions,
    segments: VecDeque<Segment>,
    acked_through: u64,
    next_sequence: u64,
    /// A random id the spool was made with: sequences are this spool's numbering.
    instance: String,
    counters: SpoolCounters,
    /// The state file differs from memory.
    state_dirty: bool,
    /// Holds the folder's lock for the spool's life.
    _lock: Option<File>,
}

impl Spool {
    /// Opens (or makes) the spool in `options.dir` and recovers what it holds.
    pub fn open(options: SpoolOptions) -> Result<Self, SpoolError> {
        fs::create_dir_all(&options.dir).map_err(io_error(&options.dir))?;
        let lock = lock_folder(&options.dir)?;
        let state = read_state(&options.dir.join(STATE_FILE));
        let (acked_through, state_next) = (state.acked_through, state.next_sequence);
        // A spool without an instance (new, or its state file lost) gets one now, written
        // before anything is sent under it.
        let fresh = state.instance.is_empty();
        let instance = if fresh {
            new_instance(&options.dir)?
        } else {
            state.instance
        };
        let mut spool = Self {
            options,
            segments: VecDeque::new(),
            acked_through,
            next_sequence: state_next.max(acked_through.saturating_add(1)).max(1),
            instance,
            counters: SpoolCounters::default(),
            state_dirty: fresh,
            _lock: Some(lock),
        };
        spool.write_state()?;
        let mut numbers = spool.segment_numbers()?;
        numbers.sort_unstable();
        for number in numbers {
            if spool.segments.len() >= MAX_SEGMENTS {
                return Err(SpoolError::TooManySegments(spool.segments.len()));
            }
            let Some(segment) = spool.recover_segment(number)? else {
                continue;
            };
            if let Some(last) = segment.last_sequence() {
                spool.next_sequence = spool.next_sequence.max(last.saturating_add(1));
            }
            spool.segments.push_back(segment);
        }
        // Only the newest segment takes more records.
        let newest = spool.segments.len().saturating_sub(1);
        for (index, segment) in spool.segments.iter_mut().enumerate() {
            if index != newest {
                segment.write_at = None;
            }
        }
        spool.free_acknowledged()?;
        spool.refresh_counters();
        Ok(spool)
    }

    pub fn options(&self) -> &SpoolOptions {
        &self.options
    }

    /// The sequence the next appended batch gets.
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    pub fn acked_through(&self) -> u64 {
        self.acked_through
    }

    /// The random id this spool was made with (sent in the hello).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    pub fn counters(&self) -> SpoolCounters {
        self.counters
    }

    /// Writes a batch, numbering it; evicts the oldest segments first if the quota needs room
    /// (returned, so the caller can report it). The batch's `sequence` is ignored.
    pub fn append(&mut self, batch: &SpooledBatch) -> Result<(u64, Removed), SpoolError> {
        let payload_len = batch.payload.len();
        if payload_len > MAX_RECORD_PAYLOAD {
            return Err(SpoolError::TooLarge(payload_len));
        }
        let record_len = align(RECORD_HEADER_LEN + payload_len);
        let mut evicted = Removed::default();
        let fits = self.segments.back().is_some_and(|segment| {
            segment
                .write_at
                .is_some_and(|at| at + record_len <= segment.map.len())
        });
        if !fits {
            if let Some(segment) = self.segments.back_mut() {
                // Sealed: `sync` no longer treats it as the open segment, so it reaches the disk
                // now, before its records count as spooled beyond a crash.
                segment.flush()?;
                segment.write_at = None;
            }
            self.free_acknowledged()?;
            evicted = self.make_room()?;
            self.new_segment()?;
        }
        let sequence = self.next_sequence;
        let Some(segment) = self.segments.back_mut() else {
            return Err(SpoolError::TooManySegments(0));
        };
        let Some(offset) = segment.write_at else {
            return Err(SpoolError::TooManySegments(self.segments.len()));
        };
        let record = SpooledBatch {
            sequence,
            ..batch.clone()
        };
        write_record(&mut segment.map[offset..offset + record_len], &record);
        segment
            .map
            .flush_async_range(offset, record_len)
            .map_err(io_error(&segment.path))?;
        segment.records.push(RecordMeta {
            sequence,
            offset,
            activity_count: batch.activity_count,
        });
        segment.write_at = Some(offset + record_len);
        segment.unflushed = true;
        self.next_sequence = sequence.saturating_add(1);
        self.counters.batches += 1;
        self.counters.activities += u64::from(batch.activity_count);
        Ok((sequence, evicted))
    }

    /// The first unacknowledged batch with a sequence at or above `from`, read from disk. A
    /// record that no longer reads (the disk changed under us) is passed over: counted in
    /// `corrupt_records` once, and forgotten (it can never be sent).
    pub fn first_from(&mut self, from: u64) -> Option<SpooledBatch> {
        let from = from.max(self.acked_through.saturating_add(1));
        let mut lost = Removed::default();
        let mut found = None;
        for segment in &mut self.segments {
            if segment.last_sequence().is_none_or(|last| last < from) {
                continue;
            }
            let index = segment
                .records
                .partition_point(|record| record.sequence < from);
            while let Some(record) = segment.records.get(index).copied() {
                if let Some(batch) = read_record(&segment.map, record.offset) {
                    found = Some(batch);
                    break;
                }
                segment.records.remove(index);
                lost.batches += 1;
                lost.activities += u64::from(record.activity_count);
            }
            if found.is_some() {
                break;
            }
        }
        self.counters.corrupt_records += lost.batches;
        self.counters.batches = self.counters.batches.saturating_sub(lost.batches);
        self.counters.activities = self.counters.activities.saturating_sub(lost.activities);
        found
    }

    /// Every batch at or below `through` is stored by the backend: frees them, and the segments
    /// that hold nothing else.
    pub fn ack(&mut self, through: u64) -> Result<Removed, SpoolError> {
        let through = through.min(self.next_sequence.saturating_sub(1));
        if through <= self.acked_through {
            return Ok(Removed::default());
        }
        let removed = self.pending_between(self.acked_through, through);
        self.acked_through = through;
        self.state_dirty = true;
        self.counters.batches = self.counters.batches.saturating_sub(removed.batches);
        self.counters.activities = self.counters.activities.saturating_sub(removed.activities);
        self.free_acknowledged()?;
        Ok(removed)
    }

    /// Flushes every segment written since the last sync, then writes the state file if it is
    /// behind.
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        for segment in &mut self.segments {
            segment.flush()?;
        }
        self.write_state()
    }

    /// The backend has stored through `stored_through` batches this spool numbered (the
    /// welcome named this spool's instance): frees them, and numbers on after it. After an OS
    /// crash the spool may have lost records and numbering the backend already stored; reusing
    /// those numbers would make new batches look like duplicates.
    pub fn catch_up(&mut self, stored_through: u64) -> Result<Removed, SpoolError> {
        if stored_through >= self.next_sequence {
            self.next_sequence = stored_through.saturating_add(1);
            self.state_dirty = true;
        }
        self.ack(stored_through)
    }

    /// The backend's `stored_through` was numbered by another spool (this one was wiped, or
    /// another machine has this sensor id) and reaches what is pending here: later batches must
    /// be numbered after it, or the backend would take them for duplicates. Renumbers what is
    /// pending in place, in order, and returns how many batches were renumbered; nothing is
    /// freed (the backend's numbers say nothing about this spool's batches).
    pub fn continue_after(&mut self, stored_through: u64) -> Result<u64, SpoolError> {
        let lowest_pending = self
            .segments
            .iter()
            .flat_map(|segment| &segment.records)
            .map(|record| record.sequence)
            .find(|&sequence| sequence > self.acked_through)
            .unwrap_or(self.next_sequence);
        if stored_through < lowest_pending {
            return Ok(0);
        }
        let mut sequence = stored_through.saturating_add(1);
        let mut renumbered = 0;
        let acked_through = self.acked_through;
        for segment in &mut self.segments {
            for record in &mut segment.records {
                if record.sequence <= acked_through {
                    continue;
                }
                record.sequence = sequence;
                renumber_record(&mut segment.map, record.offset, sequence);
                sequence = sequence.saturating_add(1);
                renumbered += 1;
            }
            segment.map.flush().map_err(io_error(&segment.path))?;
        }
        // Acknowledged records keep their old numbers; nothing may be numbered below them.
        for segment in &mut self.segments {
            segment
                .records
                .retain(|record| record.sequence > acked_through);
        }
        self.acked_through = stored_through;
        self.next_sequence = sequence;
        self.state_dirty = true;
        self.write_state()?;
        Ok(renumbered)
    }

    fn pending_between(&self, after: u64, through: u64) -> Removed {
        let mut removed = Removed::default();
        for segment in &self.segments {
            for record in &segment.records {
                if record.sequence > after && record.sequence <= through {
                    removed.batches += 1;
                    removed.activities += u64::from(record.activity_count);
                }
            }
        }
        removed
    }

    /// Deletes sealed segments whose records are all acknowledged (the state file first, so a
    /// crash in between cannot bring their batches back as unacknowledged).
    fn free_acknowledged(&mut self) -> Result<(), SpoolError> {
        let acked = self.acked_through;
        let done = |segment: &Segment| {
            segment.write_at.is_none() && segment.last_sequence().is_none_or(|last| last <= acked)
        };
        if !self.segments.iter().any(done) {
            return Ok(());
        }
        self.write_state()?;
        let mut kept = VecDeque::with_capacity(self.segments.len());
        for segment in self.segments.drain(..) {
            if done(&segment) {
                remove_segment(segment)?;
            } else {
                kept.push_back(segment);
            }
        }
        self.segments = kept;
        self.refresh_counters();
        Ok(())
    }

    /// Evicts the oldest segments until one more fits in the quota.
    fn make_room(&mut self) -> Result<Removed, SpoolError> {
        let mut evicted = Removed::default();
        while !self.segments.is_empty()
            && (self.segments.len() as u64 + 1).saturating_mul(self.options.segment_bytes)
                > self.options.max_bytes
        {
            let Some(segment) = self.segments.pop_front() else {
                break;
            };
            for record in &segment.records {
                if record.sequence > self.acked_through {
                    evicted.batches += 1;
                    evicted.activities += u64::from(record.activity_count);
                }
            }
            remove_segment(segment)?;
        }
        self.counters.evicted_batches += evicted.batches;
        self.counters.evicted_activities += evicted.activities;
        self.counters.batches = self.counters.batches.saturating_sub(evicted.batches);
        self.counters.activities = self.counters.activities.saturating_sub(evicted.activities);
        Ok(evicted)
    }

    fn new_segment(&mut self) -> Result<(), SpoolError> {
        if self.segments.len() >= MAX_SEGMENTS {
            return Err(SpoolError::TooManySegments(self.segments.len()));
        }
        let number = self.segments.back().map_or_else(
            || self.segment_numbers_max().saturating_add(1),
            |segment| segment.number.saturating_add(1),
        );
        let path = self.segment_path(number);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_error(&path))?;
        let length = self.options.segment_bytes;
        if let Err(error) = preallocate(&file, length) {
            drop(fs::remove_file(&path));
            return Err(SpoolError::Io {
                path,
                source: error,
            });
        }
        // SAFETY: a mapping is sound while no one else truncates or writes the file and every
        // mapped page is backed by allocated blocks (else a store or load raises SIGBUS). The
        // file was created just now (`create_new`) in the spool folder, which this process
        // holds locked (`lock_folder`) and nothing else writes; `preallocate` allocated all its
        // `length` bytes (never a sparse file), and the spool never changes its length while it
        // is mapped.
        let mut map = unsafe { MmapMut::map_mut(&file) }.map_err(io_error(&path))?;
        write_segment_header(&mut map, number, length);
        self.segments.push_back(Segment {
            number,
            path,
            map,
            write_at: Some(SEGMENT_HEADER_LEN),
            records: Vec::new(),
            unflushed: true,
        });
        self.refresh_counters();
        Ok(())
    }

    /// The segment's records; `None` for a file that must not be mapped (its length is not
    /// the one it was made with): counted as corrupt and renamed `*.seg.corrupt`.
    fn recover_segment(&mut self, number: u64) -> Result<Option<Segment>, SpoolError> {
        let path = self.segment_path(number);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_error(&path))?;
        let length = file.metadata().map_err(io_error(&path))?.len();
        if length < (SEGMENT_HEADER_LEN + RECORD_HEADER_LEN) as u64 {
            // Made but never written (a crash between create and header): nothing to recover.
            let mut map = MmapMut::map_anon(SEGMENT_HEADER_LEN).map_err(io_error(&path))?;
            write_segment_header(&mut map, number, 0);
            return Ok(Some(Segment {
                number,
                path,
                map,
                write_at: None,
                records: Vec::new(),
                unflushed: false,
            }));
        }
        let expected = made_length(&mut file)
            .map_err(io_error(&path))?
            .unwrap_or(self.options.segment_bytes);
        if length != expected {
            // Truncated (or grown) by someone else: a mapping past the file's end would SIGBUS
            // on read, so the file is not mapped. Renamed, it stays for a look but is out of the
            // segment numbering.
            let aside = path.with_extension("seg.corrupt");
            log::warn!(
                "spool segment {} is {length} bytes, not the {expected} it was made with: \
                 skipped as corrupt, renamed {}",
                path.display(),
                aside.display()
            );
            self.counters.corrupt_records += 1;
            fs::rename(&path, &aside).map_err(io_error(&path))?;
            return Ok(None);
        }
        // A sparse file (made by an older sensor on a file system without fallocate) has pages
        // with no blocks behind them: reading them gives zeros, but a store into one on a full
        // disk raises SIGBUS, so such a segment is only read, never appended to.
        let allocated = {
            use std::os::unix::fs::MetadataExt as _;
            file.metadata()
                .map_err(io_error(&path))?
                .blocks()
                .saturating_mul(512)
                >= length
        };
        // SAFETY: loads and stores through a file mapping are sound only while every mapped
        // page lies within the file (else SIGBUS) and no one else changes the bytes under us.
        // Preconditions, each upheld here: (1) the spool folder is held locked by this process
        // (`lock_folder`) and nothing else writes or truncates its segment files; (2) the spool
        // never changes a mapped segment's length; (3) the length was just checked to be the one
        // the segment was made with, and the mapping covers exactly that length. Stores (appends)
        // go only into a segment whose blocks are all allocated (`allocated`), so a full disk
        // cannot turn one into a SIGBUS.
        let map = unsafe { MmapMut::map_mut(&file) }.map_err(io_error(&path))?;
        let scan = scan_segment(&map);
        self.counters.corrupt_records += scan.corrupt;
        Ok(Some(Segment {
            number,
            path,
            map,
            write_at: scan.clean_end.filter(|_| allocated),
            records: scan.records,
            unflushed: false,
        }))
    }

    fn refresh_counters(&mut self) {
        self.counters.bytes = self
            .segments
            .iter()
            .map(|segment| segment.map.len() as u64)
            .sum();
        let pending = self.pending_between(self.acked_through, u64::MAX);
        self.counters.batches = pending.batches;
        self.counters.activities = pending.activities;
    }

    fn segment_path(&self, number: u64) -> PathBuf {
        self.options
            .dir
            .join(format!("{number:020}{SEGMENT_SUFFIX}"))
    }

    fn segment_numbers(&self) -> Result<Vec<u64>, SpoolError> {
        let dir = &self.options.dir;
        let mut numbers = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_error(dir))? {
            let entry = entry.map_err(io_error(dir))?;
            let name = entry.file_name();
            let Some(number) = name
                .to_str()
                .and_then(|name| name.strip_suffix(SEGMENT_SUFFIX))
                .and_then(|stem| stem.parse::<u64>().ok())
            else {
                continue;
            };
            numbers.push(number);
        }
        Ok(numbers)
    }

    fn segment_numbers_max(&self) -> u64 {
        self.segment_numbers()
            .ok()
            .and_then(|numbers| numbers.into_iter().max())
            .unwrap_or(0)
    }

    fn write_state(&mut self) -> Result<(), SpoolError> {
        if !self.state_dirty {
            return Ok(());
        }
        let path = self.options.dir.join(STATE_FILE);
        let temporary = self.options.dir.join(format!("{STATE_FILE}.tmp"));
        let text = format!(
            "acked_through={}\nnext_sequence={}\ninstance={}\n",
            self.acked_through, self.next_sequence, self.instance
        );
        let mut file = File::create(&temporary).map_err(io_error(&temporary))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(io_error(&temporary))?;
        fs::rename(&temporary, &path).map_err(io_error(&path))?;
        self.state_dirty = false;
        Ok(())
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        drop(self.sync());
    }
}

fn lock_folder(dir: &Path) -> Result<File, SpoolError> {
    use std::os::fd::AsRawFd as _;
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_error(&path))?;
    // SAFETY: a plain syscall on a descriptor we own, with no pointers.
    let result = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if result != 0 {
        let error = io::Error::last_os_error();
        if error.kind() == io::ErrorKind::WouldBlock {
            return Err(SpoolError::Locked(dir.to_owned()));
        }
        return Err(SpoolError::Io {
            path,
            source: error,
        });
    }
    Ok(file)
}

fn remove_segment(segment: Segment) -> Result<(), SpoolError> {
    let Segment { path, map, .. } = segment;
    drop(map);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(SpoolError::Io {
            path,
            source: error,
        }),
    }
}

/// What the state file holds.
#[derive(Debug, Default)]
struct State {
    acked_through: u64,
    next_sequence: u64,
    instance: String,
}

/// The state file's values; zeros and no instance when it is missing or bad (the segments then
/// tell what is there).
fn read_state(path: &Path) -> State {
    let mut state = State::default();
    let Ok(text) = fs::read_to_string(path) else {
        return state;
    };
    for line in text.lines() {
        match line.split_once('=') {
            Some(("acked_through", value)) => {
                state.acked_through = value.trim().parse().unwrap_or(0);
            }
            Some(("next_sequence", value)) => {
                state.next_sequence = value.trim().parse().unwrap_or(0);
            }
            Some(("instance", value)) => state.instance = value.trim().to_owned(),
            _ => {}
        }
    }
    state
}

/// Bytes of randomness in a spool instance id: two spools never share one.
const INSTANCE_BYTES: usize = 16;

/// A new random spool instance id, in hex.
fn new_instance(dir: &Path) -> Result<String, SpoolError> {
    use std::io::Read as _;
    let mut bytes = [0_u8; INSTANCE_BYTES];
    let random = Path::new("/dev/urandom");
    File::open(random)
        .and_then(|mut file| file.read_exact(&mut bytes))
        .map_err(|source| SpoolError::Io {
            path: dir.join(STATE_FILE),
            source,
        })?;
    Ok(hex::encode(bytes))
}

/// Zeros written at a time when the file system cannot `fallocate`.
const ZERO_CHUNK: usize = 64 * 1024;

/// Gives the file `length` bytes of allocated blocks, so that no store into its mapping can
/// find a page the disk has no room for (a SIGBUS, not an error). Never leaves a sparse file.
fn preallocate(file: &File, length: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd as _;
    let length_off = libc::off_t::try_from(length).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: a plain syscall on a descriptor we own, with no pointers.
    let result = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, length_off) };
    match result {
        0 => Ok(()),
        // File systems without fallocate (some FUSE ones, old NFS): allocate by writing zeros,
        // so a full disk is an ENOSPC here rather than a SIGBUS later.
        libc::EOPNOTSUPP | libc::EINVAL => write_zeros(file, length),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// Writes `length` zero bytes from the start of `file` in [`ZERO_CHUNK`] pieces, then syncs, so
/// every block is allocated (ENOSPC and other errors are returned).
fn write_zeros(mut file: &File, length: u64) -> io::Result<()> {
    use std::io::{Seek as _, SeekFrom};
    let zeros = vec![0_u8; ZERO_CHUNK];
    file.seek(SeekFrom::Start(0))?;
    let mut left = length;
    while left > 0 {
        let chunk = usize::try_from(left.min(ZERO_CHUNK as u64)).unwrap_or(ZERO_CHUNK);
        file.write_all(&zeros[..chunk])?;
        left -= chunk as u64;
    }
    file.sync_data()
}

fn align(length: usize) -> usize {
    length.div_ceil(RECORD_ALIGN) * RECORD_ALIGN
}

/// The length a segment file was made with, from its header (read, not mapped); `None` when
/// the header does not say (a segment of the first format wrote zeros there).
fn made_length(file: &mut File) -> io::Result<Option<u64>> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut header = [0_u8; SEGMENT_HEADER_LEN];
    file.seek(SeekFrom::Start(0))?;
    file.read_exact(&mut header)?;
    if header.get(..8) != Some(SEGMENT_MAGIC.as_slice()) {
        return Ok(None);
    }
    Ok(u64_at(&header, SEGMENT_LENGTH_AT).filter(|&length| length != 0))
}

fn write_segment_header(map: &mut [u8], number: u64, length: u64) {
    let Some(header) = map.get_mut(..SEGMENT_HEADER_LEN) else {
        return;
    };
    header[..8].copy_from_slice(SEGMENT_MAGIC);
    header[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    header[16..24].copy_from_slice(&number.to_le_bytes());
    header[SEGMENT_LENGTH_AT..SEGMENT_LENGTH_AT + 8].copy_from_slice(&length.to_le_bytes());
}

/// Writes a record into `slot` (its aligned length): header fields and payload first, the magic
/// last, so a record cut short before the end mostly reads as no record at all.
fn write_record(slot: &mut [u8], batch: &SpooledBatch) {
    let (header, rest) = slot.split_at_mut(RECORD_HEADER_LEN);
    let payload_len = batch.payload.len();
    rest[..payload_len].copy_from_slice(&batch.payload);
    rest[payload_len..].fill(0);
    header[4..8].copy_from_slice(&u32::try_from(payload_len).unwrap_or(u32::MAX).to_le_bytes());
    header[8..16].copy_from_slice(&batch.sequence.to_le_bytes());
    header[16..20].copy_from_slice(&batch.activity_count.to_le_bytes());
    header[20..24].copy_from_slice(&batch.uncompressed_len.to_le_bytes());
    header[24..28].copy_from_slice(&batch.compression.to_le_bytes());
    let crc = record_crc(&header[4..28], &rest[..payload_len]);
    header[28..32].copy_from_slice(&crc.to_le_bytes());
    header[0..4].copy_from_slice(&RECORD_MAGIC.to_le_bytes());
}

fn renumber_record(map: &mut [u8], offset: usize, sequence: u64) {
    let Some(batch) = read_record(map, offset) else {
        return;
    };
    let length = align(RECORD_HEADER_LEN + batch.payload.len());
    if let Some(slot) = map.get_mut(offset..offset + length) {
        write_record(slot, &SpooledBatch { sequence, ..batch });
    }
}

fn record_crc(header: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(header);
    hasher.update(payload);
    hasher.finalize()
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// The record at `offset` if its header and CRC are good.
fn read_record(map: &[u8], offset: usize) -> Option<SpooledBatch> {
    let header = map.get(offset..offset.checked_add(RECORD_HEADER_LEN)?)?;
    if u32_at(header, 0)? != RECORD_MAGIC {
        return None;
    }
    let payload_len = usize::try_from(u32_at(header, 4)?).ok()?;
    if payload_len > MAX_RECORD_PAYLOAD {
        return None;
    }
    let start = offset + RECORD_HEADER_LEN;
    let payload = map.get(start..start.checked_add(payload_len)?)?;
    if record_crc(&header[4..28], payload) != u32_at(header, 28)? {
        return None;
    }
    Some(SpooledBatch {
        sequence: u64_at(header, 8)?,
        activity_count: u32_at(header, 16)?,
        uncompressed_len: u32_at(header, 20)?,
        compression: i32::from_le_bytes(header.get(24..28)?.try_into().ok()?),
        payload: payload.to_vec(),
    })
}

#[derive(Debug, Default)]
struct Scan {
    records: Vec<RecordMeta>,
    corrupt: u64,
    /// Offset after the last record when only zeros follow it; `None` when damage ends the
    /// segment (not appended to again).
    clean_end: Option<usize>,
}

/// Reads a segment's records in order. A record that does not check out starts a damaged
/// stretch, counted once, that ends at the next aligned offset holding a good record.
fn scan_segment(map: &[u8]) -> Scan {
    let mut scan = Scan::default();
    if map.get(..8) != Some(SEGMENT_MAGIC.as_slice()) {
        // A header we did not write: the records may still be good.
        scan.corrupt += 1;
    }
    let mut offset = SEGMENT_HEADER_LEN;
    let mut last_sequence = 0;
    loop {
        if let Some(batch) = read_record(map, offset)
            && batch.sequence > last_sequence
        {
            scan.records.push(RecordMeta {
                sequence: batch.sequence,
                offset,
                activity_count: batch.activity_count,
            });
            last_sequence = batch.sequence;
            offset += align(RECORD_HEADER_LEN + batch.payload.len());
            continue;
        }
        let rest = map.get(offset..).unwrap_or_default();
        if rest.iter().all(|&byte| byte == 0) {
            scan.clean_end = (offset + RECORD_HEADER_LEN <= map.len()).then_some(offset);
            return scan;
        }
        scan.corrupt += 1;
        match next_good_record(map, offset + RECORD_ALIGN, last_sequence) {
            Some(next) => offset = next,
            None => return scan,
        }
    }
}

fn next_good_record(map: &[u8], from: usize, after_sequence: u64) -> Option<usize> {
    let magic = RECORD_MAGIC.to_le_bytes();
    (from..map.len().saturating_sub(RECORD_HEADER_LEN))
        .step_by(RECORD_ALIGN)
        .filter(|&offset| map.get(offset..offset + 4) == Some(magic.as_slice()))
        .find(|&offset| {
            read_record(map, offset).is_some_and(|batch| batch.sequence > after_sequence)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEGMENT: u64 = MIN_SEGMENT_BYTES;

    fn options(dir: &Path, segments: u64) -> SpoolOptions {
        SpoolOptions {
            dir: dir.to_owned(),
            max_bytes: SEGMENT * segments,
            segment_bytes: SEGMENT,
        }
    }

    fn batch(activities: u32, len: usize, fill: u8) -> SpooledBatch {
        SpooledBatch {
            sequence: 0,
            compression: 1,
            activity_count: activities,
            uncompressed_len: u32::try_from(len * 2).expect("small"),
            payload: vec![fill; len],
        }
    }

    fn sequences(spool: &mut Spool) -> Vec<u64> {
        let mut out = Vec::new();
        let mut from = 0;
        while let Some(batch) = spool.first_from(from) {
            out.push(batch.sequence);
            from = batch.sequence + 1;
        }
        out
    }

    /// `kill -9`: no Drop, no state written, no flush; the kernel closes the lock's descriptor.
    fn crash(mut spool: Spool) {
        drop(spool._lock.take());
        std::mem::forget(spool);
    }

    fn segment_files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<_> = fs::read_dir(dir)
            .expect("dir")
            .map(|entry| entry.expect("entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
            .collect();
        files.sort();
        files
    }

    #[test]
    fn write_read_ack_and_reopen() {
        let dir = tempfile::tempdir().expect("dir");
        let mut spool = Spool::open(options(dir.path(), 8)).expect("open");
        assert_eq!(spool.next_sequence(), 1);
        for index in 0..5_u8 {
            let (sequence, evicted) = spool
                .append(&batch(3, 100 + usize::from(index), index))
                .expect("append");
            assert_eq!(sequence, u64::from(index) + 1);
            assert_eq!(evicted, Removed::default());
        }
        let third = spool.first_from(3).expect("third");
        assert_eq!(third.sequence, 3);
        assert_eq!(third.payload, vec![2; 102]);
        assert_eq!(third.activity_count, 3);
        assert_eq!(third.compression, 1);
        assert_eq!(
            spool.ack(2).expect("ack"),
            Removed {
                batches: 2,
                activities: 6
            }
        );
        assert_eq!(spool.counters().batches, 3);
        assert_eq!(sequences(&mut spool), [3, 4, 5]);
        drop(spool);

        let mut spool = Spool::open(options(dir.path(), 8)).expect("reopen");
        assert_eq!(sequences(&mut spool), [3, 4, 5]);
        assert_eq!(spool.counters().batches, 3);
        assert_eq!(spool.counters().activities, 9);
        assert_eq!(spool.next_sequence(), 6);
        assert_eq!(spool.append(&batch(1, 10, 9)).expect("append").0, 6);
        assert_eq!(spool.first_from(6).expect("sixth").payload, vec![9; 10]);
        assert_eq!(spool.counters().corrupt_records, 0);
    }

    #[test]
    fn sequence_continues_when_everything_was_acknowledged() {
        let dir = tempfile::tempdir().expect("dir");
        let mut spool = Spool::open(options(dir.path(), 4)).expect("open");
        // Fill more than one segment so the first gets freed.
        let big = usize::try_from(SEGMENT / 3).expect("small");
        for _ in 0..4 {
            spool.append(&batch(1, big, 1)).expect("append");
        }
        assert!(segment_files(dir.path()).len() >= 2);
        spool.ack(4).expect("ack");
        assert_eq!(
            segment_files(dir.path()).len(),
            1,
            "only the open segment is kept"
        );
        drop(spool);
        let mut spool = Spool::open(options(dir.path(), 4)).expect("reopen");
        assert_eq!(spool.next_sequence(), 5);
        assert_eq!(spool.first_from(0), None);
        drop(spool);
        // Even with the state file gone, the segments still give the next sequence.
        fs::remove_file(dir.path().join(STATE_FILE)).expect("remove state");
        let spool = Spool::open(options(dir.path(), 4)).expect("reopen");
        assert_eq!(spool.next_sequence(), 5);
    }

    #[test]
    fn killed_without_closing_keeps_what_was_written() {
        let dir = tempfile::tempdir().expect("dir");
        let mut spool = Spool::open(options(dir.path(), 4)).expect("open");
        for index in 0..3 {
            spool.append(&batch(2, 50, index)).expect("append");
        }
        spool.ack(1).expect("ack");
        crash(spool);
        let mut spool = Spool::open(options(dir.path(), 4)).expect("reopen");
        // The ack never reached the state file: batch 1 comes back (the backend's welcome
        // drops it again); nothing is lost.
        assert_eq!(sequences(&mut spool), [1, 2, 3]);
        assert_eq!(spool.next_sequence(), 4);
    }

    #[test]
    fn torn_last_record_is_skipped_and_counted() {
        let dir = tempfile::tempdir().expect("dir");
        let mut spool = Spool::open(options(dir.path(), 4)).expect("open");
        for index in 0..3 {
            spool.append(&batch(2, 1000, index + 1)).expect("append");
        }
        crash(spool);
        let file = segment_files(dir.path()).pop().expect("segment");
        let mut bytes = fs::read(&file).expect("read");
        // The third record's payload was only half written.
        let third = SEGMENT_HEADER_LEN + 2 * align(RECORD_HEADER_LEN + 1000);
        bytes[third + RECORD_HEADER_LEN + 500..third + RECORD_HEADER_LEN + 1000].fill(0);
        fs::write(&file, &bytes).expect("write");

        let mut spool = Spool::open(options(dir.path(), 4)).expect("reopen");
        assert_eq!(sequences(&mut spool), [1, 2]);
        assert_eq!(spool.counters().corrupt_records, 1);
        // The torn segment is sealed; new batches go to a new one and number on.
        assert_eq!(spool.append(&batch(1, 10, 7)).expect("append").0, 3);
        assert_eq!(segment_files(dir.path()).len(), 2);
        drop(spool);
        let mut spool = Spool::open(options(dir.path(), 4)).expect("reopen");
        assert_eq!(sequences(&mut spool), [1, 2, 3]);
    }

    #[test]
    fn corrupted_record_in_the_middle_is_skipped_and_the_rest_recovers() {
        let dir = tempfile::tempdir().expect("dir");
        let mut spool = Spool::open(options(dir.path(), 4)).expect("open");
        for index in 0..5 {
            spool.append(&batch(1, 300, index + 1)).expect("append");
        }
        drop(spool);
        let file = segment_files(dir.path()).pop().expect("segment");
        let mut bytes = fs::read(&file).expect("read");
        let second = SEGMENT_HEADER_LEN + align(RECORD_HEADER_LEN + 300);
        bytes[second + RECORD_HEADER_LEN + 10] ^= 0xff; // a flipped payload byte
        let fourth = SEGMENT_HEADER_LEN + 3 * align(RECORD_HEADER_LEN + 300);
        bytes[fourth + 4] = 0xee; // a wild length
        fs::write(&file, &bytes).expect("write");

        let mut spool = Spool::open(options(dir.path(), 4)).expect("reopen");
        assert_eq!(sequences(&mut spool), [1, 3, 5]);
        assert_eq!(spool.counters().corrupt_records, 2);
        assert_eq!(spool.next_sequence(), 6);
    }

    #[test]
    fn full_quota_evicts_the_oldest_and_counts() {
        let dir = tempfile::tempdir().expect("dir");
        let mut spool = Spool::open(options(dir.path(), 3)).expect("open");
        // Two records per segment.
        let len = usize::try_from(SEGMENT / 2).expect("small") - 2 * RECORD_HEADER_LEN;
        let mut evicted = Removed::default();
        for _ in 0..8 {
            let (_, removed) = spool.append(&batch(10, len, 1)).expect("append");
            evicted.batches += removed.batches;
            evicted.activities += removed.activities;
        }
        // Segments: [1,2] [3,4] [5,6] [7,8] with room for three: [1,2] went first.
        assert_eq!(
            evicted,
            Removed {
                batches: 2,
                activities: 20
            }
        );
        assert_eq!(sequences(&mut spool), [3, 4, 5, 6, 7, 8]);
        let counters = spool.counters();
        assert_eq!(counters.evicted_batches, 2);
        assert_eq!(counters.evicted_activities, 20);
        assert_eq!(counters.batches, 6);
        assert!(counters.bytes <= spool.options().max_bytes);
        // Acknowledged segments go before anything is evicted.
        spool.ack(6).expect("ack");
        let (_, removed) = spool.append(&batch(10, len, 1)).expect("append");
        assert_eq!(removed, Removed::default());
        assert_eq!(sequences(&mut spool), [7, 8, 9]);
    }

    #[test]
    fn renumbers_after_a_backend_that_is_ahead() {
        let dir = tempfile::tempdir().expect("dir");
        let mut spool = Spool::open(options(dir.path(), 4)).expect("open");
        for index in 0..3 {
            spool.append(&batch(1, 20, index)).expect("append");
        }
        spool.ack(1).expect("ack");
        assert_eq!(
            spool.continue_after(1).expect("behind"),
            0,
            "below what is pending"
        );
        assert_eq!(spool.continue_after(100).expect("renumber"), 2);
        assert_eq!(sequences(&mut spool), [101, 102]);
        assert_eq!(spool.append(&batch(1, 20, 5)).expect("append").0, 103);
        drop(spool);
        let mut spool = Spool::open(options(dir.path(), 4)).expect("reopen");
        assert_eq!(sequences(&mut spool), [101, 102, 103]);
        assert_eq!(spool.counters().corrupt_records, 0);
    }

    #[test]
    fn a_truncated_segment_is_not_mapped_but_counted_and_set_aside() {
        let dir = tempfile::tempdir().expect("dir");
        let mut spool = Spool::open(options(dir.path(), 4)).expect("open");
        for index in 0..3 {
            spool.append(&batch(1, 100, index + 1)).expect("append");
        }
        drop(spool);
        let file = segment_files(dir.path()).pop().expect("segment");
        // Someone else cut the file: its pages past the end would SIGBUS if mapped.
        OpenOptions::new()
            .write(true)
            .open(&file)
            .expect("open segment")
            .set_len(SEGMENT / 2)
            .expect("truncate");

        let mut spool = Spool::open(options(dir.path(), 4)).expect("reopen");
        assert_eq!(sequences(&mut spool), Vec::<u64>::new());
        assert_eq!(spool.counters().corrupt_records, 1);
        assert!(segment_files(dir.path()).is_empty());
        assert!(file.with_extension("seg.corrupt").exists());
        // A new segment takes the next batch (numbered from the state file: the backend's
        // welcome moves numbering past what it stored).
        let (sequence, _) = spool.append(&batch(1, 10, 9)).expect("append");
        drop(spool);
        let mut spool = Spool::open(options(dir.path(), 4)).expect("reopen");
        assert_eq!(sequences(&mut spool), [sequence]);
        assert_eq!(spool.counters().corrupt_records, 0);
    }

    #[test]
    fn a_segment_made_with_another_size_still_recovers() {
        let dir = tempfile::tempdir().expect("dir");
        let mut spool = Spool::open(options(dir.path(), 4)).expect("open");
        spool.append(&batch(1, 100, 1)).expect("append");
        drop(spool);
        let mut bigger = options(dir.path(), 8);
        bigger.segment_bytes = SEGMENT * 2;
        let mut spool = Spool::open(bigger).expect("reopen");
        assert_eq!(sequences(&mut spool), [1]);
        assert_eq!(spool.counters().corrupt_records, 0);
    }

    #[test]
    fn allocating_without_fallocate_leaves_no_hole() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("zeros");
        let file = File::create(&path).expect("create");
        let length = 3 * ZERO_CHUNK as u64 + 100;
        write_zeros(&file, length).expect("zeros");
        let metadata = fs::metadata(&path).expect("metadata");
        assert_eq!(metadata.len(), length);
        // Every block is allocated: a store into the mapping cannot meet a full disk.
        assert!(metadata.blocks() * 512 >= length, "{}", metadata.blocks());
    }

    #[test]
    fn a_record_that_no_longer_reads_is_counted_once_and_forgotten() {
        let dir = tempfile::tempdir().expect("dir");
        let mut spool = Spool::open(options(dir.path(), 4)).expect("open");
        for index in 0..3 {
            spool.append(&batch(2, 100, index + 1)).expect("append");
        }
        // The disk changed under the mapping: the second record's payload no longer checks.
        let segment = spool.segments.back_mut().expect("segment");
        let second = segment.records[1].offset;
        segment.map[second + RECORD_HEADER_LEN + 5] ^= 0xff;
        assert_eq!(sequences(&mut spool), [1, 3]);
        let counters = spool.counters();
        assert_eq!(counters.corrupt_records, 1);
        assert_eq!((counters.batches, counters.activities), (2, 4));
        // Read again (a resend after a break): not counted twice.
        assert_eq!(sequences(&mut spool), [1, 3]);
        assert_eq!(spool.counters().corrupt_records, 1);
        assert_eq!(
            spool.ack(3).expect("ack"),
            Removed {
                batches: 2,
                activities: 4
            }
        );
    }

    #[test]
    fn sealed_segments_and_sync_flush_every_written_segment() {
        let dir = tempfile::tempdir().expect("dir");
        let mut spool = Spool::open(options(dir.path(), 8)).expect("open");
        let big = usize::try_from(SEGMENT / 3).expect("small");
        for _ in 0..7 {
            spool.append(&batch(1, big, 1)).expect("append");
        }
        assert!(spool.segments.len() >= 3);
        let newest = spool.segments.len() - 1;
        for (index, segment) in spool.segments.iter().enumerate() {
            // Sealing flushed each older segment synchronously; only the open one waits.
            assert_eq!(segment.unflushed, index == newest, "segment {index}");
            assert_eq!(
                segment.write_at.is_none(),
                index != newest,
                "segment {index}"
            );
        }
        spool.sync().expect("sync");
        assert!(spool.segments.iter().all(|segment| !segment.unflushed));
    }

    #[test]
    fn the_instance_is_made_with_the_spool_and_kept() {
        let dir = tempfile::tempdir().expect("dir");
        let spool = Spool::open(options(dir.path(), 4)).expect("open");
        let instance = spool.instance().to_owned();
        assert_eq!(instance.len(), 2 * INSTANCE_BYTES);
        crash(spool);
        // Written when the spool was made, not only on a clean close.
        let spool = Spool::open(options(dir.path(), 4)).expect("reopen");
        assert_eq!(spool.instance(), instance);
        drop(spool);
        let other = tempfile::tempdir().expect("dir");
        let spool = Spool::open(options(other.path(), 4)).expect("another");
        assert_ne!(spool.instance(), instance);
    }

    #[test]
    fn the_same_spool_behind_the_backend_frees_and_numbers_on_without_renumbering() {
        // An OS crash lost the state file's and the last records' numbering: 5..8 are on disk,
        // the backend stored 5..10 from this spool.
        let dir = tempfile::tempdir().expect("dir");
        let mut spool = Spool::open(options(dir.path(), 4)).expect("open");
        for index in 0..8 {
            spool.append(&batch(1, 20, index)).expect("append");
        }
        spool.ack(4).expect("ack");
        assert_eq!(spool.next_sequence(), 9);
        assert_eq!(
            spool.catch_up(10).expect("catch up"),
            Removed {
                batches: 4,
                activities: 4
            }
        );
        assert_eq!(sequences(&mut spool), Vec::<u64>::new());
        assert_eq!(spool.append(&batch(1, 20, 9)).expect("append").0, 11);
        drop(spool);
        let mut spool = Spool::open(options(dir.path(), 4)).expect("reopen");
        assert_eq!(sequences(&mut spool), [11]);
    }

    #[test]
    fn another_spools_numbers_renumber_only_what_they_reach() {
        let dir = tempfile::tempdir().expect("dir");
        let mut spool = Spool::open(options(dir.path(), 4)).expect("open");
        for index in 0..4 {
            spool.append(&batch(1, 20, index)).expect("append");
        }
        spool.ack(1).expect("ack");
        // Below what is pending: nothing to do, nothing freed.
        assert_eq!(spool.continue_after(1).expect("below"), 0);
        assert_eq!(sequences(&mut spool), [2, 3, 4]);
        // Reaching into it (but below next_sequence): everything pending moves after it.
        assert_eq!(spool.continue_after(3).expect("renumber"), 3);
        assert_eq!(sequences(&mut spool), [4, 5, 6]);
        assert_eq!(spool.append(&batch(1, 20, 5)).expect("append").0, 7);
    }

    #[test]
    fn one_spool_per_folder() {
        let dir = tempfile::tempdir().expect("dir");
        let spool = Spool::open(options(dir.path(), 4)).expect("open");
        let second = Spool::open(options(dir.path(), 4));
        assert!(matches!(second, Err(SpoolError::Locked(_))), "{second:?}");
        drop(spool);
        Spool::open(options(dir.path(), 4)).expect("free again");
    }

    #[test]
    fn options_fit_segments_to_the_quota() {
        let big = SpoolOptions::new(PathBuf::from("/x"), 1 << 30);
        assert_eq!(big.segment_bytes, SEGMENT_BYTES);
        let small = SpoolOptions::new(PathBuf::from("/x"), 1 << 20);
        assert_eq!(small.segment_bytes, MIN_SEGMENT_BYTES);
        assert!(small.max_bytes >= 2 * MIN_SEGMENT_BYTES);
    }
}
