//! The cluster end to end, with real processes on loopback: Debian's PostgreSQL and
//! nats-server, `dcwatch-backend serve --role ingest|detect|api`, and simulated sensors (the
//! gRPC client of tests/support) sending the sensor's own activities of lab captures
//! (tests/data). What the cluster stores must be the union the sensors sent, and its alerts
//! those of a single `all` node on SQLite fed the same batches.
//!
//! This is the short version, run by default: 1 NATS node, PostgreSQL, 1 ingest, 1 detect and
//! 1 api node, 4 sensors. The full one (a 3-node NATS cluster, 2 ingest and 2 detect nodes, 50
//! sensors and the faults, behind `cargo xtask test --full`) is not written yet.

mod cluster_support;
mod console_support;
mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    time::Duration,
};

use cluster_support::{Nats, Postgres};
use dcwatch_backend::store::{AlertQuery, Query, Storage, Store, postgres::PgStore};
use dcwatch_proto::v1::Activity;
use prost::Message as _;
use support::{Backend, Sensor, eventually, run};

/// The lab captures replayed, each by one sensor (tests/data/README.md).
const CAPTURES: &[&str] = &[
    "bruteforce",
    "dcsync",
    "kerberoast",
    "asreproast",
    "pth",
    "project-recon-samr",
    "project-psexec",
    "project-honeytoken",
    "project-golden-ticket",
    "project-petitpotam",
    "project-zerologon",
];
/// Activities per batch: small, so a capture is many batches.
const BATCH: usize = 25;

fn capture(name: &str) -> Vec<Activity> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(format!("{name}.jsonl"));
    std::fs::read_to_string(&path)
        .expect("the capture's activities")
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(console_support::activity_from_line)
        .collect()
}

/// What each sensor sends: its id and its batches, in order.
struct Plan {
    sensors: Vec<(String, Vec<Vec<Activity>>)>,
}

impl Plan {
    /// `count` sensors; capture i goes to sensor i % count.
    fn new(count: usize) -> Self {
        let mut sensors: Vec<(String, Vec<Vec<Activity>>)> = (0..count)
            .map(|index| (format!("sensor-{index:02}"), Vec::new()))
            .collect();
        for (index, name) in CAPTURES.iter().enumerate() {
            let activities = capture(name);
            sensors[index % count]
                .1
                .extend(activities.chunks(BATCH).map(<[Activity]>::to_vec));
        }
        Self { sensors }
    }

    fn activity_count(&self) -> usize {
        self.sensors
            .iter()
            .flat_map(|(_, batches)| batches)
            .map(Vec::len)
            .sum()
    }

    /// Every activity sent, as its encoding, sorted: the union to compare with.
    fn union(&self) -> Vec<Vec<u8>> {
        let mut all: Vec<Vec<u8>> = self
            .sensors
            .iter()
            .flat_map(|(_, batches)| batches)
            .flatten()
            .map(prost::Message::encode_to_vec)
            .collect();
        all.sort();
        all
    }
}

/// The configuration shared by every node: the lab's facts for detection (the DCs and the
/// honeytoken of testdata/pcaps/alerts/adlab.toml), the cluster's servers.
fn write_config(dir: &Path, data_dir: &Path, cluster: &str) -> PathBuf {
    let detect = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/pcaps/alerts/adlab.toml"),
    )
    .expect("the lab's detection facts");
    let path = dir.join(format!(
        "{}.toml",
        data_dir
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("node")
    ));
    std::fs::write(
        &path,
        format!(
            "data_dir = \"{}\"\n[stats]\nfile = \"{}\"\ninterval_secs = 1\n{detect}\n{cluster}\n",
            data_dir.display(),
            data_dir.join("stats.json").display()
        ),
    )
    .expect("config");
    path
}

fn cluster_section(postgres_url: &str, nats: &[String], partitions: u32) -> String {
    let urls: Vec<String> = nats.iter().map(|url| format!("\"{url}\"")).collect();
    format!(
        "[cluster]\npostgres_url = \"{postgres_url}\"\nnats_urls = [{}]\npartitions = {partitions}\n",
        urls.join(", ")
    )
}

/// A counter of a node's stats file (0 before the file exists).
fn counter(data_dir: &Path, name: &str) -> u64 {
    std::fs::read_to_string(data_dir.join("stats.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|stats| stats.get(name).and_then(serde_json::Value::as_u64))
        .unwrap_or(0)
}

/// Tokens for every sensor, added through `config` (to its store); token by sensor id.
fn tokens(config: &Path, plan: &Plan) -> BTreeMap<String, String> {
    plan.sensors
        .iter()
        .map(|(id, _)| {
            let token = run(&[
                "token",
                "add",
                id,
                "--config",
                config.to_str().expect("utf-8"),
            ])
            .expect("token add");
            (id.clone(), token.trim().to_owned())
        })
        .collect()
}

/// Sends every sensor's batches to `backend` (one sensor after another, so the order is the
/// same on every run), each acknowledged before the next.
fn replay(backend: &Backend, ca: &[u8], plan: &Plan, tokens: &BTreeMap<String, String>) {
    tokio::runtime::Runtime::new()
        .expect("a runtime")
        .block_on(replay_async(backend, ca, plan, tokens));
}

async fn replay_async(
    backend: &Backend,
    ca: &[u8],
    plan: &Plan,
    tokens: &BTreeMap<String, String>,
) {
    for (id, batches) in &plan.sensors {
        let mut sensor = Sensor::open(backend.address, ca, id, &tokens[id])
            .await
            .expect("a sensor's stream");
        for (sequence, batch) in (1_u64..).zip(batches) {
            assert_eq!(
                sensor.batch(sequence, batch).await.expect("acknowledged"),
                sequence
            );
        }
    }
}

/// Alerts as compared: what detection decided (id, type, entity, how much evidence).
fn alert_keys(store: &mut dyn Storage) -> BTreeSet<(String, String, String, u64)> {
    store
        .alerts(&AlertQuery::default())
        .expect("alerts")
        .into_iter()
        .map(|alert| (alert.id, alert.r#type, alert.primary_key, alert.count))
        .collect()
}

fn stored_union(store: &mut dyn Storage) -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    store
        .activities(&Query::default(), &mut |stored| {
            all.push(stored.activity.encode_to_vec());
            Ok(())
        })
        .expect("activities");
    all.sort();
    all
}

/// The reference: one `all` node on SQLite, fed the plan; its alerts.
fn single_node_alerts(dir: &Path, plan: &Plan) -> BTreeSet<(String, String, String, u64)> {
    let data_dir = dir.join("single");
    let config = write_config(dir, &data_dir, "");
    let tokens = tokens(&config, plan);
    let backend = Backend::start(&config).expect("the all node");
    let ca = std::fs::read(data_dir.join("tls/ca.pem")).expect("its CA");
    replay(&backend, &ca, plan, &tokens);
    let total = u64::try_from(plan.activity_count()).expect("count");
    eventually("the all node judged everything", || {
        (counter(&data_dir, "detect_activities") >= total).then_some(())
    })
    .expect("judged");
    backend.stop().expect("a clean stop");
    alert_keys(&mut Store::open(&data_dir).expect("its store"))
}

#[test]
fn a_small_cluster_stores_the_union_and_alerts_as_one_node() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let plan = Plan::new(4);
    let expected = single_node_alerts(dir.path(), &plan);
    assert!(
        expected.len() >= 5,
        "the captures raise alerts on one node: {expected:?}"
    );

    let postgres = Postgres::start(false).expect("PostgreSQL");
    let url = postgres.database("dcwatch").expect("a database");
    let nats = Nats::start(1).expect("nats-server");
    let cluster = cluster_section(&url, &nats.urls(), 4);
    let node = |name: &str| {
        let data_dir = dir.path().join(name);
        (write_config(dir.path(), &data_dir, &cluster), data_dir)
    };
    let (ingest_config, ingest_dir) = node("ingest");
    let (detect_config, detect_dir) = node("detect");
    let (api_config, _) = node("api");
    run(&[
        "store",
        "migrate",
        "--config",
        ingest_config.to_str().expect("utf-8"),
    ])
    .expect("store migrate");
    let tokens = tokens(&ingest_config, &plan);
    let ingest = Backend::start_role(&ingest_config, "ingest").expect("the ingest node");
    let detect = Backend::start_role(&detect_config, "detect").expect("the detect node");
    let api = Backend::start_role(&api_config, "api").expect("the api node");
    let ca = std::fs::read(ingest_dir.join("tls/ca.pem")).expect("the ingest node's CA");
    replay(&ingest, &ca, &plan, &tokens);

    let mut store = PgStore::connect(&url).expect("the shared store");
    assert_eq!(
        stored_union(&mut store),
        plan.union(),
        "the stored activities are the union the sensors sent, once each"
    );
    let total = u64::try_from(plan.activity_count()).expect("count");
    eventually("the detect node judged everything", || {
        (counter(&detect_dir, "detect_activities") >= total).then_some(())
    })
    .expect("judged");
    // Its last chunk's alerts are stored before its counters say it judged them.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        alert_keys(&mut store),
        expected,
        "the cluster's alerts are the single node's"
    );
    assert_eq!(
        counter(&detect_dir, "detect_activities"),
        total,
        "each activity judged once"
    );
    // The alerts command reads them from the shared store, anywhere the configuration is.
    let listed = run(&["alerts", "--config", api_config.to_str().expect("utf-8")]).expect("alerts");
    assert_eq!(listed.lines().count(), expected.len());
    assert!(counter(&ingest_dir, "cluster_messages_published") > 0);
    for node in [ingest, detect, api] {
        node.stop().expect("a clean stop");
    }
}
