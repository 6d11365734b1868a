//! The gRPC client: one `Ingest.Stream` call at a time, reopened with backoff when it fails.
//!
//! A session: hello; the backend's welcome (batches at or below `stored_through` are dropped
//! from the spool); then every unacknowledged batch in sequence order, new ones as the writer
//! spools them, health events and counters; acks free the spool. Whatever was sent but not
//! acknowledged when a session ends is sent again by the next one.
//!
//! A refused token (`UNAUTHENTICATED` or `PERMISSION_DENIED`) is logged as an error and retried
//! every [`REFUSED_BACKOFF`] (an operator may fix the backend side without restarting the sensor);
//! `replay` gives up on it at once (see `Transport::finish`).

use std::{
    net::IpAddr,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use dcwatch_proto::v1::{
    Batch, Counters, HealthIssues, Hello, SensorMessage, backend_message, health_event::Severity,
    ingest_client::IngestClient, sensor_message,
};
use dcwatch_telemetry::Snapshot;
use log::{debug, error, info, warn};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{
    Code, Status,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Uri},
};

use super::{
    Shared, TransportConfig,
    backoff::{Backoff, REFUSED_BACKOFF},
};

/// Batches sent and not yet acknowledged, at most: bounds what a session resends after a break
/// and what the backend must buffer.
pub const MAX_IN_FLIGHT: u64 = 32;
/// Messages queued for the HTTP/2 stream.
pub const OUTBOUND_QUEUE: usize = 8;
/// How long the backend has to answer the hello.
pub const WELCOME_TIMEOUT: Duration = Duration::from_secs(15);
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2 pings find a backend that vanished without closing the connection.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Largest backend message accepted (welcomes and acks are a few bytes).
pub const MAX_BACKEND_MESSAGE: usize = 64 * 1024;
/// An outage at least this long is reported as a health event once the backend is back.
pub const OUTAGE_REPORT: Duration = Duration::from_mins(1);
/// How often a session checks for room in the outbound queue when it was full.
const QUEUE_POLL: Duration = Duration::from_millis(50);

/// Why a session ended.
#[derive(Debug)]
enum SessionEnd {
    /// Asked to stop.
    Stopped,
    /// The backend refused the token.
    Refused(String),
    /// Anything else; try again after a backoff. `welcomed`: got as far as the welcome.
    Failed { message: String, welcomed: bool },
}

/// Runs sessions until `stop` turns true.
pub async fn run(
    config: TransportConfig,
    endpoint: Endpoint,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::default();
    let mut highest_sent = 0;
    let mut down_since = None;
    loop {
        if *stop.borrow() {
            return;
        }
        let end = session(
            &config,
            &endpoint,
            &shared,
            &mut stop,
            &mut highest_sent,
            &mut down_since,
        )
        .await;
        if !matches!(end, SessionEnd::Stopped) {
            down_since.get_or_insert_with(Instant::now);
        }
        let delay = match end {
            SessionEnd::Stopped => return,
            SessionEnd::Refused(message) => {
                error!(
                    "backend {} refused this sensor's token ({message}): check `token` and the \
                     backend's `dcwatch-backend token` list; trying again in {}s",
                    config.url,
                    REFUSED_BACKOFF.as_secs()
                );
                shared.set_error(format!("refused the token: {message}"));
                shared.refused.store(true, Ordering::Relaxed);
                REFUSED_BACKOFF
            }
            SessionEnd::Failed { message, welcomed } => {
                shared
                    .counters
                    .backend_errors
                    .fetch_add(1, Ordering::Relaxed);
                if welcomed {
                    backoff.reset();
                }
                let delay = backoff.next_delay();
                warn!(
                    "backend {}: {message}; reconnecting in {:.1}s",
                    config.url,
                    delay.as_secs_f64()
                );
                shared.set_error(message);
                delay
            }
        };
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return,
        }
    }
}

/// The endpoint for `config.url`: TLS for `https`, plain for `http` to a loopback address only.
/// Fails on a URL or CA file that cannot work, before any connection is tried.
pub fn endpoint(config: &TransportConfig) -> Result<Endpoint, String> {
    let uri: Uri = config
        .url
        .parse()
        .map_err(|error| format!("not a URL: {error}"))?;
    let host = uri.host().ok_or("no host in the URL")?.to_owned();
    let mut endpoint = Endpoint::from(uri.clone())
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
    match uri.scheme_str() {
        Some("https") => {
            let domain = host.trim_start_matches('[').trim_end_matches(']');
            let mut tls = ClientTlsConfig::new().domain_name(domain);
            tls = match &config.ca {
                Some(path) => {
                    let pem = std::fs::read(path)
                        .map_err(|error| format!("reading --ca {}: {error}", path.display()))?;
                    tls.ca_certificate(Certificate::from_pem(pem))
                }
                None => tls.with_native_roots(),
            };
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|error| format!("TLS settings: {error}"))?;
        }
        Some("http") if is_loopback(&host) => {}
        Some("http") => {
            return Err("plain http:// is only allowed to a loopback address; use https://".into());
        }
        _ => return Err("the URL must start with https://".into()),
    }
    Ok(endpoint)
}

/// `localhost` or a loopback address: where plain HTTP cannot be overheard.
pub fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn is_refusal(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unauthenticated | Code::PermissionDenied
    )
}

fn failed(status: &Status, welcomed: bool) -> SessionEnd {
    if is_refusal(status) {
        return SessionEnd::Refused(status.message().to_owned());
    }
    let message = if status.message().is_empty() {
        format!("{:?}", status.code())
    } else {
        format!("{:?}: {}", status.code(), status.message())
    };
    SessionEnd::Failed { message, welcomed }
}

async fn session(
    config: &TransportConfig,
    endpoint: &Endpoint,
    shared: &Shared,
    stop: &mut watch::Receiver<bool>,
    highest_sent: &mut u64,
    down_since: &mut Option<Instant>,
) -> SessionEnd {
    let channel: Channel = tokio::select! {
        connected = endpoint.connect() => match connected {
            Ok(channel) => channel,
            Err(error) => return SessionEnd::Failed {
                message: format!("connecting: {}", error_chain(&error)),
                welcomed: false,
            },
        },
        _ = stop.changed() => return SessionEnd::Stopped,
    };
    let (outbound, receiver) = mpsc::channel(OUTBOUND_QUEUE);
    let spool_instance = shared.spool().instance().to_owned();
    let hello = SensorMessage {
        message: Some(sensor_message::Message::Hello(Hello {
            sensor_id: config.sensor_id.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            token: config.token.clone(),
            spool_instance,
        })),
    };
    if outbound.send(hello).await.is_err() {
        return SessionEnd::Failed {
            message: "stream closed before the hello".into(),
            welcomed: false,
        };
    }
    let mut client = IngestClient::new(channel).max_decoding_message_size(MAX_BACKEND_MESSAGE);
    let opened = tokio::select! {
        opened = tokio::time::timeout(WELCOME_TIMEOUT, client.stream(ReceiverStream::new(receiver))) => opened,
        _ = stop.changed() => return SessionEnd::Stopped,
    };
    let mut inbound = match opened {
        Ok(Ok(response)) => response.into_inner(),
        Ok(Err(status)) => return failed(&status, false),
        Err(_) => {
            return SessionEnd::Failed {
                message: "no answer to the hello".into(),
                welcomed: false,
            };
        }
    };
    let first = tokio::select! {
        first = tokio::time::timeout(WELCOME_TIMEOUT, inbound.message()) => first,
        _ = stop.changed() => return SessionEnd::Stopped,
    };
    let (stored_through, backend_instance) = match first {
        Ok(Ok(Some(message))) => match message.message {
            Some(backend_message::Message::Welcome(welcome)) => {
                (welcome.stored_through, welcome.spool_instance)
            }
            other => {
                return SessionEnd::Failed {
                    message: format!("expected a welcome, got {other:?}"),
                    welcomed: false,
                };
            }
        },
        Ok(Ok(None)) => {
            return SessionEnd::Failed {
                message: "stream ended before the welcome".into(),
                welcomed: false,
            };
        }
        Ok(Err(status)) => return failed(&status, false),
        Err(_) => {
            return SessionEnd::Failed {
                message: "no welcome".into(),
                welcomed: false,
            };
        }
    };
    shared
        .counters
        .backend_connects
        .fetch_add(1, Ordering::Relaxed);
    shared.refused.store(false, Ordering::Relaxed);
    if let Err(message) = welcome(shared, stored_through, &backend_instance) {
        return SessionEnd::Failed {
            message,
            welcomed: true,
        };
    }
    info!(
        "connected to backend {} (it has stored through sequence {stored_through})",
        config.url
    );
    if let Some(since) = down_since.take()
        && since.elapsed() >= OUTAGE_REPORT
    {
        shared.health(
            Severity::Warning,
            "BACKEND_UNREACHABLE",
            format!(
                "the backend was unreachable for {}s; the spool kept what was captured meanwhile",
                since.elapsed().as_secs()
            ),
        );
    }
    let open_issues = SensorMessage {
        message: Some(sensor_message::Message::OpenIssues(HealthIssues {
            open: shared.open_issues(),
        })),
    };
    if outbound.send(open_issues).await.is_err() {
        return SessionEnd::Failed {
            message: "stream closed before the open issues".into(),
            welcomed: true,
        };
    }
    let mut cursor = 0;
    let mut counters_sent = 0;
    loop {
        // Counters go out as often as they are published (every stats interval).
        let (generation, snapshot) = shared.published();
        if generation != counters_sent {
            counters_sent = generation;
            send_counters(&outbound, shared, snapshot);
        }
        if let Err(message) = fill(&outbound, shared, &mut cursor, highest_sent) {
            return SessionEnd::Failed {
                message,
                welcomed: true,
            };
        }
        tokio::select! {
            message = inbound.message() => match message {
                Ok(Some(message)) => {
                    if let Err(message) = on_backend_message(shared, message.message) {
                        return SessionEnd::Failed { message, welcomed: true };
                    }
                }
                Ok(None) => return SessionEnd::Failed {
                    message: "the backend ended the stream".into(),
                    welcomed: true,
                },
                Err(status) => return failed(&status, true),
            },
            () = shared.appended.notified() => {}
            () = tokio::time::sleep(QUEUE_POLL), if outbound.capacity() == 0 => {}
            _ = stop.changed() => return SessionEnd::Stopped,
        }
    }
}

/// The welcome's `stored_through`, and `backend_instance`, the spool that numbered it.
/// - This spool: everything at or below it is stored (free it), and numbering goes on after
///   it even if this spool lost records and numbers in a crash (no renumbering: what is left
///   was numbered by this spool and may be stored already).
/// - Another spool (this one was wiped, or another machine has this id): its numbers say
///   nothing of this spool's batches; pending ones it reaches are renumbered after it.
/// - Unknown (a backend or stored batches from before spool instances): as before them, free
///   what it covers unless it is beyond this spool's numbering, then renumber.
fn welcome(shared: &Shared, stored_through: u64, backend_instance: &str) -> Result<(), String> {
    let mut spool = shared.spool();
    let ours = !backend_instance.is_empty() && backend_instance == spool.instance();
    let unknown = backend_instance.is_empty();
    if ours || (unknown && stored_through < spool.next_sequence()) {
        let freed = spool
            .catch_up(stored_through)
            .map_err(|error| error.to_string())?;
        drop(spool);
        shared
            .counters
            .batches_acked
            .fetch_add(freed.batches, Ordering::Relaxed);
        return Ok(());
    }
    let jumped = stored_through >= spool.next_sequence();
    let renumbered = spool
        .continue_after(stored_through)
        .map_err(|error| error.to_string())?;
    drop(spool);
    if renumbered > 0 || jumped {
        let message = format!(
            "the backend has stored through sequence {stored_through} from another spool (a new \
             spool folder, or another sensor with this id?): {renumbered} pending batches \
             renumbered after it"
        );
        warn!("{message}");
        shared.health(Severity::Warning, "SEQUENCE_RESET", message);
    }
    Ok(())
}

fn on_backend_message(
    shared: &Shared,
    message: Option<backend_message::Message>,
) -> Result<(), String> {
    match message {
        Some(backend_message::Message::Ack(ack)) => {
            let freed = shared
                .spool()
                .ack(ack.through)
                .map_err(|error| error.to_string())?;
            debug!(
                "ack through {}: {} batches freed",
                ack.through, freed.batches
            );
            shared
                .counters
                .batches_acked
                .fetch_add(freed.batches, Ordering::Relaxed);
            Ok(())
        }
        Some(backend_message::Message::Welcome(_)) => Err("a second welcome".into()),
        None => Ok(()),
    }
}

/// Queues what there is room for: health events first (small, and about what follows), then
/// batches in sequence order while fewer than [`MAX_IN_FLIGHT`] are unacknowledged.
fn fill(
    outbound: &mpsc::Sender<SensorMessage>,
    shared: &Shared,
    cursor: &mut u64,
    highest_sent: &mut u64,
) -> Result<(), String> {
    while let Some(event) = shared.take_health() {
        match outbound.try_reserve() {
            Ok(permit) => permit.send(SensorMessage {
                message: Some(sensor_message::Message::Health(event)),
            }),
            Err(mpsc::error::TrySendError::Full(())) => {
                shared.put_back_health(event);
                return Ok(());
            }
            Err(mpsc::error::TrySendError::Closed(())) => {
                shared.put_back_health(event);
                return Err("stream closed".into());
            }
        }
    }
    loop {
        let permit = match outbound.try_reserve() {
            Ok(permit) => permit,
            Err(mpsc::error::TrySendError::Full(())) => return Ok(()),
            Err(mpsc::error::TrySendError::Closed(())) => return Err("stream closed".into()),
        };
        let mut spool = shared.spool();
        let acked = spool.acked_through();
        if cursor.saturating_sub(acked.saturating_add(1)) >= MAX_IN_FLIGHT {
            return Ok(());
        }
        let corrupt_before = spool.counters().corrupt_records;
        let next = spool.first_from(*cursor);
        let lost = spool
            .counters()
            .corrupt_records
            .saturating_sub(corrupt_before);
        drop(spool);
        if lost > 0 {
            let message = format!(
                "{lost} spooled batches no longer read back (the spool's files changed on disk): \
                 skipped"
            );
            warn!("{message}");
            shared.health(Severity::Warning, "SPOOL_CORRUPT", message);
        }
        let Some(batch) = next else {
            return Ok(());
        };
        *cursor = batch.sequence.saturating_add(1);
        let counters = &shared.counters;
        counters.batches_sent.fetch_add(1, Ordering::Relaxed);
        if batch.sequence <= *highest_sent {
            counters.batches_resent.fetch_add(1, Ordering::Relaxed);
        }
        *highest_sent = (*highest_sent).max(batch.sequence);
        permit.send(SensorMessage {
            message: Some(sensor_message::Message::Batch(Batch {
                sequence: batch.sequence,
                compression: batch.compression,
                payload: batch.payload,
                activity_count: batch.activity_count,
                uncompressed_len: batch.uncompressed_len,
            })),
        });
    }
}

fn send_counters(outbound: &mpsc::Sender<SensorMessage>, shared: &Shared, mut snapshot: Snapshot) {
    // The transport's own counters are fresher than the published snapshot's.
    snapshot.update(shared.snapshot());
    let message = SensorMessage {
        message: Some(sensor_message::Message::Counters(Counters {
            time: Some(dcwatch_pipeline::activity::timestamp(super::unix_now_ns())),
            values: snapshot
                .pairs()
                .map(|(name, value)| (name.to_owned(), value))
                .collect(),
        })),
    };
    // Counters are a snapshot: when the queue is full, the next one will do.
    drop(outbound.try_send(message));
}

/// The error and its causes, each said once: layers that repeat their cause's text (rustls
/// under hyper under tonic) are not written twice. A certificate the CA did not sign gets a hint.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    if text.contains("invalid peer certificate") {
        text.push_str(
            " (the backend's certificate is not one the CA given with --ca / backend.ca signed, \
             or not for this host name)",
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1
                .as_deref()
                .map(|layer| layer as &(dyn std::error::Error + 'static))
        }
    }

    #[test]
    fn an_error_chain_says_each_cause_once() {
        let rustls = Layer("invalid peer certificate: BadSignature", None);
        let hyper = Layer(
            "invalid peer certificate: BadSignature",
            Some(Box::new(rustls)),
        );
        let tonic = Layer("transport error", Some(Box::new(hyper)));
        let text = error_chain(&tonic);
        assert!(
            text.starts_with("transport error: invalid peer certificate: BadSignature ("),
            "{text}"
        );
        assert_eq!(text.matches("BadSignature").count(), 1, "{text}");
        assert!(text.contains("--ca"), "{text}");
    }

    fn shared(dir: &std::path::Path) -> Shared {
        let options = super::super::spool::SpoolOptions {
            dir: dir.to_owned(),
            max_bytes: 4 * super::super::spool::MIN_SEGMENT_BYTES,
            segment_bytes: super::super::spool::MIN_SEGMENT_BYTES,
        };
        Shared::new(super::super::spool::Spool::open(options).expect("spool"))
    }

    fn spool_with(shared: &Shared, batches: usize) {
        let mut spool = shared.spool();
        for _ in 0..batches {
            spool
                .append(&super::super::spool::SpooledBatch {
                    sequence: 0,
                    compression: 0,
                    activity_count: 1,
                    uncompressed_len: 4,
                    payload: vec![1; 4],
                })
                .expect("append");
        }
    }

    fn pending(shared: &Shared) -> Vec<u64> {
        let mut spool = shared.spool();
        let mut out = Vec::new();
        let mut from = 0;
        while let Some(batch) = spool.first_from(from) {
            out.push(batch.sequence);
            from = batch.sequence + 1;
        }
        out
    }

    #[test]
    fn a_welcome_from_this_spool_frees_and_numbers_on() {
        let dir = tempfile::tempdir().expect("dir");
        let shared = shared(dir.path());
        spool_with(&shared, 8);
        shared.spool().ack(4).expect("ack");
        let instance = shared.spool().instance().to_owned();
        // 5..8 pending, the backend stored 5..10 from this spool (an OS crash lost numbers):
        // no renumbering (5..8 would be stored twice), 5..8 freed, numbering after 10.
        welcome(&shared, 10, &instance).expect("welcome");
        assert_eq!(pending(&shared), Vec::<u64>::new());
        assert_eq!(shared.spool().next_sequence(), 11);
        assert_eq!(shared.counters.batches_acked.load(Ordering::Relaxed), 4);
        assert!(shared.take_health().is_none());
    }

    #[test]
    fn a_welcome_from_another_spool_renumbers_and_frees_nothing() {
        let dir = tempfile::tempdir().expect("dir");
        let shared = shared(dir.path());
        spool_with(&shared, 4);
        // Another spool (a wiped one, another machine) stored through 2: this spool's 1..4
        // were never stored, and must not be freed or taken for duplicates.
        welcome(&shared, 2, "another-spool").expect("welcome");
        assert_eq!(pending(&shared), [3, 4, 5, 6]);
        assert_eq!(shared.counters.batches_acked.load(Ordering::Relaxed), 0);
        let event = shared.take_health().expect("a health event");
        assert_eq!(event.kind, "SEQUENCE_RESET");
        // An older backend that names no spool: as before, what it covers is freed.
        welcome(&shared, 3, "").expect("welcome");
        assert_eq!(pending(&shared), [4, 5, 6]);
    }

    #[test]
    fn loopback_hosts() {
        for host in ["localhost", "127.0.0.1", "[::1]", "127.3.2.1"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["10.0.0.1", "backend.example", "[fd00::1]"] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
