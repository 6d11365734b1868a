//! How long an alert takes: from an activity's arrival at the backend to its alert, with 10
//! sensors sending 10,000 activities a second in all.
//!
//! A real `dcwatch-backend serve` (release build, fresh data folder, its generated CA, one token
//! per sensor, alerts to a JSON-lines file) and, in this process, 10 sensor-like gRPC clients
//! over TLS, each streaming a batch of 100 activities every 100 ms (1,000 a second), as a
//! sensor's batcher cuts by age: Kerberos AS-REQs and DNS queries from many workstations, and
//! twice a second a DCSync-like marker (DRSUAPI DsGetNCChanges) from an address never seen
//! before, so each marker raises an alert of its own. Activities carry the wall-clock time, as
//! live traffic does.
//!
//! A marker's latency is from the moment its batch is handed to the gRPC stream to the moment
//! its alert's line appears in the JSON file (polled every millisecond): it covers loopback
//! TLS, decompression, the store's durable commit, detection reading it back, the engine, the
//! alert's durable upsert, and the JSON writer. The baseline is the batches' acknowledgement
//! latency on the same streams (send to ack: arrival to durably stored), measured alongside.
//! The first `WARMUP` is not counted.
#![expect(clippy::print_stdout, reason = "a benchmark's output is its figures")]

use std::{
    collections::HashMap,
    io::{Read as _, Seek as _, SeekFrom},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex, PoisonError, atomic::AtomicBool, atomic::Ordering},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use bench::{
    process_cpu,
    synthetic::{batch, benign, marker, message, open_stream},
};
use dcwatch_proto::v1::{Activity, backend_message, sensor_message};
use dcwatch_tests::backend_process::BackendProcess;

const SENSORS: u8 = 10;
const BATCHES_PER_SECOND: u32 = 10;
const ACTIVITIES_PER_BATCH: usize = 100;
/// One batch in this many carries a marker: 2 markers a second per sensor.
const MARKER_EVERY: u64 = 5;
const WARMUP: Duration = Duration::from_secs(5);
const MEASURE: Duration = Duration::from_secs(30);
/// After the last batch, how long the alerts may take to arrive.
const DRAIN: Duration = Duration::from_secs(15);

fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let backend = std::env::args().nth(1).map_or_else(
        || root.join("target/release/dcwatch-backend"),
        PathBuf::from,
    );
    if !backend.exists() {
        bail!(
            "{} not found: build it with cargo build --release -p dcwatch-backend",
            backend.display()
        );
    }
    let workdir = std::env::temp_dir().join("dcwatch-alert-latency");
    drop(std::fs::remove_dir_all(&workdir));
    let data = workdir.join("data");
    std::fs::create_dir_all(&data)?;
    let alerts_file = data.join("alerts.jsonl");
    let config = workdir.join("backend.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[stats]\nfile = \"{}\"\n[outputs.json]\npath = \"{}\"\n",
            data.display(),
            data.join("stats.json").display(),
            alerts_file.display()
        ),
    )?;
    let mut tokens = Vec::new();
    for sensor in 0..SENSORS {
        let name = format!("sensor-{sensor}");
        let output = Command::new(&backend)
            .args(["token", "add", &name, "--config"])
            .arg(&config)
            .output()?;
        if !output.status.success() {
            bail!("token add: {}", String::from_utf8_lossy(&output.stderr));
        }
        tokens.push((name, String::from_utf8(output.stdout)?.trim().to_owned()));
    }
    let server = BackendProcess::start_configured(
        Command::new(&backend),
        "127.0.0.1:0",
        &data,
        Some(&config),
    )?;
    let ca = std::fs::read(data.join("tls/ca.pem"))?;
    println!(
        "alert-latency: {SENSORS} sensors x {} activities/s ({} in all), {} markers/s, {} s \
         measured after {} s of warm-up",
        BATCHES_PER_SECOND as usize * ACTIVITIES_PER_BATCH,
        u32::from(SENSORS) * BATCHES_PER_SECOND * ACTIVITIES_PER_BATCH as u32,
        u64::from(SENSORS) * u64::from(BATCHES_PER_SECOND) / MARKER_EVERY,
        MEASURE.as_secs(),
        WARMUP.as_secs()
    );

    let shared = Arc::new(Shared::default());
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let shared = Arc::clone(&shared);
        let watching = Arc::clone(&watching);
        thread::spawn(move || watch_alerts(&alerts_file, &shared, &watching))
    };
    let cpu_before = process_cpu(server.pid())?;
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut clients = Vec::new();
        for (index, (name, token)) in tokens.into_iter().enumerate() {
            let shared = Arc::clone(&shared);
            let ca = ca.clone();
            let address = server.address;
            clients.push(tokio::spawn(async move {
                client(index, address, &ca, &name, &token, &shared, started).await
            }));
        }
        for client in clients {
            client.await??;
        }
        anyhow::Ok(())
    })?;
    let sent_until = Instant::now();
    let cpu_after = process_cpu(server.pid())?;
    let expected = shared.lock().markers_measured;
    let deadline = Instant::now() + DRAIN;
    while shared.lock().alert_latencies.len() < expected && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    watching.store(false, Ordering::Relaxed);
    drop(watcher.join());
    // Its warnings and errors may explain the figures.
    for line in server.log().lines() {
        if line.contains(" WARN ") || line.contains(" ERROR") {
            println!("backend: {line}");
        }
    }
    // The stats file is rewritten at exit with the final counters.
    server.stop()?;
    let stats = std::fs::read(data.join("stats.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok());

    let mut results = shared.lock();
    let elapsed = sent_until.duration_since(started).as_secs_f64();
    let stored = stats
        .as_ref()
        .and_then(|stats| stats["activities_stored"].as_u64())
        .unwrap_or(0);
    println!(
        "sent {} activities in {elapsed:.1} s ({:.0}/s); the backend stored {stored}; backend \
         CPU {:.2} s per second of run",
        results.activities_sent,
        results.activities_sent as f64 / elapsed,
        (cpu_after - cpu_before) / elapsed
    );
    let alerts = results.alert_latencies.len();
    println!("markers measured: {expected}, their alerts seen: {alerts}");
    let ack = percentiles(&mut results.ack_latencies);
    let alert = percentiles(&mut results.alert_latencies);
    println!("| from arrival to | p50 | p99 | max | samples |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| batch acknowledged (stored durably; baseline) | {:.1} ms (1.00x) | {:.1} ms (1.00x) | {:.1} ms | {} |",
        ack.p50, ack.p99, ack.max, ack.count
    );
    println!(
        "| alert in the JSON file | {:.1} ms ({:.2}x) | {:.1} ms ({:.2}x) | {:.1} ms | {} |",
        alert.p50,
        alert.p50 / ack.p50,
        alert.p99,
        alert.p99 / ack.p99,
        alert.max,
        alert.count
    );
    if alerts < expected {
        bail!("{} markers raised no alert in time", expected - alerts);
    }
    Ok(())
}

/// What the clients and the watcher share.
#[derive(Debug, Default)]
struct Shared(Mutex<Results>);

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Results> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug, Default)]
struct Results {
    /// A measured marker's primary key (`src:IP`) and when its batch was sent.
    pending: HashMap<String, Instant>,
    markers_measured: usize,
    activities_sent: u64,
    ack_latencies: Vec<f64>,
    alert_latencies: Vec<f64>,
}

struct Percentiles {
    p50: f64,
    p99: f64,
    max: f64,
    count: usize,
}

/// Milliseconds, nearest-rank.
fn percentiles(values: &mut [f64]) -> Percentiles {
    values.sort_by(f64::total_cmp);
    let rank = |fraction: f64| -> f64 {
        if values.is_empty() {
            return f64::NAN;
        }
        let index = ((values.len() as f64 * fraction).ceil() as usize).clamp(1, values.len()) - 1;
        values[index]
    };
    Percentiles {
        p50: rank(0.5),
        p99: rank(0.99),
        max: values.last().copied().unwrap_or(f64::NAN),
        count: values.len(),
    }
}

fn millis(since: Duration) -> f64 {
    since.as_secs_f64() * 1e3
}

/// Reads the alerts file as it grows; each marker's alert closes its latency.
fn watch_alerts(path: &Path, shared: &Shared, watching: &AtomicBool) {
    let mut offset = 0_u64;
    let mut partial = String::new();
    while watching.load(Ordering::Relaxed) {
        let mut chunk = String::new();
        if let Ok(mut file) = std::fs::File::open(path)
            && file.seek(SeekFrom::Start(offset)).is_ok()
            && let Ok(read) = file.read_to_string(&mut chunk)
        {
            offset += read as u64;
        }
        let seen = Instant::now();
        partial.push_str(&chunk);
        while let Some(end) = partial.find('\n') {
            let line: String = partial.drain(..=end).collect();
            let Ok(alert) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let key = alert["primary_key"].as_str().unwrap_or_default();
            let mut results = shared.lock();
            if let Some(sent) = results.pending.remove(key) {
                results
                    .alert_latencies
                    .push(millis(seen.duration_since(sent)));
            }
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// One sensor: a batch every 100 ms for WARMUP + MEASURE; acknowledgements timed as they come.
async fn client(
    index: usize,
    address: SocketAddr,
    ca: &[u8],
    name: &str,
    token: &str,
    shared: &Arc<Shared>,
    started: Instant,
) -> anyhow::Result<()> {
    let sensor = u8::try_from(index)?;
    let (outbound, mut inbound) = open_stream(address, ca, name, token, 64).await?;
    let sent_at: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let acks = {
        let sent_at = Arc::clone(&sent_at);
        let shared = Arc::clone(shared);
        let name = name.to_owned();
        tokio::spawn(async move {
            loop {
                let reply = match inbound.message().await {
                    Ok(Some(reply)) => reply,
                    Ok(None) => break,
                    Err(status) => {
                        println!("{name}: the stream ended: {status}");
                        break;
                    }
                };
                if let Some(backend_message::Message::Ack(ack)) = reply.message {
                    let sent = sent_at
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&ack.through);
                    if let Some(sent) = sent {
                        shared.lock().ack_latencies.push(millis(sent.elapsed()));
                    }
                }
            }
        })
    };
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / BATCHES_PER_SECOND);
    // Sensors do not all cut their batches at the same instant.
    tokio::time::sleep(Duration::from_millis(10 * index as u64)).await;
    let mut sequence = 0_u64;
    let mut number = 0_u64;
    let mut markers = 0_u64;
    while started.elapsed() < WARMUP + MEASURE {
        ticks.tick().await;
        sequence += 1;
        let measured = started.elapsed() >= WARMUP;
        let mut activities: Vec<Activity> = (0..ACTIVITIES_PER_BATCH)
            .map(|_| {
                number += 1;
                benign(sensor, number)
            })
            .collect();
        let mut key = None;
        if sequence.is_multiple_of(MARKER_EVERY) {
            let (activity, primary) = marker(sensor, markers);
            markers += 1;
            activities[ACTIVITIES_PER_BATCH / 2] = activity;
            key = Some(primary);
        }
        let count = activities.len() as u64;
        let batch = batch(sequence, activities)?;
        let now = Instant::now();
        {
            let mut results = shared.lock();
            results.activities_sent += count;
            if let Some(key) = key
                && measured
            {
                results.pending.insert(key, now);
                results.markers_measured += 1;
            }
        }
        if measured {
            sent_at
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(sequence, now);
        }
        outbound
            .send(message(sensor_message::Message::Batch(batch)))
            .await
            .context("the stream closed")?;
    }
    // The last acknowledgements.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sent_at
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .is_empty()
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(outbound);
    acks.abort();
    Ok(())
}
