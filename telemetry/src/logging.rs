//! Both daemons' logs: to stderr as text, with journald's priority prefixes (`<3>` error ...
//! `<7>` debug, sd-daemon(3)) when stderr is the journal (`JOURNAL_STREAM` set), or as JSON lines
//! (`--log-format json`). The level can change while running (a SIGHUP reload).

use std::{io::Write as _, str::FromStr};

use log::{Level, LevelFilter};

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Time, level and message; under systemd, the priority prefix and the message.
    #[default]
    Text,
    /// `{"time":"…","level":"WARN","target":"…","message":"…"}` per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("{other:?}: text or json")),
        }
    }
}

/// Parses a level name (`error`, `warn`, `info`, `debug`, `trace`, `off`).
pub fn parse_level(text: &str) -> Result<LevelFilter, String> {
    text.parse()
        .map_err(|_| format!("{text:?}: off, error, warn, info, debug or trace"))
}

/// Installs the logger. `level` is a level name (then [`set_level`] may change it later) or an
/// env_logger filter (`info,tonic=warn`); `RUST_LOG`, when set, wins over both.
pub fn init(format: LogFormat, level: &str) {
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let plain = parse_level(level)
        .ok()
        .filter(|_| std::env::var_os("RUST_LOG").is_none());
    // A plain level is applied by `log::max_level` (so a reload can raise it), the rest by
    // env_logger's filter.
    let filter = if plain.is_some() { "trace" } else { level };
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(filter));
    match format {
        LogFormat::Json => {
            builder.format(|buf, record| {
                let line = serde_json::json!({
                    "time": humantime::format_rfc3339_micros(std::time::SystemTime::now())
                        .to_string(),
                    "level": record.level().as_str(),
                    "target": record.target(),
                    "message": record.args().to_string(),
                });
                writeln!(buf, "{line}")
            });
        }
        LogFormat::Text if journal => {
            builder.format(|buf, record| {
                writeln!(buf, "<{}>{}", priority(record.level()), record.args())
            });
        }
        LogFormat::Text => {
            builder.format_target(false);
        }
    }
    let logger = builder.build();
    let max = plain.unwrap_or_else(|| logger.filter());
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(max);
    }
}

/// Changes the level (a reload); returns the one it replaced.
pub fn set_level(level: LevelFilter) -> LevelFilter {
    let before = log::max_level();
    log::set_max_level(level);
    before
}

/// journald's priority of a level (syslog's numbers).
fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_levels_parse() {
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert_eq!("text".parse(), Ok(LogFormat::Text));
        assert!("xml".parse::<LogFormat>().is_err());
        assert_eq!(parse_level("debug"), Ok(LevelFilter::Debug));
        assert!(parse_level("loud").is_err());
        assert_eq!(priority(Level::Error), 3);
        assert_eq!(priority(Level::Warn), 4);
        assert_eq!(priority(Level::Info), 6);
        assert_eq!(priority(Level::Trace), 7);
    }
}
