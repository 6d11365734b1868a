//! `dcwatch-sensor replay --workers N` over the whole bundled corpus (one stream): with 2 and 4
//! workers, the activities between every pair of hosts (the flows sharding keeps together) are
//! those of 1 worker, in the same order, and every counter but the memory peak is the same.

use std::{collections::BTreeMap, path::Path, process::Command};

use dcwatch_tests::corpus;
use serde_json::Value;

const SENSOR: &str = env!("CARGO_BIN_EXE_dcwatch-sensor");

/// Activities by the unordered pair of their two addresses, each list in output order; and the
/// stats file's counters.
struct Replay {
    by_hosts: BTreeMap<(String, String), Vec<String>>,
    lines: usize,
    counters: BTreeMap<String, Value>,
}

fn host(endpoint: &Value) -> String {
    let text = endpoint.as_str().unwrap_or_default();
    // "ip:port", "[ipv6]:port", or an address alone.
    match text.rsplit_once(':') {
        Some((address, port)) if port.parse::<u16>().is_ok() && !address.ends_with(':') => {
            address.trim_matches(['[', ']']).to_owned()
        }
        _ => text.to_owned(),
    }
}

fn replay(workers: u16, dir: &Path) -> Replay {
    let stats = dir.join(format!("stats-{workers}.json"));
    let captures = corpus::captures().expect("manifest");
    let output = Command::new(SENSOR)
        .args(["replay", "--output", "json", "--workers"])
        .arg(workers.to_string())
        .arg("--stats-file")
        .arg(&stats)
        .args(captures.iter().map(|capture| corpus::dir().join(capture)))
        .output()
        .expect("run the sensor");
    assert!(
        output.status.success(),
        "{workers} workers: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("UTF-8");
    let mut by_hosts: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for line in stdout.lines() {
        let activity: Value = serde_json::from_str(line).expect("a JSON line");
        let (a, b) = (host(&activity["src"]), host(&activity["dst"]));
        let pair = if a <= b { (a, b) } else { (b, a) };
        by_hosts.entry(pair).or_default().push(line.to_owned());
    }
    let stats: Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).expect("stats file")).expect("JSON");
    let counters = stats
        .as_object()
        .expect("an object")
        .iter()
        // The peak is each worker's own peak added up; the time is the file's writing.
        .filter(|(name, _)| !matches!(name.as_str(), "memory_peak" | "time"))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    Replay {
        by_hosts,
        lines: stdout.lines().count(),
        counters,
    }
}

#[test]
fn more_workers_give_every_flow_the_same_activities_in_the_same_order() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let one = replay(1, dir.path());
    assert!(
        one.lines > 500 && one.by_hosts.len() > 20,
        "{} activities between {} pairs of hosts: too few to show anything",
        one.lines,
        one.by_hosts.len()
    );
    for workers in [2, 4] {
        let many = replay(workers, dir.path());
        assert_eq!(many.lines, one.lines, "{workers} workers: activities");
        for (pair, activities) in &one.by_hosts {
            assert_eq!(
                many.by_hosts.get(pair),
                Some(activities),
                "{workers} workers: between {pair:?}"
            );
        }
        assert_eq!(many.counters, one.counters, "{workers} workers: counters");
    }
}
