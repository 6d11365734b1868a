//! The syslog listener: Windows events a SIEM forwards (reference/002's four layouts), over UDP
//! (one message per datagram) and TCP (RFC 6587: octet counting or newline framing, told apart
//! by a connection's first byte), turned into `windows_event` activities.
//!
//! The listener tasks parse and build the activities; the capture loop (`live::run`) prints
//! them with the captured ones, so `--output json` and the sensor id apply alike. Nothing a
//! sender does is fatal: junk, oversized and half-sent messages are counted and logged at debug.

mod activity;
mod tcp;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use dcwatch_parsers::winevent::{self, WinEventError};
use dcwatch_proto::v1::Activity;
use log::{debug, info};
use tokio::{
    net::{TcpListener, UdpSocket},
    sync::{Semaphore, mpsc},
    task::JoinSet,
};

pub use activity::activity;
pub use tcp::{MAX_CONNECTION_BUFFER, READ_CHUNK};

/// Activities waiting for the capture loop to print them. A burst larger than this makes the
/// listeners wait (TCP senders are slowed; UDP datagrams wait in the socket buffer).
pub const CHANNEL_CAPACITY: usize = 1024;

/// The largest UDP payload (65,535 − 8 − 20): a datagram buffer of this size is never short.
const MAX_DATAGRAM: usize = 65_507;

dcwatch_telemetry::counters! {
    /// What the listeners count; written to the stats file with the other counters.
    #[derive(Debug, Default)]
    pub struct SyslogCounters {
        /// Messages received: datagrams and TCP frames, parsed or not.
        counter messages: AtomicU64,
        /// Of those, events of the 15 read, reported as activities.
        counter events: AtomicU64,
        /// Events in a known layout whose id is not one of the 15: counted, not reported.
        counter unknown_events: AtomicU64,
        /// Messages in no known layout (or without an event id, or not UTF-8).
        counter junk: AtomicU64,
        /// Messages longer than `winevent::MAX_MESSAGE_LEN`, dropped unread.
        counter oversized: AtomicU64,
        /// TCP connections that ended (closed, idle, or unframeable) in the middle of a message.
        counter partial: AtomicU64,
        /// TCP connections closed at once because `syslog.max_connections` were open.
        counter connections_refused: AtomicU64,
        /// TCP connections accepted.
        counter connections: AtomicU64,
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// How the listeners behave (the `[syslog]` section of the configuration).
#[derive(Clone, Debug)]
pub struct ListenerSettings {
    pub listen: Vec<SocketAddr>,
    pub max_connections: usize,
    pub idle_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SyslogError {
    #[error("cannot listen for syslog on {transport} {address}: {source}")]
    Bind {
        transport: &'static str,
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// The running listeners; dropping them stops them.
#[derive(Debug)]
pub struct Listeners {
    tasks: JoinSet<()>,
    counters: Arc<SyslogCounters>,
}

/// What every listener task shares.
#[derive(Debug, Clone)]
struct Sink {
    counters: Arc<SyslogCounters>,
    activities: mpsc::Sender<Activity>,
}

impl Listeners {
    /// Binds UDP and TCP on every address (all of them before any task starts, so a port
    /// already taken fails the start), then starts a task per socket.
    pub async fn bind(
        settings: &ListenerSettings,
        activities: mpsc::Sender<Activity>,
    ) -> Result<Self, SyslogError> {
        let mut sockets = Vec::new();
        for &address in &settings.listen {
            let udp = UdpSocket::bind(address)
                .await
                .map_err(|source| SyslogError::Bind {
                    transport: "UDP",
                    address,
                    source,
                })?;
            let tcp = TcpListener::bind(address)
                .await
                .map_err(|source| SyslogError::Bind {
                    transport: "TCP",
                    address,
                    source,
                })?;
            sockets.push((udp, tcp));
        }
        let counters = Arc::new(SyslogCounters::default());
        let sink = Sink {
            counters: Arc::clone(&counters),
            activities,
        };
        let connections = Arc::new(Semaphore::new(settings.max_connections));
        let mut tasks = JoinSet::new();
        for (udp, tcp) in sockets {
            let local = udp.local_addr().ok();
            info!(
                "syslog: listening on UDP and TCP {} (RFC 3164/5424; RSA, CEF, Splunk and QRadar \
                 layouts)",
                local.map_or_else(|| "?".to_owned(), |address| address.to_string())
            );
            tasks.spawn(receive_datagrams(udp, sink.clone()));
            tasks.spawn(tcp::accept(
                tcp,
                sink.clone(),
                Arc::clone(&connections),
                settings.idle_timeout,
            ));
        }
        Ok(Self { tasks, counters })
    }

    pub fn counters(&self) -> &SyslogCounters {
        &self.counters
    }

    /// Stops every listener and connection.
    pub fn stop(&mut self) {
        self.tasks.abort_all();
    }
}

/// One message per datagram (RFC 5426).
async fn receive_datagrams(socket: UdpSocket, sink: Sink) {
    let local = socket.local_addr().ok();
    let mut buffer = vec![0; MAX_DATAGRAM];
    loop {
        match socket.recv_from(&mut buffer).await {
            Ok((len, peer)) => {
                let Some(message) = buffer.get(..len) else {
                    continue;
                };
                if !sink.message(message, peer, local.unwrap_or(peer)).await {
                    return;
                }
            }
            Err(error) => debug!("syslog: UDP receive: {error}"),
        }
    }
}

impl Sink {
    /// Counts, parses and hands on one message; `false` once the capture loop is gone.
    async fn message(&self, bytes: &[u8], peer: SocketAddr, local: SocketAddr) -> bool {
        bump(&self.counters.messages);
        match winevent::parse(bytes) {
            Ok(event) if event.event_id.is_known() => {
                bump(&self.counters.events);
                let activity = activity(&event, peer, local, received_ns());
                self.activities.send(activity).await.is_ok()
            }
            Ok(event) => {
                bump(&self.counters.unknown_events);
                debug!(
                    "syslog from {peer}: event {} is not one dcwatch reads",
                    event.event_id.0
                );
                true
            }
            Err(WinEventError::TooLong(len)) => {
                bump(&self.counters.oversized);
                debug!("syslog from {peer}: message of {len} bytes: dropped");
                true
            }
            Err(error) => {
                bump(&self.counters.junk);
                debug!("syslog from {peer}: {} bytes: {error}", bytes.len());
                true
            }
        }
    }

    /// A TCP frame too long to buffer, skipped without being read.
    fn oversized(&self, peer: SocketAddr, len: usize) {
        bump(&self.counters.messages);
        bump(&self.counters.oversized);
        debug!(
            "syslog from {peer}: message of {len} bytes or more, over the {} read: dropped",
            winevent::MAX_MESSAGE_LEN
        );
    }
}

fn received_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
        })
}
