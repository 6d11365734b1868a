//! User and group membership reconnaissance over SAMR (MDI 2021): a computer that is not a DC
//! enumerating the domain's users, groups or aliases (`net user /domain`, BloodHound, enum4linux),
//! or looking up, opening or listing the members of a sensitive group or account (Domain Admins
//! RID 512, Administrators S-1-5-32-544, Administrator RID 500...). Every SAMR request is first
//! read as a `Query` (what was asked, of what); Part I judges a query by itself: an enumeration,
//! or anything about a sensitive object. Part II (MDI's learning, four weeks per DC): at
//! threshold high the computer's profile learns its queries while the DC learns, and only
//! (computer, query) pairs it never made alert after.
//!
//! Which objects are sensitive: the directory's tags when there is a directory (with the domain
//! SID SamrOpenDomain gave, a RID is a SID), honeytokens; else the well-known RIDs and names.

use std::{collections::BTreeSet, net::IpAddr};

use dcwatch_entity::{TagName, sensitive};
use dcwatch_proto::v1::{
    DceRpcActivity, activity::Body, alert::Confidence, alert_entity::Role, dce_rpc_activity,
};

use super::{
    Context, Detector, Interface, Kinds,
    target::{clip, listed, outcome_word, with_account},
};
use crate::{
    bounded::BoundedMap,
    catalogue::SAMR_RECON,
    finding::{
        Finding, actor_text, destination, destination_text, source_key, source_text,
        vouched_source_name,
    },
    knowledge::{Knowledge, Source},
    learning::{Behaviour, would_raise},
    observed::Observed,
    profiling::{computer_key, dc_key},
};

/// SAMR opnums (MS-SAMR 3.1.5).
const OPEN_DOMAIN: u32 = 7;
const ENUMERATE_GROUPS: u32 = 11;
const ENUMERATE_USERS: u32 = 13;
const ENUMERATE_ALIASES: u32 = 15;
const LOOKUP_NAMES: u32 = 17;
const LOOKUP_IDS: u32 = 18;
const OPEN_GROUP: u32 = 19;
const GET_MEMBERS_IN_GROUP: u32 = 25;
const OPEN_ALIAS: u32 = 27;
const GET_MEMBERS_IN_ALIAS: u32 = 33;
const OPEN_USER: u32 = 34;
/// SamrQueryDisplayInformation, 2 and 3: the same enumeration, by version.
const QUERY_DISPLAY_INFORMATION: [u32; 3] = [40, 48, 51];

/// Well-known RIDs of sensitive accounts (MS-DTYP 2.4.2.4): Administrator and krbtgt.
const SENSITIVE_USER_RIDS: [(u32, &str); 2] = [(500, "Administrator"), (502, "krbtgt")];
/// Names of sensitive groups and accounts, for name lookups without a directory.
const SENSITIVE_NAMES: [&str; 17] = [
    "administrator",
    "krbtgt",
    "administrators",
    "domain admins",
    "enterprise admins",
    "schema admins",
    "domain controllers",
    "account operators",
    "backup operators",
    "server operators",
    "print operators",
    "group policy creator owners",
    "key admins",
    "enterprise key admins",
    "dnsadmins",
    "read-only domain controllers",
    "enterprise read-only domain controllers",
];

/// Sources followed at once, and the queries listed per source.
pub(super) const MAX_SOURCES: usize = 50_000;
pub(super) const MAX_QUERIES_LISTED: usize = 20;
/// SAMR associations followed (the domain opened, the group or alias opened).
pub(super) const MAX_ASSOCIATIONS: usize = 16_384;

/// What one SAMR request asked: the unit MDI learns per (computer, query).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Query {
    /// An enumeration of the domain: "all users", "all groups"...
    Enumeration(&'static str),
    /// A lookup, open or member listing of one object, by what names it (a name, `RID 512`).
    Object {
        action: &'static str,
        object: String,
    },
}

impl Query {
    fn phrase(&self) -> String {
        match self {
            Self::Enumeration(what) => format!("enumerated {what}"),
            Self::Object { action, object } => format!("{action} {object}"),
        }
    }
}

/// A query, with why its object is sensitive when it is.
struct Judged {
    query: Query,
    sensitive: Option<String>,
}

#[derive(Debug, Default)]
struct Association {
    domain_sid: String,
    /// The group or alias opened last, and its sensitive name.
    opened: Option<(u32, Option<String>)>,
}

#[derive(Debug)]
pub(super) struct SamrRecon {
    sources: BoundedMap<Option<IpAddr>, BTreeSet<String>>,
    associations: BoundedMap<String, Association>,
}

impl Default for SamrRecon {
    fn default() -> Self {
        Self {
            sources: BoundedMap::new(MAX_SOURCES),
            associations: BoundedMap::new(MAX_ASSOCIATIONS),
        }
    }
}

fn association_key(seen: &Observed<'_>) -> String {
    if seen.activity.flow_id.is_empty() {
        format!(
            "{:?}:{}>{:?}:{}",
            seen.src, seen.src_port, seen.dst, seen.dst_port
        )
    } else {
        seen.activity.flow_id.clone()
    }
}

/// Why the object `rid` of the domain `domain_sid` is sensitive, when it is.
fn sensitive_rid(rid: u32, domain_sid: &str, group: bool, knowledge: &Knowledge) -> Option<String> {
    if !domain_sid.is_empty() {
        let sid = format!("{domain_sid}-{rid}");
        if let Some(object) = knowledge.directory().by_sid(&sid) {
            let directory = knowledge.directory();
            if let Some(tag) = directory
                .tags(object)
                .iter()
                .find(|tag| matches!(tag.name, TagName::Sensitive | TagName::Honeytoken))
            {
                return Some(format!(
                    "directory: {} is {} ({})",
                    object.sam_account_name,
                    tag.name.as_str(),
                    tag.reason
                ));
            }
            if let Some(found) = sensitive::group(object) {
                return Some(format!("directory: {} is a sensitive group", found.name));
            }
            return None;
        }
        if group && let Some(name) = sensitive::group_by_sid_or_rid(Some(&sid), None) {
            return Some(format!("well-known: {sid} is {name}"));
        }
    } else if group && let Some(name) = sensitive::group_by_sid_or_rid(None, Some(rid)) {
        return Some(format!("well-known: RID {rid} is {name}"));
    }
    if !group && let Some((_, name)) = SENSITIVE_USER_RIDS.iter().find(|(known, _)| *known == rid) {
        return Some(format!("well-known: RID {rid} is {name}"));
    }
    None
}

/// Why the account or group `name` is sensitive, when it is.
fn sensitive_name(name: &str, knowledge: &Knowledge) -> Option<String> {
    if let Some(reason) = knowledge.honeytoken(name, "") {
        return Some(format!("{} is a honeytoken ({reason})", clip(name)));
    }
    if let Some(reason) = knowledge.sensitive(name, "") {
        return Some(format!("directory: {} is sensitive ({reason})", clip(name)));
    }
    if let Some(object) = knowledge.account(name, "")
        && let Some(group) = sensitive::group(object)
    {
        return Some(format!("directory: {} is a sensitive group", group.name));
    }
    let key = name.trim().to_lowercase();
    let key = key.rsplit('\\').next().unwrap_or(&key);
    SENSITIVE_NAMES
        .contains(&key)
        .then(|| format!("well-known: {} is a sensitive name", clip(name)))
}

impl SamrRecon {
    /// Reads one request as a query, remembering what its association opened.
    fn judge(
        &mut self,
        seen: &Observed<'_>,
        rpc: &DceRpcActivity,
        knowledge: &Knowledge,
    ) -> Option<Judged> {
        let association =
            self.associations
                .touch(association_key(seen), seen.time, Association::default);
        let enumeration = |what| Judged {
            query: Query::Enumeration(what),
            sensitive: None,
        };
        match rpc.opnum {
            OPEN_DOMAIN => {
                association.domain_sid = rpc.domain_sid.clone();
                None
            }
            ENUMERATE_GROUPS => Some(enumeration("all groups")),
            ENUMERATE_USERS => Some(enumeration("all users")),
            ENUMERATE_ALIASES => Some(enumeration("all aliases (local groups)")),
            opnum if QUERY_DISPLAY_INFORMATION.contains(&opnum) => {
                Some(enumeration("the display information of accounts"))
            }
            LOOKUP_NAMES => {
                let by_name = rpc
                    .names
                    .iter()
                    .find_map(|name| sensitive_name(name, knowledge).map(|why| (clip(name), why)));
                let by_rid = || {
                    rpc.rids.iter().find_map(|&rid| {
                        sensitive_rid(rid, &association.domain_sid, true, knowledge)
                            .or_else(|| {
                                sensitive_rid(rid, &association.domain_sid, false, knowledge)
                            })
                            .map(|why| (format!("RID {rid}"), why))
                    })
                };
                let (object, why) = match by_name.or_else(by_rid) {
                    Some((object, why)) => (object, Some(why)),
                    None => (listed(rpc.names.iter().map(String::as_str), 5), None),
                };
                Some(Judged {
                    query: Query::Object {
                        action: "looked up",
                        object,
                    },
                    sensitive: why,
                })
            }
            LOOKUP_IDS => {
                let found = rpc.rids.iter().find_map(|&rid| {
                    sensitive_rid(rid, &association.domain_sid, true, knowledge)
                        .or_else(|| sensitive_rid(rid, &association.domain_sid, false, knowledge))
                        .map(|why| (rid, why))
                });
                Some(Judged {
                    query: Query::Object {
                        action: "looked up",
                        object: found.as_ref().map_or_else(
                            || format!("{} RIDs", rpc.rids.len()),
                            |(rid, _)| format!("RID {rid}"),
                        ),
                    },
                    sensitive: found.map(|(_, why)| why),
                })
            }
            OPEN_GROUP | OPEN_ALIAS | OPEN_USER => {
                let group = rpc.opnum != OPEN_USER;
                let why = sensitive_rid(rpc.rid, &association.domain_sid, group, knowledge);
                if group {
                    association.opened = Some((rpc.rid, why.clone()));
                }
                let action = match rpc.opnum {
                    OPEN_GROUP => "opened the group",
                    OPEN_ALIAS => "opened the alias",
                    _ => "opened the user",
                };
                Some(Judged {
                    query: Query::Object {
                        action,
                        object: format!("RID {}", rpc.rid),
                    },
                    sensitive: why,
                })
            }
            GET_MEMBERS_IN_GROUP | GET_MEMBERS_IN_ALIAS => {
                let (rid, why) = association.opened.clone()?;
                Some(Judged {
                    query: Query::Object {
                        action: "listed the members of",
                        object: format!("RID {rid} ({} members)", rpc.member_count),
                    },
                    sensitive: why,
                })
            }
            _ => None,
        }
    }
}

impl Detector for SamrRecon {
    fn kinds(&self) -> Kinds {
        Kinds::requests(Interface::Samr)
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        let Some(Body::Dcerpc(rpc)) = seen.body() else {
            return;
        };
        if rpc.r#type != dce_rpc_activity::Type::Request as i32 || rpc.interface_name != "samr" {
            return;
        }
        let Some(judged) = self.judge(seen, rpc, context.knowledge) else {
            return;
        };
        if matches!(judged.query, Query::Object { .. }) && judged.sensitive.is_none() {
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
        let phrase = match &judged.sensitive {
            Some(why) => format!("{} ({why})", judged.query.phrase()),
            None => judged.query.phrase(),
        };
        let behaviour = match (seen.src, seen.dst) {
            (Some(src), Some(dst)) => Some(
                Behaviour::new(
                    dc_key(&dst.to_string()),
                    computer_key(src),
                    source_text(seen),
                    format!(
                        "{} over SAMR on {}",
                        judged.query.phrase(),
                        destination_text(seen)
                    ),
                )
                .item(SAMR_RECON.type_name, judged.query.phrase()),
            ),
            _ => None,
        };
        // The description lists what alerts: learned queries stay out of it.
        let listed_now = behaviour.as_ref().is_none_or(|behaviour| {
            would_raise(
                SAMR_RECON.type_name,
                context.threshold(&SAMR_RECON),
                behaviour,
                context.profiles,
            )
        });
        let asked = self.sources.touch(seen.src, seen.time, BTreeSet::new);
        if listed_now && asked.len() < MAX_QUERIES_LISTED {
            asked.insert(phrase.clone());
        }
        let description = format!(
            "{} {}queried {} over SAMR: {}",
            actor_text(seen),
            outcome_word(seen),
            destination_text(seen),
            listed(asked.iter().map(String::as_str), MAX_QUERIES_LISTED),
        );
        let mut finding = Finding::on(
            &SAMR_RECON,
            source_key(seen),
            seen,
            format!("samr {} {}", clip(&rpc.operation), judged.query.phrase()),
        )
        .describe(description)
        .entity(destination(seen, Role::DomainController))
        .detail("operation", clip(&rpc.operation))
        .detail("query", phrase)
        .relied_on(verdict.basis)
        .weighed_by_resolution(seen);
        if let Some(behaviour) = behaviour {
            finding = finding.behaviour(behaviour);
        }
        finding = with_account(finding, seen, context);
        if !context.knowledge.has_directory() && judged.sensitive.is_some() {
            finding = finding.relied_on(
                "no directory: sensitive objects known by well-known RIDs and names only",
            );
        }
        if verdict.source == Source::Assumed {
            finding = finding.confidence(Confidence::MediumConfidence);
        }
        context.raise(finding);
    }

    fn evicted(&self) -> u64 {
        self.sources.evicted() + self.associations.evicted()
    }
}

#[cfg(test)]
mod tests {
    use dcwatch_entity::{Directory, Domain, Object, ObjectKind, TagConfig};
    use dcwatch_proto::v1::{Activity, DceRpcActivity, activity::Body, alert::Confidence};

    use crate::{
        Config,
        detectors::testing::{activity, rpc_request, run, summary, with_account},
    };

    const CLIENT: &str = "10.98.0.30:50000";
    const DC: &str = "10.98.0.1:49667";

    fn samr(
        offset: i64,
        opnum: u32,
        operation: &str,
        fill: impl FnOnce(&mut DceRpcActivity),
    ) -> Activity {
        let mut body = rpc_request("samr", opnum, operation);
        fill(&mut body);
        activity(offset, CLIENT, DC, Body::Dcerpc(body))
    }

    #[test]
    fn enumerating_users_and_opening_domain_admins_is_samr_recon() {
        let alerts = run(
            None,
            Directory::default(),
            &[
                samr(0, 7, "SamrOpenDomain", |_| {}),
                with_account(
                    samr(1, 13, "SamrEnumerateUsersInDomain", |_| {}),
                    "LAB",
                    "alice",
                ),
                samr(2, 19, "SamrOpenGroup", |rpc| rpc.rid = 512),
                samr(3, 25, "SamrGetMembersInGroup", |rpc| rpc.member_count = 3),
            ],
        );
        assert_eq!(
            summary(&alerts),
            [("samr_recon".into(), "src:10.98.0.30".into(), 3)]
        );
        let alert = &alerts[0];
        assert_eq!(alert.external_id, 2021);
        assert!(
            alert.description.contains("queried 10.98.0.1 over SAMR")
                && alert.description.contains("enumerated all users")
                && alert
                    .description
                    .contains("opened the group RID 512 (well-known: RID 512 is Domain Admins)")
                && alert
                    .description
                    .contains("listed the members of RID 512 (3 members)"),
            "{}",
            alert.description
        );
        assert!(
            alert
                .entities
                .iter()
                .any(|entity| entity.name == "LAB\\alice")
        );
        assert_eq!(alert.confidence(), Confidence::MediumConfidence);
    }

    #[test]
    fn the_directory_names_sensitive_rids_of_its_domain() {
        let sid = "S-1-5-21-1-2-3";
        let mut admins = Object {
            kind: ObjectKind::Group,
            domain: "lab.example".into(),
            dn: "CN=Tier0,CN=Users,DC=lab,DC=example".into(),
            sid: format!("{sid}-1500"),
            sam_account_name: "Tier0".into(),
            ..Object::default()
        };
        admins.member_of = vec!["CN=Domain Admins,CN=Users,DC=lab,DC=example".into()];
        let domain_admins = Object {
            kind: ObjectKind::Group,
            domain: "lab.example".into(),
            dn: "CN=Domain Admins,CN=Users,DC=lab,DC=example".into(),
            sid: format!("{sid}-512"),
            sam_account_name: "Domain Admins".into(),
            ..Object::default()
        };
        let directory = Directory::new(
            vec![Domain {
                name: "lab.example".into(),
                netbios_name: "LAB".into(),
                sid: sid.into(),
                dc_addresses: vec!["10.98.0.1".into()],
                ..Domain::default()
            }],
            vec![admins, domain_admins],
            &TagConfig::default(),
            0,
        );
        let alerts = run(
            None,
            directory,
            &[
                samr(0, 7, "SamrOpenDomain", |rpc| rpc.domain_sid = sid.into()),
                samr(1, 19, "SamrOpenGroup", |rpc| rpc.rid = 1500),
            ],
        );
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert!(
            alerts[0].description.contains("Tier0 is sensitive"),
            "{}",
            alerts[0].description
        );
    }

    #[test]
    fn looking_up_domain_admins_by_name_is_recon() {
        let alerts = run(
            None,
            Directory::default(),
            &[samr(0, 17, "SamrLookupNamesInDomain", |rpc| {
                rpc.names = vec!["Domain Admins".into()];
            })],
        );
        assert_eq!(alerts.len(), 1);
        assert!(alerts[0].description.contains("looked up Domain Admins"));
    }

    #[test]
    fn an_admin_tool_querying_ordinary_objects_is_not_recon() {
        let activities = [
            samr(0, 64, "SamrConnect5", |_| {}),
            samr(1, 7, "SamrOpenDomain", |_| {}),
            samr(2, 17, "SamrLookupNamesInDomain", |rpc| {
                rpc.names = vec!["alice".into()];
                rpc.rids = vec![1104];
            }),
            samr(3, 34, "SamrOpenUser", |rpc| rpc.rid = 1104),
            samr(4, 36, "SamrQueryInformationUser", |_| {}),
            samr(5, 19, "SamrOpenGroup", |rpc| rpc.rid = 1300),
            samr(6, 25, "SamrGetMembersInGroup", |_| {}),
        ];
        assert!(run(None, Directory::default(), &activities).is_empty());
    }

    #[test]
    fn a_dc_enumerating_is_not_recon() {
        let config = Config {
            dc_addresses: vec!["10.98.0.30".parse().expect("an address")],
            ..Config::test_mode()
        };
        let activities = [samr(0, 13, "SamrEnumerateUsersInDomain", |_| {})];
        assert!(run(Some(config), Directory::default(), &activities).is_empty());
    }
}
