//! How well names are resolved, hour by hour: the share of activities whose source computer
//! was named with HIGH certainty. Detections lean on those names (an alert's confidence drops
//! with a LOW one), so a sensor that mostly cannot name its sources (a mirror that misses the
//! clients' subnets, DHCP churn, NAT in front of the DC) says so, as Defender for Identity raises
//! a health alert when 90% of its resolutions fail.
//!
//! Hours are counted in activity time, so a replay judges a capture as the live sensor would.

use dcwatch_proto::v1::Certainty;

/// One hour of activity time.
pub const WINDOW_MS: i64 = 3_600_000;
/// Below this share of HIGH-certainty sources in an hour, resolution is failing.
pub const MIN_HIGH_SHARE: f64 = 0.10;
/// An hour with fewer activities says nothing either way.
pub const MIN_ACTIVITIES: u64 = 100;

/// A change of state, reported once per episode.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CertaintyAlarm {
    /// An hour ended with too small a share of HIGH-certainty sources.
    Low { high: u64, activities: u64 },
    /// An hour ended above the threshold again.
    Recovered { high: u64, activities: u64 },
}

impl CertaintyAlarm {
    /// One line for the log and the health issue.
    pub fn message(&self) -> String {
        match *self {
            Self::Low { high, activities } => format!(
                "network name resolution: only {high} of {activities} activities in the last hour \
                 had their source computer named with HIGH certainty ({:.0}%, below {:.0}%); \
                 alerts on them carry lower confidence (is the mirror missing the clients' \
                 NetBIOS, DNS or Kerberos traffic?)",
                share(high, activities) * 100.0,
                MIN_HIGH_SHARE * 100.0
            ),
            Self::Recovered { high, activities } => format!(
                "network name resolution: {high} of {activities} activities in the last hour had \
                 their source computer named with HIGH certainty ({:.0}%)",
                share(high, activities) * 100.0
            ),
        }
    }
}

#[expect(
    clippy::cast_precision_loss,
    reason = "a share for a threshold and a message: 2^52 activities are far off"
)]
fn share(high: u64, activities: u64) -> f64 {
    if activities == 0 {
        0.0
    } else {
        high as f64 / activities as f64
    }
}

#[derive(Clone, Debug, Default)]
pub struct CertaintyWatch {
    /// The start of the hour being counted (activity time, ms); None before the first activity.
    start_ms: Option<i64>,
    activities: u64,
    high: u64,
    low: bool,
    /// Hours that ended below the threshold.
    low_hours: u64,
}

impl CertaintyWatch {
    /// Counts one activity with a source address, and how its source computer was named (None:
    /// not at all). Returns a change of state when this activity closed an hour that made one.
    pub fn observe(&mut self, time_ms: i64, source: Option<Certainty>) -> Option<CertaintyAlarm> {
        let start = *self.start_ms.get_or_insert(time_ms);
        let mut alarm = None;
        if time_ms >= start.saturating_add(WINDOW_MS) {
            alarm = self.close_hour();
            // Hours without activity are skipped: the next one starts with this activity.
            self.start_ms = Some(time_ms);
        }
        self.activities += 1;
        self.high += u64::from(source == Some(Certainty::High));
        alarm
    }

    fn close_hour(&mut self) -> Option<CertaintyAlarm> {
        let (high, activities) = (self.high, self.activities);
        self.high = 0;
        self.activities = 0;
        if activities < MIN_ACTIVITIES {
            return None;
        }
        let failing = share(high, activities) < MIN_HIGH_SHARE;
        if failing {
            self.low_hours += 1;
        }
        match (failing, self.low) {
            (true, false) => {
                self.low = true;
                Some(CertaintyAlarm::Low { high, activities })
            }
            (false, true) => {
                self.low = false;
                Some(CertaintyAlarm::Recovered { high, activities })
            }
            _ => None,
        }
    }

    /// Hours that ended with too small a share of HIGH-certainty sources.
    pub fn low_hours(&self) -> u64 {
        self.low_hours
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;

    /// An hour of `count` activities from `start`, `high` of them named with HIGH certainty
    /// and the rest half LOW, half unresolved; what the watch said meanwhile.
    fn hour(watch: &mut CertaintyWatch, start: i64, count: u64, high: u64) -> Vec<CertaintyAlarm> {
        (0..count)
            .filter_map(|index| {
                let time = start
                    + i64::try_from(index).expect("small") * (50 * MINUTE)
                        / i64::try_from(count).expect("small");
                let source = if index < high {
                    Some(Certainty::High)
                } else if index % 2 == 0 {
                    Some(Certainty::Low)
                } else {
                    None
                };
                watch.observe(time, source)
            })
            .collect()
    }

    #[test]
    fn a_failing_hour_is_reported_once_and_its_recovery_too() {
        let mut watch = CertaintyWatch::default();
        assert!(hour(&mut watch, 0, 200, 150).is_empty());
        // The hour after closes the first (75% HIGH): nothing to say.
        assert!(hour(&mut watch, 60 * MINUTE, 200, 10).is_empty());
        // Closing the second (5%): low, once; a third failing hour says nothing more.
        assert_eq!(
            hour(&mut watch, 120 * MINUTE, 300, 0),
            [CertaintyAlarm::Low {
                high: 10,
                activities: 200
            }]
        );
        assert_eq!(
            hour(&mut watch, 180 * MINUTE, 300, 300),
            [],
            "the third hour (0%) closes: still low, not said again"
        );
        assert_eq!(watch.low_hours(), 2);
        let closing = watch.observe(240 * MINUTE, Some(Certainty::High));
        assert_eq!(
            closing,
            Some(CertaintyAlarm::Recovered {
                high: 300,
                activities: 300
            })
        );
    }

    #[test]
    fn an_hour_with_few_activities_or_at_the_threshold_raises_nothing() {
        let mut watch = CertaintyWatch::default();
        // 99 activities, none HIGH: too few to judge.
        assert!(hour(&mut watch, 0, MIN_ACTIVITIES - 1, 0).is_empty());
        // Exactly 10% HIGH is not below 10%.
        assert!(hour(&mut watch, 60 * MINUTE, 100, 10).is_empty());
        assert_eq!(watch.observe(120 * MINUTE, None), None);
        assert_eq!(watch.low_hours(), 0);
    }

    #[test]
    fn the_message_says_how_many_and_what_share() {
        let low = CertaintyAlarm::Low {
            high: 3,
            activities: 120,
        };
        let message = low.message();
        assert!(
            message.contains("only 3 of 120 activities") && message.contains("(2%, below 10%)"),
            "{message}"
        );
    }
}
