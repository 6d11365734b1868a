//! Syslog over TCP, RFC 6587: a connection either prefixes each message with its length in
//! decimal and a space (octet counting, 3.4.1) or ends each with LF (non-transparent framing,
//! 3.4.2). Its first byte tells which (a digit: a count; `<` or a layout's first letter: a
//! line), and the connection keeps that framing.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use dcwatch_parsers::{
    framing::Framing,
    winevent::{self, MAX_MESSAGE_LEN, MAX_OCTET_COUNT_DIGITS},
};
use log::debug;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};

use super::{Sink, bump};

/// Bytes read from the socket at a time.
pub const READ_CHUNK: usize = 16 * 1024;

/// Most bytes a connection holds: the longest message read, its octet count, and one read
/// beyond. A message that would need more is skipped as oversized (`syslog_oversized`).
pub const MAX_CONNECTION_BUFFER: usize = MAX_MESSAGE_LEN + MAX_OCTET_COUNT_DIGITS + 1 + READ_CHUNK;

/// Accepts connections while fewer than the semaphore's permits are open; closes the others at
/// once (counted), so a flood of connections costs a counter rather than memory.
pub(super) async fn accept(
    listener: TcpListener,
    sink: Sink,
    permits: Arc<Semaphore>,
    idle_timeout: Duration,
) {
    let local = listener.local_addr().ok();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                debug!("syslog: TCP accept: {error}");
                // EMFILE and the like: give the process a moment rather than spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            bump(&sink.counters.connections_refused);
            debug!("syslog: connection from {peer} refused: too many open");
            drop(stream);
            continue;
        };
        bump(&sink.counters.connections);
        let sink = sink.clone();
        let local = local.unwrap_or(peer);
        tokio::spawn(async move {
            Connection::new(sink, peer, local)
                .run(stream, idle_timeout)
                .await;
            drop(permit);
        });
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing6587 {
    OctetCounted,
    Newline,
}

/// One connection's framing state.
#[derive(Debug)]
struct Connection {
    sink: Sink,
    peer: SocketAddr,
    local: SocketAddr,
    buffer: Vec<u8>,
    framing: Option<Framing6587>,
    /// Bytes of an oversized octet-counted message still to throw away.
    skip: usize,
    /// Throwing away an oversized line up to its LF.
    skip_line: bool,
    /// The sink is gone: stop.
    closed: bool,
}

impl Connection {
    fn new(sink: Sink, peer: SocketAddr, local: SocketAddr) -> Self {
        Self {
            sink,
            peer,
            local,
            buffer: Vec::new(),
            framing: None,
            skip: 0,
            skip_line: false,
            closed: false,
        }
    }

    async fn run(mut self, stream: TcpStream, idle_timeout: Duration) {
        let mut chunk = vec![0; READ_CHUNK];
        loop {
            match tokio::time::timeout(idle_timeout, stream.readable()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    debug!("syslog: connection from {}: {error}", self.peer);
                    break;
                }
                Err(_) => {
                    debug!("syslog: connection from {} idle: closed", self.peer);
                    break;
                }
            }
            let read = match stream.try_read(&mut chunk) {
                Ok(0) => break,
                Ok(read) => read,
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(error) => {
                    debug!("syslog: connection from {}: {error}", self.peer);
                    break;
                }
            };
            let Some(bytes) = chunk.get(..read) else {
                break;
            };
            if !self.receive(bytes).await {
                return;
            }
        }
        if self.skip > 0 || !self.buffer.iter().all(u8::is_ascii_whitespace) {
            bump(&self.sink.counters.partial);
            debug!(
                "syslog: connection from {} ended inside a message ({} bytes held)",
                self.peer,
                self.buffer.len()
            );
        }
    }

    /// Takes in bytes and hands on every whole message; `false`: stop the connection.
    async fn receive(&mut self, mut bytes: &[u8]) -> bool {
        if self.skip > 0 {
            let skipped = self.skip.min(bytes.len());
            self.skip -= skipped;
            bytes = bytes.get(skipped..).unwrap_or_default();
        }
        self.buffer.extend_from_slice(bytes);
        debug_assert!(self.buffer.len() <= MAX_CONNECTION_BUFFER);
        loop {
            if self.closed {
                return false;
            }
            let framing = if let Some(framing) = self.framing {
                framing
            } else {
                // Leading line breaks between messages do not decide the framing.
                let blank = self
                    .buffer
                    .iter()
                    .take_while(|byte| byte.is_ascii_whitespace())
                    .count();
                self.buffer.drain(..blank);
                let Some(&first) = self.buffer.first() else {
                    return true;
                };
                let framing = if winevent::is_octet_counted(first) {
                    Framing6587::OctetCounted
                } else {
                    Framing6587::Newline
                };
                self.framing = Some(framing);
                framing
            };
            let more = match framing {
                Framing6587::OctetCounted => self.octet_counted().await,
                Framing6587::Newline => self.newline().await,
            };
            match more {
                Step::Again => {}
                Step::NeedMore => return true,
                Step::Stop => return false,
            }
        }
    }

    async fn octet_counted(&mut self) -> Step {
        // Line breaks some senders put after each counted message.
        let blank = self
            .buffer
            .iter()
            .take_while(|byte| matches!(byte, b'\n' | b'\r'))
            .count();
        self.buffer.drain(..blank);
        if self.buffer.is_empty() {
            return Step::NeedMore;
        }
        match winevent::octet_counted_frame(&self.buffer) {
            Framing::NeedMore => Step::NeedMore,
            Framing::NotPdu => {
                // No count where one must be: the stream cannot be followed any further.
                bump(&self.sink.counters.messages);
                bump(&self.sink.counters.junk);
                debug!(
                    "syslog: connection from {}: no octet count: closed",
                    self.peer
                );
                self.buffer.clear();
                Step::Stop
            }
            Framing::Pdu(total) => {
                let header = self
                    .buffer
                    .iter()
                    .position(|byte| *byte == b' ')
                    .map_or(0, |space| space + 1);
                if total.saturating_sub(header) > MAX_MESSAGE_LEN {
                    self.sink.oversized(self.peer, total.saturating_sub(header));
                    let held = self.buffer.len().min(total);
                    self.skip = total - held;
                    self.buffer.drain(..held);
                    return Step::Again;
                }
                if self.buffer.len() < total {
                    return Step::NeedMore;
                }
                let message: Vec<u8> = self.buffer.drain(..total).skip(header).collect();
                self.deliver(&message).await
            }
        }
    }

    async fn newline(&mut self) -> Step {
        if self.skip_line {
            let Some(end) = self
                .buffer
                .iter()
                .position(|byte| matches!(byte, b'\n' | b'\0'))
            else {
                self.buffer.clear();
                return Step::NeedMore;
            };
            self.buffer.drain(..=end);
            self.skip_line = false;
        }
        match winevent::newline_frame(&self.buffer) {
            Framing::Pdu(total) => {
                let line: Vec<u8> = self
                    .buffer
                    .drain(..total)
                    .take(total.saturating_sub(1))
                    .collect();
                let line = line.strip_suffix(b"\r").unwrap_or(&line);
                if line.iter().all(u8::is_ascii_whitespace) {
                    return Step::Again;
                }
                if line.len() > MAX_MESSAGE_LEN {
                    self.sink.oversized(self.peer, line.len());
                    return Step::Again;
                }
                self.deliver(line).await
            }
            _ if self.buffer.len() > MAX_MESSAGE_LEN => {
                self.sink.oversized(self.peer, self.buffer.len());
                self.buffer.clear();
                self.skip_line = true;
                Step::NeedMore
            }
            _ => Step::NeedMore,
        }
    }

    async fn deliver(&mut self, message: &[u8]) -> Step {
        if self.sink.message(message, self.peer, self.local).await {
            Step::Again
        } else {
            self.closed = true;
            Step::Stop
        }
    }
}

/// What the framing loop does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Again,
    NeedMore,
    Stop,
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use tokio::sync::mpsc;

    use super::{super::SyslogCounters, *};

    const EVENT: &str = "CEF:0|Microsoft|Microsoft Windows||Microsoft-Windows-Security-Auditing:4776|x|Low| externalId=4776 cat=Security rt=1426218619000 shost=WKS dhost=DC1 duser=bob cs4=0x0 cs4Label=Reason or Error Code";

    fn open() -> (Connection, mpsc::Receiver<dcwatch_proto::v1::Activity>) {
        let (sender, receiver) = mpsc::channel(64);
        let sink = Sink {
            counters: Arc::new(SyslogCounters::default()),
            activities: sender,
        };
        let peer = "127.0.0.1:40000".parse().expect("address");
        let local = "127.0.0.1:514".parse().expect("address");
        (Connection::new(sink, peer, local), receiver)
    }

    fn counter(
        connection: &Connection,
        pick: fn(&SyslogCounters) -> &std::sync::atomic::AtomicU64,
    ) -> u64 {
        pick(&connection.sink.counters).load(Ordering::Relaxed)
    }

    /// Feeds `stream` in pieces of `size` bytes; returns the activities delivered.
    async fn feed(
        connection: &mut Connection,
        stream: &[u8],
        size: usize,
        receiver: &mut mpsc::Receiver<dcwatch_proto::v1::Activity>,
    ) -> usize {
        for piece in stream.chunks(size) {
            assert!(connection.receive(piece).await);
        }
        let mut delivered = 0;
        while receiver.try_recv().is_ok() {
            delivered += 1;
        }
        delivered
    }

    #[tokio::test]
    async fn octet_counting_across_any_split() {
        let mut stream = Vec::new();
        for _ in 0..3 {
            stream.extend_from_slice(format!("{} {EVENT}", EVENT.len()).as_bytes());
        }
        for size in [1, 2, 7, 100, stream.len()] {
            let (mut connection, mut receiver) = open();
            assert_eq!(
                feed(&mut connection, &stream, size, &mut receiver).await,
                3,
                "pieces of {size}"
            );
            assert_eq!(connection.framing, Some(Framing6587::OctetCounted));
            assert!(connection.buffer.is_empty());
        }
    }

    #[tokio::test]
    async fn newline_framing_across_any_split() {
        let stream = format!("\n{EVENT}\n{EVENT}\r\n\n{EVENT}\0");
        for size in [1, 3, 64, stream.len()] {
            let (mut connection, mut receiver) = open();
            assert_eq!(
                feed(&mut connection, stream.as_bytes(), size, &mut receiver).await,
                3,
                "pieces of {size}"
            );
            assert_eq!(connection.framing, Some(Framing6587::Newline));
        }
    }

    #[tokio::test]
    async fn oversized_frames_are_skipped_and_the_stream_goes_on() {
        let huge = MAX_MESSAGE_LEN + 10;
        let mut stream = format!("{huge} ").into_bytes();
        stream.resize(stream.len() + huge, b'x');
        stream.extend_from_slice(format!("{} {EVENT}", EVENT.len()).as_bytes());
        let (mut connection, mut receiver) = open();
        assert_eq!(
            feed(&mut connection, &stream, READ_CHUNK, &mut receiver).await,
            1
        );
        assert_eq!(counter(&connection, |c| &c.oversized), 1);
        assert_eq!(counter(&connection, |c| &c.messages), 2);

        let mut stream = vec![b'<'; MAX_MESSAGE_LEN + 5];
        stream.push(b'\n');
        stream.extend_from_slice(EVENT.as_bytes());
        stream.push(b'\n');
        let (mut connection, mut receiver) = open();
        assert_eq!(feed(&mut connection, &stream, 1000, &mut receiver).await, 1);
        assert_eq!(counter(&connection, |c| &c.oversized), 1);
        assert!(connection.buffer.len() <= MAX_CONNECTION_BUFFER);
    }

    #[tokio::test]
    async fn a_bad_count_ends_the_connection() {
        let (mut connection, _receiver) = open();
        assert!(!connection.receive(b"12x hello").await);
        assert_eq!(counter(&connection, |c| &c.junk), 1);
    }
}
