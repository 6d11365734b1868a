//! The `--output json` form of what the sensor saw: one JSON object per line.

use std::io::{self, Write};

use serde::Serialize;

use dcwatch_pipeline::services::Transport;

/// One captured packet, as printed for now; later stages turn packets into activities.
#[derive(Debug, Serialize)]
pub struct PacketLine<'a> {
    /// RFC 3339, UTC, microseconds.
    pub time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<&'a str>,
    pub src: String,
    pub dst: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<Transport>,
    pub protocol: &'static str,
    pub len: u32,
    pub captured_len: usize,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub fragment: bool,
}

/// Writes JSON lines into a buffer, flushed when the caller has handed over a batch.
#[derive(Debug)]
pub struct JsonLines<W: Write> {
    out: io::BufWriter<W>,
}

impl<W: Write> JsonLines<W> {
    pub fn new(out: W) -> Self {
        Self {
            out: io::BufWriter::with_capacity(1 << 16, out),
        }
    }

    pub fn write<T: Serialize>(&mut self, line: &T) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, line)?;
        self.out.write_all(b"\n")
    }

    /// The buffered writer, for lines serialised by other means.
    pub fn writer(&mut self) -> &mut io::BufWriter<W> {
        &mut self.out
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

pub fn rfc3339_micros(time: std::time::SystemTime) -> String {
    humantime::format_rfc3339_micros(time).to_string()
}
