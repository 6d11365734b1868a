//! The cluster end to end, with real processes on loopback: Debian's PostgreSQL and
//! nats-server, `dcwatch-backend serve --role ingest|detect|api`, and simulated sensors (the
//! gRPC client of tests/support) sending the sensor's own activities of lab captures
//! (tests/data). What the cluster stores must be the union the sensors sent, and its alerts
//! those of a single `all` node on SQLite fed the same batches.
//!
//! The short version runs by default: 1 NATS node, PostgreSQL, 1 ingest, 1 detect and 1 api
//! node, 4 sensors. The full one, behind `cargo xtask test --full`, has a 3-node NATS cluster,
//! 2 ingest and 2 detect nodes, 50 sensors, and the faults (kill -9 of a detect and of an
//! ingest node, a NATS node stopped, PostgreSQL restarted, detection stalled until the stream
//! is full).

mod console_support;
#[expect(
    dead_code,
    reason = "the support module serves the alert tests too: rsyslog is theirs"
)]
mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    time::Duration,
};

use dcwatch_backend::store::{AlertQuery, Query, Storage, Store, postgres::PgStore};
use dcwatch_proto::v1::{
    Activity, Certainty, Computer, Endpoint, KerberosActivity, activity, kerberos_activity,
};
use dcwatch_tests::cluster_servers::{Nats, Postgres};
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

/// After `after` (seconds), the KDC gives alice a TGT at WS20 (10.98.0.20), and a minute later
/// WS21 (10.98.0.21) presents it: pass-the-ticket (adlab's DC is 10.98.0.1). The two clients'
/// source partitions differ: only the ticket's partition sees both.
fn passed_ticket(after: i64) -> Vec<Activity> {
    let kerberos = |seconds: i64, client: [u8; 4], name: &str, reply: bool| {
        let (client, kdc) = (
            Endpoint {
                ip: client.to_vec(),
                port: 50_000,
            },
            Endpoint {
                ip: vec![10, 98, 0, 1],
                port: 88,
            },
        );
        let r#type = if reply {
            kerberos_activity::Type::TgsRep
        } else {
            kerberos_activity::Type::TgsReq
        };
        Activity {
            sensor_id: "sensor-ptt".to_owned(),
            time: Some(pbjson_types::Timestamp { seconds, nanos: 0 }),
            src: Some(if reply { kdc.clone() } else { client.clone() }),
            dst: Some(if reply { client } else { kdc }),
            source_computer: Some(Computer {
                name: name.to_owned(),
                certainty: Certainty::High.into(),
                ..Computer::default()
            }),
            body: Some(activity::Body::Kerberos(KerberosActivity {
                r#type: r#type.into(),
                client: if reply { "alice" } else { "" }.to_owned(),
                client_realm: if reply { "LAB.EXAMPLE" } else { "" }.to_owned(),
                service: if reply {
                    "krbtgt/LAB.EXAMPLE"
                } else {
                    "cifs/fs1.lab.example"
                }
                .to_owned(),
                ticket_hash: vec![0x5a; 16],
                ..KerberosActivity::default()
            })),
            ..Activity::default()
        }
    };
    vec![
        kerberos(after + 60, [10, 98, 0, 20], "WS20", true),
        kerberos(after + 120, [10, 98, 0, 21], "WS21", false),
    ]
}

/// What each sensor sends: its id and its batches, in order.
struct Plan {
    sensors: Vec<(String, Vec<Vec<Activity>>)>,
}

impl Plan {
    /// `count` sensors; capture i goes to sensor i % count. Then one more sensor sees a ticket
    /// passed from one computer to another (no capture of the lab shows one).
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
        let last = sensors
            .iter()
            .flat_map(|(_, batches)| batches.iter().flatten())
            .filter_map(|activity| activity.time.as_ref().map(|time| time.seconds))
            .max()
            .expect("timed activities");
        sensors.push((format!("sensor-{count:02}"), vec![passed_ticket(last)]));
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
/// honeytoken of testdata/pcaps/alerts/adlab.toml) with pass-the-ticket raised at once (held,
/// it waits for a later activity of its partition), the cluster's servers.
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
            "data_dir = \"{}\"\n[stats]\nfile = \"{}\"\ninterval_secs = 1\n{detect}\n\
             pass_the_ticket_hold_minutes = 0\n{cluster}\n",
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

/// `serve --role ROLE --config CONFIG`; a role without a listener (detect, api) is up once it
/// says so, its `address` unspecified.
fn start_role(config: &Path, role: &str) -> anyhow::Result<Backend> {
    Backend::serve([
        std::ffi::OsStr::new("--role"),
        std::ffi::OsStr::new(role),
        std::ffi::OsStr::new("--config"),
        config.as_os_str(),
    ])
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
        send_batches(backend, ca, (id, &tokens[id]), 1, batches).await;
    }
}

/// Sends `batches` as sensor (id, token), numbered from `first`, each acknowledged before the
/// next.
async fn send_batches(
    backend: &Backend,
    ca: &[u8],
    (id, token): (&str, &str),
    first: u64,
    batches: &[Vec<Activity>],
) {
    let (mut sensor, _) = Sensor::open(backend.address, ca, id, token)
        .await
        .expect("a sensor's stream");
    for (sequence, batch) in (first..).zip(batches) {
        assert_eq!(
            sensor.batch(sequence, batch).await.expect("acknowledged"),
            sequence
        );
    }
}

/// Alerts as compared: what detection decided (id, type, entity, how much evidence).
type AlertKeys = BTreeSet<(String, String, String, u64)>;

fn alert_keys(store: &mut dyn Storage) -> AlertKeys {
    store
        .alerts(&AlertQuery::default())
        .expect("alerts")
        .into_iter()
        .map(|alert| (alert.id, alert.r#type, alert.primary_key, alert.count))
        .collect()
}

/// How many judgements a cluster makes of `activities`: every activity by the engine of its
/// source's partition and by that of its account's (or, without an account, its source's
/// again, among the partitions keyed by account), and a Kerberos activity with a ticket by
/// that of its ticket's too.
fn judgements<'a>(activities: impl IntoIterator<Item = &'a Activity>) -> u64 {
    activities
        .into_iter()
        .map(|activity| match &activity.body {
            Some(activity::Body::Kerberos(kerberos)) if !kerberos.ticket_hash.is_empty() => 3,
            _ => 2,
        })
        .sum()
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
fn single_node_alerts(dir: &Path, plan: &Plan) -> AlertKeys {
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

/// The default tests' cluster: PostgreSQL (migrated, the plan's sensors' tokens in it), one
/// NATS node, an ingest node and a detect node named `detect-a` (a detect node started again
/// from `node("detect-again")` takes its claims back at once). Its servers stop when it goes.
struct Cluster {
    dir: PathBuf,
    url: String,
    section: String,
    tokens: BTreeMap<String, String>,
    ingest: Option<Backend>,
    /// The ingest node's CA, for the sensors.
    ca: Vec<u8>,
    detect: Option<Backend>,
    detect_dir: PathBuf,
    _nats: Nats,
    _postgres: Postgres,
}

impl Cluster {
    fn start(dir: &Path, plan: &Plan) -> Self {
        let postgres = Postgres::start(false).expect("PostgreSQL");
        let url = postgres.database("dcwatch").expect("a database");
        let nats = Nats::start(1).expect("nats-server");
        let section = format!(
            "{}node = \"detect-a\"\n",
            cluster_section(&url, &nats.urls(), 4)
        );
        let mut cluster = Self {
            dir: dir.to_owned(),
            url,
            section,
            tokens: BTreeMap::new(),
            ingest: None,
            ca: Vec::new(),
            detect: None,
            detect_dir: PathBuf::new(),
            _nats: nats,
            _postgres: postgres,
        };
        let (ingest_config, ingest_dir) = cluster.node("ingest");
        run(&[
            "store",
            "migrate",
            "--config",
            ingest_config.to_str().expect("utf-8"),
        ])
        .expect("store migrate");
        cluster.tokens = tokens(&ingest_config, plan);
        cluster.ingest = Some(start_role(&ingest_config, "ingest").expect("the ingest node"));
        cluster.ca = std::fs::read(ingest_dir.join("tls/ca.pem")).expect("the ingest node's CA");
        let (detect_config, detect_dir) = cluster.node("detect");
        cluster.detect = Some(start_role(&detect_config, "detect").expect("the detect node"));
        cluster.detect_dir = detect_dir;
        cluster
    }

    /// A node's configuration and data directory.
    fn node(&self, name: &str) -> (PathBuf, PathBuf) {
        let data_dir = self.dir.join(name);
        (write_config(&self.dir, &data_dir, &self.section), data_dir)
    }

    fn ingest(&self) -> &Backend {
        self.ingest.as_ref().expect("the ingest node")
    }

    /// Stops the nodes still running, each cleanly.
    fn stop(mut self) {
        for node in [self.ingest.take(), self.detect.take()]
            .into_iter()
            .flatten()
        {
            node.stop().expect("a clean stop");
        }
    }
}

#[test]
fn a_small_cluster_stores_the_union_and_alerts_as_one_node() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let plan = Plan::new(4);
    let expected = single_node_alerts(dir.path(), &plan);
    let types: BTreeSet<&str> = expected.iter().map(|key| key.1.as_str()).collect();
    assert!(
        expected.len() >= 5
            && ["pass_the_ticket", "honeytoken_activity", "ldap_brute_force"]
                .iter()
                .all(|kind| types.contains(kind)),
        "the captures raise alerts of every key on one node: {expected:?}"
    );

    let cluster = Cluster::start(dir.path(), &plan);
    let (api_config, _) = cluster.node("api");
    let api = start_role(&api_config, "api").expect("the api node");
    replay(cluster.ingest(), &cluster.ca, &plan, &cluster.tokens);

    let mut store = PgStore::connect(&cluster.url).expect("the shared store");
    assert_eq!(
        stored_union(&mut store),
        plan.union(),
        "the stored activities are the union the sensors sent, once each"
    );
    let judged = judgements(
        plan.sensors
            .iter()
            .flat_map(|(_, batches)| batches)
            .flatten(),
    );
    let detect_dir = &cluster.detect_dir;
    eventually("the detect node judged everything", || {
        (counter(detect_dir, "detect_activities") >= judged).then_some(())
    })
    .expect("judged");
    // Its last chunk's alerts are stored before its counters say it judged them.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        alert_keys(&mut store),
        expected,
        "the cluster's alerts are the single node's, every type"
    );
    assert_eq!(
        counter(detect_dir, "detect_activities"),
        judged,
        "each activity judged once per key"
    );
    // The alerts command reads them from the shared store, anywhere the configuration is.
    let listed = run(&["alerts", "--config", api_config.to_str().expect("utf-8")]).expect("alerts");
    assert_eq!(listed.lines().count(), expected.len());
    assert!(counter(&cluster.dir.join("ingest"), "cluster_messages_published") > 0);
    api.stop().expect("a clean stop");
    cluster.stop();
}

/// The brute-force capture as batches cut after the 5th of its 10 LDAP binds with a wrong
/// password (LDAP brute force opens at the 10th), and how many batches come before the cut.
fn brute_force_cut_mid_burst() -> (Vec<Vec<Activity>>, usize) {
    let activities = capture("bruteforce");
    let mut wrong = 0;
    let cut = activities
        .iter()
        .position(|activity| {
            let ldap = matches!(activity.body, Some(activity::Body::Ldap(_)));
            if ldap
                && activity
                    .outcome
                    .as_ref()
                    .is_some_and(|outcome| outcome.name == "invalidCredentials")
            {
                wrong += 1;
            }
            wrong == 6
        })
        .expect("the capture's sixth wrong password");
    let before: Vec<Vec<Activity>> = activities[..cut]
        .chunks(BATCH)
        .map(<[Activity]>::to_vec)
        .collect();
    let count = before.len();
    let after = activities[cut..].chunks(BATCH).map(<[Activity]>::to_vec);
    (before.into_iter().chain(after).collect(), count)
}

#[test]
fn a_detect_node_killed_mid_burst_goes_on_with_its_windows_and_alerts_as_one_node() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (batches, before) = brute_force_cut_mid_burst();
    let plan = Plan {
        sensors: vec![("sensor-00".to_owned(), batches)],
    };
    let expected = single_node_alerts(dir.path(), &plan);
    let is_brute_force = |key: &(String, String, String, u64)| key.1 == "ldap_brute_force";
    assert!(expected.iter().any(is_brute_force), "{expected:?}");

    let mut cluster = Cluster::start(dir.path(), &plan);
    let (again_config, again_dir) = cluster.node("detect-again");
    let (id, batches) = &plan.sensors[0];
    let sensor = (id.as_str(), cluster.tokens[id].as_str());
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");

    runtime.block_on(send_batches(
        cluster.ingest(),
        &cluster.ca,
        sensor,
        1,
        &batches[..before],
    ));
    let first_part = judgements(batches[..before].iter().flatten());
    eventually("the detect node judged the burst's first part", || {
        (counter(&cluster.detect_dir, "detect_activities") >= first_part).then_some(())
    })
    .expect("judged");
    // Its acknowledgements reach NATS (a lost one is redelivered and skipped, only later).
    std::thread::sleep(Duration::from_secs(1));
    let mut store = PgStore::connect(&cluster.url).expect("the shared store");
    assert!(
        !alert_keys(&mut store).iter().any(is_brute_force),
        "the cut falls before the alert"
    );
    let detect = cluster.detect.take().expect("the detect node");
    detect.signal("-KILL").expect("kill -9");
    drop(detect);

    // The same node name: it takes the killed node's claims back at once.
    cluster.detect = Some(start_role(&again_config, "detect").expect("the detect node again"));
    let first = u64::try_from(before).expect("count") + 1;
    runtime.block_on(send_batches(
        cluster.ingest(),
        &cluster.ca,
        sensor,
        first,
        &batches[before..],
    ));
    let rest = judgements(batches[before..].iter().flatten());
    eventually("the restarted detect node judged the rest", || {
        (counter(&again_dir, "detect_activities") >= rest).then_some(())
    })
    .expect("judged");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        alert_keys(&mut store),
        expected,
        "the alerts are the single node's, the brute force raised once with every guess"
    );
    assert_eq!(counter(&again_dir, "detect_activities"), rest);
    assert!(
        counter(&again_dir, "detect_windows_replayed") > 0,
        "the windows were rebuilt from the checkpoint"
    );
    cluster.stop();
}

/// Sensors of the full test, and how many copies of its capture each sends in all.
const FULL_SENSORS: usize = 50;
/// Pause between a sensor's batches in the full test, so the faults fall while batches flow.
const PACE: Duration = Duration::from_millis(100);

/// One simulated sensor of the full test: its id, token and every batch it will send, each
/// kept (its spool) until an ingest node acknowledged it.
#[derive(Clone)]
struct SimulatedSensor {
    id: String,
    token: String,
    /// Rounds of batches, numbered on from one round to the next.
    rounds: Vec<Vec<(u64, Vec<Activity>)>>,
}

/// An ingest node as sensors reach it: its address and CA.
type Target = (std::net::SocketAddr, Vec<u8>);

/// Sends one round of a sensor's batches, starting at `first_target` and moving to the next
/// target whenever a stream fails (a node killed, the cluster's stream full, the store away):
/// what is not acknowledged is sent again, as a sensor's spool does. How many times it had to
/// reconnect.
async fn send_round(
    sensor: &SimulatedSensor,
    round: usize,
    targets: &[Target],
    first_target: usize,
    pace: Duration,
) -> u64 {
    let batches = &sensor.rounds[round];
    let Some(last) = batches.last().map(|(sequence, _)| *sequence) else {
        return 0;
    };
    let mut retries = 0;
    let mut target = first_target;
    let started = std::time::Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_mins(5),
            "{}: round {round} never went through",
            sensor.id
        );
        let (address, ca) = &targets[target % targets.len()];
        let mut sent_through = 0;
        if let Ok((mut stream, stored_through)) =
            Sensor::open(*address, ca, &sensor.id, &sensor.token).await
        {
            sent_through = stored_through;
            for (sequence, batch) in batches
                .iter()
                .filter(|(sequence, _)| *sequence > stored_through)
            {
                match stream.batch(*sequence, batch).await {
                    Ok(through) if through == *sequence => sent_through = through,
                    _ => break,
                }
                tokio::time::sleep(pace).await;
            }
        }
        if sent_through >= last {
            return retries;
        }
        retries += 1;
        target += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every sensor sends its round `round` at once; the reconnections they needed.
async fn send_round_all(
    sensors: &[SimulatedSensor],
    round: usize,
    targets: &[Target],
    pace: Duration,
) -> u64 {
    let tasks: Vec<_> = sensors
        .iter()
        .enumerate()
        .map(|(index, sensor)| {
            let sensor = sensor.clone();
            let targets = targets.to_vec();
            tokio::spawn(async move { send_round(&sensor, round, &targets, index, pace).await })
        })
        .collect();
    let mut retries = 0;
    for task in tasks {
        retries += task.await.expect("a sensor's task");
    }
    retries
}

/// The full test's sensors: sensor i replays capture i % 11, once per round; the last round
/// three times (to fill the stream when detection stalls).
fn full_sensors(tokens: &BTreeMap<String, String>, rounds: usize) -> Vec<SimulatedSensor> {
    (0..FULL_SENSORS)
        .map(|index| {
            let id = format!("sensor-{index:02}");
            let batches: Vec<Vec<Activity>> = capture(CAPTURES[index % CAPTURES.len()])
                .chunks(BATCH)
                .map(<[Activity]>::to_vec)
                .collect();
            let mut sequence = 0_u64;
            let rounds = (0..rounds)
                .map(|round| {
                    let copies = if round + 1 == rounds { 3 } else { 1 };
                    (0..copies)
                        .flat_map(|_| batches.iter().cloned())
                        .map(|batch| {
                            sequence += 1;
                            (sequence, batch)
                        })
                        .collect()
                })
                .collect();
            SimulatedSensor {
                token: tokens[&id].clone(),
                id,
                rounds,
            }
        })
        .collect()
}

fn full_union(sensors: &[SimulatedSensor]) -> Vec<Vec<u8>> {
    let mut all: Vec<Vec<u8>> = sensors
        .iter()
        .flat_map(|sensor| sensor.rounds.iter().flatten())
        .flat_map(|(_, batch)| batch)
        .map(prost::Message::encode_to_vec)
        .collect();
    all.sort();
    all
}

/// Tokens for the full test's sensors through `config`.
fn full_tokens(config: &Path) -> BTreeMap<String, String> {
    let ids: Vec<(String, Vec<Vec<Activity>>)> = (0..FULL_SENSORS)
        .map(|index| (format!("sensor-{index:02}"), Vec::new()))
        .collect();
    tokens(config, &Plan { sensors: ids })
}

const FULL_ROUNDS: usize = 5;

/// The alerts of one `all` node on SQLite fed the full test's rounds.
fn full_single_node_alerts(dir: &Path) -> (AlertKeys, Vec<Vec<u8>>) {
    let data_dir = dir.join("single");
    let config = write_config(dir, &data_dir, "");
    let sensors = full_sensors(&full_tokens(&config), FULL_ROUNDS);
    let backend = Backend::start(&config).expect("the all node");
    let ca = std::fs::read(data_dir.join("tls/ca.pem")).expect("its CA");
    let targets = vec![(backend.address, ca)];
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    for round in 0..FULL_ROUNDS {
        assert_eq!(
            runtime.block_on(send_round_all(&sensors, round, &targets, Duration::ZERO)),
            0,
            "one healthy node takes every batch at once"
        );
    }
    let union = full_union(&sensors);
    let total = u64::try_from(union.len()).expect("count");
    eventually("the all node judged everything", || {
        (counter(&data_dir, "detect_activities") >= total).then_some(())
    })
    .expect("judged");
    backend.stop().expect("a clean stop");
    (
        alert_keys(&mut Store::open(&data_dir).expect("its store")),
        union,
    )
}

/// Waits until the stream holds nothing (every message judged and acknowledged) as one of the
/// live NATS nodes reports it, and the store's alerts stay the same for a few seconds.
fn settled(nats: &Nats, live: &[usize], store: &mut PgStore) -> AlertKeys {
    let started = std::time::Instant::now();
    let mut last = BTreeSet::new();
    let mut same_since = std::time::Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_mins(4),
            "the cluster never settled"
        );
        let empty = live
            .iter()
            .any(|node| nats.stream_messages(*node, "DCWATCH_ACTIVITIES") == Some(0));
        let alerts = store
            .alerts(&AlertQuery::default())
            .map(|alerts| {
                alerts
                    .into_iter()
                    .map(|alert| (alert.id, alert.r#type, alert.primary_key, alert.count))
                    .collect()
            })
            .unwrap_or_default();
        if alerts != last {
            last = alerts;
            same_since = std::time::Instant::now();
        }
        if empty && same_since.elapsed() > Duration::from_secs(3) {
            return last;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The full set-up with its faults: a 3-node NATS cluster (every stream on 3 replicas),
/// PostgreSQL, 2 ingest, 2 detect and 1 api node, 50 sensors each replaying a lab capture in
/// rounds, paced, moving to the other ingest node when theirs fails and resending what was not
/// acknowledged. Round 2: kill -9 a detect node (a new one joins after); round 3: kill -9 an
/// ingest node and stop a NATS node; round 4: restart PostgreSQL; round 5: both detect nodes
/// stalled (SIGSTOP) with a 1 MiB stream, until ingest refuses batches, then resumed. At the end
/// the stored activities are the union sent, once each, and the alerts those of one `all` node
/// fed the same rounds by type and entity, none counting more evidence.
#[test]
#[ignore = "slow (minutes): cargo xtask test --full"]
#[expect(
    clippy::print_stderr,
    reason = "the run's figures (reconnections, refusals) are read in the test's output"
)]
fn the_full_cluster_loses_and_doubles_nothing_through_its_faults() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (expected, union) = full_single_node_alerts(dir.path());
    assert!(
        expected.len() >= 5,
        "the captures raise alerts: {expected:?}"
    );

    let postgres = Postgres::start(false).expect("PostgreSQL");
    let url = postgres.database("dcwatch").expect("a database");
    let mut nats = Nats::start(3).expect("a NATS cluster");
    let cluster = format!(
        "{}replicas = 3\nstream_max_mib = 1\n",
        cluster_section(&url, &nats.urls(), 8)
    );
    let node = |name: &str| {
        let data_dir = dir.path().join(name);
        (write_config(dir.path(), &data_dir, &cluster), data_dir)
    };
    let ingest_nodes: Vec<(PathBuf, PathBuf)> = ["ingest-0", "ingest-1"].map(node).into();
    let detect_nodes: Vec<(PathBuf, PathBuf)> =
        ["detect-0", "detect-1", "detect-2"].map(node).into();
    let (api_config, _) = node("api");
    run(&[
        "store",
        "migrate",
        "--config",
        api_config.to_str().expect("utf-8"),
    ])
    .expect("store migrate");
    let sensors = full_sensors(&full_tokens(&api_config), FULL_ROUNDS);
    let mut ingest: Vec<Option<Backend>> = ingest_nodes
        .iter()
        .map(|(config, _)| Some(start_role(config, "ingest").expect("an ingest node")))
        .collect();
    let mut detect: Vec<Option<Backend>> = detect_nodes[..2]
        .iter()
        .map(|(config, _)| Some(start_role(config, "detect").expect("a detect node")))
        .collect();
    let api = start_role(&api_config, "api").expect("the api node");
    let targets: Vec<Target> = ingest
        .iter()
        .zip(&ingest_nodes)
        .map(|(node, (_, data_dir))| {
            (
                node.as_ref().expect("started").address,
                std::fs::read(data_dir.join("tls/ca.pem")).expect("the node's CA"),
            )
        })
        .collect();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let round = |round: usize| {
        let sensors = sensors.clone();
        let targets = targets.clone();
        runtime.spawn(async move { send_round_all(&sensors, round, &targets, PACE).await })
    };
    let mut retries = 0;

    retries += runtime.block_on(round(0)).expect("round 1");

    let sending = round(1);
    std::thread::sleep(Duration::from_secs(1));
    let killed = detect[1].take().expect("detect-1");
    killed.signal("-KILL").expect("kill -9 detect-1");
    drop(killed);
    retries += runtime.block_on(sending).expect("round 2");
    detect.push(Some(
        start_role(&detect_nodes[2].0, "detect").expect("detect-2"),
    ));

    let sending = round(2);
    std::thread::sleep(Duration::from_secs(1));
    let killed = ingest[0].take().expect("ingest-0");
    killed.signal("-KILL").expect("kill -9 ingest-0");
    drop(killed);
    nats.stop_node(2).expect("stop a NATS node");
    let round_3_retries = runtime.block_on(sending).expect("round 3");
    assert!(
        round_3_retries > 0,
        "the killed ingest node's sensors moved to the other"
    );
    retries += round_3_retries;

    let sending = round(3);
    std::thread::sleep(Duration::from_secs(1));
    postgres.restart().expect("restart PostgreSQL");
    retries += runtime.block_on(sending).expect("round 4");

    let stalled: Vec<&Backend> = detect.iter().flatten().collect();
    for node in &stalled {
        node.signal("-STOP").expect("stall a detect node");
    }
    let ingest_dir = &ingest_nodes[1].1;
    let refused_before = counter(ingest_dir, "cluster_publish_failures");
    let sending = round(4);
    eventually("ingest refusing batches while the stream is full", || {
        (counter(ingest_dir, "cluster_publish_failures") > refused_before).then_some(())
    })
    .expect("back-pressure");
    assert!(
        !sending.is_finished(),
        "the sensors still hold batches while detection stalls"
    );
    for node in &stalled {
        node.signal("-CONT").expect("resume a detect node");
    }
    retries += runtime.block_on(sending).expect("round 5");

    let mut store = PgStore::connect(&url).expect("the shared store");
    let alerts = settled(&nats, &[0, 1], &mut store);
    assert_eq!(
        stored_union(&mut store),
        union,
        "every acknowledged activity stored, once"
    );
    // Without checkpoints of the detectors' windows (README "Scaling out"), a partition that
    // moved (the detect node killed) or whose engine was rebuilt (PostgreSQL restarted) starts
    // its windows again: an alert may count a little less evidence, or start later (another
    // id). What must hold: the same alerts by type and entity, one each, none counting more
    // than the single node's (a redelivered message counted twice would).
    let by_entity = |alerts: &AlertKeys| {
        let mut counts: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
        for (_, kind, key, count) in alerts {
            counts
                .entry((kind.clone(), key.clone()))
                .or_default()
                .push(*count);
        }
        counts
    };
    let (cluster_alerts, single_alerts) = (by_entity(&alerts), by_entity(&expected));
    assert_eq!(
        cluster_alerts.keys().collect::<Vec<_>>(),
        single_alerts.keys().collect::<Vec<_>>(),
        "the same alerts by type and entity: {alerts:?} against {expected:?}"
    );
    for (entity, counts) in &cluster_alerts {
        assert_eq!(counts.len(), 1, "{entity:?} raised once: {counts:?}");
        assert!(
            counts[0] <= single_alerts[entity][0],
            "{entity:?} counted no evidence twice: {counts:?} against {:?}",
            single_alerts[entity]
        );
    }
    let equal = alerts.intersection(&expected).count();
    eprintln!(
        "full cluster: {equal} of {} alerts equal the single node's to the id and count",
        expected.len()
    );
    eprintln!(
        "full cluster: {} sensors, {} activities, {} alerts, {retries} reconnections, \
         publish refusals {}",
        sensors.len(),
        union.len(),
        alerts.len(),
        counter(ingest_dir, "cluster_publish_failures")
    );
    for node in detect
        .into_iter()
        .flatten()
        .chain(ingest.into_iter().flatten())
    {
        node.stop().expect("a clean stop");
    }
    api.stop().expect("a clean stop");
}
