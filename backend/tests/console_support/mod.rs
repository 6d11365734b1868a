//! What the console's tests share: a store seeded with real activities (the sensor's JSON lines
//! for the lab's DCSync and brute-force captures, `tests/data/README.md`) and the alerts the
//! detection engine makes of them, plus users of each role.

#![allow(dead_code, reason = "each test binary uses a part")]

use std::{net::SocketAddr, path::Path, sync::Arc};

use dcwatch_backend::{
    console::{self, Console, ConsoleConfig, users},
    detection::DirectorySource,
    directory,
    store::{ACTIVITY_CURSOR, Storage, Store, postgres::PgStore},
};
use dcwatch_detect::checkpoint::Checkpoint;
use dcwatch_proto::v1::{Activity, Endpoint, activity::Body};
use dcwatch_telemetry::health::{Issue, IssueKind};
use serde_json::{Map, Value};

pub(crate) const PASSWORD: &str = "a long test password";
/// The lab account name of the hostile-name test (the issue's `<img src=x onerror=alert(1)>`).
pub(crate) const HOSTILE: &str = "<img src=x onerror=alert(1)>";

fn endpoint(text: &str) -> Option<Endpoint> {
    let address: SocketAddr = text.parse().ok()?;
    Some(Endpoint {
        ip: match address.ip() {
            std::net::IpAddr::V4(ip) => ip.octets().to_vec(),
            std::net::IpAddr::V6(ip) => ip.octets().to_vec(),
        },
        port: u32::from(address.port()),
    })
}

fn take<T: serde::de::DeserializeOwned>(object: &mut Map<String, Value>, name: &str) -> Option<T> {
    object
        .remove(name)
        .map(|value| serde_json::from_value(value).expect(name))
}

/// An activity back from its JSON line (`dcwatch_proto::json::write_json_line`'s layout: the
/// header's members, then the body's beside them).
pub(crate) fn activity_from_line(line: &str) -> Activity {
    let mut object: Map<String, Value> = serde_json::from_str(line).expect("a JSON line");
    let protocol: String = take(&mut object, "protocol").expect("protocol");
    let src: String = take(&mut object, "src").unwrap_or_default();
    let dst: String = take(&mut object, "dst").unwrap_or_default();
    let carrier: Option<String> = take(&mut object, "carrier");
    let mut activity = Activity {
        time: take(&mut object, "time"),
        src: endpoint(&src),
        dst: endpoint(&dst),
        sensor_id: take(&mut object, "sensor_id").unwrap_or_default(),
        account: take(&mut object, "account"),
        source_computer: take(&mut object, "source_computer"),
        destination_computer: take(&mut object, "destination_computer"),
        outcome: take(&mut object, "outcome"),
        flow_id: take(&mut object, "flow_id").unwrap_or_default(),
        community_id: take(&mut object, "community_id").unwrap_or_default(),
        ..Activity::default()
    };
    if let Some(carrier) = carrier {
        activity.carrier = dcwatch_proto::v1::Carrier::from_str_name(&carrier)
            .expect("carrier")
            .into();
    }
    let body = Value::Object(object);
    activity.body = Some(match protocol.as_str() {
        "kerberos" => Body::Kerberos(serde_json::from_value(body).expect("kerberos")),
        "ntlm" => Body::Ntlm(serde_json::from_value(body).expect("ntlm")),
        "ldap" => Body::Ldap(serde_json::from_value(body).expect("ldap")),
        "dns" => Body::Dns(serde_json::from_value(body).expect("dns")),
        "smb" => Body::Smb(serde_json::from_value(body).expect("smb")),
        "dcerpc" => Body::Dcerpc(serde_json::from_value(body).expect("dcerpc")),
        "netbios" => Body::Netbios(serde_json::from_value(body).expect("netbios")),
        "rdp" => Body::Rdp(serde_json::from_value(body).expect("rdp")),
        "radius" => Body::Radius(serde_json::from_value(body).expect("radius")),
        "windows_event" => Body::WindowsEvent(serde_json::from_value(body).expect("event")),
        "ntp" => Body::Ntp(serde_json::from_value(body).expect("ntp")),
        other => panic!("protocol {other}"),
    });
    activity
}

fn capture(name: &str) -> Vec<Activity> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read_to_string(&path)
        .expect("the capture's activities")
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(activity_from_line)
        .collect()
}

/// The hostile copy of the DCSync: the same activities an hour later, from another client,
/// by an account named `HOSTILE` (the lab's `<img ...>` user).
fn hostile_copy(activities: &[Activity]) -> Vec<Activity> {
    activities
        .iter()
        .cloned()
        .map(|mut activity| {
            if let Some(time) = &mut activity.time {
                time.seconds += 3600;
            }
            for endpoint in [&mut activity.src, &mut activity.dst].into_iter().flatten() {
                if endpoint.ip == [10, 99, 0, 2] {
                    endpoint.ip = vec![10, 99, 0, 66];
                }
            }
            if let Some(account) = &mut activity.account
                && account.name.eq_ignore_ascii_case("administrator")
            {
                account.name = HOSTILE.to_owned();
            }
            // The NTLM message names the account too: a copy that kept it would be the
            // administrator's own logon from a second computer (a pass-the-hash).
            if let Some(Body::Ntlm(ntlm)) = &mut activity.body
                && ntlm.user.eq_ignore_ascii_case("administrator")
            {
                ntlm.user = HOSTILE.to_owned();
            }
            activity
        })
        .collect()
}

/// What `seed` made.
#[derive(Debug)]
pub(crate) struct Seeded {
    /// The DCSync alert of the lab capture (LAB\Administrator from 10.99.0.2).
    pub dcsync: String,
    /// The same attack by the hostile-named account from 10.99.0.66.
    pub hostile: String,
    pub alerts: usize,
    pub activities: usize,
}

/// Runs `work` on a thread of its own: PostgreSQL's blocking client cannot be used on an async
/// test's runtime thread (the console itself reaches the store from blocking threads).
pub(crate) fn off_runtime<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| scope.spawn(work).join().expect("the work panicked"))
}

/// Which store the console runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backend {
    /// SQLite in a temporary directory (the `all` role).
    Sqlite,
    /// A real PostgreSQL (Debian's, an unprivileged cluster on loopback), migrated (the
    /// cluster's `api` role).
    Postgres,
}

/// A store under test, removed (its server stopped) when dropped.
#[derive(Debug)]
pub(crate) struct TestStore {
    pub dir: tempfile::TempDir,
    postgres: Option<(dcwatch_tests::cluster_servers::Postgres, String)>,
}

impl TestStore {
    pub(crate) fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let postgres = (backend == Backend::Postgres).then(|| {
            let server =
                dcwatch_tests::cluster_servers::Postgres::start(false).expect("PostgreSQL");
            let url = server.database("console").expect("a database");
            PgStore::connect_unchecked(&url, None)
                .expect("connect")
                .migrate(now_ns())
                .expect("migrate");
            (server, url)
        });
        Self { dir, postgres }
    }

    /// A new handle on the store.
    pub(crate) fn open(&self) -> Box<dyn Storage> {
        match &self.postgres {
            Some((_, url)) => Box::new(PgStore::connect(url).expect("postgres")),
            None => Box::new(Store::open(self.dir.path()).expect("sqlite")),
        }
    }
}

/// Stores the captures' activities as one sensor's batches, runs them through the detection
/// engine in test mode with their stored references, saves the alerts, and adds the users
/// `viewer`, `analyst` and `admin` (password `PASSWORD`).
pub(crate) fn seed(test_store: &TestStore) -> Seeded {
    let dcsync = capture("dcsync.jsonl");
    let batches = [
        dcsync.clone(),
        capture("bruteforce.jsonl"),
        hostile_copy(&dcsync),
    ];
    let mut store = test_store.open();
    for (index, batch) in batches.iter().enumerate() {
        store
            .store_batch_with_directory(
                "vm",
                "seed",
                u64::try_from(index + 1).expect("small"),
                batch,
                &[],
            )
            .expect("store a batch");
    }
    store.sensor_seen("vm", "0.1.0", now_ns()).expect("sensor");
    store
        .store_counters("vm", r#"{"frames":120,"activities":23}"#)
        .expect("counters");
    let event = dcwatch_proto::v1::HealthEvent {
        time: Some(pbjson_types::Timestamp {
            seconds: now_ns() / 1_000_000_000,
            nanos: 0,
        }),
        severity: dcwatch_proto::v1::health_event::Severity::Warning.into(),
        kind: "CAPTURE_LOSS".to_owned(),
        message: "ring buffer full: 3 frames lost".to_owned(),
        ..Default::default()
    };
    store.store_health("vm", &event).expect("health");
    let minute = 60_000_000_000_u64;
    let now = u64::try_from(now_ns()).expect("after 1970");
    let issue = |kind, subject: &str, detail: &str, start_ns, end_ns| Issue {
        kind,
        subject: subject.to_owned(),
        detail: detail.to_owned(),
        start_ns,
        end_ns,
    };
    for stored in [
        issue(
            IssueKind::NicDown,
            "eth1",
            "eth1 is down",
            now - 2 * minute,
            None,
        ),
        issue(
            IssueKind::TrafficDropped,
            "",
            "2.5% of matched frames lost",
            now - 10 * minute,
            None,
        ),
        issue(
            IssueKind::TrafficDropped,
            "",
            "2.5% of matched frames lost",
            now - 10 * minute,
            Some(now - 5 * minute),
        ),
    ] {
        store.record_issue("vm", &stored).expect("issue");
    }

    let mut engine = dcwatch_detect::Engine::new(
        dcwatch_detect::Config::test_mode(),
        Arc::new(dcwatch_entity::Directory::default()),
    );
    let mut activities = 0;
    for (index, batch) in batches.iter().enumerate() {
        for (position, activity) in batch.iter().enumerate() {
            let reference = format!("vm:{}:{position}", index + 1);
            engine.observe(activity, &reference);
            activities += 1;
        }
    }
    let alerts: Vec<_> = engine.alerts().cloned().collect();
    let judged = store.last_activity_row().expect("rows");
    store
        .save_alerts(
            &alerts,
            (0, &Checkpoint::NOTHING),
            (ACTIVITY_CURSOR, judged),
            0,
            now_ns(),
        )
        .expect("save alerts");
    let find = |address: &str| {
        alerts
            .iter()
            .find(|alert| {
                alert.r#type == "dcsync"
                    && alert
                        .entities
                        .iter()
                        .any(|entity| entity.address == address)
            })
            .map(|alert| alert.id.clone())
            .expect("a DCSync alert from that address")
    };
    for (name, role) in [
        ("viewer", users::Role::Viewer),
        ("analyst", users::Role::Analyst),
        ("admin", users::Role::Admin),
    ] {
        users::add(store.as_mut(), name, role, PASSWORD, now_ns()).expect("user");
    }
    Seeded {
        dcsync: find("10.99.0.2"),
        hostile: find("10.99.0.66"),
        alerts: alerts.len(),
        activities,
    }
}

pub(crate) fn now_ns() -> i64 {
    console::data::now_ns()
}

/// The console's state over a seeded store.
pub(crate) fn console(store: &TestStore) -> Arc<Console> {
    Arc::new(Console::new(
        store.open(),
        &ConsoleConfig::default(),
        "https://console.test".to_owned(),
        Arc::default(),
    ))
}

/// The console's state over a seeded store that also holds the lab's directory (imported from
/// testdata/directory/adlab.jsonl, as a sync would store it), loaded as serve loads it; the
/// source, to give it a newer directory.
pub(crate) fn console_with_directory(
    test_store: &TestStore,
) -> (Arc<Console>, Arc<DirectorySource>) {
    let snapshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/directory/adlab.jsonl");
    let (domains, objects) = dcwatch_entity::snapshot::read(std::io::BufReader::new(
        std::fs::File::open(snapshot).expect("the lab's snapshot"),
    ))
    .expect("a snapshot");
    let mut store = test_store.open();
    directory::import(store.as_mut(), &domains, &objects).expect("import");
    let source = Arc::new(DirectorySource::default());
    source.replace(Arc::new(
        directory::load(store.as_mut(), &dcwatch_entity::TagConfig::default(), 0).expect("load"),
    ));
    let console = Console::new(
        store,
        &ConsoleConfig::default(),
        "https://console.test".to_owned(),
        Arc::clone(&source),
    );
    (Arc::new(console), source)
}
