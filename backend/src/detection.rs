//! Detection on ingest: a thread of its own judges every stored activity with the detection
//! engine, in the order the store received them, from all sensors.
//!
//! It reads the activities back from the store (its own SQLite connection, WAL: no lock shared
//! with ingest) after a row cursor kept in the store, so ingest only stores, acknowledges and
//! nudges it: a slow detector never slows an acknowledgement, a burst is caught up from the
//! store rather than queued in memory, and activities stored just before a crash are judged
//! after the restart. Each chunk's alerts are upserted, with the cursor, in one transaction,
//! and only then emitted to the outputs (a crash between the two loses the emission, never the
//! alert).
//!
//! Between chunks it applies what other processes wrote to the store: analysts' closes
//! (`alerts close`) are handed to the engine, and a B-TP close with exclude of a learning
//! detection's alert (a `taught` history row) teaches the engines' profiles; exclusions
//! (`alerts exclude`) rebuild them (the alerts, profiles and windows are restored from the
//! store, and the taught alerts taught again).
//!
//! The profiles (Part II) that changed and the detectors' windows (the journal of what the
//! engine judged within them, `dcwatch_detect::checkpoint`) are written with each chunk's
//! alerts and cursor, in the same transaction: after a crash, the chunk is judged again by an
//! engine whose profiles and windows have not taken it in, so an alert its behaviour raised is
//! raised again rather than lost, and a burst cut by the crash is counted whole, once.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use dcwatch_detect::{Config, Engine, Key, config::Subnet};
use dcwatch_entity::Directory;
use dcwatch_proto::v1::alert::{Classification, Trigger};
use log::{error, info, warn};

use crate::{
    outputs::{Outputs, now_ns},
    store::{
        ACTIVITY_CURSOR, AlertQuery, DETECTION, Exclusion, ExclusionKind, NewActivity, Storage,
        StoreError,
    },
};

/// Activities to judge, from one partition of the stream (the `all` role has one: the store's
/// rows in the order they were stored).
#[derive(Debug)]
pub struct Chunk {
    pub partition: u32,
    /// The key of the partition's detectors (`None`: every detector, the `all` role).
    pub key: Option<Key>,
    /// The detection cursor saved with the chunk's alerts: its name and the chunk's last place.
    pub cursor: (String, i64),
    pub activities: Vec<NewActivity>,
}

/// Where detection takes its activities from.
pub trait Source: Send + std::fmt::Debug {
    /// The next activities to judge (`None`: nothing new now).
    fn next(&mut self, store: &mut dyn Storage, limit: usize) -> Result<Option<Chunk>, StoreError>;
    /// The chunk's alerts and cursor are stored: what it came from may forget it.
    fn done(&mut self, chunk: &Chunk);
    /// Storing the chunk's alerts (or building its engine) failed: its activities must come
    /// again, to an engine rebuilt from the store.
    fn failed(&mut self, chunk: &Chunk);
    /// Partitions this node judged and no longer owns: their engines are dropped.
    fn lost(&mut self) -> Vec<u32>;
}

/// The `all` role's source: the store's activity rows after the cursor kept in the store.
#[derive(Debug)]
pub struct StoreSource {
    cursor: i64,
}

impl StoreSource {
    /// Reads the cursor; at the first start, activities stored before detection existed are
    /// history, not news.
    pub fn new(store: &mut dyn Storage) -> Result<Self, StoreError> {
        let cursor = if let Some(cursor) = store.detection_state(ACTIVITY_CURSOR)? {
            cursor
        } else {
            let last = store.last_activity_row()?;
            store.set_detection_state(ACTIVITY_CURSOR, last)?;
            last
        };
        Ok(Self { cursor })
    }
}

impl Source for StoreSource {
    fn next(&mut self, store: &mut dyn Storage, limit: usize) -> Result<Option<Chunk>, StoreError> {
        let activities = store.activities_after(self.cursor, limit)?;
        Ok(activities.last().map(|last| last.row).map(|last| Chunk {
            partition: 0,
            key: None,
            cursor: (ACTIVITY_CURSOR.to_owned(), last),
            activities,
        }))
    }

    fn done(&mut self, chunk: &Chunk) {
        self.cursor = chunk.cursor.1;
    }

    /// The rows are read again after the unchanged cursor.
    fn failed(&mut self, _chunk: &Chunk) {}

    fn lost(&mut self) -> Vec<u32> {
        Vec::new()
    }
}

/// Activities judged between two looks at the store's closes: a few hundred milliseconds of
/// a busy backend's ingest.
const CHUNK: usize = 2_000;
/// How often an idle loop looks for closes, exclusions and a new directory.
const POLL: Duration = Duration::from_millis(250);
/// How long after its close an alert may still reopen (DETECTIONS.md): those are restored.
const REOPEN_WINDOW_NS: i64 = 24 * 3600 * 1_000_000_000;
/// At shutdown, how long detection may go on catching up before it stops where it is (the
/// cursor is in the store: the rest is judged at the next start).
const FINAL_DRAIN: Duration = Duration::from_secs(5);

/// The directory the store holds, as last loaded (serve reloads it when the synced directory
/// changes): detection judges with it, ingest enriches activities from it, the console shows
/// it. Empty until a sensor synced one (or one was imported): the engine learns from the
/// traffic then.
#[derive(Debug, Default)]
pub struct DirectorySource {
    current: Mutex<Arc<Directory>>,
}

impl DirectorySource {
    /// The directory detection should use now; a new `Arc` means a new directory.
    pub fn current(&self) -> Arc<Directory> {
        Arc::clone(&self.current.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn replace(&self, directory: Arc<Directory>) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = directory;
    }
}

/// Nudges the detection thread after a batch was stored (cheap, never blocks).
#[derive(Clone, Debug)]
pub struct Wake(mpsc::SyncSender<()>);

impl Wake {
    pub fn wake(&self) {
        // Full: a nudge is already pending, which is all the thread needs.
        let _ = self.0.try_send(());
    }
}

/// The running detection thread.
#[derive(Debug)]
pub struct Detection {
    wake: Wake,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
    counters: Arc<Mutex<Vec<(&'static str, u64)>>>,
}

impl Detection {
    /// Starts the thread judging what `source` gives, with its own store connection.
    pub fn start(
        store: Box<dyn Storage>,
        source: Box<dyn Source>,
        config: Config,
        outputs: Arc<Outputs>,
        directory: Arc<DirectorySource>,
    ) -> Result<Self, StoreError> {
        let (wake, woken) = mpsc::sync_channel(1);
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Mutex::new(Vec::new()));
        let stopping = Arc::clone(&stop);
        let published = Arc::clone(&counters);
        // The engine is built on its thread (its detectors need not be Send); the start waits
        // for the restore to succeed or fail.
        let (started, start_result) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("detection".to_owned())
            .spawn(
                move || match Loop::new(store, source, config, outputs, directory, published) {
                    Ok(mut state) => {
                        let _ = started.send(Ok(()));
                        state.run(&woken, &stopping);
                    }
                    Err(failure) => {
                        let _ = started.send(Err(failure));
                    }
                },
            )
            .map_err(StoreError::Output)?;
        start_result.recv().map_err(|_| {
            StoreError::Output(std::io::Error::other("the detection thread ended at start"))
        })??;
        Ok(Self {
            wake: Wake(wake),
            stop,
            thread,
            counters,
        })
    }

    pub fn waker(&self) -> Wake {
        self.wake.clone()
    }

    /// Detection's counters as of its last chunk.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        self.counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Judges what is stored (for at most a few seconds), then stops.
    pub fn stop(self) -> Vec<(&'static str, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        self.wake.wake();
        if self.thread.join().is_err() {
            error!("the detection thread panicked");
        }
        self.counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What detection itself counts, beside the engine's counters.
#[derive(Debug, Default)]
struct Counts {
    alerts_new: u64,
    alerts_updated: u64,
    alerts_emitted: u64,
    /// Updates to alerts an analyst had just closed: kept closed, not emitted.
    alerts_held_closed: u64,
    closes_applied: u64,
    engine_rebuilds: u64,
    store_errors: u64,
}

/// What an alert's changes within one chunk add up to.
#[derive(Debug, Default)]
struct Change {
    /// One of them was to reach the outputs.
    emit: bool,
    /// It was raised in this chunk.
    new: bool,
}

struct Loop {
    store: Box<dyn Storage>,
    source: Box<dyn Source>,
    config: Config,
    /// One engine per partition judged here: a partition's state stays with its engine.
    engines: HashMap<u32, Engine>,
    outputs: Arc<Outputs>,
    directory_source: Arc<DirectorySource>,
    directory: Arc<Directory>,
    exclusions: Vec<Exclusion>,
    applied_history: i64,
    counts: Counts,
    published: Arc<Mutex<Vec<(&'static str, u64)>>>,
}

impl Loop {
    fn new(
        mut store: Box<dyn Storage>,
        source: Box<dyn Source>,
        config: Config,
        outputs: Arc<Outputs>,
        directory_source: Arc<DirectorySource>,
        published: Arc<Mutex<Vec<(&'static str, u64)>>>,
    ) -> Result<Self, StoreError> {
        // Closes already in the store are in the restored alerts' status.
        let applied_history = store.last_history_row()?;
        let exclusions = store.exclusions()?;
        let directory = directory_source.current();
        Ok(Self {
            store,
            source,
            config,
            engines: HashMap::new(),
            outputs,
            directory_source,
            directory,
            exclusions,
            applied_history,
            counts: Counts::default(),
            published,
        })
    }

    fn run(&mut self, woken: &mpsc::Receiver<()>, stop: &AtomicBool) {
        let mut last_poll = Instant::now();
        let mut stopping_since: Option<Instant> = None;
        loop {
            if stopping_since.is_none() && stop.load(Ordering::Relaxed) {
                stopping_since = Some(Instant::now());
            }
            if stopping_since.is_some_and(|since| since.elapsed() > FINAL_DRAIN) {
                warn!(
                    "detection stopped before judging every stored activity; it resumes at the next start"
                );
                break;
            }
            if let Err(failure) = self.apply_closes() {
                self.store_failed(&failure);
            }
            if last_poll.elapsed() >= POLL {
                last_poll = Instant::now();
                if let Err(failure) = self.poll_changes() {
                    self.store_failed(&failure);
                }
            }
            let judged = match self.chunk() {
                Ok(judged) => judged,
                Err(failure) => {
                    self.store_failed(&failure);
                    0
                }
            };
            self.publish();
            if judged == 0 {
                if stopping_since.is_some() {
                    break;
                }
                match woken.recv_timeout(POLL) {
                    Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
        }
        self.publish();
    }

    fn store_failed(&mut self, failure: &StoreError) {
        self.counts.store_errors += 1;
        error!("detection: {failure}");
        // Do not spin on a store that keeps failing.
        std::thread::sleep(POLL);
    }

    /// Hands the engine every close analysts wrote since the last look.
    fn apply_closes(&mut self) -> Result<(), StoreError> {
        for entry in self.store.alert_history("", self.applied_history)? {
            self.applied_history = self.applied_history.max(entry.id);
            if entry.event == "taught" {
                self.teach(&entry.alert_id, entry.time_ns / 1_000_000)?;
                continue;
            }
            if entry.event != "closed" || entry.actor == DETECTION {
                continue;
            }
            let classification = Classification::from_str_name(&entry.classification)
                .unwrap_or(Classification::Unspecified);
            let mut closed = false;
            for engine in self.engines.values_mut() {
                closed |= engine.close(&entry.alert_id, classification, entry.time_ns / 1_000_000);
            }
            if closed {
                self.counts.closes_applied += 1;
                info!(
                    "alert {} closed by {} ({})",
                    entry.alert_id, entry.actor, entry.classification
                );
            }
        }
        Ok(())
    }

    /// Teaches the engines' profiles an alert's behaviour, and stores them at once (an idle
    /// backend may judge nothing for a while). An engine built later is taught by
    /// [`build_engine`].
    fn teach(&mut self, alert_id: &str, time: i64) -> Result<(), StoreError> {
        let query = AlertQuery {
            id: Some(alert_id.to_owned()),
            ..AlertQuery::default()
        };
        for alert in self.store.alerts(&query)? {
            for (partition, engine) in &mut self.engines {
                if engine.teach(&alert, time) {
                    info!("alert {alert_id}: its entity's profile learned the behaviour");
                }
                self.store
                    .save_profiles(*partition, &engine.take_profile_changes())?;
            }
        }
        Ok(())
    }

    /// Stores what a partition's profiles learned since its last chunk, before its engine is
    /// dropped.
    fn save_profiles(&mut self, partition: u32, engine: &mut Engine) -> Result<(), StoreError> {
        self.store
            .save_profiles(partition, &engine.take_profile_changes())
    }

    /// A new directory, new exclusions.
    fn poll_changes(&mut self) -> Result<(), StoreError> {
        let directory = self.directory_source.current();
        if !Arc::ptr_eq(&directory, &self.directory) {
            self.directory = Arc::clone(&directory);
            for engine in self.engines.values_mut() {
                engine.set_directory(Arc::clone(&directory));
            }
        }
        for partition in self.source.lost() {
            if let Some(mut engine) = self.engines.remove(&partition) {
                self.save_profiles(partition, &mut engine)?;
                info!("detection: partition {partition} moved to another node");
            }
        }
        let exclusions = self.store.exclusions()?;
        if exclusions != self.exclusions {
            info!(
                "exclusions changed ({} in the store): detection's engines are rebuilt",
                exclusions.len()
            );
            // Rebuilt as their partitions come next, reading the profiles and windows back.
            for (partition, mut engine) in std::mem::take(&mut self.engines) {
                self.save_profiles(partition, &mut engine)?;
            }
            self.exclusions = exclusions;
            self.applied_history = self.store.last_history_row()?;
            self.counts.engine_rebuilds += 1;
        }
        Ok(())
    }

    /// Judges up to [`CHUNK`] new activities; how many.
    fn chunk(&mut self) -> Result<usize, StoreError> {
        let Some(chunk) = self.source.next(self.store.as_mut(), CHUNK)? else {
            return Ok(0);
        };
        let engine = match self.engines.entry(chunk.partition) {
            std::collections::hash_map::Entry::Occupied(engine) => engine.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                let built = build_engine(
                    self.store.as_mut(),
                    (chunk.partition, chunk.key),
                    &self.config,
                    &self.exclusions,
                    Arc::clone(&self.directory),
                );
                match built {
                    Ok(engine) => slot.insert(engine),
                    Err(failure) => {
                        // Not judged: the chunk comes again (left in flight, the next chunk's
                        // acknowledgement would have taken it along).
                        self.source.failed(&chunk);
                        return Err(failure);
                    }
                }
            }
        };
        // One entry per alert changed in this chunk, in the order of its first change: whether
        // any of its changes was to be emitted, and whether it was new in this chunk. The engine
        // updates its alerts in place; each is copied once, at the end of the chunk, as it then
        // stands.
        let mut order: Vec<String> = Vec::new();
        let mut changes: HashMap<String, Change> = HashMap::new();
        for stored in &chunk.activities {
            for raised in engine.observe(&stored.activity, &stored.reference()) {
                if raised.new {
                    self.counts.alerts_new += 1;
                } else {
                    self.counts.alerts_updated += 1;
                }
                let change = changes.entry(raised.id).or_insert_with_key(|id| {
                    order.push(id.clone());
                    Change::default()
                });
                change.emit |= raised.emit;
                change.new |= raised.new;
            }
        }
        // An alert the engine evicted again within the chunk (counted by the engine as
        // detect_alerts_evicted) has no state left to save.
        let (alerts, changed): (Vec<_>, Vec<_>) = order
            .iter()
            .filter_map(|id| Some((engine.alert(id)?.clone(), changes.remove(id)?)))
            .unzip();
        let checkpoint = engine.take_checkpoint();
        let saved = self.store.save_alerts(
            &alerts,
            (chunk.partition, &checkpoint),
            (&chunk.cursor.0, chunk.cursor.1),
            self.applied_history,
            now_ns(),
        );
        let may_emit = match saved {
            Ok(may_emit) => may_emit,
            Err(failure) => {
                // Profiles and windows that took in what was not stored would judge the chunk's
                // activities twice: the engine is rebuilt from the store, and the chunk comes
                // again.
                self.source.failed(&chunk);
                self.engines.remove(&chunk.partition);
                return Err(failure);
            }
        };
        self.source.done(&chunk);
        for ((mut alert, change), may_emit) in alerts.into_iter().zip(changed).zip(may_emit) {
            if !may_emit {
                self.counts.alerts_held_closed += 1;
                continue;
            }
            if change.emit {
                if change.new {
                    alert.trigger = Trigger::New.into();
                }
                self.outputs.alert(&alert);
                self.counts.alerts_emitted += 1;
            }
        }
        Ok(chunk.activities.len())
    }

    fn publish(&self) {
        let mut counters = vec![
            ("alerts_new", self.counts.alerts_new),
            ("alerts_updated", self.counts.alerts_updated),
            ("alerts_emitted", self.counts.alerts_emitted),
            ("alerts_held_closed", self.counts.alerts_held_closed),
            ("alerts_closes_applied", self.counts.closes_applied),
            ("detect_engine_rebuilds", self.counts.engine_rebuilds),
            ("detect_store_errors", self.counts.store_errors),
        ];
        // The engines' counters, summed over the partitions judged here.
        let mut engines: Vec<(&'static str, u64)> = Vec::new();
        for engine in self.engines.values() {
            for (name, value) in engine.counters() {
                match engines.iter_mut().find(|(known, _)| *known == name) {
                    Some((_, total)) => *total += value,
                    None => engines.push((name, value)),
                }
            }
        }
        counters.extend(engines);
        *self
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = counters;
    }
}

/// An engine for the configuration plus the store's exclusions, with the detectors of the
/// partition's key (all without one), the store's open and recently closed alerts and
/// `partition`'s profiles, taught what analysts taught, its windows rebuilt by replaying
/// `partition`'s journal.
fn build_engine(
    store: &mut dyn Storage,
    (partition, key): (u32, Option<Key>),
    config: &Config,
    exclusions: &[Exclusion],
    directory: Arc<Directory>,
) -> Result<Engine, StoreError> {
    let mut engine = Engine::new(with_exclusions(config, exclusions), directory).with_checkpoints();
    if let Some(key) = key {
        engine = engine.keyed_by(key);
    }
    let alerts = store.alerts_to_restore(now_ns().saturating_sub(REOPEN_WINDOW_NS))?;
    if !alerts.is_empty() {
        info!(
            "detection: {} open or recently closed alerts restored",
            alerts.len()
        );
    }
    engine.restore(alerts);
    let profiles = store.load_profiles(partition)?;
    if !profiles.is_empty() {
        info!(
            "detection: {} profiles restored (partition {partition})",
            profiles.len()
        );
    }
    engine.load_profiles(profiles);
    for (alert, time_ns) in store.taught_alerts()? {
        engine.teach(&alert, time_ns / 1_000_000);
    }
    let windows = store.load_windows(partition)?;
    if !windows.is_empty() {
        info!(
            "detection: {} window segments replayed (partition {partition})",
            windows.len()
        );
    }
    engine.restore_windows(windows);
    // What teaching changed is stored with the partition's first chunk.
    Ok(engine)
}

/// The configuration's exclusions and the store's together.
pub fn with_exclusions(config: &Config, exclusions: &[Exclusion]) -> Config {
    let mut config = config.clone();
    for exclusion in exclusions {
        let target = if exclusion.type_name.is_empty() {
            &mut config.exclusions
        } else {
            config
                .exclude
                .entry(exclusion.type_name.clone())
                .or_default()
        };
        match exclusion.kind {
            ExclusionKind::Account => target.accounts.push(exclusion.value.clone()),
            ExclusionKind::Computer => target.computers.push(exclusion.value.clone()),
            ExclusionKind::Subnet => match exclusion.value.parse::<Subnet>() {
                Ok(subnet) => target.subnets.push(subnet),
                // `alerts exclude` checks subnets; a row edited by hand may still be wrong.
                Err(failure) => warn!("exclusion {}: {failure}", exclusion.id),
            },
        }
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exclusion(id: i64, type_name: &str, kind: ExclusionKind, value: &str) -> Exclusion {
        Exclusion {
            id,
            type_name: type_name.to_owned(),
            kind,
            value: value.to_owned(),
            created_ns: 0,
            comment: String::new(),
        }
    }

    #[test]
    fn the_stores_exclusions_add_to_the_configurations() {
        let config: Config = toml::from_str(
            "[exclusions]\naccounts = [\"CORP\\\\aadsync\"]\n[exclude.dcsync]\ncomputers = [\"DC9\"]",
        )
        .expect("a [detect] section");
        let merged = with_exclusions(
            &config,
            &[
                exclusion(1, "", ExclusionKind::Subnet, "10.20.0.0/16"),
                exclusion(2, "dcsync", ExclusionKind::Account, "alice"),
                exclusion(3, "brute_force", ExclusionKind::Computer, "SCANNER"),
                exclusion(4, "", ExclusionKind::Subnet, "not a subnet"),
            ],
        );
        assert_eq!(merged.exclusions.accounts, ["CORP\\aadsync"]);
        assert_eq!(merged.exclusions.subnets.len(), 1);
        assert!(merged.exclusions.subnets[0].contains("10.20.3.4".parse().expect("an address")));
        let dcsync = &merged.exclude["dcsync"];
        assert_eq!(
            (dcsync.computers.as_slice(), dcsync.accounts.as_slice()),
            (&["DC9".to_owned()][..], &["alice".to_owned()][..])
        );
        assert_eq!(merged.exclude["brute_force"].computers, ["SCANNER"]);
        assert!(
            !config.exclude.contains_key("brute_force"),
            "the base is untouched"
        );
    }
}
