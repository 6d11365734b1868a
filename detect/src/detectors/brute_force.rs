//! Brute force (MDI 2023, vertical): one source guessing one account's password many times.
//! A guess is a Kerberos pre-authentication the KDC refused (PREAUTH_FAILED, 24), an NTLM
//! AUTHENTICATE its carrier (SMB, HTTP, LDAP) answered STATUS_WRONG_PASSWORD or
//! STATUS_LOGON_FAILURE, or a 4776 with those statuses; unknown users are account enumeration's,
//! and lockouts, expired passwords or clock skew say nothing of the password. From
//! `BRUTE_FORCE_GUESSES` guesses against one account within `BRUTE_FORCE_WINDOW` the source's
//! alert opens; every later guess from it updates the alert's count, and a success for an
//! attacked account marks it guessed.
//!
//! False positives the rule avoids: a user mistyping then succeeding (a success before the
//! threshold clears that account's guesses: whoever typed them knows the password), a script
//! with an old password below the threshold, and the one NTLM logon the wire and a 4776 both
//! show (counted once). Part II (MDI: a week per source): at threshold high the source's
//! profile learns the accounts it fails against during its first week (a script with an old
//! password), and only accounts outside that baseline alert after; this count stays the floor.

use dcwatch_proto::v1::{alert_entity::Role, kerberos_activity, ntlm_activity, outcome::Status};

use super::{
    Context, Detector, Kinds,
    auth::{Attempt, Echoes, Guess, Origin, attempt},
    password_spray::PasswordSpray,
};
use crate::{
    bounded::{BoundedMap, Window},
    catalogue::BRUTE_FORCE,
    finding::{Finding, account_entity},
    learning::Behaviour,
    observed::Observed,
    time::{MINUTE, Millis},
};

/// Wrong guesses against one account from one source that make a brute force (*ours*;
/// DETECTIONS.md: MDI does not document its count, Splunk uses 30 users in 5 minutes).
pub(super) const BRUTE_FORCE_GUESSES: usize = 10;
/// ... within this long (*ours*).
pub(super) const BRUTE_FORCE_WINDOW: Millis = 10 * MINUTE;
/// (source, account) pairs followed at once.
pub(super) const MAX_PAIRS: usize = 100_000;
/// Sources with an open brute force followed at once.
pub(super) const MAX_ATTACKERS: usize = 10_000;
/// Accounts an alert names one by one; the rest are counted.
pub(super) const MAX_NAMED_ACCOUNTS: usize = 20;

#[derive(Debug)]
struct Pair {
    guesses: Window<()>,
    attacking: bool,
    last: Millis,
}

/// An account an attacking source guessed at.
#[derive(Debug)]
struct Named {
    /// As the attempt named it (`LAB\alice`).
    name: String,
    /// Its `account_key`, kept to match later attempts without working it out again.
    key: String,
    guesses: u64,
    guessed: bool,
}

/// What one attacking source did, for its alert's description.
#[derive(Debug, Default)]
struct Attacker {
    last: Millis,
    guesses: u64,
    /// The first `MAX_NAMED_ACCOUNTS` accounts.
    accounts: Vec<Named>,
    more_accounts: u64,
    via: Vec<&'static str>,
}

/// Brute force and password spray, which judge the same attempts: each activity's attempt is
/// worked out, and matched against the wire's echoes, once for both (each detector did both
/// and kept its own echo table, the same table twice; issue #13's detect-cost).
#[derive(Debug, Default)]
pub(super) struct Guessing {
    echoes: Echoes,
    brute_force: BruteForce,
    spray: PasswordSpray,
}

impl Detector for Guessing {
    fn kinds(&self) -> Kinds {
        Kinds::kerberos(kerberos_activity::Type::AsRep)
            | Kinds::kerberos(kerberos_activity::Type::KrbError)
            | Kinds::ntlm(ntlm_activity::Type::Authenticate)
            | Kinds::WINDOWS_EVENT
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        let Some(attempt) = attempt(seen) else {
            return;
        };
        if !self.echoes.is_new(&attempt, seen.time) {
            return;
        }
        self.brute_force.judge(seen, context, &attempt);
        self.spray.judge(seen, context, &attempt);
    }

    fn evicted(&self) -> u64 {
        self.echoes.evicted() + self.brute_force.evicted() + self.spray.evicted()
    }
}

#[derive(Debug)]
pub(super) struct BruteForce {
    pairs: BoundedMap<(Origin, String), Pair>,
    attackers: BoundedMap<Origin, Attacker>,
}

impl Default for BruteForce {
    fn default() -> Self {
        Self {
            pairs: BoundedMap::new(MAX_PAIRS),
            attackers: BoundedMap::new(MAX_ATTACKERS),
        }
    }
}

impl BruteForce {
    fn judge(&mut self, seen: &Observed<'_>, context: &mut Context<'_>, attempt: &Attempt) {
        let slot = (attempt.origin.clone(), attempt.key.clone());
        match attempt.guess {
            Guess::Wrong => self.wrong(seen, context, attempt, slot),
            Guess::Right => self.right(seen, context, attempt, &slot),
        }
    }

    fn evicted(&self) -> u64 {
        self.pairs.evicted() + self.attackers.evicted()
    }

    fn wrong(
        &mut self,
        seen: &Observed<'_>,
        context: &mut Context<'_>,
        attempt: &Attempt,
        slot: (Origin, String),
    ) {
        let pair = self.pairs.touch(slot, seen.time, || Pair {
            guesses: Window::new(BRUTE_FORCE_GUESSES),
            attacking: false,
            last: seen.time,
        });
        // An attack silent for a whole window is over: the next guesses are counted afresh.
        if seen.time.saturating_sub(pair.last) > BRUTE_FORCE_WINDOW {
            pair.attacking = false;
            pair.guesses = Window::new(BRUTE_FORCE_GUESSES);
        }
        pair.last = pair.last.max(seen.time);
        let (count, start) = if pair.attacking {
            (1, seen.time)
        } else {
            pair.guesses.push(seen.time, (), BRUTE_FORCE_WINDOW);
            if pair.guesses.len() < BRUTE_FORCE_GUESSES {
                return;
            }
            pair.attacking = true;
            let start = pair.guesses.first_time().unwrap_or(seen.time);
            pair.guesses = Window::new(1);
            (BRUTE_FORCE_GUESSES as u64, start)
        };
        let attacker = self
            .attackers
            .touch(attempt.origin.clone(), seen.time, Attacker::default);
        if seen.time.saturating_sub(attacker.last) > BRUTE_FORCE_WINDOW {
            *attacker = Attacker::default();
        }
        attacker.last = attacker.last.max(seen.time);
        attacker.guesses += count;
        if !attacker.via.contains(&attempt.via) {
            attacker.via.push(attempt.via);
        }
        let named = attacker
            .accounts
            .iter()
            .position(|named| named.key == attempt.key);
        match named {
            Some(index) => attacker.accounts[index].guesses += count,
            None if attacker.accounts.len() < MAX_NAMED_ACCOUNTS => {
                attacker.accounts.push(Named {
                    name: attempt.account.clone(),
                    key: attempt.key.clone(),
                    guesses: count,
                    guessed: false,
                });
            }
            None => attacker.more_accounts += 1,
        }
        let finding =
            finding(seen, context, attempt, attacker, Status::Failure).spanning(start, count);
        context.raise(finding);
    }

    fn right(
        &mut self,
        seen: &Observed<'_>,
        context: &mut Context<'_>,
        attempt: &Attempt,
        slot: &(Origin, String),
    ) {
        let attacking = self.pairs.get(slot).is_some_and(|pair| pair.attacking);
        if !attacking {
            // A user who mistyped and then got it right: the wrong guesses were typos.
            self.pairs.remove(slot);
            return;
        }
        let attacker = self
            .attackers
            .touch(attempt.origin.clone(), seen.time, Attacker::default);
        let Some(account) = attacker
            .accounts
            .iter_mut()
            .find(|named| named.key == attempt.key)
        else {
            return;
        };
        if account.guessed {
            return;
        }
        account.guessed = true;
        let finding =
            finding(seen, context, attempt, attacker, Status::Success).spanning(seen.time, 0);
        context.raise(finding);
    }
}

fn finding(
    seen: &Observed<'_>,
    context: &Context<'_>,
    attempt: &Attempt,
    attacker: &Attacker,
    outcome: Status,
) -> Finding {
    let origin = attempt.origin.text(seen);
    let named: Vec<String> = attacker
        .accounts
        .iter()
        .map(|named| format!("{} ({})", named.name, named.guesses))
        .collect();
    let guessed: Vec<&str> = attacker
        .accounts
        .iter()
        .filter(|named| named.guessed)
        .map(|named| named.name.as_str())
        .collect();
    let target = if attacker.accounts.len() == 1 && attacker.more_accounts == 0 {
        attacker.accounts[0].name.clone()
    } else {
        format!(
            "{} accounts",
            attacker.accounts.len() as u64 + attacker.more_accounts
        )
    };
    let result = if guessed.is_empty() {
        "none succeeded so far".to_owned()
    } else {
        format!("the password of {} was then guessed", guessed.join(", "))
    };
    let description = format!(
        "{origin} made {} wrong password guesses ({}) against {target}; {result}",
        attacker.guesses,
        attacker.via.join(", "),
    );
    let summary = match attempt.guess {
        Guess::Wrong => format!("{} wrong password for {}", attempt.via, attempt.account),
        Guess::Right => format!("{} logon of {} succeeded", attempt.via, attempt.account),
    };
    let (domain, name) = attempt
        .account
        .split_once('\\')
        .unwrap_or(("", attempt.account.as_str()));
    let mut finding = attempt
        .origin
        .finding(&BRUTE_FORCE, seen, summary)
        .describe(description)
        .entity(account_entity(
            Role::AttackedAccount,
            domain,
            name,
            context.knowledge.directory(),
        ))
        .detail("attacked_accounts", named.join(", "))
        .detail("guesses", attacker.guesses.to_string())
        .outcome(outcome)
        .relied_on(attempt.basis())
        .weighed_by_resolution(seen);
    if !guessed.is_empty() {
        finding = finding.detail("guessed_accounts", guessed.join(", "));
    }
    if outcome == Status::Success {
        finding = finding.entity(account_entity(
            Role::CompromisedAccount,
            domain,
            name,
            context.knowledge.directory(),
        ));
    }
    let subject = attempt.origin.profile_key();
    finding = finding.behaviour(
        Behaviour::new(
            subject.clone(),
            subject,
            attempt.origin.text(seen),
            format!("failed to log on as {}", attempt.account),
        )
        .item(BRUTE_FORCE.type_name, attempt.key.clone()),
    );
    if let Origin::Workstation(name) = &attempt.origin {
        finding = finding.relied_on(format!(
            "event 4776 names the workstation {name}, not its address"
        ));
    }
    finding
}

#[cfg(test)]
mod tests;
