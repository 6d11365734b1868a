//! What both binaries share of the command line's glue: `replay` (`dcwatch-sensor replay`,
//! `dcwatch-replay`) and the pieces `run` uses too. Compiled into each binary, not the library:
//! it reports with anyhow, as binaries do.

use std::{io, time::Duration};

use anyhow::Context as _;
use dcwatch_telemetry::stats_file;
use log::info;
use sensor_user::{
    cli::{OutputFormat, ReplayArgs},
    config::Config,
    pipeline::Output,
    replay,
    transport::{Leftover, Transport},
};

pub(crate) fn output(format: Option<OutputFormat>) -> Option<Output<io::Stdout>> {
    format.map(|format| Output::new(io::stdout(), format))
}

/// The detectors a replay runs: the configuration's `[detect]` in test mode, the configured DC
/// addresses, and the directory snapshot when one is given.
fn detection_engine(
    config: &Config,
    directory: Option<&std::path::Path>,
) -> anyhow::Result<dcwatch_detect::Engine> {
    let directory = match directory {
        Some(path) => load_directory(path)?,
        None => dcwatch_entity::Directory::default(),
    };
    let mut detect = config.detect.clone();
    detect.check()?;
    // Test mode: every threshold low, so nothing waits for a learning period or a hold.
    detect.threshold = dcwatch_detect::Threshold::Low;
    detect.thresholds.clear();
    detect
        .dc_addresses
        .extend(config.capture.dc_addresses.iter().copied());
    Ok(dcwatch_detect::Engine::new(
        detect,
        std::sync::Arc::new(directory),
    ))
}

/// The transport to the backend, when one is configured.
pub(crate) fn transport(config: &Config) -> anyhow::Result<Option<Transport>> {
    let Some(mut settings) = config.backend.transport(config.sensor.id()) else {
        return Ok(None);
    };
    if let Some(name) = &config.backend.token_credential {
        settings.token = sensor_user::directory::secret::read_credential(name)
            .context("reading the backend token")?
            .expose()
            .to_owned();
    }
    let url = settings.url.clone();
    let transport = Transport::start(settings).context("starting the transport")?;
    info!(
        "streaming activities to {url} (spool {})",
        config.backend.spool_dir.display()
    );
    Ok(Some(transport))
}

/// A directory snapshot, tagged as of now ("new" and "expired" are relative to it).
fn load_directory(path: &std::path::Path) -> anyhow::Result<dcwatch_entity::Directory> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("opening the directory snapshot {}", path.display()))?;
    let (domains, objects) = dcwatch_entity::snapshot::read(io::BufReader::new(file))
        .with_context(|| format!("reading the directory snapshot {}", path.display()))?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        });
    let directory = dcwatch_entity::Directory::new(
        domains,
        objects,
        &dcwatch_entity::TagConfig::default(),
        now_ms,
    );
    info!(
        "directory {}: {} domains, {} live accounts",
        path.display(),
        directory.domains().len(),
        directory.live_account_count()
    );
    Ok(directory)
}

pub(crate) fn replay(args: &ReplayArgs) -> anyhow::Result<()> {
    let config = args.common.config()?;
    let directory = args.directory.as_deref().map(load_directory).transpose()?;
    let transport = transport(&config)?;
    let sink = transport
        .as_ref()
        .and_then(|transport| transport.sink(true));
    let engine = args
        .alerts
        .map(|_| detection_engine(&config, args.directory.as_deref()))
        .transpose()?;
    let (summary, result) = replay::replay(
        &args.files,
        output(args.common.output),
        sink,
        engine,
        &config,
        directory,
    );
    info!(
        "replayed {} file(s): {} frames, {} not decodable, {} activities",
        args.files.len(),
        summary.frames.delivered,
        summary.frames.decode_errors,
        summary.activities
    );
    if let Some(format) = args.alerts {
        // Buffered: stdout flushes every line, and an alert's line is kilobytes.
        let mut out = io::BufWriter::with_capacity(1 << 16, io::stdout().lock());
        replay::write_alerts(&summary.alerts, format, &mut out).context("writing alerts")?;
        info!("{} alerts", summary.alerts.len());
    }
    let mut stats = summary.stats;
    let mut delivery = Ok(());
    if let Some(transport) = transport {
        let shared = std::sync::Arc::clone(transport.shared());
        shared.publish(stats.clone());
        let finished = transport.finish(Duration::from_secs(args.wait_secs));
        // The transport's counters as they ended, not as they were when the file ended.
        stats.update(shared.snapshot());
        delivery = match finished {
            Ok(Leftover { batches: 0, .. }) => {
                info!("the backend acknowledged every batch");
                Ok(())
            }
            Ok(left) => Err(anyhow::anyhow!(
                "after {}s, {} batches ({} activities) are not acknowledged; they stay in spool \
                 {} for the next run{}",
                args.wait_secs,
                left.batches,
                left.activities,
                config.backend.spool_dir.display(),
                left.last_error
                    .map(|error| format!(" (last error: {error})"))
                    .unwrap_or_default()
            )),
            Err(failure) => Err(failure.into()),
        };
    }
    if let Some(path) = &config.stats.file {
        stats_file::write(path, &stats_file::object(stats.pairs()))
            .with_context(|| format!("writing stats file {}", path.display()))?;
    }
    result?;
    delivery
}
