//! What the backend's stores take per activity, as ingested (rows) and compacted (blocks), and
//! what queries cost in each: beside the 0.3 GB a day Microsoft gives for Defender for Identity
//! at 1000 packets/s. SQLite (the `all` node's file) first, then PostgreSQL (a cluster's shared
//! store, a server this run starts on loopback), each on the same input.
//!
//! The input is the bundled corpus repeated `COPIES` times with the addresses rewritten per
//! copy (as `transport-cost` builds it), dissected by the sensor's library. Its activities are
//! stored through the backend's own store in batches of `BATCH` (what a sensor at 1000
//! packets/s sends each second at the corpus's density). Then, in the same run, per store:
//! 1. bytes per activity of the store as ingest leaves it (a row and its index entries each),
//!    and the queries timed, `TRIALS` times each (7 unless set), medians;
//! 2. everything compacted into blocks (`compact`, which trains the dictionary), timed;
//!    bytes per activity, by table, and the same queries again, whose answers must equal the
//!    first ones.
//!
//! The alert-evidence probes look activities up by reference, as the console's alert page does
//! for each piece of an alert's evidence: references picked over the whole input, and the
//! evidence of alerts the detection engine raises on the input (test mode, every threshold
//! low, as `dcwatch-replay --alerts` judges), whose count the run prints. Those alerts' evidence
//! is read both one reference at a time (`activity_at`, as the console read it before) and one
//! call an alert (`activities_at`, as `Data::alert_detail` reads it), whose answers must equal.
//!
//! SQLite's bytes are the store's pages in use (`page_count - freelist_count` times
//! `page_size`): SQLite reuses free pages, so this is what the file holds once it has grown to
//! its steady size. PostgreSQL's are its tables' and indexes' sizes (`pg_table_size`, TOAST
//! included, and `pg_relation_size`), the compacted figure after `VACUUM FULL activities`: the
//! rows compaction deleted leave space PostgreSQL reuses for the next hour's rows, not returns,
//! so the rewritten table stands for the hot window; the blocks' tables are as compaction wrote
//! them. Its compaction CPU is this process's and the server's.
//!
//! The copies differ in addresses and times only: what repeats between them (names, tickets,
//! DNS questions) is what a dictionary and large blocks exploit, as they would exploit a real
//! network's repetition over a day. `COPIES=1` gives the figure with no copy to repeat.
//!
//! For quick probes: `STORES=sqlite` skips PostgreSQL, `PROBES=text` times only the queries
//! whose names contain `text`, and `TRIALS=n` runs each query `n` times (default 7), e.g. to
//! profile one query in a loop.
#![expect(clippy::print_stdout, reason = "a benchmark's output is its figures")]

use std::{path::PathBuf, sync::Arc, time::Instant};

use bench::{build_repeated_corpus, dissect, median, process_cpu, tree_cpu};
use dcwatch_backend::{
    console::data::{ActivityFilter, Data},
    detection::DirectorySource,
    store::{ActivityRef, Compacted, Query, Storage, Store, StoredActivity, postgres::PgStore},
};
use dcwatch_proto::v1::Activity;
use dcwatch_tests::cluster_servers::Postgres;

/// Activities a sensor at 1000 packets/s sends a second at the corpus's density (transport-cost).
const BATCH: usize = 297;
/// Times each query runs by default (`TRIALS`), the median quoted.
const TRIALS: usize = 7;
/// Alert evidence looked up, each by its reference, per trial.
const LOOKUPS: usize = 100;
/// The console's entity page shows this many activities.
const PAGE: usize = 100;
const SENSOR_ID: &str = "bench-sensor";
const RATE_PACKETS_PER_SECOND: f64 = 1000.0;
/// Defender for Identity (Azure ATP) FAQ: "For every one full day with an average of 1000
/// packets/sec you need 0.3 GB of storage."
const MDI_GB_PER_DAY: f64 = 0.3;
const SECONDS_PER_DAY: f64 = 86_400.0;

/// Runs a query once, in trial number `trial`; returns what it found, to compare before and
/// after.
type Run = Box<dyn Fn(&mut dyn Storage, &Data, usize) -> anyhow::Result<Vec<String>>>;

/// One query of the benchmark, run on the store as it is.
struct Probe {
    name: String,
    run: Run,
    /// The probe whose answers this one's must equal, trial for trial: the same question asked
    /// through another call.
    same_as: Option<String>,
}

/// What measuring a store needs beyond the `Storage` trait: its bytes, and the CPU its server
/// spends.
trait Backend {
    fn name(&self) -> &'static str;
    /// A new handle on the store.
    fn open(&self) -> anyhow::Result<Box<dyn Storage>>;
    /// The bytes the store takes.
    fn used(&mut self) -> anyhow::Result<u64>;
    /// Bytes each table (with its TOAST) and index takes, largest first.
    fn tables(&mut self) -> anyhow::Result<Vec<(String, u64)>>;
    /// Brings the store to what it holds in steady state once `compacted` (PostgreSQL: its
    /// statistics, and after compaction, the rows' table rewritten).
    fn settle(&mut self, compacted: bool) -> anyhow::Result<()>;
    /// CPU seconds the store's server has used (none for SQLite, which runs in this process).
    fn server_cpu(&self) -> anyhow::Result<f64>;
}

struct Sqlite(PathBuf);

impl Backend for Sqlite {
    fn name(&self) -> &'static str {
        "SQLite"
    }

    fn open(&self) -> anyhow::Result<Box<dyn Storage>> {
        Ok(Box::new(Store::open(&self.0)?))
    }

    fn used(&mut self) -> anyhow::Result<u64> {
        Ok(Store::open(&self.0)?.used_bytes()?)
    }

    fn tables(&mut self) -> anyhow::Result<Vec<(String, u64)>> {
        Ok(Store::open(&self.0)?.bytes_by_table()?)
    }

    fn settle(&mut self, _compacted: bool) -> anyhow::Result<()> {
        Ok(())
    }

    fn server_cpu(&self) -> anyhow::Result<f64> {
        Ok(0.0)
    }
}

struct Pg {
    server: Postgres,
    url: String,
    client: postgres::Client,
}

impl Pg {
    fn start() -> anyhow::Result<Self> {
        let server = Postgres::start(true)?;
        let url = server.database("store_size")?;
        PgStore::connect_unchecked(&url, None)?.migrate(0)?;
        let client = postgres::Client::connect(&url, postgres::NoTls)?;
        Ok(Self {
            server,
            url,
            client,
        })
    }
}

impl Backend for Pg {
    fn name(&self) -> &'static str {
        "PostgreSQL"
    }

    fn open(&self) -> anyhow::Result<Box<dyn Storage>> {
        Ok(Box::new(PgStore::connect(&self.url)?))
    }

    fn used(&mut self) -> anyhow::Result<u64> {
        Ok(self.tables()?.iter().map(|(_, bytes)| bytes).sum())
    }

    fn tables(&mut self) -> anyhow::Result<Vec<(String, u64)>> {
        Ok(self
            .client
            .query(
                "SELECT relname::TEXT, CASE relkind WHEN 'r' THEN pg_table_size(oid)
                 ELSE pg_relation_size(oid) END FROM pg_class
                 WHERE relkind IN ('r', 'i') AND relnamespace = 'public'::regnamespace
                 ORDER BY 2 DESC",
                &[],
            )?
            .iter()
            .map(|row| (row.get(0), u64::try_from(row.get::<_, i64>(1)).unwrap_or(0)))
            .collect())
    }

    fn settle(&mut self, compacted: bool) -> anyhow::Result<()> {
        // Only the rows' table is rewritten: the blocks' are measured as compaction wrote them.
        if compacted {
            self.client.batch_execute("VACUUM FULL activities")?;
        }
        self.client.batch_execute("ANALYZE")?;
        Ok(())
    }

    fn server_cpu(&self) -> anyhow::Result<f64> {
        tree_cpu(self.server.pid()?)
    }
}

/// One store's figures.
struct Figures {
    hot_bytes: u64,
    hot_tables: Vec<(String, u64)>,
    cold_bytes: u64,
    cold_tables: Vec<(String, u64)>,
    /// Each probe's median time and answer, on the rows and on the blocks.
    hot: Vec<(f64, Vec<String>)>,
    cold: Vec<(f64, Vec<String>)>,
    ingest_seconds: f64,
    compacted: Compacted,
    compact_seconds: f64,
    compact_cpu: f64,
}

fn main() -> anyhow::Result<()> {
    let copies: u16 = std::env::var("COPIES")
        .ok()
        .and_then(|copies| copies.parse().ok())
        .unwrap_or(50);
    let workdir = tempfile::tempdir()?;
    let input = workdir.path().join("corpus-repeated.pcap");
    let (frames, _) = build_repeated_corpus(copies, &input)?;
    let activities = dissect(&input, SENSOR_ID)?;
    let density = activities.len() as f64 / frames as f64;
    println!(
        "input: {copies} copies of the corpus, {frames} frames, {} activities ({density:.3} an \
         activity per packet), stored in batches of {BATCH}",
        activities.len()
    );
    let data = workdir.path().join("store");
    std::fs::create_dir_all(&data)?;
    let mut references = Vec::new();
    for (sequence, batch) in (1_u64..).zip(activities.chunks(BATCH)) {
        references.push((sequence, batch.len() as u64));
    }
    let only = std::env::var("PROBES").unwrap_or_default();
    let alerts = alert_evidence(&activities);
    let cited: std::collections::HashSet<&(u64, u64)> = alerts.iter().flatten().collect();
    println!(
        "detection (test mode, every threshold low, as a replay judges): {} alerts citing {} \
         evidence references, {} activities ({:.1}% of the input)",
        alerts.len(),
        alerts.iter().map(Vec::len).sum::<usize>(),
        cited.len(),
        cited.len() as f64 * 100.0 / activities.len() as f64
    );
    let probes: Vec<Probe> = probes(&activities, &references, alerts)
        .into_iter()
        .filter(|probe| probe.name.contains(&only))
        .collect();
    let trials = std::env::var("TRIALS")
        .ok()
        .and_then(|trials| trials.parse().ok())
        .unwrap_or(TRIALS);
    let mut backends: Vec<Box<dyn Backend>> = vec![Box::new(Sqlite(data))];
    if std::env::var("STORES").map_or(true, |stores| stores.contains("postgres")) {
        backends.push(Box::new(Pg::start()?));
    }
    let mut all = Vec::new();
    for backend in &mut backends {
        let figures = measure(backend.as_mut(), &activities, &probes, trials)?;
        report(backend.name(), &figures, &activities, density);
        all.push(figures);
    }
    println!();
    print!("| query | answers | SQLite rows (median of {trials}) | SQLite compacted | ratio |");
    if all.len() > 1 {
        print!(" PostgreSQL rows | PostgreSQL compacted | ratio | PostgreSQL rows / SQLite rows |");
    }
    println!(
        "\n|---|---:|---:|---:|---:|{}",
        "---:|".repeat(4 * (all.len() - 1))
    );
    for (at, probe) in probes.iter().enumerate() {
        let sqlite = &all[0];
        let (sqlite_hot, sqlite_cold) = (sqlite.hot[at].0, sqlite.cold[at].0);
        print!(
            "| {} | {} | {:.3} ms | {:.3} ms | {:.2}x |",
            probe.name,
            sqlite.hot[at].1.len(),
            sqlite_hot * 1e3,
            sqlite_cold * 1e3,
            sqlite_cold / sqlite_hot,
        );
        if let Some(pg) = all.get(1) {
            let (pg_hot, pg_cold) = (pg.hot[at].0, pg.cold[at].0);
            print!(
                " {:.3} ms | {:.3} ms | {:.2}x | {:.2}x |",
                pg_hot * 1e3,
                pg_cold * 1e3,
                pg_cold / pg_hot,
                pg_hot / sqlite_hot,
            );
        }
        println!();
    }
    Ok(())
}

/// Stores `activities` in `backend`, measures it, compacts it, measures it again; checks that
/// each probe answers the same from the blocks as from the rows.
fn measure(
    backend: &mut dyn Backend,
    activities: &[Activity],
    probes: &[Probe],
    trials: usize,
) -> anyhow::Result<Figures> {
    let mut store = backend.open()?;
    let started = Instant::now();
    for (sequence, batch) in (1_u64..).zip(activities.chunks(BATCH)) {
        store.store_batch_with_directory(SENSOR_ID, "bench", sequence, batch, &[])?;
    }
    let ingest_seconds = started.elapsed().as_secs_f64();
    let console = Data::new(backend.open()?, Arc::new(DirectorySource::default()));
    backend.settle(false)?;
    let hot_bytes = backend.used()?;
    let hot_tables = backend.tables()?;
    let hot = time_probes(store.as_mut(), &console, probes, trials)?;

    let started = Instant::now();
    let cpu_before = process_cpu(std::process::id())? + backend.server_cpu()?;
    let compacted = store.compact(i64::MAX)?;
    let compact_cpu = process_cpu(std::process::id())? + backend.server_cpu()? - cpu_before;
    let compact_seconds = started.elapsed().as_secs_f64();
    backend.settle(true)?;
    let cold_bytes = backend.used()?;
    let cold_tables = backend.tables()?;
    let cold = time_probes(store.as_mut(), &console, probes, trials)?;
    for (probe, answers) in probes.iter().zip(hot.iter().zip(&cold)) {
        let Some(same_as) = &probe.same_as else {
            continue;
        };
        let Some(other) = probes.iter().position(|other| other.name == *same_as) else {
            continue;
        };
        anyhow::ensure!(
            answers.0.1 == hot[other].1 && answers.1.1 == cold[other].1,
            "{} ({}): answers other than {}'s",
            probe.name,
            backend.name(),
            same_as
        );
    }
    for (probe, ((_, hot_answer), (_, cold_answer))) in probes.iter().zip(hot.iter().zip(&cold)) {
        anyhow::ensure!(
            cold_answer == hot_answer,
            "{} ({}): {} answers after compaction, {} before",
            probe.name,
            backend.name(),
            cold_answer.len(),
            hot_answer.len()
        );
    }
    Ok(Figures {
        hot_bytes,
        hot_tables,
        cold_bytes,
        cold_tables,
        hot,
        cold,
        ingest_seconds,
        compacted,
        compact_seconds,
        compact_cpu,
    })
}

/// Prints one store's bytes (per activity, per day, by table) and its compaction's cost.
fn report(name: &str, figures: &Figures, activities: &[Activity], density: f64) {
    let of = |tables: &[(String, u64)], name: &str| {
        tables
            .iter()
            .find(|(table, _)| table == name)
            .map_or(0, |(_, bytes)| *bytes)
    };
    let per_day = |bytes: u64| {
        let per_activity = bytes as f64 / activities.len() as f64;
        let gb = per_activity * density * RATE_PACKETS_PER_SECOND * SECONDS_PER_DAY / 1e9;
        (per_activity, gb)
    };
    println!();
    println!("### {name}");
    println!();
    println!(
        "| store | bytes | bytes per activity | GB per day at 1000 packets/s | vs Defender for Identity |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (state, bytes) in [
        ("as ingested (rows and their indexes)", figures.hot_bytes),
        (
            "compacted (zstd frames with a dictionary, keys with their frames)",
            figures.cold_bytes,
        ),
    ] {
        let (per_activity, gb) = per_day(bytes);
        println!(
            "| {state} | {bytes} | {per_activity:.1} | {gb:.3} | {:.2}x |",
            gb / MDI_GB_PER_DAY
        );
    }
    // The dictionary is stored once, not per day: over a day at 1000 packets/s it is spread
    // over that day's activities, not over this input's.
    let dictionary = of(&figures.cold_tables, "activity_dictionaries");
    let day_activities = density * RATE_PACKETS_PER_SECOND * SECONDS_PER_DAY;
    let steady = figures.cold_bytes.saturating_sub(dictionary) as f64
        + dictionary as f64 * activities.len() as f64 / day_activities;
    let (per_activity, gb) = per_day(steady as u64);
    println!(
        "| compacted, the dictionary ({dictionary} bytes) spread over a day's {day_activities:.0} \
         activities | | {per_activity:.1} | {gb:.3} | {:.2}x |",
        gb / MDI_GB_PER_DAY
    );
    // What grows with the days: the blocks' tables and indexes, without the fixed small
    // tables the whole store also counts (and the dictionary spread as above).
    let tier = figures
        .cold_tables
        .iter()
        .filter(|(name, _)| {
            name.starts_with("activity_") && !name.starts_with("activity_dictionaries")
        })
        .map(|(_, bytes)| *bytes)
        .sum::<u64>() as f64
        + dictionary as f64 * activities.len() as f64 / day_activities;
    let (per_activity, gb) = per_day(tier as u64);
    println!(
        "| compacted tier only (`activity_*` but the dictionaries, spread as above) | {tier:.0} | \
         {per_activity:.2} | {gb:.4} | {:.3}x |",
        gb / MDI_GB_PER_DAY
    );
    println!("| Defender for Identity | | | {MDI_GB_PER_DAY:.3} | 1.00x |");
    println!();
    println!("| table or index | as ingested, bytes per activity | compacted |");
    println!("|---|---:|---:|");
    let mut names: Vec<&String> = figures
        .hot_tables
        .iter()
        .chain(&figures.cold_tables)
        .map(|(name, _)| name)
        .collect();
    names.sort();
    names.dedup();
    for name in names {
        let (before, after) = (
            of(&figures.hot_tables, name),
            of(&figures.cold_tables, name),
        );
        if before + after >= 4096 * 4 {
            println!(
                "| {name} | {:.2} | {:.2} |",
                before as f64 / activities.len() as f64,
                after as f64 / activities.len() as f64
            );
        }
    }
    let compacted = figures.compacted;
    let compact_cpu = figures.compact_cpu;
    println!();
    println!(
        "ingest {:.1} s ({:.0} activities/s); compaction {:.1} s, {compact_cpu:.1} CPU s, for {} \
         activities in {} blocks (dictionary training included): {:.1} CPU µs an activity, {:.0} \
         CPU seconds a day at 1000 packets/s",
        figures.ingest_seconds,
        activities.len() as f64 / figures.ingest_seconds,
        figures.compact_seconds,
        compacted.activities,
        compacted.blocks,
        compact_cpu * 1e6 / compacted.activities.max(1) as f64,
        compact_cpu / compacted.activities.max(1) as f64
            * density
            * RATE_PACKETS_PER_SECOND
            * SECONDS_PER_DAY
    );
}

/// The queries of the CLI and the console, on keys picked from the middle of the input: an
/// account present in every copy, an address (a computer) seen in one copy, a protocol and
/// everything over an hour, alert evidence by reference (the same each trial, and other each
/// trial), the evidence of alerts detection raised on the input (as the console's alert page
/// reads it), and the console's entity pages.
fn probes(
    activities: &[Activity],
    references: &[(u64, u64)],
    alerts: Vec<Vec<(u64, u64)>>,
) -> Vec<Probe> {
    let times: Vec<i64> = activities.iter().map(time_ns).collect();
    let first = times.iter().copied().min().unwrap_or(0);
    let middle = first + (times.iter().copied().max().unwrap_or(0) - first) / 2;
    let hour = 3_600_000_000_000;
    let at_middle = activities
        .iter()
        .position(|activity| time_ns(activity) >= middle)
        .unwrap_or(0);
    let account = activities[at_middle..]
        .iter()
        .filter_map(|activity| activity.account.as_ref())
        .map(|account| account.name.clone())
        .find(|name| name.ends_with('$'))
        .unwrap_or_default();
    let ip = activities[at_middle..]
        .iter()
        .filter_map(|activity| activity.src.as_ref())
        .find_map(dcwatch_proto::json::endpoint_ip);
    let query = |query: Query| -> Run {
        Box::new(move |store, _, _| {
            let mut out = Vec::new();
            store.activities(&query, &mut |stored: StoredActivity| {
                out.push(format!(
                    "{}:{}:{:?}",
                    stored.sensor_id, stored.sequence, stored.activity
                ));
                Ok(())
            })?;
            Ok(out)
        })
    };
    // Evidence spread over the whole input, as alerts over days would reference it: the same
    // each trial (an alert's page opened again), or other evidence each trial, in other
    // frames (`step` sets of it), so that nothing read by a trial before is read again.
    let step = (references.len() / LOOKUPS).max(1);
    let evidence_from = move |first: usize| -> Vec<(u64, u64)> {
        references
            .iter()
            .skip(first)
            .step_by(step)
            .map(|&(sequence, count)| (sequence, (sequence * 7) % count))
            .collect()
    };
    let evidence = evidence_from(0);
    let other_evidence: Vec<Vec<(u64, u64)>> = (0..step).map(evidence_from).collect();
    let look_up =
        |store: &mut dyn Storage, evidence: &[(u64, u64)]| -> anyhow::Result<Vec<String>> {
            evidence
                .iter()
                .map(|&(sequence, position)| {
                    Ok(format!(
                        "{:?}",
                        store.activity_at(SENSOR_ID, sequence, position)?
                    ))
                })
                .collect()
        };
    // The console's alert page looks each piece of an alert's evidence up by its reference
    // (`Data::alert_detail`): whole alerts, spread over the input, other alerts each trial, about
    // `LOOKUPS` references a trial.
    let cited: usize = alerts.iter().map(Vec::len).sum();
    let alert_step = (cited / LOOKUPS).max(1);
    let alert_pages: Vec<Vec<Vec<(u64, u64)>>> = (0..alert_step.min(alerts.len()))
        .map(|first| {
            alerts
                .iter()
                .skip(first)
                .step_by(alert_step)
                .cloned()
                .collect()
        })
        .collect();
    let pages: Vec<Vec<(u64, u64)>> = alert_pages
        .iter()
        .map(|page| page.iter().flatten().copied().collect())
        .collect();
    let pages_named = format!(
        "{} alerts, {} lookups",
        alerts.len().div_ceil(alert_step),
        pages.first().map_or(0, Vec::len)
    );
    let page_account = account.clone();
    let page_address = ip.map(|ip| ip.to_string()).unwrap_or_default();
    let profile_account = account.clone();
    vec![
        Probe {
            same_as: None,
            name: format!("account {account} (CLI query)"),
            run: query(Query {
                account: Some(account.clone()),
                ..Query::default()
            }),
        },
        Probe {
            same_as: None,
            name: format!(
                "address {} (CLI query)",
                ip.map(|ip| ip.to_string()).unwrap_or_default()
            ),
            run: query(Query {
                ip,
                ..Query::default()
            }),
        },
        Probe {
            same_as: None,
            name: "kerberos, one hour".to_owned(),
            run: query(Query {
                protocol: Some("kerberos".to_owned()),
                since_ns: Some(middle),
                until_ns: Some(middle + hour),
                ..Query::default()
            }),
        },
        Probe {
            same_as: None,
            name: "everything, one hour".to_owned(),
            run: query(Query {
                since_ns: Some(middle),
                until_ns: Some(middle + hour),
                ..Query::default()
            }),
        },
        Probe {
            same_as: None,
            name: format!("{} alert evidence lookups by reference", evidence.len()),
            run: Box::new(move |store, _, _| look_up(store, &evidence)),
        },
        Probe {
            same_as: None,
            name: format!(
                "{} alert evidence lookups by reference, other evidence each trial",
                other_evidence[0].len()
            ),
            run: Box::new(move |store, _, trial| {
                look_up(store, &other_evidence[trial % other_evidence.len()])
            }),
        },
        Probe {
            same_as: None,
            name: format!("alert pages' evidence ({pages_named}), other alerts each trial"),
            run: Box::new(move |store, _, trial| {
                look_up(
                    store,
                    pages
                        .get(trial % pages.len().max(1))
                        .map_or(&[], Vec::as_slice),
                )
            }),
        },
        Probe {
            name: format!(
                "alert pages' evidence ({pages_named}), one call a page, other alerts each trial"
            ),
            same_as: Some(format!(
                "alert pages' evidence ({pages_named}), other alerts each trial"
            )),
            run: Box::new(move |store, _, trial| {
                let Some(page) = alert_pages.get(trial % alert_pages.len().max(1)) else {
                    return Ok(Vec::new());
                };
                let mut out = Vec::new();
                for alert in page {
                    let refs: Vec<ActivityRef<'_>> = alert
                        .iter()
                        .map(|&(sequence, position)| ActivityRef {
                            sensor_id: SENSOR_ID,
                            sequence,
                            position,
                        })
                        .collect();
                    out.extend(
                        store
                            .activities_at(&refs)?
                            .iter()
                            .map(|found| format!("{found:?}")),
                    );
                }
                Ok(out)
            }),
        },
        Probe {
            same_as: None,
            name: format!("account, {PAGE} newest, through the ingest connection"),
            run: newest(&account, Connection::Ingest),
        },
        Probe {
            same_as: None,
            name: format!("account, {PAGE} newest, through the console's connection"),
            run: newest(&account, Connection::Console),
        },
        Probe {
            same_as: None,
            name: format!("console: account page ({PAGE} newest activities)"),
            run: Box::new(move |_, console, _| {
                let page =
                    console.entity("account", &page_account, &ActivityFilter::default(), PAGE)?;
                Ok(page
                    .activities
                    .iter()
                    .map(|row| serde_json::to_string(row).unwrap_or_default())
                    .collect())
            }),
        },
        Probe {
            same_as: None,
            name: format!("console: address page ({PAGE} newest activities)"),
            run: Box::new(move |_, console, _| {
                let page =
                    console.entity("computer", &page_address, &ActivityFilter::default(), PAGE)?;
                Ok(page
                    .activities
                    .iter()
                    .map(|row| serde_json::to_string(row).unwrap_or_default())
                    .collect())
            }),
        },
        Probe {
            same_as: None,
            name: "console: account profile (counts by protocol)".to_owned(),
            run: Box::new(move |_, console, _| {
                Ok(vec![
                    console
                        .profile("account", &profile_account, "")?
                        .to_string(),
                ])
            }),
        },
    ]
}

/// The evidence references, (sequence, position), of each alert the detection engine raises on
/// `activities` stored as the benchmark stores them, alerts in the order they were first
/// raised. Test mode (every threshold low, as `dcwatch-replay --alerts` judges): the corpus's
/// attacks alert without a learning period.
fn alert_evidence(activities: &[Activity]) -> Vec<Vec<(u64, u64)>> {
    let mut engine = dcwatch_detect::Engine::new(
        dcwatch_detect::Config::test_mode(),
        Arc::new(dcwatch_entity::Directory::default()),
    );
    let mut raised = Vec::new();
    for (sequence, batch) in (1_u64..).zip(activities.chunks(BATCH)) {
        for (position, activity) in batch.iter().enumerate() {
            let reference = format!("{SENSOR_ID}:{sequence}:{position}");
            raised.extend(
                engine
                    .observe(activity, &reference)
                    .into_iter()
                    .filter(|raised| raised.new)
                    .map(|raised| raised.id),
            );
        }
    }
    raised
        .iter()
        .filter_map(|id| engine.alert(id))
        .map(|alert| {
            alert
                .evidence
                .iter()
                .filter_map(|piece| {
                    let mut parts = piece.activity_ref.rsplitn(3, ':');
                    let position = parts.next()?.parse().ok()?;
                    let sequence = parts.next()?.parse().ok()?;
                    Some((sequence, position))
                })
                .collect()
        })
        .collect()
}

/// Which of the two connections to the store a probe reads through: the one ingest and
/// compaction wrote with, or the console's, opened beside it before compaction.
#[derive(Clone, Copy)]
enum Connection {
    Ingest,
    Console,
}

/// The account's `PAGE` newest activities, as the console's page asks for them, through
/// `connection`: the page's cost without the page.
fn newest(account: &str, connection: Connection) -> Run {
    let query = Query {
        account: Some(account.to_owned()),
        ..Query::default()
    };
    Box::new(move |store, console, _| {
        let mut out = Vec::new();
        let mut each = |stored: StoredActivity, position: u64| {
            out.push(format!(
                "{}:{}:{position}",
                stored.sensor_id, stored.sequence
            ));
            out.len() < PAGE
        };
        match connection {
            Connection::Ingest => store.newest_activities(&query, &mut each)?,
            Connection::Console => {
                console.with(|store| store.newest_activities(&query, &mut each))?;
            }
        }
        Ok(out)
    })
}

fn time_ns(activity: &Activity) -> i64 {
    activity.time.as_ref().map_or(0, |time| {
        time.seconds * 1_000_000_000 + i64::from(time.nanos)
    })
}

/// Each probe's median time and its answer.
fn time_probes(
    store: &mut dyn Storage,
    console: &Data,
    probes: &[Probe],
    trials: usize,
) -> anyhow::Result<Vec<(f64, Vec<String>)>> {
    let mut out = Vec::new();
    for probe in probes {
        let mut seconds = Vec::new();
        let mut last = Vec::new();
        for trial in 0..trials {
            let started = Instant::now();
            last = (probe.run)(&mut *store, console, trial)?;
            seconds.push(started.elapsed().as_secs_f64());
        }
        out.push((median(&mut seconds), last));
    }
    Ok(out)
}
