//! Golden alerts: `dcwatch-sensor replay --alerts json` over every bundled capture, compared
//! with testdata/pcaps/alerts/expected.tsv, written from what each capture is known to show
//! (its manifest line). Each capture must raise exactly the listed alert types, as many alerts
//! of each as listed, and every capture not listed none.

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Command,
};

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

fn alerts_of(capture: &str) -> Vec<Value> {
    let mut command = Command::new(SENSOR);
    command.args(["replay", "--alerts", "json"]);
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
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
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
