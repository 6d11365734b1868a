//! The detection engine: activities in (from any number of sensors, in roughly time order),
//! alerts out. It learns from each activity, lets every detector of its kind judge it, drops what the
//! exclusions name, and merges the rest into alerts.

use std::{collections::HashMap, sync::Arc};

use dcwatch_entity::Directory;
use dcwatch_proto::v1::{
    Activity, Alert, AlertEntity, Detail, alert::Classification, alert_entity::Role,
};

use crate::{
    book::{Book, Raised},
    checkpoint::{Checkpoint, Journal},
    config::{Config, Exclusions},
    damping::RecentNew,
    detectors::{self, Context, Detectors, Key},
    finding::Finding,
    knowledge::{Knowledge, short_name},
    learning::{self, Behaviour, Gate},
    observed::Observed,
    profiles::{Changes, Profiles},
    profiling,
    time::{DAY, HOUR, Millis},
};

/// Learned facts not refreshed for this long are forgotten.
const LEARNED_LIFETIME: Millis = 30 * DAY;

#[derive(Debug)]
pub struct Engine {
    config: Config,
    knowledge: Knowledge,
    detectors: Detectors,
    book: Book,
    profiles: Profiles,
    dc_tests: profiling::DcTests,
    /// What this engine judged within the detectors' windows, for its checkpoints (`None`
    /// offline: nothing would take it).
    journal: Option<Journal>,
    /// New alerts per type within the damping window.
    recent_new: HashMap<&'static str, RecentNew>,
    findings: Vec<Finding>,
    /// The latest activity time seen: the engine's clock.
    clock: Millis,
    activities: u64,
    untimed: u64,
    excluded: u64,
    findings_total: u64,
    /// Behavioural findings dropped while their entity learned, and for learned behaviour.
    findings_learning: u64,
    findings_known: u64,
    alerts_damped: u64,
    taught: u64,
}

impl Engine {
    pub fn new(config: Config, directory: Arc<Directory>) -> Self {
        let knowledge = Knowledge::new(&config, directory);
        let mut detectors = detectors::all();
        detectors.fit(&knowledge);
        Self {
            knowledge,
            config,
            detectors,
            book: Book::default(),
            profiles: Profiles::default(),
            dc_tests: profiling::DcTests::default(),
            journal: None,
            recent_new: HashMap::new(),
            findings: Vec::new(),
            clock: Millis::MIN,
            activities: 0,
            untimed: 0,
            excluded: 0,
            findings_total: 0,
            findings_learning: 0,
            findings_known: 0,
            alerts_damped: 0,
            taught: 0,
        }
    }

    /// Keeps a journal of the activities within the detectors' windows, which
    /// [`Self::take_checkpoint`] hands out (a backend storing its state).
    #[must_use]
    pub fn with_checkpoints(mut self) -> Self {
        self.journal = Some(Journal::default());
        self
    }

    /// Keeps only the detectors keyed by `key`: the engine of a cluster partition keyed so
    /// (the others' alerts are raised by the engines of their own keys).
    #[must_use]
    pub fn keyed_by(mut self, key: Key) -> Self {
        self.detectors = self.detectors.keyed_by(key);
        self.detectors.fit(&self.knowledge);
        self
    }

    pub fn set_directory(&mut self, directory: Arc<Directory>) {
        self.knowledge.set_directory(directory);
        // Its honeytokens may have come or gone.
        self.detectors.fit(&self.knowledge);
    }

    /// Judges one activity; returns the alerts it made or changed. `reference` names the stored
    /// activity in the evidence (empty offline).
    pub fn observe(&mut self, activity: &Activity, reference: &str) -> Vec<Raised> {
        self.activities += 1;
        let Some(seen) = Observed::new(activity, reference) else {
            self.untimed += 1;
            return Vec::new();
        };
        if let Some(journal) = &mut self.journal {
            journal.record(activity);
        }
        self.watch(&seen);
        let mut raised = Vec::new();
        // Drained and put back: the list keeps its room from one activity to the next.
        let mut findings = std::mem::take(&mut self.findings);
        for mut finding in findings.drain(..) {
            self.findings_total += 1;
            if self.is_excluded(&finding) {
                self.excluded += 1;
                continue;
            }
            if let Some(behaviour) = finding.behaviour.take() {
                let threshold = self.config.threshold(finding.kind.type_name);
                match learning::gate(
                    finding.kind.type_name,
                    threshold,
                    &behaviour,
                    &mut self.profiles,
                    seen.time,
                ) {
                    Gate::Learning => {
                        self.findings_learning += 1;
                        continue;
                    }
                    Gate::Known => {
                        self.findings_known += 1;
                        continue;
                    }
                    Gate::Raise(differs) => {
                        if let Some(differs) = differs {
                            finding.description = format!("{}; {differs}", finding.description);
                        }
                        for (name, value) in behaviour.into_details() {
                            finding = finding.detail(name, value);
                        }
                    }
                }
            }
            let made = self.book.apply(finding);
            if made.new {
                self.damp(&made.id, seen.time);
            }
            raised.push(made);
        }
        self.findings = findings;
        profiling::learn(
            &mut self.profiles,
            &seen,
            &self.knowledge,
            &mut self.dc_tests,
        );
        raised
    }

    /// Advances the clock and what the engine knows, and lets the detectors of its kind judge the activity
    /// (its findings wait in `findings`).
    fn watch(&mut self, seen: &Observed<'_>) {
        if seen.time > self.clock {
            let day_changed = seen.time / DAY != self.clock / DAY;
            self.clock = seen.time;
            if day_changed {
                self.knowledge
                    .expire(self.clock.saturating_sub(LEARNED_LIFETIME));
            }
        }
        self.knowledge.learn(seen);
        let mut context = Context {
            knowledge: &self.knowledge,
            profiles: &self.profiles,
            config: &self.config,
            findings: &mut self.findings,
        };
        self.detectors.observe(seen, &mut context);
    }

    /// Replays a checkpoint's activity: the detectors' windows and the engine's knowledge take
    /// it in; its findings are dropped (their alerts are in the store) and the profiles, stored
    /// after it, have learned it already.
    fn replay(&mut self, activity: &Activity) -> Millis {
        if let Some(seen) = Observed::new(activity, "") {
            self.watch(&seen);
            self.findings.clear();
        }
        self.clock
    }

    /// Damping (MDI: "an increase of alerts of the exact same type reduces their importance"):
    /// a new alert of a type that already opened alerts for `damping_entities` other entities
    /// within `damping_window_hours` is lowered one severity step and to low confidence.
    fn damp(&mut self, id: &str, time: Millis) {
        let damping = &self.config.damping;
        if damping.entities == 0 {
            return;
        }
        let Some(alert) = self.book.get(id) else {
            return;
        };
        let Some(kind) = crate::catalogue::by_type(&alert.r#type) else {
            return;
        };
        let span = Millis::from(damping.window_hours) * HOUR;
        let others =
            self.recent_new
                .entry(kind.type_name)
                .or_default()
                .note(time, &alert.primary_key, span);
        if others < damping.entities as usize {
            return;
        }
        let note = format!(
            "{others} other entities raised {} within {} hours: importance lowered",
            alert.r#type, damping.window_hours
        );
        self.alerts_damped += 1;
        self.book.damp(id, note);
    }

    /// Teaches the profiles the behaviour of an alert an analyst closed as B-TP and excluded:
    /// the same behaviour no longer alerts, new behaviour of the same entity still does.
    /// False when the alert carries no learned behaviour (Part I alerts).
    pub fn teach(&mut self, alert: &Alert, time: Millis) -> bool {
        let details = alert
            .details
            .iter()
            .map(|Detail { name, value }| (name.as_str(), value.as_str()));
        let Some(behaviour) = Behaviour::from_details(details) else {
            return false;
        };
        behaviour.teach(&mut self.profiles, time);
        self.taught += 1;
        true
    }

    pub fn profiles(&self) -> &Profiles {
        &self.profiles
    }

    /// The profiles that changed since the last call, for the store.
    pub fn take_profile_changes(&mut self) -> Changes {
        self.profiles.take_changes()
    }

    /// What the engine judged and learned since the last call, to store with the alerts it
    /// raised: the changed profiles and the windows' journal.
    pub fn take_checkpoint(&mut self) -> Checkpoint {
        Checkpoint {
            profiles: self.profiles.take_changes(),
            windows: self
                .journal
                .as_mut()
                .map(|journal| journal.take(self.clock))
                .unwrap_or_default(),
        }
    }

    /// Takes back the windows a store kept (the segments of [`Self::take_checkpoint`], in
    /// order), replaying them; call it after [`Self::restore`] and [`Self::load_profiles`]. The
    /// engine keeps checkpoints from then on.
    pub fn restore_windows(&mut self, segments: Vec<(u64, Vec<u8>)>) {
        let mut journal = self.journal.take().unwrap_or_default();
        journal.restore(segments, |activity| self.replay(activity));
        self.journal = Some(journal);
    }

    /// Takes back the profiles a store kept.
    pub fn load_profiles(&mut self, records: impl IntoIterator<Item = (String, Vec<u8>)>) {
        self.profiles.load(records);
    }

    pub fn close(&mut self, id: &str, classification: Classification, time: Millis) -> bool {
        self.book.close(id, classification, time)
    }

    pub fn restore(&mut self, alerts: impl IntoIterator<Item = Alert>) {
        self.book.restore(alerts);
    }

    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.book.alerts()
    }

    /// Takes every alert the engine holds out of it (the end of a replay).
    pub fn take_alerts(&mut self) -> Vec<Alert> {
        self.book.take_alerts()
    }

    /// A raised alert as it stands now (`None` once evicted, which `detect_alerts_evicted`
    /// counts).
    pub fn alert(&self, id: &str) -> Option<&Alert> {
        self.book.get(id)
    }

    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        let mut counters = vec![
            ("detect_activities", self.activities),
            ("detect_activities_untimed", self.untimed),
            ("detect_findings", self.findings_total),
            ("detect_findings_excluded", self.excluded),
            ("detect_findings_learning", self.findings_learning),
            ("detect_findings_known", self.findings_known),
            ("detect_alerts_damped", self.alerts_damped),
            ("detect_profiles_taught", self.taught),
            ("detect_profiles", self.profiles.len() as u64),
            ("detect_alerts_evicted", self.book.evicted()),
            ("detect_state_evicted", self.detectors.evicted()),
        ];
        if let Some(journal) = &self.journal {
            counters.extend(journal.counters());
        }
        counters.extend(self.knowledge.evictions());
        counters.extend(self.profiles.counters());
        counters
    }

    /// Cold, with the rest of a finding's handling (finding.rs): out of the per-activity path.
    #[cold]
    fn is_excluded(&self, finding: &Finding) -> bool {
        let per_type = self.config.exclude.get(finding.kind.type_name);
        std::iter::once(&self.config.exclusions)
            .chain(per_type)
            .any(|exclusions| excludes(exclusions, &finding.entities))
    }
}

/// Whether exclusions name a party to the finding: its source or attacked account (a script with
/// an old password is excluded by its account), its source computer or address.
fn excludes(exclusions: &Exclusions, entities: &[AlertEntity]) -> bool {
    if exclusions.is_empty() {
        return false;
    }
    entities.iter().any(|entity| match entity.role() {
        Role::SourceAccount | Role::AttackedAccount => exclusions.accounts.iter().any(|account| {
            crate::knowledge::account_key(account) == crate::knowledge::account_key(&entity.name)
        }),
        Role::SourceComputer => {
            let named = !entity.name.is_empty()
                && exclusions
                    .computers
                    .iter()
                    .any(|computer| short_name(computer) == short_name(&entity.name));
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use dcwatch_entity::Directory;
    use dcwatch_proto::v1::{activity::Body, alert::Classification};

    use super::Engine;
    use crate::{
        Config,
        config::Exclusions,
        detectors::{
            Key,
            testing::{
                T0, activity, hash, krb_error, rpc_request, summary, tgs_rep, tgs_req,
                with_account, with_source_computer,
            },
        },
        time::{DAY, HOUR, SECOND},
    };

    fn dcsync(offset: i64, src: &str) -> dcwatch_proto::v1::Activity {
        with_account(
            activity(
                offset,
                src,
                "10.98.0.1:49160",
                Body::Dcerpc(rpc_request("drsuapi", 3, "DsGetNCChanges")),
            ),
            "LAB",
            "svc_aadconnect",
        )
    }

    fn engine(config: Config) -> Engine {
        Engine::new(config, Arc::new(Directory::default()))
    }

    #[test]
    fn exclusions_by_subnet_account_and_type_drop_findings_and_count_them() {
        let mut by_subnet = Config::test_mode();
        by_subnet.exclusions.subnets = vec!["10.98.5.0/24".parse().expect("a prefix")];
        let mut by_account = Config::test_mode();
        by_account.exclude.insert(
            "dcsync".into(),
            Exclusions {
                accounts: vec!["LAB\\SVC_AADCONNECT".into()],
                ..Exclusions::default()
            },
        );
        let mut other_type = Config::test_mode();
        other_type.exclude.insert(
            "brute_force".into(),
            Exclusions {
                accounts: vec!["svc_aadconnect".into()],
                ..Exclusions::default()
            },
        );
        for (config, raised) in [(by_subnet, 1), (by_account, 0), (other_type, 2)] {
            let mut engine = engine(config);
            let mut alerts = Vec::new();
            for activity in [dcsync(0, "10.98.5.7:5000"), dcsync(10, "10.98.6.7:5000")] {
                for raised in engine.observe(&activity, "") {
                    let alert = engine.alert(&raised.id).expect("raised alerts are kept");
                    alerts.push(format!("{} {}", alert.r#type, alert.primary_key));
                }
            }
            assert_eq!(alerts.len(), raised, "{alerts:?}");
            let excluded = engine
                .counters()
                .into_iter()
                .find(|(name, _)| *name == "detect_findings_excluded");
            assert_eq!(
                excluded,
                Some(("detect_findings_excluded", 2 - raised as u64))
            );
        }
    }

    #[test]
    fn a_closed_alert_reopens_within_a_day_and_a_new_one_is_raised_after() {
        let mut engine = engine(Config::test_mode());
        let first = engine.observe(&dcsync(0, "10.98.0.2:5000"), "");
        let id = first[0].id.clone();
        assert!(engine.close(&id, Classification::Btp, T0 + HOUR));
        assert!(
            !engine.close(&id, Classification::Btp, HOUR),
            "closing twice"
        );
        let reopened = engine.observe(&dcsync(2 * HOUR, "10.98.0.2:5000"), "");
        assert_eq!(
            (reopened[0].id.as_str(), reopened[0].new, reopened[0].emit),
            (id.as_str(), false, true)
        );
        let alert = engine.alert(&id).expect("the reopened alert");
        assert_eq!(alert.status(), dcwatch_proto::v1::alert::Status::Open);
        assert_eq!(alert.trigger(), dcwatch_proto::v1::alert::Trigger::Update);
        assert!(engine.close(&id, Classification::Tp, T0 + 3 * HOUR));
        let later = engine.observe(&dcsync(3 * HOUR + DAY + 1, "10.98.0.2:5000"), "");
        assert_ne!(later[0].id, id);
        assert!(later[0].new);
        assert_eq!(
            engine
                .alert(&later[0].id)
                .map(dcwatch_proto::v1::Alert::trigger),
            Some(dcwatch_proto::v1::alert::Trigger::New)
        );
    }

    #[test]
    fn engines_keyed_by_source_account_and_ticket_raise_one_engines_alerts_between_them() {
        let ticket = |activity, name| {
            with_source_computer(activity, name, dcwatch_proto::v1::Certainty::High)
        };
        let activities = [
            dcsync(0, "10.98.0.9:5000"),
            ticket(
                tgs_rep(
                    0,
                    "10.98.0.20:50000",
                    "alice",
                    "krbtgt/LAB.EXAMPLE",
                    &hash(3),
                    |_| {},
                ),
                "WS20",
            ),
            ticket(
                tgs_req(SECOND, "10.98.0.21:50000", "cifs/fs1", &hash(3), |_| {}),
                "WS21",
            ),
            ticket(
                tgs_req(2 * SECOND, "10.98.0.21:50001", "cifs/fs1", &hash(3), |_| {}),
                "WS21",
            ),
        ];
        let alerts = |engine: Engine| {
            let mut engine = engine;
            for activity in &activities {
                engine.observe(activity, "");
            }
            let mut alerts: Vec<_> = engine.alerts().cloned().collect();
            alerts.sort_by(|a, b| a.r#type.cmp(&b.r#type));
            summary(&alerts)
        };
        let one = alerts(engine(Config::test_mode()));
        assert_eq!(
            one.iter()
                .map(|(kind, _, _)| kind.as_str())
                .collect::<Vec<_>>(),
            ["dcsync", "pass_the_ticket"]
        );
        let keyed: Vec<_> = [Key::Source, Key::Account, Key::Ticket]
            .map(|key| alerts(engine(Config::test_mode()).keyed_by(key)))
            .into();
        assert_eq!(keyed[0], one[..1], "dcsync is keyed by its source");
        assert!(keyed[1].is_empty(), "{:?}", keyed[1]);
        assert_eq!(keyed[2], one[1..], "pass-the-ticket by its ticket");
    }

    #[test]
    fn updates_reach_the_outputs_at_most_every_fifteen_minutes() {
        let mut engine = engine(Config::test_mode());
        let emitted: Vec<bool> = [0, 60_000, 14 * 60_000, 16 * 60_000, 17 * 60_000]
            .iter()
            .map(|offset| engine.observe(&dcsync(*offset, "10.98.0.2:5000"), "")[0].emit)
            .collect();
        assert_eq!(emitted, [true, false, false, true, false]);
    }

    #[test]
    fn an_engine_rebuilt_from_checkpoints_goes_on_with_the_windows_and_raises_once() {
        // 14 wrong passwords: 6 before the move, 8 after; neither half is a brute force alone.
        let guesses: Vec<_> = (0..14)
            .map(|n| krb_error(n * SECOND, "10.98.0.5:50000", "alice", 24))
            .collect();
        let mut single = engine(Config::test_mode());
        let mut raised_single = 0;
        for guess in &guesses {
            raised_single += single.observe(guess, "").iter().filter(|r| r.new).count();
        }
        let expected = summary(&single.alerts().cloned().collect::<Vec<_>>());
        assert_eq!(raised_single, 1);

        let mut before = engine(Config::test_mode()).with_checkpoints();
        let mut segments = Vec::new();
        for half in guesses[..6].chunks(4) {
            for guess in half {
                assert!(before.observe(guess, "").is_empty());
            }
            let checkpoint = before.take_checkpoint();
            assert_eq!(checkpoint.windows.forget_before, 0);
            segments.extend(checkpoint.windows.append);
        }
        assert_eq!(segments.len(), 2, "one segment per chunk");
        for (restored, raises) in [(true, 1), (false, 0)] {
            let mut after = engine(Config::test_mode());
            if restored {
                after.restore_windows(segments.clone());
            }
            let raised: usize = guesses[6..]
                .iter()
                .map(|guess| after.observe(guess, "").iter().filter(|r| r.new).count())
                .sum();
            assert_eq!(raised, raises, "restored: {restored}");
            if restored {
                assert_eq!(
                    summary(&after.alerts().cloned().collect::<Vec<_>>()),
                    expected
                );
                let counter = |name| {
                    after
                        .counters()
                        .into_iter()
                        .find(|(known, _)| *known == name)
                        .map(|(_, value)| value)
                };
                assert_eq!(counter("detect_windows_replayed"), Some(6));
                assert_eq!(
                    counter("detect_activities"),
                    Some(8),
                    "replays are not judged"
                );
            }
        }
    }
}
