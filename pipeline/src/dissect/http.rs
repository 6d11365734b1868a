//! HTTP/1.x as a carrier of NTLM and Negotiate (Kerberos) authentication (RFC 4559): the tokens
//! of `Authorization` headers, with the outcome the response's status gives them, and the tokens
//! of `WWW-Authenticate` challenges.
//!
//! Only heads are parsed. A PDU here is a head; the body after it is passed over, by its
//! `Content-Length`, chunk by chunk, or to the end of the connection, so a large body costs
//! neither memory nor parsing. Requests are taken only from the client and responses only from
//! the server, so a client cannot answer its own authentication.

use std::{cell::Cell, collections::VecDeque};

use dcwatch_parsers::{
    framing::{Framing, Start},
    http::{self, HeadKind, MAX_CHUNK_LINE_LEN, MAX_CHUNK_SIZE_DIGITS, MAX_HEAD_LEN, Method},
};
use dcwatch_proto::v1::{Activity, Carrier, outcome::Status};

use super::{
    gss,
    stream::{Malformed, Sink, StreamProtocol},
};
use crate::{
    activity::{Seen, outcome},
    flow::{Direction, MemoryBudget},
};

/// Requests waiting for their response on one connection (pipelining); beyond it the oldest is
/// reported without an outcome.
pub(super) const MAX_PENDING_REQUESTS: usize = 32;

/// HTTP statuses that refuse the credentials presented (RFC 9110 15.5.2, 15.5.8).
const UNAUTHORIZED: u16 = 401;
const PROXY_AUTHENTICATION_REQUIRED: u16 = 407;

#[derive(Debug)]
struct PendingRequest {
    is_head: bool,
    is_connect: bool,
    /// Activities of the request's tokens, waiting for the response's status.
    carried: Vec<Activity>,
    /// Bytes of the budget they hold.
    charge: usize,
}

/// What follows the head just handed over, per direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Body {
    #[default]
    None,
    Length(u64),
    /// Everything to the end of the connection (a response without a length, a tunnel).
    UntilClose,
}

#[derive(Debug)]
pub(super) struct HttpSession {
    pending: VecDeque<PendingRequest>,
    /// Activities given up waiting (after a gap), written out with the next PDU or at the end.
    orphaned: Vec<Activity>,
    /// Per direction: in the middle of a chunked body.
    chunked: [bool; 2],
    /// Per direction: what the last head said follows it.
    body: [Body; 2],
    /// Per direction: how far the head at the front has been searched for its end, so that a
    /// head arriving in many small segments is searched once, not once per segment.
    scanned: [Cell<usize>; 2],
    budget: MemoryBudget,
}

impl HttpSession {
    pub(super) fn new(budget: MemoryBudget) -> Self {
        Self {
            pending: VecDeque::new(),
            orphaned: Vec::new(),
            chunked: [false; 2],
            body: [Body::None; 2],
            scanned: [Cell::new(0), Cell::new(0)],
            budget,
        }
    }

    /// The connection ended: tokens of requests never answered are reported without outcome.
    pub(super) fn close(mut self, out: &mut Vec<Activity>) {
        out.append(&mut self.orphaned);
        while let Some(request) = self.pending.pop_front() {
            self.budget.release(request.charge);
            out.extend(request.carried);
        }
    }

    /// The length of the head at the front of `bytes`, searching only what was not searched
    /// before.
    fn head_len(&self, direction: Direction, bytes: &[u8]) -> Option<usize> {
        let scanned = &self.scanned[direction.index()];
        // Back up three bytes: the end of a head may straddle the old and the new bytes.
        let from = scanned.get().saturating_sub(3).min(bytes.len());
        let window = bytes.get(..bytes.len().min(MAX_HEAD_LEN))?;
        let found =
            window
                .get(from..)?
                .windows(2)
                .enumerate()
                .find_map(|(offset, pair)| match pair {
                    [b'\n', b'\n'] => Some(from + offset + 2),
                    [b'\n', b'\r'] if window.get(from + offset + 2) == Some(&b'\n') => {
                        Some(from + offset + 3)
                    }
                    _ => None,
                });
        scanned.set(window.len());
        found
    }

    fn request(&mut self, method: Method<'_>, carried: Vec<Activity>, sink: &mut Sink<'_>) {
        if self.pending.len() >= MAX_PENDING_REQUESTS
            && let Some(oldest) = self.pending.pop_front()
        {
            self.budget.release(oldest.charge);
            sink.counters.requests_not_awaited += 1;
            sink.out.extend(oldest.carried);
        }
        let charge = carried.iter().map(prost::Message::encoded_len).sum();
        if !carried.is_empty() && !self.budget.try_reserve(charge) {
            sink.counters.requests_not_awaited += 1;
            sink.out.extend(carried);
            return;
        }
        self.pending.push_back(PendingRequest {
            is_head: method == Method::HEAD,
            is_connect: method == Method::CONNECT,
            carried,
            charge,
        });
    }

    /// Pairs a response with its request; returns what follows the head when the status or the
    /// request decide it rather than the headers.
    fn response(
        &mut self,
        status: u16,
        carried: Vec<Activity>,
        sink: &mut Sink<'_>,
    ) -> Option<Body> {
        let informational = (100..200).contains(&status);
        let request = if informational {
            None
        } else {
            self.pending.pop_front()
        };
        let (is_head, is_connect) = request.as_ref().map_or((false, false), |request| {
            (request.is_head, request.is_connect)
        });
        match request {
            Some(request) => {
                self.budget.release(request.charge);
                let refused = status == UNAUTHORIZED || status == PROXY_AUTHENTICATION_REQUIRED;
                // A 401 that carries the server's next token is a step of the exchange (the
                // NTLM CHALLENGE), not a refusal.
                let continues = refused && !carried.is_empty();
                for mut activity in request.carried {
                    let mut result = outcome(!refused, u32::from(status), None);
                    if continues {
                        result.status = Status::Unspecified.into();
                    }
                    activity.outcome = Some(result);
                    sink.out.push(activity);
                }
            }
            None if !informational => sink.counters.orphan_responses += 1,
            None => {}
        }
        sink.out.extend(carried);
        match status {
            _ if is_connect && (200..300).contains(&status) => Some(Body::UntilClose),
            _ if is_head || informational || status == 204 || status == 304 => Some(Body::None),
            _ => None,
        }
    }
}

impl StreamProtocol for HttpSession {
    fn frame(&self, direction: Direction, bytes: &[u8]) -> Framing {
        if self.chunked[direction.index()] {
            return chunk_frame(bytes);
        }
        match self.head_len(direction, bytes) {
            Some(len) => Framing::Pdu(len),
            None if bytes.len() >= MAX_HEAD_LEN => Framing::NotPdu,
            None if http::is_pdu_start(bytes) == Start::No => Framing::NotPdu,
            None => Framing::NeedMore,
        }
    }

    fn is_pdu_start(&self, _direction: Direction, bytes: &[u8]) -> Start {
        http::is_pdu_start(bytes)
    }

    fn pdu(
        &mut self,
        direction: Direction,
        pdu: &[u8],
        _truncated: bool,
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) -> Result<(), Malformed> {
        let side = direction.index();
        self.scanned[side].set(0);
        sink.out.append(&mut self.orphaned);
        if self.chunked[side] {
            let size = chunk_size(pdu).ok_or(Malformed)?;
            self.body[side] = if size == 0 {
                self.chunked[side] = false;
                Body::None
            } else {
                // The chunk's data and its CRLF.
                Body::Length(size.saturating_add(2))
            };
            return Ok(());
        }
        let head = http::parse_head(pdu).map_err(|_| Malformed)?;
        let mut carried = Vec::new();
        for auth in &head.auth {
            if let Some(token) = auth.token.bytes()
                && !gss::token(token, seen, Carrier::Http, &mut carried)
            {
                sink.counters.unreadable_tokens += 1;
            }
        }
        let decided = match (head.kind, direction) {
            (HeadKind::Request { method, .. }, Direction::ToServer) => {
                self.request(method, carried, sink);
                None
            }
            (HeadKind::Response { status }, Direction::ToClient) => {
                self.response(status, carried, sink)
            }
            _ => return Err(Malformed),
        };
        self.body[side] = match decided {
            Some(body) => body,
            None if head.chunked => {
                self.chunked[side] = true;
                Body::None
            }
            None => match head.content_length {
                Some(length) => Body::Length(length),
                None if direction == Direction::ToClient => Body::UntilClose,
                None => Body::None,
            },
        };
        Ok(())
    }

    fn skip_after(&mut self, direction: Direction) -> u64 {
        match std::mem::take(&mut self.body[direction.index()]) {
            Body::None => 0,
            Body::Length(length) => length,
            Body::UntilClose => u64::MAX,
        }
    }

    fn gap(&mut self, direction: Direction) {
        let side = direction.index();
        self.scanned[side].set(0);
        self.chunked[side] = false;
        self.body[side] = Body::None;
        // Requests and responses no longer pair up: what waits is reported without outcome.
        while let Some(request) = self.pending.pop_front() {
            self.budget.release(request.charge);
            self.orphaned.extend(request.carried);
        }
    }
}

impl Drop for HttpSession {
    fn drop(&mut self) {
        for request in &self.pending {
            self.budget.release(request.charge);
        }
        self.pending.clear();
    }
}

/// A chunk-size line (RFC 9112 7.1): `1*HEXDIG [ chunk-ext ] CRLF`; for the last chunk (size
/// 0), the trailer section and the empty line that ends it too.
fn chunk_frame(bytes: &[u8]) -> Framing {
    let window = bytes
        .get(..bytes.len().min(MAX_CHUNK_LINE_LEN))
        .unwrap_or(bytes);
    let Some(line_end) = window.iter().position(|&byte| byte == b'\n') else {
        return if window.len() >= MAX_CHUNK_LINE_LEN {
            Framing::NotPdu
        } else {
            Framing::NeedMore
        };
    };
    let line_len = line_end + 1;
    match chunk_size(&bytes[..line_len]) {
        None => Framing::NotPdu,
        Some(0) => trailers_end(bytes, line_len),
        Some(_) => Framing::Pdu(line_len),
    }
}

/// The end of the trailer section that starts at `from`: the first empty line.
fn trailers_end(bytes: &[u8], from: usize) -> Framing {
    let mut at = from;
    while let Some(rest) = bytes.get(at..).filter(|rest| !rest.is_empty()) {
        if at - from > MAX_HEAD_LEN {
            return Framing::NotPdu;
        }
        let Some(end) = rest.iter().position(|&byte| byte == b'\n') else {
            return Framing::NeedMore;
        };
        let line = &rest[..end];
        at += end + 1;
        if line.is_empty() || line == b"\r" {
            return Framing::Pdu(at);
        }
    }
    Framing::NeedMore
}

/// The size a chunk-size line announces.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits: Vec<u8> = line
        .iter()
        .copied()
        .take_while(u8::is_ascii_hexdigit)
        .collect();
    if digits.is_empty() || digits.len() > MAX_CHUNK_SIZE_DIGITS {
        return None;
    }
    let rest = &line[digits.len()..];
    if !matches!(rest.first(), Some(b';' | b'\r' | b'\n' | b' ' | b'\t')) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(&digits).ok()?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dissect::endpoints::Announcements;

    #[test]
    fn chunk_lines_frame_the_size_line_and_the_last_chunk_its_trailers() {
        assert_eq!(chunk_frame(b"1a\r\n0123"), Framing::Pdu(4));
        assert_eq!(chunk_frame(b"1A;name=value\r\n"), Framing::Pdu(15));
        assert_eq!(chunk_frame(b"1a"), Framing::NeedMore);
        assert_eq!(chunk_frame(b"0\r\n\r\nGET"), Framing::Pdu(5));
        assert_eq!(chunk_frame(b"0\r\nX-T: 1\r\n\r\n"), Framing::Pdu(13));
        assert_eq!(chunk_frame(b"0\r\nX-T: 1\r\n"), Framing::NeedMore);
        assert_eq!(chunk_frame(b"zz\r\n"), Framing::NotPdu);
        assert_eq!(chunk_frame(b"12345678901234567\r\n"), Framing::NotPdu);
        assert_eq!(chunk_frame(&[b'1'; MAX_CHUNK_LINE_LEN]), Framing::NotPdu);
        assert_eq!(chunk_size(b"ff\r\n"), Some(255));
    }

    #[test]
    fn a_head_is_found_whatever_the_segments() {
        let head = b"GET / HTTP/1.1\r\nHost: dc\r\n\r\nbody";
        for cut in 0..head.len() {
            let session = HttpSession::new(MemoryBudget::new(1 << 20));
            let first = session.head_len(Direction::ToServer, &head[..cut]);
            let found = first.or_else(|| session.head_len(Direction::ToServer, head));
            assert_eq!(found, Some(28), "cut at {cut}");
        }
        let session = HttpSession::new(MemoryBudget::new(1 << 20));
        assert_eq!(
            session.head_len(Direction::ToClient, b"HTTP/1.0 200 OK\n\nx"),
            Some(17)
        );
    }

    /// The NTLM messages of arkime's ntlm_synthetic.pcap HTTP exchange
    /// (parsers/tests/fixtures/ntlm/synthetic_http_*.hex), base64 as in the headers.
    fn token(name: &str) -> String {
        use base64::Engine as _;
        let path = format!(
            "{}/../parsers/tests/fixtures/ntlm/synthetic_http_{name}.hex",
            env!("CARGO_MANIFEST_DIR")
        );
        let hex = std::fs::read_to_string(path).expect("fixture");
        let bytes: Vec<u8> = (0..hex.trim().len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&hex.trim()[at..at + 2], 16).expect("hex"))
            .collect();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    use crate::dissect::{DissectCounters, stream::Duplex};

    struct Connection {
        streams: Duplex<HttpSession>,
        budget: MemoryBudget,
        counters: DissectCounters,
        announced: Announcements,
        out: Vec<Activity>,
    }

    impl Connection {
        fn new() -> Self {
            let budget = MemoryBudget::new(1 << 20);
            Self {
                streams: Duplex::new(HttpSession::new(budget.clone()), &budget),
                budget,
                counters: DissectCounters::default(),
                announced: Announcements::default(),
                out: Vec::new(),
            }
        }

        fn send(&mut self, direction: Direction, bytes: &[u8]) {
            let (client, server) = ("10.0.0.5:50000", "10.0.0.1:5985");
            let (src, dst) = match direction {
                Direction::ToServer => (client, server),
                Direction::ToClient => (server, client),
            };
            let seen = Seen {
                time_ns: 0,
                src: src.parse().expect("address"),
                dst: dst.parse().expect("address"),
                tcp: true,
            };
            let sink = Sink {
                out: &mut self.out,
                counters: &mut self.counters,
                announced: &mut self.announced,
            };
            self.streams
                .data(direction, bytes, &seen, sink, &self.budget);
        }

        /// (type, outcome status) of each activity so far.
        fn outcomes(&self) -> Vec<(String, i32)> {
            self.out
                .iter()
                .map(|activity| {
                    let kind = match &activity.body {
                        Some(dcwatch_proto::v1::activity::Body::Ntlm(ntlm)) => {
                            ntlm.r#type().as_str_name().to_owned()
                        }
                        other => format!("{other:?}"),
                    };
                    (
                        kind,
                        activity
                            .outcome
                            .as_ref()
                            .map_or(0, |outcome| outcome.status),
                    )
                })
                .collect()
        }
    }

    const UNSPECIFIED: i32 = Status::Unspecified as i32;
    const SUCCESS: i32 = Status::Success as i32;
    const FAILURE: i32 = Status::Failure as i32;

    #[test]
    fn an_ntlm_exchange_takes_its_outcomes_from_the_responses() {
        let mut connection = Connection::new();
        let body = vec![b'x'; 100_000];
        connection.send(
            Direction::ToServer,
            format!(
                "POST /wsman HTTP/1.1\r\nAuthorization: NTLM {}\r\nContent-Length: {}\r\n\r\n",
                token("negotiate"),
                body.len()
            )
            .as_bytes(),
        );
        // A large body, in segments: passed over, never buffered.
        for chunk in body.chunks(1460) {
            connection.send(Direction::ToServer, chunk);
        }
        connection.send(
            Direction::ToClient,
            format!(
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: NTLM {}\r\nContent-Length: 0\r\n\r\n",
                token("challenge")
            )
            .as_bytes(),
        );
        let authorization = format!(
            "GET /wsman HTTP/1.1\r\nAuthorization: NTLM {}\r\n\r\n",
            token("v1_authenticate")
        );
        // The second request's head in two-byte segments: searched once, found once.
        for pair in authorization.as_bytes().chunks(2) {
            connection.send(Direction::ToServer, pair);
        }
        connection.send(
            Direction::ToClient,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        );
        connection.send(
            Direction::ToServer,
            format!(
                "GET /again HTTP/1.1\r\nAuthorization: NTLM {}\r\n\r\n",
                token("v1_authenticate")
            )
            .as_bytes(),
        );
        connection.send(
            Direction::ToClient,
            b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n",
        );
        assert_eq!(
            connection.outcomes(),
            [
                ("NEGOTIATE".to_owned(), UNSPECIFIED),
                ("CHALLENGE".to_owned(), 0),
                ("AUTHENTICATE".to_owned(), SUCCESS),
                ("AUTHENTICATE".to_owned(), FAILURE),
            ]
        );
        assert_eq!(connection.counters.parse_errors, 0);
        assert!(
            connection.budget.peak() < 64 * 1024,
            "bodies are not buffered"
        );
    }

    #[test]
    fn a_client_cannot_answer_its_own_authentication() {
        let mut connection = Connection::new();
        connection.send(
            Direction::ToServer,
            format!(
                "GET / HTTP/1.1\r\nAuthorization: NTLM {}\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                token("v1_authenticate")
            )
            .as_bytes(),
        );
        connection.send(
            Direction::ToClient,
            b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n",
        );
        assert_eq!(
            connection.outcomes(),
            [("AUTHENTICATE".to_owned(), FAILURE)]
        );
        assert_eq!(
            connection.counters.parse_errors, 1,
            "the forged status line"
        );
    }

    #[test]
    fn a_response_without_length_runs_to_the_end_and_a_gap_unpairs_requests() {
        let mut connection = Connection::new();
        let request = format!(
            "GET / HTTP/1.1\r\nAuthorization: NTLM {}\r\n\r\n",
            token("v1_authenticate")
        );
        connection.send(Direction::ToServer, request.as_bytes());
        connection.send(
            Direction::ToClient,
            b"HTTP/1.0 200 OK\r\n\r\nHTTP/1.1 401 x\r\n\r\n",
        );
        assert_eq!(
            connection.outcomes(),
            [("AUTHENTICATE".to_owned(), SUCCESS)]
        );
        assert_eq!(
            connection.counters.pdus, 2,
            "the body's look-alike is not a response"
        );

        let mut connection = Connection::new();
        connection.send(Direction::ToServer, request.as_bytes());
        connection.streams.protocol.gap(Direction::ToClient);
        connection.send(
            Direction::ToClient,
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        );
        assert_eq!(connection.outcomes(), [("AUTHENTICATE".to_owned(), 0)]);
        assert_eq!(connection.counters.orphan_responses, 1);
    }
}
