//! The sensor's name resolution over its activities: every activity feeds the evidence table,
//! then gets its `source_computer` (the client side) and, when the server side is not a domain
//! controller, its `destination_computer`.
//!
//! Domain controllers are the configured addresses, and the addresses seen answering Kerberos
//! (a reply or error from port 88) or LDAP (an answered request to port 389, 636, 3268 or 3269).

use std::{
    collections::HashSet,
    net::IpAddr,
};

use dcwatch_proto::v1::{
    Activity, Certainty, Computer, activity::Body, dns_activity, kerberos_activity,
    ntp_activity, radius_activity, rdp_activity,
};

use super::{
    evidence::{self, Evidence, endpoint_ip},
    table::{EvidenceTable, NnrConfig, Resolution, TableCounters},
};

/// Domain controllers learned from traffic; more are not learned (counted in
/// `learned_dcs_dropped`). Configured ones do not count against it.
pub const MAX_LEARNED_DCS: usize = 1024;

/// Ports of the services a client reaches: the side that has one (and whose peer has none) is
/// the server.
const SERVICE_PORTS: &[u32] = &[
    53, 80, 88, 123, 135, 137, 139, 389, 443, 445, 464, 636, 1645, 1646, 1812, 1813, 3268, 3269,
    3389, 5985, 5986,
];
const LDAP_PORTS: &[u32] = &[389, 636, 3268, 3269];
const KERBEROS_PORT: u32 = 88;

/// What resolution counted, beyond the table's own counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NnrCounters {
    /// Computers (source or destination) resolved with HIGH certainty.
    pub high: u64,
    /// ... with LOW certainty.
    pub low: u64,
    /// Addresses the table had no evidence for at the activity's time.
    pub unresolved: u64,
    /// Of the resolutions, those in conflict (two names within the window).
    pub conflicting: u64,
    /// Domain controllers learned from traffic.
    pub learned_dcs: u64,
    /// Domain controllers not learned: MAX_LEARNED_DCS was reached.
    pub learned_dcs_dropped: u64,
}

#[derive(Debug, Default)]
pub struct Resolver {
    table: EvidenceTable,
    configured_dcs: HashSet<IpAddr>,
    learned_dcs: HashSet<IpAddr>,
    counters: NnrCounters,
    scratch: Vec<Evidence>,
}

impl Resolver {
    pub fn new(config: NnrConfig, dc_addresses: impl IntoIterator<Item = IpAddr>) -> Self {
        Self {
            table: EvidenceTable::new(config),
            configured_dcs: dc_addresses.into_iter().collect(),
            ..Self::default()
        }
    }

    pub fn table(&self) -> &EvidenceTable {
        &self.table
    }

    pub fn counters(&self) -> NnrCounters {
        self.counters
    }

    pub fn is_dc(&self, address: IpAddr) -> bool {
        self.configured_dcs.contains(&address) || self.learned_dcs.contains(&address)
    }

    /// Feeds `activity`'s evidence to the table and learns DCs from it, then sets its
    /// computers.
    pub fn process(&mut self, activity: &mut Activity) {
        self.observe(activity);
        self.resolve(activity);
    }

    /// What `activity` says about addresses, recorded at its time.
    pub fn observe(&mut self, activity: &Activity) {
        let time_ms = time_ms(activity);
        self.scratch.clear();
        evidence::collect(activity, &mut self.scratch);
        for found in &self.scratch {
            self.table.insert(found, time_ms);
        }
        if let Some(dc) = answering_dc(activity)
            && !self.is_dc(dc)
        {
            if self.learned_dcs.len() < MAX_LEARNED_DCS {
                self.learned_dcs.insert(dc);
                self.counters.learned_dcs += 1;
            } else {
                self.counters.learned_dcs_dropped += 1;
            }
        }
    }

    /// Sets `source_computer` (the client side) and, unless the server side is a DC,
    /// `destination_computer`, as the table knows them at the activity's time. A computer the
    /// table cannot name is left unset.
    pub fn resolve(&mut self, activity: &mut Activity) {
        let time_ms = time_ms(activity);
        let (src, dst) = (
            endpoint_ip(activity.src.as_ref()),
            endpoint_ip(activity.dst.as_ref()),
        );
        let (client, server) = if client_is_receiver(activity) {
            (dst, src)
        } else {
            (src, dst)
        };
        activity.source_computer = client.and_then(|client| self.computer(client, time_ms));
        activity.destination_computer = server
            .filter(|&server| !self.is_dc(server))
            .and_then(|server| self.computer(server, time_ms));
    }

    fn computer(&mut self, address: IpAddr, time_ms: i64) -> Option<Computer> {
        let Some(Resolution {
            name,
            method,
            certainty,
            conflict,
            ..
        }) = self.table.resolve(address, time_ms)
        else {
            self.counters.unresolved += 1;
            return None;
        };
        match certainty {
            Certainty::High => self.counters.high += 1,
            _ => self.counters.low += 1,
        }
        self.counters.conflicting += u64::from(conflict);
        Some(Computer {
            name,
            certainty: certainty.into(),
            method: method.into(),
            ..Computer::default()
        })
    }

    /// Every counter, named for the stats file.
    pub fn counter_pairs(&self) -> Vec<(String, u64)> {
        let TableCounters {
            evidence,
            address_evictions,
            evidence_evictions,
            conflicts,
        } = self.table.counters();
        let NnrCounters {
            high,
            low,
            unresolved,
            conflicting,
            learned_dcs,
            learned_dcs_dropped,
        } = self.counters;
        [
            ("nnr_resolved_high", high),
            ("nnr_resolved_low", low),
            ("nnr_unresolved", unresolved),
            ("nnr_resolved_in_conflict", conflicting),
            ("nnr_evidence", evidence),
            ("nnr_conflicts", conflicts),
            ("nnr_address_evictions", address_evictions),
            ("nnr_evidence_evictions", evidence_evictions),
            ("nnr_addresses", self.table.len() as u64),
            ("nnr_learned_dcs", learned_dcs),
            ("nnr_learned_dcs_dropped", learned_dcs_dropped),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
    }
}

fn time_ms(activity: &Activity) -> i64 {
    activity.time.as_ref().map_or(0, |time| {
        time.seconds
            .saturating_mul(1000)
            .saturating_add(i64::from(time.nanos / 1_000_000))
    })
}

fn port(activity: &Activity, src: bool) -> u32 {
    let endpoint = if src { &activity.src } else { &activity.dst };
    endpoint.as_ref().map_or(0, |endpoint| endpoint.port)
}

/// Whether the message went from the server to the client: a reply by its type, else by which
/// side has a service port.
pub fn client_is_receiver(activity: &Activity) -> bool {
    let reply = match &activity.body {
        Some(Body::Kerberos(kerberos)) => {
            use kerberos_activity::Type;
            Some(matches!(
                kerberos.r#type(),
                Type::AsRep | Type::TgsRep | Type::ApRep | Type::KrbError
            ))
        }
        Some(Body::Ntlm(ntlm)) => {
            Some(ntlm.r#type() == dcwatch_proto::v1::ntlm_activity::Type::Challenge)
        }
        Some(Body::Dns(dns)) => {
            use dns_activity::Type;
            Some(matches!(
                dns.r#type(),
                Type::Response
                    | Type::AxfrResponse
                    | Type::IxfrResponse
                    | Type::UpdateResponse
                    | Type::NotifyResponse
            ))
        }
        Some(Body::Netbios(netbios)) => Some(netbios.response),
        Some(Body::Rdp(rdp)) => Some(rdp.r#type() == rdp_activity::Type::ConnectionConfirm),
        Some(Body::Radius(radius)) => {
            use radius_activity::Type;
            Some(matches!(
                radius.r#type(),
                Type::AccessAccept
                    | Type::AccessReject
                    | Type::AccessChallenge
                    | Type::AccountingResponse
            ))
        }
        Some(Body::Ntp(ntp)) => Some(ntp.r#type() == ntp_activity::Type::Response),
        _ => None,
    };
    reply.unwrap_or_else(|| {
        let (src, dst) = (port(activity, true), port(activity, false));
        SERVICE_PORTS.contains(&src) && !SERVICE_PORTS.contains(&dst)
    })
}

/// The address an activity shows answering as a domain controller: a Kerberos reply or error
/// from port 88, an answered LDAP request to an LDAP port.
fn answering_dc(activity: &Activity) -> Option<IpAddr> {
    match &activity.body {
        Some(Body::Kerberos(kerberos))
            if port(activity, true) == KERBEROS_PORT
                && matches!(
                    kerberos.r#type(),
                    kerberos_activity::Type::AsRep
                        | kerberos_activity::Type::TgsRep
                        | kerberos_activity::Type::KrbError
                ) =>
        {
            endpoint_ip(activity.src.as_ref())
        }
        Some(Body::Ldap(ldap)) if ldap.answered && LDAP_PORTS.contains(&port(activity, false)) => {
            endpoint_ip(activity.dst.as_ref())
        }
        _ => None,
    }
}
