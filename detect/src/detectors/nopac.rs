//! noPac / SAM name impersonation (MDI 2419, CVE-2021-42278/42287): the attacker renames a
//! computer account it controls to a DC's name without the `$`, gets a TGT for that name,
//! renames it back, and asks a service ticket for itself with S4U2self: the KDC, not finding the
//! name, appends `$` and issues a ticket as the DC. Two rules:
//! - an AS-REQ for `X` where `X$` is a DC (the directory, or a DC's NTLM name on the wire) and
//!   the directory has no account `X`, followed within `NOPAC_WINDOW` by an S4U2self TGS-REQ
//!   from the same source;
//! - an LDAP modify setting a sAMAccountName to a DC's name without `$` (seen when LDAP is not
//!   sealed).

use std::net::IpAddr;

use dcwatch_proto::v1::{activity::Body, alert_entity::Role, kerberos_activity, ldap_activity};

use super::{Context, Detector, Kinds};
use crate::{
    bounded::BoundedMap,
    catalogue::NOPAC,
    finding::{Finding, account_entity, destination, source_key, source_text},
    knowledge::Verdict,
    observed::Observed,
    time::{MINUTE, Millis},
};

/// From the TGT for the DC's name to the S4U2self request (*ours*, DETECTIONS.md).
pub(super) const NOPAC_WINDOW: Millis = 10 * MINUTE;
/// Sources with a pending TGT request for a DC's name.
pub(super) const MAX_NOPAC_PENDING: usize = 4_096;
/// PA-FOR-USER and PA-S4U-X509-USER (MS-SFU 2.2.1, 2.2.2).
const PA_FOR_USER: i32 = 129;
const PA_S4U_X509_USER: i32 = 130;

#[derive(Debug, Clone)]
struct Pending {
    name: String,
    time: Millis,
    basis: String,
}

#[derive(Debug)]
pub(super) struct Nopac {
    pending: BoundedMap<IpAddr, Pending>,
}

impl Default for Nopac {
    fn default() -> Self {
        Self {
            pending: BoundedMap::new(MAX_NOPAC_PENDING),
        }
    }
}

impl Detector for Nopac {
    fn kinds(&self) -> Kinds {
        Kinds::kerberos(kerberos_activity::Type::AsReq)
            | Kinds::kerberos(kerberos_activity::Type::TgsReq)
            | Kinds::ldap(ldap_activity::Type::Modify)
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        match seen.body() {
            Some(Body::Kerberos(kerberos)) => self.kerberos(seen, context, kerberos),
            Some(Body::Ldap(ldap)) if ldap.r#type == ldap_activity::Type::Modify as i32 => {
                rename(seen, context, ldap);
            }
            _ => {}
        }
    }

    fn evicted(&self) -> u64 {
        self.pending.evicted()
    }
}

/// Whether `name` (no `$`) is a DC's name without its `$`, and no account of its own.
fn impersonates_dc(context: &Context<'_>, name: &str) -> Option<Verdict> {
    if name.is_empty() || name.ends_with('$') {
        return None;
    }
    let verdict = context.knowledge.dc_name(name)?;
    if context.knowledge.has_directory() && context.knowledge.directory().account(name).is_some() {
        return None;
    }
    Some(verdict)
}

impl Nopac {
    fn kerberos(
        &mut self,
        seen: &Observed<'_>,
        context: &mut Context<'_>,
        kerberos: &dcwatch_proto::v1::KerberosActivity,
    ) {
        use kerberos_activity::Type;
        let Some(source) = seen.src else {
            return;
        };
        match Type::try_from(kerberos.r#type) {
            Ok(Type::AsReq) => {
                if let Some(verdict) = impersonates_dc(context, &kerberos.client) {
                    let pending = Pending {
                        name: kerberos.client.clone(),
                        time: seen.time,
                        basis: verdict.basis,
                    };
                    let slot = self.pending.touch(source, seen.time, || pending.clone());
                    *slot = pending;
                }
            }
            Ok(Type::TgsReq)
                if !kerberos.s4u_user.is_empty()
                    || kerberos.pa_data_types.contains(&PA_FOR_USER)
                    || kerberos.pa_data_types.contains(&PA_S4U_X509_USER) =>
            {
                let Some(pending) = self.pending.get(&source).cloned() else {
                    return;
                };
                if seen.time.saturating_sub(pending.time) > NOPAC_WINDOW {
                    return;
                }
                self.pending.remove(&source);
                let user = if kerberos.s4u_user.is_empty() {
                    "a user".to_owned()
                } else {
                    kerberos.s4u_user.clone()
                };
                let description = format!(
                    "{} got a TGT as {}, a domain controller's name without its $, then asked a ticket on behalf of {user} with S4U2self: SAM name impersonation (noPac) to obtain a ticket as the DC",
                    source_text(seen),
                    pending.name,
                );
                let finding = Finding::on(
                    &NOPAC,
                    source_key(seen),
                    seen,
                    format!(
                        "S4U2self TGS-REQ for {user} after a TGT for {}",
                        pending.name
                    ),
                )
                .describe(description)
                .spanning(pending.time, 1)
                .entity(destination(seen, Role::DomainController))
                .entity(account_entity(
                    Role::SourceAccount,
                    "",
                    &pending.name,
                    context.knowledge.directory(),
                ))
                .detail("impersonated_name", pending.name.clone())
                .detail("s4u_user", kerberos.s4u_user.clone())
                .relied_on(pending.basis)
                .weighed_by_resolution(seen);
                context.raise(finding);
            }
            _ => {}
        }
    }
}

fn rename(seen: &Observed<'_>, context: &mut Context<'_>, ldap: &dcwatch_proto::v1::LdapActivity) {
    for change in &ldap.changes {
        if !change.attribute.eq_ignore_ascii_case("sAMAccountName") {
            continue;
        }
        for value in &change.values {
            let Some(verdict) = impersonates_dc(context, value) else {
                continue;
            };
            let description = format!(
                "{} renamed {} to {value}, a domain controller's name without its $: the first step of SAM name impersonation (noPac)",
                crate::finding::actor_text(seen),
                ldap.dn,
            );
            let finding = Finding::on(
                &NOPAC,
                source_key(seen),
                seen,
                format!("LDAP modify sAMAccountName={value} on {}", ldap.dn),
            )
            .describe(description)
            .entity(destination(seen, Role::DomainController))
            .detail("dn", ldap.dn.clone())
            .detail("impersonated_name", value.clone())
            .relied_on(verdict.basis)
            .weighed_by_resolution(seen);
            context.raise(finding);
        }
    }
}

#[cfg(test)]
mod tests {
    use dcwatch_entity::{Directory, Uac};
    use dcwatch_proto::v1::{LdapActivity, ldap_activity, ldap_activity::Change};

    use dcwatch_proto::v1::{NtlmActivity, activity::Body, ntlm_activity};

    use crate::Config;
    use crate::detectors::testing::{
        activity, as_req, computer, directory, hash, ldap, run, summary, tgs_req, user,
    };
    use crate::time::MINUTE;

    const ATTACKER: &str = "10.98.0.16:50000";

    fn lab() -> Directory {
        directory(
            vec![
                computer("DC1", 1000, Uac::SERVER_TRUST_ACCOUNT),
                computer("EVIL", 1500, Uac::WORKSTATION_TRUST_ACCOUNT),
                user("alice", 1104),
            ],
            &[],
        )
    }

    fn s4u(offset: i64) -> dcwatch_proto::v1::Activity {
        tgs_req(offset, ATTACKER, "DC1", &hash(5), |body| {
            body.s4u_user = "Administrator".into();
            body.pa_data_types = vec![1, 129];
        })
    }

    #[test]
    fn a_tgt_for_a_dc_name_without_dollar_then_s4u2self_is_nopac() {
        let alerts = run(
            None,
            lab(),
            &[as_req(0, ATTACKER, "DC1", |_| {}), s4u(MINUTE)],
        );
        assert_eq!(
            summary(&alerts),
            [("nopac".into(), "src:10.98.0.16".into(), 1)]
        );
        assert!(
            alerts[0].description.starts_with(
                "10.98.0.16 got a TGT as DC1, a domain controller's name without its $"
            )
        );
    }

    #[test]
    fn without_a_directory_the_dc_name_comes_from_its_ntlm_challenge() {
        let challenge = activity(
            0,
            "10.98.0.1:445",
            "10.98.0.30:50000",
            Body::Ntlm(NtlmActivity {
                r#type: ntlm_activity::Type::Challenge.into(),
                server_nb_computer: "DC1".into(),
                ..NtlmActivity::default()
            }),
        );
        let config = Config {
            dc_addresses: vec!["10.98.0.1".parse().expect("an address")],
            ..Config::test_mode()
        };
        let activities = [challenge, as_req(1, ATTACKER, "dc1", |_| {}), s4u(MINUTE)];
        let alerts = run(Some(config), Directory::default(), &activities);
        assert_eq!(
            summary(&alerts),
            [("nopac".into(), "src:10.98.0.16".into(), 1)]
        );
        assert!(
            alerts[0]
                .relied_on
                .iter()
                .any(|basis| basis == "traffic: a domain controller answered NTLM as dc1")
        );
    }

    #[test]
    fn renaming_a_computer_to_a_dc_name_is_nopac() {
        let modify = ldap(0, ATTACKER, 0, |body: &mut LdapActivity| {
            body.r#type = ldap_activity::Type::Modify.into();
            body.dn = "CN=EVIL,OU=Computers,DC=lab,DC=example".into();
            body.changes = vec![Change {
                operation: "replace".into(),
                attribute: "sAMAccountName".into(),
                values: vec!["DC1".into()],
                value_count: 1,
            }];
        });
        let alerts = run(None, lab(), &[modify]);
        assert_eq!(
            summary(&alerts),
            [("nopac".into(), "src:10.98.0.16".into(), 1)]
        );
    }

    #[test]
    fn ordinary_logons_and_late_or_unrelated_s4u_are_not() {
        // The DC's own account, a user, and a service's S4U2self an hour after.
        let activities = [
            as_req(0, ATTACKER, "DC1$", |_| {}),
            as_req(1, ATTACKER, "alice", |_| {}),
            s4u(2),
            as_req(3, "10.98.0.17:50000", "DC1", |_| {}),
            tgs_req(11 * MINUTE, "10.98.0.17:50001", "DC1", &hash(6), |body| {
                body.s4u_user = "bob".into();
            }),
        ];
        assert!(run(None, lab(), &activities).is_empty());
    }
}
