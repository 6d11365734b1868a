//! DCSync (MDI 2006): a computer that is not a domain controller asks a DC to replicate the
//! directory (DRSUAPI DsGetNCChanges, or DsReplicaSync), which is how mimikatz and secretsdump
//! take every account's keys. Only DCs replicate, so one request suffices. The false positives
//! are a DC not known as one (no directory, no configured list, and silent on the wire) and
//! Azure AD Connect's password-hash sync account, which an exclusion covers.

use dcwatch_proto::v1::{activity::Body, alert::Confidence, alert_entity::Role, dce_rpc_activity};

use super::{Context, Detector, Interface, Kinds};
use crate::{
    catalogue::DCSYNC,
    finding::{
        Finding, actor_text, destination, destination_text, source_key, vouched_source_name,
    },
    knowledge::Source,
    observed::Observed,
};

/// DRSUAPI opnums (MS-DRSR 4.1): IDL_DRSReplicaSync and IDL_DRSGetNCChanges.
const DS_REPLICA_SYNC: u32 = 2;
const DS_GET_NC_CHANGES: u32 = 3;

#[derive(Debug)]
pub(super) struct Dcsync;

impl Detector for Dcsync {
    fn kinds(&self) -> Kinds {
        Kinds::requests(Interface::Drsuapi)
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        let Some(Body::Dcerpc(rpc)) = seen.body() else {
            return;
        };
        if rpc.r#type != dce_rpc_activity::Type::Request as i32
            || rpc.interface_name != "drsuapi"
            || !matches!(rpc.opnum, DS_REPLICA_SYNC | DS_GET_NC_CHANGES)
        {
            return;
        }
        // The basis is written only for what is not a DC: nearly all who ask are DCs.
        let answer = context
            .knowledge
            .dc_answer(seen.src, vouched_source_name(seen));
        if answer.yes() {
            return;
        }
        let verdict = answer.verdict();
        let operation = if rpc.opnum == DS_GET_NC_CHANGES {
            "DsGetNCChanges"
        } else {
            "DsReplicaSync"
        };
        let what = match rpc.extended_operation.as_str() {
            "EXOP_REPL_SECRETS" => "the secrets of one account",
            "EXOP_REPL_OBJ" => "one object",
            _ => "the directory",
        };
        let outcome = if seen.succeeded() {
            "successfully "
        } else if seen.failed() {
            "unsuccessfully "
        } else {
            ""
        };
        let actor = match caller(seen, context) {
            Some((domain, name)) if seen.account_name().is_empty() => {
                format!("{domain}\\{name} on {}", crate::finding::source_text(seen))
            }
            _ => actor_text(seen),
        };
        let description = format!(
            "{actor} {outcome}requested replication of {what} ({operation}) from {}, which only domain controllers do",
            destination_text(seen),
        );
        let mut finding = Finding::on(
            &DCSYNC,
            source_key(seen),
            seen,
            format!("drsuapi {operation}"),
        )
        .describe(description)
        .entity(destination(seen, Role::DomainController))
        .relied_on(verdict.basis)
        .weighed_by_resolution(seen);
        if !rpc.naming_context.is_empty() {
            finding = finding.detail("naming_context", rpc.naming_context.clone());
        }
        if !rpc.extended_operation.is_empty() {
            finding = finding.detail("extended_operation", rpc.extended_operation.clone());
        }
        if let Some((domain, name)) = caller(seen, context) {
            finding = finding.entity(crate::finding::account_entity(
                Role::SourceAccount,
                &domain,
                &name,
                context.knowledge.directory(),
            ));
        }
        if verdict.source == Source::Assumed {
            finding = finding.confidence(Confidence::MediumConfidence);
        }
        context.raise(finding);
    }
}

/// The account calling: the activity's own, else the one that authenticated its connection.
fn caller(seen: &Observed<'_>, context: &Context<'_>) -> Option<(String, String)> {
    if let Some(account) = &seen.activity.account
        && !account.name.is_empty()
    {
        return Some((account.domain.clone(), account.name.clone()));
    }
    context
        .knowledge
        .flow_account(seen)
        .map(|account| (account.domain.clone(), account.name.clone()))
}

#[cfg(test)]
mod tests {
    use dcwatch_entity::Directory;
    use dcwatch_proto::v1::{
        KerberosActivity, activity::Body, alert::Confidence, kerberos_activity, outcome::Status,
    };

    use crate::{
        Config,
        detectors::testing::{
            activity, computer, directory, rpc_request, run, summary, with_account, with_outcome,
            with_source_computer,
        },
    };

    const CLIENT: &str = "10.98.0.2:50000";
    const DC: &str = "10.98.0.1:49160";

    fn get_nc_changes(offset: i64, src: &str) -> dcwatch_proto::v1::Activity {
        with_outcome(
            activity(
                offset,
                src,
                DC,
                Body::Dcerpc(rpc_request("drsuapi", 3, "DsGetNCChanges")),
            ),
            Status::Success,
            0,
        )
    }

    #[test]
    fn a_workstation_replicating_the_directory_is_dcsync() {
        let alerts = run(None, Directory::default(), &[get_nc_changes(0, CLIENT)]);
        assert_eq!(
            summary(&alerts),
            [("dcsync".into(), "src:10.98.0.2".into(), 1)]
        );
        let alert = &alerts[0];
        assert_eq!(
            (alert.external_id, alert.class.as_str()),
            (2006, "DirectoryServicesReplicationSecurityAlert")
        );
        assert!(alert.description.contains("10.98.0.2 successfully requested replication of the directory (DsGetNCChanges) from 10.98.0.1"), "{}", alert.description);
        // No directory and no DC list: the judgement rests on the traffic alone.
        assert_eq!(alert.confidence(), Confidence::MediumConfidence);
        assert!(
            alert
                .relied_on
                .iter()
                .any(|basis| basis.contains("never answered as a KDC")),
            "{:?}",
            alert.relied_on
        );
    }

    #[test]
    fn the_account_and_a_low_certainty_name_are_in_the_alert() {
        let request = with_source_computer(
            with_account(get_nc_changes(0, CLIENT), "LAB", "Administrator"),
            "WS01",
            dcwatch_proto::v1::Certainty::Low,
        );
        let config = Config {
            dc_addresses: vec!["10.98.0.1".parse().expect("an address")],
            ..Config::test_mode()
        };
        let alerts = run(Some(config), Directory::default(), &[request]);
        let alert = &alerts[0];
        assert!(
            alert
                .description
                .starts_with("LAB\\Administrator on WS01 (10.98.0.2) successfully requested"),
            "{}",
            alert.description
        );
        assert!(
            alert
                .entities
                .iter()
                .any(|entity| entity.name == "LAB\\Administrator")
        );
        // A configured DC list makes the judgement firm; the name's low certainty weakens it.
        assert_eq!(alert.confidence(), Confidence::MediumConfidence);
        assert!(
            alert
                .relied_on
                .iter()
                .any(|basis| basis.contains("WS01 by NTLM_WORKSTATION, LOW certainty")),
            "{:?}",
            alert.relied_on
        );
    }

    #[test]
    fn the_caller_is_the_account_that_authenticated_the_connection() {
        // secretsdump binds DRSUAPI with NTLM: the user is in the bind's AUTHENTICATE, not in
        // the requests that follow on the same connection.
        let authenticate = with_account(
            activity(
                0,
                CLIENT,
                DC,
                Body::Ntlm(dcwatch_proto::v1::NtlmActivity {
                    r#type: dcwatch_proto::v1::ntlm_activity::Type::Authenticate.into(),
                    ..Default::default()
                }),
            ),
            "LAB",
            "Administrator",
        );
        let other_connection = get_nc_changes(200, "10.98.0.2:50001");
        let alerts = run(
            None,
            Directory::default(),
            &[authenticate, other_connection, get_nc_changes(500, CLIENT)],
        );
        assert_eq!(alerts.len(), 1);
        let accounts: Vec<&str> = alerts[0]
            .entities
            .iter()
            .filter(|entity| entity.role() == dcwatch_proto::v1::alert_entity::Role::SourceAccount)
            .map(|entity| entity.name.as_str())
            .collect();
        assert_eq!(accounts, ["LAB\\Administrator"]);
        assert!(
            alerts[0]
                .description
                .starts_with("LAB\\Administrator on 10.98.0.2"),
            "{}",
            alerts[0].description
        );
    }

    #[test]
    fn repeated_requests_update_the_one_alert() {
        let alerts = run(
            None,
            Directory::default(),
            &[
                get_nc_changes(0, CLIENT),
                get_nc_changes(1_000, CLIENT),
                get_nc_changes(2_000, CLIENT),
            ],
        );
        assert_eq!(
            summary(&alerts),
            [("dcsync".into(), "src:10.98.0.2".into(), 3)]
        );
    }

    #[test]
    fn a_configured_dc_replicating_is_not_dcsync() {
        let config = Config {
            dc_addresses: vec![
                "10.98.0.3".parse().expect("an address"),
                "10.98.0.1".parse().expect("an address"),
            ],
            ..Config::test_mode()
        };
        assert!(
            run(
                Some(config),
                Directory::default(),
                &[get_nc_changes(0, "10.98.0.3:50000")]
            )
            .is_empty()
        );
    }

    #[test]
    fn a_dc_the_traffic_shows_answering_as_a_kdc_is_not_dcsync() {
        let as_rep = activity(
            0,
            "10.98.0.3:88",
            "10.98.0.9:40000",
            Body::Kerberos(KerberosActivity {
                r#type: kerberos_activity::Type::AsRep.into(),
                ..KerberosActivity::default()
            }),
        );
        assert!(
            run(
                None,
                Directory::default(),
                &[as_rep, get_nc_changes(1_000, "10.98.0.3:50000")]
            )
            .is_empty()
        );
    }

    #[test]
    fn a_dc_name_the_client_claims_does_not_make_it_a_dc() {
        // secretsdump with DC01$'s hash from a workstation: NTLM's workstation field says DC01,
        // a name the client chooses (LOW certainty), while its address is no DC's.
        let lab = || {
            directory(
                vec![
                    computer("DC01", 1000, 0x2000),
                    computer("WS01", 1200, 0x1000),
                ],
                &[],
            )
        };
        let claimed = with_source_computer(
            get_nc_changes(0, "10.98.0.66:50000"),
            "DC01",
            dcwatch_proto::v1::Certainty::Low,
        );
        assert_eq!(
            summary(&run(None, lab(), &[claimed])),
            [("dcsync".into(), "src:10.98.0.66".into(), 1)]
        );
        // The same DC on an address the directory does not list, named with high certainty
        // (a second interface): a DC replicating, not DCSync.
        let mut vouched = with_source_computer(
            get_nc_changes(0, "10.98.0.3:50000"),
            "dc01.lab.example",
            dcwatch_proto::v1::Certainty::High,
        );
        if let Some(computer) = vouched.source_computer.as_mut() {
            computer.method = dcwatch_proto::v1::ResolutionMethod::ReverseDns.into();
        }
        assert!(run(None, lab(), &[vouched]).is_empty());
    }

    #[test]
    fn other_drsuapi_calls_are_not_dcsync() {
        let bind = activity(
            0,
            CLIENT,
            DC,
            Body::Dcerpc(rpc_request("drsuapi", 0, "DsBind")),
        );
        let crack = activity(
            0,
            CLIENT,
            DC,
            Body::Dcerpc(rpc_request("drsuapi", 12, "DsCrackNames")),
        );
        assert!(run(None, Directory::default(), &[bind, crack]).is_empty());
    }
}
