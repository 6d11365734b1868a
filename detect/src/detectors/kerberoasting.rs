//! Kerberoasting (MDI 2410): service tickets for user accounts' SPNs asked in RC4, whose cipher
//! (the account's NT hash as key) cracks offline. Two rules (DETECTIONS.md):
//! - a TGS-REP with an RC4 ticket (23) for a user account's SPN when that account supports AES
//!   (the KDC only picks RC4 for it when the client asked RC4 alone, as impacket does);
//! - TGS-REQs from one source for `ROAST_SPNS` distinct user SPNs within `ROAST_WINDOW` asking
//!   RC4 first (impacket's GetUserSPNs asks `23,18,17,16,3`; Windows asks AES first);
//! - ours, beside them: one RC4-first request for a user SPN answered with an RC4 ticket, when
//!   nothing says the account lacks AES. Windows asks AES first, so a client that puts RC4 first
//!   and gets it chose the crackable ticket; raised at medium confidence, since a legacy client
//!   configured for RC4 only does the same.
//!
//! The same rules hold for an AS-REQ naming a service instead of krbtgt: Kerberoasting without
//! pre-authentication (Rubeus `kerberoast /nopreauth`, impacket `GetUserSPNs -no-preauth`) asks
//! the service ticket straight from the AS exchange with an account that has DONT_REQ_PREAUTH.
//!
//! Computer accounts (`$`) and krbtgt have random 120-character passwords: not roastable. An
//! RC4-only legacy account (msDS-SupportedEncryptionTypes without AES) gets RC4 tickets
//! normally, so the first rule needs the directory's AES bit, or AES seen for the account; with
//! the attribute unset the KDC's default gives RC4 tickets too.

use std::net::IpAddr;

use dcwatch_entity::ObjectKind;
use dcwatch_proto::v1::{activity::Body, alert::Confidence, alert_entity::Role, kerberos_activity};

use super::{
    Context, Detector, Kinds,
    auth::{client_finding, client_key, client_text},
};
use crate::{
    bounded::{BoundedMap, Window},
    catalogue::KERBEROASTING,
    finding::account_entity,
    knowledge::{is_aes, is_rc4},
    observed::Observed,
    time::{MINUTE, Millis},
};

/// Distinct user SPNs asked RC4-first from one source that make a roast (*ours*, after Splunk's
/// `dc(ServiceName) > 2` and Sigma).
pub(super) const ROAST_SPNS: usize = 3;
/// ... within this long (*ours*, Splunk's 2-minute buckets).
pub(super) const ROAST_WINDOW: Millis = 2 * MINUTE;
/// Sources followed at once.
pub(super) const MAX_ROAST_SOURCES: usize = 10_000;
/// SPNs a source's window keeps.
pub(super) const MAX_ROAST_SPNS: usize = 64;
/// Services whose tickets were seen in AES (their account has AES keys).
pub(super) const MAX_AES_SERVICES: usize = 100_000;

/// Service classes registered on computer accounts (MS-ADTS's host SPN aliases, the default
/// sPNMappings, and kin): with no directory, a ticket for one is not a roast.
const COMPUTER_SERVICE_CLASSES: &[&str] = &[
    "host",
    "http",
    "www",
    "w3svc",
    "time",
    "schedule",
    "spooler",
    "rpc",
    "dcom",
    "netlogon",
    "msdtc",
    "cifs",
    "ldap",
    "gc",
    "rpcss",
    "restrictedkrbhost",
    "dns",
    "wsman",
    "termsrv",
    "krbtgt",
    "kadmin",
    "e3514235-4b06-11d1-ab04-00c04fc2dcd2",
];

/// Who owns a service principal, as far as is known.
#[derive(Debug)]
pub(super) struct Owner {
    /// The user account (its sAMAccountName, or the SPN's own name).
    pub account: String,
    /// Whether it can use AES: the directory's attribute, else AES seen for it.
    pub aes: Option<bool>,
    pub basis: String,
    pub from_directory: bool,
}

/// The user account behind `service`, or `None` for a computer's, krbtgt's, or an unknown one.
pub(super) fn user_owner(
    context: &Context<'_>,
    service: &str,
    aes_services: &BoundedMap<String, ()>,
) -> Option<Owner> {
    let knowledge = context.knowledge;
    let service_key = service.to_lowercase();
    if knowledge.has_directory() {
        let object = knowledge.directory().account(service)?;
        if object.kind != ObjectKind::User || object.sam_account_name.ends_with('$') {
            return None;
        }
        let aes = object
            .supports_aes()
            .or_else(|| aes_services.get(&service_key).map(|()| true));
        let etypes = match object.supported_etypes {
            Some(bits) => format!("msDS-SupportedEncryptionTypes {bits:#x}"),
            None => "msDS-SupportedEncryptionTypes unset".to_owned(),
        };
        return Some(Owner {
            account: object.sam_account_name.clone(),
            aes,
            basis: format!(
                "directory: {service} belongs to the user {} ({etypes})",
                object.sam_account_name
            ),
            from_directory: true,
        });
    }
    let class = service.split('/').next().unwrap_or(service).to_lowercase();
    if service.ends_with('$') || COMPUTER_SERVICE_CLASSES.contains(&class.as_str()) {
        return None;
    }
    // With no directory, an SPN without a host names the account itself (impacket asks by
    // sAMAccountName); any other class is taken for a service account's.
    let account = if service.contains('/') {
        String::new()
    } else {
        crate::knowledge::account_key(service)
    };
    let learned = (!account.is_empty())
        .then(|| knowledge.learned_account(&account))
        .flatten()
        .is_some_and(|learned| learned.aes_seen);
    let aes = (learned || aes_services.get(&service_key).is_some()).then_some(true);
    Some(Owner {
        basis: format!(
            "traffic: {service} is not a computer's service class (no directory to name its account)"
        ),
        account,
        aes,
        from_directory: false,
    })
}

#[derive(Debug)]
pub(super) struct Kerberoasting {
    /// Per source: (SPN, its account when known) asked RC4-first, and whether its alert is open.
    sources: BoundedMap<IpAddr, (Window<(String, String)>, bool)>,
    aes_services: BoundedMap<String, ()>,
    /// RC4-first requests waiting for their answer, by the client's address and port: the SPN.
    rc4_requests: BoundedMap<(IpAddr, u16), String>,
}

/// RC4-first requests remembered until their answer.
pub(super) const MAX_RC4_REQUESTS: usize = 10_000;

impl Default for Kerberoasting {
    fn default() -> Self {
        Self {
            sources: BoundedMap::new(MAX_ROAST_SOURCES),
            aes_services: BoundedMap::new(MAX_AES_SERVICES),
            rc4_requests: BoundedMap::new(MAX_RC4_REQUESTS),
        }
    }
}

impl Detector for Kerberoasting {
    fn kinds(&self) -> Kinds {
        use kerberos_activity::Type;
        Kinds::kerberos(Type::TgsReq)
            | Kinds::kerberos(Type::TgsRep)
            | Kinds::kerberos(Type::AsReq)
            | Kinds::kerberos(Type::AsRep)
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        use kerberos_activity::Type;
        let Some(Body::Kerberos(kerberos)) = seen.body() else {
            return;
        };
        if kerberos.service.is_empty() {
            return;
        }
        // An AS exchange naming a service is judged as the TGS exchange it stands in for;
        // nearly every AS exchange is for a TGT, which no roast asks.
        let step = match Type::try_from(kerberos.r#type) {
            Ok(step @ (Type::TgsReq | Type::TgsRep)) => step,
            Ok(Type::AsReq) if !names_krbtgt(&kerberos.service) => Type::TgsReq,
            Ok(Type::AsRep) if !names_krbtgt(&kerberos.service) => Type::TgsRep,
            _ => return,
        };
        match step {
            Type::TgsRep if is_aes(kerberos.ticket_etype) => {
                self.aes_services
                    .touch(kerberos.service.to_lowercase(), seen.time, || ());
            }
            Type::TgsRep if is_rc4(kerberos.ticket_etype) => {
                self.rc4_ticket(seen, context, kerberos);
            }
            Type::TgsReq if kerberos.etypes.first().is_some_and(|etype| is_rc4(*etype)) => {
                if let Some(client) = seen.src {
                    *self
                        .rc4_requests
                        .touch((client, seen.src_port), seen.time, String::new) =
                        kerberos.service.to_lowercase();
                }
                self.rc4_first(seen, context, kerberos);
            }
            _ => {}
        }
    }

    fn evicted(&self) -> u64 {
        self.sources.evicted() + self.aes_services.evicted() + self.rc4_requests.evicted()
    }
}

/// Whether `service` is the ticket-granting service (`krbtgt/REALM`), compared without
/// allocating: it is on nearly every AS exchange.
fn names_krbtgt(service: &str) -> bool {
    service
        .get(..6)
        .is_some_and(|class| class.eq_ignore_ascii_case("krbtgt"))
}

impl Kerberoasting {
    fn rc4_ticket(
        &mut self,
        seen: &Observed<'_>,
        context: &mut Context<'_>,
        kerberos: &dcwatch_proto::v1::KerberosActivity,
    ) {
        let Some(owner) = user_owner(context, &kerberos.service, &self.aes_services) else {
            return;
        };
        let asked_rc4_first = seen
            .dst
            .and_then(|client| self.rc4_requests.remove(&(client, seen.dst_port)))
            .is_some_and(|service| service == kerberos.service.to_lowercase());
        let downgraded = owner.aes != Some(false) && asked_rc4_first;
        if owner.aes != Some(true) && !downgraded {
            // Windows' own stack asks AES first and still gets RC4 for an account whose
            // encryption types are unknown (Rubeus kerberoast by default, Invoke-Kerberoast):
            // one such ticket is ordinary, `ROAST_SPNS` for distinct SPNs in the window a roast.
            if owner.aes.is_none()
                && let Some(client) = seen.dst
            {
                self.count_spn(seen, context, client, kerberos, &owner, Spn::GotRc4);
            }
            return;
        }
        let account = if owner.account.is_empty() {
            kerberos.service.clone()
        } else {
            owner.account.clone()
        };
        let requester = seen.account_text();
        let why = if owner.aes == Some(true) {
            "which supports AES"
        } else {
            "asking RC4 before AES, as Kerberoasting tools do"
        };
        let description = format!(
            "{}{} got an RC4 service ticket for {} (account {account}), {why}: its hash can be cracked offline",
            if requester.is_empty() {
                String::new()
            } else {
                format!("{requester} on ")
            },
            client_text(seen),
            kerberos.service,
        );
        let reply = if kerberos.r#type == kerberos_activity::Type::AsRep as i32 {
            "AS-REP without pre-authentication"
        } else {
            "TGS-REP"
        };
        let mut finding = client_finding(
            &KERBEROASTING,
            client_key(seen),
            seen,
            format!("{reply} RC4 ticket for {}", kerberos.service),
        )
        .describe(description)
        .entity(account_entity(
            Role::AttackedAccount,
            "",
            &account,
            context.knowledge.directory(),
        ))
        .detail("spns", kerberos.service.clone())
        .detail("ticket_etype", kerberos.ticket_etype.to_string())
        .relied_on(owner.basis)
        .weighed_by_resolution(seen);
        if !requester.is_empty()
            && let Some(account) = &seen.activity.account
        {
            finding = finding.entity(account_entity(
                Role::SourceAccount,
                &account.domain,
                &account.name,
                context.knowledge.directory(),
            ));
        }
        if owner.aes == Some(true) {
            if !owner.from_directory {
                finding = finding.relied_on(format!("traffic: {account} was seen using AES keys"));
            }
        } else {
            finding = finding
                .relied_on("traffic: the client asked RC4 first (Windows asks AES first); a legacy client set to RC4 only does the same")
                .confidence(Confidence::MediumConfidence);
        }
        context.raise(finding);
    }

    fn rc4_first(
        &mut self,
        seen: &Observed<'_>,
        context: &mut Context<'_>,
        kerberos: &dcwatch_proto::v1::KerberosActivity,
    ) {
        let Some(owner) = user_owner(context, &kerberos.service, &self.aes_services) else {
            return;
        };
        let Some(address) = seen.src else {
            return;
        };
        self.count_spn(seen, context, address, kerberos, &owner, Spn::AskedRc4First);
    }

    /// Counts `kerberos`'s SPN in `address`'s window; from `ROAST_SPNS` distinct ones the alert
    /// opens and each later new one updates it.
    fn count_spn(
        &mut self,
        seen: &Observed<'_>,
        context: &mut Context<'_>,
        address: IpAddr,
        kerberos: &dcwatch_proto::v1::KerberosActivity,
        owner: &Owner,
        counted: Spn,
    ) {
        let spn = kerberos.service.as_str();
        let (window, roasting) = self
            .sources
            .touch(address, seen.time, || (Window::new(MAX_ROAST_SPNS), false));
        if window
            .items()
            .all(|(at, _)| seen.time.saturating_sub(*at) > ROAST_WINDOW)
        {
            *roasting = false;
        }
        let new = !window
            .items()
            .any(|(_, (known, _))| known.eq_ignore_ascii_case(spn));
        window.push(
            seen.time,
            (spn.to_owned(), owner.account.clone()),
            ROAST_WINDOW,
        );
        if !new {
            return;
        }
        let mut spns: Vec<String> = Vec::new();
        for (_, (known, account)) in window.items() {
            if !spns
                .iter()
                .any(|listed| listed.split(' ').next() == Some(known.as_str()))
            {
                // An SPN with its account when that is not the SPN itself: `HTTP/web (svc_web)`.
                if account.is_empty() || account.eq_ignore_ascii_case(known) {
                    spns.push(known.clone());
                } else {
                    spns.push(format!("{known} ({account})"));
                }
            }
        }
        let count = if *roasting {
            1
        } else if spns.len() >= ROAST_SPNS {
            *roasting = true;
            spns.len() as u64
        } else {
            return;
        };
        let start = window.first_time().unwrap_or(seen.time);
        let description = format!(
            "{} {} for {} user SPNs within {} minutes ({}), as Kerberoasting tools do",
            client_text(seen),
            counted.verb(),
            spns.len(),
            ROAST_WINDOW / MINUTE,
            spns.join(", "),
        );
        let summary = match counted {
            Spn::AskedRc4First => format!("TGS-REQ for {spn}, etypes {:?}", kerberos.etypes),
            Spn::GotRc4 => format!("TGS-REP RC4 ticket for {spn}"),
        };
        let mut finding = client_finding(&KERBEROASTING, client_key(seen), seen, summary)
            .describe(description)
            .detail("spns", spns.join(", "))
            .spanning(start, count)
            .relied_on(owner.basis.clone())
            .weighed_by_resolution(seen);
        if !owner.account.is_empty() {
            finding = finding.entity(account_entity(
                Role::AttackedAccount,
                "",
                &owner.account,
                context.knowledge.directory(),
            ));
        }
        // Only a tool asks RC4 first; RC4 answered to an AES-first request may be a legacy
        // estate's ordinary traffic.
        if !owner.from_directory || counted == Spn::GotRc4 {
            finding = finding.confidence(Confidence::MediumConfidence);
        }
        context.raise(finding);
    }
}

/// What a roast's window counted for an SPN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spn {
    /// A TGS-REQ asking RC4 first (impacket, Rubeus with `/tgtdeleg` or `/rc4opsec`).
    AskedRc4First,
    /// An RC4 ticket for an account whose encryption types are unknown.
    GotRc4,
}

impl Spn {
    fn verb(self) -> &'static str {
        match self {
            Self::AskedRc4First => "asked RC4-first service tickets",
            Self::GotRc4 => "got RC4 service tickets",
        }
    }
}

#[cfg(test)]
mod tests {
    use dcwatch_entity::Directory;

    use crate::detectors::testing::{
        as_rep, as_req, computer, directory, hash, run, summary, tgs_rep, tgs_req, user,
    };

    const CLIENT: &str = "10.98.0.8:50000";

    fn lab(sql_etypes: Option<u32>) -> Directory {
        let mut sql = user("svc_sql", 1107);
        sql.spns = vec!["MSSQLSvc/sql01.lab.example:1433".into()];
        sql.supported_etypes = sql_etypes;
        let mut web = user("svc_web", 1108);
        web.spns = vec!["HTTP/web.lab.example".into()];
        let mut ws = computer("WS01", 1200, 0x1000);
        ws.spns = vec!["HOST/ws01.lab.example".into()];
        directory(vec![user("alice", 1104), sql, web, ws], &[])
    }

    fn rc4_reply(offset: i64, service: &str) -> dcwatch_proto::v1::Activity {
        tgs_rep(
            offset,
            CLIENT,
            "alice",
            service,
            &hash(offset as u8),
            |body| {
                body.ticket_etype = 23;
            },
        )
    }

    #[test]
    fn an_rc4_ticket_for_an_aes_user_spn_is_kerberoasting() {
        let alerts = run(
            None,
            lab(Some(0x18)),
            &[rc4_reply(0, "MSSQLSvc/sql01.lab.example:1433")],
        );
        assert_eq!(
            summary(&alerts),
            [("kerberoasting".into(), "src:10.98.0.8".into(), 1)]
        );
        let alert = &alerts[0];
        assert_eq!(alert.external_id, 2410);
        assert_eq!(
            alert.description,
            "LAB.EXAMPLE\\alice on 10.98.0.8 got an RC4 service ticket for MSSQLSvc/sql01.lab.example:1433 (account svc_sql), which supports AES: its hash can be cracked offline"
        );
        assert!(
            alert
                .relied_on
                .iter()
                .any(|basis| basis.contains("msDS-SupportedEncryptionTypes 0x18"))
        );
    }

    #[test]
    fn an_rc4_only_legacy_account_a_computer_and_an_aes_ticket_are_not_kerberoasting() {
        let legacy = run(
            None,
            lab(Some(0x4)),
            &[
                rc4_reply(0, "MSSQLSvc/sql01.lab.example:1433"),
                // Unset: the KDC's default gives RC4 tickets.
                rc4_reply(1, "HTTP/web.lab.example"),
                rc4_reply(2, "HOST/ws01.lab.example"),
                tgs_rep(
                    3,
                    CLIENT,
                    "alice",
                    "MSSQLSvc/sql01.lab.example:1433",
                    &hash(9),
                    |_| {},
                ),
            ],
        );
        assert!(legacy.is_empty());
    }

    #[test]
    fn three_user_spns_asked_rc4_first_are_kerberoasting_without_a_directory() {
        let asks: Vec<_> = ["svc_sql", "svc_web", "MSSQLSvc/sql02:1433", "svc_sql"]
            .iter()
            .enumerate()
            .map(|(n, spn)| {
                tgs_req(n as i64 * 1_000, CLIENT, spn, &hash(1), |body| {
                    body.etypes = vec![23, 18, 17, 16, 3];
                })
            })
            .collect();
        let alerts = run(None, Directory::default(), &asks);
        // Three open it, the fourth distinct... is the same svc_sql: no update.
        assert_eq!(
            summary(&alerts),
            [("kerberoasting".into(), "src:10.98.0.8".into(), 3)]
        );
        assert!(
            alerts[0].description.contains(
                "for 3 user SPNs within 2 minutes (svc_sql, svc_web, MSSQLSvc/sql02:1433)"
            )
        );
    }

    #[test]
    fn the_spns_are_listed_with_their_accounts() {
        let asks: Vec<_> = [
            "MSSQLSvc/sql01.lab.example:1433",
            "HTTP/web.lab.example",
            "svc_sql",
        ]
        .iter()
        .enumerate()
        .map(|(n, spn)| {
            tgs_req(n as i64, CLIENT, spn, &hash(1), |body| {
                body.etypes = vec![23, 18, 17, 16, 3];
            })
        })
        .collect();
        let alerts = run(None, lab(None), &asks);
        assert!(
            alerts[0].description.contains(
                "for 3 user SPNs within 2 minutes (MSSQLSvc/sql01.lab.example:1433 (svc_sql), HTTP/web.lab.example (svc_web), svc_sql)"
            ),
            "{}",
            alerts[0].description
        );
    }

    #[test]
    fn windows_asking_aes_first_or_computer_services_rc4_first_is_not_kerberoasting() {
        let mut asks: Vec<_> = ["svc_sql", "svc_web", "svc_app"]
            .iter()
            .enumerate()
            .map(|(n, spn)| {
                tgs_req(n as i64, CLIENT, spn, &hash(1), |body| {
                    body.etypes = vec![18, 17, 23, 24, -135];
                })
            })
            .collect();
        asks.extend(
            ["cifs/dc1", "ldap/dc1", "host/ws02"]
                .iter()
                .map(|spn| tgs_req(10, CLIENT, spn, &hash(1), |body| body.etypes = vec![23])),
        );
        assert!(run(None, Directory::default(), &asks).is_empty());
    }

    #[test]
    fn one_rc4_first_request_answered_in_rc4_is_kerberoasting_at_medium_confidence() {
        let ask = |offset: i64, spn: &str| {
            tgs_req(offset, CLIENT, spn, &hash(1), |body| {
                body.etypes = vec![23, 16, 3, 18];
            })
        };
        let alerts = run(
            None,
            Directory::default(),
            &[ask(0, "svc_sql"), rc4_reply(1, "svc_sql")],
        );
        assert_eq!(
            summary(&alerts),
            [("kerberoasting".into(), "src:10.98.0.8".into(), 1)]
        );
        assert_eq!(
            alerts[0].confidence(),
            dcwatch_proto::v1::alert::Confidence::MediumConfidence
        );
        assert!(alerts[0].description.contains("asking RC4 before AES"));
        // An account the directory says has no AES key: RC4 is its only ticket.
        let legacy = run(
            None,
            lab(Some(0x4)),
            &[
                ask(0, "MSSQLSvc/sql01.lab.example:1433"),
                rc4_reply(1, "MSSQLSvc/sql01.lab.example:1433"),
            ],
        );
        assert!(legacy.is_empty());
        // An AES-first request answered in RC4 (Windows and a legacy account): nothing.
        let windows = tgs_req(0, CLIENT, "svc_sql", &hash(1), |body| {
            body.etypes = vec![18, 17, 23];
        });
        assert!(
            run(
                None,
                Directory::default(),
                &[windows, rc4_reply(1, "svc_sql")]
            )
            .is_empty()
        );
    }

    #[test]
    fn kerberoasting_without_pre_authentication_asks_the_ticket_in_an_as_exchange() {
        // Rubeus `kerberoast /nopreauth:svc_np`, impacket `GetUserSPNs -no-preauth svc_np`: an
        // AS-REQ of the no-pre-authentication account naming the SPN, answered with its ticket.
        let spn = "MSSQLSvc/sql01.lab.example:1433";
        let roast = [
            as_req(0, CLIENT, "svc_np", |body| {
                body.service = spn.into();
                body.etypes = vec![23];
                body.encrypted_timestamp = false;
                body.timestamp_etype = 0;
                body.pa_data_types = vec![128];
            }),
            as_rep(1, CLIENT, "svc_np", |body| {
                body.service = spn.into();
                body.ticket_etype = 23;
                body.reply_etype = 23;
            }),
        ];
        let alerts = run(None, lab(Some(0x18)), &roast);
        let roasts: Vec<_> = summary(&alerts)
            .into_iter()
            .filter(|(kind, _, _)| kind == "kerberoasting")
            .collect();
        assert_eq!(
            roasts,
            [("kerberoasting".into(), "src:10.98.0.8".into(), 1)]
        );
        let alert = alerts
            .iter()
            .find(|alert| alert.r#type == "kerberoasting")
            .expect("raised");
        assert!(
            alert.description.contains(
                "got an RC4 service ticket for MSSQLSvc/sql01.lab.example:1433 (account svc_sql)"
            ),
            "{}",
            alert.description
        );
        // Without a directory, three SPNs asked RC4-first in AS-REQs make a roast too.
        let asks: Vec<_> = ["svc_sql", "svc_web", "MSSQLSvc/sql02:1433"]
            .iter()
            .enumerate()
            .map(|(n, spn)| {
                as_req(n as i64, CLIENT, "svc_np", |body| {
                    body.service = (*spn).into();
                    body.etypes = vec![23, 18, 17];
                    body.encrypted_timestamp = false;
                    body.pa_data_types = vec![128];
                })
            })
            .collect();
        assert!(
            summary(&run(None, Directory::default(), &asks))
                .iter()
                .any(|(kind, _, _)| kind == "kerberoasting")
        );
    }

    #[test]
    fn an_rc4_tgt_or_a_password_change_ticket_is_not_kerberoasting() {
        // A legacy client's RC4 TGT, and kpasswd's AS exchange for kadmin/changepw.
        let exchanges = [
            as_req(0, CLIENT, "alice", |body| body.etypes = vec![23]),
            as_rep(1, CLIENT, "alice", |body| {
                body.ticket_etype = 23;
                body.reply_etype = 23;
            }),
            as_req(2, CLIENT, "alice", |body| {
                body.service = "kadmin/changepw".into();
                body.etypes = vec![23];
            }),
            as_rep(3, CLIENT, "alice", |body| {
                body.service = "kadmin/changepw".into();
                body.ticket_etype = 23;
            }),
        ];
        for directory in [lab(Some(0x18)), Directory::default()] {
            let alerts = run(None, directory, &exchanges);
            assert!(
                alerts.iter().all(|alert| alert.r#type != "kerberoasting"),
                "{:?}",
                summary(&alerts)
            );
        }
    }

    #[test]
    fn spns_named_as_impacket_and_rubeus_name_them_are_roasted_user_accounts() {
        // impacket's GetUserSPNs asks `LAB\svc_sql` (NT-MS-PRINCIPAL), Rubeus `/enterprise`
        // asks `svc_web@LAB.EXAMPLE` (NT-ENTERPRISE); both name the user, not a computer.
        let asks: Vec<_> = ["LAB\\svc_sql", "svc_web@LAB.EXAMPLE", "MSSQLSvc/sql02:1433"]
            .iter()
            .enumerate()
            .map(|(n, spn)| {
                tgs_req(n as i64, CLIENT, spn, &hash(1), |body| {
                    body.etypes = vec![23];
                })
            })
            .collect();
        let alerts = run(None, Directory::default(), &asks);
        assert_eq!(
            summary(&alerts),
            [("kerberoasting".into(), "src:10.98.0.8".into(), 3)]
        );
        // With the directory, the NT-MS-PRINCIPAL form's RC4 ticket is svc_sql's.
        let alerts = run(None, lab(Some(0x18)), &[rc4_reply(0, "LAB\\svc_sql")]);
        assert_eq!(
            summary(&alerts),
            [("kerberoasting".into(), "src:10.98.0.8".into(), 1)]
        );
        assert!(alerts[0].description.contains("(account svc_sql)"));
    }

    #[test]
    fn three_rc4_tickets_for_user_spns_to_a_windows_client_are_kerberoasting() {
        // Rubeus kerberoast without /tgtdeleg and Invoke-Kerberoast go through Windows' own
        // stack: AES first in the request, RC4 in the ticket for accounts of unknown etypes.
        let roast: Vec<_> = ["MSSQLSvc/sql02:1433", "svc_backup", "exchangeAB/mail01"]
            .iter()
            .enumerate()
            .flat_map(|(n, spn)| {
                let at = n as i64 * 1_000;
                [
                    tgs_req(at, CLIENT, spn, &hash(1), |body| {
                        body.etypes = vec![18, 17, 23, 24, -135];
                    }),
                    rc4_reply(at + 1, spn),
                ]
            })
            .collect();
        let alerts = run(None, Directory::default(), &roast);
        assert_eq!(
            summary(&alerts),
            [("kerberoasting".into(), "src:10.98.0.8".into(), 3)]
        );
        assert!(
            alerts[0]
                .description
                .contains("got RC4 service tickets for 3 user SPNs within 2 minutes"),
            "{}",
            alerts[0].description
        );
        assert_eq!(
            alerts[0].confidence(),
            dcwatch_proto::v1::alert::Confidence::MediumConfidence
        );
    }

    #[test]
    fn rc4_tickets_for_two_services_or_for_rc4_only_accounts_are_not_kerberoasting() {
        // A client of two legacy services, and of three the directory says have no AES key.
        let two = [rc4_reply(0, "svc_sql"), rc4_reply(1, "svc_web")];
        assert!(run(None, Directory::default(), &two).is_empty());
        let mut legacy = Vec::new();
        let mut objects = Vec::new();
        for (n, name) in ["svc_a", "svc_b", "svc_c"].iter().enumerate() {
            let mut account = user(name, 1300 + n as u32);
            account.spns = vec![format!("MSSQLSvc/{name}.lab.example:1433")];
            account.supported_etypes = Some(0x4);
            objects.push(account);
            legacy.push(rc4_reply(
                n as i64,
                &format!("MSSQLSvc/{name}.lab.example:1433"),
            ));
        }
        // (alice is no account of this directory: golden_ticket's 2027 is not this test's.)
        let alerts = run(None, directory(objects, &[]), &legacy);
        assert!(
            alerts.iter().all(|alert| alert.r#type != "kerberoasting"),
            "{:?}",
            summary(&alerts)
        );
        // Spread over more than the window: a working day's ordinary tickets.
        let spread: Vec<_> = ["svc_sql", "svc_web", "svc_app"]
            .iter()
            .enumerate()
            .map(|(n, spn)| rc4_reply(n as i64 * 3 * 60_000, spn))
            .collect();
        assert!(run(None, Directory::default(), &spread).is_empty());
    }
}
