//! Cuts the stream of activities into batches: an encoded `ActivityBatch` grows activity by
//! activity and is cut when it is large enough, holds enough activities, or is old enough.

use std::time::{Duration, Instant};

use dcwatch_proto::v1::Activity;

/// Default encoded size at which a batch is cut: large enough that zstd finds repetition across
/// activities (ratios of 5-10 on Kerberos and LDAP), small enough to send in one message.
pub const DEFAULT_BATCH_MAX_BYTES: usize = 256 * 1024;
/// Largest configurable cut: a batch that does not compress must still fit a spool record
/// ([`super::spool::MAX_RECORD_PAYLOAD`]).
pub const MAX_BATCH_MAX_BYTES: usize = 768 * 1024;
/// Activities at which a batch is cut whatever its size: bounds the backend's work per batch.
pub const MAX_BATCH_ACTIVITIES: u32 = 2_000;
/// Default age at which a batch is cut: how late an activity may reach the backend on a quiet
/// sensor.
pub const DEFAULT_BATCH_MAX_AGE: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLimits {
    pub max_bytes: usize,
    pub max_activities: u32,
    pub max_age: Duration,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_BATCH_MAX_BYTES,
            max_activities: MAX_BATCH_ACTIVITIES,
            max_age: DEFAULT_BATCH_MAX_AGE,
        }
    }
}

/// An `ActivityBatch`, encoded (not yet compressed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedBatch {
    pub encoded: Vec<u8>,
    pub activity_count: u32,
}

#[derive(Debug)]
pub struct Batcher {
    limits: BatchLimits,
    buffer: Vec<u8>,
    count: u32,
    /// When the first activity of the open batch arrived.
    opened: Option<Instant>,
}

/// `ActivityBatch.activities`: field 1.
const ACTIVITIES_FIELD: u32 = 1;

impl Batcher {
    pub fn new(limits: BatchLimits) -> Self {
        Self {
            limits,
            buffer: Vec::new(),
            count: 0,
            opened: None,
        }
    }

    /// Adds an activity; returns the batch it completed, if it did.
    pub fn push(&mut self, activity: &Activity, now: Instant) -> Option<EncodedBatch> {
        // Concatenated length-delimited field-1 records are a valid ActivityBatch.
        prost::encoding::message::encode(ACTIVITIES_FIELD, activity, &mut self.buffer);
        self.count += 1;
        self.opened.get_or_insert(now);
        let full =
            self.buffer.len() >= self.limits.max_bytes || self.count >= self.limits.max_activities;
        if full { self.take() } else { self.tick(now) }
    }

    /// The open batch if it has grown old; call it regularly on a quiet sensor.
    pub fn tick(&mut self, now: Instant) -> Option<EncodedBatch> {
        let old = self
            .opened
            .is_some_and(|opened| now.saturating_duration_since(opened) >= self.limits.max_age);
        if old { self.take() } else { None }
    }

    /// The open batch, whatever its size (end of input).
    pub fn take(&mut self) -> Option<EncodedBatch> {
        if self.count == 0 {
            return None;
        }
        let batch = EncodedBatch {
            encoded: std::mem::take(&mut self.buffer),
            activity_count: self.count,
        };
        self.count = 0;
        self.opened = None;
        Some(batch)
    }
}

#[cfg(test)]
mod tests {
    use dcwatch_proto::v1::ActivityBatch;
    use prost::Message as _;

    use super::*;

    fn activity(index: u32) -> Activity {
        Activity {
            sensor_id: format!("sensor-{index}"),
            ..Activity::default()
        }
    }

    #[test]
    fn batches_decode_to_what_went_in() {
        let mut batcher = Batcher::new(BatchLimits::default());
        let now = Instant::now();
        for index in 0..10 {
            assert_eq!(batcher.push(&activity(index), now), None);
        }
        let batch = batcher.take().expect("a batch");
        assert_eq!(batch.activity_count, 10);
        let decoded = ActivityBatch::decode(batch.encoded.as_slice()).expect("decodes");
        let expected: Vec<_> = (0..10).map(activity).collect();
        assert_eq!(decoded.activities, expected);
        assert_eq!(batcher.take(), None, "nothing left");
    }

    #[test]
    fn cuts_by_count_size_and_age() {
        let now = Instant::now();
        let mut by_count = Batcher::new(BatchLimits {
            max_activities: 3,
            ..BatchLimits::default()
        });
        assert_eq!(by_count.push(&activity(1), now), None);
        assert_eq!(by_count.push(&activity(2), now), None);
        assert_eq!(
            by_count.push(&activity(3), now).map(|b| b.activity_count),
            Some(3)
        );

        let mut by_size = Batcher::new(BatchLimits {
            max_bytes: 40,
            ..BatchLimits::default()
        });
        let cut = (0..100)
            .find_map(|index| by_size.push(&activity(index), now))
            .expect("cut by size");
        assert!(
            cut.encoded.len() >= 40 && cut.encoded.len() < 60,
            "{}",
            cut.encoded.len()
        );

        let mut by_age = Batcher::new(BatchLimits::default());
        assert_eq!(by_age.push(&activity(1), now), None);
        assert_eq!(by_age.tick(now + Duration::from_millis(999)), None);
        assert_eq!(
            by_age
                .tick(now + DEFAULT_BATCH_MAX_AGE)
                .map(|b| b.activity_count),
            Some(1)
        );
        assert_eq!(
            by_age.tick(now + Duration::from_secs(10)),
            None,
            "empty: no batch"
        );
    }
}
