//! Findings into alerts (DETECTIONS.md "The alert"): one open alert per (type, primary entity)
//! that new evidence updates rather than duplicates; a closed alert matched again within 24
//! hours reopens; updates reach the outputs at most once per 15 minutes of activity time.

use std::hash::{BuildHasher, Hash, Hasher};

use hashbrown::{Equivalent, HashMap};

use dcwatch_proto::v1::{
    Alert, AlertEntity, Detail,
    alert::{Classification, Confidence, Severity, Status, Trigger},
    outcome,
};
use sha2::{Digest, Sha256};

use crate::{
    finding::Finding,
    time::{DAY, MINUTE, Millis, millis, timestamp},
};

/// Updates of one alert go to the outputs at most this often.
pub const UPDATE_INTERVAL: Millis = 15 * MINUTE;
/// A closed alert matched again within this reopens instead of raising a new one.
pub const REOPEN_WITHIN: Millis = DAY;
/// Evidence lines an alert keeps (the first ones, which show how it began); `count` keeps the total.
pub const MAX_EVIDENCE: usize = 50;
/// Entities an alert keeps (a spray's hundreds of accounts are summed up in its details).
pub const MAX_ENTITIES: usize = 100;
/// Alerts the book keeps in memory; the oldest closed ones go first.
pub const MAX_ALERTS: usize = 100_000;

/// The detail a damped alert carries.
pub const DAMPED_DETAIL: &str = "damped";

/// Which alert a finding made or changed; the alert stays in the book (`Book::get`), updated in
/// place, so that an update costs no copy of it: a caller copies it only when it sends or
/// stores it. `emit` says whether the outputs (syslog, JSON file) should carry it now; every
/// change is for the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raised {
    pub id: String,
    /// A new alert rather than an update (or reopening) of one.
    pub new: bool,
    pub emit: bool,
}

#[derive(Debug)]
struct Tracked {
    alert: Alert,
    last_emitted: Millis,
    entities: EntityPrints,
}

/// Fingerprints of an alert's entities. A finding's entity is compared field by field with the
/// alert's (up to `MAX_ENTITIES`, each several strings) only when its fingerprint is among
/// them: comparing them all took most of the book's time on long alerts (a spray's accounts).
#[derive(Debug, Default)]
struct EntityPrints {
    /// Each print, and where the first entity with it is in the alert's entities.
    prints: HashMap<u64, usize>,
    hasher: hashbrown::DefaultHashBuilder,
}

impl EntityPrints {
    fn of(entities: &[AlertEntity]) -> Self {
        let mut prints = Self::default();
        for (index, entity) in entities.iter().enumerate() {
            let print = prints.print(entity);
            prints.prints.entry(print).or_insert(index);
        }
        prints
    }

    /// A hash of the entity's fields but its tags: equal entities have equal prints.
    fn print(&self, entity: &AlertEntity) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        (entity.role, &entity.name, &entity.sid, &entity.address).hash(&mut hasher);
        (entity.certainty, entity.method).hash(&mut hasher);
        hasher.finish()
    }

    /// Whether `entity` is not among `known` (the alert's entities), noting its print where the
    /// caller pushes a new one (at the end). Most findings repeat an entity (the same source):
    /// the one with its print is compared first.
    fn is_new(&mut self, entity: &AlertEntity, known: &[AlertEntity]) -> bool {
        let print = self.print(entity);
        match self.prints.entry(print) {
            hashbrown::hash_map::Entry::Vacant(vacant) => {
                vacant.insert(known.len());
                true
            }
            hashbrown::hash_map::Entry::Occupied(first) => {
                known.get(*first.get()) != Some(entity) && !known.contains(entity)
            }
        }
    }
}

/// An alert's (type, primary key) as a finding has them: looked up without copying them (it
/// hashes as the `(String, String)` it stands for).
#[derive(Hash)]
struct SlotRef<'a>(&'a str, &'a str);

impl Equivalent<(String, String)> for SlotRef<'_> {
    fn equivalent(&self, (type_name, key): &(String, String)) -> bool {
        self.0 == type_name && self.1 == key
    }
}

#[derive(Debug, Default)]
pub struct Book {
    alerts: HashMap<String, Tracked>,
    /// (type, primary key) → the id of its latest alert.
    latest: HashMap<(String, String), String>,
    evicted: u64,
}

impl Book {
    /// Cold, as the findings' construction (finding.rs): a few activities in a hundred raise one,
    /// and the engine's loop over findings is laid out after its per-activity path.
    #[cold]
    pub fn apply(&mut self, finding: Finding) -> Raised {
        if let Some(id) = self
            .latest
            .get(&SlotRef(finding.kind.type_name, &finding.key))
            && let Some(tracked) = self.alerts.get_mut(id)
        {
            let status = tracked.alert.status();
            let closed_at = millis(tracked.alert.closed.as_ref()).unwrap_or(Millis::MIN);
            if status == Status::Open || finding.end.saturating_sub(closed_at) <= REOPEN_WITHIN {
                let reopened = status == Status::Closed;
                merge(&mut tracked.alert, &mut tracked.entities, finding);
                tracked.alert.trigger = Trigger::Update.into();
                let end = millis(tracked.alert.end.as_ref()).unwrap_or(0);
                let emit = reopened || end.saturating_sub(tracked.last_emitted) >= UPDATE_INTERVAL;
                if reopened {
                    tracked.alert.status = Status::Open.into();
                    tracked.alert.classification = Classification::Unspecified.into();
                    tracked.alert.closed = None;
                }
                if emit {
                    tracked.last_emitted = end;
                }
                return Raised {
                    id: id.clone(),
                    new: false,
                    emit,
                };
            }
        }
        let slot = (finding.kind.type_name.to_owned(), finding.key.clone());
        let mut entities = EntityPrints::default();
        let alert = new_alert(finding, &mut entities);
        let end = millis(alert.end.as_ref()).unwrap_or(0);
        let id = alert.id.clone();
        self.make_room();
        self.latest.insert(slot, id.clone());
        self.alerts.insert(
            id.clone(),
            Tracked {
                alert,
                last_emitted: end,
                entities,
            },
        );
        Raised {
            id,
            new: true,
            emit: true,
        }
    }

    /// The alert as it stands now; `None` once the book has forgotten it.
    pub fn get(&self, id: &str) -> Option<&Alert> {
        self.alerts.get(id).map(|tracked| &tracked.alert)
    }

    /// Lowers a new alert's severity one step and its confidence to low, in place, saying why in
    /// a detail.
    pub fn damp(&mut self, id: &str, note: String) {
        let Some(tracked) = self.alerts.get_mut(id) else {
            return;
        };
        let alert = &mut tracked.alert;
        let lowered = match alert.severity() {
            Severity::High => Severity::Medium,
            _ => Severity::Low,
        };
        alert.severity = lowered.into();
        alert.confidence = Confidence::LowConfidence.into();
        alert.details.push(Detail {
            name: DAMPED_DETAIL.to_owned(),
            value: note,
        });
    }

    /// Closes an alert with an analyst's classification; false when there is no such open alert.
    pub fn close(&mut self, id: &str, classification: Classification, time: Millis) -> bool {
        let Some(tracked) = self.alerts.get_mut(id) else {
            return false;
        };
        if tracked.alert.status() == Status::Closed {
            return false;
        }
        tracked.alert.status = Status::Closed.into();
        tracked.alert.classification = classification.into();
        tracked.alert.closed = Some(timestamp(time));
        true
    }

    /// Takes back alerts a store kept (open ones, and those closed recently enough to reopen).
    pub fn restore(&mut self, alerts: impl IntoIterator<Item = Alert>) {
        for alert in alerts {
            let slot = (alert.r#type.clone(), alert.primary_key.clone());
            let end = millis(alert.end.as_ref()).unwrap_or(0);
            self.make_room();
            self.latest.insert(slot, alert.id.clone());
            self.alerts.insert(
                alert.id.clone(),
                Tracked {
                    entities: EntityPrints::of(&alert.entities),
                    alert,
                    last_emitted: end,
                },
            );
        }
    }

    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.values().map(|tracked| &tracked.alert)
    }

    /// Takes every alert out of the book, which is left empty.
    pub fn take_alerts(&mut self) -> Vec<Alert> {
        self.latest.clear();
        std::mem::take(&mut self.alerts)
            .into_values()
            .map(|tracked| tracked.alert)
            .collect()
    }

    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Forgets the alert that ended longest ago, closed ones first, when the book is full.
    fn make_room(&mut self) {
        while self.alerts.len() >= MAX_ALERTS {
            let oldest = self
                .alerts
                .values()
                .min_by_key(|tracked| {
                    (
                        tracked.alert.status() == Status::Open,
                        millis(tracked.alert.end.as_ref()).unwrap_or(0),
                    )
                })
                .map(|tracked| tracked.alert.id.clone());
            let Some(oldest) = oldest else { break };
            if let Some(tracked) = self.alerts.remove(&oldest) {
                let slot = (
                    tracked.alert.r#type.clone(),
                    tracked.alert.primary_key.clone(),
                );
                if self.latest.get(&slot) == Some(&oldest) {
                    self.latest.remove(&slot);
                }
            }
            self.evicted += 1;
        }
    }
}

/// A stable id: the same (type, primary entity, start) gives the same id, so a replay of a
/// capture and the backend that ingested it name their alerts alike.
fn alert_id(type_name: &str, key: &str, start: Millis) -> String {
    let digest = Sha256::digest(format!("{type_name}\n{key}\n{start}").as_bytes());
    hex::encode(&digest[..10])
}

fn new_alert(finding: Finding, entities: &mut EntityPrints) -> Alert {
    let kind = finding.kind;
    let mut alert = Alert {
        id: alert_id(kind.type_name, &finding.key, finding.start),
        r#type: kind.type_name.to_owned(),
        external_id: kind.external_id,
        class: kind.class.to_owned(),
        title: kind.title.to_owned(),
        severity: kind.severity.into(),
        category: kind.category.into(),
        mitre: kind.mitre.iter().map(|id| (*id).to_owned()).collect(),
        start: Some(timestamp(finding.start)),
        end: Some(timestamp(finding.end)),
        status: Status::Open.into(),
        trigger: Trigger::New.into(),
        primary_key: finding.key.clone(),
        ..Alert::default()
    };
    merge_fields(&mut alert, entities, finding);
    alert
}

fn merge(alert: &mut Alert, entities: &mut EntityPrints, finding: Finding) {
    let start = millis(alert.start.as_ref())
        .unwrap_or(finding.start)
        .min(finding.start);
    let end = millis(alert.end.as_ref())
        .unwrap_or(finding.end)
        .max(finding.end);
    alert.start = Some(timestamp(start));
    alert.end = Some(timestamp(end));
    // A graver variant of the same type (a forged principal after a time anomaly) takes over.
    // (Damping lowered the alert's own kind: its updates keep the lowered severity.)
    if finding.kind.severity as i32 > alert.severity
        && finding.kind.external_id != alert.external_id
    {
        alert.external_id = finding.kind.external_id;
        alert.class = finding.kind.class.to_owned();
        alert.title = finding.kind.title.to_owned();
        alert.severity = finding.kind.severity.into();
    }
    merge_fields(alert, entities, finding);
}

fn merge_fields(alert: &mut Alert, prints: &mut EntityPrints, finding: Finding) {
    alert.count = alert.count.saturating_add(finding.count);
    if !finding.description.is_empty() {
        alert.description = finding.description;
    }
    if !finding.details.is_empty() {
        alert.details = finding.details;
    }
    for entity in finding.entities {
        if alert.entities.len() < MAX_ENTITIES && prints.is_new(&entity, &alert.entities) {
            alert.entities.push(entity);
        }
    }
    let room = MAX_EVIDENCE.saturating_sub(alert.evidence.len());
    alert
        .evidence
        .extend(finding.evidence.into_iter().take(room));
    for basis in finding.relied_on {
        if !alert.relied_on.contains(&basis) {
            alert.relied_on.push(basis);
        }
    }
    alert.confidence = finding.confidence.into();
    if alert.protocol.is_empty() {
        alert.protocol = finding.protocol.to_owned();
    }
    // Once any attempt succeeded, the attack did.
    if alert.outcome() != outcome::Status::Success {
        alert.outcome = finding.outcome.into();
    }
}
