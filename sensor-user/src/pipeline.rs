//! What happens to a frame once it is in userspace, whether it came from the ring buffer or a
//! capture file: decode, dissect into activities, count, and print.

use std::{
    collections::HashMap,
    io::{self, Write},
};

use dcwatch_entity::{
    Directory, enrich,
    nnr::{CertaintyAlarm, Resolver},
};
use dcwatch_proto::{
    json::endpoint_ip,
    v1::{Activity, activity::Body},
};
use dcwatch_telemetry::{Kind, Snapshot, health::unix_ns};
use log::{debug, info, warn};

use dcwatch_pipeline::{
    activity::write_json_line,
    decap::{DecapConfig, DecapCounters, decapsulate},
    decode::{LinkType, decode, packet},
    dissect::{DissectLimits, Dissector},
    frame::Frame,
    services::guess_protocol,
    workers::Workers,
};

use crate::{
    cli::OutputFormat,
    health::checks::Heard,
    limiter::Shedder,
    output::{JsonLines, PacketLine, rfc3339_micros},
    probe::Prober,
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

/// Where frames are decoded and dissected.
#[derive(Debug)]
enum FlowStage {
    /// On the pipeline's own thread.
    Inline(Box<Dissector>),
    /// On worker threads, the flows shared out among them.
    Workers(Workers),
}

#[derive(Debug)]
pub struct Pipeline<W: Write> {
    output: Option<Output<W>>,
    interfaces: HashMap<u32, String>,
    counters: UserCounters,
    /// Decode, flows, reassembly and dissection: here, or on worker threads.
    stage: FlowStage,
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
    /// Takes tunnels apart, with what it found (replay: live frames come out of XDP bare).
    decap: Option<(DecapConfig, DecapCounters)>,
    heard: Heard,
    /// The resource limiter's userspace shedding.
    shedder: Shedder,
    /// Active name resolution probes (`[nnr] active`): uncertain addresses out, names in.
    prober: Option<Prober>,
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
            stage: FlowStage::Inline(Box::new(Dissector::new(limits))),
            activities: Vec::new(),
            sensor_id,
            last_time_ns: 0,
            scratch: Vec::new(),
            sink: None,
            engine: None,
            resolver: Resolver::default(),
            directory: None,
            decap: None,
            heard: Heard::default(),
            shedder: Shedder::default(),
            prober: None,
        }
    }

    /// Decodes and dissects on `count` threads, the flows shared out among them, when more than
    /// one; with the limits it was made with shared out too.
    pub fn with_workers(mut self, count: usize, limits: &DissectLimits) -> io::Result<Self> {
        if count > 1 {
            self.stage = FlowStage::Workers(Workers::start(count, limits)?);
        }
        Ok(self)
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

    /// Takes the detectors out (at the end: their alerts are the caller's).
    pub fn take_engine(&mut self) -> Option<dcwatch_detect::Engine> {
        self.engine.take()
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

    /// Takes tunnelled frames apart as the XDP program does (frames that did not come through it).
    #[must_use]
    pub fn with_decap(mut self, decap: DecapConfig) -> Self {
        self.decap = Some((decap, DecapCounters::default()));
        self
    }

    /// Probes the addresses the resolver cannot name with HIGH certainty, and records what the
    /// probes answer (live only: a replay never sends). After `with_resolver`.
    #[must_use]
    pub fn with_prober(mut self, prober: Option<Prober>) -> Self {
        if prober.is_some() {
            self.resolver = std::mem::take(&mut self.resolver).collecting_uncertain();
        }
        self.prober = prober;
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

    /// Activities the dissectors made (from frames; as of the last tick with workers).
    pub fn activities(&self) -> u64 {
        match &self.stage {
            FlowStage::Inline(dissector) => dissector.counters().activities,
            FlowStage::Workers(workers) => workers.snapshot().get("activities").unwrap_or(0),
        }
    }

    /// The TCP endpoints endpoint mappers announced since the last call, with the time (ns, the
    /// frames' clock) until which they are DCE-RPC.
    pub fn take_learned_endpoints(&mut self) -> Vec<(std::net::SocketAddr, u64)> {
        match &mut self.stage {
            FlowStage::Inline(dissector) => dissector.take_learned_endpoints(),
            FlowStage::Workers(workers) => workers.take_learned_endpoints(),
        }
    }

    /// Every userspace counter, for the stats file and `/metrics`.
    pub fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot::default();
        snapshot.add(&self.counters);
        if let Some((_, counters)) = &self.decap {
            snapshot.extend(counters.snapshot());
        }
        snapshot.extend(match &self.stage {
            FlowStage::Inline(dissector) => dissector.snapshot(),
            FlowStage::Workers(workers) => workers.snapshot(),
        });
        snapshot.extend(self.resolver.snapshot());
        if let Some(prober) = &self.prober {
            snapshot.add_prefixed("nnr_", prober.counters());
        }
        snapshot.add_prefixed("limiter_shed_", self.shedder.counters());
        snapshot.push(
            "clock_skew_dcs_evicted",
            Kind::Counter,
            "DCs the clock skew check stopped following to make room for others (it follows 64 at most).",
            self.heard.clock_skews.evicted(),
        );
        if let Some(sink) = &self.sink {
            snapshot.extend(sink.shared().snapshot());
        }
        for (name, value) in self
            .engine
            .iter()
            .flat_map(dcwatch_detect::Engine::counters)
        {
            snapshot.push(
                name,
                Kind::Counter,
                "Counted by the detection engine.",
                value,
            );
        }
        snapshot
    }

    /// When the pipeline last heard from the configured DCs and from RADIUS.
    pub fn heard(&self) -> &Heard {
        &self.heard
    }

    /// The configured DCs: when each was last heard from (for the health checks), and whose
    /// name queries the limiter never sheds.
    pub fn watch_dcs(&mut self, dcs: &[std::net::IpAddr]) {
        self.heard.watch(dcs);
        self.shedder.set_dcs(dcs.iter().copied());
    }

    pub fn handle(&mut self, link: LinkType, mut frame: Frame<'_>) -> io::Result<()> {
        self.counters.delivered += 1;
        self.last_time_ns = self.last_time_ns.max(frame.timestamp_ns);
        if let (LinkType::Ethernet, Some((config, counters))) = (link, &mut self.decap) {
            let Some(inner) = counters.count(frame.data, decapsulate(config, frame.data)) else {
                debug!(
                    "frame of {} bytes: a tunnel header that does not parse",
                    frame.data.len()
                );
                return Ok(());
            };
            // The inner frame's own length, as the XDP program records it.
            let outer = frame.data.len() - inner.len();
            frame.orig_len = frame
                .orig_len
                .saturating_sub(u32::try_from(outer).unwrap_or(u32::MAX));
            frame.data = inner;
        }
        let decoded = match packet(link, frame.data) {
            Ok(decoded) => decoded,
            Err(error) => {
                self.counters.decode_errors += 1;
                debug!("frame of {} bytes: {error}", frame.data.len());
                return Ok(());
            }
        };
        self.heard.frame(decoded.src, frame.timestamp_ns);
        if let Some(Output {
            lines,
            format: OutputFormat::Packets,
        }) = &mut self.output
        {
            write_packet_line(lines, &self.interfaces, link, &frame)?;
        }
        match &mut self.stage {
            FlowStage::Inline(dissector) => {
                dissector.packet(frame.timestamp_ns, &decoded, &mut self.activities);
            }
            FlowStage::Workers(workers) => workers
                .frame(
                    link,
                    frame.timestamp_ns,
                    frame.data,
                    (decoded.src, decoded.dst),
                    &mut self.activities,
                )
                .map_err(io::Error::other)?,
        }
        self.emit()
    }

    /// Lets time pass when no frame arrives, so idle flows still close.
    pub fn tick(&mut self, now_ns: u64) -> io::Result<()> {
        match &mut self.stage {
            FlowStage::Inline(dissector) => dissector.tick(now_ns, &mut self.activities),
            FlowStage::Workers(workers) => workers
                .tick(now_ns, &mut self.activities)
                .map_err(io::Error::other)?,
        }
        self.emit()
    }

    /// End of input: flows give up what they hold, and their last activities are written.
    pub fn finish(&mut self) -> io::Result<()> {
        match &mut self.stage {
            FlowStage::Inline(dissector) => {
                dissector.finish(self.last_time_ns, &mut self.activities);
            }
            FlowStage::Workers(workers) => workers
                .finish(self.last_time_ns, &mut self.activities)
                .map_err(io::Error::other)?,
        }
        self.emit()?;
        if let Some(sink) = &mut self.sink {
            sink.flush();
        }
        self.flush()
    }

    fn emit(&mut self) -> io::Result<()> {
        if let Some(prober) = &self.prober {
            for (evidence, time_ms) in prober.answers() {
                self.resolver.record(&evidence, time_ms);
            }
        }
        for mut activity in self.activities.drain(..) {
            if !self.shedder.keep(&activity) {
                continue;
            }
            activity.sensor_id.clone_from(&self.sensor_id);
            match &activity.body {
                Some(Body::Radius(_)) => self.heard.radius_ns = Some(self.last_time_ns),
                Some(Body::Kerberos(kerberos)) => {
                    // A KRB-ERROR: the KDC's clock against the capture's.
                    let dc = activity.src.as_ref().and_then(endpoint_ip);
                    if let (Some(dc), Some(server), Some(captured)) =
                        (dc, &kerberos.server_time, &activity.time)
                    {
                        self.heard
                            .clock_skews
                            .sample(dc, unix_ns(server), unix_ns(captured));
                    }
                }
                _ => {}
            }
            self.resolver.process(&mut activity);
            if let Some(alarm) = self.resolver.take_alarm() {
                self.heard.low_certainty = report_certainty(&alarm);
            }
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
        if let Some(prober) = &self.prober {
            for address in self.resolver.take_uncertain() {
                prober.ask(address);
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

    /// Writes out what is buffered; with workers, first waits for the frames handed to them
    /// and writes their activities.
    pub fn flush(&mut self) -> io::Result<()> {
        if let FlowStage::Workers(workers) = &mut self.stage {
            workers
                .sync(&mut self.activities)
                .map_err(io::Error::other)?;
            self.emit()?;
        }
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

/// Says in the log that sources are (no longer) mostly named with too little certainty, and
/// returns the health issue's detail while they are.
fn report_certainty(alarm: &CertaintyAlarm) -> Option<String> {
    let message = alarm.message();
    match alarm {
        CertaintyAlarm::Low { .. } => {
            warn!("{message}");
            Some(message)
        }
        CertaintyAlarm::Recovered { .. } => {
            info!("{message}");
            None
        }
    }
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
