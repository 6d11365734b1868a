//! Account enumeration reconnaissance (MDI 2003): a source guessing account names from a list
//! (KrbGuess, kerbrute userenum) learns which exist from the answers: over Kerberos a
//! C_PRINCIPAL_UNKNOWN (6) says "no such account" where PREAUTH_REQUIRED (25) or PREAUTH_FAILED
//! (24) say it exists; over NTLM (event 4776) NoSuchUser 0xC0000064 against WrongPassword
//! 0xC000006A. A user mistyping their name once, or a script checking a few departed
//! employees, stays under the threshold; the alert lists the names that exist apart from the
//! unknown ones, since those are what the attacker now knows.

use std::collections::BTreeMap;

use dcwatch_proto::v1::{
    WindowsEventActivity, activity::Body, alert::Confidence, alert_entity::Role, kerberos_activity,
};

use super::{
    Context, Detector, Kinds,
    guesses::{Answer, Guesses},
    target::{answered_client_text, clip, listed, on_answer},
};
use crate::{
    bounded::BoundedMap,
    catalogue::ACCOUNT_ENUMERATION,
    finding::{Finding, account_entity, computer_text},
    observed::Observed,
    time::{MINUTE, Millis},
};

/// Distinct unknown names from one source within `WINDOW` that make an enumeration (*ours*;
/// Splunk uses 30 in 5 minutes, Sigma 10 in 24 hours).
pub(super) const UNKNOWN_NAMES_THRESHOLD: usize = 10;
pub(super) const WINDOW: Millis = 10 * MINUTE;
/// Sources followed at once.
pub(super) const MAX_SOURCES: usize = 50_000;
/// Names remembered per source (a dictionary run passes it; the count goes on).
pub(super) const MAX_NAMES_PER_SOURCE: usize = 1_000;
/// Names an alert's details list, per kind.
pub(super) const MAX_NAMES_LISTED: usize = 50;

/// Kerberos errors (RFC 4120 7.5.9) that say the principal exists or not.
const KDC_ERR_C_PRINCIPAL_UNKNOWN: i32 = 6;
const KDC_ERR_CLIENT_REVOKED: i32 = 18;
const KDC_ERR_KEY_EXPIRED: i32 = 23;
const KDC_ERR_PREAUTH_FAILED: i32 = 24;
const KDC_ERR_PREAUTH_REQUIRED: i32 = 25;

/// NTSTATUS of event 4776 (MS-ERREF 2.3): no such user, and those only an existing account gets.
const STATUS_NO_SUCH_USER: u32 = 0xC000_0064;
const STATUSES_OF_EXISTING: [u32; 8] = [
    0,           // success
    0xC000_006A, // wrong password
    0xC000_006F, // outside logon hours
    0xC000_0070, // workstation restriction
    0xC000_0071, // password expired
    0xC000_0072, // account disabled
    0xC000_0193, // account expired
    0xC000_0234, // account locked out
];

#[derive(Debug)]
pub(super) struct AccountEnumeration {
    sources: BoundedMap<String, Guesses>,
    /// Names dropped from full per-source lists, summed over sources since forgotten.
    dropped: u64,
}

impl Default for AccountEnumeration {
    fn default() -> Self {
        Self {
            sources: BoundedMap::new(MAX_SOURCES),
            dropped: 0,
        }
    }
}

/// One answer about one name, from a source.
struct Tried<'a> {
    key: String,
    name: &'a str,
    answer: Answer,
    /// "Kerberos" or "NTLM (event 4776)".
    how: &'static str,
}

fn kerberos_answer(code: i32) -> Answer {
    match code {
        KDC_ERR_C_PRINCIPAL_UNKNOWN => Answer::Unknown,
        KDC_ERR_CLIENT_REVOKED
        | KDC_ERR_KEY_EXPIRED
        | KDC_ERR_PREAUTH_FAILED
        | KDC_ERR_PREAUTH_REQUIRED => Answer::Exists,
        _ => Answer::Unsaid,
    }
}

fn ntlm_answer(event: &WindowsEventActivity) -> Answer {
    if !event.has_status {
        Answer::Unsaid
    } else if event.status == STATUS_NO_SUCH_USER {
        Answer::Unknown
    } else if STATUSES_OF_EXISTING.contains(&event.status) {
        Answer::Exists
    } else {
        Answer::Unsaid
    }
}

fn tried<'a>(seen: &Observed<'a>) -> Option<Tried<'a>> {
    match seen.body()? {
        Body::Kerberos(kerberos) if kerberos.r#type == kerberos_activity::Type::KrbError as i32 => {
            let name = if kerberos.client.is_empty() {
                seen.account_name()
            } else {
                kerberos.client.as_str()
            };
            Some(Tried {
                // The error goes from the KDC to the client: the guesser is its destination.
                key: super::target::answered_client_key(seen),
                name,
                answer: kerberos_answer(kerberos.error_code),
                how: "Kerberos",
            })
        }
        Body::WindowsEvent(event) if event.event_id == 4776 && !event.workstation.is_empty() => {
            let name = event
                .target
                .as_ref()
                .map_or_else(|| seen.account_name(), |target| target.name.as_str());
            Some(Tried {
                key: format!("src:{}", crate::knowledge::short_name(&event.workstation)),
                name,
                answer: ntlm_answer(event),
                how: "NTLM (event 4776)",
            })
        }
        _ => None,
    }
}

impl Detector for AccountEnumeration {
    fn kinds(&self) -> Kinds {
        Kinds::kerberos(kerberos_activity::Type::KrbError) | Kinds::WINDOWS_EVENT
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        let Some(tried) = tried(seen) else {
            return;
        };
        if tried.name.is_empty() || tried.answer == Answer::Unsaid {
            return;
        }
        let guesses = self.sources.touch(tried.key.clone(), seen.time, || {
            Guesses::new(MAX_NAMES_PER_SOURCE)
        });
        let before = guesses.dropped();
        let new = guesses.add(seen.time, tried.name, tried.answer, WINDOW);
        self.dropped += guesses.dropped() - before;
        let unknown = guesses.count(Answer::Unknown);
        if !new || tried.answer != Answer::Unknown || unknown < UNKNOWN_NAMES_THRESHOLD {
            return;
        }
        let count = if guesses.counted == 0 {
            unknown as u64
        } else {
            1
        };
        guesses.counted += count;
        let start = guesses.first_time().unwrap_or(seen.time);
        let existing: Vec<&str> = guesses.names(Answer::Exists).collect();
        let unknown_names: Vec<&str> = guesses.names(Answer::Unknown).collect();
        let finding = finding(seen, &tried, &existing, &unknown_names, context);
        context.raise(finding.spanning(start, count));
    }

    fn evicted(&self) -> u64 {
        self.sources.evicted() + self.dropped
    }
}

fn finding(
    seen: &Observed<'_>,
    tried: &Tried<'_>,
    existing: &[&str],
    unknown: &[&str],
    context: &Context<'_>,
) -> Finding {
    let (mut finding, source, server) = if let Some(Body::WindowsEvent(event)) = seen.body() {
        // The syslog sender is not the guesser: the event's workstation is.
        let finding = Finding::from_source(
            &ACCOUNT_ENUMERATION,
            tried.key.clone(),
            seen,
            format!("4776 {} status {:#x}", clip(tried.name), event.status),
            dcwatch_proto::v1::AlertEntity {
                role: Role::SourceComputer.into(),
                name: clip(&event.workstation),
                ..Default::default()
            },
        );
        let finding = finding.relied_on(format!(
            "event 4776 of {}: the workstation name the client gave, not resolved to an address",
            clip(&event.computer)
        ));
        (
            finding,
            computer_text(&clip(&event.workstation), None),
            clip(&event.computer),
        )
    } else {
        let finding = on_answer(
            &ACCOUNT_ENUMERATION,
            seen,
            format!(
                "kerberos KRB-ERROR {} for {}",
                clip(&error_text(seen)),
                clip(tried.name)
            ),
        )
        .weighed_by_resolution(seen);
        (
            finding,
            answered_client_text(seen),
            computer_text("", seen.src),
        )
    };
    let exist_text = if existing.is_empty() {
        "none exists".to_owned()
    } else {
        format!(
            "{} exist: {}",
            existing.len(),
            listed(existing.iter().copied(), 10)
        )
    };
    finding.description = format!(
        "{source} tried {} account names against {server} over {} in {} minutes: {} do not exist, {exist_text}",
        existing.len() + unknown.len(),
        tried.how,
        WINDOW / MINUTE,
        unknown.len(),
    );
    let directory = context.knowledge.directory();
    let mut attacked = BTreeMap::new();
    for name in existing.iter().take(MAX_NAMES_LISTED) {
        attacked.insert(name.to_lowercase(), *name);
    }
    for name in attacked.values() {
        finding = finding.entity(account_entity(Role::AttackedAccount, "", name, directory));
    }
    if context.knowledge.has_directory() {
        finding =
            finding.relied_on("directory: the KDC's and the DC's answers say which names exist");
    } else {
        finding = finding
            .relied_on(
                "traffic: the KDC's and the DC's answers say which names exist (no directory)",
            )
            .confidence(Confidence::MediumConfidence);
    }
    finding
        .detail(
            "existing_accounts",
            listed(existing.iter().copied(), MAX_NAMES_LISTED),
        )
        .detail(
            "unknown_names",
            listed(unknown.iter().copied(), MAX_NAMES_LISTED),
        )
        .detail("protocol", tried.how)
}

fn error_text(seen: &Observed<'_>) -> String {
    match seen.body() {
        Some(Body::Kerberos(kerberos)) if !kerberos.error_name.is_empty() => {
            kerberos.error_name.clone()
        }
        Some(Body::Kerberos(kerberos)) => kerberos.error_code.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use dcwatch_entity::Directory;
    use dcwatch_proto::v1::Activity;

    use crate::detectors::{
        builders::{event_4776, krb_error},
        testing::{run, summary},
    };

    const DC: &str = "10.98.0.1:88";
    const GUESSER: &str = "10.98.0.66:50000";

    fn guesses(unknown: usize, existing: &[&str]) -> Vec<Activity> {
        let mut activities: Vec<Activity> = (0..unknown)
            .map(|n| krb_error(n as i64 * 1_000, DC, GUESSER, &format!("guess{n}"), 6))
            .collect();
        for (n, name) in existing.iter().enumerate() {
            activities.push(krb_error(500 + n as i64, DC, GUESSER, name, 25));
        }
        activities.sort_by_key(|activity| activity.time.as_ref().map(|t| (t.seconds, t.nanos)));
        activities
    }

    #[test]
    fn ten_unknown_names_from_one_source_are_an_enumeration_listing_those_that_exist() {
        let alerts = run(
            None,
            Directory::default(),
            &guesses(12, &["alice", "Administrator"]),
        );
        // The tenth unknown name opens the alert with ten; the eleventh and twelfth add one each.
        assert_eq!(
            summary(&alerts),
            [("account_enumeration".into(), "src:10.98.0.66".into(), 12)]
        );
        let alert = &alerts[0];
        assert_eq!(alert.external_id, 2003);
        assert!(
            alert
                .description
                .starts_with("10.98.0.66 tried 14 account names against 10.98.0.1 over Kerberos")
                && alert
                    .description
                    .contains("12 do not exist, 2 exist: alice, Administrator"),
            "{}",
            alert.description
        );
        let detail = |name: &str| {
            alert
                .details
                .iter()
                .find(|detail| detail.name == name)
                .map(|detail| detail.value.clone())
        };
        assert_eq!(
            detail("existing_accounts").as_deref(),
            Some("alice, Administrator")
        );
        assert!(
            detail("unknown_names").is_some_and(|names| names.contains("guess0")
                && names.contains("guess11")
                && !names.contains("alice"))
        );
        assert!(alert.entities.iter().any(|entity| entity.name == "alice"));
    }

    #[test]
    fn answers_arriving_out_of_order_from_several_sensors_still_count() {
        let mut activities = guesses(10, &[]);
        activities.reverse();
        let alerts = run(None, Directory::default(), &activities);
        assert_eq!(
            summary(&alerts),
            [("account_enumeration".into(), "src:10.98.0.66".into(), 10)]
        );
    }

    #[test]
    fn ntlm_no_such_user_events_count_by_workstation() {
        let mut events: Vec<Activity> = (0..10)
            .map(|n| event_4776(n * 100, "KALI", &format!("user{n}"), 0xC000_0064))
            .collect();
        events.push(event_4776(1_500, "KALI", "bob", 0xC000_006A));
        let alerts = run(None, Directory::default(), &events);
        assert_eq!(
            summary(&alerts),
            [("account_enumeration".into(), "src:kali".into(), 10)]
        );
        assert!(
            alerts[0].description.contains(
                "KALI tried 10 account names against DC1.lab.example over NTLM (event 4776)"
            ),
            "{}",
            alerts[0].description
        );
    }

    #[test]
    fn a_few_mistyped_names_and_normal_logons_are_not_enumeration() {
        // Nine unknown names (under the threshold) and many pre-authentication prompts, which
        // every Windows logon gets first.
        let mut activities = guesses(9, &[]);
        for n in 0..30 {
            activities.push(krb_error(20_000 + n, DC, GUESSER, &format!("user{n}"), 25));
        }
        assert!(run(None, Directory::default(), &activities).is_empty());
    }

    #[test]
    fn unknown_names_spread_over_more_than_the_window_are_not_enumeration() {
        let activities: Vec<Activity> = (0..12)
            .map(|n| krb_error(n * 2 * 60_000, DC, GUESSER, &format!("stale{n}"), 6))
            .collect();
        assert!(run(None, Directory::default(), &activities).is_empty());
    }

    #[test]
    fn the_same_unknown_name_retried_counts_once() {
        let activities: Vec<Activity> = (0..20)
            .map(|n| krb_error(n * 1_000, DC, GUESSER, "typo", 6))
            .collect();
        assert!(run(None, Directory::default(), &activities).is_empty());
    }
}
