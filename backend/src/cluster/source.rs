//! The detect role's source: the messages of the partitions this node owns, through each
//! partition's durable consumer, in stream order.
//!
//! A chunk's messages are acknowledged only after its alerts and the partition's cursor (the
//! last stream sequence judged) are stored in one transaction. A message redelivered after a
//! crash between the two is at or below the stored cursor: acknowledged and skipped, so no
//! activity is judged twice and no alert counted twice.
//!
//! That skip needs every partition's messages judged in stream order, also across a move: a
//! message fetched by a node that died comes back only once its acknowledgement is overdue
//! ([`ACK_WAIT`]), and judged after later ones it would be skipped, never judged. So a node
//! that takes over a partition with unacknowledged messages waits until they are due before
//! its first fetch, and judges each fetch in stream order (JetStream hands out due
//! redeliveries first). A fetched message is never dropped: what a chunk has no room for waits
//! for the next.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use async_nats::jetstream::{
    Message,
    consumer::{self, PullConsumer},
    stream::Stream,
};
use futures::StreamExt as _;
use log::warn;
use prost::Message as _;
use tokio::runtime::Handle;

use super::{PartitionBatch, claims::Claims, key_of, subject};
use crate::{
    detection::{Chunk, Source},
    store::{NewActivity, Storage, StoreError},
};

/// Messages fetched from a partition at a time (each a batch's share of it).
const FETCH: usize = 64;
/// The longest a fetch waits for NATS's answer.
const FETCH_WAIT: Duration = Duration::from_secs(2);
/// How long JetStream waits for an acknowledgement before redelivering: longer than a chunk
/// takes to judge and store, and how long a partition that moved with unacknowledged messages
/// waits before its new owner's first fetch.
const ACK_WAIT: Duration = Duration::from_secs(20);
/// How often a partition's judged messages are purged from the stream (see
/// [`StreamSource::purge_judged`]).
const PURGE_EVERY: Duration = Duration::from_secs(5);
/// How much later than [`ACK_WAIT`] a new owner fetches: JetStream's redelivery timer is not
/// exact.
const REDELIVERY_MARGIN: Duration = Duration::from_secs(1);

/// What the source counts.
#[derive(Debug, Default)]
pub struct SourceCounters {
    pub fetch_errors: AtomicU64,
    pub undecodable: AtomicU64,
    pub redelivered_skipped: AtomicU64,
}

impl SourceCounters {
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        vec![
            (
                "cluster_fetch_errors",
                self.fetch_errors.load(Ordering::Relaxed),
            ),
            (
                "cluster_messages_undecodable",
                self.undecodable.load(Ordering::Relaxed),
            ),
            (
                "cluster_redelivered_skipped",
                self.redelivered_skipped.load(Ordering::Relaxed),
            ),
        ]
    }
}

struct Partition {
    consumer: PullConsumer,
    /// The last stream sequence whose alerts are stored.
    cursor: i64,
    /// Taken over with messages another node fetched and did not acknowledge: no fetch before
    /// they are due again, then the cursor is read again (that node may have stored more).
    resume_at: Option<Instant>,
    /// Fetched, not yet judged, in stream order.
    fetched: VecDeque<Message>,
    /// When its judged messages were last purged, and through which cursor.
    purged: (Instant, i64),
}

pub struct StreamSource {
    runtime: Handle,
    stream: Stream,
    claims: Arc<Claims>,
    /// Partitions per key (`cluster.partitions`).
    per_key: u32,
    partitions: HashMap<u32, Partition>,
    /// Where the next look starts, so every owned partition gets its turn.
    next_partition: u32,
    /// The messages of the chunk being judged.
    in_flight: Vec<Message>,
    counters: Arc<SourceCounters>,
}

impl std::fmt::Debug for StreamSource {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("StreamSource")
            .field("partitions", &self.partitions.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The name of a partition's cursor in `detection_state`.
pub fn cursor_name(partition: u32) -> String {
    format!("partition.{partition}")
}

/// A partition's durable consumer: its name and configuration. [`super::activity_stream`]
/// makes every partition's with the stream, a detect node gets the one of each partition it
/// claims.
pub fn consumer_config(partition: u32) -> (String, consumer::pull::Config) {
    let name = format!("detect-{partition}");
    let config = consumer::pull::Config {
        durable_name: Some(name.clone()),
        filter_subject: subject(partition),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        ..consumer::pull::Config::default()
    };
    (name, config)
}

impl StreamSource {
    pub fn new(
        runtime: Handle,
        stream: Stream,
        claims: Arc<Claims>,
        per_key: u32,
        counters: Arc<SourceCounters>,
    ) -> Self {
        Self {
            runtime,
            stream,
            claims,
            per_key,
            partitions: HashMap::new(),
            next_partition: 0,
            in_flight: Vec::new(),
            counters,
        }
    }

    fn open(&mut self, store: &mut dyn Storage, partition: u32) -> Result<(), StoreError> {
        if self.partitions.contains_key(&partition) {
            return Ok(());
        }
        let cursor = store.detection_state(&cursor_name(partition))?.unwrap_or(0);
        let (name, config) = consumer_config(partition);
        let made = self
            .runtime
            .block_on(self.stream.get_or_create_consumer(&name, config));
        match made {
            Ok(consumer) => {
                let resume_at = (consumer.cached_info().num_ack_pending > 0)
                    .then(|| Instant::now() + ACK_WAIT + REDELIVERY_MARGIN);
                self.partitions.insert(
                    partition,
                    Partition {
                        consumer,
                        cursor,
                        resume_at,
                        fetched: VecDeque::new(),
                        purged: (Instant::now(), 0),
                    },
                );
            }
            Err(failure) => {
                self.counters.fetch_errors.fetch_add(1, Ordering::Relaxed);
                warn!("cluster: partition {partition}'s consumer: {failure}");
            }
        }
        Ok(())
    }

    /// Whether a partition may be fetched from now: not while another node's unacknowledged
    /// messages are not yet due again.
    fn ready(&mut self, store: &mut dyn Storage, partition: u32) -> Result<bool, StoreError> {
        let Some(state) = self.partitions.get_mut(&partition) else {
            return Ok(false);
        };
        match state.resume_at {
            Some(at) if Instant::now() < at => Ok(false),
            Some(_) => {
                state.cursor = store.detection_state(&cursor_name(partition))?.unwrap_or(0);
                state.resume_at = None;
                Ok(true)
            }
            None => Ok(true),
        }
    }

    /// Up to [`FETCH`] messages of one partition, without waiting for more, in stream order.
    fn fetch(&self, partition: &Partition) -> Vec<Message> {
        // Each wait is bounded: a pull request a NATS node never answers (the consumer's
        // leader stopped) would otherwise stall every partition of this node. What came before
        // the wait ran out is kept: dropped, it would come back after later messages and be
        // skipped by the cursor.
        let fetched = self.runtime.block_on(async {
            let mut batch = tokio::time::timeout(
                FETCH_WAIT,
                partition.consumer.fetch().max_messages(FETCH).messages(),
            )
            .await??;
            let mut messages = Vec::new();
            while let Ok(Some(message)) = tokio::time::timeout(FETCH_WAIT, batch.next()).await {
                messages.push(message?);
            }
            Ok::<_, async_nats::Error>(messages)
        });
        let mut messages = fetched.unwrap_or_else(|failure| {
            self.counters.fetch_errors.fetch_add(1, Ordering::Relaxed);
            warn!("cluster: fetching: {failure}");
            Vec::new()
        });
        messages.sort_by_key(stream_sequence);
        messages
    }

    /// Removes the partition's messages at or below its cursor from the stream, at most every
    /// [`PURGE_EVERY`], after a chunk or when idle. They are judged, stored and acknowledged,
    /// and a work queue removes an acknowledged message, but nats-server 2.9 on 3 replicas (one
    /// stopped) once kept 93 with every consumer caught up (the full cluster test;
    /// nats-server#6140). Kept, they would take the bounded stream's room for good, and at last
    /// ingest would refuse every batch.
    fn purge_judged(&mut self, partition: u32) {
        let Some(state) = self.partitions.get_mut(&partition) else {
            return;
        };
        if state.purged.1 == state.cursor || state.purged.0.elapsed() < PURGE_EVERY {
            return;
        }
        state.purged = (Instant::now(), state.cursor);
        let below = u64::try_from(state.cursor).unwrap_or(0).saturating_add(1);
        let purge = self
            .stream
            .purge()
            .filter(subject(partition))
            .sequence(below);
        if let Err(failure) = self
            .runtime
            .block_on(async { tokio::time::timeout(FETCH_WAIT, purge).await })
            .map_err(|_| "no answer in time".to_owned())
            .and_then(|answer| answer.map_err(|failure| failure.to_string()))
        {
            warn!("cluster: purging partition {partition}'s judged messages: {failure}");
        }
    }
}

/// A message's place in the stream (0 when it carries none).
fn stream_sequence(message: &Message) -> i64 {
    message.info().map_or(0, |info| {
        i64::try_from(info.stream_sequence).unwrap_or(i64::MAX)
    })
}

fn acknowledge(runtime: &Handle, message: &Message) {
    if let Err(failure) = runtime.block_on(message.ack()) {
        // Redelivered after ACK_WAIT, then skipped by the cursor.
        warn!("cluster: acknowledging: {failure}");
    }
}

impl Source for StreamSource {
    fn next(&mut self, store: &mut dyn Storage, limit: usize) -> Result<Option<Chunk>, StoreError> {
        let owned = self.claims.owned();
        self.partitions
            .retain(|partition, _| owned.contains(partition));
        let order: Vec<u32> = owned
            .range(self.next_partition..)
            .chain(owned.range(..self.next_partition))
            .copied()
            .collect();
        for partition in order {
            self.open(store, partition)?;
            if !self.ready(store, partition)? {
                continue;
            }
            let Some(state) = self.partitions.get(&partition) else {
                continue;
            };
            let mut fetched = if state.fetched.is_empty() {
                VecDeque::from(self.fetch(state))
            } else {
                VecDeque::new()
            };
            let Some(state) = self.partitions.get_mut(&partition) else {
                continue;
            };
            state.fetched.append(&mut fetched);
            let mut activities = Vec::new();
            let mut last = state.cursor;
            while let Some(message) = state.fetched.pop_front() {
                let sequence = stream_sequence(&message);
                if sequence <= state.cursor {
                    self.counters
                        .redelivered_skipped
                        .fetch_add(1, Ordering::Relaxed);
                    acknowledge(&self.runtime, &message);
                    continue;
                }
                match PartitionBatch::decode(message.payload.as_ref()) {
                    Ok(batch) => {
                        for (position, activity) in batch.positions.iter().zip(batch.activities) {
                            activities.push(NewActivity {
                                row: sequence,
                                sensor_id: batch.sensor_id.clone(),
                                sequence: batch.sequence,
                                position: *position,
                                activity,
                            });
                        }
                    }
                    Err(failure) => {
                        self.counters.undecodable.fetch_add(1, Ordering::Relaxed);
                        warn!(
                            "cluster: partition {partition}: a message does not decode: {failure}"
                        );
                    }
                }
                last = last.max(sequence);
                self.in_flight.push(message);
                if activities.len() >= limit {
                    break;
                }
            }
            if self.in_flight.is_empty() {
                // Idle: the last chunk's messages may not have been purged yet.
                self.purge_judged(partition);
                continue;
            }
            self.next_partition = partition.saturating_add(1);
            return Ok(Some(Chunk {
                partition,
                key: Some(key_of(partition, self.per_key)),
                cursor: (cursor_name(partition), last),
                activities,
            }));
        }
        Ok(None)
    }

    fn done(&mut self, chunk: &Chunk) {
        for message in std::mem::take(&mut self.in_flight) {
            acknowledge(&self.runtime, &message);
        }
        if let Some(state) = self.partitions.get_mut(&chunk.partition) {
            state.cursor = chunk.cursor.1;
        }
        self.purge_judged(chunk.partition);
    }

    /// The messages go back to JetStream at once, to be judged again in order by an engine
    /// rebuilt from the store (which has none of this chunk's alerts).
    /// The partition's fetched messages not yet judged go back with them: kept, they would be
    /// judged before the chunk's, which would then be skipped.
    fn failed(&mut self, chunk: &Chunk) {
        let unjudged = self
            .partitions
            .get_mut(&chunk.partition)
            .map(|state| std::mem::take(&mut state.fetched))
            .unwrap_or_default();
        for message in std::mem::take(&mut self.in_flight)
            .into_iter()
            .chain(unjudged)
        {
            if let Err(failure) = self
                .runtime
                .block_on(message.ack_with(async_nats::jetstream::AckKind::Nak(None)))
            {
                warn!("cluster: giving a message back: {failure}");
            }
        }
    }

    /// Their state goes too: claimed again later, a partition's cursor is read again and its
    /// fetched messages come again (redelivered), judged in order.
    fn lost(&mut self) -> Vec<u32> {
        let lost = self.claims.take_lost();
        for partition in &lost {
            self.partitions.remove(partition);
        }
        lost
    }
}
