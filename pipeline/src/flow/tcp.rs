//! One direction of a TCP connection: sequence numbers in, an ordered byte stream out.
//!
//! Offsets are 64-bit and relative to the first byte of the stream, so the 32-bit sequence
//! space can wrap any number of times; a segment's sequence number is placed at the offset
//! nearest to the next expected byte (within ±2^31, RFC 9293 3.4's modular comparison).
//!
//! Overlaps: the first copy of a byte wins. A segment's bytes that are already held are dropped
//! (compared, and counted as a conflict when they differ); bytes already delivered are dropped
//! without comparison (they are gone). Hosts resolve overlaps differently (first or last copy,
//! per OS), so no policy matches every receiver; first-wins is the simple one that cannot be
//! steered after the fact: once bytes are accepted, a later conflicting copy (the classic IDS
//! evasion, Ptacek & Newsham 1998) cannot change what the parser sees, and the conflict counter
//! shows it was tried.

use std::collections::BTreeMap;

use super::{FlowCounters, FlowLimits, MAX_SEQ_AHEAD, MemoryBudget, SEGMENT_OVERHEAD, StreamEvent};

/// What the half-streams share: limits, the budget, counters and the table's held total.
pub(crate) struct Ctx<'c> {
    pub limits: &'c FlowLimits,
    pub budget: &'c MemoryBudget,
    pub counters: &'c mut FlowCounters,
    /// Bytes charged (payload plus [`SEGMENT_OVERHEAD`]) by all half-streams of the table.
    pub held_total: &'c mut usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Nothing known of the sequence space yet.
    Unknown,
    /// Reassembling.
    Open,
    /// FIN or RST handled and [`StreamEvent::Closed`] delivered: later data is dropped.
    Closed,
}

/// One direction's reassembly state.
#[derive(Debug)]
pub(crate) struct HalfStream {
    phase: Phase,
    /// Sequence number of relative offset 0.
    base: u32,
    /// Relative offset of the next byte to deliver.
    next: u64,
    /// Sequence number of the SYN, when one was seen.
    isn: Option<u32>,
    /// Picked up mid-stream: a `Gap { bytes: 0 }` is owed before the first other event.
    owes_unknown_gap: bool,
    /// Out-of-order data: non-overlapping, every key above `next`.
    held: BTreeMap<u64, Vec<u8>>,
    /// Bytes charged for `held` (payload plus [`SEGMENT_OVERHEAD`] per entry).
    held_charge: usize,
}

impl Default for HalfStream {
    fn default() -> Self {
        Self {
            phase: Phase::Unknown,
            base: 0,
            next: 0,
            isn: None,
            owes_unknown_gap: false,
            held: BTreeMap::new(),
            held_charge: 0,
        }
    }
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// `bytes[from - origin .. to - origin]`, empty when out of range.
fn slice_at(bytes: &[u8], origin: u64, from: u64, to: u64) -> &[u8] {
    let start = to_usize(from.saturating_sub(origin));
    let end = to_usize(to.saturating_sub(origin));
    bytes.get(start..end).unwrap_or_default()
}

impl HalfStream {
    pub(super) fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Nothing delivered or held yet: the sequence space can still be re-based.
    fn is_pristine(&self) -> bool {
        self.next == 0 && self.held.is_empty()
    }

    /// Whether a SYN with sequence number `seq` is a retransmission of the one already seen.
    pub(super) fn is_same_syn(&self, seq: u32) -> bool {
        self.isn == Some(seq)
    }

    /// Whether a SYN with sequence number `seq` belongs to this stream: its first byte follows
    /// that SYN (the SYN seen before, or the one a mid-stream pickup started just after).
    pub(super) fn starts_after_syn(&self, seq: u32) -> bool {
        self.base == seq.wrapping_add(1)
    }

    /// Whether the stream has moved on from its first byte (so a new SYN means a new connection).
    pub(super) fn has_progressed(&self) -> bool {
        !self.is_pristine()
    }

    /// A SYN from this direction: the stream's first byte is `seq + 1`. A retransmitted SYN
    /// changes nothing; a different one re-bases a stream that has not delivered anything yet
    /// (the first SYN's connection attempt was abandoned).
    pub(super) fn syn(&mut self, seq: u32) {
        if self.phase == Phase::Closed || self.isn == Some(seq) {
            return;
        }
        if self.phase == Phase::Unknown || self.is_pristine() {
            self.phase = Phase::Open;
            self.isn = Some(seq);
            self.base = seq.wrapping_add(1);
            self.next = 0;
            self.owes_unknown_gap = false;
        }
    }

    /// The peer's SYN+ACK acknowledged `ack`: this direction's first byte, even if its SYN was
    /// not captured.
    pub(super) fn start_at_acked(&mut self, ack: u32) {
        if self.phase == Phase::Unknown {
            self.phase = Phase::Open;
            self.base = ack;
            self.next = 0;
        }
    }

    /// Relative offset of sequence number `seq`: the one nearest to `next`.
    fn offset_of(&self, seq: u32) -> i64 {
        // Truncation to the low 32 bits is the point: sequence numbers are modulo 2^32.
        let expected = self.base.wrapping_add(self.next as u32);
        let delta = seq.wrapping_sub(expected) as i32;
        i64::try_from(self.next)
            .unwrap_or(i64::MAX)
            .saturating_add(i64::from(delta))
    }

    /// Data from this direction: `seq` is the sequence number of `payload[0]`.
    pub(super) fn data<F>(&mut self, ctx: &mut Ctx<'_>, seq: u32, payload: &[u8], sink: &mut F)
    where
        F: FnMut(StreamEvent<'_>),
    {
        let len = to_u64(payload.len());
        if len == 0 {
            return;
        }
        ctx.counters.payload_bytes += len;
        match self.phase {
            Phase::Closed => {
                ctx.counters.dropped_bytes += len;
                return;
            }
            Phase::Unknown => {
                self.phase = Phase::Open;
                self.base = seq;
                self.next = 0;
                self.owes_unknown_gap = true;
                ctx.counters.midstream_pickups += 1;
            }
            Phase::Open => {}
        }
        let rel = self.offset_of(seq);
        let next = i64::try_from(self.next).unwrap_or(i64::MAX);
        let end = rel.saturating_add(i64::try_from(len).unwrap_or(i64::MAX));
        if end <= next {
            ctx.counters.retransmitted_segments += 1;
            ctx.counters.dropped_bytes += len;
            return;
        }
        // Part of it was delivered already: keep only the new part.
        let (start, payload) = if rel < next {
            let old = next.abs_diff(rel);
            ctx.counters.retransmitted_segments += 1;
            ctx.counters.dropped_bytes += old;
            (self.next, payload.get(to_usize(old)..).unwrap_or_default())
        } else {
            (rel.unsigned_abs(), payload)
        };
        if start - self.next > MAX_SEQ_AHEAD {
            ctx.counters.out_of_window_segments += 1;
            ctx.counters.dropped_bytes += to_u64(payload.len());
            return;
        }
        if start == self.next && self.held.is_empty() {
            // The hot path: in order, nothing held, straight from the frame.
            self.deliver(ctx, payload, sink);
            return;
        }
        if start > self.next {
            ctx.counters.out_of_order_segments += 1;
        }
        self.merge(ctx, start, payload, sink);
    }

    fn pay_unknown_gap<F: FnMut(StreamEvent<'_>)>(&mut self, sink: &mut F) {
        if self.owes_unknown_gap {
            self.owes_unknown_gap = false;
            sink(StreamEvent::Gap { bytes: 0 });
        }
    }

    /// Delivers bytes at `next`.
    fn deliver<F: FnMut(StreamEvent<'_>)>(
        &mut self,
        ctx: &mut Ctx<'_>,
        bytes: &[u8],
        sink: &mut F,
    ) {
        if bytes.is_empty() {
            return;
        }
        self.pay_unknown_gap(sink);
        let len = to_u64(bytes.len());
        ctx.counters.bytes_delivered += len;
        self.next = self.next.saturating_add(len);
        sink(StreamEvent::Data(bytes));
    }

    /// Gives up the bytes up to offset `to`.
    fn skip_to<F: FnMut(StreamEvent<'_>)>(&mut self, ctx: &mut Ctx<'_>, to: u64, sink: &mut F) {
        if to <= self.next {
            return;
        }
        self.pay_unknown_gap(sink);
        let bytes = to - self.next;
        ctx.counters.gaps += 1;
        ctx.counters.gap_bytes += bytes;
        self.next = to;
        sink(StreamEvent::Gap { bytes });
    }

    /// Removes a held entry, giving its charge back.
    fn unhold(&mut self, ctx: &mut Ctx<'_>, data: &[u8]) {
        let charge = data.len().saturating_add(SEGMENT_OVERHEAD);
        self.held_charge = self.held_charge.saturating_sub(charge);
        *ctx.held_total = ctx.held_total.saturating_sub(charge);
        ctx.budget.release(charge);
        ctx.counters.buffered_bytes = ctx
            .counters
            .buffered_bytes
            .saturating_sub(to_u64(data.len()));
    }

    /// Delivers the held entries that continue the stream.
    fn drain_contiguous<F: FnMut(StreamEvent<'_>)>(&mut self, ctx: &mut Ctx<'_>, sink: &mut F) {
        while let Some(entry) = self.held.first_entry() {
            let at = *entry.key();
            if at > self.next {
                break;
            }
            let data = entry.remove();
            self.unhold(ctx, &data);
            // Keys are above `next` when inserted and `next` only moves to a key or to the end
            // of an entry, so `at == next`; trimming keeps a stray overlap from being delivered
            // twice all the same.
            let fresh = slice_at(&data, at, self.next, at.saturating_add(to_u64(data.len())));
            ctx.counters.dropped_bytes += to_u64(data.len() - fresh.len());
            self.deliver(ctx, fresh, sink);
        }
    }

    /// Gives up the first hole: a gap up to the first held entry, then the data that follows.
    /// `false` when nothing is held.
    fn skip_first_hole<F: FnMut(StreamEvent<'_>)>(
        &mut self,
        ctx: &mut Ctx<'_>,
        sink: &mut F,
    ) -> bool {
        let Some(&first) = self.held.keys().next() else {
            return false;
        };
        self.skip_to(ctx, first, sink);
        self.drain_contiguous(ctx, sink);
        true
    }

    /// Places a segment that is out of order or overlaps held data: new bytes at `next` are
    /// delivered, the others held (first copy wins), holes given up when a cap says so.
    fn merge<F>(&mut self, ctx: &mut Ctx<'_>, start: u64, payload: &[u8], sink: &mut F)
    where
        F: FnMut(StreamEvent<'_>),
    {
        let end = start.saturating_add(to_u64(payload.len()));
        let (pieces, conflict, overlapped) = self.uncovered(start, end, payload);
        if conflict {
            ctx.counters.overlap_conflicts += 1;
        }
        ctx.counters.dropped_bytes += overlapped;
        if pieces.is_empty() {
            ctx.counters.retransmitted_segments += 1;
            return;
        }
        for (from, to) in pieces {
            if to <= self.next {
                ctx.counters.dropped_bytes += to - from;
                continue;
            }
            if from < self.next {
                ctx.counters.dropped_bytes += self.next - from;
            }
            let from = from.max(self.next);
            self.place(ctx, from, slice_at(payload, start, from, to), sink);
        }
    }

    /// The parts of `[start, end)` no held entry covers, whether an overlap differs from what
    /// is held, and how many bytes overlap.
    fn uncovered(&self, start: u64, end: u64, payload: &[u8]) -> (Vec<(u64, u64)>, bool, u64) {
        let mut pieces = Vec::new();
        let mut conflict = false;
        let mut overlapped = 0;
        let mut cursor = start;
        let before = self.held.range(..=start).next_back();
        let within = self
            .held
            .range(start.saturating_add(1)..end.max(start.saturating_add(1)));
        for (&at, data) in before.into_iter().chain(within) {
            let data_end = at.saturating_add(to_u64(data.len()));
            if data_end <= cursor {
                continue;
            }
            if at > cursor {
                pieces.push((cursor, at));
            }
            let (from, to) = (at.max(cursor), data_end.min(end));
            if from < to {
                overlapped += to - from;
                conflict |= slice_at(data, at, from, to) != slice_at(payload, start, from, to);
            }
            cursor = cursor.max(to);
        }
        if cursor < end {
            pieces.push((cursor, end));
        }
        (pieces, conflict, overlapped)
    }

    /// New bytes at offset `at >= next`: delivered if in order, else held, giving up holes while
    /// a cap refuses to hold them.
    fn place<F>(&mut self, ctx: &mut Ctx<'_>, at: u64, bytes: &[u8], sink: &mut F)
    where
        F: FnMut(StreamEvent<'_>),
    {
        loop {
            if at <= self.next {
                let end = at.saturating_add(to_u64(bytes.len()));
                let fresh = slice_at(bytes, at, self.next, end);
                ctx.counters.dropped_bytes += to_u64(bytes.len() - fresh.len());
                self.deliver(ctx, fresh, sink);
                self.drain_contiguous(ctx, sink);
                return;
            }
            if self.try_hold(ctx, at, bytes) {
                return;
            }
            // Give up the first hole: up to the first held entry or to these bytes, whichever
            // comes first.
            let first_held = self.held.keys().next().copied().unwrap_or(u64::MAX);
            self.skip_to(ctx, first_held.min(at), sink);
            self.drain_contiguous(ctx, sink);
        }
    }

    /// Holds `bytes` at `at` if every cap allows it; counts the cap that refused otherwise.
    fn try_hold(&mut self, ctx: &mut Ctx<'_>, at: u64, bytes: &[u8]) -> bool {
        let charge = bytes.len().saturating_add(SEGMENT_OVERHEAD);
        if self.held_charge.saturating_add(charge) > ctx.limits.max_buffered_per_direction {
            ctx.counters.buffer_cap_hits += 1;
            return false;
        }
        if ctx.held_total.saturating_add(charge) > ctx.limits.max_buffered_total
            || !ctx.budget.try_reserve(charge)
        {
            ctx.counters.budget_cap_hits += 1;
            return false;
        }
        self.held_charge += charge;
        *ctx.held_total += charge;
        ctx.counters.buffered_bytes += to_u64(bytes.len());
        self.held.insert(at, bytes.to_vec());
        true
    }

    /// The peer acknowledged up to `ack`: it has every byte before it, so the holes below it
    /// are bytes the capture lost. Gives them up now rather than waiting for a cap.
    pub(super) fn acked<F: FnMut(StreamEvent<'_>)>(
        &mut self,
        ctx: &mut Ctx<'_>,
        ack: u32,
        sink: &mut F,
    ) {
        if self.phase != Phase::Open {
            return;
        }
        let acked = self.offset_of(ack);
        let next = i64::try_from(self.next).unwrap_or(i64::MAX);
        if acked <= next || acked.abs_diff(next) > MAX_SEQ_AHEAD {
            return;
        }
        let acked = acked.unsigned_abs();
        while self.next < acked {
            ctx.counters.ack_gaps += 1;
            match self.held.keys().next() {
                Some(&first) if first < acked => {
                    self.skip_first_hole(ctx, sink);
                }
                _ => {
                    self.skip_to(ctx, acked, sink);
                    self.drain_contiguous(ctx, sink);
                }
            }
        }
    }

    /// FIN from this direction, at sequence number `seq` (just after the segment's data): gives
    /// up whatever is missing before it, drops what was held beyond it, and closes.
    pub(super) fn fin<F: FnMut(StreamEvent<'_>)>(
        &mut self,
        ctx: &mut Ctx<'_>,
        seq: u32,
        sink: &mut F,
    ) {
        match self.phase {
            Phase::Closed => return,
            Phase::Unknown => {
                // Nothing of this direction was seen: nothing to give up either.
                self.phase = Phase::Closed;
                sink(StreamEvent::Closed);
                return;
            }
            Phase::Open => {}
        }
        let at = self.offset_of(seq);
        let next = i64::try_from(self.next).unwrap_or(i64::MAX);
        let at = if at <= next || at.abs_diff(next) > MAX_SEQ_AHEAD {
            // A FIN behind the stream (after a hole was given up past it) or far outside the
            // window: close where the stream is.
            self.next
        } else {
            at.unsigned_abs()
        };
        self.drop_from(ctx, at);
        self.flush(ctx, sink);
        self.skip_to(ctx, at, sink);
        self.close(sink);
    }

    /// Drops held bytes at offsets `at` and beyond (data after FIN is not part of the stream).
    fn drop_from(&mut self, ctx: &mut Ctx<'_>, at: u64) {
        let beyond = self.held.split_off(&at);
        for data in beyond.values() {
            self.unhold(ctx, data);
            ctx.counters.dropped_bytes += to_u64(data.len());
        }
        // An entry straddling `at` keeps only its part before it.
        if let Some(mut entry) = self.held.last_entry() {
            let start = *entry.key();
            let keep = to_usize(at.saturating_sub(start));
            if keep < entry.get().len() {
                let data = entry.get_mut();
                let cut = data.len() - keep;
                data.truncate(keep);
                self.held_charge = self.held_charge.saturating_sub(cut);
                *ctx.held_total = ctx.held_total.saturating_sub(cut);
                ctx.budget.release(cut);
                ctx.counters.buffered_bytes =
                    ctx.counters.buffered_bytes.saturating_sub(to_u64(cut));
                ctx.counters.dropped_bytes += to_u64(cut);
            }
        }
    }

    /// Gives up every hole: what is held is delivered, after a gap for each hole before it.
    pub(super) fn flush<F: FnMut(StreamEvent<'_>)>(&mut self, ctx: &mut Ctx<'_>, sink: &mut F) {
        while self.skip_first_hole(ctx, sink) {}
    }

    /// Delivers [`StreamEvent::Closed`] (once).
    pub(super) fn close<F: FnMut(StreamEvent<'_>)>(&mut self, sink: &mut F) {
        if self.phase != Phase::Closed {
            self.phase = Phase::Closed;
            sink(StreamEvent::Closed);
        }
    }

    /// Gives the budget back without delivering (the table is being dropped).
    pub(super) fn discard(&mut self, ctx: &mut Ctx<'_>) {
        let held = std::mem::take(&mut self.held);
        for data in held.values() {
            self.unhold(ctx, data);
            ctx.counters.dropped_bytes += to_u64(data.len());
        }
    }
}
