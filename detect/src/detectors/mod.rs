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

mod asrep_roasting;
mod auth;
mod brute_force;
mod dcsync;
mod golden_ticket;
mod honeytoken_activity;
mod kerberoasting;
mod key_list;
mod ldap_brute_force;
mod nopac;
mod ntlm_relay;
mod ntlm_tampering;
mod overpass_the_hash;
mod pass_the_ticket;
mod password_spray;
mod skeleton_key;
mod timeroasting;

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
    vec![
        Box::new(dcsync::Dcsync),
        Box::new(brute_force::BruteForce::default()),
        Box::new(password_spray::PasswordSpray::default()),
        Box::new(ldap_brute_force::LdapBruteForce::default()),
        Box::new(kerberoasting::Kerberoasting::default()),
        Box::new(asrep_roasting::AsrepRoasting::default()),
        Box::new(overpass_the_hash::OverpassTheHash::default()),
        Box::new(pass_the_ticket::PassTheTicket::default()),
        Box::new(golden_ticket::GoldenTicket::default()),
        Box::new(skeleton_key::SkeletonKey::default()),
        Box::new(key_list::KeyList),
        Box::new(timeroasting::Timeroasting::default()),
        Box::new(nopac::Nopac::default()),
        Box::new(ntlm_relay::NtlmRelay::default()),
        Box::new(ntlm_tampering::NtlmTampering),
        Box::new(honeytoken_activity::HoneytokenActivity),
    ]
}

#[cfg(test)]
pub(crate) mod testing;
