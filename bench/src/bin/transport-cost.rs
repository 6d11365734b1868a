//! What streaming to a backend costs: end-to-end rate, bytes per activity, spool per day.
//!
//! The input is the bundled capture corpus repeated `COPIES` times with the addresses rewritten
//! per copy (as `replay-cost` builds it).
//!
//! 1. End to end, real processes on loopback: `dcwatch-backend serve` (a fresh data folder, a
//!    token made with `token add`, the CA it generates) and `dcwatch-replay FILE
//!    --backend https://localhost:PORT ...` (the sensor's replay), timed from start to exit (a replay exits once the
//!    backend has acknowledged every batch), beside the same replay with `--output json` to
//!    /dev/null, `TRIALS` times interleaved, medians. The backend's stored activities
//!    (`activities --json`) are counted against the sensor's after each trial.
//! 2. Bytes per activity, in this process through the sensor's library: the input dissected
//!    into activities, cut into `ActivityBatch`es by the sensor's `Batcher`, each batch
//!    compressed with zstd at the sensor's level as the spool writer does; encoded and
//!    compressed sizes, the spool record, and an estimate of the bytes on the wire (the
//!    `SensorMessage` as encoded, gRPC's 5-byte message prefix, HTTP/2 DATA frame headers and
//!    TLS 1.3 record overhead). Batches are cut twice: by size, as in a replay or a burst, and
//!    by age, as at `RATE_PACKETS_PER_SECOND` (one batch a second: the default age cut).
//! 3. Spool bytes per day at `RATE_PACKETS_PER_SECOND` of DC traffic like the corpus: packets
//!    per activity from the corpus, bytes per activity from 2., beside the 0.3 GB a day Microsoft
//!    gives for Defender for Identity (Azure ATP) at the same packet rate. The corpus's density
//!    of activities per packet is the assumption: it was chosen for authentication traffic, and
//!    a real DC's mix (replication, file traffic, noise) differs.
//!
//! For the report (`BENCH_REPORT_DIR`): 1.'s activities per second and per backend CPU-second; a
//! quick run (`BENCH_QUICK`) uses 2 copies and 3 trials.
#![expect(clippy::print_stdout, reason = "a benchmark's output is its figures")]

use std::{
    path::Path,
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, bail};
use bench::{
    build_repeated_corpus, count_lines, dissect, measure, median, process_cpu, replay_binary,
    replay_command,
    report::{self, BenchFigures, Figure, Row, scaled},
};
use dcwatch_proto::{
    json::write_json_line,
    v1::{Activity, Batch, Compression, SensorMessage, sensor_message},
};
use dcwatch_tests::backend_process::BackendProcess;
use prost::Message as _;
use sensor_user::transport::{
    ZSTD_LEVEL,
    batcher::{BatchLimits, Batcher, EncodedBatch, MAX_BATCH_ACTIVITIES},
    spool::{RECORD_ALIGN, RECORD_HEADER_LEN},
};

/// Copies of the corpus in the input.
const COPIES: u16 = 50;
const QUICK_COPIES: u16 = 2;
const TRIALS: usize = 5;
const QUICK_TRIALS: usize = 3;
const SENSOR_ID: &str = "bench-sensor";
/// The packet rate Microsoft sizes Defender for Identity's storage by.
const RATE_PACKETS_PER_SECOND: f64 = 1000.0;
/// Defender for Identity (Azure ATP) FAQ, "How much storage do I need for ATP?": "For every one
/// full day with an average of 1000 packets/sec you need 0.3 GB of storage."
const MDI_GB_PER_DAY: f64 = 0.3;
const SECONDS_PER_DAY: f64 = 86_400.0;
/// gRPC's length prefix per message: a compressed flag and a 4-byte length.
const GRPC_PREFIX: usize = 5;
/// HTTP/2: a 9-byte header per DATA frame of at most 16 KiB (SETTINGS_MAX_FRAME_SIZE's default,
/// which neither side raises).
const H2_FRAME_HEADER: usize = 9;
const H2_MAX_FRAME: usize = 16_384;
/// TLS 1.3 (AEAD): a 5-byte record header, the inner content type and a 16-byte tag per record
/// of at most 16 KiB of plaintext.
const TLS_RECORD_OVERHEAD: usize = 22;
const TLS_MAX_RECORD: usize = 16_384;

fn main() -> anyhow::Result<()> {
    let sensor = replay_binary()?;
    let backend = sensor.with_file_name("dcwatch-backend");
    if !backend.exists() {
        bail!(
            "{} not found: build it with cargo build --release -p dcwatch-backend",
            backend.display()
        );
    }
    let copies = scaled(COPIES, QUICK_COPIES);
    let workdir = std::env::temp_dir().join("dcwatch-transport-cost");
    drop(std::fs::remove_dir_all(&workdir));
    std::fs::create_dir_all(&workdir)?;
    let input = workdir.join("corpus-repeated.pcap");
    let (frames, bytes) = build_repeated_corpus(copies, &input)?;
    println!(
        "input: {copies} copies of the bundled corpus: {frames} frames, {:.1} MB",
        bytes as f64 / 1e6
    );
    let config = workdir.join("sensor.toml");
    std::fs::write(&config, format!("[sensor]\nid = \"{SENSOR_ID}\"\n"))?;

    let activities = dissect(&input, SENSOR_ID)?;
    let end_to_end = end_to_end(&sensor, &backend, &input, &config, &workdir, &activities)?;
    print_end_to_end(&end_to_end, activities.len());
    write_figures(&end_to_end, activities.len(), frames, copies)?;
    let density = activities.len() as f64 / frames as f64;
    let sizes = wire_sizes(&activities, density)?;
    print_sizes(&sizes);
    print_per_day(
        density,
        frames,
        activities.len(),
        &sizes,
        end_to_end.store_bytes,
    );
    drop(std::fs::remove_dir_all(&workdir));
    Ok(())
}

/// The activities of `input`, as `replay` makes them (same dissector, same limits).
struct EndToEnd {
    /// Wall seconds and CPU seconds of `replay --backend`, of the baseline, of the backend: every
    /// trial's.
    backend_wall: Vec<f64>,
    backend_sensor_cpu: Vec<f64>,
    baseline_wall: Vec<f64>,
    baseline_cpu: Vec<f64>,
    server_cpu: Vec<f64>,
    /// The backend's store (SQLite file and its WAL) after the last trial.
    store_bytes: u64,
    trials: usize,
}

fn end_to_end(
    sensor: &Path,
    backend: &Path,
    input: &Path,
    config: &Path,
    workdir: &Path,
    activities: &[Activity],
) -> anyhow::Result<EndToEnd> {
    let config_arg = config.display().to_string();
    let input_arg = input.display().to_string();
    let baseline = replay_command(
        sensor,
        &["--config", &config_arg, "--output", "json", &input_arg],
    );
    let expected = count_lines(&baseline)?;
    if expected != activities.len() as u64 {
        bail!(
            "replay --output json printed {expected} activities, the library made {}",
            activities.len()
        );
    }
    let (mut backend_wall, mut backend_cpu, mut baseline_wall, mut baseline_cpu, mut server_cpu) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut store_bytes = 0;
    let trials = scaled(TRIALS, QUICK_TRIALS);
    for trial in 0..trials {
        let usage = measure(&baseline, None, Stdio::null())?;
        baseline_wall.push(usage.wall.as_secs_f64());
        baseline_cpu.push(usage.cpu.as_secs_f64());

        let dir = workdir.join(format!("trial-{trial}"));
        let data = dir.join("backend");
        std::fs::create_dir_all(&data)?;
        let token = run_backend(backend, &["token", "add", SENSOR_ID], &data)?
            .trim()
            .to_owned();
        let server = BackendProcess::start(Command::new(backend), "127.0.0.1:0", &data)?;
        let before = process_cpu(server.pid())?;
        let url = server.url();
        let ca = data.join("tls/ca.pem").display().to_string();
        let spool = dir.join("spool").display().to_string();
        let streaming = replay_command(
            sensor,
            &[
                "--config",
                &config_arg,
                "--backend",
                &url,
                "--token",
                &token,
                "--ca",
                &ca,
                "--spool-dir",
                &spool,
                "--wait-secs",
                "600",
                &input_arg,
            ],
        );
        let usage = measure(&streaming, None, Stdio::null())?;
        backend_wall.push(usage.wall.as_secs_f64());
        backend_cpu.push(usage.cpu.as_secs_f64());
        server_cpu.push(process_cpu(server.pid())? - before);
        server.stop()?;
        let stored = count_lines(&[
            backend.display().to_string(),
            "activities".into(),
            "--json".into(),
            "--data-dir".into(),
            data.display().to_string(),
        ])?;
        if stored != expected {
            bail!(
                "trial {trial}: the backend stored {stored} activities, the sensor made {expected}"
            );
        }
        store_bytes = ["dcwatch.sqlite3", "dcwatch.sqlite3-wal"]
            .iter()
            .filter_map(|name| std::fs::metadata(data.join(name)).ok())
            .map(|metadata| metadata.len())
            .sum();
        drop(std::fs::remove_dir_all(&dir));
    }
    Ok(EndToEnd {
        backend_wall,
        backend_sensor_cpu: backend_cpu,
        baseline_wall,
        baseline_cpu,
        server_cpu,
        store_bytes,
        trials,
    })
}

/// The report's figures of the end-to-end runs: activities per second, and per CPU-second of
/// the backend.
fn write_figures(
    run: &EndToEnd,
    activities: usize,
    frames: u64,
    copies: u16,
) -> anyhow::Result<()> {
    let count = activities as f64;
    let per = |runs: &[f64]| -> Vec<f64> { runs.iter().map(|seconds| count / seconds).collect() };
    let method = format!(
        "The bundled corpus repeated {copies} times: {frames} frames, {activities} activities. \
         A fresh `dcwatch-backend serve` per trial on loopback over TLS; `dcwatch-replay \
         --backend` timed from start to exit (every batch acknowledged), beside the same replay \
         with `--output json` to /dev/null; the backend stored every activity in every trial. \
         Median of {} trials, interleaved.",
        run.trials
    );
    report::write(&BenchFigures {
        bench: "transport-cost".to_owned(),
        figures: vec![
            Figure::new(
                "backend-ingest",
                "The backend's ingest rate, end to end (capture file to SQLite)",
                "activities per second (wall clock)",
                method.clone(),
                vec![
                    Row::new("replay --output json > /dev/null", per(&run.baseline_wall)),
                    Row::new(
                        "replay --backend, until acknowledged",
                        per(&run.backend_wall),
                    ),
                ],
            ),
            Figure::new(
                "backend-ingest-cpu",
                "The backend's ingest: activities per CPU-second, by process",
                "activities per CPU-second",
                method,
                vec![
                    Row::new("sensor, --output json", per(&run.baseline_cpu)),
                    Row::new("sensor, --backend", per(&run.backend_sensor_cpu)),
                    Row::new("backend (dcwatch-backend serve)", per(&run.server_cpu)),
                ],
            ),
        ],
        notes: Vec::new(),
    })
}

fn print_end_to_end(run: &EndToEnd, activities: usize) {
    let count = activities as f64;
    let [
        backend_wall,
        backend_sensor_cpu,
        baseline_wall,
        baseline_cpu,
        server_cpu,
    ] = [
        &run.backend_wall,
        &run.backend_sensor_cpu,
        &run.baseline_wall,
        &run.baseline_cpu,
        &run.server_cpu,
    ]
    .map(|runs| median(&mut runs.clone()));
    println!();
    println!(
        "end to end, loopback, TLS ({} trials interleaved, medians):",
        run.trials
    );
    println!(
        "{:<44} {:>8} {:>14} {:>10} {:>16}",
        "run", "wall s", "activities/s", "vs json", "CPU s"
    );
    println!(
        "{:<44} {:>8.3} {:>14.0} {:>9.2}x {:>16}",
        "replay --output json > /dev/null (baseline)",
        baseline_wall,
        count / baseline_wall,
        1.0,
        format!("{baseline_cpu:.3}"),
    );
    println!(
        "{:<44} {:>8.3} {:>14.0} {:>9.2}x {:>16}",
        "replay --backend (until all acknowledged)",
        backend_wall,
        count / backend_wall,
        backend_wall / baseline_wall,
        format!("{backend_sensor_cpu:.3} + {server_cpu:.2} backend"),
    );
    println!(
        "({activities} activities per run; the backend stored exactly as many in every trial)"
    );
}

/// Sizes summed over one way of cutting batches.
#[derive(Default)]
struct Sizes {
    label: String,
    batches: u64,
    activities: u64,
    json: u64,
    encoded: u64,
    compressed: u64,
    spool: u64,
    /// Estimated bytes on the wire, compressed and not.
    wire: u64,
    wire_uncompressed: u64,
}

fn wire_sizes(activities: &[Activity], density: f64) -> anyhow::Result<Vec<Sizes>> {
    let mut json = 0_u64;
    let (mut line, mut scratch) = (Vec::new(), Vec::new());
    for activity in activities {
        line.clear();
        write_json_line(activity, &mut line, &mut scratch)?;
        json += line.len() as u64;
    }
    // At the rate, the default age cut (1 s) ends a batch after a second's activities.
    let per_second = (RATE_PACKETS_PER_SECOND * density).round().max(1.0);
    let per_second = (per_second as u32).min(MAX_BATCH_ACTIVITIES);
    let cuts = [
        (
            "by size (256 KiB or 2,000: replay, bursts)".to_owned(),
            BatchLimits::default(),
        ),
        (
            format!(
                "by age, 1 s at {RATE_PACKETS_PER_SECOND:.0} packets/s ({per_second} activities)"
            ),
            BatchLimits {
                max_activities: per_second,
                ..BatchLimits::default()
            },
        ),
    ];
    let mut all = Vec::new();
    for (label, limits) in cuts {
        let mut sizes = Sizes {
            label,
            json,
            ..Sizes::default()
        };
        let mut batcher = Batcher::new(limits);
        let now = Instant::now();
        for activity in activities {
            if let Some(batch) = batcher.push(activity, now) {
                add_batch(&mut sizes, &batch)?;
            }
        }
        if let Some(batch) = batcher.take() {
            add_batch(&mut sizes, &batch)?;
        }
        all.push(sizes);
    }
    Ok(all)
}

fn add_batch(sizes: &mut Sizes, batch: &EncodedBatch) -> anyhow::Result<()> {
    let compressed = zstd::bulk::compress(&batch.encoded, ZSTD_LEVEL)?;
    sizes.batches += 1;
    sizes.activities += u64::from(batch.activity_count);
    sizes.encoded += batch.encoded.len() as u64;
    sizes.compressed += compressed.len() as u64;
    sizes.spool += (RECORD_HEADER_LEN + compressed.len()).next_multiple_of(RECORD_ALIGN) as u64;
    let uncompressed_len = u32::try_from(batch.encoded.len())?;
    // A sequence as large as a day's would be: its varint is not the smallest.
    let sequence = 1 << 20;
    sizes.wire += wire_bytes(Batch {
        sequence,
        compression: Compression::Zstd.into(),
        payload: compressed,
        activity_count: batch.activity_count,
        uncompressed_len,
    }) as u64;
    sizes.wire_uncompressed += wire_bytes(Batch {
        sequence,
        compression: Compression::None.into(),
        payload: batch.encoded.clone(),
        activity_count: batch.activity_count,
        uncompressed_len,
    }) as u64;
    Ok(())
}

/// A batch's bytes on the wire: the `SensorMessage`, gRPC's prefix, HTTP/2 DATA frame headers,
/// TLS records' overhead (acknowledgements, counters and TCP/IP headers left out).
fn wire_bytes(batch: Batch) -> usize {
    let message = SensorMessage {
        message: Some(sensor_message::Message::Batch(batch)),
    }
    .encoded_len();
    let grpc = message + GRPC_PREFIX;
    let h2 = grpc + grpc.div_ceil(H2_MAX_FRAME) * H2_FRAME_HEADER;
    h2 + h2.div_ceil(TLS_MAX_RECORD) * TLS_RECORD_OVERHEAD
}

fn print_sizes(all: &[Sizes]) {
    println!();
    println!("bytes per activity (library: Batcher, zstd level {ZSTD_LEVEL}; wire = estimate):");
    println!(
        "{:<48} {:>7} {:>9} {:>6} {:>8} {:>6} {:>7} {:>6} {:>9} {:>10} {:>8}",
        "batches",
        "count",
        "act/batch",
        "JSON",
        "protobuf",
        "zstd",
        "ratio",
        "spool",
        "wire zstd",
        "wire plain",
        "framing"
    );
    for sizes in all {
        let per = |bytes: u64| bytes as f64 / sizes.activities.max(1) as f64;
        println!(
            "{:<48} {:>7} {:>9.0} {:>6.0} {:>8.1} {:>6.1} {:>6.2}x {:>6.1} {:>9.1} {:>10.1} {:>8.0}",
            sizes.label,
            sizes.batches,
            sizes.activities as f64 / sizes.batches.max(1) as f64,
            per(sizes.json),
            per(sizes.encoded),
            per(sizes.compressed),
            sizes.encoded as f64 / sizes.compressed.max(1) as f64,
            per(sizes.spool),
            per(sizes.wire),
            per(sizes.wire_uncompressed),
            (sizes.wire - sizes.compressed) as f64 / sizes.batches.max(1) as f64,
        );
    }
    println!(
        "(bytes per activity; ratio = protobuf / zstd; spool = record header and alignment \
         included; wire = SensorMessage + gRPC prefix + HTTP/2 DATA headers + TLS 1.3 records, \
         estimated; framing = wire zstd - zstd, bytes per batch)"
    );
}

fn print_per_day(density: f64, frames: u64, activities: usize, sizes: &[Sizes], store_bytes: u64) {
    let per_day = RATE_PACKETS_PER_SECOND * SECONDS_PER_DAY * density;
    println!();
    println!(
        "per day at {RATE_PACKETS_PER_SECOND:.0} packets/s of traffic like the corpus: \
         {activities} activities / {frames} packets = {density:.4} activities per packet, \
         {per_day:.0} activities a day"
    );
    println!(
        "{:<60} {:>10} {:>10} {:>10}",
        "what", "B/activity", "GB/day", "vs MDI"
    );
    let row = |what: &str, per_activity: f64| {
        let gb = per_day * per_activity / 1e9;
        println!(
            "{what:<60} {per_activity:>10.1} {gb:>10.3} {:>9.2}x",
            gb / MDI_GB_PER_DAY
        );
    };
    if let Some(rate) = sizes.get(1) {
        let per = |bytes: u64| bytes as f64 / rate.activities.max(1) as f64;
        row(
            "spool (zstd batches + record headers), 1 batch/s",
            per(rate.spool),
        );
        row("wire with zstd (estimate), 1 batch/s", per(rate.wire));
        row(
            "wire without zstd (estimate), 1 batch/s",
            per(rate.wire_uncompressed),
        );
    }
    row(
        "backend store (SQLite, uncompressed, indexed)",
        store_bytes as f64 / activities.max(1) as f64,
    );
    println!(
        "{:<60} {:>10} {:>10.3} {:>9.2}x",
        "Defender for Identity (Azure ATP FAQ), 1000 packets/s", "", MDI_GB_PER_DAY, 1.0
    );
    println!(
        "(assumption: the corpus's density of activities per packet; it was gathered for \
         authentication and directory traffic, a real DC's mix differs)"
    );
}

/// `dcwatch-backend ARGS --data-dir DATA`'s standard output.
fn run_backend(backend: &Path, args: &[&str], data: &Path) -> anyhow::Result<String> {
    let output = Command::new(backend)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .context("dcwatch-backend")?;
    if !output.status.success() {
        bail!(
            "dcwatch-backend {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8(output.stdout)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_overhead_grows_with_frames_and_records() {
        let small = wire_bytes(Batch {
            payload: vec![0; 100],
            ..Batch::default()
        });
        // 100 bytes of payload, its tag and length, the oneof's tag and length, gRPC's prefix,
        // one DATA frame, one TLS record.
        assert_eq!(
            small,
            100 + 2 + 2 + GRPC_PREFIX + H2_FRAME_HEADER + TLS_RECORD_OVERHEAD
        );
        let large = wire_bytes(Batch {
            payload: vec![0; 3 * H2_MAX_FRAME],
            ..Batch::default()
        });
        assert!(large > 3 * H2_MAX_FRAME + 4 * H2_FRAME_HEADER + 4 * TLS_RECORD_OVERHEAD);
    }
}
