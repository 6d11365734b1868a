//! Learning periods (DETECTIONS.md Part II, MDI's figures) and the gate every behavioural
//! finding goes through.
//!
//! A detection of Part II tags its finding with the `Behaviour` it shows: whose learning clock
//! applies (the entity the period counts on, from its first activity), whose profile holds the
//! behaviour, and the items that make it up. At threshold high the gate then:
//! - during the learning period, learns the items and drops the finding;
//! - after it, drops the finding when the profile knows every item (learned, or taught by an
//!   analyst's B-TP close), and raises it otherwise, its description saying what was learned
//!   and what differs.
//!
//! Thresholds medium and low skip learning periods (MDI's advanced settings): their findings
//! are raised unless an analyst taught the profile the behaviour.
//!
//! A behaviour marked `shared` (LDAP query classes) is also counted network-wide: once
//! `POPULAR_SUBJECTS` other computers showed an item, it is popular, and at threshold high it
//! no longer alerts for any computer (MDI: "popular queries are filtered"; medium disables the
//! filter).

use crate::{
    config::Threshold,
    profiles::{Profile, Profiles, Subject},
    time::{DAY, Millis},
};

/// What a learning period counts on, and how long it is.
#[derive(Debug, PartialEq, Eq)]
pub struct Period {
    pub type_name: &'static str,
    /// The entity whose first activity starts it.
    pub clock: Subject,
    pub span: Millis,
    /// Where the figure comes from.
    pub source: &'static str,
}

/// LDAP reconnaissance waits this long after the deployment's first activity, whatever the
/// computer (MDI: "none in the first 10 days").
pub const LDAP_DEPLOYMENT_WAIT: Millis = 10 * DAY;
/// A user's VPN profile needs this many connections within `VPN_WINDOW` (MDI).
pub const VPN_MIN_CONNECTIONS: usize = 5;
pub const VPN_WINDOW: Millis = 30 * DAY;

/// Every learning period, by alert type (DETECTIONS.md Part II).
pub const PERIODS: &[Period] = &[
    Period {
        type_name: "samr_recon",
        clock: Subject::Dc,
        span: 28 * DAY,
        source: "MDI: 4 weeks per DC",
    },
    Period {
        type_name: "ldap_recon",
        clock: Subject::Computer,
        span: 15 * DAY,
        source: "MDI: 15 days per computer, none in the first 10 days of deployment",
    },
    Period {
        type_name: "dns_recon",
        clock: Subject::Dc,
        span: 8 * DAY,
        source: "MDI: 8 days from the start of the DC's monitoring",
    },
    Period {
        type_name: "brute_force",
        clock: Subject::Computer,
        span: 7 * DAY,
        source: "MDI: 1 week per source",
    },
    Period {
        type_name: "password_spray",
        clock: Subject::Computer,
        span: 7 * DAY,
        source: "MDI: 1 week per source",
    },
    Period {
        type_name: "overpass_the_hash",
        clock: Subject::Computer,
        span: 30 * DAY,
        source: "MDI 2008: 1 month per computer",
    },
    Period {
        type_name: "golden_ticket",
        clock: Subject::Dc,
        span: 5 * DAY,
        source: "MDI 2009: 5 days from the start of the DC's monitoring",
    },
    Period {
        type_name: "pass_the_hash",
        clock: Subject::User,
        span: 7 * DAY,
        source: "ours: a week of a user's logons before a computer is new to them (MDI: not documented)",
    },
    Period {
        type_name: "sensitive_group_change",
        clock: Subject::Dc,
        span: 28 * DAY,
        source: "MDI: 4 weeks per DC",
    },
    Period {
        type_name: "suspicious_vpn",
        clock: Subject::User,
        span: VPN_WINDOW,
        source: "MDI: 30 days from the user's first VPN connection and 5 connections in the last 30 days",
    },
];

pub fn period(type_name: &str) -> Option<&'static Period> {
    PERIODS.iter().find(|period| period.type_name == type_name)
}

/// Where an entity stands in a detection's learning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Learning; `until` when the end is a date (a VPN user may also lack connections).
    Learning {
        until: Option<Millis>,
        why: String,
    },
    Active,
}

/// The state of `period` for the profile `clock` at `now`.
pub fn state(period: &Period, profiles: &Profiles, clock: Option<&Profile>, now: Millis) -> State {
    let Some(profile) = clock else {
        return State::Learning {
            until: None,
            why: "no activity yet".into(),
        };
    };
    if period.type_name == "suspicious_vpn" {
        if profile.vpn_first() == 0 {
            return State::Learning {
                until: None,
                why: "no VPN connection yet".into(),
            };
        }
        let until = profile.vpn_first().saturating_add(period.span);
        let recent = profile.vpn_connections_since(now.saturating_sub(VPN_WINDOW));
        if now < until || recent < VPN_MIN_CONNECTIONS {
            return State::Learning {
                until: (now < until).then_some(until),
                why: format!(
                    "{recent} of {VPN_MIN_CONNECTIONS} VPN connections in the last 30 days"
                ),
            };
        }
        return State::Active;
    }
    let mut until = profile.first_seen.saturating_add(period.span);
    if period.type_name == "ldap_recon"
        && let Some(deployed) = profiles.deployed()
    {
        until = until.max(deployed.saturating_add(LDAP_DEPLOYMENT_WAIT));
    }
    if now < until {
        State::Learning {
            until: Some(until),
            why: period.source.to_owned(),
        }
    } else {
        State::Active
    }
}

/// One line of `dcwatch-backend learning`: where an entity stands in one detection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Standing {
    pub type_name: &'static str,
    /// The profile key: `dc:10.0.0.1`, `computer:10.0.0.7`, `user:alice`.
    pub entity: String,
    pub state: State,
}

/// Every (detection, entity) pair's standing at the profiles' clock, sorted by detection then
/// entity; thresholds medium and low make every entity of their detections active.
pub fn standings(profiles: &Profiles, config: &crate::Config) -> Vec<Standing> {
    let mut keys: Vec<(String, &Profile)> = profiles.iter().collect();
    keys.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::new();
    for period in PERIODS {
        let skipped = config.threshold(period.type_name) != Threshold::High;
        for (key, profile) in &keys {
            if Subject::of_key(key) != Some(period.clock)
                || (period.type_name == "suspicious_vpn" && profile.vpn_first() == 0)
            {
                continue;
            }
            let state = if skipped {
                State::Active
            } else {
                state(period, profiles, Some(profile), profiles.clock())
            };
            out.push(Standing {
                type_name: period.type_name,
                entity: key.clone(),
                state,
            });
        }
    }
    out
}

/// The behaviour a finding shows, in profile terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Behaviour {
    /// The profile whose first activity starts the learning period (`dc:10.0.0.1`).
    pub clock: String,
    /// The profile that holds the behaviour (`computer:10.0.0.7`).
    pub subject: String,
    /// How descriptions name the subject: `WS07 (10.0.0.7)`.
    pub subject_text: String,
    /// (facet, item): the behaviour is known when every item is.
    pub items: Vec<(String, String)>,
    /// What the subject did, as a description says it: "enumerated all users over SAMR".
    pub phrase: String,
    /// Items many computers show are usual network-wide (MDI: "popular queries are
    /// filtered"): the gate counts the subjects that show each, and at threshold high an item
    /// `POPULAR_SUBJECTS` other computers showed is known to every computer.
    pub shared: bool,
}

impl Behaviour {
    pub fn new(
        clock: String,
        subject: String,
        subject_text: String,
        phrase: impl Into<String>,
    ) -> Self {
        Self {
            clock,
            subject,
            subject_text,
            items: Vec::new(),
            phrase: phrase.into(),
            shared: false,
        }
    }

    /// Marks the items as counted network-wide (`shared`).
    pub fn shared(mut self) -> Self {
        self.shared = true;
        self
    }

    pub fn item(mut self, facet: &str, item: impl Into<String>) -> Self {
        self.items.push((facet.to_owned(), item.into()));
        self
    }

    /// Whether the profile knows every item; at threshold high a shared item popular
    /// network-wide counts as known (medium and low disable that filter, as MDI's do).
    pub fn known(&self, profiles: &Profiles, threshold: Threshold) -> bool {
        let popular_filter = self.shared && threshold == Threshold::High;
        !self.items.is_empty()
            && self.items.iter().all(|(facet, item)| {
                profiles.knows(&self.subject, facet, item)
                    || (popular_filter && profiles.popular(facet, item))
            })
    }

    /// Teaches the subject's profile every item (a finding during learning, a B-TP close).
    pub fn teach(&self, profiles: &mut Profiles, time: Millis) {
        for (facet, item) in &self.items {
            profiles.learn(&self.subject, time, facet, item);
        }
    }

    /// The alert details that carry it, so a close can teach it after a restart. It is taken
    /// apart: a raised finding has no more use for it.
    pub fn into_details(self) -> Vec<(&'static str, String)> {
        let mut details = Vec::with_capacity(1 + self.items.len());
        details.push((SUBJECT_DETAIL, self.subject));
        details.extend(self.items.into_iter().map(|(mut facet, item)| {
            facet.push('\t');
            facet.push_str(&item);
            (ITEM_DETAIL, facet)
        }));
        details
    }

    /// The subject and items alert details carry (`details`' inverse).
    pub fn from_details<'a>(details: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<Self> {
        let mut subject = None;
        let mut items = Vec::new();
        for (name, value) in details {
            match name {
                SUBJECT_DETAIL => subject = Some(value.to_owned()),
                ITEM_DETAIL => {
                    if let Some((facet, item)) = value.split_once('\t') {
                        items.push((facet.to_owned(), item.to_owned()));
                    }
                }
                _ => {}
            }
        }
        let subject = subject?;
        (!items.is_empty()).then(|| Self {
            clock: subject.clone(),
            subject_text: subject.clone(),
            subject,
            items,
            phrase: String::new(),
            shared: false,
        })
    }
}

pub const SUBJECT_DETAIL: &str = "learned_subject";
pub const ITEM_DETAIL: &str = "learned_item";

/// What the gate made of a finding.
#[derive(Debug, PartialEq, Eq)]
pub enum Gate {
    /// Raise it; at threshold high, with what differs from the learned profile.
    Raise(Option<String>),
    /// Dropped: the clock entity is still learning (the behaviour was learned).
    Learning,
    /// Dropped: the profile knows the behaviour.
    Known,
}

/// Whether a finding showing `behaviour` would be raised now (for a detector that lists in its
/// alert what it saw: it lists only what alerts). The gate's judgement, without learning.
pub fn would_raise(
    type_name: &str,
    threshold: Threshold,
    behaviour: &Behaviour,
    profiles: &Profiles,
) -> bool {
    !behaviour.known(profiles, threshold)
        && !learning_now(type_name, threshold, &behaviour.clock, profiles)
}

/// Whether a finding of `type_name` whose learning counts on the profile `clock` would now be
/// learned rather than judged (threshold high, inside the period).
pub fn learning_now(
    type_name: &str,
    threshold: Threshold,
    clock: &str,
    profiles: &Profiles,
) -> bool {
    threshold == Threshold::High
        && period(type_name).is_some_and(|period| {
            state(period, profiles, profiles.get(clock), profiles.clock()) != State::Active
        })
}

/// Judges a behavioural finding of `type_name` at `threshold`. Cold, as the findings' other
/// steps (finding.rs): out of the path every activity runs.
#[cold]
pub fn gate(
    type_name: &str,
    threshold: Threshold,
    behaviour: &Behaviour,
    profiles: &mut Profiles,
    time: Millis,
) -> Gate {
    // Judged before this subject counts: popular means made by that many *other* computers.
    let known = behaviour.known(profiles, threshold);
    if behaviour.shared {
        for (facet, item) in &behaviour.items {
            profiles.note_shared(&behaviour.subject, time, facet, item);
        }
    }
    if known {
        return Gate::Known;
    }
    let Some(period) = period(type_name) else {
        return Gate::Raise(None);
    };
    if threshold != Threshold::High {
        return Gate::Raise(None);
    }
    // The clock entity's first activity may not have been told apart (a DC only the
    // detection's own evidence shows): its learning starts no later than this.
    profiles.touch(&behaviour.clock, time);
    // Judged at the finding's time, not the profiles' clock (the latest activity the engine
    // saw): the clock depends on which other activities reached this engine and when (a
    // cluster partition's engine sees a share of them, a late sensor's batch arrives after
    // later ones), the finding's time only on the entity's own activities.
    let at = state(period, profiles, profiles.get(&behaviour.clock), time);
    if let State::Learning { .. } = at {
        behaviour.teach(profiles, time);
        return Gate::Learning;
    }
    let learned_days = profiles
        .get(&behaviour.subject)
        .map_or(0, |profile| time.saturating_sub(profile.first_seen) / DAY);
    Gate::Raise(Some(format!(
        "{} had never {} in {learned_days} days of learning",
        behaviour.subject_text, behaviour.phrase
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue;

    fn samr(profiles: &mut Profiles, time: Millis) -> (Behaviour, Gate) {
        let behaviour = Behaviour::new(
            Subject::Dc.key("10.98.0.1"),
            Subject::Computer.key("10.98.0.7"),
            "WS07 (10.98.0.7)".into(),
            "enumerated all users over SAMR",
        )
        .item("samr_recon", "enumerated all users");
        let gate = gate("samr_recon", Threshold::High, &behaviour, profiles, time);
        (behaviour, gate)
    }

    #[test]
    fn every_period_names_a_catalogued_type() {
        for period in PERIODS {
            assert!(catalogue::is_type(period.type_name), "{}", period.type_name);
        }
    }

    #[test]
    fn high_learns_during_the_period_stays_silent_on_the_learned_and_raises_the_new() {
        let mut profiles = Profiles::default();
        profiles.touch("dc:10.98.0.1", 0);
        profiles.touch("computer:10.98.0.7", 0);
        assert_eq!(samr(&mut profiles, DAY).1, Gate::Learning);
        profiles.touch("dc:10.98.0.1", 29 * DAY);
        assert_eq!(samr(&mut profiles, 29 * DAY).1, Gate::Known);
        let other = Behaviour::new(
            "dc:10.98.0.1".into(),
            "computer:10.98.0.7".into(),
            "WS07 (10.98.0.7)".into(),
            "enumerated all groups over SAMR",
        )
        .item("samr_recon", "enumerated all groups");
        assert_eq!(
            gate(
                "samr_recon",
                Threshold::High,
                &other,
                &mut profiles,
                29 * DAY
            ),
            Gate::Raise(Some(
                "WS07 (10.98.0.7) had never enumerated all groups over SAMR in 29 days of learning"
                    .into()
            ))
        );
        assert_eq!(
            gate("samr_recon", Threshold::Medium, &other, &mut profiles, DAY),
            Gate::Raise(None)
        );
    }

    #[test]
    fn medium_and_low_skip_learning_but_honour_what_was_taught() {
        for threshold in [Threshold::Medium, Threshold::Low] {
            let mut profiles = Profiles::default();
            profiles.touch("dc:10.98.0.1", 0);
            let behaviour = Behaviour::new(
                "dc:10.98.0.1".into(),
                "computer:10.98.0.7".into(),
                "WS07".into(),
                "enumerated all users over SAMR",
            )
            .item("samr_recon", "enumerated all users");
            assert_eq!(
                gate("samr_recon", threshold, &behaviour, &mut profiles, DAY),
                Gate::Raise(None)
            );
            behaviour.teach(&mut profiles, DAY);
            assert_eq!(
                gate("samr_recon", threshold, &behaviour, &mut profiles, DAY),
                Gate::Known
            );
        }
    }

    #[test]
    fn ldap_waits_for_the_deployment_and_vpn_for_five_connections() {
        let mut profiles = Profiles::default();
        profiles.touch("dc:10.98.0.1", 0);
        profiles.touch("computer:10.98.0.7", 0);
        profiles.touch("computer:10.98.0.7", 16 * DAY);
        let ldap = period("ldap_recon").expect("a period");
        assert_eq!(
            state(
                ldap,
                &profiles,
                profiles.get("computer:10.98.0.7"),
                16 * DAY
            ),
            State::Active
        );
        profiles.touch("computer:10.98.0.8", 16 * DAY - 1);
        assert_eq!(
            state(
                ldap,
                &profiles,
                profiles.get("computer:10.98.0.8"),
                16 * DAY
            ),
            State::Learning {
                until: Some(31 * DAY - 1),
                why: ldap.source.into()
            }
        );
        let vpn = period("suspicious_vpn").expect("a period");
        for day in 0..4 {
            profiles.vpn_connected("user:alice", day * DAY);
        }
        profiles.touch("user:alice", 40 * DAY);
        assert!(matches!(
            state(vpn, &profiles, profiles.get("user:alice"), 40 * DAY),
            State::Learning { until: None, .. }
        ));
        for day in 36..40 {
            profiles.vpn_connected("user:alice", day * DAY);
        }
        profiles.vpn_connected("user:alice", 40 * DAY);
        assert_eq!(
            state(vpn, &profiles, profiles.get("user:alice"), 40 * DAY),
            State::Active
        );
    }

    #[test]
    fn standings_list_each_detection_of_each_entity_and_medium_skips_learning() {
        let mut profiles = Profiles::default();
        profiles.touch("dc:10.98.0.1", 0);
        profiles.touch("computer:10.98.0.7", 9 * DAY);
        let mut config = crate::Config::default();
        config
            .thresholds
            .insert("brute_force".into(), Threshold::Medium);
        let standings = standings(&profiles, &config);
        let state_of = |type_name: &str, entity: &str| {
            standings
                .iter()
                .find(|standing| standing.type_name == type_name && standing.entity == entity)
                .map(|standing| standing.state.clone())
        };
        assert_eq!(
            state_of("golden_ticket", "dc:10.98.0.1"),
            Some(State::Active)
        );
        assert!(matches!(
            state_of("samr_recon", "dc:10.98.0.1"),
            Some(State::Learning { until: Some(until), .. }) if until == 28 * DAY
        ));
        assert_eq!(
            state_of("brute_force", "computer:10.98.0.7"),
            Some(State::Active)
        );
        assert!(matches!(
            state_of("password_spray", "computer:10.98.0.7"),
            Some(State::Learning { until: Some(until), .. }) if until == 16 * DAY
        ));
        assert_eq!(state_of("samr_recon", "computer:10.98.0.7"), None);
        assert_eq!(state_of("suspicious_vpn", "user:alice"), None);
    }

    #[test]
    fn a_behaviour_survives_the_details_of_its_alert() {
        let behaviour = Behaviour::new(
            "dc:1".into(),
            "computer:10.98.0.7".into(),
            "WS07".into(),
            "x",
        )
        .item("samr_recon", "enumerated all users")
        .item("vpn_device", "aa-bb");
        let details = behaviour.clone().into_details();
        let back = Behaviour::from_details(details.iter().map(|(n, v)| (*n, v.as_str())))
            .expect("a behaviour");
        assert_eq!(
            (back.subject, back.items),
            (behaviour.subject, behaviour.items)
        );
    }
}
