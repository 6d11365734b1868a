//! Which detect node judges which partition: claims in a JetStream key-value bucket whose
//! entries live [`CLAIM_TTL`]. Each node refreshes its claims and its liveness key every
//! [`REFRESH`]; a node that stops refreshing (killed, cut off) loses them when they expire,
//! and the others claim them. Each node takes its fair share (partitions over live nodes,
//! rounded up) and gives back what is over it when nodes join, so the work spreads.
//!
//! A partition's consumer is durable: the new owner resumes after the last message the old one
//! acknowledged, which it acknowledged only once the alerts it made were stored.

use std::{
    collections::{BTreeMap, BTreeSet},
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
/// The longest a request to NATS may take in a round, and the longest its claiming of new
/// partitions may take: NATS answers late or never while a node of its cluster is down, and
/// rounds that waited the client's own timeout (5 s) for each step let every claim expire
/// before it was refreshed again (the claims flapped between the nodes, their engines were
/// rebuilt again and again, and the stream drained for minutes). Bounded, a round refreshes
/// its claims at least every `REFRESH + STEP_WAIT + REBALANCE_WAIT`, within [`CLAIM_TTL`].
const STEP_WAIT: Duration = Duration::from_secs(2);
const REBALANCE_WAIT: Duration = Duration::from_secs(4);

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
    let mut held: BTreeMap<u32, u64> = BTreeMap::new();
    let mut releasing: Vec<u32> = Vec::new();
    let mut tick = tokio::time::interval(REFRESH);
    // A round that ran late must not be followed by a burst of rounds.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopping.changed() => break,
        }
        // First thing in a round, so that nothing else it waits for can let them expire.
        refresh(&store, &node, &mut held).await;
        claims.set(held.keys().copied().collect());
        // Given up last round: the detection loop has had a round to finish with them.
        let bucket = &store;
        let released = futures::future::join_all(releasing.drain(..).map(|partition| async move {
            (
                partition,
                bounded(bucket.delete(partition_key(partition))).await,
            )
        }))
        .await;
        for (partition, answer) in released {
            if let Err(failure) = answer {
                warn!("cluster: releasing partition {partition}: {failure}");
            }
        }
        let rebalanced = tokio::time::timeout(
            REBALANCE_WAIT,
            rebalance(&store, &node, partitions, &mut held, &mut releasing),
        )
        .await
        .unwrap_or_else(|_| Err(ClusterError::jetstream("no answer in time")));
        if let Err(failure) = rebalanced {
            warn!("cluster: partition claims: {failure}");
        }
        claims.set(held.keys().copied().collect());
    }
    claims.set(BTreeSet::new());
    for partition in held.keys() {
        let _released = bounded(store.delete(partition_key(*partition))).await;
    }
    let _gone = bounded(store.delete(node_key(&node))).await;
}

/// `step`, given at most [`STEP_WAIT`].
async fn bounded<T, E: std::fmt::Display>(
    step: impl Future<Output = Result<T, E>>,
) -> Result<T, ClusterError> {
    tokio::time::timeout(STEP_WAIT, step)
        .await
        .map_err(|_| ClusterError::jetstream("no answer in time"))?
        .map_err(ClusterError::jetstream)
}

/// Refreshes every claim at once. A claim that changed hands meanwhile (we were cut off past the
/// TTL) is lost; one whose refresh was not answered is kept, and lost next round if it expired.
async fn refresh(store: &kv::Store, node: &str, held: &mut BTreeMap<u32, u64>) {
    let refreshed =
        futures::future::join_all(held.iter().map(|(partition, revision)| async move {
            let update = store.update(
                partition_key(*partition),
                node.as_bytes().to_vec().into(),
                *revision,
            );
            (*partition, tokio::time::timeout(STEP_WAIT, update).await)
        }))
        .await;
    for (partition, answer) in refreshed {
        match answer {
            Ok(Ok(revision)) => {
                held.insert(partition, revision);
            }
            Ok(Err(failure)) if failure.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                warn!("cluster: partition {partition} lost: {failure}");
                held.remove(&partition);
            }
            Ok(Err(failure)) => warn!("cluster: refreshing partition {partition}: {failure}"),
            Err(_) => warn!("cluster: refreshing partition {partition}: no answer in time"),
        }
    }
}

/// Says this node is alive, gives back what is over its share and claims free partitions up to
/// it.
async fn rebalance(
    store: &kv::Store,
    node: &str,
    partitions: u32,
    held: &mut BTreeMap<u32, u64>,
    releasing: &mut Vec<u32>,
) -> Result<(), ClusterError> {
    store
        .put(node_key(node), node.as_bytes().to_vec().into())
        .await
        .map_err(ClusterError::jetstream)?;
    let nodes = live_nodes(store).await?.max(1);
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

/// Nodes whose liveness key has not expired, read from the bucket stream's subjects: one
/// request to the stream's leader. (Listing the keys made an ordered consumer, which a NATS
/// cluster with a node down often did not answer.) A node that stopped cleanly is counted
/// until its key expires: its share is taken a little later.
async fn live_nodes(store: &kv::Store) -> Result<usize, ClusterError> {
    let subjects: Vec<(String, usize)> = store
        .stream
        .info_with_subjects(format!("$KV.{BUCKET}.{}", node_key("*")))
        .await
        .map_err(ClusterError::jetstream)?
        .try_collect()
        .await
        .map_err(ClusterError::jetstream)?;
    Ok(subjects.len())
}
