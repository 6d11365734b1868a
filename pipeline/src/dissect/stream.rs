//! Cuts one direction of a reassembled TCP stream into PDUs for a protocol.
//!
//! The common case costs nothing: a segment holding whole PDUs is parsed where it lies. Only the
//! tail of a PDU split across segments is copied, into a buffer charged to the shared memory
//! budget. After a gap, or on a connection picked up mid-stream, the stream hunts for the next
//! byte where the protocol's strict start test passes, and resumes there.

use dcwatch_parsers::framing::{Framing, Start};
use dcwatch_proto::v1::Activity;

use super::{DissectCounters, endpoints::Announcements};
use crate::{
    activity::Seen,
    flow::{Direction, MemoryBudget},
};

/// The longest PDU handed over whole. Longer ones (a search result entry with a large
/// certificate list, say) are handed over cut to this length, flagged, and the rest is skipped:
/// their first bytes say what they were, and buffering megabytes per stream would let one
/// connection take the memory of thousands. 256 KiB of message (the Kerberos parser's own
/// limit) plus room for a record mark or length prefix.
pub const MAX_PDU_LEN: usize = 256 * 1024 + 64;

/// A pending buffer larger than this, and four times larger than what it holds, is shrunk:
/// memory is charged by capacity, and a buffer that once held a large PDU must not keep it.
const SHRINK_ABOVE: usize = 16 * 1024;

/// What a protocol tells the stream about its PDUs, and what it does with them.
pub trait StreamProtocol {
    fn frame(&self, direction: Direction, bytes: &[u8]) -> Framing;
    fn is_pdu_start(&self, direction: Direction, bytes: &[u8]) -> Start;
    /// A whole PDU, or the first [`MAX_PDU_LEN`] bytes of a longer one (`truncated`).
    fn pdu(
        &mut self,
        direction: Direction,
        pdu: &[u8],
        truncated: bool,
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) -> Result<(), Malformed>;
    /// Bytes the stream should pass over after the PDU just handed over (an HTTP body, say):
    /// `u64::MAX` for the rest of the direction.
    fn skip_after(&mut self, _direction: Direction) -> u64 {
        0
    }
    /// Bytes were lost in this direction, or its PDU boundaries were: state that spans PDUs
    /// may no longer hold.
    fn gap(&mut self, _direction: Direction) {}
    /// Nothing more in this direction is this protocol (LDAP after StartTLS, say).
    fn is_done(&self, _direction: Direction) -> bool {
        false
    }
}

/// A PDU its parser rejected: counted, and the stream goes on with the next one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed;

/// Where a protocol puts what it makes of a PDU: activities, and counts of what it gave up.
#[derive(Debug)]
pub struct Sink<'a> {
    pub out: &'a mut Vec<Activity>,
    pub counters: &'a mut DissectCounters,
    /// DCE-RPC endpoints announced by endpoint mappers, learned once the packet is done.
    pub announced: &'a mut Announcements,
}

impl Sink<'_> {
    /// The same sink for a shorter while: what a carrier hands to the protocol it carries.
    pub fn reborrow(&mut self) -> Sink<'_> {
        Sink {
            out: self.out,
            counters: self.counters,
            announced: self.announced,
        }
    }
}

/// A protocol and the PDU streams of its two directions: a TCP connection's, or a named pipe's.
#[derive(Debug)]
pub struct Duplex<P> {
    pub protocol: P,
    to_server: PduStream,
    to_client: PduStream,
}

impl<P: StreamProtocol> Duplex<P> {
    pub fn new(protocol: P, budget: &MemoryBudget) -> Self {
        Self {
            protocol,
            to_server: PduStream::new(budget.clone()),
            to_client: PduStream::new(budget.clone()),
        }
    }

    /// Bytes of one direction, in order.
    pub fn data(
        &mut self,
        direction: Direction,
        bytes: &[u8],
        seen: &Seen,
        sink: Sink<'_>,
        budget: &MemoryBudget,
    ) {
        let (stream, mut feed) = self.feed(direction, seen, sink, budget);
        stream.data(bytes, &mut feed);
    }

    /// Bytes of one direction were lost.
    pub fn gap(
        &mut self,
        direction: Direction,
        seen: &Seen,
        sink: Sink<'_>,
        budget: &MemoryBudget,
    ) {
        let (stream, mut feed) = self.feed(direction, seen, sink, budget);
        stream.gap(&mut feed);
    }

    fn feed<'a>(
        &'a mut self,
        direction: Direction,
        seen: &'a Seen,
        sink: Sink<'a>,
        budget: &'a MemoryBudget,
    ) -> (&'a mut PduStream, Feed<'a, P>) {
        let stream = match direction {
            Direction::ToServer => &mut self.to_server,
            Direction::ToClient => &mut self.to_client,
        };
        let feed = Feed {
            protocol: &mut self.protocol,
            direction,
            seen,
            sink,
            budget,
        };
        (stream, feed)
    }

    /// Whether either direction is still being parsed.
    pub fn follows(&self) -> bool {
        !(self.to_server.is_off() && self.to_client.is_off())
    }

    /// The end: the protocol is handed back, and PDUs cut short by it are counted.
    pub fn finish(self, counters: &mut DissectCounters) -> P {
        for stream in [&self.to_server, &self.to_client] {
            if stream.pending_len() > 0 {
                counters.unfinished_pdus += 1;
            }
        }
        self.protocol
    }
}

/// Everything a stream needs from its flow while it works through some bytes.
#[derive(Debug)]
pub struct Feed<'a, P> {
    pub protocol: &'a mut P,
    pub direction: Direction,
    pub seen: &'a Seen,
    pub sink: Sink<'a>,
    pub budget: &'a MemoryBudget,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At the first byte after a SYN: the first PDU confirms the protocol, or rules it out.
    Start,
    Synced,
    /// Looking for the next PDU start, after a gap or when picked up mid-stream.
    Hunting,
    /// Passing over the rest of an oversized PDU.
    Skipping(u64),
    /// Not this protocol: ignored to the end.
    Off,
}

#[derive(Debug)]
pub struct PduStream {
    state: State,
    /// The start of a PDU whose end has not arrived.
    pending: Vec<u8>,
    /// Bytes of the budget this stream holds (`pending`'s capacity).
    reserved: usize,
    /// The length of the PDU `pending` starts, once its header said so: until that many bytes
    /// are in, new data is only appended, not framed again.
    awaiting: Option<usize>,
    /// Hunting found a start and no PDU has parsed since: a start found by chance must not make
    /// the stream skip the megabytes its "length" announces.
    unconfirmed: bool,
    budget: MemoryBudget,
}

impl PduStream {
    pub fn new(budget: MemoryBudget) -> Self {
        Self {
            state: State::Start,
            pending: Vec::new(),
            reserved: 0,
            awaiting: None,
            unconfirmed: false,
            budget,
        }
    }

    pub fn is_off(&self) -> bool {
        self.state == State::Off
    }

    /// Bytes of a PDU that never completed.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    pub fn data<P: StreamProtocol>(&mut self, bytes: &[u8], feed: &mut Feed<'_, P>) {
        if self.state != State::Off && feed.protocol.is_done(feed.direction) {
            self.state = State::Off;
            self.pending = Vec::new();
            self.awaiting = None;
            self.settle_reservation(feed);
        }
        if self.state == State::Off {
            return;
        }
        if self.pending.is_empty() {
            let used = self.run(bytes, feed);
            self.keep(&bytes[used..], feed);
            return;
        }
        if let Some(len) = self.awaiting.take() {
            // The PDU's length is known: take just enough bytes to complete it, into a buffer
            // sized for it, and leave the rest where it lies.
            let target = len.min(MAX_PDU_LEN);
            let take = target.saturating_sub(self.pending.len()).min(bytes.len());
            self.pending.reserve_exact(take);
            self.pending.extend_from_slice(&bytes[..take]);
            if self.pending.len() < target {
                self.awaiting = Some(len);
                self.settle_reservation(feed);
                return;
            }
            let mut pending = std::mem::take(&mut self.pending);
            let used = self.run(&pending, feed);
            pending.drain(..used);
            self.pending = pending;
            self.settle_reservation(feed);
            if take < bytes.len() {
                self.data(&bytes[take..], feed);
            }
            return;
        }
        let mut pending = std::mem::take(&mut self.pending);
        pending.extend_from_slice(bytes);
        let used = self.run(&pending, feed);
        pending.drain(..used);
        self.pending = pending;
        self.settle_reservation(feed);
    }

    /// Bytes were lost: what was pending can never complete.
    pub fn gap<P: StreamProtocol>(&mut self, feed: &mut Feed<'_, P>) {
        if self.state == State::Off {
            return;
        }
        self.pending.clear();
        self.awaiting = None;
        self.settle_reservation(feed);
        self.state = State::Hunting;
        feed.protocol.gap(feed.direction);
    }

    fn keep<P: StreamProtocol>(&mut self, rest: &[u8], feed: &mut Feed<'_, P>) {
        if rest.is_empty() {
            return;
        }
        self.pending.extend_from_slice(rest);
        self.settle_reservation(feed);
    }

    /// Brings the reservation in line with the pending buffer's capacity; when the budget
    /// refuses, the pending bytes are given up as if lost on the wire.
    fn settle_reservation<P: StreamProtocol>(&mut self, feed: &mut Feed<'_, P>) {
        if self.pending.is_empty() {
            self.pending = Vec::new();
        } else if self.pending.capacity() > SHRINK_ABOVE
            && self.pending.capacity() / 4 > self.pending.len()
        {
            self.pending.shrink_to(self.pending.len().saturating_mul(2));
        }
        let wanted = self.pending.capacity();
        if wanted <= self.reserved {
            self.budget.release(self.reserved - wanted);
            self.reserved = wanted;
            return;
        }
        if self.budget.try_reserve(wanted - self.reserved) {
            self.reserved = wanted;
            return;
        }
        feed.sink.counters.pdu_budget_drops += 1;
        self.budget.release(self.reserved);
        self.reserved = 0;
        self.pending = Vec::new();
        self.awaiting = None;
        self.state = State::Hunting;
        feed.protocol.gap(feed.direction);
    }

    /// Hands over every PDU complete in `bytes`; returns how many bytes it is done with.
    fn run<P: StreamProtocol>(&mut self, bytes: &[u8], feed: &mut Feed<'_, P>) -> usize {
        let mut at = 0;
        while let Some(rest) = bytes.get(at..).filter(|rest| !rest.is_empty()) {
            match self.state {
                State::Off => return bytes.len(),
                State::Skipping(left) => {
                    let step = usize::try_from(left).unwrap_or(usize::MAX).min(rest.len());
                    feed.sink.counters.skipped_bytes += step as u64;
                    at += step;
                    let left = left - step as u64;
                    self.state = if left == 0 {
                        State::Synced
                    } else {
                        State::Skipping(left)
                    };
                }
                State::Hunting => match hunt(feed, rest) {
                    Hunt::Found(offset) => {
                        feed.sink.counters.skipped_bytes += offset as u64;
                        self.unconfirmed = true;
                        at += offset;
                        feed.sink.counters.resyncs += 1;
                        self.state = State::Synced;
                    }
                    Hunt::NeedMore(offset) => {
                        feed.sink.counters.skipped_bytes += offset as u64;
                        return at + offset;
                    }
                    Hunt::NotFound => {
                        feed.sink.counters.skipped_bytes += rest.len() as u64;
                        return bytes.len();
                    }
                },
                State::Start | State::Synced => match feed.protocol.frame(feed.direction, rest) {
                    Framing::Pdu(len) if len > 0 && len <= MAX_PDU_LEN && len <= rest.len() => {
                        let parsed = hand_over(feed, &rest[..len], false);
                        self.unconfirmed &= !parsed;
                        at += len;
                        self.state = skip_after(feed, 0);
                    }
                    Framing::Pdu(len) if len > MAX_PDU_LEN => {
                        if rest.len() < MAX_PDU_LEN {
                            self.awaiting = Some(len);
                            return at;
                        }
                        feed.sink.counters.oversized_pdus += 1;
                        let parsed = hand_over(feed, &rest[..MAX_PDU_LEN], true);
                        at += MAX_PDU_LEN;
                        self.state = if self.unconfirmed && !parsed {
                            State::Hunting
                        } else {
                            skip_after(feed, (len - MAX_PDU_LEN) as u64)
                        };
                        self.unconfirmed &= !parsed;
                    }
                    Framing::Pdu(len) if len > 0 => {
                        self.awaiting = Some(len);
                        return at;
                    }
                    Framing::NeedMore if rest.len() < MAX_PDU_LEN => return at,
                    Framing::Pdu(_) | Framing::NeedMore | Framing::NotPdu => {
                        if self.state == State::Start {
                            feed.sink.counters.not_protocol_streams += 1;
                            self.state = State::Off;
                            return bytes.len();
                        }
                        feed.sink.counters.desyncs += 1;
                        self.state = State::Hunting;
                        feed.protocol.gap(feed.direction);
                        at += 1;
                    }
                },
            }
        }
        at
    }
}

impl Drop for PduStream {
    fn drop(&mut self) {
        self.budget.release(self.reserved);
    }
}

/// Hands a PDU to the protocol, counting it, and its rejection; whether it parsed.
fn hand_over<P: StreamProtocol>(feed: &mut Feed<'_, P>, pdu: &[u8], truncated: bool) -> bool {
    feed.sink.counters.pdus += 1;
    let parsed = feed
        .protocol
        .pdu(feed.direction, pdu, truncated, feed.seen, &mut feed.sink)
        .is_ok();
    if !parsed {
        feed.sink.counters.parse_errors += 1;
    }
    parsed
}

/// Where the stream stands after a PDU: synced, or passing over what is left of it (`unread`)
/// and what the protocol says follows it.
fn skip_after<P: StreamProtocol>(feed: &mut Feed<'_, P>, unread: u64) -> State {
    match unread.saturating_add(feed.protocol.skip_after(feed.direction)) {
        0 => State::Synced,
        bytes => State::Skipping(bytes),
    }
}

enum Hunt {
    Found(usize),
    /// Too few bytes from here on to tell: keep them.
    NeedMore(usize),
    NotFound,
}

fn hunt<P: StreamProtocol>(feed: &Feed<'_, P>, bytes: &[u8]) -> Hunt {
    for offset in 0..bytes.len() {
        match feed.protocol.is_pdu_start(feed.direction, &bytes[offset..]) {
            Start::Yes => return Hunt::Found(offset),
            Start::NeedMore => return Hunt::NeedMore(offset),
            Start::No => {}
        }
    }
    Hunt::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy protocol: `AB`, a 4-byte big-endian length of what follows, then that many bytes.
    /// A payload holding `FF` is malformed.
    #[derive(Debug, Default)]
    struct Toy {
        pdus: Vec<(Vec<u8>, bool)>,
        gaps: usize,
    }

    const MAGIC: u8 = 0xab;
    const HEADER: usize = 5;

    impl StreamProtocol for Toy {
        fn frame(&self, _: Direction, bytes: &[u8]) -> Framing {
            match bytes {
                [MAGIC, a, b, c, d, ..] => {
                    Framing::Pdu(HEADER + u32::from_be_bytes([*a, *b, *c, *d]) as usize)
                }
                [MAGIC, ..] | [] => Framing::NeedMore,
                _ => Framing::NotPdu,
            }
        }

        fn is_pdu_start(&self, _: Direction, bytes: &[u8]) -> Start {
            match bytes {
                [MAGIC, 0, 0, _, _, ..] => Start::Yes,
                [MAGIC] | [MAGIC, 0] | [MAGIC, 0, 0] | [MAGIC, 0, 0, _] => Start::NeedMore,
                _ => Start::No,
            }
        }

        fn pdu(
            &mut self,
            _: Direction,
            pdu: &[u8],
            truncated: bool,
            _: &Seen,
            _: &mut Sink<'_>,
        ) -> Result<(), Malformed> {
            self.pdus.push((pdu[HEADER..].to_vec(), truncated));
            if pdu[HEADER..].contains(&0xff) {
                return Err(Malformed);
            }
            Ok(())
        }

        fn gap(&mut self, _: Direction) {
            self.gaps += 1;
        }
    }

    fn pdu(payload: &[u8]) -> Vec<u8> {
        let mut bytes = vec![MAGIC];
        bytes.extend_from_slice(&u32::try_from(payload.len()).expect("small").to_be_bytes());
        bytes.extend_from_slice(payload);
        bytes
    }

    struct Harness {
        toy: Toy,
        stream: PduStream,
        budget: MemoryBudget,
        counters: DissectCounters,
        announced: Announcements,
        out: Vec<Activity>,
    }

    impl Harness {
        fn new(budget_bytes: usize) -> Self {
            let budget = MemoryBudget::new(budget_bytes);
            Self {
                toy: Toy::default(),
                stream: PduStream::new(budget.clone()),
                budget,
                counters: DissectCounters::default(),
                announced: Announcements::default(),
                out: Vec::new(),
            }
        }

        fn feed(&mut self, bytes: &[u8]) {
            self.with_feed(|stream, feed| stream.data(bytes, feed));
        }

        fn gap(&mut self) {
            self.with_feed(PduStream::gap);
        }

        fn with_feed(&mut self, work: impl FnOnce(&mut PduStream, &mut Feed<'_, Toy>)) {
            let seen = Seen {
                time_ns: 0,
                src: "10.0.0.1:1".parse().expect("address"),
                dst: "10.0.0.2:2".parse().expect("address"),
                tcp: true,
            };
            let mut feed = Feed {
                protocol: &mut self.toy,
                direction: Direction::ToServer,
                seen: &seen,
                sink: Sink {
                    out: &mut self.out,
                    counters: &mut self.counters,
                    announced: &mut self.announced,
                },
                budget: &self.budget,
            };
            work(&mut self.stream, &mut feed);
        }

        fn payloads(&self) -> Vec<Vec<u8>> {
            self.toy
                .pdus
                .iter()
                .map(|(payload, _)| payload.clone())
                .collect()
        }
    }

    #[test]
    fn whole_pdus_are_parsed_in_place() {
        let mut harness = Harness::new(1 << 20);
        harness.feed(&[pdu(b"one"), pdu(b"two")].concat());
        assert_eq!(harness.payloads(), [b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(harness.budget.peak(), 0, "nothing was buffered");
        assert_eq!(harness.counters.pdus, 2);
    }

    #[test]
    fn pdus_split_anywhere_come_out_the_same() {
        let stream = [pdu(b"first"), pdu(b""), pdu(b"third one")].concat();
        for first_cut in 0..stream.len() {
            for second_cut in first_cut..stream.len() {
                let mut harness = Harness::new(1 << 20);
                harness.feed(&stream[..first_cut]);
                harness.feed(&stream[first_cut..second_cut]);
                harness.feed(&stream[second_cut..]);
                assert_eq!(
                    harness.payloads(),
                    [b"first".to_vec(), Vec::new(), b"third one".to_vec()],
                    "cut at {first_cut} and {second_cut}"
                );
                assert_eq!(harness.budget.in_use(), 0);
            }
        }
    }

    #[test]
    fn after_a_gap_the_stream_resumes_at_the_next_pdu() {
        let mut harness = Harness::new(1 << 20);
        let second = pdu(b"second");
        harness.feed(&pdu(b"first")[..4]);
        harness.gap();
        // The tail of a PDU whose start was lost, then a whole one.
        harness.feed(&[b"lost tail".as_slice(), &second].concat());
        assert_eq!(harness.payloads(), [b"second".to_vec()]);
        assert_eq!(harness.toy.gaps, 1);
        assert_eq!(harness.counters.resyncs, 1);
        assert_eq!(harness.budget.in_use(), 0, "the partial PDU was released");
    }

    #[test]
    fn a_stream_that_does_not_start_with_the_protocol_is_ignored() {
        let mut harness = Harness::new(1 << 20);
        harness.feed(b"GET / HTTP/1.1\r\n\r\n");
        harness.feed(&pdu(b"later"));
        assert!(harness.stream.is_off());
        assert!(harness.payloads().is_empty());
        assert_eq!(harness.counters.not_protocol_streams, 1);
    }

    #[test]
    fn junk_between_pdus_is_a_desync_then_a_resync() {
        let mut harness = Harness::new(1 << 20);
        harness.feed(&[pdu(b"a"), b"\x01\x02junk".to_vec(), pdu(b"b")].concat());
        assert_eq!(harness.payloads(), [b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(harness.counters.desyncs, 1);
        assert_eq!(harness.counters.resyncs, 1);
    }

    #[test]
    fn an_oversized_pdu_is_handed_over_cut_and_the_rest_skipped() {
        let mut harness = Harness::new(1 << 20);
        let big = pdu(&vec![7; MAX_PDU_LEN + 1000]);
        for chunk in big.chunks(1460) {
            harness.feed(chunk);
        }
        harness.feed(&pdu(b"next"));
        assert_eq!(harness.toy.pdus.len(), 2);
        let (head, truncated) = &harness.toy.pdus[0];
        assert!(truncated);
        assert_eq!(head.len(), MAX_PDU_LEN - HEADER);
        assert_eq!(harness.toy.pdus[1], (b"next".to_vec(), false));
        assert_eq!(harness.counters.oversized_pdus, 1);
        assert!(harness.budget.peak() <= MAX_PDU_LEN + 1460);
        assert_eq!(harness.budget.in_use(), 0);
    }

    #[test]
    fn a_refused_budget_gives_up_the_partial_pdu() {
        let mut harness = Harness::new(64);
        let big = pdu(&[1; 200]);
        harness.feed(&big[..100]);
        assert_eq!(harness.counters.pdu_budget_drops, 1);
        assert_eq!(harness.toy.gaps, 1);
        assert_eq!(harness.budget.in_use(), 0);
        harness.feed(&big[100..]);
        harness.feed(&pdu(b"fits"));
        assert_eq!(harness.payloads(), [b"fits".to_vec()]);
    }

    #[test]
    fn malformed_pdus_are_counted_and_the_stream_goes_on() {
        let mut harness = Harness::new(1 << 20);
        harness.feed(&[pdu(&[0xff]), pdu(b"ok")].concat());
        assert_eq!(harness.counters.parse_errors, 1);
        assert_eq!(harness.payloads().len(), 2);
    }

    #[test]
    fn dropping_a_stream_returns_its_memory() {
        let budget = MemoryBudget::new(1 << 20);
        let mut harness = Harness::new(1 << 20);
        harness.budget = budget.clone();
        harness.stream = PduStream::new(budget.clone());
        harness.feed(&pdu(b"incomplete")[..7]);
        assert!(budget.in_use() >= 7, "charged by capacity");
        drop(harness);
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn a_start_found_by_chance_does_not_skip_what_its_length_announces() {
        let mut harness = Harness::new(1 << 20);
        harness.feed(&pdu(b"first"));
        harness.gap();
        // Junk that looks like a start announcing 16 MiB, whose payload does not parse (FF),
        // then real PDUs.
        let mut junk = vec![MAGIC, 0, 0, 0xff, 0xff];
        junk.extend(vec![0xff; MAX_PDU_LEN]);
        harness.feed(&junk);
        harness.feed(&pdu(b"second"));
        assert_eq!(
            harness.payloads().last().map(Vec::as_slice),
            Some(b"second".as_slice())
        );
        assert_eq!(harness.counters.parse_errors, 1);
    }
}
