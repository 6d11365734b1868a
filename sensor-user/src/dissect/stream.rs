//! Cuts one direction of a reassembled TCP stream into PDUs for a protocol.
//!
//! The common case costs nothing: a segment holding whole PDUs is parsed where it lies. Only the
//! tail of a PDU split across segments is copied, into a buffer charged to the shared memory
//! budget. After a gap, or on a connection picked up mid-stream, the stream hunts for the next
//! byte where the protocol's strict start test passes, and resumes there.

use dcwatch_parsers::framing::{Framing, Start};
use dcwatch_proto::v1::Activity;

use super::DissectCounters;
use crate::{
    activity::Seen,
    flow::{Direction, MemoryBudget},
};

/// The longest PDU handed over whole. Longer ones (a search result entry with a large
/// certificate list, say) are handed over cut to this length, flagged, and the rest is skipped:
/// their first bytes say what they were, and buffering megabytes per stream would let one
/// connection take the memory of thousands.
pub const MAX_PDU_LEN: usize = 256 * 1024;

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
        out: &mut Vec<Activity>,
    ) -> Result<(), Malformed>;
    /// Bytes were lost in this direction: state that spans PDUs may no longer hold.
    fn gap(&mut self, _direction: Direction) {}
}

/// A PDU its parser rejected: counted, and the stream goes on with the next one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed;

/// Everything a stream needs from its flow while it works through some bytes.
#[derive(Debug)]
pub struct Feed<'a, P> {
    pub protocol: &'a mut P,
    pub direction: Direction,
    pub seen: &'a Seen,
    pub out: &'a mut Vec<Activity>,
    pub budget: &'a MemoryBudget,
    pub counters: &'a mut DissectCounters,
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
    /// Bytes of the budget this stream holds (`pending`'s length).
    reserved: usize,
    budget: MemoryBudget,
}

impl PduStream {
    pub fn new(budget: MemoryBudget) -> Self {
        Self {
            state: State::Start,
            pending: Vec::new(),
            reserved: 0,
            budget,
        }
    }

    pub fn is_off(&self) -> bool {
        self.state == State::Off
    }

    pub fn data<P: StreamProtocol>(&mut self, bytes: &[u8], feed: &mut Feed<'_, P>) {
        if self.state == State::Off {
            return;
        }
        if self.pending.is_empty() {
            let used = self.run(bytes, feed);
            self.keep(&bytes[used..], feed);
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

    /// Brings the reservation in line with what is pending; when the budget refuses, the
    /// pending bytes are given up as if lost on the wire.
    fn settle_reservation<P: StreamProtocol>(&mut self, feed: &mut Feed<'_, P>) {
        let wanted = self.pending.len();
        if wanted <= self.reserved {
            self.budget.release(self.reserved - wanted);
            self.reserved = wanted;
            if self.pending.is_empty() && self.pending.capacity() > MAX_PDU_LEN / 16 {
                self.pending = Vec::new();
            }
            return;
        }
        if self.budget.try_reserve(wanted - self.reserved) {
            self.reserved = wanted;
            return;
        }
        feed.counters.pdu_budget_drops += 1;
        self.budget.release(self.reserved);
        self.reserved = 0;
        self.pending = Vec::new();
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
                        at += offset;
                        feed.counters.resyncs += 1;
                        self.state = State::Synced;
                    }
                    Hunt::NeedMore(offset) => return at + offset,
                    Hunt::NotFound => return bytes.len(),
                },
                State::Start | State::Synced => match feed.protocol.frame(feed.direction, rest) {
                    Framing::Pdu(len) if len > 0 && len <= MAX_PDU_LEN && len <= rest.len() => {
                        feed.counters.pdus += 1;
                        if feed
                            .protocol
                            .pdu(feed.direction, &rest[..len], false, feed.seen, feed.out)
                            .is_err()
                        {
                            feed.counters.parse_errors += 1;
                        }
                        at += len;
                        self.state = State::Synced;
                    }
                    Framing::Pdu(len) if len > MAX_PDU_LEN => {
                        if rest.len() < MAX_PDU_LEN {
                            return at;
                        }
                        feed.counters.pdus += 1;
                        feed.counters.oversized_pdus += 1;
                        if feed
                            .protocol
                            .pdu(
                                feed.direction,
                                &rest[..MAX_PDU_LEN],
                                true,
                                feed.seen,
                                feed.out,
                            )
                            .is_err()
                        {
                            feed.counters.parse_errors += 1;
                        }
                        at += MAX_PDU_LEN;
                        self.state = State::Skipping((len - MAX_PDU_LEN) as u64);
                    }
                    Framing::Pdu(len) if len > 0 => return at,
                    Framing::NeedMore if rest.len() < MAX_PDU_LEN => return at,
                    Framing::Pdu(_) | Framing::NeedMore | Framing::NotPdu => {
                        if self.state == State::Start {
                            feed.counters.not_protocol_streams += 1;
                            self.state = State::Off;
                            return bytes.len();
                        }
                        feed.counters.desyncs += 1;
                        self.state = State::Hunting;
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
