//! One syslog destination: a bounded queue drained by a task that keeps a connection (UDP, TCP
//! or TLS) and reconnects with backoff.
//!
//! Framing (RFC 6587 over TCP and TLS): octet counting `LEN SP MSG` (3.4.1, RFC 5425's too) or
//! a line feed after each message (3.4.2; CEF escapes line breaks, so a message holds none).
//! Over UDP a datagram is one message (RFC 5426).

use std::{io, net::SocketAddr, path::Path, sync::Arc, time::Duration};

use dcwatch_proto::cef::{self, SyslogHeader};
use log::{info, warn};
use rustls_pki_types::{CertificateDer, ServerName, pem::PemObject as _};
use tokio::{
    io::{AsyncWrite, AsyncWriteExt as _},
    net::{TcpStream, UdpSocket},
    sync::mpsc,
    task::JoinHandle,
};
use tokio_rustls::{TlsConnector, client::TlsStream};

use super::{OutputCounters, OutputError, add};
use crate::config::{SyslogDestination, SyslogFormat, SyslogFraming, SyslogTransport};

/// The first wait after a failed connection; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_mins(1);
/// How long a connection attempt (TCP and the TLS handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one write may take before the connection is deemed dead.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// APP-NAME / TAG of every line, as Defender for Identity's.
const APP_NAME: &str = "CEF";

/// How to reach the destination, resolved from its configuration.
#[derive(Clone)]
struct Target {
    address: String,
    transport: SyslogTransport,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

/// A running destination.
#[derive(Debug)]
pub struct SyslogOutput {
    address: String,
    format: SyslogFormat,
    framing: SyslogFraming,
    transport: SyslogTransport,
    facility: u8,
    queue: mpsc::Sender<Vec<u8>>,
    task: JoinHandle<()>,
    counters: Arc<OutputCounters>,
}

impl SyslogOutput {
    /// Starts the destination's task on the current runtime. Fails only on a configuration that
    /// cannot work (an unreadable CA file, a bad server name); an unreachable destination is
    /// retried.
    pub fn start(
        destination: &SyslogDestination,
        counters: Arc<OutputCounters>,
    ) -> Result<Self, OutputError> {
        let target = target(destination)?;
        let (queue, messages) = mpsc::channel(destination.queue.max(1));
        let task = tokio::spawn(run(target, messages, Arc::clone(&counters)));
        Ok(Self {
            address: destination.address.clone(),
            format: destination.format,
            framing: destination.framing,
            transport: destination.transport,
            facility: destination.facility,
            queue,
            task,
            counters,
        })
    }

    pub fn facility(&self) -> u8 {
        self.facility
    }

    /// Queues one CEF line behind its syslog header; a full queue drops it (counted).
    pub fn send(&self, line: &str, class: &str, pri: u8, unix_ns: i64, hostname: &str) {
        let message = frame(
            self.transport,
            self.framing,
            &message(self.format, line, class, pri, unix_ns, hostname),
        );
        if self.queue.try_send(message).is_err() {
            add(&self.counters.syslog_dropped, 1);
        }
    }

    /// Lets the queue drain for at most `patience`, then stops.
    pub async fn finish(self, patience: Duration) {
        let Self {
            queue,
            mut task,
            address,
            ..
        } = self;
        drop(queue);
        if tokio::time::timeout(patience, &mut task).await.is_err() {
            warn!("syslog {address}: messages still queued at exit were dropped");
            task.abort();
        }
    }
}

/// The syslog message of a CEF line for one destination's format.
pub fn message(
    format: SyslogFormat,
    line: &str,
    class: &str,
    pri: u8,
    unix_ns: i64,
    hostname: &str,
) -> String {
    cef::syslog_message(
        &SyslogHeader {
            format: match format {
                SyslogFormat::Rfc5424 => cef::SyslogFormat::Rfc5424,
                SyslogFormat::Rfc3164 => cef::SyslogFormat::Rfc3164,
            },
            pri,
            unix_ns,
            hostname,
            app: APP_NAME,
            procid: std::process::id(),
            class,
        },
        line,
    )
}

/// The bytes on the wire for one message.
fn frame(transport: SyslogTransport, framing: SyslogFraming, message: &str) -> Vec<u8> {
    match (transport, framing) {
        (SyslogTransport::Udp, _) => message.as_bytes().to_vec(),
        (_, SyslogFraming::OctetCounting) => {
            let mut bytes = format!("{} ", message.len()).into_bytes();
            bytes.extend_from_slice(message.as_bytes());
            bytes
        }
        (_, SyslogFraming::Newline) => {
            let mut bytes = message.as_bytes().to_vec();
            bytes.push(b'\n');
            bytes
        }
    }
}

fn target(destination: &SyslogDestination) -> Result<Target, OutputError> {
    let failure = |message: String| OutputError::Syslog {
        address: destination.address.clone(),
        message,
    };
    let tls = if destination.transport == SyslogTransport::Tls {
        let ca = destination
            .ca
            .as_deref()
            .ok_or_else(|| failure("TLS needs ca (the receiver's CA file)".to_owned()))?;
        let name = destination.server_name.clone().unwrap_or_else(|| {
            host_of(&destination.address)
                .trim_matches(|c| c == '[' || c == ']')
                .to_owned()
        });
        let server_name = ServerName::try_from(name.clone())
            .map_err(|_| failure(format!("server name {name:?}")))?;
        Some((tls_connector(ca).map_err(failure)?, server_name))
    } else {
        None
    };
    Ok(Target {
        address: destination.address.clone(),
        transport: destination.transport,
        tls,
    })
}

fn host_of(address: &str) -> &str {
    address.rsplit_once(':').map_or(address, |(host, _)| host)
}

/// A TLS client trusting only the CA file's certificates.
fn tls_connector(ca: &Path) -> Result<TlsConnector, String> {
    let mut roots = rustls::RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(ca)
        .map_err(|failure| format!("CA file {}: {failure}", ca.display()))?;
    for certificate in certificates {
        let certificate =
            certificate.map_err(|failure| format!("CA file {}: {failure}", ca.display()))?;
        roots
            .add(certificate)
            .map_err(|failure| format!("CA file {}: {failure}", ca.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("CA file {}: no certificate", ca.display()));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|failure| failure.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// An open connection.
enum Connection {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection {
    async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Self::Udp(socket) => socket.send(bytes).await.map(drop),
            Self::Tcp(stream) => write_all(stream, bytes).await,
            Self::Tls(stream) => write_all(stream.as_mut(), bytes).await,
        }
    }

    /// Ends the connection cleanly (TLS close_notify, TCP FIN) so the receiver keeps what it
    /// read.
    async fn close(self) -> io::Result<()> {
        match self {
            Self::Udp(_) => Ok(()),
            Self::Tcp(mut stream) => stream.shutdown().await,
            Self::Tls(mut stream) => stream.shutdown().await,
        }
    }
}

async fn write_all(stream: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> io::Result<()> {
    let write = async {
        stream.write_all(bytes).await?;
        stream.flush().await
    };
    tokio::time::timeout(WRITE_TIMEOUT, write)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "write timed out"))?
}

async fn connect(target: &Target) -> io::Result<Connection> {
    let attempt = async {
        let address = resolve(&target.address).await?;
        match target.transport {
            SyslogTransport::Udp => {
                let local: SocketAddr = if address.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    ([0_u16; 8], 0).into()
                };
                let socket = UdpSocket::bind(local).await?;
                socket.connect(address).await?;
                Ok(Connection::Udp(socket))
            }
            SyslogTransport::Tcp => Ok(Connection::Tcp(TcpStream::connect(address).await?)),
            SyslogTransport::Tls => {
                let (connector, name) = target
                    .tls
                    .as_ref()
                    .ok_or_else(|| io::Error::other("TLS without a configuration"))?;
                let stream = TcpStream::connect(address).await?;
                let stream = connector.connect(name.clone(), stream).await?;
                Ok(Connection::Tls(Box::new(stream)))
            }
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, attempt)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connection timed out"))?
}

async fn resolve(address: &str) -> io::Result<SocketAddr> {
    tokio::net::lookup_host(address)
        .await?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address for this name"))
}

/// Drains the queue into the destination until the queue closes.
async fn run(target: Target, mut messages: mpsc::Receiver<Vec<u8>>, counters: Arc<OutputCounters>) {
    let mut backoff = FIRST_BACKOFF;
    let mut failing = false;
    // A message whose send failed: tried once more on the next connection, then dropped.
    let mut retry: Option<Vec<u8>> = None;
    loop {
        // Connect only with something to send, so an idle destination holds no connection
        // attempts (and a closed queue ends the task at once).
        let first = match retry.take() {
            Some(message) => message,
            None => match messages.recv().await {
                Some(message) => message,
                None => return,
            },
        };
        let mut connection = match connect(&target).await {
            Ok(connection) => {
                add(&counters.syslog_connects, 1);
                if failing {
                    info!("syslog {}: connected again", target.address);
                }
                failing = false;
                backoff = FIRST_BACKOFF;
                connection
            }
            Err(failure) => {
                if !failing {
                    warn!(
                        "syslog {}: cannot connect ({failure}); retrying with backoff, queueing meanwhile",
                        target.address
                    );
                }
                failing = true;
                retry = Some(first);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let mut next = Some(first);
        let mut retried = false;
        loop {
            let message = match next.take() {
                Some(message) => message,
                None => {
                    if let Some(message) = messages.recv().await {
                        message
                    } else {
                        let _ = connection.close().await;
                        return;
                    }
                }
            };
            match connection.send(&message).await {
                Ok(()) => {
                    add(&counters.syslog_sent, 1);
                    retried = false;
                }
                Err(failure) => {
                    add(&counters.syslog_send_errors, 1);
                    warn!(
                        "syslog {}: send failed ({failure}); reconnecting",
                        target.address
                    );
                    if target.transport == SyslogTransport::Udp || retried {
                        // A datagram the network refused (too large) would fail again.
                        add(&counters.syslog_dropped, 1);
                    } else {
                        retry = Some(message);
                    }
                    break;
                }
            }
        }
    }
}

/// What `alerts test-syslog` found for one destination.
pub async fn test(
    destination: &SyslogDestination,
    line: &str,
    hostname: &str,
) -> Result<String, String> {
    let target = target(destination).map_err(|failure| failure.to_string())?;
    let message = message(
        destination.format,
        line,
        cef::TEST_CLASS,
        destination.facility.min(23) * 8 + 5,
        super::now_ns(),
        hostname,
    );
    let bytes = frame(destination.transport, destination.framing, &message);
    let mut connection = connect(&target)
        .await
        .map_err(|failure| format!("cannot connect: {failure}"))?;
    connection
        .send(&bytes)
        .await
        .map_err(|failure| format!("connected, but sending failed: {failure}"))?;
    connection
        .close()
        .await
        .map_err(|failure| format!("sent, but closing failed: {failure}"))?;
    Ok(match destination.transport {
        SyslogTransport::Udp => format!(
            "sent {} bytes (UDP: the receiver does not acknowledge; check that it logged the test message)",
            bytes.len()
        ),
        SyslogTransport::Tcp => format!("sent {} bytes over TCP and closed cleanly", bytes.len()),
        SyslogTransport::Tls => format!(
            "TLS handshake verified against the CA, sent {} bytes and closed cleanly",
            bytes.len()
        ),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use tokio::io::AsyncBufReadExt as _;

    use super::*;

    #[tokio::test]
    async fn an_absent_destination_queues_drops_the_excess_and_delivers_once_back() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let counters = Arc::new(OutputCounters::default());
        let destination = SyslogDestination {
            address: format!("127.0.0.1:{port}"),
            transport: SyslogTransport::Tcp,
            framing: SyslogFraming::Newline,
            queue: 3,
            ..SyslogDestination::default()
        };
        let output = SyslogOutput::start(&destination, Arc::clone(&counters)).expect("start");
        // The task has not run yet (one thread): the queue takes 3, the rest is dropped at
        // once, without waiting.
        for number in 0..6 {
            output.send(&format!("CEF:0|line {number}"), "C", 13, 0, "h");
        }
        assert_eq!(counters.syslog_dropped.load(Ordering::Relaxed), 3);
        // The task takes line 0, fails to connect, and waits FIRST_BACKOFF holding it: one
        // place is free in the queue.
        tokio::time::sleep(Duration::from_millis(300)).await;
        output.send("CEF:0|line 3", "C", 13, 0, "h");
        output.send("CEF:0|line 4", "C", 13, 0, "h");
        assert_eq!(counters.syslog_dropped.load(Ordering::Relaxed), 4);
        assert_eq!(counters.syslog_connects.load(Ordering::Relaxed), 0);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("listen");
        let (stream, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
            .await
            .expect("reconnected")
            .expect("accept");
        let mut lines = tokio::io::BufReader::new(stream).lines();
        let mut received = Vec::new();
        while received.len() < 4 {
            let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
                .await
                .expect("a line in time")
                .expect("read")
                .expect("a line");
            received.push(line);
        }
        // Oldest first, each behind an RFC 5424 header.
        for (index, line) in received.iter().enumerate() {
            assert!(
                line.starts_with("<13>1 1970-01-01T00:00:00.000000Z h CEF "),
                "{line}"
            );
            assert!(
                line.ends_with(&format!(" C - CEF:0|line {index}")),
                "{line}"
            );
        }
        assert_eq!(counters.syslog_sent.load(Ordering::Relaxed), 4);
        assert_eq!(counters.syslog_connects.load(Ordering::Relaxed), 1);
        output.finish(Duration::from_secs(1)).await;
    }

    #[test]
    fn frames_follow_rfc6587() {
        assert_eq!(
            frame(SyslogTransport::Tcp, SyslogFraming::OctetCounting, "<1>1 é"),
            "7 <1>1 é".as_bytes()
        );
        assert_eq!(
            frame(SyslogTransport::Tls, SyslogFraming::Newline, "<1>x"),
            b"<1>x\n"
        );
        assert_eq!(
            frame(SyslogTransport::Udp, SyslogFraming::Newline, "<1>x"),
            b"<1>x"
        );
    }
}
