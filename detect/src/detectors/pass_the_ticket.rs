//! Pass-the-ticket (MDI 2018): the same ticket (the hash of its cipher) used from two computers.
//! A ticket's holder is the computer the KDC's reply went to, else the first that used it (in a
//! TGS-REQ for a TGT, in an AP-REQ for a service ticket). Another computer using it is the
//! theft, when both were resolved with HIGH certainty to different names and neither address is
//! in a NAT, VPN or VDI subnet (one address there is many computers; a low-certainty name may be
//! wrong: MDI's commonest false positives). The alert is held `Config::pass_the_ticket_hold`
//! (MDI: 2 hours; none in test mode) before it is raised.

use std::{collections::VecDeque, net::IpAddr};

use dcwatch_proto::v1::{activity::Body, alert_entity::Role, kerberos_activity};

use super::{
    Context, Detector, Key, Kinds,
    auth::{client_address, client_finding, client_resolved_high},
};
use crate::{
    bounded::BoundedMap,
    catalogue::PASS_THE_TICKET,
    finding::{Finding, account_entity, source_name},
    observed::Observed,
    time::Millis,
};

/// Tickets followed at once, by hash.
pub(super) const MAX_TICKET_HOLDERS: usize = 200_000;
/// Alerts held at once; when full, the oldest is raised early rather than lost.
pub(super) const MAX_HELD_ALERTS: usize = 4_096;
/// Other computers one ticket's alert names.
pub(super) const MAX_THIEVES_PER_TICKET: usize = 8;

#[derive(Debug, Clone)]
struct Holder {
    address: IpAddr,
    name: String,
    high: bool,
    client: String,
    client_realm: String,
    thieves: Vec<IpAddr>,
}

#[derive(Debug)]
pub(super) struct PassTheTicket {
    holders: BoundedMap<Vec<u8>, Holder>,
    held: VecDeque<(Millis, Finding)>,
    released_early: u64,
}

impl Default for PassTheTicket {
    fn default() -> Self {
        Self {
            holders: BoundedMap::new(MAX_TICKET_HOLDERS),
            held: VecDeque::new(),
            released_early: 0,
        }
    }
}

impl Detector for PassTheTicket {
    fn kinds(&self) -> Kinds {
        // And any activity once a held finding is due: its time releases it.
        use kerberos_activity::Type;
        Kinds::kerberos(Type::AsRep)
            | Kinds::kerberos(Type::TgsRep)
            | Kinds::kerberos(Type::TgsReq)
            | Kinds::kerberos(Type::ApReq)
            | Kinds::ALARM
    }

    fn alarm(&self) -> Millis {
        self.held.front().map_or(Millis::MAX, |(due, _)| *due)
    }

    fn key(&self) -> Key {
        Key::Ticket
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        while self.held.front().is_some_and(|(due, _)| *due <= seen.time) {
            if let Some((_, finding)) = self.held.pop_front() {
                context.raise(finding);
            }
        }
        use kerberos_activity::Type;
        let Some(Body::Kerberos(kerberos)) = seen.body() else {
            return;
        };
        if kerberos.ticket_hash.is_empty() {
            return;
        }
        let Some(address) = client_address(seen) else {
            return;
        };
        let holder = || Holder {
            address,
            name: source_name(seen).to_owned(),
            high: client_resolved_high(seen),
            client: kerberos.client.clone(),
            client_realm: kerberos.client_realm.clone(),
            thieves: Vec::new(),
        };
        match Type::try_from(kerberos.r#type) {
            Ok(Type::AsRep | Type::TgsRep) => {
                self.holders
                    .touch_ref(kerberos.ticket_hash.as_slice(), seen.time, holder);
            }
            Ok(Type::TgsReq | Type::ApReq) => {
                let Some(first) = self.holders.get(&kerberos.ticket_hash) else {
                    self.holders
                        .touch_ref(kerberos.ticket_hash.as_slice(), seen.time, holder);
                    return;
                };
                if first.address == address
                    || first.thieves.contains(&address)
                    || first.thieves.len() >= MAX_THIEVES_PER_TICKET
                {
                    return;
                }
                let other = source_name(seen);
                if !first.high
                    || !client_resolved_high(seen)
                    || short(&first.name) == short(other)
                    || in_nat(context, first.address)
                    || in_nat(context, address)
                {
                    return;
                }
                // A theft: copied only now, not on every use of a ticket.
                let first = first.clone();
                self.holders
                    .touch_ref(kerberos.ticket_hash.as_slice(), seen.time, holder)
                    .thieves
                    .push(address);
                let finding = self.finding(seen, context, kerberos, &first);
                let hold = context.config.pass_the_ticket_hold();
                if hold == 0 {
                    context.raise(finding);
                } else {
                    if self.held.len() >= MAX_HELD_ALERTS
                        && let Some((_, early)) = self.held.pop_front()
                    {
                        self.released_early += 1;
                        context.raise(early);
                    }
                    self.held
                        .push_back((seen.time.saturating_add(hold), finding));
                }
            }
            _ => {}
        }
    }

    fn evicted(&self) -> u64 {
        self.holders.evicted() + self.released_early
    }
}

impl PassTheTicket {
    fn finding(
        &self,
        seen: &Observed<'_>,
        context: &Context<'_>,
        kerberos: &dcwatch_proto::v1::KerberosActivity,
        first: &Holder,
    ) -> Finding {
        let account = if first.client.is_empty() {
            "an unknown account".to_owned()
        } else if first.client_realm.is_empty() {
            first.client.clone()
        } else {
            format!("{}\\{}", first.client_realm, first.client)
        };
        let key = if first.client.is_empty() {
            format!("ticket:{}", hex::encode(&kerberos.ticket_hash))
        } else {
            crate::finding::account_key(&first.client)
        };
        let what = if kerberos.r#type == kerberos_activity::Type::TgsReq as i32 {
            "TGT"
        } else {
            "service ticket"
        };
        let description = format!(
            "A {what} of {account} issued to {} ({}) was used from {} ({}) for {}: the ticket was stolen and passed",
            first.name,
            first.address,
            source_name(seen),
            client_address(seen)
                .map(|ip| ip.to_string())
                .unwrap_or_default(),
            kerberos.service,
        );
        let mut finding = client_finding(
            &PASS_THE_TICKET,
            key,
            seen,
            format!(
                "{what} {} used for {}",
                hex::encode(&kerberos.ticket_hash),
                kerberos.service
            ),
        )
        .describe(description)
        .entity(dcwatch_proto::v1::AlertEntity {
            role: Role::DestinationComputer.into(),
            name: first.name.clone(),
            address: first.address.to_string(),
            ..Default::default()
        })
        .detail("ticket_hash", hex::encode(&kerberos.ticket_hash))
        .detail("service", kerberos.service.clone())
        .relied_on(format!(
            "name resolution: {} and {} both HIGH certainty, neither in a NAT/VPN/VDI subnet",
            first.name,
            source_name(seen)
        ));
        if !first.client.is_empty() {
            finding = finding.entity(account_entity(
                Role::SourceAccount,
                &first.client_realm,
                &first.client,
                context.knowledge.directory(),
            ));
        }
        finding
    }
}

fn short(name: &str) -> String {
    name.split('.')
        .next()
        .unwrap_or(name)
        .trim_end_matches('$')
        .to_lowercase()
}

fn in_nat(context: &Context<'_>, address: IpAddr) -> bool {
    context
        .config
        .nat_subnets
        .iter()
        .any(|subnet| subnet.contains(address))
}

#[cfg(test)]
mod tests {
    use dcwatch_entity::Directory;
    use dcwatch_proto::v1::{Activity, Certainty, DnsActivity, activity::Body};

    use crate::{
        Config,
        detectors::testing::{
            T0, activity, as_req, hash, run, summary, tgs_rep, tgs_req, with_source_computer,
        },
        time::{HOUR, MINUTE},
    };

    fn issued(to: &str, name: &str) -> Activity {
        with_source_computer(
            tgs_rep(0, to, "alice", "krbtgt/LAB.EXAMPLE", &hash(3), |_| {}),
            name,
            Certainty::High,
        )
    }

    fn used(offset: i64, from: &str, name: &str, certainty: Certainty) -> Activity {
        with_source_computer(
            tgs_req(offset, from, "cifs/fs1.lab.example", &hash(3), |_| {}),
            name,
            certainty,
        )
    }

    #[test]
    fn a_ticket_used_from_a_second_computer_is_pass_the_ticket() {
        let activities = [
            issued("10.98.0.20:50000", "WS20"),
            used(MINUTE, "10.98.0.20:50001", "WS20", Certainty::High),
            used(2 * MINUTE, "10.98.0.21:50000", "WS21", Certainty::High),
            used(3 * MINUTE, "10.98.0.21:50002", "WS21", Certainty::High),
        ];
        let alerts = run(None, Directory::default(), &activities);
        assert_eq!(
            summary(&alerts),
            [("pass_the_ticket".into(), "account:alice".into(), 1)]
        );
        assert_eq!(
            alerts[0].description,
            "A TGT of LAB.EXAMPLE\\alice issued to WS20 (10.98.0.20) was used from WS21 (10.98.0.21) for cifs/fs1.lab.example: the ticket was stolen and passed"
        );
    }

    #[test]
    fn low_certainty_names_and_nat_subnets_are_not_pass_the_ticket() {
        let low = [
            issued("10.98.0.20:50000", "WS20"),
            used(MINUTE, "10.98.0.21:50000", "WS21", Certainty::Low),
        ];
        assert!(run(None, Directory::default(), &low).is_empty());
        let config = Config {
            nat_subnets: vec!["10.98.0.16/28".parse().expect("a prefix")],
            ..Config::test_mode()
        };
        let nat = [
            issued("10.98.0.20:50000", "WS20"),
            used(MINUTE, "10.98.0.21:50000", "WS21", Certainty::High),
        ];
        assert!(run(Some(config), Directory::default(), &nat).is_empty());
    }

    #[test]
    fn the_alert_waits_for_the_hold() {
        let config = Config::default();
        let mut activities = vec![
            issued("10.98.0.20:50000", "WS20"),
            used(MINUTE, "10.98.0.21:50000", "WS21", Certainty::High),
        ];
        assert!(run(Some(Config::default()), Directory::default(), &activities).is_empty());
        // Any activity after the two hours releases it, of any protocol.
        let dns = |offset| {
            activity(
                offset,
                "10.98.0.30:50000",
                "10.98.0.1:53",
                Body::Dns(DnsActivity::default()),
            )
        };
        activities.push(dns(MINUTE + 2 * HOUR - 1));
        assert!(run(Some(Config::default()), Directory::default(), &activities).is_empty());
        activities.push(dns(MINUTE + 2 * HOUR));
        let alerts = run(Some(config), Directory::default(), &activities);
        assert_eq!(alerts.len(), 1);
        assert_eq!(
            crate::time::millis(alerts[0].start.as_ref()),
            Some(T0 + MINUTE)
        );
    }

    /// It reads no AS-REQ, but one at the due time still releases what it held (its alarm).
    #[test]
    fn a_kerberos_message_it_does_not_read_releases_the_alert_when_due() {
        let mut activities = vec![
            issued("10.98.0.20:50000", "WS20"),
            used(MINUTE, "10.98.0.21:50000", "WS21", Certainty::High),
            as_req(MINUTE + 2 * HOUR - 1, "10.98.0.30:50000", "bob", |_| {}),
        ];
        assert!(run(Some(Config::default()), Directory::default(), &activities).is_empty());
        activities.push(as_req(MINUTE + 2 * HOUR, "10.98.0.30:50000", "bob", |_| {}));
        let alerts = run(Some(Config::default()), Directory::default(), &activities);
        assert_eq!(summary(&alerts).len(), 1);
        assert_eq!(alerts[0].r#type, "pass_the_ticket");
    }
}
