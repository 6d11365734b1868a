use dcwatch_entity::Directory;
use dcwatch_proto::v1::outcome::Status as OutcomeStatus;

use crate::detectors::testing::{as_rep, event_4776, krb_error, ntlm_authenticate, run, summary};
use crate::time::{MINUTE, SECOND};

const ATTACKER: &str = "10.98.0.5:50000";
const SMB: &str = "10.98.0.1:445";

fn preauth_failed(n: i64, client: &str) -> dcwatch_proto::v1::Activity {
    krb_error(n * SECOND, ATTACKER, client, 24)
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
    assert!(run(None, Directory::default(), &activities).is_empty());
}

#[test]
fn ntlm_failures_over_smb_count_once_each_and_a_4776_of_the_same_logon_is_not_a_second() {
    let mut activities = Vec::new();
    for n in 0..10 {
        activities.push(ntlm_authenticate(
            n * SECOND,
            ATTACKER,
            SMB,
            "LAB",
            "carol",
            0xC000_006D,
            |_| {},
        ));
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
