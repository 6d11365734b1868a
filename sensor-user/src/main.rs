//! `dcwatch-sensor`: see `dcwatch-sensor --help`.

use std::{
    io::{self, Write as _},
    process::ExitCode,
    time::Duration,
};

use anyhow::Context as _;
use clap::Parser as _;
use dcwatch_telemetry::{
    logging,
    probe::{self, Published},
    stats_file,
};
use log::{error, info, warn};
use sensor_user::{
    cli::{Cli, Command, ConfigCommand, DirectoryCommand, OutputFormat, ReplayArgs, RunArgs},
    config::Config,
    directory::DirectorySync,
    health::Health,
    live,
    pipeline::Output,
    replay,
    transport::{Leftover, Transport},
};

/// At shutdown of `run`, how long the sensor waits for the backend to acknowledge what is still
/// in flight; the rest stays in the spool for the next start.
const RUN_SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format, &cli.log_level);
    let result = match cli.command {
        Command::Run(args) => run(&args),
        Command::Replay(args) => replay(&args),
        Command::Directory(DirectoryCommand::Sync { config, out }) => directory_sync(&config, &out),
        Command::Config(ConfigCommand::Check { config }) => config_check(config.as_deref()),
        Command::Docs { out } => docs(&out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            error!("{failure:#}");
            ExitCode::FAILURE
        }
    }
}

/// The man page (section 8) and the shell completions, generated from the CLI.
fn docs(out: &std::path::Path) -> anyhow::Result<()> {
    use clap::CommandFactory as _;
    dcwatch_telemetry::docs::write(Cli::command(), out).with_context(|| {
        format!(
            "writing the man page and completions into {}",
            out.display()
        )
    })
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

fn run(args: &RunArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    // First of all: from here on a SIGHUP reloads instead of ending the process.
    let mut hangups = {
        let _entered = runtime.enter();
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("watching SIGHUP")?
    };
    let config = args.config()?;
    apply_log_level(&config);
    let transport = transport(&config)?;
    let health = Health::new(
        transport
            .as_ref()
            .map(|transport| std::sync::Arc::clone(transport.shared())),
    );
    let sink = transport
        .as_ref()
        .and_then(|transport| transport.sink(false));
    let directory = DirectorySync::start(
        &config.directory,
        transport.as_ref().and_then(Transport::directory_sink),
        health.clone(),
    )
    .context("starting the directory sync")?;
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
        let published = match config.metrics.listen {
            Some(address) => Some(serve_probes(address).await?),
            None => None,
        };
        let (reload_tx, reloads) = tokio::sync::mpsc::channel(1);
        let context = live::Context {
            health,
            published,
            reloads: Some(reloads),
        };
        tokio::select! {
            result = live::run(&config, output(args.common.output), sink, context, shutdown) => {
                result.map_err(anyhow::Error::from)
            }
            () = read_on_hangup(&mut hangups, args, &reload_tx) => unreachable!("reads forever"),
        }
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
            && let Err(error) = stats_file::update(path, shared.snapshot().pairs())
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

/// The configuration's `sensor.log_level`, when set, over `--log-level`.
fn apply_log_level(config: &Config) {
    if let Some(level) = &config.sensor.log_level
        && let Ok(level) = logging::parse_level(level)
    {
        logging::set_level(level);
    }
}

/// Serves `/metrics`, `/livez` and `/readyz` at `address` until the process ends.
async fn serve_probes(address: std::net::SocketAddr) -> anyhow::Result<std::sync::Arc<Published>> {
    let listener = probe::bind(address)
        .await
        .with_context(|| format!("listening for metrics on {address}"))?;
    let published = std::sync::Arc::new(Published::new(
        "dcwatch_sensor",
        "sensor",
        env!("CARGO_PKG_VERSION"),
    ));
    tokio::spawn(probe::serve(
        listener,
        std::sync::Arc::clone(&published),
        std::future::pending(),
    ));
    info!("serving /metrics, /livez and /readyz on http://{address}");
    Ok(published)
}

/// Reads the configuration again at every SIGHUP and hands it to the live loop; a file that
/// does not read or check is logged and the running configuration stays.
async fn read_on_hangup(
    hangups: &mut tokio::signal::unix::Signal,
    args: &RunArgs,
    reloads: &tokio::sync::mpsc::Sender<Config>,
) {
    loop {
        if hangups.recv().await.is_none() {
            return std::future::pending().await;
        }
        match args.config() {
            Ok(config) => {
                if reloads.send(config).await.is_err() {
                    return std::future::pending().await;
                }
            }
            Err(failure) => {
                error!("SIGHUP: {failure}; the running configuration stays");
            }
        }
    }
}

/// `config check`: reads and checks the file as `run` would.
fn config_check(path: Option<&std::path::Path>) -> anyhow::Result<()> {
    // Loading checks every key.
    if let Some(path) = path {
        Config::load(path)?;
    }
    let name = path.map_or_else(
        || "the defaults".to_owned(),
        |path| path.display().to_string(),
    );
    writeln!(io::stdout(), "{name}: configuration OK").context("writing to standard output")?;
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
