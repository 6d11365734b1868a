//! `dcwatch-sensor`: see `dcwatch-sensor --help`.

use std::{io, process::ExitCode, time::Duration};

use anyhow::Context as _;
use clap::Parser as _;
use log::{error, info};
use sensor_user::{
    cli::{Cli, Command, OutputFormat, ReplayArgs, RunArgs},
    live,
    pipeline::Output,
    replay, stats,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(&cli.log_level))
        .format_target(false)
        .init();
    let result = match cli.command {
        Command::Run(args) => run(&args),
        Command::Replay(args) => replay(&args),
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

fn run(args: &RunArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let duration = args.duration.map(Duration::from_secs);
    runtime.block_on(async {
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
        live::run(&config, output(args.common.output), shutdown).await
    })?;
    Ok(())
}

fn replay(args: &ReplayArgs) -> anyhow::Result<()> {
    let config = args.common.config()?;
    let (summary, result) = replay::replay(&args.file, output(args.common.output), &config);
    if let Some(path) = &config.stats.file {
        stats::write_file(path, &stats::snapshot(None, &summary.stats))
            .with_context(|| format!("writing stats file {}", path.display()))?;
    }
    info!(
        "replayed {}: {} frames, {} not decodable, {} activities",
        args.file.display(),
        summary.frames.delivered,
        summary.frames.decode_errors,
        summary.activities
    );
    Ok(result?)
}
