//! `dcwatch-sensor`: see `dcwatch-sensor --help`.

use std::{io, process::ExitCode, time::Duration};

use anyhow::Context as _;
use clap::Parser as _;
use log::{error, info, warn};
use sensor_user::{
    cli::{Cli, Command, DirectoryCommand, OutputFormat, ReplayArgs, RunArgs},
    config::Config,
    directory::DirectorySync,
    live,
    pipeline::Output,
    replay, stats,
    transport::{Leftover, Transport},
};

/// At shutdown of `run`, how long the sensor waits for the backend to acknowledge what is still
/// in flight; the rest stays in the spool for the next start.
const RUN_SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(&cli.log_level))
        .format_target(false)
        .init();
    let result = match cli.command {
        Command::Run(args) => run(&args),
        Command::Replay(args) => replay(&args),
        Command::Directory(DirectoryCommand::Sync { config, out }) => directory_sync(&config, &out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            error!("{failure:#}");
            ExitCode::FAILURE
        }
    }
}

fn output(format: Option<OutputFormat>) -> Option<Output<io::Stdout>> {
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
fn transport(config: &Config) -> anyhow::Result<Option<Transport>> {
    let Some(settings) = config.backend.transport(config.sensor.id()) else {
        return Ok(None);
    };
    let url = settings.url.clone();
    let transport = Transport::start(settings).context("starting the transport")?;
    info!(
        "streaming activities to {url} (spool {})",
        config.backend.spool_dir.display()
    );
    Ok(Some(transport))
}

fn run(args: &RunArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let transport = transport(&config)?;
    let sink = transport
        .as_ref()
        .and_then(|transport| transport.sink(false));
    let directory = DirectorySync::start(
        &config.directory,
        transport.as_ref().and_then(Transport::directory_sink),
    )
    .context("starting the directory sync")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let duration = args.duration.map(Duration::from_secs);
    let result = runtime.block_on(async {
        let shutdown = async {
            match duration {
                Some(duration) => {
                    tokio::select! {
                        () = live::shutdown_signal() => {}
                        () = tokio::time::sleep(duration) => info!("--duration elapsed: stopping"),
                    }
                }
                None => live::shutdown_signal().await,
            }
        };
        live::run(&config, output(args.common.output), sink, shutdown).await
    });
    // Its deltas hold the transport's queue open: stop it before the transport finishes.
    if let Some(directory) = directory {
        directory.stop();
    }
    if let Some(transport) = transport {
        let shared = std::sync::Arc::clone(transport.shared());
        let finished = transport.finish(RUN_SHUTDOWN_WAIT);
        // The last report was written before the backend acknowledged what was in flight.
        if let Some(path) = &config.stats.file
            && let Err(error) = stats::update_file(path, &shared.counter_pairs())
        {
            warn!("writing stats file {}: {error}", path.display());
        }
        match finished {
            Ok(Leftover { batches: 0, .. }) => {}
            Ok(left) => info!(
                "{} batches ({} activities) not yet acknowledged stay in the spool for the next \
                 start",
                left.batches, left.activities
            ),
            Err(failure) => warn!("{failure}"),
        }
    }
    result?;
    Ok(())
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

fn replay(args: &ReplayArgs) -> anyhow::Result<()> {
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
        replay::write_alerts(&summary.alerts, format, &mut io::stdout().lock())
            .context("writing alerts")?;
        info!("{} alerts", summary.alerts.len());
    }
    let mut pairs = summary.stats;
    let mut delivery = Ok(());
    if let Some(transport) = transport {
        let shared = std::sync::Arc::clone(transport.shared());
        shared.publish(pairs.clone());
        let finished = transport.finish(Duration::from_secs(args.wait_secs));
        // The transport's counters as they ended, not as they were when the file ended.
        let last = shared.counter_pairs();
        pairs.retain(|(name, _)| !last.iter().any(|(own, _)| own == name));
        pairs.extend(last);
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
        stats::write_file(path, &stats::snapshot(None, &pairs))
            .with_context(|| format!("writing stats file {}", path.display()))?;
    }
    result?;
    delivery
}

fn directory_sync(config: &std::path::Path, out: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write as _;
    let config = Config::load(config)?;
    anyhow::ensure!(
        config.directory.domains.iter().any(|domain| domain.sync),
        "no domain with `sync = true` in [directory]"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let (domains, objects) = runtime
        .block_on(sensor_user::directory::snapshot(&config.directory))
        .map_err(anyhow::Error::msg)?;
    let mut writer: Box<dyn io::Write> = if out.as_os_str() == "-" {
        Box::new(io::BufWriter::new(io::stdout().lock()))
    } else {
        Box::new(io::BufWriter::new(
            std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?,
        ))
    };
    dcwatch_entity::snapshot::write(&mut writer, &domains, &objects)
        .and_then(|()| writer.flush())
        .with_context(|| format!("writing {}", out.display()))?;
    info!(
        "{} domains, {} objects written to {}",
        domains.len(),
        objects.len(),
        out.display()
    );
    Ok(())
}
