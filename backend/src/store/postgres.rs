//! The shared store of a cluster: PostgreSQL, behind the same [`Storage`] trait as SQLite.
//!
//! The `postgres` crate (the blocking face of `tokio-postgres`) fits the trait as it is:
//! synchronous, called from blocking threads (ingest's `spawn_blocking`, detection's own
//! thread, the command line), like rusqlite. Its queries are SQLite's, in PostgreSQL's
//! dialect; the schema is in [`migrations`].
//!
//! Two ingest nodes may hold streams of the same sensor for a moment (a sensor reconnecting
//! to the other one): a batch's transaction locks the sensor's row first (`FOR UPDATE`), so
//! the check against `stored_through` and the insert are one step, as SQLite's immediate
//! transactions make them.

mod alerts;
mod cold;
mod console;
mod directory;
mod health;
mod key_groups;
pub mod migrations;
mod profiles;
pub mod tls;
mod windows;

use ::postgres::{Client, NoTls, Transaction, types::ToSql};
use dcwatch_detect::{checkpoint::Checkpoint, profiles::Changes};
use dcwatch_entity::{Domain, Object};
use dcwatch_proto::{
    json::{endpoint_ip, protocol_name},
    v1::{Activity, Alert, DirectoryDelta, HealthEvent, alert::Classification},
};
use dcwatch_telemetry::health::Issue;
use prost::Message as _;

use super::{
    ActivityRef, AlertQuery, Closed, Dialect, Excluded, Exclusion, ExclusionKind, Found,
    HistoryEntry, NewActivity, ProtocolCount, Query, Recorded, SensorState, Storage, StoreError,
    Stored, StoredActivity, StoredEvent, StoredIssue, StoredUser, time_ns, timestamp_ns, to_i64,
    to_u64, token_hash,
};

/// A connection to the shared store; a connection the server closed (PostgreSQL restarted)
/// is made again at the next call.
pub struct PgStore {
    /// As the `postgres` crate takes it (`tls::ssl_mode`).
    url: String,
    /// TLS, when the URL's `sslmode` asks for it.
    tls: Option<tls::RustlsConnect>,
    /// Always `Some` but while dropping.
    client: Option<Client>,
    /// What this handle keeps of the compacted blocks it read last.
    blocks: super::cold::BlockCache,
}

/// The blocking client closes its connection on its own runtime when dropped, which tokio
/// forbids on a runtime's thread: there, it is dropped on a thread of its own.
impl Drop for PgStore {
    fn drop(&mut self) {
        if let Some(client) = self.client.take()
            && tokio::runtime::Handle::try_current().is_ok()
        {
            std::thread::spawn(move || drop(client));
        }
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: never printed.
        formatter.write_str("PgStore")
    }
}

impl PgStore {
    /// Connects to `url` (a `postgres://` URL or `key=value` string) and checks that its schema
    /// is the one this version knows.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, None)
    }

    /// [`Self::connect`], with TLS verified against the CA file `ca` when the URL's
    /// `sslmode` asks for TLS (`tls`).
    pub fn connect_with(url: &str, ca: Option<&std::path::Path>) -> Result<Self, StoreError> {
        let mut store = Self::connect_unchecked(url, ca)?;
        migrations::check_current(store.client()?)?;
        Ok(store)
    }

    /// Connects without looking at the schema (`store migrate`).
    pub fn connect_unchecked(url: &str, ca: Option<&std::path::Path>) -> Result<Self, StoreError> {
        let (mode, url) = tls::ssl_mode(url);
        let tls = tls::connector(mode, ca)?;
        let client = Self::open(&url, tls.as_ref())?;
        Ok(Self {
            url,
            tls,
            client: Some(client),
            blocks: super::cold::BlockCache::default(),
        })
    }

    fn open(url: &str, tls: Option<&tls::RustlsConnect>) -> Result<Client, StoreError> {
        Ok(match tls {
            Some(tls) => Client::connect(url, tls.clone())?,
            None => Client::connect(url, NoTls)?,
        })
    }

    /// The connection, made again if the server closed it.
    fn client(&mut self) -> Result<&mut Client, StoreError> {
        Ok(self.reading()?.0)
    }

    /// The connection (made again if the server closed it) and what it keeps of the
    /// compacted blocks: what reading both tiers needs.
    fn reading(&mut self) -> Result<(&mut Client, &super::cold::BlockCache), StoreError> {
        match &mut self.client {
            Some(client) if !client.is_closed() => {}
            slot => *slot = Some(Self::open(&self.url, self.tls.as_ref())?),
        }
        let client = self
            .client
            .as_mut()
            .ok_or_else(|| StoreError::Output(std::io::Error::other("the store is closed")))?;
        Ok((client, &self.blocks))
    }

    /// Applies the migrations not applied yet; their versions.
    pub fn migrate(&mut self, now_ns: i64) -> Result<Vec<i32>, StoreError> {
        migrations::migrate(self.client()?, now_ns)
    }
}

/// The sensor's `stored_through`, its row locked for the rest of the transaction.
fn lock_sensor(transaction: &mut Transaction<'_>, sensor_id: &str) -> Result<u64, StoreError> {
    transaction.execute(
        "INSERT INTO sensors (sensor_id) VALUES ($1) ON CONFLICT (sensor_id) DO NOTHING",
        &[&sensor_id],
    )?;
    let row = transaction.query_one(
        "SELECT stored_through FROM sensors WHERE sensor_id = $1 FOR UPDATE",
        &[&sensor_id],
    )?;
    Ok(to_u64(row.get(0)))
}

fn set_through(
    transaction: &mut Transaction<'_>,
    sensor_id: &str,
    spool_instance: &str,
    sequence: u64,
) -> Result<(), StoreError> {
    transaction.execute(
        "UPDATE sensors SET stored_through = $2, spool_instance = $3 WHERE sensor_id = $1",
        &[&sensor_id, &to_i64(sequence), &spool_instance],
    )?;
    Ok(())
}

/// One batch's activities as columns, inserted with one statement (`UNNEST`).
#[derive(Default)]
struct Columns {
    time_ns: Vec<i64>,
    position: Vec<i64>,
    protocol: Vec<String>,
    account: Vec<Option<String>>,
    domain: Vec<Option<String>>,
    src_ip: Vec<Option<String>>,
    dst_ip: Vec<Option<String>>,
    activity: Vec<Vec<u8>>,
}

impl Columns {
    fn of(activities: &[Activity]) -> Self {
        let mut columns = Self::default();
        for (position, activity) in activities.iter().enumerate() {
            let account = activity.account.as_ref();
            let non_empty = |text: &str| (!text.is_empty()).then(|| text.to_owned());
            columns.time_ns.push(time_ns(activity));
            columns
                .position
                .push(i64::try_from(position).unwrap_or(i64::MAX));
            columns
                .protocol
                .push(protocol_name(activity.body.as_ref()).to_owned());
            columns
                .account
                .push(account.and_then(|account| non_empty(&account.name)));
            columns
                .domain
                .push(account.and_then(|account| non_empty(&account.domain)));
            columns.src_ip.push(
                activity
                    .src
                    .as_ref()
                    .and_then(endpoint_ip)
                    .map(|ip| ip.to_string()),
            );
            columns.dst_ip.push(
                activity
                    .dst
                    .as_ref()
                    .and_then(endpoint_ip)
                    .map(|ip| ip.to_string()),
            );
            columns.activity.push(activity.encode_to_vec());
        }
        columns
    }
}

impl super::cold::Compacting for PgStore {
    fn write<R>(
        &mut self,
        work: impl FnOnce(&mut dyn super::cold::TierWriter) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut transaction = self.client()?.transaction()?;
        cold::lock(&mut transaction)?;
        let done = work(&mut cold::Pg(&mut transaction))?;
        transaction.commit()?;
        Ok(done)
    }
}

impl Storage for PgStore {
    fn stored_through(&mut self, sensor_id: &str) -> Result<u64, StoreError> {
        Ok(self
            .client()?
            .query_opt(
                "SELECT stored_through FROM sensors WHERE sensor_id = $1",
                &[&sensor_id],
            )?
            .map_or(0, |row| to_u64(row.get(0))))
    }

    fn spool_instance(&mut self, sensor_id: &str) -> Result<String, StoreError> {
        Ok(self
            .client()?
            .query_opt(
                "SELECT spool_instance FROM sensors WHERE sensor_id = $1",
                &[&sensor_id],
            )?
            .map(|row| row.get(0))
            .unwrap_or_default())
    }

    fn sensor_seen(
        &mut self,
        sensor_id: &str,
        version: &str,
        now_ns: i64,
    ) -> Result<(), StoreError> {
        self.client()?.execute(
            "INSERT INTO sensors (sensor_id, version, last_seen_ns) VALUES ($1, $2, $3)
             ON CONFLICT (sensor_id) DO UPDATE SET version = $2, last_seen_ns = $3",
            &[&sensor_id, &version, &now_ns],
        )?;
        Ok(())
    }

    fn store_batch_with_directory(
        &mut self,
        sensor_id: &str,
        spool_instance: &str,
        sequence: u64,
        activities: &[Activity],
        directory: &[DirectoryDelta],
    ) -> Result<Stored, StoreError> {
        let mut transaction = self.client()?.transaction()?;
        if sequence <= lock_sensor(&mut transaction, sensor_id)? {
            return Ok(Stored::Duplicate);
        }
        if !activities.is_empty() {
            let columns = Columns::of(activities);
            transaction.execute(
                "INSERT INTO activities (time_ns, sensor_id, sequence, position, protocol,
                 account, domain, src_ip, dst_ip, activity)
                 SELECT time_ns, $2, $3, position, protocol, account, domain, src_ip, dst_ip,
                 activity FROM UNNEST($1::BIGINT[], $4::BIGINT[], $5::TEXT[], $6::TEXT[],
                 $7::TEXT[], $8::TEXT[], $9::TEXT[], $10::BYTEA[])
                 AS batch (time_ns, position, protocol, account, domain, src_ip, dst_ip,
                 activity)",
                &[
                    &columns.time_ns,
                    &sensor_id,
                    &to_i64(sequence),
                    &columns.position,
                    &columns.protocol,
                    &columns.account,
                    &columns.domain,
                    &columns.src_ip,
                    &columns.dst_ip,
                    &columns.activity,
                ],
            )?;
        }
        directory::apply(
            &mut transaction,
            sensor_id,
            directory,
            crate::directory::now_ns(),
        )?;
        set_through(&mut transaction, sensor_id, spool_instance, sequence)?;
        transaction.commit()?;
        Ok(Stored::New)
    }

    fn refuse_batch(
        &mut self,
        sensor_id: &str,
        spool_instance: &str,
        sequence: u64,
        reason: &str,
        now_ns: i64,
    ) -> Result<Stored, StoreError> {
        let mut transaction = self.client()?.transaction()?;
        if sequence <= lock_sensor(&mut transaction, sensor_id)? {
            return Ok(Stored::Duplicate);
        }
        transaction.execute(
            "INSERT INTO refused_batches (sensor_id, sequence, received_ns, reason)
             VALUES ($1, $2, $3, $4)",
            &[&sensor_id, &to_i64(sequence), &now_ns, &reason],
        )?;
        set_through(&mut transaction, sensor_id, spool_instance, sequence)?;
        transaction.commit()?;
        Ok(Stored::New)
    }

    fn store_health(&mut self, sensor_id: &str, event: &HealthEvent) -> Result<(), StoreError> {
        let time = event
            .time
            .as_ref()
            .map_or(0, |time| timestamp_ns(time.seconds, time.nanos));
        self.client()?.execute(
            "INSERT INTO health_events (sensor_id, time_ns, severity, kind, message)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &sensor_id,
                &time,
                &event.severity().as_str_name(),
                &event.kind,
                &event.message,
            ],
        )?;
        Ok(())
    }

    fn store_counters(&mut self, sensor_id: &str, counters_json: &str) -> Result<(), StoreError> {
        self.client()?.execute(
            "UPDATE sensors SET counters = $2 WHERE sensor_id = $1",
            &[&sensor_id, &counters_json],
        )?;
        Ok(())
    }

    fn prune(&mut self, before_ns: i64) -> Result<u64, StoreError> {
        super::cold::prune(self, before_ns)
    }

    fn prune_to_budget(&mut self, max_bytes: u64) -> Result<u64, StoreError> {
        cold::prune_to_budget(self.client()?, max_bytes)
    }

    fn compact(&mut self, before_ns: i64) -> Result<crate::store::Compacted, StoreError> {
        super::cold::compact(self, before_ns)
    }

    fn activities(
        &mut self,
        query: &Query,
        each: &mut dyn FnMut(StoredActivity) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let filter = query.filter(Dialect::Postgres);
        let clause = filter.clause();
        let values = console::bound(filter.values);
        let parameters: Vec<&(dyn ToSql + Sync)> = values.iter().map(AsRef::as_ref).collect();
        // A portal fetched in pages: a query over millions of rows holds a page at a time.
        let (client, blocks) = self.reading()?;
        let mut transaction = client.transaction()?;
        let portal = transaction.bind(
            &format!(
                "SELECT id, sensor_id, sequence, position, activity FROM activities {clause}
                 ORDER BY time_ns, sensor_id, sequence, position"
            ),
            &parameters,
        )?;
        let mut page = std::collections::VecDeque::new();
        super::cold::merged(
            &mut cold::Pg(&mut transaction),
            blocks,
            query,
            |tier| {
                if page.is_empty() {
                    page.extend(tier.0.query_portal(&portal, PAGE)?);
                }
                page.pop_front().as_ref().map(cold::hot_row).transpose()
            },
            each,
        )?;
        transaction.commit()?;
        Ok(())
    }

    fn add_token(&mut self, name: &str, token: &str, now_ns: i64) -> Result<(), StoreError> {
        let inserted = self.client()?.execute(
            "INSERT INTO tokens (name, sha256, created_ns) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING",
            &[&name, &token_hash(token).as_slice(), &now_ns],
        )?;
        if inserted == 0 {
            return Err(StoreError::TokenExists(name.to_owned()));
        }
        Ok(())
    }

    fn tokens(&mut self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(self
            .client()?
            .query("SELECT name, created_ns FROM tokens ORDER BY name", &[])?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect())
    }

    fn revoke_token(&mut self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .client()?
            .execute("DELETE FROM tokens WHERE name = $1", &[&name])?
            > 0)
    }

    fn token_name(&mut self, token: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .client()?
            .query_opt(
                "SELECT name FROM tokens WHERE sha256 = $1",
                &[&token_hash(token).as_slice()],
            )?
            .map(|row| row.get(0)))
    }

    fn save_alerts(
        &mut self,
        alerts: &[Alert],
        checkpoint: (u32, &Checkpoint),
        cursor: (&str, i64),
        applied_history: i64,
        now_ns: i64,
    ) -> Result<Vec<bool>, StoreError> {
        alerts::save(
            self.client()?,
            alerts,
            checkpoint,
            cursor,
            applied_history,
            now_ns,
        )
    }

    fn load_profiles(&mut self, partition: u32) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        profiles::load(self.client()?, partition)
    }

    fn load_windows(&mut self, partition: u32) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        windows::load(self.client()?, partition)
    }

    fn profile_partitions(&mut self) -> Result<Vec<u32>, StoreError> {
        profiles::partitions(self.client()?)
    }

    fn save_profiles(&mut self, partition: u32, changes: &Changes) -> Result<(), StoreError> {
        profiles::save(self.client()?, partition, changes)
    }

    fn exclude_alert(
        &mut self,
        id: &str,
        classification: Classification,
        actor: &str,
        now_ns: i64,
    ) -> Result<Option<Excluded>, StoreError> {
        alerts::exclude(self.client()?, id, classification, actor, now_ns)
    }

    fn taught_alerts(&mut self) -> Result<Vec<(Alert, i64)>, StoreError> {
        alerts::taught(self.client()?)
    }

    fn detection_state(&mut self, name: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .client()?
            .query_opt(
                "SELECT value FROM detection_state WHERE name = $1",
                &[&name],
            )?
            .map(|row| row.get(0)))
    }

    fn set_detection_state(&mut self, name: &str, value: i64) -> Result<(), StoreError> {
        alerts::set_state(self.client()?, name, value)
    }

    fn last_activity_row(&mut self) -> Result<i64, StoreError> {
        Ok(self
            .client()?
            .query_one("SELECT COALESCE(MAX(id), 0) FROM activities", &[])?
            .get(0))
    }

    fn activities_after(
        &mut self,
        cursor: i64,
        limit: usize,
    ) -> Result<Vec<NewActivity>, StoreError> {
        let rows = self.client()?.query(
            "SELECT id, sensor_id, sequence, position, activity FROM activities WHERE id > $1
             ORDER BY id LIMIT $2",
            &[&cursor, &i64::try_from(limit).unwrap_or(i64::MAX)],
        )?;
        rows.iter()
            .map(|row| {
                let id: i64 = row.get(0);
                let bytes: &[u8] = row.get(4);
                let activity =
                    Activity::decode(bytes).map_err(|source| StoreError::Decode { id, source })?;
                Ok(NewActivity {
                    row: id,
                    sensor_id: row.get(1),
                    sequence: to_u64(row.get(2)),
                    position: to_u64(row.get(3)),
                    activity,
                })
            })
            .collect()
    }

    fn alerts(&mut self, query: &AlertQuery) -> Result<Vec<Alert>, StoreError> {
        alerts::list(self.client()?, query)
    }

    fn alerts_to_restore(&mut self, closed_since_ns: i64) -> Result<Vec<Alert>, StoreError> {
        alerts::to_restore(self.client()?, closed_since_ns)
    }

    fn close_alert(
        &mut self,
        id: &str,
        classification: Classification,
        actor: &str,
        comment: &str,
        now_ns: i64,
    ) -> Result<Closed, StoreError> {
        alerts::close(self.client()?, id, classification, actor, comment, now_ns)
    }

    fn note_alert(
        &mut self,
        id: &str,
        event: &str,
        actor: &str,
        text: &str,
        now_ns: i64,
    ) -> Result<bool, StoreError> {
        console::note_alert(self.client()?, id, event, actor, text, now_ns)
    }

    fn reopen_alert(&mut self, id: &str, actor: &str, now_ns: i64) -> Result<bool, StoreError> {
        console::reopen_alert(self.client()?, id, actor, now_ns)
    }

    fn alert_history(
        &mut self,
        alert_id: &str,
        after: i64,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        alerts::history(self.client()?, alert_id, after)
    }

    fn last_history_row(&mut self) -> Result<i64, StoreError> {
        Ok(self
            .client()?
            .query_one("SELECT COALESCE(MAX(id), 0) FROM alert_history", &[])?
            .get(0))
    }

    fn add_exclusion(
        &mut self,
        type_name: &str,
        kind: ExclusionKind,
        value: &str,
        comment: &str,
        now_ns: i64,
    ) -> Result<i64, StoreError> {
        Ok(self
            .client()?
            .query_one(
                "INSERT INTO alert_exclusions (type, kind, value, created_ns, comment)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[&type_name, &kind.name(), &value, &now_ns, &comment],
            )?
            .get(0))
    }

    fn remove_exclusion(&mut self, id: i64) -> Result<bool, StoreError> {
        Ok(self
            .client()?
            .execute("DELETE FROM alert_exclusions WHERE id = $1", &[&id])?
            > 0)
    }

    fn exclusions(&mut self) -> Result<Vec<Exclusion>, StoreError> {
        alerts::exclusions(self.client()?)
    }

    fn activity_at(
        &mut self,
        sensor_id: &str,
        sequence: u64,
        position: u64,
    ) -> Result<Option<Activity>, StoreError> {
        let (client, blocks) = self.reading()?;
        console::activity_at(client, blocks, sensor_id, sequence, position)
    }

    fn activities_at(
        &mut self,
        refs: &[ActivityRef<'_>],
    ) -> Result<Vec<Option<Activity>>, StoreError> {
        let (client, blocks) = self.reading()?;
        console::activities_at(client, blocks, refs)
    }

    fn newest_activities(
        &mut self,
        query: &Query,
        each: &mut dyn FnMut(StoredActivity, u64) -> bool,
    ) -> Result<(), StoreError> {
        let (client, blocks) = self.reading()?;
        console::newest_activities(client, blocks, query, each)
    }

    fn activity_counts(&mut self, query: &Query) -> Result<Vec<ProtocolCount>, StoreError> {
        let (client, blocks) = self.reading()?;
        console::activity_counts(client, blocks, query)
    }

    fn sensors(&mut self) -> Result<Vec<SensorState>, StoreError> {
        console::sensors(self.client()?)
    }

    fn health_events(
        &mut self,
        sensor_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        console::health_events(self.client()?, sensor_id, limit)
    }

    fn sample_counters(&mut self, now_ns: i64, keep: i64) -> Result<(), StoreError> {
        console::sample_counters(self.client()?, now_ns, keep)
    }

    fn counter_samples(
        &mut self,
        sensor_id: &str,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        console::counter_samples(self.client()?, sensor_id, limit)
    }

    fn search(&mut self, prefix: &str, limit: usize) -> Result<Found, StoreError> {
        console::search(self.client()?, prefix, limit)
    }

    fn add_user(
        &mut self,
        name: &str,
        role: &str,
        hash: &str,
        now_ns: i64,
    ) -> Result<bool, StoreError> {
        console::add_user(self.client()?, name, role, hash, now_ns)
    }

    fn user(&mut self, name: &str) -> Result<Option<StoredUser>, StoreError> {
        console::user(self.client()?, name)
    }

    fn users(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        console::users(self.client()?)
    }

    fn remove_user(&mut self, name: &str) -> Result<bool, StoreError> {
        console::remove_user(self.client()?, name)
    }

    fn apply_directory(
        &mut self,
        sensor_id: &str,
        deltas: &[DirectoryDelta],
    ) -> Result<(), StoreError> {
        let mut transaction = self.client()?.transaction()?;
        directory::apply(
            &mut transaction,
            sensor_id,
            deltas,
            crate::directory::now_ns(),
        )?;
        transaction.commit()?;
        Ok(())
    }

    fn directory(&mut self) -> Result<(Vec<Domain>, Vec<Object>), StoreError> {
        directory::read(self.client()?)
    }

    fn directory_version(&mut self) -> Result<(i64, i64), StoreError> {
        let row = self.client()?.query_one(
            "SELECT COUNT(*), COALESCE(MAX(updated_ns), 0) FROM directory_domains",
            &[],
        )?;
        Ok((row.get(0), row.get(1)))
    }

    fn record_issue(&mut self, sensor_id: &str, issue: &Issue) -> Result<Recorded, StoreError> {
        health::record_issue(self.client()?, sensor_id, issue)
    }

    fn issues(
        &mut self,
        sensor_id: Option<&str>,
        open_only: bool,
    ) -> Result<Vec<StoredIssue>, StoreError> {
        health::issues(self.client()?, sensor_id, open_only)
    }

    fn sensors_seen(&mut self) -> Result<Vec<(String, i64, String)>, StoreError> {
        health::sensors_seen(self.client()?)
    }

    fn sensor_heard(&mut self, sensor_id: &str, now_ns: i64) -> Result<(), StoreError> {
        health::sensor_heard(self.client()?, sensor_id, now_ns)
    }
}

/// Rows fetched at a time by `activities`.
const PAGE: i32 = 1_000;
