//! One flow's dissection: which protocol, and its two PDU streams.

use dcwatch_parsers::framing::{Framing, Start};
use dcwatch_proto::v1::Activity;

use super::{
    DissectCounters,
    connection::ConnectionNotes,
    dcerpc::DceRpc,
    dns::DnsStream,
    endpoints::Announcements,
    http::HttpSession,
    kerberos::KerberosStream,
    ldap::{Cldap, LdapSession},
    ntp::NtpState,
    probe::{Probe, Verdict},
    radius::RadiusState,
    rdp::RdpSession,
    smb::SmbSession,
    stream::{Duplex, Malformed, Sink, StreamProtocol},
};
use crate::{
    activity::Seen,
    flow::{Direction, FlowKey, MemoryBudget, StreamEvent},
    services::{Transport, service_name},
};

/// The parsers a flow can get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Kerberos,
    Ldap,
    Dns,
    Http,
    Smb,
    DceRpc,
    /// NetBIOS name service, UDP only.
    Netbios,
    /// RADIUS authentication and accounting, UDP only.
    Radius,
    /// NTP and MS-SNTP, UDP only.
    Ntp,
    Rdp,
}

impl Kind {
    fn for_service(name: &str) -> Option<Self> {
        match name {
            "kerberos" => Some(Self::Kerberos),
            "ldap" | "ldap-gc" | "cldap" => Some(Self::Ldap),
            "dns" => Some(Self::Dns),
            "http" | "winrm" => Some(Self::Http),
            "smb" | "netbios-ssn" => Some(Self::Smb),
            "dcerpc-epm" => Some(Self::DceRpc),
            "netbios-ns" => Some(Self::Netbios),
            "radius" | "radius-acct" => Some(Self::Radius),
            "ntp" => Some(Self::Ntp),
            "rdp" => Some(Self::Rdp),
            _ => None,
        }
    }

    fn for_port(transport: Transport, port: u16) -> Option<Self> {
        service_name(transport, port).and_then(Self::for_service)
    }

    pub(super) fn for_tcp(port: u16) -> Option<Self> {
        Self::for_port(Transport::Tcp, port)
    }

    pub(super) fn for_udp(port: u16) -> Option<Self> {
        Self::for_port(Transport::Udp, port)
    }
}

/// A datagram on a watched UDP port: one message, one parse.
pub(super) fn datagram(
    kind: Kind,
    payload: &[u8],
    seen: &Seen,
    cldap: &mut Cldap,
    radius: &mut RadiusState,
    ntp: &mut NtpState,
    sink: &mut Sink<'_>,
) {
    let parsed = match kind {
        Kind::Kerberos => super::kerberos::message(payload, seen, sink.out),
        Kind::Ldap => cldap.datagram(payload, seen, sink),
        Kind::Dns => super::dns::message(payload, seen, sink),
        Kind::Netbios => super::netbios::message(payload, seen, sink.out),
        Kind::Radius => super::radius::message(payload, seen, radius, sink.out),
        Kind::Ntp => ntp.datagram(payload, seen, sink),
        Kind::Http | Kind::Rdp | Kind::Smb | Kind::DceRpc => {
            sink.counters.unparsed_datagrams += 1;
            return;
        }
    };
    sink.counters.pdus += 1;
    if parsed.is_err() {
        sink.counters.parse_errors += 1;
    }
}

#[derive(Debug)]
enum Protocol {
    Kerberos(KerberosStream),
    Ldap(Box<LdapSession>),
    Dns(DnsStream),
    Http(HttpSession),
    Smb(Box<SmbSession>),
    DceRpc(Box<DceRpc>),
    Rdp(RdpSession),
}

impl StreamProtocol for Protocol {
    fn frame(&self, direction: Direction, bytes: &[u8]) -> Framing {
        match self {
            Self::Kerberos(protocol) => protocol.frame(direction, bytes),
            Self::Ldap(protocol) => protocol.frame(direction, bytes),
            Self::Dns(protocol) => protocol.frame(direction, bytes),
            Self::Http(protocol) => protocol.frame(direction, bytes),
            Self::Smb(protocol) => protocol.frame(direction, bytes),
            Self::DceRpc(protocol) => protocol.frame(direction, bytes),
            Self::Rdp(protocol) => protocol.frame(direction, bytes),
        }
    }

    fn is_pdu_start(&self, direction: Direction, bytes: &[u8]) -> Start {
        match self {
            Self::Kerberos(protocol) => protocol.is_pdu_start(direction, bytes),
            Self::Ldap(protocol) => protocol.is_pdu_start(direction, bytes),
            Self::Dns(protocol) => protocol.is_pdu_start(direction, bytes),
            Self::Http(protocol) => protocol.is_pdu_start(direction, bytes),
            Self::Smb(protocol) => protocol.is_pdu_start(direction, bytes),
            Self::DceRpc(protocol) => protocol.is_pdu_start(direction, bytes),
            Self::Rdp(protocol) => protocol.is_pdu_start(direction, bytes),
        }
    }

    fn pdu(
        &mut self,
        direction: Direction,
        pdu: &[u8],
        truncated: bool,
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) -> Result<(), Malformed> {
        match self {
            Self::Kerberos(protocol) => protocol.pdu(direction, pdu, truncated, seen, sink),
            Self::Ldap(protocol) => protocol.pdu(direction, pdu, truncated, seen, sink),
            Self::Dns(protocol) => protocol.pdu(direction, pdu, truncated, seen, sink),
            Self::Http(protocol) => protocol.pdu(direction, pdu, truncated, seen, sink),
            Self::Smb(protocol) => protocol.pdu(direction, pdu, truncated, seen, sink),
            Self::DceRpc(protocol) => protocol.pdu(direction, pdu, truncated, seen, sink),
            Self::Rdp(protocol) => protocol.pdu(direction, pdu, truncated, seen, sink),
        }
    }

    fn skip_after(&mut self, direction: Direction) -> u64 {
        match self {
            Self::Kerberos(protocol) => protocol.skip_after(direction),
            Self::Ldap(protocol) => protocol.skip_after(direction),
            Self::Dns(protocol) => protocol.skip_after(direction),
            Self::Http(protocol) => protocol.skip_after(direction),
            Self::Smb(protocol) => protocol.skip_after(direction),
            Self::DceRpc(protocol) => protocol.skip_after(direction),
            Self::Rdp(protocol) => protocol.skip_after(direction),
        }
    }

    fn is_done(&self, direction: Direction) -> bool {
        match self {
            Self::Kerberos(protocol) => protocol.is_done(direction),
            Self::Ldap(protocol) => protocol.is_done(direction),
            Self::Dns(protocol) => protocol.is_done(direction),
            Self::Http(protocol) => protocol.is_done(direction),
            Self::Smb(protocol) => protocol.is_done(direction),
            Self::DceRpc(protocol) => protocol.is_done(direction),
            Self::Rdp(protocol) => protocol.is_done(direction),
        }
    }

    fn gap(&mut self, direction: Direction) {
        match self {
            Self::Kerberos(protocol) => protocol.gap(direction),
            Self::Ldap(protocol) => protocol.gap(direction),
            Self::Dns(protocol) => protocol.gap(direction),
            Self::Http(protocol) => protocol.gap(direction),
            Self::Smb(protocol) => protocol.gap(direction),
            Self::DceRpc(protocol) => protocol.gap(direction),
            Self::Rdp(protocol) => protocol.gap(direction),
        }
    }
}

/// The dissection state of one TCP connection.
#[derive(Debug)]
pub(super) struct Session {
    state: State,
    notes: ConnectionNotes,
}

#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "the streams are the common case; boxing them would cost every flow an allocation"
)]
enum State {
    /// Its protocol's PDU streams; `flipped` when the flow table's client is the server
    /// (found by content: the first PDU seen was a server's).
    Streams {
        streams: Duplex<Protocol>,
        flipped: bool,
    },
    /// A flow no port names, probed for DCE-RPC.
    Probing(Box<Probe>),
    /// Probed, and not DCE-RPC.
    NotRpc,
}

impl Session {
    /// `None` for a kind that has no stream form (a UDP-only protocol).
    pub(super) fn new(kind: Kind, budget: MemoryBudget) -> Option<Self> {
        let protocol = match kind {
            Kind::Kerberos => Protocol::Kerberos(KerberosStream),
            Kind::Ldap => Protocol::Ldap(Box::new(LdapSession::new(budget.clone()))),
            Kind::Dns => Protocol::Dns(DnsStream),
            Kind::Http => Protocol::Http(HttpSession::new(budget.clone())),
            Kind::Smb => Protocol::Smb(Box::new(SmbSession::new(budget.clone()))),
            Kind::DceRpc => Protocol::DceRpc(Box::new(DceRpc::new(
                dcwatch_proto::v1::Carrier::None,
                budget.clone(),
            ))),
            Kind::Rdp => Protocol::Rdp(RdpSession::default()),
            Kind::Netbios | Kind::Radius | Kind::Ntp => return None,
        };
        Some(Self {
            state: State::Streams {
                streams: Duplex::new(protocol, &budget),
                flipped: false,
            },
            notes: ConnectionNotes::default(),
        })
    }

    /// The session of this connection: its activities carry its ids.
    pub(super) fn on_connection(mut self, notes: ConnectionNotes) -> Self {
        self.notes = notes;
        self
    }

    /// A flow on a port no service names: probed for DCE-RPC by its content.
    pub(super) fn probe(budget: MemoryBudget) -> Self {
        Self {
            state: State::Probing(Box::new(Probe::new(budget))),
            notes: ConnectionNotes::default(),
        }
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the flow table's callback hands these over separately"
    )]
    pub(super) fn event(
        &mut self,
        time_ns: u64,
        key: &FlowKey,
        direction: Direction,
        event: StreamEvent<'_>,
        budget: &MemoryBudget,
        counters: &mut DissectCounters,
        announced: &mut Announcements,
        out: &mut Vec<Activity>,
    ) {
        let before = out.len();
        let mut sink = Sink {
            out,
            counters,
            announced,
        };
        match &mut self.state {
            State::Streams { streams, flipped } => {
                let direction = if *flipped {
                    direction.reverse()
                } else {
                    direction
                };
                let seen = seen(time_ns, key, direction, *flipped);
                match event {
                    StreamEvent::Data(bytes) => streams.data(direction, bytes, &seen, sink, budget),
                    StreamEvent::Gap { .. } => streams.gap(direction, &seen, sink, budget),
                    StreamEvent::Closed => {}
                }
            }
            State::Probing(probe) => {
                let verdict = match event {
                    StreamEvent::Data(bytes) => probe.data(direction, bytes),
                    StreamEvent::Gap { .. } => probe.gap(direction),
                    StreamEvent::Closed => Verdict::Undecided,
                };
                match verdict {
                    Verdict::Undecided => {}
                    Verdict::NotRpc => {
                        sink.counters.rpc_probes_refused += 1;
                        self.state = State::NotRpc;
                    }
                    Verdict::Rpc { flipped } => {
                        sink.counters.rpc_found_by_content += 1;
                        let held = probe.take_held();
                        let rpc = DceRpc::new(dcwatch_proto::v1::Carrier::None, budget.clone())
                            .found_by_content();
                        let mut streams = Duplex::new(Protocol::DceRpc(Box::new(rpc)), budget);
                        for (direction, bytes) in held {
                            let direction = if flipped {
                                direction.reverse()
                            } else {
                                direction
                            };
                            let seen = seen(time_ns, key, direction, flipped);
                            streams.data(direction, &bytes, &seen, sink.reborrow(), budget);
                        }
                        self.state = State::Streams { streams, flipped };
                    }
                }
            }
            State::NotRpc => {}
        }
        self.notes.annotate(&mut out[before..]);
    }

    /// Whether either direction is still being parsed: a flow that is not its port's protocol,
    /// or has turned to TLS both ways, need not be reassembled any more.
    pub(super) fn follows(&self) -> bool {
        match &self.state {
            State::Streams { streams, .. } => streams.follows(),
            State::Probing(_) => true,
            State::NotRpc => false,
        }
    }

    /// The flow is gone: requests still waiting for an answer are reported without one, and
    /// PDUs cut short by the end are counted.
    pub(super) fn close(self, counters: &mut DissectCounters, out: &mut Vec<Activity>) {
        let State::Streams { streams, .. } = self.state else {
            return;
        };
        let mut notes = self.notes;
        let before = out.len();
        match streams.finish(counters) {
            Protocol::Ldap(ldap) => ldap.close(out),
            Protocol::Http(http) => http.close(out),
            Protocol::Smb(smb) => smb.close(counters, out),
            Protocol::DceRpc(rpc) => rpc.close(out),
            Protocol::Kerberos(_) | Protocol::Dns(_) | Protocol::Rdp(_) => {}
        }
        notes.annotate(&mut out[before..]);
    }
}

/// The endpoints of a PDU sent in `direction` (the protocol's), the flow table's client and
/// server swapped when `flipped`.
fn seen(time_ns: u64, key: &FlowKey, direction: Direction, flipped: bool) -> Seen {
    let (client, server) = if flipped {
        (key.server, key.client)
    } else {
        (key.client, key.server)
    };
    let (src, dst) = match direction {
        Direction::ToServer => (client, server),
        Direction::ToClient => (server, client),
    };
    Seen {
        time_ns,
        src,
        dst,
        tcp: true,
    }
}
