//! `dcwatch-replay`: `dcwatch-sensor replay` on its own, built without the `capture` feature
//! where there is no eBPF toolchain (replay, benchmarks). Same arguments, same output.

#[path = "../cmd.rs"]
mod cmd;

use std::process::ExitCode;

use clap::Parser;
use dcwatch_telemetry::logging;
use log::error;
use sensor_user::cli::ReplayArgs;

/// Frames from capture files through the sensor's pipeline, as `dcwatch-sensor replay`.
#[derive(Debug, Parser)]
#[command(name = "dcwatch-replay", version)]
struct Cli {
    /// Log level: error, warn, info, debug or trace (RUST_LOG overrides it).
    #[arg(long, default_value = "info", value_name = "LEVEL")]
    log_level: String,
    /// Log lines as `text` or `json` objects.
    #[arg(long, default_value = "text", value_name = "FORMAT")]
    log_format: logging::LogFormat,
    #[command(flatten)]
    replay: ReplayArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format, &cli.log_level);
    match cmd::replay(&cli.replay) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            error!("{failure:#}");
            ExitCode::FAILURE
        }
    }
}
