//! Streaming activities to a backend (DESIGN.md, "Transport").
//!
//! ```text
//! pipeline --ActivitySink (batcher)--> bounded queue --> writer: zstd, spool (numbered, on disk)
//!                                                           --> client: gRPC stream, acks free the spool
//! ```
//!
//! The pipeline never waits on the network or the disk when capturing live: a full queue drops
//! the batch and counts it (`spool_queue_full_batches`, `spool_queue_full_activities`). A replay
//! waits instead (there is no capture to protect). The writer and the client run on their own
//! thread and tokio runtime, so compression, disk and TLS never take time from the capture loop.

pub mod backoff;
pub mod batcher;
pub mod client;
pub mod spool;

use std::{
    collections::VecDeque,
    path::PathBuf,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use dcwatch_proto::v1::{
    Activity, ActivityBatch, Compression, DirectoryDelta, HealthEvent, health_event::Severity,
};
use dcwatch_telemetry::Snapshot;
use log::{error, warn};
use prost::Message as _;
use tokio::sync::{Notify, mpsc, watch};

use self::{
    batcher::{BatchLimits, Batcher, EncodedBatch},
    spool::{Spool, SpoolError, SpoolOptions, SpooledBatch},
};

/// zstd level: level 3 (zstd's default) compresses activities 5-10 times at hundreds of MB/s.
pub const ZSTD_LEVEL: i32 = 3;
/// Batches waiting between the pipeline and the spool writer: 64 x 256 KiB = 16 MiB at most.
pub const WRITER_QUEUE_BATCHES: usize = 64;
/// Health events waiting for a connection; beyond it the oldest go (counted).
pub const MAX_PENDING_HEALTH: usize = 64;
/// How often a waiting caller (replay's end, shutdown) looks at the spool again.
const WAIT_POLL: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error("backend {url}: {message}")]
    Backend { url: String, message: String },
    #[error("starting the transport thread: {0}")]
    Thread(std::io::Error),
}

/// Everything the transport needs, from the config file and the command line.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// `https://HOST:PORT` (`http://` only to a loopback address, for tests).
    pub url: String,
    pub token: String,
    /// PEM file of the CA that signed the backend's certificate; `None`: the system's roots.
    pub ca: Option<PathBuf>,
    pub spool: SpoolOptions,
    pub batch: BatchLimits,
    pub sensor_id: String,
}

dcwatch_telemetry::counters! {
    /// Counters of the transport, shared by the pipeline's thread and the transport's.
    #[derive(Debug, Default)]
    pub struct TransportCounters {
        counter batches_sent: AtomicU64,
        counter batches_acked: AtomicU64,
        counter batches_resent: AtomicU64,
        counter backend_connects: AtomicU64,
        counter backend_errors: AtomicU64,
        counter spool_queue_full_batches: AtomicU64,
        counter spool_queue_full_activities: AtomicU64,
        counter spool_write_errors: AtomicU64,
        counter health_events_dropped: AtomicU64,
    }
}

fn add(counter: &AtomicU64, value: u64) {
    counter.fetch_add(value, Ordering::Relaxed);
}

/// State shared by the pipeline side, the writer and the client.
#[derive(Debug)]
pub struct Shared {
    pub counters: TransportCounters,
    spool: Mutex<Spool>,
    /// The spool's counters as of its last use: what the capture thread reads, so that it never
    /// waits on the spool's lock (held across disk writes and fsyncs).
    spool_counters: Mutex<spool::SpoolCounters>,
    /// The writer appended a batch (or health event): the client has something to send.
    pub(crate) appended: Notify,
    health: Mutex<VecDeque<HealthEvent>>,
    /// The health issues open now, sent after each welcome so the backend closes those that
    /// closed while it was away.
    open_issues: Mutex<Vec<HealthEvent>>,
    /// The latest counters snapshot and a generation number, for `Counters` messages.
    published: Mutex<(u64, Snapshot)>,
    /// The backend refused the token on the last attempt.
    pub(crate) refused: AtomicBool,
    writer_done: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl Shared {
    fn new(spool: Spool) -> Self {
        Self {
            counters: TransportCounters::default(),
            spool_counters: Mutex::new(spool.counters()),
            spool: Mutex::new(spool),
            appended: Notify::new(),
            health: Mutex::new(VecDeque::new()),
            open_issues: Mutex::new(Vec::new()),
            published: Mutex::new((0, Snapshot::default())),
            refused: AtomicBool::new(false),
            writer_done: AtomicBool::new(false),
            last_error: Mutex::new(None),
        }
    }

    pub(crate) fn spool(&self) -> SpoolGuard<'_> {
        SpoolGuard {
            // A panic while holding the lock leaves a spool that is still consistent on disk.
            spool: self
                .spool
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            counters: &self.spool_counters,
        }
    }

    /// The spool's counters as of its last use, without waiting for its lock.
    pub fn spool_counters(&self) -> spool::SpoolCounters {
        *self
            .spool_counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn health(&self, severity: Severity, kind: &str, message: String) {
        self.queue_health(HealthEvent {
            time: Some(dcwatch_pipeline::activity::timestamp(unix_now_ns())),
            severity: severity.into(),
            kind: kind.to_owned(),
            message,
            ..Default::default()
        });
    }

    /// A health issue opened or closed (`event`), and the issues open now (`open`).
    pub(crate) fn issue(&self, event: HealthEvent, open: Vec<HealthEvent>) {
        *self
            .open_issues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = open;
        self.queue_health(event);
    }

    pub(crate) fn open_issues(&self) -> Vec<HealthEvent> {
        self.open_issues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn queue_health(&self, event: HealthEvent) {
        let mut queue = self
            .health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if queue.len() >= MAX_PENDING_HEALTH {
            queue.pop_front();
            add(&self.counters.health_events_dropped, 1);
        }
        queue.push_back(event);
        drop(queue);
        self.appended.notify_one();
    }

    pub(crate) fn take_health(&self) -> Option<HealthEvent> {
        self.health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop_front()
    }

    pub(crate) fn put_back_health(&self, event: HealthEvent) {
        self.health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push_front(event);
    }

    /// A counters snapshot (the stats file's) for the backend.
    pub fn publish(&self, snapshot: Snapshot) {
        let mut published = self
            .published
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        published.0 += 1;
        published.1 = snapshot;
        drop(published);
        self.appended.notify_one();
    }

    pub(crate) fn published(&self) -> (u64, Snapshot) {
        self.published
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_error(&self, message: String) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(message);
    }

    /// The transport's counters and the spool's, as the stats file names them.
    pub fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot::default();
        snapshot.add(&self.counters);
        snapshot.add_prefixed("spool_", &self.spool_counters());
        snapshot
    }
}

/// The spool, locked; its counters are copied out for [`Shared::spool_counters`] on release.
#[derive(Debug)]
pub(crate) struct SpoolGuard<'a> {
    spool: MutexGuard<'a, Spool>,
    counters: &'a Mutex<spool::SpoolCounters>,
}

impl std::ops::Deref for SpoolGuard<'_> {
    type Target = Spool;

    fn deref(&self) -> &Spool {
        &self.spool
    }
}

impl std::ops::DerefMut for SpoolGuard<'_> {
    fn deref_mut(&mut self) -> &mut Spool {
        &mut self.spool
    }
}

impl Drop for SpoolGuard<'_> {
    fn drop(&mut self) {
        *self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = self.spool.counters();
    }
}

/// What is still in the spool when the transport stops.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Leftover {
    pub batches: u64,
    pub activities: u64,
    /// Why the last session failed, if one did.
    pub last_error: Option<String>,
}

/// The running transport: its thread, and what the pipeline hands batches to.
#[derive(Debug)]
pub struct Transport {
    shared: Arc<Shared>,
    batches: Option<mpsc::Sender<EncodedBatch>>,
    stop: watch::Sender<bool>,
    thread: Option<thread::JoinHandle<()>>,
    url: String,
    batch: BatchLimits,
}

impl Transport {
    /// Opens the spool (recovering what it holds) and starts the writer and the client.
    pub fn start(config: TransportConfig) -> Result<Self, TransportError> {
        let endpoint = client::endpoint(&config).map_err(|message| TransportError::Backend {
            url: config.url.clone(),
            message,
        })?;
        let spool = Spool::open(config.spool.clone())?;
        let recovered = spool.counters();
        if recovered.batches > 0 || recovered.corrupt_records > 0 {
            log::info!(
                "spool {}: {} unacknowledged batches ({} activities) to send, next sequence {}, \
                 {} corrupt records skipped",
                config.spool.dir.display(),
                recovered.batches,
                recovered.activities,
                spool.next_sequence(),
                recovered.corrupt_records
            );
        }
        let shared = Arc::new(Shared::new(spool));
        if recovered.corrupt_records > 0 {
            shared.health(
                Severity::Warning,
                "SPOOL_CORRUPT",
                format!(
                    "{} corrupt spool records skipped at start",
                    recovered.corrupt_records
                ),
            );
        }
        let (batches, receiver) = mpsc::channel(WRITER_QUEUE_BATCHES);
        let (stop, stopped) = watch::channel(false);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(TransportError::Thread)?;
        let url = config.url.clone();
        let batch = config.batch;
        let thread_shared = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("transport".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let writer = write_batches(receiver, Arc::clone(&thread_shared));
                    let client = client::run(config, endpoint, Arc::clone(&thread_shared), stopped);
                    tokio::join!(writer, client);
                });
            })
            .map_err(TransportError::Thread)?;
        Ok(Self {
            shared,
            batches: Some(batches),
            stop,
            thread: Some(thread),
            url,
            batch,
        })
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// What the pipeline pushes activities into. `wait`: when the queue to the writer is full,
    /// wait (replay) rather than drop and count (live capture).
    pub fn sink(&self, wait: bool) -> Option<ActivitySink> {
        Some(ActivitySink {
            batcher: Batcher::new(self.batch),
            batches: self.batches.clone()?,
            shared: Arc::clone(&self.shared),
            wait,
        })
    }

    /// Stops taking batches (every sink must be gone by now), waits up to `wait` for the spool
    /// to empty (everything acknowledged), then stops the client and flushes the spool. Returns
    /// what is still unacknowledged, or the backend's refusal.
    pub fn finish(mut self, wait: Duration) -> Result<Leftover, TransportError> {
        self.batches = None;
        let deadline = Instant::now() + wait;
        loop {
            let writer_done = self.shared.writer_done.load(Ordering::Acquire);
            let pending = self.shared.spool().counters().batches;
            if writer_done && pending == 0 {
                break;
            }
            if self.shared.refused.load(Ordering::Relaxed) || Instant::now() >= deadline {
                break;
            }
            thread::sleep(WAIT_POLL);
        }
        self.stop_thread();
        let mut spool = self.shared.spool();
        if let Err(error) = spool.sync() {
            warn!("{error}");
        }
        let counters = spool.counters();
        drop(spool);
        let last_error = self
            .shared
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if self.shared.refused.load(Ordering::Relaxed) {
            return Err(TransportError::Backend {
                url: self.url.clone(),
                message: last_error.unwrap_or_else(|| "refused the token".to_owned()),
            });
        }
        Ok(Leftover {
            batches: counters.batches,
            activities: counters.activities,
            last_error,
        })
    }

    fn stop_thread(&mut self) {
        self.stop.send_replace(true);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            error!("the transport thread panicked");
        }
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        self.batches = None;
        self.stop_thread();
    }
}

impl Transport {
    /// What the directory sync sends its deltas into.
    pub fn directory_sink(&self) -> Option<DirectorySink> {
        Some(DirectorySink {
            batches: self.batches.clone()?,
            shared: Arc::clone(&self.shared),
        })
    }
}

/// The directory sync's end of the transport: each delta goes in a batch of its own
/// (`ActivityBatch.directory`), numbered and spooled like activities. It waits for room in the
/// queue rather than drop: a lost delta would leave the backend's directory wrong until the
/// next full sync.
#[derive(Clone, Debug)]
pub struct DirectorySink {
    batches: mpsc::Sender<EncodedBatch>,
    shared: Arc<Shared>,
}

impl DirectorySink {
    /// Queues a delta for the spool; false once the transport is stopping.
    pub async fn send(&self, delta: DirectoryDelta) -> bool {
        let encoded = ActivityBatch {
            directory: vec![delta],
            ..ActivityBatch::default()
        }
        .encode_to_vec();
        self.batches
            .send(EncodedBatch {
                encoded,
                activity_count: 0,
            })
            .await
            .is_ok()
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

/// The pipeline's end of the transport: batches activities and queues batches for the spool.
#[derive(Debug)]
pub struct ActivitySink {
    batcher: Batcher,
    batches: mpsc::Sender<EncodedBatch>,
    shared: Arc<Shared>,
    wait: bool,
}

impl ActivitySink {
    pub fn push(&mut self, activity: &Activity) {
        if let Some(batch) = self.batcher.push(activity, Instant::now()) {
            self.queue(batch);
        }
    }

    /// Cuts the open batch if it has grown old.
    pub fn tick(&mut self) {
        if let Some(batch) = self.batcher.tick(Instant::now()) {
            self.queue(batch);
        }
    }

    /// Cuts the open batch now (end of input).
    pub fn flush(&mut self) {
        if let Some(batch) = self.batcher.take() {
            self.queue(batch);
        }
    }

    /// The counters the stats file shows; also sent to the backend.
    pub fn publish(&self, snapshot: Snapshot) {
        self.shared.publish(snapshot);
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    fn queue(&self, batch: EncodedBatch) {
        let activities = u64::from(batch.activity_count);
        let sent = if self.wait {
            self.batches.blocking_send(batch).is_ok()
        } else {
            self.batches.try_send(batch).is_ok()
        };
        if !sent {
            add(&self.shared.counters.spool_queue_full_batches, 1);
            add(
                &self.shared.counters.spool_queue_full_activities,
                activities,
            );
        }
    }
}

impl Drop for ActivitySink {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Compresses each batch and writes it to the spool; reports evictions.
async fn write_batches(mut receiver: mpsc::Receiver<EncodedBatch>, shared: Arc<Shared>) {
    while let Some(batch) = receiver.recv().await {
        write_batch(&batch, &shared);
    }
    shared.writer_done.store(true, Ordering::Release);
    shared.appended.notify_one();
}

fn write_batch(batch: &EncodedBatch, shared: &Shared) {
    let counters = &shared.counters;
    let spooled = match zstd::bulk::compress(&batch.encoded, ZSTD_LEVEL) {
        Ok(payload) => SpooledBatch {
            sequence: 0,
            compression: Compression::Zstd.into(),
            activity_count: batch.activity_count,
            uncompressed_len: u32::try_from(batch.encoded.len()).unwrap_or(u32::MAX),
            payload,
        },
        Err(error) => {
            warn!("compressing a batch: {error}; spooled uncompressed");
            SpooledBatch {
                sequence: 0,
                compression: Compression::None.into(),
                activity_count: batch.activity_count,
                uncompressed_len: u32::try_from(batch.encoded.len()).unwrap_or(u32::MAX),
                payload: batch.encoded.clone(),
            }
        }
    };
    let appended = shared.spool().append(&spooled);
    match appended {
        Ok((_, evicted)) => {
            if evicted.batches > 0 {
                let message = format!(
                    "spool full: evicted the {} oldest unacknowledged batches ({} activities)",
                    evicted.batches, evicted.activities
                );
                warn!("{message}");
                shared.health(Severity::Warning, "SPOOL_EVICTED", message);
            }
            shared.appended.notify_one();
        }
        Err(error) => {
            add(&counters.spool_write_errors, 1);
            error!(
                "{error}: a batch of {} activities is lost",
                batch.activity_count
            );
        }
    }
}

pub(crate) fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(dir: &std::path::Path, segments: u64) -> Arc<Shared> {
        let options = SpoolOptions {
            dir: dir.to_owned(),
            max_bytes: spool::MIN_SEGMENT_BYTES * segments,
            segment_bytes: spool::MIN_SEGMENT_BYTES,
        };
        Arc::new(Shared::new(Spool::open(options).expect("spool")))
    }

    #[test]
    fn eviction_is_counted_and_reported() {
        let dir = tempfile::tempdir().expect("dir");
        let shared = shared(dir.path(), 2);
        let mut rng = fastrand::Rng::with_seed(1);
        // Random bytes do not compress: about three batches per segment.
        for _ in 0..12 {
            let encoded: Vec<u8> = (0..600 * 1024).map(|_| rng.u8(..)).collect();
            write_batch(
                &EncodedBatch {
                    encoded,
                    activity_count: 5,
                },
                &shared,
            );
        }
        let snapshot = shared.snapshot();
        let pairs: std::collections::HashMap<_, _> = snapshot.pairs().collect();
        assert!(pairs["spool_evicted_batches"] > 0, "{pairs:?}");
        assert_eq!(
            pairs["spool_evicted_activities"],
            5 * pairs["spool_evicted_batches"]
        );
        assert_eq!(pairs["spool_batches"] + pairs["spool_evicted_batches"], 12);
        assert!(pairs["spool_bytes"] <= 2 * spool::MIN_SEGMENT_BYTES);
        let event = shared.take_health().expect("a health event");
        assert_eq!(event.kind, "SPOOL_EVICTED");
        assert_eq!(event.severity, i32::from(Severity::Warning));
        // Sequences go on across the gap the eviction left.
        let first = shared.spool().first_from(0).expect("a batch").sequence;
        assert!(first > 1);
        assert_eq!(shared.spool().next_sequence(), 13);
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        let dir = tempfile::tempdir().expect("dir");
        let shared = shared(dir.path(), 4);
        let (batches, mut receiver) = mpsc::channel(1);
        let mut sink = ActivitySink {
            batcher: Batcher::new(BatchLimits {
                max_activities: 2,
                ..BatchLimits::default()
            }),
            batches,
            shared: Arc::clone(&shared),
            wait: false,
        };
        for _ in 0..6 {
            sink.push(&Activity::default());
        }
        let counters = &shared.counters;
        assert_eq!(counters.spool_queue_full_batches.load(Ordering::Relaxed), 2);
        assert_eq!(
            counters.spool_queue_full_activities.load(Ordering::Relaxed),
            4
        );
        let queued = receiver.try_recv().expect("the first batch");
        assert_eq!(queued.activity_count, 2);
        // The written batch decompresses to what went in.
        write_batch(&queued, &shared);
        let spooled = shared.spool().first_from(0).expect("spooled");
        let encoded = zstd::bulk::decompress(&spooled.payload, spooled.uncompressed_len as usize)
            .expect("zstd");
        assert_eq!(encoded, queued.encoded);
        assert_eq!(spooled.compression, i32::from(Compression::Zstd));
    }
}
