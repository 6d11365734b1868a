//! A captured frame, whichever source it came from: the ring buffer or a capture file.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// When the frame was seen, in nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// The interface it arrived on (0 for a capture file).
    pub ifindex: u32,
    /// Its length on the wire; `data` may be shorter (snap length).
    pub orig_len: u32,
    /// The bytes captured, from the Ethernet header on.
    pub data: &'a [u8],
    /// A DC's port the XDP program found a DCE-RPC header on while the port was not watched
    /// (live capture only): the port to watch from now on.
    pub rpc_port: Option<u16>,
}

impl Frame<'_> {
    pub fn time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.timestamp_ns)
    }
}

/// Turns the kernel's `CLOCK_MONOTONIC` timestamps into wall-clock time.
#[derive(Clone, Copy, Debug)]
pub struct WallClock {
    /// Realtime minus monotonic, in nanoseconds, when the clock was made.
    offset_ns: i128,
}

impl WallClock {
    pub fn now() -> Self {
        let realtime = clock_ns(libc::CLOCK_REALTIME);
        let monotonic = clock_ns(libc::CLOCK_MONOTONIC);
        Self {
            offset_ns: realtime - monotonic,
        }
    }

    pub fn unix_ns(&self, monotonic_ns: u64) -> u64 {
        u64::try_from(i128::from(monotonic_ns) + self.offset_ns).unwrap_or(0)
    }
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec to write to; both clocks exist on every Linux.
    unsafe { libc::clock_gettime(clock, &raw mut now) };
    i128::from(now.tv_sec) * 1_000_000_000 + i128::from(now.tv_nsec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_clock_maps_monotonic_now_to_realtime_now() {
        let clock = WallClock::now();
        let monotonic = u64::try_from(clock_ns(libc::CLOCK_MONOTONIC)).expect("positive");
        let realtime = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_nanos();
        let mapped = u128::from(clock.unix_ns(monotonic));
        assert!(
            realtime.abs_diff(mapped) < 1_000_000_000,
            "{realtime} vs {mapped}"
        );
    }
}
