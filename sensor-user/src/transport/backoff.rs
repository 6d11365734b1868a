//! Reconnection delays: exponential, capped, with jitter so that many sensors cut off by one
//! backend restart do not all come back in the same second.

use std::time::Duration;

/// First delay after a failure.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
/// Longest delay between two attempts: how long a sensor may stay away from a backend that came
/// back.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Delay after the backend refused the token: an operator has to act, no point hurrying.
pub const REFUSED_BACKOFF: Duration = Duration::from_mins(1);

#[derive(Debug)]
pub struct Backoff {
    next: Duration,
    rng: fastrand::Rng,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(fastrand::Rng::new())
    }
}

impl Backoff {
    pub fn new(rng: fastrand::Rng) -> Self {
        Self {
            next: INITIAL_BACKOFF,
            rng,
        }
    }

    /// The delay before the next attempt: uniformly between half and all of the current step,
    /// which then doubles up to [`MAX_BACKOFF`].
    pub fn next_delay(&mut self) -> Duration {
        let step = self.next;
        self.next = step.saturating_mul(2).min(MAX_BACKOFF);
        let half = step / 2;
        let jitter_ms = self
            .rng
            .u64(0..=u64::try_from(half.as_millis()).unwrap_or(u64::MAX));
        half + Duration::from_millis(jitter_ms)
    }

    /// A session got as far as the backend's welcome: start again from the first step.
    pub fn reset(&mut self) {
        self.next = INITIAL_BACKOFF;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter_and_resets() {
        let mut backoff = Backoff::new(fastrand::Rng::with_seed(7));
        let mut step = INITIAL_BACKOFF;
        for _ in 0..12 {
            let delay = backoff.next_delay();
            assert!(
                delay >= step / 2 && delay <= step,
                "{delay:?} for step {step:?}"
            );
            step = (step * 2).min(MAX_BACKOFF);
        }
        assert_eq!(step, MAX_BACKOFF);
        assert!(backoff.next_delay() <= MAX_BACKOFF);
        backoff.reset();
        assert!(backoff.next_delay() <= INITIAL_BACKOFF);
    }

    #[test]
    fn jitter_spreads_sensors() {
        let delays: std::collections::HashSet<_> = (0..20)
            .map(|seed| {
                let mut backoff = Backoff::new(fastrand::Rng::with_seed(seed));
                backoff.next_delay();
                backoff.next_delay()
            })
            .collect();
        assert!(delays.len() > 10, "{delays:?}");
    }
}
