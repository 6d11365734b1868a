//! One module per detection of DETECTIONS.md Part I. A detector reads activities (and what the
//! engine knows of who is who) and pushes findings; it keeps its own bounded state, keyed by
//! what it counts on.

use crate::{
    catalogue::Kind,
    config::{Config, Threshold},
    finding::Finding,
    knowledge::Knowledge,
    observed::Observed,
};

mod dcsync;

/// What a detector sees of the engine while it judges one activity.
#[derive(Debug)]
pub struct Context<'a> {
    pub knowledge: &'a Knowledge,
    pub config: &'a Config,
    pub findings: &'a mut Vec<Finding>,
}

impl Context<'_> {
    pub fn raise(&mut self, finding: Finding) {
        self.findings.push(finding);
    }

    pub fn threshold(&self, kind: &Kind) -> Threshold {
        self.config.threshold(kind.type_name)
    }
}

pub trait Detector: Send + std::fmt::Debug {
    /// Judges one activity; its time is the detector's clock.
    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>);

    /// Entries its bounded tables had to forget, for the engine's counters.
    fn evicted(&self) -> u64 {
        0
    }
}

/// Every detector, fresh.
pub fn all() -> Vec<Box<dyn Detector>> {
    vec![Box::new(dcsync::Dcsync)]
}

#[cfg(test)]
pub(crate) mod testing;
