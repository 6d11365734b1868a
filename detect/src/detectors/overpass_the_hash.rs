//! Overpass-the-hash (MDI 2002, 2008's rule without its month of learning): an AS-REQ
//! pre-authenticated with RC4 alone (its etypes all RC4, or its PA-ENC-TIMESTAMP in RC4) for an
//! account that has AES keys, from a computer that used AES before. The NT hash is the RC4 key,
//! so a tool holding only the hash (impacket getTGT, mimikatz sekurlsa::pth, Rubeus asktgt
//! /rc4) must ask RC4; Windows asks AES first.
//!
//! Judged on the KDC's answer (paired with its request by the knowledge), so the alert's outcome
//! is the KDC's. FAST-armoured requests are skipped: the armour hides the etypes (MDI: the same).
//! An RC4-only legacy account (no AES in msDS-SupportedEncryptionTypes) is not a downgrade.
//! Part II (MDI 2008, a month per computer): the computer's profile keeps that it
//! pre-authenticated with AES (across restarts, beside `aes_computers`), and at threshold high
//! the alert is 2008's, raised only after the computer's month of learning and never for a
//! computer whose profile learned RC4-only pre-authentication (a legacy application).

use std::net::IpAddr;

use dcwatch_proto::v1::{
    activity::Body, alert::Confidence, alert_entity::Role, kerberos_activity, outcome::Status,
};

use super::{
    Context, Detector, Kinds,
    auth::{KDC_ERR_PREAUTH_REQUIRED, client_finding, client_text},
};
use crate::{
    bounded::BoundedMap,
    catalogue::{OVERPASS_THE_HASH, OVERPASS_THE_HASH_DOWNGRADE},
    config::Threshold,
    finding::{account_entity, account_key},
    knowledge::{is_aes, is_rc4},
    learning::Behaviour,
    observed::Observed,
    profiling::{AS_ETYPE, computer_key},
};

/// Computers remembered as having pre-authenticated with AES.
pub(super) const MAX_AES_COMPUTERS: usize = 100_000;

#[derive(Debug)]
pub(super) struct OverpassTheHash {
    aes_computers: BoundedMap<IpAddr, ()>,
}

impl Default for OverpassTheHash {
    fn default() -> Self {
        Self {
            aes_computers: BoundedMap::new(MAX_AES_COMPUTERS),
        }
    }
}

impl Detector for OverpassTheHash {
    fn kinds(&self) -> Kinds {
        Kinds::kerberos(kerberos_activity::Type::AsRep)
            | Kinds::kerberos(kerberos_activity::Type::KrbError)
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        use kerberos_activity::Type;
        let Some(Body::Kerberos(kerberos)) = seen.body() else {
            return;
        };
        let Ok(answer) = Type::try_from(kerberos.r#type) else {
            return;
        };
        let answered = match answer {
            Type::AsRep => true,
            Type::KrbError => kerberos.error_code != KDC_ERR_PREAUTH_REQUIRED,
            _ => false,
        };
        if !answered || kerberos.client.is_empty() {
            return;
        }
        let Some(request) = context.knowledge.as_request(seen) else {
            return;
        };
        let Some(client) = seen.dst else {
            return;
        };
        if !request.pre_authenticated
            || request.fast
            || request.client != crate::knowledge::account_key(&kerberos.client)
        {
            return;
        }
        let rc4_only = if request.timestamp_etype != 0 {
            is_rc4(request.timestamp_etype)
        } else {
            !request.etypes.is_empty() && request.etypes.iter().all(|etype| is_rc4(*etype))
        };
        if !rc4_only {
            let aes = is_aes(request.timestamp_etype)
                || request.etypes.first().is_some_and(|etype| is_aes(*etype));
            if aes {
                self.aes_computers.touch(client, seen.time, || ());
            }
            return;
        }
        if self.aes_computers.get(&client).is_none()
            && !context
                .profiles
                .knows(&computer_key(client), AS_ETYPE, "aes")
        {
            return;
        }
        let (domain, name) = (kerberos.client_realm.as_str(), kerberos.client.as_str());
        let Some((aes_basis, confidence)) = account_aes(context, name, domain) else {
            return;
        };
        let outcome = if answer == Type::AsRep {
            "got a TGT"
        } else {
            "was refused a TGT"
        };
        let description = format!(
            "{domain}\\{name} on {} pre-authenticated with RC4 only ({}) and {outcome}, though the account has AES keys and the computer used AES before: the account's NT hash is being used (overpass-the-hash)",
            client_text(seen),
            if request.timestamp_etype != 0 {
                format!("timestamp etype {}", request.timestamp_etype)
            } else {
                format!("etypes {:?}", request.etypes)
            }
        );
        // At threshold high the rule is MDI 2008's: a downgrade against the computer's month
        // of learned etypes (the learning gate judges it); medium and low skip learning (2002).
        let kind = if context.threshold(&OVERPASS_THE_HASH) == Threshold::High {
            &OVERPASS_THE_HASH_DOWNGRADE
        } else {
            &OVERPASS_THE_HASH
        };
        let computer = computer_key(client);
        let finding = client_finding(
            kind,
            account_key(name),
            seen,
            format!("AS-REQ for {name} with RC4 only"),
        )
        .describe(description)
        .entity(account_entity(
            Role::SourceAccount,
            domain,
            name,
            context.knowledge.directory(),
        ))
        .detail("etypes", format!("{:?}", request.etypes))
        .detail("timestamp_etype", request.timestamp_etype.to_string())
        .relied_on(aes_basis)
        .relied_on(format!(
            "traffic: {client} pre-authenticated with AES before"
        ))
        .confidence(confidence)
        .behaviour(
            Behaviour::new(
                computer.clone(),
                computer,
                client_text(seen),
                "pre-authenticated with RC4 only",
            )
            .item(OVERPASS_THE_HASH.type_name, "RC4-only pre-authentication"),
        )
        .outcome(if answer == Type::AsRep {
            Status::Success
        } else {
            Status::Failure
        })
        .weighed_by_resolution(seen);
        context.raise(finding);
    }

    fn evicted(&self) -> u64 {
        self.aes_computers.evicted()
    }
}

/// Why the account has AES keys, and how sure that is; `None` when it may not have them.
fn account_aes(context: &Context<'_>, name: &str, domain: &str) -> Option<(String, Confidence)> {
    if let Some(account) = context.knowledge.account(name, domain) {
        return match account.supports_aes() {
            Some(true) => Some((
                format!(
                    "directory: {} supports AES (msDS-SupportedEncryptionTypes)",
                    account.sam_account_name
                ),
                Confidence::HighConfidence,
            )),
            Some(false) => None,
            None => context
                .knowledge
                .learned_account(name)
                .filter(|learned| learned.aes_seen)
                .map(|_| {
                    (
                        format!("traffic: the KDC used AES keys of {name} before"),
                        Confidence::MediumConfidence,
                    )
                }),
        };
    }
    context
        .knowledge
        .learned_account(name)
        .filter(|learned| learned.aes_seen)
        .map(|_| {
            (
                format!("traffic: the KDC used AES keys of {name} before"),
                Confidence::MediumConfidence,
            )
        })
}

#[cfg(test)]
mod tests {
    use dcwatch_entity::Directory;

    use crate::detectors::testing::{as_rep, as_req, directory, run, summary, user};

    const CLIENT: &str = "10.98.0.11:50000";

    fn lab(etypes: Option<u32>) -> Directory {
        let mut admin = user("Administrator", 500);
        admin.supported_etypes = etypes;
        directory(vec![admin, user("alice", 1104)], &[])
    }

    fn rc4_logon(offset: i64, fast: bool) -> [dcwatch_proto::v1::Activity; 2] {
        [
            as_req(offset, CLIENT, "Administrator", |body| {
                body.etypes = vec![23];
                body.timestamp_etype = 23;
                body.fast_armor = fast;
            }),
            as_rep(offset + 1, CLIENT, "Administrator", |body| {
                body.reply_etype = 23;
            }),
        ]
    }

    fn aes_logon(offset: i64) -> [dcwatch_proto::v1::Activity; 2] {
        [
            as_req(offset, CLIENT, "alice", |_| {}),
            as_rep(offset + 1, CLIENT, "alice", |_| {}),
        ]
    }

    #[test]
    fn rc4_pre_authentication_of_an_aes_account_from_an_aes_computer_is_overpass_the_hash() {
        let mut activities = aes_logon(0).to_vec();
        activities.extend(rc4_logon(1_000, false));
        let alerts = run(None, lab(Some(0x18)), &activities);
        assert_eq!(
            summary(&alerts),
            [(
                "overpass_the_hash".into(),
                "account:administrator".into(),
                1
            )]
        );
        assert!(alerts[0].description.starts_with(
            "LAB.EXAMPLE\\Administrator on 10.98.0.11 pre-authenticated with RC4 only (timestamp etype 23) and got a TGT"
        ), "{}", alerts[0].description);
    }

    #[test]
    fn fast_a_legacy_rc4_account_or_a_computer_never_seen_with_aes_is_not() {
        let mut fast = aes_logon(0).to_vec();
        fast.extend(rc4_logon(1_000, true));
        assert!(run(None, lab(Some(0x18)), &fast).is_empty());
        let mut legacy = aes_logon(0).to_vec();
        legacy.extend(rc4_logon(1_000, false));
        assert!(run(None, lab(Some(0x4)), &legacy).is_empty());
        assert!(run(None, lab(Some(0x18)), &rc4_logon(1_000, false)).is_empty());
    }
}
