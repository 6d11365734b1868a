//! Golden alerts: `dcwatch-sensor replay --alerts json` over every bundled capture, compared
//! with testdata/pcaps/alerts/expected.tsv, written from what each capture is known to show
//! (its manifest line). Each capture must raise exactly the listed alert types, as many alerts
//! of each as listed, and every capture not listed none. `--alerts cef` must print the same
//! alerts, each as a CEF line the sensor's own CEF parser reads back.

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Command,
};

use dcwatch_parsers::winevent::cef_message;
use dcwatch_tests::corpus;
use serde_json::Value;

const SENSOR: &str = env!("CARGO_BIN_EXE_dcwatch-sensor");

/// Per capture: the expected alert types and how many alerts of each, or `None` for an attack
/// capture Part I cannot judge (the file says why).
fn expected() -> BTreeMap<String, Option<BTreeMap<String, usize>>> {
    let text =
        std::fs::read_to_string(corpus::dir().join("alerts/expected.tsv")).expect("expected.tsv");
    let mut expected: BTreeMap<String, Option<BTreeMap<String, usize>>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
    {
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields.len(), 4, "expected.tsv: {line}");
        assert!(
            !fields[3].trim().is_empty(),
            "expected.tsv: a row without its reason: {line}"
        );
        if fields[1] == "-" {
            expected.insert(fields[0].to_owned(), None);
            continue;
        }
        let count: usize = fields[2].parse().expect("a count");
        expected
            .entry(fields[0].to_owned())
            .or_insert_with(|| Some(BTreeMap::new()))
            .as_mut()
            .expect("a capture both judged and not")
            .insert(fields[1].to_owned(), count);
    }
    expected
}

/// The captures expected.tsv says raise alerts.
fn alerting_captures() -> Vec<String> {
    expected()
        .into_iter()
        .filter(|(_, types)| types.as_ref().is_some_and(|types| !types.is_empty()))
        .map(|(capture, _)| capture)
        .collect()
}

fn alerts_of(capture: &str) -> Vec<Value> {
    replay_alerts(capture, "json")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

/// What `replay --alerts FORMAT` prints for a capture.
fn replay_alerts(capture: &str, format: &str) -> String {
    let mut command = Command::new(SENSOR);
    command.args(["replay", "--alerts", format]);
    if capture.starts_with("adlab/") {
        command
            .arg("--config")
            .arg(corpus::dir().join("alerts/adlab.toml"));
    }
    let output = command
        .arg(corpus::dir().join(capture))
        .output()
        .expect("run the sensor");
    assert!(
        output.status.success(),
        "{capture}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// A JSON member as text: proto3's JSON writes 64-bit integers as strings, others as numbers.
fn text(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

/// An RFC 3339 UTC time without its zone: CEF writes `Z`, proto3's JSON `+00:00`.
fn utc(time: &str) -> &str {
    time.strip_suffix('Z')
        .or_else(|| time.strip_suffix("+00:00"))
        .unwrap_or_else(|| panic!("{time}: not UTC"))
}

#[test]
fn cef_lines_carry_the_same_alerts_as_json() {
    let captures = alerting_captures();
    assert!(!captures.is_empty());
    let mut compared = 0;
    for capture in &captures {
        let json = alerts_of(capture);
        let cef = replay_alerts(capture, "cef");
        let lines: Vec<&str> = cef.lines().collect();
        assert_eq!(
            lines.len(),
            json.len(),
            "{capture}: one CEF line per alert:\n{cef}"
        );
        for (line, alert) in lines.iter().zip(&json) {
            let read = cef_message(line).unwrap_or_else(|| panic!("{capture}: not CEF: {line}"));
            // CEF's severities are MDI's: Low 3, Medium 5, High 10 (DETECTIONS.md).
            let severity = match alert["severity"].as_str() {
                Some("LOW") => "3",
                Some("MEDIUM") => "5",
                Some("HIGH") => "10",
                other => panic!("{capture}: severity {other:?}"),
            };
            assert_eq!(
                read.header,
                [
                    "CEF:0",
                    "dcwatch",
                    "dcwatch",
                    env!("CARGO_PKG_VERSION"),
                    alert["class"].as_str().expect("a class"),
                    alert["title"].as_str().expect("a title"),
                    severity,
                ],
                "{capture}: {line}"
            );
            let fields = [
                ("externalId", text(&alert["external_id"])),
                ("cnt", text(&alert["count"])),
                ("msg", text(&alert["description"]).trim().to_owned()),
            ];
            for (key, value) in &fields {
                assert_eq!(
                    read.get(key),
                    Some(value.as_str()),
                    "{capture}: {key} in {line}"
                );
            }
            for key in ["start", "end"] {
                assert_eq!(
                    read.get(key).map(utc),
                    alert[key].as_str().map(utc),
                    "{capture}: {key} in {line}"
                );
            }
            assert_eq!(
                read.custom("dcwatchAlertId"),
                alert["id"].as_str(),
                "{capture}: {line}"
            );
            let anomalies = &read.anomalies;
            assert!(
                !anomalies.missing_fields && !anomalies.bad_escape && !anomalies.too_many_fields,
                "{capture}: {line}"
            );
            compared += 1;
        }
    }
    assert!(compared >= captures.len(), "{compared} alerts compared");
}

#[test]
fn every_capture_raises_exactly_the_alerts_it_is_known_to_show() {
    let expected = expected();
    let captures = corpus::captures().expect("manifest");
    for listed in expected.keys() {
        assert!(
            captures.contains(listed),
            "expected.tsv names {listed}, which is not in the manifest"
        );
    }
    let mut failures = Vec::new();
    for capture in &captures {
        let wanted = match expected.get(capture) {
            Some(None) => continue,
            Some(Some(types)) => types.clone(),
            None => BTreeMap::new(),
        };
        let alerts = alerts_of(capture);
        let mut got: BTreeMap<String, usize> = BTreeMap::new();
        for alert in &alerts {
            *got.entry(alert["type"].as_str().unwrap_or_default().to_owned())
                .or_default() += 1;
            // Every alert carries what an analyst and a SIEM need.
            for field in [
                "id",
                "external_id",
                "class",
                "title",
                "description",
                "severity",
                "start",
                "end",
                "primary_key",
            ] {
                assert!(
                    !alert[field].is_null(),
                    "{capture}: an alert without {field}: {alert}"
                );
            }
        }
        if got != wanted {
            let descriptions: BTreeSet<String> = alerts
                .iter()
                .map(|alert| format!("{}: {}", alert["type"], alert["description"]))
                .collect();
            failures.push(format!(
                "{capture}: expected {wanted:?}, got {got:?} {descriptions:#?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
