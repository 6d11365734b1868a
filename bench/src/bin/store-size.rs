//! What the backend's store takes per activity, before and after compaction, and what queries
//! cost in each: beside the 0.3 GB a day Microsoft gives for Defender for Identity at 1000
//! packets/s.
//!
//! The input is the bundled corpus repeated `COPIES` times with the addresses rewritten per
//! copy (as `transport-cost` builds it), dissected by the sensor's library. Its activities are
//! stored through the backend's own `Store` in batches of `BATCH` (what a sensor at 1000
//! packets/s sends each second at the corpus's density). Then:
//! 1. bytes per activity of the store as ingest leaves it (a row and five index entries each:
//!    the figure bench/RESULTS.md had), and the same queries timed, `TRIALS` times, medians;
//! 2. everything compacted into blocks (`Store::compact`), timed; bytes per activity and the
//!    same queries again, whose answers must equal the first ones.
//!
//! Bytes are the store's pages in use (`page_count - freelist_count` times `page_size`): SQLite
//! reuses free pages, so this is what the file holds once it has grown to its steady size.
#![expect(clippy::print_stdout, reason = "a benchmark's output is its figures")]

use std::time::Instant;

use bench::{build_repeated_corpus, dissect, median};
use dcwatch_backend::store::{Query, Store, StoredActivity};

const COPIES: u16 = 50;
/// Activities a sensor at 1000 packets/s sends a second at the corpus's density (transport-cost).
const BATCH: usize = 297;
const TRIALS: usize = 5;
const SENSOR_ID: &str = "bench-sensor";
const RATE_PACKETS_PER_SECOND: f64 = 1000.0;
/// Defender for Identity (Azure ATP) FAQ: "For every one full day with an average of 1000
/// packets/sec you need 0.3 GB of storage."
const MDI_GB_PER_DAY: f64 = 0.3;
const SECONDS_PER_DAY: f64 = 86_400.0;

fn main() -> anyhow::Result<()> {
    let workdir = tempfile::tempdir()?;
    let input = workdir.path().join("corpus-repeated.pcap");
    let (frames, _) = build_repeated_corpus(COPIES, &input)?;
    let activities = dissect(&input, SENSOR_ID)?;
    let density = activities.len() as f64 / frames as f64;
    println!(
        "input: {COPIES} copies of the corpus, {frames} frames, {} activities ({density:.3} an \
         activity per packet), stored in batches of {BATCH}",
        activities.len()
    );
    let data = workdir.path().join("store");
    std::fs::create_dir_all(&data)?;
    let mut store = Store::open(&data)?;
    let started = Instant::now();
    for (sequence, batch) in (1..).zip(activities.chunks(BATCH)) {
        store.store_batch(SENSOR_ID, "bench", sequence, batch)?;
    }
    let ingest_seconds = started.elapsed().as_secs_f64();
    let queries = queries(&activities);
    let hot_bytes = store.used_bytes()?;
    let hot_times = time_queries(&store, &queries)?;

    let started = Instant::now();
    let compacted = store.compact(i64::MAX)?;
    let compact_seconds = started.elapsed().as_secs_f64();
    let cold_bytes = store.used_bytes()?;
    let cold_times = time_queries(&store, &queries)?;
    for ((name, query), (_, _, hot_answer)) in queries.iter().zip(&hot_times) {
        let cold_answer = answer(&store, query)?;
        anyhow::ensure!(
            &cold_answer == hot_answer,
            "{name}: {} activities after compaction, {} before",
            cold_answer.len(),
            hot_answer.len()
        );
    }

    let per_day = |bytes: u64| {
        let per_activity = bytes as f64 / activities.len() as f64;
        let gb = per_activity * density * RATE_PACKETS_PER_SECOND * SECONDS_PER_DAY / 1e9;
        (per_activity, gb)
    };
    println!();
    println!(
        "| store | bytes | bytes per activity | GB per day at 1000 packets/s | vs Defender for Identity |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (name, bytes) in [
        ("as ingested (rows, five indexes)", hot_bytes),
        ("compacted (zstd blocks, block index)", cold_bytes),
    ] {
        let (per_activity, gb) = per_day(bytes);
        println!(
            "| {name} | {bytes} | {per_activity:.1} | {gb:.3} | {:.2}x |",
            gb / MDI_GB_PER_DAY
        );
    }
    println!("| Defender for Identity | | | {MDI_GB_PER_DAY:.3} | 1.00x |");
    println!();
    println!(
        "ingest {:.1} s ({:.0} activities/s); compaction {compact_seconds:.1} s for {} activities \
         in {} blocks: {:.1} µs an activity, {:.0} CPU seconds a day at 1000 packets/s",
        ingest_seconds,
        activities.len() as f64 / ingest_seconds,
        compacted.activities,
        compacted.blocks,
        compact_seconds * 1e6 / compacted.activities.max(1) as f64,
        compact_seconds / compacted.activities.max(1) as f64
            * density
            * RATE_PACKETS_PER_SECOND
            * SECONDS_PER_DAY
    );
    println!();
    println!("| query | activities | as ingested (median of {TRIALS}) | compacted | ratio |");
    println!("|---|---:|---:|---:|---:|");
    for ((name, count, hot), (_, _, cold)) in hot_times
        .iter()
        .map(|(name, seconds, answer)| (name, answer.len(), seconds))
        .zip(
            cold_times
                .iter()
                .map(|(name, seconds, answer)| (name, answer, seconds)),
        )
    {
        println!(
            "| {name} | {count} | {:.1} ms | {:.1} ms | {:.2}x |",
            hot * 1e3,
            cold * 1e3,
            cold / hot
        );
    }
    Ok(())
}

/// Queries like the CLI's and the console's: one account, one address over a window, one
/// protocol over a window, an hour of everything.
fn queries(activities: &[dcwatch_proto::v1::Activity]) -> Vec<(String, Query)> {
    let times: Vec<i64> = activities
        .iter()
        .filter_map(|activity| activity.time.as_ref())
        .map(|time| time.seconds * 1_000_000_000 + i64::from(time.nanos))
        .collect();
    let first = times.iter().copied().min().unwrap_or(0);
    let middle = first + (times.iter().copied().max().unwrap_or(0) - first) / 2;
    let hour = 3_600_000_000_000;
    let account = activities
        .iter()
        .filter_map(|activity| activity.account.as_ref())
        .map(|account| account.name.clone())
        .find(|name| !name.is_empty())
        .unwrap_or_default();
    let ip = activities
        .iter()
        .filter_map(|activity| activity.src.as_ref())
        .find_map(dcwatch_proto::json::endpoint_ip);
    vec![
        (
            format!("account {account}"),
            Query {
                account: Some(account),
                ..Query::default()
            },
        ),
        (
            "an address, one hour".to_owned(),
            Query {
                ip,
                since_ns: Some(middle),
                until_ns: Some(middle + hour),
                ..Query::default()
            },
        ),
        (
            "kerberos, one hour".to_owned(),
            Query {
                protocol: Some("kerberos".to_owned()),
                since_ns: Some(middle),
                until_ns: Some(middle + hour),
                ..Query::default()
            },
        ),
        (
            "everything, one hour".to_owned(),
            Query {
                since_ns: Some(middle),
                until_ns: Some(middle + hour),
                ..Query::default()
            },
        ),
    ]
}

fn answer(store: &Store, query: &Query) -> anyhow::Result<Vec<StoredActivity>> {
    let mut out = Vec::new();
    store.activities(query, |stored| {
        out.push(stored);
        Ok(())
    })?;
    Ok(out)
}

/// Each query's median time and its answer.
fn time_queries(
    store: &Store,
    queries: &[(String, Query)],
) -> anyhow::Result<Vec<(String, f64, Vec<StoredActivity>)>> {
    let mut out = Vec::new();
    for (name, query) in queries {
        let mut seconds = Vec::new();
        let mut last = Vec::new();
        for _ in 0..TRIALS {
            let started = Instant::now();
            last = answer(store, query)?;
            seconds.push(started.elapsed().as_secs_f64());
        }
        out.push((name.clone(), median(&mut seconds), last));
    }
    Ok(out)
}
