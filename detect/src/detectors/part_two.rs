//! Part II end to end: a synthetic history (a benign week of a small domain, time-shifted over
//! six weeks) through one engine, then attacks. At threshold high nothing fires while entities
//! learn or for what they learned; the attacks fire with what differs; medium and low fire
//! during learning; a restart (profiles through their bytes) keeps what was learned.

use std::sync::Arc;

use dcwatch_entity::Directory;
use dcwatch_proto::v1::{
    Activity, Alert, EventAccount, RadiusActivity, WindowsEventActivity, activity::Body,
    alert::Classification, dns_activity, ldap_activity::Scope, radius_activity,
};

use super::{
    builders::{dns, event, ldap_search},
    testing::{
        activity, as_rep, as_req, hash, krb_error, ntlm_authenticate, rpc_request, tgs_rep, tgs_req,
    },
};
use crate::{
    Config, Engine, Threshold,
    time::{DAY, HOUR, MINUTE, SECOND},
};

const WS11: &str = "10.98.0.11";
const ADMIN: &str = "10.98.0.20";
const APP: &str = "10.98.0.30";
const EXCHANGE: &str = "10.98.0.40";
const NEW: &str = "10.98.0.66";
const DC_LDAP: &str = "10.98.0.1:389";
const DC_RPC: &str = "10.98.0.1:49667";
const ROOT: &str = "DC=lab,DC=example";
const SPN_FILTER: &str = "(&(objectCategory=person)(!(userAccountControl:1.2.840.113556.1.4.803:=2))(servicePrincipalName=*))";
const ADMINS_FILTER: &str = "(adminCount=1)";

fn at(addr: &str) -> String {
    format!("{addr}:50000")
}

fn samr(offset: i64, src: &str, opnum: u32, operation: &str) -> Activity {
    activity(
        offset,
        &at(src),
        DC_RPC,
        Body::Dcerpc(rpc_request("samr", opnum, operation)),
    )
}

fn ldap(offset: i64, src: &str, filter: &str) -> Activity {
    ldap_search(
        offset,
        &at(src),
        DC_LDAP,
        ROOT,
        Scope::WholeSubtree,
        filter,
        &[],
    )
}

fn logon(offset: i64, src: &str, user: &str) -> Vec<Activity> {
    vec![
        as_req(offset, &at(src), user, |_| {}),
        as_rep(offset + 1, &at(src), user, |body| {
            body.ticket_hash = offset.to_be_bytes().to_vec();
        }),
        tgs_req(
            offset + 2,
            &at(src),
            "cifs/fs1.lab.example",
            &offset.to_be_bytes(),
            |_| {},
        ),
        tgs_rep(
            offset + 3,
            &at(src),
            user,
            "cifs/fs1.lab.example",
            &hash(252),
            |_| {},
        ),
    ]
}

fn rc4_logon(offset: i64, src: &str, user: &str) -> Vec<Activity> {
    vec![
        as_req(offset, &at(src), user, |body| {
            body.etypes = vec![23];
            body.timestamp_etype = 23;
        }),
        as_rep(offset + 1, &at(src), user, |body| body.reply_etype = 23),
    ]
}

fn failures(offset: i64, src: &str, accounts: &[&str], each: usize) -> Vec<Activity> {
    let mut out = Vec::new();
    for (index, account) in accounts.iter().enumerate() {
        for guess in 0..each {
            out.push(krb_error(
                offset + (index * each + guess) as i64 * SECOND,
                &at(src),
                account,
                24,
            ));
        }
    }
    out
}

fn group_added(offset: i64, actor: &str) -> Activity {
    event(
        offset,
        "10.98.0.1:514",
        WindowsEventActivity {
            event_id: 4728,
            computer: "DC1.lab.example".into(),
            group: Some(EventAccount {
                name: "Domain Admins".into(),
                domain: "LAB".into(),
                sid: "S-1-5-21-1-2-3-512".into(),
            }),
            member: Some(EventAccount {
                name: "CN=tier0".into(),
                ..EventAccount::default()
            }),
            subject: Some(EventAccount {
                name: actor.into(),
                domain: "LAB".into(),
                sid: String::new(),
            }),
            ..WindowsEventActivity::default()
        },
    )
}

fn vpn(offset: i64, user: &str, device: &str, endpoint: &str) -> Activity {
    activity(
        offset,
        "10.98.0.250:1813",
        "10.98.0.5:1813",
        Body::Radius(RadiusActivity {
            r#type: radius_activity::Type::AccountingRequest.into(),
            status_type: "Start".into(),
            user_name: user.into(),
            calling_station_id: device.into(),
            tunnel_client_endpoint: endpoint.into(),
            ..RadiusActivity::default()
        }),
    )
}

/// One benign day of the domain, `day` days in.
fn benign_day(day: i64) -> Vec<Activity> {
    let start = day * DAY + 8 * HOUR;
    let mut out = Vec::new();
    out.extend(logon(start, WS11, "alice"));
    out.push(ntlm_authenticate(
        start + 10 * MINUTE,
        &at(WS11),
        "10.98.0.1:445",
        "LAB",
        "alice",
        0,
        |_| {},
    ));
    out.push(dns(
        start + 11 * MINUTE,
        &at(WS11),
        "10.98.0.1:53",
        dns_activity::Type::Query,
        "fs1.lab.example",
        "A",
    ));
    // The admin workstation: its tools enumerate users and look up admins every day.
    out.extend(logon(start + HOUR, ADMIN, "bob"));
    out.push(samr(
        start + HOUR + MINUTE,
        ADMIN,
        13,
        "SamrEnumerateUsersInDomain",
    ));
    out.push(ldap(start + HOUR + 2 * MINUTE, ADMIN, ADMINS_FILTER));
    // A legacy application: RC4-only pre-authentication, a script with an old password.
    out.extend(logon(start + 2 * HOUR, APP, "svc_app"));
    out.extend(rc4_logon(start + 2 * HOUR + MINUTE, APP, "svc_app"));
    out.extend(failures(start + 3 * HOUR, APP, &["svc_old"], 12));
    // Exchange relays many users' failures.
    let relayed: Vec<String> = (0..12).map(|n| format!("user{n}")).collect();
    let relayed: Vec<&str> = relayed.iter().map(String::as_str).collect();
    out.extend(failures(start + 4 * HOUR, EXCHANGE, &relayed, 1));
    // bob adds a member to Domain Admins on Mondays; bob's VPN from home most evenings.
    if day % 7 == 0 {
        out.push(group_added(start + 5 * HOUR, "bob"));
    }
    if day % 7 < 5 {
        out.push(vpn(
            start + 10 * HOUR,
            "LAB\\bob",
            "00-11-22-33-44-55",
            "198.51.100.7",
        ));
    }
    out
}

fn history(days: std::ops::Range<i64>) -> Vec<Activity> {
    days.flat_map(benign_day).collect()
}

/// Every attack of Part II, `day` days in.
fn attacks(day: i64) -> Vec<Activity> {
    let start = day * DAY + 14 * HOUR;
    let mut out = Vec::new();
    out.push(samr(start, WS11, 11, "SamrEnumerateGroupsInDomain"));
    out.push(ldap(start + MINUTE, WS11, SPN_FILTER));
    out.push(dns(
        start + 2 * MINUTE,
        &at(WS11),
        "10.98.0.1:53",
        dns_activity::Type::Axfr,
        "lab.example",
        "AXFR",
    ));
    out.extend(failures(start + 3 * MINUTE, WS11, &["administrator"], 12));
    let sprayed: Vec<String> = (0..12).map(|n| format!("victim{n}")).collect();
    let sprayed: Vec<&str> = sprayed.iter().map(String::as_str).collect();
    out.extend(failures(start + 6 * MINUTE, WS11, &sprayed, 1));
    out.extend(rc4_logon(start + 8 * MINUTE, WS11, "alice"));
    out.push(tgs_req(
        start + 9 * MINUTE,
        &at(WS11),
        "cifs/fs1.lab.example",
        &hash(250),
        |body| body.ticket_etype = 23,
    ));
    out.push(tgs_rep(
        start + 9 * MINUTE + 1,
        &at(WS11),
        "administrator",
        "cifs/fs1.lab.example",
        &hash(249),
        |_| {},
    ));
    out.push(ntlm_authenticate(
        start + 10 * MINUTE,
        &at(NEW),
        "10.98.0.1:445",
        "LAB",
        "alice",
        0,
        |_| {},
    ));
    out.push(group_added(start + 11 * MINUTE, "mallory"));
    out.push(vpn(
        start + 12 * MINUTE,
        "LAB\\bob",
        "de-ad-be-ef-00-01",
        "203.0.113.9",
    ));
    out
}

/// The types of Part II the attacks raise, sorted.
const EVERY_TYPE: [&str; 10] = [
    "brute_force",
    "dns_recon",
    "golden_ticket",
    "ldap_recon",
    "overpass_the_hash",
    "pass_the_hash",
    "password_spray",
    "samr_recon",
    "sensitive_group_change",
    "suspicious_vpn",
];

fn engine(config: Config) -> Engine {
    let config = Config {
        dc_addresses: vec!["10.98.0.1".parse().expect("an address")],
        ..config
    };
    Engine::new(config, Arc::new(Directory::default()))
}

/// The alerts the activities raised or changed, in the order of their last change, as they
/// then stand.
fn feed(engine: &mut Engine, activities: &[Activity]) -> Vec<Alert> {
    let mut raised: Vec<String> = Vec::new();
    for activity in activities {
        for made in engine.observe(activity, "") {
            raised.retain(|id| *id != made.id);
            raised.push(made.id);
        }
    }
    raised
        .iter()
        .filter_map(|id| engine.alert(id).cloned())
        .collect()
}

fn types(alerts: &[Alert]) -> Vec<String> {
    let mut types: Vec<String> = alerts.iter().map(|alert| alert.r#type.clone()).collect();
    types.sort();
    types.dedup();
    types
}

#[test]
fn at_threshold_high_only_new_behaviour_after_learning_alerts() {
    let mut engine = engine(Config::default());
    let benign = feed(&mut engine, &history(0..42));
    assert_eq!(types(&benign), Vec::<String>::new(), "{benign:#?}");
    let raised = feed(&mut engine, &attacks(42));
    assert_eq!(types(&raised), EVERY_TYPE, "{raised:#?}");
    let by_type = |name: &str| {
        raised
            .iter()
            .find(|alert| alert.r#type == name)
            .map(|alert| alert.description.clone())
            .unwrap_or_default()
    };
    assert!(
        by_type("samr_recon").ends_with(
            "10.98.0.11 had never enumerated all groups over SAMR on 10.98.0.1 in 42 days of learning"
        ),
        "{}",
        by_type("samr_recon")
    );
    let downgrade = raised
        .iter()
        .find(|alert| alert.r#type == "overpass_the_hash")
        .map(|alert| alert.external_id);
    assert_eq!(downgrade, Some(2008));
    // After the attacks, more of the same benign behaviour still raises nothing new.
    let after = feed(&mut engine, &history(43..44));
    assert!(
        after
            .iter()
            .all(|alert| raised.iter().any(|seen| seen.id == alert.id)),
        "{after:#?}"
    );
}

#[test]
fn at_threshold_high_nothing_of_part_two_fires_while_learning_and_medium_low_do() {
    let mut high = engine(Config::default());
    feed(&mut high, &history(0..2));
    let during = feed(&mut high, &attacks(2));
    assert_eq!(types(&during), Vec::<String>::new(), "{during:#?}");
    for threshold in [Threshold::Medium, Threshold::Low] {
        let mut engine = engine(Config {
            threshold,
            ..Config::default()
        });
        feed(&mut engine, &history(0..8));
        let raised = feed(&mut engine, &attacks(8));
        // The benign history raised its Part I alerts too (learning skipped); the attacks'
        // types are all there, the downgrade as 2002 (no learned month).
        let raised = types(&raised);
        for name in EVERY_TYPE {
            assert!(
                raised.iter().any(|raised| raised == name),
                "{threshold:?} {name} {raised:?}"
            );
        }
    }
}

#[test]
fn a_restart_mid_learning_keeps_the_profiles() {
    let mut before = engine(Config::default());
    feed(&mut before, &history(0..20));
    let stored = before.take_profile_changes();
    assert!(stored.removed.is_empty());
    let mut after = engine(Config::default());
    after.load_profiles(stored.upserts);
    assert_eq!(after.profiles().len(), before.profiles().len());
    let benign = feed(&mut after, &history(20..42));
    assert_eq!(types(&benign), Vec::<String>::new(), "{benign:#?}");
    assert_eq!(types(&feed(&mut after, &attacks(42))), EVERY_TYPE);
    // Without the profiles, the restarted engine would have been learning for three weeks only.
    let mut forgetful = engine(Config::default());
    feed(&mut forgetful, &history(20..42));
    let raised = types(&feed(&mut forgetful, &attacks(42)));
    assert!(
        !raised.iter().any(|name| name == "samr_recon"),
        "{raised:?}"
    );
}

#[test]
fn a_btp_close_teaches_the_profile_and_new_behaviour_still_alerts() {
    let mut engine = engine(Config::default());
    feed(&mut engine, &history(0..42));
    let raised = feed(
        &mut engine,
        &[samr(42 * DAY, WS11, 11, "SamrEnumerateGroupsInDomain")],
    );
    assert_eq!(types(&raised), ["samr_recon"]);
    assert!(engine.close(&raised[0].id, Classification::Btp, 42 * DAY + HOUR));
    assert!(engine.teach(&raised[0], 42 * DAY + HOUR));
    // Two days on (past the reopening window): the taught query is quiet, a new one is not.
    let taught = feed(
        &mut engine,
        &[samr(44 * DAY, WS11, 11, "SamrEnumerateGroupsInDomain")],
    );
    assert!(taught.is_empty(), "{taught:#?}");
    let new = feed(
        &mut engine,
        &[samr(
            44 * DAY + MINUTE,
            WS11,
            15,
            "SamrEnumerateAliasesInDomain",
        )],
    );
    assert_eq!(types(&new), ["samr_recon"]);
    // A Part I alert carries no behaviour: nothing to teach.
    let mut alert = raised[0].clone();
    alert.details.clear();
    assert!(!engine.teach(&alert, 45 * DAY));
}

#[test]
fn a_new_admin_workstation_learns_its_ldap_queries_before_it_can_alert() {
    let mut engine = engine(Config::default());
    feed(&mut engine, &history(0..20));
    // A second admin workstation appears on day 20 and runs the admins' query daily.
    let second = "10.98.0.21";
    let days: Vec<Activity> = (20..40)
        .map(|day| ldap(day * DAY + 9 * HOUR, second, ADMINS_FILTER))
        .collect();
    let raised = feed(&mut engine, &days);
    assert!(raised.is_empty(), "{raised:#?}");
    // The same query is reconnaissance when learning is skipped.
    let mut low = self::engine(Config::test_mode());
    assert_eq!(types(&feed(&mut low, &days[..1])), ["ldap_recon"]);
}

#[test]
fn many_entities_with_one_new_alert_type_are_damped() {
    let mut engine = engine(Config {
        threshold: Threshold::Low,
        damping: crate::config::Damping {
            entities: 3,
            window_hours: 24,
        },
        ..Config::default()
    });
    let sources: Vec<Activity> = (0..5)
        .map(|n| {
            samr(
                n * MINUTE,
                &format!("10.98.1.{n}"),
                13,
                "SamrEnumerateUsersInDomain",
            )
        })
        .collect();
    let raised = feed(&mut engine, &sources);
    let damped: Vec<bool> = raised
        .iter()
        .map(|alert| alert.details.iter().any(|detail| detail.name == "damped"))
        .collect();
    assert_eq!(damped, [false, false, false, true, true]);
    assert_eq!(
        raised[3].severity(),
        dcwatch_proto::v1::alert::Severity::Low
    );
    assert_eq!(
        raised[0].severity(),
        dcwatch_proto::v1::alert::Severity::Medium
    );
    // An update of a damped alert stays damped.
    let update = feed(
        &mut engine,
        &[samr(
            10 * MINUTE,
            "10.98.1.4",
            13,
            "SamrEnumerateUsersInDomain",
        )],
    );
    assert_eq!(
        update[0].severity(),
        dcwatch_proto::v1::alert::Severity::Low
    );
}
