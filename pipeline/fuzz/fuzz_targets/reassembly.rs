//! The input is a script of small operations over three TCP flows sharing a tiny table (so the
//! caps, eviction and expiry are hit) and a fragment table on the same budget; the invariants
//! are checked after every operation and after the final drain.
//!
//! Operations (first byte's value modulo 6):
//! - 0..=2 segment: flow, direction, flags, seq delta (i16), ack delta (i16), length, conflict
//!   byte; payload bytes follow from the sequence number (xor the conflict byte), so overlaps
//!   agree unless the script says otherwise;
//! - 3 advance time by (next byte) x 50 ms;
//! - 4 expire;
//! - 5 IP fragment: id, offset (in 8-byte units), more fragments, length.

#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use dcwatch_pipeline::flow::{
    CloseReason, Direction, FlowHandler, FlowKey, FlowLimits, FlowTable, FragmentKey,
    FragmentLimits, FragmentTable, MemoryBudget, StreamEvent, TcpFlags, TcpSegment,
};

const FLOWS: usize = 3;
const MAX_PAYLOAD: usize = 64;
const STEP_NS: u64 = 50_000_000;

#[derive(Default)]
struct Checker {
    delivered: u64,
    gap_bytes: u64,
    open: u64,
}

impl FlowHandler for Checker {
    /// Closed seen per direction.
    type State = [bool; 2];

    fn open(&mut self, key: &FlowKey) -> Option<[bool; 2]> {
        // Flows to port 9 are not interested.
        if key.server.port() == 9 || key.client.port() == 9 {
            return None;
        }
        self.open += 1;
        Some([false; 2])
    }

    fn event(
        &mut self,
        state: &mut [bool; 2],
        _: &FlowKey,
        direction: Direction,
        event: StreamEvent<'_>,
    ) {
        let index = match direction {
            Direction::ToServer => 0,
            Direction::ToClient => 1,
        };
        assert!(!state[index], "event after Closed");
        match event {
            StreamEvent::Data(bytes) => {
                assert!(!bytes.is_empty(), "empty data event");
                self.delivered += bytes.len() as u64;
            }
            StreamEvent::Gap { bytes } => self.gap_bytes += bytes,
            StreamEvent::Closed => state[index] = true,
        }
    }

    fn close(&mut self, _: [bool; 2], _: &FlowKey, _: CloseReason) {
        self.open -= 1;
    }
}

fn check(flows: &FlowTable<[bool; 2]>, checker: &Checker, budget: &MemoryBudget) {
    let c = flows.counters();
    assert!(budget.in_use() <= budget.limit());
    assert!(budget.peak() <= budget.limit());
    assert_eq!(
        c.flows_created,
        c.flows_closed
            + c.flows_timed_out
            + c.flows_evicted
            + c.flows_reused
            + c.flows_drained
            + flows.len() as u64
    );
    assert_eq!(
        c.payload_bytes,
        c.bytes_delivered + c.dropped_bytes + c.buffered_bytes
    );
    assert_eq!(checker.delivered, c.bytes_delivered);
    assert_eq!(checker.gap_bytes, c.gap_bytes);
    assert!(checker.open <= flows.len() as u64);
}

fuzz_target!(|data: &[u8]| {
    let budget = MemoryBudget::new(1500);
    let limits = FlowLimits {
        max_flows: 2,
        idle_timeout_ns: 1_000_000_000,
        max_buffered_per_direction: 512,
        max_buffered_total: 1024,
    };
    let mut flows = FlowTable::new(limits, budget.clone());
    let fragment_limits = FragmentLimits {
        max_datagrams: 2,
        max_fragments_per_datagram: 4,
        ..FragmentLimits::default()
    };
    let mut fragments = FragmentTable::new(fragment_limits, budget.clone());
    let mut checker = Checker::default();
    let server = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 88);
    let clients = [40_000, 40_001, 9]
        .map(|port| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), port));
    // Where each flow's each direction was last sent from, to keep deltas near the stream.
    let mut cursors = [[0u32; 2]; FLOWS];
    let mut now = 0u64;
    let mut payload = [0u8; MAX_PAYLOAD];
    let mut input = data.iter().copied();
    while let Some(op) = input.next() {
        match op % 6 {
            0..=2 => {
                let mut next = || input.next().unwrap_or(0);
                let (which, flags) = (next(), next());
                let seq_delta = i16::from_le_bytes([next(), next()]);
                let ack_delta = i16::from_le_bytes([next(), next()]);
                let (len, conflict) = (usize::from(next()) % (MAX_PAYLOAD + 1), next());
                let flow = usize::from(which & 0x7f) % FLOWS;
                let to_server = which & 0x80 == 0;
                let (src, dst, own, peer) = if to_server {
                    (clients[flow], server, 0, 1)
                } else {
                    (server, clients[flow], 1, 0)
                };
                let seq = cursors[flow][own].wrapping_add_signed(i32::from(seq_delta));
                let ack = cursors[flow][peer].wrapping_add_signed(i32::from(ack_delta));
                for (k, byte) in payload[..len].iter_mut().enumerate() {
                    *byte = (seq.wrapping_add(k as u32) as u8) ^ conflict;
                }
                let flags = TcpFlags(flags & 0x17);
                let segment = TcpSegment {
                    src,
                    dst,
                    seq,
                    ack,
                    flags,
                    payload: &payload[..len],
                };
                flows.segment(now, &segment, None, &mut checker);
                if seq_delta >= 0 {
                    cursors[flow][own] = seq.wrapping_add(len as u32);
                }
            }
            3 => now += u64::from(input.next().unwrap_or(0)) * STEP_NS,
            4 => {
                flows.expire(now, &mut checker);
                fragments.expire(now);
            }
            _ => {
                let mut next = || input.next().unwrap_or(0);
                let (id, offset, more, len) = (next(), next(), next(), next());
                let key = FragmentKey {
                    src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                    dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
                    protocol: 17,
                    id: u32::from(id % 3),
                };
                let offset = usize::from(offset) * 8;
                let len = usize::from(len) % (MAX_PAYLOAD + 1);
                if let Some(whole) =
                    fragments.insert(now, key, offset, more & 1 == 1, &payload[..len])
                {
                    assert!(whole.len() <= 65_535);
                }
            }
        }
        check(&flows, &checker, &budget);
    }
    flows.drain(&mut checker);
    check(&flows, &checker, &budget);
    assert!(flows.is_empty());
    assert_eq!(checker.open, 0);
    assert_eq!(flows.counters().buffered_bytes, 0);
    drop(fragments);
    assert_eq!(budget.in_use(), 0);
});
