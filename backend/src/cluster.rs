//! What the roles of a cluster share: the NATS connection, the JetStream stream between the
//! ingest and detect roles, how an activity finds its partition, and the message that carries
//! a batch's share of one partition (README "Scaling out" tells the design and guarantees).
//!
//! The stream `DCWATCH_ACTIVITIES` takes subjects `dcwatch.activities.<partition>`. It is a
//! work queue (a message goes once its partition's consumer acknowledged it) bounded by
//! `stream_max_mib`, refusing new messages when full: a stalled detect role fills it, ingest
//! then refuses batches and the sensors keep them in their spools.

pub mod claims;
pub mod publish;
pub mod source;

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use dcwatch_proto::v1::Activity;

use crate::config::ClusterConfig;

pub const STREAM: &str = "DCWATCH_ACTIVITIES";
const SUBJECT_PREFIX: &str = "dcwatch.activities";
/// JetStream drops a message whose id it stored within this window: a batch resent after a
/// lost acknowledgement (an ingest node killed between publishing and answering) is stored
/// once. Sensors resend within seconds; beyond the window, detection's alerts are still
/// upserts by key.
const DUPLICATE_WINDOW: Duration = Duration::from_mins(10);

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster: no NATS server configured (cluster.nats_urls)")]
    NoServers,
    #[error("cluster: connecting to NATS: {0}")]
    Connect(String),
    #[error("cluster: reading {path}: {source}")]
    Credentials {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cluster: JetStream: {0}")]
    JetStream(String),
}

impl ClusterError {
    pub(crate) fn jetstream(failure: impl std::fmt::Display) -> Self {
        Self::JetStream(failure.to_string())
    }
}

/// The subject of a partition's messages.
pub fn subject(partition: u32) -> String {
    format!("{SUBJECT_PREFIX}.{partition}")
}

/// This node's name in claims and in NATS's connection list.
pub fn node_name(config: &ClusterConfig) -> String {
    if !config.node.is_empty() {
        return config.node.clone();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_default();
    format!("{host}-{}", std::process::id())
}

/// Connects to the configured servers (TLS with `nats_ca`, a credentials file when given); the
/// client reconnects by itself when a server goes.
pub async fn connect(
    config: &ClusterConfig,
    name: &str,
) -> Result<jetstream::Context, ClusterError> {
    if config.nats_urls.is_empty() {
        return Err(ClusterError::NoServers);
    }
    let mut options = async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect();
    if let Some(path) = &config.nats_credentials {
        options =
            options
                .credentials_file(path)
                .await
                .map_err(|source| ClusterError::Credentials {
                    path: path.clone(),
                    source,
                })?;
    }
    if let Some(ca) = &config.nats_ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    let servers: Vec<async_nats::ServerAddr> = config
        .nats_urls
        .iter()
        .map(|url| url.parse())
        .collect::<Result<_, _>>()
        .map_err(|failure: std::io::Error| ClusterError::Connect(failure.to_string()))?;
    let client = options
        .connect(servers)
        .await
        .map_err(|failure| ClusterError::Connect(failure.to_string()))?;
    Ok(jetstream::new(client))
}

/// The activity stream, made if missing (every role may be first to start).
pub async fn activity_stream(
    context: &jetstream::Context,
    config: &ClusterConfig,
) -> Result<stream::Stream, ClusterError> {
    context
        .get_or_create_stream(stream::Config {
            name: STREAM.to_owned(),
            subjects: vec![format!("{SUBJECT_PREFIX}.*")],
            retention: stream::RetentionPolicy::WorkQueue,
            discard: stream::DiscardPolicy::New,
            max_bytes: i64::try_from(config.stream_max_mib.saturating_mul(1 << 20))
                .unwrap_or(i64::MAX),
            num_replicas: config.replicas.max(1),
            duplicate_window: DUPLICATE_WINDOW,
            storage: stream::StorageType::File,
            ..stream::Config::default()
        })
        .await
        .map_err(ClusterError::jetstream)
}

/// The partition that judges `activity`: its client's address hashed (FNV-1a, the same on
/// every node and version), so one client's requests and the answers to them meet in one detect
/// node's engine. The client is the side with the higher port (the service listens on the
/// well-known one: a KDC's reply to a roasting request comes from port 88 to the client's
/// ephemeral port), else the source. An activity without an address goes by its sensor.
pub fn partition(activity: &Activity, sensor_id: &str, partitions: u32) -> u32 {
    let client = match (activity.src.as_ref(), activity.dst.as_ref()) {
        (Some(src), Some(dst)) if dst.port > src.port && !dst.ip.is_empty() => Some(dst),
        (src, _) => src,
    };
    let key: &[u8] = match client {
        Some(endpoint) if !endpoint.ip.is_empty() => &endpoint.ip,
        _ => sensor_id.as_bytes(),
    };
    let hash = key.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    });
    u32::try_from(hash % u64::from(partitions.max(1))).unwrap_or(0)
}

/// A batch's activities of one partition, as published: where each came from, for the
/// evidence's `activity_ref`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PartitionBatch {
    #[prost(string, tag = "1")]
    pub sensor_id: String,
    #[prost(uint64, tag = "2")]
    pub sequence: u64,
    /// Each activity's place in its batch.
    #[prost(uint64, repeated, tag = "3")]
    pub positions: Vec<u64>,
    #[prost(message, repeated, tag = "4")]
    pub activities: Vec<Activity>,
}

#[cfg(test)]
mod tests {
    use dcwatch_proto::v1::Endpoint;

    use super::*;

    fn from(ip: &[u8]) -> Activity {
        Activity {
            src: Some(Endpoint {
                ip: ip.to_vec(),
                port: 50_000,
            }),
            dst: Some(Endpoint {
                ip: vec![10, 0, 0, 1],
                port: 88,
            }),
            ..Activity::default()
        }
    }

    #[test]
    fn a_client_always_lands_in_the_same_partition_and_clients_spread() {
        let request = from(&[10, 0, 0, 5]);
        let first = partition(&request, "s1", 16);
        assert_eq!(first, partition(&request, "s2", 16));
        let reply = Activity {
            src: request.dst.clone(),
            dst: request.src.clone(),
            ..Activity::default()
        };
        assert_eq!(
            partition(&reply, "s1", 16),
            first,
            "the answer meets its request"
        );
        let used: std::collections::BTreeSet<u32> = (0..=255_u8)
            .map(|last| partition(&from(&[10, 0, 0, last]), "s1", 16))
            .collect();
        assert_eq!(used.len(), 16, "256 addresses reach every partition");
        assert!(used.iter().all(|partition| *partition < 16));
        assert_eq!(partition(&Activity::default(), "s1", 1), 0);
    }
}
