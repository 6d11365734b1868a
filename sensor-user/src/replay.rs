//! `dcwatch-sensor replay`: frames from a capture file through the same pipeline as live frames.

use std::{collections::HashMap, io::Write, path::Path};

use dcwatch_entity::Directory;

use crate::{
    capture_file::{CaptureFile, CaptureFileError},
    config::Config,
    frame::Frame,
    pipeline::{Output, Pipeline},
    stats::UserCounters,
    transport::ActivitySink,
};

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    File(#[from] CaptureFileError),
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

/// What a replay counted: frames, and every counter of the pipeline for the stats file.
#[derive(Clone, Debug)]
pub struct ReplaySummary {
    pub frames: UserCounters,
    pub activities: u64,
    pub stats: Vec<(String, u64)>,
}

/// Replays `path` into `output` (lines, if any) and `sink` (a backend, if any). On a file that
/// goes bad part-way, the frames before the fault have been handled and counted, the flows
/// flushed, and the error says where the fault is.
/// With a `directory`, every activity is enriched from it (SIDs and tags).
pub fn replay<W: Write>(
    path: &Path,
    output: Option<Output<W>>,
    sink: Option<ActivitySink>,
    config: &Config,
    directory: Option<Directory>,
) -> (ReplaySummary, Result<(), ReplayError>) {
    let mut pipeline = Pipeline::new(
        output,
        HashMap::new(),
        config.dissect_limits(),
        config.sensor.id(),
    )
    .with_sink(sink)
    .with_resolver(config.resolver())
    .with_directory(directory);
    let result = replay_into(path, &mut pipeline);
    let finished = pipeline.finish().map_err(ReplayError::from);
    let summary = ReplaySummary {
        frames: *pipeline.counters(),
        activities: pipeline.dissector().counters().activities,
        stats: pipeline.stats(),
    };
    (summary, result.and(finished))
}

fn replay_into<W: Write>(path: &Path, pipeline: &mut Pipeline<W>) -> Result<(), ReplayError> {
    let mut file = CaptureFile::open(path)?;
    while let Some(record) = file.next_frame()? {
        let frame = Frame {
            timestamp_ns: record.timestamp_ns,
            ifindex: 0,
            orig_len: record.orig_len,
            data: record.data,
        };
        pipeline.handle(record.link, frame)?;
    }
    Ok(())
}
