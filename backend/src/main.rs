//! `dcwatch-backend`: see `dcwatch-backend --help`.

use std::{
    io::{self, Write as _},
    process::ExitCode,
    time::{Duration, UNIX_EPOCH},
};

use anyhow::Context as _;
use clap::Parser as _;
use dcwatch_backend::{
    cli::{
        ActivitiesArgs, Cli, Command, ConfigCommand, DirectoryCommand, EntitiesArgs, HealthArgs,
        Location, ServeArgs, StoreCommand, TokenCommand,
    },
    directory, new_token, print_activities, serve,
    store::{self, Storage, StoreError, postgres::PgStore},
};
use log::{error, info};

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

fn main() -> ExitCode {
    let cli = Cli::parse();
    dcwatch_telemetry::logging::init(cli.log_format, &cli.log_level);
    let result = match cli.command {
        Command::Serve(args) => run_serve(&args),
        Command::Token(command) => token(command),
        Command::Activities(args) => activities(&args),
        Command::Alerts(args) => dcwatch_backend::alerts_cli::run(args.command, &args.list),
        Command::Entities(args) => entities(&args),
        Command::Learning(args) => dcwatch_backend::learning_cli::run(&args),
        Command::Directory(DirectoryCommand::Export { file, location }) => {
            export_directory(&file, &location)
        }
        Command::Directory(DirectoryCommand::Import { file, location }) => {
            import_directory(&file, &location)
        }
        Command::User(command) => dcwatch_backend::console::cli::run(&command).map_err(Into::into),
        Command::Store(StoreCommand::Migrate { location }) => migrate(&location),
        Command::Health(args) => health(&args),
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

fn run_serve(args: &ServeArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    if let Some(level) = &config.log_level
        && let Ok(level) = dcwatch_telemetry::logging::parse_level(level)
    {
        dcwatch_telemetry::logging::set_level(level);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let reread = args.clone();
    // The signals are watched from within the runtime, before serve starts.
    runtime.block_on(async {
        serve::serve(
            &config,
            args.role,
            Box::new(move || reread.config()),
            serve::shutdown_signal(),
        )
        .await
    })?;
    Ok(())
}

/// `health`: the stored health issues, newest first.
fn health(args: &HealthArgs) -> anyhow::Result<()> {
    let config = args.location.config()?;
    let mut store = store::open_existing(&config)?;
    let issues = store.issues(args.sensor.as_deref(), args.open)?;
    let mut out = io::stdout().lock();
    dcwatch_backend::health::print(&issues, args.json, &mut out).context("writing")?;
    out.flush().context("writing")?;
    Ok(())
}

/// `config check`: reads and checks the file as `serve` would.
fn config_check(path: Option<&std::path::Path>) -> anyhow::Result<()> {
    // Loading checks every key.
    if let Some(path) = path {
        dcwatch_backend::config::Config::load(path)?;
    }
    let name = path.map_or_else(
        || "the defaults".to_owned(),
        |path| path.display().to_string(),
    );
    writeln!(io::stdout(), "{name}: configuration OK").context("writing to standard output")?;
    Ok(())
}

fn token(command: TokenCommand) -> anyhow::Result<()> {
    let now_ns = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
        });
    match command {
        TokenCommand::Add { name, location } => {
            let config = location.config()?;
            std::fs::create_dir_all(&config.data_dir)
                .with_context(|| format!("creating {}", config.data_dir.display()))?;
            let mut store = store::open(&config)?;
            let token = new_token().context("reading /dev/urandom")?;
            store.add_token(&name, &token, now_ns)?;
            info!("token {name:?} added; only its SHA-256 is kept");
            writeln!(io::stdout(), "{token}")?;
        }
        TokenCommand::List { location } => {
            let mut store = store::open_existing(&location.config()?)?;
            let mut out = io::stdout().lock();
            for (name, created_ns) in store.tokens()? {
                let created =
                    UNIX_EPOCH + Duration::from_nanos(u64::try_from(created_ns).unwrap_or(0));
                writeln!(
                    out,
                    "{name}\t{}",
                    humantime::format_rfc3339_seconds(created)
                )?;
            }
        }
        TokenCommand::Revoke { name, location } => {
            let mut store = store::open_existing(&location.config()?)?;
            anyhow::ensure!(store.revoke_token(&name)?, "no token named {name:?}");
            info!("token {name:?} revoked");
        }
    }
    Ok(())
}

fn activities(args: &ActivitiesArgs) -> anyhow::Result<()> {
    let mut store = store::open_existing(&args.location.config()?)?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    match print_activities(store.as_mut(), &args.query(), &mut out) {
        // `activities ... | head`: the reader had enough.
        Err(StoreError::Output(failure)) if failure.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other.map(drop)?),
    }
}

fn existing_store(
    location: &Location,
) -> anyhow::Result<(Box<dyn Storage>, dcwatch_backend::config::Config)> {
    let config = location.config()?;
    Ok((store::open_existing(&config)?, config))
}

/// `store migrate`: PostgreSQL's pending migrations; SQLite makes its schema on open.
fn migrate(location: &Location) -> anyhow::Result<()> {
    let config = location.config()?;
    if config.cluster.postgres_url.is_empty() {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating {}", config.data_dir.display()))?;
        drop(store::open(&config)?);
        info!(
            "the SQLite store in {} is current",
            config.data_dir.display()
        );
        return Ok(());
    }
    let mut store = PgStore::connect_unchecked(
        &config.cluster.postgres_url,
        config.cluster.postgres_ca.as_deref(),
    )?;
    let now_ns = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
        });
    let applied = store.migrate(now_ns)?;
    if applied.is_empty() {
        info!("the PostgreSQL store is current");
    } else {
        info!("applied migrations {applied:?}");
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}

fn entities(args: &EntitiesArgs) -> anyhow::Result<()> {
    let (mut store, config) = existing_store(&args.location)?;
    let directory = directory::load(store.as_mut(), &config.entities.tag_config(), now_ms())?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    for line in directory::entities(&directory, &args.filter()) {
        let written = serde_json::to_writer(&mut out, &line)
            .map_err(io::Error::from)
            .and_then(|()| out.write_all(b"\n"));
        match written {
            // `entities ... | head`: the reader had enough.
            Err(failure) if failure.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            other => other?,
        }
    }
    match out.flush() {
        Err(failure) if failure.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn import_directory(file: &std::path::Path, location: &Location) -> anyhow::Result<()> {
    let (domains, objects) = dcwatch_entity::snapshot::read(io::BufReader::new(
        std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?,
    ))
    .with_context(|| format!("reading the snapshot {}", file.display()))?;
    let config = location.config()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let mut store = store::open(&config)?;
    let stored = directory::import(store.as_mut(), &domains, &objects)?;
    let skipped = objects.len() - stored;
    info!(
        "{stored} directory objects of {} domains imported{}",
        domains.len(),
        if skipped > 0 {
            format!("; {skipped} skipped (their domain is not in the snapshot)")
        } else {
            String::new()
        }
    );
    Ok(())
}

fn export_directory(file: &std::path::Path, location: &Location) -> anyhow::Result<()> {
    let (mut store, _) = existing_store(location)?;
    let count = if file.as_os_str() == "-" {
        let mut out = io::BufWriter::new(io::stdout().lock());
        directory::export(store.as_mut(), &mut out)?
    } else {
        let mut out = io::BufWriter::new(
            std::fs::File::create(file).with_context(|| format!("creating {}", file.display()))?,
        );
        let count = directory::export(store.as_mut(), &mut out)?;
        out.flush()
            .with_context(|| format!("writing {}", file.display()))?;
        count
    };
    info!("{count} directory objects exported");
    Ok(())
}
