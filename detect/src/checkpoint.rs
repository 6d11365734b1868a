//! What an engine's state needs to survive a restart or a move to another node: the profiles
//! its chunks changed, and its detectors' windows.
//!
//! The windows are checkpointed as the activities that fill them: the engine keeps a journal
//! of what it judged within the detectors' longest sliding window, one segment per chunk (the
//! activities protobuf-encoded, compressed, behind a format byte), and a fresh engine replays
//! the stored segments before judging anything new. Replaying rebuilds every detector's
//! windows, counters and "already raised" marks, and what the engine learned of the network,
//! exactly as an engine that never stopped would hold them, without a serializer per
//! detector to keep in step with its fields; the findings a replay makes are dropped (their
//! alerts were stored with the segments). State older than the journal (a ticket held for two
//! hours, a day of deletions) starts over as it did before checkpoints.

use std::collections::VecDeque;

use dcwatch_proto::v1::Activity;
use prost::Message as _;

use crate::{
    detectors::LONGEST_WINDOW,
    profiles::Changes,
    time::{MINUTE, Millis},
};

/// The first byte of a segment: its format (protobuf `Segment`, zstd-compressed).
const FORMAT: u8 = 1;
/// How far back the journal reaches: the detectors' longest sliding window, and a margin for
/// activities of several sensors slightly out of order.
const KEPT: Millis = LONGEST_WINDOW + 5 * MINUTE;
/// A partition's journal at most (compressed): a busier partition keeps less than [`KEPT`],
/// and counts the segments it dropped early (`detect_windows_truncated`).
const MAX_BYTES: usize = 64 << 20;
/// zstd's fast level: a chunk is compressed on detection's thread.
const LEVEL: i32 = 1;

/// What a chunk adds to a partition's stored state, written in the chunk's transaction.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    pub profiles: Changes,
    pub windows: WindowChanges,
}

impl Checkpoint {
    /// A checkpoint that changes nothing (a test's, or a chunk's outside detection).
    pub const NOTHING: Self = Self {
        profiles: Changes {
            upserts: Vec::new(),
            removed: Vec::new(),
        },
        windows: WindowChanges {
            append: None,
            forget_before: 0,
        },
    };
}

/// The journal's change: a segment to store, and the segments that left the window.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct WindowChanges {
    /// (segment number, bytes).
    pub append: Option<(u64, Vec<u8>)>,
    /// Stored segments numbered below this are out of the window.
    pub forget_before: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Segment {
    #[prost(message, repeated, tag = "1")]
    activities: Vec<Activity>,
}

#[derive(Debug)]
struct Kept {
    number: u64,
    /// The engine's clock when the segment was written.
    last: Millis,
    bytes: usize,
}

/// The journal of one engine (one partition).
#[derive(Debug, Default)]
pub struct Journal {
    /// The activities judged since the last checkpoint, encoded as `Segment`'s field 1.
    pending: Vec<u8>,
    kept: VecDeque<Kept>,
    kept_bytes: usize,
    next: u64,
    replayed: u64,
    truncated: u64,
    undecodable: u64,
}

impl Journal {
    /// Notes an activity the engine judged.
    pub fn record(&mut self, activity: &Activity) {
        prost::encoding::message::encode(1, activity, &mut self.pending);
    }

    /// The segment of what was judged since the last call, and what the window forgot by
    /// `clock`.
    pub fn take(&mut self, clock: Millis) -> WindowChanges {
        let append = (!self.pending.is_empty()).then(|| {
            let encoded = std::mem::take(&mut self.pending);
            let mut bytes = vec![FORMAT];
            // Writing to a Vec fails only when memory does.
            bytes.extend(zstd::bulk::compress(&encoded, LEVEL).unwrap_or_default());
            let number = self.next;
            self.keep(number, clock, bytes.len());
            (number, bytes)
        });
        while let Some(oldest) = self.kept.front() {
            let expired = oldest.last < clock.saturating_sub(KEPT);
            if !expired && self.kept_bytes <= MAX_BYTES {
                break;
            }
            if !expired {
                self.truncated += 1;
            }
            self.kept_bytes -= oldest.bytes;
            self.kept.pop_front();
        }
        WindowChanges {
            append,
            forget_before: self.kept.front().map_or(self.next, |oldest| oldest.number),
        }
    }

    fn keep(&mut self, number: u64, clock: Millis, bytes: usize) {
        self.kept.push_back(Kept {
            number,
            last: clock,
            bytes,
        });
        self.kept_bytes += bytes;
        self.next = number + 1;
    }

    /// The activities of stored segments, in order, for the engine to replay; the segments
    /// join the journal. A segment that does not decode (damaged, or a format this version
    /// does not know) is counted and skipped.
    pub fn restore(
        &mut self,
        segments: Vec<(u64, Vec<u8>)>,
        mut replay: impl FnMut(&Activity) -> Millis,
    ) {
        for (number, bytes) in segments {
            let mut clock = Millis::MIN;
            match decode(&bytes) {
                Some(segment) => {
                    for activity in &segment.activities {
                        clock = replay(activity);
                        self.replayed += 1;
                    }
                }
                None => self.undecodable += 1,
            }
            self.keep(number, clock, bytes.len());
        }
    }

    pub fn counters(&self) -> [(&'static str, u64); 3] {
        [
            ("detect_windows_replayed", self.replayed),
            ("detect_windows_truncated", self.truncated),
            ("detect_windows_undecodable", self.undecodable),
        ]
    }
}

fn decode(bytes: &[u8]) -> Option<Segment> {
    let (&FORMAT, compressed) = bytes.split_first()? else {
        return None;
    };
    let encoded = zstd::bulk::decompress(compressed, MAX_BYTES).ok()?;
    Segment::decode(encoded.as_slice()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::HOUR;

    fn named(name: &str) -> Activity {
        Activity {
            sensor_id: name.to_owned(),
            ..Activity::default()
        }
    }

    fn replayed(journal: &mut Journal, segments: Vec<(u64, Vec<u8>)>) -> Vec<String> {
        let mut seen = Vec::new();
        journal.restore(segments, |activity| {
            seen.push(activity.sensor_id.clone());
            0
        });
        seen
    }

    #[test]
    fn segments_replay_in_order_and_leave_the_window_with_time() {
        let mut journal = Journal::default();
        assert_eq!(journal.take(0), WindowChanges::default(), "nothing judged");
        journal.record(&named("a"));
        journal.record(&named("b"));
        let first = journal.take(0);
        journal.record(&named("c"));
        let second = journal.take(HOUR);
        assert_eq!((second.forget_before, journal.kept.len()), (0, 2));
        let segments: Vec<_> = [first, second]
            .into_iter()
            .filter_map(|changes| changes.append)
            .collect();
        assert_eq!(
            segments
                .iter()
                .map(|(number, _)| *number)
                .collect::<Vec<_>>(),
            [0, 1]
        );
        let mut restored = Journal::default();
        assert_eq!(replayed(&mut restored, segments), ["a", "b", "c"]);
        assert_eq!(restored.next, 2, "new segments follow the stored ones");
        journal.record(&named("d"));
        let later = journal.take(KEPT + 1);
        assert_eq!(
            (later.append.map(|(number, _)| number), later.forget_before),
            (Some(2), 1),
            "the first segment left the window; the second is still within it"
        );
        assert_eq!(journal.counters()[1], ("detect_windows_truncated", 0));
    }

    #[test]
    fn a_damaged_or_unknown_segment_is_counted_and_skipped() {
        let mut journal = Journal::default();
        journal.record(&named("a"));
        let (_, mut good) = journal.take(0).append.expect("a segment");
        let mut unknown = good.clone();
        unknown[0] = FORMAT + 1;
        let truncated = good[..good.len() / 2].to_vec();
        good.push(0xff);
        let mut restored = Journal::default();
        let seen = replayed(
            &mut restored,
            vec![(0, unknown), (1, truncated), (2, good), (3, Vec::new())],
        );
        assert!(seen.is_empty(), "{seen:?}");
        assert_eq!(restored.counters()[2], ("detect_windows_undecodable", 4));
        assert_eq!(restored.next, 4);
    }

    #[test]
    fn a_journal_over_its_bytes_drops_its_oldest_segments_and_counts_them() {
        let mut journal = Journal::default();
        // Incompressible activities (xorshift noise), so each segment holds its size.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let noise: String = (0..4 << 20)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                char::from(b'a' + u8::try_from(state % 26).unwrap_or(0))
            })
            .collect();
        let big = Activity {
            flow_id: noise,
            ..Activity::default()
        };
        let mut last = WindowChanges::default();
        for _ in 0..40 {
            journal.record(&big);
            last = journal.take(0);
        }
        assert!(journal.kept_bytes <= MAX_BYTES);
        assert!(last.forget_before > 0);
        assert_eq!(
            journal.counters()[1].1,
            last.forget_before,
            "every dropped segment was still in the window"
        );
    }
}
