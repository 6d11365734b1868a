//! The console's way into the store: alerts and their history, activities, sensors, health
//! events, users, and the directory snapshot.
//!
//! Alerts are the alert store's (`alerts`, `alert_history`, `alert_exclusions`: the alert's
//! prost blob with its status columns over it; history rows `raised`, `reopened`, `closed`,
//! `comment`, and here also `assigned`): what detection writes, the console reads and changes,
//! and a close or an exclusion made here reaches the running detection as one from the CLI.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    path::Path,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use dcwatch_entity::model::Object;
use dcwatch_proto::{
    json::{endpoint_text, protocol_name},
    v1::{
        Activity, Alert, AlertEntity,
        alert::{Category, Classification, Severity, Status},
    },
};
use prost::Message as _;
use rusqlite::{Connection, OptionalExtension as _, params, params_from_iter, types::Value};
use serde::Serialize;

use crate::{
    console::users,
    detection::DirectorySource,
    store::{Excluded, FILE_NAME, timestamp_ns},
};

const ALERTS: &str = "alerts";
const HISTORY: &str = "alert_history";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS console_sensor_counters (
    sensor_id TEXT NOT NULL,
    time_ns INTEGER NOT NULL,
    counters TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS console_sensor_counters_sensor
    ON console_sensor_counters (sensor_id, time_ns);
CREATE INDEX IF NOT EXISTS console_activities_ref ON activities (sensor_id, sequence, position);
";

/// Rows a list answers at most (the page says when there were more).
pub const MAX_ROWS: usize = 1000;
/// Alerts read for one timeline (filters that SQL cannot apply run on these).
pub const MAX_ALERTS_SCANNED: usize = 100_000;
/// Counter samples kept per sensor.
pub const MAX_COUNTER_SAMPLES: i64 = 10_080;
/// How often sensors' counters are sampled for the "over time" view.
pub const COUNTER_SAMPLE_INTERVAL: Duration = Duration::from_secs(60);
/// A sensor not heard from for this long is shown as disconnected (MDI: 10 minutes).
pub const DISCONNECTED_AFTER: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("store: alert {id} does not decode: {source}")]
    Decode {
        id: String,
        source: prost::DecodeError,
    },
    #[error(transparent)]
    User(#[from] users::UserError),
    #[error("store {path}: {message}")]
    Open { path: String, message: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("the alert report: {0}")]
    Report(String),
}

#[derive(Debug)]
pub struct Data {
    connection: Mutex<Connection>,
    /// The directory the store holds, as serve last loaded it.
    directory: Arc<DirectorySource>,
}

/// The timeline's filters; every one set must match.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct AlertFilter {
    /// OPEN or CLOSED.
    pub status: Option<String>,
    /// LOW, MEDIUM or HIGH.
    pub severity: Option<String>,
    /// RECONNAISSANCE, CREDENTIAL_ACCESS, ...
    pub category: Option<String>,
    /// The catalogue's name (dcsync).
    #[serde(rename = "type")]
    pub type_name: Option<String>,
    /// Any entity's name or address containing this (any case).
    pub entity: Option<String>,
    /// RFC 3339: alerts whose latest evidence is at or after it.
    pub since: Option<String>,
    /// RFC 3339: alerts whose first evidence is before it.
    pub until: Option<String>,
}

impl AlertFilter {
    fn nonempty(value: Option<&String>) -> Option<&str> {
        value
            .map(|value| value.trim())
            .filter(|value| !value.is_empty())
    }
}

/// One line of the timeline.
#[derive(Clone, Debug, Serialize)]
pub struct AlertRow {
    pub id: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub title: String,
    pub description: String,
    pub severity: String,
    pub category: String,
    pub status: String,
    pub classification: String,
    pub start: String,
    pub end: String,
    pub count: u64,
    pub entities: Vec<EntityRef>,
}

/// An entity as pages link it.
#[derive(Clone, Debug, Serialize)]
pub struct EntityRef {
    pub role: String,
    /// `account` or `computer`.
    pub kind: &'static str,
    /// What the entity page is keyed by: the account's name, the computer's name or address.
    pub key: String,
    pub name: String,
    pub address: String,
    pub certainty: String,
    pub method: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Counts {
    pub total: usize,
    pub by_status: BTreeMap<String, usize>,
    pub by_severity: BTreeMap<String, usize>,
    pub by_category: BTreeMap<String, usize>,
    pub by_type: BTreeMap<String, usize>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Timeline {
    pub alerts: Vec<AlertRow>,
    pub counts: Counts,
    /// More matched than `alerts` holds.
    pub truncated: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    pub time: String,
    /// `raised`, `reopened`, `closed`, `comment`, `assigned`.
    pub event: String,
    pub classification: String,
    pub actor: String,
    pub text: String,
}

/// An activity as the console shows it: the sensor's JSON line, and the columns pages need.
#[derive(Clone, Debug, Serialize)]
pub struct ActivityRow {
    pub reference: String,
    pub time: String,
    pub protocol: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub src: String,
    pub dst: String,
    pub account: String,
    pub source_computer: ComputerName,
    pub destination_computer: ComputerName,
    pub outcome: String,
    pub sensor_id: String,
    /// The whole activity in its JSON form.
    pub json: serde_json::Value,
}

/// A computer's NNR name, certainty and method.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ComputerName {
    pub name: String,
    pub certainty: String,
    pub method: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct AlertDetail {
    /// The alert in its proto JSON form.
    pub alert: serde_json::Value,
    pub row: AlertRow,
    pub assigned_to: String,
    pub history: Vec<HistoryEntry>,
    /// The evidence's activities found in the store, oldest first.
    pub evidence: Vec<ActivityRow>,
    /// Evidence the store no longer has (retention) or never had (offline replays).
    pub evidence_missing: usize,
}

/// Which activities of an entity to show.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct ActivityFilter {
    pub protocol: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct DirectoryView {
    pub dn: String,
    pub sid: String,
    pub sam_account_name: String,
    pub upn: String,
    pub dns_host_name: String,
    pub operating_system: String,
    pub kind: String,
    pub uac: Vec<String>,
    pub spns: Vec<String>,
    pub admin_count: bool,
    pub tags: Vec<TagView>,
    pub groups_direct: Vec<String>,
    pub groups_transitive: Vec<String>,
    /// The whole object as the directory snapshot has it.
    pub json: serde_json::Value,
}

#[derive(Clone, Debug, Serialize)]
pub struct TagView {
    pub name: String,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct EntityPage {
    /// `account` or `computer`.
    pub kind: &'static str,
    pub key: String,
    pub directory: Option<DirectoryView>,
    /// Tags the alerts carried for it (from the sensors' and detectors' view).
    pub alert_tags: Vec<TagView>,
    pub addresses: Vec<String>,
    pub activities: Vec<ActivityRow>,
    pub activities_truncated: bool,
    pub alerts: Vec<AlertRow>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SensorRow {
    pub sensor_id: String,
    pub version: String,
    pub last_seen: String,
    /// `connected` or `disconnected` (not heard from for 10 minutes).
    pub status: String,
    pub stored_through: u64,
    pub counters: serde_json::Value,
    pub open_issues: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct CounterSample {
    pub time: String,
    pub counters: serde_json::Value,
}

/// A health issue (open or closed, with its span) or a point event (sensors that predate
/// issues, and one-off events such as a reset sequence).
#[derive(Clone, Debug, Serialize)]
pub struct HealthRow {
    pub sensor_id: String,
    /// The issue's start, or the event's time.
    pub time: String,
    /// The issue's end; empty while open, and for an event.
    pub end: String,
    pub severity: String,
    pub kind: String,
    /// What the issue is about (an interface, a DC); empty: the sensor.
    pub subject: String,
    pub message: String,
    /// `open`, `closed`, or `event`.
    pub state: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct SearchResults {
    pub accounts: Vec<String>,
    pub computers: Vec<String>,
    pub addresses: Vec<String>,
}

fn lock(mutex: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
        })
}

/// RFC 3339 (UTC, milliseconds) of Unix nanoseconds.
pub fn rfc3339(ns: i64) -> String {
    if ns <= 0 {
        return String::new();
    }
    let time = std::time::UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns).unwrap_or(0));
    humantime::format_rfc3339_millis(time).to_string()
}

fn parse_time(text: Option<&str>) -> Option<i64> {
    let time = humantime::parse_rfc3339_weak(text?.trim()).ok()?;
    let since = time.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(since.as_nanos()).ok()
}

fn ts_ns(time: Option<&pbjson_types::Timestamp>) -> i64 {
    time.map_or(0, |time| timestamp_ns(time.seconds, time.nanos))
}

/// An enum's proto name without its type's prefix, or empty for unspecified.
fn enum_name(name: &str) -> String {
    if name.ends_with("UNSPECIFIED") {
        String::new()
    } else {
        name.to_owned()
    }
}

pub fn entity_ref(entity: &AlertEntity) -> EntityRef {
    use dcwatch_proto::v1::alert_entity::Role;
    let role = entity.role();
    let is_account = matches!(
        role,
        Role::SourceAccount | Role::AttackedAccount | Role::CompromisedAccount | Role::Group
    );
    let key = if is_account || entity.address.is_empty() {
        entity.name.clone()
    } else {
        entity.address.clone()
    };
    EntityRef {
        role: enum_name(role.as_str_name()),
        kind: if is_account { "account" } else { "computer" },
        key,
        name: entity.name.clone(),
        address: entity.address.clone(),
        certainty: enum_name(entity.certainty().as_str_name()),
        method: enum_name(entity.method().as_str_name()),
    }
}

pub fn alert_row(alert: &Alert) -> AlertRow {
    AlertRow {
        id: alert.id.clone(),
        type_name: alert.r#type.clone(),
        title: alert.title.clone(),
        description: alert.description.clone(),
        severity: enum_name(alert.severity().as_str_name()),
        category: enum_name(alert.category().as_str_name()),
        status: enum_name(alert.status().as_str_name()),
        classification: enum_name(alert.classification().as_str_name()),
        start: rfc3339(ts_ns(alert.start.as_ref())),
        end: rfc3339(ts_ns(alert.end.as_ref())),
        count: alert.count,
        entities: alert.entities.iter().map(entity_ref).collect(),
    }
}

fn computer_name(computer: Option<&dcwatch_proto::v1::Computer>) -> ComputerName {
    computer.map_or_else(ComputerName::default, |computer| ComputerName {
        name: computer.name.clone(),
        certainty: enum_name(computer.certainty().as_str_name()),
        method: enum_name(computer.method().as_str_name()),
    })
}

/// The activity's JSON line as a value (the sensor's own form).
fn activity_json(activity: &Activity) -> serde_json::Value {
    let mut line = Vec::new();
    let mut scratch = Vec::new();
    if dcwatch_proto::json::write_json_line(activity, &mut line, &mut scratch).is_err() {
        return serde_json::Value::Null;
    }
    serde_json::from_slice(&line).unwrap_or(serde_json::Value::Null)
}

pub fn activity_row(reference: String, activity: &Activity) -> ActivityRow {
    let json = activity_json(activity);
    let kind = json
        .get("type")
        .and_then(|kind| kind.as_str())
        .unwrap_or_default()
        .to_owned();
    let account = activity.account.as_ref().map_or(String::new(), |account| {
        if account.domain.is_empty() {
            account.name.clone()
        } else {
            format!("{}\\{}", account.domain, account.name)
        }
    });
    let outcome = activity.outcome.as_ref().map_or(String::new(), |outcome| {
        let status = enum_name(outcome.status().as_str_name());
        if outcome.name.is_empty() {
            status
        } else {
            format!("{status} {}", outcome.name)
        }
    });
    ActivityRow {
        reference,
        time: rfc3339(ts_ns(activity.time.as_ref())),
        protocol: protocol_name(activity.body.as_ref()).to_owned(),
        kind,
        src: endpoint_text(activity.src.as_ref()),
        dst: endpoint_text(activity.dst.as_ref()),
        account,
        source_computer: computer_name(activity.source_computer.as_ref()),
        destination_computer: computer_name(activity.destination_computer.as_ref()),
        outcome,
        sensor_id: activity.sensor_id.clone(),
        json,
    }
}

fn decode_alert(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Alert, DataError>> {
    crate::store::decode_alert_row(row)
        .map(|decoded| decoded.map_err(|(id, source)| DataError::Decode { id, source }))
}

fn classification_name(classification: Classification) -> &'static str {
    match classification {
        Classification::Unspecified => "",
        other => other.as_str_name(),
    }
}

impl Data {
    pub fn open(data_dir: &Path, directory: Arc<DirectorySource>) -> Result<Self, DataError> {
        let connection = Connection::open(data_dir.join(FILE_NAME))?;
        connection.busy_timeout(Duration::from_secs(10))?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        // The ingest schema first (the console may start before any sensor), then ours.
        drop(
            crate::store::Store::open(data_dir).map_err(|error| DataError::Open {
                path: data_dir.display().to_string(),
                message: error.to_string(),
            })?,
        );
        connection.execute_batch(SCHEMA)?;
        connection.execute_batch(users::SCHEMA)?;
        Ok(Self {
            connection: Mutex::new(connection),
            directory,
        })
    }

    /// Runs `work` on the store's connection.
    pub fn with<T>(&self, work: impl FnOnce(&Connection) -> T) -> T {
        work(&lock(&self.connection))
    }

    /// Stores alerts as detection made them (new, or updating the stored one's evidence and
    /// status), with a `raised` / `reopened` history row.
    pub fn save_alerts(&self, alerts: &[Alert], now_ns: i64) -> Result<(), DataError> {
        let mut connection = lock(&self.connection);
        let transaction = connection.transaction()?;
        for alert in alerts {
            let stored: Option<String> = transaction
                .query_row(
                    &format!("SELECT status FROM {ALERTS} WHERE id = ?1"),
                    [&alert.id],
                    |row| row.get(0),
                )
                .optional()?;
            let status = alert.status().as_str_name();
            transaction.execute(
                &format!(
                    "INSERT INTO {ALERTS} (id, type, primary_key, status, classification,
                     closed_ns, severity, start_ns, end_ns, count, updated_ns, alert)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                     ON CONFLICT (id) DO UPDATE SET status = ?4, classification = ?5,
                     closed_ns = ?6, severity = ?7, start_ns = ?8, end_ns = ?9, count = ?10,
                     updated_ns = ?11, alert = ?12"
                ),
                params![
                    alert.id,
                    alert.r#type,
                    alert.primary_key,
                    status,
                    classification_name(alert.classification()),
                    alert.closed.as_ref().map(|time| ts_ns(Some(time))),
                    alert.severity,
                    ts_ns(alert.start.as_ref()),
                    ts_ns(alert.end.as_ref()),
                    i64::try_from(alert.count).unwrap_or(i64::MAX),
                    now_ns,
                    alert.encode_to_vec()
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
                    &format!(
                        "INSERT INTO {HISTORY} (alert_id, time_ns, event, actor, text)
                         VALUES (?1, ?2, ?3, 'detection', ?4)"
                    ),
                    params![alert.id, now_ns, event, alert.description],
                )?;
            }
        }
        transaction.commit()?;
        Ok(())
    }

    /// The timeline: alerts newest first (by latest evidence) with the filters, and counts of
    /// what matched.
    pub fn timeline(&self, filter: &AlertFilter) -> Result<Timeline, DataError> {
        let mut conditions = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        let mut condition = |sql: &str, value: Value| {
            values.push(value);
            conditions.push(sql.replace('?', &format!("?{}", values.len())));
        };
        if let Some(status) = AlertFilter::nonempty(filter.status.as_ref()) {
            condition("status = ?", Value::Text(status.to_uppercase()));
        }
        if let Some(severity) = AlertFilter::nonempty(filter.severity.as_ref()) {
            let number = Severity::from_str_name(&severity.to_uppercase()).map_or(-1, i32::from);
            condition("severity = ?", Value::Integer(number.into()));
        }
        if let Some(type_name) = AlertFilter::nonempty(filter.type_name.as_ref()) {
            condition("type = ?", Value::Text(type_name.to_owned()));
        }
        if let Some(since) = parse_time(AlertFilter::nonempty(filter.since.as_ref())) {
            condition("end_ns >= ?", Value::Integer(since));
        }
        if let Some(until) = parse_time(AlertFilter::nonempty(filter.until.as_ref())) {
            condition("start_ns < ?", Value::Integer(until));
        }
        let filter_sql = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        values.push(Value::Integer(
            i64::try_from(MAX_ALERTS_SCANNED).unwrap_or(i64::MAX),
        ));
        let alerts = self.select_alerts(
            &format!(
                "SELECT id, alert, status, classification, closed_ns FROM {ALERTS} {filter_sql}
                 ORDER BY end_ns DESC, id LIMIT ?{}",
                values.len()
            ),
            values,
        )?;
        let category = AlertFilter::nonempty(filter.category.as_ref())
            .map(|category| Category::from_str_name(&category.to_uppercase()));
        let entity = AlertFilter::nonempty(filter.entity.as_ref()).map(str::to_lowercase);
        let mut counts = Counts::default();
        let mut rows = Vec::new();
        let mut truncated = false;
        for alert in alerts {
            if let Some(category) = category
                && Some(alert.category()) != category
            {
                continue;
            }
            if let Some(entity) = &entity
                && !alert.entities.iter().any(|e| {
                    e.name.to_lowercase().contains(entity.as_str())
                        || e.address.to_lowercase().contains(entity.as_str())
                })
            {
                continue;
            }
            let row = alert_row(&alert);
            counts.total += 1;
            *counts.by_status.entry(row.status.clone()).or_default() += 1;
            *counts.by_severity.entry(row.severity.clone()).or_default() += 1;
            *counts.by_category.entry(row.category.clone()).or_default() += 1;
            *counts.by_type.entry(row.type_name.clone()).or_default() += 1;
            if rows.len() < MAX_ROWS {
                rows.push(row);
            } else {
                truncated = true;
            }
        }
        Ok(Timeline {
            alerts: rows,
            counts,
            truncated,
        })
    }

    fn select_alerts(&self, sql: &str, values: Vec<Value>) -> Result<Vec<Alert>, DataError> {
        let connection = lock(&self.connection);
        let mut statement = connection.prepare(sql)?;
        let rows = statement.query_map(params_from_iter(values), decode_alert)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row??);
        }
        Ok(out)
    }

    pub fn alert(&self, id: &str) -> Result<Option<Alert>, DataError> {
        Ok(self
            .select_alerts(
                &format!(
                    "SELECT id, alert, status, classification, closed_ns FROM {ALERTS}
                     WHERE id = ?1"
                ),
                vec![Value::Text(id.to_owned())],
            )?
            .pop())
    }

    pub fn history(&self, id: &str) -> Result<Vec<HistoryEntry>, DataError> {
        let connection = lock(&self.connection);
        let mut statement = connection.prepare(&format!(
            "SELECT time_ns, event, classification, actor, text FROM {HISTORY}
             WHERE alert_id = ?1 ORDER BY id"
        ))?;
        let rows = statement.query_map([id], |row| {
            Ok(HistoryEntry {
                time: rfc3339(row.get(0)?),
                event: row.get(1)?,
                classification: row.get(2)?,
                actor: row.get(3)?,
                text: row.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The alert, its history, assignment and evidence activities.
    pub fn alert_detail(&self, id: &str) -> Result<Option<AlertDetail>, DataError> {
        let Some(alert) = self.alert(id)? else {
            return Ok(None);
        };
        let history = self.history(id)?;
        let assigned_to = history
            .iter()
            .rev()
            .find(|entry| entry.event == "assigned")
            .map_or_else(|| alert.assigned_to.clone(), |entry| entry.text.clone());
        let mut evidence = Vec::new();
        let mut evidence_missing = 0;
        for piece in &alert.evidence {
            match self.activity_by_ref(&piece.activity_ref)? {
                Some(activity) => {
                    evidence.push(activity_row(piece.activity_ref.clone(), &activity))
                }
                None => evidence_missing += 1,
            }
        }
        evidence.sort_by(|a, b| a.time.cmp(&b.time));
        Ok(Some(AlertDetail {
            alert: serde_json::to_value(&alert).unwrap_or(serde_json::Value::Null),
            row: alert_row(&alert),
            assigned_to,
            history,
            evidence,
            evidence_missing,
        }))
    }

    /// A stored activity by its reference, `SENSOR:SEQUENCE:POSITION`.
    pub fn activity_by_ref(&self, reference: &str) -> Result<Option<Activity>, DataError> {
        let mut parts = reference.rsplitn(3, ':');
        let (Some(position), Some(sequence), Some(sensor)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Ok(None);
        };
        let (Ok(position), Ok(sequence)) = (position.parse::<i64>(), sequence.parse::<i64>())
        else {
            return Ok(None);
        };
        let (Ok(sequence), Ok(position)) = (u64::try_from(sequence), u64::try_from(position))
        else {
            return Ok(None);
        };
        Ok(crate::store::activity_at(
            &lock(&self.connection),
            sensor,
            sequence,
            position,
        )?)
    }

    /// Closes an alert with a classification; with `exclude`, also excludes its primary entity
    /// from that detection, or, for a B-TP close of a learning detection's alert, teaches its
    /// entity's profile the behaviour. False when there is no such alert.
    pub fn close_alert(
        &self,
        id: &str,
        classification: Classification,
        actor: &str,
        comment: &str,
        exclude: bool,
        now_ns: i64,
    ) -> Result<bool, DataError> {
        let Some(alert) = self.alert(id)? else {
            return Ok(false);
        };
        let mut connection = lock(&self.connection);
        let transaction = connection.transaction()?;
        transaction.execute(
            &format!(
                "UPDATE {ALERTS} SET status = 'CLOSED', classification = ?2, closed_ns = ?3,
                 updated_ns = ?3 WHERE id = ?1"
            ),
            params![id, classification_name(classification), now_ns],
        )?;
        transaction.execute(
            &format!(
                "INSERT INTO {HISTORY} (alert_id, time_ns, event, classification, actor, text)
                 VALUES (?1, ?2, 'closed', ?3, ?4, ?5)"
            ),
            params![
                id,
                now_ns,
                classification_name(classification),
                actor,
                comment
            ],
        )?;
        if exclude {
            // Only an allowed behaviour (B-TP) is learned; a true positive's entity is excluded.
            let excluded = if classification == Classification::Btp {
                Excluded::of(&alert)
            } else {
                Excluded::entity(&alert)
            };
            crate::store::record_exclusion(&transaction, &alert, &excluded, actor, now_ns)?;
        }
        transaction.commit()?;
        Ok(true)
    }

    /// Reopens a closed alert.
    pub fn reopen_alert(&self, id: &str, actor: &str, now_ns: i64) -> Result<bool, DataError> {
        let connection = lock(&self.connection);
        let changed = connection.execute(
            &format!(
                "UPDATE {ALERTS} SET status = 'OPEN', classification = '', closed_ns = NULL,
                 updated_ns = ?2 WHERE id = ?1"
            ),
            params![id, now_ns],
        )?;
        if changed > 0 {
            connection.execute(
                &format!(
                    "INSERT INTO {HISTORY} (alert_id, time_ns, event, actor) VALUES
                     (?1, ?2, 'reopened', ?3)"
                ),
                params![id, now_ns, actor],
            )?;
        }
        Ok(changed > 0)
    }

    /// Adds a history row (`comment`, `assigned`) to an existing alert.
    pub fn add_history(
        &self,
        id: &str,
        event: &str,
        actor: &str,
        text: &str,
        now_ns: i64,
    ) -> Result<bool, DataError> {
        Ok(lock(&self.connection).execute(
            &format!(
                "INSERT INTO {HISTORY} (alert_id, time_ns, event, actor, text)
                 SELECT id, ?2, ?3, ?4, ?5 FROM {ALERTS} WHERE id = ?1"
            ),
            params![id, now_ns, event, actor, text],
        )? > 0)
    }

    /// Exclusions "close and exclude" made: (type, kind, value, comment).
    pub fn exclusions(&self) -> Result<Vec<(String, String, String, String)>, DataError> {
        let connection = lock(&self.connection);
        let mut statement = connection
            .prepare("SELECT type, kind, value, comment FROM alert_exclusions ORDER BY id")?;
        let rows = statement.query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The activities of an account (`DOMAIN\name` or a name) or a computer (an address, or a
    /// name the alerts gave it), newest first, at most `MAX_ROWS`.
    fn entity_activities(
        &self,
        kind: &str,
        key: &str,
        addresses: &[String],
        filter: &ActivityFilter,
        limit: usize,
    ) -> Result<(Vec<ActivityRow>, bool), DataError> {
        let mut conditions = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        let mut condition = |sql: &str, value: Value| {
            values.push(value);
            conditions.push(sql.replace('?', &format!("?{}", values.len())));
        };
        if kind == "account" {
            match key.split_once('\\') {
                Some((domain, name)) => {
                    condition("account = ? COLLATE NOCASE", Value::Text(name.to_owned()));
                    condition("domain = ? COLLATE NOCASE", Value::Text(domain.to_owned()));
                }
                None => condition("account = ? COLLATE NOCASE", Value::Text(key.to_owned())),
            }
        } else {
            let mut any = Vec::new();
            for address in addresses {
                values.push(Value::Text(address.clone()));
                let n = values.len();
                any.push(format!("src_ip = ?{n} OR dst_ip = ?{n}"));
            }
            if any.is_empty() {
                return Ok((Vec::new(), false));
            }
            conditions.push(format!("({})", any.join(" OR ")));
        }
        let mut condition = |sql: &str, value: Value| {
            values.push(value);
            conditions.push(sql.replace('?', &format!("?{}", values.len())));
        };
        if let Some(protocol) = AlertFilter::nonempty(filter.protocol.as_ref()) {
            condition("protocol = ?", Value::Text(protocol.to_lowercase()));
        }
        if let Some(since) = parse_time(AlertFilter::nonempty(filter.since.as_ref())) {
            condition("time_ns >= ?", Value::Integer(since));
        }
        if let Some(until) = parse_time(AlertFilter::nonempty(filter.until.as_ref())) {
            condition("time_ns < ?", Value::Integer(until));
        }
        let kind_filter = AlertFilter::nonempty(filter.kind.as_ref()).map(str::to_uppercase);
        let connection = lock(&self.connection);
        let mut statement = connection.prepare(&format!(
            "SELECT sensor_id, sequence, position, activity FROM activities WHERE {}
             ORDER BY time_ns DESC, sequence DESC, position DESC",
            conditions.join(" AND ")
        ))?;
        let mut rows = statement.query(params_from_iter(values))?;
        let mut out = Vec::new();
        let mut truncated = false;
        while let Some(row) = rows.next()? {
            let blob: Vec<u8> = row.get(3)?;
            let Ok(activity) = Activity::decode(blob.as_slice()) else {
                continue;
            };
            let reference = format!(
                "{}:{}:{}",
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?
            );
            let shown = activity_row(reference, &activity);
            if kind_filter.as_ref().is_some_and(|kind| shown.kind != *kind) {
                continue;
            }
            if out.len() >= limit {
                truncated = true;
                break;
            }
            out.push(shown);
        }
        drop(rows);
        drop(statement);
        // Then the compacted tier, newest block first, one query per account or address.
        let since = parse_time(AlertFilter::nonempty(filter.since.as_ref()));
        let until = parse_time(AlertFilter::nonempty(filter.until.as_ref()));
        let protocol = AlertFilter::nonempty(filter.protocol.as_ref()).map(str::to_owned);
        let queries: Vec<crate::store::Query> = if kind == "account" {
            vec![crate::store::Query {
                account: Some(key.to_owned()),
                ..crate::store::Query::default()
            }]
        } else {
            addresses
                .iter()
                .filter_map(|address| address.parse().ok())
                .map(|ip| crate::store::Query {
                    ip: Some(ip),
                    ..crate::store::Query::default()
                })
                .collect()
        };
        let mut seen = std::collections::HashSet::new();
        for mut query in queries {
            if truncated {
                break;
            }
            query.since_ns = since;
            query.until_ns = until;
            query.protocol.clone_from(&protocol);
            crate::store::compacted(&connection, &query, true, |stored, position| {
                let reference = format!("{}:{}:{position}", stored.sensor_id, stored.sequence);
                if !seen.insert(reference.clone()) {
                    return true;
                }
                let shown = activity_row(reference, &stored.activity);
                if kind_filter.as_ref().is_some_and(|kind| shown.kind != *kind) {
                    return true;
                }
                if out.len() >= limit {
                    truncated = true;
                    return false;
                }
                out.push(shown);
                true
            })?;
        }
        Ok((out, truncated))
    }

    /// An account's or a computer's page: directory data, activities, alerts.
    pub fn entity(
        &self,
        kind: &'static str,
        key: &str,
        filter: &ActivityFilter,
        limit: usize,
    ) -> Result<EntityPage, DataError> {
        let all = self.timeline(&AlertFilter::default())?;
        let key_lower = key.to_lowercase();
        let mut alert_tags = Vec::new();
        let mut addresses: Vec<String> = Vec::new();
        if kind == "computer" && key.parse::<IpAddr>().is_ok() {
            addresses.push(key.to_owned());
        }
        let mut alerts = Vec::new();
        for row in all.alerts {
            let involved = row.entities.iter().any(|e| {
                e.kind == kind
                    && (e.key.to_lowercase() == key_lower || e.name.to_lowercase() == key_lower)
            });
            if involved {
                for e in row.entities.iter().filter(|e| e.kind == kind) {
                    if (e.name.to_lowercase() == key_lower || e.key.to_lowercase() == key_lower)
                        && !e.address.is_empty()
                        && !addresses.contains(&e.address)
                    {
                        addresses.push(e.address.clone());
                    }
                }
                alerts.push(row);
            }
        }
        for alert in &alerts {
            if let Ok(Some(full)) = self.alert(&alert.id) {
                for entity in &full.entities {
                    if entity.name.to_lowercase() == key_lower || entity.address == key {
                        for tag in &entity.tags {
                            let view = TagView {
                                name: tag.name.clone(),
                                reason: tag.reason.clone(),
                            };
                            if !alert_tags.iter().any(|t: &TagView| t.name == view.name) {
                                alert_tags.push(view);
                            }
                        }
                    }
                }
            }
        }
        let directory = self.directory_view(kind, key);
        let (activities, activities_truncated) =
            self.entity_activities(kind, key, &addresses, filter, limit)?;
        Ok(EntityPage {
            kind,
            key: key.to_owned(),
            directory,
            alert_tags,
            addresses,
            activities,
            activities_truncated,
            alerts,
        })
    }

    fn directory_view(&self, kind: &str, key: &str) -> Option<DirectoryView> {
        let directory = self.directory.current();
        let object: &Object = if kind == "account" {
            let (domain, name) = key
                .split_once('\\')
                .map_or((None, key), |(domain, name)| (Some(domain), name));
            directory.account_in(name, domain)?
        } else {
            directory
                .by_dns_name(key)
                .or_else(|| directory.account(&format!("{}$", key.split('.').next()?)))?
        };
        let transitive = directory.groups(object).to_vec();
        Some(DirectoryView {
            dn: object.dn.clone(),
            sid: object.sid.clone(),
            sam_account_name: object.sam_account_name.clone(),
            upn: object.upn.clone(),
            dns_host_name: object.dns_host_name.clone(),
            operating_system: object.operating_system.clone(),
            kind: format!("{:?}", object.kind),
            uac: object.uac.names(),
            spns: object.spns.clone(),
            admin_count: object.admin_count,
            tags: directory
                .tags(object)
                .iter()
                .map(|tag| TagView {
                    name: tag.name.as_str().to_owned(),
                    reason: tag.reason.clone(),
                })
                .collect(),
            groups_direct: object.member_of.clone(),
            groups_transitive: transitive,
            json: serde_json::to_value(object).unwrap_or(serde_json::Value::Null),
        })
    }

    /// The directory's object for an alert entity, as JSON (the report's "Unique Entity Json").
    pub fn directory_json(&self, kind: &str, key: &str) -> Option<serde_json::Value> {
        self.directory_view(kind, key).map(|view| view.json)
    }

    /// What the store learned of an entity from traffic (the report's "Unique Entity Profile
    /// Json"): how many activities, first and last seen, by protocol.
    pub fn profile(
        &self,
        kind: &str,
        key: &str,
        address: &str,
    ) -> Result<serde_json::Value, DataError> {
        let connection = lock(&self.connection);
        let (sql, values): (&str, Vec<Value>) = if kind == "account" {
            let (domain, name) = key
                .split_once('\\')
                .map_or((None, key), |(domain, name)| (Some(domain), name));
            (
                "SELECT protocol, COUNT(*), MIN(time_ns), MAX(time_ns) FROM activities
                 WHERE account = ?1 COLLATE NOCASE AND (?2 IS NULL OR domain = ?2 COLLATE NOCASE)
                 GROUP BY protocol ORDER BY protocol",
                vec![
                    Value::Text(name.to_owned()),
                    domain.map_or(Value::Null, |domain| Value::Text(domain.to_owned())),
                ],
            )
        } else {
            (
                "SELECT protocol, COUNT(*), MIN(time_ns), MAX(time_ns) FROM activities
                 WHERE src_ip = ?1 OR dst_ip = ?1 GROUP BY protocol ORDER BY protocol",
                vec![Value::Text(
                    if address.is_empty() { key } else { address }.to_owned(),
                )],
            )
        };
        let mut statement = connection.prepare(sql)?;
        let rows = statement.query_map(params_from_iter(values), |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, i64>(3)?,
            ))
        })?;
        let mut by_protocol: BTreeMap<String, i64> = Default::default();
        let (mut total, mut first, mut last) = (0_i64, i64::MAX, 0_i64);
        for row in rows {
            let (protocol, count, min, max) = row?;
            total += count;
            first = first.min(min);
            last = last.max(max);
            *by_protocol.entry(protocol).or_default() += count;
        }
        // The compacted tier: its activities are counted one by one, from their keys alone.
        let query = if kind == "account" {
            crate::store::Query {
                account: Some(key.to_owned()),
                ..crate::store::Query::default()
            }
        } else {
            crate::store::Query {
                ip: if address.is_empty() { key } else { address }.parse().ok(),
                ..crate::store::Query::default()
            }
        };
        if query.account.is_some() || query.ip.is_some() {
            crate::store::compacted_keys(&connection, &query, |keys| {
                let time = crate::store::time_ns(keys);
                total += 1;
                first = first.min(time);
                last = last.max(time);
                *by_protocol
                    .entry(protocol_name(keys.body.as_ref()).to_owned())
                    .or_default() += 1;
            })?;
        }
        let protocols: serde_json::Map<String, serde_json::Value> = by_protocol
            .into_iter()
            .map(|(protocol, count)| (protocol, count.into()))
            .collect();
        Ok(serde_json::json!({
            "activities": total,
            "first_seen": if total > 0 { rfc3339(first) } else { String::new() },
            "last_seen": rfc3339(last),
            "by_protocol": protocols,
        }))
    }

    pub fn sensors(&self) -> Result<Vec<SensorRow>, DataError> {
        let now = now_ns();
        let disconnected = now - i64::try_from(DISCONNECTED_AFTER.as_nanos()).unwrap_or(i64::MAX);
        let connection = lock(&self.connection);
        let mut statement = connection.prepare(
            "SELECT s.sensor_id, s.version, s.last_seen_ns, s.stored_through, s.counters,
             (SELECT COUNT(*) FROM health_issues h WHERE h.sensor_id = s.sensor_id
              AND h.end_ns IS NULL)
             FROM sensors s ORDER BY s.sensor_id",
        )?;
        let rows = statement.query_map([], |row| {
            let last_seen: i64 = row.get(2)?;
            let counters: Option<String> = row.get(4)?;
            Ok(SensorRow {
                sensor_id: row.get(0)?,
                version: row.get(1)?,
                last_seen: rfc3339(last_seen),
                status: if last_seen >= disconnected {
                    "connected"
                } else {
                    "disconnected"
                }
                .to_owned(),
                stored_through: u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
                counters: counters
                    .and_then(|text| serde_json::from_str(&text).ok())
                    .unwrap_or(serde_json::Value::Null),
                open_issues: usize::try_from(row.get::<_, i64>(5)?).unwrap_or(0),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The sensor's counters as sampled, newest first.
    pub fn counter_samples(&self, sensor_id: &str) -> Result<Vec<CounterSample>, DataError> {
        let connection = lock(&self.connection);
        let mut statement = connection.prepare(
            "SELECT time_ns, counters FROM console_sensor_counters WHERE sensor_id = ?1
             ORDER BY time_ns DESC LIMIT ?2",
        )?;
        let rows = statement.query_map(
            params![sensor_id, i64::try_from(MAX_ROWS).unwrap_or(i64::MAX)],
            |row| {
                let counters: String = row.get(1)?;
                Ok(CounterSample {
                    time: rfc3339(row.get(0)?),
                    counters: serde_json::from_str(&counters).unwrap_or(serde_json::Value::Null),
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records every sensor's latest counters now, keeping `MAX_COUNTER_SAMPLES` per sensor.
    pub fn sample_counters(&self, now_ns: i64) -> Result<(), DataError> {
        let connection = lock(&self.connection);
        connection.execute(
            "INSERT INTO console_sensor_counters (sensor_id, time_ns, counters)
             SELECT sensor_id, ?1, counters FROM sensors WHERE counters IS NOT NULL",
            [now_ns],
        )?;
        connection.execute(
            "DELETE FROM console_sensor_counters WHERE rowid IN (SELECT rowid FROM
             (SELECT rowid, ROW_NUMBER() OVER (PARTITION BY sensor_id ORDER BY time_ns DESC)
              AS n FROM console_sensor_counters) WHERE n > ?1)",
            [MAX_COUNTER_SAMPLES],
        )?;
        Ok(())
    }

    /// Health issues and events, newest first; with `sensor_id`, that sensor's only.
    pub fn health(&self, sensor_id: Option<&str>) -> Result<Vec<HealthRow>, DataError> {
        let connection = lock(&self.connection);
        let mut statement = connection.prepare(
            "SELECT sensor_id, start_ns, end_ns, severity, kind, subject, detail, 1
             FROM health_issues WHERE ?1 IS NULL OR sensor_id = ?1
             UNION ALL
             SELECT sensor_id, time_ns, NULL, severity, kind, '', message, 0
             FROM health_events WHERE ?1 IS NULL OR sensor_id = ?1
             ORDER BY 2 DESC LIMIT ?2",
        )?;
        let rows = statement.query_map(
            params![sensor_id, i64::try_from(MAX_ROWS).unwrap_or(i64::MAX)],
            |row| {
                let end: Option<i64> = row.get(2)?;
                let issue: bool = row.get(7)?;
                Ok(HealthRow {
                    sensor_id: row.get(0)?,
                    time: rfc3339(row.get(1)?),
                    end: end.map(rfc3339).unwrap_or_default(),
                    severity: row.get(3)?,
                    kind: row.get(4)?,
                    subject: row.get(5)?,
                    message: row.get(6)?,
                    state: match (issue, end) {
                        (false, _) => "event",
                        (true, None) => "open",
                        (true, Some(_)) => "closed",
                    }
                    .to_owned(),
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Accounts whose name starts with `query`, computers the alerts or the directory name
    /// so, and addresses seen that start with it.
    pub fn search(&self, query: &str) -> Result<SearchResults, DataError> {
        let query = query.trim();
        let mut results = SearchResults::default();
        if query.is_empty() {
            return Ok(results);
        }
        let limit = 50_i64;
        let (domain, name) = query
            .split_once('\\')
            .map_or((None, query), |(domain, name)| (Some(domain), name));
        let pattern = format!("{}%", name.replace(['%', '_'], ""));
        {
            let connection = lock(&self.connection);
            let mut statement = connection.prepare(
                "SELECT DISTINCT domain, account FROM activities WHERE account LIKE ?1
                 AND (?2 IS NULL OR domain = ?2 COLLATE NOCASE) LIMIT ?3",
            )?;
            let rows = statement.query_map(params![pattern, domain, limit], |row| {
                let domain: Option<String> = row.get(0)?;
                let account: String = row.get(1)?;
                Ok(match domain {
                    Some(domain) => format!("{domain}\\{account}"),
                    None => account,
                })
            })?;
            results.accounts = rows.collect::<Result<_, _>>()?;
            // Names only in the compacted tier: its index keeps them lowercased, without domain.
            let mut statement = connection.prepare(
                "SELECT DISTINCT substr(key, 3) FROM activity_block_keys WHERE key LIKE ?1
                 LIMIT ?2",
            )?;
            let compacted = statement.query_map(
                params![crate::store::blocks::account_key(&pattern), limit],
                |row| row.get::<_, String>(0),
            )?;
            for name in compacted {
                let name = name?;
                if results.accounts.len() < 50
                    && !results.accounts.iter().any(|known| {
                        known
                            .rsplit('\\')
                            .next()
                            .is_some_and(|known| known.eq_ignore_ascii_case(&name))
                    })
                {
                    results.accounts.push(name);
                }
            }
            let address_pattern = format!("{}%", query.replace(['%', '_'], ""));
            // A range, not LIKE: LIKE is case-insensitive and cannot use the addresses' (binary)
            // indexes, so it scanned every activity (0.7-1.0 s on 1,000,000 of them; the range
            // reads only the matching index entries, under a millisecond).
            let low = query.to_lowercase();
            let high = format!("{low}\u{10FFFF}");
            let mut statement = connection.prepare(
                "SELECT ip FROM (
                   SELECT * FROM (SELECT DISTINCT src_ip AS ip FROM activities
                                  WHERE src_ip >= ?1 AND src_ip < ?2 LIMIT ?3)
                   UNION
                   SELECT * FROM (SELECT DISTINCT dst_ip FROM activities
                                  WHERE dst_ip >= ?1 AND dst_ip < ?2 LIMIT ?3))
                 LIMIT ?3",
            )?;
            let rows = statement.query_map(params![low, high, limit], |row| row.get(0))?;
            results.addresses = rows.collect::<Result<_, _>>()?;
            let mut statement = connection.prepare(
                "SELECT DISTINCT substr(key, 3) FROM activity_block_keys WHERE key LIKE ?1
                 LIMIT ?2",
            )?;
            let compacted = statement.query_map(
                params![crate::store::blocks::address_key(&address_pattern), limit],
                |row| row.get::<_, String>(0),
            )?;
            for address in compacted {
                let address = address?;
                if results.addresses.len() < 50 && !results.addresses.contains(&address) {
                    results.addresses.push(address);
                }
            }
        }
        let lower = query.to_lowercase();
        for object in self.directory.current().objects() {
            if !object.dns_host_name.is_empty()
                && object.dns_host_name.to_lowercase().starts_with(&lower)
                && results.computers.len() < 50
            {
                results.computers.push(object.dns_host_name.clone());
            }
        }
        for row in self.timeline(&AlertFilter::default())?.alerts {
            for entity in row.entities {
                if entity.kind == "computer"
                    && !entity.name.is_empty()
                    && entity.name.to_lowercase().starts_with(&lower)
                    && !results.computers.contains(&entity.name)
                    && results.computers.len() < 50
                {
                    results.computers.push(entity.name);
                }
            }
        }
        Ok(results)
    }
}
