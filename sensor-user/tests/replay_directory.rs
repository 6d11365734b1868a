//! `dcwatch-sensor replay --directory`: lab captures replayed with the lab's directory snapshot
//! (testdata/directory/adlab.jsonl; its README says where each SID comes from) give activities
//! whose accounts and computers carry the directory's SIDs and tags.

use std::{collections::BTreeMap, process::Command};

use dcwatch_tests::corpus;
use serde_json::Value;

const SENSOR: &str = env!("CARGO_BIN_EXE_dcwatch-sensor");
const DOMAIN_SID: &str = "S-1-5-21-3865083622-992237312-3860965316";

fn replay(capture: &str, directory: bool) -> Vec<Value> {
    let mut command = Command::new(SENSOR);
    command.args(["replay", "--output", "json"]);
    if directory {
        command
            .arg("--directory")
            .arg(corpus::dir().join("../directory/adlab.jsonl"));
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

fn tags(entity: &Value) -> Vec<(String, String)> {
    entity["tags"]
        .as_array()
        .map(|tags| {
            tags.iter()
                .map(|tag| {
                    (
                        tag["name"].as_str().unwrap_or_default().to_owned(),
                        tag["reason"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn lab_captures_replayed_with_the_lab_directory_carry_sids_and_tags() {
    // The RIDs project-recon-samr.pcap's SAMR answers give.
    let rids = BTreeMap::from([
        ("administrator", 500),
        ("alice", 1103),
        ("bob", 1104),
        ("carol", 1105),
        ("svc_sql", 1106),
    ]);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut dc_computers = 0;
    for capture in [
        "adlab/asreproast.pcap",
        "adlab/kerberos.pcap",
        "adlab/project-pass-the-hash.pcap",
        "adlab/project-recon-samr.pcap",
        "adlab/bruteforce.pcap",
    ] {
        let bare = replay(capture, false);
        assert!(
            bare.iter()
                .all(|activity| activity["account"]["sid"].is_null()),
            "{capture}: no SID without a directory"
        );
        for activity in replay(capture, true) {
            let account = &activity["account"];
            if let Some(name) = account["name"].as_str()
                && let Some(rid) = rids.get(name.to_lowercase().as_str())
            {
                assert_eq!(
                    account["sid"].as_str(),
                    Some(format!("{DOMAIN_SID}-{rid}").as_str()),
                    "{capture}: {activity}"
                );
                *seen.entry(name.to_lowercase()).or_default() += 1;
                let tags = tags(account);
                match name.to_lowercase().as_str() {
                    "bob" => assert!(
                        tags.iter().any(|(tag, _)| tag == "dont_req_preauth"),
                        "{activity}"
                    ),
                    "administrator" => assert!(
                        tags.contains(&(
                            "sensitive".to_owned(),
                            "member of Domain Admins".to_owned()
                        )),
                        "{activity}"
                    ),
                    _ => assert!(tags.is_empty(), "{activity}"),
                }
            }
            for key in ["source_computer", "destination_computer"] {
                let computer = &activity[key];
                if computer["name"].as_str() == Some("dc1.lab.example") {
                    assert_eq!(
                        computer["sid"].as_str(),
                        Some(format!("{DOMAIN_SID}-1000").as_str())
                    );
                    assert!(tags(computer).iter().any(|(tag, _)| tag == "dc"));
                    dc_computers += 1;
                }
            }
        }
    }
    for name in ["administrator", "alice", "bob"] {
        assert!(seen.contains_key(name), "no activity of {name}: {seen:?}");
    }
    assert!(dc_computers > 0, "dc1.lab.example never matched to DC1$");
}
