//! `dcwatch-backend serve`: the TLS gRPC server, detection, the outputs, the stats file, the
//! probes, the derived health issues and retention, until shutdown. SIGHUP reopens the outputs'
//! files (logrotate) and reads the configuration again (`reload_plan`).

use std::{
    future::Future,
    io,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use dcwatch_proto::v1::ingest_server::IngestServer;
use dcwatch_telemetry::{
    Kind, Snapshot,
    probe::{self, Published},
    reload::{self, Item, Outcome},
    stats_file,
};
use log::{error, info, warn};
use tokio::{net::TcpListener, sync::watch};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use crate::{
    cluster::{
        claims::{self, Claims},
        publish::Publisher,
        source::{SourceCounters, StreamSource},
    },
    config::{Config, ConfigError, RetentionConfig},
    detection::{Detection, DirectorySource, Source, StoreSource},
    ingest::{Counters, IngestService},
    outputs::{OutputCounters, OutputError, Outputs},
    store::{SharedStore, Storage, StoreError},
    tls::{self, TlsError},
};

/// How long queued alerts may take to reach the outputs at shutdown.
const OUTPUT_DRAIN: Duration = Duration::from_secs(5);

/// How often activities are compacted, and old ones deleted when a retention is set.
const PRUNE_INTERVAL: Duration = Duration::from_mins(10);
/// HTTP/2 pings on idle connections, so a sensor that vanished without closing its connection
/// frees its stream (and its sensor id) within about a minute.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Room for a batch's envelope (sequence, lengths) on top of its payload when bounding a gRPC
/// message: anything larger than twice the payload limit ends the stream; between one and two
/// times the limit, the batch is refused and counted and the stream goes on.
const MESSAGE_SIZE_FACTOR: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("listening on {address}: {source}")]
    Listen {
        address: std::net::SocketAddr,
        source: io::Error,
    },
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error(transparent)]
    Console(#[from] crate::console::ConsoleError),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    #[error("{0}")]
    Role(String),
}

/// Which parts of the backend this process runs (README "Scaling out").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Everything in one process: ingest, detection, the console, on the configured store.
    #[default]
    All,
    /// Sensors' streams: batches checked, published to the stream, stored, acknowledged.
    Ingest,
    /// Detection on the partitions of the stream this node claims.
    Detect,
    /// The console over the shared store, retention and the derived health issues.
    Api,
}

impl Role {
    fn ingests(self) -> bool {
        matches!(self, Self::All | Self::Ingest)
    }

    fn detects(self) -> bool {
        matches!(self, Self::All | Self::Detect)
    }

    /// Once per store: retention, the derived health issues (the `all` node, or a cluster's
    /// api nodes).
    fn keeps_store(self) -> bool {
        matches!(self, Self::All | Self::Api)
    }

    /// What the role needs of the configuration.
    fn check(self, config: &Config) -> Result<(), ServeError> {
        let cluster = &config.cluster;
        if self != Self::All && cluster.postgres_url.is_empty() {
            return Err(ServeError::Role(format!(
                "--role {self:?} shares the store: set [cluster] postgres_url"
            )));
        }
        if matches!(self, Self::Ingest | Self::Detect) && cluster.nats_urls.is_empty() {
            return Err(ServeError::Role(format!(
                "--role {self:?} needs the stream: set [cluster] nats_urls"
            )));
        }
        Ok(())
    }
}

/// A part's counters, read when the stats file is written.
type CounterSource = Arc<dyn Fn() -> Vec<(&'static str, u64)> + Send + Sync>;

/// Every counter the stats file shows: ingest's, the outputs', detection's, the cluster's.
#[derive(Clone)]
struct AllCounters {
    ingest: Arc<Counters>,
    outputs: Arc<OutputCounters>,
    detection: Arc<Mutex<Option<Arc<Detection>>>>,
    cluster: Vec<CounterSource>,
}

impl AllCounters {
    fn snapshot(&self) -> Snapshot {
        let mut all = Snapshot::default();
        all.add(&*self.ingest);
        all.add(&*self.outputs);
        if let Some(detection) = self
            .detection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            add_counters(&mut all, detection.counters(), DETECTION_HELP);
        }
        for source in &self.cluster {
            add_counters(&mut all, source(), CLUSTER_HELP);
        }
        all
    }
}

const DETECTION_HELP: &str = "Counted by the detection engine.";
const CLUSTER_HELP: &str = "Counted by the cluster's stream (README \"Scaling out\").";

/// Counters named by the part that counts them (detection, the cluster's stream).
fn add_counters(snapshot: &mut Snapshot, counters: Vec<(&'static str, u64)>, help: &'static str) {
    for (name, value) in counters {
        snapshot.push(name, Kind::Counter, help, value);
    }
}

/// Reads the configuration again (the same file and command line as at start).
pub type Reread = Box<dyn Fn() -> Result<Config, ConfigError> + Send + Sync>;

/// On every SIGHUP until the server stops: reopens the outputs' files, reads the configuration
/// again and hands what applies to `reloads`. Installed before anything else, so a SIGHUP
/// never ends the process.
fn watch_hangups(
    outputs: Arc<Outputs>,
    running: Config,
    reread: Reread,
    reloads: watch::Sender<Config>,
    mut stopping: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, io::Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        let mut running = running;
        loop {
            tokio::select! {
                received = hangups.recv() => {
                    if received.is_none() {
                        return;
                    }
                    info!("SIGHUP: reopening the outputs' files, reading the configuration");
                    outputs.reopen();
                    match reread() {
                        Ok(new) => {
                            running = apply_reload(running, new);
                            reloads.send_replace(running.clone());
                        }
                        Err(failure) => {
                            error!("SIGHUP: {failure}; the running configuration stays");
                        }
                    }
                }
                _ = stopping.changed() => return,
            }
        }
    }))
}

/// Opens the configured store off the runtime's threads (connecting to PostgreSQL blocks).
async fn open_store(config: &Config) -> Result<Box<dyn Storage>, ServeError> {
    let config = config.clone();
    tokio::task::spawn_blocking(move || crate::store::open(&config))
        .await
        .map_err(|failure| ServeError::Role(format!("opening the store: {failure}")))?
        .map_err(ServeError::Store)
}

/// What a reload changes: the log level, the stats settings and retention apply; the rest is
/// logged and waits for a restart. Returns the configuration now running.
fn apply_reload(mut running: Config, new: Config) -> Config {
    let plan = reload_plan(&running, &new);
    for item in &plan {
        match item.outcome {
            Outcome::NeedsRestart => warn!("reload: {item}"),
            Outcome::Applied(_) | Outcome::Unchanged => info!("reload: {item}"),
        }
    }
    if reload::applied(&plan, "log_level") {
        running.log_level.clone_from(&new.log_level);
        if let Some(level) = &running.log_level
            && let Ok(level) = dcwatch_telemetry::logging::parse_level(level)
        {
            dcwatch_telemetry::logging::set_level(level);
        }
    }
    if reload::applied(&plan, "stats") {
        running.stats = new.stats.clone();
    }
    if reload::applied(&plan, "retention") {
        running.retention = new.retention.clone();
    }
    running
}

/// Each key of the backend's configuration: applied, unchanged, or waiting for a restart.
pub fn reload_plan(running: &Config, new: &Config) -> Vec<Item> {
    let describe = |value: &dyn std::fmt::Debug| format!("{value:?}");
    vec![
        Item::applied("log_level", &running.log_level, &new.log_level, |new| {
            new.as_deref().unwrap_or("--log-level").to_owned()
        }),
        Item::applied("stats", &running.stats, &new.stats, |new| describe(new)),
        Item::applied("retention", &running.retention, &new.retention, |new| {
            format!("{} days", new.days)
        }),
        Item::restart("listen", &running.listen, &new.listen),
        Item::restart("data_dir", &running.data_dir, &new.data_dir),
        Item::restart("tls", &running.tls, &new.tls),
        Item::restart("limits", &running.limits, &new.limits),
        Item::restart("detect", &describe(&running.detect), &describe(&new.detect)),
        Item::restart(
            "outputs",
            &describe(&running.outputs),
            &describe(&new.outputs),
        ),
        Item::restart("entities", &running.entities, &new.entities),
        Item::restart(
            "console",
            &describe(&running.console),
            &describe(&new.console),
        ),
        Item::restart("metrics", &running.metrics, &new.metrics),
        Item::restart("cluster", &running.cluster, &new.cluster),
    ]
}

/// Serves `role` until `shutdown` completes, then ends the open streams, writes the stats file
/// one last time and returns the final counters.
pub async fn serve(
    config: &Config,
    role: Role,
    reread: Reread,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Snapshot, ServeError> {
    role.check(config)?;
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServeError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let store: SharedStore = Arc::new(Mutex::new(open_store(config).await?));
    let identity = tls::server_identity(&config.tls, &config.data_dir)?;
    if role.ingests()
        && let Some(ca) = &identity.ca
    {
        if identity.created {
            info!(
                "made a CA and a server certificate in {}",
                config.data_dir.join("tls").display()
            );
        }
        info!(
            "sensors trust this backend with its CA file: --ca {}",
            ca.display()
        );
    }
    let node = crate::cluster::node_name(&config.cluster);
    let stream = if matches!(role, Role::Ingest | Role::Detect) {
        let context = crate::cluster::connect(&config.cluster, &node).await?;
        let stream = crate::cluster::activity_stream(&context, &config.cluster).await?;
        Some((context, stream))
    } else {
        None
    };

    let counters = Arc::new(Counters::default());
    let (stop, stopping) = watch::channel(false);
    let outputs = Arc::new(Outputs::start(&config.outputs)?);
    let (reloads, reloaded) = watch::channel(config.clone());
    let hangups = watch_hangups(
        Arc::clone(&outputs),
        config.clone(),
        reread,
        reloads,
        stopping.clone(),
    )
    .map_err(|source| ServeError::DataDir {
        path: "SIGHUP".into(),
        source,
    })?;
    let published = match config.metrics.listen {
        Some(address) => {
            let listener = probe::bind(address)
                .await
                .map_err(|source| ServeError::Listen { address, source })?;
            let published = Arc::new(Published::new(
                "dcwatch_backend",
                "backend",
                crate::health::VERSION,
            ));
            let mut stopped = stopping.clone();
            tokio::spawn(probe::serve(listener, Arc::clone(&published), async move {
                let _ = stopped.changed().await;
            }));
            info!("serving /metrics, /livez and /readyz on http://{address}");
            Some(published)
        }
        None => None,
    };
    let directory = Arc::new(DirectorySource::default());
    let mut directory_version = None;
    // Ingest enriches activities from it, detection judges with it, the console shows it.
    refresh_directory(&store, config, &directory, &mut directory_version).await;
    let mut all_counters = AllCounters {
        ingest: Arc::clone(&counters),
        outputs: Arc::clone(outputs.counters()),
        detection: Arc::new(Mutex::new(None)),
        cluster: Vec::new(),
    };
    let mut claiming = None;
    let detection = if role.detects() {
        let mut detection_store = open_store(config).await?;
        let source: Box<dyn Source> = if let Some((context, activity_stream)) = &stream {
            let claims = Arc::new(Claims::default());
            let bucket = claims::bucket(context, config.cluster.replicas).await?;
            claiming = Some(tokio::spawn(claims::run(
                bucket,
                node.clone(),
                crate::cluster::all_partitions(config.cluster.partitions),
                Arc::clone(&claims),
                stopping.clone(),
            )));
            let source_counters = Arc::new(SourceCounters::default());
            let shown = Arc::clone(&source_counters);
            all_counters
                .cluster
                .push(Arc::new(move || shown.snapshot()));
            Box::new(StreamSource::new(
                tokio::runtime::Handle::current(),
                activity_stream.clone(),
                claims,
                config.cluster.partitions,
                source_counters,
            ))
        } else {
            let (store, source) = tokio::task::spawn_blocking(move || {
                let source = StoreSource::new(detection_store.as_mut());
                (detection_store, source)
            })
            .await
            .map_err(|failure| ServeError::Role(format!("detection: {failure}")))?;
            detection_store = store;
            Box::new(source?)
        };
        let detection = Arc::new(Detection::start(
            detection_store,
            source,
            config.detect.clone(),
            Arc::clone(&outputs),
            Arc::clone(&directory),
        )?);
        *all_counters
            .detection
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&detection));
        Some(detection)
    } else {
        None
    };
    let console = if matches!(role, Role::All | Role::Api) {
        crate::console::start(
            config,
            &identity.cert_pem,
            &identity.key_pem,
            Arc::clone(&directory),
            stopping.clone(),
        )
        .await?
    } else {
        None
    };
    let publisher = match (&stream, role) {
        (Some((context, _)), Role::Ingest) => {
            let publisher = Arc::new(Publisher::new(context.clone(), config.cluster.partitions));
            let shown = Arc::clone(&publisher);
            all_counters
                .cluster
                .push(Arc::new(move || shown.snapshot()));
            Some(publisher)
        }
        _ => None,
    };

    let service = role.ingests().then(|| {
        let service = IngestService::new(
            Arc::clone(&store),
            Arc::clone(&counters),
            config.limits,
            stopping.clone(),
        )
        .with_alerts(
            Arc::clone(&outputs),
            detection.as_ref().map(|detection| detection.waker()),
        )
        .with_directory(Arc::clone(&directory));
        match &publisher {
            Some(publisher) => service.with_stream(Arc::clone(publisher)),
            None => service,
        }
    });
    let housekeeping = tokio::spawn(housekeeping(
        reloaded,
        role,
        Housekeeping {
            store: Arc::clone(&store),
            counters: all_counters.clone(),
            outputs: Arc::clone(&outputs),
            published: published.clone(),
        },
        (directory, directory_version),
        stopping,
    ));
    let signalled = async move {
        shutdown.await;
        info!("stopping: ending the open streams");
        let _closed = stop.send(true);
    };
    if let Some(service) = service {
        serve_ingest(config, &identity, service, signalled).await?;
    } else {
        info!("serving as {role:?}");
        notify_systemd(&[sd_notify::NotifyState::Ready]);
        signalled.await;
    }
    let _finished = housekeeping.await;
    if let Some(console) = console {
        let _finished = console.await;
    }
    if let Some(claiming) = claiming {
        let _finished = claiming.await;
    }
    let _finished = hangups.await;
    // Detection judges what was stored, then the outputs get what it emitted.
    all_counters
        .detection
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    let detection_counters = match detection.map(Arc::try_unwrap) {
        Some(Ok(detection)) => tokio::task::spawn_blocking(move || detection.stop())
            .await
            .unwrap_or_default(),
        Some(Err(_)) => {
            warn!("detection still in use at exit");
            Vec::new()
        }
        None => Vec::new(),
    };
    finish_outputs(outputs).await;
    let mut final_counters = Snapshot::default();
    final_counters.add(&*counters);
    final_counters.add(&*all_counters.outputs);
    add_counters(&mut final_counters, detection_counters, DETECTION_HELP);
    for source in &all_counters.cluster {
        add_counters(&mut final_counters, source(), CLUSTER_HELP);
    }
    if let Some(file) = &config.stats.file
        && let Err(failure) = stats_file::write(file, &stats_file::object(final_counters.pairs()))
    {
        warn!("stats file {}: {failure}", file.display());
    }
    let summary: Vec<String> = final_counters
        .pairs()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    info!("stopped: {}", summary.join(" "));
    Ok(final_counters)
}

/// The sensors' gRPC service over TLS, until `signalled` completes.
async fn serve_ingest(
    config: &Config,
    identity: &tls::ServerIdentity,
    service: IngestService,
    signalled: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Listen {
            address: config.listen,
            source,
        })?;
    let address = listener.local_addr().map_err(|source| ServeError::Listen {
        address: config.listen,
        source,
    })?;
    let message_limit = config
        .limits
        .max_batch_bytes
        .saturating_mul(MESSAGE_SIZE_FACTOR);
    let router = Server::builder()
        .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(
            identity.cert_pem.clone(),
            identity.key_pem.clone(),
        )))?
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .add_service(IngestServer::new(service).max_decoding_message_size(message_limit));
    info!("listening on {address}");
    // Under systemd (Type=notify): ready once listening.
    notify_systemd(&[sd_notify::NotifyState::Ready]);
    router
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), signalled)
        .await?;
    Ok(())
}

/// Lets queued messages reach the outputs, once every stream (and its handle on them) ended.
async fn finish_outputs(mut outputs: Arc<Outputs>) {
    for _ in 0..20 {
        match Arc::try_unwrap(outputs) {
            Ok(owned) => {
                owned.finish(OUTPUT_DRAIN).await;
                return;
            }
            Err(shared) => outputs = shared,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    warn!("outputs still in use at exit: messages queued now may be lost");
}

/// What housekeeping works on.
struct Housekeeping {
    store: SharedStore,
    counters: AllCounters,
    outputs: Arc<Outputs>,
    published: Option<Arc<Published>>,
}

/// How often the backend looks for sensors gone silent or outdated.
const HEALTH_CHECK_INTERVAL: Duration = Duration::from_mins(1);

/// The stats file and the probes every interval, the derived health issues every minute,
/// retention every hour, and the directory for detection every minute, until the server
/// stops; a reloaded configuration (`config`) takes effect at once.
async fn housekeeping(
    mut config: watch::Receiver<Config>,
    role: Role,
    work: Housekeeping,
    (directory, mut directory_version): (Arc<DirectorySource>, Option<(i64, i64)>),
    mut stopping: watch::Receiver<bool>,
) {
    let mut running = config.borrow_and_update().clone();
    let mut stats = tokio::time::interval(running.stats.interval());
    let mut prune = tokio::time::interval(PRUNE_INTERVAL);
    let mut directory_check = tokio::time::interval(DIRECTORY_CHECK_INTERVAL);
    let mut health_check = tokio::time::interval(HEALTH_CHECK_INTERVAL);
    // systemd's watchdog (WatchdogSec=), pinged at half its timeout from this loop.
    let mut usec = 0;
    let mut watchdog = sd_notify::watchdog_enabled(false, &mut usec).then(|| {
        tokio::time::interval(Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
    });
    let store = &work.store;
    loop {
        tokio::select! {
            () = async {
                match watchdog.as_mut() {
                    Some(watchdog) => { watchdog.tick().await; }
                    None => std::future::pending().await,
                }
            } => notify_systemd(&[sd_notify::NotifyState::Watchdog]),
            changed = config.changed() => {
                if changed.is_err() {
                    return;
                }
                let new = config.borrow_and_update().clone();
                if new.stats != running.stats {
                    stats = tokio::time::interval(new.stats.interval());
                }
                running = new;
            }
            _ = directory_check.tick() => {
                refresh_directory(store, &running, &directory, &mut directory_version).await;
            }
            _ = health_check.tick(), if role.keeps_store() => {
                derive_health(store, &work.outputs).await;
            }
            _ = stats.tick() => {
                let snapshot = work.counters.snapshot();
                if let Some(file) = &running.stats.file
                    && let Err(failure) =
                        stats_file::write(file, &stats_file::object(snapshot.pairs()))
                {
                    warn!("stats file {}: {failure}", file.display());
                }
                if let Some(published) = &work.published {
                    publish(store, published, snapshot).await;
                }
            }
            // Once per store: the `all` node, or a cluster's api nodes.
            _ = prune.tick(), if role.keeps_store() => {
                retention(store, &running.retention, &work.counters.ingest).await;
            }
            _ = stopping.changed() => return,
        }
    }
}

/// Opens and closes the issues the backend derives (silent or outdated sensors); each change
/// goes to the outputs.
async fn derive_health(store: &SharedStore, outputs: &Arc<Outputs>) {
    let store = Arc::clone(store);
    let now_ns = u64::try_from(crate::outputs::now_ns()).unwrap_or_default();
    let derived = tokio::task::spawn_blocking(move || {
        crate::health::derive(
            store
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_mut(),
            now_ns,
        )
    })
    .await;
    match derived {
        Ok(Ok(changed)) => {
            for (sensor, issue) in changed {
                let state = if issue.is_open() { "opened" } else { "closed" };
                warn!(
                    "sensor {sensor:?}: {} {state}: {}",
                    issue.kind.title(),
                    issue.detail
                );
                outputs.health(&sensor, &issue.to_event());
            }
        }
        Ok(Err(failure)) => warn!("health issues: {failure}"),
        Err(failure) => warn!("health issues: {failure}"),
    }
}

/// Hands the probes the counters and the open health issues; ready once the store answers.
async fn publish(store: &SharedStore, published: &Published, snapshot: Snapshot) {
    let store = Arc::clone(store);
    let open = tokio::task::spawn_blocking(move || {
        store
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .issues(None, true)
    })
    .await;
    match open {
        Ok(Ok(open)) => {
            let issues: Vec<_> = open.into_iter().map(|stored| stored.issue).collect();
            published.publish(snapshot, &issues, Ok(()));
        }
        Ok(Err(failure)) => published.publish(snapshot, &[], Err(failure.to_string())),
        Err(failure) => published.publish(snapshot, &[], Err(failure.to_string())),
    }
}

/// Tells systemd, when it started the backend with a notification socket; without, nothing.
fn notify_systemd(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(failure) = sd_notify::notify(false, state) {
        warn!("telling systemd {state:?}: {failure}");
    }
}

/// How often the detection engine's directory is checked against the store's.
const DIRECTORY_CHECK_INTERVAL: Duration = Duration::from_mins(1);

/// Gives detection the directory the sensors synced, when it changed since `version`.
async fn refresh_directory(
    store: &SharedStore,
    config: &Config,
    source: &Arc<DirectorySource>,
    version: &mut Option<(i64, i64)>,
) {
    let store = Arc::clone(store);
    let tags = config.entities.tag_config();
    let known = *version;
    let loaded = tokio::task::spawn_blocking(move || {
        let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
        let current = store.directory_version()?;
        if Some(current) == known {
            return Ok(None);
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
            });
        crate::directory::load(store.as_mut(), &tags, now_ms)
            .map(|directory| Some((current, directory)))
    })
    .await;
    match loaded {
        Ok(Ok(Some((current, directory)))) => {
            if !directory.is_empty() {
                info!(
                    "detection: the directory has {} live accounts",
                    directory.live_account_count()
                );
            }
            *version = Some(current);
            source.replace(Arc::new(directory));
        }
        Ok(Ok(None)) => {}
        Ok(Err(failure)) => warn!("loading the directory for detection: {failure}"),
        Err(failure) => warn!("loading the directory for detection: {failure}"),
    }
}

/// Compacts what left the hot window, then deletes by age and by disk budget, whichever bites
/// first; counts what each did.
async fn retention(store: &SharedStore, settings: &RetentionConfig, counters: &Counters) {
    let ago = |seconds: u64| {
        SystemTime::now()
            .checked_sub(Duration::from_secs(seconds))
            .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |since| {
                i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
            })
    };
    let compact_before =
        (settings.compact_after_secs > 0).then(|| ago(settings.compact_after_secs));
    let prune_before = (settings.days > 0).then(|| ago(u64::from(settings.days) * 86_400));
    let budget = (settings.max_mib > 0).then_some(settings.max_mib << 20);
    let store = Arc::clone(store);
    let done = tokio::task::spawn_blocking(move || {
        let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
        let compacted = match compact_before {
            Some(before) => store.compact(before)?,
            None => crate::store::Compacted::default(),
        };
        let by_age = match prune_before {
            Some(before) => store.prune(before)?,
            None => 0,
        };
        let by_budget = match budget {
            Some(bytes) => store.prune_to_budget(bytes)?,
            None => 0,
        };
        Ok::<_, StoreError>((compacted, by_age, by_budget))
    })
    .await;
    match done {
        Ok(Ok((compacted, by_age, by_budget))) => {
            add(&counters.activities_compacted, compacted.activities);
            add(&counters.blocks_compacted, compacted.blocks);
            add(&counters.activities_pruned, by_age + by_budget);
            if by_age > 0 {
                info!(
                    "retention: deleted {by_age} activities older than {} days",
                    settings.days
                );
            }
            if by_budget > 0 {
                info!(
                    "retention: deleted the {by_budget} oldest activities to keep the store under \
                     {} MiB",
                    settings.max_mib
                );
            }
        }
        Ok(Err(failure)) => warn!("retention: {failure}"),
        Err(failure) => warn!("retention: {failure}"),
    }
}

fn add(counter: &std::sync::atomic::AtomicU64, value: u64) {
    counter.fetch_add(value, std::sync::atomic::Ordering::Relaxed);
}

/// Completes on SIGINT or SIGTERM, watched from this call on rather than from the future's
/// first poll: until a handler is registered a SIGTERM kills the process, and one sent just
/// after "listening on" must stop it cleanly (stats file, outputs). Call it within the runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        let Ok(mut terminate) = terminate else {
            warn!("cannot watch SIGTERM; only SIGINT stops the backend");
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        let Ok(mut interrupt) = interrupt else {
            terminate.recv().await;
            info!("SIGTERM");
            return;
        };
        tokio::select! {
            _ = interrupt.recv() => info!("SIGINT"),
            _ = terminate.recv() => info!("SIGTERM"),
        }
    }
}
