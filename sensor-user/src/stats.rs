//! The counters file written by `--stats-file`: kernel and userspace counters in one JSON object.

use std::{
    io::{self, Write},
    path::Path,
    time::SystemTime,
};

use serde_json::{Map, Value};

use crate::{capture::KernelCounters, output::rfc3339_micros};

/// What userspace counts of the frames handed to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserCounters {
    /// Frames handed to the pipeline (ring-buffer records or capture-file records).
    pub delivered: u64,
    /// Of those, frames that could not be decoded as IP packets (or ring records that were not
    /// whole).
    pub decode_errors: u64,
    /// Activities that could not be written as JSON lines (a value its enum has no name for):
    /// skipped on the output, still streamed to the backend.
    pub unprintable_activities: u64,
}

/// The stats object: `time`, the kernel counters when capturing live, and the userspace ones.
pub fn snapshot(kernel: Option<&KernelCounters>, user: &[(String, u64)]) -> Value {
    let mut object = Map::new();
    object.insert("time".into(), rfc3339_micros(SystemTime::now()).into());
    for (counter, value) in kernel.iter().flat_map(|kernel| kernel.iter()) {
        object.insert(counter.name().into(), value.into());
    }
    for (name, value) in user {
        object.insert(name.clone(), (*value).into());
    }
    Value::Object(object)
}

/// Replaces `path` with `stats` whole (write to a temporary file, then rename), so a reader never
/// sees half a file.
pub fn write_file(path: &Path, stats: &Value) -> io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let mut file = std::fs::File::create(&temporary)?;
    serde_json::to_writer(&mut file, stats)?;
    file.write_all(b"\n")?;
    file.sync_data()?;
    std::fs::rename(&temporary, path)
}

/// Sets `pairs` in the stats object already in `path` (a fresh one if there is none or it does
/// not read), keeping the other counters: for counters that settle after the last report (the
/// transport's, once the backend has acknowledged what was in flight at shutdown).
pub fn update_file(path: &Path, pairs: &[(String, u64)]) -> io::Result<()> {
    let mut object = std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Map<String, Value>>(&bytes).ok())
        .unwrap_or_default();
    object.insert("time".into(), rfc3339_micros(SystemTime::now()).into());
    for (name, value) in pairs {
        object.insert(name.clone(), (*value).into());
    }
    write_file(path, &Value::Object(object))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_holds_every_counter() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("stats.json");
        let user = [("delivered".to_owned(), 7), ("decode_errors".to_owned(), 1)];
        write_file(&path, &snapshot(Some(&KernelCounters::default()), &user)).expect("write");
        let text = std::fs::read_to_string(&path).expect("read back");
        let value: Value = serde_json::from_str(&text).expect("JSON");
        for key in [
            "time",
            "seen",
            "bytes",
            "matched",
            "copied",
            "ringbuf_full",
            "truncated",
            "non_ip",
            "malformed",
            "rpc_header_matched",
        ] {
            assert!(value.get(key).is_some(), "{key} missing from {text}");
        }
        assert_eq!(value["delivered"], 7);
        assert_eq!(value["decode_errors"], 1);

        update_file(&path, &[("delivered".to_owned(), 9), ("new".to_owned(), 2)]).expect("update");
        let value: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read back")).expect("JSON");
        assert_eq!(value["delivered"], 9);
        assert_eq!(value["new"], 2);
        assert_eq!(value["decode_errors"], 1, "kept");
        assert!(value.get("seen").is_some(), "kept");
    }
}
