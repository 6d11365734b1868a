//! The sensor's name resolution over its activities: every activity feeds the evidence table,
//! then gets its `source_computer` (the client side) and, when the server side is not a domain
//! controller, its `destination_computer`.
//!
//! Domain controllers are the configured addresses, and the addresses seen answering Kerberos
//! (a reply or error from port 88) or LDAP (an answered request to port 389, 636, 3268 or 3269).

use std::{collections::HashSet, net::IpAddr};

use dcwatch_proto::v1::{
    Activity, Certainty, Computer, activity::Body, dns_activity, kerberos_activity, ntp_activity,
    radius_activity, rdp_activity,
};
use dcwatch_telemetry::{Kind, Snapshot};

use super::{
    evidence::{self, Evidence, endpoint_ip},
    table::{EvidenceTable, NnrConfig, Resolution},
    watch::{CertaintyAlarm, CertaintyWatch},
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

dcwatch_telemetry::counters! {
    /// What resolution counted, beyond the table's own counters.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct NnrCounters {
        /// Computers (source or destination) resolved with HIGH certainty.
        counter resolved_high: u64,
        /// ... with LOW certainty.
        counter resolved_low: u64,
        /// Addresses the table had no evidence for at the activity's time.
        counter unresolved: u64,
        /// Of the resolutions, those in conflict (two names within the window).
        counter resolved_in_conflict: u64,
        /// Domain controllers learned from traffic.
        counter learned_dcs: u64,
        /// Domain controllers not learned: MAX_LEARNED_DCS was reached.
        counter learned_dcs_dropped: u64,
        /// Addresses to probe not kept: MAX_UNCERTAIN were waiting already.
        counter probe_candidates_dropped: u64,
    }
}

/// Unresolved or uncertain addresses kept for the active probes between two takes.
pub const MAX_UNCERTAIN: usize = 1024;

#[derive(Debug, Default)]
pub struct Resolver {
    table: EvidenceTable,
    configured_dcs: HashSet<IpAddr>,
    learned_dcs: HashSet<IpAddr>,
    counters: NnrCounters,
    scratch: Vec<Evidence>,
    /// The hourly share of sources named with HIGH certainty.
    watch: CertaintyWatch,
    /// What the watch said last, until taken.
    alarm: Option<CertaintyAlarm>,
    /// With active probes: the addresses resolved with LOW certainty or not at all, until taken.
    uncertain: Option<Vec<IpAddr>>,
}

impl Resolver {
    pub fn new(config: NnrConfig, dc_addresses: impl IntoIterator<Item = IpAddr>) -> Self {
        Self {
            table: EvidenceTable::new(config),
            configured_dcs: dc_addresses.into_iter().collect(),
            ..Self::default()
        }
    }

    /// Keeps the addresses it cannot name with HIGH certainty, for [`Resolver::take_uncertain`].
    #[must_use]
    pub fn collecting_uncertain(mut self) -> Self {
        self.uncertain = Some(Vec::new());
        self
    }

    /// The addresses named with LOW certainty or not at all since the last call (repeats
    /// included: the prober's plan drops them), at most MAX_UNCERTAIN.
    pub fn take_uncertain(&mut self) -> Vec<IpAddr> {
        self.uncertain
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Evidence that no activity carried (an active probe's answer), seen at `time_ms`.
    pub fn record(&mut self, evidence: &Evidence, time_ms: i64) {
        self.table.insert(evidence, time_ms);
    }

    pub fn table(&self) -> &EvidenceTable {
        &self.table
    }

    pub fn counters(&self) -> NnrCounters {
        self.counters
    }

    /// A change in how well sources are named (an hour below the share of HIGH certainty, or
    /// back above it), once, since the last call.
    pub fn take_alarm(&mut self) -> Option<CertaintyAlarm> {
        self.alarm.take()
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
        if client.is_some()
            && let Some(alarm) = self.watch.observe(
                time_ms,
                activity.source_computer.as_ref().map(Computer::certainty),
            )
        {
            self.alarm = Some(alarm);
        }
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
            self.uncertain(address);
            return None;
        };
        if certainty != Certainty::High {
            self.uncertain(address);
        }
        match certainty {
            Certainty::High => self.counters.resolved_high += 1,
            _ => self.counters.resolved_low += 1,
        }
        self.counters.resolved_in_conflict += u64::from(conflict);
        Some(Computer {
            name,
            certainty: certainty.into(),
            method: method.into(),
            ..Computer::default()
        })
    }

    fn uncertain(&mut self, address: IpAddr) {
        if let Some(uncertain) = &mut self.uncertain {
            if uncertain.len() < MAX_UNCERTAIN {
                uncertain.push(address);
            } else {
                self.counters.probe_candidates_dropped += 1;
            }
        }
    }

    /// Every counter, named as the stats file names them.
    pub fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot::default();
        snapshot.add_prefixed("nnr_", &self.counters);
        snapshot.add_prefixed("nnr_", &self.table.counters());
        snapshot.push(
            "nnr_addresses",
            Kind::Gauge,
            "Addresses the evidence table holds now.",
            self.table.len() as u64,
        );
        snapshot.push(
            "nnr_low_certainty_hours",
            Kind::Counter,
            "Hours in which too few sources were named with HIGH certainty.",
            self.watch.low_hours(),
        );
        snapshot
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

#[cfg(test)]
mod tests {
    use dcwatch_proto::v1::{
        Endpoint, KerberosActivity, LdapActivity, NetbiosActivity, NtlmActivity, ResolutionMethod,
        SmbActivity, netbios_activity, ntlm_activity, smb_activity,
    };
    use pbjson_types::Timestamp;

    use super::*;

    const CLIENT: [u8; 4] = [10, 0, 0, 5];
    const DC: [u8; 4] = [10, 0, 0, 1];
    const SERVER: [u8; 4] = [10, 0, 0, 20];

    fn activity(seconds: i64, src: ([u8; 4], u32), dst: ([u8; 4], u32), body: Body) -> Activity {
        let endpoint = |(ip, port): ([u8; 4], u32)| Endpoint {
            ip: ip.to_vec(),
            port,
        };
        Activity {
            time: Some(Timestamp { seconds, nanos: 0 }),
            src: Some(endpoint(src)),
            dst: Some(endpoint(dst)),
            body: Some(body),
            ..Activity::default()
        }
    }

    fn as_rep(seconds: i64, client: &str) -> Activity {
        activity(
            seconds,
            (DC, 88),
            (CLIENT, 50_000),
            Body::Kerberos(KerberosActivity {
                r#type: kerberos_activity::Type::AsRep.into(),
                client: client.to_owned(),
                ..KerberosActivity::default()
            }),
        )
    }

    fn ntlm_to_server(seconds: i64, workstation: &str) -> Activity {
        activity(
            seconds,
            (CLIENT, 50_001),
            (SERVER, 445),
            Body::Ntlm(NtlmActivity {
                r#type: ntlm_activity::Type::Authenticate.into(),
                workstation: workstation.to_owned(),
                ..NtlmActivity::default()
            }),
        )
    }

    fn names(computer: Option<&Computer>) -> Option<(&str, Certainty, ResolutionMethod)> {
        computer.map(|computer| {
            (
                computer.name.as_str(),
                computer.certainty(),
                computer.method(),
            )
        })
    }

    #[test]
    fn uncertain_addresses_are_kept_for_probes_and_a_probe_answer_names_them() {
        let mut resolver = Resolver::new(NnrConfig::default(), [IpAddr::from(DC)]);
        // Without probes nothing is kept.
        let mut first = ntlm_to_server(100, "WS05");
        resolver.process(&mut first);
        assert!(resolver.take_uncertain().is_empty());

        let mut resolver =
            Resolver::new(NnrConfig::default(), [IpAddr::from(DC)]).collecting_uncertain();
        let mut weak = ntlm_to_server(100, "WS05");
        resolver.process(&mut weak);
        // The client is named LOW (one weak method), the server not at all.
        assert_eq!(
            names(weak.source_computer.as_ref()),
            Some(("WS05", Certainty::Low, ResolutionMethod::NtlmWorkstation))
        );
        assert_eq!(
            resolver.take_uncertain(),
            [IpAddr::from(CLIENT), IpAddr::from(SERVER)]
        );
        assert!(resolver.take_uncertain().is_empty(), "taken once");
        // A node status answer (strong) for the client, from a probe.
        resolver.record(
            &Evidence {
                address: IpAddr::from(CLIENT),
                name: "WS05".into(),
                method: ResolutionMethod::NetbiosNodeStatus,
                strong: true,
            },
            101_000,
        );
        let mut again = ntlm_to_server(102, "WS05");
        resolver.process(&mut again);
        assert_eq!(
            again.source_computer.as_ref().map(Computer::certainty),
            Some(Certainty::High)
        );
        assert_eq!(resolver.take_uncertain(), [IpAddr::from(SERVER)]);
        // Bounded between takes.
        for second in 0..(MAX_UNCERTAIN as i64 + 10) {
            resolver.process(&mut ntlm_to_server(200 + second, "WS05"));
        }
        assert_eq!(resolver.take_uncertain().len(), MAX_UNCERTAIN);
        assert_eq!(resolver.counters().probe_candidates_dropped, 10);
    }

    #[test]
    fn the_client_is_named_on_replies_and_requests_and_the_dc_is_learned() {
        let mut resolver = Resolver::new(NnrConfig::default(), []);
        let mut reply = as_rep(1_000, "WS01$");
        resolver.process(&mut reply);
        assert_eq!(
            names(reply.source_computer.as_ref()),
            Some(("WS01", Certainty::High, ResolutionMethod::KerberosPrincipal)),
            "the AS-REP goes to the client: its receiver"
        );
        assert!(resolver.is_dc(IpAddr::from(DC)), "it answered Kerberos");
        assert_eq!(reply.destination_computer, None, "the KDC is a DC");

        // The NetBIOS registration of the server, then NTLM from the client to it.
        let mut registration = activity(
            1_001,
            (SERVER, 137),
            ([10, 0, 0, 255], 137),
            Body::Netbios(NetbiosActivity {
                r#type: netbios_activity::Type::Registration.into(),
                name_base: "FILES".to_owned(),
                suffix: 0x20,
                addresses: vec!["10.0.0.20".to_owned()],
                ..NetbiosActivity::default()
            }),
        );
        resolver.process(&mut registration);
        let mut ntlm = ntlm_to_server(1_002, "ws01");
        resolver.process(&mut ntlm);
        assert_eq!(
            names(ntlm.source_computer.as_ref()),
            Some(("WS01", Certainty::High, ResolutionMethod::NtlmWorkstation)),
            "NTLM's workstation agrees with Kerberos"
        );
        assert_eq!(
            names(ntlm.destination_computer.as_ref()),
            Some(("FILES", Certainty::Low, ResolutionMethod::Netbios)),
            "a server that is not a DC: a single weak method"
        );
        // HIGH: the AS-REP's client, NTLM's client; LOW: the registration's sender, NTLM's
        // server; unresolved: the AS-REP's DC side is skipped, the broadcast address unknown.
        let counters = resolver.counters();
        assert_eq!(
            (
                counters.resolved_high,
                counters.resolved_low,
                counters.unresolved
            ),
            (2, 2, 1)
        );
    }

    #[test]
    fn a_spoofed_workstation_name_conflicts_with_the_kerberos_name() {
        let mut resolver = Resolver::new(NnrConfig::default(), [IpAddr::from(DC)]);
        resolver.process(&mut as_rep(1_000, "WS01$"));
        let mut spoofed = ntlm_to_server(1_060, "ATTACKER");
        resolver.process(&mut spoofed);
        assert_eq!(
            names(spoofed.source_computer.as_ref()),
            Some((
                "ATTACKER",
                Certainty::Low,
                ResolutionMethod::NtlmWorkstation
            ))
        );
        assert_eq!(resolver.table().counters().conflicts, 1);
        assert_eq!(resolver.counters().resolved_in_conflict, 1);
        assert_eq!(
            resolver.counters().learned_dcs,
            0,
            "configured, not learned"
        );
    }

    #[test]
    fn stale_evidence_names_with_low_certainty() {
        let config = NnrConfig {
            lease_ms: 3_600_000,
            ..NnrConfig::default()
        };
        let mut resolver = Resolver::new(config, [IpAddr::from(DC)]);
        resolver.process(&mut as_rep(1_000, "WS01$"));
        let mut later = ntlm_to_server(1_000 + 7_200, "");
        resolver.process(&mut later);
        assert_eq!(
            names(later.source_computer.as_ref()),
            Some(("WS01", Certainty::Low, ResolutionMethod::KerberosPrincipal))
        );
    }

    #[test]
    fn accepted_smb_sessions_of_computer_accounts_are_strong_evidence() {
        let mut resolver = Resolver::new(NnrConfig::default(), []);
        let setup = |status| {
            let mut setup = activity(
                1_000,
                (CLIENT, 50_002),
                (SERVER, 445),
                Body::Smb(SmbActivity {
                    r#type: smb_activity::Type::SessionSetup.into(),
                    answered: true,
                    user: "WS09$".to_owned(),
                    ..SmbActivity::default()
                }),
            );
            setup.outcome = Some(dcwatch_proto::v1::Outcome {
                status,
                ..Default::default()
            });
            setup
        };
        let mut refused = setup(dcwatch_proto::v1::outcome::Status::Failure.into());
        resolver.process(&mut refused);
        assert_eq!(
            refused.source_computer, None,
            "a refused logon proves nothing"
        );
        let mut accepted = setup(dcwatch_proto::v1::outcome::Status::Success.into());
        resolver.process(&mut accepted);
        assert_eq!(
            names(accepted.source_computer.as_ref()),
            Some(("WS09", Certainty::High, ResolutionMethod::SmbSession))
        );
    }

    #[test]
    fn ldap_servers_answering_are_learned_as_dcs() {
        let mut resolver = Resolver::new(NnrConfig::default(), []);
        let mut search = activity(
            1_000,
            (CLIENT, 50_003),
            (SERVER, 389),
            Body::Ldap(LdapActivity {
                answered: true,
                ..LdapActivity::default()
            }),
        );
        resolver.process(&mut search);
        assert!(resolver.is_dc(IpAddr::from(SERVER)));
        assert!(!resolver.is_dc(IpAddr::from(CLIENT)));
    }
}
