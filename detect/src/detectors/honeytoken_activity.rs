//! Honeytoken activity (MDI 2014, 2429, 2439): accounts no one should use, tagged in the
//! directory or the configuration. Any authentication of one (a Kerberos AS exchange, an NTLM
//! AUTHENTICATE, an LDAP simple bind, a 4776, a RADIUS request) raises 2014; an LDAP search
//! naming one (in its filter, base or LDAP ping) raises 2429, a SAMR lookup or open of one
//! (its name, or its RID) 2439. One alert per honeytoken; its count is the activities. An SMB
//! session setup repeats its NTLM or Kerberos authentication, so it is not counted again.

use dcwatch_proto::v1::{
    activity::Body, alert_entity::Role, dce_rpc_activity, kerberos_activity, ldap_activity,
    ntlm_activity, radius_activity,
};

use super::{
    Context, Detector, Interface, Key, Kinds,
    auth::{client_finding, client_text},
};
use crate::{
    catalogue::{HONEYTOKEN_ACTIVITY, HONEYTOKEN_LDAP_QUERY, HONEYTOKEN_SAMR_QUERY, Kind},
    finding::{account_entity, account_key, destination, destination_text},
    knowledge::{Knowledge, account_key as name_key},
    observed::Observed,
    tickets::Honeytoken,
};

#[derive(Debug, Default)]
pub(super) struct HoneytokenActivity;

impl Detector for HoneytokenActivity {
    fn kinds(&self) -> Kinds {
        Kinds::kerberos(kerberos_activity::Type::AsRep)
            | Kinds::kerberos(kerberos_activity::Type::KrbError)
            | Kinds::kerberos(kerberos_activity::Type::TgsRep)
            | Kinds::ntlm(ntlm_activity::Type::Authenticate)
            | Kinds::ldap(ldap_activity::Type::Bind)
            | Kinds::ldap(ldap_activity::Type::Search)
            | Kinds::WINDOWS_EVENT
            | Kinds::RADIUS
            | Kinds::requests(Interface::Samr)
    }

    fn key(&self) -> Key {
        Key::Account
    }

    /// Without honeytokens it has nothing to find: most deployments name none, and it was
    /// called for every authentication and query only to return.
    fn applies(&self, knowledge: &Knowledge) -> bool {
        !knowledge.honeytokens().is_empty()
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        match seen.body() {
            Some(Body::Kerberos(kerberos)) => {
                use kerberos_activity::Type;
                if matches!(
                    Type::try_from(kerberos.r#type),
                    Ok(Type::AsRep | Type::KrbError)
                ) && kerberos.service.to_lowercase().starts_with("krbtgt")
                {
                    let how = if kerberos.r#type == Type::AsRep as i32 {
                        "got a TGT (Kerberos)".to_owned()
                    } else {
                        format!("asked a TGT (Kerberos, answered {})", kerberos.error_name)
                    };
                    authentication(
                        seen,
                        context,
                        &kerberos.client_realm,
                        &kerberos.client,
                        &how,
                    );
                }
                if kerberos.r#type == Type::TgsRep as i32 {
                    service_ticket(seen, context, kerberos);
                }
            }
            Some(Body::Ntlm(ntlm)) if ntlm.r#type == ntlm_activity::Type::Authenticate as i32 => {
                authentication(
                    seen,
                    context,
                    &ntlm.domain,
                    &ntlm.user,
                    "authenticated (NTLM)",
                );
            }
            Some(Body::Ldap(ldap)) => match ldap_activity::Type::try_from(ldap.r#type) {
                Ok(ldap_activity::Type::Bind) => {
                    authentication(
                        seen,
                        context,
                        "",
                        &ldap.bind_name,
                        "bound (LDAP simple bind)",
                    );
                }
                Ok(ldap_activity::Type::Search) => ldap_query(seen, context, ldap),
                _ => {}
            },
            Some(Body::WindowsEvent(event))
                if event.event_id == super::auth::EVENT_CREDENTIAL_VALIDATION =>
            {
                if let Some(target) = &event.target {
                    authentication(
                        seen,
                        context,
                        &target.domain,
                        &target.name,
                        "was validated (event 4776)",
                    );
                }
            }
            Some(Body::Radius(radius))
                if radius.r#type == radius_activity::Type::AccessRequest as i32 =>
            {
                authentication(
                    seen,
                    context,
                    "",
                    &radius.user_name,
                    "asked VPN access (RADIUS)",
                );
            }
            Some(Body::Dcerpc(rpc))
                if rpc.interface_name == "samr"
                    && rpc.r#type == dce_rpc_activity::Type::Request as i32 =>
            {
                samr_query(seen, context, rpc);
            }
            _ => {}
        }
    }
}

/// The honeytoken a name designates (any form: `LAB\name`, UPN, DN, `name$`).
fn named<'a>(context: &'a Context<'_>, name: &str) -> Option<&'a Honeytoken> {
    if name.is_empty() {
        return None;
    }
    let key = name_key(name);
    let lower = name.to_lowercase();
    context
        .knowledge
        .honeytokens()
        .iter()
        .find(|honeytoken| honeytoken.forms.contains(&key) || honeytoken.forms.contains(&lower))
}

fn raise(
    seen: &Observed<'_>,
    context: &mut Context<'_>,
    kind: &'static Kind,
    honeytoken: &Honeytoken,
    description: String,
    summary: String,
) {
    let finding = client_finding(kind, account_key(&honeytoken.name), seen, summary)
        .describe(description)
        .entity(account_entity(
            Role::AttackedAccount,
            "",
            &honeytoken.name,
            context.knowledge.directory(),
        ))
        .entity(destination(seen, Role::DestinationComputer))
        .relied_on(honeytoken.reason.clone())
        .weighed_by_resolution(seen);
    context.raise(finding);
}

fn authentication(
    seen: &Observed<'_>,
    context: &mut Context<'_>,
    domain: &str,
    name: &str,
    how: &str,
) {
    let Some(honeytoken) = named(context, name).cloned() else {
        return;
    };
    let account = if domain.is_empty() {
        name.to_owned()
    } else {
        format!("{domain}\\{name}")
    };
    // A 4776 comes from the DC that validated it, and names the client's workstation.
    let (from, to) = match seen.body() {
        Some(Body::WindowsEvent(event)) => {
            (Some(format!("workstation {}", event.workstation)), seen.src)
        }
        _ => (None, super::auth::server_address(seen)),
    };
    let outcome = if seen.failed() {
        ", unsuccessfully"
    } else {
        ""
    };
    let description = format!(
        "The honeytoken {account} {how} from {} to {}{outcome}: no one should use this account",
        from.unwrap_or_else(|| client_text(seen)),
        crate::finding::computer_text("", to),
    );
    raise(
        seen,
        context,
        &HONEYTOKEN_ACTIVITY,
        &honeytoken,
        description,
        format!("{account} {how}"),
    );
}

/// A service ticket for a honeytoken's SPN: roasting the honeytoken, or using it as a service.
fn service_ticket(
    seen: &Observed<'_>,
    context: &mut Context<'_>,
    kerberos: &dcwatch_proto::v1::KerberosActivity,
) {
    let owner = context
        .knowledge
        .directory()
        .account(&kerberos.service)
        .map_or_else(
            || kerberos.service.clone(),
            |object| object.sam_account_name.clone(),
        );
    let Some(honeytoken) = named(context, &owner).cloned() else {
        return;
    };
    let who = seen.account_text();
    let actor = if who.is_empty() {
        client_text(seen)
    } else {
        format!("{who} on {}", client_text(seen))
    };
    let description = format!(
        "{actor} got a service ticket for {}, an SPN of the honeytoken {}: no one should use this account",
        kerberos.service, honeytoken.name,
    );
    raise(
        seen,
        context,
        &HONEYTOKEN_ACTIVITY,
        &honeytoken,
        description,
        format!("TGS-REP for {}", kerberos.service),
    );
}

/// Whether `text` names `form` as a whole value: `(sAMAccountName=form)`, `=form*`, a DN.
fn names_value(text: &str, form: &str) -> bool {
    text.match_indices(form).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + form.len()..].chars().next();
        matches!(before, None | Some('=' | '*' | '(' | ',' | '\\'))
            && matches!(after, None | Some(')' | '*' | ',' | '@'))
    })
}

fn ldap_query(
    seen: &Observed<'_>,
    context: &mut Context<'_>,
    ldap: &dcwatch_proto::v1::LdapActivity,
) {
    let filter = ldap.filter.to_lowercase();
    let base = ldap.base.to_lowercase();
    let ping_user = ldap
        .ping
        .as_ref()
        .map(|ping| ping.user.to_lowercase())
        .unwrap_or_default();
    let found = context.knowledge.honeytokens().iter().find(|honeytoken| {
        honeytoken.forms.iter().any(|form| {
            names_value(&filter, form)
                || base == *form
                || (!ping_user.is_empty() && ping_user == *form)
        })
    });
    let Some(honeytoken) = found.cloned() else {
        return;
    };
    let description = format!(
        "{} searched {} over LDAP for the honeytoken {} (filter {}): reconnaissance touching an account no one should need",
        crate::finding::actor_text(seen),
        destination_text(seen),
        honeytoken.name,
        ldap.filter,
    );
    raise(
        seen,
        context,
        &HONEYTOKEN_LDAP_QUERY,
        &honeytoken,
        description,
        format!("LDAP search {}", ldap.filter),
    );
}

fn samr_query(
    seen: &Observed<'_>,
    context: &mut Context<'_>,
    rpc: &dcwatch_proto::v1::DceRpcActivity,
) {
    let found = context.knowledge.honeytokens().iter().find(|honeytoken| {
        rpc.names
            .iter()
            .any(|name| honeytoken.forms.contains(&name.to_lowercase()))
            || honeytoken.rid.is_some_and(|rid| {
                (rpc.rid == rid && rpc.operation.starts_with("SamrOpenUser"))
                    || rpc.rids.contains(&rid)
            })
    });
    let Some(honeytoken) = found.cloned() else {
        return;
    };
    let description = format!(
        "{} queried the honeytoken {} over SAMR ({}) on {}: reconnaissance touching an account no one should need",
        crate::finding::actor_text(seen),
        honeytoken.name,
        rpc.operation,
        destination_text(seen),
    );
    raise(
        seen,
        context,
        &HONEYTOKEN_SAMR_QUERY,
        &honeytoken,
        description,
        format!("samr {}", rpc.operation),
    );
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use dcwatch_entity::Directory;
    use dcwatch_proto::v1::{activity::Body, ldap_activity};

    use crate::{
        Config, Engine,
        detectors::testing::{
            activity, as_rep, directory, event_4776, hash, krb_error, ldap, ntlm_authenticate,
            rpc_request, run, summary, tgs_rep, user,
        },
    };

    const WS: &str = "10.98.0.21:50000";

    fn lab() -> Directory {
        directory(
            vec![user("alice", 1104), user("backup_admin", 1666)],
            &["backup_admin"],
        )
    }

    #[test]
    fn a_logon_of_a_honeytoken_is_honeytoken_activity() {
        let activities = [
            krb_error(0, WS, "backup_admin", 25),
            as_rep(1, WS, "backup_admin", |_| {}),
            ntlm_authenticate(
                2,
                WS,
                "10.98.0.1:445",
                "LAB",
                "BACKUP_ADMIN",
                0xC000_006D,
                |_| {},
            ),
        ];
        let alerts = run(None, lab(), &activities);
        assert_eq!(
            summary(&alerts),
            [(
                "honeytoken_activity".into(),
                "account:backup_admin".into(),
                3
            )]
        );
        assert_eq!(alerts[0].external_id, 2014);
        assert_eq!(
            alerts[0].description,
            "The honeytoken LAB\\BACKUP_ADMIN authenticated (NTLM) from 10.98.0.21 to 10.98.0.1, unsuccessfully: no one should use this account"
        );
    }

    /// Without honeytokens the detector is left out of the dispatch; a directory that tags one
    /// later takes it back in, and one that drops the tag leaves it out again.
    #[test]
    fn a_honeytoken_tagged_by_a_later_directory_is_watched_from_then_on() {
        let logon = |offset| {
            ntlm_authenticate(
                offset,
                WS,
                "10.98.0.1:445",
                "LAB",
                "backup_admin",
                0,
                |_| {},
            )
        };
        let untagged = || directory(vec![user("alice", 1104), user("backup_admin", 1666)], &[]);
        let mut engine = Engine::new(Config::test_mode(), Arc::new(untagged()));
        engine.observe(&logon(0), "");
        assert_eq!(engine.alerts().count(), 0);
        engine.set_directory(Arc::new(lab()));
        engine.observe(&logon(1), "");
        engine.observe(&logon(2), "");
        engine.set_directory(Arc::new(untagged()));
        engine.observe(&logon(3), "");
        let alerts: Vec<_> = engine.alerts().cloned().collect();
        assert_eq!(
            summary(&alerts),
            [(
                "honeytoken_activity".into(),
                "account:backup_admin".into(),
                2
            )]
        );
    }

    #[test]
    fn ldap_and_samr_queries_of_a_honeytoken_are_reconnaissance_of_it() {
        let search = ldap(0, WS, 0, |body| {
            body.r#type = ldap_activity::Type::Search.into();
            body.base = "DC=lab,DC=example".into();
            body.filter = "(&(objectClass=user)(sAMAccountName=backup_admin))".into();
        });
        let alerts = run(None, lab(), &[search]);
        assert_eq!(
            summary(&alerts),
            [(
                "honeytoken_activity".into(),
                "account:backup_admin".into(),
                1
            )]
        );
        assert_eq!(alerts[0].external_id, 2429);
        let mut open = rpc_request("samr", 34, "SamrOpenUser");
        open.rid = 1666;
        let alerts = run(
            None,
            lab(),
            &[activity(0, WS, "10.98.0.1:445", Body::Dcerpc(open))],
        );
        assert_eq!(alerts[0].external_id, 2439);
    }

    #[test]
    fn other_accounts_and_names_that_only_contain_the_honeytoken_are_not() {
        let search = ldap(0, WS, 0, |body| {
            body.r#type = ldap_activity::Type::Search.into();
            body.filter = "(sAMAccountName=backup_admin2)".into();
        });
        let activities = [as_rep(1, WS, "alice", |_| {}), search];
        assert!(run(None, lab(), &activities).is_empty());
    }

    #[test]
    fn a_service_ticket_for_its_spn_and_a_4776_name_the_client() {
        let mut honey = user("svc_honey", 1667);
        honey.spns = vec!["MSSQLSvc/honey.lab.example:1433".into()];
        let lab = directory(vec![user("alice", 1104), honey], &["svc_honey"]);
        let activities = [
            tgs_rep(
                0,
                WS,
                "alice",
                "MSSQLSvc/honey.lab.example:1433",
                &hash(1),
                |_| {},
            ),
            event_4776(1, "KALI", "svc_honey", 0xC000_006A),
        ];
        let alerts = run(None, lab, &activities);
        assert_eq!(
            summary(&alerts),
            [("honeytoken_activity".into(), "account:svc_honey".into(), 2)]
        );
        assert_eq!(
            alerts[0].description,
            "The honeytoken svc_honey was validated (event 4776) from workstation KALI to 10.98.0.1, unsuccessfully: no one should use this account"
        );
        assert!(
            alerts[0].evidence[0]
                .summary
                .contains("TGS-REP for MSSQLSvc/honey.lab.example:1433")
        );
    }

    #[test]
    fn a_configured_honeytoken_works_without_a_directory() {
        let config = Config {
            honeytokens: vec!["LAB\\decoy".into()],
            ..Config::test_mode()
        };
        let alerts = run(
            Some(config),
            Directory::default(),
            &[as_rep(0, WS, "decoy", |_| {})],
        );
        assert_eq!(
            summary(&alerts),
            [("honeytoken_activity".into(), "account:decoy".into(), 1)]
        );
    }
}
