//! `dcwatch-sensor`: see `dcwatch-sensor --help`.

mod cmd;

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
    cli::{Cli, Command, ConfigCommand, DirectoryCommand, RunArgs},
    config::Config,
    directory::DirectorySync,
    health::Health,
    live,
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
        Command::Replay(args) => cmd::replay(&args),
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
    let transport = cmd::transport(&config)?;
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
            result = live::run(&config, cmd::output(args.common.output), sink, context, shutdown) => {
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
