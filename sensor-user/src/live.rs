//! `dcwatch-sensor run`: attach, read the ring buffer until shut down, report.

use std::{collections::HashMap, future::Future, io::Write, path::PathBuf};

use dcwatch_proto::v1::Activity;
use log::{info, warn};
use sensor_common::Counter;
use tokio::sync::mpsc;

use dcwatch_pipeline::decode::LinkType;

use crate::{
    capture::{Capture, CaptureError, DynamicPorts, FrameReader, KernelCounters},
    config::Config,
    epm_query::{self, DcAnswer, QueryCounters},
    pipeline::{Output, Pipeline},
    stats::{self, UserCounters},
    syslog::{self, Listeners, SyslogError},
    transport::ActivitySink,
};

/// How often the batch on its way to the backend is checked for age: a fraction of the shortest
/// `backend.batch_max_secs`, so a batch leaves at most this late.
const BATCH_TICK: std::time::Duration = std::time::Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(
        "no interface to capture on: pass --interface or set capture.interfaces (or listen for \
         syslog only with --syslog-listen)"
    )]
    NoInterface,
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Syslog(#[from] SyslogError),
    #[error("writing output: {0}")]
    Output(std::io::Error),
    #[error("starting the pipeline's worker threads: {0}")]
    Workers(std::io::Error),
}

/// The counters at the end of a run.
#[derive(Clone, Copy, Debug)]
pub struct LiveSummary {
    /// All zero when nothing was captured (a syslog listener only).
    pub kernel: KernelCounters,
    pub user: UserCounters,
    /// Activities from captured traffic.
    pub activities: u64,
    /// Windows events received by the syslog listener and reported.
    pub syslog_events: u64,
}

/// Captures on the configured interfaces and listens for syslog on the configured addresses
/// (either may be absent, not both) until `shutdown` resolves, then detaches, drains the ring
/// buffer and what the listeners handed over, and writes the final stats. Activities go to
/// `output` and `sink` (a backend), if given. Needs a tokio runtime with I/O and time enabled.
pub async fn run<W: Write>(
    config: &Config,
    output: Option<Output<W>>,
    sink: Option<ActivitySink>,
    shutdown: impl Future<Output = ()>,
) -> Result<LiveSummary, LiveError> {
    let interfaces = &config.capture.interfaces;
    if interfaces.is_empty() && config.syslog.listen.is_empty() {
        return Err(LiveError::NoInterface);
    }
    // The listeners first: a port already taken should fail before XDP is attached.
    let (syslog_tx, mut syslog_rx) = mpsc::channel(syslog::CHANNEL_CAPACITY);
    let mut listeners = Listeners::bind(&config.syslog.settings(), syslog_tx).await?;
    let mut capture = if interfaces.is_empty() {
        None
    } else {
        Some(attach(config)?)
    };
    let names: HashMap<u32, String> = capture
        .iter()
        .flat_map(|capture| capture.attached())
        .map(|interface| (interface.ifindex, interface.name.clone()))
        .collect();
    let mut reader = match capture.as_mut() {
        Some(capture) => Some(FrameReader::new(capture.take_frames()?)?),
        None => None,
    };
    let limits = config.dissect_limits();
    let mut pipeline = Pipeline::new(output, names, limits.clone(), config.sensor.id())
        .with_workers(config.capture.workers(), &limits)
        .map_err(LiveError::Workers)?
        .with_sink(sink)
        .with_resolver(config.resolver());
    let mut dynamic_ports = DynamicPorts::new(&config.capture.ports.tcp);
    let mut discovery = Discovery::default();
    let mut header_ports = Vec::new();
    let (mut epm_answers, epm_task) = match &capture {
        Some(_) if config.capture.rpc_endpoint_query && !config.capture.dc_addresses.is_empty() => {
            let (answers, task) = epm_query::spawn(
                config.capture.dc_addresses.clone(),
                epm_query::QUERY_INTERVAL,
                epm_query::QUERY_TIMEOUT,
            );
            (Some(answers), Some(task))
        }
        _ => (None, None),
    };
    let mut batch_ticker = tokio::time::interval(BATCH_TICK);
    batch_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let stats_file = config.stats.file.clone();
    let mut ticker = tokio::time::interval(config.stats.interval());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    let mut output_error = None;
    let mut reported = KernelCounters::default();
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            read = read_frames(reader.as_mut(), |record| feed(&mut pipeline, record, &mut header_ports, &mut output_error)) => {
                read?;
                // At once, not at the next tick: the client connects to an announced port
                // right after the answer, and the rest of a PDU whose header opened a port
                // follows it closely.
                if let Some(capture) = capture.as_mut() {
                    watch_learned_ports(capture, &mut pipeline, &mut dynamic_ports);
                    watch_header_ports(capture, &mut header_ports, &mut dynamic_ports, &mut discovery);
                }
                if output_error.is_none() {
                    output_error = pipeline.flush().err();
                }
                if output_error.is_some() {
                    break;
                }
            }
            Some(answer) = next_answer(epm_answers.as_mut()) => {
                if let Some(capture) = capture.as_mut() {
                    watch_answered_ports(capture, answer, &mut dynamic_ports, &mut discovery.epm);
                }
            }
            Some(activity) = syslog_rx.recv() => {
                push_events(&mut pipeline, activity, &mut syslog_rx, &mut output_error);
                if output_error.is_some() {
                    break;
                }
            }
            _ = batch_ticker.tick(), if pipeline.sink().is_some() => pipeline.tick_sink(),
            _ = ticker.tick() => {
                if output_error.is_none() {
                    output_error = pipeline.tick(unix_now_ns()).err();
                }
                if let Some(capture) = capture.as_mut() {
                    unwatch_expired_ports(capture, &mut dynamic_ports);
                }
                if let Some(kernel) = report(capture.as_ref(), &pipeline, &listeners, &dynamic_ports, &discovery, stats_file.as_ref()) {
                    warn_of_new_drops(&pipeline, &reported, &kernel);
                    reported = kernel;
                }
            }
        }
    }
    // Detach first so nothing new arrives, then take what is still in the ring.
    if let Some(task) = epm_task {
        task.abort();
    }
    epm_answers.take();
    listeners.stop();
    if let Some(capture) = capture.as_mut() {
        capture.detach_all();
    }
    if let Some(reader) = reader.as_mut() {
        reader.drain(|record| feed(&mut pipeline, record, &mut header_ports, &mut output_error));
    }
    while let Ok(activity) = syslog_rx.try_recv() {
        if output_error.is_none() {
            output_error = pipeline.push(activity).err();
        }
    }
    if output_error.is_none() {
        output_error = pipeline.finish().err();
    }
    let syslog_events = listeners
        .counters()
        .events
        .load(std::sync::atomic::Ordering::Relaxed);
    let summary = LiveSummary {
        kernel: match capture.as_ref() {
            Some(capture) => capture.counters()?,
            None => KernelCounters::default(),
        },
        user: *pipeline.counters(),
        activities: pipeline.activities(),
        syslog_events,
    };
    report(
        capture.as_ref(),
        &pipeline,
        &listeners,
        &dynamic_ports,
        &discovery,
        stats_file.as_ref(),
    );
    log_summary(&summary, capture.is_some());
    match output_error {
        Some(error) => Err(LiveError::Output(error)),
        None => Ok(summary),
    }
}

/// Loads the XDP program and attaches it to every configured interface.
fn attach(config: &Config) -> Result<Capture, LiveError> {
    let mut capture = Capture::load(&config.capture)?;
    let settings = &config.capture;
    info!(
        "XDP program loaded: {:?} mode, {} TCP and {} UDP ports, {}, snap length {} B, ring buffer \
         {} MiB",
        settings.mode,
        settings.ports.tcp.len(),
        settings.ports.udp.len(),
        match settings.dc_addresses.len() {
            0 => "any address".to_owned(),
            count => format!("{count} DC addresses"),
        },
        settings.snap_len,
        settings.ring_buffer_mib
    );
    for interface in &settings.interfaces {
        let attached = capture.attach(interface, settings.attach)?;
        info!(
            "capturing on {} (ifindex {}, {} XDP, {:?} mode)",
            attached.name, attached.ifindex, attached.mode, settings.mode
        );
    }
    Ok(capture)
}

/// Reads the ring buffer when there is one; without, never resolves.
async fn read_frames(
    reader: Option<&mut FrameReader>,
    handle: impl FnMut(Result<dcwatch_pipeline::frame::Frame<'_>, crate::capture::InvalidRecord>),
) -> Result<u64, CaptureError> {
    match reader {
        Some(reader) => reader.read(handle).await,
        None => std::future::pending().await,
    }
}

/// Prints a syslog activity and those already waiting behind it (a bounded batch), then
/// flushes.
fn push_events<W: Write>(
    pipeline: &mut Pipeline<W>,
    first: Activity,
    queue: &mut mpsc::Receiver<Activity>,
    output_error: &mut Option<std::io::Error>,
) {
    let mut next = Some(first);
    let mut batch = 0;
    while let Some(activity) = next.take() {
        if output_error.is_none() {
            *output_error = pipeline.push(activity).err();
        }
        batch += 1;
        if batch < syslog::CHANNEL_CAPACITY {
            next = queue.try_recv().ok();
        }
    }
    if output_error.is_none() {
        *output_error = pipeline.flush().err();
    }
}

/// How the DCE-RPC ports not announced on the wire were found.
#[derive(Clone, Copy, Debug, Default)]
struct Discovery {
    epm: QueryCounters,
    /// Ports added to the XDP filter because the program found a DCE-RPC header on them.
    header_ports_opened: u64,
}

/// Ports found by the XDP header test waiting to be watched: more in one read of the ring
/// than this are dropped (the next header on the port brings it again).
const MAX_PENDING_HEADER_PORTS: usize = 256;

/// How long a port found by the header test stays watched: as long as an endpoint mapper's
/// announcement (an hour). Once watched, the program no longer tests the port's segments, so
/// a port in use for longer is found again by its next PDU header after it expires.
const HEADER_PORT_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

/// The userspace counters: the pipeline's, the syslog listeners' and the learned ports'.
fn stats<W: Write>(
    pipeline: &Pipeline<W>,
    listeners: &Listeners,
    dynamic_ports: &DynamicPorts,
    discovery: &Discovery,
) -> Vec<(String, u64)> {
    let mut stats = pipeline.stats();
    let listener_pairs = listeners.counters().pairs();
    let port_pairs = dynamic_ports.counters().pairs();
    stats.extend(
        listener_pairs
            .into_iter()
            .chain(port_pairs)
            .chain(discovery.epm.pairs())
            .chain([("rpc_header_ports_opened", discovery.header_ports_opened)])
            .map(|(name, value)| (name.to_owned(), value)),
    );
    stats.push(("rpc_ports_watched".to_owned(), dynamic_ports.len() as u64));
    stats
}

/// The next endpoint-mapper answer; without a query task, never resolves.
async fn next_answer(answers: Option<&mut mpsc::Receiver<DcAnswer>>) -> Option<DcAnswer> {
    match answers {
        Some(answers) => answers.recv().await,
        None => std::future::pending().await,
    }
}

/// Opens the XDP filter to the TCP ports a DC's endpoint mapper announced when asked, or
/// extends their watch.
fn watch_answered_ports(
    capture: &mut Capture,
    answer: DcAnswer,
    dynamic_ports: &mut DynamicPorts,
    counters: &mut QueryCounters,
) {
    counters.queries += 1;
    let ports = match answer.ports {
        Ok(ports) => ports,
        Err(error) => {
            counters.failures += 1;
            warn!("asking {}'s endpoint mapper: {error}", answer.dc);
            return;
        }
    };
    let until_ns = unix_now_ns().saturating_add(duration_ns(epm_query::PORT_TTL));
    for port in ports {
        if let Some(change) = dynamic_ports.announce(port, until_ns) {
            match capture.apply_port_change(change) {
                Ok(()) => {
                    counters.ports_opened += 1;
                    info!(
                        "watching TCP port {port} (DCE-RPC on {}, its endpoint mapper says)",
                        answer.dc
                    );
                }
                Err(error) => warn!("watching TCP port {port}: {error}"),
            }
        }
    }
}

/// Opens the XDP filter to the ports the program found DCE-RPC headers on.
fn watch_header_ports(
    capture: &mut Capture,
    pending: &mut Vec<u16>,
    dynamic_ports: &mut DynamicPorts,
    discovery: &mut Discovery,
) {
    let until_ns = unix_now_ns().saturating_add(duration_ns(HEADER_PORT_TTL));
    for port in pending.drain(..) {
        if let Some(change) = dynamic_ports.announce(port, until_ns) {
            match capture.apply_port_change(change) {
                Ok(()) => {
                    discovery.header_ports_opened += 1;
                    info!("watching TCP port {port} (a DCE-RPC header on a DC's dynamic port)");
                }
                Err(error) => warn!("watching TCP port {port}: {error}"),
            }
        }
    }
}

fn duration_ns(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Opens the XDP filter to the ports endpoint mappers announced since the last call.
fn watch_learned_ports<W: Write>(
    capture: &mut Capture,
    pipeline: &mut Pipeline<W>,
    dynamic_ports: &mut DynamicPorts,
) {
    for (endpoint, until_ns) in pipeline.take_learned_endpoints() {
        if let Some(change) = dynamic_ports.announce(endpoint.port(), until_ns) {
            match capture.apply_port_change(change) {
                Ok(()) => info!(
                    "watching TCP port {} (DCE-RPC at {endpoint}, announced by an endpoint mapper)",
                    endpoint.port()
                ),
                Err(error) => warn!("watching TCP port {}: {error}", endpoint.port()),
            }
        }
    }
}

/// Closes the XDP filter to learned ports no endpoint mapper announced again in time.
fn unwatch_expired_ports(capture: &mut Capture, dynamic_ports: &mut DynamicPorts) {
    for change in dynamic_ports.expire(unix_now_ns()) {
        if let Err(error) = capture.apply_port_change(change) {
            warn!("no longer watching a learned port: {error}");
        }
    }
}

/// Hands one ring record to the pipeline; after an output error, frames are still counted.
fn feed<W: Write>(
    pipeline: &mut Pipeline<W>,
    record: Result<dcwatch_pipeline::frame::Frame<'_>, crate::capture::InvalidRecord>,
    header_ports: &mut Vec<u16>,
    output_error: &mut Option<std::io::Error>,
) {
    match record {
        Ok(frame) => {
            if let Some(port) = frame.rpc_port
                && !header_ports.contains(&port)
                && header_ports.len() < MAX_PENDING_HEADER_PORTS
            {
                header_ports.push(port);
            }
            if let Err(error) = pipeline.handle(LinkType::Ethernet, frame) {
                output_error.get_or_insert(error);
            }
        }
        Err(_) => pipeline.invalid_record(),
    }
}

/// Reads the kernel counters (when capturing) and, when asked for, writes the stats file; hands
/// the same pairs to the backend, if any; returns the kernel counters.
fn report<W: Write>(
    capture: Option<&Capture>,
    pipeline: &Pipeline<W>,
    listeners: &Listeners,
    dynamic_ports: &DynamicPorts,
    discovery: &Discovery,
    stats_file: Option<&PathBuf>,
) -> Option<KernelCounters> {
    let kernel = match capture.map(Capture::counters) {
        Some(Ok(kernel)) => Some(kernel),
        Some(Err(error)) => {
            warn!("reading counters: {error}");
            return None;
        }
        None => None,
    };
    let user = stats(pipeline, listeners, dynamic_ports, discovery);
    if let Some(path) = stats_file
        && let Err(error) = stats::write_file(path, &stats::snapshot(kernel.as_ref(), &user))
    {
        warn!("writing stats file {}: {error}", path.display());
    }
    if let Some(sink) = pipeline.sink() {
        let pairs = kernel
            .iter()
            .flat_map(KernelCounters::iter)
            .map(|(counter, value)| (counter.name().to_owned(), value))
            .chain(user)
            .collect();
        sink.publish(pairs);
    }
    kernel
}

/// Says so in the log (and to the backend) when frames were lost to a full ring buffer since the
/// last report.
fn warn_of_new_drops<W: Write>(
    pipeline: &Pipeline<W>,
    before: &KernelCounters,
    now: &KernelCounters,
) {
    let lost = now.get(Counter::RingbufFull) - before.get(Counter::RingbufFull);
    if lost > 0 {
        let message = format!(
            "{lost} matched frames lost to a full ring buffer since the last report ({} in all)",
            now.get(Counter::RingbufFull)
        );
        warn!("{message}");
        if let Some(sink) = pipeline.sink() {
            sink.shared().health(
                dcwatch_proto::v1::health_event::Severity::Warning,
                "CAPTURE_LOSS",
                message,
            );
        }
    }
}

fn log_summary(summary: &LiveSummary, captured: bool) {
    if !captured {
        info!(
            "stopped: {} Windows events from syslog",
            summary.syslog_events
        );
        return;
    }
    let kernel = &summary.kernel;
    info!(
        "stopped: seen {} frames, matched {}, copied {}, delivered {}, ring buffer full {}, \
         truncated {}, decode errors {}, activities {}, Windows events from syslog {}",
        kernel.get(Counter::Seen),
        kernel.get(Counter::Matched),
        kernel.get(Counter::Copied),
        summary.user.delivered,
        kernel.get(Counter::RingbufFull),
        kernel.get(Counter::Truncated),
        summary.user.decode_errors,
        summary.activities,
        summary.syslog_events,
    );
    if kernel.get(Counter::RingbufFull) > 0 {
        warn!(
            "{} matched frames were lost because the ring buffer was full: raise \
             capture.ring_buffer_mib",
            kernel.get(Counter::RingbufFull)
        );
    }
}

/// Frames carry wall-clock times; so does the tick that closes idle flows between frames.
fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
        })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        warn!("cannot install signal handlers; stop the sensor with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => info!("SIGINT: stopping"),
        _ = terminate.recv() => info!("SIGTERM: stopping"),
    }
}
