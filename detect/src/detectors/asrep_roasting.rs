//! AS-REP roasting (MDI 2412): an AS-REQ without pre-authentication that the KDC answers with
//! an AS-REP, whose encrypted part (in the account's key, RC4 for GetNPUsers's `etype 23`) cracks
//! offline; the account has DONT_REQ_PREAUTH. Also (XDR's "multiple attempts to sign in without
//! pre-authentication") `PROBES` distinct accounts asked without pre-authentication from one
//! source within `PROBE_WINDOW` that the client never followed with a pre-authenticated request:
//! a tool probing which accounts are roastable.
//!
//! Windows' own first AS-REQ has no pre-authentication and is answered PREAUTH_REQUIRED; the
//! client then sends a pre-authenticated one at once (`FOLLOW_UP`), which is what tells it
//! from a probe. An application legitimately using an account without pre-authentication is
//! a benign true positive to exclude.

use std::net::IpAddr;

use dcwatch_entity::TagName;
use dcwatch_proto::v1::{activity::Body, alert::Confidence, alert_entity::Role, kerberos_activity};

use super::{
    Context, Detector, Kinds,
    auth::{KDC_ERR_PREAUTH_REQUIRED, client_finding, client_key, client_text},
};
use crate::{
    bounded::BoundedMap,
    catalogue::ASREP_ROASTING,
    finding::{account_entity, address_key},
    knowledge::{account_key, is_rc4},
    observed::Observed,
    time::{MINUTE, Millis, SECOND},
};

/// Accounts probed without pre-authentication and never followed up that make a roast (*ours*,
/// DETECTIONS.md: 3).
pub(super) const PROBES: usize = 3;
/// ... within this long (*ours*).
pub(super) const PROBE_WINDOW: Millis = 10 * MINUTE;
/// A client that follows PREAUTH_REQUIRED with a pre-authenticated AS-REQ does so within this
/// (Windows: milliseconds; *ours*, with room for a slow link).
pub(super) const FOLLOW_UP: Millis = 10 * SECOND;
/// Sources followed at once.
pub(super) const MAX_PROBING_SOURCES: usize = 10_000;
/// Probes one source keeps.
pub(super) const MAX_PROBES_PER_SOURCE: usize = 64;

#[derive(Debug, Default)]
struct Probes {
    /// (account, when PREAUTH_REQUIRED answered, followed up).
    asked: Vec<(String, Millis, bool)>,
    reported: Vec<String>,
    /// Accounts answered an AES AS-REP without pre-authentication, and when.
    answered: Vec<(String, Millis)>,
}

#[derive(Debug)]
pub(super) struct AsrepRoasting {
    sources: BoundedMap<IpAddr, Probes>,
}

impl Default for AsrepRoasting {
    fn default() -> Self {
        Self {
            sources: BoundedMap::new(MAX_PROBING_SOURCES),
        }
    }
}

impl Detector for AsrepRoasting {
    fn kinds(&self) -> Kinds {
        use kerberos_activity::Type;
        Kinds::kerberos(Type::AsReq)
            | Kinds::kerberos(Type::AsRep)
            | Kinds::kerberos(Type::KrbError)
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        use kerberos_activity::Type;
        let Some(Body::Kerberos(kerberos)) = seen.body() else {
            return;
        };
        let Ok(kind) = Type::try_from(kerberos.r#type) else {
            return;
        };
        match kind {
            Type::AsReq if crate::knowledge::is_pre_authenticated(kerberos) => {
                if let Some(address) = seen.src
                    && self.sources.get(&address).is_some()
                {
                    let key = account_key(&kerberos.client);
                    let probes = self.sources.touch(address, seen.time, Probes::default);
                    for (account, _, followed) in &mut probes.asked {
                        if *account == key {
                            *followed = true;
                        }
                    }
                }
            }
            Type::AsRep => self.roasted(seen, context, kerberos),
            Type::KrbError if kerberos.error_code == KDC_ERR_PREAUTH_REQUIRED => {
                let request = context.knowledge.as_request(seen);
                if request.is_some_and(|request| !request.pre_authenticated)
                    && let Some(address) = seen.dst
                {
                    let probes = self.sources.touch(address, seen.time, Probes::default);
                    let key = account_key(&kerberos.client);
                    if !probes.asked.iter().any(|(account, _, _)| *account == key) {
                        if probes.asked.len() >= MAX_PROBES_PER_SOURCE {
                            probes.asked.remove(0);
                        }
                        probes.asked.push((key, seen.time, false));
                    }
                }
            }
            _ => {}
        }
        if let Some(address) = super::auth::client_address(seen) {
            self.judge_probes(address, seen, context);
        }
    }

    fn evicted(&self) -> u64 {
        self.sources.evicted()
    }
}

impl AsrepRoasting {
    fn roasted(
        &mut self,
        seen: &Observed<'_>,
        context: &mut Context<'_>,
        kerberos: &dcwatch_proto::v1::KerberosActivity,
    ) {
        let key = account_key(&kerberos.client);
        let Some(request) = context.knowledge.as_request(seen) else {
            return;
        };
        if request.pre_authenticated || request.client != key || key.starts_with("wellknown/") {
            return;
        }
        // An application using its no-pre-authentication account asks AES first, as every
        // modern client does; a roasting tool asks RC4, which cracks fastest. Without RC4, it
        // takes `PROBES` such accounts answered to one client to make a roast.
        let rc4 = is_rc4(kerberos.reply_etype)
            || request.etypes.first().is_some_and(|etype| is_rc4(*etype));
        if !rc4 {
            let Some(client) = seen.dst else { return };
            let probes = self.sources.touch(client, seen.time, Probes::default);
            let since = seen.time.saturating_sub(PROBE_WINDOW);
            probes
                .answered
                .retain(|(account, at)| *at >= since && *account != key);
            if probes.answered.len() >= MAX_PROBES_PER_SOURCE {
                probes.answered.remove(0);
            }
            probes.answered.push((key, seen.time));
            if probes.answered.len() < PROBES {
                return;
            }
        }
        let (domain, name) = (kerberos.client_realm.as_str(), kerberos.client.as_str());
        let cipher = if is_rc4(kerberos.reply_etype) {
            "RC4, which cracks fastest"
        } else {
            "the account's key"
        };
        let description = format!(
            "{} asked a TGT for {domain}\\{name} without pre-authentication and the KDC answered with an AS-REP encrypted with {cipher}: the account's password can be cracked offline",
            client_text(seen),
        );
        let directory_basis = context.knowledge.account(name, domain).and_then(|account| {
            context
                .knowledge
                .directory()
                .tags(account)
                .iter()
                .find(|tag| tag.name == TagName::DontReqPreauth)
                .map(|tag| format!("directory: {}", tag.reason))
        });
        let finding = client_finding(
            &ASREP_ROASTING,
            client_key(seen),
            seen,
            format!(
                "AS-REP without pre-authentication for {name}, etype {}",
                kerberos.reply_etype
            ),
        )
        .describe(description)
        .entity(account_entity(
            Role::AttackedAccount,
            domain,
            name,
            context.knowledge.directory(),
        ))
        .detail("accounts", format!("{domain}\\{name}"))
        .detail("reply_etype", kerberos.reply_etype.to_string())
        .relied_on(directory_basis.unwrap_or_else(|| {
            "traffic: the KDC answered an AS-REQ without pre-authentication with an AS-REP"
                .to_owned()
        }))
        .weighed_by_resolution(seen);
        context.raise(finding);
    }

    fn judge_probes(&mut self, address: IpAddr, seen: &Observed<'_>, context: &mut Context<'_>) {
        let Some(probes) = self.sources.get(&address) else {
            return;
        };
        let since = seen.time.saturating_sub(PROBE_WINDOW);
        let unfollowed = |probes: &Probes| -> Vec<String> {
            probes
                .asked
                .iter()
                .filter(|(_, at, followed)| {
                    !followed && *at >= since && seen.time.saturating_sub(*at) > FOLLOW_UP
                })
                .map(|(account, _, _)| account.clone())
                .collect()
        };
        let accounts = unfollowed(probes);
        let new: Vec<String> = accounts
            .iter()
            .filter(|account| !probes.reported.contains(account))
            .cloned()
            .collect();
        if accounts.len() < PROBES || new.is_empty() {
            return;
        }
        let probes = self.sources.touch(address, seen.time, Probes::default);
        let count = new.len() as u64;
        let start = probes
            .asked
            .iter()
            .map(|(_, at, _)| *at)
            .min()
            .unwrap_or(seen.time);
        probes.reported.extend(new);
        if probes.reported.len() > MAX_PROBES_PER_SOURCE {
            probes
                .reported
                .drain(..probes.reported.len() - MAX_PROBES_PER_SOURCE);
        }
        let description = format!(
            "{} asked TGTs without pre-authentication for {} accounts within {} minutes and never followed with pre-authentication ({}), probing for AS-REP roastable accounts",
            client_text(seen),
            accounts.len(),
            PROBE_WINDOW / MINUTE,
            accounts.join(", "),
        );
        let finding = client_finding(
            &ASREP_ROASTING,
            address_key(Some(address)),
            seen,
            "AS-REQs without pre-authentication, not followed up",
        )
        .describe(description)
        .detail("accounts", accounts.join(", "))
        .spanning(start, count)
        .confidence(Confidence::MediumConfidence)
        .relied_on("traffic: PREAUTH_REQUIRED answers never followed by a pre-authenticated AS-REQ")
        .weighed_by_resolution(seen);
        context.raise(finding);
    }
}

#[cfg(test)]
mod tests {
    use dcwatch_entity::Directory;

    use crate::detectors::testing::{as_rep, as_req, krb_error, run, summary};
    use crate::time::SECOND;

    const TOOL: &str = "10.98.0.9:40000";

    fn no_preauth(offset: i64, addr: &str, client: &str) -> dcwatch_proto::v1::Activity {
        as_req(offset, addr, client, |body| {
            body.encrypted_timestamp = false;
            body.timestamp_etype = 0;
            body.pa_data_types = vec![128];
            body.etypes = vec![23];
        })
    }

    #[test]
    fn an_as_rep_to_a_request_without_pre_authentication_is_roasting() {
        let alerts = run(
            None,
            Directory::default(),
            &[
                no_preauth(0, TOOL, "bob"),
                as_rep(5, TOOL, "bob", |body| body.reply_etype = 23),
            ],
        );
        assert_eq!(
            summary(&alerts),
            [("asrep_roasting".into(), "src:10.98.0.9".into(), 1)]
        );
        assert_eq!(
            alerts[0].description,
            "10.98.0.9 asked a TGT for LAB.EXAMPLE\\bob without pre-authentication and the KDC answered with an AS-REP encrypted with RC4, which cracks fastest: the account's password can be cracked offline"
        );
    }

    #[test]
    fn windows_first_request_answered_preauth_required_then_pre_authenticated_is_not() {
        // Three users logging on at once from a terminal server, as Windows does it.
        let mut activities = Vec::new();
        for (n, user) in ["alice", "carol", "dave"].iter().enumerate() {
            let addr = format!("10.98.0.10:{}", 50_000 + n);
            let addr2 = format!("10.98.0.10:{}", 51_000 + n);
            let at = n as i64 * 100;
            activities.push(no_preauth(at, &addr, user));
            activities.push(krb_error(at + 1, &addr, user, 25));
            activities.push(as_req(at + 2, &addr2, user, |_| {}));
            activities.push(as_rep(at + 3, &addr2, user, |_| {}));
        }
        activities.push(as_req(60 * SECOND, "10.98.0.10:52000", "alice", |_| {}));
        assert!(run(None, Directory::default(), &activities).is_empty());
    }

    #[test]
    fn probing_three_accounts_without_following_up_is_roasting() {
        let mut activities = Vec::new();
        for (n, user) in ["alice", "carol", "svc_sql"].iter().enumerate() {
            let addr = format!("10.98.0.9:{}", 40_000 + n);
            activities.push(no_preauth(n as i64, &addr, user));
            activities.push(krb_error(n as i64 + 1, &addr, user, 25));
        }
        // The tool's next request, after the follow-up time, shows none was followed.
        activities.push(no_preauth(20 * SECOND, "10.98.0.9:40100", "nosuchuser"));
        let alerts = run(None, Directory::default(), &activities);
        assert_eq!(
            summary(&alerts),
            [("asrep_roasting".into(), "src:10.98.0.9".into(), 3)]
        );
        assert!(
            alerts[0]
                .description
                .contains("for 3 accounts within 10 minutes")
        );
    }

    #[test]
    fn aes_as_reps_without_pre_authentication_take_three_accounts() {
        let aes_exchange = |n: i64, user: &str| {
            let addr = format!("10.98.0.9:{}", 42_000 + n);
            [
                as_req(n * 10, &addr, user, |body| {
                    body.encrypted_timestamp = false;
                    body.timestamp_etype = 0;
                    body.pa_data_types = vec![128];
                    body.etypes = vec![18, 17, 23];
                }),
                as_rep(n * 10 + 1, &addr, user, |body| body.reply_etype = 18),
            ]
        };
        // An application using its one no-pre-authentication account, in AES: not a roast.
        let app: Vec<_> = (0..5).flat_map(|n| aes_exchange(n, "svc_legacy")).collect();
        assert!(run(None, Directory::default(), &app).is_empty());
        // Three accounts answered so to one client: a roast, even in AES.
        let tool: Vec<_> = ["bob", "svc_legacy", "old_app"]
            .iter()
            .enumerate()
            .flat_map(|(n, user)| aes_exchange(n as i64, user))
            .collect();
        assert_eq!(run(None, Directory::default(), &tool).len(), 1);
        // PKINIT and FAST pre-authenticate: no roast however many accounts.
        let pkinit: Vec<_> = ["u1", "u2", "u3"]
            .iter()
            .enumerate()
            .flat_map(|(n, user)| {
                let addr = format!("10.98.0.9:{}", 43_000 + n);
                [
                    as_req(n as i64, &addr, user, |body| {
                        body.encrypted_timestamp = false;
                        body.timestamp_etype = 0;
                        body.pa_data_types = vec![16];
                        body.etypes = vec![23];
                    }),
                    as_rep(n as i64 + 1, &addr, user, |body| body.reply_etype = 23),
                ]
            })
            .collect();
        assert!(run(None, Directory::default(), &pkinit).is_empty());
    }
}
