//! The ingest role's side of the stream: a batch's activities, split by partition (each to its
//! source's, its account's and its ticket's: the republish by key), published with ids
//! JetStream deduplicates by, and acknowledged to the sensor only once JetStream has
//! acknowledged every part (stored it, on as many replicas as the stream has).

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicU64, Ordering},
};

use async_nats::jetstream::{self, context::Publish};
use dcwatch_proto::v1::Activity;
use prost::Message as _;

use super::{ClusterError, PartitionBatch, partitions_of, subject};

/// What publishing counts (the stats file's names).
#[derive(Debug, Default)]
pub struct PublishCounters {
    pub messages: AtomicU64,
    pub failures: AtomicU64,
}

#[derive(Debug)]
pub struct Publisher {
    context: jetstream::Context,
    partitions: u32,
    counters: PublishCounters,
}

impl Publisher {
    pub fn new(context: jetstream::Context, partitions: u32) -> Self {
        Self {
            context,
            partitions,
            counters: PublishCounters::default(),
        }
    }

    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        vec![
            (
                "cluster_messages_published",
                self.counters.messages.load(Ordering::Relaxed),
            ),
            (
                "cluster_publish_failures",
                self.counters.failures.load(Ordering::Relaxed),
            ),
        ]
    }

    /// Publishes a batch, one message per partition it touches (an activity touches one per key
    /// it has, [`partitions_of`]), and waits for JetStream's
    /// acknowledgement of each. The ids name the sensor's spool, the batch and the partition:
    /// the same batch published again is dropped by JetStream as a duplicate.
    pub async fn publish(
        &self,
        sensor_id: &str,
        spool_instance: &str,
        sequence: u64,
        activities: &[Activity],
    ) -> Result<(), ClusterError> {
        let result = self
            .publish_parts(sensor_id, spool_instance, sequence, activities)
            .await;
        if result.is_err() {
            self.counters.failures.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn publish_parts(
        &self,
        sensor_id: &str,
        spool_instance: &str,
        sequence: u64,
        activities: &[Activity],
    ) -> Result<(), ClusterError> {
        let mut parts: BTreeMap<u32, PartitionBatch> = BTreeMap::new();
        for (position, activity) in (0_u64..).zip(activities) {
            for partition in partitions_of(activity, sensor_id, self.partitions) {
                let part = parts.entry(partition).or_insert_with(|| PartitionBatch {
                    sensor_id: sensor_id.to_owned(),
                    sequence,
                    ..PartitionBatch::default()
                });
                part.positions.push(position);
                part.activities.push(activity.clone());
            }
        }
        let mut acknowledgements = Vec::with_capacity(parts.len());
        for (partition, part) in parts {
            let publish = Publish::build()
                .payload(part.encode_to_vec().into())
                .message_id(format!(
                    "{sensor_id}/{spool_instance}/{sequence}/{partition}"
                ));
            acknowledgements.push(
                self.context
                    .send_publish(subject(partition), publish)
                    .await
                    .map_err(ClusterError::jetstream)?,
            );
        }
        for acknowledgement in acknowledgements {
            acknowledgement.await.map_err(ClusterError::jetstream)?;
            self.counters.messages.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}
