//! Massive object deletion (ATA): more than 5% of all accounts deleted within a day, from events
//! 4726 (a user deleted) and 4743 (a computer deleted) the DCs forward. It catches an insider or
//! ransomware crew wiping the directory. Without a directory to count the accounts, a fixed
//! number stands in (ours, below), and the alert says so.

use dcwatch_proto::v1::{activity::Body, alert::Confidence, alert_entity::Role};

use super::{Context, Detector, Kinds, target::listed};
use crate::{
    bounded::{BoundedMap, Window},
    catalogue::MASSIVE_OBJECT_DELETION,
    finding::{Finding, account_entity},
    observed::Observed,
    time::{DAY, Millis},
};

const USER_DELETED: u32 = 4726;
const COMPUTER_DELETED: u32 = 4743;
/// ATA's share of all accounts deleted within `SPAN`.
const SHARE_PERCENT: usize = 5;
const SPAN: Millis = DAY;
/// Deletions within `SPAN` that raise the alert when no directory says how many accounts there
/// are (ours: 5% of a 400-account domain, the smallest where a mass deletion matters).
const WITHOUT_DIRECTORY: usize = 20;
/// Deletions remembered per domain (more than any threshold needs).
const MAX_DELETIONS: usize = 100_000;
/// Domains followed.
const MAX_DOMAINS: usize = 64;

#[derive(Debug)]
pub(super) struct MassiveObjectDeletion {
    domains: BoundedMap<String, Deletions>,
}

#[derive(Debug)]
struct Deletions {
    window: Window<(String, String)>,
    /// The accounts in `window` by name (within the domain): an account is deleted once, so its
    /// deletion arriving again (two forwarders, one event in two layouts) is not another one.
    deleted: BoundedMap<String, ()>,
    /// The threshold was crossed and the window has not fallen below it since: each further
    /// deletion adds one to the alert.
    raised: bool,
}

impl Default for MassiveObjectDeletion {
    fn default() -> Self {
        Self {
            domains: BoundedMap::new(MAX_DOMAINS),
        }
    }
}

impl Detector for MassiveObjectDeletion {
    fn kinds(&self) -> Kinds {
        Kinds::WINDOWS_EVENT
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        let Some(Body::WindowsEvent(event)) = seen.body() else {
            return;
        };
        if event.event_id != USER_DELETED && event.event_id != COMPUTER_DELETED {
            return;
        }
        let target = event.target.clone().unwrap_or_default();
        let subject = event.subject.clone().unwrap_or_default();
        // A DC logs the deletions of its own domain's accounts: its name gives the domain, where
        // the target's domain is a NetBIOS name in some layouts and missing in others.
        let domain = event
            .computer
            .split_once('.')
            .map(|(_, domain)| domain.to_lowercase())
            .filter(|domain| !domain.is_empty())
            .unwrap_or_else(|| target.domain.to_lowercase());
        let deleted = if target.domain.is_empty() {
            target.name.clone()
        } else {
            format!("{}\\{}", target.domain, target.name)
        };
        let actor = if subject.domain.is_empty() {
            subject.name.clone()
        } else {
            format!("{}\\{}", subject.domain, subject.name)
        };
        let state = self.domains.touch(domain.clone(), seen.time, || Deletions {
            window: Window::new(MAX_DELETIONS),
            deleted: BoundedMap::new(MAX_DELETIONS),
            raised: false,
        });
        // A layout without the event's text names no account: each such event counts.
        if !target.name.is_empty() {
            state.deleted.expire(seen.time.saturating_sub(SPAN));
            let name = target.name.to_lowercase();
            if state.deleted.get(&name).is_some() {
                return;
            }
            state.deleted.touch(name, seen.time, || ());
        }
        state
            .window
            .push(seen.time, (deleted.clone(), actor.clone()), SPAN);
        let window = &state.window;
        let deletions = window.len();
        let accounts = context.knowledge.directory().live_account_count();
        let (threshold, basis) = if context.knowledge.has_directory() && accounts > 0 {
            // The directory may already have dropped the deleted accounts: count them back.
            let before = accounts + deletions;
            (
                (before * SHARE_PERCENT).div_ceil(100).max(1),
                format!(
                    "directory: {before} accounts before the deletions; {SHARE_PERCENT}% of them"
                ),
            )
        } else {
            (
                WITHOUT_DIRECTORY,
                format!(
                    "no directory to count the accounts: {WITHOUT_DIRECTORY} deletions within a day stand in for {SHARE_PERCENT}%"
                ),
            )
        };
        if deletions < threshold {
            state.raised = false;
            return;
        }
        let start = window.first_time().unwrap_or(seen.time);
        let actors: Vec<&str> = {
            let mut names: Vec<&str> = window
                .items()
                .map(|(_, (_, actor))| actor.as_str())
                .filter(|a| !a.is_empty())
                .collect();
            names.sort_unstable();
            names.dedup();
            names
        };
        let names: Vec<&str> = window.items().map(|(_, (name, _))| name.as_str()).collect();
        let who = if actors.is_empty() {
            "Unknown accounts".to_owned()
        } else {
            listed(actors.iter().copied(), 5)
        };
        let description = format!(
            "{who} deleted {deletions} accounts of {} within a day, more than {SHARE_PERCENT}% of the domain's accounts",
            if domain.is_empty() {
                "the domain"
            } else {
                domain.as_str()
            }
        );
        // The crossing carries every deletion so far; later ones add themselves.
        let count = if state.raised { 1 } else { deletions as u64 };
        state.raised = true;
        let mut finding = Finding::on(
            &MASSIVE_OBJECT_DELETION,
            format!("domain:{domain}"),
            seen,
            format!("event {} deleted {deleted}", event.event_id),
        )
        .without_source_computer()
        .spanning(start, count)
        .describe(description)
        .detail("deleted", listed(names.iter().copied(), 20))
        .relied_on(basis)
        .app("WindowsEvent");
        for actor in actors.iter().take(5) {
            let (domain, name) = actor.split_once('\\').unwrap_or(("", actor));
            finding = finding.entity(account_entity(
                Role::SourceAccount,
                domain,
                name,
                context.knowledge.directory(),
            ));
        }
        if !context.knowledge.has_directory() {
            finding = finding.confidence(Confidence::MediumConfidence);
        }
        context.raise(finding);
    }

    fn evicted(&self) -> u64 {
        self.domains.evicted()
            + self
                .domains
                .iter()
                .map(|(_, state)| state.window.dropped() + state.deleted.evicted())
                .sum::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use dcwatch_entity::{Directory, Object, ObjectKind, TagConfig};
    use dcwatch_proto::v1::{EventAccount, WindowsEventActivity};

    use super::WITHOUT_DIRECTORY;
    use crate::{
        detectors::{
            builders::event,
            testing::{run, summary},
        },
        time::{DAY, MINUTE},
    };

    fn deleted(offset: i64, id: u32, name: &str) -> dcwatch_proto::v1::Activity {
        event(
            offset,
            "10.98.0.1:514",
            WindowsEventActivity {
                event_id: id,
                computer: "DC1.lab.example".into(),
                subject: Some(EventAccount {
                    name: "mallory".into(),
                    domain: "LAB".into(),
                    sid: String::new(),
                }),
                target: Some(EventAccount {
                    name: name.into(),
                    domain: "LAB".into(),
                    sid: String::new(),
                }),
                ..WindowsEventActivity::default()
            },
        )
    }

    fn users(count: usize) -> Vec<Object> {
        (0..count)
            .map(|index| Object {
                kind: ObjectKind::User,
                sam_account_name: format!("user{index}"),
                sid: format!("S-1-5-21-1-2-3-{}", 2000 + index),
                ..Object::default()
            })
            .collect()
    }

    #[test]
    fn five_percent_of_the_directory_deleted_in_a_day_is_raised_once() {
        // 190 accounts left after 10 deletions: 200 before, 5% is 10.
        let directory = Directory::new(Vec::new(), users(190), &TagConfig::default(), 0);
        let mut activities: Vec<_> = (0..12)
            .map(|index| deleted(index * MINUTE, 4726, &format!("gone{index}")))
            .collect();
        activities.push(deleted(13 * MINUTE, 4743, "WS99$"));
        let alerts = run(None, directory, &activities);
        assert_eq!(
            summary(&alerts),
            [(
                "massive_object_deletion".into(),
                "domain:lab.example".into(),
                13
            )]
        );
        assert!(
            alerts[0]
                .description
                .starts_with("LAB\\mallory deleted 13 accounts of lab"),
            "{}",
            alerts[0].description
        );
    }

    #[test]
    fn a_few_deletions_or_deletions_spread_over_days_are_not() {
        let directory = Directory::new(Vec::new(), users(190), &TagConfig::default(), 0);
        let few: Vec<_> = (0..9)
            .map(|index| deleted(index * MINUTE, 4726, &format!("gone{index}")))
            .collect();
        assert!(run(None, directory, &few).is_empty());
        let spread: Vec<_> = (0..30)
            .map(|index| deleted(index * DAY / 10 * 8, 4726, &format!("gone{index}")))
            .collect();
        assert!(
            run(
                None,
                Directory::new(Vec::new(), users(190), &TagConfig::default(), 0),
                &spread
            )
            .is_empty()
        );
    }

    #[test]
    fn without_a_directory_a_fixed_number_stands_in() {
        let below: Vec<_> = (0..WITHOUT_DIRECTORY - 1)
            .map(|index| deleted(index as i64 * MINUTE, 4726, &format!("u{index}")))
            .collect();
        assert!(run(None, Directory::default(), &below).is_empty());
        let at: Vec<_> = (0..WITHOUT_DIRECTORY)
            .map(|index| deleted(index as i64 * MINUTE, 4726, &format!("u{index}")))
            .collect();
        let alerts = run(None, Directory::default(), &at);
        assert_eq!(alerts.len(), 1);
        assert!(
            alerts[0].relied_on[0].starts_with("no directory"),
            "{:?}",
            alerts[0].relied_on
        );
    }

    #[test]
    fn a_deletion_forwarded_twice_counts_once() {
        // Below the stand-in threshold in distinct accounts, each event arriving twice (two
        // forwarders): not a mass deletion.
        let twice: Vec<_> = (0..WITHOUT_DIRECTORY - 1)
            .flat_map(|index| {
                let name = format!("u{index}");
                [
                    deleted(index as i64 * MINUTE, 4726, &name),
                    deleted(index as i64 * MINUTE + 1, 4726, &name.to_uppercase()),
                ]
            })
            .collect();
        assert!(run(None, Directory::default(), &twice).is_empty());
        let one_more = deleted(DAY / 2, 4726, "the-last");
        let alerts = run(
            None,
            Directory::default(),
            &[twice, vec![one_more]].concat(),
        );
        assert_eq!(alerts.len(), 1);
        assert!(
            alerts[0]
                .description
                .contains(&format!("deleted {WITHOUT_DIRECTORY} accounts")),
            "{}",
            alerts[0].description
        );
    }
}
