//! What happens to a frame once it is in userspace, whether it came from the ring buffer or a
//! capture file: decode, count, and print.

use std::{collections::HashMap, io::Write};

use log::debug;

use crate::{
    decode::{LinkType, decode},
    frame::Frame,
    output::{JsonLines, PacketLine, rfc3339_micros},
    services::guess_protocol,
    stats::UserCounters,
};

#[derive(Debug)]
pub struct Pipeline<W: Write> {
    output: Option<JsonLines<W>>,
    interfaces: HashMap<u32, String>,
    counters: UserCounters,
}

impl<W: Write> Pipeline<W> {
    /// `output`: where JSON lines go, if anywhere. `interfaces`: names by ifindex, for the lines.
    pub fn new(output: Option<W>, interfaces: HashMap<u32, String>) -> Self {
        Self {
            output: output.map(JsonLines::new),
            interfaces,
            counters: UserCounters::default(),
        }
    }

    pub fn counters(&self) -> &UserCounters {
        &self.counters
    }

    pub fn handle(&mut self, link: LinkType, frame: Frame<'_>) -> std::io::Result<()> {
        self.counters.delivered += 1;
        let packet = match decode(link, frame.data) {
            Ok(packet) => packet,
            Err(error) => {
                self.counters.decode_errors += 1;
                debug!("frame of {} bytes: {error}", frame.data.len());
                return Ok(());
            }
        };
        let Some(output) = &mut self.output else {
            return Ok(());
        };
        let protocol = match (packet.transport, packet.ports) {
            (Some(transport), Some((src, dst))) => guess_protocol(transport, src, dst),
            _ => "unknown",
        };
        output.write(&PacketLine {
            time: rfc3339_micros(frame.time()),
            interface: self.interfaces.get(&frame.ifindex).map(String::as_str),
            src: packet.src_endpoint(),
            dst: packet.dst_endpoint(),
            transport: packet.transport,
            protocol,
            len: frame.orig_len,
            captured_len: frame.data.len(),
            fragment: packet.fragment,
        })
    }

    /// Counts a ring-buffer record that did not hold a whole frame.
    pub fn invalid_record(&mut self) {
        self.counters.delivered += 1;
        self.counters.decode_errors += 1;
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.output {
            Some(output) => output.flush(),
            None => Ok(()),
        }
    }
}
