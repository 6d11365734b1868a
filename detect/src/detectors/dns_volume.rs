//! Network-mapping reconnaissance over DNS by volume (MDI 2007, Part II: "those using an
//! excessive number of requests"; MDI gives no figure). A source that suddenly asks far more
//! distinct names than it learned to ask is mapping the network: a reverse-lookup (PTR) sweep
//! of an address range (`nmap -sL`, `dnsrecon -t rvl`), a brute force of names (most answered
//! NXDOMAIN: `dnsrecon -t brt`, `gobuster dns`), an enumeration of services (SRV, ANY).
//!
//! Per source, the distinct names of each `PERIOD` (tumbling, at most `MAX_NAMES_PER_PERIOD`)
//! with their PTR, NXDOMAIN and SRV/ANY counts. Each time a period's count reaches a power of
//! two (its *level*, log2 of the count), the source is judged:
//! - while the DNS server's DC learns (8 days, threshold high), the level is taught to the
//!   source's profile as items `dns_volume`/`L` for every level up to it: a profile knows the
//!   busiest period it learned as a contiguous run of levels, in at most a dozen items;
//! - after, it alerts when the count reaches `VOLUME_FLOOR` (`LOW_VOLUME_FLOOR` at threshold
//!   low) and the profile does not know level `L - MARGIN_LEVELS`: the period is at least twice
//!   the busiest one learned. A B-TP close teaches the same run, so that volume stops alerting
//!   and a busier one still does.
//!
//! DNS servers, DCs and configured resolvers forward everyone's queries: they are not suspects
//! (asked only when a source reaches a level, not per query). Per query the cost is one lookup
//! of the source and one of the name's 64-bit hash.

use std::net::IpAddr;

use dcwatch_proto::v1::{DnsActivity, alert::Confidence, alert_entity::Role};
use hashbrown::{HashMap, hash_map::Entry};

use super::{
    Context,
    target::{clip, listed},
};
use crate::{
    bounded::BoundedMap,
    catalogue::DNS_RECON,
    config::Threshold,
    finding::{
        Finding, destination, destination_text, source_key, source_text, vouched_source_name,
    },
    knowledge::Source,
    learning::{Behaviour, learning_now},
    observed::Observed,
    profiles::Profiles,
    profiling::{computer_key, dc_key},
    time::{MINUTE, Millis},
};

/// The span distinct names are counted over (*ours*).
pub(super) const PERIOD: Millis = 10 * MINUTE;
/// Distinct names in a period that may alert at thresholds high and medium (*ours*: a /24's
/// reverse sweep; a browsing workstation asks well under this).
pub(super) const VOLUME_FLOOR: usize = 256;
/// ... at threshold low (MDI's low lowers its thresholds).
pub(super) const LOW_VOLUME_FLOOR: usize = VOLUME_FLOOR / 4;
/// Levels (doublings) above the busiest learned period before a period alerts.
pub(super) const MARGIN_LEVELS: u32 = 1;
/// Sources followed at once (the least recently active go first, counted).
pub(super) const MAX_SOURCES: usize = 10_000;
/// Distinct names counted per source and period (more are counted as dropped: the period is
/// far above every floor by then).
pub(super) const MAX_NAMES_PER_PERIOD: usize = 1_024;
/// Names an alert quotes.
pub(super) const MAX_SAMPLES: usize = 8;
/// The profile facet of the learned levels.
pub(super) const FACET: &str = "dns_volume";
/// The lowest level taught: the low floor's, less the margin (lower ones never alert).
const LEARN_MIN_LEVEL: u32 = LOW_VOLUME_FLOOR.ilog2() - MARGIN_LEVELS;
/// NXDOMAIN (RFC 1035 name error).
pub(super) const NXDOMAIN: u32 = 3;

/// One source's current period.
#[derive(Debug, Default)]
struct Period {
    /// The period's index (`time / PERIOD`).
    index: Millis,
    first: Millis,
    /// Name hash -> answered NXDOMAIN. Looked up on every query and never read in its order:
    /// hashbrown's hash, not SipHash.
    names: HashMap<u64, bool>,
    ptr: usize,
    srv_any: usize,
    nxdomain: usize,
    samples: Vec<String>,
    /// Names already added to the alert's count.
    counted: usize,
}

impl Period {
    fn restart(&mut self, index: Millis, time: Millis) {
        // A busy period's table is let go rather than kept at its size.
        if self.names.capacity() > 4 * LOW_VOLUME_FLOOR {
            self.names = HashMap::new();
        } else {
            self.names.clear();
        }
        self.index = index;
        self.first = time;
        self.ptr = 0;
        self.srv_any = 0;
        self.nxdomain = 0;
        self.samples.clear();
        self.counted = 0;
    }
}

#[derive(Debug)]
pub(super) struct DnsVolume {
    sources: BoundedMap<IpAddr, Period>,
    dropped: u64,
}

impl Default for DnsVolume {
    fn default() -> Self {
        Self {
            sources: BoundedMap::new(MAX_SOURCES),
            dropped: 0,
        }
    }
}

/// FNV-1a of the name, case-blind and without its final dot.
fn name_hash(name: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.trim_end_matches('.').bytes() {
        hash ^= u64::from(byte.to_ascii_lowercase());
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

fn is_ptr(dns: &DnsActivity) -> bool {
    let name = dns.query_name.trim_end_matches('.').as_bytes();
    dns.query_type.eq_ignore_ascii_case("PTR")
        || [".in-addr.arpa", ".ip6.arpa"].iter().any(|suffix| {
            name.len() > suffix.len()
                && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
        })
}

/// The busiest learned level: the top of the contiguous run from `LEARN_MIN_LEVEL`.
fn learned_level(profiles: &Profiles, subject: &str) -> Option<u32> {
    (LEARN_MIN_LEVEL..=MAX_NAMES_PER_PERIOD.ilog2())
        .take_while(|level| profiles.knows(subject, FACET, &level.to_string()))
        .last()
}

impl DnsVolume {
    pub(super) fn evicted(&self) -> u64 {
        self.sources.evicted() + self.dropped
    }

    /// A query: counts its name for its source, and judges the source at each new level.
    pub(super) fn query(
        &mut self,
        seen: &Observed<'_>,
        dns: &DnsActivity,
        context: &mut Context<'_>,
    ) {
        let Some(src) = seen.src else {
            return;
        };
        if dns.query_name.is_empty() {
            return;
        }
        let index = seen.time.div_euclid(PERIOD);
        let period = self.sources.touch(src, seen.time, Period::default);
        if period.index != index || period.names.is_empty() {
            if index < period.index && !period.names.is_empty() {
                // A late activity of a period already closed: not counted again.
                return;
            }
            period.restart(index, seen.time);
        }
        let full = period.names.len() >= MAX_NAMES_PER_PERIOD;
        match period.names.entry(name_hash(&dns.query_name)) {
            Entry::Occupied(_) => return,
            Entry::Vacant(_) if full => {
                self.dropped += 1;
                return;
            }
            Entry::Vacant(vacant) => {
                vacant.insert(false);
            }
        }
        if is_ptr(dns) {
            period.ptr += 1;
        }
        if ["SRV", "ANY"]
            .iter()
            .any(|kind| dns.query_type.eq_ignore_ascii_case(kind))
        {
            period.srv_any += 1;
        }
        if period.samples.len() < MAX_SAMPLES {
            period.samples.push(clip(&dns.query_name));
        }
        let count = period.names.len();
        if count.is_power_of_two() && count.ilog2() >= LEARN_MIN_LEVEL {
            judge(period, seen, context);
        }
    }

    /// A response: an NXDOMAIN for a name its client asked this period counts once.
    pub(super) fn response(&mut self, seen: &Observed<'_>, dns: &DnsActivity) {
        if dns.rcode != NXDOMAIN {
            return;
        }
        let Some(client) = seen.dst else {
            return;
        };
        if self.sources.get(&client).is_none() {
            return;
        }
        let period = self.sources.touch(client, seen.time, Period::default);
        if let Some(nxdomain) = period.names.get_mut(&name_hash(&dns.query_name))
            && !*nxdomain
        {
            *nxdomain = true;
            period.nxdomain += 1;
        }
    }
}

/// What the period looks like, as a description names it.
fn shape(period: &Period) -> &'static str {
    let count = period.names.len();
    if 2 * period.ptr >= count {
        "a reverse-lookup (PTR) sweep of an address range"
    } else if 2 * period.nxdomain >= count {
        "a brute force of names, most of which do not exist"
    } else if 2 * period.srv_any >= count {
        "an enumeration of services (SRV, ANY)"
    } else {
        "a mapping of the network's names"
    }
}

/// Judges a source whose period just reached a new level.
fn judge(period: &mut Period, seen: &Observed<'_>, context: &mut Context<'_>) {
    let (Some(src), Some(dst)) = (seen.src, seen.dst) else {
        return;
    };
    let count = period.names.len();
    let level = count.ilog2();
    let threshold = context.threshold(&DNS_RECON);
    let clock = dc_key(&dst.to_string());
    let learning = learning_now(DNS_RECON.type_name, threshold, &clock, context.profiles);
    let floor = if threshold == Threshold::Low {
        LOW_VOLUME_FLOOR
    } else {
        VOLUME_FLOOR
    };
    if !learning && count < floor {
        return;
    }
    let server = context
        .knowledge
        .dns_server(seen.src, vouched_source_name(seen));
    if server.yes {
        return;
    }
    let subject = computer_key(src);
    // Learning teaches this level; judging asks for the level a margin below.
    let top = if learning {
        level
    } else {
        level.saturating_sub(MARGIN_LEVELS)
    };
    let mut behaviour = Behaviour::new(clock, subject.clone(), source_text(seen), String::new());
    for taught in LEARN_MIN_LEVEL..=top {
        behaviour = behaviour.item(FACET, taught.to_string());
    }
    let mut finding = Finding::on(
        &DNS_RECON,
        source_key(seen),
        seen,
        format!("dns {count} distinct names"),
    );
    if !learning && !behaviour.known(context.profiles, threshold) {
        let learned = learned_level(context.profiles, &subject).map_or_else(
            || format!("under {}", 1_usize << LEARN_MIN_LEVEL),
            |learned| format!("under {}", 1_usize << (learned + 1)),
        );
        behaviour.phrase = format!(
            "asked for {count} distinct DNS names within {} minutes (its busiest learned period: {learned})",
            PERIOD / MINUTE
        );
        finding = finding
            .describe(format!(
                "{} asked {} for {count} distinct DNS names within {} minutes ({} reverse lookups (PTR), {} answered NXDOMAIN, {} SRV/ANY), as {} does (e.g. {})",
                source_text(seen),
                destination_text(seen),
                PERIOD / MINUTE,
                period.ptr,
                period.nxdomain,
                period.srv_any,
                shape(period),
                listed(period.samples.iter().map(String::as_str), MAX_SAMPLES),
            ))
            .entity(destination(seen, Role::DestinationComputer))
            .detail("distinct_names", count.to_string())
            .detail("ptr_names", period.ptr.to_string())
            .detail("nxdomain_names", period.nxdomain.to_string())
            .detail("srv_any_names", period.srv_any.to_string())
            .detail("sample_names", period.samples.join(", "))
            .detail("period_minutes", (PERIOD / MINUTE).to_string())
            .relied_on(format!(
                "volume: {floor}+ distinct names in {} minutes, at least twice the busiest period learned",
                PERIOD / MINUTE
            ))
            .relied_on(server.basis)
            .weighed_by_resolution(seen)
            .spanning(period.first, (count - period.counted) as u64);
        period.counted = count;
        if server.source == Source::Assumed {
            finding = finding.confidence(Confidence::MediumConfidence);
        }
    }
    // A finding the gate will drop (learning, known) carries no description: it only teaches.
    context.raise(finding.behaviour(behaviour));
}
