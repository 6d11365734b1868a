//! `dcwatch-backend serve`: the TLS gRPC server, detection, the outputs, the stats file and
//! retention, until shutdown. SIGHUP reopens the outputs' files (logrotate).

use std::{
    future::Future,
    io::{self, Write as _},
    path::Path,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use dcwatch_proto::v1::ingest_server::IngestServer;
use log::{info, warn};
use tokio::{net::TcpListener, sync::watch};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use crate::{
    config::{Config, RetentionConfig},
    detection::{Detection, DirectorySource},
    ingest::{Counters, IngestService},
    outputs::{OutputCounters, OutputError, Outputs},
    store::{Store, StoreError},
    tls::{self, TlsError},
};

/// How long queued alerts may take to reach the outputs at shutdown.
const OUTPUT_DRAIN: Duration = Duration::from_secs(5);

/// How often activities are compacted, and old ones deleted when a retention is set.
const PRUNE_INTERVAL: Duration = Duration::from_secs(600);
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
}

/// Every counter the stats file shows: ingest's, the outputs', detection's.
#[derive(Clone, Debug)]
struct AllCounters {
    ingest: Arc<Counters>,
    outputs: Arc<OutputCounters>,
    detection: Arc<Mutex<Option<Arc<Detection>>>>,
}

impl AllCounters {
    fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let mut all = self.ingest.snapshot();
        all.extend(self.outputs.snapshot());
        if let Some(detection) = self
            .detection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            all.extend(detection.counters());
        }
        all
    }
}

/// Reopens the outputs on every SIGHUP until the server stops. Installed before anything else,
/// so a SIGHUP never ends the process.
fn watch_hangups(
    outputs: Arc<Outputs>,
    mut stopping: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, io::Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                received = hangups.recv() => {
                    if received.is_none() {
                        return;
                    }
                    info!("SIGHUP: reopening the outputs' files");
                    outputs.reopen();
                }
                _ = stopping.changed() => return,
            }
        }
    }))
}

/// Serves until `shutdown` completes, then ends the open streams, writes the stats file one
/// last time and returns the final counters.
pub async fn serve(
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Vec<(&'static str, u64)>, ServeError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServeError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let store = Store::open(&config.data_dir)?;
    let identity = tls::server_identity(&config.tls, &config.data_dir)?;
    if let Some(ca) = &identity.ca {
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

    let store = Arc::new(Mutex::new(store));
    let counters = Arc::new(Counters::default());
    let (stop, stopping) = watch::channel(false);
    let outputs = Arc::new(Outputs::start(&config.outputs)?);
    let hangups = watch_hangups(Arc::clone(&outputs), stopping.clone()).map_err(|source| {
        ServeError::DataDir {
            path: "SIGHUP".into(),
            source,
        }
    })?;
    let directory = Arc::new(DirectorySource::default());
    let mut directory_version = None;
    refresh_directory(&store, config, &directory, &mut directory_version).await;
    let detection = Arc::new(Detection::start(
        config.data_dir.clone(),
        config.detect.clone(),
        Arc::clone(&outputs),
        Arc::clone(&directory),
    )?);
    let all_counters = AllCounters {
        ingest: Arc::clone(&counters),
        outputs: Arc::clone(outputs.counters()),
        detection: Arc::new(Mutex::new(Some(Arc::clone(&detection)))),
    };
    let console = crate::console::start(
        config,
        &identity.cert_pem,
        &identity.key_pem,
        stopping.clone(),
    )
    .await?;
    let service = IngestService::new(
        Arc::clone(&store),
        Arc::clone(&counters),
        config.limits,
        stopping.clone(),
    )
    .with_alerts(Arc::clone(&outputs), detection.waker());
    let message_limit = config
        .limits
        .max_batch_bytes
        .saturating_mul(MESSAGE_SIZE_FACTOR);
    let router = Server::builder()
        .tls_config(
            ServerTlsConfig::new()
                .identity(Identity::from_pem(identity.cert_pem, identity.key_pem)),
        )?
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .add_service(IngestServer::new(service).max_decoding_message_size(message_limit));
    info!("listening on {address}");
    // Under systemd (Type=notify): ready once listening.
    notify_systemd(&[sd_notify::NotifyState::Ready]);

    let housekeeping = tokio::spawn(housekeeping(
        config.clone(),
        Arc::clone(&store),
        all_counters.clone(),
        (directory, directory_version),
        stopping,
    ));
    let signalled = async move {
        shutdown.await;
        info!("stopping: ending the open streams");
        let _closed = stop.send(true);
    };
    router
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), signalled)
        .await?;
    let _finished = housekeeping.await;
    if let Some(console) = console {
        let _finished = console.await;
    }
    let _finished = hangups.await;
    // Detection judges what was stored, then the outputs get what it emitted.
    all_counters
        .detection
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    let detection_counters = match Arc::try_unwrap(detection) {
        Ok(detection) => tokio::task::spawn_blocking(move || detection.stop())
            .await
            .unwrap_or_default(),
        Err(_) => {
            warn!("detection still in use at exit");
            Vec::new()
        }
    };
    finish_outputs(outputs).await;
    let mut final_counters = counters.snapshot();
    final_counters.extend(all_counters.outputs.snapshot());
    final_counters.extend(detection_counters);
    if let Some(file) = &config.stats.file
        && let Err(failure) = write_stats(file, &final_counters)
    {
        warn!("stats file {}: {failure}", file.display());
    }
    let summary: Vec<String> = final_counters
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    info!("stopped: {}", summary.join(" "));
    Ok(final_counters)
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

/// The stats file every interval, retention every hour, and the directory for detection every
/// minute, until the server stops.
async fn housekeeping(
    config: Config,
    store: Arc<Mutex<Store>>,
    counters: AllCounters,
    (directory, mut directory_version): (Arc<DirectorySource>, Option<(i64, i64)>),
    mut stopping: watch::Receiver<bool>,
) {
    let mut stats = tokio::time::interval(config.stats.interval());
    let mut prune = tokio::time::interval(PRUNE_INTERVAL);
    let mut directory_check = tokio::time::interval(DIRECTORY_CHECK_INTERVAL);
    // systemd's watchdog (WatchdogSec=), pinged at half its timeout from this loop.
    let mut usec = 0;
    let mut watchdog = sd_notify::watchdog_enabled(false, &mut usec).then(|| {
        tokio::time::interval(Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
    });
    loop {
        tokio::select! {
            () = async {
                match watchdog.as_mut() {
                    Some(watchdog) => { watchdog.tick().await; }
                    None => std::future::pending().await,
                }
            } => notify_systemd(&[sd_notify::NotifyState::Watchdog]),
            _ = directory_check.tick() => {
                refresh_directory(&store, &config, &directory, &mut directory_version).await;
            }
            _ = stats.tick() => {
                if let Some(file) = &config.stats.file
                    && let Err(failure) = write_stats(file, &counters.snapshot())
                {
                    warn!("stats file {}: {failure}", file.display());
                }
            }
            _ = prune.tick() => retention(&store, &config.retention, &counters.ingest).await,
            _ = stopping.changed() => return,
        }
    }
}

/// Tells systemd, when it started the backend with a notification socket; without, nothing.
fn notify_systemd(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(failure) = sd_notify::notify(false, state) {
        warn!("telling systemd {state:?}: {failure}");
    }
}

/// How often the detection engine's directory is checked against the store's.
const DIRECTORY_CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// Gives detection the directory the sensors synced, when it changed since `version`.
async fn refresh_directory(
    store: &Arc<Mutex<Store>>,
    config: &Config,
    source: &Arc<DirectorySource>,
    version: &mut Option<(i64, i64)>,
) {
    let store = Arc::clone(store);
    let tags = config.entities.tag_config();
    let known = *version;
    let loaded = tokio::task::spawn_blocking(move || {
        let store = store.lock().unwrap_or_else(PoisonError::into_inner);
        let current = crate::directory::version(&store)?;
        if Some(current) == known {
            return Ok(None);
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
            });
        crate::directory::load(&store, &tags, now_ms).map(|directory| Some((current, directory)))
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
async fn retention(store: &Arc<Mutex<Store>>, settings: &RetentionConfig, counters: &Counters) {
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

/// Replaces `path` with the counters whole (a temporary file, then a rename), so a reader never
/// sees half a file: `{"time":"…","batches_received":…,…}`.
pub fn write_stats(path: &Path, counters: &[(&'static str, u64)]) -> io::Result<()> {
    let mut object = serde_json::Map::new();
    object.insert(
        "time".into(),
        humantime::format_rfc3339_micros(SystemTime::now())
            .to_string()
            .into(),
    );
    for (name, value) in counters {
        object.insert((*name).into(), (*value).into());
    }
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let mut file = std::fs::File::create(&temporary)?;
    serde_json::to_writer(&mut file, &object)?;
    file.write_all(b"\n")?;
    file.sync_data()?;
    std::fs::rename(&temporary, path)
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut terminate) = signal(SignalKind::terminate()) else {
        warn!("cannot watch SIGTERM; only SIGINT stops the backend");
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("SIGINT"),
        _ = terminate.recv() => info!("SIGTERM"),
    }
}
