//! Flow tracking and reassembly: TCP segments in, per-flow, per-direction byte streams out
//! ([`FlowTable`]); IP fragments in, whole IP payloads out ([`FragmentTable`]).
//!
//! The traffic comes from a mirror port or a capture file, so it is a copy of what the hosts
//! saw, not what they accepted: packets can be missing (lost by the mirror or the ring), duplicated,
//! reordered, and the capture can start in the middle of a connection. Reassembly therefore never
//! waits for a retransmission that may never come: a hole in a stream is reported as a
//! [`StreamEvent::Gap`] as soon as the receiver's ACK shows it got bytes the capture lost, or when
//! holding on would exceed a memory cap, and the parsers resynchronise after it.
//!
//! Memory: the number of flows and fragment datagrams is capped, and every byte held out of order
//! is charged to a [`MemoryBudget`] shared with the caller; a refusal makes reassembly give up a
//! hole (TCP) or a datagram (IP), never grow.

pub mod budget;
pub mod ipfrag;
pub mod table;
mod tcp;

use std::net::SocketAddr;

pub use budget::MemoryBudget;
pub use ipfrag::{FragmentCounters, FragmentKey, FragmentLimits, FragmentTable};
pub use table::FlowTable;

/// Bytes charged for each out-of-order segment held, on top of its payload: the map entry, the
/// `Vec` header and the allocator's rounding. Without it a flood of 1-byte segments would hold
/// several times the memory the caps say.
pub const SEGMENT_OVERHEAD: usize = 64;

/// How far ahead of the next expected byte a segment may start and still be taken into account
/// (and how far an ACK may acknowledge): 2^30 bytes, the largest window TCP can advertise
/// (65535 << 14, RFC 7323 2.3). Anything further is not part of this connection's window: a
/// forged segment there would otherwise make the stream skip ahead once the caps give up holes.
pub const MAX_SEQ_AHEAD: u64 = 1 << 30;

/// The TCP flags byte (byte 13 of the header, RFC 9293 3.1), as an open newtype: the caller can
/// pass the wire byte unchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No more data from the sender.
    pub const FIN: Self = Self(0x01);
    /// Synchronise sequence numbers.
    pub const SYN: Self = Self(0x02);
    /// Reset the connection.
    pub const RST: Self = Self(0x04);
    /// Push function.
    pub const PSH: Self = Self(0x08);
    /// The acknowledgment field is significant.
    pub const ACK: Self = Self(0x10);
    /// Urgent pointer field is significant.
    pub const URG: Self = Self(0x20);

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Both sets of flags.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// FIN is set.
    pub const fn fin(self) -> bool {
        self.contains(Self::FIN)
    }

    /// SYN is set.
    pub const fn syn(self) -> bool {
        self.contains(Self::SYN)
    }

    /// RST is set.
    pub const fn rst(self) -> bool {
        self.contains(Self::RST)
    }

    /// ACK is set.
    pub const fn ack(self) -> bool {
        self.contains(Self::ACK)
    }
}

impl std::ops::BitOr for TcpFlags {
    type Output = Self;

    fn bitor(self, other: Self) -> Self {
        self.union(other)
    }
}

/// One TCP segment as decoded from a frame: addresses, sequence space, flags, payload.
#[derive(Clone, Copy, Debug)]
pub struct TcpSegment<'a> {
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// Sequence number of the first byte (of the SYN when SYN is set).
    pub seq: u32,
    /// Acknowledgment number (meaningful when `flags` has ACK).
    pub ack: u32,
    /// The flags byte.
    pub flags: TcpFlags,
    /// The segment's data.
    pub payload: &'a [u8],
}

/// A connection, named by its endpoints: which one is the client is decided when the flow is
/// created (see [`FlowTable::segment`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// The endpoint that opened the connection (or is taken to have).
    pub client: SocketAddr,
    /// The endpoint that accepted it.
    pub server: SocketAddr,
}

/// Which way the bytes of an event flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client to server.
    ToServer,
    /// Server to client.
    ToClient,
}

impl Direction {
    /// The other direction.
    pub const fn reverse(self) -> Self {
        match self {
            Self::ToServer => Self::ToClient,
            Self::ToClient => Self::ToServer,
        }
    }

    pub const fn index(self) -> usize {
        match self {
            Self::ToServer => 0,
            Self::ToClient => 1,
        }
    }
}

/// What one direction of a flow delivers, in stream order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamEvent<'a> {
    /// The next bytes of the stream.
    Data(&'a [u8]),
    /// Bytes the capture does not have: the parser must resynchronise. `bytes` is the size of
    /// the hole when known, 0 when not (the first event of a stream picked up mid-connection).
    Gap {
        /// Size of the hole, 0 if unknown.
        bytes: u64,
    },
    /// FIN or RST seen and all data before it delivered (after gaps for what was missing).
    /// Nothing more comes in this direction.
    Closed,
}

/// Why a flow's state is handed back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// Both directions finished with FIN.
    Finished,
    /// A RST was seen.
    Reset,
    /// Nothing seen for longer than [`FlowLimits::idle_timeout_ns`].
    IdleTimeout,
    /// Pushed out by a new flow when the table was full ([`FlowLimits::max_flows`]).
    Evicted,
    /// A new connection (SYN with another initial sequence number) reuses the endpoints of a
    /// flow that never finished: the old one is closed and a new one opened.
    Reused,
    /// [`FlowTable::drain`]: end of input.
    EndOfInput,
    /// The handler no longer wants the flow's data ([`FlowHandler::follows`]): its state is
    /// handed back and what it held is dropped; the flow stays in the table, not followed, so
    /// its remaining segments cost a lookup and nothing else.
    Unfollowed,
}

/// The caller's side of a [`FlowTable`]: creates per-flow state, consumes stream events, takes
/// the state back when the flow ends.
pub trait FlowHandler {
    /// Per-flow state (a parser's context, typically).
    type State;

    /// A new flow: `None` means "not interested": the table remembers that (so `open` is not
    /// called again for the flow's next segments) and holds no data for it.
    fn open(&mut self, key: &FlowKey) -> Option<Self::State>;

    /// The next event of one direction of the flow, in stream order.
    fn event(
        &mut self,
        state: &mut Self::State,
        key: &FlowKey,
        direction: Direction,
        event: StreamEvent<'_>,
    );

    /// The flow is over: all its events have been delivered.
    fn close(&mut self, state: Self::State, key: &FlowKey, reason: CloseReason);

    /// Whether the flow's data is still wanted, asked after each segment: `false` stops the
    /// reassembly of a flow the caller has given up on (not its protocol, encrypted from here).
    fn follows(&self, _state: &Self::State) -> bool {
        true
    }
}

/// Limits of a [`FlowTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowLimits {
    /// Flows tracked at once; when full, the least recently active flow is evicted.
    pub max_flows: usize,
    /// A flow with no segment for longer than this is closed by [`FlowTable::expire`].
    pub idle_timeout_ns: u64,
    /// Out-of-order bytes (plus [`SEGMENT_OVERHEAD`] per segment) held per direction before the
    /// oldest hole is given up.
    pub max_buffered_per_direction: usize,
    /// Out-of-order bytes (same accounting) the table holds across all flows: its own share of
    /// the [`MemoryBudget`], which may also be charged by the caller.
    pub max_buffered_total: usize,
}

/// Default [`FlowLimits::max_flows`]: 2^17. A busy domain controller has tens of thousands of
/// concurrent connections (LDAP, SMB, RPC from every member); a flow costs a few hundred bytes
/// plus the caller's state, so this is tens of MiB at most.
pub const DEFAULT_MAX_FLOWS: usize = 1 << 17;
/// Default [`FlowLimits::idle_timeout_ns`]: 5 minutes. Request/response protocols (Kerberos,
/// DNS, HTTP) are long done by then; flows whose FIN/RST was not captured stop holding a slot;
/// a long-lived session that resumes after it is picked up again mid-stream.
pub const DEFAULT_IDLE_TIMEOUT_NS: u64 = 300 * 1_000_000_000;
/// Default [`FlowLimits::max_buffered_per_direction`]: 1 MiB. Out-of-order data waits at most
/// about one round trip (the receiver's ACK past a hole resolves it), so this is a window of a
/// fast LAN transfer; more would only let one connection take the shared budget.
pub const DEFAULT_MAX_BUFFERED_PER_DIRECTION: usize = 1 << 20;
/// Default [`FlowLimits::max_buffered_total`]: 64 MiB, so that 64 directions at their cap at
/// once still leave the rest of [`DEFAULT_MEMORY_BUDGET`] to the parsers' partial PDUs.
pub const DEFAULT_MAX_BUFFERED_TOTAL: usize = 64 << 20;
/// A suggested limit for the shard's [`MemoryBudget`]: 256 MiB, the table's share plus room for
/// the parsers' partial PDUs and IP fragments.
pub const DEFAULT_MEMORY_BUDGET: usize = 256 << 20;

impl Default for FlowLimits {
    fn default() -> Self {
        Self {
            max_flows: DEFAULT_MAX_FLOWS,
            idle_timeout_ns: DEFAULT_IDLE_TIMEOUT_NS,
            max_buffered_per_direction: DEFAULT_MAX_BUFFERED_PER_DIRECTION,
            max_buffered_total: DEFAULT_MAX_BUFFERED_TOTAL,
        }
    }
}

dcwatch_telemetry::counters! {
    /// What a [`FlowTable`] counted. All monotonic except `buffered_bytes`, a gauge.
    ///
    /// Invariants (tested): `flows_created == flows_closed + flows_timed_out + flows_evicted +
    /// flows_reused + flows_drained + table.len()`, and `payload_bytes == bytes_delivered +
    /// dropped_bytes + buffered_bytes` (every payload byte of an interested flow is delivered once,
    /// dropped, or still held).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct FlowCounters {
        /// Flows created (interested or not).
        counter flows_created: u64,
        /// Flows ended by FIN in both directions or by RST.
        counter flows_closed: u64,
        /// Flows ended by the idle timeout.
        counter flows_timed_out: u64,
        /// Flows evicted because the table was full.
        counter flows_evicted: u64,
        /// Flows ended because a new connection reused their endpoints.
        counter flows_reused: u64,
        /// Flows ended by [`FlowTable::drain`].
        counter flows_drained: u64,
        /// Flows whose data the handler stopped wanting (still in the table, not reassembled).
        counter flows_unfollowed: u64,
        /// Directions whose first segment was not a SYN (nor answered by a SYN+ACK that gave its
        /// initial sequence number): they start with `Gap { bytes: 0 }`.
        counter midstream_pickups: u64,
        /// Segments handed to [`FlowTable::segment`].
        counter segments: u64,
        /// Segments that matched no flow and could not start one (bare ACK, FIN or RST: typically
        /// the last packets of a flow already closed).
        counter unmatched_segments: u64,
        /// Segments of flows the caller was not interested in.
        counter not_interested_segments: u64,
        /// Payload bytes of interested flows.
        counter payload_bytes: u64,
        /// Bytes delivered as [`StreamEvent::Data`].
        counter bytes_delivered: u64,
        /// Payload bytes not delivered: already delivered or skipped (retransmissions, data behind a
        /// given-up hole), already held (overlaps: first copy wins), after FIN or with RST, or
        /// outside the window.
        counter dropped_bytes: u64,
        /// Payload bytes held out of order right now (a gauge).
        gauge buffered_bytes: u64,
        /// Segments that started beyond the next expected byte.
        counter out_of_order_segments: u64,
        /// Segments that brought no new byte (wholly delivered or held already), or only partly new.
        counter retransmitted_segments: u64,
        /// Segments starting more than [`MAX_SEQ_AHEAD`] ahead: dropped.
        counter out_of_window_segments: u64,
        /// Segments whose bytes differ from those already held for the same offsets.
        counter overlap_conflicts: u64,
        /// Holes given up ([`StreamEvent::Gap`] with a known size).
        counter gaps: u64,
        /// Total size of those holes.
        counter gap_bytes: u64,
        /// Holes given up because a direction reached [`FlowLimits::max_buffered_per_direction`].
        counter buffer_cap_hits: u64,
        /// Holes given up because the table's total or the shared [`MemoryBudget`] was reached.
        counter budget_cap_hits: u64,
        /// Holes given up because the peer acknowledged past them.
        counter ack_gaps: u64,
    }
}
