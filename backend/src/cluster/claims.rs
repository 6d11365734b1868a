//! Which detect node judges which partition: claims in a JetStream key-value bucket whose
//! entries live [`CLAIM_TTL`]. Each node refreshes its claims and its liveness key every
//! [`REFRESH`]; a node that stops refreshing (killed, cut off) loses them when they expire,
//! and the others claim them. Each node takes its fair share (partitions over live nodes,
//! rounded up) and gives back what is over it when nodes join, so the work spreads.
//!
//! A partition's consumer is durable: the new owner resumes after the last message the old one
//! acknowledged, which it acknowledged only once the alerts it made were stored.

use std::{
    collections::BTreeSet,
    sync::{Mutex, PoisonError},
    time::Duration,
};

use async_nats::jetstream::{self, kv, stream};
use futures::TryStreamExt as _;
use log::{info, warn};
use tokio::sync::watch;

use super::ClusterError;

const BUCKET: &str = "dcwatch-claims";
/// How long a claim outlives its last refresh.
pub const CLAIM_TTL: Duration = Duration::from_secs(10);
const REFRESH: Duration = Duration::from_secs(2);

/// The partitions this node owns now, and those it gave up since the detection loop last
/// asked (their engines go).
#[derive(Debug, Default)]
pub struct Claims {
    owned: Mutex<BTreeSet<u32>>,
    lost: Mutex<Vec<u32>>,
}

impl Claims {
    pub fn owned(&self) -> BTreeSet<u32> {
        self.owned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn take_lost(&self) -> Vec<u32> {
        std::mem::take(&mut *self.lost.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn set(&self, owned: BTreeSet<u32>) {
        let mut current = self.owned.lock().unwrap_or_else(PoisonError::into_inner);
        let gone: Vec<u32> = current.difference(&owned).copied().collect();
        for partition in &gone {
            info!("cluster: partition {partition} released");
        }
        for partition in owned.difference(&current) {
            info!("cluster: partition {partition} claimed");
        }
        self.lost
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(gone);
        *current = owned;
    }
}

fn partition_key(partition: u32) -> String {
    format!("partition.{partition}")
}

fn node_key(node: &str) -> String {
    format!("node.{node}")
}

/// The claims bucket, made if missing. Its stream is made here with the key-value layout
/// (`KV_<bucket>`, subjects `$KV.<bucket>.>`, one message per key) rather than through
/// `create_key_value`, whose account query Debian's nats-server 2.9 answers in a form the
/// client does not read.
pub async fn bucket(
    context: &jetstream::Context,
    replicas: usize,
) -> Result<kv::Store, ClusterError> {
    context
        .get_or_create_stream(stream::Config {
            name: format!("KV_{BUCKET}"),
            subjects: vec![format!("$KV.{BUCKET}.>")],
            max_messages_per_subject: 1,
            max_age: CLAIM_TTL,
            // Never more than the lifetime, or an expired claim's key could not be made again.
            duplicate_window: CLAIM_TTL,
            num_replicas: replicas.max(1),
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            storage: stream::StorageType::File,
            ..stream::Config::default()
        })
        .await
        .map_err(ClusterError::jetstream)?;
    context
        .get_key_value(BUCKET)
        .await
        .map_err(ClusterError::jetstream)
}

/// Claims and refreshes partitions until `stopping`, then gives them back.
pub async fn run(
    store: kv::Store,
    node: String,
    partitions: u32,
    claims: std::sync::Arc<Claims>,
    mut stopping: watch::Receiver<bool>,
) {
    // Partition -> the revision of our claim.
    let mut held: std::collections::BTreeMap<u32, u64> = std::collections::BTreeMap::new();
    let mut releasing: Vec<u32> = Vec::new();
    let mut tick = tokio::time::interval(REFRESH);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopping.changed() => break,
        }
        // Given up last round: the detection loop has had a round to finish with them.
        for partition in releasing.drain(..) {
            if let Err(failure) = store.delete(partition_key(partition)).await {
                warn!("cluster: releasing partition {partition}: {failure}");
            }
        }
        if let Err(failure) = round(&store, &node, partitions, &mut held, &mut releasing).await {
            warn!("cluster: partition claims: {failure}");
        }
        claims.set(held.keys().copied().collect());
    }
    claims.set(BTreeSet::new());
    for partition in held.keys() {
        let _released = store.delete(partition_key(*partition)).await;
    }
    let _gone = store.delete(node_key(&node)).await;
}

async fn round(
    store: &kv::Store,
    node: &str,
    partitions: u32,
    held: &mut std::collections::BTreeMap<u32, u64>,
    releasing: &mut Vec<u32>,
) -> Result<(), ClusterError> {
    store
        .put(node_key(node), node.as_bytes().to_vec().into())
        .await
        .map_err(ClusterError::jetstream)?;
    // Our claims, refreshed; one that changed hands meanwhile (we were cut off past the TTL)
    // is lost.
    let mut kept = std::collections::BTreeMap::new();
    for (partition, revision) in std::mem::take(held) {
        match store
            .update(
                partition_key(partition),
                node.as_bytes().to_vec().into(),
                revision,
            )
            .await
        {
            Ok(revision) => {
                kept.insert(partition, revision);
            }
            Err(failure) => warn!("cluster: partition {partition} lost: {failure}"),
        }
    }
    *held = kept;
    let live: Vec<String> = store
        .keys()
        .await
        .map_err(ClusterError::jetstream)?
        .try_collect()
        .await
        .map_err(ClusterError::jetstream)?;
    let nodes = live
        .iter()
        .filter(|key| key.starts_with("node."))
        .count()
        .max(1);
    let share = usize::try_from(partitions)
        .unwrap_or(usize::MAX)
        .div_ceil(nodes);
    while held.len() > share {
        let Some((partition, _)) = held.pop_last() else {
            break;
        };
        releasing.push(partition);
    }
    for partition in 0..partitions {
        if held.len() >= share {
            break;
        }
        if held.contains_key(&partition) || releasing.contains(&partition) {
            continue;
        }
        let key = partition_key(partition);
        let claimed = match store.entry(&key).await.map_err(ClusterError::jetstream)? {
            // Ours from before a restart under the same name.
            Some(entry)
                if entry.operation == kv::Operation::Put
                    && entry.value.as_ref() == node.as_bytes() =>
            {
                store
                    .update(&key, node.as_bytes().to_vec().into(), entry.revision)
                    .await
                    .ok()
            }
            Some(entry) if entry.operation == kv::Operation::Put => None,
            _ => store
                .create(&key, node.as_bytes().to_vec().into())
                .await
                .ok(),
        };
        if let Some(revision) = claimed {
            held.insert(partition, revision);
        }
    }
    Ok(())
}
