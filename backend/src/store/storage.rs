//! The store as the rest of the backend sees it: one trait, two implementations. SQLite
//! ([`Store`], one file, the `all` role) and PostgreSQL ([`super::postgres::PgStore`], shared
//! by the ingest, detect and api roles of a cluster) answer the same calls with the same
//! results; `backend/tests/store_backends.rs` runs the same scenarios against both.
//!
//! Every method takes `&mut self`: a PostgreSQL client needs it, and each process keeps its
//! own store handle per task (ingest's behind a mutex, detection's on its thread).

use dcwatch_detect::{checkpoint::Checkpoint, profiles::Changes};
use dcwatch_entity::{Domain, Object};
use dcwatch_proto::v1::{Activity, Alert, DirectoryDelta, HealthEvent, alert::Classification};

use dcwatch_telemetry::health::Issue;

use super::{
    ActivityRef, AlertQuery, Closed, Excluded, Exclusion, ExclusionKind, Found, HistoryEntry,
    NewActivity, ProtocolCount, Query, Recorded, SensorState, Store, StoreError, Stored,
    StoredActivity, StoredEvent, StoredIssue, StoredUser, is_derived,
};

/// The detection cursor of the `all` role: the last activity row judged.
pub const ACTIVITY_CURSOR: &str = "activity_cursor";

/// What the backend asks of its store.
pub trait Storage: Send + std::fmt::Debug {
    /// The highest sequence stored for `sensor_id` (0 for none).
    fn stored_through(&mut self, sensor_id: &str) -> Result<u64, StoreError>;
    /// The spool instance that numbered the sensor's `stored_through` (empty: none known).
    fn spool_instance(&mut self, sensor_id: &str) -> Result<String, StoreError>;
    /// Records a sensor's hello (its version and when it was seen).
    fn sensor_seen(
        &mut self,
        sensor_id: &str,
        version: &str,
        now_ns: i64,
    ) -> Result<(), StoreError>;
    /// Stores a batch's activities and directory deltas and advances the sensor's
    /// `stored_through` to `sequence`, in one transaction; a batch at or below
    /// `stored_through` is a duplicate and writes nothing.
    fn store_batch_with_directory(
        &mut self,
        sensor_id: &str,
        spool_instance: &str,
        sequence: u64,
        activities: &[Activity],
        directory: &[DirectoryDelta],
    ) -> Result<Stored, StoreError>;
    /// Records a batch that could not be stored and moves `stored_through` past it.
    fn refuse_batch(
        &mut self,
        sensor_id: &str,
        spool_instance: &str,
        sequence: u64,
        reason: &str,
        now_ns: i64,
    ) -> Result<Stored, StoreError>;
    fn store_health(&mut self, sensor_id: &str, event: &HealthEvent) -> Result<(), StoreError>;
    /// Keeps the latest counters a sensor sent, as a JSON object.
    fn store_counters(&mut self, sensor_id: &str, counters_json: &str) -> Result<(), StoreError>;
    /// Deletes activities older than `before_ns`; returns how many.
    fn prune(&mut self, before_ns: i64) -> Result<u64, StoreError>;
    /// Deletes the oldest activities until the store fits `max_bytes`; how many. SQLite
    /// measures its file's used pages, PostgreSQL the bytes its activities hold
    /// (`postgres/cold.rs`, `StoredBytes`).
    fn prune_to_budget(&mut self, max_bytes: u64) -> Result<u64, StoreError>;
    /// Moves activities stored before `before_ns` into compressed blocks ([`super::blocks`]);
    /// safe when several nodes sharing a PostgreSQL store run it at once.
    fn compact(&mut self, before_ns: i64) -> Result<super::Compacted, StoreError>;
    /// The activities `query` selects, by time, then sensor, then sequence, then position.
    fn activities(
        &mut self,
        query: &Query,
        each: &mut dyn FnMut(StoredActivity) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    fn add_token(&mut self, name: &str, token: &str, now_ns: i64) -> Result<(), StoreError>;
    fn tokens(&mut self) -> Result<Vec<(String, i64)>, StoreError>;
    fn revoke_token(&mut self, name: &str) -> Result<bool, StoreError>;
    fn token_name(&mut self, token: &str) -> Result<Option<String>, StoreError>;

    /// Upserts what detection raised (keyed by the alert's id, so a redelivered activity
    /// updates its alert rather than raising a second), writes partition `checkpoint.0`'s
    /// checkpoint (what its profiles learned, its windows' journal), and moves the detection
    /// cursor named `cursor.0` to `cursor.1`, in one transaction. For each alert: whether it
    /// may be emitted.
    fn save_alerts(
        &mut self,
        alerts: &[Alert],
        checkpoint: (u32, &Checkpoint),
        cursor: (&str, i64),
        applied_history: i64,
        now_ns: i64,
    ) -> Result<Vec<bool>, StoreError>;
    /// A partition's stored profiles: (key, bytes).
    fn load_profiles(&mut self, partition: u32) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// A partition's windows: its journal segments (number, bytes), in order.
    fn load_windows(&mut self, partition: u32) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;
    /// The partitions that have profiles.
    fn profile_partitions(&mut self) -> Result<Vec<u32>, StoreError>;
    /// Writes what a partition's profiles learned outside a chunk (an analyst's teaching).
    fn save_profiles(&mut self, partition: u32, changes: &Changes) -> Result<(), StoreError>;
    /// "Close and exclude" after a close as `classification` ([`Excluded::on_close`]).
    /// `None`: no such alert.
    fn exclude_alert(
        &mut self,
        id: &str,
        classification: Classification,
        actor: &str,
        now_ns: i64,
    ) -> Result<Option<Excluded>, StoreError>;
    /// Alerts whose behaviour an analyst taught, with when (the latest time).
    fn taught_alerts(&mut self) -> Result<Vec<(Alert, i64)>, StoreError>;
    /// A detection cursor (`None` before it was first set).
    fn detection_state(&mut self, name: &str) -> Result<Option<i64>, StoreError>;
    fn set_detection_state(&mut self, name: &str, value: i64) -> Result<(), StoreError>;
    /// The last activity row stored (0 for none).
    fn last_activity_row(&mut self) -> Result<i64, StoreError>;
    /// Up to `limit` activities stored after row `cursor`, in the order they were stored.
    fn activities_after(
        &mut self,
        cursor: i64,
        limit: usize,
    ) -> Result<Vec<NewActivity>, StoreError>;
    /// The alerts `query` selects, latest evidence first.
    fn alerts(&mut self, query: &AlertQuery) -> Result<Vec<Alert>, StoreError>;
    /// Open alerts, and those closed at or after `closed_since_ns`.
    fn alerts_to_restore(&mut self, closed_since_ns: i64) -> Result<Vec<Alert>, StoreError>;
    fn close_alert(
        &mut self,
        id: &str,
        classification: Classification,
        actor: &str,
        comment: &str,
        now_ns: i64,
    ) -> Result<Closed, StoreError>;
    /// Adds a comment to an alert's history; false when there is no such alert.
    fn comment_alert(
        &mut self,
        id: &str,
        actor: &str,
        text: &str,
        now_ns: i64,
    ) -> Result<bool, StoreError> {
        self.note_alert(id, "comment", actor, text, now_ns)
    }
    /// Adds a history row (`comment`, `assigned`) to an alert; false when there is none.
    fn note_alert(
        &mut self,
        id: &str,
        event: &str,
        actor: &str,
        text: &str,
        now_ns: i64,
    ) -> Result<bool, StoreError>;
    /// Reopens a closed alert (an analyst's); false when there is no closed alert `id`.
    fn reopen_alert(&mut self, id: &str, actor: &str, now_ns: i64) -> Result<bool, StoreError>;
    /// One alert's history, or with `alert_id` empty every row after `after`.
    fn alert_history(
        &mut self,
        alert_id: &str,
        after: i64,
    ) -> Result<Vec<HistoryEntry>, StoreError>;
    fn last_history_row(&mut self) -> Result<i64, StoreError>;
    fn add_exclusion(
        &mut self,
        type_name: &str,
        kind: ExclusionKind,
        value: &str,
        comment: &str,
        now_ns: i64,
    ) -> Result<i64, StoreError>;
    fn remove_exclusion(&mut self, id: i64) -> Result<bool, StoreError>;
    fn exclusions(&mut self) -> Result<Vec<Exclusion>, StoreError>;

    /// The activity `sensor_id` sent at `position` of its batch `sequence`.
    fn activity_at(
        &mut self,
        sensor_id: &str,
        sequence: u64,
        position: u64,
    ) -> Result<Option<Activity>, StoreError>;
    /// The activities at `refs`, in their order, `None` where there is none: what
    /// [`Self::activity_at`] answers for each, read together (an alert's evidence).
    fn activities_at(
        &mut self,
        refs: &[ActivityRef<'_>],
    ) -> Result<Vec<Option<Activity>>, StoreError>;
    /// The activities `query` selects, newest first, each with its position in its batch,
    /// until `each` returns false.
    fn newest_activities(
        &mut self,
        query: &Query,
        each: &mut dyn FnMut(StoredActivity, u64) -> bool,
    ) -> Result<(), StoreError>;
    /// Per protocol, how many activities `query` selects, and the first and last times.
    fn activity_counts(&mut self, query: &Query) -> Result<Vec<ProtocolCount>, StoreError>;
    /// Every sensor with its state and how many issues it has open.
    fn sensors(&mut self) -> Result<Vec<SensorState>, StoreError>;
    /// Point health events, newest first, at most `limit`; with `sensor_id`, its only.
    fn health_events(
        &mut self,
        sensor_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError>;
    /// Records every sensor's latest counters at `now_ns`, keeping `keep` samples per sensor.
    fn sample_counters(&mut self, now_ns: i64, keep: i64) -> Result<(), StoreError>;
    /// A sensor's sampled counters, newest first, at most `limit`: (time, JSON object).
    fn counter_samples(
        &mut self,
        sensor_id: &str,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, StoreError>;
    /// Accounts and addresses seen that start with `prefix`, and computers alerts name so.
    fn search(&mut self, prefix: &str, limit: usize) -> Result<Found, StoreError>;
    /// Adds a console user; false when the name exists (in any case).
    fn add_user(
        &mut self,
        name: &str,
        role: &str,
        hash: &str,
        now_ns: i64,
    ) -> Result<bool, StoreError>;
    /// The console user named `name` (in any case).
    fn user(&mut self, name: &str) -> Result<Option<StoredUser>, StoreError>;
    /// The console users' names and roles.
    fn users(&mut self) -> Result<Vec<(String, String)>, StoreError>;
    fn remove_user(&mut self, name: &str) -> Result<bool, StoreError>;

    /// Merges directory deltas that came with no batch (`directory import`), as `sensor_id`.
    fn apply_directory(
        &mut self,
        sensor_id: &str,
        deltas: &[DirectoryDelta],
    ) -> Result<(), StoreError>;
    /// The stored directory's domains and objects.
    fn directory(&mut self) -> Result<(Vec<Domain>, Vec<Object>), StoreError>;
    /// What changes whenever the stored directory does (its domains' count and latest update).
    fn directory_version(&mut self) -> Result<(i64, i64), StoreError>;

    /// Records an issue a sensor (or the backend) opened or closed: an open issue is inserted
    /// unless one of its kind and subject is open already (its detail is then updated); a
    /// closed one closes the open one at its end time.
    fn record_issue(&mut self, sensor_id: &str, issue: &Issue) -> Result<Recorded, StoreError>;
    /// Issues, newest first; with `sensor_id`, that sensor's only; `open_only`: still open.
    fn issues(
        &mut self,
        sensor_id: Option<&str>,
        open_only: bool,
    ) -> Result<Vec<StoredIssue>, StoreError>;
    /// Every sensor with the last time it was heard from (unix ns) and its version.
    fn sensors_seen(&mut self) -> Result<Vec<(String, i64, String)>, StoreError>;
    /// Marks `sensor_id` as heard from at `now_ns` (any message on its stream).
    fn sensor_heard(&mut self, sensor_id: &str, now_ns: i64) -> Result<(), StoreError>;

    /// Closes, at `now_ns`, the issues open for `sensor_id` that the sensor no longer has open
    /// (`open`, its list after a reconnection). Issues the backend derives are left alone.
    /// Returns the issues closed.
    fn reconcile_issues(
        &mut self,
        sensor_id: &str,
        open: &[Issue],
        now_ns: u64,
    ) -> Result<Vec<Issue>, StoreError> {
        let stale: Vec<Issue> = self
            .issues(Some(sensor_id), true)?
            .into_iter()
            .map(|stored| stored.issue)
            .filter(|issue| !is_derived(issue.kind))
            .filter(|issue| {
                !open
                    .iter()
                    .any(|still| still.kind == issue.kind && still.subject == issue.subject)
            })
            .collect();
        let mut closed = Vec::with_capacity(stale.len());
        for mut issue in stale {
            issue.end_ns = Some(now_ns.max(issue.start_ns));
            self.record_issue(sensor_id, &issue)?;
            closed.push(issue);
        }
        Ok(closed)
    }
}

/// The SQLite store answers through its own methods.
impl Storage for Store {
    fn stored_through(&mut self, sensor_id: &str) -> Result<u64, StoreError> {
        Self::stored_through(self, sensor_id)
    }
    fn spool_instance(&mut self, sensor_id: &str) -> Result<String, StoreError> {
        Self::spool_instance(self, sensor_id)
    }
    fn sensor_seen(
        &mut self,
        sensor_id: &str,
        version: &str,
        now_ns: i64,
    ) -> Result<(), StoreError> {
        Self::sensor_seen(self, sensor_id, version, now_ns)
    }
    fn store_batch_with_directory(
        &mut self,
        sensor_id: &str,
        spool_instance: &str,
        sequence: u64,
        activities: &[Activity],
        directory: &[DirectoryDelta],
    ) -> Result<Stored, StoreError> {
        Self::store_batch_with_directory(
            self,
            sensor_id,
            spool_instance,
            sequence,
            activities,
            directory,
        )
    }
    fn refuse_batch(
        &mut self,
        sensor_id: &str,
        spool_instance: &str,
        sequence: u64,
        reason: &str,
        now_ns: i64,
    ) -> Result<Stored, StoreError> {
        Self::refuse_batch(self, sensor_id, spool_instance, sequence, reason, now_ns)
    }
    fn store_health(&mut self, sensor_id: &str, event: &HealthEvent) -> Result<(), StoreError> {
        Self::store_health(self, sensor_id, event)
    }
    fn store_counters(&mut self, sensor_id: &str, counters_json: &str) -> Result<(), StoreError> {
        Self::store_counters(self, sensor_id, counters_json)
    }
    fn prune(&mut self, before_ns: i64) -> Result<u64, StoreError> {
        Self::prune(self, before_ns)
    }
    fn prune_to_budget(&mut self, max_bytes: u64) -> Result<u64, StoreError> {
        Self::prune_to_budget(self, max_bytes)
    }
    fn compact(&mut self, before_ns: i64) -> Result<super::Compacted, StoreError> {
        Self::compact(self, before_ns)
    }
    fn activities(
        &mut self,
        query: &Query,
        each: &mut dyn FnMut(StoredActivity) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        Self::activities(self, query, each)
    }
    fn add_token(&mut self, name: &str, token: &str, now_ns: i64) -> Result<(), StoreError> {
        Self::add_token(self, name, token, now_ns)
    }
    fn tokens(&mut self) -> Result<Vec<(String, i64)>, StoreError> {
        Self::tokens(self)
    }
    fn revoke_token(&mut self, name: &str) -> Result<bool, StoreError> {
        Self::revoke_token(self, name)
    }
    fn token_name(&mut self, token: &str) -> Result<Option<String>, StoreError> {
        Self::token_name(self, token)
    }
    fn save_alerts(
        &mut self,
        alerts: &[Alert],
        checkpoint: (u32, &Checkpoint),
        cursor: (&str, i64),
        applied_history: i64,
        now_ns: i64,
    ) -> Result<Vec<bool>, StoreError> {
        Self::save_alerts_at(self, alerts, checkpoint, cursor, applied_history, now_ns)
    }
    fn load_profiles(&mut self, partition: u32) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Self::load_profiles(self, partition)
    }
    fn load_windows(&mut self, partition: u32) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        Self::load_windows(self, partition)
    }
    fn profile_partitions(&mut self) -> Result<Vec<u32>, StoreError> {
        Self::profile_partitions(self)
    }
    fn save_profiles(&mut self, partition: u32, changes: &Changes) -> Result<(), StoreError> {
        Self::save_profiles(self, partition, changes)
    }
    fn exclude_alert(
        &mut self,
        id: &str,
        classification: Classification,
        actor: &str,
        now_ns: i64,
    ) -> Result<Option<Excluded>, StoreError> {
        Self::exclude_alert(self, id, classification, actor, now_ns)
    }
    fn taught_alerts(&mut self) -> Result<Vec<(Alert, i64)>, StoreError> {
        Self::taught_alerts(self)
    }
    fn detection_state(&mut self, name: &str) -> Result<Option<i64>, StoreError> {
        Self::detection_state(self, name)
    }
    fn set_detection_state(&mut self, name: &str, value: i64) -> Result<(), StoreError> {
        Self::set_detection_state(self, name, value)
    }
    fn last_activity_row(&mut self) -> Result<i64, StoreError> {
        Self::last_activity_row(self)
    }
    fn activities_after(
        &mut self,
        cursor: i64,
        limit: usize,
    ) -> Result<Vec<NewActivity>, StoreError> {
        Self::activities_after(self, cursor, limit)
    }
    fn alerts(&mut self, query: &AlertQuery) -> Result<Vec<Alert>, StoreError> {
        Self::alerts(self, query)
    }
    fn alerts_to_restore(&mut self, closed_since_ns: i64) -> Result<Vec<Alert>, StoreError> {
        Self::alerts_to_restore(self, closed_since_ns)
    }
    fn close_alert(
        &mut self,
        id: &str,
        classification: Classification,
        actor: &str,
        comment: &str,
        now_ns: i64,
    ) -> Result<Closed, StoreError> {
        Self::close_alert(self, id, classification, actor, comment, now_ns)
    }
    fn note_alert(
        &mut self,
        id: &str,
        event: &str,
        actor: &str,
        text: &str,
        now_ns: i64,
    ) -> Result<bool, StoreError> {
        Self::note_alert(self, id, event, actor, text, now_ns)
    }
    fn reopen_alert(&mut self, id: &str, actor: &str, now_ns: i64) -> Result<bool, StoreError> {
        Self::reopen_alert(self, id, actor, now_ns)
    }
    fn alert_history(
        &mut self,
        alert_id: &str,
        after: i64,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        Self::alert_history(self, alert_id, after)
    }
    fn last_history_row(&mut self) -> Result<i64, StoreError> {
        Self::last_history_row(self)
    }
    fn add_exclusion(
        &mut self,
        type_name: &str,
        kind: ExclusionKind,
        value: &str,
        comment: &str,
        now_ns: i64,
    ) -> Result<i64, StoreError> {
        Self::add_exclusion(self, type_name, kind, value, comment, now_ns)
    }
    fn remove_exclusion(&mut self, id: i64) -> Result<bool, StoreError> {
        Self::remove_exclusion(self, id)
    }
    fn exclusions(&mut self) -> Result<Vec<Exclusion>, StoreError> {
        Self::exclusions(self)
    }
    fn activity_at(
        &mut self,
        sensor_id: &str,
        sequence: u64,
        position: u64,
    ) -> Result<Option<Activity>, StoreError> {
        Self::activity_at(self, sensor_id, sequence, position)
    }
    fn activities_at(
        &mut self,
        refs: &[ActivityRef<'_>],
    ) -> Result<Vec<Option<Activity>>, StoreError> {
        Self::activities_at(self, refs)
    }
    fn newest_activities(
        &mut self,
        query: &Query,
        each: &mut dyn FnMut(StoredActivity, u64) -> bool,
    ) -> Result<(), StoreError> {
        Self::newest_activities(self, query, each)
    }
    fn activity_counts(&mut self, query: &Query) -> Result<Vec<ProtocolCount>, StoreError> {
        Self::activity_counts(self, query)
    }
    fn sensors(&mut self) -> Result<Vec<SensorState>, StoreError> {
        Self::sensors(self)
    }
    fn health_events(
        &mut self,
        sensor_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        Self::health_events(self, sensor_id, limit)
    }
    fn sample_counters(&mut self, now_ns: i64, keep: i64) -> Result<(), StoreError> {
        Self::sample_counters(self, now_ns, keep)
    }
    fn counter_samples(
        &mut self,
        sensor_id: &str,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        Self::counter_samples(self, sensor_id, limit)
    }
    fn search(&mut self, prefix: &str, limit: usize) -> Result<Found, StoreError> {
        Self::search(self, prefix, limit)
    }
    fn add_user(
        &mut self,
        name: &str,
        role: &str,
        hash: &str,
        now_ns: i64,
    ) -> Result<bool, StoreError> {
        Self::add_user(self, name, role, hash, now_ns)
    }
    fn user(&mut self, name: &str) -> Result<Option<StoredUser>, StoreError> {
        Self::user(self, name)
    }
    fn users(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        Self::users(self)
    }
    fn remove_user(&mut self, name: &str) -> Result<bool, StoreError> {
        Self::remove_user(self, name)
    }
    fn apply_directory(
        &mut self,
        sensor_id: &str,
        deltas: &[DirectoryDelta],
    ) -> Result<(), StoreError> {
        Self::apply_directory(self, sensor_id, deltas)
    }
    fn directory(&mut self) -> Result<(Vec<Domain>, Vec<Object>), StoreError> {
        crate::directory::read(self)
    }
    fn directory_version(&mut self) -> Result<(i64, i64), StoreError> {
        crate::directory::sqlite_version(self)
    }
    fn record_issue(&mut self, sensor_id: &str, issue: &Issue) -> Result<Recorded, StoreError> {
        Self::record_issue(self, sensor_id, issue)
    }
    fn issues(
        &mut self,
        sensor_id: Option<&str>,
        open_only: bool,
    ) -> Result<Vec<StoredIssue>, StoreError> {
        Self::issues(self, sensor_id, open_only)
    }
    fn sensors_seen(&mut self) -> Result<Vec<(String, i64, String)>, StoreError> {
        Self::sensors_seen(self)
    }
    fn sensor_heard(&mut self, sensor_id: &str, now_ns: i64) -> Result<(), StoreError> {
        Self::sensor_heard(self, sensor_id, now_ns)
    }
}

/// A store shared by the tasks of one process (ingest's streams, housekeeping).
pub type SharedStore = std::sync::Arc<std::sync::Mutex<Box<dyn Storage>>>;

/// The configured store: PostgreSQL when `[cluster] postgres_url` is set, else SQLite in the
/// data directory. Blocks (connecting): call it off the async runtime's threads.
pub fn open(config: &crate::config::Config) -> Result<Box<dyn Storage>, StoreError> {
    if config.cluster.postgres_url.is_empty() {
        Ok(Box::new(Store::open(&config.data_dir)?))
    } else {
        Ok(Box::new(super::postgres::PgStore::connect_with(
            &config.cluster.postgres_url,
            config.cluster.postgres_ca.as_deref(),
        )?))
    }
}

/// [`open`], for commands that read: a SQLite store must exist already (a mistyped data
/// directory would otherwise make an empty store and report nothing).
pub fn open_existing(config: &crate::config::Config) -> Result<Box<dyn Storage>, StoreError> {
    if config.cluster.postgres_url.is_empty() && !config.data_dir.join(super::FILE_NAME).exists() {
        return Err(StoreError::Missing(config.data_dir.clone()));
    }
    open(config)
}
