//! From decoded packets to activities: IP fragments put back together, TCP streams reassembled
//! and cut into PDUs, each PDU handed to its protocol's parser and turned into activities.
//!
//! Which parser a flow gets is decided by the server's port (one table with the capture's
//! watched ports, [`crate::services`]) and confirmed by content: a stream whose first bytes
//! after the handshake are not a PDU of that protocol is counted and ignored.

mod connection;
pub use connection::datagram_flow_id;
mod dcerpc;
mod dns;
mod endpoints;
mod gss;
mod http;
mod kerberos;
mod ldap;
mod netbios;
mod ntlm;
mod ntp;
mod probe;
pub mod radius;
mod rdp;
mod session;
mod smb;
pub mod stream;

use std::net::SocketAddr;

use dcwatch_proto::v1::Activity;
use dcwatch_telemetry::Snapshot;

use self::{
    connection::{ConnectionNotes, annotate_datagram},
    endpoints::{Announcements, LearnedEndpoints},
    ldap::Cldap,
    ntp::NtpState,
    radius::{RadiusSecrets, RadiusState},
    session::{Kind, Session},
    stream::Sink,
};
use crate::{
    activity::Seen,
    decode::{Packet, TransportPacket},
    flow::{
        CloseReason, Direction, FlowHandler, FlowKey, FlowLimits, FlowTable, FragmentKey,
        FragmentLimits, FragmentTable, MemoryBudget, StreamEvent, TcpFlags, TcpSegment,
    },
    services::{Transport, service_name},
};

dcwatch_telemetry::counters! {
    /// What the dissector counts beyond the flow table's and the fragment table's own counters.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct DissectCounters {
        counter activities: u64,
        counter pdus: u64,
        /// PDUs longer than [`stream::MAX_PDU_LEN`], handed over cut short.
        counter oversized_pdus: u64,
        /// Messages a parser rejected (malformed, or not what the port said).
        counter parse_errors: u64,
        /// Streams whose first bytes were not the protocol the port suggested.
        counter not_protocol_streams: u64,
        /// Times a stream lost PDU boundaries (bytes that did not frame) and went hunting.
        counter desyncs: u64,
        /// Times a hunting stream found a PDU start again.
        counter resyncs: u64,
        /// Partial PDUs given up because the memory budget was spent.
        counter pdu_budget_drops: u64,
        /// Streams that ended (closed, timed out, evicted) in the middle of a PDU.
        counter unfinished_pdus: u64,
        /// Datagrams on a watched port that no parser took (kpasswd, ...).
        counter unparsed_datagrams: u64,
        /// Authentication tokens (SPNEGO, Kerberos, NTLM) a carrier handed over that did not parse.
        counter unreadable_tokens: u64,
        /// Answers to requests the sensor never saw (or gave up waiting for).
        counter orphan_responses: u64,
        /// Requests reported without waiting for their answer, for lack of room.
        counter requests_not_awaited: u64,
        /// RADIUS requests whose authenticator was not kept because the pending-request table
        /// (`radius::MAX_PENDING_REQUESTS`) was full of recent ones: their answers are UNCHECKED.
        counter radius_requests_not_kept: u64,
        /// Stream bytes passed over without parsing: while hunting for a PDU start, and the parts
        /// of oversized PDUs and HTTP bodies.
        counter skipped_bytes: u64,
        /// TCP endpoints an endpoint mapper announced on another host than its own, not learned.
        counter rpc_endpoints_foreign: u64,
        /// Endpoints learned while the list handed to the live capture was full, so not handed.
        counter rpc_endpoints_dropped: u64,
        /// Gaps in the DCE-RPC stream of an SMB named pipe: a write or read whose data was cut
        /// (an oversized message, or a related write beyond what is kept), or a read whose answer
        /// was not awaited.
        counter pipe_gaps: u64,
        /// DCE-RPC context handles forgotten (the table full) or not remembered (the budget spent):
        /// later calls naming them go unnamed.
        counter rpc_handles_forgotten: u64,
        /// TCP flows on ports no service names recognised as DCE-RPC by their content.
        counter rpc_found_by_content: u64,
        /// TCP flows on such ports probed for DCE-RPC and found not to be.
        counter rpc_probes_refused: u64,
    }
}

dcwatch_telemetry::counters! {
    /// The memory budget the flow table, the fragment table and the PDU buffers share.
    struct MemoryGauges {
        /// Bytes the dissector's memory budget holds now.
        gauge memory_in_use: u64,
        /// The most bytes the budget held at once.
        gauge memory_peak: u64,
    }
}

/// Limits of the dissector's memory: the flow table's, the fragment table's, and one budget
/// they share with the PDU buffers.
#[derive(Clone, Debug, Default)]
pub struct DissectLimits {
    pub flows: FlowLimits,
    pub fragments: FragmentLimits,
    pub memory_bytes: usize,
    /// Shared secrets to check RADIUS authenticators with (not a limit, but handed over the
    /// same way).
    pub radius: RadiusSecrets,
    /// Whether TCP flows on ports no service names are probed for DCE-RPC by their content.
    pub rpc_by_content: bool,
}

impl DissectLimits {
    /// One of `ways` equal shares, for a worker of that many: the total stays within the limits.
    #[must_use]
    pub fn share(&self, ways: usize) -> Self {
        let ways = ways.max(1);
        let part = |total: usize| (total / ways).max(1);
        Self {
            flows: FlowLimits {
                max_flows: part(self.flows.max_flows),
                max_buffered_total: part(self.flows.max_buffered_total),
                ..self.flows
            },
            fragments: FragmentLimits {
                max_datagrams: part(self.fragments.max_datagrams),
                ..self.fragments
            },
            memory_bytes: part(self.memory_bytes),
            radius: self.radius.clone(),
            rpc_by_content: self.rpc_by_content,
        }
    }
}

/// How often, in capture time, idle flows and stale fragments are looked for.
pub const EXPIRY_INTERVAL_NS: u64 = 1_000_000_000;

pub struct Dissector {
    flows: FlowTable<Session>,
    fragments: FragmentTable,
    cldap: Cldap,
    radius: RadiusState,
    ntp: NtpState,
    budget: MemoryBudget,
    counters: DissectCounters,
    next_expiry_ns: u64,
    /// TCP endpoints endpoint mappers announced as DCE-RPC.
    learned: LearnedEndpoints,
    rpc_by_content: bool,
    /// Endpoints announced while handling the current packet, learned once it is done.
    announced: Announcements,
}

impl std::fmt::Debug for Dissector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dissector")
            .field("flows", &self.flows.len())
            .field("memory", &self.budget.in_use())
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Dissector {
    pub fn new(limits: DissectLimits) -> Self {
        let budget = MemoryBudget::new(limits.memory_bytes);
        Self {
            flows: FlowTable::new(limits.flows, budget.clone()),
            fragments: FragmentTable::new(limits.fragments, budget.clone()),
            cldap: Cldap::new(budget.clone()),
            radius: RadiusState::new(limits.radius),
            ntp: NtpState::default(),
            budget,
            counters: DissectCounters::default(),
            next_expiry_ns: 0,
            learned: LearnedEndpoints::default(),
            rpc_by_content: limits.rpc_by_content,
            announced: Announcements::default(),
        }
    }

    pub fn counters(&self) -> &DissectCounters {
        &self.counters
    }

    /// Every counter of the stage, for the stats file.
    pub fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot::default();
        snapshot.add(&self.counters);
        snapshot.add_prefixed("flow_", self.flows.counters());
        snapshot.add_prefixed("fragment_", self.fragments.counters());
        snapshot.add(&MemoryGauges {
            memory_in_use: self.budget.in_use() as u64,
            memory_peak: self.budget.peak() as u64,
        });
        snapshot
    }

    /// Handles one packet; the activities it completes are appended to `out`, in order.
    pub fn packet(&mut self, time_ns: u64, packet: &Packet<'_>, out: &mut Vec<Activity>) {
        let before = out.len();
        self.expire_if_due(time_ns, out);
        match (packet.fragment, packet.transport) {
            (Some(fragment), TransportPacket::Fragment(bytes)) => {
                let key = FragmentKey {
                    src: packet.src,
                    dst: packet.dst,
                    protocol: packet.ip_number,
                    id: fragment.id,
                };
                if let Some(datagram) =
                    self.fragments
                        .insert(time_ns, key, fragment.offset, fragment.more, bytes)
                {
                    let transport = crate::decode::transport(packet.ip_number, &datagram);
                    self.transport(time_ns, packet, transport, out);
                }
            }
            (_, transport) => self.transport(time_ns, packet, transport, out),
        }
        self.learned
            .learn_from(time_ns, &mut self.announced, &mut self.counters);
        self.counters.activities += (out.len() - before) as u64;
    }

    /// The TCP endpoints endpoint mappers announced as DCE-RPC since the last call, with the
    /// capture time (ns) until which they are dissected as such: for the live capture's port
    /// filter.
    pub fn take_learned_endpoints(&mut self) -> Vec<(SocketAddr, u64)> {
        self.learned.take_fresh()
    }

    fn transport(
        &mut self,
        time_ns: u64,
        packet: &Packet<'_>,
        transport: TransportPacket<'_>,
        out: &mut Vec<Activity>,
    ) {
        match transport {
            TransportPacket::Tcp(tcp) => {
                let src = SocketAddr::new(packet.src, tcp.src_port);
                let dst = SocketAddr::new(packet.dst, tcp.dst_port);
                let serves = |address: SocketAddr| {
                    Kind::for_tcp(address.port()).is_some()
                        || self.learned.contains(address, time_ns)
                };
                let server_hint = if serves(dst) {
                    Some(dst)
                } else if serves(src) {
                    Some(src)
                } else {
                    None
                };
                let segment = TcpSegment {
                    src,
                    dst,
                    seq: tcp.seq,
                    ack: tcp.ack,
                    flags: TcpFlags(tcp.flags),
                    payload: tcp.payload,
                };
                let mut handler = Handler {
                    time_ns,
                    budget: &self.budget,
                    counters: &mut self.counters,
                    learned: &self.learned,
                    rpc_by_content: self.rpc_by_content,
                    announced: &mut self.announced,
                    out,
                };
                self.flows
                    .segment(time_ns, &segment, server_hint, &mut handler);
            }
            TransportPacket::Udp {
                src_port,
                dst_port,
                payload,
            } => {
                let seen = Seen {
                    time_ns,
                    src: SocketAddr::new(packet.src, src_port),
                    dst: SocketAddr::new(packet.dst, dst_port),
                    tcp: false,
                };
                let Some(kind) = Kind::for_udp(dst_port).or_else(|| Kind::for_udp(src_port)) else {
                    self.counters.unparsed_datagrams += 1;
                    return;
                };
                let before = out.len();
                let mut sink = Sink {
                    out,
                    counters: &mut self.counters,
                    announced: &mut self.announced,
                };
                session::datagram(
                    kind,
                    payload,
                    &seen,
                    &mut self.cldap,
                    &mut self.radius,
                    &mut self.ntp,
                    &mut sink,
                );
                out[before..].iter_mut().for_each(annotate_datagram);
                self.counters.radius_requests_not_kept = self.radius.requests_not_kept();
            }
            TransportPacket::Fragment(_) | TransportPacket::Other => {}
        }
    }

    /// Lets time pass without a packet: idle flows close, stale fragments go.
    pub fn tick(&mut self, time_ns: u64, out: &mut Vec<Activity>) {
        let before = out.len();
        self.expire_if_due(time_ns, out);
        self.learned
            .learn_from(time_ns, &mut self.announced, &mut self.counters);
        self.counters.activities += (out.len() - before) as u64;
    }

    fn expire_if_due(&mut self, time_ns: u64, out: &mut Vec<Activity>) {
        if time_ns < self.next_expiry_ns {
            return;
        }
        self.next_expiry_ns = time_ns.saturating_add(EXPIRY_INTERVAL_NS);
        self.fragments.expire(time_ns);
        let before = out.len();
        self.cldap.expire(time_ns, out);
        self.ntp.expire(time_ns, out);
        out[before..].iter_mut().for_each(annotate_datagram);
        let mut handler = Handler {
            time_ns,
            budget: &self.budget,
            counters: &mut self.counters,
            learned: &self.learned,
            rpc_by_content: self.rpc_by_content,
            announced: &mut self.announced,
            out,
        };
        self.flows.expire(time_ns, &mut handler);
    }

    /// End of input: every flow gives up what it holds.
    pub fn finish(&mut self, time_ns: u64, out: &mut Vec<Activity>) {
        let before = out.len();
        let mut handler = Handler {
            time_ns,
            budget: &self.budget,
            counters: &mut self.counters,
            learned: &self.learned,
            rpc_by_content: self.rpc_by_content,
            announced: &mut self.announced,
            out,
        };
        self.flows.drain(&mut handler);
        let datagrams = out.len();
        self.cldap.flush(out);
        self.ntp.flush(out);
        out[datagrams..].iter_mut().for_each(annotate_datagram);
        self.counters.activities += (out.len() - before) as u64;
    }
}

/// The flow table's view of the dissector, for the length of one call.
struct Handler<'a> {
    time_ns: u64,
    budget: &'a MemoryBudget,
    counters: &'a mut DissectCounters,
    learned: &'a LearnedEndpoints,
    rpc_by_content: bool,
    announced: &'a mut Announcements,
    out: &'a mut Vec<Activity>,
}

impl FlowHandler for Handler<'_> {
    type State = Session;

    fn open(&mut self, key: &FlowKey) -> Option<Session> {
        let kind = Kind::for_tcp(key.server.port()).or_else(|| {
            self.learned
                .contains(key.server, self.time_ns)
                .then_some(Kind::DceRpc)
        });
        let session = match kind {
            Some(kind) => Session::new(kind, self.budget.clone()),
            // A service's port (LDAPS, ADWS...: watched for their flows) is never probed; nor is
            // a flow whose port the table took for the client's is one.
            None if [key.server, key.client]
                .iter()
                .any(|end| service_name(Transport::Tcp, end.port()).is_some()) =>
            {
                None
            }
            None => self
                .rpc_by_content
                .then(|| Session::probe(self.budget.clone())),
        };
        session.map(|session| {
            session.on_connection(ConnectionNotes::tcp(key.client, key.server, self.time_ns))
        })
    }

    fn event(
        &mut self,
        session: &mut Session,
        key: &FlowKey,
        direction: Direction,
        event: StreamEvent<'_>,
    ) {
        session.event(
            self.time_ns,
            key,
            direction,
            event,
            self.budget,
            self.counters,
            self.announced,
            self.out,
        );
    }

    fn follows(&self, session: &Session) -> bool {
        session.follows()
    }

    fn close(&mut self, session: Session, _key: &FlowKey, _reason: CloseReason) {
        session.close(self.counters, self.out);
    }
}
