//! Suspicious communication over DNS (MDI 2031): a DNS tunnel (dnscat2, iodine, Cobalt Strike's
//! DNS beacon) carries data in the names it asks for, each query a new long label of encoded
//! bytes under one domain the attacker serves, outside the forest. What makes a name look
//! encoded (all *ours*): a label of `LONG_LABEL` characters or more (`LONG_LABEL_TXT` for TXT and
//! NULL queries, the types tunnels use to get data back), or `LONG_PAYLOAD` characters before the
//! domain; with `MIN_DIGIT_SHARE` of digits among letters and a character entropy of
//! `MIN_ENTROPY` bits or more,
//! which words and host names rarely have. One such name is noise (a CDN, an antivirus
//! reputation lookup); `THRESHOLD` distinct ones to one domain within `WINDOW` are a channel.
//! DNS servers forwarding their clients' queries are not the source, their clients are.

use std::collections::HashMap;

use dcwatch_proto::v1::{activity::Body, alert::Confidence, alert_entity::Role, dns_activity};

use super::{
    Context, Detector, Kinds,
    guesses::{Answer, Guesses},
    target::clip,
};
use crate::{
    bounded::BoundedMap,
    catalogue::DNS_SUSPICIOUS_COMMUNICATION,
    finding::{Finding, destination, source_key, source_text, vouched_source_name},
    knowledge::Knowledge,
    observed::Observed,
    time::{MINUTE, Millis},
};

/// Distinct encoded names to one domain from one source within `WINDOW` (*ours*).
pub(super) const THRESHOLD: usize = 20;
pub(super) const WINDOW: Millis = 5 * MINUTE;
/// A label this long is a payload (DNS allows 63).
pub(super) const LONG_LABEL: usize = 30;
/// For TXT and NULL queries.
pub(super) const LONG_LABEL_TXT: usize = 16;
/// Characters before the domain, dots aside.
pub(super) const LONG_PAYLOAD: usize = 50;
/// Shannon entropy of the payload's characters, bits per character.
pub(super) const MIN_ENTROPY: f64 = 3.0;
/// Share of digits in the payload: hex has about 60%, base32 and base64 15 to 20%, a wordy host
/// name with a number in it a few.
pub(super) const MIN_DIGIT_SHARE: f64 = 0.1;
/// (source, domain) pairs followed at once.
pub(super) const MAX_CHANNELS: usize = 20_000;
/// Names remembered per pair.
pub(super) const MAX_NAMES_PER_CHANNEL: usize = 256;

#[derive(Debug)]
pub(super) struct DnsSuspiciousCommunication {
    channels: BoundedMap<(String, String), Guesses>,
    dropped: u64,
}

impl Default for DnsSuspiciousCommunication {
    fn default() -> Self {
        Self {
            channels: BoundedMap::new(MAX_CHANNELS),
            dropped: 0,
        }
    }
}

/// The domain a name belongs to (its last two labels; three under a two-letter country code
/// with a short second level, `example.co.uk`), and the labels before it.
fn split_domain(name: &str) -> Option<(String, Vec<&str>)> {
    let labels: Vec<&str> = name
        .trim_end_matches('.')
        .split('.')
        .filter(|label| !label.is_empty())
        .collect();
    let n = labels.len();
    if n < 3 {
        return None;
    }
    let keep = if labels[n - 1].len() == 2 && labels[n - 2].len() <= 3 {
        3
    } else {
        2
    };
    if n <= keep {
        return None;
    }
    let domain = labels[n - keep..].join(".").to_lowercase();
    Some((domain, labels[..n - keep].to_vec()))
}

fn entropy(text: &str) -> f64 {
    let mut counts: HashMap<char, usize> = HashMap::new();
    let mut total = 0_usize;
    for c in text.chars() {
        *counts.entry(c.to_ascii_lowercase()).or_default() += 1;
        total += 1;
    }
    if total == 0 {
        return 0.0;
    }
    let total = total as f64;
    counts
        .values()
        .map(|&count| {
            let p = count as f64 / total;
            -p * p.log2()
        })
        .sum()
}

/// Whether the labels before the domain look like encoded data.
/// The length from which a label is a payload for this query type.
fn long_label(query_type: &str) -> usize {
    if matches!(query_type, "TXT" | "NULL") {
        LONG_LABEL_TXT
    } else {
        LONG_LABEL
    }
}

/// Whether a name is long enough to hold an encoded payload at all (`encoded`'s length test on
/// the whole name, whose labels include the payload's): most queries are not, and are let go
/// before their labels are split and copied.
fn may_carry_payload(name: &str, query_type: &str) -> bool {
    name.len() >= LONG_PAYLOAD
        || name
            .split('.')
            .any(|label| label.len() >= long_label(query_type))
}

fn encoded(payload: &[&str], query_type: &str) -> bool {
    let longest = payload.iter().map(|label| label.len()).max().unwrap_or(0);
    let joined: String = payload.concat();
    let long_label = long_label(query_type);
    (longest >= long_label || joined.len() >= LONG_PAYLOAD)
        && joined.chars().filter(char::is_ascii_digit).count() as f64
            >= MIN_DIGIT_SHARE * joined.len() as f64
        && joined.chars().any(|c| c.is_ascii_alphabetic())
        && entropy(&joined) >= MIN_ENTROPY
}

/// Whether `domain` is in the forest (configured suffixes, the directory's domains) or is
/// reverse lookup space.
fn in_forest(domain: &str, name: &str, knowledge: &Knowledge, forest: &[String]) -> bool {
    let name = name.trim_end_matches('.').to_lowercase();
    let within = |suffix: &str| {
        let suffix = suffix.trim_matches('.').to_lowercase();
        !suffix.is_empty() && (name == suffix || name.ends_with(&format!(".{suffix}")))
    };
    domain.ends_with("arpa")
        || forest.iter().any(|suffix| within(suffix))
        || knowledge
            .directory()
            .domains()
            .iter()
            .any(|known| within(&known.name))
}

impl Detector for DnsSuspiciousCommunication {
    fn kinds(&self) -> Kinds {
        Kinds::dns(dns_activity::Type::Query)
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        let Some(Body::Dns(dns)) = seen.body() else {
            return;
        };
        if dns.r#type != dns_activity::Type::Query as i32
            || !may_carry_payload(&dns.query_name, &dns.query_type)
        {
            return;
        }
        let Some((domain, payload)) = split_domain(&dns.query_name) else {
            return;
        };
        if !encoded(&payload, &dns.query_type)
            || in_forest(
                &domain,
                &dns.query_name,
                context.knowledge,
                &context.config.forest_domains,
            )
        {
            return;
        }
        let server = context
            .knowledge
            .dns_server(seen.src, vouched_source_name(seen));
        if server.yes {
            return;
        }
        let names = self
            .channels
            .touch((source_key(seen), domain.clone()), seen.time, || {
                Guesses::new(MAX_NAMES_PER_CHANNEL)
            });
        let before = names.dropped();
        let new = names.add(seen.time, &dns.query_name, Answer::Unsaid, WINDOW);
        self.dropped += names.dropped() - before;
        if !new || names.len() < THRESHOLD {
            return;
        }
        let count = if names.counted == 0 {
            names.len() as u64
        } else {
            1
        };
        names.counted += count;
        let start = names.first_time().unwrap_or(seen.time);
        let (name, query_type) = (clip(&dns.query_name), clip(&dns.query_type));
        let domain = clip(&domain);
        let description = format!(
            "{} sent {} DNS queries with encoded-looking names under {domain}, outside the forest, within {} minutes, as DNS tunnels carrying data do (e.g. {} {})",
            source_text(seen),
            names.len(),
            WINDOW / MINUTE,
            query_type,
            name,
        );
        let mut finding = Finding::on(
            &DNS_SUSPICIOUS_COMMUNICATION,
            source_key(seen),
            seen,
            format!("dns {query_type} {name}"),
        )
        .describe(description)
        .entity(destination(seen, Role::DestinationComputer))
        .detail("domain", domain)
        .detail("example", name.clone())
        .detail("query_type", query_type.clone())
        .relied_on(format!(
            "name shape: labels of {LONG_LABEL}+ characters ({LONG_LABEL_TXT}+ for TXT/NULL) or {LONG_PAYLOAD}+ before the domain, with {MIN_DIGIT_SHARE}+ of digits and {MIN_ENTROPY}+ bits of entropy per character"
        ))
        .relied_on(server.basis)
        .weighed_by_resolution(seen)
        .spanning(start, count);
        if context.config.forest_domains.is_empty() && !context.knowledge.has_directory() {
            finding = finding
                .relied_on(
                    "no directory and no forest domains configured: any domain counts as outside",
                )
                .confidence(Confidence::MediumConfidence);
        }
        context.raise(finding);
    }

    fn evicted(&self) -> u64 {
        self.channels.evicted() + self.dropped
    }
}

#[cfg(test)]
mod tests {
    use dcwatch_entity::Directory;
    use dcwatch_proto::v1::{Activity, dns_activity::Type};

    use super::{encoded, may_carry_payload, split_domain};
    use crate::{
        Config,
        detectors::{
            builders::dns,
            testing::{run, summary},
        },
    };

    const CLIENT: &str = "10.98.0.60:53000";
    const DC: &str = "10.98.0.1:53";

    /// A dnscat2-like name: hex of a counter's bytes, 48 characters, under `domain`.
    fn tunnel_name(n: u64, domain: &str) -> String {
        let payload: String = (0..6)
            .map(|i| {
                format!(
                    "{:08x}",
                    (n + 1)
                        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                        .rotate_left(i * 7) as u32
                )
            })
            .collect();
        format!("{payload}.{domain}")
    }

    fn tunnel(count: u64, domain: &str, qtype: &str) -> Vec<Activity> {
        (0..count)
            .map(|n| {
                dns(
                    n as i64 * 500,
                    CLIENT,
                    DC,
                    Type::Query,
                    &tunnel_name(n, domain),
                    qtype,
                )
            })
            .collect()
    }

    #[test]
    fn twenty_encoded_names_under_one_outside_domain_are_suspicious() {
        let config = Config {
            forest_domains: vec!["lab.example".into()],
            ..Config::test_mode()
        };
        let alerts = run(
            Some(config),
            Directory::default(),
            &tunnel(22, "tunnel.attacker.net", "TXT"),
        );
        assert_eq!(
            summary(&alerts),
            [(
                "dns_suspicious_communication".into(),
                "src:10.98.0.60".into(),
                22
            )]
        );
        let alert = &alerts[0];
        assert_eq!(alert.external_id, 2031);
        assert!(
            alert.description.starts_with("10.98.0.60 sent 22 DNS queries with encoded-looking names under attacker.net, outside the forest"),
            "{}",
            alert.description
        );
    }

    #[test]
    fn nineteen_names_or_names_inside_the_forest_are_not() {
        assert!(run(None, Directory::default(), &tunnel(19, "attacker.net", "A")).is_empty());
        let config = Config {
            forest_domains: vec!["lab.example".into()],
            ..Config::test_mode()
        };
        assert!(
            run(
                Some(config),
                Directory::default(),
                &tunnel(30, "dyn.lab.example", "A")
            )
            .is_empty()
        );
    }

    #[test]
    fn ordinary_dns_with_short_labels_is_not_suspicious() {
        let names = [
            "www.example.com",
            "_ldap._tcp.dc._msdcs.lab.example",
            "login.microsoftonline.com",
            "e1234.dscb.akamaiedge.net",
            "a-very-long-but-wordy-hostname-for-a-web-server.example.com",
            "1.0.98.10.in-addr.arpa",
        ];
        let activities: Vec<Activity> = (0..40)
            .map(|n| {
                dns(
                    n * 100,
                    CLIENT,
                    DC,
                    Type::Query,
                    &format!("{}.{}", n, names[n as usize % names.len()]),
                    "A",
                )
            })
            .collect();
        assert!(run(None, Directory::default(), &activities).is_empty());
        assert!(!encoded(
            &["5a-very-long-but-wordy-hostname-for-a-web-server"],
            "A"
        ));
        assert!(encoded(&["6f9a03bc1d2e4f5a6b7c8d9e0f1a2b3c"], "A"));
    }

    #[test]
    fn only_names_too_short_for_a_payload_are_let_go_before_splitting() {
        // Each of these is encoded: the shortcut must keep it.
        for (name, query_type) in [
            ("6f9a03bc1d2e4f5a6b7c8d9e0f1a2b3c.attacker.net", "A"),
            ("6f9a03bc1d2e4f5a.attacker.net", "TXT"),
            (
                "6f9a03bc1d.2e4f5a6b7c.8d9e0f1a2b.3c4d5e6f7a.9b8c7d6e5f.attacker.net",
                "A",
            ),
        ] {
            let (_, payload) = split_domain(name).expect("a name under a domain");
            assert!(encoded(&payload, query_type), "{name}");
            assert!(may_carry_payload(name, query_type), "{name}");
        }
        for (name, query_type) in [
            ("6f9a03bc1d2e4f5a.attacker.net", "A"),
            ("_ldap._tcp.dc._msdcs.lab.example", "SRV"),
            ("ws01.lab.example", "A"),
        ] {
            assert!(!may_carry_payload(name, query_type), "{name}");
        }
    }

    #[test]
    fn a_dns_server_forwarding_its_clients_queries_is_not_the_source() {
        let config = Config {
            dns_servers: vec!["10.98.0.60".parse().expect("an address")],
            ..Config::test_mode()
        };
        assert!(
            run(
                Some(config),
                Directory::default(),
                &tunnel(30, "attacker.net", "TXT")
            )
            .is_empty()
        );
    }

    #[test]
    fn domains_are_split_at_the_registered_name() {
        assert_eq!(
            split_domain("abc.def.example.co.uk").map(|(domain, payload)| (domain, payload.len())),
            Some(("example.co.uk".into(), 2))
        );
        assert_eq!(split_domain("example.com"), None);
    }
}
