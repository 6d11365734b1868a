//! The evidence table: per address, the names seen there, by which method, when; bounded in
//! addresses and in evidence per address.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
};

use dcwatch_proto::v1::{Certainty, ResolutionMethod};

use super::evidence::{Evidence, host_key};

/// Addresses the table remembers; past it, the address updated least recently is forgotten
/// (counted in `address_evictions`). 65,536 addresses with a few names each stay within tens of
/// MB.
pub const MAX_ADDRESSES: usize = 65_536;
/// Distinct (name, method, strength) facts kept per address; past it, the oldest goes
/// (counted in `evidence_evictions`).
pub const MAX_EVIDENCE_PER_ADDRESS: usize = 8;

/// How long evidence stays good, and how close two names must be to contradict each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NnrConfig {
    /// Evidence older than this at the time of a resolution is stale: its name is still given,
    /// with LOW certainty. Milliseconds.
    pub lease_ms: i64,
    /// Two names for one address seen within this of each other are a conflict. Milliseconds.
    pub conflict_window_ms: i64,
}

/// A day: longer than most DHCP leases' renewal time, shorter than a typical lease.
pub const DEFAULT_LEASE_MS: i64 = 24 * 3600 * 1000;
/// An hour.
pub const DEFAULT_CONFLICT_WINDOW_MS: i64 = 3600 * 1000;

impl Default for NnrConfig {
    fn default() -> Self {
        Self {
            lease_ms: DEFAULT_LEASE_MS,
            conflict_window_ms: DEFAULT_CONFLICT_WINDOW_MS,
        }
    }
}

dcwatch_telemetry::counters! {
    /// What the table counted.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct TableCounters {
        /// Evidence handed to the table.
        counter evidence: u64,
        /// Addresses forgotten to stay within MAX_ADDRESSES.
        counter address_evictions: u64,
        /// Facts forgotten to stay within MAX_EVIDENCE_PER_ADDRESS.
        counter evidence_evictions: u64,
        /// Evidence naming another host than evidence for the same address within the conflict
        /// window.
        counter conflicts: u64,
    }
}

/// The answer for an address at a time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    pub name: String,
    pub method: ResolutionMethod,
    pub certainty: Certainty,
    /// Another name within the conflict window of the chosen evidence.
    pub conflict: bool,
    /// The chosen evidence is older than the lease.
    pub stale: bool,
}

#[derive(Clone, Debug)]
struct Fact {
    name: Box<str>,
    key: Box<str>,
    method: ResolutionMethod,
    strong: bool,
    /// The latest time it was seen, Unix milliseconds.
    time_ms: i64,
    /// Insertion order, to break ties between facts seen at the same millisecond.
    order: u64,
}

#[derive(Clone, Debug, Default)]
struct Entry {
    facts: Vec<Fact>,
    /// Its key in `recency`.
    touched: u64,
}

#[derive(Debug, Default)]
pub struct EvidenceTable {
    config: NnrConfig,
    entries: HashMap<IpAddr, Entry>,
    /// Addresses by last update, oldest first: the eviction order.
    recency: BTreeMap<u64, IpAddr>,
    next: u64,
    counters: TableCounters,
}

impl EvidenceTable {
    pub fn new(config: NnrConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    pub fn counters(&self) -> TableCounters {
        self.counters
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records `evidence` as seen at `time_ms`.
    pub fn insert(&mut self, evidence: &Evidence, time_ms: i64) {
        self.counters.evidence += 1;
        self.next += 1;
        let order = self.next;
        if !self.entries.contains_key(&evidence.address)
            && self.entries.len() >= MAX_ADDRESSES
            && let Some((_, oldest)) = self.recency.pop_first()
        {
            self.entries.remove(&oldest);
            self.counters.address_evictions += 1;
        }
        let entry = self.entries.entry(evidence.address).or_default();
        self.recency.remove(&entry.touched);
        entry.touched = order;
        self.recency.insert(order, evidence.address);

        let key = host_key(&evidence.name);
        let window = self.config.conflict_window_ms;
        if entry
            .facts
            .iter()
            .any(|fact| *fact.key != *key && (fact.time_ms - time_ms).abs() <= window)
        {
            self.counters.conflicts += 1;
        }
        if let Some(fact) = entry.facts.iter_mut().find(|fact| {
            *fact.name == *evidence.name
                && fact.method == evidence.method
                && fact.strong == evidence.strong
        }) {
            if time_ms >= fact.time_ms {
                fact.time_ms = time_ms;
                fact.order = order;
            }
            return;
        }
        entry.facts.push(Fact {
            name: evidence.name.as_str().into(),
            key: key.into(),
            method: evidence.method,
            strong: evidence.strong,
            time_ms,
            order,
        });
        if entry.facts.len() > MAX_EVIDENCE_PER_ADDRESS
            && let Some(oldest) = entry
                .facts
                .iter()
                .enumerate()
                .min_by_key(|(_, fact)| (fact.time_ms, fact.order))
                .map(|(index, _)| index)
        {
            entry.facts.swap_remove(oldest);
            self.counters.evidence_evictions += 1;
        }
    }

    /// The name of `address` at `time_ms`, by these rules:
    ///
    /// 1. Only facts seen at or before `time_ms` count. The freshest one (the latest; at the
    ///    same millisecond a strong one, then the one recorded last) gives the name and method.
    /// 2. It is *stale* when `time_ms` is more than the lease after it.
    /// 3. There is a *conflict* when another fact names another host (by [`host_key`]) within
    ///    the conflict window before or after the chosen one, and at or before `time_ms`.
    /// 4. Certainty is HIGH when it is neither stale nor in conflict, and either it is strong
    ///    or a fact of another method names the same host within the lease; LOW otherwise.
    pub fn resolve(&self, address: IpAddr, time_ms: i64) -> Option<Resolution> {
        let facts = &self.entries.get(&address)?.facts;
        let known = || facts.iter().filter(|fact| fact.time_ms <= time_ms);
        let chosen = known().max_by_key(|fact| (fact.time_ms, fact.strong, fact.order))?;
        let stale = time_ms - chosen.time_ms > self.config.lease_ms;
        let conflict = known().any(|fact| {
            fact.key != chosen.key
                && (chosen.time_ms - fact.time_ms).abs() <= self.config.conflict_window_ms
        });
        let agreed = known().any(|fact| {
            fact.key == chosen.key
                && fact.method != chosen.method
                && time_ms - fact.time_ms <= self.config.lease_ms
        });
        let high = !stale && !conflict && (chosen.strong || agreed);
        Some(Resolution {
            name: chosen.name.to_string(),
            method: chosen.method,
            certainty: if high {
                Certainty::High
            } else {
                Certainty::Low
            },
            conflict,
            stale,
        })
    }

    /// Every (address, name, method) the table holds, for tests and diagnostics.
    pub fn facts(&self) -> impl Iterator<Item = (IpAddr, &str, ResolutionMethod)> {
        self.entries.iter().flat_map(|(address, entry)| {
            entry
                .facts
                .iter()
                .map(move |fact| (*address, &*fact.name, fact.method))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;
    const HOUR: i64 = 60 * MINUTE;
    const T0: i64 = 1_800_000_000_000;

    fn address(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    fn evidence(at: &str, name: &str, method: ResolutionMethod, strong: bool) -> Evidence {
        Evidence {
            address: address(at),
            name: name.to_owned(),
            method,
            strong,
        }
    }

    fn ntlm(at: &str, name: &str) -> Evidence {
        evidence(at, name, ResolutionMethod::NtlmWorkstation, false)
    }

    fn kerberos_reply(at: &str, name: &str) -> Evidence {
        evidence(at, name, ResolutionMethod::KerberosPrincipal, true)
    }

    fn dns(at: &str, name: &str) -> Evidence {
        evidence(at, name, ResolutionMethod::Dns, false)
    }

    fn certainty(table: &EvidenceTable, at: &str, time: i64) -> Option<(String, Certainty)> {
        table
            .resolve(address(at), time)
            .map(|resolution| (resolution.name, resolution.certainty))
    }

    #[test]
    fn a_single_weak_method_is_low_and_two_agreeing_methods_are_high() {
        let mut table = EvidenceTable::new(NnrConfig::default());
        table.insert(&ntlm("10.0.0.5", "WS01"), T0);
        assert_eq!(
            certainty(&table, "10.0.0.5", T0 + MINUTE),
            Some(("WS01".to_owned(), Certainty::Low))
        );
        table.insert(&dns("10.0.0.5", "ws01.lab.example"), T0 + 2 * MINUTE);
        let resolution = table
            .resolve(address("10.0.0.5"), T0 + 3 * MINUTE)
            .expect("known");
        assert_eq!(resolution.name, "ws01.lab.example", "the freshest names it");
        assert_eq!(resolution.method, ResolutionMethod::Dns);
        assert_eq!(
            resolution.certainty,
            Certainty::High,
            "NTLM agrees with DNS"
        );
        assert!(!resolution.conflict && !resolution.stale);
    }

    #[test]
    fn a_fresh_strong_method_alone_is_high_until_its_lease_ends() {
        let config = NnrConfig {
            lease_ms: 2 * HOUR,
            ..NnrConfig::default()
        };
        let mut table = EvidenceTable::new(config);
        table.insert(&kerberos_reply("10.0.0.6", "WS02"), T0);
        assert_eq!(
            certainty(&table, "10.0.0.6", T0 + HOUR),
            Some(("WS02".to_owned(), Certainty::High))
        );
        let late = table
            .resolve(address("10.0.0.6"), T0 + 3 * HOUR)
            .expect("still named");
        assert_eq!(late.name, "WS02");
        assert!(late.stale);
        assert_eq!(late.certainty, Certainty::Low, "past the lease");
    }

    #[test]
    fn evidence_from_after_the_activity_does_not_count() {
        let mut table = EvidenceTable::new(NnrConfig::default());
        table.insert(&kerberos_reply("10.0.0.7", "WS03"), T0 + HOUR);
        assert_eq!(certainty(&table, "10.0.0.7", T0), None);
        table.insert(&ntlm("10.0.0.7", "OLDNAME"), T0);
        assert_eq!(
            certainty(&table, "10.0.0.7", T0 + MINUTE),
            Some(("OLDNAME".to_owned(), Certainty::Low))
        );
    }

    #[test]
    fn two_names_within_the_window_conflict_and_are_counted() {
        let mut table = EvidenceTable::new(NnrConfig::default());
        table.insert(&kerberos_reply("10.0.0.8", "WS04"), T0);
        table.insert(&kerberos_reply("10.0.0.8", "WS05"), T0 + 10 * MINUTE);
        assert_eq!(table.counters().conflicts, 1);
        let resolution = table
            .resolve(address("10.0.0.8"), T0 + 11 * MINUTE)
            .expect("known");
        assert_eq!(resolution.name, "WS05", "the freshest");
        assert!(resolution.conflict);
        assert_eq!(
            resolution.certainty,
            Certainty::Low,
            "strong, but contradicted"
        );
        // Before the second name arrived there was no conflict yet.
        assert_eq!(
            certainty(&table, "10.0.0.8", T0 + MINUTE),
            Some(("WS04".to_owned(), Certainty::High))
        );
    }

    #[test]
    fn a_name_change_after_the_window_is_churn_not_conflict() {
        let mut table = EvidenceTable::new(NnrConfig::default());
        table.insert(&kerberos_reply("10.0.0.9", "WS06"), T0);
        table.insert(&kerberos_reply("10.0.0.9", "WS07"), T0 + 2 * HOUR);
        assert_eq!(table.counters().conflicts, 0);
        assert_eq!(
            certainty(&table, "10.0.0.9", T0 + 2 * HOUR + MINUTE),
            Some(("WS07".to_owned(), Certainty::High))
        );
    }

    #[test]
    fn the_same_host_in_two_spellings_is_no_conflict() {
        let mut table = EvidenceTable::new(NnrConfig::default());
        table.insert(&kerberos_reply("10.0.0.10", "WS08"), T0);
        table.insert(&dns("10.0.0.10", "ws08.lab.example"), T0 + MINUTE);
        table.insert(&ntlm("10.0.0.10", "ws08"), T0 + 2 * MINUTE);
        assert_eq!(table.counters().conflicts, 0);
        assert_eq!(
            certainty(&table, "10.0.0.10", T0 + 3 * MINUTE),
            Some(("ws08".to_owned(), Certainty::High))
        );
    }

    #[test]
    fn evidence_per_address_is_bounded() {
        let mut table = EvidenceTable::new(NnrConfig::default());
        for index in 0..MAX_EVIDENCE_PER_ADDRESS as i64 + 3 {
            table.insert(
                &ntlm("10.0.0.11", &format!("NAME{index}")),
                T0 + index * HOUR * 2,
            );
        }
        assert_eq!(table.facts().count(), MAX_EVIDENCE_PER_ADDRESS);
        assert_eq!(table.counters().evidence_evictions, 3);
        assert!(
            table.facts().all(|(_, name, _)| name != "NAME0"),
            "the oldest went first"
        );
    }

    /// A million addresses (in release builds; a fifth of that in debug ones, which are ten
    /// times slower): the table stays at its cap, and every address past it costs one eviction
    /// of the least recently updated.
    #[test]
    fn a_million_addresses_stay_within_the_cap() {
        const ADDRESSES: u32 = if cfg!(debug_assertions) {
            200_000
        } else {
            1_000_000
        };
        let mut table = EvidenceTable::new(NnrConfig::default());
        let mut fact = ntlm("10.0.0.1", "WS");
        for index in 0..ADDRESSES {
            fact.address = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + index));
            table.insert(&fact, T0 + i64::from(index));
            assert!(table.len() <= MAX_ADDRESSES);
        }
        assert_eq!(table.len(), MAX_ADDRESSES);
        assert_eq!(
            table.counters().address_evictions,
            u64::from(ADDRESSES) - MAX_ADDRESSES as u64
        );
        let last = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + ADDRESSES - 1));
        assert!(table.resolve(last, T0 + i64::from(ADDRESSES)).is_some());
        let first = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000));
        assert!(table.resolve(first, T0 + i64::from(ADDRESSES)).is_none());
    }
}
