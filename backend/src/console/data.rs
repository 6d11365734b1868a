//! The console's way into the store: alerts and their history, activities, sensors, health
//! events, users, and the directory snapshot, all through the [`Storage`] trait, so the `all`
//! role serves them from SQLite and a cluster's `api` role from PostgreSQL.
//!
//! Alerts are the alert store's (the alert as detection made it, with its status; history rows
//! `raised`, `reopened`, `closed`, `comment`, and here also `assigned`): what detection writes,
//! the console reads and changes, and a close or an exclusion made here reaches the running
//! detection as one from the CLI.

use std::{
    collections::BTreeMap,
    net::IpAddr,
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
use serde::Serialize;

use crate::{
    console::users,
    detection::DirectorySource,
    store::{ActivityRef, AlertQuery, Closed, EntityKey, EntityKind, Query, Storage, timestamp_ns},
};

/// Rows a list answers at most (the page says when there were more).
pub const MAX_ROWS: usize = 1000;
/// Alerts read for one timeline (filters that SQL cannot apply run on these).
pub const MAX_ALERTS_SCANNED: usize = 100_000;
/// Counter samples kept per sensor.
pub const MAX_COUNTER_SAMPLES: i64 = 10_080;
/// How often sensors' counters are sampled for the "over time" view.
pub const COUNTER_SAMPLE_INTERVAL: Duration = Duration::from_mins(1);
/// A sensor not heard from for this long is shown as disconnected (MDI: 10 minutes).
pub const DISCONNECTED_AFTER: Duration = Duration::from_mins(10);

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(transparent)]
    User(#[from] users::UserError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("the alert report: {0}")]
    Report(String),
}

#[derive(Debug)]
pub struct Data {
    store: Mutex<Box<dyn Storage>>,
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

#[derive(Clone, Debug, Default, Serialize)]
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
    let role = entity.role();
    let kind = EntityKind::of(role);
    let is_account = kind == EntityKind::Account;
    let key = if is_account || entity.address.is_empty() {
        entity.name.clone()
    } else {
        entity.address.clone()
    };
    EntityRef {
        role: enum_name(role.as_str_name()),
        kind: kind.name(),
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

/// The entity kind a page names (`account` or anything else: a computer).
fn entity_kind(kind: &str) -> EntityKind {
    if kind == EntityKind::Account.name() {
        EntityKind::Account
    } else {
        EntityKind::Computer
    }
}

/// The activities of an account, or of a computer's address (`None`: a computer known by no
/// address has none to select).
fn entity_query(kind: &str, key: &str, address: &str) -> Option<Query> {
    if entity_kind(kind) == EntityKind::Account {
        Some(Query {
            account: Some(key.to_owned()),
            ..Query::default()
        })
    } else {
        let ip = if address.is_empty() { key } else { address }
            .parse()
            .ok()?;
        Some(Query {
            ip: Some(ip),
            ..Query::default()
        })
    }
}

impl Data {
    pub fn new(store: Box<dyn Storage>, directory: Arc<DirectorySource>) -> Self {
        Self {
            store: Mutex::new(store),
            directory,
        }
    }

    /// Runs `work` on the store.
    pub fn with<T>(&self, work: impl FnOnce(&mut dyn Storage) -> T) -> T {
        work(
            self.store
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_mut(),
        )
    }

    /// The timeline: alerts newest first (by latest evidence) with the filters, and counts of
    /// what matched.
    pub fn timeline(&self, filter: &AlertFilter) -> Result<Timeline, DataError> {
        let mut query = AlertQuery {
            limit: Some(MAX_ALERTS_SCANNED),
            ..AlertQuery::default()
        };
        if let Some(status) = AlertFilter::nonempty(filter.status.as_ref()) {
            match Status::from_str_name(&status.to_uppercase()) {
                Some(status) => query.status = Some(status),
                // No alert has an unknown status.
                None => return Ok(Timeline::default()),
            }
        }
        if let Some(severity) = AlertFilter::nonempty(filter.severity.as_ref()) {
            query.severity =
                Some(Severity::from_str_name(&severity.to_uppercase()).map_or(-1, i32::from));
        }
        query.type_name = AlertFilter::nonempty(filter.type_name.as_ref()).map(str::to_owned);
        query.since_ns = parse_time(AlertFilter::nonempty(filter.since.as_ref()));
        query.until_ns = parse_time(AlertFilter::nonempty(filter.until.as_ref()));
        query.entity_containing = AlertFilter::nonempty(filter.entity.as_ref()).map(str::to_owned);
        let alerts = self.with(|store| store.alerts(&query))?;
        let category = AlertFilter::nonempty(filter.category.as_ref())
            .map(|category| Category::from_str_name(&category.to_uppercase()));
        let mut timeline = Timeline::default();
        for alert in alerts {
            if let Some(category) = category
                && Some(alert.category()) != category
            {
                continue;
            }
            let row = alert_row(&alert);
            let counts = &mut timeline.counts;
            counts.total += 1;
            *counts.by_status.entry(row.status.clone()).or_default() += 1;
            *counts.by_severity.entry(row.severity.clone()).or_default() += 1;
            *counts.by_category.entry(row.category.clone()).or_default() += 1;
            *counts.by_type.entry(row.type_name.clone()).or_default() += 1;
            if timeline.alerts.len() < MAX_ROWS {
                timeline.alerts.push(row);
            } else {
                timeline.truncated = true;
            }
        }
        Ok(timeline)
    }

    pub fn alert(&self, id: &str) -> Result<Option<Alert>, DataError> {
        let query = AlertQuery {
            id: Some(id.to_owned()),
            ..AlertQuery::default()
        };
        Ok(self.with(|store| store.alerts(&query))?.pop())
    }

    pub fn history(&self, id: &str) -> Result<Vec<HistoryEntry>, DataError> {
        Ok(self
            .with(|store| store.alert_history(id, 0))?
            .into_iter()
            .map(|entry| HistoryEntry {
                time: rfc3339(entry.time_ns),
                event: entry.event,
                classification: entry.classification,
                actor: entry.actor,
                text: entry.text,
            })
            .collect())
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
        // Read together: the rows in one transaction (one statement on PostgreSQL), each
        // compacted frame decompressed once for the pieces in it.
        let refs: Vec<(&str, ActivityRef<'_>)> = alert
            .evidence
            .iter()
            .filter_map(|piece| {
                ActivityRef::parse(&piece.activity_ref).map(|at| (piece.activity_ref.as_str(), at))
            })
            .collect();
        let places: Vec<ActivityRef<'_>> = refs.iter().map(|&(_, at)| at).collect();
        let found = self.with(|store| store.activities_at(&places))?;
        let mut evidence = Vec::with_capacity(found.len());
        // A reference that does not read as one is evidence missing too.
        let mut evidence_missing = alert.evidence.len() - refs.len();
        for ((reference, _), activity) in refs.iter().zip(&found) {
            match activity {
                Some(activity) => {
                    evidence.push(activity_row((*reference).to_owned(), activity));
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

    /// Closes an alert with a classification; with `exclude`, also excludes its primary entity
    /// from that detection, or, for a B-TP close of a learning detection's alert, teaches its
    /// entity's profile the behaviour (`Excluded::on_close`). False when there is no such
    /// alert; an alert closed already keeps its close.
    pub fn close_alert(
        &self,
        id: &str,
        classification: Classification,
        actor: &str,
        comment: &str,
        exclude: bool,
        now_ns: i64,
    ) -> Result<bool, DataError> {
        self.with(|store| {
            match store.close_alert(id, classification, actor, comment, now_ns)? {
                Closed::NoSuchAlert => return Ok(false),
                Closed::Closed | Closed::AlreadyClosed => {}
            }
            if exclude {
                store.exclude_alert(id, classification, actor, now_ns)?;
            }
            Ok(true)
        })
    }

    /// Reopens a closed alert.
    pub fn reopen_alert(&self, id: &str, actor: &str, now_ns: i64) -> Result<bool, DataError> {
        Ok(self.with(|store| store.reopen_alert(id, actor, now_ns))?)
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
        Ok(self.with(|store| store.note_alert(id, event, actor, text, now_ns))?)
    }

    /// Exclusions "close and exclude" made: (type, kind, value, comment).
    pub fn exclusions(&self) -> Result<Vec<(String, String, String, String)>, DataError> {
        Ok(self
            .with(|store| store.exclusions())?
            .into_iter()
            .map(|exclusion| {
                (
                    exclusion.type_name,
                    exclusion.kind.name().to_owned(),
                    exclusion.value,
                    exclusion.comment,
                )
            })
            .collect())
    }

    /// The activities of an account (`DOMAIN\name` or a name) or a computer (its addresses),
    /// newest first, at most `limit`; whether there were more.
    fn entity_activities(
        &self,
        kind: &str,
        key: &str,
        addresses: &[String],
        filter: &ActivityFilter,
        limit: usize,
    ) -> Result<(Vec<ActivityRow>, bool), DataError> {
        let queries: Vec<Query> = if entity_kind(kind) == EntityKind::Account {
            entity_query(kind, key, "").into_iter().collect()
        } else {
            addresses
                .iter()
                .filter_map(|address| entity_query(kind, key, address))
                .collect()
        };
        let since = parse_time(AlertFilter::nonempty(filter.since.as_ref()));
        let until = parse_time(AlertFilter::nonempty(filter.until.as_ref()));
        let protocol = AlertFilter::nonempty(filter.protocol.as_ref()).map(str::to_owned);
        let kind_filter = AlertFilter::nonempty(filter.kind.as_ref()).map(str::to_uppercase);
        // Each address's newest (one more than shown, to know of more), then merged.
        let mut found: Vec<(i64, ActivityRow)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for mut query in queries {
            query.since_ns = since;
            query.until_ns = until;
            query.protocol.clone_from(&protocol);
            let mut taken = 0;
            self.with(|store| {
                store.newest_activities(&query, &mut |stored, position| {
                    let reference = format!("{}:{}:{position}", stored.sensor_id, stored.sequence);
                    if !seen.insert(reference.clone()) {
                        return true;
                    }
                    let shown = activity_row(reference, &stored.activity);
                    if kind_filter.as_ref().is_some_and(|kind| shown.kind != *kind) {
                        return true;
                    }
                    found.push((crate::store::time_ns(&stored.activity), shown));
                    taken += 1;
                    taken <= limit
                })
            })?;
        }
        found.sort_by_key(|(time, _)| std::cmp::Reverse(*time));
        let truncated = found.len() > limit;
        Ok((
            found.into_iter().take(limit).map(|(_, row)| row).collect(),
            truncated,
        ))
    }

    /// An account's or a computer's page: directory data, activities, alerts (those the
    /// alerts' entity index names it in).
    pub fn entity(
        &self,
        kind: &'static str,
        key: &str,
        filter: &ActivityFilter,
        limit: usize,
    ) -> Result<EntityPage, DataError> {
        let query = AlertQuery {
            entity: Some(EntityKey {
                kind: entity_kind(kind),
                key: key.to_owned(),
            }),
            limit: Some(MAX_ROWS),
            ..AlertQuery::default()
        };
        let found = self.with(|store| store.alerts(&query))?;
        let key_lower = key.to_lowercase();
        let mut alert_tags: Vec<TagView> = Vec::new();
        let mut addresses: Vec<String> = Vec::new();
        if kind == "computer" && key.parse::<IpAddr>().is_ok() {
            addresses.push(key.to_owned());
        }
        for alert in &found {
            for entity in &alert.entities {
                let shown = entity_ref(entity);
                let named = entity.name.to_lowercase() == key_lower
                    || entity.address.to_lowercase() == key_lower;
                if shown.kind != kind || !named {
                    continue;
                }
                if !entity.address.is_empty() && !addresses.contains(&entity.address) {
                    addresses.push(entity.address.clone());
                }
                for tag in &entity.tags {
                    if !alert_tags.iter().any(|known| known.name == tag.name) {
                        alert_tags.push(TagView {
                            name: tag.name.clone(),
                            reason: tag.reason.clone(),
                        });
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
            alerts: found.iter().map(alert_row).collect(),
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
        let counts = match entity_query(kind, key, address) {
            Some(query) => self.with(|store| store.activity_counts(&query))?,
            None => Vec::new(),
        };
        let total: i64 = counts.iter().map(|count| count.count).sum();
        let first = counts.iter().map(|count| count.first_ns).min().unwrap_or(0);
        let last = counts.iter().map(|count| count.last_ns).max().unwrap_or(0);
        let protocols: serde_json::Map<String, serde_json::Value> = counts
            .into_iter()
            .map(|count| (count.protocol, count.count.into()))
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
        Ok(self
            .with(|store| store.sensors())?
            .into_iter()
            .map(|sensor| SensorRow {
                sensor_id: sensor.sensor_id,
                version: sensor.version,
                last_seen: rfc3339(sensor.last_seen_ns),
                status: if sensor.last_seen_ns >= disconnected {
                    "connected"
                } else {
                    "disconnected"
                }
                .to_owned(),
                stored_through: sensor.stored_through,
                counters: sensor
                    .counters
                    .and_then(|text| serde_json::from_str(&text).ok())
                    .unwrap_or(serde_json::Value::Null),
                open_issues: usize::try_from(sensor.open_issues).unwrap_or(usize::MAX),
            })
            .collect())
    }

    /// The sensor's counters as sampled, newest first.
    pub fn counter_samples(&self, sensor_id: &str) -> Result<Vec<CounterSample>, DataError> {
        Ok(self
            .with(|store| store.counter_samples(sensor_id, MAX_ROWS))?
            .into_iter()
            .map(|(time_ns, counters)| CounterSample {
                time: rfc3339(time_ns),
                counters: serde_json::from_str(&counters).unwrap_or(serde_json::Value::Null),
            })
            .collect())
    }

    /// Records every sensor's latest counters now, keeping `MAX_COUNTER_SAMPLES` per sensor.
    pub fn sample_counters(&self, now_ns: i64) -> Result<(), DataError> {
        Ok(self.with(|store| store.sample_counters(now_ns, MAX_COUNTER_SAMPLES))?)
    }

    /// Health issues and events, newest first; with `sensor_id`, that sensor's only.
    pub fn health(&self, sensor_id: Option<&str>) -> Result<Vec<HealthRow>, DataError> {
        let (issues, events) = self.with(|store| {
            Ok::<_, crate::store::StoreError>((
                store.issues(sensor_id, false)?,
                store.health_events(sensor_id, MAX_ROWS)?,
            ))
        })?;
        let mut rows: Vec<(i64, HealthRow)> = issues
            .into_iter()
            .map(|stored| {
                let issue = stored.issue;
                let start = i64::try_from(issue.start_ns).unwrap_or(i64::MAX);
                let end = issue
                    .end_ns
                    .map(|end| i64::try_from(end).unwrap_or(i64::MAX));
                (
                    start,
                    HealthRow {
                        sensor_id: stored.sensor_id,
                        time: rfc3339(start),
                        end: end.map(rfc3339).unwrap_or_default(),
                        severity: issue.kind.severity().as_str_name().to_owned(),
                        kind: issue.kind.name().to_owned(),
                        subject: issue.subject,
                        message: issue.detail,
                        state: if end.is_some() { "closed" } else { "open" }.to_owned(),
                    },
                )
            })
            .chain(events.into_iter().map(|event| {
                (
                    event.time_ns,
                    HealthRow {
                        sensor_id: event.sensor_id,
                        time: rfc3339(event.time_ns),
                        end: String::new(),
                        severity: event.severity,
                        kind: event.kind,
                        subject: String::new(),
                        message: event.message,
                        state: "event".to_owned(),
                    },
                )
            }))
            .collect();
        rows.sort_by_key(|(time, _)| std::cmp::Reverse(*time));
        Ok(rows
            .into_iter()
            .take(MAX_ROWS)
            .map(|(_, row)| row)
            .collect())
    }

    /// Accounts whose name starts with `query`, computers the alerts or the directory name
    /// so, and addresses seen that start with it.
    pub fn search(&self, query: &str) -> Result<SearchResults, DataError> {
        const LIMIT: usize = 50;
        let query = query.trim();
        if query.is_empty() {
            return Ok(SearchResults::default());
        }
        let found = self.with(|store| store.search(query, LIMIT))?;
        let mut results = SearchResults {
            accounts: found.accounts,
            computers: Vec::new(),
            addresses: found.addresses,
        };
        let lower = query.to_lowercase();
        for object in self.directory.current().objects() {
            if !object.dns_host_name.is_empty()
                && object.dns_host_name.to_lowercase().starts_with(&lower)
                && results.computers.len() < LIMIT
            {
                results.computers.push(object.dns_host_name.clone());
            }
        }
        for computer in found.computers {
            if !results.computers.contains(&computer) && results.computers.len() < LIMIT {
                results.computers.push(computer);
            }
        }
        Ok(results)
    }
}
