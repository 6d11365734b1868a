//! The lab's directory in miniature: the accounts tests/lab provisions, with a nested admin.

use crate::{Directory, Domain, Object, ObjectKind, TagConfig, TagName, Uac, sensitive, snapshot};

const DOMAIN_SID: &str = "S-1-5-21-1-2-3";
const NOW: i64 = 1_800_000_000_000;
const DAY: i64 = 24 * 3600 * 1000;

fn object(kind: ObjectKind, sam: &str, rid: u32, member_of: &[&str]) -> Object {
    let container = if kind == ObjectKind::Computer {
        "OU=Computers"
    } else {
        "CN=Users"
    };
    Object {
        kind,
        domain: "lab.example".into(),
        dn: format!(
            "CN={},{container},DC=lab,DC=example",
            sam.trim_end_matches('$')
        ),
        sid: format!("{DOMAIN_SID}-{rid}"),
        sam_account_name: sam.into(),
        member_of: member_of.iter().map(|dn| (*dn).to_owned()).collect(),
        when_created: Some(NOW - 400 * DAY),
        ..Object::default()
    }
}

const DOMAIN_ADMINS: &str = "CN=Domain Admins,CN=Users,DC=lab,DC=example";
const IT_ADMINS: &str = "CN=IT-Admins,CN=Users,DC=lab,DC=example";
const HELPDESK: &str = "CN=Helpdesk,CN=Users,DC=lab,DC=example";

fn lab() -> Directory {
    let mut alice = object(ObjectKind::User, "alice", 1104, &[]);
    alice.upn = "alice@lab.example".into();
    alice.primary_group_id = Some(513);
    let mut bob = object(ObjectKind::User, "bob", 1105, &[]);
    bob.uac = Uac(Uac::NORMAL_ACCOUNT | Uac::DONT_REQ_PREAUTH);
    let mut svc = object(ObjectKind::User, "svc_sql", 1107, &[]);
    svc.spns = vec!["MSSQLSvc/sql01.lab.example:1433".into()];
    let mut dc = object(ObjectKind::Computer, "DC1$", 1000, &[]);
    dc.uac = Uac(532_480);
    dc.dns_host_name = "dc1.lab.example".into();
    let mut ws = object(ObjectKind::Computer, "WS01$", 1200, &[]);
    ws.dns_host_name = "ws01.lab.example".into();
    ws.when_created = Some(NOW - 2 * DAY);
    let mut it = object(
        ObjectKind::Group,
        "IT-Admins",
        1300,
        &[DOMAIN_ADMINS, HELPDESK],
    );
    it.dn = IT_ADMINS.into();
    // A cycle: Helpdesk inside IT-Admins inside Helpdesk.
    let mut helpdesk = object(ObjectKind::Group, "Helpdesk", 1301, &[IT_ADMINS]);
    helpdesk.dn = HELPDESK.into();
    let mut admins = object(ObjectKind::Group, "Domain Admins", 512, &[]);
    admins.dn = DOMAIN_ADMINS.into();
    let users = object(ObjectKind::Group, "Domain Users", 513, &[]);
    let administrator = object(ObjectKind::User, "Administrator", 500, &[DOMAIN_ADMINS]);
    let it_admin = object(ObjectKind::User, "it_admin", 1302, &[HELPDESK]);
    let honey = object(ObjectKind::User, "honey_admin", 1400, &[]);
    Directory::new(
        vec![Domain {
            name: "lab.example".into(),
            netbios_name: "LAB".into(),
            sid: DOMAIN_SID.into(),
            ..Domain::default()
        }],
        vec![
            alice,
            bob,
            svc,
            dc,
            ws,
            it,
            helpdesk,
            admins,
            users,
            administrator,
            it_admin,
            honey,
        ],
        &TagConfig {
            honeytokens: vec!["LAB\\honey_admin".into()],
            sensitive: Vec::new(),
        },
        NOW,
    )
}

fn reason(directory: &Directory, name: &str, tag: TagName) -> Option<String> {
    let object = directory.account(name)?;
    directory
        .tags(object)
        .iter()
        .find(|found| found.name == tag)
        .map(|found| found.reason.clone())
}

#[test]
fn every_name_form_the_wire_uses_finds_the_account() {
    let lab = lab();
    for form in [
        "alice",
        "ALICE",
        "LAB\\alice",
        "alice@LAB.EXAMPLE",
        "alice@lab.example",
        "lab.example\\Alice",
    ] {
        assert_eq!(
            lab.account(form).map(Object::rid),
            Some(Some(1104)),
            "{form}"
        );
    }
    assert_eq!(
        lab.account("WS01$")
            .map(|found| found.dns_host_name.as_str()),
        Some("ws01.lab.example")
    );
    assert_eq!(
        lab.account("host/ws01.lab.example").map(Object::rid),
        Some(Some(1200))
    );
    assert_eq!(lab.account("cifs/WS01").map(Object::rid), Some(Some(1200)));
    assert!(lab.account("mallory").is_none());
    assert!(lab.account("").is_none());
}

#[test]
fn an_spn_resolves_to_the_user_that_owns_it() {
    let lab = lab();
    let owner = lab
        .spn_owner("mssqlsvc/SQL01.lab.example:1433")
        .expect("svc_sql's SPN");
    assert_eq!(
        (owner.kind, owner.sam_account_name.as_str()),
        (ObjectKind::User, "svc_sql")
    );
}

#[test]
fn sensitive_members_are_tagged_with_the_chain_that_makes_them_so() {
    let lab = lab();
    assert_eq!(
        reason(&lab, "Administrator", TagName::Sensitive).as_deref(),
        Some("member of Domain Admins")
    );
    assert_eq!(
        reason(&lab, "it_admin", TagName::Sensitive).as_deref(),
        Some("member of Domain Admins via IT-Admins via Helpdesk")
    );
    assert_eq!(
        reason(&lab, "Domain Admins", TagName::Sensitive).as_deref(),
        Some("Domain Admins, a sensitive group")
    );
    assert_eq!(reason(&lab, "alice", TagName::Sensitive), None);
}

#[test]
fn nesting_cycles_end_and_primary_groups_count() {
    let lab = lab();
    let it_admin = lab.account("it_admin").expect("it_admin");
    assert_eq!(lab.groups(it_admin), [HELPDESK, IT_ADMINS, DOMAIN_ADMINS]);
    let alice = lab.account("alice").expect("alice");
    assert_eq!(
        lab.groups(alice),
        ["CN=Domain Users,CN=Users,DC=lab,DC=example"]
    );
}

#[test]
fn flags_and_configuration_become_tags() {
    let lab = lab();
    assert!(reason(&lab, "bob", TagName::DontReqPreauth).is_some());
    assert!(reason(&lab, "DC1$", TagName::Dc).is_some());
    assert!(reason(&lab, "honey_admin", TagName::Honeytoken).is_some());
    assert!(reason(&lab, "WS01$", TagName::New).is_some());
    assert!(reason(&lab, "alice", TagName::New).is_none());
    assert_eq!(lab.live_account_count(), 8);
}

#[test]
fn sensitive_rids_and_sids_are_named() {
    assert_eq!(
        sensitive::group_by_sid_or_rid(None, Some(512)),
        Some("Domain Admins")
    );
    assert_eq!(
        sensitive::group_by_sid_or_rid(Some("S-1-5-32-544"), None),
        Some("Administrators")
    );
    assert_eq!(
        sensitive::group_by_sid_or_rid(Some("S-1-5-21-9-9-9-519"), None),
        Some("Enterprise Admins")
    );
    assert_eq!(sensitive::group_by_sid_or_rid(None, Some(513)), None);
}

#[test]
fn a_snapshot_reads_back_what_was_written() {
    let lab = lab();
    let mut file = Vec::new();
    snapshot::write(&mut file, lab.domains(), lab.objects()).expect("to a Vec");
    let (domains, objects) = snapshot::read(file.as_slice()).expect("its own output");
    assert_eq!(domains, lab.domains());
    assert_eq!(objects.len(), 12);
    assert_eq!(
        objects.iter().collect::<Vec<_>>(),
        lab.objects().collect::<Vec<_>>()
    );
    let error = snapshot::read(&b"{\"domain\":{}}\nnot json\n"[..]).expect_err("junk");
    assert!(error.to_string().starts_with("snapshot line 2"), "{error}");
}

mod enrichment {
    use dcwatch_proto::v1::{Account, Activity, Certainty, Computer, ResolutionMethod};

    use super::*;
    use crate::enrich;

    fn computer(name: &str, method: ResolutionMethod) -> Computer {
        Computer {
            name: name.into(),
            certainty: Certainty::High.into(),
            method: method.into(),
            ..Computer::default()
        }
    }

    fn tag_names(tags: &[dcwatch_proto::v1::Tag]) -> Vec<&str> {
        tags.iter().map(|tag| tag.name.as_str()).collect()
    }

    #[test]
    fn the_account_and_both_computers_get_sids_and_tags() {
        let lab = lab();
        let mut activity = Activity {
            account: Some(Account {
                domain: "LAB.EXAMPLE".into(),
                name: "bob".into(),
                ..Account::default()
            }),
            source_computer: Some(computer("WS01", ResolutionMethod::KerberosPrincipal)),
            destination_computer: Some(computer("dc1.lab.example", ResolutionMethod::Dns)),
            ..Activity::default()
        };
        let matched = enrich::activity(&lab, &mut activity);
        assert_eq!(
            matched,
            enrich::Enriched {
                account: true,
                source_computer: true,
                destination_computer: true
            }
        );
        let account = activity.account.expect("kept");
        assert_eq!(account.sid, format!("{DOMAIN_SID}-1105"));
        assert_eq!(tag_names(&account.tags), ["dont_req_preauth"]);
        let source = activity.source_computer.expect("kept");
        assert_eq!(source.sid, format!("{DOMAIN_SID}-1200"));
        assert_eq!(
            tag_names(&source.tags),
            ["new"],
            "WS01 was created 2 days ago"
        );
        let destination = activity.destination_computer.expect("kept");
        assert_eq!(tag_names(&destination.tags), ["dc"]);
        assert_eq!(
            destination.name, "dc1.lab.example",
            "names are not rewritten"
        );
    }

    #[test]
    fn a_nested_admin_carries_its_chain_and_unknown_names_stay_bare() {
        let lab = lab();
        let mut activity = Activity {
            account: Some(Account {
                domain: "LAB".into(),
                name: "it_admin".into(),
                ..Account::default()
            }),
            source_computer: Some(computer("NOSUCHHOST", ResolutionMethod::NtlmWorkstation)),
            // A VPN address resolves to a user: never matched to a computer.
            destination_computer: Some(computer("alice", ResolutionMethod::Radius)),
            ..Activity::default()
        };
        let matched = enrich::activity(&lab, &mut activity);
        assert!(matched.account && !matched.source_computer && !matched.destination_computer);
        let account = activity.account.expect("kept");
        assert_eq!(
            account
                .tags
                .iter()
                .find(|tag| tag.name == "sensitive")
                .map(|tag| tag.reason.as_str()),
            Some("member of Domain Admins via IT-Admins via Helpdesk")
        );
        assert_eq!(activity.source_computer.expect("kept").sid, "");
    }
}
