//! The `Ingest` gRPC service: one bidirectional stream per connected sensor.
//!
//! A stream starts with the sensor's hello: its token is checked (unknown or missing: the call
//! ends with UNAUTHENTICATED; made for another sensor id: PERMISSION_DENIED; logged with the
//! sensor id, the token's name and the peer address, never the token) and
//! the backend answers with a welcome carrying what it has stored for that sensor (its
//! `stored_through` and the spool instance that numbered it). Then each batch is checked (sizes
//! before decompressing, the decompression bounded, the activity count),
//! stored with its sequence in one transaction, and acknowledged.
//!
//! One stream per sensor id: a new stream replaces the older one, which ends with ABORTED. A
//! sensor that reconnects after a network failure often does so before the old connection is
//! known to be dead; refusing the newcomer would lock it out until keepalives time out, while
//! replacing is safe because storing is idempotent by (sensor, sequence).

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use dcwatch_entity::Directory;
use dcwatch_proto::v1::{
    Ack, ActivityBatch, BackendMessage, Batch, Compression, Counters as SensorCounters, Hello,
    SensorMessage, Welcome, backend_message,
    health_event::{Severity, State},
    ingest_server::Ingest,
    sensor_message,
};
use log::{debug, error, info, warn};
use prost::Message as _;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::{
    cluster::publish::Publisher,
    config::Limits,
    detection::{DirectorySource, Wake},
    outputs::Outputs,
    store::{SharedStore, Storage, StoreError, Stored},
};

/// How long a new stream may take to say hello: a connection that never does would otherwise
/// hold its handler forever.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(30);

/// Replies queued towards one sensor before the stream's reader waits for the sensor to read.
const REPLY_QUEUE: usize = 64;

dcwatch_telemetry::counters! {
    /// What ingest counts (the stats file's names).
    #[derive(Debug, Default)]
    pub struct Counters {
        /// Batches received from sensors (stored, duplicate or refused).
        counter batches_received: AtomicU64,
        /// Activities stored.
        counter activities_stored: AtomicU64,
        /// Batches at or below a sensor's stored sequence: acknowledged, not stored again.
        counter duplicates: AtomicU64,
        /// Streams refused: no hello first, a bad token, a sensor id the token is not for.
        counter refused_streams: AtomicU64,
        /// Batches refused as malformed or over a limit.
        counter bad_batches: AtomicU64,
        /// Health events and issues received from sensors.
        counter health_events: AtomicU64,
        /// Bytes of sensor messages received.
        counter bytes_received: AtomicU64,
        /// Directory objects stored from sensors' directory syncs.
        counter directory_objects_stored: AtomicU64,
        /// Stored activities whose account the directory knew (SID and tags added on ingest).
        counter accounts_enriched: AtomicU64,
        /// Activities deleted by retention (age or disk budget).
        counter activities_pruned: AtomicU64,
        /// Activities moved into compressed blocks.
        counter activities_compacted: AtomicU64,
        /// Compressed blocks written.
        counter blocks_compacted: AtomicU64,
    }
}

fn add(counter: &AtomicU64, value: u64) {
    counter.fetch_add(value, Ordering::Relaxed);
}

/// The streams that are open, by sensor id: a generation (so a replaced stream does not remove
/// its successor when it ends) and how to tell it it was replaced.
type Active = HashMap<String, (u64, oneshot::Sender<()>)>;

/// The service, shared by every stream.
#[derive(Debug)]
pub struct IngestService {
    store: SharedStore,
    counters: Arc<Counters>,
    limits: Limits,
    active: Arc<Mutex<Active>>,
    generation: AtomicU64,
    /// Becomes true when the server stops: open streams end, so graceful shutdown does not wait
    /// for sensors that never hang up.
    stopping: watch::Receiver<bool>,
    alerts: Alerts,
    /// The stored directory, as last loaded: each activity's account and computers get their
    /// SIDs and tags from it before they are stored.
    directory: Arc<DirectorySource>,
}

/// Where ingest hands on what it stored: health events to the outputs, a nudge to detection,
/// and (the ingest role of a cluster) the batch to the stream, before it is acknowledged.
#[derive(Clone, Debug)]
struct Alerts {
    outputs: Arc<Outputs>,
    detection: Option<Wake>,
    stream: Option<Arc<Publisher>>,
}

impl IngestService {
    pub fn new(
        store: SharedStore,
        counters: Arc<Counters>,
        limits: Limits,
        stopping: watch::Receiver<bool>,
    ) -> Self {
        Self {
            store,
            counters,
            limits,
            active: Arc::default(),
            generation: AtomicU64::new(0),
            stopping,
            alerts: Alerts {
                outputs: Arc::new(Outputs::none()),
                detection: None,
                stream: None,
            },
            directory: Arc::default(),
        }
    }

    /// Enriches each activity from `directory` (SIDs and tags) before it is stored, as
    /// `dcwatch-sensor replay --directory` does offline.
    #[must_use]
    pub fn with_directory(mut self, directory: Arc<DirectorySource>) -> Self {
        self.directory = directory;
        self
    }

    /// Sends health events to `outputs` and wakes detection after each stored batch.
    #[must_use]
    pub fn with_alerts(mut self, outputs: Arc<Outputs>, detection: Option<Wake>) -> Self {
        self.alerts.outputs = outputs;
        self.alerts.detection = detection;
        self
    }

    /// Publishes each new batch to the cluster's stream, and acknowledges it to the sensor only
    /// once JetStream has stored it.
    pub fn with_stream(mut self, publisher: Arc<Publisher>) -> Self {
        self.alerts.stream = Some(publisher);
        self
    }
}

/// Runs a store operation on the blocking pool (SQLite calls block, and fsync on commit).
async fn with_store<T: Send + 'static>(
    store: &SharedStore,
    operation: impl FnOnce(&mut dyn Storage) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Status> {
    let store = Arc::clone(store);
    let result = tokio::task::spawn_blocking(move || {
        let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
        operation(store.as_mut())
    })
    .await
    .map_err(|failure| Status::internal(format!("store task: {failure}")))?;
    result.map_err(|failure| {
        error!("{failure}");
        Status::internal("the backend could not store this; retry later")
    })
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX)
        })
}

fn peer_text(peer: Option<SocketAddr>) -> String {
    peer.map_or_else(|| "an unknown peer".to_owned(), |peer| peer.to_string())
}

#[tonic::async_trait]
impl Ingest for IngestService {
    type StreamStream = ReceiverStream<Result<BackendMessage, Status>>;

    async fn stream(
        &self,
        request: Request<Streaming<SensorMessage>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let peer = request.remote_addr();
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(HELLO_TIMEOUT, inbound.message())
            .await
            .map_err(|_| {
                add(&self.counters.refused_streams, 1);
                warn!(
                    "refused a stream from {}: no hello in time",
                    peer_text(peer)
                );
                Status::deadline_exceeded("no hello in time")
            })??;
        let Some(SensorMessage {
            message: Some(sensor_message::Message::Hello(hello)),
        }) = first
        else {
            add(&self.counters.refused_streams, 1);
            warn!(
                "refused a stream from {}: its first message was not a hello",
                peer_text(peer)
            );
            return Err(Status::invalid_argument(
                "the first message must be a hello",
            ));
        };
        let sensor = self.admit(&hello, peer).await?;
        let (stored_through, spool_instance) = {
            let id = sensor.clone();
            let version = hello.version.clone();
            let outputs = Arc::clone(&self.alerts.outputs);
            with_store(&self.store, move |store| {
                store.sensor_seen(&id, &version, now_ns())?;
                // Heard from again, perhaps upgraded: the derived issues follow at once.
                for (sensor, issue) in
                    crate::health::derive(store, u64::try_from(now_ns()).unwrap_or_default())?
                {
                    outputs.health(&sensor, &issue.to_event());
                }
                Ok((store.stored_through(&id)?, store.spool_instance(&id)?))
            })
            .await?
        };
        let (replaced, generation) = self.register(&sensor);
        info!(
            "sensor {sensor:?} ({}) connected from {}: stored through batch {stored_through}",
            hello.version,
            peer_text(peer)
        );
        let (replies, outbound) = mpsc::channel(REPLY_QUEUE);
        let welcome = BackendMessage {
            message: Some(backend_message::Message::Welcome(Welcome {
                stored_through,
                spool_instance,
            })),
        };
        replies
            .send(Ok(welcome))
            .await
            .map_err(|_| Status::cancelled("the sensor went away"))?;
        let session = Session {
            sensor,
            spool_instance: hello.spool_instance.clone(),
            store: Arc::clone(&self.store),
            counters: Arc::clone(&self.counters),
            limits: self.limits,
            stored_through,
            alerts: self.alerts.clone(),
            directory: Arc::clone(&self.directory),
        };
        let active = Arc::clone(&self.active);
        let stopping = self.stopping.clone();
        tokio::spawn(async move {
            let sensor = session.sensor.clone();
            session.run(inbound, &replies, replaced, stopping).await;
            let mut active = active.lock().unwrap_or_else(PoisonError::into_inner);
            if active
                .get(&sensor)
                .is_some_and(|(current, _)| *current == generation)
            {
                active.remove(&sensor);
            }
        });
        Ok(Response::new(ReceiverStream::new(outbound)))
    }
}

impl IngestService {
    /// Checks a hello's sensor id and token (a token admits only the sensor id it is named
    /// after); the sensor id when admitted.
    async fn admit(&self, hello: &Hello, peer: Option<SocketAddr>) -> Result<String, Status> {
        let sensor = hello.sensor_id.clone();
        if sensor.is_empty() {
            add(&self.counters.refused_streams, 1);
            warn!("refused a stream from {}: no sensor id", peer_text(peer));
            return Err(Status::invalid_argument("the hello names no sensor id"));
        }
        let token_name = if hello.token.is_empty() {
            None
        } else {
            let token = hello.token.clone();
            with_store(&self.store, move |store| store.token_name(&token)).await?
        };
        let Some(token_name) = token_name else {
            add(&self.counters.refused_streams, 1);
            let what = if hello.token.is_empty() {
                "no token"
            } else {
                "an unknown token"
            };
            warn!("refused sensor {sensor:?} from {}: {what}", peer_text(peer));
            return Err(Status::unauthenticated(
                "unknown or missing access token (dcwatch-backend token add NAME makes one)",
            ));
        };
        if token_name != sensor {
            // A token speaks for the one sensor it was made for: another sensor's id with it
            // could replace that sensor's stream, push its stored_through ahead (its real
            // batches then acknowledged as duplicates and lost) or forge its activities.
            add(&self.counters.refused_streams, 1);
            warn!(
                "refused sensor {sensor:?} from {}: it presented the token made for sensor \
                 {token_name:?}",
                peer_text(peer)
            );
            return Err(Status::permission_denied(format!(
                "this token was made for sensor {token_name:?}, not {sensor:?} (a token admits \
                 only the sensor id it was added for: dcwatch-backend token add SENSOR_ID)"
            )));
        }
        debug!("sensor {sensor:?} presented its token");
        Ok(sensor)
    }

    /// Makes this the sensor's stream, telling an older one it was replaced.
    fn register(&self, sensor: &str) -> (oneshot::Receiver<()>, u64) {
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let (replace, replaced) = oneshot::channel();
        let mut active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, older)) = active.insert(sensor.to_owned(), (generation, replace)) {
            info!("sensor {sensor:?} opened a new stream: the older one ends");
            // The older stream may have ended on its own meanwhile.
            let _ended = older.send(());
        }
        (replaced, generation)
    }
}

/// One sensor's stream once admitted.
struct Session {
    sensor: String,
    /// The hello's spool instance: stored with each new `stored_through`.
    spool_instance: String,
    store: SharedStore,
    counters: Arc<Counters>,
    limits: Limits,
    /// What the store holds for this sensor, as far as this stream knows: batches at or below
    /// are duplicates without touching the store (which checks again, in its transaction).
    stored_through: u64,
    alerts: Alerts,
    directory: Arc<DirectorySource>,
}

impl Session {
    async fn run(
        mut self,
        mut inbound: Streaming<SensorMessage>,
        replies: &mpsc::Sender<Result<BackendMessage, Status>>,
        mut replaced: oneshot::Receiver<()>,
        mut stopping: watch::Receiver<bool>,
    ) {
        let sensor = self.sensor.clone();
        let end = loop {
            if *stopping.borrow() {
                break Some(Status::unavailable("the backend is shutting down"));
            }
            tokio::select! {
                _ = &mut replaced => {
                    break Some(Status::aborted("replaced by a newer stream from the same sensor"));
                }
                changed = stopping.changed() => {
                    // A server gone without saying so is stopping too.
                    if changed.is_err() {
                        break Some(Status::unavailable("the backend is shutting down"));
                    }
                }
                message = inbound.message() => match message {
                    Ok(Some(message)) => match self.handle(message).await {
                        Ok(Some(reply)) => {
                            if replies.send(Ok(reply)).await.is_err() {
                                break None;
                            }
                        }
                        Ok(None) => {}
                        Err(status) => break Some(status),
                    },
                    Ok(None) => break None,
                    Err(status) => {
                        if status.code() == tonic::Code::OutOfRange
                            || status.code() == tonic::Code::ResourceExhausted
                        {
                            add(&self.counters.bad_batches, 1);
                        }
                        warn!("sensor {sensor:?}: stream failed: {}", status.message());
                        // The sensor learns why (a message over the size limit, mostly).
                        break Some(status);
                    }
                },
            }
        };
        if let Some(status) = end {
            info!("sensor {sensor:?}: ending its stream: {}", status.message());
            let _gone = replies.send(Err(status)).await;
        } else {
            info!("sensor {sensor:?} disconnected");
        }
    }

    async fn handle(&mut self, message: SensorMessage) -> Result<Option<BackendMessage>, Status> {
        add(
            &self.counters.bytes_received,
            u64::try_from(message.encoded_len()).unwrap_or(u64::MAX),
        );
        match message.message {
            Some(sensor_message::Message::Batch(batch)) => {
                let through = self.batch(batch).await?;
                Ok(Some(BackendMessage {
                    message: Some(backend_message::Message::Ack(Ack { through })),
                }))
            }
            Some(sensor_message::Message::Health(event)) => {
                add(&self.counters.health_events, 1);
                let sensor = &self.sensor;
                let state = match event.state() {
                    State::Unspecified => "",
                    State::Open => " (opened)",
                    State::Closed => " (closed)",
                };
                let about = if event.subject.is_empty() {
                    String::new()
                } else {
                    format!(" {}", event.subject)
                };
                let text = format!(
                    "sensor {sensor:?}: {}{state}{about}: {}",
                    event.kind, event.message
                );
                match event.severity() {
                    Severity::Error if event.state() != State::Closed => error!("{text}"),
                    Severity::Warning if event.state() != State::Closed => warn!("{text}"),
                    _ => info!("{text}"),
                }
                let sensor = sensor.clone();
                let received = event.clone();
                let changed = with_store(&self.store, move |store| {
                    crate::health::receive(store, &sensor, &received)
                })
                .await?;
                if let Some(event) = changed {
                    self.alerts.outputs.health(&self.sensor, &event);
                }
                Ok(None)
            }
            Some(sensor_message::Message::OpenIssues(issues)) => {
                let sensor = self.sensor.clone();
                let changed = with_store(&self.store, move |store| {
                    crate::health::reconcile(
                        store,
                        &sensor,
                        &issues.open,
                        u64::try_from(now_ns()).unwrap_or_default(),
                    )
                })
                .await?;
                for event in &changed {
                    self.alerts.outputs.health(&self.sensor, event);
                }
                Ok(None)
            }
            Some(sensor_message::Message::Counters(counters)) => {
                let json = counters_json(&counters);
                debug!("sensor {:?}: counters {json}", self.sensor);
                let sensor = self.sensor.clone();
                with_store(&self.store, move |store| {
                    store.store_counters(&sensor, &json)?;
                    store.sensor_heard(&sensor, now_ns())
                })
                .await?;
                Ok(None)
            }
            Some(sensor_message::Message::Hello(_)) => Err(Status::invalid_argument(
                "a hello comes first and only first",
            )),
            None => {
                debug!("sensor {:?}: an empty message", self.sensor);
                Ok(None)
            }
        }
    }

    /// Stores (or refuses) a batch; the sequence to acknowledge.
    async fn batch(&mut self, batch: Batch) -> Result<u64, Status> {
        add(&self.counters.batches_received, 1);
        let sequence = batch.sequence;
        if sequence <= self.stored_through {
            add(&self.counters.duplicates, 1);
            debug!("sensor {:?}: batch {sequence} is a duplicate", self.sensor);
            return Ok(sequence);
        }
        let sensor = self.sensor.clone();
        let instance = self.spool_instance.clone();
        let stored = match decode_batch(&batch, &self.limits) {
            Ok(ActivityBatch {
                mut activities,
                directory,
            }) => {
                let count = u64::try_from(activities.len()).unwrap_or(u64::MAX);
                let enriched = enrich(&self.directory.current(), &mut activities);
                let objects: usize = directory.iter().map(|delta| delta.objects.len()).sum();
                if let Some(publisher) = &self.alerts.stream {
                    // Stored already (by another ingest node the sensor was on): not
                    // published twice.
                    let id = sensor.clone();
                    let through =
                        with_store(&self.store, move |store| store.stored_through(&id)).await?;
                    if sequence <= through {
                        add(&self.counters.duplicates, 1);
                        self.stored_through = self.stored_through.max(through);
                        return Ok(sequence);
                    }
                    publisher
                        .publish(&sensor, &instance, sequence, &activities)
                        .await
                        .map_err(|failure| {
                            warn!("sensor {:?}: batch {sequence}: {failure}", self.sensor);
                            Status::unavailable(
                                "the cluster's stream did not take the batch; retry later",
                            )
                        })?;
                }
                let stored = with_store(&self.store, move |store| {
                    store.store_batch_with_directory(
                        &sensor,
                        &instance,
                        sequence,
                        &activities,
                        &directory,
                    )
                })
                .await?;
                if stored == Stored::New {
                    add(
                        &self.counters.directory_objects_stored,
                        u64::try_from(objects).unwrap_or(u64::MAX),
                    );
                }
                if stored == Stored::New {
                    add(&self.counters.activities_stored, count);
                    add(&self.counters.accounts_enriched, enriched);
                    if let Some(detection) = &self.alerts.detection {
                        detection.wake();
                    }
                }
                stored
            }
            Err(reason) => {
                add(&self.counters.bad_batches, 1);
                warn!(
                    "sensor {:?}: batch {sequence} refused: {reason}",
                    self.sensor
                );
                with_store(&self.store, move |store| {
                    store.refuse_batch(&sensor, &instance, sequence, &reason.to_string(), now_ns())
                })
                .await?
            }
        };
        if stored == Stored::Duplicate {
            add(&self.counters.duplicates, 1);
        }
        self.stored_through = self.stored_through.max(sequence);
        Ok(sequence)
    }
}

/// Gives each activity's account and computers their SIDs and tags, where the directory knows
/// them; how many accounts it matched.
fn enrich(directory: &Directory, activities: &mut [dcwatch_proto::v1::Activity]) -> u64 {
    if directory.is_empty() {
        return 0;
    }
    let mut matched = 0_usize;
    for activity in activities {
        matched += usize::from(dcwatch_entity::enrich::activity(directory, activity).account);
    }
    u64::try_from(matched).unwrap_or(u64::MAX)
}

/// Why a batch was refused.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("its payload of {len} bytes is over the limit of {limit}")]
    TooBig { len: usize, limit: usize },
    #[error("it declares {len} bytes once decompressed, over the limit of {limit}")]
    TooBigUncompressed { len: u32, limit: usize },
    #[error("it declares {count} activities, over the limit of {limit}")]
    TooMany { count: u32, limit: u32 },
    #[error("unknown compression {0}")]
    Compression(i32),
    #[error("it does not decompress to its declared {declared} bytes: {reason}")]
    Decompress { declared: u32, reason: String },
    #[error("its payload does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("it holds {found} activities, not the {declared} it declares")]
    Count { found: usize, declared: u32 },
}

/// Checks a batch's declared sizes, decompresses it within them and decodes its activities.
pub fn decode(
    batch: &Batch,
    limits: &Limits,
) -> Result<Vec<dcwatch_proto::v1::Activity>, BatchError> {
    decode_batch(batch, limits).map(|decoded| decoded.activities)
}

/// [`decode`], keeping the directory deltas the batch carries beside its activities.
pub fn decode_batch(batch: &Batch, limits: &Limits) -> Result<ActivityBatch, BatchError> {
    let len = batch.payload.len();
    if len > limits.max_batch_bytes {
        return Err(BatchError::TooBig {
            len,
            limit: limits.max_batch_bytes,
        });
    }
    let declared = batch.uncompressed_len;
    let declared_len = usize::try_from(declared).unwrap_or(usize::MAX);
    if declared_len > limits.max_uncompressed_bytes {
        return Err(BatchError::TooBigUncompressed {
            len: declared,
            limit: limits.max_uncompressed_bytes,
        });
    }
    if batch.activity_count > limits.max_activities {
        return Err(BatchError::TooMany {
            count: batch.activity_count,
            limit: limits.max_activities,
        });
    }
    let bytes: Cow<'_, [u8]> = match Compression::try_from(batch.compression) {
        Ok(Compression::Zstd) => {
            // The output buffer is the declared length, which the limit bounds: a payload that
            // would grow beyond it fails here instead of growing.
            let plain =
                zstd::bulk::decompress(&batch.payload, declared_len).map_err(|failure| {
                    BatchError::Decompress {
                        declared,
                        reason: failure.to_string(),
                    }
                })?;
            Cow::Owned(plain)
        }
        Ok(Compression::None) => Cow::Borrowed(batch.payload.as_slice()),
        Err(_) => return Err(BatchError::Compression(batch.compression)),
    };
    if bytes.len() != declared_len {
        return Err(BatchError::Decompress {
            declared,
            reason: format!("it holds {} bytes", bytes.len()),
        });
    }
    let decoded = ActivityBatch::decode(bytes.as_ref())?;
    if decoded.activities.len() != usize::try_from(batch.activity_count).unwrap_or(usize::MAX) {
        return Err(BatchError::Count {
            found: decoded.activities.len(),
            declared: batch.activity_count,
        });
    }
    Ok(decoded)
}

/// A sensor's counters as a JSON object: `time` (RFC 3339) and the values by name.
fn counters_json(counters: &SensorCounters) -> String {
    let values: BTreeMap<&str, u64> = counters
        .values
        .iter()
        .map(|(name, value)| (name.as_str(), *value))
        .collect();
    serde_json::json!({ "time": counters.time, "values": values }).to_string()
}

#[cfg(test)]
mod tests {
    use dcwatch_proto::v1::{Activity, DnsActivity, activity::Body};

    use super::*;

    fn batch_of(activities: usize, compression: Compression) -> Batch {
        let plain = ActivityBatch {
            activities: vec![
                Activity {
                    body: Some(Body::Dns(DnsActivity::default())),
                    ..Activity::default()
                };
                activities
            ],
            ..ActivityBatch::default()
        }
        .encode_to_vec();
        let payload = match compression {
            Compression::Zstd => zstd::bulk::compress(&plain, 3).expect("compress"),
            Compression::None => plain.clone(),
        };
        Batch {
            sequence: 1,
            compression: compression.into(),
            payload,
            activity_count: u32::try_from(activities).expect("small"),
            uncompressed_len: u32::try_from(plain.len()).expect("small"),
        }
    }

    #[test]
    fn batches_decode_within_their_limits() {
        let limits = Limits::default();
        assert_eq!(
            decode(&batch_of(3, Compression::Zstd), &limits)
                .expect("zstd")
                .len(),
            3
        );
        assert_eq!(
            decode(&batch_of(2, Compression::None), &limits)
                .expect("none")
                .len(),
            2
        );

        let mut understated = batch_of(100, Compression::Zstd);
        understated.uncompressed_len -= 1;
        assert!(matches!(
            decode(&understated, &limits),
            Err(BatchError::Decompress { .. })
        ));
        let mut miscounted = batch_of(3, Compression::Zstd);
        miscounted.activity_count = 4;
        assert!(matches!(
            decode(&miscounted, &limits),
            Err(BatchError::Count { .. })
        ));
        let small = Limits {
            max_uncompressed_bytes: 10,
            ..limits
        };
        assert!(matches!(
            decode(&batch_of(100, Compression::Zstd), &small),
            Err(BatchError::TooBigUncompressed { .. })
        ));
        let mut corrupt = batch_of(3, Compression::Zstd);
        corrupt.payload.truncate(5);
        assert!(decode(&corrupt, &limits).is_err());
    }
}
