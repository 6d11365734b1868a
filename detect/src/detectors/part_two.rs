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

/// `count` distinct DNS queries from `src` to the DC, a second apart from `offset`.
fn queries(offset: i64, src: &str, count: usize, name: impl Fn(usize) -> String) -> Vec<Activity> {
    (0..count)
        .map(|n| {
            let name = name(n);
            let kind = if name.ends_with(".in-addr.arpa") {
                "PTR"
            } else {
                "A"
            };
            dns(
                offset + n as i64 * SECOND / 2,
                &at(src),
                "10.98.0.1:53",
                dns_activity::Type::Query,
                &name,
                kind,
            )
        })
        .collect()
}

/// A reverse sweep of 10.98.`net`.0/24 and beyond: `count` PTR lookups.
fn ptr_sweep(offset: i64, src: &str, net: usize, count: usize) -> Vec<Activity> {
    queries(offset, src, count, |n| {
        format!("{}.{}.98.10.in-addr.arpa", n % 256, net + n / 256)
    })
}

/// A busy client's usual names (a file server's clients, its monitoring targets).
fn usual_names(offset: i64, src: &str, count: usize) -> Vec<Activity> {
    queries(offset, src, count, |n| format!("host{n}.lab.example"))
}

fn dns_alerts(alerts: &[Alert]) -> Vec<&Alert> {
    alerts
        .iter()
        .filter(|alert| alert.r#type == "dns_recon")
        .collect()
}

/// Nine days of history in which APP asks for 200 distinct names every morning.
fn busy_history(engine: &mut Engine) -> Vec<Alert> {
    let mut raised = Vec::new();
    for day in 0..9 {
        raised.extend(feed(engine, &benign_day(day)));
        raised.extend(feed(engine, &usual_names(day * DAY + 7 * HOUR, APP, 200)));
    }
    raised
}

#[test]
fn dns_volume_alerts_after_learning_for_a_sweep_and_never_for_the_learned_volume() {
    let mut engine = engine(Config::default());
    let benign = busy_history(&mut engine);
    assert_eq!(types(&benign), Vec::<String>::new(), "{benign:#?}");
    // The busy client asks 300 names (within twice its learned level): usual.
    let busy = feed(&mut engine, &usual_names(9 * DAY + 7 * HOUR, APP, 300));
    assert!(busy.is_empty(), "{busy:#?}");
    // A workstation that asked for a name a day sweeps a /24's reverse names: 255 are not
    // enough, the 256th is.
    let sweep = ptr_sweep(9 * DAY + 14 * HOUR, WS11, 1, 300);
    assert!(feed(&mut engine, &sweep[..255]).is_empty());
    let raised = feed(&mut engine, &sweep[255..]);
    let raised = dns_alerts(&raised);
    assert_eq!(raised.len(), 1, "{raised:#?}");
    let alert = raised[0];
    assert_eq!(alert.primary_key, "src:10.98.0.11");
    assert_eq!(alert.count, 256);
    assert!(
        alert.description.starts_with(
            "10.98.0.11 asked 10.98.0.1 for 256 distinct DNS names within 10 minutes (256 reverse lookups (PTR), 0 answered NXDOMAIN, 0 SRV/ANY), as a reverse-lookup (PTR) sweep of an address range does (e.g. 0.1.98.10.in-addr.arpa"
        ) && alert.description.ends_with(
            "10.98.0.11 had never asked for 256 distinct DNS names within 10 minutes (its busiest learned period: under 32) in 9 days of learning"
        ),
        "{}",
        alert.description
    );
    let detail = |name: &str| {
        alert
            .details
            .iter()
            .find(|detail| detail.name == name)
            .map(|detail| detail.value.clone())
    };
    assert_eq!(detail("distinct_names").as_deref(), Some("256"));
    assert!(
        detail("sample_names").is_some_and(
            |names| names.starts_with("0.1.98.10.in-addr.arpa, 1.1.98.10.in-addr.arpa")
        ),
        "{:?}",
        detail("sample_names")
    );
    // The sweep goes on: the same alert, updated at the next doubling.
    let more = feed(
        &mut engine,
        &ptr_sweep(9 * DAY + 14 * HOUR + 3 * MINUTE, WS11, 3, 300),
    );
    let more = dns_alerts(&more);
    assert_eq!(
        more.iter()
            .map(|alert| (alert.id.as_str(), alert.count))
            .collect::<Vec<_>>(),
        [(alert.id.as_str(), 512)]
    );
    // The busy client at four times its usual volume is no longer usual.
    let burst = feed(&mut engine, &usual_names(10 * DAY + 7 * HOUR, APP, 600));
    assert_eq!(
        dns_alerts(&burst)
            .iter()
            .map(|alert| alert.primary_key.as_str())
            .collect::<Vec<_>>(),
        ["src:10.98.0.30"]
    );
}

#[test]
fn dns_volume_is_quiet_while_learning_and_medium_and_low_fire_at_their_floors() {
    let mut high = engine(Config::default());
    feed(&mut high, &history(0..2));
    let during = feed(&mut high, &ptr_sweep(2 * DAY, WS11, 1, 600));
    assert!(dns_alerts(&during).is_empty(), "{during:#?}");
    for (threshold, floor) in [(Threshold::Medium, 256), (Threshold::Low, 64)] {
        let mut engine = engine(Config {
            threshold,
            ..Config::default()
        });
        feed(&mut engine, &history(0..2));
        let sweep = ptr_sweep(2 * DAY, WS11, 1, floor);
        assert!(
            dns_alerts(&feed(&mut engine, &sweep[..floor - 1])).is_empty(),
            "{threshold:?}"
        );
        let raised = feed(&mut engine, &sweep[floor - 1..]);
        assert_eq!(
            dns_alerts(&raised)
                .iter()
                .map(|alert| alert.count)
                .collect::<Vec<_>>(),
            [floor as u64],
            "{threshold:?}"
        );
    }
}

#[test]
fn dns_servers_dcs_and_forwarders_asking_for_everyone_are_not_dns_recon() {
    let mut engine = engine(Config {
        dns_servers: vec!["10.98.0.53".parse().expect("an address")],
        ..Config::test_mode()
    });
    let mut forwarded = usual_names(0, "10.98.0.53", 1_000);
    forwarded.extend(ptr_sweep(0, "10.98.0.1", 1, 1_000));
    let raised = feed(&mut engine, &forwarded);
    assert!(raised.is_empty(), "{raised:#?}");
}

#[test]
fn a_name_brute_force_is_told_by_its_nxdomain_answers() {
    let mut engine = engine(Config::test_mode());
    let mut activities = Vec::new();
    for n in 0..64 {
        let name = format!("guess{n}.lab.example");
        let offset = i64::from(n) * SECOND;
        activities.push(dns(
            offset,
            &at(NEW),
            "10.98.0.1:53",
            dns_activity::Type::Query,
            &name,
            "A",
        ));
        let mut answer = dns(
            offset + 1,
            "10.98.0.1:53",
            &at(NEW),
            dns_activity::Type::Response,
            &name,
            "A",
        );
        if let Some(Body::Dns(body)) = &mut answer.body {
            body.rcode = 3;
            body.rcode_name = "NXDomain".into();
        }
        activities.push(answer);
    }
    let raised = feed(&mut engine, &activities);
    let raised = dns_alerts(&raised);
    assert_eq!(raised.len(), 1, "{raised:#?}");
    assert!(
        raised[0].description.contains(
            "(0 reverse lookups (PTR), 63 answered NXDOMAIN, 0 SRV/ANY), as a brute force of names"
        ),
        "{}",
        raised[0].description
    );
}

#[test]
fn a_btp_close_of_a_dns_volume_alert_teaches_that_volume_and_not_more() {
    let mut engine = engine(Config::default());
    busy_history(&mut engine);
    // A new inventory server appears and sweeps the network every day.
    let scanner = "10.98.0.70";
    let first = feed(&mut engine, &ptr_sweep(9 * DAY, scanner, 1, 300));
    let first = dns_alerts(&first);
    assert_eq!(first.len(), 1);
    assert!(engine.close(&first[0].id, Classification::Btp, 9 * DAY + HOUR));
    assert!(engine.teach(first[0], 9 * DAY + HOUR));
    let next = feed(&mut engine, &ptr_sweep(11 * DAY, scanner, 1, 300));
    assert!(dns_alerts(&next).is_empty(), "{next:#?}");
    let bigger = feed(&mut engine, &ptr_sweep(12 * DAY, scanner, 1, 1_000));
    assert_eq!(dns_alerts(&bigger).len(), 1, "{bigger:#?}");
}

/// The day-42 engine of the history, after `others` more computers searched for privileged
/// accounts (ADMIN already does, daily).
fn popular_after(config: Config, others: usize) -> Engine {
    let mut engine = engine(config);
    feed(&mut engine, &history(0..42));
    let searches: Vec<Activity> = (0..others)
        .map(|n| {
            ldap(
                42 * DAY + n as i64 * MINUTE,
                &format!("10.98.2.{n}"),
                ADMINS_FILTER,
            )
        })
        .collect();
    feed(&mut engine, &searches);
    engine
}

fn ldap_alerts(engine: &mut Engine, activities: &[Activity]) -> Vec<String> {
    feed(engine, activities)
        .iter()
        .filter(|alert| alert.r#type == "ldap_recon")
        .map(|alert| alert.description.clone())
        .collect()
}

#[test]
fn a_query_class_five_other_computers_make_is_popular_and_alerts_for_no_new_computer() {
    let searched = |offset| ldap(42 * DAY + HOUR + offset, WS11, ADMINS_FILTER);
    // ADMIN and three more: four other computers, not yet popular.
    let mut four = popular_after(Config::default(), 3);
    assert_eq!(ldap_alerts(&mut four, &[searched(0)]).len(), 1);
    // ADMIN and four more: five, popular; WS11, past its learning, is not alerted.
    let mut five = popular_after(Config::default(), 4);
    assert!(ldap_alerts(&mut five, &[searched(0)]).is_empty());
    // A query class nobody else makes still alerts, and lists only itself.
    let both = ldap_alerts(
        &mut five,
        &[
            ldap(42 * DAY + 2 * HOUR, WS11, ADMINS_FILTER),
            ldap(42 * DAY + 2 * HOUR + 1, WS11, SPN_FILTER),
        ],
    );
    assert_eq!(both.len(), 1, "{both:?}");
    assert!(
        both[0].contains("accounts with a service principal name")
            && !both[0].contains("adminCount"),
        "{}",
        both[0]
    );
    // Medium disables the filter (MDI).
    let mut medium = popular_after(
        Config {
            threshold: Threshold::Medium,
            ..Config::default()
        },
        4,
    );
    assert_eq!(ldap_alerts(&mut medium, &[searched(0)]).len(), 1);
}

#[test]
fn popular_query_classes_survive_a_restart() {
    let mut before = popular_after(Config::default(), 4);
    let stored = before.take_profile_changes();
    assert!(
        stored
            .upserts
            .iter()
            .any(|(key, _)| key == crate::profiles::POPULAR_KEY)
    );
    let mut after = engine(Config::default());
    after.load_profiles(stored.upserts);
    assert!(ldap_alerts(&mut after, &[ldap(42 * DAY + HOUR, WS11, ADMINS_FILTER)]).is_empty());
}

#[test]
fn a_new_admin_workstation_taught_by_a_btp_close_stops_alerting_for_its_queries() {
    let mut engine = engine(Config::default());
    feed(&mut engine, &history(0..42));
    // WS11 becomes an admin workstation: its first SPN query alerts, the analyst closes it as
    // B-TP and excludes; the same query is quiet after, a new one is not.
    let first = feed(&mut engine, &[ldap(42 * DAY, WS11, SPN_FILTER)]);
    assert_eq!(types(&first), ["ldap_recon"]);
    assert!(engine.close(&first[0].id, Classification::Btp, 42 * DAY + HOUR));
    assert!(engine.teach(&first[0], 42 * DAY + HOUR));
    assert!(ldap_alerts(&mut engine, &[ldap(44 * DAY, WS11, SPN_FILTER)]).is_empty());
    assert_eq!(
        ldap_alerts(
            &mut engine,
            &[ldap(44 * DAY + MINUTE, WS11, "(objectClass=trustedDomain)")]
        )
        .len(),
        1
    );
}
