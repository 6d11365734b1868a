//! IP fragment reassembly: fragments in, whole IP payloads out.
//!
//! RFC 791 3.2 (IPv4) and RFC 8200 4.5 (IPv6): fragments of one datagram share source,
//! destination, protocol and identification; offsets are in 8-byte units, so every fragment but
//! the last carries a multiple of 8 bytes; the last (More Fragments clear) gives the total length;
//! the datagram is complete when every byte up to it has arrived.
//!
//! Overlaps drop the whole datagram: RFC 5722 requires it for IPv6, and Linux does the same for
//! IPv4 since 4.19 (the FragmentSmack fixes), so a datagram whose bytes depend on which copy wins
//! is one the destination most likely discarded too. Exact duplicates (same offset, same bytes)
//! are only ignored, as retransmitted or mirrored-twice fragments are.
//!
//! Memory: every fragment held is charged to the [`MemoryBudget`] (with [`FRAGMENT_OVERHEAD`]);
//! when it refuses, the oldest datagrams are evicted to make room (legitimate datagrams complete
//! within milliseconds, so the oldest ones are the likeliest to be junk), and if that is not
//! enough the new fragment's datagram is dropped.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
};

use super::MemoryBudget;

/// The size of the IPv4 total length and IPv6 payload length fields' range: no datagram (without
/// jumbograms, which are never fragmented, RFC 2675 5) carries more.
pub const MAX_DATAGRAM_LEN: usize = 65_535;
/// Default [`FragmentLimits::max_datagrams`]. Fragmentation on a domain controller's links is
/// mostly Kerberos over UDP with large tickets and EDNS DNS: a handful of datagrams in flight.
pub const DEFAULT_MAX_DATAGRAMS: usize = 4096;
/// Default [`FragmentLimits::max_fragments_per_datagram`]: a 64 KiB datagram over the IPv6
/// minimum MTU (1280) takes 53 fragments, so 64 never refuses a real one; attacks use many tiny
/// fragments.
pub const DEFAULT_MAX_FRAGMENTS_PER_DATAGRAM: usize = 64;
/// Default [`FragmentLimits::timeout_ns`]: 30 s, Linux's `ipfrag_time` (RFC 791 suggests a
/// 15 s lower bound, RFC 8200 60 s); what has not completed by then never will.
pub const DEFAULT_FRAGMENT_TIMEOUT_NS: u64 = 30 * 1_000_000_000;
/// Bytes charged per fragment held on top of its data: the map entry, the `Vec` header, the
/// allocator's rounding.
pub const FRAGMENT_OVERHEAD: usize = 64;
/// Fragment offsets count 8-byte units (RFC 791 3.1, RFC 8200 4.5).
const FRAGMENT_UNIT: usize = 8;

/// The fragments of one datagram share this.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FragmentKey {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IPv4 protocol, or the IPv6 fragment header's next header.
    pub protocol: u8,
    /// Identification: 16 bits in IPv4, 32 in IPv6.
    pub id: u32,
}

/// Limits of a [`FragmentTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentLimits {
    /// Datagrams being reassembled at once; when full, the oldest is evicted.
    pub max_datagrams: usize,
    /// Largest reassembled payload; a fragment reaching past it drops its datagram.
    pub max_datagram_len: usize,
    /// Fragments held per datagram; one more drops the datagram.
    pub max_fragments_per_datagram: usize,
    /// A datagram not complete this long after its first fragment is dropped.
    pub timeout_ns: u64,
}

impl Default for FragmentLimits {
    fn default() -> Self {
        Self {
            max_datagrams: DEFAULT_MAX_DATAGRAMS,
            max_datagram_len: MAX_DATAGRAM_LEN,
            max_fragments_per_datagram: DEFAULT_MAX_FRAGMENTS_PER_DATAGRAM,
            timeout_ns: DEFAULT_FRAGMENT_TIMEOUT_NS,
        }
    }
}

dcwatch_telemetry::counters! {
    /// What a [`FragmentTable`] counted.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct FragmentCounters {
        /// Fragments handed to [`FragmentTable::insert`].
        counter fragments: u64,
        /// Datagrams completed.
        counter reassembled: u64,
        /// Datagrams dropped incomplete at the timeout.
        counter timed_out: u64,
        /// Datagrams evicted: the table was full, or the budget needed room.
        counter evicted: u64,
        /// Datagrams dropped for overlapping fragments.
        counter overlaps: u64,
        /// Fragments ignored as exact duplicates.
        counter duplicates: u64,
        /// Datagrams dropped for reaching past [`FragmentLimits::max_datagram_len`].
        counter too_large: u64,
        /// Datagrams dropped for having more than [`FragmentLimits::max_fragments_per_datagram`].
        counter too_many_fragments: u64,
        /// Fragments (or their datagram) dropped as inconsistent: not a multiple of 8 bytes before
        /// the last, data past the last fragment's end, two different ends.
        counter malformed: u64,
        /// Fragments whose datagram was dropped because the budget had no room even after evicting.
        counter budget_cap_hits: u64,
    }
}

#[derive(Debug)]
struct Datagram {
    /// Key of this datagram in [`FragmentTable::order`].
    since: (u64, u64),
    /// Fragments by offset; never overlapping.
    pieces: BTreeMap<usize, Vec<u8>>,
    /// Bytes in `pieces`.
    received: usize,
    /// The payload's length, once the last fragment is in.
    total: Option<usize>,
    /// Bytes charged to the budget.
    charge: usize,
}

/// Datagrams being reassembled.
#[derive(Debug)]
pub struct FragmentTable {
    limits: FragmentLimits,
    budget: MemoryBudget,
    counters: FragmentCounters,
    datagrams: HashMap<FragmentKey, Datagram>,
    /// Datagrams by (first fragment's time, serial): the oldest first.
    order: BTreeMap<(u64, u64), FragmentKey>,
    serial: u64,
}

/// Why a fragment drops its datagram.
#[derive(Clone, Copy, Debug)]
enum Discard {
    Overlap,
    TooLarge,
    TooMany,
    Malformed,
    Budget,
}

impl FragmentTable {
    /// An empty table charging what it holds to `budget`.
    pub fn new(limits: FragmentLimits, budget: MemoryBudget) -> Self {
        Self {
            limits,
            budget,
            counters: FragmentCounters::default(),
            datagrams: HashMap::new(),
            order: BTreeMap::new(),
            serial: 0,
        }
    }

    /// What was counted so far.
    pub fn counters(&self) -> &FragmentCounters {
        &self.counters
    }

    /// Datagrams being reassembled.
    pub fn len(&self) -> usize {
        self.datagrams.len()
    }

    /// No datagram being reassembled.
    pub fn is_empty(&self) -> bool {
        self.datagrams.is_empty()
    }

    /// Adds one fragment: `offset` in bytes (the header's offset field times 8),
    /// `more_fragments` the MF flag, `data` the fragment's payload (after the IPv4 header, or
    /// after the IPv6 fragment header). Returns the whole IP payload when this fragment
    /// completes it.
    pub fn insert(
        &mut self,
        now_ns: u64,
        key: FragmentKey,
        offset: usize,
        more_fragments: bool,
        data: &[u8],
    ) -> Option<Vec<u8>> {
        self.counters.fragments += 1;
        let Some(end) = offset
            .checked_add(data.len())
            .filter(|&end| end <= self.limits.max_datagram_len)
        else {
            self.drop_datagram(&key, Discard::TooLarge);
            return None;
        };
        if !offset.is_multiple_of(FRAGMENT_UNIT)
            || (more_fragments && (data.is_empty() || !data.len().is_multiple_of(FRAGMENT_UNIT)))
        {
            // RFC 8200 4.5: such a fragment is discarded; its datagram may still complete.
            self.counters.malformed += 1;
            return None;
        }
        if !self.datagrams.contains_key(&key) {
            self.create(now_ns, key);
        }
        let verdict = match self.datagrams.get(&key) {
            Some(datagram) => self.check(datagram, offset, end, more_fragments, data),
            None => return None,
        };
        match verdict {
            Check::Duplicate => {
                self.counters.duplicates += 1;
                return None;
            }
            Check::Drop(reason) => {
                self.drop_datagram(&key, reason);
                return None;
            }
            Check::Accept => {}
        }
        let charge = data.len().saturating_add(FRAGMENT_OVERHEAD);
        if !self.reserve(&key, charge) {
            self.drop_datagram(&key, Discard::Budget);
            return None;
        }
        let datagram = self.datagrams.get_mut(&key)?;
        datagram.pieces.insert(offset, data.to_vec());
        datagram.received += data.len();
        datagram.charge += charge;
        if !more_fragments {
            datagram.total = Some(end);
        }
        if datagram.total != Some(datagram.received) {
            return None;
        }
        let datagram = self.remove(&key)?;
        self.counters.reassembled += 1;
        let mut payload = Vec::with_capacity(datagram.received);
        for piece in datagram.pieces.values() {
            payload.extend_from_slice(piece);
        }
        Some(payload)
    }

    /// Drops the datagrams whose first fragment is older than [`FragmentLimits::timeout_ns`].
    pub fn expire(&mut self, now_ns: u64) {
        while let Some((&(since, _), &key)) = self.order.first_key_value() {
            if now_ns.saturating_sub(since) <= self.limits.timeout_ns {
                break;
            }
            self.remove(&key);
            self.counters.timed_out += 1;
        }
    }

    fn create(&mut self, now_ns: u64, key: FragmentKey) {
        if self.datagrams.len() >= self.limits.max_datagrams.max(1) {
            self.evict_oldest(&key);
        }
        self.serial += 1;
        let since = (now_ns, self.serial);
        self.order.insert(since, key);
        let datagram = Datagram {
            since,
            pieces: BTreeMap::new(),
            received: 0,
            total: None,
            charge: 0,
        };
        self.datagrams.insert(key, datagram);
    }

    /// Whether the fragment `[offset, end)` fits in `datagram`.
    fn check(
        &self,
        datagram: &Datagram,
        offset: usize,
        end: usize,
        more: bool,
        data: &[u8],
    ) -> Check {
        let before = datagram.pieces.range(..=offset).next_back();
        let within = datagram
            .pieces
            .range(offset.saturating_add(1)..end.max(offset.saturating_add(1)));
        for (&at, piece) in before.into_iter().chain(within) {
            let piece_end = at.saturating_add(piece.len());
            if at == offset && piece.as_slice() == data {
                return Check::Duplicate;
            }
            if piece_end > offset && at < end {
                return Check::Drop(Discard::Overlap);
            }
        }
        if datagram.pieces.len() >= self.limits.max_fragments_per_datagram {
            return Check::Drop(Discard::TooMany);
        }
        let last_end = datagram
            .pieces
            .last_key_value()
            .map_or(0, |(&at, piece)| at.saturating_add(piece.len()));
        let consistent = match (more, datagram.total) {
            // Two last fragments must agree; nothing may lie beyond the last.
            (false, Some(total)) => total == end,
            (false, None) => last_end <= end,
            (true, Some(total)) => end <= total,
            (true, None) => true,
        };
        if consistent {
            Check::Accept
        } else {
            Check::Drop(Discard::Malformed)
        }
    }

    /// Reserves `charge`, evicting the oldest other datagrams while the budget refuses.
    fn reserve(&mut self, key: &FragmentKey, charge: usize) -> bool {
        while !self.budget.try_reserve(charge) {
            if !self.evict_oldest(key) {
                return false;
            }
        }
        true
    }

    /// Evicts the oldest datagram other than `keep`; `false` if there is none.
    fn evict_oldest(&mut self, keep: &FragmentKey) -> bool {
        let victim = self
            .order
            .values()
            .find(|&candidate| candidate != keep)
            .copied();
        match victim {
            Some(victim) => {
                self.remove(&victim);
                self.counters.evicted += 1;
                true
            }
            None => false,
        }
    }

    fn drop_datagram(&mut self, key: &FragmentKey, reason: Discard) {
        self.remove(key);
        let counter = match reason {
            Discard::Overlap => &mut self.counters.overlaps,
            Discard::TooLarge => &mut self.counters.too_large,
            Discard::TooMany => &mut self.counters.too_many_fragments,
            Discard::Malformed => &mut self.counters.malformed,
            Discard::Budget => &mut self.counters.budget_cap_hits,
        };
        *counter += 1;
    }

    fn remove(&mut self, key: &FragmentKey) -> Option<Datagram> {
        let datagram = self.datagrams.remove(key)?;
        self.order.remove(&datagram.since);
        self.budget.release(datagram.charge);
        Some(datagram)
    }
}

enum Check {
    Accept,
    Duplicate,
    Drop(Discard),
}

impl Drop for FragmentTable {
    /// Gives the held bytes back to the budget, which may outlive the table.
    fn drop(&mut self) {
        for datagram in self.datagrams.values() {
            self.budget.release(datagram.charge);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn key(id: u32) -> FragmentKey {
        FragmentKey {
            src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
            protocol: 17,
            id,
        }
    }

    fn payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// `payload` cut in fragments of `size` bytes: (offset, more fragments, bytes).
    fn fragments(payload: &[u8], size: usize) -> Vec<(usize, bool, &[u8])> {
        let count = payload.chunks(size).count();
        payload
            .chunks(size)
            .enumerate()
            .map(|(i, chunk)| (i * size, i + 1 < count, chunk))
            .collect()
    }

    fn table(budget: usize) -> FragmentTable {
        FragmentTable::new(FragmentLimits::default(), MemoryBudget::new(budget))
    }

    #[test]
    fn in_order_and_reverse_order_reassemble() {
        let whole = payload(3000);
        for reverse in [false, true] {
            let mut t = table(1 << 20);
            let mut parts = fragments(&whole, 1480);
            if reverse {
                parts.reverse();
            }
            let last = parts.len() - 1;
            for (i, (offset, more, bytes)) in parts.into_iter().enumerate() {
                let out = t.insert(0, key(1), offset, more, bytes);
                assert_eq!(
                    out.is_some(),
                    i == last,
                    "complete only with the last one in"
                );
                if let Some(out) = out {
                    assert_eq!(out, whole);
                }
            }
            assert!(t.is_empty());
            assert_eq!(t.budget.in_use(), 0);
            assert_eq!(t.counters().reassembled, 1);
        }
    }

    #[test]
    fn exact_duplicates_are_ignored() {
        let whole = payload(24);
        let mut t = table(1 << 20);
        assert_eq!(t.insert(0, key(1), 0, true, &whole[..16]), None);
        assert_eq!(t.insert(0, key(1), 0, true, &whole[..16]), None);
        assert_eq!(t.insert(0, key(1), 16, false, &whole[16..]), Some(whole));
        assert_eq!(t.counters().duplicates, 1);
    }

    #[test]
    fn overlapping_fragments_drop_the_datagram() {
        let whole = payload(24);
        let mut t = table(1 << 20);
        assert_eq!(t.insert(0, key(1), 0, true, &whole[..16]), None);
        // Same range, other bytes: which copy would the host keep? Neither (RFC 5722).
        assert_eq!(t.insert(0, key(1), 8, true, &[0xff; 8]), None);
        assert!(t.is_empty());
        assert_eq!(
            t.insert(0, key(1), 16, false, &whole[16..]),
            None,
            "the datagram is gone"
        );
        assert_eq!(t.counters().overlaps, 1);
        // A partial overlap from the end side, too.
        let mut t = table(1 << 20);
        t.insert(0, key(2), 8, true, &whole[8..16]);
        t.insert(0, key(2), 0, true, &whole[..16]);
        assert_eq!(t.counters().overlaps, 1);
        assert_eq!(t.budget.in_use(), 0);
    }

    #[test]
    fn incomplete_datagrams_time_out() {
        let mut t = table(1 << 20);
        t.insert(0, key(1), 0, true, &payload(8));
        t.insert(20 * SECOND, key(2), 0, true, &payload(8));
        t.expire(DEFAULT_FRAGMENT_TIMEOUT_NS);
        assert_eq!(t.len(), 2);
        t.expire(DEFAULT_FRAGMENT_TIMEOUT_NS + 1);
        assert_eq!(t.len(), 1);
        assert_eq!(t.counters().timed_out, 1);
        assert_eq!(
            t.insert(0, key(1), 8, false, &payload(8)),
            None,
            "a late fragment starts over"
        );
        assert_eq!(t.budget.in_use(), 2 * (8 + FRAGMENT_OVERHEAD));
    }

    #[test]
    fn too_many_fragments_drop_the_datagram() {
        let whole = payload(8 * (DEFAULT_MAX_FRAGMENTS_PER_DATAGRAM + 1));
        let mut t = table(1 << 20);
        for (offset, more, bytes) in fragments(&whole, 8) {
            assert_eq!(t.insert(0, key(1), offset, more, bytes), None);
        }
        assert_eq!(t.counters().too_many_fragments, 1);
        assert_eq!(t.counters().reassembled, 0);
    }

    #[test]
    fn datagrams_over_65535_bytes_are_dropped() {
        let mut t = table(1 << 20);
        t.insert(0, key(1), 0, true, &payload(1480));
        // The largest offset the 13-bit field allows, with more than 7 bytes.
        assert_eq!(t.insert(0, key(1), 8191 * 8, false, &payload(16)), None);
        assert!(t.is_empty());
        assert_eq!(t.counters().too_large, 1);
        assert_eq!(
            t.insert(0, key(2), usize::MAX - 3, false, &payload(16)),
            None
        );
        assert_eq!(t.counters().too_large, 2);
        assert_eq!(t.budget.in_use(), 0);
    }

    #[test]
    fn inconsistent_fragments_are_malformed() {
        let mut t = table(1 << 20);
        assert_eq!(
            t.insert(0, key(1), 0, true, &payload(12)),
            None,
            "not a multiple of 8"
        );
        assert_eq!(
            t.insert(0, key(1), 3, false, &payload(8)),
            None,
            "offset not a multiple of 8"
        );
        assert_eq!(t.counters().malformed, 2);
        t.insert(0, key(2), 16, false, &payload(8));
        t.insert(0, key(2), 32, true, &payload(8));
        assert_eq!(t.counters().malformed, 3, "data past the last fragment");
        assert!(t.is_empty());
    }

    #[test]
    fn a_flood_of_first_fragments_stays_within_the_budget() {
        let limit = 64 * (1480 + FRAGMENT_OVERHEAD);
        let budget = MemoryBudget::new(limit);
        let mut t = FragmentTable::new(FragmentLimits::default(), budget.clone());
        let first = payload(1480);
        for id in 0..100_000 {
            assert_eq!(t.insert(u64::from(id), key(id), 0, true, &first), None);
        }
        assert!(budget.peak() <= limit);
        assert_eq!(t.len(), 64, "the oldest were evicted to make room");
        assert_eq!(t.counters().evicted, 100_000 - 64);
        // A legitimate datagram still gets through.
        let whole = payload(3000);
        let mut out = None;
        for (offset, more, bytes) in fragments(&whole, 1480) {
            out = t.insert(200_000, key(1 << 20), offset, more, bytes);
        }
        assert_eq!(out, Some(whole));
        // The caller holding the whole budget: nothing can be held, nothing is.
        let rest = budget.limit() - budget.in_use();
        assert!(budget.try_reserve(rest));
        let mut t2 = FragmentTable::new(FragmentLimits::default(), budget.clone());
        assert_eq!(t2.insert(0, key(7), 0, true, &first), None);
        assert_eq!(t2.counters().budget_cap_hits, 1);
        assert!(t2.is_empty());
        drop(t);
        drop(t2);
        assert_eq!(budget.in_use(), rest, "the tables gave back what they held");
    }

    #[test]
    fn a_full_table_evicts_the_oldest_datagram() {
        let limits = FragmentLimits {
            max_datagrams: 2,
            ..FragmentLimits::default()
        };
        let mut t = FragmentTable::new(limits, MemoryBudget::new(1 << 20));
        for id in 0..3 {
            t.insert(u64::from(id), key(id), 0, true, &payload(8));
        }
        assert_eq!(t.len(), 2);
        assert_eq!(t.counters().evicted, 1);
        assert_eq!(
            t.insert(5, key(1), 8, false, &payload(8)).map(|p| p.len()),
            Some(16)
        );
        assert_eq!(
            t.insert(5, key(0), 8, false, &payload(8)),
            None,
            "key 0 was evicted"
        );
    }
}
