//! What the roles of a cluster share: the NATS connection, the JetStream stream between the
//! ingest and detect roles, how an activity finds its partition, and the message that carries
//! a batch's share of one partition (README "Scaling out" tells the design and guarantees).
//!
//! The stream `DCWATCH_ACTIVITIES` takes subjects `dcwatch.activities.<partition>`, `partitions`
//! per key its detectors keep their state by ([`partitions_of`]). It is a
//! work queue (a message goes once its partition's consumer acknowledged it) bounded by
//! `stream_max_mib`, refusing new messages when full: a stalled detect role fills it, ingest
//! then refuses batches and the sensors keep them in their spools.

pub mod claims;
pub mod publish;
pub mod source;

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use dcwatch_detect::{Key, knowledge};
use dcwatch_proto::v1::{Activity, activity::Body};

use crate::config::ClusterConfig;

pub const STREAM: &str = "DCWATCH_ACTIVITIES";
/// The keys partitioned by: source, account, ticket.
const KEYS: u32 = 3;
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

/// The activity stream and every partition's consumer, made if missing (every role may be
/// first to start). The consumers are made at once, not when a detect node first claims their
/// partition: a consumer of a stream on R replicas needs all R NATS nodes to be made, so one
/// made late, with a NATS node down, failed, and its partition's messages filled the stream
/// (ingest refusing every batch) until the node came back.
pub async fn activity_stream(
    context: &jetstream::Context,
    config: &ClusterConfig,
) -> Result<stream::Stream, ClusterError> {
    let stream = context
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
        .map_err(ClusterError::jetstream)?;
    for partition in 0..all_partitions(config.partitions) {
        let (name, consumer) = source::consumer_config(partition);
        stream
            .get_or_create_consumer(&name, consumer)
            .await
            .map_err(ClusterError::jetstream)?;
    }
    Ok(stream)
}

/// The partitions that judge `activity`, one per [`Key`] it has (README "Scaling out"). With
/// `partitions` P per key, 0..P are keyed by source, P..2P by account and 2P..3P by ticket.
/// - Source: its client's address. The client is the side with the higher port (the service
///   listens on the well-known one: a KDC's reply to a roasting request comes from port 88 to
///   the client's ephemeral port), else the source; an activity without an address goes by its
///   sensor.
/// - Account: the account it is about, as the detectors compare accounts (no domain, lower
///   case); without one, the source's key, so the account-keyed detectors still see it (an LDAP
///   search or SAMR lookup naming a honeytoken).
/// - Ticket: a Kerberos activity's ticket hash, when it has one.
///
/// The hash is FNV-1a, the same on every node and version.
pub fn partitions_of(activity: &Activity, sensor_id: &str, partitions: u32) -> Vec<u32> {
    let per_key = partitions.max(1);
    let client = match (activity.src.as_ref(), activity.dst.as_ref()) {
        (Some(src), Some(dst)) if dst.port > src.port && !dst.ip.is_empty() => Some(dst),
        (src, _) => src,
    };
    let source: &[u8] = match client {
        Some(endpoint) if !endpoint.ip.is_empty() => &endpoint.ip,
        _ => sensor_id.as_bytes(),
    };
    let account = activity
        .account
        .as_ref()
        .map(|account| knowledge::account_key(&account.name))
        .filter(|account| !account.is_empty());
    let mut routes = vec![
        bucket(source, per_key),
        per_key + bucket(account.as_ref().map_or(source, String::as_bytes), per_key),
    ];
    if let Some(Body::Kerberos(kerberos)) = &activity.body
        && !kerberos.ticket_hash.is_empty()
    {
        routes.push(2 * per_key + bucket(&kerberos.ticket_hash, per_key));
    }
    routes
}

/// The key of a partition's detectors, `partitions` P per key.
pub fn key_of(partition: u32, partitions: u32) -> Key {
    match partition / partitions.max(1) {
        0 => Key::Source,
        1 => Key::Account,
        _ => Key::Ticket,
    }
}

/// Partitions in all: P per key.
pub fn all_partitions(partitions: u32) -> u32 {
    partitions.max(1).saturating_mul(KEYS)
}

/// `key`'s place among `count` partitions.
fn bucket(key: &[u8], count: u32) -> u32 {
    let hash = key.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    });
    u32::try_from(hash % u64::from(count.max(1))).unwrap_or(0)
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
    use dcwatch_proto::v1::{Account, Endpoint, KerberosActivity};

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

    fn source(activity: &Activity, sensor: &str) -> u32 {
        partitions_of(activity, sensor, 16)[0]
    }

    #[test]
    fn a_client_always_lands_in_the_same_source_partition_and_clients_spread() {
        let request = from(&[10, 0, 0, 5]);
        let first = source(&request, "s1");
        assert_eq!(first, source(&request, "s2"));
        let reply = Activity {
            src: request.dst.clone(),
            dst: request.src.clone(),
            ..Activity::default()
        };
        assert_eq!(source(&reply, "s1"), first, "the answer meets its request");
        let used: std::collections::BTreeSet<u32> = (0..=255_u8)
            .map(|last| source(&from(&[10, 0, 0, last]), "s1"))
            .collect();
        assert_eq!(used.len(), 16, "256 addresses reach every partition");
        assert!(used.iter().all(|partition| *partition < 16));
        assert_eq!(partitions_of(&Activity::default(), "s1", 1), [0, 1]);
    }

    #[test]
    fn an_account_and_a_ticket_land_in_their_partitions_from_any_client() {
        let as_user = |ip: &[u8], domain: &str, name: &str| Activity {
            account: Some(Account {
                domain: domain.to_owned(),
                name: name.to_owned(),
                ..Account::default()
            }),
            ..from(ip)
        };
        let alice = partitions_of(&as_user(&[10, 0, 0, 5], "LAB", "alice"), "s1", 16);
        let again = partitions_of(&as_user(&[10, 0, 0, 6], "", "Alice@lab.example"), "s2", 16);
        assert_eq!(alice.len(), 2, "no ticket: source and account");
        assert_ne!(alice[0], again[0], "two clients");
        assert_eq!(alice[1], again[1], "one account, however written");
        assert!((16..32).contains(&alice[1]));
        let accounts: std::collections::BTreeSet<u32> = (0..64)
            .map(|user| {
                partitions_of(&as_user(&[10, 0, 0, 5], "", &format!("u{user}")), "s1", 16)[1]
            })
            .collect();
        assert_eq!(
            accounts.len(),
            16,
            "64 accounts reach every account partition"
        );

        let nobody = from(&[10, 0, 0, 5]);
        let routes = partitions_of(&nobody, "s1", 16);
        assert_eq!(
            routes[1],
            16 + routes[0],
            "without an account, by its source"
        );

        let ticket = |ip: &[u8], hash: u8| Activity {
            body: Some(Body::Kerberos(KerberosActivity {
                ticket_hash: vec![hash; 16],
                ..KerberosActivity::default()
            })),
            ..from(ip)
        };
        let issued = partitions_of(&ticket(&[10, 0, 0, 5], 3), "s1", 16);
        let passed = partitions_of(&ticket(&[10, 0, 0, 9], 3), "s2", 16);
        assert_eq!(issued.len(), 3);
        assert_eq!(issued[2], passed[2], "one ticket, two clients");
        assert!((32..48).contains(&issued[2]));
        assert_eq!(
            [issued[0], issued[1], issued[2]].map(|partition| key_of(partition, 16)),
            [Key::Source, Key::Account, Key::Ticket]
        );
        assert_eq!(all_partitions(16), 48);
    }
}
