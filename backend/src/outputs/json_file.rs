//! Alerts as JSON lines appended to a file, one alert (new or update) per line, in the proto3
//! JSON form with proto field names. A thread of its own writes them; SIGHUP reopens the file so
//! logrotate can move it away.

use std::{
    fs::{File, OpenOptions},
    io::Write as _,
    path::{Path, PathBuf},
    sync::Arc,
    thread::JoinHandle,
};

use dcwatch_proto::v1::Alert;
use log::warn;
use tokio::sync::mpsc;

use super::{OutputCounters, OutputError, add};

/// Lines waiting for the writer; beyond it they are dropped and counted (a disk that stalls
/// must not stall detection).
pub const JSON_QUEUE: usize = 10_000;

#[derive(Debug)]
enum Message {
    Line(Vec<u8>),
    Reopen,
}

#[derive(Debug)]
pub struct JsonFile {
    queue: mpsc::Sender<Message>,
    writer: JoinHandle<()>,
    counters: Arc<OutputCounters>,
}

impl JsonFile {
    /// Opens (creating) the file now, so a path that cannot work fails at start.
    pub fn start(path: &Path, counters: Arc<OutputCounters>) -> Result<Self, OutputError> {
        let file = open(path).map_err(|source| OutputError::Json {
            path: path.to_owned(),
            source,
        })?;
        let (queue, messages) = mpsc::channel(JSON_QUEUE);
        let path = path.to_owned();
        let thread_counters = Arc::clone(&counters);
        let writer = std::thread::Builder::new()
            .name("alerts-json".to_owned())
            .spawn(move || write_lines(path, file, messages, &thread_counters))
            .map_err(|source| OutputError::Json {
                path: PathBuf::new(),
                source,
            })?;
        Ok(Self {
            queue,
            writer,
            counters,
        })
    }

    pub fn alert(&self, alert: &Alert) {
        let mut line = match serde_json::to_vec(alert) {
            Ok(line) => line,
            Err(failure) => {
                warn!("alert {} has no JSON form: {failure}", alert.id);
                add(&self.counters.json_errors, 1);
                return;
            }
        };
        line.push(b'\n');
        if self.queue.try_send(Message::Line(line)).is_err() {
            add(&self.counters.json_dropped, 1);
        }
    }

    pub fn reopen(&self) {
        // A full queue: the writer is behind, and will reopen after the line it is on.
        if self.queue.try_send(Message::Reopen).is_err() {
            warn!("alerts JSON file: the reopen waits for the queue to drain");
            let queue = self.queue.clone();
            tokio::spawn(async move {
                let _ = queue.send(Message::Reopen).await;
            });
        }
    }

    /// Writes what is queued, then closes the file.
    pub fn finish(self) {
        drop(self.queue);
        let _ = self.writer.join();
    }
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn write_lines(
    path: PathBuf,
    file: File,
    mut messages: mpsc::Receiver<Message>,
    counters: &OutputCounters,
) {
    let mut file = Some(file);
    while let Some(message) = messages.blocking_recv() {
        match message {
            Message::Line(line) => {
                if file.is_none() {
                    file = open(&path).ok();
                }
                let written = file.as_mut().map(|file| file.write_all(&line));
                match written {
                    Some(Ok(())) => add(&counters.json_written, 1),
                    Some(Err(failure)) => {
                        warn!("alerts JSON file {}: {failure}", path.display());
                        add(&counters.json_errors, 1);
                        // Reopened for the next line.
                        file = None;
                    }
                    None => add(&counters.json_errors, 1),
                }
            }
            Message::Reopen => {
                file = match open(&path) {
                    Ok(reopened) => {
                        add(&counters.json_reopened, 1);
                        Some(reopened)
                    }
                    Err(failure) => {
                        warn!("alerts JSON file {}: reopening: {failure}", path.display());
                        add(&counters.json_errors, 1);
                        None
                    }
                };
            }
        }
    }
}
