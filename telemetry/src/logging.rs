//! Both daemons' logs: to stderr as text, with journald's priority prefixes (`<3>` error ...
//! `<7>` debug, sd-daemon(3)) when stderr is the journal (`JOURNAL_STREAM` set), or as JSON lines
//! (`--log-format json`). The level can change while running (a SIGHUP reload).

use std::{io::Write as _, str::FromStr};

use log::{Level, LevelFilter, Log, Metadata, Record};

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

/// Installs the logger: `level` applies unless `RUST_LOG` says otherwise (then `RUST_LOG`'s
/// filter applies, and [`set_level`] only lowers it).
pub fn init(format: LogFormat, level: LevelFilter) {
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let mut builder = env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or(LevelFilter::Trace.as_str()),
    );
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
    let inner = builder.build();
    let ceiling = inner.filter();
    let logger = Logger { inner, ceiling };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(level);
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

/// env_logger's filter (`RUST_LOG`) under the level set now.
struct Logger {
    inner: env_logger::Logger,
    ceiling: LevelFilter,
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level().min(self.ceiling) && self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            self.inner.log(record);
        }
    }

    fn flush(&self) {
        self.inner.flush();
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
