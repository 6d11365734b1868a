//! TCP ports the XDP filter watches for a while because an endpoint mapper announced DCE-RPC on
//! them (DRSUAPI, which DCSync uses, lives on a port in 49152-65535 the DC picks at boot).
//!
//! The XDP port map is indexed by port alone, so a learned endpoint opens its port for every
//! address; the DC address set, when configured, still narrows it. Ports from the configuration
//! are never touched. A learned port stays until its last announcement expires.

use std::collections::HashMap;

/// At most this many learned ports at once: an endpoint mapper (or someone forging its answers)
/// must not be able to open the whole port range. A DC announces a few dozen.
pub const MAX_LEARNED_PORTS: usize = 1024;

/// What changes in the XDP port map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortChange {
    Watch(u16),
    Unwatch(u16),
}

dcwatch_telemetry::counters! {
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct DynamicPortCounters {
        /// Ports added to the XDP filter because an endpoint mapper announced them.
        counter learned: u64,
        /// Announcements of a port already watched, which only pushed its expiry back.
        counter renewed: u64,
        /// Learned ports removed again once their announcement expired.
        counter expired: u64,
        /// Announcements not followed because [`MAX_LEARNED_PORTS`] were already watched.
        counter refused: u64,
    }
}

#[derive(Debug)]
pub struct DynamicPorts {
    configured: Vec<u16>,
    /// Learned port → when it stops being watched (ns, the clock the caller uses).
    learned: HashMap<u16, u64>,
    counters: DynamicPortCounters,
}

impl DynamicPorts {
    /// `configured`: the TCP ports the filter watches anyway.
    pub fn new(configured: &[u16]) -> Self {
        Self {
            configured: configured.to_vec(),
            learned: HashMap::new(),
            counters: DynamicPortCounters::default(),
        }
    }

    pub fn counters(&self) -> &DynamicPortCounters {
        &self.counters
    }

    pub fn len(&self) -> usize {
        self.learned.len()
    }

    pub fn is_empty(&self) -> bool {
        self.learned.is_empty()
    }

    /// Whether `port` is watched because it was learned.
    pub fn is_learned(&self, port: u16) -> bool {
        self.learned.contains_key(&port)
    }

    /// New configured TCP ports (a reload): a learned port now configured stops being learned
    /// (the configuration keeps it), so it never expires out of the filter.
    pub fn set_configured(&mut self, configured: &[u16]) {
        self.configured = configured.to_vec();
        self.learned.retain(|port, _| !configured.contains(port));
    }

    /// An endpoint mapper announced `port` until `until_ns`: the change to make, if any.
    pub fn announce(&mut self, port: u16, until_ns: u64) -> Option<PortChange> {
        if self.configured.contains(&port) {
            return None;
        }
        if let Some(expiry) = self.learned.get_mut(&port) {
            *expiry = (*expiry).max(until_ns);
            self.counters.renewed += 1;
            return None;
        }
        if self.learned.len() >= MAX_LEARNED_PORTS {
            self.counters.refused += 1;
            return None;
        }
        self.learned.insert(port, until_ns);
        self.counters.learned += 1;
        Some(PortChange::Watch(port))
    }

    /// The learned ports whose time is up at `now_ns`, removed.
    pub fn expire(&mut self, now_ns: u64) -> Vec<PortChange> {
        let mut gone: Vec<u16> = self
            .learned
            .iter()
            .filter(|&(_, &until)| until <= now_ns)
            .map(|(&port, _)| port)
            .collect();
        gone.sort_unstable();
        for port in &gone {
            self.learned.remove(port);
        }
        self.counters.expired += gone.len() as u64;
        gone.into_iter().map(PortChange::Unwatch).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_is_watched_until_its_last_announcement_expires() {
        let mut ports = DynamicPorts::new(&[88, 135, 389]);
        assert_eq!(ports.announce(49_667, 100), Some(PortChange::Watch(49_667)));
        assert_eq!(ports.announce(49_667, 300), None);
        assert_eq!(ports.announce(49_667, 200), None);
        assert!(ports.expire(299).is_empty());
        assert_eq!(ports.expire(300), [PortChange::Unwatch(49_667)]);
        assert!(ports.is_empty());
        assert_eq!(
            *ports.counters(),
            DynamicPortCounters {
                learned: 1,
                renewed: 2,
                expired: 1,
                refused: 0
            }
        );
    }

    #[test]
    fn configured_ports_are_never_learned_nor_removed() {
        let mut ports = DynamicPorts::new(&[135, 445]);
        assert_eq!(ports.announce(445, 10), None);
        assert!(ports.expire(u64::MAX).is_empty());
        assert_eq!(ports.counters().learned, 0);
    }

    #[test]
    fn announcements_beyond_the_limit_are_refused_and_counted() {
        let mut ports = DynamicPorts::new(&[]);
        for port in 0..u16::try_from(MAX_LEARNED_PORTS).expect("fits") {
            assert!(ports.announce(10_000 + port, 50).is_some());
        }
        assert_eq!(ports.announce(60_000, 50), None);
        assert_eq!(ports.counters().refused, 1);
        assert_eq!(ports.len(), MAX_LEARNED_PORTS);
        // Expiry makes room again.
        assert_eq!(ports.expire(50).len(), MAX_LEARNED_PORTS);
        assert_eq!(ports.announce(60_000, 100), Some(PortChange::Watch(60_000)));
    }
}
