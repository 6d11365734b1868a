//! `dcwatch-sensor replay`: frames from a capture file through the same pipeline as live frames.

use std::{
    collections::HashMap,
    io::{self, Write},
    path::PathBuf,
};

use dcwatch_entity::Directory;
use dcwatch_proto::{
    cef::{self, CefContext},
    v1::Alert,
};

use dcwatch_pipeline::{
    capture_file::{CaptureFile, CaptureFileError},
    frame::Frame,
};

use crate::{
    cli::AlertFormat,
    config::Config,
    pipeline::{Output, Pipeline},
    stats::UserCounters,
    transport::ActivitySink,
};

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    File(#[from] CaptureFileError),
    #[error("writing output: {0}")]
    Output(#[from] io::Error),
}

/// What a replay counted: frames, and every counter of the pipeline for the stats file.
#[derive(Clone, Debug, Default)]
pub struct ReplaySummary {
    pub frames: UserCounters,
    pub activities: u64,
    pub stats: dcwatch_telemetry::Snapshot,
    /// With detectors: every alert they hold at the end, oldest first.
    pub alerts: Vec<Alert>,
}

/// Replays `paths`, one after the other through one pipeline, into `output` (lines, if any),
/// `sink` (a backend, if any) and `engine` (the detectors, if any). On a file that goes bad
/// part-way, the frames before the fault have been handled and counted, the flows flushed, and
/// the error says which file and where the fault is; the files after it are not read.
/// With a `directory`, every activity is enriched from it (SIDs and tags).
pub fn replay<W: Write>(
    paths: &[PathBuf],
    output: Option<Output<W>>,
    sink: Option<ActivitySink>,
    engine: Option<dcwatch_detect::Engine>,
    config: &Config,
    directory: Option<Directory>,
) -> (ReplaySummary, Result<(), ReplayError>) {
    let limits = config.dissect_limits();
    let pipeline = Pipeline::new(output, HashMap::new(), limits.clone(), config.sensor.id())
        .with_workers(config.capture.workers(), &limits);
    let pipeline = match pipeline {
        Ok(pipeline) => pipeline,
        Err(error) => return (ReplaySummary::default(), Err(error.into())),
    };
    let mut pipeline = pipeline
        .with_sink(sink)
        .with_engine(engine)
        .with_resolver(config.resolver())
        .with_decap(config.capture.decap())
        .with_directory(directory);
    let result = paths
        .iter()
        .try_for_each(|path| replay_into(path, &mut pipeline));
    let finished = pipeline.finish().map_err(ReplayError::from);
    let summary = ReplaySummary {
        frames: *pipeline.counters(),
        activities: pipeline.activities(),
        stats: pipeline.snapshot(),
        alerts: pipeline
            .take_engine()
            .map(sorted_alerts)
            .unwrap_or_default(),
    };
    (summary, result.and(finished))
}

/// The engine's alerts, oldest first. The engine itself is not freed: a replay ends its process,
/// and the OS takes the detectors' state (tens of MiB in small table entries) back at once
/// rather than entry by entry (about 2% of what the detectors add to a replay, bench/RESULTS.md
/// detect-cost).
fn sorted_alerts(mut engine: dcwatch_detect::Engine) -> Vec<Alert> {
    let mut alerts = engine.take_alerts();
    std::mem::forget(engine);
    let start = |alert: &Alert| alert.start.map(|start| (start.seconds, start.nanos));
    alerts.sort_by(|a, b| {
        (start(a), &a.r#type, &a.primary_key).cmp(&(start(b), &b.r#type, &b.primary_key))
    });
    alerts
}

/// Writes `alerts` one per line in `format`: JSON as `dcwatch-backend alerts --json` prints
/// them, CEF as the backend's syslog output sends them (no console address: a replay has none).
pub fn write_alerts(alerts: &[Alert], format: AlertFormat, out: &mut impl Write) -> io::Result<()> {
    let context = CefContext {
        version: env!("CARGO_PKG_VERSION"),
        console_url: "",
    };
    for alert in alerts {
        match format {
            AlertFormat::Json => dcwatch_proto::json::write_alert_line(alert, out)?,
            AlertFormat::Cef => writeln!(out, "{}", cef::alert_line(alert, &context))?,
        }
    }
    out.flush()
}

fn replay_into<W: Write>(
    path: &std::path::Path,
    pipeline: &mut Pipeline<W>,
) -> Result<(), ReplayError> {
    let mut file = CaptureFile::open(path)?;
    while let Some(record) = file.next_frame()? {
        let frame = Frame {
            timestamp_ns: record.timestamp_ns,
            ifindex: 0,
            orig_len: record.orig_len,
            data: record.data,
            rpc_port: None,
        };
        pipeline.handle(record.link, frame)?;
    }
    Ok(())
}
