//! Password spray (MDI 2023, horizontal): one source trying one or two passwords against many
//! accounts, usually in rounds half an hour apart so no account locks out. Guesses are those of
//! brute force (`auth::attempt`). From `SPRAY_ACCOUNTS` accounts with one to `SPRAY_MAX_GUESSES`
//! wrong guesses each within `SPRAY_WINDOW` the source's alert opens; every later such guess
//! (the next round) updates it, and a success for a sprayed account marks it guessed. Kerberos
//! and NTLM never show whether the passwords were the same (LDAP simple binds would), so the
//! count of accounts is the evidence. An account guessed more often is brute force's.
//! Part II (MDI: a week per source): at threshold high a source that sprays during its first
//! week (a server relaying many users' failures) is learned as one, and does not alert after.

use dcwatch_proto::v1::{alert_entity::Role, outcome::Status};
use hashbrown::HashMap;

use super::{
    Context,
    auth::{Attempt, Guess, Origin},
};
use crate::{
    bounded::BoundedMap,
    catalogue::PASSWORD_SPRAY,
    finding::account_entity,
    learning::Behaviour,
    observed::Observed,
    time::{MINUTE, Millis},
};

/// Distinct accounts guessed from one source that make a spray (*ours*, as Splunk's 10).
pub(super) const SPRAY_ACCOUNTS: usize = 10;
/// Wrong guesses per account a spray makes at most (*ours*: one password per round, and a
/// second round within the window).
pub(super) const SPRAY_MAX_GUESSES: usize = 2;
/// The window (*ours*: spray rounds are often 30 minutes apart, research §1b).
pub(super) const SPRAY_WINDOW: Millis = 60 * MINUTE;
/// Sources followed at once.
pub(super) const MAX_SPRAY_SOURCES: usize = 10_000;
/// Accounts followed per source; a fuller table first forgets the accounts out of the window.
pub(super) const MAX_SPRAY_ACCOUNTS_PER_SOURCE: usize = 4_096;
/// Accounts an alert names one by one; the rest are counted.
pub(super) const MAX_NAMED_ACCOUNTS: usize = 20;

#[derive(Debug, Default)]
struct Source {
    last: Millis,
    /// account key → (its name, the times of its wrong guesses in the window, at most
    /// `SPRAY_MAX_GUESSES + 1`). Never read in its order: hashbrown's faster hash will do.
    accounts: HashMap<String, (String, Vec<Millis>)>,
    spraying: bool,
    guesses: u64,
    named: Vec<String>,
    guessed: Vec<String>,
    dropped: u64,
}

impl Source {
    fn sprayed(&self, since: Millis) -> usize {
        self.accounts
            .values()
            .filter(|(_, times)| {
                let recent = times.iter().filter(|time| **time >= since).count();
                (1..=SPRAY_MAX_GUESSES).contains(&recent)
            })
            .count()
    }
}

/// Judged by `brute_force::Guessing`, which works the attempt out for both.
#[derive(Debug)]
pub(super) struct PasswordSpray {
    sources: BoundedMap<Origin, Source>,
}

impl Default for PasswordSpray {
    fn default() -> Self {
        Self {
            sources: BoundedMap::new(MAX_SPRAY_SOURCES),
        }
    }
}

impl PasswordSpray {
    pub(super) fn judge(
        &mut self,
        seen: &Observed<'_>,
        context: &mut Context<'_>,
        attempt: &Attempt,
    ) {
        let since = seen.time.saturating_sub(SPRAY_WINDOW);
        let source = self
            .sources
            .touch(attempt.origin.clone(), seen.time, Source::default);
        // A spray silent for a whole window is over: the next one is a new alert.
        if source.spraying && seen.time.saturating_sub(source.last) > SPRAY_WINDOW {
            *source = Source::default();
        }
        source.last = source.last.max(seen.time);
        match attempt.guess {
            Guess::Wrong => {
                if !source.accounts.contains_key(&attempt.key)
                    && source.accounts.len() >= MAX_SPRAY_ACCOUNTS_PER_SOURCE
                {
                    source
                        .accounts
                        .retain(|_, (_, times)| times.iter().any(|time| *time >= since));
                    if source.accounts.len() >= MAX_SPRAY_ACCOUNTS_PER_SOURCE {
                        source.dropped += 1;
                        return;
                    }
                }
                // The key is copied for an account new to the source only.
                let (_, times) = source
                    .accounts
                    .entry_ref(attempt.key.as_str())
                    .or_insert_with(|| (attempt.account.clone(), Vec::new()));
                times.retain(|time| *time >= since);
                times.push(seen.time);
                if times.len() > SPRAY_MAX_GUESSES {
                    // Guessed more often than a spray does: brute force's to judge.
                    times.truncate(SPRAY_MAX_GUESSES + 1);
                    return;
                }
                let sprayed = source.sprayed(since);
                if !source.named.contains(&attempt.account)
                    && source.named.len() < MAX_NAMED_ACCOUNTS
                {
                    source.named.push(attempt.account.clone());
                }
                let count = if source.spraying {
                    1
                } else if sprayed >= SPRAY_ACCOUNTS {
                    source.spraying = true;
                    sprayed as u64
                } else {
                    return;
                };
                source.guesses += count;
                let finding = finding(seen, context, attempt, source, sprayed, Status::Failure)
                    .spanning(since.max(first_guess(source)), count);
                context.raise(finding);
            }
            Guess::Right => {
                let Some((name, times)) = source.accounts.get(&attempt.key) else {
                    return;
                };
                if times.is_empty() || source.guessed.contains(name) {
                    return;
                }
                let name = name.clone();
                source.guessed.push(name);
                if source.spraying {
                    let sprayed = source.sprayed(since);
                    let finding = finding(seen, context, attempt, source, sprayed, Status::Success)
                        .spanning(seen.time, 0);
                    context.raise(finding);
                }
            }
        }
    }

    pub(super) fn evicted(&self) -> u64 {
        self.sources.evicted()
            + self
                .sources
                .iter()
                .map(|(_, source)| source.dropped)
                .sum::<u64>()
    }
}

fn first_guess(source: &Source) -> Millis {
    source
        .accounts
        .values()
        .flat_map(|(_, times)| times.iter().copied())
        .min()
        .unwrap_or(Millis::MAX)
}

fn finding(
    seen: &Observed<'_>,
    context: &Context<'_>,
    attempt: &Attempt,
    source: &Source,
    sprayed: usize,
    outcome: Status,
) -> crate::finding::Finding {
    let origin = attempt.origin.text(seen);
    let more = sprayed.saturating_sub(source.named.len());
    let listed = if more > 0 {
        format!("{} and {more} more", source.named.join(", "))
    } else {
        source.named.join(", ")
    };
    let result = if source.guessed.is_empty() {
        "none succeeded so far".to_owned()
    } else {
        format!(
            "the password of {} was then guessed",
            source.guessed.join(", ")
        )
    };
    let description = format!(
        "{origin} sprayed passwords ({}) against {sprayed} accounts within {} minutes, at most {SPRAY_MAX_GUESSES} guesses each ({listed}); {result}",
        attempt.via,
        SPRAY_WINDOW / MINUTE,
    );
    let summary = match attempt.guess {
        Guess::Wrong => format!("{} wrong password for {}", attempt.via, attempt.account),
        Guess::Right => format!("{} logon of {} succeeded", attempt.via, attempt.account),
    };
    let (domain, name) = attempt
        .account
        .split_once('\\')
        .unwrap_or(("", attempt.account.as_str()));
    let role = if outcome == Status::Success {
        Role::CompromisedAccount
    } else {
        Role::AttackedAccount
    };
    let mut finding = attempt
        .origin
        .finding(&PASSWORD_SPRAY, seen, summary)
        .describe(description)
        .entity(account_entity(
            role,
            domain,
            name,
            context.knowledge.directory(),
        ))
        .detail("sprayed_accounts", sprayed.to_string())
        .detail("attacked_accounts", listed)
        .outcome(outcome)
        .relied_on(attempt.basis())
        .weighed_by_resolution(seen);
    if !source.guessed.is_empty() {
        finding = finding.detail("guessed_accounts", source.guessed.join(", "));
    }
    let subject = attempt.origin.profile_key();
    finding.behaviour(
        Behaviour::new(
            subject.clone(),
            subject,
            origin,
            "failed to log on to many accounts in one round",
        )
        .item(PASSWORD_SPRAY.type_name, SPRAY_ITEM),
    )
}

/// What a source that sprays (an Exchange server relaying failures, a misconfigured portal)
/// is learned as.
const SPRAY_ITEM: &str = "failed logons for many accounts";

#[cfg(test)]
mod tests {
    use dcwatch_entity::Directory;
    use dcwatch_proto::v1::outcome::Status;

    use crate::detectors::testing::{as_rep, krb_error, ntlm_authenticate, run, summary};
    use crate::time::{MINUTE, SECOND};

    const SPRAYER: &str = "10.98.0.6:50000";

    fn round(start: i64, accounts: usize) -> Vec<dcwatch_proto::v1::Activity> {
        (0..accounts)
            .map(|n| {
                krb_error(
                    start + n as i64 * SECOND,
                    SPRAYER,
                    &format!("user{n:02}"),
                    24,
                )
            })
            .collect()
    }

    #[test]
    fn one_password_against_ten_accounts_is_a_spray_and_the_next_round_updates_it() {
        let mut activities = round(0, 10);
        activities.extend(round(30 * MINUTE, 10));
        activities.push(as_rep(31 * MINUTE, SPRAYER, "user03", |_| {}));
        let alerts = run(None, Directory::default(), &activities);
        // 10 guesses open it, the 10 of the second round update it.
        assert_eq!(
            summary(&alerts),
            [("password_spray".into(), "src:10.98.0.6".into(), 20)]
        );
        let alert = &alerts[0];
        assert_eq!(alert.external_id, 2023);
        assert!(
            alert.description.starts_with(
                "10.98.0.6 sprayed passwords (Kerberos) against 10 accounts within 60 minutes"
            ),
            "{}",
            alert.description
        );
        assert!(
            alert
                .description
                .ends_with("the password of LAB.EXAMPLE\\user03 was then guessed")
        );
        assert_eq!(alert.outcome(), Status::Success);
    }

    #[test]
    fn nine_accounts_or_accounts_an_hour_apart_are_not_a_spray() {
        assert!(run(None, Directory::default(), &round(0, 9)).is_empty());
        let mut spread = round(0, 5);
        spread.extend((5..10).map(|n| {
            krb_error(
                61 * MINUTE + n * SECOND,
                SPRAYER,
                &format!("user{n:02}"),
                24,
            )
        }));
        assert!(run(None, Directory::default(), &spread).is_empty());
    }

    #[test]
    fn many_guesses_against_few_accounts_are_not_a_spray() {
        // A shared kiosk where three users mistype often: each account has more than two.
        let activities: Vec<_> = (0..12)
            .map(|n| {
                ntlm_authenticate(
                    n * SECOND,
                    SPRAYER,
                    "10.98.0.1:445",
                    "LAB",
                    &format!("kiosk{}", n % 3),
                    0xC000_006A,
                    |_| {},
                )
            })
            .collect();
        let alerts = run(None, Directory::default(), &activities);
        assert!(
            summary(&alerts)
                .iter()
                .all(|(kind, _, _)| kind != "password_spray")
        );
    }

    #[test]
    fn a_spray_over_kerberos_smb_and_ldap_is_one_spray() {
        // NetExec sprays over SMB and LDAP (NTLM binds), kerbrute over Kerberos, from one host.
        let activities: Vec<_> = (0..10)
            .map(|n| {
                let account = format!("user{n:02}");
                let at = n * SECOND;
                match n % 3 {
                    0 => krb_error(at, SPRAYER, &account, 24),
                    1 => ntlm_authenticate(
                        at,
                        SPRAYER,
                        "10.98.0.1:445",
                        "LAB",
                        &account,
                        0xC000_006D,
                        |_| {},
                    ),
                    _ => ntlm_bind_refused(at, &account),
                }
            })
            .collect();
        let alerts = run(None, Directory::default(), &activities);
        assert_eq!(
            summary(&alerts),
            [("password_spray".into(), "src:10.98.0.6".into(), 10)]
        );
    }

    #[test]
    fn a_second_round_finding_an_expired_password_is_a_guess() {
        // kerbrute's "valid password, expired" in the second round.
        let mut activities = round(0, 10);
        activities.push(krb_error(30 * MINUTE, SPRAYER, "user04", 23));
        let alerts = run(None, Directory::default(), &activities);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].outcome(), Status::Success);
        assert!(
            alerts[0]
                .description
                .ends_with("the password of LAB.EXAMPLE\\user04 was then guessed"),
            "{}",
            alerts[0].description
        );
    }

    /// An NTLM bind over LDAP the DC refused (invalidCredentials).
    fn ntlm_bind_refused(at: i64, account: &str) -> dcwatch_proto::v1::Activity {
        let mut activity =
            ntlm_authenticate(at, SPRAYER, "10.98.0.1:389", "LAB", account, 49, |_| {});
        activity.carrier = dcwatch_proto::v1::Carrier::Ldap.into();
        activity
    }
}
