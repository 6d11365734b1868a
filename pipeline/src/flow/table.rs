//! The flow table: finds each segment's flow, reassembles both directions, and ends flows on
//! FIN, RST, idle timeout, eviction or end of input.
//!
//! Flows live in a slab threaded by a doubly-linked list in order of last activity, so finding
//! the least recently active flow (to evict it, or to expire idle ones from the front) is O(1)
//! and each segment only relinks its flow at the back.

use std::{collections::HashMap, net::SocketAddr};

use super::{
    CloseReason, Direction, FlowCounters, FlowHandler, FlowKey, FlowLimits, MemoryBudget,
    StreamEvent, TcpSegment,
    tcp::{Ctx, HalfStream},
};

/// End of the activity list (and "no slot").
const NIL: usize = usize::MAX;

/// Endpoints in a fixed order, so both directions of a flow find it with one lookup.
type Endpoints = (SocketAddr, SocketAddr);

fn endpoints(a: SocketAddr, b: SocketAddr) -> Endpoints {
    if a <= b { (a, b) } else { (b, a) }
}

#[derive(Debug)]
struct Flow<S> {
    key: FlowKey,
    /// `None`: the handler is not interested; nothing is reassembled.
    state: Option<S>,
    /// Indexed by [`Direction::index`]: the client's stream, then the server's.
    halves: [HalfStream; 2],
    /// FIN seen per direction, for flows not reassembled.
    fins: [bool; 2],
    last_seen_ns: u64,
}

#[derive(Debug)]
struct Slot<S> {
    flow: Option<Flow<S>>,
    /// Less recently active neighbour.
    prev: usize,
    /// More recently active neighbour.
    next: usize,
}

/// TCP flows and their reassembly; see the [module](super) documentation.
#[derive(Debug)]
pub struct FlowTable<S> {
    limits: FlowLimits,
    budget: MemoryBudget,
    counters: FlowCounters,
    /// Bytes the half-streams hold, as charged to the budget.
    held_total: usize,
    index: HashMap<Endpoints, usize>,
    slots: Vec<Slot<S>>,
    free: Vec<usize>,
    /// Least recently active flow.
    head: usize,
    /// Most recently active flow.
    tail: usize,
}

/// Who is the client: the SYN says; else the caller's knowledge of service ports; else the
/// lower port is taken to be the service.
fn orient(segment: &TcpSegment<'_>, server_hint: Option<SocketAddr>) -> FlowKey {
    let (src, dst) = (segment.src, segment.dst);
    let from_client = FlowKey {
        client: src,
        server: dst,
    };
    let from_server = FlowKey {
        client: dst,
        server: src,
    };
    let flags = segment.flags;
    if flags.syn() {
        return if flags.ack() {
            from_server
        } else {
            from_client
        };
    }
    match server_hint {
        Some(server) if server == dst => from_client,
        Some(server) if server == src => from_server,
        _ if src.port() < dst.port() => from_server,
        _ => from_client,
    }
}

/// What the segment does to a flow that is not reassembled.
enum Outcome {
    Continue,
    Close(CloseReason),
}

impl<S> FlowTable<S> {
    /// An empty table. Out-of-order data is charged to `budget` (shared with whatever else the
    /// caller charges to it) as well as to [`FlowLimits::max_buffered_total`].
    pub fn new(limits: FlowLimits, budget: MemoryBudget) -> Self {
        Self {
            limits,
            budget,
            counters: FlowCounters::default(),
            held_total: 0,
            index: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
        }
    }

    /// What was counted so far.
    pub fn counters(&self) -> &FlowCounters {
        &self.counters
    }

    /// Flows tracked.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// No flow tracked.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The limits given to [`new`](Self::new).
    pub fn limits(&self) -> &FlowLimits {
        &self.limits
    }

    /// The budget given to [`new`](Self::new).
    pub fn budget(&self) -> &MemoryBudget {
        &self.budget
    }

    /// Handles one segment: finds or creates its flow, reassembles, and hands `handler` each
    /// in-order event of the flow, in order (and the state of any flow that ends).
    ///
    /// A flow is created by a SYN or a segment with data (a bare ACK, FIN or RST of an unknown
    /// flow is the tail of one already closed: counted, ignored). Its client is the sender of a
    /// SYN, the receiver of a SYN+ACK, else the endpoint that is not `server_hint`, else the one
    /// with the higher port. When the table is full, the least recently active flow is evicted
    /// first. Within a segment, the ACK is applied first (holes the peer acknowledged past are
    /// given up in the other direction: they precede this segment), then the data, then FIN;
    /// RST flushes and closes both directions.
    pub fn segment<H>(
        &mut self,
        now_ns: u64,
        segment: &TcpSegment<'_>,
        server_hint: Option<SocketAddr>,
        handler: &mut H,
    ) where
        H: FlowHandler<State = S>,
    {
        self.counters.segments += 1;
        let flags = segment.flags;
        let ends = endpoints(segment.src, segment.dst);
        let mut found = self.index.get(&ends).copied();
        if let Some(slot) = found
            && flags.syn()
            && !flags.ack()
            && self.is_new_connection(slot, segment)
        {
            self.finish(slot, CloseReason::Reused, handler);
            found = None;
        }
        let slot = match found {
            Some(slot) => slot,
            None if flags.rst() || (!flags.syn() && segment.payload.is_empty()) => {
                self.counters.unmatched_segments += 1;
                return;
            }
            None => self.create(ends, orient(segment, server_hint), handler),
        };
        self.touch(slot, now_ns);
        match self.reassemble(slot, segment, handler) {
            Outcome::Close(reason) => self.finish(slot, reason, handler),
            Outcome::Continue => self.unfollow_if_unwanted(slot, handler),
        }
    }

    /// Stops following the flow in `slot` when the handler no longer wants its data.
    fn unfollow_if_unwanted<H: FlowHandler<State = S>>(&mut self, slot: usize, handler: &mut H) {
        let Some(flow) = self.slots.get_mut(slot).and_then(|slot| slot.flow.as_mut()) else {
            return;
        };
        if flow
            .state
            .as_ref()
            .is_none_or(|state| handler.follows(state))
        {
            return;
        }
        let Some(state) = flow.state.take() else {
            return;
        };
        let mut ctx = Ctx {
            limits: &self.limits,
            budget: &self.budget,
            counters: &mut self.counters,
            held_total: &mut self.held_total,
        };
        for half in &mut flow.halves {
            half.discard(&mut ctx);
        }
        self.counters.flows_unfollowed += 1;
        handler.close(state, &flow.key, CloseReason::Unfollowed);
    }

    /// Closes the flows idle for longer than [`FlowLimits::idle_timeout_ns`]: flushes what they
    /// hold (gaps, then data), then hands each state to `handler`. Costs nothing per flow that
    /// stays: the walk starts at the least recently active flow and stops at the first that is
    /// not idle.
    pub fn expire<H: FlowHandler<State = S>>(&mut self, now_ns: u64, handler: &mut H) {
        while let Some(flow) = self.flow(self.head) {
            if now_ns.saturating_sub(flow.last_seen_ns) <= self.limits.idle_timeout_ns {
                break;
            }
            self.finish(self.head, CloseReason::IdleTimeout, handler);
        }
    }

    /// End of input: flushes and closes every flow, least recently active first.
    pub fn drain<H: FlowHandler<State = S>>(&mut self, handler: &mut H) {
        while self.head != NIL {
            self.finish(self.head, CloseReason::EndOfInput, handler);
        }
    }

    fn flow(&self, slot: usize) -> Option<&Flow<S>> {
        self.slots.get(slot).and_then(|slot| slot.flow.as_ref())
    }

    /// A SYN (without ACK) for a flow whose stream in that direction has moved on from another
    /// initial sequence number: the endpoints are reused by a new connection.
    fn is_new_connection(&self, slot: usize, segment: &TcpSegment<'_>) -> bool {
        let Some(flow) = self.flow(slot) else {
            return false;
        };
        let direction = direction_of(&flow.key, segment.src);
        let Some(half) = flow.halves.get(direction.index()) else {
            return false;
        };
        flow.state.is_some() && half.has_progressed() && !half.starts_after_syn(segment.seq)
    }

    fn create<H: FlowHandler<State = S>>(
        &mut self,
        ends: Endpoints,
        key: FlowKey,
        handler: &mut H,
    ) -> usize {
        if self.index.len() >= self.limits.max_flows.max(1) && self.head != NIL {
            self.finish(self.head, CloseReason::Evicted, handler);
        }
        let flow = Flow {
            key,
            state: handler.open(&key),
            halves: [HalfStream::default(), HalfStream::default()],
            fins: [false; 2],
            last_seen_ns: 0,
        };
        self.counters.flows_created += 1;
        let slot = if let Some(slot) = self.free.pop() {
            if let Some(entry) = self.slots.get_mut(slot) {
                entry.flow = Some(flow);
            }
            slot
        } else {
            self.slots.push(Slot {
                flow: Some(flow),
                prev: NIL,
                next: NIL,
            });
            self.slots.len() - 1
        };
        self.push_back(slot);
        self.index.insert(ends, slot);
        slot
    }

    /// Marks the flow as the most recently active.
    fn touch(&mut self, slot: usize, now_ns: u64) {
        if let Some(flow) = self.slots.get_mut(slot).and_then(|slot| slot.flow.as_mut()) {
            flow.last_seen_ns = flow.last_seen_ns.max(now_ns);
        }
        if self.tail != slot {
            self.unlink(slot);
            self.push_back(slot);
        }
    }

    fn unlink(&mut self, slot: usize) {
        let Some(entry) = self.slots.get_mut(slot) else {
            return;
        };
        let (prev, next) = (entry.prev, entry.next);
        entry.prev = NIL;
        entry.next = NIL;
        match self.slots.get_mut(prev) {
            Some(entry) => entry.next = next,
            None => self.head = next,
        }
        match self.slots.get_mut(next) {
            Some(entry) => entry.prev = prev,
            None => self.tail = prev,
        }
    }

    fn push_back(&mut self, slot: usize) {
        let tail = self.tail;
        if let Some(entry) = self.slots.get_mut(slot) {
            entry.prev = tail;
            entry.next = NIL;
        }
        match self.slots.get_mut(tail) {
            Some(entry) => entry.next = slot,
            None => self.head = slot,
        }
        self.tail = slot;
    }

    /// Feeds the segment to the flow in `slot`.
    fn reassemble<H>(&mut self, slot: usize, segment: &TcpSegment<'_>, handler: &mut H) -> Outcome
    where
        H: FlowHandler<State = S>,
    {
        let Self {
            limits,
            budget,
            counters,
            held_total,
            slots,
            ..
        } = self;
        let Some(flow) = slots.get_mut(slot).and_then(|slot| slot.flow.as_mut()) else {
            return Outcome::Continue;
        };
        let Flow {
            key,
            state,
            halves,
            fins,
            ..
        } = flow;
        let direction = direction_of(key, segment.src);
        let flags = segment.flags;
        let Some(state) = state.as_mut() else {
            counters.not_interested_segments += 1;
            if flags.rst() {
                return Outcome::Close(CloseReason::Reset);
            }
            if flags.fin() {
                if let Some(fin) = fins.get_mut(direction.index()) {
                    *fin = true;
                }
                if fins.iter().all(|&fin| fin) {
                    return Outcome::Close(CloseReason::Finished);
                }
            }
            return Outcome::Continue;
        };
        let mut ctx = Ctx {
            limits,
            budget,
            counters,
            held_total,
        };
        let payload_len = u64::try_from(segment.payload.len()).unwrap_or(u64::MAX);
        if flags.rst() {
            // Data on a RST is a diagnostic, not stream data (RFC 9293 3.10.7.3 point 4).
            ctx.counters.payload_bytes += payload_len;
            ctx.counters.dropped_bytes += payload_len;
            for direction in [direction, direction.reverse()] {
                if let Some(half) = halves.get_mut(direction.index()) {
                    let mut sink =
                        |event: StreamEvent<'_>| handler.event(state, key, direction, event);
                    half.flush(&mut ctx, &mut sink);
                    half.close(&mut sink);
                }
            }
            return Outcome::Close(CloseReason::Reset);
        }
        let [to_server, to_client] = halves;
        let (own, peer) = match direction {
            Direction::ToServer => (to_server, to_client),
            Direction::ToClient => (to_client, to_server),
        };
        let mut data_seq = segment.seq;
        if flags.syn() {
            if own.is_same_syn(segment.seq) && segment.payload.is_empty() {
                ctx.counters.retransmitted_segments += 1;
            }
            own.syn(segment.seq);
            if flags.ack() {
                peer.start_at_acked(segment.ack);
            }
            data_seq = data_seq.wrapping_add(1);
        }
        if flags.ack() {
            let reverse = direction.reverse();
            let mut sink = |event: StreamEvent<'_>| handler.event(state, key, reverse, event);
            peer.acked(&mut ctx, segment.ack, &mut sink);
        }
        let mut sink = |event: StreamEvent<'_>| handler.event(state, key, direction, event);
        own.data(&mut ctx, data_seq, segment.payload, &mut sink);
        if flags.fin() {
            // The FIN occupies the sequence number after the data.
            let fin_seq = data_seq.wrapping_add(segment.payload.len() as u32);
            own.fin(&mut ctx, fin_seq, &mut sink);
        }
        if own.is_closed() && peer.is_closed() {
            Outcome::Close(CloseReason::Finished)
        } else {
            Outcome::Continue
        }
    }

    /// Ends the flow in `slot`: gives up its holes (delivering what is held), hands its state
    /// back, frees the slot.
    fn finish<H: FlowHandler<State = S>>(
        &mut self,
        slot: usize,
        reason: CloseReason,
        handler: &mut H,
    ) {
        self.unlink(slot);
        let Some(mut flow) = self.slots.get_mut(slot).and_then(|slot| slot.flow.take()) else {
            return;
        };
        self.free.push(slot);
        self.index
            .remove(&endpoints(flow.key.client, flow.key.server));
        let counter = match reason {
            CloseReason::Finished | CloseReason::Reset => &mut self.counters.flows_closed,
            CloseReason::IdleTimeout => &mut self.counters.flows_timed_out,
            CloseReason::Evicted => &mut self.counters.flows_evicted,
            CloseReason::Reused => &mut self.counters.flows_reused,
            CloseReason::EndOfInput => &mut self.counters.flows_drained,
            // Never passed here: a flow no longer followed stays in the table (see
            // `unfollow_if_unwanted`) and later ends by one of the reasons above.
            CloseReason::Unfollowed => &mut self.counters.flows_unfollowed,
        };
        *counter += 1;
        let Some(mut state) = flow.state.take() else {
            return;
        };
        let key = flow.key;
        let mut ctx = Ctx {
            limits: &self.limits,
            budget: &self.budget,
            counters: &mut self.counters,
            held_total: &mut self.held_total,
        };
        for direction in [Direction::ToServer, Direction::ToClient] {
            if let Some(half) = flow.halves.get_mut(direction.index()) {
                let mut sink =
                    |event: StreamEvent<'_>| handler.event(&mut state, &key, direction, event);
                half.flush(&mut ctx, &mut sink);
            }
        }
        handler.close(state, &key, reason);
    }
}

fn direction_of(key: &FlowKey, src: SocketAddr) -> Direction {
    if src == key.client {
        Direction::ToServer
    } else {
        Direction::ToClient
    }
}

impl<S> Drop for FlowTable<S> {
    /// Gives the held bytes back to the budget, which may outlive the table.
    fn drop(&mut self) {
        let mut ctx = Ctx {
            limits: &self.limits,
            budget: &self.budget,
            counters: &mut self.counters,
            held_total: &mut self.held_total,
        };
        for flow in self.slots.iter_mut().filter_map(|slot| slot.flow.as_mut()) {
            for half in &mut flow.halves {
                half.discard(&mut ctx);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::flow::{MAX_SEQ_AHEAD, SEGMENT_OVERHEAD, TcpFlags};

    const CLIENT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 50_000);
    const SERVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 88);
    const KEY: FlowKey = FlowKey {
        client: CLIENT,
        server: SERVER,
    };
    const SYN: TcpFlags = TcpFlags::SYN;
    const ACK: TcpFlags = TcpFlags::ACK;
    const SYN_ACK: TcpFlags = TcpFlags(TcpFlags::SYN.0 | TcpFlags::ACK.0);
    const FIN_ACK: TcpFlags = TcpFlags(TcpFlags::FIN.0 | TcpFlags::ACK.0);
    const RST: TcpFlags = TcpFlags::RST;
    const NONE: TcpFlags = TcpFlags(0);
    const SECOND: u64 = 1_000_000_000;

    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Ev {
        Data(Vec<u8>),
        Gap(u64),
        Closed,
    }

    /// Records every event, merging consecutive data.
    #[derive(Debug, Default)]
    struct Recorder {
        not_interested: bool,
        /// Stop following a flow once it has had this many events.
        unfollow_after: Option<u32>,
        opened: Vec<FlowKey>,
        closed: Vec<(FlowKey, CloseReason)>,
        events: Vec<(FlowKey, Direction, Ev)>,
        /// Data events whose bytes were not copied (they point into a segment's payload).
        zero_copy: Vec<*const u8>,
    }

    impl FlowHandler for Recorder {
        type State = u32;

        fn open(&mut self, key: &FlowKey) -> Option<u32> {
            self.opened.push(*key);
            (!self.not_interested).then_some(0)
        }

        fn event(
            &mut self,
            state: &mut u32,
            key: &FlowKey,
            direction: Direction,
            event: StreamEvent<'_>,
        ) {
            *state += 1;
            let event = match event {
                StreamEvent::Data(bytes) => {
                    self.zero_copy.push(bytes.as_ptr());
                    Ev::Data(bytes.to_vec())
                }
                StreamEvent::Gap { bytes } => Ev::Gap(bytes),
                StreamEvent::Closed => Ev::Closed,
            };
            self.events.push((*key, direction, event));
        }

        fn close(&mut self, _: u32, key: &FlowKey, reason: CloseReason) {
            self.closed.push((*key, reason));
        }

        fn follows(&self, events: &u32) -> bool {
            self.unfollow_after.is_none_or(|limit| *events < limit)
        }
    }

    impl Recorder {
        /// One direction's events, consecutive data merged.
        fn stream(&self, key: FlowKey, direction: Direction) -> Vec<Ev> {
            let mut out: Vec<Ev> = Vec::new();
            for (k, d, event) in &self.events {
                if *k != key || *d != direction {
                    continue;
                }
                match (out.last_mut(), event) {
                    (Some(Ev::Data(so_far)), Ev::Data(more)) => so_far.extend_from_slice(more),
                    _ => out.push(event.clone()),
                }
            }
            out
        }
    }

    fn seg(
        src: SocketAddr,
        dst: SocketAddr,
        seq: u32,
        ack: u32,
        flags: TcpFlags,
        payload: &[u8],
    ) -> TcpSegment<'_> {
        TcpSegment {
            src,
            dst,
            seq,
            ack,
            flags,
            payload,
        }
    }

    fn table(limits: FlowLimits) -> FlowTable<u32> {
        FlowTable::new(limits, MemoryBudget::new(DEFAULT_BUDGET))
    }

    const DEFAULT_BUDGET: usize = 1 << 24;
    const CISN: u32 = 1000;
    const SISN: u32 = 5000;

    /// SYN, SYN+ACK, ACK: client data starts at CISN + 1, server data at SISN + 1.
    fn handshake(t: &mut FlowTable<u32>, r: &mut Recorder) {
        t.segment(0, &seg(CLIENT, SERVER, CISN, 0, SYN, b""), None, r);
        t.segment(
            0,
            &seg(SERVER, CLIENT, SISN, CISN + 1, SYN_ACK, b""),
            None,
            r,
        );
        t.segment(
            0,
            &seg(CLIENT, SERVER, CISN + 1, SISN + 1, ACK, b""),
            None,
            r,
        );
    }

    /// Client data at offset `at` of its stream (no ACK flag, so nothing else is implied).
    fn client_data(t: &mut FlowTable<u32>, r: &mut Recorder, at: u32, bytes: &[u8]) {
        t.segment(
            0,
            &seg(CLIENT, SERVER, CISN + 1 + at, 0, NONE, bytes),
            None,
            r,
        );
    }

    fn data(bytes: &[u8]) -> Ev {
        Ev::Data(bytes.to_vec())
    }

    fn check_invariants<S>(t: &FlowTable<S>) {
        let c = t.counters();
        assert_eq!(
            c.flows_created,
            c.flows_closed
                + c.flows_timed_out
                + c.flows_evicted
                + c.flows_reused
                + c.flows_drained
                + t.len() as u64,
            "{c:?}"
        );
        assert_eq!(
            c.payload_bytes,
            c.bytes_delivered + c.dropped_bytes + c.buffered_bytes,
            "{c:?}"
        );
        assert!(t.budget().peak() <= t.budget().limit());
    }

    #[test]
    fn in_order_is_delivered_without_copying_and_closes_on_fins() {
        let mut t = table(FlowLimits::default());
        let mut r = Recorder::default();
        handshake(&mut t, &mut r);
        let request = b"hello ".to_vec();
        let more = b"world".to_vec();
        client_data(&mut t, &mut r, 0, &request);
        client_data(&mut t, &mut r, 6, &more);
        assert_eq!(r.zero_copy, vec![request.as_ptr(), more.as_ptr()]);
        t.segment(
            0,
            &seg(SERVER, CLIENT, SISN + 1, CISN + 12, ACK, b"reply"),
            None,
            &mut r,
        );
        t.segment(
            0,
            &seg(CLIENT, SERVER, CISN + 12, SISN + 6, FIN_ACK, b""),
            None,
            &mut r,
        );
        assert_eq!(t.len(), 1);
        t.segment(
            0,
            &seg(SERVER, CLIENT, SISN + 6, CISN + 13, FIN_ACK, b""),
            None,
            &mut r,
        );
        t.segment(
            0,
            &seg(CLIENT, SERVER, CISN + 13, SISN + 7, ACK, b""),
            None,
            &mut r,
        );
        assert_eq!(r.opened, vec![KEY]);
        assert_eq!(
            r.stream(KEY, Direction::ToServer),
            vec![data(b"hello world"), Ev::Closed]
        );
        assert_eq!(
            r.stream(KEY, Direction::ToClient),
            vec![data(b"reply"), Ev::Closed]
        );
        assert_eq!(r.closed, vec![(KEY, CloseReason::Finished)]);
        assert!(t.is_empty());
        let c = t.counters();
        assert_eq!(
            (
                c.bytes_delivered,
                c.gaps,
                c.midstream_pickups,
                c.unmatched_segments
            ),
            (16, 0, 0, 1)
        );
        check_invariants(&t);
    }

    #[test]
    fn every_order_of_four_segments_delivers_the_same_bytes() {
        let parts: [(u32, &[u8]); 4] = [(0, b"abc"), (3, b"defg"), (7, b"h"), (8, b"ijklm")];
        let mut count = 0;
        for a in 0..4 {
            for b in 0..4 {
                for c in 0..4 {
                    for d in 0..4 {
                        let order = [a, b, c, d];
                        if (0..4).any(|i| !order.contains(&i)) {
                            continue;
                        }
                        count += 1;
                        let mut t = table(FlowLimits::default());
                        let mut r = Recorder::default();
                        handshake(&mut t, &mut r);
                        for i in order {
                            let (at, bytes) = parts[i];
                            client_data(&mut t, &mut r, at, bytes);
                        }
                        assert_eq!(
                            r.stream(KEY, Direction::ToServer),
                            vec![data(b"abcdefghijklm")],
                            "{order:?}"
                        );
                        assert_eq!(t.counters().buffered_bytes, 0);
                        assert_eq!(t.budget().in_use(), 0);
                        check_invariants(&t);
                    }
                }
            }
        }
        assert_eq!(count, 24);
    }

    #[test]
    fn duplicates_are_dropped_and_counted() {
        let mut t = table(FlowLimits::default());
        let mut r = Recorder::default();
        handshake(&mut t, &mut r);
        client_data(&mut t, &mut r, 4, b"5678"); // held
        client_data(&mut t, &mut r, 4, b"5678"); // duplicate of held
        client_data(&mut t, &mut r, 0, b"1234");
        client_data(&mut t, &mut r, 0, b"1234"); // duplicate of delivered
        assert_eq!(r.stream(KEY, Direction::ToServer), vec![data(b"12345678")]);
        let c = t.counters();
        assert_eq!(
            (
                c.retransmitted_segments,
                c.overlap_conflicts,
                c.dropped_bytes
            ),
            (2, 0, 8)
        );
        check_invariants(&t);
    }

    #[test]
    fn overlaps_keep_the_first_copy_and_deliver_only_new_bytes() {
        let mut t = table(FlowLimits::default());
        let mut r = Recorder::default();
        handshake(&mut t, &mut r);
        client_data(&mut t, &mut r, 0, b"ab");
        client_data(&mut t, &mut r, 6, b"GHIJ"); // held [6, 10)
        // [4, 12): 4..6 new, 6..10 conflicts with the held copy, 10..12 new.
        client_data(&mut t, &mut r, 4, b"efghijkl");
        // [1, 5): 1 delivered already, 2..4 new, 4 held: both old and new bytes.
        client_data(&mut t, &mut r, 1, b"bcdX");
        assert_eq!(
            r.stream(KEY, Direction::ToServer),
            vec![data(b"abcdefGHIJkl")]
        );
        let c = t.counters();
        assert_eq!(c.overlap_conflicts, 2, "{c:?}");
        assert_eq!(c.bytes_delivered, 12);
        check_invariants(&t);
    }

    #[test]
    fn sequence_numbers_wrap_at_2_pow_32() {
        let mut t = table(FlowLimits::default());
        let mut r = Recorder::default();
        let isn = u32::MAX - 4;
        t.segment(0, &seg(CLIENT, SERVER, isn, 0, SYN, b""), None, &mut r);
        // First byte at u32::MAX - 3: "abcd" ends at the wrap, "efgh" starts at sequence 0.
        t.segment(0, &seg(CLIENT, SERVER, 0, 0, NONE, b"efgh"), None, &mut r);
        t.segment(0, &seg(CLIENT, SERVER, 2, 0, NONE, b"ghij"), None, &mut r);
        t.segment(
            0,
            &seg(CLIENT, SERVER, u32::MAX - 3, 0, NONE, b"abcd"),
            None,
            &mut r,
        );
        t.segment(
            0,
            &seg(CLIENT, SERVER, 6, 0, FIN_ACK.union(NONE), b"k"),
            None,
            &mut r,
        );
        assert_eq!(
            r.stream(KEY, Direction::ToServer),
            vec![data(b"abcdefghijk"), Ev::Closed]
        );
        check_invariants(&t);
    }

    #[test]
    fn streams_longer_than_4_gib_keep_their_offsets() {
        let mut t = table(FlowLimits::default());
        let mut r = Recorder::default();
        handshake(&mut t, &mut r);
        let chunk = vec![7u8; 1 << 16];
        let chunks = (5u64 << 32) / chunk.len() as u64;
        let mut seq = CISN + 1;
        for _ in 0..chunks {
            t.segment(0, &seg(CLIENT, SERVER, seq, 0, NONE, &chunk), None, &mut r);
            seq = seq.wrapping_add(chunk.len() as u32);
            r.events.clear();
            r.zero_copy.clear();
        }
        // Out of order after 5 wraps: still placed correctly.
        t.segment(
            0,
            &seg(CLIENT, SERVER, seq.wrapping_add(2), 0, NONE, b"cd"),
            None,
            &mut r,
        );
        t.segment(0, &seg(CLIENT, SERVER, seq, 0, NONE, b"ab"), None, &mut r);
        assert_eq!(r.stream(KEY, Direction::ToServer), vec![data(b"abcd")]);
        assert_eq!(t.counters().bytes_delivered, (5 << 32) + 4);
    }

    #[test]
    fn the_per_direction_cap_gives_up_the_oldest_hole() {
        let limits = FlowLimits {
            max_buffered_per_direction: 2 * (4 + SEGMENT_OVERHEAD),
            ..FlowLimits::default()
        };
        let mut t = table(limits);
        let mut r = Recorder::default();
        handshake(&mut t, &mut r);
        client_data(&mut t, &mut r, 0, b"0123");
        // Hole [4, 8); then three segments of 4 bytes: the third does not fit.
        client_data(&mut t, &mut r, 8, b"89ab");
        client_data(&mut t, &mut r, 16, b"ghij");
        assert_eq!(r.stream(KEY, Direction::ToServer), vec![data(b"0123")]);
        client_data(&mut t, &mut r, 20, b"klmn");
        assert_eq!(
            r.stream(KEY, Direction::ToServer),
            vec![data(b"0123"), Ev::Gap(4), data(b"89ab")],
            "the first hole is given up; [16, 24) still fits after it"
        );
        client_data(&mut t, &mut r, 12, b"cdef");
        assert_eq!(
            r.stream(KEY, Direction::ToServer),
            vec![data(b"0123"), Ev::Gap(4), data(b"89abcdefghijklmn")]
        );
        let c = t.counters();
        assert_eq!((c.buffer_cap_hits, c.gaps, c.gap_bytes), (1, 1, 4));
        check_invariants(&t);
    }

    #[test]
    fn a_segment_larger_than_the_cap_skips_straight_to_itself() {
        let limits = FlowLimits {
            max_buffered_per_direction: 10,
            ..FlowLimits::default()
        };
        let mut t = table(limits);
        let mut r = Recorder::default();
        handshake(&mut t, &mut r);
        let payload = b"far ahead".to_vec();
        client_data(&mut t, &mut r, 100, &payload);
        assert_eq!(
            r.stream(KEY, Direction::ToServer),
            vec![Ev::Gap(100), data(b"far ahead")]
        );
        assert_eq!(
            r.zero_copy,
            vec![payload.as_ptr()],
            "delivered from the frame, not copied"
        );
        check_invariants(&t);
    }

    #[test]
    fn an_ack_past_a_hole_gives_it_up_at_once() {
        let mut t = table(FlowLimits::default());
        let mut r = Recorder::default();
        handshake(&mut t, &mut r);
        client_data(&mut t, &mut r, 0, b"abc");
        client_data(&mut t, &mut r, 6, b"ghi"); // [3, 6) lost by the capture
        client_data(&mut t, &mut r, 12, b"mno"); // [9, 12) too
        // The server acknowledges up to 9: the first hole is given up, the second still waits.
        t.segment(
            0,
            &seg(SERVER, CLIENT, SISN + 1, CISN + 1 + 9, ACK, b""),
            None,
            &mut r,
        );
        assert_eq!(
            r.stream(KEY, Direction::ToServer),
            vec![data(b"abc"), Ev::Gap(3), data(b"ghi")]
        );
        // Then up to 17: the second hole, the held data, and a lost tail [15, 17).
        t.segment(
            0,
            &seg(SERVER, CLIENT, SISN + 1, CISN + 1 + 17, ACK, b"ok"),
            None,
            &mut r,
        );
        assert_eq!(
            r.stream(KEY, Direction::ToServer),
            vec![
                data(b"abc"),
                Ev::Gap(3),
                data(b"ghi"),
                Ev::Gap(3),
                data(b"mno"),
                Ev::Gap(2)
            ]
        );
        // The gaps come before the server's data in the event order: they precede it.
        let last = r.events.last().map(|(_, d, e)| (*d, e.clone()));
        assert_eq!(last, Some((Direction::ToClient, data(b"ok"))));
        let c = t.counters();
        assert_eq!((c.gaps, c.gap_bytes, c.ack_gaps), (3, 8, 3));
        // The late copy of the lost bytes is dropped.
        client_data(&mut t, &mut r, 3, b"def");
        assert_eq!(t.counters().retransmitted_segments, 1);
        check_invariants(&t);
    }

    #[test]
    fn an_ack_out_of_the_window_is_ignored() {
        let mut t = table(FlowLimits::default());
        let mut r = Recorder::default();
        handshake(&mut t, &mut r);
        client_data(&mut t, &mut r, 4, b"held");
        let forged = (CISN + 1).wrapping_add((MAX_SEQ_AHEAD + 10) as u32);
        t.segment(
            0,
            &seg(SERVER, CLIENT, SISN + 1, forged, ACK, b""),
            None,
            &mut r,
        );
        assert_eq!(r.stream(KEY, Direction::ToServer), vec![]);
        assert_eq!(t.counters().buffered_bytes, 4);
    }

    #[test]
    fn the_shared_budget_gives_up_holes_when_it_refuses() {
        let charge = 4 + SEGMENT_OVERHEAD;
        let budget = MemoryBudget::new(charge);
        let mut t = FlowTable::new(FlowLimits::default(), budget.clone());
        let mut r = Recorder::default();
        handshake(&mut t, &mut r);
        client_data(&mut t, &mut r, 4, b"4567"); // fills the budget
        assert_eq!(budget.in_use(), charge);
        // The caller holds partial PDUs on the same budget: nothing left for it now.
        assert!(!budget.try_reserve(1));
        t.segment(
            0,
            &seg(SERVER, CLIENT, SISN + 11, 0, NONE, b"later"),
            None,
            &mut r,
        );
        assert_eq!(
            r.stream(KEY, Direction::ToClient),
            vec![Ev::Gap(10), data(b"later")],
            "the server's out-of-order data cannot be held: its hole is given up"
        );
        // Giving up the client's first hole frees enough for the new segment to be held.
        client_data(&mut t, &mut r, 12, b"cdef");
        assert_eq!(
            r.stream(KEY, Direction::ToServer),
            vec![Ev::Gap(4), data(b"4567")]
        );
        assert_eq!(t.counters().budget_cap_hits, 2);
        assert_eq!(budget.in_use(), charge);
        t.drain(&mut r);
        assert_eq!(
            r.stream(KEY, Direction::ToServer),
            vec![Ev::Gap(4), data(b"4567"), Ev::Gap(4), data(b"cdef")]
        );
        assert_eq!(budget.in_use(), 0);
        assert_eq!(budget.peak(), charge);
        check_invariants(&t);
    }

    #[test]
    fn the_tables_own_total_cap_applies_across_flows() {
        let limits = FlowLimits {
            max_buffered_total: 4 + SEGMENT_OVERHEAD,
            ..FlowLimits::default()
        };
        let mut t = table(limits);
        let mut r = Recorder::default();
        handshake(&mut t, &mut r);
        client_data(&mut t, &mut r, 4, b"4567");
        t.segment(
            0,
            &seg(SERVER, CLIENT, SISN + 3, 0, NONE, b"xy"),
            None,
            &mut r,
        );
        assert_eq!(
            r.stream(KEY, Direction::ToClient),
            vec![Ev::Gap(2), data(b"xy")]
        );
        assert_eq!(t.counters().budget_cap_hits, 1);
    }

    #[test]
    fn fin_gives_up_missing_data_and_drops_what_lies_beyond() {
        let mut t = table(FlowLimits::default());
        let mut r = Recorder::default();
        handshake(&mut t, &mut r);
        client_data(&mut t, &mut r, 0, b"ab");
        client_data(&mut t, &mut r, 4, b"efgh"); // [2, 4) lost
        client_data(&mut t, &mut r, 10, b"zz"); // beyond the FIN: not part of the stream
        t.segment(
            0,
            &seg(CLIENT, SERVER, CISN + 1 + 8, 0, TcpFlags::FIN, b"ij"),
            None,
            &mut r,
        );
        assert_eq!(
            r.stream(KEY, Direction::ToServer),
            vec![data(b"ab"), Ev::Gap(2), data(b"efghij"), Ev::Closed]
        );
        // A retransmitted FIN, and data after it, change nothing.
        t.segment(
            0,
            &seg(CLIENT, SERVER, CISN + 1 + 8, 0, TcpFlags::FIN, b"ij"),
            None,
            &mut r,
        );
        assert_eq!(r.stream(KEY, Direction::ToServer).len(), 4);
        assert_eq!(t.counters().buffered_bytes, 0);
        assert_eq!(t.budget().in_use(), 0);
        check_invariants(&t);
    }

    #[test]
    fn fin_in_the_middle_of_a_held_segment_truncates_it() {
        let mut t = table(FlowLimits::default());
        let mut r = Recorder::default();
        handshake(&mut t, &mut r);
        client_data(&mut t, &mut r, 2, b"cdefgh");
        t.segment(
            0,
            &seg(CLIENT, SERVER, CISN + 1 + 5, 0, TcpFlags::FIN, b""),
            None,
            &mut r,
        );
        assert_eq!(
            r.stream(KEY, Direction::ToServer),
            vec![Ev::Gap(2), data(b"cde"), Ev::Closed]
        );
        assert_eq!(t.budget().in_use(), 0);
        check_invariants(&t);
    }

    #[test]
    fn a_flow_given_up_by_its_handler_is_no_longer_reassembled() {
        let budget = MemoryBudget::new(DEFAULT_BUDGET);
        let mut t = FlowTable::new(FlowLimits::default(), budget.clone());
        let mut r = Recorder {
            unfollow_after: Some(1),
            ..Recorder::default()
        };
        t.segment(0, &seg(CLIENT, SERVER, 100, 0, SYN, b""), None, &mut r);
        // Held beyond a hole, then the hole filled: one data event, and the flow is given up.
        t.segment(0, &seg(CLIENT, SERVER, 105, 0, ACK, b"later"), None, &mut r);
        assert!(budget.in_use() > 0);
        t.segment(0, &seg(CLIENT, SERVER, 101, 0, ACK, b"abc"), None, &mut r);
        assert_eq!(r.closed, vec![(KEY, CloseReason::Unfollowed)]);
        assert_eq!(budget.in_use(), 0, "what it held is dropped");
        t.segment(0, &seg(CLIENT, SERVER, 110, 0, ACK, b"more"), None, &mut r);
        assert_eq!(r.events.len(), 1, "nothing delivered after");
        let c = t.counters();
        assert_eq!(c.flows_unfollowed, 1);
        assert_eq!(c.not_interested_segments, 1);
        assert_eq!(
            c.payload_bytes,
            c.bytes_delivered + c.dropped_bytes + c.buffered_bytes
        );
        assert_eq!(t.len(), 1, "still in the table until it ends");
        t.drain(&mut r);
        assert_eq!(r.closed.len(), 1, "a state is handed back once");
    }

    #[test]
    fn a_capture_started_mid_stream_begins_with_an_unknown_gap() {
        let mut t = table(FlowLimits::default());
        let mut r = Recorder::default();
        // No SYN: the server is the hinted endpoint.
        t.segment(
            0,
            &seg(SERVER, CLIENT, 777, 3, ACK, b"resp"),
            Some(SERVER),
            &mut r,
        );
        t.segment(
            0,
            &seg(CLIENT, SERVER, 3, 781, ACK, b"req"),
            Some(SERVER),
            &mut r,
        );
        t.segment(
            0,
            &seg(SERVER, CLIENT, 781, 6, ACK, b"onse"),
            Some(SERVER),
            &mut r,
        );
        assert_eq!(r.opened, vec![KEY]);
        assert_eq!(
            r.stream(KEY, Direction::ToClient),
            vec![Ev::Gap(0), data(b"response")]
        );
        assert_eq!(
            r.stream(KEY, Direction::ToServer),
            vec![Ev::Gap(0), data(b"req")]
        );
        let c = t.counters();
        assert_eq!((c.midstream_pickups, c.gaps, c.gap_bytes), (2, 0, 0));
        check_invariants(&t);
    }

    #[test]
    fn without_syn_or_hint_the_lower_port_is_the_server() {
        let mut t = table(FlowLimits::default());
        let mut r = Recorder::default();
        t.segment(0, &seg(SERVER, CLIENT, 1, 1, ACK, b"x"), None, &mut r);
        t.segment(
            0,
            &seg(CLIENT, SERVER, 1, 1, ACK, b"y"),
            Some(CLIENT),
            &mut r,
        );
        assert_eq!(
            r.opened,
            vec![KEY],
            "the hint only matters when the flow is created"
        );
    }

    #[test]
    fn a_syn_ack_gives_the_clients_first_byte_even_without_its_syn() {
        let mut t = table(FlowLimits::default());
        let mut r = Recorder::default();
        t.segment(
            0,
            &seg(SERVER, CLIENT, SISN, CISN + 1, SYN_ACK, b""),
            None,
            &mut r,
        );
        client_data(&mut t, &mut r, 2, b"cd");
        client_data(&mut t, &mut r, 0, b"ab");
        assert_eq!(r.opened, vec![KEY]);
        assert_eq!(r.stream(KEY, Direction::ToServer), vec![data(b"abcd")]);
        assert_eq!(t.counters().midstream_pickups, 0);
    }

    #[test]
    fn idle_flows_expire_with_their_held_data_flushed() {
        let limits = FlowLimits {
            idle_timeout_ns: 10 * SECOND,
            ..FlowLimits::default()
        };
        let mut t = table(limits);
        let mut r = Recorder::default();
        handshake(&mut t, &mut r);
        client_data(&mut t, &mut r, 3, b"def");
        let other = SocketAddr::new(CLIENT.ip(), 50_001);
        t.segment(
            8 * SECOND,
            &seg(other, SERVER, 1, 0, SYN, b""),
            None,
            &mut r,
        );
        t.expire(10 * SECOND, &mut r);
        assert_eq!(
            t.len(),
            2,
            "idle for exactly the timeout is not longer than it"
        );
        t.expire(10 * SECOND + 1, &mut r);
        assert_eq!(r.closed, vec![(KEY, CloseReason::IdleTimeout)]);
        assert_eq!(
            r.stream(KEY, Direction::ToServer),
            vec![Ev::Gap(3), data(b"def")]
        );
        assert_eq!(t.len(), 1);
        t.expire(20 * SECOND, &mut r);
        assert_eq!(t.len(), 0);
        assert_eq!(t.counters().flows_timed_out, 2);
        assert_eq!(t.budget().in_use(), 0);
        check_invariants(&t);
    }

    #[test]
    fn a_full_table_evicts_the_least_recently_active_flow() {
        let limits = FlowLimits {
            max_flows: 2,
            ..FlowLimits::default()
        };
        let mut t = table(limits);
        let mut r = Recorder::default();
        let clients: Vec<SocketAddr> = (0..3)
            .map(|i| SocketAddr::new(CLIENT.ip(), 40_000 + i))
            .collect();
        let key = |i: usize| FlowKey {
            client: clients[i],
            server: SERVER,
        };
        t.segment(1, &seg(clients[0], SERVER, 10, 0, NONE, b"a"), None, &mut r);
        t.segment(2, &seg(clients[1], SERVER, 10, 0, NONE, b"b"), None, &mut r);
        t.segment(3, &seg(clients[0], SERVER, 11, 0, NONE, b"a"), None, &mut r);
        t.segment(4, &seg(clients[2], SERVER, 10, 0, NONE, b"c"), None, &mut r);
        assert_eq!(r.closed, vec![(key(1), CloseReason::Evicted)]);
        assert_eq!(t.len(), 2);
        t.drain(&mut r);
        assert_eq!(
            r.closed,
            vec![
                (key(1), CloseReason::Evicted),
                (key(0), CloseReason::EndOfInput),
                (key(2), CloseReason::EndOfInput)
            ]
        );
        let c = t.counters();
        assert_eq!(
            (c.flows_created, c.flows_evicted, c.flows_drained),
            (3, 1, 2)
        );
        check_invariants(&t);
    }

    #[test]
    fn flows_nobody_wants_are_remembered_but_not_reassembled() {
        let mut t = table(FlowLimits::default());
        let mut r = Recorder {
            not_interested: true,
            ..Recorder::default()
        };
        handshake(&mut t, &mut r);
        client_data(&mut t, &mut r, 5, b"ignored");
        assert_eq!(r.opened.len(), 1, "open is asked once per flow");
        assert!(r.events.is_empty());
        assert_eq!(t.budget().in_use(), 0);
        t.segment(
            0,
            &seg(CLIENT, SERVER, CISN + 1, 0, FIN_ACK, b""),
            None,
            &mut r,
        );
        t.segment(
            0,
            &seg(SERVER, CLIENT, SISN + 1, 0, FIN_ACK, b""),
            None,
            &mut r,
        );
        assert!(t.is_empty());
        assert!(r.closed.is_empty(), "no state to hand back");
        let c = t.counters();
        assert_eq!(
            (c.not_interested_segments, c.flows_closed, c.payload_bytes),
            (6, 1, 0)
        );
        check_invariants(&t);
    }

    #[test]
    fn rst_flushes_and_closes_both_directions() {
        let mut t = table(FlowLimits::default());
        let mut r = Recorder::default();
        handshake(&mut t, &mut r);
        client_data(&mut t, &mut r, 2, b"cd");
        t.segment(
            0,
            &seg(SERVER, CLIENT, SISN + 1, 0, RST, b"diag"),
            None,
            &mut r,
        );
        assert_eq!(
            r.stream(KEY, Direction::ToServer),
            vec![Ev::Gap(2), data(b"cd"), Ev::Closed]
        );
        assert_eq!(r.stream(KEY, Direction::ToClient), vec![Ev::Closed]);
        assert_eq!(r.closed, vec![(KEY, CloseReason::Reset)]);
        // The rest of the flow is ignored rather than re-created.
        t.segment(0, &seg(CLIENT, SERVER, CISN + 5, 0, RST, b""), None, &mut r);
        t.segment(0, &seg(CLIENT, SERVER, CISN + 5, 0, ACK, b""), None, &mut r);
        assert!(t.is_empty());
        assert_eq!(t.counters().unmatched_segments, 2);
        check_invariants(&t);
    }

    #[test]
    fn syn_retransmissions_and_syn_with_data() {
        let mut t = table(FlowLimits::default());
        let mut r = Recorder::default();
        t.segment(
            0,
            &seg(CLIENT, SERVER, CISN, 0, SYN, b"early"),
            None,
            &mut r,
        );
        t.segment(
            0,
            &seg(CLIENT, SERVER, CISN, 0, SYN, b"early"),
            None,
            &mut r,
        );
        t.segment(0, &seg(CLIENT, SERVER, CISN, 0, SYN, b""), None, &mut r);
        t.segment(
            0,
            &seg(SERVER, CLIENT, SISN, CISN + 6, SYN_ACK, b""),
            None,
            &mut r,
        );
        t.segment(
            0,
            &seg(SERVER, CLIENT, SISN, CISN + 6, SYN_ACK, b""),
            None,
            &mut r,
        );
        client_data(&mut t, &mut r, 5, b" data");
        assert_eq!(r.opened.len(), 1);
        assert_eq!(
            r.stream(KEY, Direction::ToServer),
            vec![data(b"early data")]
        );
        assert_eq!(t.counters().retransmitted_segments, 3);
        check_invariants(&t);
    }

    #[test]
    fn an_abandoned_syn_is_replaced_by_the_next_attempt() {
        let mut t = table(FlowLimits::default());
        let mut r = Recorder::default();
        t.segment(0, &seg(CLIENT, SERVER, 1, 0, SYN, b""), None, &mut r);
        handshake(&mut t, &mut r);
        client_data(&mut t, &mut r, 0, b"x");
        assert_eq!(r.opened.len(), 1);
        assert_eq!(r.stream(KEY, Direction::ToServer), vec![data(b"x")]);
    }

    #[test]
    fn a_new_connection_on_the_same_endpoints_closes_the_old_flow() {
        let mut t = table(FlowLimits::default());
        let mut r = Recorder::default();
        handshake(&mut t, &mut r);
        client_data(&mut t, &mut r, 0, b"old");
        client_data(&mut t, &mut r, 5, b"held");
        // FIN never captured; the client reconnects from the same port.
        t.segment(0, &seg(CLIENT, SERVER, 90_000, 0, SYN, b""), None, &mut r);
        t.segment(
            0,
            &seg(CLIENT, SERVER, 90_001, 0, NONE, b"new"),
            None,
            &mut r,
        );
        assert_eq!(r.closed, vec![(KEY, CloseReason::Reused)]);
        assert_eq!(r.opened.len(), 2);
        assert_eq!(
            r.stream(KEY, Direction::ToServer),
            vec![data(b"old"), Ev::Gap(2), data(b"heldnew")],
            "the old flow's events, then the new flow's"
        );
        assert_eq!(t.counters().flows_reused, 1);
        check_invariants(&t);
    }

    #[test]
    fn keep_alives_and_zero_window_probes() {
        let mut t = table(FlowLimits::default());
        let mut r = Recorder::default();
        handshake(&mut t, &mut r);
        client_data(&mut t, &mut r, 0, b"abc");
        // Keep-alive: one garbage byte just before the next sequence number (RFC 9293 3.8.4).
        client_data(&mut t, &mut r, 2, b"\0");
        // Zero-window probe: the next byte, sent alone, then again with what follows it.
        client_data(&mut t, &mut r, 3, b"d");
        client_data(&mut t, &mut r, 3, b"d");
        client_data(&mut t, &mut r, 3, b"defg");
        assert_eq!(r.stream(KEY, Direction::ToServer), vec![data(b"abcdefg")]);
        let c = t.counters();
        assert_eq!(
            (c.retransmitted_segments, c.gaps, c.overlap_conflicts),
            (3, 0, 0)
        );
        check_invariants(&t);
    }

    #[test]
    fn data_far_outside_the_window_is_dropped() {
        let mut t = table(FlowLimits::default());
        let mut r = Recorder::default();
        handshake(&mut t, &mut r);
        client_data(&mut t, &mut r, (MAX_SEQ_AHEAD + 1) as u32, b"forged");
        client_data(&mut t, &mut r, 0, b"real");
        assert_eq!(r.stream(KEY, Direction::ToServer), vec![data(b"real")]);
        assert_eq!(t.counters().out_of_window_segments, 1);
        check_invariants(&t);
    }

    #[test]
    fn dropping_the_table_gives_the_budget_back() {
        let budget = MemoryBudget::new(DEFAULT_BUDGET);
        let mut t = FlowTable::new(FlowLimits::default(), budget.clone());
        let mut r = Recorder::default();
        handshake(&mut t, &mut r);
        client_data(&mut t, &mut r, 3, b"def");
        assert!(budget.in_use() > 0);
        drop(t);
        assert_eq!(budget.in_use(), 0);
    }

    /// The byte at offset `at` of every test stream, so any delivered byte can be checked.
    fn pattern(at: u64) -> u8 {
        (at % 251) as u8
    }

    /// Checks each delivered byte against [`pattern`], following gaps.
    #[derive(Debug, Default)]
    struct Verifier {
        delivered: u64,
        gap_bytes: u64,
        closed: u64,
    }

    impl FlowHandler for Verifier {
        /// Next offset per direction.
        type State = [u64; 2];

        fn open(&mut self, _: &FlowKey) -> Option<[u64; 2]> {
            Some([0; 2])
        }

        fn event(
            &mut self,
            state: &mut [u64; 2],
            _: &FlowKey,
            direction: Direction,
            event: StreamEvent<'_>,
        ) {
            let at = &mut state[direction.index()];
            match event {
                StreamEvent::Data(bytes) => {
                    for &byte in bytes {
                        assert_eq!(byte, pattern(*at), "byte at offset {at}");
                        *at += 1;
                    }
                    self.delivered += bytes.len() as u64;
                }
                StreamEvent::Gap { bytes } => {
                    assert!(bytes > 0, "every stream starts with a SYN");
                    *at += bytes;
                    self.gap_bytes += bytes;
                }
                StreamEvent::Closed => {}
            }
        }

        fn close(&mut self, _: [u64; 2], _: &FlowKey, _: CloseReason) {
            self.closed += 1;
        }
    }

    /// xorshift64: deterministic, no dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn endless_out_of_order_data_stays_within_the_caps() {
        const FLOWS: u64 = 1000;
        const SEGMENTS: u64 = 1_000_000;
        let limits = FlowLimits {
            max_buffered_per_direction: 16 << 10,
            max_buffered_total: 8 << 20,
            ..FlowLimits::default()
        };
        let budget = MemoryBudget::new(4 << 20);
        let mut t = FlowTable::new(limits, budget.clone());
        let mut v = Verifier::default();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let client = |i: u64| SocketAddr::new(CLIENT.ip(), 10_000 + i as u16);
        let isn = |i: u64| (i as u32).wrapping_mul(0x9e37_79b9);
        for i in 0..FLOWS {
            t.segment(
                0,
                &seg(client(i), SERVER, isn(i), 0, SYN, b""),
                None,
                &mut v,
            );
        }
        let mut buffer = [0u8; 1460];
        for n in 0..SEGMENTS {
            let i = rng.below(FLOWS);
            // Somewhere in a window 1 MiB wide, 64 KiB to 1 MiB ahead of the stream start;
            // the stream's own position moves on as holes are given up, so many land behind it.
            let at = (64 << 10) + rng.below(1 << 20);
            let len = 1 + rng.below(buffer.len() as u64) as usize;
            for (k, byte) in buffer[..len].iter_mut().enumerate() {
                *byte = pattern(at + k as u64);
            }
            let seq = isn(i).wrapping_add(1).wrapping_add(at as u32);
            t.segment(
                n,
                &seg(client(i), SERVER, seq, 0, NONE, &buffer[..len]),
                None,
                &mut v,
            );
            assert!(budget.in_use() <= budget.limit());
            if n % 100_000 == 0 {
                check_invariants(&t);
            }
        }
        check_invariants(&t);
        let c = *t.counters();
        assert!(c.buffer_cap_hits > 0 && c.budget_cap_hits > 0, "{c:?}");
        t.drain(&mut v);
        let c = *t.counters();
        check_invariants(&t);
        assert!(budget.peak() <= budget.limit());
        assert_eq!(budget.in_use(), 0);
        assert_eq!(c.buffered_bytes, 0);
        assert_eq!(v.delivered, c.bytes_delivered);
        assert_eq!(v.gap_bytes, c.gap_bytes);
        assert_eq!(v.closed, FLOWS);
        // Every payload byte was delivered once or dropped, nothing is left.
        assert_eq!(c.payload_bytes, c.bytes_delivered + c.dropped_bytes);
    }
}
