//! `dcwatch-sensor run`: attach, read the ring buffer until shut down, report.

use std::{collections::HashMap, future::Future, io::Write, path::PathBuf, sync::Arc};

use dcwatch_proto::v1::Activity;
use dcwatch_telemetry::{Snapshot, probe::Published, stats_file};
use log::{error, info, warn};
use sensor_common::Counter;
use tokio::sync::mpsc;

use dcwatch_pipeline::decode::LinkType;

use crate::{
    capture::{Capture, CaptureError, DynamicPorts, FrameReader, KernelCounters},
    config::Config,
    epm_query::{self, DcAnswer, QueryCounters},
    health::{
        Health, IssueKind,
        checks::{Checks, Expectations},
    },
    limiter::{Limiter, measure::Meter},
    pipeline::{Output, Pipeline},
    probe::Prober,
    reload::{self, Outcome},
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
    #[error("starting the name resolution probes: {0}")]
    Probes(std::io::Error),
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

/// What the daemon hands the loop besides the configuration.
#[derive(Debug, Default)]
pub struct Context {
    /// The sensor's health issues, shared with the directory sync and the transport.
    pub health: Health,
    /// What `/metrics` and `/readyz` show, when they are served.
    pub published: Option<Arc<Published>>,
    /// Configurations read again on SIGHUP, already checked.
    pub reloads: Option<mpsc::Receiver<Config>>,
}

/// Captures on the configured interfaces and listens for syslog on the configured addresses
/// (either may be absent, not both) until `shutdown` resolves, then detaches, drains the ring
/// buffer and what the listeners handed over, and writes the final stats. Activities go to
/// `output` and `sink` (a backend), if given. A configuration from `context.reloads` applies
/// what can change while running ([`reload::plan`]). Needs a tokio runtime with I/O and time
/// enabled.
pub async fn run<W: Write>(
    config: &Config,
    output: Option<Output<W>>,
    sink: Option<ActivitySink>,
    context: Context,
    shutdown: impl Future<Output = ()>,
) -> Result<LiveSummary, LiveError> {
    let mut config = config.clone();
    let Context {
        health,
        published,
        mut reloads,
    } = context;
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
        Some(attach(&config, &health)?)
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
    let prober = config
        .nnr
        .probes(&config.capture.dc_addresses)
        .map(Prober::start)
        .transpose()
        .map_err(LiveError::Probes)?;
    let limits = config.dissect_limits();
    let mut pipeline = Pipeline::new(output, names, limits.clone(), config.sensor.id())
        .with_workers(config.capture.workers(), &limits)
        .map_err(LiveError::Workers)?
        .with_sink(sink)
        .with_resolver(config.resolver())
        .with_prober(prober);
    pipeline.watch_dcs(&config.capture.dc_addresses);
    let mut limiter = config.limiter.enabled.then(|| Governor::new(&config));
    let mut limiter_ticker = tokio::time::interval(config.limiter.interval());
    limiter_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
    // Under systemd (Type=notify): ready once attached and listening; the watchdog is pinged
    // from this loop, so a loop stuck anywhere stops the pings and systemd restarts the sensor.
    notify_systemd(&[sd_notify::NotifyState::Ready]);
    let mut watchdog = watchdog_interval().map(tokio::time::interval);
    let mut batch_ticker = tokio::time::interval(BATCH_TICK);
    batch_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let mut ticker = stats_ticker(&config);
    let mut reporting = Reporting {
        stats_file: config.stats.file.clone(),
        checks: Checks::new(expectations(&config), unix_now_ns()),
        health,
        published,
        reported: KernelCounters::default(),
    };
    tokio::pin!(shutdown);
    let mut output_error = None;
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
            _ = next_tick(watchdog.as_mut()) => notify_systemd(&[sd_notify::NotifyState::Watchdog]),
            _ = limiter_ticker.tick(), if limiter.is_some() => {
                if let Some(limiter) = limiter.as_mut() {
                    limiter.tick(capture.as_mut(), &mut pipeline);
                }
            }
            Some(new) = next_reload(reloads.as_mut()) => {
                let running = Running {
                    capture: capture.as_mut(),
                    dynamic_ports: &mut dynamic_ports,
                    reporting: &mut reporting,
                };
                if reload(&mut config, new, running, &mut pipeline) {
                    ticker = stats_ticker(&config);
                }
            }
            _ = ticker.tick() => {
                if output_error.is_none() {
                    output_error = pipeline.tick(unix_now_ns()).err();
                }
                if let Some(capture) = capture.as_mut() {
                    unwatch_expired_ports(capture, &mut dynamic_ports);
                }
                reporting.report(capture.as_ref(), &pipeline, &listeners, &dynamic_ports, &discovery, limiter.as_ref());
            }
        }
    }
    if let Some(published) = &reporting.published {
        published.set_ready(Err("stopping".to_owned()));
    }
    notify_systemd(&[sd_notify::NotifyState::Stopping]);
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
    reporting.write(
        capture.as_ref(),
        &pipeline,
        &listeners,
        &dynamic_ports,
        &discovery,
        limiter.as_ref(),
    );
    log_summary(&summary, capture.is_some());
    match output_error {
        Some(error) => Err(LiveError::Output(error)),
        None => Ok(summary),
    }
}

/// Loads the XDP program and attaches it to every configured interface.
fn attach(config: &Config, health: &Health) -> Result<Capture, LiveError> {
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
        health.set(
            IssueKind::XdpGeneric,
            &attached.name,
            (attached.mode == "generic").then(|| {
                format!(
                    "{} runs XDP in generic mode: every frame costs an skb; a driver with native \
                     XDP costs less",
                    attached.name
                )
            }),
        );
    }
    Ok(capture)
}

/// Tells systemd, when it started the sensor with a notification socket; without, nothing.
fn notify_systemd(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(false, state) {
        warn!("telling systemd {state:?}: {error}");
    }
}

/// Half the watchdog timeout systemd set (`WatchdogSec=`), if it set one.
fn watchdog_interval() -> Option<std::time::Duration> {
    let mut usec = 0;
    sd_notify::watchdog_enabled(false, &mut usec).then(|| {
        std::time::Duration::from_micros(usec / 2).max(std::time::Duration::from_millis(1))
    })
}

/// The next tick of an interval; without one, never resolves.
async fn next_tick(interval: Option<&mut tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
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

dcwatch_telemetry::counters! {
    /// DCE-RPC ports found by the XDP program's header test, and the learned ports watched.
    struct HeaderPorts {
        /// Ports added to the XDP filter because the program found a DCE-RPC header on them.
        counter rpc_header_ports_opened: u64,
        /// Learned DCE-RPC ports watched now.
        gauge rpc_ports_watched: u64,
    }
}

/// The userspace counters: the pipeline's, the syslog listeners' and the learned ports'.
fn stats<W: Write>(
    pipeline: &Pipeline<W>,
    listeners: &Listeners,
    dynamic_ports: &DynamicPorts,
    discovery: &Discovery,
) -> Snapshot {
    let mut snapshot = pipeline.snapshot();
    snapshot.add_prefixed("syslog_", listeners.counters());
    snapshot.add_prefixed("rpc_ports_", dynamic_ports.counters());
    snapshot.add_prefixed("epm_", &discovery.epm);
    snapshot.add(&HeaderPorts {
        rpc_header_ports_opened: discovery.header_ports_opened,
        rpc_ports_watched: dynamic_ports.len() as u64,
    });
    snapshot
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
            counters.query_failures += 1;
            warn!("asking {}'s endpoint mapper: {error}", answer.dc);
            return;
        }
    };
    let until_ns = unix_now_ns().saturating_add(duration_ns(epm_query::PORT_TTL));
    for port in ports {
        if let Some(change) = dynamic_ports.announce(port, until_ns) {
            match capture.apply_port_change(change) {
                Ok(()) => {
                    counters.query_ports_opened += 1;
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

/// The stats tick's work: the stats file, the backend's copy of the counters, the health
/// checks and the probes, all from one snapshot.
#[derive(Debug)]
struct Reporting {
    stats_file: Option<PathBuf>,
    checks: Checks,
    health: Health,
    published: Option<Arc<Published>>,
    /// The kernel counters at the last report.
    reported: KernelCounters,
}

impl Reporting {
    /// Writes the counters and runs the health checks on them.
    fn report<W: Write>(
        &mut self,
        capture: Option<&Capture>,
        pipeline: &Pipeline<W>,
        listeners: &Listeners,
        dynamic_ports: &DynamicPorts,
        discovery: &Discovery,
        limiter: Option<&Governor>,
    ) {
        let Some((kernel, snapshot)) = self.write(
            capture,
            pipeline,
            listeners,
            dynamic_ports,
            discovery,
            limiter,
        ) else {
            return;
        };
        if let Some(kernel) = kernel {
            warn_of_new_drops(&self.reported, &kernel);
            self.reported = kernel;
        }
        self.checks
            .run(&self.health, &snapshot, pipeline.heard(), unix_now_ns());
        if let Some(published) = &self.published {
            published.publish(snapshot, &self.health.open(), Ok(()));
        }
    }

    /// Reads the kernel counters (when capturing) and, when asked for, writes the stats file;
    /// hands the same snapshot to the backend, if any. `None` when the kernel's counters could
    /// not be read.
    fn write<W: Write>(
        &self,
        capture: Option<&Capture>,
        pipeline: &Pipeline<W>,
        listeners: &Listeners,
        dynamic_ports: &DynamicPorts,
        discovery: &Discovery,
        limiter: Option<&Governor>,
    ) -> Option<(Option<KernelCounters>, Snapshot)> {
        let kernel = match capture.map(Capture::counters) {
            Some(Ok(kernel)) => Some(kernel),
            Some(Err(error)) => {
                warn!("reading counters: {error}");
                return None;
            }
            None => None,
        };
        let mut user = stats(pipeline, listeners, dynamic_ports, discovery);
        if let Some(limiter) = limiter {
            user.add_prefixed("limiter_", &limiter.stats);
        }
        let snapshot = stats::snapshot(kernel.as_ref(), user);
        if let Some(path) = &self.stats_file
            && let Err(error) = stats_file::write(path, &stats_file::object(snapshot.pairs()))
        {
            warn!("writing stats file {}: {error}", path.display());
        }
        if let Some(sink) = pipeline.sink() {
            sink.publish(snapshot.clone());
        }
        Some((kernel, snapshot))
    }
}

/// The resource limiter at work: measures every tick, and applies a new level to the XDP
/// program and the pipeline.
#[derive(Debug)]
struct Governor {
    meter: Meter,
    limiter: Limiter,
    stats: LimiterStats,
}

dcwatch_telemetry::counters! {
    /// What the resource limiter measured and did (named `limiter_*`).
    #[derive(Clone, Copy, Debug, Default)]
    struct LimiterStats {
        /// The shedding level in force: 0 sheds nothing, higher sheds more.
        gauge level: u64,
        /// Measurements taken.
        counter ticks: u64,
        /// Changes of level.
        counter level_changes: u64,
        /// The host's CPU free at the last measurement, in whole percent.
        gauge cpu_free_percent: u64,
        /// The host's memory free at the last measurement, in whole percent.
        gauge memory_free_percent: u64,
        /// The sensor's own resident memory at the last measurement.
        gauge own_memory_bytes: u64,
        /// Measurements that failed (/proc unreadable).
        counter measure_errors: u64,
    }
}

impl Governor {
    fn new(config: &Config) -> Self {
        Self {
            meter: Meter::new(std::path::Path::new("/proc")),
            limiter: Limiter::new(config.limiter.policy()),
            stats: LimiterStats {
                cpu_free_percent: 100,
                memory_free_percent: 100,
                ..LimiterStats::default()
            },
        }
    }

    fn tick<W: Write>(&mut self, capture: Option<&mut Capture>, pipeline: &mut Pipeline<W>) {
        self.stats.ticks += 1;
        let load = match self.meter.sample() {
            Ok(Some(load)) => load,
            Ok(None) => return,
            Err(error) => {
                self.stats.measure_errors += 1;
                warn!("resource limiter: {error}");
                return;
            }
        };
        let percent = |share: f64| (share * 100.0).round() as u64;
        self.stats.cpu_free_percent = percent(load.cpu_free);
        self.stats.memory_free_percent = percent(load.memory_free);
        self.stats.own_memory_bytes = load.own_bytes;
        let Some(change) = self.limiter.decide(&load) else {
            return;
        };
        self.stats.level_changes += 1;
        let level = change.to;
        self.stats.level = level.number();
        if let Some(capture) = capture
            && let Err(error) = capture.set_shed(
                sensor_common::shed_class::NAME_QUERIES,
                level.name_query_keep(),
            )
        {
            warn!("resource limiter: setting the XDP program's shedding: {error}");
        }
        pipeline.shedder_mut().set_level(level);
        let message = format!(
            "resource limiter: {} ({}: CPU {}% free, memory {}% free, sensor {} MiB)",
            level.name(),
            change.cause.name(),
            self.stats.cpu_free_percent,
            self.stats.memory_free_percent,
            load.own_bytes >> 20
        );
        if level > change.from {
            warn!("{message}");
        } else {
            info!("{message}");
        }
        // What is shed is counted (limiter_shed_*): the health checks raise TRAFFIC_DROPPED
        // from those counters with the rest of the drops.
    }
}

/// Says so in the log when frames were lost to a full ring buffer since the last report (the
/// health checks raise the issue).
fn warn_of_new_drops(before: &KernelCounters, now: &KernelCounters) {
    let lost = now.get(Counter::RingbufFull) - before.get(Counter::RingbufFull);
    if lost > 0 {
        warn!(
            "{lost} matched frames lost to a full ring buffer since the last report ({} in all)",
            now.get(Counter::RingbufFull)
        );
    }
}

/// What the health checks expect to hear from, by the configuration.
fn expectations(config: &Config) -> Expectations {
    Expectations {
        interfaces: config.capture.interfaces.clone(),
        dc_addresses: config.capture.dc_addresses.clone(),
        windows_events: !config.syslog.listen.is_empty(),
        radius: !config.radius.secret.is_empty() || !config.radius.secrets.is_empty(),
        silent_after_ns: config.health.silent_after_ns(),
        max_clock_skew_ns: config.health.max_clock_skew_ns(),
    }
}

fn stats_ticker(config: &Config) -> tokio::time::Interval {
    let mut ticker = tokio::time::interval(config.stats.interval());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker
}

/// The next configuration read on SIGHUP; without a reload channel, never resolves.
async fn next_reload(reloads: Option<&mut mpsc::Receiver<Config>>) -> Option<Config> {
    match reloads {
        Some(reloads) => reloads.recv().await,
        None => std::future::pending().await,
    }
}

/// What a reload may change.
struct Running<'a> {
    capture: Option<&'a mut Capture>,
    dynamic_ports: &'a mut DynamicPorts,
    reporting: &'a mut Reporting,
}

/// Applies what `new` changes that can change while running, logs every key's outcome, and
/// keeps the running values of the rest. True when the stats settings changed (a new ticker).
fn reload<W: Write>(
    config: &mut Config,
    mut new: Config,
    running: Running<'_>,
    pipeline: &mut Pipeline<W>,
) -> bool {
    let plan = reload::plan(config, &new);
    let Running {
        mut capture,
        dynamic_ports,
        reporting,
    } = running;
    let applied = |key: &str| reload::applied(&plan, key);
    let mut failures = Vec::new();
    if applied("capture.ports.tcp") || applied("capture.ports.udp") {
        if let Some(capture) = capture.as_deref_mut() {
            let result = capture.replace_ports(
                (&config.capture.ports.tcp, &config.capture.ports.udp),
                (&new.capture.ports.tcp, &new.capture.ports.udp),
                |port| dynamic_ports.is_learned(port) && !new.capture.ports.tcp.contains(&port),
            );
            match result {
                Ok(()) => {
                    dynamic_ports.set_configured(&new.capture.ports.tcp);
                    config.capture.ports = new.capture.ports.clone();
                }
                Err(error) => failures.push(format!("capture.ports: {error}")),
            }
        } else {
            config.capture.ports = new.capture.ports.clone();
        }
    }
    if applied("capture.dc_addresses") {
        let result = capture.map_or(Ok(()), |capture| {
            capture.replace_addresses(&config.capture.dc_addresses, &new.capture.dc_addresses)
        });
        match result {
            Ok(()) => {
                config.capture.dc_addresses = new.capture.dc_addresses.clone();
                pipeline.watch_dcs(&config.capture.dc_addresses);
            }
            Err(error) => failures.push(format!("capture.dc_addresses: {error}")),
        }
    }
    if applied("sensor.log_level") {
        config.sensor.log_level = new.sensor.log_level.take();
        if let Some(level) = &config.sensor.log_level
            && let Ok(level) = dcwatch_telemetry::logging::parse_level(level)
        {
            dcwatch_telemetry::logging::set_level(level);
        }
    }
    let stats_changed = applied("stats");
    if stats_changed {
        config.stats = new.stats.clone();
        reporting.stats_file.clone_from(&config.stats.file);
    }
    if applied("health") {
        config.health = new.health.clone();
    }
    reporting
        .checks
        .expect(expectations(config), &reporting.health);
    info!("SIGHUP: configuration read again");
    for item in &plan {
        match item.outcome {
            Outcome::NeedsRestart => warn!("reload: {item}"),
            Outcome::Applied(_) | Outcome::Unchanged => info!("reload: {item}"),
        }
    }
    for failure in failures {
        error!("reload: not applied: {failure}");
    }
    stats_changed
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
