//! The sensor's counters in one snapshot: the kernel's (declared in `sensor-common`) and
//! userspace's (declared with `dcwatch_telemetry::counters!`). The stats file (`--stats-file`),
//! the backend's `Counters` message and `/metrics` all show the same snapshot.

#[cfg(feature = "capture")]
use dcwatch_telemetry::{Kind, Snapshot};

#[cfg(feature = "capture")]
use crate::capture::KernelCounters;

dcwatch_telemetry::counters! {
    /// What userspace counts of the frames handed to it.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct UserCounters {
        /// Frames handed to the pipeline (ring-buffer records or capture-file records).
        counter delivered: u64,
        /// Of those, frames that could not be decoded as IP packets (or ring records that were not
        /// whole).
        counter decode_errors: u64,
        /// Activities that could not be written as JSON lines (a value its enum has no name for):
        /// skipped on the output, still streamed to the backend.
        counter unprintable_activities: u64,
    }
}

/// The kernel's counters, when capturing live, followed by `user`.
#[cfg(feature = "capture")]
pub fn snapshot(kernel: Option<&KernelCounters>, user: Snapshot) -> Snapshot {
    let mut snapshot = Snapshot::default();
    for (counter, value) in kernel.iter().flat_map(|kernel| kernel.iter()) {
        snapshot.push(counter.name(), Kind::Counter, counter.help(), value);
    }
    snapshot.extend(user);
    snapshot
}

#[cfg(all(test, feature = "capture"))]
mod tests {
    use super::*;

    #[test]
    fn kernel_counters_come_first_with_their_help() {
        let mut user = Snapshot::default();
        user.add(&UserCounters {
            delivered: 7,
            decode_errors: 1,
            unprintable_activities: 0,
        });
        let snapshot = snapshot(Some(&KernelCounters::default()), user);
        let names: Vec<&str> = snapshot.pairs().map(|(name, _)| name).collect();
        assert_eq!(
            names,
            [
                "seen",
                "bytes",
                "matched",
                "copied",
                "ringbuf_full",
                "truncated",
                "non_ip",
                "malformed",
                "rpc_header_matched",
                "decap_erspan1",
                "decap_erspan2",
                "decap_erspan3",
                "decap_gre_ethernet",
                "decap_vxlan",
                "decap_geneve",
                "limiter_shed_frames",
                "delivered",
                "decode_errors",
                "unprintable_activities"
            ]
        );
        assert_eq!(snapshot.get("delivered"), Some(7));
        assert!(
            snapshot
                .entries()
                .iter()
                .all(|entry| !entry.help.is_empty())
        );
    }
}
