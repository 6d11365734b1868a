//! Clock skew between the DCs and the sensor, from the DCs' own clocks on the wire: a KRB-ERROR
//! carries the KDC's time when it answered (stime, susec), and the frame's capture time is the
//! sensor's. Per DC, the median of its last [`SAMPLES`] differences is the estimate: one odd
//! message (a replayed or forged error, a frame stuck in a queue) does not move it.
//!
//! ```
//! use sensor_user::health::skew::ClockSkews;
//! let mut skews = ClockSkews::default();
//! let dc = "10.0.0.1".parse().expect("address");
//! let second = 1_000_000_000;
//! for captured in [10, 20, 30] {
//!     // The DC's clock 7 minutes ahead of the sensor's.
//!     skews.sample(dc, (captured + 420) * second, captured * second);
//! }
//! let (_, skew) = skews.estimates(30 * second).next().expect("an estimate");
//! assert_eq!(skew.median_ns, 420 * second as i64);
//! assert!(skew.issue(300 * second).is_some());
//! ```

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
};

/// Differences kept per DC: the median of the last 15 KRB-ERRORs.
pub const SAMPLES: usize = 15;
/// No estimate from fewer: two messages are not yet a DC's clock.
pub const MIN_SAMPLES: usize = 3;
/// DCs followed at once; a new one beyond that replaces the one heard from longest ago.
pub const MAX_SOURCES: usize = 64;
/// A DC with no KRB-ERROR for this long (by the capture clock) has no current estimate, so its
/// issue closes: an hour.
pub const FORGET_AFTER_NS: u64 = 3_600_000_000_000;

/// The recent differences of every DC heard from.
#[derive(Clone, Debug, Default)]
pub struct ClockSkews {
    sources: HashMap<IpAddr, Samples>,
    /// DCs forgotten to make room ([`MAX_SOURCES`]).
    evicted: u64,
}

#[derive(Clone, Debug, Default)]
struct Samples {
    /// DC minus sensor, nanoseconds, oldest first.
    differences: VecDeque<i64>,
    /// Capture time of the last one.
    last_ns: u64,
}

/// One DC's estimate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Skew {
    /// The DC's clock minus the sensor's, nanoseconds: positive when the DC is ahead.
    pub median_ns: i64,
    /// How many differences the median is of.
    pub samples: usize,
}

impl Skew {
    /// The health issue's detail when the skew is beyond `max_ns` either way.
    pub fn issue(&self, max_ns: u64) -> Option<String> {
        let off_ns = self.median_ns.unsigned_abs();
        (off_ns > max_ns).then(|| {
            let way = if self.median_ns > 0 {
                "ahead of"
            } else {
                "behind"
            };
            format!(
                "the DC's clock is {}s {way} the sensor's (median of its last {} KRB-ERROR times)",
                off_ns / 1_000_000_000,
                self.samples
            )
        })
    }
}

impl ClockSkews {
    /// Records a KRB-ERROR from `dc` stamped `server_ns` by the DC (unix ns) and captured at
    /// `captured_ns` (unix ns, the sensor's clock).
    pub fn sample(&mut self, dc: IpAddr, server_ns: u64, captured_ns: u64) {
        let saturated = if server_ns > captured_ns {
            i64::MAX
        } else {
            i64::MIN
        };
        let difference =
            i64::try_from(i128::from(server_ns) - i128::from(captured_ns)).unwrap_or(saturated);
        if !self.sources.contains_key(&dc) && self.sources.len() >= MAX_SOURCES {
            let stalest = self
                .sources
                .iter()
                .min_by_key(|(_, samples)| samples.last_ns)
                .map(|(address, _)| *address);
            if let Some(stalest) = stalest {
                self.sources.remove(&stalest);
                self.evicted += 1;
            }
        }
        let samples = self.sources.entry(dc).or_default();
        if samples.differences.len() == SAMPLES {
            samples.differences.pop_front();
        }
        samples.differences.push_back(difference);
        samples.last_ns = samples.last_ns.max(captured_ns);
    }

    /// The estimate of each DC heard from within [`FORGET_AFTER_NS`] of `now_ns` with at least
    /// [`MIN_SAMPLES`] differences.
    pub fn estimates(&self, now_ns: u64) -> impl Iterator<Item = (IpAddr, Skew)> + '_ {
        self.sources.iter().filter_map(move |(dc, samples)| {
            let recent = now_ns.saturating_sub(samples.last_ns) < FORGET_AFTER_NS;
            let enough = samples.differences.len() >= MIN_SAMPLES;
            (recent && enough).then(|| {
                (
                    *dc,
                    Skew {
                        median_ns: median(&samples.differences),
                        samples: samples.differences.len(),
                    },
                )
            })
        })
    }

    /// DCs forgotten to make room for others since the start.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

/// The middle value (the mean of the two middle ones for an even count); 0 for none.
fn median(values: &VecDeque<i64>) -> i64 {
    let mut sorted: Vec<i64> = values.iter().copied().collect();
    sorted.sort_unstable();
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => 0,
        len if len % 2 == 1 => sorted[middle],
        _ => {
            let sum = i128::from(sorted[middle - 1]) + i128::from(sorted[middle]);
            i64::try_from(sum / 2).unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;
    const MAX: u64 = 300 * SECOND;

    fn address(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    fn only_estimate(skews: &ClockSkews, now_ns: u64) -> Option<Skew> {
        let estimates: Vec<_> = skews.estimates(now_ns).collect();
        assert!(estimates.len() <= 1, "{estimates:?}");
        estimates.first().map(|(_, skew)| *skew)
    }

    #[test]
    fn the_median_ignores_a_few_odd_messages_and_needs_three() {
        let mut skews = ClockSkews::default();
        let dc = address(1);
        let t = 1_700_000_000 * SECOND;
        // The DC's clock 6 minutes behind.
        skews.sample(dc, t - 360 * SECOND, t);
        skews.sample(dc, t + 10 * SECOND - 360 * SECOND, t + 10 * SECOND);
        assert_eq!(only_estimate(&skews, t + 10 * SECOND), None, "two");
        // A forged error claiming the right time, then one from far in the future.
        skews.sample(dc, t + 20 * SECOND, t + 20 * SECOND);
        skews.sample(dc, t + 86_400 * SECOND, t + 30 * SECOND);
        skews.sample(dc, t + 40 * SECOND - 361 * SECOND, t + 40 * SECOND);
        let skew = only_estimate(&skews, t + 40 * SECOND).expect("five");
        assert_eq!(skew.samples, 5);
        assert_eq!(skew.median_ns, -360 * SECOND as i64);
        assert_eq!(
            skew.issue(MAX).as_deref(),
            Some(
                "the DC's clock is 360s behind the sensor's (median of its last 5 KRB-ERROR times)"
            )
        );
    }

    #[test]
    fn within_the_tolerance_either_way_is_no_issue() {
        let skew = |seconds: i64| Skew {
            median_ns: seconds * SECOND as i64,
            samples: 3,
        };
        assert_eq!(skew(300).issue(MAX), None, "exactly 5 minutes");
        assert_eq!(skew(-300).issue(MAX), None);
        assert!(
            skew(301)
                .issue(MAX)
                .is_some_and(|detail| detail.contains("ahead of"))
        );
        assert!(
            skew(-301)
                .issue(MAX)
                .is_some_and(|detail| detail.contains("behind"))
        );
        let extreme = Skew {
            median_ns: i64::MIN,
            samples: 3,
        };
        assert!(extreme.issue(MAX).is_some());
    }

    #[test]
    fn a_clock_set_right_takes_over_the_median_as_new_errors_come() {
        let mut skews = ClockSkews::default();
        let dc = address(1);
        let mut now = 1_700_000_000 * SECOND;
        for _ in 0..SAMPLES {
            now += SECOND;
            skews.sample(dc, now + 600 * SECOND, now);
        }
        let mut fixed_after = 0;
        while only_estimate(&skews, now)
            .expect("estimate")
            .issue(MAX)
            .is_some()
        {
            now += SECOND;
            skews.sample(dc, now, now);
            fixed_after += 1;
        }
        assert_eq!(
            fixed_after,
            SAMPLES / 2 + 1,
            "once most of the window is right"
        );
        assert_eq!(
            skews
                .sources
                .get(&dc)
                .map(|samples| samples.differences.len()),
            Some(SAMPLES),
            "the window stays bounded"
        );
    }

    #[test]
    fn a_dc_unheard_for_an_hour_has_no_estimate() {
        let mut skews = ClockSkews::default();
        let t = 1_700_000_000 * SECOND;
        for offset in 0..3 {
            skews.sample(address(1), t + offset + 900 * SECOND, t + offset);
        }
        assert!(only_estimate(&skews, t + FORGET_AFTER_NS - SECOND).is_some());
        assert_eq!(only_estimate(&skews, t + 2 + FORGET_AFTER_NS), None);
    }

    #[test]
    fn dcs_beyond_the_cap_replace_the_stalest_and_are_counted() {
        let mut skews = ClockSkews::default();
        let t = 1_700_000_000 * SECOND;
        for last in 0..=u8::try_from(MAX_SOURCES).expect("fits") {
            for offset in 0..3 {
                let captured = t + u64::from(last) * SECOND + offset;
                skews.sample(address(last), captured, captured);
            }
        }
        let now = t + 100 * SECOND;
        let followed: Vec<IpAddr> = skews.estimates(now).map(|(dc, _)| dc).collect();
        assert_eq!(followed.len(), MAX_SOURCES);
        assert!(!followed.contains(&address(0)), "the stalest went");
        assert!(followed.contains(&address(64)), "the newest stays");
        assert_eq!(skews.evicted(), 1);
    }

    #[test]
    fn times_far_apart_saturate() {
        let mut skews = ClockSkews::default();
        for offset in 0..3 {
            skews.sample(address(1), u64::MAX - offset, offset);
        }
        let skew = only_estimate(&skews, 0).expect("estimate");
        assert_eq!(skew.median_ns, i64::MAX);
    }
}
