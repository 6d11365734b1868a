//! Golden ticket (MDI 2022, 2027, 2009): a TGT forged with krbtgt's key, seen when it is
//! presented in a TGS-REQ. Judged on the KDC's answer to that request, which names the client:
//! - time anomaly (2022): the TGT is used longer after its issue (the AS-REP or TGS-REP that
//!   carried it; else its first use) than the domain's maximum ticket lifetime (MaxTicketAge,
//!   10 hours by default) plus Kerberos' clock skew; forging tools default to 10 years. A renewal
//!   is a new ticket with its own issue time, so a TGT renewed within its lifetime is fine, and a
//!   renewal request itself may present a TGT up to the renew lifetime;
//! - nonexistent account (2027): the KDC's reply names a client the directory (or the KDC's own
//!   C_PRINCIPAL_UNKNOWN) says does not exist;
//! - encryption downgrade (2009): an RC4 TGT that no reply the sensors saw issued, from a computer
//!   whose TGTs were AES. Part II adds MDI's five days of learned TGT etypes per computer.

use std::net::IpAddr;

use dcwatch_proto::v1::{
    KerberosActivity, activity::Body, alert::Confidence, alert_entity::Role, kerberos_activity,
};

use super::{
    Context, Detector, Kinds,
    auth::{client_finding, client_text},
};
use crate::{
    bounded::BoundedMap,
    catalogue::{
        GOLDEN_TICKET_DOWNGRADE, GOLDEN_TICKET_FORGED_PRINCIPAL, GOLDEN_TICKET_TIME, Kind,
    },
    finding::{account_entity, account_key},
    knowledge::{is_aes, is_rc4},
    learning::Behaviour,
    observed::Observed,
    profiling::{TGT_ETYPE, computer_key, dc_key},
    time::{DAY, HOUR, MINUTE, Millis},
};

/// The default policy's maximum lifetime of a user ticket (MaxTicketAge), when the directory
/// does not say.
pub(super) const DEFAULT_MAX_TICKET_AGE: Millis = 10 * HOUR;
/// The default policy's maximum lifetime of a renewal (MaxRenewAge).
pub(super) const MAX_RENEW_AGE: Millis = 7 * DAY;
/// Kerberos' default clock skew tolerance (MaxClockSkew).
pub(super) const CLOCK_SKEW: Millis = 5 * MINUTE;
/// TGS-REQs waiting for their answer.
pub(super) const MAX_PENDING_TGS_REQUESTS: usize = 16_384;
/// TGTs first seen in use (never seen issued), by hash.
pub(super) const MAX_FIRST_USES: usize = 100_000;
/// Computers seen holding AES TGTs.
pub(super) const MAX_AES_TGT_COMPUTERS: usize = 100_000;

/// KDC option `renew` (RFC 4120 5.4.1, bit 30).
const KDC_OPTION_RENEW: u32 = 0x0000_0002;

#[derive(Debug, Clone)]
struct Presented {
    hash: Vec<u8>,
    etype: i32,
    renew: bool,
    time: Millis,
}

#[derive(Debug)]
pub(super) struct GoldenTicket {
    pending: BoundedMap<(IpAddr, u16), Presented>,
    first_uses: BoundedMap<Vec<u8>, Millis>,
    aes_tgt_computers: BoundedMap<IpAddr, ()>,
}

impl Default for GoldenTicket {
    fn default() -> Self {
        Self {
            pending: BoundedMap::new(MAX_PENDING_TGS_REQUESTS),
            first_uses: BoundedMap::new(MAX_FIRST_USES),
            aes_tgt_computers: BoundedMap::new(MAX_AES_TGT_COMPUTERS),
        }
    }
}

impl Detector for GoldenTicket {
    fn kinds(&self) -> Kinds {
        Kinds::kerberos(kerberos_activity::Type::AsRep)
            | Kinds::kerberos(kerberos_activity::Type::TgsReq)
            | Kinds::kerberos(kerberos_activity::Type::TgsRep)
            | Kinds::kerberos(kerberos_activity::Type::KrbError)
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        use kerberos_activity::Type;
        let Some(Body::Kerberos(kerberos)) = seen.body() else {
            return;
        };
        match Type::try_from(kerberos.r#type) {
            Ok(Type::AsRep | Type::TgsRep)
                if is_aes(kerberos.ticket_etype)
                    && kerberos.service.to_lowercase().starts_with("krbtgt") =>
            {
                if let Some(client) = seen.dst {
                    self.aes_tgt_computers.touch(client, seen.time, || ());
                }
            }
            _ => {}
        }
        match Type::try_from(kerberos.r#type) {
            Ok(Type::TgsReq) if !kerberos.ticket_hash.is_empty() => {
                if let Some(client) = seen.src {
                    let presented = Presented {
                        hash: kerberos.ticket_hash.clone(),
                        etype: kerberos.ticket_etype,
                        renew: kerberos.kdc_options & KDC_OPTION_RENEW != 0,
                        time: seen.time,
                    };
                    if context.knowledge.issued_ticket(&presented.hash).is_none() {
                        self.first_uses
                            .touch(presented.hash.clone(), seen.time, || seen.time);
                    }
                    let slot = self
                        .pending
                        .touch((client, seen.src_port), seen.time, || presented.clone());
                    *slot = presented;
                }
            }
            Ok(Type::TgsRep | Type::KrbError) => {
                if kerberos.r#type == Type::TgsRep as i32 {
                    self.nonexistent(seen, context, kerberos);
                }
                let Some(client) = seen.dst else {
                    return;
                };
                let Some(presented) = self.pending.remove(&(client, seen.dst_port)) else {
                    return;
                };
                self.judge(seen, context, kerberos, &presented, client);
            }
            _ => {}
        }
    }

    fn evicted(&self) -> u64 {
        self.pending.evicted() + self.first_uses.evicted() + self.aes_tgt_computers.evicted()
    }
}

impl GoldenTicket {
    fn judge(
        &mut self,
        seen: &Observed<'_>,
        context: &mut Context<'_>,
        kerberos: &KerberosActivity,
        presented: &Presented,
        client: IpAddr,
    ) {
        // The knowledge outlives this borrow of the context, which raises findings below.
        let knowledge = context.knowledge;
        let issued = knowledge.issued_ticket(&presented.hash);
        let first_use = issued
            .is_none()
            .then(|| self.first_uses.get(&presented.hash).copied())
            .flatten();
        let lifetime = max_ticket_age(context, &kerberos.client_realm);
        let (since, confidence) = match (issued, first_use) {
            (Some(ticket), _) => (ticket.issued, Confidence::HighConfidence),
            (None, Some(first)) => (first, Confidence::MediumConfidence),
            (None, None) => (presented.time, Confidence::LowConfidence),
        };
        let age = presented.time.saturating_sub(since);
        let allowed = if presented.renew {
            MAX_RENEW_AGE
        } else {
            lifetime
        };
        if age > allowed + CLOCK_SKEW {
            // Written for a finding only: most exchanges raise none.
            let basis = match (issued, first_use) {
                (Some(ticket), _) => format!(
                    "traffic: the KDC issued this TGT to {} at {}",
                    ticket.client,
                    iso(ticket.issued)
                ),
                (None, Some(first)) => format!(
                    "traffic: this TGT was first seen in use at {} (its issue was not seen)",
                    iso(first)
                ),
                (None, None) => String::new(),
            };
            let description = format!(
                "{} used a TGT{} {:.1} hours after its issue, beyond the maximum ticket lifetime of {} hours: a forged (golden) ticket",
                client_text(seen),
                ticket_owner(kerberos),
                age as f64 / HOUR as f64,
                lifetime / HOUR,
            );
            let finding = self
                .finding(
                    &GOLDEN_TICKET_TIME,
                    seen,
                    context,
                    kerberos,
                    presented,
                    description,
                )
                .relied_on(basis)
                .relied_on(format!("maximum ticket lifetime {} hours", lifetime / HOUR))
                .confidence(confidence)
                .detail(
                    "ticket_age_hours",
                    format!("{:.1}", age as f64 / HOUR as f64),
                );
            context.raise(finding);
        }
        if issued.is_none()
            && is_rc4(presented.etype)
            && (self.aes_tgt_computers.get(&client).is_some()
                || context
                    .profiles
                    .knows(&computer_key(client), TGT_ETYPE, "aes"))
        {
            let description = format!(
                "{} presented an RC4 TGT{} that no KDC reply issued, from a computer whose TGTs are AES: a ticket forged with krbtgt's NT hash",
                client_text(seen),
                ticket_owner(kerberos),
            );
            let finding = self
                .finding(
                    &GOLDEN_TICKET_DOWNGRADE,
                    seen,
                    context,
                    kerberos,
                    presented,
                    description,
                )
                .relied_on(format!("traffic: {client} held AES TGTs before"))
                .relied_on("traffic: no AS-REP or TGS-REP seen issued this ticket")
                .confidence(Confidence::MediumConfidence);
            let finding = match seen.src {
                Some(kdc) => finding.behaviour(
                    Behaviour::new(
                        dc_key(&kdc.to_string()),
                        computer_key(client),
                        client_text(seen),
                        "presented an RC4 TGT no KDC issued",
                    )
                    .item(GOLDEN_TICKET_DOWNGRADE.type_name, "RC4 TGT never issued"),
                ),
                None => finding,
            };
            context.raise(finding);
        }
    }

    fn nonexistent(
        &mut self,
        seen: &Observed<'_>,
        context: &mut Context<'_>,
        kerberos: &KerberosActivity,
    ) {
        if kerberos.client.is_empty() {
            return;
        }
        // A client of a trusted realm is in another forest's directory, not this one.
        let directory = context.knowledge.directory();
        if context.knowledge.has_directory()
            && !kerberos.client_realm.is_empty()
            && directory.domain(&kerberos.client_realm).is_none()
        {
            return;
        }
        if context
            .knowledge
            .account_exists(&kerberos.client, &kerberos.client_realm)
            != Some(false)
        {
            return;
        }
        let basis = if context.knowledge.has_directory() {
            format!("directory: no account {}", kerberos.client)
        } else {
            format!(
                "traffic: the KDC answered C_PRINCIPAL_UNKNOWN for {}",
                kerberos.client
            )
        };
        let description = format!(
            "{}, which does not exist, used a Kerberos ticket for {} from {}: a forged (golden) ticket",
            account_text(kerberos),
            kerberos.service,
            client_text(seen),
        );
        let finding = client_finding(
            &GOLDEN_TICKET_FORGED_PRINCIPAL,
            account_key(&kerberos.client),
            seen,
            format!(
                "TGS-REP for nonexistent {} to {}",
                kerberos.client, kerberos.service
            ),
        )
        .describe(description)
        .entity(account_entity(
            Role::SourceAccount,
            &kerberos.client_realm,
            &kerberos.client,
            context.knowledge.directory(),
        ))
        .detail("service", kerberos.service.clone())
        .relied_on(basis)
        .weighed_by_resolution(seen);
        context.raise(finding);
    }

    fn finding(
        &self,
        kind: &'static Kind,
        seen: &Observed<'_>,
        context: &Context<'_>,
        kerberos: &KerberosActivity,
        presented: &Presented,
        description: String,
    ) -> crate::finding::Finding {
        let key = if kerberos.client.is_empty() {
            format!("ticket:{}", hex::encode(&presented.hash))
        } else {
            account_key(&kerberos.client)
        };
        let mut finding = client_finding(
            kind,
            key,
            seen,
            format!(
                "TGS-REQ with TGT {} (etype {})",
                hex::encode(&presented.hash),
                presented.etype
            ),
        )
        .describe(description)
        .detail("ticket_hash", hex::encode(&presented.hash))
        .detail("ticket_etype", presented.etype.to_string())
        .weighed_by_resolution(seen);
        if !kerberos.client.is_empty() {
            finding = finding.entity(account_entity(
                Role::SourceAccount,
                &kerberos.client_realm,
                &kerberos.client,
                context.knowledge.directory(),
            ));
        }
        finding
    }
}

fn max_ticket_age(context: &Context<'_>, realm: &str) -> Millis {
    context
        .knowledge
        .directory()
        .domain(realm)
        .and_then(|domain| domain.max_ticket_age_hours)
        .map_or(DEFAULT_MAX_TICKET_AGE, |hours| Millis::from(hours) * HOUR)
}

fn account_text(kerberos: &KerberosActivity) -> String {
    if kerberos.client_realm.is_empty() {
        kerberos.client.clone()
    } else {
        format!("{}\\{}", kerberos.client_realm, kerberos.client)
    }
}

fn ticket_owner(kerberos: &KerberosActivity) -> String {
    if kerberos.client.is_empty() {
        String::new()
    } else {
        format!(" of {}", account_text(kerberos))
    }
}

/// RFC 3339 UTC, to the second (Howard Hinnant's days-to-civil).
fn iso(time: Millis) -> String {
    let seconds = time.div_euclid(1_000);
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use dcwatch_entity::Directory;

    use crate::detectors::testing::{
        as_rep, directory, hash, krb_error, run, summary, tgs_rep, tgs_req, user,
    };
    use crate::time::{HOUR, MINUTE};

    const WS: &str = "10.98.0.12:50000";

    fn use_tgt(
        offset: i64,
        tgt: &[u8],
        etype: i32,
        renew: bool,
    ) -> [dcwatch_proto::v1::Activity; 2] {
        let service = if renew {
            "krbtgt/LAB.EXAMPLE"
        } else {
            "cifs/fs1.lab.example"
        };
        [
            tgs_req(offset, WS, service, tgt, |body| {
                body.ticket_etype = etype;
                if renew {
                    body.kdc_options = 0x0080_0002;
                }
            }),
            tgs_rep(
                offset + 1,
                WS,
                "alice",
                service,
                &hash((offset / MINUTE) as u8 ^ 0x55),
                |_| {},
            ),
        ]
    }

    #[test]
    fn times_read_as_rfc_3339() {
        // T0 is 2026-12-01T00:00:00Z; 2000-02-29 checks the leap day.
        assert_eq!(
            super::iso(crate::detectors::testing::T0 + 3_723_000),
            "2026-12-01T01:02:03Z"
        );
        assert_eq!(super::iso(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn a_tgt_used_past_its_lifetime_is_a_golden_ticket() {
        let mut activities = vec![as_rep(0, WS, "alice", |body| body.ticket_hash = hash(1))];
        activities.extend(use_tgt(11 * HOUR, &hash(1), 18, false));
        let alerts = run(None, Directory::default(), &activities);
        assert_eq!(
            summary(&alerts),
            [("golden_ticket".into(), "account:alice".into(), 1)]
        );
        assert_eq!(alerts[0].external_id, 2022);
        assert!(alerts[0].description.starts_with(
            "10.98.0.12 used a TGT of LAB.EXAMPLE\\alice 11.0 hours after its issue, beyond the maximum ticket lifetime of 10 hours"
        ), "{}", alerts[0].description);
    }

    #[test]
    fn a_renewal_within_the_lifetime_and_the_renewed_ticket_are_not() {
        let mut activities = vec![as_rep(0, WS, "alice", |body| body.ticket_hash = hash(1))];
        // Renewed at 9 hours: the KDC issues a new TGT (hash 2) then.
        activities.push(tgs_req(
            9 * HOUR,
            WS,
            "krbtgt/LAB.EXAMPLE",
            &hash(1),
            |body| {
                body.kdc_options = 0x0080_0002;
            },
        ));
        activities.push(tgs_rep(
            9 * HOUR + 1,
            WS,
            "alice",
            "krbtgt/LAB.EXAMPLE",
            &hash(2),
            |_| {},
        ));
        activities.extend(use_tgt(15 * HOUR, &hash(2), 18, false));
        activities.extend(use_tgt(9 * HOUR + 30 * MINUTE, &hash(1), 18, false));
        assert!(run(None, Directory::default(), &activities).is_empty());
    }

    #[test]
    fn a_ticket_for_an_account_the_directory_lacks_is_a_forged_principal() {
        let lab = directory(vec![user("alice", 1104)], &[]);
        let activities = [
            tgs_req(0, WS, "cifs/dc1.lab.example", &hash(7), |_| {}),
            tgs_rep(1, WS, "fakeadmin", "cifs/dc1.lab.example", &hash(8), |_| {}),
            tgs_req(2, WS, "cifs/dc1.lab.example", &hash(9), |_| {}),
            tgs_rep(3, WS, "alice", "cifs/dc1.lab.example", &hash(10), |_| {}),
        ];
        let alerts = run(None, lab, &activities);
        assert_eq!(
            summary(&alerts),
            [("golden_ticket".into(), "account:fakeadmin".into(), 1)]
        );
        assert_eq!(alerts[0].external_id, 2027);
        // A user of a trusted forest is not in this directory.
        let trusted = tgs_rep(
            4,
            WS,
            "partner",
            "cifs/dc1.lab.example",
            &hash(11),
            |body| {
                body.client_realm = "PARTNER.EXAMPLE".into();
            },
        );
        let lab = directory(vec![user("alice", 1104)], &[]);
        assert!(run(None, lab, &[trusted]).is_empty());
    }

    #[test]
    fn an_rc4_tgt_never_issued_from_an_aes_computer_is_a_downgrade() {
        let mut activities = vec![as_rep(0, WS, "alice", |body| body.ticket_hash = hash(1))];
        activities.extend(use_tgt(MINUTE, &hash(1), 18, false));
        activities.extend(use_tgt(2 * MINUTE, &hash(66), 23, false));
        let alerts = run(None, Directory::default(), &activities);
        assert_eq!(
            summary(&alerts),
            [("golden_ticket".into(), "account:alice".into(), 1)]
        );
        assert_eq!(alerts[0].external_id, 2009);
    }

    #[test]
    fn an_rc4_tgt_that_was_issued_or_from_a_computer_never_seen_with_aes_is_not() {
        // A legacy domain whose krbtgt issues RC4 TGTs.
        let mut issued = vec![as_rep(0, WS, "alice", |body| {
            body.ticket_hash = hash(1);
            body.ticket_etype = 23;
        })];
        issued.extend(use_tgt(MINUTE, &hash(1), 23, false));
        assert!(run(None, Directory::default(), &issued).is_empty());
        assert!(
            run(
                None,
                Directory::default(),
                &use_tgt(MINUTE, &hash(66), 23, false)
            )
            .is_empty()
        );
        // The KDC refusing an unknown account in an AS exchange is not a ticket.
        assert!(run(None, Directory::default(), &[krb_error(0, WS, "ghost", 6)]).is_empty());
    }
}
