//! `dcwatch-sensor replay`: frames from a capture file through the same pipeline as live frames.

use std::{collections::HashMap, io::Write, path::Path};

use crate::{
    capture_file::{CaptureFile, CaptureFileError},
    frame::Frame,
    pipeline::Pipeline,
    stats::UserCounters,
};

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    File(#[from] CaptureFileError),
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

/// Replays `path` into `output` (JSON lines, if any). On a file that goes bad part-way, the frames
/// before the fault have been handled and counted; the error says where the fault is.
pub fn replay<W: Write>(path: &Path, output: Option<W>) -> (UserCounters, Result<(), ReplayError>) {
    let mut pipeline = Pipeline::new(output, HashMap::new());
    let result = replay_into(path, &mut pipeline);
    let flushed = pipeline.flush().map_err(ReplayError::from);
    (*pipeline.counters(), result.and(flushed))
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
