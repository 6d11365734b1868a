//! DCShadow (MDI 2028, 2029): a computer registers itself as a domain controller (an nTDSDSA
//! object, the replication SPN `E3514235-4B06-11D1-AB04-00C04FC2DCD2/...`) and pushes changes by
//! making a real DC replicate from it. MDI sees it with ETW on the DC; on the wire it shows as:
//! - DsAddEntry (DRSUAPI 17) or DsReplicaAdd (5) sent by a computer that is not a DC (2028 for
//!   the registration, 2029 for the replication link);
//! - a DC pulling changes (DsGetNCChanges) from a computer that is not a DC (2029);
//! - an LDAP add of an nTDSDSA object, or of the replication SPN to a computer that is not a DC
//!   (2028).
//!
//! A DC newly promoted, not yet known as one, is the false positive (MDI: the same).

use dcwatch_proto::v1::{
    activity::Body, alert::Confidence, alert_entity::Role, dce_rpc_activity, ldap_activity,
};

use super::{
    Context, Detector, Interface, Kinds,
    target::{clip, with_account},
};
use crate::{
    catalogue::{DCSHADOW_PROMOTION, DCSHADOW_REPLICATION, Kind},
    finding::{
        Finding, address_key, destination, destination_text, source_key, source_text,
        vouched_destination_name, vouched_source_name,
    },
    knowledge::Source,
    observed::Observed,
};

/// DRSUAPI opnums (MS-DRSR 4.1).
const DS_GET_NC_CHANGES: u32 = 3;
const DS_REPLICA_ADD: u32 = 5;
const DS_ADD_ENTRY: u32 = 17;
/// The directory replication service's SPN class (MS-DRSR 2.2.3.2), a DC's GUID after it.
const REPLICATION_SPN: &str = "e3514235-4b06-11d1-ab04-00c04fc2dcd2/";

#[derive(Debug)]
pub(super) struct Dcshadow;

impl Detector for Dcshadow {
    fn kinds(&self) -> Kinds {
        Kinds::requests(Interface::Drsuapi)
            | Kinds::ldap(ldap_activity::Type::Add)
            | Kinds::ldap(ldap_activity::Type::Modify)
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        match seen.body() {
            Some(Body::Dcerpc(rpc))
                if rpc.r#type == dce_rpc_activity::Type::Request as i32
                    && rpc.interface_name == "drsuapi" =>
            {
                match rpc.opnum {
                    DS_ADD_ENTRY | DS_REPLICA_ADD => self.rogue_request(
                        seen,
                        context,
                        rpc.opnum,
                        &rpc.source_dsa,
                        &rpc.object_classes,
                    ),
                    DS_GET_NC_CHANGES => self.pull_from_rogue(seen, context),
                    _ => {}
                }
            }
            Some(Body::Ldap(ldap))
                if matches!(
                    ldap_activity::Type::try_from(ldap.r#type),
                    Ok(ldap_activity::Type::Add | ldap_activity::Type::Modify)
                ) && !(ldap.answered && ldap.result_code != 0) =>
            {
                let registers_dsa = ldap.changes.iter().any(|change| {
                    change.attribute.eq_ignore_ascii_case("objectClass")
                        && change
                            .values
                            .iter()
                            .any(|value| value.eq_ignore_ascii_case("nTDSDSA"))
                });
                let replication_spn = ldap.changes.iter().find_map(|change| {
                    (change
                        .attribute
                        .eq_ignore_ascii_case("servicePrincipalName")
                        && change.operation != "delete")
                        .then(|| {
                            change
                                .values
                                .iter()
                                .find(|value| value.to_lowercase().starts_with(REPLICATION_SPN))
                        })
                        .flatten()
                });
                if !registers_dsa && replication_spn.is_none() {
                    return;
                }
                // The object changed: a DC's own computer object may carry the SPN.
                let directory = context.knowledge.directory();
                if let Some(object) = directory.by_dn(&ldap.dn)
                    && object.is_domain_controller()
                {
                    return;
                }
                let what = match replication_spn {
                    Some(spn) => format!(
                        "added the replication SPN {} to {}",
                        clip(spn),
                        clip(&ldap.dn)
                    ),
                    None => format!(
                        "added a domain controller's nTDSDSA object {}",
                        clip(&ldap.dn)
                    ),
                };
                let description = format!(
                    "{} {what} on {}, registering a computer that is not a domain controller as one",
                    source_text(seen),
                    destination_text(seen)
                );
                let finding = Finding::on(
                    &DCSHADOW_PROMOTION,
                    source_key(seen),
                    seen,
                    "ldap registration of a DC",
                )
                .describe(description)
                .detail("object", ldap.dn.clone())
                .entity(destination(seen, Role::DomainController));
                context.raise(with_account(finding, seen, context));
            }
            _ => {}
        }
    }
}

impl Dcshadow {
    fn rogue_request(
        &self,
        seen: &Observed<'_>,
        context: &mut Context<'_>,
        opnum: u32,
        source_dsa: &str,
        classes: &[String],
    ) {
        // The basis is written only for what is not a DC: nearly all who ask are DCs.
        let answer = context
            .knowledge
            .dc_answer(seen.src, vouched_source_name(seen));
        if answer.yes() {
            return;
        }
        let verdict = answer.verdict();
        let (kind, what): (&'static Kind, String) = if opnum == DS_ADD_ENTRY {
            let classes = if classes.is_empty() {
                String::new()
            } else {
                format!(" ({})", clip(&classes.join(", ")))
            };
            (
                &DCSHADOW_PROMOTION,
                format!("added directory objects with DsAddEntry{classes}"),
            )
        } else {
            let source = if source_dsa.is_empty() {
                String::new()
            } else {
                format!(" from {}", clip(source_dsa))
            };
            (
                &DCSHADOW_REPLICATION,
                format!("asked for a replication link with DsReplicaAdd{source}"),
            )
        };
        let description = format!(
            "{} {what} on {}, which only domain controllers do",
            source_text(seen),
            destination_text(seen)
        );
        let mut finding = Finding::on(
            kind,
            source_key(seen),
            seen,
            format!("drsuapi opnum {opnum}"),
        )
        .describe(description)
        .entity(destination(seen, Role::DomainController))
        .relied_on(verdict.basis)
        .weighed_by_resolution(seen);
        if verdict.source == Source::Assumed {
            finding = finding.confidence(Confidence::MediumConfidence);
        }
        context.raise(with_account(finding, seen, context));
    }

    /// A DC replicating from its peer: fine when the peer is a DC, DCShadow when it is not.
    fn pull_from_rogue(&self, seen: &Observed<'_>, context: &mut Context<'_>) {
        let knowledge = context.knowledge;
        let puller = knowledge.dc_answer(seen.src, vouched_source_name(seen));
        // Only a DC known as one counts as the puller: an unknown puller is DCSync's case.
        if !puller.yes() || puller.source() == Source::Assumed {
            return;
        }
        let served = knowledge.dc_answer(seen.dst, vouched_destination_name(seen));
        if served.yes() || served.source() == Source::Assumed {
            return;
        }
        let (puller, served) = (puller.verdict(), served.verdict());
        let description = format!(
            "The domain controller {} replicated changes from {}, which is not a domain controller",
            source_text(seen),
            destination_text(seen)
        );
        let rogue_key = address_key(seen.dst);
        let finding = Finding::on(
            &DCSHADOW_REPLICATION,
            rogue_key,
            seen,
            "drsuapi DsGetNCChanges from a non-DC",
        )
        .describe(description)
        .entity(destination(seen, Role::SourceComputer))
        .relied_on(puller.basis)
        .relied_on(served.basis);
        context.raise(finding);
    }
}

#[cfg(test)]
mod tests {
    use dcwatch_entity::Directory;
    use dcwatch_proto::v1::{
        DceRpcActivity, LdapActivity, activity::Body, ldap_activity, ldap_activity::Change,
    };

    use crate::{
        Config,
        detectors::testing::{activity, rpc_request, run, summary},
    };

    const DC: &str = "10.98.0.1";
    const ROGUE: &str = "10.98.0.66";

    fn config() -> Config {
        Config {
            dc_addresses: vec![
                DC.parse().expect("an address"),
                "10.98.0.3".parse().expect("an address"),
            ],
            ..Config::test_mode()
        }
    }

    #[test]
    fn a_workstation_adding_entries_and_a_link_is_a_rogue_dc() {
        let add_entry = activity(
            0,
            &format!("{ROGUE}:50000"),
            &format!("{DC}:49160"),
            Body::Dcerpc(rpc_request("drsuapi", 17, "DsAddEntry")),
        );
        let replica_add = activity(
            1_000,
            &format!("{ROGUE}:50000"),
            &format!("{DC}:49160"),
            Body::Dcerpc(rpc_request("drsuapi", 5, "DsReplicaAdd")),
        );
        let alerts = run(
            Some(config()),
            Directory::default(),
            &[add_entry, replica_add],
        );
        assert_eq!(
            summary(&alerts),
            [("dcshadow".into(), "src:10.98.0.66".into(), 2)]
        );
        // The registration came first; the link is the graver... both are High: the first stays.
        assert_eq!(alerts[0].external_id, 2028);
    }

    #[test]
    fn a_registration_names_the_classes_it_added() {
        // The fields the sensor fills from a decoded DsAddEntry: the objectClass values of
        // parsers' ADD_ENTRY_V2 stub (dcerpc/stub/tests.rs), as the sensor writes them.
        let add_entry = activity(
            0,
            &format!("{ROGUE}:50000"),
            &format!("{DC}:49160"),
            Body::Dcerpc(DceRpcActivity {
                object_classes: vec![
                    "nTDSDSA".into(),
                    "1.3.6.1.1.1.2.10".into(),
                    "0x80000abc".into(),
                ],
                ..rpc_request("drsuapi", 17, "DsAddEntry")
            }),
        );
        let alerts = run(Some(config()), Directory::default(), &[add_entry]);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].external_id, 2028);
        assert!(
            alerts[0].description.contains(
                "added directory objects with DsAddEntry (nTDSDSA, 1.3.6.1.1.1.2.10, 0x80000abc)"
            ),
            "{}",
            alerts[0].description
        );
    }

    #[test]
    fn a_dc_pulling_changes_from_a_non_dc_is_2029() {
        let pull = activity(
            0,
            &format!("{DC}:50000"),
            &format!("{ROGUE}:49160"),
            Body::Dcerpc(rpc_request("drsuapi", 3, "DsGetNCChanges")),
        );
        let mut config = config();
        config.nat_subnets.clear();
        let alerts = run(Some(config), Directory::default(), &[pull]);
        assert_eq!(
            summary(&alerts),
            [("dcshadow".into(), "src:10.98.0.66".into(), 1)]
        );
        assert_eq!(alerts[0].external_id, 2029);
    }

    #[test]
    fn dcs_replicating_with_each_other_are_not() {
        let pull = activity(
            0,
            &format!("{DC}:50000"),
            "10.98.0.3:49160",
            Body::Dcerpc(rpc_request("drsuapi", 3, "DsGetNCChanges")),
        );
        let link = activity(
            0,
            "10.98.0.3:50000",
            &format!("{DC}:49160"),
            Body::Dcerpc(rpc_request("drsuapi", 5, "DsReplicaAdd")),
        );
        assert!(run(Some(config()), Directory::default(), &[pull, link]).is_empty());
    }

    #[test]
    fn an_ldap_registration_of_the_replication_spn_is_a_promotion() {
        let modify = |spn: &str| {
            activity(
                0,
                &format!("{ROGUE}:40000"),
                &format!("{DC}:389"),
                Body::Ldap(LdapActivity {
                    r#type: ldap_activity::Type::Modify.into(),
                    dn: "CN=WS66,CN=Computers,DC=lab,DC=example".into(),
                    changes: vec![Change {
                        operation: "add".into(),
                        attribute: "servicePrincipalName".into(),
                        values: vec![spn.into()],
                        value_count: 1,
                    }],
                    ..LdapActivity::default()
                }),
            )
        };
        let alerts = run(
            Some(config()),
            Directory::default(),
            &[modify(
                "E3514235-4B06-11D1-AB04-00C04FC2DCD2/8b7e.../lab.example",
            )],
        );
        assert_eq!(
            summary(&alerts),
            [("dcshadow".into(), "src:10.98.0.66".into(), 1)]
        );
        assert!(
            run(
                Some(config()),
                Directory::default(),
                &[modify("HOST/ws66.lab.example")]
            )
            .is_empty()
        );
    }
}
