//! TCP endpoints known to carry DCE-RPC beyond the watched ports: those endpoint mappers
//! announced in their ept_map answers, handed over by the DCE-RPC dissector as typed values,
//! so that later connections to them are dissected too (and the live capture opens them).

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
};

use super::DissectCounters;

/// How long a TCP endpoint an endpoint mapper announced stays known as DCE-RPC, in capture
/// time: a server keeps its dynamic ports until it restarts, and clients connect within
/// seconds of asking; an hour covers retries and long sessions without keeping stale ports.
pub(super) const LEARNED_ENDPOINT_TTL_NS: u64 = 3_600 * 1_000_000_000;

/// TCP endpoints known as DCE-RPC at once. A DC announces a dozen; the bound keeps a hostile
/// endpoint mapper from growing the table (the entry closest to expiry goes first).
pub(super) const MAX_LEARNED_ENDPOINTS: usize = 4096;

/// Announcements held between two packets: one ept_map answer's towers (the parser's own
/// bound) fit many times over; more are counted as dropped.
pub(super) const MAX_ANNOUNCED: usize = 1024;

/// A TCP endpoint an endpoint mapper's answer announced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Announced {
    /// The endpoint mapper that answered (the answer's source).
    pub mapper: IpAddr,
    /// The endpoint it announced (the mapper's own address where the tower left it empty).
    pub endpoint: SocketAddr,
}

/// Endpoints the dissectors announced while handling one packet, for the dissector to learn
/// once the packet is done.
#[derive(Debug, Default)]
pub struct Announcements {
    list: Vec<Announced>,
    /// Announcements beyond [`MAX_ANNOUNCED`].
    dropped: u64,
}

impl Announcements {
    pub fn push(&mut self, announced: Announced) {
        if self.list.len() < MAX_ANNOUNCED {
            self.list.push(announced);
        } else {
            self.dropped += 1;
        }
    }

    #[cfg(test)]
    pub fn as_slice(&self) -> &[Announced] {
        &self.list
    }
}

/// TCP endpoints endpoint mappers announced, each known as DCE-RPC until its expiry (capture
/// time).
#[derive(Debug, Default)]
pub(super) struct LearnedEndpoints {
    table: HashMap<SocketAddr, u64>,
    /// Learned (or renewed) since the last [`LearnedEndpoints::take_fresh`].
    fresh: Vec<(SocketAddr, u64)>,
}

impl LearnedEndpoints {
    /// Learns the endpoints announced on the mapper's own address, emptying `announced`. A
    /// tower naming another host is not learned: any endpoint mapper could otherwise have the
    /// capture open a port for every address; it is counted instead.
    pub(super) fn learn_from(
        &mut self,
        time_ns: u64,
        announced: &mut Announcements,
        counters: &mut DissectCounters,
    ) {
        counters.rpc_endpoints_dropped += std::mem::take(&mut announced.dropped);
        for Announced { mapper, endpoint } in announced.list.drain(..) {
            if mapper != endpoint.ip() {
                counters.rpc_endpoints_foreign += 1;
                continue;
            }
            if !self.learn(time_ns, endpoint) {
                counters.rpc_endpoints_dropped += 1;
            }
        }
    }

    /// Learns `address`; `false` when the list of fresh endpoints is full and the live capture
    /// will not hear of it.
    fn learn(&mut self, time_ns: u64, address: SocketAddr) -> bool {
        let expiry = time_ns.saturating_add(LEARNED_ENDPOINT_TTL_NS);
        if !self.table.contains_key(&address) && self.table.len() >= MAX_LEARNED_ENDPOINTS {
            self.table.retain(|_, until| *until > time_ns);
            if self.table.len() >= MAX_LEARNED_ENDPOINTS
                && let Some(soonest) = self
                    .table
                    .iter()
                    .min_by_key(|(_, until)| **until)
                    .map(|(address, _)| *address)
            {
                self.table.remove(&soonest);
            }
        }
        self.table.insert(address, expiry);
        if self.fresh.len() < MAX_LEARNED_ENDPOINTS {
            self.fresh.push((address, expiry));
            true
        } else {
            false
        }
    }

    /// Whether `address` was announced as a DCE-RPC endpoint and has not expired.
    pub(super) fn contains(&self, address: SocketAddr, time_ns: u64) -> bool {
        self.table
            .get(&address)
            .is_some_and(|until| *until > time_ns)
    }

    /// The endpoints learned since the last call, with their expiry (ns, capture time).
    pub(super) fn take_fresh(&mut self) -> Vec<(SocketAddr, u64)> {
        std::mem::take(&mut self.fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announced(mapper: [u8; 4], endpoint: &str) -> Announced {
        Announced {
            mapper: IpAddr::from(mapper),
            endpoint: endpoint.parse().expect("address"),
        }
    }

    #[test]
    fn an_endpoint_on_the_mappers_own_address_is_learned_until_it_expires() {
        let mut learned = LearnedEndpoints::default();
        let mut counters = DissectCounters::default();
        let mut list = Announcements::default();
        list.push(announced([172, 16, 5, 58], "172.16.5.58:49668"));
        learned.learn_from(10, &mut list, &mut counters);
        assert_eq!(counters, DissectCounters::default());
        let address = "172.16.5.58:49668".parse().expect("address");
        assert!(learned.contains(address, 11));
        assert!(!learned.contains(address, 10 + LEARNED_ENDPOINT_TTL_NS));
        assert_eq!(learned.take_fresh().len(), 1);
        assert!(learned.take_fresh().is_empty());
    }

    #[test]
    fn an_endpoint_announced_on_another_host_is_not_learned() {
        let mut learned = LearnedEndpoints::default();
        let mut counters = DissectCounters::default();
        let mut list = Announcements::default();
        list.push(announced([172, 16, 5, 58], "10.0.0.1:49668"));
        learned.learn_from(10, &mut list, &mut counters);
        assert_eq!(counters.rpc_endpoints_foreign, 1);
        assert!(!learned.contains("10.0.0.1:49668".parse().expect("address"), 11));
        assert!(learned.take_fresh().is_empty());
    }

    #[test]
    fn announcements_beyond_the_bound_are_counted_as_dropped() {
        let mut list = Announcements::default();
        for port in 0..=MAX_ANNOUNCED {
            let port = u16::try_from(port).expect("port");
            list.push(Announced {
                mapper: IpAddr::from([10, 0, 0, 2]),
                endpoint: SocketAddr::from(([10, 0, 0, 2], port)),
            });
        }
        let mut learned = LearnedEndpoints::default();
        let mut counters = DissectCounters::default();
        learned.learn_from(1, &mut list, &mut counters);
        assert_eq!(counters.rpc_endpoints_dropped, 1);
        assert_eq!(learned.take_fresh().len(), MAX_ANNOUNCED);
    }
}
