//! The store's scenarios (those of store.rs, store/alerts.rs and directory.rs) run through the
//! `Storage` trait against both stores: SQLite in a temporary directory, and a real PostgreSQL
//! (Debian's, an unprivileged cluster on loopback) migrated by `dcwatch-backend store migrate`.
//! Each store must give the same answers.

use dcwatch_backend::store::{
    ACTIVITY_CURSOR, ActivityRef, AlertQuery, Closed, EntityKey, EntityKind, Excluded,
    ExclusionKind, Query, Storage, Store, StoreError, Stored, StoredActivity, blocks,
    postgres::{PgStore, migrations::MIGRATIONS},
};
use dcwatch_detect::{
    checkpoint::{Checkpoint, WindowChanges},
    learning::{ITEM_DETAIL, SUBJECT_DETAIL},
    profiles::{Changes, Profiles},
};
use dcwatch_proto::v1::{
    Account, Activity, Alert, AlertEntity, DirectoryDelta, DirectoryDomain, DirectoryObject,
    DnsActivity, Endpoint, HealthEvent,
    activity::Body,
    alert::{Classification, Status, Trigger},
    alert_entity::Role,
};
use dcwatch_tests::cluster_servers::Postgres;

const SECOND: i64 = 1_000_000_000;

/// A chunk that left the partition's state as it was.
const NO_PROFILES: (u32, &Checkpoint) = (0, &Checkpoint::NOTHING);

/// Opens the store under test again (a reopen must find what was written).
type Opener<'a> = &'a mut dyn FnMut() -> Box<dyn Storage>;

/// Runs `scenario` against SQLite, then against PostgreSQL.
fn on_both(scenario: fn(Opener<'_>)) {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().to_owned();
    scenario(&mut || Box::new(Store::open(&path).expect("sqlite")));

    let postgres = Postgres::start(false).expect("PostgreSQL");
    let url = postgres.database("scenario").expect("a database");
    assert!(
        matches!(
            PgStore::connect(&url),
            Err(StoreError::MigrationPending { version: 1 })
        ),
        "an unmigrated database is refused"
    );
    let migrated = std::process::Command::new(env!("CARGO_BIN_EXE_dcwatch-backend"))
        .args(["store", "migrate", "--config"])
        .arg(config_with(&url, directory.path()))
        .output()
        .expect("dcwatch-backend");
    assert!(
        migrated.status.success(),
        "store migrate: {}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    assert!(
        PgStore::connect(&url).is_ok(),
        "the migrated schema is current"
    );
    scenario(&mut || Box::new(PgStore::connect(&url).expect("postgres")));
}

/// A configuration file naming the PostgreSQL store.
fn config_with(url: &str, dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("backend.toml");
    std::fs::write(&path, format!("[cluster]\npostgres_url = \"{url}\"\n")).expect("config");
    path
}

fn activity(seconds: i64, name: &str, src: [u8; 4]) -> Activity {
    Activity {
        time: Some(pbjson_types::Timestamp { seconds, nanos: 0 }),
        src: Some(Endpoint {
            ip: src.to_vec(),
            port: 5000,
        }),
        dst: Some(Endpoint {
            ip: vec![10, 0, 0, 1],
            port: 53,
        }),
        account: Some(Account {
            domain: "CORP".to_owned(),
            name: name.to_owned(),
            sid: String::new(),
            tags: Vec::new(),
        }),
        body: Some(Body::Dns(DnsActivity::default())),
        ..Activity::default()
    }
}

fn all(store: &mut dyn Storage, query: &Query) -> Vec<StoredActivity> {
    let mut out = Vec::new();
    store
        .activities(query, &mut |stored| {
            out.push(stored);
            Ok(())
        })
        .expect("query");
    out
}

#[test]
fn a_batch_is_stored_once_and_queries_filter_and_order() {
    on_both(|open| {
        let mut store = open();
        let batch = [
            activity(20, "alice", [10, 0, 0, 5]),
            activity(10, "bob", [10, 0, 0, 6]),
        ];
        assert_eq!(
            store
                .store_batch_with_directory("s1", "spool-1", 1, &batch, &[])
                .expect("store"),
            Stored::New
        );
        assert_eq!(
            store
                .store_batch_with_directory("s1", "spool-1", 1, &batch, &[])
                .expect("store"),
            Stored::Duplicate
        );
        assert_eq!(store.stored_through("s1").expect("through"), 1);
        assert_eq!(store.stored_through("s2").expect("through"), 0);
        let every = all(store.as_mut(), &Query::default());
        assert_eq!(every.len(), 2);
        assert_eq!(every[0].activity, batch[1], "ordered by time");
        assert_eq!((every[0].sensor_id.as_str(), every[0].sequence), ("s1", 1));
        let alice = Query {
            account: Some("CORP\\ALICE".to_owned()),
            ..Query::default()
        };
        assert_eq!(
            all(store.as_mut(), &alice).len(),
            1,
            "names match in any case"
        );
        let by_ip = Query {
            ip: Some("10.0.0.6".parse().expect("ip")),
            protocol: Some("DNS".to_owned()),
            ..Query::default()
        };
        assert_eq!(all(store.as_mut(), &by_ip)[0].activity, batch[1]);
        let by_dst = Query {
            ip: Some("10.0.0.1".parse().expect("ip")),
            since_ns: Some(15 * SECOND),
            ..Query::default()
        };
        assert_eq!(all(store.as_mut(), &by_dst)[0].activity, batch[0]);
        let none = Query {
            sensor_id: Some("s2".to_owned()),
            ..Query::default()
        };
        assert!(all(store.as_mut(), &none).is_empty());
        drop(store);
        let mut store = open();
        assert_eq!(store.stored_through("s1").expect("through"), 1);
        assert_eq!(store.prune(15 * SECOND).expect("prune"), 1, "the older one");
        assert_eq!(all(store.as_mut(), &Query::default())[0].activity, batch[0]);
        assert_eq!(
            store.stored_through("s1").expect("through"),
            1,
            "kept by pruning"
        );
        assert_eq!(
            store.last_activity_row().expect("rows"),
            1,
            "the older activity was the second row"
        );
        let after = store.activities_after(0, 10).expect("after");
        assert_eq!(
            after
                .iter()
                .map(|stored| (stored.position, stored.reference()))
                .collect::<Vec<_>>(),
            [(0, "s1:1:0".to_owned())],
            "the kept row, with its place in the batch"
        );
    });
}

#[test]
fn the_spool_instance_is_kept_with_stored_through_and_refusals_move_it() {
    on_both(|open| {
        let mut store = open();
        assert_eq!(store.spool_instance("s1").expect("instance"), "");
        store.sensor_seen("s1", "1.0", 5).expect("hello");
        let batch = [activity(20, "alice", [10, 0, 0, 5])];
        store
            .store_batch_with_directory("s1", "spool-a", 5, &batch, &[])
            .expect("store");
        assert_eq!(store.spool_instance("s1").expect("instance"), "spool-a");
        store
            .store_batch_with_directory("s1", "spool-b", 5, &batch, &[])
            .expect("store");
        assert_eq!(
            store.spool_instance("s1").expect("instance"),
            "spool-a",
            "a duplicate changes nothing"
        );
        assert_eq!(
            store
                .refuse_batch("s1", "spool-b", 6, "undecodable", 0)
                .expect("refuse"),
            Stored::New
        );
        assert_eq!(
            store
                .refuse_batch("s1", "spool-b", 6, "undecodable", 0)
                .expect("refuse"),
            Stored::Duplicate
        );
        store
            .store_health("s1", &HealthEvent::default())
            .expect("health");
        store
            .store_counters("s1", "{\"frames\":1}")
            .expect("counters");
        drop(store);
        let mut store = open();
        assert_eq!(store.spool_instance("s1").expect("instance"), "spool-b");
        assert_eq!(store.stored_through("s1").expect("through"), 6);
    });
}

#[test]
fn tokens_are_kept_as_hashes() {
    on_both(|open| {
        let mut store = open();
        store.add_token("dc1", "secret", 1).expect("add");
        assert!(matches!(
            store.add_token("dc1", "other", 2),
            Err(StoreError::TokenExists(_))
        ));
        store.add_token("dc0", "other", 3).expect("add");
        assert_eq!(
            store.tokens().expect("list"),
            [("dc0".to_owned(), 3), ("dc1".to_owned(), 1)]
        );
        assert_eq!(
            store.token_name("secret").expect("lookup").as_deref(),
            Some("dc1")
        );
        assert_eq!(store.token_name("wrong").expect("lookup"), None);
        assert!(store.revoke_token("dc1").expect("revoke"));
        assert!(!store.revoke_token("dc1").expect("revoke"));
        assert_eq!(store.token_name("secret").expect("lookup"), None);
    });
}

fn timestamp(ns: i64) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp {
        seconds: ns.div_euclid(SECOND),
        nanos: 0,
    }
}

fn alert(id: &str, end_s: i64, status: Status) -> Alert {
    Alert {
        id: id.to_owned(),
        r#type: "dcsync".to_owned(),
        primary_key: format!("src:{id}"),
        status: status.into(),
        start: Some(timestamp(end_s * SECOND)),
        end: Some(timestamp(end_s * SECOND)),
        count: 1,
        trigger: Trigger::New.into(),
        description: format!("alert {id}"),
        ..Alert::default()
    }
}

fn events(store: &mut dyn Storage, id: &str) -> Vec<String> {
    store
        .alert_history(id, 0)
        .expect("history")
        .into_iter()
        .map(|entry| entry.event)
        .collect()
}

#[test]
fn alerts_upsert_close_reopen_and_restore() {
    on_both(|open| {
        let mut store = open();
        assert_eq!(
            store.detection_state(ACTIVITY_CURSOR).expect("cursor"),
            None
        );
        let first = alert("a", 100, Status::Open);
        assert_eq!(
            store
                .save_alerts(
                    &[first.clone(), alert("b", 50, Status::Open)],
                    NO_PROFILES,
                    (ACTIVITY_CURSOR, 7),
                    0,
                    1
                )
                .expect("save"),
            [true, true]
        );
        assert_eq!(
            store.detection_state(ACTIVITY_CURSOR).expect("cursor"),
            Some(7)
        );
        // The same alert saved again (a redelivered chunk): updated, not raised twice.
        store
            .save_alerts(
                std::slice::from_ref(&first),
                NO_PROFILES,
                ("partition.3", 11),
                0,
                1,
            )
            .expect("save");
        assert_eq!(
            store.detection_state("partition.3").expect("cursor"),
            Some(11)
        );
        assert_eq!(events(store.as_mut(), "a"), ["raised"]);
        let listed = store.alerts(&AlertQuery::default()).expect("list");
        assert_eq!(
            listed
                .iter()
                .map(|alert| alert.id.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"],
            "latest evidence first"
        );
        assert_eq!(listed[0], first);

        assert_eq!(
            store
                .close_alert("a", Classification::Btp, "ana", "pentest", 200 * SECOND)
                .expect("close"),
            Closed::Closed
        );
        assert_eq!(
            store
                .close_alert("a", Classification::Fp, "ana", "", 201 * SECOND)
                .expect("close"),
            Closed::AlreadyClosed
        );
        assert_eq!(
            store
                .close_alert("zz", Classification::Fp, "ana", "", 201 * SECOND)
                .expect("close"),
            Closed::NoSuchAlert
        );
        let closed = store
            .alerts(&AlertQuery {
                status: Some(Status::Closed),
                ..AlertQuery::default()
            })
            .expect("list");
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].classification(), Classification::Btp);
        assert_eq!(closed[0].closed, Some(timestamp(200 * SECOND)));

        // Detection, not yet aware of the close (it applied history up to row 2), updates the
        // alert: the analyst's status stays, nothing is emitted.
        let mut update = alert("a", 150, Status::Open);
        update.count = 2;
        update.trigger = Trigger::Update.into();
        assert_eq!(
            store
                .save_alerts(&[update.clone()], NO_PROFILES, (ACTIVITY_CURSOR, 8), 2, 2)
                .expect("save"),
            [false]
        );
        let kept = store
            .alerts(&AlertQuery {
                id: Some("a".to_owned()),
                ..AlertQuery::default()
            })
            .expect("list");
        assert_eq!(kept[0].status(), Status::Closed);
        assert_eq!(kept[0].count, 2, "the evidence is kept");
        assert_eq!(
            store
                .save_alerts(&[update], NO_PROFILES, (ACTIVITY_CURSOR, 9), 3, 3)
                .expect("save"),
            [true]
        );
        assert_eq!(
            events(store.as_mut(), "a"),
            ["raised", "closed", "reopened"]
        );
        assert!(store.comment_alert("a", "ana", "seen", 4).expect("comment"));
        assert!(
            !store
                .comment_alert("zz", "ana", "seen", 4)
                .expect("comment")
        );
        let history = store.alert_history("", 3).expect("history");
        assert_eq!(
            history
                .iter()
                .map(|entry| entry.event.as_str())
                .collect::<Vec<_>>(),
            ["reopened", "comment"],
            "every alert's rows after row 3"
        );

        store
            .close_alert("b", Classification::Tp, "ana", "", 300 * SECOND)
            .expect("close");
        drop(store);
        let mut store = open();
        let mut restore = |since: i64| -> Vec<String> {
            store
                .alerts_to_restore(since * SECOND)
                .expect("restore")
                .into_iter()
                .map(|alert| alert.id)
                .collect()
        };
        assert_eq!(restore(299), ["b", "a"]);
        assert_eq!(restore(301), ["a"]);
        assert_eq!(store.last_history_row().expect("rows"), 6);
    });
}

#[test]
fn profiles_are_kept_per_partition_with_their_chunk_and_taught_alerts_are_listed() {
    on_both(|open| {
        let mut store = open();
        let mut profiles = Profiles::with_capacity(16);
        profiles.learn("computer:10.0.0.7", 1_000, "samr_recon", "users");
        profiles.learn("computer:10.0.0.8", 2_000, "samr_recon", "groups");
        let learned = profiles.take_changes();
        for key in ["computer:10.0.0.7", "computer:10.0.0.8"] {
            assert!(learned.upserts.iter().any(|(upserted, _)| upserted == key));
        }
        store
            .save_alerts(
                &[alert("p", 10, Status::Open)],
                (
                    2,
                    &Checkpoint {
                        profiles: learned,
                        windows: WindowChanges::default(),
                    },
                ),
                ("partition.2", 40),
                0,
                1,
            )
            .expect("save");
        // Only the profile that changed is written again, in the same partition.
        profiles.learn("computer:10.0.0.7", 3_000, "samr_recon", "aliases");
        store
            .save_profiles(2, &profiles.take_changes())
            .expect("save profiles");

        let mut store = open();
        assert_eq!(store.profile_partitions().expect("partitions"), [2]);
        assert!(store.load_profiles(0).expect("partition 0").is_empty());
        let mut loaded = Profiles::with_capacity(16);
        loaded.load(store.load_profiles(2).expect("partition 2"));
        assert_eq!(loaded.len(), profiles.len());
        assert!(loaded.knows("computer:10.0.0.7", "samr_recon", "aliases"));
        assert!(loaded.knows("computer:10.0.0.8", "samr_recon", "groups"));
        assert!(!loaded.knows("computer:10.0.0.8", "samr_recon", "aliases"));

        // Close and exclude: a learning detection's alert teaches, any other excludes its
        // primary entity.
        let mut learning = alert("learned", 20, Status::Open);
        learning.details = vec![
            dcwatch_proto::v1::Detail {
                name: SUBJECT_DETAIL.to_owned(),
                value: "computer:10.0.0.7".to_owned(),
            },
            dcwatch_proto::v1::Detail {
                name: ITEM_DETAIL.to_owned(),
                value: "samr_recon\tdomains".to_owned(),
            },
        ];
        let mut plain = alert("plain", 20, Status::Open);
        plain.primary_key = "account:CORP\\svc".to_owned();
        store
            .save_alerts(&[learning, plain], NO_PROFILES, (ACTIVITY_CURSOR, 1), 0, 2)
            .expect("save");
        assert_eq!(
            store
                .exclude_alert("learned", Classification::Btp, "ana", 3 * SECOND)
                .expect("exclude"),
            Some(Excluded::Taught)
        );
        assert_eq!(
            store
                .exclude_alert("plain", Classification::Btp, "ana", 4 * SECOND)
                .expect("exclude"),
            Some(Excluded::Entity(
                ExclusionKind::Account,
                "CORP\\svc".to_owned()
            ))
        );
        assert_eq!(
            store
                .exclude_alert("none", Classification::Btp, "ana", 5)
                .expect("exclude"),
            None
        );
        let taught = store.taught_alerts().expect("taught");
        assert_eq!(
            taught
                .iter()
                .map(|(alert, time)| (alert.id.as_str(), *time))
                .collect::<Vec<_>>(),
            [("learned", 3 * SECOND)]
        );
        let exclusions = store.exclusions().expect("exclusions");
        assert_eq!(exclusions.len(), 1);
        assert_eq!(exclusions[0].value, "CORP\\svc");
        assert_eq!(
            events(store.as_mut(), "learned").last().map(String::as_str),
            Some("taught")
        );
        assert_eq!(
            events(store.as_mut(), "plain").last().map(String::as_str),
            Some("excluded")
        );
        // A true positive of a learning detection is not taught: its entity is excluded.
        assert_eq!(
            store
                .exclude_alert("learned", Classification::Tp, "ana", 6 * SECOND)
                .expect("exclude"),
            Some(Excluded::Entity(
                ExclusionKind::Computer,
                "learned".to_owned()
            ))
        );
    });
}

#[test]
fn windows_are_kept_per_partition_with_their_chunk_until_they_leave_the_window() {
    on_both(|open| {
        let mut store = open();
        let chunk = |append: Option<(u64, &[u8])>, forget_before| Checkpoint {
            profiles: Changes::default(),
            windows: WindowChanges {
                append: append.map(|(segment, bytes)| (segment, bytes.to_vec())),
                forget_before,
            },
        };
        let segments: [(u64, &[u8]); 3] = [(0, b"zero"), (1, b"one"), (2, b"two")];
        for (segment, bytes) in segments {
            store
                .save_alerts(
                    &[],
                    (3, &chunk(Some((segment, bytes)), 0)),
                    ("partition.3", i64::try_from(segment).expect("small") + 1),
                    0,
                    1,
                )
                .expect("save");
        }
        store
            .save_alerts(
                &[],
                (4, &chunk(Some((0, b"four")), 0)),
                ("partition.4", 1),
                0,
                1,
            )
            .expect("save");
        let mut store = open();
        let stored = |bytes: &[&[u8]], from: u64| -> Vec<(u64, Vec<u8>)> {
            (from..)
                .zip(bytes.iter().map(|bytes| bytes.to_vec()))
                .collect()
        };
        assert_eq!(
            store.load_windows(3).expect("partition 3"),
            stored(&[b"zero", b"one", b"two"], 0)
        );
        // A chunk with nothing new to keep still forgets what left the window.
        store
            .save_alerts(&[], (3, &chunk(None, 2)), ("partition.3", 4), 0, 2)
            .expect("save");
        assert_eq!(
            store.load_windows(3).expect("partition 3"),
            stored(&[b"two"], 2)
        );
        assert_eq!(
            store.load_windows(4).expect("partition 4"),
            stored(&[b"four"], 0)
        );
        assert!(store.load_windows(5).expect("partition 5").is_empty());
        assert_eq!(
            store.detection_state("partition.3").expect("cursor"),
            Some(4)
        );
    });
}

#[test]
fn exclusions_are_added_listed_and_removed() {
    on_both(|open| {
        let mut store = open();
        let first = store
            .add_exclusion("", ExclusionKind::Subnet, "10.0.0.0/8", "scanners", 1)
            .expect("add");
        store
            .add_exclusion("dcsync", ExclusionKind::Account, "CORP\\aadsync", "", 2)
            .expect("add");
        let listed = store.exclusions().expect("list");
        assert_eq!(listed.len(), 2);
        assert_eq!(
            (
                listed[1].type_name.as_str(),
                listed[1].kind,
                listed[1].value.as_str()
            ),
            ("dcsync", ExclusionKind::Account, "CORP\\aadsync")
        );
        assert!(store.remove_exclusion(first).expect("remove"));
        assert!(!store.remove_exclusion(first).expect("remove"));
        assert_eq!(store.exclusions().expect("list").len(), 1);
    });
}

fn delta(sync_id: &str, guids: &[&str], full_sync_complete: bool) -> DirectoryDelta {
    DirectoryDelta {
        domain: Some(DirectoryDomain {
            name: "corp.example".to_owned(),
            ..DirectoryDomain::default()
        }),
        sync_id: sync_id.to_owned(),
        usn: 10,
        objects: guids
            .iter()
            .map(|guid| DirectoryObject {
                guid: (*guid).to_owned(),
                ..DirectoryObject::default()
            })
            .collect(),
        full_sync_complete,
    }
}

#[test]
fn the_directory_is_merged_and_a_full_sync_finds_what_was_deleted() {
    on_both(|open| {
        let mut store = open();
        assert_eq!(store.directory_version().expect("version"), (0, 0));
        store
            .store_batch_with_directory("s1", "i", 1, &[], &[delta("a", &["g1", "g2"], true)])
            .expect("stored");
        let (domains, objects) = store.directory().expect("read");
        assert_eq!((domains.len(), objects.len()), (1, 2));
        let first = store.directory_version().expect("version");
        assert_eq!(first.0, 1);
        // A second full sync that names only g2: g1 is marked deleted, not removed.
        store
            .store_batch_with_directory("s1", "i", 2, &[], &[delta("b", &["g2"], true)])
            .expect("stored");
        let (_, objects) = store.directory().expect("read");
        let deleted: Vec<bool> = objects.iter().map(|object| object.deleted).collect();
        assert_eq!(
            deleted,
            [true, false],
            "g1 then g2, in the order first stored"
        );
        // A duplicate batch writes no directory either.
        store
            .store_batch_with_directory("s1", "i", 2, &[], &[delta("c", &["g3"], false)])
            .expect("stored");
        assert_eq!(store.directory().expect("read").1.len(), 2);
    });
}

#[test]
fn two_handles_write_at_once() {
    on_both(|open| {
        let mut ingest = open();
        let mut detection = open();
        let writer = std::thread::spawn(move || {
            for sequence in 1..=200 {
                ingest
                    .store_batch_with_directory(
                        "s1",
                        "spool",
                        sequence,
                        &[Activity::default()],
                        &[],
                    )
                    .expect("a batch is stored while detection writes");
            }
        });
        for round in 0..200 {
            let alert = alert(&format!("a{}", round % 7), round, Status::Open);
            detection
                .save_alerts(&[alert], NO_PROFILES, (ACTIVITY_CURSOR, round), 0, round)
                .expect("alerts are saved while ingest writes");
        }
        writer.join().expect("the writer");
        assert_eq!(detection.last_activity_row().expect("rows"), 200);
        assert_eq!(
            detection
                .alerts(&AlertQuery::default())
                .expect("list")
                .len(),
            7
        );
    });
}

fn entity(role: Role, name: &str, address: &str) -> AlertEntity {
    AlertEntity {
        role: role.into(),
        name: name.to_owned(),
        address: address.to_owned(),
        ..AlertEntity::default()
    }
}

fn ids(alerts: &[Alert]) -> Vec<&str> {
    alerts.iter().map(|alert| alert.id.as_str()).collect()
}

/// The alerts' entities are indexed with their alert: an entity page's alerts and the
/// timeline's entity filter are queries, in both stores, and an update replaces them.
#[test]
fn alerts_are_found_by_their_entities() {
    on_both(|open| {
        let mut store = open();
        let mut first = alert("a", 10, Status::Open);
        first.entities = vec![
            entity(Role::SourceAccount, "CORP\\Alice", ""),
            entity(Role::SourceComputer, "WS1.corp.example", "10.0.0.5"),
            entity(Role::DomainController, "DC1", "10.0.0.1"),
        ];
        let mut second = alert("b", 20, Status::Open);
        second.entities = vec![
            entity(Role::AttackedAccount, "CORP\\bob_x", ""),
            entity(Role::SourceComputer, "ws2", "10.0.0.6"),
        ];
        store
            .save_alerts(
                &[first.clone(), second],
                NO_PROFILES,
                (ACTIVITY_CURSOR, 1),
                0,
                1,
            )
            .expect("save");
        let mut by = |kind, key: &str| {
            let query = AlertQuery {
                entity: Some(EntityKey {
                    kind,
                    key: key.to_owned(),
                }),
                ..AlertQuery::default()
            };
            ids(&store.alerts(&query).expect("alerts"))
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(by(EntityKind::Account, "corp\\ALICE"), ["a"]);
        assert_eq!(by(EntityKind::Computer, "10.0.0.5"), ["a"]);
        assert_eq!(by(EntityKind::Computer, "WS2"), ["b"]);
        assert!(
            by(EntityKind::Account, "ws1.corp.example").is_empty(),
            "a computer is not an account"
        );
        assert!(
            by(EntityKind::Account, "corp\\alic").is_empty(),
            "whole names only"
        );
        let mut containing = |part: &str| {
            let query = AlertQuery {
                entity_containing: Some(part.to_owned()),
                ..AlertQuery::default()
            };
            ids(&store.alerts(&query).expect("alerts"))
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(containing("10.0.0"), ["b", "a"], "latest evidence first");
        assert_eq!(containing("ALI"), ["a"]);
        assert_eq!(containing("b_x"), ["b"]);
        assert!(containing("b%").is_empty(), "LIKE's wildcards are escaped");
        assert!(containing("o_x").is_empty(), "LIKE's wildcards are escaped");
        assert_eq!(
            store.search("ws", 10).expect("search").computers,
            ["WS1.corp.example", "ws2"],
            "computers the alerts name"
        );
        // Detection updates the alert: its entities are the new ones.
        first.entities.truncate(1);
        first.entities[0].name = "CORP\\carol".to_owned();
        store
            .save_alerts(&[first], NO_PROFILES, (ACTIVITY_CURSOR, 2), 0, 2)
            .expect("save");
        let mut store = open();
        let query = |key: &str| AlertQuery {
            entity: Some(EntityKey {
                kind: EntityKind::Account,
                key: key.to_owned(),
            }),
            ..AlertQuery::default()
        };
        assert!(
            store
                .alerts(&query("CORP\\Alice"))
                .expect("alerts")
                .is_empty()
        );
        assert_eq!(
            ids(&store.alerts(&query("CORP\\carol")).expect("alerts")),
            ["a"]
        );
    });
}

/// TLS to PostgreSQL (rustls): a real server with `ssl = on` and a certificate of a test CA
/// (the backend's own, for localhost and 127.0.0.1). `verify-full` checks the chain and the
/// name, `verify-ca` the chain only; another CA, a wrong name, or `require` without a CA file
/// are refused.
#[test]
fn postgres_is_reached_over_tls_verified_against_its_ca() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let identity = dcwatch_backend::tls::server_identity(
        &dcwatch_backend::config::TlsConfig::default(),
        &dir.path().join("ours"),
    )
    .expect("a test CA and certificate");
    let ca = identity.ca.expect("the CA file");
    let other_ca = dcwatch_backend::tls::server_identity(
        &dcwatch_backend::config::TlsConfig::default(),
        &dir.path().join("theirs"),
    )
    .expect("another CA")
    .ca
    .expect("its file");
    let postgres =
        Postgres::start_tls(&identity.cert_pem, &identity.key_pem).expect("PostgreSQL with TLS");
    let plain_url = postgres.database("tls").expect("a database");
    let url = |host: &str, mode: &str| {
        format!(
            "host={host} hostaddr=127.0.0.1 port={} user=dcwatch dbname=tls sslmode={mode}",
            postgres.port
        )
    };
    PgStore::connect_unchecked(&url("localhost", "verify-full"), Some(&ca))
        .expect("verify-full against the CA")
        .migrate(1)
        .expect("migrated over TLS");
    let mut store =
        PgStore::connect_with(&url("localhost", "verify-full"), Some(&ca)).expect("connect");
    store.add_token("dc1", "secret", 1).expect("a write");
    assert_eq!(
        store.token_name("secret").expect("a read").as_deref(),
        Some("dc1")
    );
    // The server's view: the session of that store is encrypted.
    let mut observer =
        postgres::Client::connect(&plain_url, postgres::NoTls).expect("a plain session");
    let encrypted: i64 = observer
        .query_one(
            "SELECT COUNT(*) FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid
             WHERE s.ssl AND a.datname = 'tls'",
            &[],
        )
        .expect("pg_stat_ssl")
        .get(0);
    assert!(encrypted >= 1, "no encrypted session");

    let refused = |url: &str, ca: Option<&std::path::Path>| PgStore::connect_with(url, ca).is_err();
    assert!(
        refused(&url("pg.invalid", "verify-full"), Some(&ca)),
        "a name the certificate does not hold"
    );
    assert!(
        !refused(&url("pg.invalid", "verify-ca"), Some(&ca)),
        "verify-ca checks the chain only"
    );
    assert!(
        !refused(&url("pg.invalid", "require"), Some(&ca)),
        "require with a CA file checks the chain, as libpq"
    );
    assert!(
        refused(&url("localhost", "verify-full"), Some(&other_ca)),
        "a certificate of another CA"
    );
    assert!(
        matches!(
            PgStore::connect_with(&url("localhost", "require"), None),
            Err(StoreError::Tls(_))
        ),
        "require without a CA file"
    );
}

/// `directory import` through the trait: the lab's snapshot (written by hand: its objects have
/// no objectGUID, so they are kept by their DN) stored as one full sync, read back as
/// `entities` shows it; a later import drops what it no longer names.
#[test]
fn a_snapshot_is_imported_and_read_back_as_entities() {
    use dcwatch_backend::directory::{self, EntityFilter};
    on_both(|open| {
        let snapshot = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testdata/directory/adlab.jsonl");
        let (domains, mut objects) = dcwatch_entity::snapshot::read(std::io::BufReader::new(
            std::fs::File::open(snapshot).expect("the lab's snapshot"),
        ))
        .expect("a snapshot");
        let mut by_hand = objects
            .iter()
            .find(|object| object.sam_account_name.eq_ignore_ascii_case("bob"))
            .expect("bob")
            .clone();
        assert!(by_hand.guid.is_empty(), "keyed by DN");
        by_hand.sid = String::new();
        by_hand.sam_account_name = "handmade".to_owned();
        by_hand.dn = by_hand.dn.replace("CN=bob", "CN=handmade");
        objects.push(by_hand);
        let mut store = open();
        let stored = directory::import(store.as_mut(), &domains, &objects).expect("import");
        assert_eq!(stored, objects.len());
        let mut store = open();
        let named = |store: &mut dyn Storage, name: &str| {
            let loaded =
                directory::load(store, &dcwatch_entity::TagConfig::default(), 0).expect("load");
            directory::entities(
                &loaded,
                &EntityFilter {
                    name: Some(name.to_owned()),
                    ..EntityFilter::default()
                },
            )
            .iter()
            .filter(|line| !line.deleted)
            .map(|line| (line.sam_account_name.to_owned(), line.sid.to_owned()))
            .collect::<Vec<_>>()
        };
        assert_eq!(
            named(store.as_mut(), "LAB\\Administrator"),
            [(
                "Administrator".to_owned(),
                "S-1-5-21-3865083622-992237312-3860965316-500".to_owned()
            )]
        );
        assert_eq!(
            named(store.as_mut(), "handmade"),
            [("handmade".to_owned(), String::new())],
            "kept by its DN"
        );
        objects.pop();
        directory::import(store.as_mut(), &domains, &objects).expect("import again");
        assert!(
            named(store.as_mut(), "handmade").is_empty(),
            "no longer named"
        );
    });
}

/// `sensors` sensors' batches of `per_batch` activities, sensor by sensor in time (sensor
/// `s` from second `s * 10_000`), names and addresses varying; stored, and returned in order.
fn store_activities(
    store: &mut dyn Storage,
    sensors: usize,
    batches: u64,
    per_batch: i64,
) -> usize {
    let names = ["alice", "bob", "carol", "svc_backup"];
    let mut stored = 0;
    for sensor in 0..sensors {
        for sequence in 1..=batches {
            let batch: Vec<Activity> = (0..per_batch)
                .map(|at| {
                    let n = usize::try_from(at).expect("small") + stored;
                    activity(
                        i64::try_from(sensor).expect("small") * 10_000
                            + i64::try_from(sequence).expect("small") * per_batch
                            + at,
                        names[n % names.len()],
                        [10, 0, 1, u8::try_from(n % 7).expect("small")],
                    )
                })
                .collect();
            stored += batch.len();
            store
                .store_batch_with_directory(&format!("s{sensor}"), "spool", sequence, &batch, &[])
                .expect("store");
        }
    }
    stored
}

/// What the console and queries read of `store` for `query`: every activity in order, the
/// newest 25, the counts per protocol.
fn answers(
    store: &mut dyn Storage,
    query: &Query,
) -> (
    Vec<StoredActivity>,
    Vec<(StoredActivity, u64)>,
    Vec<dcwatch_backend::store::ProtocolCount>,
) {
    let mut newest = Vec::new();
    store
        .newest_activities(query, &mut |stored, position| {
            newest.push((stored, position));
            newest.len() < 25
        })
        .expect("newest");
    (
        all(store, query),
        newest,
        store.activity_counts(query).expect("counts"),
    )
}

fn compaction_queries() -> Vec<Query> {
    vec![
        Query::default(),
        Query {
            account: Some("CORP\\Bob".to_owned()),
            ..Query::default()
        },
        Query {
            ip: Some("10.0.1.3".parse().expect("ip")),
            since_ns: Some(12_000 * SECOND),
            until_ns: Some(25_000 * SECOND),
            ..Query::default()
        },
        Query {
            protocol: Some("dns".to_owned()),
            sensor_id: Some("s2".to_owned()),
            ..Query::default()
        },
        Query {
            protocol: Some("kerberos".to_owned()),
            ..Query::default()
        },
    ]
}

#[test]
fn compacted_activities_answer_as_rows_did_and_retention_deletes_the_oldest_counted() {
    on_both(|open| {
        let mut store = open();
        let total = store_activities(store.as_mut(), 3, 10, 200);
        let queries = compaction_queries();
        let before: Vec<_> = queries
            .iter()
            .map(|query| answers(store.as_mut(), query))
            .collect();
        assert_eq!(before[0].0.len(), total);
        assert_eq!(before[1].0.len(), total / 4, "bob, every fourth");
        assert!(before[4].0.is_empty());
        let evidence = [("s0", 1, 0), ("s1", 7, 123), ("s2", 10, 199)];
        let found: Vec<_> = evidence
            .iter()
            .map(|&(sensor, sequence, position)| {
                store
                    .activity_at(sensor, sequence, position)
                    .expect("evidence")
                    .expect("stored")
            })
            .collect();

        // No detection cursor: everything but the newest row, one block per sensor.
        let compacted = store.compact(i64::MAX).expect("compact");
        assert_eq!(compacted.activities, total as u64 - 1);
        assert_eq!(compacted.blocks, 3);
        assert_eq!(
            store.compact(i64::MAX).expect("again"),
            dcwatch_backend::store::Compacted::default(),
            "nothing is compacted twice"
        );
        for (query, expected) in queries.iter().zip(&before) {
            assert_eq!(&answers(store.as_mut(), query), expected, "{query:?}");
        }
        for (&(sensor, sequence, position), expected) in evidence.iter().zip(&found) {
            assert_eq!(
                store
                    .activity_at(sensor, sequence, position)
                    .expect("evidence"),
                Some(expected.clone()),
                "{sensor}:{sequence}:{position}"
            );
        }
        assert_eq!(store.activity_at("s1", 7, 200).expect("none"), None);
        let found = store.search("car", 10).expect("search");
        assert_eq!(found.accounts, ["carol"], "a name only blocks hold");
        let found = store.search("10.0.1.", 10).expect("search");
        assert_eq!(found.addresses.len(), 7, "{found:?}");

        // By age: sensor 0's block ends before second 10_000.
        assert_eq!(store.prune(10_000 * SECOND).expect("prune"), 2_000);
        assert_eq!(all(store.as_mut(), &Query::default()), before[0].0[2_000..]);
        let found = store.search("car", 10).expect("search");
        assert_eq!(found.accounts, ["carol"], "still in the blocks left");
        // By budget: blocks go oldest first, then rows, never the newest row.
        assert_eq!(
            store.prune_to_budget(1).expect("budget"),
            total as u64 - 2_001
        );
        assert_eq!(
            all(store.as_mut(), &Query::default()),
            before[0].0[total - 1..],
            "the newest activity is kept"
        );
        let found = store.search("car", 10).expect("search");
        assert!(
            found.accounts.is_empty(),
            "a name goes with the last block holding it: {found:?}"
        );
        assert_eq!(store.prune_to_budget(1).expect("budget"), 0);
    });
}

/// Stores batches `sequences` of `per_batch` activities from `sensor_id` (times from
/// `second`, names and addresses varying), and reads back each activity's answer as the rows
/// give it, by (sensor, sequence, position), into `stored`.
fn store_batches(
    store: &mut dyn Storage,
    sensor_id: &str,
    sequences: std::ops::RangeInclusive<u64>,
    second: i64,
    stored: &mut std::collections::HashMap<(String, u64, u64), Activity>,
) {
    const PER_BATCH: u64 = 100;
    let names = ["alice", "bob", "carol"];
    for sequence in sequences {
        let batch: Vec<Activity> = (0..PER_BATCH)
            .map(|at| {
                let n = i64::try_from(sequence * PER_BATCH + at).expect("small");
                activity(
                    second + n,
                    names[usize::try_from(n).expect("small") % names.len()],
                    [10, 0, 2, u8::try_from(at).expect("small")],
                )
            })
            .collect();
        store
            .store_batch_with_directory(sensor_id, "spool", sequence, &batch, &[])
            .expect("store");
        for position in 0..PER_BATCH {
            let row = store
                .activity_at(sensor_id, sequence, position)
                .expect("read")
                .expect("a row");
            stored.insert((sensor_id.to_owned(), sequence, position), row);
        }
    }
}

#[test]
fn evidence_read_together_answers_each_reference_in_its_order() {
    on_both(|open| {
        let mut store = open();
        let mut stored = std::collections::HashMap::new();
        // Sensor s0's batches 1 to 4 compacted into a block (all but the newest row, 4:99);
        // then its batches 5 to 8 and s1's 1 and 2 compacted: s0's second block takes 4:99 too,
        // so both of s0's blocks span batch 4 (the second the nearest), and s1 has one.
        store_batches(store.as_mut(), "s0", 1..=4, 0, &mut stored);
        assert_eq!(store.compact(i64::MAX).expect("compact").blocks, 1);
        store_batches(store.as_mut(), "s0", 5..=8, 0, &mut stored);
        store_batches(store.as_mut(), "s1", 1..=2, 10_000, &mut stored);
        assert_eq!(store.compact(i64::MAX).expect("compact").blocks, 2);
        // s1's batch 3 stays in rows, beside s1:2:99, the newest row before it.
        store_batches(store.as_mut(), "s1", 3..=3, 10_000, &mut stored);
        let refs = [
            ("s1", 3, 5),   // rows
            ("s0", 2, 10),  // s0's first block, its second frame (positions 64 to 127)
            ("s0", 6, 50),  // s0's second block
            ("s0", 2, 11),  // the same frame as 2:10
            ("s0", 9, 0),   // no batch 9
            ("s0", 4, 5),   // s0's first block, where the nearest block (its second) lacks it
            ("s0", 4, 99),  // s0's second block, the nearest
            ("s1", 2, 99),  // rows: the newest row when compacted
            ("s2", 1, 0),   // no such sensor
            ("s1", 1, 3),   // s1's block
            ("s0", 2, 10),  // again
            ("s0", 1, 0),   // s0's first block, its first frame
            ("s0", 2, 100), // past the batch's end
        ];
        let refs: Vec<ActivityRef<'_>> = refs
            .iter()
            .map(|&(sensor_id, sequence, position)| ActivityRef {
                sensor_id,
                sequence,
                position,
            })
            .collect();
        let expected: Vec<Option<Activity>> = refs
            .iter()
            .map(|at| {
                stored
                    .get(&(at.sensor_id.to_owned(), at.sequence, at.position))
                    .cloned()
            })
            .collect();
        assert_eq!(
            expected.iter().filter(|found| found.is_none()).count(),
            3,
            "three references to nothing"
        );
        // Three times: frames decompressed and walked once, then parsed (read before), then
        // from the frames kept parsed.
        for read in ["first", "second", "third"] {
            assert_eq!(
                store.activities_at(&refs).expect("evidence"),
                expected,
                "{read} read"
            );
        }
        for (at, expected) in refs.iter().zip(&expected) {
            assert_eq!(
                &store
                    .activity_at(at.sensor_id, at.sequence, at.position)
                    .expect("evidence"),
                expected,
                "{at:?} alone"
            );
        }
        assert_eq!(store.activities_at(&[]).expect("nothing"), []);
        // A fresh handle (nothing of the blocks kept): each in a call of its own, and all
        // but the rows.
        let mut fresh = open();
        assert_eq!(
            fresh.activities_at(&refs[1..2]).expect("one"),
            expected[1..2]
        );
        assert_eq!(
            fresh.activities_at(&refs[1..7]).expect("compacted"),
            expected[1..7]
        );
    });
}

#[test]
fn two_compactors_at_once_compact_each_activity_once() {
    on_both(|open| {
        let mut first = open();
        let mut second = open();
        let total = store_activities(first.as_mut(), 12, 4, 100);
        let before = all(first.as_mut(), &Query::default());
        let other = std::thread::spawn(move || {
            let done = second.compact(i64::MAX).expect("the second compactor");
            (second, done)
        });
        let done = first.compact(i64::MAX).expect("the first compactor");
        let (_second, other_done) = other.join().expect("the second compactor");
        assert_eq!(
            done.activities + other_done.activities,
            total as u64 - 1,
            "{done:?} {other_done:?}"
        );
        assert_eq!(all(first.as_mut(), &Query::default()), before);
        assert_eq!(first.prune(i64::MAX).expect("prune"), total as u64);
    });
}

/// Prunes `store`, holding `every` (oldest first), to a budget falling from `budget` by
/// `tenths` tenths each time to 0, checking at each budget that what it deleted is counted and
/// was the oldest; whether some budget kept more than the newest and less than all.
fn shrinking_budgets(
    store: &mut dyn Storage,
    every: &[StoredActivity],
    mut budget: u64,
    tenths: u64,
) -> bool {
    let total = every.len();
    let mut left = total;
    let mut partial = false;
    while budget > 0 {
        let pruned = store.prune_to_budget(budget).expect("budget");
        let kept = all(store, &Query::default());
        assert_eq!(pruned, (left - kept.len()) as u64, "counted at {budget}");
        assert_eq!(
            kept,
            every[total - kept.len()..],
            "the newest kept at {budget}"
        );
        left = kept.len();
        partial |= left > 1 && left < total;
        budget = budget * (10 - tenths) / 10;
    }
    assert_eq!(left, 1, "the newest row is never deleted");
    partial
}

#[test]
fn a_shrinking_disk_budget_deletes_the_oldest_first_and_counts_them() {
    on_both(|open| {
        let mut store = open();
        store_activities(store.as_mut(), 3, 10, 200);
        let every = all(store.as_mut(), &Query::default());
        store.compact(i64::MAX).expect("compact");
        // 10% less each time from 64 MiB: each budget deletes what it must, oldest first.
        assert!(
            shrinking_budgets(store.as_mut(), &every, 64 << 20, 1),
            "some budget kept the newer blocks only"
        );
    });
}

#[test]
fn without_compaction_a_shrinking_disk_budget_deletes_the_oldest_rows_and_counts_them() {
    on_both(|open| {
        let mut store = open();
        store_activities(store.as_mut(), 2, 10, 300);
        let every = all(store.as_mut(), &Query::default());
        // 20% less each time from 16 MiB, the rows never compacted: each budget deletes the
        // oldest rows it must (PostgreSQL: as many as hold the excess at their mean size).
        shrinking_budgets(store.as_mut(), &every, 16 << 20, 2);
    });
}

/// Migration 6's insert of a block: its row, a row a frame (its id the block's shifted by 16,
/// plus its number), a row a key.
fn insert_migration_6_block(
    client: &mut postgres::Client,
    sensor_id: &str,
    entries: &[blocks::Entry],
) {
    let mut compressor = blocks::compressor(&[]).expect("compressor");
    let encoded = blocks::encode(sensor_id, entries, &mut compressor).expect("encode");
    let times: Vec<i64> = entries
        .iter()
        .map(|entry| entry.activity.time.as_ref().expect("time").seconds * SECOND)
        .collect();
    let sequences: Vec<i64> = entries
        .iter()
        .map(|entry| i64::try_from(entry.sequence).expect("small"))
        .collect();
    let id: i64 = client
        .query_one(
            "INSERT INTO activity_blocks (sensor_id, first_sequence, last_sequence, min_time_ns,
             max_time_ns, count, data, format, dictionary_id, bytes)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, 0) RETURNING id",
            &[
                &sensor_id,
                &sequences.iter().min(),
                &sequences.iter().max(),
                &times.iter().min(),
                &times.iter().max(),
                &i64::try_from(entries.len()).expect("small"),
                &encoded.index,
                &blocks::FORMAT_ACCOUNT_FRAMES,
            ],
        )
        .expect("block")
        .get(0);
    for (number, frame) in (0_i64..).zip(&encoded.frames) {
        client
            .execute(
                "INSERT INTO activity_frames (id, data) VALUES ($1, $2)",
                &[&((id << blocks::FRAME_ID_BITS) | number), frame],
            )
            .expect("frame");
    }
    for (key, frames) in &encoded.keys {
        client
            .execute(
                "INSERT INTO activity_block_keys (key, block_id, frames) VALUES ($1, $2, $3)",
                &[key, &id, frames],
            )
            .expect("key");
    }
}

#[test]
fn migration_7_carries_migration_6_blocks_over() {
    carries_migration_6_blocks_over(6, &[7, 8]);
}

#[test]
fn migration_8_carries_migration_7_keys_over() {
    carries_migration_6_blocks_over(7, &[8]);
}

/// Applies the migrations in `versions` and records them, as an older dcwatch did.
fn migrate_by_hand(client: &mut postgres::Client, versions: std::ops::RangeInclusive<i32>) {
    for (version, sql) in MIGRATIONS
        .iter()
        .filter(|(version, _)| versions.contains(version))
    {
        client.batch_execute(sql).expect("migration");
        client
            .execute(
                "INSERT INTO schema_migrations (version, applied_ns) VALUES ($1, 0)",
                &[version],
            )
            .expect("recorded");
    }
}

/// Migration 6's blocks, written by hand, then the migrations through `by_hand` applied by
/// hand and the others (`then`) by the store: every query answers what the blocks hold, and
/// pruning deletes them and their keys.
fn carries_migration_6_blocks_over(by_hand: i32, then: &[i32]) {
    let postgres = Postgres::start(false).expect("PostgreSQL");
    let url = postgres.database("migration").expect("a database");
    let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("client");
    client
        .batch_execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY,
             applied_ns BIGINT NOT NULL)",
        )
        .expect("migrations table");
    migrate_by_hand(&mut client, 1..=6);
    // Two sensors' blocks: names in both (carol), in one (a name longer than a lexeme, one
    // with a quote and a backslash; aliza, in s1's alone, whose key's group in PostgreSQL's
    // migration 8 is alice's), addresses in one or both.
    let long = "x".repeat(600);
    let names = ["alice", "carol", &long, "o'brien\\x"];
    let mut expected = Vec::new();
    for (sensor, block) in [("s0", 0_u8), ("s1", 1)] {
        let entries: Vec<blocks::Entry> = (0..300_u64)
            .map(|at| {
                let n = usize::try_from(at).expect("small");
                let name = if block == 1 && n % 8 == 2 {
                    "carol"
                } else if block == 1 && n % 8 == 6 {
                    "aliza"
                } else {
                    names[n % 4]
                };
                blocks::Entry {
                    sequence: 1 + at / 100,
                    position: at % 100,
                    activity: activity(
                        i64::from(block) * 1000 + i64::try_from(at).expect("small"),
                        name,
                        [10, block, 0, u8::try_from(n % 5).expect("small")],
                    ),
                }
            })
            .collect();
        insert_migration_6_block(&mut client, sensor, &entries);
        expected.extend(entries.into_iter().map(|entry| StoredActivity {
            sensor_id: sensor.to_owned(),
            sequence: entry.sequence,
            activity: entry.activity,
        }));
    }
    let total = expected.len();
    migrate_by_hand(&mut client, 7..=by_hand);

    let mut migrating = PgStore::connect_unchecked(&url, None).expect("connect");
    assert_eq!(migrating.migrate(0).expect("migrate"), then);
    let mut store = PgStore::connect(&url).expect("current");
    assert_eq!(all(&mut store, &Query::default()), expected);
    for name in names {
        let query = Query {
            account: Some(format!("CORP\\{name}")),
            ..Query::default()
        };
        let named: Vec<_> = expected
            .iter()
            .filter(|stored| stored.activity.account.as_ref().expect("account").name == name)
            .cloned()
            .collect();
        assert!(!named.is_empty());
        assert_eq!(all(&mut store, &query), named, "{name}");
        let counts = store.activity_counts(&query).expect("counts");
        assert_eq!(
            counts.iter().map(|count| count.count).sum::<i64>(),
            i64::try_from(named.len()).expect("a small count"),
            "{name}"
        );
    }
    let account = |name: &str| Query {
        account: Some(format!("CORP\\{name}")),
        ..Query::default()
    };
    // s1's activities of account `name`.
    let of_s1 = |name: &str| -> Vec<StoredActivity> {
        expected[300..]
            .iter()
            .filter(|stored| stored.activity.account.as_ref().expect("account").name == name)
            .cloned()
            .collect()
    };
    let aliza = of_s1("aliza");
    assert_eq!(aliza.len(), 37);
    assert_eq!(all(&mut store, &account("aliza")), aliza);
    assert!(
        all(&mut store, &account("alizz")).is_empty(),
        "its group lacks it"
    );
    let mut found = store.search("ali", 10).expect("search").accounts;
    found.sort();
    assert_eq!(found, ["alice", "aliza"]);
    let query = Query {
        ip: Some("10.1.0.3".parse().expect("ip")),
        ..Query::default()
    };
    assert_eq!(all(&mut store, &query).len(), 60, "one in five of s1's");
    assert_eq!(
        store.activity_at("s1", 2, 7).expect("evidence"),
        Some(expected[300 + 107].activity.clone())
    );
    assert_eq!(store.search("car", 10).expect("search").accounts, ["carol"]);
    assert_eq!(
        store.search("o'b", 10).expect("search").accounts,
        ["o'brien\\x"]
    );
    assert_eq!(store.search("xxx", 10).expect("search").accounts, [long]);
    let mut addresses = store.search("10.", 20).expect("search").addresses;
    addresses.sort();
    assert_eq!(
        addresses.len(),
        10,
        "10.0.0.0-4 and 10.1.0.0-4: {addresses:?}"
    );

    // s0's block first (its activities' times are seconds 0-299, s1's 1000-1299): a name
    // both held is then found in s1's alone.
    assert_eq!(store.prune(500 * SECOND).expect("prune"), 300);
    assert_eq!(all(&mut store, &account("carol")), of_s1("carol"));
    assert_eq!(
        store.search("alice", 10).expect("search").accounts,
        ["alice"]
    );
    assert_eq!(
        store.search("10.0.", 10).expect("search").addresses,
        ["10.0.0.1"],
        "s0's sources gone, the destination of all kept"
    );
    assert_eq!(store.prune(i64::MAX).expect("prune"), total as u64 - 300);
    assert!(all(&mut store, &Query::default()).is_empty());
    assert!(store.search("car", 10).expect("search").accounts.is_empty());
    let keys: i64 = client
        .query_one("SELECT COUNT(*) FROM activity_key_groups", &[])
        .expect("keys")
        .get(0);
    assert_eq!(keys, 0, "a deleted block's keys go with it");
}
