//! Health issues: conditions a sensor (or the backend, about a sensor) finds in its own
//! measurements, after Defender for Identity's list. An issue opens when its condition starts
//! and closes when it ends; [`Issues`] turns "the condition now" into those transitions.
//!
//! ```
//! use dcwatch_telemetry::health::{IssueKind, Issues};
//! let mut issues = Issues::default();
//! // Each check says, every time it runs, whether its condition holds (with a detail) or not.
//! let opened = issues.set(IssueKind::TrafficDropped, "", Some("2.5% of frames".into()), 10);
//! assert!(opened.is_some_and(|issue| issue.is_open()));
//! assert!(issues.set(IssueKind::TrafficDropped, "", Some("3%".into()), 20).is_none());
//! let closed = issues.set(IssueKind::TrafficDropped, "", None, 30).expect("closed");
//! assert_eq!((closed.start_ns, closed.end_ns), (10, Some(30)));
//! ```
//!
//! Issues travel as [`HealthEvent`]s with a state ([`Issue::to_event`], [`Issue::from_event`]).

use std::collections::BTreeMap;

use dcwatch_proto::v1::{
    HealthEvent,
    health_event::{Severity, State},
};
use pbjson_types::Timestamp;

/// How long a sensor may stay silent before the backend opens [`IssueKind::SensorSilent`].
pub const SENSOR_SILENT_AFTER_SECS: u64 = 300;
/// Clock skew beyond which [`IssueKind::ClockSkew`] opens (Kerberos' own tolerance).
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;

macro_rules! kinds {
    ($($(#[doc = $doc:literal])* $kind:ident = $name:literal, $severity:ident, $title:literal;)*) => {
        /// What a health issue is about.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum IssueKind {
            $($(#[doc = $doc])* $kind,)*
        }

        impl IssueKind {
            pub const ALL: &[Self] = &[$(Self::$kind),*];

            /// The stable name on the wire, in CEF and in metrics' `kind` label.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Self::$kind => $name,)*
                }
            }

            pub const fn severity(self) -> Severity {
                match self {
                    $(Self::$kind => Severity::$severity,)*
                }
            }

            /// For people: what the console and the CLI show.
            pub const fn title(self) -> &'static str {
                match self {
                    $(Self::$kind => $title,)*
                }
            }

            /// The kind named `name`, if any.
            pub fn from_name(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|kind| kind.name() == name)
            }
        }
    };
}

kinds! {
    /// A capture interface is down (subject: the interface).
    NicDown = "NIC_DOWN", Error, "Capture network interface is down";
    /// A capture interface received nothing for a while (subject: the interface).
    NicSilent = "NIC_SILENT", Warning, "Capture network interface receives no traffic";
    /// No traffic from a configured DC for a while (subject: its address).
    DcSilent = "DC_SILENT", Warning, "No traffic from a domain controller";
    /// Some traffic could not be analysed: drops anywhere, with the percentage in the detail.
    TrafficDropped = "TRAFFIC_DROPPED", Warning, "Some network traffic could not be analysed";
    /// The backend heard nothing from the sensor for [`SENSOR_SILENT_AFTER_SECS`].
    SensorSilent = "SENSOR_SILENT", Error, "Sensor stopped communicating";
    /// The sensor reached its memory limit.
    MemoryLimit = "MEMORY_LIMIT", Error, "Sensor reached its memory limit";
    /// Directory credentials refused or a DC unreachable (subject: the domain or DC).
    DirectoryUnreachable = "DIRECTORY_UNREACHABLE", Error, "Directory credentials refused or domain controller unreachable";
    /// Too few computers resolved by name resolution.
    NameResolutionLow = "NAME_RESOLUTION_LOW", Warning, "Low success rate of network name resolution";
    /// Windows events expected (syslog listener configured) but none received.
    WindowsEventsMissing = "WINDOWS_EVENTS_MISSING", Warning, "Windows events are not being received";
    /// RADIUS accounting expected but none received.
    RadiusMissing = "RADIUS_MISSING", Warning, "RADIUS accounting events are not being received";
    /// The spool is full and evicts the oldest batches.
    SpoolEvicting = "SPOOL_EVICTING", Error, "Sensor spool is full and losing activities";
    /// The sensor's clock and the DCs' (from Kerberos times) differ by more than
    /// [`MAX_CLOCK_SKEW_SECS`] (subject: the DC).
    ClockSkew = "CLOCK_SKEW", Warning, "Clock skew with domain controllers";
    /// XDP runs in generic (skb) mode on an interface (subject: the interface).
    XdpGeneric = "XDP_GENERIC", Info, "XDP runs in generic mode";
    /// The sensor runs an older version than the backend.
    SensorOutdated = "SENSOR_OUTDATED", Warning, "Sensor is older than the backend";
}

/// One health issue: open until `end_ns` is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    pub kind: IssueKind,
    /// What it is about (an interface, a DC's address, a domain); empty: the whole sensor.
    pub subject: String,
    /// For people: the measurement behind it (`4.2% of frames dropped in 10 s`).
    pub detail: String,
    /// Unix nanoseconds.
    pub start_ns: u64,
    pub end_ns: Option<u64>,
}

impl Issue {
    pub fn is_open(&self) -> bool {
        self.end_ns.is_none()
    }

    /// The event that carries it; `time` is the transition's (start, or end when closed).
    pub fn to_event(&self) -> HealthEvent {
        HealthEvent {
            time: Some(timestamp(self.end_ns.unwrap_or(self.start_ns))),
            severity: self.kind.severity().into(),
            kind: self.kind.name().to_owned(),
            message: self.detail.clone(),
            state: if self.is_open() {
                State::Open
            } else {
                State::Closed
            }
            .into(),
            subject: self.subject.clone(),
            start: Some(timestamp(self.start_ns)),
            end: self.end_ns.map(timestamp),
        }
    }

    /// The issue an event carries; `None` for a point event or an unknown kind (from a newer
    /// sensor: shown by its name, not modelled).
    pub fn from_event(event: &HealthEvent) -> Option<Self> {
        let end_ns = match event.state() {
            State::Unspecified => return None,
            State::Open => None,
            State::Closed => Some(
                event
                    .end
                    .as_ref()
                    .or(event.time.as_ref())
                    .map_or(0, unix_ns),
            ),
        };
        Some(Self {
            kind: IssueKind::from_name(&event.kind)?,
            subject: event.subject.clone(),
            detail: event.message.clone(),
            start_ns: event
                .start
                .as_ref()
                .or(event.time.as_ref())
                .map_or(0, unix_ns),
            end_ns,
        })
    }
}

/// The issues open now, keyed by kind and subject.
#[derive(Clone, Debug, Default)]
pub struct Issues {
    open: BTreeMap<(IssueKind, String), Issue>,
}

impl Issues {
    /// Records whether `kind`'s condition holds for `subject` at `now_ns`: `Some(detail)` it
    /// does, `None` it does not. Returns the issue when that opened or closed it; while it
    /// stays open only its detail follows (no transition).
    pub fn set(
        &mut self,
        kind: IssueKind,
        subject: &str,
        condition: Option<String>,
        now_ns: u64,
    ) -> Option<Issue> {
        let key = (kind, subject.to_owned());
        if let Some(detail) = condition {
            if let Some(open) = self.open.get_mut(&key) {
                open.detail = detail;
                return None;
            }
            let issue = Issue {
                kind,
                subject: key.1.clone(),
                detail,
                start_ns: now_ns,
                end_ns: None,
            };
            self.open.insert(key, issue.clone());
            Some(issue)
        } else {
            let mut closed = self.open.remove(&key)?;
            closed.end_ns = Some(now_ns.max(closed.start_ns));
            Some(closed)
        }
    }

    /// Closes every open issue of `kind` whose subject `keep` refuses (subjects that went
    /// away, such as a DC no longer configured).
    pub fn retain(
        &mut self,
        kind: IssueKind,
        mut keep: impl FnMut(&str) -> bool,
        now_ns: u64,
    ) -> Vec<Issue> {
        let gone: Vec<String> = self
            .open
            .keys()
            .filter(|(open_kind, subject)| *open_kind == kind && !keep(subject))
            .map(|(_, subject)| subject.clone())
            .collect();
        gone.iter()
            .filter_map(|subject| self.set(kind, subject, None, now_ns))
            .collect()
    }

    pub fn open(&self) -> impl Iterator<Item = &Issue> {
        self.open.values()
    }

    pub fn is_open(&self, kind: IssueKind, subject: &str) -> bool {
        self.open.contains_key(&(kind, subject.to_owned()))
    }
}

fn timestamp(unix_ns: u64) -> Timestamp {
    Timestamp {
        seconds: i64::try_from(unix_ns / 1_000_000_000).unwrap_or(i64::MAX),
        nanos: i32::try_from(unix_ns % 1_000_000_000).unwrap_or_default(),
    }
}

/// A timestamp as unix nanoseconds, 0 before 1970, saturating far after.
pub fn unix_ns(timestamp: &Timestamp) -> u64 {
    u64::try_from(timestamp.seconds)
        .unwrap_or_default()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(timestamp.nanos).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_by_name() {
        for kind in IssueKind::ALL {
            assert_eq!(IssueKind::from_name(kind.name()), Some(*kind));
            assert!(!kind.title().is_empty());
        }
        assert_eq!(IssueKind::from_name("CAPTURE_LOSS"), None);
    }

    #[test]
    fn conditions_open_and_close_issues_per_subject() {
        let mut issues = Issues::default();
        let dc = |issues: &mut Issues, subject, silent: bool, now| {
            issues.set(
                IssueKind::DcSilent,
                subject,
                silent.then(|| format!("{subject} silent")),
                now,
            )
        };
        assert!(
            dc(&mut issues, "10.0.0.1", false, 1).is_none(),
            "nothing to close"
        );
        let opened = dc(&mut issues, "10.0.0.1", true, 2).expect("opened");
        assert_eq!(opened.start_ns, 2);
        assert!(
            dc(&mut issues, "10.0.0.2", true, 3).is_some(),
            "another subject"
        );
        assert!(dc(&mut issues, "10.0.0.1", true, 4).is_none(), "still open");
        assert_eq!(issues.open().count(), 2);
        let closed = issues.retain(IssueKind::DcSilent, |subject| subject == "10.0.0.2", 5);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].subject, "10.0.0.1");
        assert_eq!(closed[0].end_ns, Some(5));
        assert!(issues.is_open(IssueKind::DcSilent, "10.0.0.2"));
        assert!(!issues.is_open(IssueKind::DcSilent, "10.0.0.1"));
    }

    #[test]
    fn issues_travel_as_events() {
        let mut issues = Issues::default();
        let opened = issues
            .set(
                IssueKind::ClockSkew,
                "10.0.0.1",
                Some("7 min".into()),
                1_500_000_000,
            )
            .expect("opened");
        let event = opened.to_event();
        assert_eq!(event.state(), State::Open);
        assert_eq!(event.kind, "CLOCK_SKEW");
        assert_eq!(event.severity(), Severity::Warning);
        assert_eq!(Issue::from_event(&event), Some(opened));
        let closed = issues
            .set(IssueKind::ClockSkew, "10.0.0.1", None, 2_000_000_001)
            .expect("closed");
        let event = closed.to_event();
        assert_eq!(event.state(), State::Closed);
        assert_eq!(Issue::from_event(&event), Some(closed));
        let point = HealthEvent {
            kind: "CAPTURE_LOSS".into(),
            ..HealthEvent::default()
        };
        assert_eq!(Issue::from_event(&point), None);
    }
}
