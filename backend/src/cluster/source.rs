//! The detect role's source: the messages of the partitions this node owns, through each
//! partition's durable consumer, in stream order.
//!
//! A chunk's messages are acknowledged only after its alerts and the partition's cursor (the
//! last stream sequence judged) are stored in one transaction. A message redelivered after a
//! crash between the two is at or below the stored cursor: acknowledged and skipped, so no
//! activity is judged twice and no alert counted twice.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
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
/// takes to judge and store.
const ACK_WAIT: Duration = Duration::from_mins(1);

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
                self.partitions
                    .insert(partition, Partition { consumer, cursor });
            }
            Err(failure) => {
                self.counters.fetch_errors.fetch_add(1, Ordering::Relaxed);
                warn!("cluster: partition {partition}'s consumer: {failure}");
            }
        }
        Ok(())
    }

    /// Up to [`FETCH`] messages of one partition, without waiting for more.
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
        fetched.unwrap_or_else(|failure| {
            self.counters.fetch_errors.fetch_add(1, Ordering::Relaxed);
            warn!("cluster: fetching: {failure}");
            Vec::new()
        })
    }

    fn acknowledge(&self, message: &Message) {
        if let Err(failure) = self.runtime.block_on(message.ack()) {
            // Redelivered after ACK_WAIT, then skipped by the cursor.
            warn!("cluster: acknowledging: {failure}");
        }
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
            let Some(state) = self.partitions.get(&partition) else {
                continue;
            };
            let mut activities = Vec::new();
            let mut last = state.cursor;
            for message in self.fetch(state) {
                let stream_sequence = message.info().map_or(0, |info| {
                    i64::try_from(info.stream_sequence).unwrap_or(i64::MAX)
                });
                if stream_sequence <= state.cursor {
                    self.counters
                        .redelivered_skipped
                        .fetch_add(1, Ordering::Relaxed);
                    self.acknowledge(&message);
                    continue;
                }
                match PartitionBatch::decode(message.payload.as_ref()) {
                    Ok(batch) => {
                        for (position, activity) in batch.positions.iter().zip(batch.activities) {
                            activities.push(NewActivity {
                                row: stream_sequence,
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
                last = last.max(stream_sequence);
                self.in_flight.push(message);
                if activities.len() >= limit {
                    break;
                }
            }
            if self.in_flight.is_empty() {
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
            self.acknowledge(&message);
        }
        if let Some(state) = self.partitions.get_mut(&chunk.partition) {
            state.cursor = chunk.cursor.1;
        }
    }

    /// The messages go back to JetStream at once, to be judged again in order by an engine
    /// rebuilt from the store (which has none of this chunk's alerts).
    fn failed(&mut self, _chunk: &Chunk) {
        for message in std::mem::take(&mut self.in_flight) {
            if let Err(failure) = self
                .runtime
                .block_on(message.ack_with(async_nats::jetstream::AckKind::Nak(None)))
            {
                warn!("cluster: giving a message back: {failure}");
            }
        }
    }

    fn lost(&mut self) -> Vec<u32> {
        self.claims.take_lost()
    }
}
