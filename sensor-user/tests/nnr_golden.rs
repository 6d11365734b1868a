//! Network name resolution on the bundled captures, against what tshark finds in them
//! (testdata/pcaps/nnr, made by testdata/pcaps/make-activities.py: its docstring gives the
//! rules, one `address<TAB>method<TAB>name` line per fact).
//!
//! For every capture with an activities file (so the script has read it):
//! - the facts the resolver's table holds at the end of the replay are exactly the expected
//!   ones (none when the capture has no nnr file);
//! - every computer an activity names is a name the evidence gives one of its endpoints.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::Path,
};

use dcwatch_pipeline::{capture_file::CaptureFile, frame::Frame};
use dcwatch_tests::corpus;
use sensor_user::{
    cli::OutputFormat,
    config::Config,
    pipeline::{Output, Pipeline},
};
use serde_json::Value;

type Fact = (String, String, String);

/// Replays a capture through the sensor's pipeline: the JSON lines, and the table's facts.
fn replay(path: &Path) -> (Vec<Value>, BTreeSet<Fact>) {
    let config = Config::default();
    let mut out = Vec::new();
    let facts = {
        let mut pipeline = Pipeline::new(
            Some(Output::new(&mut out, OutputFormat::Json)),
            HashMap::new(),
            config.dissect_limits(),
            "golden".to_owned(),
        )
        .with_resolver(config.resolver());
        let mut file = CaptureFile::open(path).expect("open the capture");
        while let Some(record) = file.next_frame().expect("read a frame") {
            let frame = Frame {
                timestamp_ns: record.timestamp_ns,
                ifindex: 0,
                orig_len: record.orig_len,
                data: record.data,
                rpc_port: None,
            };
            pipeline.handle(record.link, frame).expect("handle");
        }
        pipeline.finish().expect("finish");
        pipeline
            .resolver()
            .table()
            .facts()
            .map(|(address, name, method)| {
                (
                    address.to_string(),
                    method.as_str_name().to_owned(),
                    name.to_owned(),
                )
            })
            .collect()
    };
    let activities = String::from_utf8(out)
        .expect("UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    (activities, facts)
}

fn expected(capture: &str) -> BTreeSet<Fact> {
    let file = corpus::dir()
        .join("nnr")
        .join(format!("{}.tsv", capture.replace('/', "_")));
    let Ok(text) = std::fs::read_to_string(file) else {
        return BTreeSet::new();
    };
    text.lines()
        .filter(|line| !line.is_empty())
        .map(|line| {
            let mut parts = line.splitn(3, '\t').map(str::to_owned);
            let mut next = || parts.next().unwrap_or_default();
            (next(), next(), next())
        })
        .collect()
}

/// `10.0.0.5:445` or `[fd00::1]:53` without its port.
fn address_of(endpoint: &Value) -> String {
    let text = endpoint.as_str().unwrap_or_default();
    let host = text.rsplit_once(':').map_or(text, |(host, _)| host);
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned()
}

#[test]
fn resolution_on_captures_matches_the_names_tshark_finds() {
    let captures: Vec<String> = corpus::captures()
        .expect("manifest")
        .into_iter()
        .filter(|capture| {
            corpus::dir()
                .join("activities")
                .join(format!("{}.tsv", capture.replace('/', "_")))
                .exists()
        })
        .collect();
    let mut failures = Vec::new();
    let (mut facts_total, mut named) = (0, 0);
    let mut by_method: BTreeMap<String, usize> = BTreeMap::new();
    for capture in &captures {
        let want = expected(capture);
        let (activities, got) = replay(&corpus::dir().join(capture));
        facts_total += want.len();
        for (_, method, _) in &want {
            *by_method.entry(method.clone()).or_default() += 1;
        }
        if want != got {
            failures.push(format!(
                "{capture}: facts\n  missing {:?}\n  unexpected {:?}",
                want.difference(&got).collect::<Vec<_>>(),
                got.difference(&want).collect::<Vec<_>>()
            ));
        }
        let names: BTreeMap<&str, BTreeSet<&str>> =
            want.iter()
                .fold(BTreeMap::new(), |mut names, (address, _, name)| {
                    names
                        .entry(address.as_str())
                        .or_default()
                        .insert(name.as_str());
                    names
                });
        for activity in &activities {
            let ends = [address_of(&activity["src"]), address_of(&activity["dst"])];
            for key in ["source_computer", "destination_computer"] {
                let Some(name) = activity[key]["name"].as_str() else {
                    continue;
                };
                named += 1;
                let known = ends.iter().any(|end| {
                    names
                        .get(end.as_str())
                        .is_some_and(|set| set.contains(name))
                });
                if !known {
                    failures.push(format!("{capture}: {key} {name} is no name of {ends:?}"));
                }
            }
        }
    }
    let summary = format!(
        "{} captures, {facts_total} expected facts {by_method:?}, {named} computers named",
        captures.len()
    );
    assert!(facts_total >= 40, "{summary}");
    for method in [
        "NTLM_WORKSTATION",
        "KERBEROS_PRINCIPAL",
        "DNS",
        "NETBIOS",
        "NETBIOS_NODE_STATUS",
        "RDP_COOKIE",
        "RADIUS",
    ] {
        assert!(
            by_method.contains_key(method),
            "no {method} fact in the corpus"
        );
    }
    assert!(named >= 100, "only {named} computers named");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
