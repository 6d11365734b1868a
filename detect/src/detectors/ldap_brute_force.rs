//! LDAP brute force (MDI 2004): one source whose LDAP simple binds fail with invalidCredentials
//! (49) many times, against one account or many. From `LDAP_GUESSES` failures within
//! `LDAP_WINDOW` the source's alert opens; each later failure updates its count (MDI's
//! `cnt=100`: "100 guess attempts"), and a later successful bind of an attacked account marks it
//! guessed. NTLM and Kerberos binds (SASL, Sicily) are brute force's: their guesses arrive as
//! NTLM and Kerberos activities.

use std::collections::HashSet;

use dcwatch_proto::v1::{activity::Body, alert_entity::Role, ldap_activity, outcome::Status};

use super::{Context, Detector, Kinds};
use crate::{
    bounded::{BoundedMap, Window},
    catalogue::LDAP_BRUTE_FORCE,
    finding::{Finding, account_entity, source_key, source_text},
    observed::Observed,
    time::{MINUTE, Millis},
};

/// LDAP result invalidCredentials (RFC 4511 4.1.9).
const INVALID_CREDENTIALS: u32 = 49;
/// Failed simple binds from one source that make a brute force (*ours*).
pub(super) const LDAP_GUESSES: usize = 10;
/// ... within this long (*ours*).
pub(super) const LDAP_WINDOW: Millis = 10 * MINUTE;
/// Sources followed at once.
pub(super) const MAX_LDAP_SOURCES: usize = 10_000;
/// Accounts remembered per attacking source (for "guessed" and the list); the rest are counted.
pub(super) const MAX_LDAP_ACCOUNTS: usize = 256;

#[derive(Debug)]
struct Source {
    last: Millis,
    failures: Window<()>,
    attacking: bool,
    guesses: u64,
    accounts: Vec<String>,
    more_accounts: u64,
    guessed: Vec<String>,
}

#[derive(Debug)]
pub(super) struct LdapBruteForce {
    sources: BoundedMap<std::net::IpAddr, Source>,
}

impl Default for LdapBruteForce {
    fn default() -> Self {
        Self {
            sources: BoundedMap::new(MAX_LDAP_SOURCES),
        }
    }
}

impl Detector for LdapBruteForce {
    fn kinds(&self) -> Kinds {
        Kinds::ldap(ldap_activity::Type::Bind)
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        let Some(Body::Ldap(ldap)) = seen.body() else {
            return;
        };
        if ldap.r#type != ldap_activity::Type::Bind as i32
            || ldap.auth_method != ldap_activity::AuthMethod::Simple as i32
            || !ldap.answered
            || ldap.bind_name.is_empty()
        {
            return;
        }
        let Some(address) = seen.src else {
            return;
        };
        let name = ldap.bind_name.clone();
        if ldap.result_code == 0 {
            let Some(source) = self.sources.get(&address) else {
                return;
            };
            if !source.attacking
                || !source.accounts.contains(&name)
                || source.guessed.contains(&name)
            {
                return;
            }
            let source = self.sources.touch(address, seen.time, Source::new);
            source.guessed.push(name.clone());
            let finding =
                finding(seen, context, source, &name, Status::Success).spanning(seen.time, 0);
            context.raise(finding);
            return;
        }
        if ldap.result_code != INVALID_CREDENTIALS {
            return;
        }
        let source = self.sources.touch(address, seen.time, Source::new);
        // An attack silent for a whole window is over: the next guesses are counted afresh.
        if source.attacking && seen.time.saturating_sub(source.last) > LDAP_WINDOW {
            *source = Source::new();
        }
        source.last = source.last.max(seen.time);
        if !source.accounts.contains(&name) {
            if source.accounts.len() < MAX_LDAP_ACCOUNTS {
                source.accounts.push(name.clone());
            } else {
                source.more_accounts += 1;
            }
        }
        let (count, start) = if source.attacking {
            (1, seen.time)
        } else {
            source.failures.push(seen.time, (), LDAP_WINDOW);
            if source.failures.len() < LDAP_GUESSES {
                return;
            }
            source.attacking = true;
            (
                LDAP_GUESSES as u64,
                source.failures.first_time().unwrap_or(seen.time),
            )
        };
        source.guesses += count;
        let finding = finding(seen, context, source, &name, Status::Failure).spanning(start, count);
        context.raise(finding);
    }

    fn evicted(&self) -> u64 {
        self.sources.evicted()
    }
}

impl Source {
    fn new() -> Self {
        Self {
            last: 0,
            failures: Window::new(LDAP_GUESSES),
            attacking: false,
            guesses: 0,
            accounts: Vec::new(),
            more_accounts: 0,
            guessed: Vec::new(),
        }
    }
}

fn finding(
    seen: &Observed<'_>,
    context: &Context<'_>,
    source: &Source,
    name: &str,
    outcome: Status,
) -> Finding {
    let distinct: HashSet<&String> = source.accounts.iter().collect();
    let total = distinct.len() as u64 + source.more_accounts;
    let target = if total == 1 {
        name.to_owned()
    } else {
        format!("{total} accounts")
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
        "{} made {} failed LDAP simple binds (invalidCredentials) against {target}; {result}",
        source_text(seen),
        source.guesses,
    );
    let summary = if outcome == Status::Success {
        format!("LDAP simple bind of {name} succeeded")
    } else {
        format!("LDAP simple bind of {name}: invalidCredentials")
    };
    let role = if outcome == Status::Success {
        Role::CompromisedAccount
    } else {
        Role::AttackedAccount
    };
    let listed: Vec<&str> = source
        .accounts
        .iter()
        .take(20)
        .map(String::as_str)
        .collect();
    let mut finding = Finding::on(&LDAP_BRUTE_FORCE, source_key(seen), seen, summary)
        .describe(description)
        .entity(account_entity(
            role,
            "",
            name,
            context.knowledge.directory(),
        ))
        .detail("attacked_accounts", listed.join(", "))
        .detail("guesses", source.guesses.to_string())
        .outcome(outcome)
        .weighed_by_resolution(seen);
    if !source.guessed.is_empty() {
        finding = finding.detail("guessed_accounts", source.guessed.join(", "));
    }
    finding
}

#[cfg(test)]
mod tests {
    use dcwatch_entity::Directory;
    use dcwatch_proto::v1::{ldap_activity, outcome::Status};

    use crate::detectors::testing::{ldap, run, summary};
    use crate::time::{MINUTE, SECOND};

    const SRC: &str = "10.98.0.7:40000";

    fn bind(offset: i64, name: &str, result: u32) -> dcwatch_proto::v1::Activity {
        ldap(offset, SRC, result, |body| {
            body.r#type = ldap_activity::Type::Bind.into();
            body.auth_method = ldap_activity::AuthMethod::Simple.into();
            body.bind_name = name.into();
        })
    }

    #[test]
    fn ten_failed_simple_binds_are_a_brute_force_and_a_later_success_is_a_guess() {
        let mut activities: Vec<_> = (0..14)
            .map(|n| bind(n * SECOND, "alice@lab.example", 49))
            .collect();
        activities.push(bind(20 * SECOND, "alice@lab.example", 0));
        let alerts = run(None, Directory::default(), &activities);
        assert_eq!(
            summary(&alerts),
            [("ldap_brute_force".into(), "src:10.98.0.7".into(), 14)]
        );
        let alert = &alerts[0];
        assert_eq!(
            (alert.external_id, alert.class.as_str()),
            (2004, "LdapBruteForceSecurityAlert")
        );
        assert_eq!(
            alert.description,
            "10.98.0.7 made 14 failed LDAP simple binds (invalidCredentials) against alice@lab.example; the password of alice@lab.example was then guessed"
        );
        assert_eq!(alert.outcome(), Status::Success);
    }

    #[test]
    fn an_application_retrying_an_old_password_below_the_count_is_not_a_brute_force() {
        let mut activities: Vec<_> = (0..9)
            .map(|n| bind(n * MINUTE, "CN=app,CN=Users,DC=lab,DC=example", 49))
            .collect();
        // Other errors (a busy server, a disabled account) are not guesses.
        activities
            .extend((0..5).map(|n| bind(9 * MINUTE + n, "CN=app,CN=Users,DC=lab,DC=example", 51)));
        assert!(run(None, Directory::default(), &activities).is_empty());
    }
}
