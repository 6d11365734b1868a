//! Network-mapping reconnaissance over DNS (MDI 2007): a zone transfer (AXFR, or IXFR: ours)
//! asked by a host that is not a DNS server hands the asker every name of the zone, the map an
//! attacker wants (`nslookup`, `ls -d lab.example`). MDI alerts on the request whether the
//! server answers or refuses, so does this; the answer, when seen, sets the alert's outcome.
//! DNS servers (configured, or the directory's, and domain controllers) transfer zones among
//! themselves: they are left alone. Part II adds MDI's volume baseline per source (8 days):
//! `dns_volume.rs`, whose alerts are the same source's one `dns_recon` alert.

use std::net::IpAddr;

use dcwatch_proto::v1::{
    DnsActivity, activity::Body, alert::Confidence, alert_entity::Role, dns_activity,
    outcome::Status,
};

use super::{
    Context, Detector, Kinds,
    dns_volume::DnsVolume,
    target::{answered_client_text, clip, on_answer},
};
use crate::{
    bounded::BoundedMap,
    catalogue::DNS_RECON,
    finding::{
        Finding, destination, source_key, source_text, vouched_destination_name,
        vouched_source_name,
    },
    knowledge::Source,
    learning::Behaviour,
    observed::Observed,
    profiling::{computer_key, dc_key},
    time::{MINUTE, Millis},
};

/// Transfers asked and not yet answered, by (client, port, DNS id).
pub(super) const MAX_PENDING_TRANSFERS: usize = 4_096;
/// A transfer's answer is matched to its request within this.
const ANSWER_WITHIN: Millis = 5 * MINUTE;

#[derive(Debug)]
pub(super) struct DnsRecon {
    pending: BoundedMap<(IpAddr, u16, u32), Millis>,
    volume: DnsVolume,
}

impl Default for DnsRecon {
    fn default() -> Self {
        Self {
            pending: BoundedMap::new(MAX_PENDING_TRANSFERS),
            volume: DnsVolume::default(),
        }
    }
}

fn transfer_name(kind: dns_activity::Type) -> Option<&'static str> {
    match kind {
        dns_activity::Type::Axfr | dns_activity::Type::AxfrResponse => Some("AXFR"),
        dns_activity::Type::Ixfr | dns_activity::Type::IxfrResponse => Some("IXFR"),
        _ => None,
    }
}

impl Detector for DnsRecon {
    fn kinds(&self) -> Kinds {
        use dns_activity::Type;
        Kinds::dns(Type::Query)
            | Kinds::DNS_NXDOMAIN
            | Kinds::dns(Type::Axfr)
            | Kinds::dns(Type::AxfrResponse)
            | Kinds::dns(Type::Ixfr)
            | Kinds::dns(Type::IxfrResponse)
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        let Some(Body::Dns(dns)) = seen.body() else {
            return;
        };
        let Ok(kind) = dns_activity::Type::try_from(dns.r#type) else {
            return;
        };
        let Some(transfer) = transfer_name(kind) else {
            match kind {
                dns_activity::Type::Query => self.volume.query(seen, dns, context),
                dns_activity::Type::Response => self.volume.response(seen, dns),
                _ => {}
            }
            return;
        };
        match kind {
            dns_activity::Type::Axfr | dns_activity::Type::Ixfr => {
                self.request(seen, dns, transfer, context);
            }
            _ => self.answer(seen, dns, transfer, context),
        }
    }

    fn evicted(&self) -> u64 {
        self.pending.evicted() + self.volume.evicted()
    }
}

/// A zone transfer as profiles see it: learned per computer while the DNS server's DC learns
/// (MDI: 8 days from the start of the DC's monitoring).
fn transfer_behaviour(
    server: IpAddr,
    client: IpAddr,
    client_text: String,
    server_text: String,
) -> Behaviour {
    Behaviour::new(
        dc_key(&server.to_string()),
        computer_key(client),
        client_text,
        format!("asked {server_text} for a zone transfer"),
    )
    .item(DNS_RECON.type_name, "zone transfer")
}

impl DnsRecon {
    fn request(
        &mut self,
        seen: &Observed<'_>,
        dns: &DnsActivity,
        transfer: &str,
        context: &mut Context<'_>,
    ) {
        let verdict = context
            .knowledge
            .dns_server(seen.src, vouched_source_name(seen));
        if verdict.yes {
            return;
        }
        if let Some(client) = seen.src {
            self.pending
                .touch((client, seen.src_port, dns.id), seen.time, || seen.time);
        }
        let name = clip(&dns.query_name);
        let zone = if dns.query_name.is_empty() {
            "a zone".to_owned()
        } else {
            format!("the zone {name}")
        };
        let description = format!(
            "{}, which is not a DNS server, asked {} for a transfer of {zone} ({transfer}), which lists every name in it",
            source_text(seen),
            crate::finding::destination_text(seen),
        );
        let mut finding = Finding::on(
            &DNS_RECON,
            source_key(seen),
            seen,
            format!("dns {transfer} {name}"),
        )
        .describe(description)
        .entity(destination(seen, Role::DestinationComputer))
        .detail("zone", name.clone())
        .detail("transfer", transfer)
        .relied_on(verdict.basis)
        .weighed_by_resolution(seen);
        if verdict.source == Source::Assumed {
            finding = finding.confidence(Confidence::MediumConfidence);
        }
        if let (Some(src), Some(dst)) = (seen.src, seen.dst) {
            finding = finding.behaviour(transfer_behaviour(
                dst,
                src,
                source_text(seen),
                crate::finding::destination_text(seen),
            ));
        }
        context.raise(finding);
    }

    /// The server's answer: refused (the alert stands, failed) or granted (succeeded).
    fn answer(
        &mut self,
        seen: &Observed<'_>,
        dns: &DnsActivity,
        transfer: &str,
        context: &mut Context<'_>,
    ) {
        let Some(client) = seen.dst else {
            return;
        };
        let Some(asked) = self.pending.remove(&(client, seen.dst_port, dns.id)) else {
            return;
        };
        if seen.time.saturating_sub(asked) > ANSWER_WITHIN {
            return;
        }
        let outcome = if dns.rcode == 0 {
            Status::Success
        } else {
            Status::Failure
        };
        let said = if outcome == Status::Success {
            format!("granted ({} records)", dns.answer_count)
        } else {
            format!("refused ({})", clip(&dns.rcode_name))
        };
        let mut finding = on_answer(&DNS_RECON, seen, format!("dns {transfer} answer: {said}"))
            .outcome(outcome)
            .detail("zone", clip(&dns.query_name))
            .detail("transfer", transfer)
            .detail("answer", said.clone());
        // The answer adds no attempt to the count, only what became of it; it is judged as its
        // request was, since the alert takes the latest confidence.
        finding.count = 0;
        let verdict = context
            .knowledge
            .dns_server(seen.dst, vouched_destination_name(seen));
        if verdict.source == Source::Assumed {
            finding = finding.confidence(Confidence::MediumConfidence);
        }
        finding = finding.relied_on(verdict.basis);
        finding.description = format!(
            "{}, which is not a DNS server, asked for a transfer of the zone {} ({transfer}); the server {said}",
            answered_client_text(seen),
            clip(&dns.query_name),
        );
        if let Some(server) = seen.src {
            finding = finding.behaviour(transfer_behaviour(
                server,
                client,
                answered_client_text(seen),
                source_text(seen),
            ));
        }
        context.raise(finding);
    }
}

#[cfg(test)]
mod tests {
    use dcwatch_entity::Directory;
    use dcwatch_proto::v1::{
        Activity, activity::Body, alert::Confidence, dns_activity::Type, outcome::Status,
    };

    use crate::{
        Config,
        detectors::{
            builders::dns,
            testing::{computer, directory, run, summary, with_source_computer},
        },
    };

    const CLIENT: &str = "10.98.0.20:50123";
    const DC: &str = "10.98.0.1:53";

    fn answer(offset: i64, rcode: u32, name: &str) -> Activity {
        let mut answer = dns(
            offset,
            DC,
            CLIENT,
            Type::AxfrResponse,
            "lab.example",
            "AXFR",
        );
        if let Some(Body::Dns(body)) = &mut answer.body {
            body.rcode = rcode;
            body.rcode_name = name.into();
            body.answer_count = if rcode == 0 { 42 } else { 0 };
        }
        answer
    }

    #[test]
    fn a_workstation_asking_a_zone_transfer_is_dns_recon_refused_or_not() {
        let alerts = run(
            None,
            Directory::default(),
            &[
                dns(0, CLIENT, DC, Type::Axfr, "lab.example", "AXFR"),
                answer(20, 5, "Refused"),
            ],
        );
        assert_eq!(
            summary(&alerts),
            [("dns_recon".into(), "src:10.98.0.20".into(), 1)]
        );
        let alert = &alerts[0];
        assert_eq!(alert.external_id, 2007);
        assert!(
            alert.description.contains("10.98.0.20")
                && alert.description.contains("not a DNS server")
                && alert.description.contains("lab.example")
                && alert.description.contains("refused"),
            "{}",
            alert.description
        );
        assert_eq!(alert.outcome(), Status::Failure);
        // Nothing was known of the asker: a guess, at medium confidence.
        assert_eq!(alert.confidence(), Confidence::MediumConfidence);
    }

    #[test]
    fn a_granted_incremental_transfer_succeeds() {
        let mut granted = answer(20, 0, "NoError");
        if let Some(Body::Dns(body)) = &mut granted.body {
            body.r#type = Type::IxfrResponse.into();
        }
        let alerts = run(
            None,
            Directory::default(),
            &[
                dns(0, CLIENT, DC, Type::Ixfr, "lab.example", "IXFR"),
                granted,
            ],
        );
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].outcome(), Status::Success);
        assert!(alerts[0].description.contains("granted (42 records)"));
    }

    #[test]
    fn dns_servers_and_dcs_transferring_zones_are_not_recon() {
        let config = Config {
            dns_servers: vec!["10.98.0.5".parse().expect("an address")],
            dc_addresses: vec!["10.98.0.2".parse().expect("an address")],
            ..Config::test_mode()
        };
        let secondary = dns(0, "10.98.0.5:40000", DC, Type::Axfr, "lab.example", "AXFR");
        let other_dc = dns(0, "10.98.0.2:40000", DC, Type::Ixfr, "lab.example", "IXFR");
        assert!(run(Some(config), Directory::default(), &[secondary, other_dc]).is_empty());
    }

    #[test]
    fn a_dc_name_the_client_claims_does_not_make_it_a_dns_server() {
        // A workstation whose NTLM workstation field said dc01.lab.example (a name the client chooses, LOW
        // certainty) asks for the zone: still recon. DC01 named with high certainty (reverse
        // DNS) is a DC, and DCs serve DNS.
        let lab = || directory(vec![computer("DC01", 1000, 0x2000)], &[]);
        let claimed = with_source_computer(
            dns(0, CLIENT, DC, Type::Axfr, "lab.example", "AXFR"),
            "dc01.lab.example",
            dcwatch_proto::v1::Certainty::Low,
        );
        assert_eq!(
            summary(&run(None, lab(), &[claimed])),
            [("dns_recon".into(), "src:10.98.0.20".into(), 1)]
        );
        let mut vouched = with_source_computer(
            dns(0, CLIENT, DC, Type::Axfr, "lab.example", "AXFR"),
            "dc01.lab.example",
            dcwatch_proto::v1::Certainty::High,
        );
        if let Some(computer) = vouched.source_computer.as_mut() {
            computer.method = dcwatch_proto::v1::ResolutionMethod::ReverseDns.into();
        }
        assert!(run(None, lab(), &[vouched]).is_empty());
    }

    #[test]
    fn ordinary_lookups_are_not_transfers() {
        let lookups = [
            dns(0, CLIENT, DC, Type::Query, "_ldap._tcp.lab.example", "SRV"),
            dns(1, CLIENT, DC, Type::Query, "dc1.lab.example", "A"),
            answer(2, 0, "NoError"),
        ];
        assert!(run(None, Directory::default(), &lookups).is_empty());
    }
}
