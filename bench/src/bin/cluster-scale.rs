//! What the backend's roles buy on this machine: the same load through one `all` node on SQLite
//! (the baseline) and through clusters of `ingest` and `detect` nodes sharing PostgreSQL and a
//! NATS JetStream stream (1 or 2 ingest nodes, 1 or 2 detect nodes), each run from scratch.
//!
//! The load: 8 sensor-like gRPC clients over TLS, each sending 100 batches of 200 activities
//! (workstations' AS-REQs and DNS queries) as fast as they are acknowledged, as sensors catching
//! up from their spools do; every fourth batch and the last carry a DCSync-like marker from a new
//! address, which raises an alert of its own (alert latency: from the batch handed to the stream
//! to the alert's line in a detect node's JSON file, polled every 2 ms). Sensor i goes to ingest
//! node i mod the number of ingest nodes.
//!
//! Figures: activities stored per second (first batch sent to the last acknowledged),
//! activities judged per second (to the last marker's alert), alerts per second over the same
//! time, the alert latency's p50 and p99, and the CPU seconds each role's processes, NATS and
//! PostgreSQL (the postmaster and its backends) used. Ratios are against the `all` node.
//!
//! `cluster-scale BACKEND BASELINE` measures instead what the republish by key costs a detect
//! node: the same load stored through one ingest node, then drained by one detect node started
//! only then, with BACKEND and with BASELINE (a build that partitions by source only, main's
//! before the republish), alternating, twice each. Figures: the drain's activities per second
//! (from the detect node's start, so its claim of the partitions too, to the last marker's
//! alert) and the detect node's CPU seconds per 100,000 activities, with their ratios.
#![expect(clippy::print_stdout, reason = "a benchmark's output is its figures")]

use std::{
    collections::HashMap,
    io::{Read as _, Seek as _, SeekFrom},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use bench::{
    median, process_cpu,
    synthetic::{batch, benign, marker, message, open_stream},
    tree_cpu,
};
use dcwatch_proto::v1::{BackendMessage, backend_message, sensor_message};
use dcwatch_tests::{
    backend_process::BackendProcess,
    cluster_servers::{Nats, Postgres},
};

const SENSORS: u8 = 8;
const BATCHES: u64 = 100;
const ACTIVITIES_PER_BATCH: usize = 200;
const MARKER_EVERY: u64 = 4;
/// Partitions of the stream: more than detect nodes, as a deployment would have.
const PARTITIONS: u32 = 8;
/// After the last acknowledgement, how long the alerts may take.
const DRAIN: Duration = Duration::from_mins(3);

/// A layout: ingest and detect nodes; (0, 0) is the single `all` node on SQLite. With
/// `detect_late` the detect nodes start once every batch is stored, and judged/s is the rate at
/// which they drain the stream.
#[derive(Clone, Copy, Debug)]
struct Layout {
    ingest: usize,
    detect: usize,
    detect_late: bool,
}

impl Layout {
    fn name(self) -> String {
        if self.ingest == 0 {
            "1 all (SQLite)".to_owned()
        } else {
            format!("{} ingest + {} detect", self.ingest, self.detect)
        }
    }
}

/// One layout's figures.
struct Figures {
    stored_per_second: f64,
    judged_per_second: f64,
    alerts_per_second: f64,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
    /// CPU seconds by what used them.
    cpu: Vec<(String, f64)>,
}

fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let backend = std::env::args().nth(1).map_or_else(
        || root.join("target/release/dcwatch-backend"),
        PathBuf::from,
    );
    let baseline = std::env::args().nth(2).map(PathBuf::from);
    for binary in std::iter::once(&backend).chain(&baseline) {
        if !binary.exists() {
            bail!(
                "{} not found: build it with cargo build --release -p dcwatch-backend",
                binary.display()
            );
        }
    }
    if let Some(baseline) = baseline {
        return republish_cost(&backend, &baseline);
    }
    println!(
        "cluster-scale: {SENSORS} sensors x {BATCHES} batches x {ACTIVITIES_PER_BATCH} activities \
         ({} in all), a marker alert every {MARKER_EVERY} batches; {PARTITIONS} partitions; \
         fsync on",
        u64::from(SENSORS) * BATCHES * ACTIVITIES_PER_BATCH as u64
    );
    let layouts = [(0, 0), (1, 1), (2, 1), (1, 2), (2, 2)].map(|(ingest, detect)| Layout {
        ingest,
        detect,
        detect_late: false,
    });
    let postgres = Postgres::start(true)?;
    let mut results = Vec::new();
    for (index, layout) in layouts.into_iter().enumerate() {
        let figures =
            run_layout(&backend, layout, &postgres, index).with_context(|| layout.name())?;
        results.push((layout, figures));
    }
    let base = &results[0].1;
    println!(
        "| layout | stored/s | judged/s | alerts/s | alert p50 | alert p99 | CPU s (by process) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|");
    for (layout, figures) in &results {
        let cpu: Vec<String> = figures
            .cpu
            .iter()
            .map(|(what, seconds)| format!("{what} {seconds:.1}"))
            .collect();
        println!(
            "| {} | {:.0} ({:.2}x) | {:.0} ({:.2}x) | {:.1} ({:.2}x) | {:.0} ms ({:.2}x) | {:.0} ms ({:.2}x) | {} |",
            layout.name(),
            figures.stored_per_second,
            figures.stored_per_second / base.stored_per_second,
            figures.judged_per_second,
            figures.judged_per_second / base.judged_per_second,
            figures.alerts_per_second,
            figures.alerts_per_second / base.alerts_per_second,
            figures.latency_p50_ms,
            figures.latency_p50_ms / base.latency_p50_ms,
            figures.latency_p99_ms,
            figures.latency_p99_ms / base.latency_p99_ms,
            cpu.join(", ")
        );
    }
    Ok(())
}

/// One ingest node stores the load, then one detect node drains it: with `backend` and with
/// `baseline`, alternating, twice each.
fn republish_cost(backend: &Path, baseline: &Path) -> anyhow::Result<()> {
    let layout = Layout {
        ingest: 1,
        detect: 1,
        detect_late: true,
    };
    let postgres = Postgres::start(true)?;
    let mut runs: [Vec<(f64, f64)>; 2] = [Vec::new(), Vec::new()];
    for index in 0..4 {
        let (build, binary) = if index % 2 == 0 {
            (0, baseline)
        } else {
            (1, backend)
        };
        let figures = run_layout(binary, layout, &postgres, index)?;
        let detect_cpu = figures
            .cpu
            .iter()
            .find(|(what, _)| what == "detect")
            .map_or(f64::NAN, |(_, seconds)| *seconds);
        let per_100k = detect_cpu / total_activities() * 1e5;
        println!(
            "run {index} ({}): drained {:.0} activities/s, detect CPU {detect_cpu:.1} s \
             ({per_100k:.2} s per 100,000)",
            binary.display(),
            figures.judged_per_second
        );
        runs[build].push((figures.judged_per_second, per_100k));
    }
    let medians = runs.map(|mut runs| {
        let (mut rates, mut cpu): (Vec<f64>, Vec<f64>) = runs.drain(..).unzip();
        (median(&mut rates), median(&mut cpu))
    });
    let [(base_rate, base_cpu), (rate, cpu)] = medians;
    println!("| build | drained/s (median of 2) | detect CPU s per 100,000 |");
    println!("|---|---:|---:|");
    println!("| baseline | {base_rate:.0} (1.00x) | {base_cpu:.2} (1.00x) |");
    println!(
        "| republish | {rate:.0} ({:.2}x) | {cpu:.2} ({:.2}x) |",
        rate / base_rate,
        cpu / base_cpu
    );
    Ok(())
}

fn total_activities() -> f64 {
    f64::from(SENSORS) * BATCHES as f64 * ACTIVITIES_PER_BATCH as f64
}

/// A node's configuration file: its data folder, stats, alerts as JSON lines, the cluster.
fn write_config(dir: &Path, name: &str, cluster: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    let data = dir.join(name);
    std::fs::create_dir_all(&data)?;
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[stats]\nfile = \"{}\"\n[outputs.json]\npath = \"{}\"\n{cluster}",
            data.display(),
            data.join("stats.json").display(),
            data.join("alerts.jsonl").display()
        ),
    )?;
    Ok((config, data))
}

fn run_layout(
    backend: &Path,
    layout: Layout,
    postgres: &Postgres,
    index: usize,
) -> anyhow::Result<Figures> {
    let dir = std::env::temp_dir().join(format!("dcwatch-cluster-scale-{index}"));
    drop(std::fs::remove_dir_all(&dir));
    std::fs::create_dir_all(&dir)?;
    let nats = (layout.ingest > 0).then(|| Nats::start(1)).transpose()?;
    let cluster = match &nats {
        Some(nats) => {
            let urls: Vec<String> = nats.urls().iter().map(|url| format!("\"{url}\"")).collect();
            format!(
                "[cluster]\npostgres_url = \"{}\"\nnats_urls = [{}]\npartitions = {PARTITIONS}\n",
                postgres.database(&format!("bench{index}"))?,
                urls.join(", ")
            )
        }
        None => String::new(),
    };
    // The roles and their nodes: (role, config, data folder).
    let mut nodes: Vec<(&'static str, PathBuf, PathBuf)> = Vec::new();
    if layout.ingest == 0 {
        let (config, data) = write_config(&dir, "all", "")?;
        nodes.push(("all", config, data));
    } else {
        for number in 0..layout.ingest {
            let (config, data) = write_config(&dir, &format!("ingest-{number}"), &cluster)?;
            nodes.push(("ingest", config, data));
        }
        for number in 0..layout.detect {
            let (config, data) = write_config(&dir, &format!("detect-{number}"), &cluster)?;
            nodes.push(("detect", config, data));
        }
        let status = Command::new(backend)
            .args(["store", "migrate", "--config"])
            .arg(&nodes[0].1)
            .status()?;
        if !status.success() {
            bail!("store migrate: {status}");
        }
    }
    let mut tokens = Vec::new();
    for sensor in 0..SENSORS {
        let name = format!("sensor-{sensor}");
        let output = Command::new(backend)
            .args(["token", "add", &name, "--config"])
            .arg(&nodes[0].1)
            .output()?;
        if !output.status.success() {
            bail!("token add: {}", String::from_utf8_lossy(&output.stderr));
        }
        tokens.push((name, String::from_utf8(output.stdout)?.trim().to_owned()));
    }
    let start = |nodes: &[&(&'static str, PathBuf, PathBuf)]| {
        nodes
            .iter()
            .map(|(role, config, data)| {
                let process = BackendProcess::start_role(
                    Command::new(backend),
                    role,
                    "127.0.0.1:0",
                    data,
                    Some(config),
                )?;
                Ok((*role, process, data.clone()))
            })
            .collect::<anyhow::Result<Vec<_>>>()
    };
    let (late, early): (Vec<_>, Vec<_>) = nodes
        .iter()
        .partition(|(role, _, _)| layout.detect_late && *role == "detect");
    let mut processes = start(&early)?;
    let targets: Vec<(SocketAddr, Vec<u8>)> = processes
        .iter()
        .filter(|(role, _, _)| matches!(*role, "all" | "ingest"))
        .map(|(_, process, data)| Ok((process.address, std::fs::read(data.join("tls/ca.pem"))?)))
        .collect::<anyhow::Result<_>>()?;
    let alert_files: Vec<PathBuf> = nodes
        .iter()
        .filter(|(role, _, _)| matches!(*role, "all" | "detect"))
        .map(|(_, _, data)| data.join("alerts.jsonl"))
        .collect();
    // The detect nodes claim their partitions before the load starts.
    thread::sleep(if layout.detect > 1 && !layout.detect_late {
        Duration::from_secs(6)
    } else {
        Duration::from_secs(2)
    });

    let cpu_of = |processes: &[(&str, BackendProcess, PathBuf)],
                  servers: bool|
     -> anyhow::Result<Vec<(String, f64)>> {
        let mut cpu: Vec<(String, f64)> = Vec::new();
        let mut add =
            |what: &str, seconds: f64| match cpu.iter_mut().find(|(known, _)| known == what) {
                Some((_, total)) => *total += seconds,
                None => cpu.push((what.to_owned(), seconds)),
            };
        for (role, process, _) in processes {
            add(role, process_cpu(process.pid())?);
        }
        // Late detect nodes are measured from their start, the servers from the load's.
        if !servers {
            return Ok(cpu);
        }
        if let Some(nats) = &nats {
            for pid in nats.pids() {
                add("nats", process_cpu(pid)?);
            }
            add("postgres", tree_cpu(postgres.pid()?)?);
        }
        Ok(cpu)
    };
    let mut cpu_before = cpu_of(&processes, true)?;
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let seen = Arc::clone(&seen);
        let watching = Arc::clone(&watching);
        thread::spawn(move || watch_alerts(&alert_files, &seen, &watching))
    };
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut clients = Vec::new();
        for (index, (name, token)) in tokens.into_iter().enumerate() {
            let (address, ca) = targets[index % targets.len()].clone();
            let sent = Arc::clone(&sent);
            clients.push(tokio::spawn(async move {
                client(index, address, &ca, &name, &token, &sent).await
            }));
        }
        for client in clients {
            client.await??;
        }
        anyhow::Ok(())
    })?;
    let stored_elapsed = started.elapsed().as_secs_f64();
    let mut judging_started = started;
    if !late.is_empty() {
        judging_started = Instant::now();
        let detect = start(&late)?;
        cpu_before.extend(cpu_of(&detect, false)?);
        processes.extend(detect);
    }
    let markers = lock(&sent).len();
    let deadline = Instant::now() + DRAIN;
    while lock(&seen).len() < markers && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    watching.store(false, Ordering::Relaxed);
    drop(watcher.join());
    let cpu_after = cpu_of(&processes, true)?;
    let seen = lock(&seen);
    if seen.len() < markers {
        bail!("{} markers raised no alert in time", markers - seen.len());
    }
    let last_alert = seen.values().max().copied().unwrap_or(started);
    let judged_elapsed = last_alert.duration_since(judging_started).as_secs_f64();
    let mut latencies: Vec<f64> = lock(&sent)
        .iter()
        .filter_map(|(key, sent)| Some(seen.get(key)?.duration_since(*sent).as_secs_f64() * 1e3))
        .collect();
    latencies.sort_by(f64::total_cmp);
    let p99 = latencies
        .get((latencies.len() * 99).div_ceil(100).saturating_sub(1))
        .copied()
        .unwrap_or(f64::NAN);
    for (_, process, _) in processes {
        process.stop()?;
    }
    let total = total_activities();
    let cpu = cpu_after
        .into_iter()
        .map(|(what, after)| {
            let before = cpu_before
                .iter()
                .find(|(known, _)| *known == what)
                .map_or(0.0, |(_, seconds)| *seconds);
            (what, after - before)
        })
        .collect();
    drop(std::fs::remove_dir_all(&dir));
    Ok(Figures {
        stored_per_second: total / stored_elapsed,
        judged_per_second: total / judged_elapsed,
        alerts_per_second: markers as f64 / judged_elapsed,
        latency_p50_ms: median(&mut latencies),
        latency_p99_ms: p99,
        cpu,
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads the alert files as they grow; the first time each primary key is seen.
fn watch_alerts(paths: &[PathBuf], seen: &Mutex<HashMap<String, Instant>>, watching: &AtomicBool) {
    let mut offsets = vec![0_u64; paths.len()];
    let mut partial = vec![String::new(); paths.len()];
    while watching.load(Ordering::Relaxed) {
        for (index, path) in paths.iter().enumerate() {
            let mut chunk = String::new();
            if let Ok(mut file) = std::fs::File::open(path)
                && file.seek(SeekFrom::Start(offsets[index])).is_ok()
                && let Ok(read) = file.read_to_string(&mut chunk)
            {
                offsets[index] += read as u64;
            }
            let now = Instant::now();
            partial[index].push_str(&chunk);
            while let Some(end) = partial[index].find('\n') {
                let line: String = partial[index].drain(..=end).collect();
                let Ok(alert) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                let key = alert["primary_key"].as_str().unwrap_or_default().to_owned();
                lock(seen).entry(key).or_insert(now);
            }
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// One sensor: its batches, each sent once the previous one is acknowledged.
async fn client(
    index: usize,
    address: SocketAddr,
    ca: &[u8],
    name: &str,
    token: &str,
    sent: &Mutex<HashMap<String, Instant>>,
) -> anyhow::Result<()> {
    let sensor = u8::try_from(index)?;
    let (outbound, mut inbound) = open_stream(address, ca, name, token, 4).await?;
    let mut number = 0_u64;
    for sequence in 1..=BATCHES {
        let mut activities: Vec<_> = (0..ACTIVITIES_PER_BATCH)
            .map(|_| {
                number += 1;
                benign(sensor, number)
            })
            .collect();
        let mut key = None;
        if sequence.is_multiple_of(MARKER_EVERY) || sequence == BATCHES {
            let (activity, primary) = marker(sensor, sequence);
            activities[ACTIVITIES_PER_BATCH / 2] = activity;
            key = Some(primary);
        }
        let batch = batch(sequence, activities)?;
        if let Some(key) = key {
            lock(sent).insert(key, Instant::now());
        }
        outbound
            .send(message(sensor_message::Message::Batch(batch)))
            .await?;
        match inbound.message().await? {
            Some(BackendMessage {
                message: Some(backend_message::Message::Ack(ack)),
            }) if ack.through == sequence => {}
            other => bail!("{name}: batch {sequence}: expected its ack, got {other:?}"),
        }
    }
    Ok(())
}
