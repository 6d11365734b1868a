//! Security principal reconnaissance over LDAP (MDI 2038): the searches attack tools make to
//! find their targets. Each search is read as the `Recon` categories its filter, scope and
//! attributes show:
//! - a tool's query, alone enough: accounts with an SPN (GetUserSPNs, Rubeus kerberoast),
//!   accounts without pre-authentication (GetNPUsers), `adminCount=1`, members of a sensitive
//!   group, every trust, every object's security descriptor (ACL dumps), LAPS passwords;
//! - a broad enumeration (every user, computer, group, GPO, OU, object, delegation): normal for
//!   one application, reconnaissance when one source makes `BROAD_THRESHOLD` distinct ones
//!   within `WINDOW` (*ours*; BloodHound makes them all in seconds).
//!
//! Part II (MDI's per-computer learning: 15 days from the computer's first activity, none in the
//! first 10 days of the deployment): at threshold high a computer's profile learns the
//! categories it searches for while it learns, and only categories it never searched for alert
//! after. A category `POPULAR_SUBJECTS` other computers searched for is popular in this network
//! and, at threshold high, alerts for no computer, a new one included (MDI: "popular queries
//! are filtered"; medium and low disable the filter). Sealed (SASL-encrypted) searches are
//! invisible, as they are to MDI's network-only sensors; DCs searching each other are left alone.

use std::{collections::BTreeSet, net::IpAddr};

use dcwatch_entity::sensitive;
use dcwatch_proto::v1::{
    LdapActivity, activity::Body, alert::Confidence, alert_entity::Role, ldap_activity,
};

use super::{
    Context, Detector, Kinds,
    guesses::{Answer, Guesses},
    target::{clip, listed, with_account},
};
use crate::{
    bounded::BoundedMap,
    catalogue::LDAP_RECON,
    finding::{
        Finding, actor_text, destination, destination_text, source_key, source_text,
        vouched_source_name,
    },
    knowledge::{Knowledge, Source},
    learning::{Behaviour, would_raise},
    observed::Observed,
    profiling::computer_key,
    time::{MINUTE, Millis},
};

/// Distinct broad enumerations from one source within `WINDOW` that make reconnaissance (*ours*).
pub(super) const BROAD_THRESHOLD: usize = 5;
pub(super) const WINDOW: Millis = 10 * MINUTE;
pub(super) const MAX_SOURCES: usize = 50_000;
/// Categories listed per source in the description.
pub(super) const MAX_CATEGORIES_LISTED: usize = 20;
/// Categories a broad window holds per source (there are fewer kinds than this).
const MAX_BROAD_PER_SOURCE: usize = 32;
/// Filter text an alert quotes.
const MAX_FILTER_QUOTED: usize = 300;

/// Names of sensitive groups, for `memberOf` filters without a directory.
const SENSITIVE_GROUPS: [&str; 14] = [
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
    "protected users",
];

/// What a search looks for, as reconnaissance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Recon {
    pub what: String,
    /// The tools known to make it: a tool's query is enough alone; a broad one (None) counts.
    pub tool: Option<&'static str>,
}

/// Whether `needle` occurs in `filter` other than right inside a NOT (`(!(needle...`), whether
/// the needle is a term's inside (`objectcategory=computer`) or the whole term
/// (`(objectcategory=computer)`, which the Kerberoasting filter of impacket's GetUserSPNs before
/// 0.10 and of NetExec negates).
fn positive(filter: &str, needle: &str) -> bool {
    let negation = if needle.starts_with('(') { "(!" } else { "!(" };
    filter
        .match_indices(needle)
        .any(|(at, _)| !filter[..at].ends_with(negation))
}

/// The value of the first `attribute=` (or `attribute:rule:=`) term.
fn value_of<'a>(filter: &'a str, attribute: &str) -> Option<&'a str> {
    let at = filter.find(attribute)?;
    let rest = &filter[at + attribute.len()..];
    let rest = rest.split_once('=')?.1;
    Some(rest.split(')').next().unwrap_or(rest))
}

fn sensitive_group_dn(dn: &str, knowledge: &Knowledge) -> Option<String> {
    if let Some(object) = knowledge.directory().by_dn(dn)
        && let Some(group) = sensitive::group(object)
    {
        return Some(group.name.to_owned());
    }
    let cn = dn.split(',').next()?.trim().strip_prefix("cn=")?;
    SENSITIVE_GROUPS.contains(&cn).then(|| cn.to_owned())
}

/// An equality on an identifying attribute with a real value: the search is about one object.
fn narrowed(filter: &str) -> bool {
    [
        "samaccountname=",
        "userprincipalname=",
        "distinguishedname=",
        "objectsid=",
        "objectguid=",
        "(cn=",
        "(name=",
        "mail=",
        "dnshostname=",
    ]
    .iter()
    .any(|attribute| {
        filter.match_indices(attribute).any(|(at, _)| {
            let value = &filter[at + attribute.len()..];
            !value.starts_with('*') && !value.starts_with(')')
        })
    })
}

/// Whether a filter selects objects only by presence or by class (`(objectClass=*)`,
/// `(|(samAccountType=805306368)(objectCategory=group))`): what a dump of every object asks, as
/// opposed to a search for particular values.
fn selects_by_class_only(filter: &str) -> bool {
    const CLASS_ATTRIBUTES: [&str; 4] = [
        "objectclass",
        "objectcategory",
        "samaccounttype",
        "grouptype",
    ];
    let mut terms = filter
        .split(['(', ')'])
        .filter(|term| !term.is_empty() && !matches!(*term, "&" | "|" | "!"))
        .peekable();
    terms.peek().is_some()
        && terms.all(|term| {
            let Some((attribute, value)) = term.split_once('=') else {
                return false;
            };
            value == "*"
                || (!attribute.contains(':')
                    && CLASS_ATTRIBUTES.contains(&attribute.trim_end_matches(['<', '>', '~'])))
        })
}

/// The reconnaissance a search shows, if any.
pub(super) fn recon(ldap: &LdapActivity, knowledge: &Knowledge) -> Vec<Recon> {
    // Lower case only: values (group names) keep their spaces.
    let filter = ldap.filter.to_lowercase();
    let attributes: Vec<String> = ldap.attributes.iter().map(|a| a.to_lowercase()).collect();
    let subtree = ldap.scope == ldap_activity::Scope::WholeSubtree as i32;
    let tool = |what: &str, tool: &'static str| Recon {
        what: what.to_owned(),
        tool: Some(tool),
    };
    let broad = |what: &str| Recon {
        what: what.to_owned(),
        tool: None,
    };
    let mut found = Vec::new();
    let computers_only = positive(&filter, "(objectcategory=computer)")
        || positive(&filter, "(objectclass=computer)");
    if positive(&filter, "serviceprincipalname=*") && !computers_only {
        found.push(tool(
            "accounts with a service principal name (Kerberoasting targets)",
            "GetUserSPNs, Rubeus kerberoast",
        ));
    }
    if [".803:=4194304", ".804:=4194304"]
        .iter()
        .any(|rule| positive(&filter, rule))
    {
        found.push(tool(
            "accounts that do not require Kerberos pre-authentication (AS-REP roasting targets)",
            "GetNPUsers, Rubeus asreproast",
        ));
    }
    if positive(&filter, "admincount=1") {
        found.push(tool(
            "privileged accounts (adminCount=1)",
            "PowerView, ADRecon",
        ));
    }
    if let Some(group) =
        value_of(&filter, "memberof").and_then(|dn| sensitive_group_dn(dn, knowledge))
    {
        found.push(tool(
            &format!("the members of {group}"),
            "PowerView, net group /domain",
        ));
    } else if attributes.iter().any(|a| a == "member")
        && let Some(group) = sensitive_group_dn(&ldap.base.to_lowercase(), knowledge)
    {
        found.push(tool(
            &format!("the members of {group}"),
            "PowerView, ldapsearch",
        ));
    }
    if positive(&filter, "objectclass=trusteddomain") {
        found.push(tool(
            "every domain trust",
            "nltest /domain_trusts, BloodHound",
        ));
    }
    if subtree
        && attributes.iter().any(|a| a == "ntsecuritydescriptor")
        && selects_by_class_only(&filter)
    {
        found.push(tool(
            "the security descriptors (ACLs) of every object",
            "BloodHound, PowerView Get-ObjectAcl",
        ));
    }
    let laps = [
        "ms-mcs-admpwd",
        "mslaps-password",
        "mslaps-encryptedpassword",
    ];
    if laps.iter().any(|name| filter.contains(name))
        || (subtree && attributes.iter().any(|a| laps.contains(&a.as_str())))
    {
        found.push(tool(
            "the LAPS passwords of computers",
            "LAPSDumper, pyLAPS",
        ));
    }
    if !found.is_empty() || !subtree || narrowed(&filter) {
        return found;
    }
    let broad_kinds: [(&[&str], &str); 8] = [
        (
            &[
                "samaccounttype=805306368",
                "objectcategory=person",
                "objectclass=user",
            ],
            "every user",
        ),
        (
            &[
                "samaccounttype=805306369",
                "objectcategory=computer",
                "objectclass=computer",
            ],
            "every computer",
        ),
        (
            &["objectcategory=group", "objectclass=group"],
            "every group",
        ),
        (
            &["objectclass=grouppolicycontainer"],
            "every group policy object",
        ),
        (
            &["objectclass=organizationalunit"],
            "every organizational unit",
        ),
        (&["(objectclass=*)"], "every object"),
        (&[".803:=8192"], "every domain controller"),
        (
            &[
                "msds-allowedtodelegateto=*",
                ".803:=524288",
                "msds-allowedtoactonbehalfofotheridentity=*",
            ],
            "every account with delegation",
        ),
    ];
    for (needles, what) in broad_kinds {
        if needles.iter().any(|needle| positive(&filter, needle)) {
            found.push(broad(what));
        }
    }
    found
}

#[derive(Debug)]
struct Searches {
    broad: Guesses,
    listed: BTreeSet<String>,
}

#[derive(Debug)]
pub(super) struct LdapRecon {
    sources: BoundedMap<Option<IpAddr>, Searches>,
}

impl Default for LdapRecon {
    fn default() -> Self {
        Self {
            sources: BoundedMap::new(MAX_SOURCES),
        }
    }
}

impl Detector for LdapRecon {
    fn kinds(&self) -> Kinds {
        Kinds::ldap(ldap_activity::Type::Search)
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        let Some(Body::Ldap(ldap)) = seen.body() else {
            return;
        };
        if ldap.r#type != ldap_activity::Type::Search as i32 || ldap.cldap || ldap.ping.is_some() {
            return;
        }
        let found = recon(ldap, context.knowledge);
        if found.is_empty() {
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
        let searches = self.sources.touch(seen.src, seen.time, || Searches {
            broad: Guesses::new(MAX_BROAD_PER_SOURCE),
            listed: BTreeSet::new(),
        });
        let mut tools = Vec::new();
        let mut fired = Vec::new();
        let mut new_broad = false;
        for recon in &found {
            match recon.tool {
                Some(tool) => {
                    tools.push(tool);
                    fired.push(recon.what.clone());
                }
                None => {
                    // The category is the unit: paged repeats of one search count once.
                    new_broad |= searches
                        .broad
                        .add(seen.time, &recon.what, Answer::Unsaid, WINDOW);
                }
            }
        }
        let mut count = 1;
        if new_broad && searches.broad.len() >= BROAD_THRESHOLD {
            fired.extend(searches.broad.names(Answer::Unsaid).map(str::to_owned));
            if searches.broad.counted == 0 {
                count = searches.broad.len() as u64;
            }
            searches.broad.counted += count;
        }
        if fired.is_empty() {
            return;
        }
        let broad_start = searches.broad.first_time();
        // The description lists what alerts: categories the computer learned stay out of it.
        let alerts = |what: &str| {
            seen.src.is_none_or(|src| {
                let subject = computer_key(src);
                let behaviour = Behaviour::new(subject.clone(), subject, String::new(), "")
                    .item(LDAP_RECON.type_name, what)
                    .shared();
                would_raise(
                    LDAP_RECON.type_name,
                    context.threshold(&LDAP_RECON),
                    &behaviour,
                    context.profiles,
                )
            })
        };
        for what in &fired {
            if searches.listed.len() < MAX_CATEGORIES_LISTED && alerts(what) {
                searches.listed.insert(what.clone());
            }
        }
        let how = if tools.is_empty() {
            format!(
                "{} distinct broad enumerations within {} minutes",
                searches.broad.len(),
                WINDOW / MINUTE
            )
        } else {
            format!("queries {} make", tools.join("; "))
        };
        let quoted: String = ldap.filter.chars().take(MAX_FILTER_QUOTED).collect();
        let description = format!(
            "{} searched {} over LDAP for {} ({how})",
            actor_text(seen),
            destination_text(seen),
            listed(
                searches.listed.iter().map(String::as_str),
                MAX_CATEGORIES_LISTED
            ),
        );
        let mut finding = Finding::on(
            &LDAP_RECON,
            source_key(seen),
            seen,
            format!("ldap search {quoted}"),
        )
        .describe(description)
        .entity(destination(seen, Role::DomainController))
        .detail("filter", quoted)
        .detail("base", clip(&ldap.base))
        .detail(
            "attributes",
            listed(ldap.attributes.iter().map(String::as_str), 20),
        )
        .detail("found", fired.join("; "))
        .relied_on(verdict.basis)
        .weighed_by_resolution(seen);
        if tools.is_empty()
            && let Some(start) = broad_start
        {
            finding = finding.spanning(start, count);
        }
        if let Some(src) = seen.src {
            let subject = computer_key(src);
            let behaviour = fired.iter().fold(
                Behaviour::new(
                    subject.clone(),
                    subject,
                    source_text(seen),
                    format!("searched LDAP for {}", fired.join("; ")),
                )
                .shared(),
                |behaviour, what| behaviour.item(LDAP_RECON.type_name, what.clone()),
            );
            finding = finding.behaviour(behaviour);
        }
        finding = with_account(finding, seen, context);
        if verdict.source == Source::Assumed {
            finding = finding.confidence(Confidence::MediumConfidence);
        }
        context.raise(finding);
    }

    fn evicted(&self) -> u64 {
        self.sources.evicted()
            + self
                .sources
                .iter()
                .map(|(_, searches)| searches.broad.dropped())
                .sum::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use dcwatch_entity::Directory;
    use dcwatch_proto::v1::{
        Activity,
        activity::Body,
        ldap_activity::{Scope, Type},
    };

    use crate::detectors::{
        builders::ldap_search,
        testing::{run, summary},
    };

    const CLIENT: &str = "10.98.0.50:50000";
    const DC: &str = "10.98.0.1:389";
    const ROOT: &str = "DC=lab,DC=example";

    fn search(offset: i64, filter: &str, attributes: &[&str]) -> Activity {
        ldap_search(
            offset,
            CLIENT,
            DC,
            ROOT,
            Scope::WholeSubtree,
            filter,
            attributes,
        )
    }

    #[test]
    fn get_user_spns_filter_is_ldap_recon() {
        let alerts = run(
            None,
            Directory::default(),
            &[search(
                0,
                "(&(objectCategory=person)(!(userAccountControl:1.2.840.113556.1.4.803:=2))(servicePrincipalName=*))",
                &["servicePrincipalName", "sAMAccountName", "pwdLastSet"],
            )],
        );
        assert_eq!(
            summary(&alerts),
            [("ldap_recon".into(), "src:10.98.0.50".into(), 1)]
        );
        assert_eq!(alerts[0].external_id, 2038);
        assert!(
            alerts[0].description.contains(
                "searched 10.98.0.1 over LDAP for accounts with a service principal name"
            ) && alerts[0].description.contains("GetUserSPNs"),
            "{}",
            alerts[0].description
        );
    }

    #[test]
    fn roasting_target_searches_of_other_tools_are_ldap_recon_each_alone() {
        // The filters as each tool writes them (its source): PowerView Get-DomainUser -SPN,
        // Rubeus kerberoast, impacket GetUserSPNs before 0.10 and NetExec (as
        // suricata-verify's krb5-frag.pcap shows it), Rubeus asreproast, PowerView
        // -PreauthNotRequired, and the OR bit-match rule (.804) some scripts use.
        let filters = [
            "(&(samAccountType=805306368)(servicePrincipalName=*))",
            "(&(samAccountType=805306368)(servicePrincipalName=*)(!(samAccountName=krbtgt))(!(UserAccountControl:1.2.840.113556.1.4.803:=2)))",
            "(&(servicePrincipalName=*)(UserAccountControl:1.2.840.113556.1.4.803:=512)(!(UserAccountControl:1.2.840.113556.1.4.803:=2))(!(objectCategory=computer)))",
            "(&(samAccountType=805306368)(userAccountControl:1.2.840.113556.1.4.803:=4194304))",
            "(userAccountControl:1.2.840.113556.1.4.803:=4194304)",
            "(userAccountControl:1.2.840.113556.1.4.804:=4194304)",
        ];
        for filter in filters {
            let alerts = run(
                None,
                Directory::default(),
                &[search(0, filter, &["sAMAccountName"])],
            );
            assert_eq!(
                summary(&alerts),
                [("ldap_recon".into(), "src:10.98.0.50".into(), 1)],
                "{filter}"
            );
        }
        // Computers' SPNs (a management tool listing servers) are not a roast's targets.
        let servers = search(
            0,
            "(&(objectCategory=computer)(servicePrincipalName=*))",
            &["dNSHostName"],
        );
        assert!(run(None, Directory::default(), &[servers]).is_empty());
    }

    #[test]
    fn get_np_users_and_domain_admins_members_update_one_alert() {
        let alerts = run(
            None,
            Directory::default(),
            &[
                search(
                    0,
                    "(&(UserAccountControl:1.2.840.113556.1.4.803:=4194304)(!(UserAccountControl:1.2.840.113556.1.4.803:=2))(!(objectCategory=computer)))",
                    &[],
                ),
                search(
                    1_000,
                    "(memberOf:1.2.840.113556.1.4.1941:=CN=Domain Admins,CN=Users,DC=lab,DC=example)",
                    &["sAMAccountName"],
                ),
            ],
        );
        assert_eq!(
            summary(&alerts),
            [("ldap_recon".into(), "src:10.98.0.50".into(), 2)]
        );
        assert!(
            alerts[0]
                .description
                .contains("do not require Kerberos pre-authentication")
                && alerts[0]
                    .description
                    .contains("the members of domain admins"),
            "{}",
            alerts[0].description
        );
    }

    #[test]
    fn five_broad_enumerations_in_a_window_are_recon_four_are_not() {
        let filters = [
            "(samAccountType=805306368)",
            "(objectCategory=computer)",
            "(objectClass=group)",
            "(objectClass=groupPolicyContainer)",
            "(objectClass=organizationalUnit)",
        ];
        let four: Vec<Activity> = filters[..4]
            .iter()
            .enumerate()
            .map(|(n, filter)| search(n as i64 * 1_000, filter, &[]))
            .collect();
        assert!(run(None, Directory::default(), &four).is_empty());
        let five: Vec<Activity> = filters
            .iter()
            .enumerate()
            .map(|(n, filter)| search(n as i64 * 1_000, filter, &[]))
            .collect();
        let alerts = run(None, Directory::default(), &five);
        assert_eq!(alerts.len(), 1);
        assert!(
            alerts[0].description.contains("every organizational unit")
                && alerts[0]
                    .description
                    .contains("5 distinct broad enumerations"),
            "{}",
            alerts[0].description
        );
    }

    #[test]
    fn ordinary_searches_are_not_recon() {
        let activities = [
            // A logon's lookups, a specific SPN, one object's ACL, the same broad search paged.
            search(
                0,
                "(&(objectClass=user)(sAMAccountName=alice))",
                &["memberOf"],
            ),
            search(
                1,
                "(servicePrincipalName=MSSQLSvc/sql01.lab.example:1433)",
                &[],
            ),
            ldap_search(
                2,
                CLIENT,
                DC,
                "CN=alice,CN=Users,DC=lab,DC=example",
                Scope::BaseObject,
                "(objectClass=*)",
                &["nTSecurityDescriptor"],
            ),
            search(3, "(objectCategory=computer)", &[]),
            search(4, "(objectCategory=computer)", &[]),
            search(5, "(objectCategory=computer)", &[]),
            search(6, "(objectCategory=computer)", &[]),
            search(7, "(objectCategory=computer)", &[]),
            // A computer's SPNs, for its own services.
            search(
                8,
                "(&(objectCategory=computer)(servicePrincipalName=*))",
                &[],
            ),
        ];
        assert!(run(None, Directory::default(), &activities).is_empty());
    }

    #[test]
    fn sealed_searches_are_invisible_and_harmless() {
        let mut sealed = search(0, "", &[]);
        if let Some(Body::Ldap(ldap)) = &mut sealed.body {
            ldap.r#type = Type::Sealed.into();
            ldap.sealed_len = 4_000;
        }
        assert!(run(None, Directory::default(), &[sealed]).is_empty());
    }

    #[test]
    fn acl_dumps_select_by_class_and_searches_for_values_do_not() {
        for filter in [
            "(objectClass=*)",
            "(|(samAccountType=805306368)(objectCategory=group))",
        ] {
            let alerts = run(
                None,
                Directory::default(),
                &[search(0, filter, &["nTSecurityDescriptor"])],
            );
            assert_eq!(summary(&alerts).len(), 1, "{filter}");
            assert!(
                alerts[0].description.contains("security descriptors"),
                "{filter}"
            );
        }
        for filter in [
            "(departmentNumber:2.16.840.1.113730.3.3.2.46.1:=>=N4709)",
            "(&(objectClass=user)(department=Sales))",
        ] {
            let alerts = run(
                None,
                Directory::default(),
                &[search(0, filter, &["*", "ntsecuritydescriptor"])],
            );
            assert!(alerts.is_empty(), "{filter}: {alerts:?}");
        }
    }
}
