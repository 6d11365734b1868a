//! Which addresses the active probes may ask about, and when: only addresses in the configured
//! subnets, at most `rate` probes a second (a token bucket holding up to `burst`), and one
//! address not again within `retry`. Pure: the caller passes the time.

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
};

use dcwatch_detect::config::Subnet;

/// Addresses remembered as recently probed; past this the oldest are forgotten (and may be
/// probed again sooner than `retry`), so memory stays bounded whatever the traffic.
pub const MAX_RECENT: usize = 65_536;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    Probe,
    /// Outside every configured subnet.
    OutOfScope,
    /// Probed less than `retry` ago.
    Recent,
    /// No token left this second.
    RateLimited,
}

#[derive(Debug)]
pub struct Planner {
    subnets: Vec<Subnet>,
    /// Tokens per millisecond, and the bucket's size.
    per_ms: f64,
    burst: f64,
    tokens: f64,
    last_ms: Option<i64>,
    retry_ms: i64,
    recent: HashMap<IpAddr, i64>,
    /// Probe times in order, to forget the oldest past MAX_RECENT.
    order: VecDeque<(IpAddr, i64)>,
}

impl Planner {
    pub fn new(subnets: Vec<Subnet>, rate_per_sec: u32, burst: u32, retry_ms: i64) -> Self {
        Self {
            subnets,
            per_ms: f64::from(rate_per_sec) / 1000.0,
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            last_ms: None,
            retry_ms,
            recent: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Whether `address` may be probed at `now_ms`; when it may, the probe is counted against
    /// the rate and the address against `retry`.
    pub fn admit(&mut self, address: IpAddr, now_ms: i64) -> Admit {
        if !self.subnets.iter().any(|subnet| subnet.contains(address)) {
            return Admit::OutOfScope;
        }
        if self
            .recent
            .get(&address)
            .is_some_and(|&at| now_ms.saturating_sub(at) < self.retry_ms)
        {
            return Admit::Recent;
        }
        // A clock that goes back adds nothing.
        let elapsed = self
            .last_ms
            .map_or(0, |last| now_ms.saturating_sub(last).max(0));
        self.last_ms = Some(self.last_ms.map_or(now_ms, |last| last.max(now_ms)));
        #[expect(
            clippy::cast_precision_loss,
            reason = "elapsed milliseconds far below 2^52 matter; beyond, the bucket is full anyway"
        )]
        let refill = elapsed as f64 * self.per_ms;
        self.tokens = (self.tokens + refill).min(self.burst);
        if self.tokens < 1.0 {
            return Admit::RateLimited;
        }
        self.tokens -= 1.0;
        self.remember(address, now_ms);
        Admit::Probe
    }

    fn remember(&mut self, address: IpAddr, now_ms: i64) {
        self.recent.insert(address, now_ms);
        self.order.push_back((address, now_ms));
        while self.order.len() > MAX_RECENT {
            if let Some((old, at)) = self.order.pop_front()
                && self.recent.get(&old) == Some(&at)
            {
                self.recent.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 98, 0, last))
    }

    fn planner(rate: u32, burst: u32) -> Planner {
        Planner::new(
            vec!["10.98.0.0/24".parse().expect("subnet")],
            rate,
            burst,
            60_000,
        )
    }

    #[test]
    fn only_configured_subnets_are_probed() {
        let mut plan = planner(10, 10);
        assert_eq!(plan.admit(v4(1), 0), Admit::Probe);
        let outside = IpAddr::V4(Ipv4Addr::new(10, 99, 0, 1));
        assert_eq!(plan.admit(outside, 0), Admit::OutOfScope);
        assert_eq!(
            plan.admit("fd00::1".parse().expect("v6"), 0),
            Admit::OutOfScope
        );
        let mut none = Planner::new(Vec::new(), 10, 10, 0);
        assert_eq!(none.admit(v4(1), 0), Admit::OutOfScope);
    }

    #[test]
    fn the_rate_holds_after_a_burst_and_refills_with_time() {
        let mut plan = planner(2, 3);
        let admitted = (0..10)
            .filter(|&i| plan.admit(v4(i), 0) == Admit::Probe)
            .count();
        assert_eq!(admitted, 3, "the burst");
        assert_eq!(plan.admit(v4(20), 499), Admit::RateLimited);
        assert_eq!(
            plan.admit(v4(21), 500),
            Admit::Probe,
            "2 a second: one per 500 ms"
        );
        assert_eq!(plan.admit(v4(22), 500), Admit::RateLimited);
        // Ten seconds later the bucket holds its burst, not 20.
        let later = (30..60)
            .filter(|&i| plan.admit(v4(i), 10_500) == Admit::Probe)
            .count();
        assert_eq!(later, 3);
        // A clock that steps back gives no tokens.
        assert_eq!(plan.admit(v4(70), 0), Admit::RateLimited);
    }

    #[test]
    fn an_address_is_not_probed_again_within_retry() {
        let mut plan = planner(1000, 1000);
        assert_eq!(plan.admit(v4(1), 0), Admit::Probe);
        assert_eq!(plan.admit(v4(1), 59_999), Admit::Recent);
        assert_eq!(plan.admit(v4(1), 60_000), Admit::Probe);
    }

    #[test]
    fn memory_stays_bounded() {
        let mut plan = Planner::new(vec!["0.0.0.0/0".parse().expect("all")], 1, 1, i64::MAX);
        for i in 0..(MAX_RECENT as u32 + 1000) {
            plan.tokens = 1.0;
            assert_eq!(plan.admit(IpAddr::V4(Ipv4Addr::from(i)), 0), Admit::Probe);
        }
        assert_eq!(plan.recent.len(), MAX_RECENT);
        assert!(plan.order.len() <= MAX_RECENT);
        // The oldest were forgotten, the newest are still remembered.
        plan.tokens = 1.0;
        assert_eq!(plan.admit(IpAddr::V4(Ipv4Addr::from(0)), 1), Admit::Probe);
        assert_eq!(
            plan.admit(IpAddr::V4(Ipv4Addr::from(MAX_RECENT as u32 + 999)), 1),
            Admit::Recent
        );
    }
}
