//! Synthetic sensor traffic for the backend's benchmarks: workstations' AS-REQs and DNS
//! queries, and DCSync-like markers that each raise an alert of their own.

use std::{
    net::SocketAddr,
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::bail;
use dcwatch_proto::v1::{
    Account, Activity, ActivityBatch, BackendMessage, Batch, Compression, DceRpcActivity,
    DnsActivity, Endpoint, Hello, KerberosActivity, SensorMessage, activity::Body, backend_message,
    dce_rpc_activity, dns_activity, ingest_client::IngestClient, kerberos_activity, sensor_message,
};
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{
    Streaming,
    transport::{Certificate, Channel, ClientTlsConfig},
};

const ZSTD_LEVEL: i32 = 3;

pub fn endpoint(ip: [u8; 4], port: u32) -> Option<Endpoint> {
    Some(Endpoint {
        ip: ip.to_vec(),
        port,
    })
}

pub fn now() -> pbjson_types::Timestamp {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    pbjson_types::Timestamp {
        seconds: i64::try_from(since.as_secs()).unwrap_or(0),
        nanos: i32::try_from(since.subsec_nanos()).unwrap_or(0),
    }
}

/// A workstation's AS-REQ or DNS query to the DC.
pub fn benign(sensor: u8, number: u64) -> Activity {
    let host = u8::try_from(number % 250).unwrap_or(0) + 2;
    let client = [10, 20 + sensor, 1, host];
    let body = if number.is_multiple_of(2) {
        Body::Kerberos(KerberosActivity {
            r#type: kerberos_activity::Type::AsReq.into(),
            ..KerberosActivity::default()
        })
    } else {
        Body::Dns(DnsActivity {
            r#type: dns_activity::Type::Query.into(),
            query_name: format!("host{host}.corp.example"),
            query_type: "A".to_owned(),
            ..DnsActivity::default()
        })
    };
    Activity {
        time: Some(now()),
        src: endpoint(client, 50_000 + u32::from(host)),
        dst: endpoint(
            [10, 20 + sensor, 0, 1],
            if number.is_multiple_of(2) { 88 } else { 53 },
        ),
        account: Some(Account {
            domain: "CORP".to_owned(),
            name: format!("user{host}"),
            ..Account::default()
        }),
        body: Some(body),
        ..Activity::default()
    }
}

/// A DCSync-like request from an address never used before.
pub fn marker(sensor: u8, number: u64) -> (Activity, String) {
    let client = [
        10,
        120 + sensor,
        u8::try_from(number / 250).unwrap_or(0),
        u8::try_from(number % 250).unwrap_or(0) + 2,
    ];
    let activity = Activity {
        time: Some(now()),
        src: endpoint(client, 51_000),
        dst: endpoint([10, 20 + sensor, 0, 1], 49_160),
        body: Some(Body::Dcerpc(DceRpcActivity {
            r#type: dce_rpc_activity::Type::Request.into(),
            interface_name: "drsuapi".to_owned(),
            opnum: 3,
            operation: "DsGetNCChanges".to_owned(),
            answered: true,
            ..DceRpcActivity::default()
        })),
        ..Activity::default()
    };
    let key = format!(
        "src:{}.{}.{}.{}",
        client[0], client[1], client[2], client[3]
    );
    (activity, key)
}

pub fn batch(sequence: u64, activities: Vec<Activity>) -> anyhow::Result<Batch> {
    let count = u32::try_from(activities.len())?;
    let plain = ActivityBatch {
        activities,
        ..ActivityBatch::default()
    }
    .encode_to_vec();
    Ok(Batch {
        sequence,
        compression: Compression::Zstd.into(),
        payload: zstd::bulk::compress(&plain, ZSTD_LEVEL)?,
        activity_count: count,
        uncompressed_len: u32::try_from(plain.len())?,
    })
}

pub fn message(message: sensor_message::Message) -> SensorMessage {
    SensorMessage {
        message: Some(message),
    }
}

/// Opens sensor `name`'s stream to the backend at `address` (TLS with the backend's CA `ca`),
/// says hello and waits for the welcome: the queue towards the backend, `queue` messages deep,
/// and the backend's replies.
pub async fn open_stream(
    address: SocketAddr,
    ca: &[u8],
    name: &str,
    token: &str,
    queue: usize,
) -> anyhow::Result<(mpsc::Sender<SensorMessage>, Streaming<BackendMessage>)> {
    let channel = Channel::from_shared(format!("https://localhost:{}", address.port()))?
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(ca))
                .domain_name("localhost"),
        )?
        .connect()
        .await?;
    let (outbound, requests) = mpsc::channel(queue);
    outbound
        .send(message(sensor_message::Message::Hello(Hello {
            sensor_id: name.to_owned(),
            version: "bench".to_owned(),
            token: token.to_owned(),
            spool_instance: format!("bench-{name}"),
        })))
        .await?;
    let mut inbound = IngestClient::new(channel)
        .stream(ReceiverStream::new(requests))
        .await?
        .into_inner();
    match inbound.message().await? {
        Some(BackendMessage {
            message: Some(backend_message::Message::Welcome(_)),
        }) => Ok((outbound, inbound)),
        other => bail!("{name}: expected a welcome, got {other:?}"),
    }
}
