//! Timeroasting (Secura's timeroast; MDI XDR mentions it): MS-SNTP lets any host ask a DC for
//! the time with a computer's RID as the key identifier, and the DC signs the answer with that
//! computer's key, which cracks offline. A member asks with its own RID; the tool walks RIDs
//! (180 queries a second by default). From `TIMEROAST_RIDS` distinct RIDs within
//! `TIMEROAST_WINDOW` from one source the alert opens, and each later such request updates it.

use std::net::IpAddr;

use dcwatch_proto::v1::{activity::Body, ntp_activity};

use super::{Context, Detector, Kinds};
use crate::{
    bounded::{BoundedMap, Window},
    catalogue::TIMEROASTING,
    finding::{Finding, source_key, source_text},
    observed::Observed,
    time::{MINUTE, Millis},
};

/// Distinct RIDs from one source that make a roast (*ours*, DETECTIONS.md).
pub(super) const TIMEROAST_RIDS: usize = 20;
/// ... within this long (*ours*).
pub(super) const TIMEROAST_WINDOW: Millis = MINUTE;
/// Sources followed at once.
pub(super) const MAX_TIMEROAST_SOURCES: usize = 10_000;
/// Requests a source's window keeps.
pub(super) const MAX_TIMEROAST_REQUESTS: usize = 256;

#[derive(Debug)]
struct Source {
    rids: Window<u32>,
    roasting: bool,
    answered: u64,
}

#[derive(Debug)]
pub(super) struct Timeroasting {
    sources: BoundedMap<IpAddr, Source>,
}

impl Default for Timeroasting {
    fn default() -> Self {
        Self {
            sources: BoundedMap::new(MAX_TIMEROAST_SOURCES),
        }
    }
}

impl Detector for Timeroasting {
    fn kinds(&self) -> Kinds {
        Kinds::NTP
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        let Some(Body::Ntp(ntp)) = seen.body() else {
            return;
        };
        if ntp.r#type != ntp_activity::Type::Request as i32 || (ntp.rid == 0 && ntp.key_id == 0) {
            return;
        }
        let Some(address) = seen.src else {
            return;
        };
        let source = self.sources.touch(address, seen.time, || Source {
            rids: Window::new(MAX_TIMEROAST_REQUESTS),
            roasting: false,
            answered: 0,
        });
        if source
            .rids
            .items()
            .all(|(at, _)| seen.time.saturating_sub(*at) > TIMEROAST_WINDOW)
        {
            source.roasting = false;
        }
        source.rids.push(seen.time, ntp.rid, TIMEROAST_WINDOW);
        source.answered += u64::from(ntp.answered);
        // Counted on every request: a sorted copy of at most `MAX_TIMEROAST_REQUESTS` numbers
        // is cheaper than a SipHash set of them.
        let mut rids: Vec<u32> = source.rids.items().map(|(_, rid)| *rid).collect();
        rids.sort_unstable();
        rids.dedup();
        let distinct = rids.len();
        let count = if source.roasting {
            1
        } else if distinct >= TIMEROAST_RIDS {
            source.roasting = true;
            source.rids.len() as u64
        } else {
            return;
        };
        let start = source.rids.first_time().unwrap_or(seen.time);
        let description = format!(
            "{} asked {} for MS-SNTP time signed with the keys of {} distinct computer RIDs within a minute ({} answered so far): Timeroasting, to crack computer passwords offline",
            source_text(seen),
            crate::finding::destination_text(seen),
            distinct,
            source.answered,
        );
        let finding = Finding::on(
            &TIMEROASTING,
            source_key(seen),
            seen,
            format!("NTP request with key id of RID {}", ntp.rid),
        )
        .describe(description)
        .detail("distinct_rids", distinct.to_string())
        .spanning(start, count)
        .weighed_by_resolution(seen);
        context.raise(finding);
    }

    fn evicted(&self) -> u64 {
        self.sources.evicted()
    }
}

#[cfg(test)]
mod tests {
    use dcwatch_entity::Directory;
    use dcwatch_proto::v1::{NtpActivity, activity::Body, ntp_activity};

    use crate::detectors::testing::{activity, run, summary};

    fn ntp(offset: i64, src: &str, rid: u32) -> dcwatch_proto::v1::Activity {
        activity(
            offset,
            src,
            "10.98.0.1:123",
            Body::Ntp(NtpActivity {
                r#type: ntp_activity::Type::Request.into(),
                mode: 3,
                version: 3,
                key_id: rid,
                rid,
                authenticator_len: 20,
                answered: true,
                ..NtpActivity::default()
            }),
        )
    }

    #[test]
    fn twenty_rids_in_a_minute_are_timeroasting() {
        // At the tool's 180 a second: 25 RIDs in 140 ms.
        let activities: Vec<_> = (0..25)
            .map(|n| ntp(n * 5, "10.98.0.15:123", 1000 + n as u32))
            .collect();
        let alerts = run(None, Directory::default(), &activities);
        assert_eq!(
            summary(&alerts),
            [("timeroasting".into(), "src:10.98.0.15".into(), 25)]
        );
        assert!(alerts[0].description.contains("25 distinct computer RIDs"));
    }

    #[test]
    fn members_asking_with_their_own_rid_are_not() {
        // Thirty members, each asking every 16 seconds with its own RID, and one of them often.
        let mut activities: Vec<_> = (0..30)
            .map(|n| ntp(n * 100, &format!("10.98.1.{n}:123"), 2000 + n as u32))
            .collect();
        activities.extend((0..40).map(|n| ntp(n * 1_000, "10.98.1.1:123", 2001)));
        assert!(run(None, Directory::default(), &activities).is_empty());
    }
}
