//! `cargo xtask e2e`: the sensor on the lab's mirror port, each scenario played against the real
//! Samba AD DC, and the activities each must produce checked, with no frame lost.
//!
//! One sensor run per scenario, so that what a scenario produced is what the sensor printed
//! while it ran. The lab (tests/lab/lab.sh) is brought up first and taken down at the end
//! unless `--keep` is given.

use std::{path::Path, process::Command, time::Duration};

use anyhow::{Context as _, bail};
use dcwatch_tests::{
    sensor_process::{RunDir, SensorProcess},
    stats_file,
};
use serde_json::Value;

use crate::{
    lab::{self, LabTask},
    shell,
};

/// The namespace and interface of the lab's mirror port (tests/lab/lab.sh).
pub const SENSOR_NAMESPACE: &str = "dcwlab-sensor";
pub const MIRROR_INTERFACE: &str = "sensor0";

/// What one scenario's activities must include.
struct Expectation {
    what: &'static str,
    at_least: usize,
    matches: fn(&Value) -> bool,
}

fn field<'a>(activity: &'a Value, key: &str) -> &'a str {
    activity[key].as_str().unwrap_or_default()
}

fn is(activity: &Value, protocol: &str, kind: &str) -> bool {
    field(activity, "protocol") == protocol && field(activity, "type") == kind
}

/// The activities each scenario must produce, from what the protocols parsed so far can see
/// (SMB and DCE-RPC scenarios are checked for loss only until those protocols are parsed).
fn expectations(scenario: &str) -> Vec<Expectation> {
    match scenario {
        "benign" => vec![
            Expectation {
                what: "a Kerberos AS-REP for alice",
                at_least: 1,
                matches: |a| is(a, "kerberos", "AS_REP") && field(a, "client") == "alice",
            },
            Expectation {
                what: "service tickets",
                at_least: 1,
                matches: |a| is(a, "kerberos", "TGS_REP"),
            },
            Expectation {
                what: "LDAP binds",
                at_least: 1,
                matches: |a| is(a, "ldap", "BIND"),
            },
            Expectation {
                what: "DNS lookups",
                at_least: 1,
                matches: |a| is(a, "dns", "QUERY"),
            },
        ],
        "kerberoast" => vec![Expectation {
            // impacket asks for the ticket by the account's name rather than its SPN.
            what: "an RC4 service ticket for svc_sql, the account with the SQL service's SPN",
            at_least: 1,
            matches: |a| {
                is(a, "kerberos", "TGS_REP")
                    && (field(a, "service") == "svc_sql"
                        || field(a, "service").starts_with("MSSQLSvc/"))
                    && a["ticket_etype"] == 23
            },
        }],
        "asreproast" => vec![Expectation {
            what: "an AS-REP for bob, who needs no pre-authentication",
            at_least: 1,
            matches: |a| is(a, "kerberos", "AS_REP") && field(a, "client") == "bob",
        }],
        "overpass-the-hash" => vec![Expectation {
            what: "an AS-REQ asking for RC4 only",
            at_least: 1,
            matches: |a| is(a, "kerberos", "AS_REQ") && a["etypes"] == serde_json::json!([23]),
        }],
        "bruteforce-kerberos" => vec![Expectation {
            what: "pre-authentication failures",
            at_least: 3,
            matches: |a| is(a, "kerberos", "KRB_ERROR") && a["error_code"] == 24,
        }],
        "bruteforce-ldap" => vec![Expectation {
            what: "LDAP binds refused with invalidCredentials",
            at_least: 3,
            matches: |a| is(a, "ldap", "BIND") && a["result_code"] == 49,
        }],
        "recon-ldap" => vec![Expectation {
            what: "LDAP searches (or their sealed messages)",
            at_least: 1,
            matches: |a| is(a, "ldap", "SEARCH") || is(a, "ldap", "SEALED"),
        }],
        "axfr" => vec![Expectation {
            what: "a zone transfer request",
            at_least: 1,
            matches: |a| is(a, "dns", "AXFR"),
        }],
        _ => Vec::new(),
    }
}

/// How many scenarios met their expectations.
#[derive(Clone, Copy, Debug)]
pub struct Totals {
    pub passed: u64,
    pub failed: u64,
}

pub fn run(scenarios: &[String], keep: bool) -> anyhow::Result<()> {
    let totals = play_all(scenarios, keep)?;
    if totals.failed > 0 {
        bail!(
            "{} of {} scenario(s) failed",
            totals.failed,
            totals.passed + totals.failed
        );
    }
    Ok(())
}

/// Brings the lab up, plays `scenarios` (all when empty) with the checks of each, and takes the
/// lab down unless `keep`. A failing scenario is reported and counted; the others still play.
pub fn play_all(scenarios: &[String], keep: bool) -> anyhow::Result<Totals> {
    shell::require_root("e2e")?;
    let sensor = shell::build_sensor("e2e")?;
    lab::run(LabTask::Up)?;
    let scenarios = if scenarios.is_empty() {
        lab::scenario_names()?
    } else {
        scenarios.to_vec()
    };
    let mut failures = Vec::new();
    println!(
        "{:<22} {:>10} {:>8}  result",
        "scenario", "activities", "frames"
    );
    for scenario in &scenarios {
        match check(&sensor, scenario) {
            Ok((activities, frames)) => println!("{scenario:<22} {activities:>10} {frames:>8}  ok"),
            Err(failure) => {
                println!("{scenario:<22} {:>10} {:>8}  FAILED: {failure:#}", "-", "-");
                failures.push(scenario.clone());
            }
        }
    }
    if !keep {
        lab::run(LabTask::Down)?;
    }
    if !failures.is_empty() {
        eprintln!("e2e: failed: {}", failures.join(", "));
    }
    Ok(Totals {
        passed: (scenarios.len() - failures.len()) as u64,
        failed: failures.len() as u64,
    })
}

/// What the sensor reported while one scenario played.
pub struct Played {
    pub activities: Vec<Value>,
    /// Frames the sensor delivered from the ring.
    pub frames: u64,
}

/// Runs the sensor on the mirror while `scenario` plays; checks that no frame was lost.
pub fn play(sensor: &Path, scenario: &str) -> anyhow::Result<Played> {
    let run = RunDir::create()?;
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", SENSOR_NAMESPACE])
        .arg(sensor)
        .args(run.run_args(
            &[MIRROR_INTERFACE],
            &["--mode", "mirror", "--output", "json"],
        ));
    let process = SensorProcess::spawn(command, 1).context("starting the sensor")?;
    let played = lab::run(LabTask::Scenario {
        names: vec![scenario.to_owned()],
        capture: None,
    });
    // Let the last frames through the mirror and the ring, and a stats write happen.
    std::thread::sleep(Duration::from_secs(2));
    let finished = process.stop()?;
    played.with_context(|| format!("playing {scenario}"))?;
    if !finished.status.success() {
        bail!(
            "the sensor exited with {}: {}",
            finished.status,
            finished.stderr.join("\n")
        );
    }
    let stats = stats_file::read(&run.stats)?;
    let counter = |name| stats_file::counter(&stats, name);
    if counter("ringbuf_full") != 0 || counter("matched") != counter("copied") {
        bail!("frames lost in the ring: {stats:?}");
    }
    if counter("delivered") != counter("copied") || counter("decode_errors") != 0 {
        bail!("frames lost after the ring: {stats:?}");
    }
    let activities: Vec<Value> = finished
        .stdout
        .iter()
        .map(|line| serde_json::from_str(line))
        .collect::<Result<_, _>>()
        .context("an activity that is not JSON")?;
    Ok(Played {
        activities,
        frames: counter("delivered"),
    })
}

/// Plays `scenario` and checks the activities it must produce.
fn check(sensor: &Path, scenario: &str) -> anyhow::Result<(usize, u64)> {
    let Played { activities, frames } = play(sensor, scenario)?;
    for expectation in expectations(scenario) {
        let found = activities
            .iter()
            .filter(|activity| (expectation.matches)(activity))
            .count();
        if found < expectation.at_least {
            bail!(
                "expected at least {} x {}, found {found}",
                expectation.at_least,
                expectation.what
            );
        }
    }
    Ok((activities.len(), frames))
}
