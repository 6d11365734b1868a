//! `dcwatch-sensor run`: attach, read the ring buffer until shut down, report.

use std::{collections::HashMap, future::Future, io::Write, path::PathBuf};

use log::{info, warn};
use sensor_common::Counter;

use crate::{
    capture::{Capture, CaptureError, FrameReader, KernelCounters},
    config::Config,
    decode::LinkType,
    pipeline::{Output, Pipeline},
    stats::{self, UserCounters},
};

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("no interface to capture on: pass --interface or set capture.interfaces")]
    NoInterface,
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("writing output: {0}")]
    Output(std::io::Error),
}

/// The counters at the end of a run.
#[derive(Clone, Copy, Debug)]
pub struct LiveSummary {
    pub kernel: KernelCounters,
    pub user: UserCounters,
    pub activities: u64,
}

/// Captures on the configured interfaces until `shutdown` resolves, then detaches, drains the ring
/// buffer and writes the final stats. Needs a tokio runtime with I/O and time enabled.
pub async fn run<W: Write>(
    config: &Config,
    output: Option<Output<W>>,
    shutdown: impl Future<Output = ()>,
) -> Result<LiveSummary, LiveError> {
    let interfaces = &config.capture.interfaces;
    if interfaces.is_empty() {
        return Err(LiveError::NoInterface);
    }
    let mut capture = Capture::load(&config.capture)?;
    let settings = &config.capture;
    info!(
        "XDP program loaded: {:?} mode, {} TCP and {} UDP ports, {}, snap length {} B, ring buffer \
         {} MiB",
        settings.mode,
        settings.ports.tcp.len(),
        settings.ports.udp.len(),
        match settings.dc_addresses.len() {
            0 => "any address".to_owned(),
            count => format!("{count} DC addresses"),
        },
        settings.snap_len,
        settings.ring_buffer_mib
    );
    for interface in interfaces {
        let attached = capture.attach(interface, config.capture.attach)?;
        info!(
            "capturing on {} (ifindex {}, {} XDP, {:?} mode)",
            attached.name, attached.ifindex, attached.mode, config.capture.mode
        );
    }
    let names: HashMap<u32, String> = capture
        .attached()
        .iter()
        .map(|interface| (interface.ifindex, interface.name.clone()))
        .collect();
    let mut reader = FrameReader::new(capture.take_frames()?)?;
    let mut pipeline = Pipeline::new(output, names, config.dissect_limits(), config.sensor.id());

    let stats_file = config.stats.file.clone();
    let mut ticker = tokio::time::interval(config.stats.interval());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    let mut output_error = None;
    let mut reported = KernelCounters::default();
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            read = reader.read(|record| feed(&mut pipeline, record, &mut output_error)) => {
                read?;
                if output_error.is_none() {
                    output_error = pipeline.flush().err();
                }
                if output_error.is_some() {
                    break;
                }
            }
            _ = ticker.tick() => {
                if output_error.is_none() {
                    output_error = pipeline.tick(unix_now_ns()).err();
                }
                if let Some(kernel) = report(&capture, &pipeline.stats(), stats_file.as_ref()) {
                    warn_of_new_drops(&reported, &kernel);
                    reported = kernel;
                }
            }
        }
    }
    // Detach first so nothing new arrives, then take what is still in the ring.
    capture.detach_all();
    reader.drain(|record| feed(&mut pipeline, record, &mut output_error));
    if output_error.is_none() {
        output_error = pipeline.finish().err();
    }
    let summary = LiveSummary {
        kernel: capture.counters()?,
        user: *pipeline.counters(),
        activities: pipeline.dissector().counters().activities,
    };
    report(&capture, &pipeline.stats(), stats_file.as_ref());
    log_summary(&summary);
    match output_error {
        Some(error) => Err(LiveError::Output(error)),
        None => Ok(summary),
    }
}

/// Hands one ring record to the pipeline; after an output error, frames are still counted.
fn feed<W: Write>(
    pipeline: &mut Pipeline<W>,
    record: Result<crate::frame::Frame<'_>, crate::capture::InvalidRecord>,
    output_error: &mut Option<std::io::Error>,
) {
    match record {
        Ok(frame) => {
            if let Err(error) = pipeline.handle(LinkType::Ethernet, frame) {
                output_error.get_or_insert(error);
            }
        }
        Err(_) => pipeline.invalid_record(),
    }
}

/// Reads the kernel counters and, when asked for, writes the stats file; returns the counters.
fn report(
    capture: &Capture,
    user: &[(String, u64)],
    stats_file: Option<&PathBuf>,
) -> Option<KernelCounters> {
    let kernel = match capture.counters() {
        Ok(kernel) => kernel,
        Err(error) => {
            warn!("reading counters: {error}");
            return None;
        }
    };
    if let Some(path) = stats_file
        && let Err(error) = stats::write_file(path, &stats::snapshot(Some(&kernel), user))
    {
        warn!("writing stats file {}: {error}", path.display());
    }
    Some(kernel)
}

/// Says so in the log when frames were lost to a full ring buffer since the last report.
fn warn_of_new_drops(before: &KernelCounters, now: &KernelCounters) {
    let lost = now.get(Counter::RingbufFull) - before.get(Counter::RingbufFull);
    if lost > 0 {
        warn!(
            "{lost} matched frames lost to a full ring buffer since the last report ({} in all)",
            now.get(Counter::RingbufFull)
        );
    }
}

fn log_summary(summary: &LiveSummary) {
    let kernel = &summary.kernel;
    info!(
        "stopped: seen {} frames, matched {}, copied {}, delivered {}, ring buffer full {}, \
         truncated {}, decode errors {}, activities {}",
        kernel.get(Counter::Seen),
        kernel.get(Counter::Matched),
        kernel.get(Counter::Copied),
        summary.user.delivered,
        kernel.get(Counter::RingbufFull),
        kernel.get(Counter::Truncated),
        summary.user.decode_errors,
        summary.activities,
    );
    if kernel.get(Counter::RingbufFull) > 0 {
        warn!(
            "{} matched frames were lost because the ring buffer was full: raise \
             capture.ring_buffer_mib",
            kernel.get(Counter::RingbufFull)
        );
    }
}

/// Frames carry wall-clock times; so does the tick that closes idle flows between frames.
fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
        })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        warn!("cannot install signal handlers; stop the sensor with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => info!("SIGINT: stopping"),
        _ = terminate.recv() => info!("SIGTERM: stopping"),
    }
}
