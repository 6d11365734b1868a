use dcwatch_entity::Directory;
use dcwatch_proto::v1::outcome::Status as OutcomeStatus;

use crate::detectors::testing::{as_rep, event_4776, krb_error, ntlm_authenticate, run, summary};
use crate::time::{MINUTE, SECOND};

const ATTACKER: &str = "10.98.0.5:50000";
const SMB: &str = "10.98.0.1:445";

fn preauth_failed(n: i64, client: &str) -> dcwatch_proto::v1::Activity {
    krb_error(n * SECOND, ATTACKER, client, 24)
}

/// An NTLM logon over SMB of `LAB\account` answered `status`, `at` milliseconds in.
fn smb_logon(at: i64, account: &str, status: u32) -> dcwatch_proto::v1::Activity {
    ntlm_authenticate(at, ATTACKER, SMB, "LAB", account, status, |_| {})
}

#[test]
fn ten_wrong_kerberos_passwords_against_one_account_are_a_brute_force() {
    let activities: Vec<_> = (0..10).map(|n| preauth_failed(n, "alice")).collect();
    let alerts = run(None, Directory::default(), &activities);
    assert_eq!(
        summary(&alerts),
        [("brute_force".into(), "src:10.98.0.5".into(), 10)]
    );
    let alert = &alerts[0];
    assert_eq!(
        (alert.external_id, alert.class.as_str()),
        (2023, "BruteForceSecurityAlert")
    );
    assert_eq!(
        alert.description,
        "10.98.0.5 made 10 wrong password guesses (Kerberos) against LAB.EXAMPLE\\alice; none succeeded so far"
    );
    assert_eq!(alert.outcome(), OutcomeStatus::Failure);
    // The source is the KRB-ERROR's destination, not the KDC that sent it.
    assert!(alert.entities.iter().any(|e| e.address == "10.98.0.5"));
    assert!(!alert.entities.iter().any(|e| e.address == "10.98.0.1"));
}

#[test]
fn a_later_success_says_the_password_was_guessed_and_more_guesses_update_the_count() {
    let mut activities: Vec<_> = (0..12).map(|n| preauth_failed(n, "alice")).collect();
    activities.push(as_rep(20 * SECOND, ATTACKER, "alice", |_| {}));
    let alerts = run(None, Directory::default(), &activities);
    assert_eq!(
        summary(&alerts),
        [("brute_force".into(), "src:10.98.0.5".into(), 12)]
    );
    assert_eq!(alerts[0].outcome(), OutcomeStatus::Success);
    assert!(
        alerts[0]
            .description
            .ends_with("the password of LAB.EXAMPLE\\alice was then guessed"),
        "{}",
        alerts[0].description
    );
}

#[test]
fn a_user_mistyping_then_succeeding_is_not_a_brute_force() {
    // Three typos, a success, then a later morning of typos that stays under the count.
    let mut activities: Vec<_> = (0..3).map(|n| preauth_failed(n, "alice")).collect();
    activities.push(as_rep(4 * SECOND, ATTACKER, "alice", |_| {}));
    activities.extend((5..12).map(|n| preauth_failed(n, "alice")));
    assert!(run(None, Directory::default(), &activities).is_empty());
}

#[test]
fn a_script_with_an_old_password_below_the_count_is_not_a_brute_force() {
    // Nine failures in the window, and the tenth after the first left it.
    let mut activities: Vec<_> = (0..9)
        .map(|n| krb_error(n * MINUTE, ATTACKER, "svc_backup", 24))
        .collect();
    activities.push(krb_error(10 * MINUTE + SECOND, ATTACKER, "svc_backup", 24));
    assert!(run(None, Directory::default(), &activities).is_empty());
}

#[test]
fn preauth_required_and_unknown_users_are_not_guesses() {
    let activities: Vec<_> = (0..20)
        .flat_map(|n| {
            [
                krb_error(n * SECOND, ATTACKER, "alice", 25),
                krb_error(n * SECOND, ATTACKER, &format!("nobody{n}"), 6),
            ]
        })
        .collect();
    // Twenty unknown names are account enumeration, not brute force.
    let types: Vec<String> = run(None, Directory::default(), &activities)
        .into_iter()
        .map(|alert| alert.r#type)
        .collect();
    assert_eq!(types, ["account_enumeration"]);
}

#[test]
fn ntlm_failures_over_smb_count_once_each_and_a_4776_of_the_same_logon_is_not_a_second() {
    let mut activities = Vec::new();
    for n in 0..10 {
        activities.push(smb_logon(n * SECOND, "carol", 0xC000_006D));
        // The DC logs the same validation; the sensor gets it over syslog.
        activities.push(event_4776(n * SECOND + 10, "WS01", "carol", 0xC000_006A));
    }
    let alerts = run(None, Directory::default(), &activities);
    assert_eq!(
        summary(&alerts),
        [("brute_force".into(), "src:10.98.0.5".into(), 10)]
    );
    assert!(alerts[0].description.contains("(NTLM) against LAB\\carol"));
}

#[test]
fn an_expired_or_must_change_answer_says_the_password_was_guessed() {
    // The DC checks the password before it refuses it as expired, and kerbrute
    // (KDC_ERR_KEY_EXPIRED) and NetExec (STATUS_PASSWORD_MUST_CHANGE) report it as found.
    let guessed = |alerts: &[dcwatch_proto::v1::Alert], account: &str| {
        alerts.len() == 1
            && alerts[0].outcome() == OutcomeStatus::Success
            && alerts[0]
                .description
                .ends_with(&format!("the password of {account} was then guessed"))
    };
    let mut kerberos: Vec<_> = (0..10).map(|n| preauth_failed(n, "alice")).collect();
    kerberos.push(krb_error(20 * SECOND, ATTACKER, "alice", 23));
    let alerts = run(None, Directory::default(), &kerberos);
    assert!(guessed(&alerts, "LAB.EXAMPLE\\alice"), "{alerts:?}");
    let mut ntlm: Vec<_> = (0..10)
        .map(|n| smb_logon(n * SECOND, "carol", 0xC000_006D))
        .collect();
    ntlm.push(smb_logon(20 * SECOND, "carol", 0xC000_0224));
    let alerts = run(None, Directory::default(), &ntlm);
    assert!(guessed(&alerts, "LAB\\carol"), "{alerts:?}");
    let mut events: Vec<_> = (0..10)
        .map(|n| event_4776(n * SECOND, "KALI", "carol", 0xC000_006A))
        .collect();
    events.push(event_4776(20 * SECOND, "KALI", "carol", 0xC000_0071));
    let alerts = run(None, Directory::default(), &events);
    assert!(
        alerts[0].description.ends_with("was then guessed"),
        "{alerts:?}"
    );
    // A user whose password expired, logging on with it: no guessing at all.
    let expired = [
        krb_error(0, ATTACKER, "bob", 23),
        smb_logon(SECOND, "bob", 0xC000_0224),
    ];
    assert!(run(None, Directory::default(), &expired).is_empty());
}

#[test]
fn events_4776_alone_name_the_workstation() {
    let activities: Vec<_> = (0..10)
        .map(|n| event_4776(n * SECOND, "KALI", "carol", 0xC000_006A))
        .collect();
    let alerts = run(None, Directory::default(), &activities);
    assert_eq!(
        summary(&alerts),
        [("brute_force".into(), "src:kali".into(), 10)]
    );
    assert!(
        alerts[0]
            .description
            .starts_with("workstation kali (event 4776) made 10")
    );
}

/// Feeds `total` failed Kerberos logons, round-robin from `sources` addresses against one
/// account each, one every millisecond, through the knowledge, brute force, password spray and
/// the book; checks every table against its cap as it goes. Returns (alerts, alert changes,
/// seconds, baseline seconds of the knowledge alone).
fn flood(sources: u32, total: u32) -> (Vec<dcwatch_proto::v1::Alert>, u64, f64, f64) {
    use std::{sync::Arc, time::Instant};

    use crate::{
        Config,
        book::Book,
        detectors::{Context, Detector},
        knowledge::Knowledge,
        observed::Observed,
    };

    let config = Config::test_mode();
    let make = |n: u32| {
        let source = n % sources;
        krb_error(
            i64::from(n),
            &format!(
                "10.{}.{}.{}:50000",
                100 + source / 65_536,
                source / 256 % 256,
                source % 256
            ),
            &format!("user{source}"),
            24,
        )
    };
    let baseline = {
        let mut knowledge = Knowledge::new(&config, Arc::new(Directory::default()));
        let started = Instant::now();
        for n in 0..total {
            let activity = make(n);
            let Some(seen) = Observed::new(&activity, "") else {
                panic!("timed")
            };
            knowledge.learn(&seen);
        }
        started.elapsed().as_secs_f64()
    };
    let mut knowledge = Knowledge::new(&config, Arc::new(Directory::default()));
    let mut guessing = super::Guessing::default();
    let mut book = Book::default();
    let mut findings = Vec::new();
    let profiles = crate::profiles::Profiles::default();
    let mut changes = 0_u64;
    let started = Instant::now();
    for n in 0..total {
        let activity = make(n);
        let Some(seen) = Observed::new(&activity, "") else {
            panic!("timed")
        };
        knowledge.learn(&seen);
        let mut context = Context {
            knowledge: &knowledge,
            profiles: &profiles,
            config: &config,
            findings: &mut findings,
        };
        guessing.observe(&seen, &mut context);
        for finding in findings.drain(..) {
            book.apply(finding);
            changes += 1;
        }
        if n % 10_000 == 0 {
            let brute_force = &guessing.brute_force;
            assert!(brute_force.pairs.len() <= super::MAX_PAIRS);
            assert!(brute_force.attackers.len() <= super::MAX_ATTACKERS);
            assert!(guessing.echoes.len() <= super::super::auth::MAX_ECHOES);
            assert!(brute_force.pairs.len() <= sources as usize);
            assert!(
                brute_force
                    .pairs
                    .iter()
                    .all(|(_, pair)| pair.guesses.len() <= super::BRUTE_FORCE_GUESSES)
            );
            assert!(knowledge.learned_account("user0").is_some());
        }
        for (name, evicted) in knowledge.evictions() {
            assert_eq!(evicted, 0, "{name}");
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(guessing.evicted(), 0);
    let mut alerts: Vec<_> = book.alerts().cloned().collect();
    alerts.sort_by(|a, b| a.primary_key.cmp(&b.primary_key));
    (alerts, changes, seconds, baseline)
}

fn assert_one_alert_per_source(alerts: &[dcwatch_proto::v1::Alert], sources: u32, per_source: u64) {
    assert_eq!(alerts.len(), sources as usize);
    let mut keys: Vec<&str> = alerts
        .iter()
        .map(|alert| alert.primary_key.as_str())
        .collect();
    keys.dedup();
    assert_eq!(keys.len(), sources as usize);
    for alert in alerts {
        assert_eq!(alert.r#type, "brute_force");
        assert_eq!(alert.count, per_source, "{}", alert.primary_key);
        assert!(alert.evidence.len() <= crate::book::MAX_EVIDENCE);
    }
}

#[test]
fn a_small_flood_gives_one_alert_per_source_with_its_count() {
    // 100 sources × 200 failures: every table stays at one entry per source.
    let (alerts, changes, _, _) = flood(100, 20_000);
    // Each source's tenth failure opens its alert; each later one updates it.
    assert_eq!(changes, 100 * 191);
    assert_one_alert_per_source(&alerts, 100, 200);
}

/// 1,000,000 failed logons from 1,000 sources. Slow in a debug build: run it with
/// `cargo test -p dcwatch-detect --release -- --ignored flood --nocapture`.
#[test]
#[ignore = "a million activities: run in release"]
#[expect(
    clippy::print_stdout,
    reason = "the flood's figures are for the person running it"
)]
fn a_flood_of_a_million_failures_from_a_thousand_sources() {
    let (alerts, changes, seconds, baseline) = flood(1_000, 1_000_000);
    assert_one_alert_per_source(&alerts, 1_000, 1_000);
    println!(
        "flood: 1,000,000 failures in {seconds:.2} s: {:.0} activities/s, {:.0} alerts (new or updated) /s, {:.2}x the time of the knowledge alone ({baseline:.2} s)",
        1_000_000.0 / seconds,
        changes as f64 / seconds,
        seconds / baseline,
    );
}

#[test]
fn a_lone_failure_a_day_after_an_attack_is_not_counted_as_more_of_it() {
    let mut activities: Vec<_> = (0..10).map(|n| preauth_failed(n, "alice")).collect();
    activities.push(krb_error(24 * 3_600 * SECOND, ATTACKER, "alice", 24));
    let alerts = run(None, Directory::default(), &activities);
    assert_eq!(
        summary(&alerts),
        [("brute_force".into(), "src:10.98.0.5".into(), 10)]
    );
}

#[test]
fn ntlm_binds_refused_over_ldap_are_guesses() {
    // As zeek's ldap_invalid_credentials.pcap shows them: the carrier's LDAP result code.
    let activities: Vec<_> = (0..10)
        .map(|n| {
            let mut bind = ntlm_authenticate(
                n * SECOND,
                ATTACKER,
                "10.98.0.1:389",
                "MATRIX",
                "agent.smith",
                49,
                |_| {},
            );
            bind.carrier = dcwatch_proto::v1::Carrier::Ldap.into();
            bind
        })
        .collect();
    let alerts = run(None, Directory::default(), &activities);
    assert_eq!(
        summary(&alerts),
        [("brute_force".into(), "src:10.98.0.5".into(), 10)]
    );
    // Over SMB, 49 is no NTSTATUS of a wrong password.
    let smb: Vec<_> = (0..10)
        .map(|n| ntlm_authenticate(n * SECOND, ATTACKER, SMB, "LAB", "agent.smith", 49, |_| {}))
        .collect();
    assert!(run(None, Directory::default(), &smb).is_empty());
}

#[test]
fn activities_at_the_ends_of_time_never_panic_any_detector() {
    use crate::detectors::testing::{as_req, hash, tgs_rep, tgs_req};
    let mut activities = Vec::new();
    for seconds in [i64::MIN, -1, 0, i64::MAX, i64::MIN, i64::MAX] {
        for mut activity in [
            preauth_failed(0, "alice"),
            as_req(0, ATTACKER, "alice", |_| {}),
            as_rep(0, ATTACKER, "alice", |body| body.ticket_hash = hash(1)),
            tgs_req(0, ATTACKER, "krbtgt/LAB.EXAMPLE", &hash(1), |body| {
                body.ticket_etype = 23;
            }),
            tgs_rep(0, ATTACKER, "alice", "svc_sql", &hash(2), |body| {
                body.ticket_etype = 23;
            }),
            ntlm_authenticate(0, ATTACKER, SMB, "LAB", "DC1$", 0xC000_006D, |body| {
                body.av_flags_present = true;
                body.av_flags = 2;
                body.mic_zero = true;
            }),
            event_4776(0, "KALI", "carol", 0xC000_006A),
        ] {
            activity.time = Some(pbjson_types::Timestamp {
                seconds,
                nanos: 999_999_999,
            });
            activities.push(activity);
        }
    }
    // Whatever they raise, they raise it without overflowing.
    let alerts = run(None, Directory::default(), &activities);
    assert!(alerts.iter().all(|alert| !alert.id.is_empty()));
}
