//! Connection-oriented DCE-RPC found by its content on a TCP flow no port names: a connection
//! to an endpoint whose endpoint-mapper exchange the sensor did not see (it started after,
//! the capture begins mid-way, the client cached the endpoint).
//!
//! The flow's first bytes in each direction are held (bounded) and cut into PDUs with a strict
//! header test: version 5.0 or 5.1, a connection-oriented PTYPE, a defined drep with ASCII and
//! IEEE, no undefined flag, a frag_length that fits the type's fixed body and its auth
//! verifier. Two PDUs passing it, in either direction, confirm the flow (one passing header
//! could be chance); a PDU failing it after one passed, a gap after bytes were held, or too
//! many bytes or segments without two passing end the probe. On a flow picked up mid-stream,
//! bytes of a direction before its first passing header are passed over: the rest of a PDU
//! whose start was not captured. A confirmed flow is dissected as on a learned port from its first
//! held byte, so mid-stream requests are reported too.

use dcwatch_parsers::{
    dcerpc::{self, PacketType},
    framing::Start,
};

use crate::flow::{Direction, MemoryBudget};

/// Bytes held per flow while it is probed: a bind with a Kerberos token and its ack fit.
pub(super) const MAX_PROBE_BYTES: usize = 16 * 1024;

/// Data events per direction looked at before the flow is given up.
pub(super) const MAX_PROBE_SEGMENTS: u8 = 4;

/// PDUs passing the strict test that confirm a flow.
const CONFIRMING_PDUS: usize = 2;

/// What the probe makes of a flow so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    Undecided,
    NotRpc,
    /// DCE-RPC; `flipped` when the flow table took the server for the client (the first PDU
    /// seen is a server's, sent by what the table calls the client).
    Rpc {
        flipped: bool,
    },
}

#[derive(Debug)]
pub(super) struct Probe {
    /// The held bytes, in arrival order.
    held: Vec<(Direction, Vec<u8>)>,
    held_len: usize,
    /// Bytes of each direction already cut into passing PDUs.
    cut: [usize; 2],
    segments: [u8; 2],
    /// A direction whose first bytes were lost (a flow picked up mid-stream).
    midstream: [bool; 2],
    pdus: usize,
    /// Whether the first passing PDU was sent by the flow's client side.
    first_from: Option<(Direction, PacketType)>,
    budget: MemoryBudget,
    charge: usize,
}

fn index(direction: Direction) -> usize {
    match direction {
        Direction::ToServer => 0,
        Direction::ToClient => 1,
    }
}

/// A PDU type only a client sends (request, bind, alter context, auth3, cancel, orphaned).
fn from_client(kind: PacketType) -> bool {
    matches!(
        kind,
        PacketType::REQUEST
            | PacketType::BIND
            | PacketType::ALTER_CONTEXT
            | PacketType::AUTH3
            | PacketType::CO_CANCEL
            | PacketType::ORPHANED
    )
}

impl Probe {
    pub(super) fn new(budget: MemoryBudget) -> Self {
        Self {
            held: Vec::new(),
            held_len: 0,
            cut: [0; 2],
            segments: [0; 2],
            midstream: [false; 2],
            pdus: 0,
            first_from: None,
            budget,
            charge: 0,
        }
    }

    /// Bytes of one direction, in order.
    pub(super) fn data(&mut self, direction: Direction, bytes: &[u8]) -> Verdict {
        let side = index(direction);
        self.segments[side] = self.segments[side].saturating_add(1);
        if self.segments[side] > MAX_PROBE_SEGMENTS {
            return Verdict::NotRpc;
        }
        // Before a PDU starts in this direction, bytes that do not begin one are, on a flow
        // picked up mid-stream, the rest of a PDU whose start the capture missed: passed over.
        // On a flow seen from its start they are another protocol.
        if self.cut[side] == 0
            && !self.held.iter().any(|(held, _)| *held == direction)
            && dcerpc::is_pdu_start(bytes) == Start::No
        {
            return if self.midstream[side] {
                Verdict::Undecided
            } else {
                Verdict::NotRpc
            };
        }
        if self.held_len + bytes.len() > MAX_PROBE_BYTES || !self.budget.try_reserve(bytes.len()) {
            return Verdict::NotRpc;
        }
        self.charge += bytes.len();
        self.held_len += bytes.len();
        self.held.push((direction, bytes.to_vec()));
        let stream: Vec<u8> = self
            .held
            .iter()
            .filter(|(held, _)| *held == direction)
            .flat_map(|(_, bytes)| bytes.iter().copied())
            .collect();
        while let Some(rest) = stream.get(self.cut[side]..).filter(|rest| !rest.is_empty()) {
            match dcerpc::is_pdu_start(rest) {
                Start::Yes => {}
                Start::NeedMore => break,
                Start::No => return Verdict::NotRpc,
            }
            let Ok(header) = dcerpc::header(rest) else {
                return Verdict::NotRpc;
            };
            if header.minor_version > 1 {
                return Verdict::NotRpc;
            }
            self.first_from
                .get_or_insert((direction, header.packet_type));
            self.pdus += 1;
            self.cut[side] += usize::from(header.frag_length);
            if self.pdus >= CONFIRMING_PDUS {
                return self.confirmed();
            }
        }
        Verdict::Undecided
    }

    /// Bytes of one direction were lost: before any arrived (a flow picked up mid-stream), the
    /// probe starts at the next; after, the held bytes no longer make a stream.
    pub(super) fn gap(&mut self, direction: Direction) -> Verdict {
        if self.held.iter().any(|(held, _)| *held == direction) {
            Verdict::NotRpc
        } else {
            self.midstream[index(direction)] = true;
            Verdict::Undecided
        }
    }

    fn confirmed(&self) -> Verdict {
        let flipped = self.first_from.is_some_and(|(direction, kind)| {
            (direction == Direction::ToServer) != from_client(kind)
        });
        Verdict::Rpc { flipped }
    }

    /// The held bytes, in arrival order, to be dissected; the budget they held is given back.
    pub(super) fn take_held(&mut self) -> Vec<(Direction, Vec<u8>)> {
        self.budget.release(std::mem::take(&mut self.charge));
        self.held_len = 0;
        std::mem::take(&mut self.held)
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.budget.release(self.charge);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PDU header of `kind`, little-endian, `frag` bytes long with zeros after the header.
    fn pdu(kind: u8, frag: u16) -> Vec<u8> {
        let mut bytes = vec![5, 0, kind, 3, 0x10, 0, 0, 0];
        bytes.extend(frag.to_le_bytes());
        bytes.extend([0, 0, 1, 0, 0, 0]);
        bytes.resize(usize::from(frag), 0);
        bytes
    }

    #[test]
    fn two_pdus_confirm_and_one_does_not() {
        let mut probe = Probe::new(MemoryBudget::new(1 << 20));
        // A REQUEST (24 + 8 of stub) seen first from the table's client side.
        assert_eq!(
            probe.data(Direction::ToServer, &pdu(0, 32)),
            Verdict::Undecided
        );
        assert_eq!(
            probe.data(Direction::ToClient, &pdu(2, 32)),
            Verdict::Rpc { flipped: false }
        );
        assert_eq!(probe.take_held().len(), 2);
    }

    #[test]
    fn a_response_first_from_the_client_side_flips_the_flow() {
        let mut probe = Probe::new(MemoryBudget::new(1 << 20));
        let mut two = pdu(2, 32);
        two.extend(pdu(2, 32));
        assert_eq!(
            probe.data(Direction::ToServer, &two),
            Verdict::Rpc { flipped: true }
        );
    }

    #[test]
    fn other_protocols_are_refused() {
        let budget = MemoryBudget::new(1 << 20);
        for first in [
            b"GET / HTTP/1.1\r\nHost: dc\r\n\r\n".to_vec(),
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
            b"SSH-2.0-OpenSSH_9.6\r\n".to_vec(),
            // Version 5.0 but a connectionless type (ping, 1).
            pdu(1, 32),
            // A frag_length shorter than a request's fixed body.
            pdu(0, 20),
        ] {
            let mut probe = Probe::new(budget.clone());
            assert_eq!(probe.data(Direction::ToServer, &first), Verdict::NotRpc);
            // Picked up mid-stream, it is given up after a few segments.
            let mut probe = Probe::new(budget.clone());
            assert_eq!(probe.gap(Direction::ToServer), Verdict::Undecided);
            for _ in 0..MAX_PROBE_SEGMENTS {
                assert_eq!(probe.data(Direction::ToServer, &first), Verdict::Undecided);
            }
            assert_eq!(probe.data(Direction::ToServer, &first), Verdict::NotRpc);
            assert_eq!(budget.in_use(), 0, "nothing held");
        }
        // A header followed by something else is refused when the something else arrives.
        let mut probe = Probe::new(budget.clone());
        let mut bytes = pdu(11, 72);
        bytes.extend(b"GET / HTTP/1.1\r\n");
        assert_eq!(probe.data(Direction::ToServer, &bytes), Verdict::NotRpc);
        drop(probe);
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn the_rest_of_a_pdu_whose_start_was_missed_is_passed_over() {
        let mut probe = Probe::new(MemoryBudget::new(1 << 20));
        assert_eq!(probe.gap(Direction::ToServer), Verdict::Undecided);
        assert_eq!(
            probe.data(Direction::ToServer, &[0x38, 0x9b, 0x2b, 0x26]),
            Verdict::Undecided
        );
        assert_eq!(
            probe.data(Direction::ToClient, &pdu(12, 60)),
            Verdict::Undecided
        );
        assert_eq!(
            probe.data(Direction::ToServer, &pdu(14, 72)),
            Verdict::Rpc { flipped: false }
        );
        assert_eq!(
            probe.take_held().len(),
            2,
            "the passed-over bytes are not held"
        );
    }

    #[test]
    fn a_probe_is_bounded() {
        let mut probe = Probe::new(MemoryBudget::new(1 << 20));
        let big = pdu(0, 8000);
        // A PDU cut in many segments: each looked at, none confirming.
        for part in big.chunks(2000) {
            assert_eq!(probe.data(Direction::ToServer, part), Verdict::Undecided);
        }
        assert_eq!(probe.data(Direction::ToServer, &[5]), Verdict::NotRpc);
        let mut probe = Probe::new(MemoryBudget::new(1 << 20));
        let frag = u16::try_from(MAX_PROBE_BYTES + 1).expect("fits");
        assert_eq!(
            probe.data(Direction::ToServer, &pdu(0, frag)),
            Verdict::NotRpc
        );
    }
}
