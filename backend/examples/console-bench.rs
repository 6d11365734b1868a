//! The console's response times with a big store: 1,000,000 activities and 10,000 alerts, and
//! the workbook of an alert with 100,000 pieces of evidence (time and peak memory).
//!
//! `cargo run --release -p dcwatch-backend --example console-bench [ACTIVITIES ALERTS EVIDENCE]`
//!
//! Each call goes through the console's router in-process (no TLS, no network), so the figures
//! are the handlers' and the store's. The baseline is `GET /api/v1/me`, which touches no store:
//! each line prints p50 and p99 and the p50's ratio to the baseline's.

#![expect(clippy::print_stdout, reason = "a benchmark prints its figures")]
#![expect(clippy::unwrap_used, reason = "a benchmark on data it made")]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    http::{Request, header},
};
use dcwatch_backend::{
    console::{self, Console, ConsoleConfig, auth::COOKIE, users},
    store::Store,
};
use dcwatch_detect::checkpoint::Checkpoint;
use dcwatch_proto::v1::{
    Account, Activity, Alert, AlertEntity, Endpoint, Evidence, KerberosActivity,
    activity::Body as ActivityBody,
    alert::{Category, Severity, Status},
    alert_entity::Role,
};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

const BATCH: usize = 10_000;
const ACCOUNTS: usize = 5_000;
const TRIALS: usize = 40;
const START: i64 = 1_790_000_000;

fn activity(index: usize) -> Activity {
    let host = u8::try_from(index % 250).unwrap() + 1;
    let subnet = u8::try_from((index / 250) % 200).unwrap();
    Activity {
        sensor_id: "bench".into(),
        time: Some(pbjson_types::Timestamp {
            seconds: START + i64::try_from(index).unwrap() * 2,
            nanos: 0,
        }),
        src: Some(Endpoint {
            ip: vec![10, 1, subnet, host],
            port: 50_000,
        }),
        dst: Some(Endpoint {
            ip: vec![10, 0, 0, 1],
            port: 88,
        }),
        account: Some(Account {
            domain: "CORP".into(),
            name: format!("user{}", index % ACCOUNTS),
            ..Account::default()
        }),
        body: Some(ActivityBody::Kerberos(KerberosActivity {
            r#type: dcwatch_proto::v1::kerberos_activity::Type::AsReq.into(),
            ..KerberosActivity::default()
        })),
        ..Activity::default()
    }
}

fn reference(index: usize) -> String {
    format!("bench:{}:{}", index / BATCH + 1, index % BATCH)
}

fn alert(index: usize, evidence: usize, activities: usize) -> Alert {
    let first = (index * 37) % activities;
    let sample = activity(first);
    let ts = |seconds| Some(pbjson_types::Timestamp { seconds, nanos: 0 });
    Alert {
        id: format!("bench{index:06}"),
        r#type: if index.is_multiple_of(3) {
            "dcsync"
        } else {
            "brute_force"
        }
        .into(),
        title: "Suspected brute-force attack (Kerberos, NTLM)".into(),
        description: format!("user{} made wrong guesses", first % ACCOUNTS),
        severity: if index.is_multiple_of(3) {
            Severity::High
        } else {
            Severity::Medium
        }
        .into(),
        category: Category::CredentialAccess.into(),
        start: sample.time,
        end: ts(sample.time.unwrap().seconds + 60),
        status: Status::Open.into(),
        entities: vec![
            AlertEntity {
                role: Role::SourceAccount.into(),
                name: format!("CORP\\user{}", first % ACCOUNTS),
                ..AlertEntity::default()
            },
            AlertEntity {
                role: Role::SourceComputer.into(),
                address: dcwatch_proto::json::endpoint_ip(sample.src.as_ref().unwrap())
                    .unwrap()
                    .to_string(),
                ..AlertEntity::default()
            },
        ],
        evidence: (0..evidence)
            .map(|offset| Evidence {
                activity_ref: reference((first + offset) % activities),
                ..Evidence::default()
            })
            .collect(),
        count: u64::try_from(evidence).unwrap(),
        primary_key: format!("src:{index}"),
        ..Alert::default()
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let last = sorted.len().saturating_sub(1);
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index"
    )]
    let index = ((last as f64) * fraction).round() as usize;
    sorted[index.min(last)]
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|arg| arg.parse().ok())
        .collect();
    let activities = args.first().copied().unwrap_or(1_000_000);
    let alerts = args.get(1).copied().unwrap_or(10_000);
    let big = args.get(2).copied().unwrap_or(100_000).min(activities);
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut store = Store::open(dir.path()).unwrap();
    for batch in 0..activities.div_ceil(BATCH) {
        let chunk: Vec<Activity> = (batch * BATCH..((batch + 1) * BATCH).min(activities))
            .map(activity)
            .collect();
        store
            .store_batch("bench", "bench", u64::try_from(batch + 1).unwrap(), &chunk)
            .unwrap();
    }
    let now = console::data::now_ns();
    let made: Vec<Alert> = (0..alerts)
        .map(|index| alert(index, 10, activities))
        .collect();
    for chunk in made.chunks(1000) {
        store
            .save_alerts_at(chunk, (0, &Checkpoint::NOTHING), ("bench", 0), 0, now)
            .unwrap();
    }
    let mut huge = alert(alerts, big, activities);
    huge.id = "bench-big".into();
    store
        .save_alerts_at(&[huge], (0, &Checkpoint::NOTHING), ("bench", 0), 0, now)
        .unwrap();
    users::add(
        &mut store,
        "admin",
        users::Role::Admin,
        "a long bench password",
        now,
    )
    .unwrap();
    println!(
        "store: {activities} activities, {alerts} alerts (+1 with {big} evidence) in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let state = Arc::new(Console::new(
        Box::new(store),
        &ConsoleConfig::default(),
        "https://bench".into(),
        Arc::default(),
    ));
    let router = console::router(Arc::clone(&state));
    let (token, _) = state
        .auth
        .start("admin".into(), users::Role::Admin)
        .unwrap();
    let get = |uri: String| {
        let router = router.clone();
        let token = token.clone();
        async move {
            let request = Request::get(uri)
                .header(header::HOST, "bench")
                .header(header::COOKIE, format!("{COOKIE}={token}"))
                .body(Body::empty())
                .unwrap();
            let started = Instant::now();
            let response = router.oneshot(request).await.unwrap();
            assert!(response.status().is_success(), "{}", response.status());
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            (started.elapsed(), bytes.len())
        }
    };
    let cases = [
        ("baseline: GET /api/v1/me", "/api/v1/me".to_owned()),
        ("timeline JSON, no filter", "/api/v1/alerts".to_owned()),
        ("timeline page, no filter", "/alerts".to_owned()),
        (
            "timeline JSON, entity filter",
            "/api/v1/alerts?entity=user42".to_owned(),
        ),
        (
            "timeline JSON, status+type",
            "/api/v1/alerts?status=OPEN&type=dcsync".to_owned(),
        ),
        ("alert page", "/alerts/bench000042".to_owned()),
        ("alert JSON", "/api/v1/alerts/bench000042".to_owned()),
        ("account page", "/accounts?name=CORP%5Cuser42".to_owned()),
        (
            "computer JSON",
            "/api/v1/computers?key=10.1.0.43".to_owned(),
        ),
        ("search", "/api/v1/search?q=user42".to_owned()),
        ("sensors page", "/sensors".to_owned()),
        ("health page", "/health".to_owned()),
    ];
    let mut baseline = Duration::ZERO;
    println!(
        "{:<32} {:>10} {:>10} {:>9} {:>10}",
        "call", "p50", "p99", "ratio", "bytes"
    );
    for (name, uri) in cases {
        let mut times = Vec::with_capacity(TRIALS);
        let mut size = 0;
        for _ in 0..TRIALS {
            let (time, bytes) = get(uri.clone()).await;
            times.push(time);
            size = bytes;
        }
        times.sort();
        let p50 = percentile(&times, 0.5);
        if baseline.is_zero() {
            baseline = p50.max(Duration::from_nanos(1));
        }
        println!(
            "{name:<32} {:>8.2}ms {:>8.2}ms {:>8.0}x {size:>10}",
            p50.as_secs_f64() * 1e3,
            percentile(&times, 0.99).as_secs_f64() * 1e3,
            p50.as_secs_f64() / baseline.as_secs_f64()
        );
    }
    // Peak memory of the workbook alone: reset the high-water mark first.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = peak_rss_kib();
    let (time, bytes) = get("/api/v1/alerts/bench-big/report.xlsx".to_owned()).await;
    println!(
        "xlsx of an alert with {big} evidence: {:.2} s, {bytes} bytes, peak RSS {} MiB (from {} MiB)",
        time.as_secs_f64(),
        peak_rss_kib() / 1024,
        before / 1024
    );
}
