//! The JSON stats file both daemons write (`{"time":"…","name":value,…}`), replaced whole so a
//! reader never sees half a file.

use std::{
    io::{self, Write as _},
    path::Path,
    time::SystemTime,
};

use serde_json::{Map, Value};

/// The stats object of `pairs`, stamped with the current time.
pub fn object<'a>(pairs: impl IntoIterator<Item = (&'a str, u64)>) -> Value {
    let mut object = Map::new();
    object.insert("time".into(), now_rfc3339().into());
    for (name, value) in pairs {
        object.insert(name.to_owned(), value.into());
    }
    Value::Object(object)
}

/// Replaces `path` with `stats` whole (write to a temporary file, then rename).
pub fn write(path: &Path, stats: &Value) -> io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let mut file = std::fs::File::create(&temporary)?;
    serde_json::to_writer(&mut file, stats)?;
    file.write_all(b"\n")?;
    file.sync_data()?;
    std::fs::rename(&temporary, path)
}

/// Sets `pairs` in the stats object already in `path` (a fresh one if there is none or it does
/// not read), keeping the other counters: for counters that settle after the last report.
pub fn update<'a>(path: &Path, pairs: impl IntoIterator<Item = (&'a str, u64)>) -> io::Result<()> {
    let mut object = std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Map<String, Value>>(&bytes).ok())
        .unwrap_or_default();
    object.insert("time".into(), now_rfc3339().into());
    for (name, value) in pairs {
        object.insert(name.to_owned(), value.into());
    }
    write(path, &Value::Object(object))
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_micros(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_whole_and_updated_in_place() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("stats.json");
        write(&path, &object([("delivered", 7), ("decode_errors", 1)])).expect("write");
        let value: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read back")).expect("JSON");
        assert_eq!(value["delivered"], 7);
        assert!(
            value["time"]
                .as_str()
                .is_some_and(|time| time.ends_with('Z'))
        );
        update(&path, [("delivered", 9), ("new", 2)]).expect("update");
        let value: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read back")).expect("JSON");
        assert_eq!(value["delivered"], 9);
        assert_eq!(value["new"], 2);
        assert_eq!(value["decode_errors"], 1, "kept");
        assert!(!directory.path().join("stats.json.tmp").exists());
    }
}
