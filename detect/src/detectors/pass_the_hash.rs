//! Pass-the-hash (MDI 2017): a user's NTLM logon from a computer the user never logged on from,
//! while the user was logging on elsewhere (MDI's text: "hash was stolen from one of the
//! computers previously logged into by the user and used from another"; its logic is not
//! documented). The user's profile holds the computers they logged on from (`profiling`); the
//! hash is taken to be in use elsewhere when the user logged on within `HASH_IN_USE` (*ours*).
//!
//! Not raised: the user's usual computers (MDI's false positive, "hash used from computers the
//! user is using regularly"), computer accounts (`NAME$`, whose logons NTLM relay judges), a
//! user never seen before (nothing to differ from). At threshold high a user's first week of
//! logons is learned, not judged (*ours*: MDI gives no period).

use dcwatch_proto::v1::{activity::Body, alert_entity::Role, ntlm_activity};

use super::{Context, Detector, Key, Kinds};
use crate::finding::account_entity;
use crate::{
    catalogue::PASS_THE_HASH,
    finding::{Finding, account_key, source_text},
    learning::Behaviour,
    observed::Observed,
    profiling::{LOGON, user_key},
    time::{HOUR, Millis},
};

/// How recent the user's last logon elsewhere must be for their hash to be in use (*ours*).
pub(super) const HASH_IN_USE: Millis = 24 * HOUR;

#[derive(Debug, Default)]
pub(super) struct PassTheHash;

impl Detector for PassTheHash {
    fn kinds(&self) -> Kinds {
        Kinds::ntlm(ntlm_activity::Type::Authenticate)
    }

    fn key(&self) -> Key {
        Key::Account
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        let Some(Body::Ntlm(ntlm)) = seen.body() else {
            return;
        };
        if ntlm.r#type != ntlm_activity::Type::Authenticate as i32
            || !seen.succeeded()
            || ntlm.user.is_empty()
            || ntlm.user.ends_with('$')
        {
            return;
        }
        let Some(src) = seen.src else {
            return;
        };
        let user = user_key(&ntlm.user);
        let Some(profile) = context.profiles.get(&user) else {
            return;
        };
        let computer = src.to_string();
        let since_last = seen.time.saturating_sub(profile.last_seen);
        if profile.knows(LOGON, &computer) || profile.item_count() == 0 || since_last > HASH_IN_USE
        {
            return;
        }
        let account = if ntlm.domain.is_empty() {
            ntlm.user.clone()
        } else {
            format!("{}\\{}", ntlm.domain, ntlm.user)
        };
        let description = format!(
            "{account} logged on with NTLM from {}, a computer {account} never logged on from, {:.1} hours after logging on elsewhere: the hash was likely taken from one of their computers",
            source_text(seen),
            since_last as f64 / HOUR as f64,
        );
        let finding = Finding::on(
            &PASS_THE_HASH,
            account_key(&ntlm.user),
            seen,
            format!("NTLM logon of {account}"),
        )
        .describe(description)
        .entity(account_entity(
            Role::SourceAccount,
            &ntlm.domain,
            &ntlm.user,
            context.knowledge.directory(),
        ))
        .relied_on(format!(
            "profile: the computers {account} logged on from since {}",
            crate::time::timestamp(profile.first_seen).seconds
        ))
        .weighed_by_resolution(seen)
        .behaviour(
            Behaviour::new(
                user.clone(),
                user,
                account,
                format!("logged on from {}", source_text(seen)),
            )
            .item(LOGON, computer),
        );
        context.raise(finding);
    }
}

#[cfg(test)]
mod tests {
    use dcwatch_entity::Directory;

    use crate::{
        Config,
        detectors::testing::{ntlm_authenticate, run, summary},
        time::{DAY, HOUR},
    };

    const DC: &str = "10.98.0.1:445";

    fn logon(offset: i64, from: &str) -> dcwatch_proto::v1::Activity {
        ntlm_authenticate(
            offset,
            &format!("{from}:50000"),
            DC,
            "LAB",
            "alice",
            0,
            |_| {},
        )
    }

    /// alice logs on from her workstation every working day for `days`.
    fn usual(days: i64) -> Vec<dcwatch_proto::v1::Activity> {
        (0..days)
            .map(|day| logon(day * DAY + 9 * HOUR, "10.98.0.11"))
            .collect()
    }

    #[test]
    fn a_logon_from_a_computer_alice_never_used_after_learning_is_pass_the_hash() {
        let mut history = usual(10);
        history.push(logon(9 * DAY + 11 * HOUR, "10.98.0.66"));
        let alerts = run(Some(Config::default()), Directory::default(), &history);
        assert_eq!(
            summary(&alerts),
            [("pass_the_hash".into(), "account:alice".into(), 1)]
        );
        let description = &alerts[0].description;
        assert!(
            description.starts_with("LAB\\alice logged on with NTLM from 10.98.0.66, a computer LAB\\alice never logged on from, 2.0 hours after")
                && description.ends_with("LAB\\alice had never logged on from 10.98.0.66 in 9 days of learning"),
            "{description}"
        );
    }

    #[test]
    fn her_usual_computers_her_first_week_and_a_cold_hash_are_not() {
        let mut usual_only = usual(10);
        usual_only.push(logon(9 * DAY + 12 * HOUR, "10.98.0.11"));
        assert!(run(Some(Config::default()), Directory::default(), &usual_only).is_empty());
        let mut first_week = usual(3);
        first_week.push(logon(2 * DAY + 10 * HOUR, "10.98.0.66"));
        assert!(run(Some(Config::default()), Directory::default(), &first_week).is_empty());
        // At threshold low the first week is judged too.
        assert_eq!(
            run(Some(Config::test_mode()), Directory::default(), &first_week).len(),
            1
        );
        let mut cold = usual(10);
        cold.push(logon(12 * DAY, "10.98.0.66"));
        assert!(run(Some(Config::default()), Directory::default(), &cold).is_empty());
    }

    /// Her first week is judged at her logon's time, whatever else the engine saw before it: a
    /// later activity of another sensor (bob, ten days on) must not end it, or an engine seeing
    /// only alice's account would judge her otherwise than one seeing everything.
    #[test]
    fn her_first_week_ends_with_her_own_logons_not_with_others_later_activity() {
        let bob = ntlm_authenticate(10 * DAY, "10.98.0.12:50000", DC, "LAB", "bob", 0, |_| {});
        let mut late = usual(1);
        late.push(bob);
        late.push(logon(9 * HOUR + 2 * HOUR, "10.98.0.66"));
        assert!(
            run(Some(Config::default()), Directory::default(), &late).is_empty(),
            "{:?}",
            summary(&run(Some(Config::default()), Directory::default(), &late))
        );
        let mut later = usual(1);
        later.push(logon(8 * DAY, "10.98.0.11"));
        later.push(logon(8 * DAY + 2 * HOUR, "10.98.0.66"));
        assert_eq!(
            summary(&run(Some(Config::default()), Directory::default(), &later)),
            [("pass_the_hash".into(), "account:alice".into(), 1)],
            "after her week, by her own logons"
        );
    }
}
