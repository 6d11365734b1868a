//! Alerts in the store: the alert as detection last made it, its status (owned by whoever
//! changed it last: detection reopening it, an analyst closing it), its history, the
//! exclusions `alerts exclude` adds, and detection's place in the activities.
//!
//! Every function takes and returns plain values (alerts, ids, times), so a PostgreSQL store
//! can implement the same ones.
//!
//! Analysts and detection run in different processes: `alerts close` writes the alert's new
//! status and a `closed` history row; the detection loop reads history rows past the last it
//! applied and closes the alert in its engine. Until it has, an update detection makes to that
//! alert keeps the analyst's status (and is not emitted): the close wins over evidence the
//! engine judged before it knew of the close.

use dcwatch_detect::{checkpoint::Checkpoint, learning::Behaviour};
use dcwatch_proto::v1::{
    Activity, Alert,
    alert::{Classification, Status},
};
use prost::Message as _;
use rusqlite::{OptionalExtension as _, params, params_from_iter, types::Value};

use super::{Store, StoreError, timestamp_ns, to_u64};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    primary_key TEXT NOT NULL,
    status TEXT NOT NULL,
    classification TEXT NOT NULL,
    closed_ns INTEGER,
    severity INTEGER NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    count INTEGER NOT NULL,
    updated_ns INTEGER NOT NULL,
    alert BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_end ON alerts (end_ns);
CREATE INDEX IF NOT EXISTS alerts_status ON alerts (status, end_ns);
CREATE INDEX IF NOT EXISTS alerts_type ON alerts (type, end_ns);
CREATE TABLE IF NOT EXISTS alert_history (
    id INTEGER PRIMARY KEY,
    alert_id TEXT NOT NULL,
    time_ns INTEGER NOT NULL,
    event TEXT NOT NULL,
    classification TEXT NOT NULL DEFAULT '',
    actor TEXT NOT NULL DEFAULT '',
    text TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS alert_history_alert ON alert_history (alert_id, id);
CREATE TABLE IF NOT EXISTS alert_exclusions (
    id INTEGER PRIMARY KEY,
    type TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    created_ns INTEGER NOT NULL,
    comment TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS detection_state (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
";

/// The actor of history rows detection writes.
pub const DETECTION: &str = "detection";

/// Which alerts to list; every filter set must match.
#[derive(Clone, Debug, Default)]
pub struct AlertQuery {
    /// Alerts whose latest evidence is at or after this (Unix ns).
    pub since_ns: Option<i64>,
    /// Alerts whose first evidence is before this (Unix ns).
    pub until_ns: Option<i64>,
    pub status: Option<Status>,
    pub severity: Option<i32>,
    pub type_name: Option<String>,
    pub id: Option<String>,
    /// Alerts naming this entity (`alert_entities`): an account by name, a computer by name
    /// or address, in any case.
    pub entity: Option<EntityKey>,
    /// Alerts naming an entity whose name or address contains this, in any case.
    pub entity_containing: Option<String>,
    /// At most this many (the latest).
    pub limit: Option<usize>,
}

/// An entity as the console keys it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntityKey {
    pub kind: EntityKind,
    /// An account's name (`DOMAIN\name` as alerts name it); a computer's name or address.
    pub key: String,
}

/// Accounts (and groups) or computers: the two kinds of entity pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntityKind {
    Account,
    Computer,
}

impl EntityKind {
    /// The kind of an alert's entity in its role.
    pub fn of(role: dcwatch_proto::v1::alert_entity::Role) -> Self {
        use dcwatch_proto::v1::alert_entity::Role;
        match role {
            Role::SourceAccount
            | Role::AttackedAccount
            | Role::CompromisedAccount
            | Role::Group => Self::Account,
            _ => Self::Computer,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Account => "account",
            Self::Computer => "computer",
        }
    }
}

/// A value bound to a query both stores build the same way.
#[derive(Clone, Debug)]
pub(crate) enum Param {
    Int(i64),
    Text(String),
}

/// The SQL dialect a shared query is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// `column` equal to the placeholder, in any case.
    pub(crate) fn eq_nocase(self, column: &str) -> String {
        match self {
            Self::Sqlite => format!("{column} = ? COLLATE NOCASE"),
            Self::Postgres => format!("lower({column}) = lower(?)"),
        }
    }

    /// `column` LIKE the placeholder (escaped with `\`), in any case.
    pub(crate) fn like_nocase(self, column: &str) -> String {
        match self {
            Self::Sqlite => format!("{column} LIKE ? ESCAPE '\\'"),
            Self::Postgres => format!("lower({column}) LIKE lower(?) ESCAPE '\\'"),
        }
    }
}

/// `text` with LIKE's wildcards (and the escape) escaped.
pub(crate) fn like_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Conditions joined by AND, each `?` numbered after its value (a condition's several `?`
/// share its one value), in a dialect's placeholders.
#[derive(Debug)]
pub(crate) struct Filter {
    dialect: Dialect,
    conditions: Vec<String>,
    pub(crate) values: Vec<Param>,
}

impl Filter {
    pub(crate) fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            conditions: Vec::new(),
            values: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, sql: &str, value: Param) {
        self.values.push(value);
        let placeholder = self.placeholder(self.values.len());
        self.conditions.push(sql.replace('?', &placeholder));
    }

    /// The placeholder of the `n`th value.
    pub(crate) fn placeholder(&self, n: usize) -> String {
        match self.dialect {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
        }
    }

    /// `WHERE ...`, or nothing without conditions.
    pub(crate) fn clause(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.conditions.join(" AND "))
        }
    }
}

impl AlertQuery {
    /// The query's `SELECT` of `ALERT_COLUMNS` in `dialect`, latest evidence first, and its
    /// values: one builder for both stores.
    pub(crate) fn select(&self, dialect: Dialect) -> (String, Vec<Param>) {
        let mut filter = Filter::new(dialect);
        if let Some(since) = self.since_ns {
            filter.push("end_ns >= ?", Param::Int(since));
        }
        if let Some(until) = self.until_ns {
            filter.push("start_ns < ?", Param::Int(until));
        }
        if let Some(status) = self.status {
            filter.push("status = ?", Param::Text(status_name(status).to_owned()));
        }
        if let Some(severity) = self.severity {
            // As BIGINT: PostgreSQL's column is an INTEGER, the value an i64.
            filter.push("CAST(severity AS BIGINT) = ?", Param::Int(severity.into()));
        }
        if let Some(type_name) = &self.type_name {
            filter.push("type = ?", Param::Text(type_name.clone()));
        }
        if let Some(id) = &self.id {
            filter.push("id = ?", Param::Text(id.clone()));
        }
        if let Some(entity) = &self.entity {
            // The kind is one of two fixed names: written in the SQL, so one row must match
            // both the kind and the name or address.
            let name = dialect.eq_nocase("name");
            filter.push(
                &format!(
                    "id IN (SELECT alert_id FROM alert_entities WHERE kind = '{}'
                     AND ({name} OR address = lower(?)))",
                    entity.kind.name()
                ),
                Param::Text(entity.key.clone()),
            );
        }
        if let Some(part) = &self.entity_containing {
            let (name, address) = (dialect.like_nocase("name"), dialect.like_nocase("address"));
            filter.push(
                &format!("id IN (SELECT alert_id FROM alert_entities WHERE {name} OR {address})"),
                Param::Text(format!("%{}%", like_escaped(part))),
            );
        }
        let limit = self
            .limit
            .map(|limit| format!(" LIMIT {limit}"))
            .unwrap_or_default();
        (
            format!(
                "SELECT {ALERT_COLUMNS} FROM alerts {} ORDER BY end_ns DESC, id{limit}",
                filter.clause()
            ),
            filter.values,
        )
    }
}

/// One line of an alert's history.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HistoryEntry {
    pub id: i64,
    pub alert_id: String,
    pub time_ns: i64,
    /// `raised`, `reopened`, `closed`, `comment`, `excluded`, `taught`.
    pub event: String,
    pub classification: String,
    pub actor: String,
    pub text: String,
}

/// What closing did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    Closed,
    AlreadyClosed,
    NoSuchAlert,
}

/// What excluding a closed alert did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Excluded {
    /// The entity's profile learns the alert's behaviour.
    Taught,
    /// The alert's primary entity is excluded from its detection.
    Entity(ExclusionKind, String),
}

impl Excluded {
    /// What "close and exclude" does to `alert`: an alert of a detection that learns (its
    /// details carry the behaviour, Part II) teaches the profile (a `taught` history row the
    /// detection loop applies), so the same behaviour stops alerting and new behaviour of the
    /// same entity still does; any other excludes its primary entity from its detection.
    pub fn of(alert: &Alert) -> Self {
        let details = alert
            .details
            .iter()
            .map(|detail| (detail.name.as_str(), detail.value.as_str()));
        if Behaviour::from_details(details).is_some() {
            return Self::Taught;
        }
        Self::entity(alert)
    }

    /// What "close and exclude" does on a close as `classification`: only an allowed
    /// behaviour (B-TP) is learned ([`Self::of`]); a true or false positive's entity is
    /// excluded.
    pub fn on_close(alert: &Alert, classification: Classification) -> Self {
        if classification == Classification::Btp {
            Self::of(alert)
        } else {
            Self::entity(alert)
        }
    }

    /// Excluding `alert`'s primary entity from its detection (an account; an address as a
    /// one-address subnet; else a computer).
    pub fn entity(alert: &Alert) -> Self {
        let (kind, value) = match alert.primary_key.split_once(':') {
            Some(("account", value)) => (ExclusionKind::Account, value),
            Some((_, value)) if value.parse::<std::net::IpAddr>().is_ok() => {
                (ExclusionKind::Subnet, value)
            }
            Some((_, value)) => (ExclusionKind::Computer, value),
            None => (ExclusionKind::Computer, alert.primary_key.as_str()),
        };
        Self::Entity(kind, value.to_owned())
    }

    /// The history row's event.
    pub fn event(&self) -> &'static str {
        match self {
            Self::Taught => "taught",
            Self::Entity(..) => "excluded",
        }
    }

    /// The history row's text.
    pub fn text(&self, alert: &Alert) -> String {
        match self {
            Self::Taught => "the behaviour is learned for its entity".to_owned(),
            Self::Entity(kind, value) => format!("{} {value} from {}", kind.name(), alert.r#type),
        }
    }
}

/// Writes what excluding `alert` does (an exclusion row for an entity) and its history row,
/// in the caller's transaction: `alerts close --exclude` and the console's "close and exclude".
fn record_exclusion(
    connection: &rusqlite::Connection,
    alert: &Alert,
    excluded: &Excluded,
    actor: &str,
    now_ns: i64,
) -> rusqlite::Result<()> {
    if let Excluded::Entity(kind, value) = excluded {
        connection.execute(
            "INSERT INTO alert_exclusions (type, kind, value, created_ns, comment)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                alert.r#type,
                kind.name(),
                value,
                now_ns,
                format!("closed {} by {actor}", alert.id)
            ],
        )?;
    }
    connection.execute(
        "INSERT INTO alert_history (alert_id, time_ns, event, actor, text)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            alert.id,
            now_ns,
            excluded.event(),
            actor,
            excluded.text(alert)
        ],
    )?;
    Ok(())
}

/// Who an exclusion names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExclusionKind {
    Account,
    Computer,
    Subnet,
}

impl ExclusionKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Account => "account",
            Self::Computer => "computer",
            Self::Subnet => "subnet",
        }
    }

    pub(super) fn from_name(name: &str) -> Option<Self> {
        match name {
            "account" => Some(Self::Account),
            "computer" => Some(Self::Computer),
            "subnet" => Some(Self::Subnet),
            _ => None,
        }
    }
}

/// An exclusion `alerts exclude` added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exclusion {
    pub id: i64,
    /// The alert type it applies to; empty: every detection.
    pub type_name: String,
    pub kind: ExclusionKind,
    pub value: String,
    pub created_ns: i64,
    pub comment: String,
}

/// A stored activity as detection reads it, with its row id (detection's cursor).
#[derive(Clone, Debug)]
pub struct NewActivity {
    pub row: i64,
    pub sensor_id: String,
    pub sequence: u64,
    pub position: u64,
    pub activity: Activity,
}

impl NewActivity {
    /// The evidence's `activity_ref`: `SENSOR:SEQUENCE:POSITION`.
    pub fn reference(&self) -> String {
        format!("{}:{}:{}", self.sensor_id, self.sequence, self.position)
    }
}

pub(super) fn status_name(status: Status) -> &'static str {
    status.as_str_name()
}

pub(super) fn classification_name(classification: Classification) -> &'static str {
    match classification {
        Classification::Unspecified => "",
        other => other.as_str_name(),
    }
}

pub(super) fn time_of(time: Option<&pbjson_types::Timestamp>) -> i64 {
    time.map_or(0, |time| timestamp_ns(time.seconds, time.nanos))
}

fn timestamp(ns: i64) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp {
        seconds: ns.div_euclid(1_000_000_000),
        nanos: i32::try_from(ns.rem_euclid(1_000_000_000)).unwrap_or(0),
    }
}

/// An alert row back as an alert: the blob, with the status columns over it. The row's columns
/// are `ALERT_COLUMNS`, in that order (the console reads alerts through it too).
pub(crate) fn decode_row(
    row: &rusqlite::Row<'_>,
) -> rusqlite::Result<Result<Alert, (String, prost::DecodeError)>> {
    let id: String = row.get(0)?;
    let blob: Vec<u8> = row.get(1)?;
    let status: String = row.get(2)?;
    let classification: String = row.get(3)?;
    let closed: Option<i64> = row.get(4)?;
    Ok(with_status(&blob, &status, &classification, closed).map_err(|source| (id, source)))
}

/// An alert's blob with its status columns laid over it: both stores keep the status (which
/// analysts change) beside the alert detection made.
pub(super) fn with_status(
    blob: &[u8],
    status: &str,
    classification: &str,
    closed_ns: Option<i64>,
) -> Result<Alert, prost::DecodeError> {
    let mut alert = Alert::decode(blob)?;
    alert.status = Status::from_str_name(status).unwrap_or(Status::Open).into();
    alert.classification = Classification::from_str_name(classification)
        .unwrap_or(Classification::Unspecified)
        .into();
    alert.closed = closed_ns.map(timestamp);
    Ok(alert)
}

pub(super) const ALERT_COLUMNS: &str = "id, alert, status, classification, closed_ns";

impl Store {
    /// Writes what detection raised, `partition`'s checkpoint (what its profiles learned, its
    /// windows' journal), and moves its cursor named `cursor_name` (the `all` role's is the last
    /// activity row judged), in one transaction: a restart judges again exactly what the stored
    /// profiles and windows have not taken in.
    /// For each alert, whether it may be emitted:
    /// false when an analyst closed it after `applied_history` (detection has not seen the
    /// close yet, so the stored status stays the analyst's).
    pub fn save_alerts_at(
        &mut self,
        alerts: &[Alert],
        (partition, checkpoint): (u32, &Checkpoint),
        (cursor_name, cursor): (&str, i64),
        applied_history: i64,
        now_ns: i64,
    ) -> Result<Vec<bool>, StoreError> {
        let transaction = self.write_transaction()?;
        let mut emit = Vec::with_capacity(alerts.len());
        for alert in alerts {
            let stored: Option<String> = transaction
                .query_row(
                    "SELECT status FROM alerts WHERE id = ?1",
                    [&alert.id],
                    |row| row.get(0),
                )
                .optional()?;
            let pending_close: bool = transaction.query_row(
                "SELECT EXISTS (SELECT 1 FROM alert_history WHERE alert_id = ?1 AND id > ?2
                 AND event = 'closed')",
                params![alert.id, applied_history],
                |row| row.get(0),
            )?;
            let blob = alert.encode_to_vec();
            let status = status_name(alert.status());
            if pending_close {
                transaction.execute(
                    "UPDATE alerts SET severity = ?2, start_ns = ?3, end_ns = ?4, count = ?5,
                     updated_ns = ?6, alert = ?7 WHERE id = ?1",
                    params![
                        alert.id,
                        alert.severity,
                        time_of(alert.start.as_ref()),
                        time_of(alert.end.as_ref()),
                        i64::try_from(alert.count).unwrap_or(i64::MAX),
                        now_ns,
                        blob
                    ],
                )?;
                super::console::write_entities(&transaction, alert)?;
                emit.push(false);
                continue;
            }
            transaction.execute(
                "INSERT INTO alerts (id, type, primary_key, status, classification, closed_ns,
                 severity, start_ns, end_ns, count, updated_ns, alert)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT (id) DO UPDATE SET status = ?4, classification = ?5, closed_ns = ?6,
                 severity = ?7, start_ns = ?8, end_ns = ?9, count = ?10, updated_ns = ?11,
                 alert = ?12",
                params![
                    alert.id,
                    alert.r#type,
                    alert.primary_key,
                    status,
                    classification_name(alert.classification()),
                    alert.closed.as_ref().map(|time| time_of(Some(time))),
                    alert.severity,
                    time_of(alert.start.as_ref()),
                    time_of(alert.end.as_ref()),
                    i64::try_from(alert.count).unwrap_or(i64::MAX),
                    now_ns,
                    blob
                ],
            )?;
            let event = match stored.as_deref() {
                None => Some("raised"),
                Some(before) if before != status && alert.status() == Status::Open => {
                    Some("reopened")
                }
                Some(_) => None,
            };
            if let Some(event) = event {
                transaction.execute(
                    "INSERT INTO alert_history (alert_id, time_ns, event, actor, text)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![alert.id, now_ns, event, DETECTION, alert.description],
                )?;
            }
            super::console::write_entities(&transaction, alert)?;
            emit.push(true);
        }
        super::profiles::write(&transaction, partition, &checkpoint.profiles)?;
        super::windows::write(&transaction, partition, &checkpoint.windows)?;
        set_state(&transaction, cursor_name, cursor)?;
        transaction.commit()?;
        Ok(emit)
    }

    /// A detection cursor (`None` before detection first set it).
    pub fn detection_state(&self, name: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .connection
            .query_row(
                "SELECT value FROM detection_state WHERE name = ?1",
                [name],
                |row| row.get(0),
            )
            .optional()?)
    }

    pub fn set_detection_state(&self, name: &str, value: i64) -> Result<(), StoreError> {
        set_state(&self.connection, name, value)?;
        Ok(())
    }

    /// The last activity row stored (0 for none).
    pub fn last_activity_row(&self) -> Result<i64, StoreError> {
        Ok(self
            .connection
            .query_row("SELECT COALESCE(MAX(id), 0) FROM activities", [], |row| {
                row.get(0)
            })?)
    }

    /// Up to `limit` activities stored after row `cursor`, in the order they were stored.
    pub fn activities_after(
        &self,
        cursor: i64,
        limit: usize,
    ) -> Result<Vec<NewActivity>, StoreError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT id, sensor_id, sequence, position, activity FROM activities WHERE id > ?1
             ORDER BY id LIMIT ?2",
        )?;
        let mut rows =
            statement.query(params![cursor, i64::try_from(limit).unwrap_or(i64::MAX)])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let bytes: Vec<u8> = row.get(4)?;
            let activity = Activity::decode(bytes.as_slice())
                .map_err(|source| StoreError::Decode { id, source })?;
            out.push(NewActivity {
                row: id,
                sensor_id: row.get(1)?,
                sequence: to_u64(row.get(2)?),
                position: to_u64(row.get(3)?),
                activity,
            });
        }
        Ok(out)
    }

    /// The alerts `query` selects, latest evidence first.
    pub fn alerts(&self, query: &AlertQuery) -> Result<Vec<Alert>, StoreError> {
        let (sql, values) = query.select(Dialect::Sqlite);
        self.select_alerts(&sql, values.into_iter().map(sqlite_value).collect())
    }

    /// What detection takes back at start: open alerts, and those closed at or after
    /// `closed_since_ns` (they may still reopen).
    pub fn alerts_to_restore(&self, closed_since_ns: i64) -> Result<Vec<Alert>, StoreError> {
        self.select_alerts(
            &format!(
                "SELECT {ALERT_COLUMNS} FROM alerts WHERE status = 'OPEN' OR closed_ns >= ?1
                 ORDER BY end_ns"
            ),
            vec![Value::Integer(closed_since_ns)],
        )
    }

    fn select_alerts(&self, sql: &str, values: Vec<Value>) -> Result<Vec<Alert>, StoreError> {
        let mut statement = self.connection.prepare(sql)?;
        let rows = statement.query_map(params_from_iter(values), decode_row)?;
        let mut out = Vec::new();
        for row in rows {
            match row? {
                Ok(alert) => out.push(alert),
                Err((id, source)) => return Err(StoreError::AlertDecode { id, source }),
            }
        }
        Ok(out)
    }

    /// Closes an alert with an analyst's classification, and says so in its history.
    pub fn close_alert(
        &mut self,
        id: &str,
        classification: Classification,
        actor: &str,
        comment: &str,
        now_ns: i64,
    ) -> Result<Closed, StoreError> {
        let transaction = self.write_transaction()?;
        let status: Option<String> = transaction
            .query_row("SELECT status FROM alerts WHERE id = ?1", [id], |row| {
                row.get(0)
            })
            .optional()?;
        match status.as_deref() {
            None => return Ok(Closed::NoSuchAlert),
            Some(status) if status == status_name(Status::Closed) => {
                return Ok(Closed::AlreadyClosed);
            }
            Some(_) => {}
        }
        transaction.execute(
            "UPDATE alerts SET status = 'CLOSED', classification = ?2, closed_ns = ?3,
             updated_ns = ?3 WHERE id = ?1",
            params![id, classification_name(classification), now_ns],
        )?;
        transaction.execute(
            "INSERT INTO alert_history (alert_id, time_ns, event, classification, actor, text)
             VALUES (?1, ?2, 'closed', ?3, ?4, ?5)",
            params![
                id,
                now_ns,
                classification_name(classification),
                actor,
                comment
            ],
        )?;
        transaction.commit()?;
        Ok(Closed::Closed)
    }

    /// The history of one alert, oldest first; or, with `alert_id` empty, every row after
    /// `after` (detection reads closes this way).
    pub fn alert_history(
        &self,
        alert_id: &str,
        after: i64,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT id, alert_id, time_ns, event, classification, actor, text FROM alert_history
             WHERE (?1 = '' OR alert_id = ?1) AND id > ?2 ORDER BY id",
        )?;
        let rows = statement.query_map(params![alert_id, after], |row| {
            Ok(HistoryEntry {
                id: row.get(0)?,
                alert_id: row.get(1)?,
                time_ns: row.get(2)?,
                event: row.get(3)?,
                classification: row.get(4)?,
                actor: row.get(5)?,
                text: row.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The last history row (0 for none).
    pub fn last_history_row(&self) -> Result<i64, StoreError> {
        Ok(self.connection.query_row(
            "SELECT COALESCE(MAX(id), 0) FROM alert_history",
            [],
            |row| row.get(0),
        )?)
    }

    /// "Close and exclude" after a close as `classification` ([`Excluded::on_close`]).
    /// `None`: no such alert.
    pub fn exclude_alert(
        &mut self,
        id: &str,
        classification: Classification,
        actor: &str,
        now_ns: i64,
    ) -> Result<Option<Excluded>, StoreError> {
        let query = AlertQuery {
            id: Some(id.to_owned()),
            ..AlertQuery::default()
        };
        let Some(alert) = self.alerts(&query)?.into_iter().next() else {
            return Ok(None);
        };
        let excluded = Excluded::on_close(&alert, classification);
        let transaction = self.write_transaction()?;
        record_exclusion(&transaction, &alert, &excluded, actor, now_ns)?;
        transaction.commit()?;
        Ok(Some(excluded))
    }

    /// Alerts whose behaviour an analyst taught, with when: an engine built later (a restart,
    /// a partition moving here) teaches its profiles them again (learning is idempotent).
    pub fn taught_alerts(&mut self) -> Result<Vec<(Alert, i64)>, StoreError> {
        let taught: Vec<(String, i64)> = {
            let mut statement = self.connection.prepare_cached(
                "SELECT alert_id, MAX(time_ns) FROM alert_history WHERE event = 'taught'
                 GROUP BY alert_id",
            )?;
            let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut alerts = Vec::with_capacity(taught.len());
        for (id, time_ns) in taught {
            let query = AlertQuery {
                id: Some(id),
                ..AlertQuery::default()
            };
            alerts.extend(
                self.alerts(&query)?
                    .into_iter()
                    .map(|alert| (alert, time_ns)),
            );
        }
        Ok(alerts)
    }

    pub fn add_exclusion(
        &self,
        type_name: &str,
        kind: ExclusionKind,
        value: &str,
        comment: &str,
        now_ns: i64,
    ) -> Result<i64, StoreError> {
        self.connection.execute(
            "INSERT INTO alert_exclusions (type, kind, value, created_ns, comment)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![type_name, kind.name(), value, now_ns, comment],
        )?;
        Ok(self.connection.last_insert_rowid())
    }

    pub fn remove_exclusion(&self, id: i64) -> Result<bool, StoreError> {
        Ok(self
            .connection
            .execute("DELETE FROM alert_exclusions WHERE id = ?1", [id])?
            > 0)
    }

    pub fn exclusions(&self) -> Result<Vec<Exclusion>, StoreError> {
        let mut statement = self.connection.prepare(
            "SELECT id, type, kind, value, created_ns, comment FROM alert_exclusions ORDER BY id",
        )?;
        let rows = statement.query_map([], |row| {
            let kind: String = row.get(2)?;
            Ok((
                kind,
                Exclusion {
                    id: row.get(0)?,
                    type_name: row.get(1)?,
                    kind: ExclusionKind::Account,
                    value: row.get(3)?,
                    created_ns: row.get(4)?,
                    comment: row.get(5)?,
                },
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (kind, mut exclusion) = row?;
            // A kind this version does not know (written by a newer one) is skipped.
            if let Some(kind) = ExclusionKind::from_name(&kind) {
                exclusion.kind = kind;
                out.push(exclusion);
            }
        }
        Ok(out)
    }
}

/// A shared query's value as SQLite binds it.
pub(super) fn sqlite_value(param: Param) -> Value {
    match param {
        Param::Int(value) => Value::Integer(value),
        Param::Text(value) => Value::Text(value),
    }
}

fn set_state(connection: &rusqlite::Connection, name: &str, value: i64) -> rusqlite::Result<()> {
    connection.execute(
        "INSERT INTO detection_state (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = ?2",
        params![name, value],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use dcwatch_proto::v1::alert::Trigger;

    use super::*;

    /// A chunk that left the partition's state as it was.
    const NO_PROFILES: (u32, &Checkpoint) = (0, &Checkpoint::NOTHING);
    use crate::store::ACTIVITY_CURSOR;

    const SECOND: i64 = 1_000_000_000;

    fn alert(id: &str, end_s: i64, status: Status) -> Alert {
        Alert {
            id: id.to_owned(),
            r#type: "dcsync".to_owned(),
            primary_key: format!("src:{id}"),
            status: status.into(),
            start: Some(timestamp(end_s * SECOND)),
            end: Some(timestamp(end_s * SECOND)),
            count: 1,
            trigger: Trigger::New.into(),
            description: format!("alert {id}"),
            ..Alert::default()
        }
    }

    fn events(store: &Store, id: &str) -> Vec<String> {
        store
            .alert_history(id, 0)
            .expect("history")
            .into_iter()
            .map(|entry| entry.event)
            .collect()
    }

    #[test]
    fn alerts_upsert_close_reopen_and_restore() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let mut store = Store::open(directory.path()).expect("open");
        assert_eq!(
            store.detection_state(ACTIVITY_CURSOR).expect("cursor"),
            None
        );
        let first = alert("a", 100, Status::Open);
        assert_eq!(
            store
                .save_alerts_at(
                    &[first.clone(), alert("b", 50, Status::Open)],
                    NO_PROFILES,
                    (ACTIVITY_CURSOR, 7),
                    0,
                    1
                )
                .expect("save"),
            [true, true]
        );
        assert_eq!(
            store.detection_state(ACTIVITY_CURSOR).expect("cursor"),
            Some(7)
        );
        let listed = store.alerts(&AlertQuery::default()).expect("list");
        assert_eq!(
            listed
                .iter()
                .map(|alert| alert.id.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"],
            "latest evidence first"
        );
        assert_eq!(listed[0], first);

        assert_eq!(
            store
                .close_alert("a", Classification::Btp, "ana", "pentest", 200 * SECOND)
                .expect("close"),
            Closed::Closed
        );
        assert_eq!(
            store
                .close_alert("a", Classification::Fp, "ana", "", 201 * SECOND)
                .expect("close"),
            Closed::AlreadyClosed
        );
        assert_eq!(
            store
                .close_alert("zz", Classification::Fp, "ana", "", 201 * SECOND)
                .expect("close"),
            Closed::NoSuchAlert
        );
        let closed = store
            .alerts(&AlertQuery {
                status: Some(Status::Closed),
                ..AlertQuery::default()
            })
            .expect("list");
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].classification(), Classification::Btp);
        assert_eq!(closed[0].closed, Some(timestamp(200 * SECOND)));

        // Detection, not yet aware of the close (it applied history up to row 2, the two
        // `raised`), updates the alert: the analyst's status stays, nothing is emitted.
        let mut update = alert("a", 150, Status::Open);
        update.count = 2;
        update.trigger = Trigger::Update.into();
        assert_eq!(
            store
                .save_alerts_at(&[update.clone()], NO_PROFILES, (ACTIVITY_CURSOR, 8), 2, 2)
                .expect("save"),
            [false]
        );
        let kept = store
            .alerts(&AlertQuery {
                id: Some("a".to_owned()),
                ..AlertQuery::default()
            })
            .expect("list");
        assert_eq!(kept[0].status(), Status::Closed);
        assert_eq!(kept[0].count, 2, "the evidence is kept");
        // Once it has applied the close (row 3), its reopening stands.
        assert_eq!(
            store
                .save_alerts_at(&[update], NO_PROFILES, (ACTIVITY_CURSOR, 9), 3, 3)
                .expect("save"),
            [true]
        );
        assert_eq!(events(&store, "a"), ["raised", "closed", "reopened"]);
        assert!(
            store
                .note_alert("a", "comment", "ana", "seen", 4)
                .expect("comment")
        );
        assert!(
            !store
                .note_alert("zz", "comment", "ana", "seen", 4)
                .expect("comment")
        );
        assert_eq!(
            events(&store, "a").last().map(String::as_str),
            Some("comment")
        );

        // Restore: open ones, and closed ones closed since the given time.
        store
            .close_alert("b", Classification::Tp, "ana", "", 300 * SECOND)
            .expect("close");
        let restore = |since: i64| -> Vec<String> {
            store
                .alerts_to_restore(since * SECOND)
                .expect("restore")
                .into_iter()
                .map(|alert| alert.id)
                .collect()
        };
        assert_eq!(restore(299), ["b", "a"]);
        assert_eq!(restore(301), ["a"]);
        assert_eq!(store.last_history_row().expect("rows"), 6);
    }

    #[test]
    fn ingest_and_detection_write_through_their_own_connections_at_once() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let mut ingest = Store::open(directory.path()).expect("open");
        let mut detection = Store::open(directory.path()).expect("open");
        let writer = std::thread::spawn(move || {
            for sequence in 1..=300 {
                ingest
                    .store_batch("s1", "spool", sequence, &[Activity::default()])
                    .expect("a batch is stored while detection writes");
            }
        });
        for round in 0..300 {
            let alert = alert(&format!("a{}", round % 7), round, Status::Open);
            detection
                .save_alerts_at(&[alert], NO_PROFILES, (ACTIVITY_CURSOR, round), 0, round)
                .expect("alerts are saved while ingest writes");
        }
        writer.join().expect("the writer");
        assert_eq!(detection.last_activity_row().expect("rows"), 300);
    }

    #[test]
    fn exclusions_are_added_listed_and_removed() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let store = Store::open(directory.path()).expect("open");
        let first = store
            .add_exclusion("", ExclusionKind::Subnet, "10.0.0.0/8", "scanners", 1)
            .expect("add");
        store
            .add_exclusion("dcsync", ExclusionKind::Account, "CORP\\aadsync", "", 2)
            .expect("add");
        let listed = store.exclusions().expect("list");
        assert_eq!(listed.len(), 2);
        assert_eq!(
            (
                listed[1].type_name.as_str(),
                listed[1].kind,
                listed[1].value.as_str()
            ),
            ("dcsync", ExclusionKind::Account, "CORP\\aadsync")
        );
        assert!(store.remove_exclusion(first).expect("remove"));
        assert!(!store.remove_exclusion(first).expect("remove"));
        assert_eq!(store.exclusions().expect("list").len(), 1);
    }
}
