//! Additions to sensitive groups (MDI 2024), and membership changes of honeytokens (2428): an
//! attacker who holds an admin's credentials makes themselves permanent by joining Domain
//! Admins or Administrators. Evidence: events 4728, 4732 and 4756 (a member added to a global,
//! local or universal security group) forwarded from the DCs, or an LDAP modify of a group's
//! `member` seen on the wire. Part I raises every addition to a sensitive group; Part II's
//! learning (4 weeks per DC) will keep only those abnormal for the acting user. The alert is
//! about the acting account, as MDI's ("user1 has uncharacteristically modified sensitive group
//! memberships").

use dcwatch_entity::{TagName, directory::name_of, sensitive};
use dcwatch_proto::v1::{
    EventAccount, activity::Body, alert::Confidence, alert_entity::Role, ldap_activity,
};

use super::{Context, Detector, Kinds, target::clip};
use crate::{
    catalogue::{HONEYTOKEN_GROUP_CHANGE, Kind, SENSITIVE_GROUP_CHANGE},
    finding::{Finding, account_entity, account_key, source_text},
    learning::Behaviour,
    observed::Observed,
    profiling::dc_key,
};

/// Events of a member added to a global, local and universal security group.
const MEMBER_ADDED: [u32; 3] = [4728, 4732, 4756];
/// Events of a member removed from them (honeytoken changes only).
const MEMBER_REMOVED: [u32; 3] = [4729, 4733, 4757];

#[derive(Debug)]
pub(super) struct SensitiveGroupChange;

/// A group as the evidence names it.
struct Group {
    name: String,
    sid: String,
    dn: String,
}

impl Detector for SensitiveGroupChange {
    fn kinds(&self) -> Kinds {
        Kinds::WINDOWS_EVENT | Kinds::ldap(ldap_activity::Type::Modify)
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        match seen.body() {
            Some(Body::WindowsEvent(event)) => {
                let added = MEMBER_ADDED.contains(&event.event_id);
                if !added && !MEMBER_REMOVED.contains(&event.event_id) {
                    return;
                }
                let Some(group) = event.group.as_ref() else {
                    return;
                };
                let group = Group {
                    name: group.name.clone(),
                    sid: group.sid.clone(),
                    dn: String::new(),
                };
                let member = event.member.as_ref().map(account_text).unwrap_or_default();
                let actor = event.subject.as_ref().map(account_text).unwrap_or_default();
                let on = if event.computer.is_empty() {
                    String::new()
                } else {
                    format!(" on {}", event.computer)
                };
                judge(
                    seen,
                    context,
                    &group,
                    &member,
                    &actor,
                    added,
                    &on,
                    "GroupMembershipChangeEvent",
                );
            }
            Some(Body::Ldap(ldap)) if ldap.r#type == ldap_activity::Type::Modify as i32 => {
                // An unanswered or refused modify changed nothing.
                if ldap.answered && ldap.result_code != 0 {
                    return;
                }
                for change in ldap
                    .changes
                    .iter()
                    .filter(|change| change.attribute.eq_ignore_ascii_case("member"))
                {
                    let added = matches!(change.operation.as_str(), "add" | "replace");
                    let group = Group {
                        name: first_rdn(&ldap.dn),
                        sid: String::new(),
                        dn: ldap.dn.clone(),
                    };
                    let members: Vec<&str> = change.values.iter().map(String::as_str).collect();
                    let member = if members.is_empty() {
                        format!("{} member(s)", change.value_count)
                    } else {
                        members
                            .iter()
                            .map(|dn| first_rdn(dn))
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    let actor = context.knowledge.flow_account(seen).map_or_else(
                        || seen.account_text(),
                        |account| join(&account.domain, &account.name),
                    );
                    let on = format!(" over LDAP from {}", source_text(seen));
                    judge(seen, context, &group, &member, &actor, added, &on, "Ldap");
                }
            }
            _ => {}
        }
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "one call site per evidence kind, each naming every piece"
)]
fn judge(
    seen: &Observed<'_>,
    context: &mut Context<'_>,
    group: &Group,
    member: &str,
    actor: &str,
    added: bool,
    on: &str,
    app: &'static str,
) {
    let knowledge = context.knowledge;
    let directory = knowledge.directory();
    let object = if group.dn.is_empty() {
        directory
            .by_sid(&group.sid)
            .or_else(|| directory.account(&group.name))
    } else {
        directory.by_dn(&group.dn)
    };
    let honeytoken = object
        .filter(|object| directory.has_tag(object, TagName::Honeytoken))
        .map(|object| format!("directory: {} is a honeytoken", name_of(object)))
        .or_else(|| {
            knowledge
                .honeytoken(&group.name, "")
                .map(|why| format!("{}: {why}", group.name))
        })
        .or_else(|| {
            knowledge
                .honeytoken(member, "")
                .map(|why| format!("{member}: {why}"))
        });
    let sensitive = object
        .and_then(|object| {
            directory
                .tags(object)
                .iter()
                .find(|tag| tag.name == TagName::Sensitive)
                .map(|tag| format!("directory: {}", tag.reason))
        })
        .or_else(|| {
            let by_sid = (!group.sid.is_empty())
                .then(|| sensitive::group_by_sid_or_rid(Some(&group.sid), None))
                .flatten();
            by_sid
                .or_else(|| well_known_name(&group.name))
                .map(|name| format!("{name} is a sensitive group (well-known SID or name)"))
        });
    let (kind, basis): (&'static Kind, String) = match (honeytoken, sensitive) {
        (Some(basis), _) => (&HONEYTOKEN_GROUP_CHANGE, basis),
        (None, Some(basis)) if added => (&SENSITIVE_GROUP_CHANGE, basis),
        _ => return,
    };
    let group_name = if group.name.is_empty() {
        group.sid.as_str()
    } else {
        group.name.as_str()
    };
    let who = if actor.is_empty() {
        "An unknown account".to_owned()
    } else {
        clip(actor)
    };
    let verb = if added { "added" } else { "removed" };
    let preposition = if added { "to" } else { "from" };
    let description = format!(
        "{who} {verb} {} {preposition} the group {}{on}",
        clip(member),
        clip(group_name)
    );
    let key = if actor.is_empty() {
        format!("group:{}", group_name.to_lowercase())
    } else {
        account_key(actor)
    };
    let mut finding = Finding::on(
        kind,
        key,
        seen,
        format!("{verb} {member} {preposition} {group_name}"),
    )
    .describe(description)
    .detail("group", group_name)
    .detail("member", member)
    .relied_on(basis)
    .app(app);
    if app == "GroupMembershipChangeEvent" {
        finding = finding.without_source_computer();
    }
    if !actor.is_empty() {
        let (domain, name) = actor.split_once('\\').unwrap_or(("", actor));
        finding = finding.entity(account_entity(Role::SourceAccount, domain, name, directory));
    }
    finding = finding.entity(account_entity(Role::Group, "", group_name, directory));
    if object.is_none() && !knowledge.has_directory() {
        finding = finding.confidence(Confidence::MediumConfidence);
    }
    // Part II (MDI: 4 weeks per DC): while the DC learns, who changes its sensitive groups is
    // learned; after, only additions by an actor it never saw do so alert (at threshold high).
    // Honeytoken group changes stay deterministic.
    if std::ptr::eq(kind, &SENSITIVE_GROUP_CHANGE)
        && !actor.is_empty()
        && let Some(dc) = dc_of(seen)
    {
        finding = finding.behaviour(
            Behaviour::new(
                dc.clone(),
                dc.clone(),
                dc.split_once(':')
                    .map_or(dc.as_str(), |(_, name)| name)
                    .to_owned(),
                format!("seen {} add members to sensitive groups", clip(actor)),
            )
            .item(SENSITIVE_GROUP_CHANGE.type_name, account_key_text(actor)),
        );
    }
    context.raise(finding);
}

/// The DC a group change happened on: the computer a Windows event names, else the LDAP
/// server the modify went to.
fn dc_of(seen: &Observed<'_>) -> Option<String> {
    match seen.body() {
        Some(Body::WindowsEvent(event)) if !event.computer.is_empty() => {
            Some(dc_key(&event.computer))
        }
        Some(Body::WindowsEvent(_)) => None,
        _ => seen.dst.map(|dst| dc_key(&dst.to_string())),
    }
}

fn account_key_text(actor: &str) -> String {
    crate::knowledge::account_key(actor)
}

/// The sensitive groups with no well-known RID, and the well-known ones by their English names,
/// for evidence that names a group without its SID.
fn well_known_name(name: &str) -> Option<&'static str> {
    const NAMES: [&str; 18] = [
        "Domain Admins",
        "Enterprise Admins",
        "Schema Admins",
        "Administrators",
        "Account Operators",
        "Backup Operators",
        "Server Operators",
        "Print Operators",
        "Replicator",
        "Domain Controllers",
        "Group Policy Creator Owners",
        "Read-only Domain Controllers",
        "Enterprise Read-only Domain Controllers",
        "Key Admins",
        "Enterprise Key Admins",
        "DnsAdmins",
        "Microsoft Exchange Servers",
        "Network Configuration Operators",
    ];
    let bare = name.rsplit('\\').next().unwrap_or(name);
    NAMES
        .iter()
        .copied()
        .find(|known| known.eq_ignore_ascii_case(bare))
}

fn account_text(account: &EventAccount) -> String {
    join(&account.domain, &account.name)
}

fn join(domain: &str, name: &str) -> String {
    match (domain.is_empty(), name.is_empty()) {
        (_, true) => String::new(),
        (true, false) => name.to_owned(),
        (false, false) => format!("{domain}\\{name}"),
    }
}

/// `CN=Domain Admins,CN=Users,DC=lab` → `Domain Admins`.
fn first_rdn(dn: &str) -> String {
    dn.split(',')
        .next()
        .and_then(|rdn| rdn.split_once('='))
        .map_or_else(|| dn.to_owned(), |(_, value)| value.to_owned())
}

#[cfg(test)]
mod tests {
    use dcwatch_entity::{Directory, Domain, Object, ObjectKind, TagConfig};
    use dcwatch_proto::v1::{
        EventAccount, LdapActivity, WindowsEventActivity, activity::Body, ldap_activity,
        ldap_activity::Change,
    };

    use crate::{
        Config,
        detectors::{
            builders::event,
            testing::{activity, run, summary},
        },
    };

    fn account(domain: &str, name: &str, sid: &str) -> Option<EventAccount> {
        Some(EventAccount {
            name: name.into(),
            domain: domain.into(),
            sid: sid.into(),
        })
    }

    fn added(
        offset: i64,
        id: u32,
        group: &str,
        group_sid: &str,
        member: &str,
    ) -> dcwatch_proto::v1::Activity {
        event(
            offset,
            "10.98.0.1:514",
            WindowsEventActivity {
                event_id: id,
                computer: "DC1.lab.example".into(),
                subject: account("LAB", "alice", "S-1-5-21-1-2-3-1104"),
                member: account("LAB", member, ""),
                group: account("LAB", group, group_sid),
                ..WindowsEventActivity::default()
            },
        )
    }

    #[test]
    fn joining_domain_admins_is_raised_against_the_acting_user() {
        let alerts = run(
            None,
            Directory::default(),
            &[added(
                0,
                4728,
                "Domain Admins",
                "S-1-5-21-1-2-3-512",
                "mallory",
            )],
        );
        assert_eq!(
            summary(&alerts),
            [("sensitive_group_change".into(), "account:alice".into(), 1)]
        );
        assert_eq!(alerts[0].external_id, 2024);
        assert_eq!(
            alerts[0].description,
            "LAB\\alice added LAB\\mallory to the group Domain Admins on DC1.lab.example"
        );
    }

    #[test]
    fn every_sensitive_kind_of_group_counts_and_repeats_update() {
        let alerts = run(
            None,
            Directory::default(),
            &[
                added(0, 4732, "Administrators", "S-1-5-32-544", "mallory"),
                added(
                    1_000,
                    4756,
                    "Enterprise Admins",
                    "S-1-5-21-1-2-3-519",
                    "mallory",
                ),
                // No SID in the event: the name is enough for a well-known group.
                added(2_000, 4728, "Schema Admins", "", "mallory"),
            ],
        );
        assert_eq!(
            summary(&alerts),
            [("sensitive_group_change".into(), "account:alice".into(), 3)]
        );
    }

    #[test]
    fn ordinary_groups_and_removals_are_not_raised() {
        let alerts = run(
            None,
            Directory::default(),
            &[
                added(0, 4728, "Sales", "S-1-5-21-1-2-3-1500", "bob"),
                added(0, 4729, "Domain Admins", "S-1-5-21-1-2-3-512", "bob"),
                added(0, 4726, "Domain Admins", "S-1-5-21-1-2-3-512", "bob"),
            ],
        );
        assert!(alerts.is_empty(), "{alerts:?}");
    }

    fn lab_directory() -> Directory {
        let group = |name: &str, rid: u32, member_of: &[&str]| Object {
            kind: ObjectKind::Group,
            domain: "lab.example".into(),
            dn: format!("CN={name},CN=Users,DC=lab,DC=example"),
            sid: format!("S-1-5-21-1-2-3-{rid}"),
            sam_account_name: name.into(),
            member_of: member_of.iter().map(|dn| (*dn).to_owned()).collect(),
            ..Object::default()
        };
        Directory::new(
            vec![Domain {
                name: "lab.example".into(),
                netbios_name: "LAB".into(),
                ..Domain::default()
            }],
            vec![
                group("Domain Admins", 512, &[]),
                group(
                    "IT-Admins",
                    1300,
                    &["CN=Domain Admins,CN=Users,DC=lab,DC=example"],
                ),
                group("Honey-Group", 1301, &[]),
            ],
            &TagConfig {
                honeytokens: vec!["Honey-Group".into()],
                sensitive: Vec::new(),
            },
            0,
        )
    }

    #[test]
    fn a_group_nested_in_domain_admins_is_sensitive_by_the_directory() {
        let alerts = run(
            None,
            lab_directory(),
            &[added(
                0,
                4728,
                "IT-Admins",
                "S-1-5-21-1-2-3-1300",
                "mallory",
            )],
        );
        assert_eq!(alerts.len(), 1);
        assert!(
            alerts[0]
                .relied_on
                .iter()
                .any(|basis| basis == "directory: member of Domain Admins"),
            "{:?}",
            alerts[0].relied_on
        );
        // Without the directory the same group is an ordinary one.
        assert!(
            run(
                None,
                Directory::default(),
                &[added(
                    0,
                    4728,
                    "IT-Admins",
                    "S-1-5-21-1-2-3-1300",
                    "mallory"
                )]
            )
            .is_empty()
        );
    }

    #[test]
    fn any_change_to_a_honeytoken_group_is_2428() {
        let alerts = run(
            None,
            lab_directory(),
            &[added(0, 4729, "Honey-Group", "S-1-5-21-1-2-3-1301", "bob")],
        );
        assert_eq!(alerts.len(), 1);
        assert_eq!(
            (alerts[0].external_id, alerts[0].severity()),
            (2428, dcwatch_proto::v1::alert::Severity::High)
        );
    }

    #[test]
    fn an_ldap_modify_adding_a_member_is_seen_on_the_wire() {
        let modify = |operation: &str, result: u32| {
            activity(
                0,
                "10.98.0.2:40000",
                "10.98.0.1:389",
                Body::Ldap(LdapActivity {
                    r#type: ldap_activity::Type::Modify.into(),
                    dn: "CN=Domain Admins,CN=Users,DC=lab,DC=example".into(),
                    answered: true,
                    result_code: result,
                    changes: vec![Change {
                        operation: operation.into(),
                        attribute: "member".into(),
                        values: vec!["CN=alice,CN=Users,DC=lab,DC=example".into()],
                        value_count: 1,
                    }],
                    ..LdapActivity::default()
                }),
            )
        };
        let alerts = run(
            Some(Config::test_mode()),
            Directory::default(),
            &[modify("add", 0)],
        );
        assert_eq!(alerts.len(), 1);
        assert!(
            alerts[0]
                .description
                .contains("added alice to the group Domain Admins over LDAP from 10.98.0.2"),
            "{}",
            alerts[0].description
        );
        // Refused (insufficient access) or a removal: nothing changed in a sensitive group.
        assert!(
            run(
                None,
                Directory::default(),
                &[modify("add", 50), modify("delete", 0)]
            )
            .is_empty()
        );
    }
}
