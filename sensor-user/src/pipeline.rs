//! What happens to a frame once it is in userspace, whether it came from the ring buffer or a
//! capture file: decode, dissect into activities, count, and print.

use std::{
    collections::HashMap,
    io::{self, Write},
};

use dcwatch_entity::{Directory, enrich, nnr::Resolver};
use dcwatch_proto::v1::Activity;
use log::debug;

use crate::{
    activity::write_json_line,
    cli::OutputFormat,
    decode::{LinkType, decode, packet},
    dissect::{DissectLimits, Dissector},
    frame::Frame,
    limiter::Shedder,
    output::{JsonLines, PacketLine, rfc3339_micros},
    services::guess_protocol,
    stats::UserCounters,
    transport::ActivitySink,
};

/// Where the pipeline prints, and in which form.
#[derive(Debug)]
pub struct Output<W: Write> {
    lines: JsonLines<W>,
    format: OutputFormat,
}

impl<W: Write> Output<W> {
    pub fn new(out: W, format: OutputFormat) -> Self {
        Self {
            lines: JsonLines::new(out),
            format,
        }
    }
}

#[derive(Debug)]
pub struct Pipeline<W: Write> {
    output: Option<Output<W>>,
    interfaces: HashMap<u32, String>,
    counters: UserCounters,
    dissector: Dissector,
    /// Activities of the frame at hand, reused from frame to frame.
    activities: Vec<Activity>,
    sensor_id: String,
    last_time_ns: u64,
    /// Reused by every JSON line.
    scratch: Vec<u8>,
    /// Where activities go to the backend, if anywhere.
    sink: Option<ActivitySink>,
    /// The detectors, when the sensor judges activities itself (a replay with `--alerts`).
    engine: Option<dcwatch_detect::Engine>,
    /// Names every activity's computers from the evidence the activities carry.
    resolver: Resolver,
    /// Fills accounts' and computers' SIDs and tags (a replay given `--directory`).
    directory: Option<Directory>,
    /// The resource limiter's userspace shedding.
    shedder: Shedder,
}

impl<W: Write> Pipeline<W> {
    /// `output`: where lines go, if anywhere. `interfaces`: names by ifindex, for packet lines.
    pub fn new(
        output: Option<Output<W>>,
        interfaces: HashMap<u32, String>,
        limits: DissectLimits,
        sensor_id: String,
    ) -> Self {
        Self {
            output,
            interfaces,
            counters: UserCounters::default(),
            dissector: Dissector::new(limits),
            activities: Vec::new(),
            sensor_id,
            last_time_ns: 0,
            scratch: Vec::new(),
            sink: None,
            engine: None,
            resolver: Resolver::default(),
            directory: None,
            shedder: Shedder::default(),
        }
    }

    /// Sheds by the limiter's level, judging name queries by these DC addresses.
    #[must_use]
    pub fn with_shedder(mut self, shedder: Shedder) -> Self {
        self.shedder = shedder;
        self
    }

    /// The limiter's userspace shedding (its level is set here).
    pub fn shedder_mut(&mut self) -> &mut Shedder {
        &mut self.shedder
    }

    /// Also runs every activity through the detectors.
    #[must_use]
    pub fn with_engine(mut self, engine: Option<dcwatch_detect::Engine>) -> Self {
        self.engine = engine;
        self
    }

    pub fn engine(&self) -> Option<&dcwatch_detect::Engine> {
        self.engine.as_ref()
    }

    /// Resolves names with this resolver (its configuration and known DCs) instead of the
    /// defaults.
    #[must_use]
    pub fn with_resolver(mut self, resolver: Resolver) -> Self {
        self.resolver = resolver;
        self
    }

    /// Enriches every activity from this directory before it goes out.
    #[must_use]
    pub fn with_directory(mut self, directory: Option<Directory>) -> Self {
        self.directory = directory;
        self
    }

    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// Also sends every activity to a backend (alongside any output).
    #[must_use]
    pub fn with_sink(mut self, sink: Option<ActivitySink>) -> Self {
        self.sink = sink;
        self
    }

    pub fn sink(&self) -> Option<&ActivitySink> {
        self.sink.as_ref()
    }

    /// Cuts the batch on its way to the backend if it has waited long enough.
    pub fn tick_sink(&mut self) {
        if let Some(sink) = &mut self.sink {
            sink.tick();
        }
    }

    pub fn counters(&self) -> &UserCounters {
        &self.counters
    }

    pub fn dissector(&self) -> &Dissector {
        &self.dissector
    }

    /// The TCP endpoints endpoint mappers announced since the last call, with the time (ns, the
    /// frames' clock) until which they are DCE-RPC.
    pub fn take_learned_endpoints(&mut self) -> Vec<(std::net::SocketAddr, u64)> {
        self.dissector.take_learned_endpoints()
    }

    /// Every userspace counter, for the stats file.
    pub fn stats(&self) -> Vec<(String, u64)> {
        let frames = [
            ("delivered".to_owned(), self.counters.delivered),
            ("decode_errors".to_owned(), self.counters.decode_errors),
            (
                "unprintable_activities".to_owned(),
                self.counters.unprintable_activities,
            ),
        ];
        frames
            .into_iter()
            .chain(self.dissector.counter_pairs())
            .chain(self.resolver.counter_pairs())
            .chain(
                self.shedder
                    .counters()
                    .pairs()
                    .map(|(name, value)| (name.to_owned(), value)),
            )
            .chain(
                self.sink
                    .iter()
                    .flat_map(|sink| sink.shared().counter_pairs()),
            )
            .chain(self.engine.iter().flat_map(|engine| {
                engine
                    .counters()
                    .into_iter()
                    .map(|(name, value)| (name.to_owned(), value))
            }))
            .collect()
    }

    pub fn handle(&mut self, link: LinkType, frame: Frame<'_>) -> io::Result<()> {
        self.counters.delivered += 1;
        self.last_time_ns = self.last_time_ns.max(frame.timestamp_ns);
        let decoded = match packet(link, frame.data) {
            Ok(decoded) => decoded,
            Err(error) => {
                self.counters.decode_errors += 1;
                debug!("frame of {} bytes: {error}", frame.data.len());
                return Ok(());
            }
        };
        if let Some(Output {
            lines,
            format: OutputFormat::Packets,
        }) = &mut self.output
        {
            write_packet_line(lines, &self.interfaces, link, &frame)?;
        }
        self.dissector
            .packet(frame.timestamp_ns, &decoded, &mut self.activities);
        self.emit()
    }

    /// Lets time pass when no frame arrives, so idle flows still close.
    pub fn tick(&mut self, now_ns: u64) -> io::Result<()> {
        self.dissector.tick(now_ns, &mut self.activities);
        self.emit()
    }

    /// End of input: flows give up what they hold, and their last activities are written.
    pub fn finish(&mut self) -> io::Result<()> {
        self.dissector
            .finish(self.last_time_ns, &mut self.activities);
        self.emit()?;
        if let Some(sink) = &mut self.sink {
            sink.flush();
        }
        self.flush()
    }

    fn emit(&mut self) -> io::Result<()> {
        for mut activity in self.activities.drain(..) {
            if !self.shedder.keep(&activity) {
                continue;
            }
            activity.sensor_id.clone_from(&self.sensor_id);
            self.resolver.process(&mut activity);
            if let Some(directory) = &self.directory {
                enrich::activity(directory, &mut activity);
            }
            // The backend first: a broken output pipe must not cost it activities.
            if let Some(sink) = &mut self.sink {
                sink.push(&activity);
            }
            if let Some(engine) = &mut self.engine {
                engine.observe(&activity, "");
            }
            if let Some(Output {
                lines,
                format: OutputFormat::Json,
            }) = &mut self.output
            {
                // The body is serialised before anything is written, so a value that has no
                // JSON form leaves no partial line: it is counted and the output goes on.
                match write_json_line(&activity, lines.writer(), &mut self.scratch) {
                    Err(error) if error.kind() == io::ErrorKind::InvalidData => {
                        self.counters.unprintable_activities += 1;
                        log::debug!("an activity without a JSON form: {error}");
                    }
                    written => written?,
                }
            }
        }
        Ok(())
    }

    /// Prints an activity that did not come from a captured frame (a Windows event received by
    /// the syslog listener), as the captured ones are; the caller flushes.
    pub fn push(&mut self, activity: Activity) -> io::Result<()> {
        self.activities.push(activity);
        self.emit()
    }

    /// Counts a ring-buffer record that did not hold a whole frame.
    pub fn invalid_record(&mut self) {
        self.counters.delivered += 1;
        self.counters.decode_errors += 1;
    }

    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.output {
            Some(output) => output.lines.flush(),
            None => Ok(()),
        }
    }
}

fn write_packet_line<W: Write>(
    lines: &mut JsonLines<W>,
    interfaces: &HashMap<u32, String>,
    link: LinkType,
    frame: &Frame<'_>,
) -> io::Result<()> {
    let Ok(packet) = decode(link, frame.data) else {
        return Ok(());
    };
    let protocol = match (packet.transport, packet.ports) {
        (Some(transport), Some((src, dst))) => guess_protocol(transport, src, dst),
        _ => "unknown",
    };
    lines.write(&PacketLine {
        time: rfc3339_micros(frame.time()),
        interface: interfaces.get(&frame.ifindex).map(String::as_str),
        src: packet.src_endpoint(),
        dst: packet.dst_endpoint(),
        transport: packet.transport,
        protocol,
        len: frame.orig_len,
        captured_len: frame.data.len(),
        fragment: packet.fragment,
    })
}

#[cfg(test)]
mod tests {
    use dcwatch_proto::v1::{DceRpcActivity, DnsActivity, activity::Body};

    use super::*;

    fn activity(body: Body) -> Activity {
        Activity {
            body: Some(body),
            ..Activity::default()
        }
    }

    #[test]
    fn an_activity_without_a_json_form_is_counted_and_the_output_goes_on() {
        let mut out = Vec::new();
        let unprintable = {
            let mut pipeline = Pipeline::new(
                Some(Output::new(&mut out, OutputFormat::Json)),
                HashMap::new(),
                DissectLimits::default(),
                "s".to_owned(),
            );
            // An enum value the proto does not name: its JSON form cannot be written.
            let nameless = activity(Body::Dcerpc(DceRpcActivity {
                auth_type: 99,
                ..DceRpcActivity::default()
            }));
            pipeline.push(nameless).expect("not an output error");
            pipeline
                .push(activity(Body::Dns(DnsActivity::default())))
                .expect("the next one is written");
            pipeline.flush().expect("flush");
            pipeline.counters().unprintable_activities
        };
        assert_eq!(unprintable, 1);
        let text = String::from_utf8(out).expect("UTF-8");
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("\"protocol\":\"dns\""), "{text}");
    }
}
