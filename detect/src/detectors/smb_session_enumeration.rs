//! User and IP address reconnaissance over SMB (MDI 2012): SRVSVC NetrSessionEnum (opnum 12)
//! against a domain controller lists who is logged on to it and from where (NetSess, BloodHound's
//! session collection): where to find an admin's credentials. One call suffices. The alert lists
//! the sessions the answer exposed; with a sealed stub (or an unreadable answer) it says that
//! none were readable. Other SRVSVC calls (NetrShareEnum, NetrServerGetInfo) are not this.

use dcwatch_proto::v1::{activity::Body, alert::Confidence, alert_entity::Role, dce_rpc_activity};

use super::{
    Context, Detector, Interface, Kinds,
    target::{dc_target, listed, outcome_word, with_account},
};
use crate::{
    catalogue::SMB_SESSION_ENUMERATION,
    finding::{Finding, account_entity, actor_text, destination, destination_text, source_key},
    observed::Observed,
};

/// SRVSVC NetrSessionEnum (MS-SRVS 3.1.4.5).
const NETR_SESSION_ENUM: u32 = 12;
/// Sessions a description names; the details list up to `MAX_SESSIONS_LISTED`.
const SESSIONS_DESCRIBED: usize = 5;
pub(super) const MAX_SESSIONS_LISTED: usize = 100;

#[derive(Debug, Default)]
pub(super) struct SmbSessionEnumeration;

impl Detector for SmbSessionEnumeration {
    fn kinds(&self) -> Kinds {
        Kinds::requests(Interface::Srvsvc)
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        let Some(Body::Dcerpc(rpc)) = seen.body() else {
            return;
        };
        if rpc.r#type != dce_rpc_activity::Type::Request as i32
            || rpc.interface_name != "srvsvc"
            || rpc.opnum != NETR_SESSION_ENUM
        {
            return;
        }
        let Some(dc) = dc_target(seen, context.knowledge) else {
            return;
        };
        let sessions: Vec<String> = rpc
            .sessions
            .iter()
            .take(MAX_SESSIONS_LISTED)
            .map(
                |session| match (session.user.is_empty(), session.client.is_empty()) {
                    (false, false) => format!("{} from {}", session.user, session.client),
                    (false, true) => session.user.clone(),
                    (true, false) => format!("a session from {}", session.client),
                    (true, true) => "an unnamed session".to_owned(),
                },
            )
            .collect();
        let exposed = if sessions.is_empty() {
            "no sessions were readable in the answer".to_owned()
        } else {
            format!(
                "the answer exposed {} sessions: {}",
                rpc.sessions.len(),
                listed(sessions.iter().map(String::as_str), SESSIONS_DESCRIBED)
            )
        };
        let description = format!(
            "{} {}enumerated the SMB sessions of {} (NetrSessionEnum), learning who is logged on and from where; {exposed}",
            actor_text(seen),
            outcome_word(seen),
            destination_text(seen),
        );
        let mut finding = Finding::on(
            &SMB_SESSION_ENUMERATION,
            source_key(seen),
            seen,
            format!(
                "srvsvc NetrSessionEnum level {}: {} sessions",
                rpc.info_level,
                rpc.sessions.len()
            ),
        )
        .describe(description)
        .entity(destination(seen, Role::DomainController))
        .detail("info_level", rpc.info_level.to_string())
        .detail(
            "exposed_sessions",
            listed(sessions.iter().map(String::as_str), MAX_SESSIONS_LISTED),
        )
        .relied_on(dc.verdict.basis)
        .weighed_by_resolution(seen)
        .app("SrvSvc");
        if dc.confidence != Confidence::HighConfidence {
            finding = finding.confidence(dc.confidence);
        }
        for session in rpc.sessions.iter().take(MAX_SESSIONS_LISTED) {
            if !session.user.is_empty() {
                finding = finding.entity(account_entity(
                    Role::AttackedAccount,
                    "",
                    &session.user,
                    context.knowledge.directory(),
                ));
            }
        }
        finding = with_account(finding, seen, context);
        context.raise(finding);
    }
}

#[cfg(test)]
mod tests {
    use dcwatch_entity::Directory;
    use dcwatch_proto::v1::{
        Activity, Certainty, activity::Body, alert::Confidence, dce_rpc_activity::Session,
    };

    use crate::{
        Config,
        detectors::testing::{activity, rpc_request, run, summary, with_source_computer},
    };

    const CLIENT: &str = "10.98.0.40:50000";
    const DC: &str = "10.98.0.1:445";

    fn session_enum(sessions: Vec<Session>) -> Activity {
        let mut body = rpc_request("srvsvc", 12, "NetrSessionEnum");
        body.info_level = 10;
        body.sessions = sessions;
        activity(0, CLIENT, DC, Body::Dcerpc(body))
    }

    fn dc_config() -> Config {
        Config {
            dc_addresses: vec!["10.98.0.1".parse().expect("an address")],
            ..Config::test_mode()
        }
    }

    #[test]
    fn netsess_against_a_dc_lists_the_exposed_sessions() {
        let alerts = run(
            Some(dc_config()),
            Directory::default(),
            &[with_source_computer(
                session_enum(vec![
                    Session {
                        client: "\\\\10.98.0.12".into(),
                        user: "Administrator".into(),
                    },
                    Session {
                        client: "\\\\10.98.0.40".into(),
                        user: "alice".into(),
                    },
                ]),
                "KALI",
                Certainty::High,
            )],
        );
        assert_eq!(
            summary(&alerts),
            [("smb_session_enumeration".into(), "src:10.98.0.40".into(), 1)]
        );
        let alert = &alerts[0];
        assert_eq!(alert.external_id, 2012);
        assert!(
            alert.description.starts_with("KALI (10.98.0.40) enumerated the SMB sessions of 10.98.0.1")
                && alert.description.contains("exposed 2 sessions: Administrator from \\\\10.98.0.12, alice from \\\\10.98.0.40"),
            "{}",
            alert.description
        );
        assert!(
            alert
                .entities
                .iter()
                .any(|entity| entity.name == "Administrator")
        );
        assert_eq!(alert.confidence(), Confidence::HighConfidence);
    }

    #[test]
    fn a_sealed_answer_still_alerts_saying_nothing_was_readable() {
        let alerts = run(None, Directory::default(), &[session_enum(Vec::new())]);
        assert_eq!(alerts.len(), 1);
        assert!(alerts[0].description.contains("no sessions were readable"));
        // Nothing said the destination is a DC: taken as one, at medium confidence.
        assert_eq!(alerts[0].confidence(), Confidence::MediumConfidence);
    }

    #[test]
    fn share_enumeration_and_non_dc_servers_are_not_session_enumeration() {
        let shares = activity(
            0,
            CLIENT,
            DC,
            Body::Dcerpc(rpc_request("srvsvc", 15, "NetrShareEnum")),
        );
        let server_info = activity(
            0,
            CLIENT,
            DC,
            Body::Dcerpc(rpc_request("srvsvc", 21, "NetrServerGetInfo")),
        );
        let mut to_file_server = session_enum(Vec::new());
        to_file_server.dst = Some(crate::detectors::testing::endpoint("10.98.0.50:445"));
        assert!(
            run(
                Some(dc_config()),
                Directory::default(),
                &[shares, server_info, to_file_server]
            )
            .is_empty()
        );
    }
}
