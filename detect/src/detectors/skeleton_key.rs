//! Skeleton key (MDI 2010): mimikatz `misc::skeleton` patches a DC's LSASS so every account
//! also accepts a master password, and the DC then offers RC4 alone. Seen in the DC's
//! PREAUTH_REQUIRED errors: their ETYPE-INFO2 (`offered_etypes`) lists only RC4 for an account
//! the DCs offered AES before, although the request asked AES. A client that asked RC4 alone
//! (impacket) is offered RC4 alone by a healthy DC, so the request's etypes are checked.

use std::net::IpAddr;

use dcwatch_proto::v1::{activity::Body, alert_entity::Role, kerberos_activity};

use super::{
    Context, Detector, Kinds,
    auth::{KDC_ERR_PREAUTH_REQUIRED, client_finding, client_text},
};
use crate::{
    bounded::BoundedMap,
    catalogue::SKELETON_KEY,
    finding::{account_entity, source_text},
    knowledge::{account_key, is_aes, is_rc4},
    observed::Observed,
};

/// Accounts remembered as offered AES by a DC.
pub(super) const MAX_AES_OFFERS: usize = 200_000;

#[derive(Debug)]
pub(super) struct SkeletonKey {
    /// account key → the DC that offered it AES.
    offered_aes: BoundedMap<String, Option<IpAddr>>,
}

impl Default for SkeletonKey {
    fn default() -> Self {
        Self {
            offered_aes: BoundedMap::new(MAX_AES_OFFERS),
        }
    }
}

impl Detector for SkeletonKey {
    fn kinds(&self) -> Kinds {
        Kinds::kerberos(kerberos_activity::Type::KrbError)
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        let Some(Body::Kerberos(kerberos)) = seen.body() else {
            return;
        };
        if kerberos.r#type != kerberos_activity::Type::KrbError as i32
            || kerberos.error_code != KDC_ERR_PREAUTH_REQUIRED
            || kerberos.offered_etypes.is_empty()
            || kerberos.client.is_empty()
        {
            return;
        }
        let key = account_key(&kerberos.client);
        if kerberos.offered_etypes.iter().any(|etype| is_aes(*etype)) {
            *self.offered_aes.touch(key, seen.time, || seen.src) = seen.src;
            return;
        }
        if !kerberos.offered_etypes.iter().all(|etype| is_rc4(*etype)) {
            return;
        }
        let asked_aes = context
            .knowledge
            .as_request(seen)
            .is_some_and(|request| request.etypes.iter().any(|etype| is_aes(*etype)));
        let Some(before) = self.offered_aes.get(&key).copied() else {
            return;
        };
        if !asked_aes {
            return;
        }
        let before = before.map_or_else(|| "a DC".to_owned(), |dc| dc.to_string());
        let description = format!(
            "The domain controller {} offered only RC4 (ETYPE-INFO2) to {}\\{} on {}, which asked AES and was offered AES by {before} before: a skeleton key may be patched into the DC",
            source_text(seen),
            kerberos.client_realm,
            kerberos.client,
            client_text(seen),
        );
        let key = seen
            .src
            .map_or_else(|| "dc:unknown".to_owned(), |dc| format!("dc:{dc}"));
        let dc = dcwatch_proto::v1::AlertEntity {
            role: Role::DomainController.into(),
            address: seen.src.map(|ip| ip.to_string()).unwrap_or_default(),
            ..Default::default()
        };
        let finding = client_finding(
            &SKELETON_KEY,
            key,
            seen,
            format!(
                "KRB-ERROR PREAUTH_REQUIRED offering {:?}",
                kerberos.offered_etypes
            ),
        )
        .describe(description)
        .entity(dc)
        .entity(account_entity(
            Role::AttackedAccount,
            &kerberos.client_realm,
            &kerberos.client,
            context.knowledge.directory(),
        ))
        .detail("offered_etypes", format!("{:?}", kerberos.offered_etypes))
        .relied_on(format!(
            "traffic: {before} offered AES to {} before",
            kerberos.client
        ));
        context.raise(finding);
    }

    fn evicted(&self) -> u64 {
        self.offered_aes.evicted()
    }
}

#[cfg(test)]
mod tests {
    use dcwatch_entity::Directory;

    use crate::detectors::testing::{as_req, krb_error, run, summary};

    const WS: &str = "10.98.0.13:50000";

    fn offer(offset: i64, etypes: &[i32]) -> dcwatch_proto::v1::Activity {
        let mut error = krb_error(offset, WS, "alice", 25);
        if let Some(dcwatch_proto::v1::activity::Body::Kerberos(body)) = &mut error.body {
            body.offered_etypes = etypes.to_vec();
        }
        error
    }

    fn ask(offset: i64, etypes: &[i32]) -> dcwatch_proto::v1::Activity {
        as_req(offset, WS, "alice", |body| {
            body.encrypted_timestamp = false;
            body.etypes = etypes.to_vec();
        })
    }

    #[test]
    fn only_rc4_offered_to_an_account_offered_aes_before_is_a_skeleton_key() {
        let activities = [
            ask(0, &[18, 17, 23]),
            offer(1, &[18, 23]),
            ask(1_000, &[18, 17, 23]),
            offer(1_001, &[23]),
        ];
        let alerts = run(None, Directory::default(), &activities);
        assert_eq!(
            summary(&alerts),
            [("skeleton_key".into(), "dc:10.98.0.1".into(), 1)]
        );
        assert_eq!(alerts[0].external_id, 2010);
        assert!(
            alerts[0]
                .description
                .starts_with("The domain controller 10.98.0.1 offered only RC4")
        );
    }

    #[test]
    fn a_client_asking_rc4_alone_or_an_account_never_offered_aes_is_not() {
        let rc4_client = [
            ask(0, &[18, 17, 23]),
            offer(1, &[18, 23]),
            ask(1_000, &[23]),
            offer(1_001, &[23]),
        ];
        assert!(run(None, Directory::default(), &rc4_client).is_empty());
        let legacy = [ask(0, &[18, 17, 23]), offer(1, &[23])];
        assert!(run(None, Directory::default(), &legacy).is_empty());
    }
}
