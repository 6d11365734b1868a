//! One module per detection of DETECTIONS.md Parts I and II. A detector reads activities (and what the
//! engine knows of who is who) and pushes findings; it keeps its own bounded state, keyed by
//! what it counts on.

use crate::{
    catalogue::Kind,
    config::{Config, Threshold},
    finding::Finding,
    knowledge::Knowledge,
    observed::Observed,
    profiles::Profiles,
    time::Millis,
};

mod account_enumeration;
mod asrep_roasting;
mod auth;
mod brute_force;
mod dcshadow;
mod dcsync;
mod dfs_coercion;
mod dispatch;
mod dns_recon;
mod dns_suspicious_communication;
mod dns_volume;
mod dpapi_backup_key;
mod efsrpc_coercion;
mod golden_ticket;
mod guesses;
mod honeytoken_activity;
mod kerberoasting;
mod key_list;
mod ldap_brute_force;
mod ldap_ping_enumeration;
mod ldap_recon;
mod massive_object_deletion;
mod nopac;
mod ntlm_relay;
mod ntlm_tampering;
mod overpass_the_hash;
mod pass_the_hash;
mod pass_the_ticket;
mod password_spray;
mod print_spooler;
mod printer_bug_coercion;
mod remote_execution;
mod remote_registry_dump;
mod samr_recon;
mod sensitive_group_change;
mod skeleton_key;
mod smb_compression_exploit;
mod smb_session_enumeration;
mod suspicious_service_creation;
mod suspicious_vpn;
mod target;
mod timeroasting;
mod zerologon;

pub use dispatch::{Detectors, Interface, Kinds};

/// The longest of the detectors' sliding windows (password spraying's): how far back an
/// engine's checkpointed journal reaches.
pub const LONGEST_WINDOW: Millis = password_spray::SPRAY_WINDOW;

/// What a detector keeps its state and its alerts by, of which it must see every activity, in
/// order: a cluster partitions the stream by it (backend README "Scaling out"), so each alert
/// is raised by exactly one engine. One engine judging everything serves every key at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    /// The client's address: counting, reconnaissance, roasting, coercion, most detectors.
    /// Group changes too: over LDAP their actor is the connection's bind, which only the
    /// client's engine has seen.
    Source,
    /// The account an activity is about: honeytokens, and the user profiles of pass-the-hash
    /// and suspicious VPN.
    Account,
    /// A Kerberos ticket's hash: pass-the-ticket.
    Ticket,
}

/// What a detector sees of the engine while it judges one activity.
#[derive(Debug)]
pub struct Context<'a> {
    pub knowledge: &'a Knowledge,
    pub profiles: &'a Profiles,
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
    /// The activities it judges, by kind: the engine hands it no others.
    fn kinds(&self) -> Kinds;

    /// Judges one activity; its time is the detector's clock.
    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>);

    /// With [`Kinds::ALARM`]: the time from which it must be handed the next activity, whatever
    /// its kind, to release what it holds; `Millis::MAX` while it holds nothing. Read after each
    /// of its calls.
    fn alarm(&self) -> Millis {
        Millis::MAX
    }

    /// Whether it can raise anything with what the engine knows (honeytokens' detector: only
    /// once some account is one). The engine hands a detector that cannot no activity, and asks
    /// again whenever that knowledge changes ([`Detectors::fit`]).
    fn applies(&self, _knowledge: &Knowledge) -> bool {
        true
    }

    /// Entries its bounded tables had to forget, for the engine's counters.
    fn evicted(&self) -> u64 {
        0
    }

    /// What its state and alerts are keyed by.
    fn key(&self) -> Key {
        Key::Source
    }
}

/// Every detector, fresh, sorted by the kinds they judge.
pub fn all() -> Detectors {
    Detectors::new(vec![
        Box::new(dcsync::Dcsync),
        Box::new(dcshadow::Dcshadow),
        Box::new(sensitive_group_change::SensitiveGroupChange),
        Box::new(massive_object_deletion::MassiveObjectDeletion::default()),
        Box::new(remote_registry_dump::RemoteRegistryDump),
        Box::new(dns_recon::DnsRecon::default()),
        Box::new(account_enumeration::AccountEnumeration::default()),
        Box::new(ldap_ping_enumeration::LdapPingEnumeration::default()),
        Box::new(samr_recon::SamrRecon::default()),
        Box::new(smb_session_enumeration::SmbSessionEnumeration),
        Box::new(ldap_recon::LdapRecon::default()),
        Box::new(dns_suspicious_communication::DnsSuspiciousCommunication::default()),
        Box::new(dpapi_backup_key::DpapiBackupKey),
        Box::new(zerologon::Zerologon::default()),
        Box::new(efsrpc_coercion::EfsrpcCoercion),
        Box::new(dfs_coercion::DfsCoercion),
        Box::new(print_spooler::PrintSpooler),
        Box::new(printer_bug_coercion::PrinterBugCoercion),
        Box::new(remote_execution::RemoteExecution::default()),
        Box::new(suspicious_service_creation::SuspiciousServiceCreation::default()),
        Box::new(smb_compression_exploit::SmbCompressionExploit),
        Box::new(brute_force::Guessing::default()),
        Box::new(ldap_brute_force::LdapBruteForce::default()),
        Box::new(kerberoasting::Kerberoasting::default()),
        Box::new(asrep_roasting::AsrepRoasting::default()),
        Box::new(overpass_the_hash::OverpassTheHash::default()),
        Box::new(pass_the_ticket::PassTheTicket::default()),
        Box::new(pass_the_hash::PassTheHash),
        Box::new(suspicious_vpn::SuspiciousVpn),
        Box::new(golden_ticket::GoldenTicket::default()),
        Box::new(skeleton_key::SkeletonKey::default()),
        Box::new(key_list::KeyList),
        Box::new(timeroasting::Timeroasting::default()),
        Box::new(nopac::Nopac::default()),
        Box::new(ntlm_relay::NtlmRelay::default()),
        Box::new(ntlm_tampering::NtlmTampering),
        Box::new(honeytoken_activity::HoneytokenActivity),
    ])
}

#[cfg(test)]
mod builders;
#[cfg(test)]
mod extremes;
#[cfg(test)]
mod part_two;
#[cfg(test)]
pub(crate) mod testing;
