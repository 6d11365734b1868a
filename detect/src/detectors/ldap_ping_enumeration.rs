//! Account enumeration over LDAP pings (MDI 2437): an LDAP ping (a base search for the NetLogon
//! attribute, over CLDAP or TCP 389) naming `User=` makes the DC say whether that account exists
//! (NETLOGON opcode 0x17 or 0x13, SAM_LOGON_RESPONSE) or not (0x19 or 0x15, SAM_USER_UNKNOWN),
//! without a logon or an event: ldapnomnom guesses thousands of names a second this way. The
//! DC locator's own pings carry no `User=`, or the computer's own account (`WS01$`), so those
//! never count.

use std::net::IpAddr;

use dcwatch_proto::v1::{
    LdapActivity, activity::Body, alert::Confidence, alert_entity::Role, ldap_activity,
};

use super::{
    Context, Detector, Kinds,
    guesses::{Answer, Guesses},
    target::{clip, listed},
};
use crate::{
    bounded::BoundedMap,
    catalogue::LDAP_PING_ENUMERATION,
    finding::{Finding, account_entity, destination_text, source_key, source_name, source_text},
    knowledge::short_name,
    observed::Observed,
    time::{MINUTE, Millis},
};

/// Distinct `User=` values from one source within `WINDOW` that make an enumeration (*ours*).
pub(super) const DISTINCT_USERS_THRESHOLD: usize = 10;
pub(super) const WINDOW: Millis = 10 * MINUTE;
/// Sources followed at once.
pub(super) const MAX_SOURCES: usize = 50_000;
/// Names remembered per source.
pub(super) const MAX_NAMES_PER_SOURCE: usize = 1_000;
/// Names an alert's details list, per kind.
pub(super) const MAX_NAMES_LISTED: usize = 50;

/// NETLOGON response opcodes (MS-ADTS 6.3.1.2, 6.3.5): the account exists, or it does not.
const LOGON_SAM_LOGON_RESPONSE: u32 = 0x13;
const LOGON_SAM_USER_UNKNOWN: u32 = 0x15;
const LOGON_SAM_LOGON_RESPONSE_EX: u32 = 0x17;
const LOGON_SAM_USER_UNKNOWN_EX: u32 = 0x19;

#[derive(Debug)]
pub(super) struct LdapPingEnumeration {
    sources: BoundedMap<Option<IpAddr>, Guesses>,
    dropped: u64,
}

impl Default for LdapPingEnumeration {
    fn default() -> Self {
        Self {
            sources: BoundedMap::new(MAX_SOURCES),
            dropped: 0,
        }
    }
}

fn answer(opcode: u32) -> Answer {
    match opcode {
        LOGON_SAM_LOGON_RESPONSE | LOGON_SAM_LOGON_RESPONSE_EX => Answer::Exists,
        LOGON_SAM_USER_UNKNOWN | LOGON_SAM_USER_UNKNOWN_EX => Answer::Unknown,
        _ => Answer::Unsaid,
    }
}

/// The `User=` of an LDAP ping and the answer's opcode: from the sensor's `ping`, else from
/// the filter of a base search for the NetLogon attribute (a sensor that does not fill `ping`
/// yet), unanswered then.
fn ping_user(ldap: &LdapActivity) -> Option<(&str, u32)> {
    if let Some(ping) = &ldap.ping {
        return Some((ping.user.as_str(), ping.response_opcode));
    }
    let netlogon = ldap
        .attributes
        .iter()
        .any(|attribute| attribute.eq_ignore_ascii_case("netlogon"));
    if !netlogon || ldap.scope != ldap_activity::Scope::BaseObject as i32 {
        return None;
    }
    // ASCII lower case keeps byte offsets, so they index the original filter.
    let at = ldap.filter.to_ascii_lowercase().find("(user=")? + "(user=".len();
    let value = ldap.filter.get(at..)?;
    Some((value.split(')').next().unwrap_or(value), 0))
}

impl Detector for LdapPingEnumeration {
    fn kinds(&self) -> Kinds {
        Kinds::ldap(ldap_activity::Type::Search)
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        let Some(Body::Ldap(ldap)) = seen.body() else {
            return;
        };
        if ldap.r#type != ldap_activity::Type::Search as i32 {
            return;
        }
        let Some((user, opcode)) = ping_user(ldap) else {
            return;
        };
        let user = user.trim();
        if user.is_empty() {
            return;
        }
        // A computer asking for its own account is the DC locator at work.
        let own = source_name(seen);
        if user.ends_with('$') && !own.is_empty() && short_name(user) == short_name(own) {
            return;
        }
        let guesses = self
            .sources
            .touch(seen.src, seen.time, || Guesses::new(MAX_NAMES_PER_SOURCE));
        let before = guesses.dropped();
        let new = guesses.add(seen.time, user, answer(opcode), WINDOW);
        self.dropped += guesses.dropped() - before;
        if !new || guesses.len() < DISTINCT_USERS_THRESHOLD {
            return;
        }
        let count = if guesses.counted == 0 {
            guesses.len() as u64
        } else {
            1
        };
        guesses.counted += count;
        let start = guesses.first_time().unwrap_or(seen.time);
        let existing: Vec<&str> = guesses.names(Answer::Exists).collect();
        let unknown: Vec<&str> = guesses.names(Answer::Unknown).collect();
        let unanswered = guesses.count(Answer::Unsaid);
        let transport = if ldap.cldap { "CLDAP" } else { "LDAP over TCP" };
        let exist_text = if existing.is_empty() {
            "none exists".to_owned()
        } else {
            format!(
                "{} exist: {}",
                existing.len(),
                listed(existing.iter().copied(), 10)
            )
        };
        let description = format!(
            "{} asked {} about {} account names in LDAP pings ({transport}) within {} minutes: {} do not exist, {exist_text}{}",
            source_text(seen),
            destination_text(seen),
            guesses.len(),
            WINDOW / MINUTE,
            unknown.len(),
            if unanswered > 0 {
                format!(", {unanswered} unanswered")
            } else {
                String::new()
            },
        );
        let mut finding = Finding::on(
            &LDAP_PING_ENUMERATION,
            source_key(seen),
            seen,
            format!("ldap ping User={}", clip(user)),
        )
        .describe(description)
        .detail(
            "existing_accounts",
            listed(existing.iter().copied(), MAX_NAMES_LISTED),
        )
        .detail(
            "unknown_names",
            listed(unknown.iter().copied(), MAX_NAMES_LISTED),
        )
        .relied_on("traffic: the DC's NETLOGON answers say which names exist")
        .weighed_by_resolution(seen)
        .spanning(start, count);
        for name in existing.iter().take(MAX_NAMES_LISTED) {
            finding = finding.entity(account_entity(
                Role::AttackedAccount,
                "",
                name,
                context.knowledge.directory(),
            ));
        }
        if own.is_empty() {
            finding = finding.relied_on(
                "the source's name is unknown, so its own machine account could not be told apart",
            );
        }
        if existing.is_empty() && unknown.is_empty() {
            // No answer seen: the guesses are there, what they learned is not.
            finding = finding.confidence(Confidence::MediumConfidence);
        }
        context.raise(finding);
    }

    fn evicted(&self) -> u64 {
        self.sources.evicted() + self.dropped
    }
}

#[cfg(test)]
mod tests {
    use dcwatch_entity::Directory;
    use dcwatch_proto::v1::{Activity, Certainty};

    use crate::detectors::{
        builders::ldap_ping,
        testing::{run, summary, with_source_computer},
    };

    const DC: &str = "10.98.0.1:389";
    const NOMNOM: &str = "10.98.0.66:50000";

    #[test]
    fn ldapnomnom_guessing_names_is_ldap_ping_enumeration() {
        let mut pings: Vec<Activity> = (0..10)
            .map(|n| ldap_ping(n * 10, NOMNOM, DC, &format!("guess{n}"), 0x19))
            .collect();
        pings.push(ldap_ping(200, NOMNOM, DC, "Administrator", 0x17));
        pings.push(ldap_ping(210, NOMNOM, DC, "svc_sql", 0x17));
        let alerts = run(None, Directory::default(), &pings);
        assert_eq!(
            summary(&alerts),
            [("ldap_ping_enumeration".into(), "src:10.98.0.66".into(), 12)]
        );
        let alert = &alerts[0];
        assert_eq!(alert.external_id, 2437);
        assert!(
            alert.description.starts_with(
                "10.98.0.66 asked 10.98.0.1 about 12 account names in LDAP pings (CLDAP)"
            ) && alert
                .description
                .contains("10 do not exist, 2 exist: Administrator, svc_sql"),
            "{}",
            alert.description
        );
        assert!(
            alert
                .details
                .iter()
                .any(|detail| detail.name == "existing_accounts"
                    && detail.value == "Administrator, svc_sql")
        );
    }

    #[test]
    fn dc_locator_pings_are_not_enumeration() {
        // Pings without User=, and a computer's pings for its own account, many times over.
        let mut pings: Vec<Activity> = (0..30)
            .map(|n| ldap_ping(n * 10, "10.98.0.20:50000", DC, "", 0x17))
            .collect();
        for n in 0..30 {
            pings.push(with_source_computer(
                ldap_ping(400 + n * 10, "10.98.0.21:50000", DC, "WS02$", 0x17),
                "WS02.lab.example",
                Certainty::High,
            ));
        }
        assert!(run(None, Directory::default(), &pings).is_empty());
    }

    #[test]
    fn pings_over_tcp_without_the_sensor_s_ping_field_are_read_from_the_filter() {
        let pings: Vec<Activity> = (0..10)
            .map(|n| {
                let mut ping = ldap_ping(n * 10, NOMNOM, DC, &format!("guess{n}"), 0);
                if let Some(dcwatch_proto::v1::activity::Body::Ldap(ldap)) = &mut ping.body {
                    ldap.ping = None;
                    ldap.cldap = false;
                }
                ping
            })
            .collect();
        let alerts = run(None, Directory::default(), &pings);
        assert_eq!(
            summary(&alerts),
            [("ldap_ping_enumeration".into(), "src:10.98.0.66".into(), 10)]
        );
        assert!(
            alerts[0].description.contains("(LDAP over TCP)")
                && alerts[0].description.contains("10 unanswered"),
            "{}",
            alerts[0].description
        );
    }

    #[test]
    fn a_few_distinct_users_are_not_enumeration() {
        let pings: Vec<Activity> = (0..9)
            .map(|n| ldap_ping(n * 10, NOMNOM, DC, &format!("user{n}"), 0x17))
            .collect();
        assert!(run(None, Directory::default(), &pings).is_empty());
    }
}
