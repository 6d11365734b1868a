//! The detection engine: activities in (from any number of sensors, in roughly time order),
//! alerts out. It learns from each activity, lets every detector judge it, drops what the
//! exclusions name, and merges the rest into alerts.

use std::sync::Arc;

use dcwatch_entity::Directory;
use dcwatch_proto::v1::{Activity, AlertEntity, alert::Classification, alert_entity::Role};

use crate::{
    book::{Book, Raised},
    config::{Config, Exclusions},
    detectors::{self, Context, Detector},
    finding::Finding,
    knowledge::Knowledge,
    observed::Observed,
    time::{DAY, Millis},
};

/// Learned facts not refreshed for this long are forgotten.
const LEARNED_LIFETIME: Millis = 30 * DAY;

#[derive(Debug)]
pub struct Engine {
    config: Config,
    knowledge: Knowledge,
    detectors: Vec<Box<dyn Detector>>,
    book: Book,
    findings: Vec<Finding>,
    /// The latest activity time seen: the engine's clock.
    clock: Millis,
    activities: u64,
    untimed: u64,
    excluded: u64,
    findings_total: u64,
}

impl Engine {
    pub fn new(config: Config, directory: Arc<Directory>) -> Self {
        Self {
            knowledge: Knowledge::new(&config, directory),
            config,
            detectors: detectors::all(),
            book: Book::default(),
            findings: Vec::new(),
            clock: Millis::MIN,
            activities: 0,
            untimed: 0,
            excluded: 0,
            findings_total: 0,
        }
    }

    pub fn set_directory(&mut self, directory: Arc<Directory>) {
        self.knowledge.set_directory(directory);
    }

    /// Judges one activity; returns the alerts it made or changed. `reference` names the stored
    /// activity in the evidence (empty offline).
    pub fn observe(&mut self, activity: &Activity, reference: &str) -> Vec<Raised> {
        self.activities += 1;
        let Some(seen) = Observed::new(activity, reference) else {
            self.untimed += 1;
            return Vec::new();
        };
        if seen.time > self.clock {
            let day_changed = seen.time / DAY != self.clock / DAY;
            self.clock = seen.time;
            if day_changed {
                self.knowledge
                    .expire(self.clock.saturating_sub(LEARNED_LIFETIME));
            }
        }
        self.knowledge.learn(&seen);
        let mut context = Context {
            knowledge: &self.knowledge,
            config: &self.config,
            findings: &mut self.findings,
        };
        for detector in &mut self.detectors {
            detector.observe(&seen, &mut context);
        }
        let mut raised = Vec::new();
        for finding in std::mem::take(&mut self.findings) {
            self.findings_total += 1;
            if self.is_excluded(&finding) {
                self.excluded += 1;
                continue;
            }
            raised.push(self.book.apply(finding));
        }
        raised
    }

    pub fn close(&mut self, id: &str, classification: Classification, time: Millis) -> bool {
        self.book.close(id, classification, time)
    }

    pub fn restore(&mut self, alerts: impl IntoIterator<Item = dcwatch_proto::v1::Alert>) {
        self.book.restore(alerts);
    }

    pub fn alerts(&self) -> impl Iterator<Item = &dcwatch_proto::v1::Alert> {
        self.book.alerts()
    }

    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        let mut counters = vec![
            ("detect_activities", self.activities),
            ("detect_activities_untimed", self.untimed),
            ("detect_findings", self.findings_total),
            ("detect_findings_excluded", self.excluded),
            ("detect_alerts_evicted", self.book.evicted()),
            (
                "detect_state_evicted",
                self.detectors
                    .iter()
                    .map(|detector| detector.evicted())
                    .sum(),
            ),
        ];
        counters.extend(self.knowledge.evictions());
        counters
    }

    fn is_excluded(&self, finding: &Finding) -> bool {
        let per_type = self.config.exclude.get(finding.kind.type_name);
        std::iter::once(&self.config.exclusions)
            .chain(per_type)
            .any(|exclusions| excludes(exclusions, &finding.entities))
    }
}

/// Whether exclusions name a source of the finding: its account, its computer or its address.
fn excludes(exclusions: &Exclusions, entities: &[AlertEntity]) -> bool {
    if exclusions.is_empty() {
        return false;
    }
    entities.iter().any(|entity| match entity.role() {
        Role::SourceAccount => exclusions.accounts.iter().any(|account| {
            crate::knowledge::account_key(account) == crate::knowledge::account_key(&entity.name)
        }),
        Role::SourceComputer => {
            let named = !entity.name.is_empty()
                && exclusions.computers.iter().any(|computer| {
                    let short = |name: &str| {
                        name.split('.')
                            .next()
                            .unwrap_or(name)
                            .trim_end_matches('$')
                            .to_lowercase()
                    };
                    short(computer) == short(&entity.name)
                });
            let in_subnet = entity.address.parse().is_ok_and(|address| {
                exclusions
                    .subnets
                    .iter()
                    .any(|subnet| subnet.contains(address))
            });
            named || in_subnet
        }
        _ => false,
    })
}
