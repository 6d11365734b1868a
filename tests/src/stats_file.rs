//! Reading the sensor's `--stats-file`.

use std::{
    io,
    path::Path,
    time::{Duration, Instant},
};

use serde_json::{Map, Value};

/// The stats object, or an error if the file is missing or not a JSON object.
pub fn read(path: &Path) -> io::Result<Map<String, Value>> {
    let text = std::fs::read_to_string(path)?;
    match serde_json::from_str(&text) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(io::Error::other(format!(
            "{} is not a JSON object: {text}",
            path.display()
        ))),
    }
}

/// A counter of the stats object; 0 when absent.
pub fn counter(stats: &Map<String, Value>, name: &str) -> u64 {
    stats.get(name).and_then(Value::as_u64).unwrap_or(0)
}

/// Polls `path` until `name` reaches `at_least`, or `timeout` passes; returns the last stats read.
pub fn wait_for(
    path: &Path,
    name: &str,
    at_least: u64,
    timeout: Duration,
) -> io::Result<Map<String, Value>> {
    let deadline = Instant::now() + timeout;
    loop {
        let stats = read(path);
        if let Ok(stats) = &stats
            && counter(stats, name) >= at_least
        {
            return Ok(stats.clone());
        }
        if Instant::now() >= deadline {
            return stats;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
