//! DCE-RPC, connection-oriented (C706 chapter 12, MS-RPCE), over TCP and over SMB named pipes.
//!
//! One association's state serves both carriers: the presentation contexts its binds set up
//! (context id to interface and transfer syntax), binds waiting for their ack, and calls waiting
//! for their response, whose fragments are put back together when the stub is one dcwatch reads.
//! A BIND or ALTER_CONTEXT is reported when its ack (or nak) arrives, a REQUEST when its
//! RESPONSE or FAULT does; what never got an answer is reported when the association ends.
//! Authentication tokens of binds, alter contexts, AUTH3 and their acks become Kerberos or NTLM
//! activities carried by DCE-RPC; the signatures of later PDUs are not looked at.
//!
//! The endpoint mapper's answers say on which TCP ports DCE-RPC runs (DRSUAPI on a dynamic
//! port, say): they are handed over as [`Announced`] endpoints, which the dissector learns so
//! that later connections to those ports are dissected too.

use std::{collections::HashMap, net::SocketAddr};

use dcwatch_parsers::{
    dcerpc::{
        self, AuthVerifier, Bind, BindAck, Body as PduBody, ContextResult, Fault, Header, Pdu,
        PfcFlags, Request, Response, SyntaxId, Uuid, interfaces,
        stub::{self, ByteOrder, Encoding},
    },
    framing::{Framing, Start},
    smb::NtStatus,
};
use dcwatch_proto::v1::{
    Activity, Carrier, DceRpcActivity, Outcome,
    activity::Body,
    dce_rpc_activity::{AuthLevel, AuthType, Context, Type},
    outcome::Status,
};
use prost::Message as _;

mod fields;
mod handles;

use self::{
    fields::{decode_request, decode_response},
    handles::Handles,
};
use super::{
    DissectCounters, gss,
    stream::{Duplex, Malformed, Sink, StreamProtocol},
};
use crate::{
    activity::{Seen, flag_names, outcome, timestamp},
    flow::{Direction, MemoryBudget},
};

/// Presentation contexts remembered per association. A client binds a handful; DCOM a few
/// dozen. The bound keeps a hostile client that binds in a loop from growing the table.
pub(super) const MAX_CONTEXTS: usize = 256;

/// Binds (and alter contexts) waiting for their ack. A client sends one at a time.
pub(super) const MAX_PENDING_BINDS: usize = 16;

/// Calls waiting for their response per association. A client without CONC_MPX has one
/// outstanding; 256 allows pipelining. The oldest is reported unanswered beyond it.
pub(super) const MAX_PENDING_CALLS: usize = 256;

/// Bytes of one call's stub put back together from its fragments, in each direction. The stubs
/// dcwatch reads (a service's binary path, names looked up, endpoint towers) fit in a few KiB;
/// a stub longer than this is not decoded.
pub(super) const MAX_STUB_BYTES: usize = 64 * 1024;

/// Budget charged for a call or bind waiting for its answer beyond its activity (charged at
/// its encoded length) and its stub buffers: map entry, struct, allocator.
const ENTRY_OVERHEAD: usize = 128;

/// A presentation context of the association.
#[derive(Clone, Copy, Debug)]
struct ContextInfo {
    syntax: SyntaxId,
    /// The transfer syntax the server accepted (or the only one offered), if NDR or NDR64.
    encoding: Option<Encoding>,
}

/// A bind waiting for its ack.
#[derive(Debug)]
struct PendingBind {
    activity: Activity,
    context_ids: Vec<u16>,
    /// Bytes of the budget it holds.
    charge: usize,
}

/// A stub being put back together from fragments.
#[derive(Debug, Default)]
struct StubBuffer {
    bytes: Vec<u8>,
    /// Bytes of the budget it holds.
    charge: usize,
}

/// A call waiting for its response.
#[derive(Debug)]
struct Call {
    activity: Activity,
    interface: Option<Uuid>,
    opnum: u16,
    encoding: Option<Encoding>,
    /// The byte order of the request's first fragment (a client may choose big-endian NDR).
    order: ByteOrder,
    /// The request's own fragments are still coming.
    request_open: bool,
    request_stub: Option<StubBuffer>,
    response_stub: Option<StubBuffer>,
    /// Bytes of the budget it holds, beyond its stub buffers.
    charge: usize,
    /// What the handle the answer hands out stands for (a service, a registry key).
    opens: Option<String>,
}

/// The DCE-RPC state of one association (a TCP connection, or a named pipe).
#[derive(Debug)]
pub(super) struct DceRpc {
    carrier: Carrier,
    contexts: HashMap<u16, ContextInfo>,
    binds: HashMap<u32, PendingBind>,
    calls: HashMap<u32, Call>,
    budget: MemoryBudget,
    /// Bytes of the budget the waiting binds and calls hold, beyond their stub buffers.
    waiting_charge: usize,
    handles: Handles,
    /// The association was recognised by its content, on a port nothing announced.
    by_content: bool,
    /// The time of the latest PDU (ns): what is reported without its answer is reported then,
    /// so that an association's activities stay in time order.
    last_time_ns: u64,
}

impl DceRpc {
    /// `carrier` is what the DCE-RPC activities are carried by: none over TCP, SMB on pipes.
    pub(super) fn new(carrier: Carrier, budget: MemoryBudget) -> Self {
        Self {
            carrier,
            contexts: HashMap::new(),
            binds: HashMap::new(),
            calls: HashMap::new(),
            handles: Handles::new(budget.clone()),
            budget,
            waiting_charge: 0,
            by_content: false,
            last_time_ns: 0,
        }
    }

    /// The association was recognised by its content: its activities say so.
    pub(super) fn found_by_content(mut self) -> Self {
        self.by_content = true;
        self
    }

    fn activity(&self, seen: &Seen, mut body: DceRpcActivity) -> Activity {
        body.found_by_content = self.by_content;
        let mut activity = seen.activity(Body::Dcerpc(body));
        activity.carrier = self.carrier.into();
        activity
    }

    /// What a waiting bind or call holding `activity` is charged.
    fn waiting_cost(activity: &Activity) -> usize {
        ENTRY_OVERHEAD + activity.encoded_len()
    }

    fn charge_waiting(&mut self, charge: usize) -> bool {
        if self.budget.try_reserve(charge) {
            self.waiting_charge += charge;
            true
        } else {
            false
        }
    }

    fn release_waiting(&mut self, charge: usize) {
        let release = charge.min(self.waiting_charge);
        self.budget.release(release);
        self.waiting_charge -= release;
    }

    fn release_stub(&self, buffer: Option<StubBuffer>) {
        if let Some(buffer) = buffer {
            self.budget.release(buffer.charge);
        }
    }

    /// One whole PDU in `direction`.
    pub(super) fn message(
        &mut self,
        direction: Direction,
        bytes: &[u8],
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) -> Result<(), Malformed> {
        self.last_time_ns = self.last_time_ns.max(seen.time_ns);
        let pdu = dcerpc::parse(bytes).map_err(|_| Malformed)?;
        let anomalies = anomaly_names(&pdu);
        if direction == Direction::ToServer {
            // The client went on (clients wait for the ack): a bind still waiting will not be
            // answered any more, and its activity must come before what the client does next.
            self.flush_binds(seen.time_ns, sink);
        }
        match (&pdu.body, direction) {
            (PduBody::Bind(bind), Direction::ToServer) => {
                self.bind(
                    Type::Bind,
                    &pdu.header,
                    bind,
                    pdu.auth,
                    anomalies,
                    seen,
                    sink,
                );
            }
            (PduBody::AlterContext(bind), Direction::ToServer) => {
                self.bind(
                    Type::AlterContext,
                    &pdu.header,
                    bind,
                    pdu.auth,
                    anomalies,
                    seen,
                    sink,
                );
            }
            (PduBody::BindAck(ack) | PduBody::AlterContextResp(ack), Direction::ToClient) => {
                self.bind_ack(&pdu.header, ack, pdu.auth, seen, sink);
            }
            (PduBody::BindNak { reason }, Direction::ToClient) => {
                let name = reason
                    .name()
                    .map_or_else(|| reason.0.to_string(), str::to_owned);
                self.bind_nak(&pdu.header, reason.0, &name, sink);
            }
            (PduBody::Auth3, Direction::ToServer) => tokens(pdu.auth, seen, sink),
            (PduBody::Request(request), Direction::ToServer) => {
                self.request(&pdu.header, request, pdu.auth, anomalies, seen, sink);
            }
            (PduBody::Response(response), Direction::ToClient) => {
                self.response(&pdu.header, response, seen, sink);
            }
            (PduBody::Fault(fault), Direction::ToClient) => self.fault(&pdu.header, fault, sink),
            // shutdown, co_cancel, orphaned; or a PDU from the wrong side.
            (PduBody::Other, _) => {}
            _ => sink.counters.orphan_responses += 1,
        }
        Ok(())
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the parts of one PDU, kept apart to borrow"
    )]
    fn bind(
        &mut self,
        kind: Type,
        header: &Header,
        bind: &Bind,
        auth: Option<AuthVerifier<'_>>,
        anomalies: Vec<String>,
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) {
        tokens(auth, seen, sink);
        let mut context_ids = Vec::new();
        let contexts = bind
            .contexts
            .iter()
            .map(|element| {
                let syntax = element.abstract_syntax;
                let offered = match element.transfer_syntaxes.as_slice() {
                    [only] => encoding(only.uuid),
                    _ => None,
                };
                if self.contexts.len() < MAX_CONTEXTS
                    || self.contexts.contains_key(&element.context_id)
                {
                    self.contexts.insert(
                        element.context_id,
                        ContextInfo {
                            syntax,
                            encoding: offered,
                        },
                    );
                }
                context_ids.push(element.context_id);
                Context {
                    context_id: u32::from(element.context_id),
                    interface_uuid: syntax.uuid.to_string(),
                    interface_name: interface_name(syntax.uuid),
                    version_major: u32::from(syntax.major),
                    version_minor: u32::from(syntax.minor),
                    transfer_syntax: element
                        .transfer_syntaxes
                        .first()
                        .map(|transfer| transfer.uuid.to_string())
                        .unwrap_or_default(),
                    result: String::new(),
                }
            })
            .collect();
        let (auth_type, auth_level) = auth_fields(auth);
        let activity = self.activity(
            seen,
            DceRpcActivity {
                r#type: kind.into(),
                call_id: header.call_id,
                auth_type,
                auth_level,
                contexts,
                anomalies,
                ..DceRpcActivity::default()
            },
        );
        let charge = Self::waiting_cost(&activity);
        if self.binds.len() >= MAX_PENDING_BINDS || !self.charge_waiting(charge) {
            sink.counters.requests_not_awaited += 1;
            sink.out.push(activity);
            return;
        }
        if let Some(replaced) = self.binds.insert(
            header.call_id,
            PendingBind {
                activity,
                context_ids,
                charge,
            },
        ) {
            self.release_waiting(replaced.charge);
            sink.out.push(replaced.activity);
        }
    }

    fn bind_ack(
        &mut self,
        header: &Header,
        ack: &BindAck<'_>,
        auth: Option<AuthVerifier<'_>>,
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) {
        let Some(mut pending) = self.binds.remove(&header.call_id) else {
            sink.counters.orphan_responses += 1;
            tokens(auth, seen, sink);
            return;
        };
        self.release_waiting(pending.charge);
        let mut accepted = false;
        for (context_id, result) in pending.context_ids.iter().zip(&ack.results) {
            if result.result == ContextResult::ACCEPTANCE {
                accepted = true;
                if let Some(info) = self.contexts.get_mut(context_id) {
                    info.encoding = encoding(result.transfer_syntax.uuid);
                }
            }
            // A rejected context stays named: a client that calls it anyway (PetitPotam over
            // a pipe whose server lacks EFSRPC) still said which interface it meant.
        }
        if let Some(Body::Dcerpc(body)) = pending.activity.body.as_mut() {
            for (context, result) in body.contexts.iter_mut().zip(&ack.results) {
                context.result = result
                    .result
                    .name()
                    .map_or_else(|| result.result.0.to_string(), str::to_owned);
            }
            body.answered = true;
            body.secondary_address = String::from_utf8_lossy(ack.secondary_address).into_owned();
        }
        pending.activity.outcome = Some(outcome(accepted, 0, None));
        sink.out.push(pending.activity);
        // The server's token follows the bind it answers.
        tokens(auth, seen, sink);
    }

    fn bind_nak(&mut self, header: &Header, code: u16, name: &str, sink: &mut Sink<'_>) {
        let Some(mut pending) = self.binds.remove(&header.call_id) else {
            sink.counters.orphan_responses += 1;
            return;
        };
        self.release_waiting(pending.charge);
        for context_id in &pending.context_ids {
            self.contexts.remove(context_id);
        }
        if let Some(Body::Dcerpc(body)) = pending.activity.body.as_mut() {
            body.answered = true;
            body.reject_reason = name.to_owned();
        }
        pending.activity.outcome = Some(outcome(false, u32::from(code), Some(name)));
        sink.out.push(pending.activity);
    }

    fn request(
        &mut self,
        header: &Header,
        request: &Request<'_>,
        auth: Option<AuthVerifier<'_>>,
        anomalies: Vec<String>,
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) {
        let first = header.flags.contains(PfcFlags::FIRST_FRAG);
        let last = header.flags.contains(PfcFlags::LAST_FRAG);
        let continues = self
            .calls
            .get(&header.call_id)
            .is_some_and(|call| call.request_open);
        if !first && continues {
            self.more_request(header.call_id, request.stub, last, sink);
            return;
        }
        if let Some(replaced) = self.calls.remove(&header.call_id) {
            // A call id reused before its answer: the old call is reported unanswered.
            self.report(replaced, sink);
        }
        if self.calls.len() >= MAX_PENDING_CALLS
            && let Some(oldest) = self.calls.keys().min().copied()
            && let Some(evicted) = self.calls.remove(&oldest)
        {
            sink.counters.requests_not_awaited += 1;
            self.report(evicted, sink);
        }
        let context = self.contexts.get(&request.context_id).copied();
        let interface = context.map(|context| context.syntax.uuid);
        let sealed = auth.is_some_and(|auth| auth.auth_level >= dcerpc::AuthLevel::PKT_PRIVACY);
        let encoding = context
            .and_then(|context| context.encoding)
            .filter(|_| !sealed);
        let (auth_type, auth_level) = auth_fields(auth);
        let body = DceRpcActivity {
            r#type: Type::Request.into(),
            call_id: header.call_id,
            auth_type,
            auth_level,
            interface_uuid: interface.map(|uuid| uuid.to_string()).unwrap_or_default(),
            interface_name: interface.map(interface_name).unwrap_or_default(),
            context_id: u32::from(request.context_id),
            opnum: u32::from(request.opnum),
            operation: interface
                .and_then(|uuid| interfaces::operation_name(uuid, request.opnum))
                .unwrap_or_default()
                .to_owned(),
            object_uuid: request
                .object
                .map(|uuid| uuid.to_string())
                .unwrap_or_default(),
            stub_len: u32::try_from(request.stub.len()).unwrap_or(u32::MAX),
            anomalies,
            ..DceRpcActivity::default()
        };
        let mut call = Call {
            activity: self.activity(seen, body),
            interface,
            opnum: request.opnum,
            encoding,
            order: ByteOrder::of(header),
            request_open: !last,
            request_stub: None,
            response_stub: None,
            charge: 0,
            opens: None,
        };
        let reads = |read: fn(Uuid, u16) -> bool| {
            encoding.is_some() && interface.is_some_and(|uuid| read(uuid, request.opnum))
        };
        if reads(stub::reads_request) {
            if last {
                decode_request(&mut call, request.stub, &self.handles);
            } else {
                call.request_stub = self.buffer(request.stub);
            }
        }
        if reads(stub::reads_response) {
            call.response_stub = Some(StubBuffer::default());
        }
        call.charge = Self::waiting_cost(&call.activity);
        if !self.charge_waiting(call.charge) {
            sink.counters.requests_not_awaited += 1;
            let Call {
                activity,
                request_stub,
                response_stub,
                ..
            } = call;
            self.release_stub(request_stub);
            self.release_stub(response_stub);
            sink.out.push(activity);
            return;
        }
        self.calls.insert(header.call_id, call);
    }

    /// A stub buffer holding `bytes`, if the budget allows.
    fn buffer(&self, bytes: &[u8]) -> Option<StubBuffer> {
        let mut buffer = StubBuffer::default();
        self.append(&mut buffer, bytes).then_some(buffer)
    }

    /// Appends a fragment's stub; `false` (and nothing kept) beyond [`MAX_STUB_BYTES`] or the
    /// budget.
    fn append(&self, buffer: &mut StubBuffer, bytes: &[u8]) -> bool {
        let len = buffer.bytes.len().saturating_add(bytes.len());
        if len > MAX_STUB_BYTES || !self.budget.try_reserve(bytes.len()) {
            return false;
        }
        buffer.charge += bytes.len();
        buffer.bytes.extend_from_slice(bytes);
        true
    }

    fn more_request(&mut self, call_id: u32, bytes: &[u8], last: bool, sink: &mut Sink<'_>) {
        let Some(mut call) = self.calls.remove(&call_id) else {
            return;
        };
        if let Some(Body::Dcerpc(body)) = call.activity.body.as_mut() {
            body.stub_len = body
                .stub_len
                .saturating_add(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
        }
        if let Some(mut buffer) = call.request_stub.take() {
            if self.append(&mut buffer, bytes) {
                if last {
                    decode_request(&mut call, &buffer.bytes, &self.handles);
                    self.release_stub(Some(buffer));
                } else {
                    call.request_stub = Some(buffer);
                }
            } else {
                truncated_stub(&mut call.activity);
                self.release_stub(Some(buffer));
            }
        }
        call.request_open = !last;
        // What the stub decoded (names looked up, a binary path) grows the activity held.
        let charge = Self::waiting_cost(&call.activity);
        if charge > call.charge {
            if !self.charge_waiting(charge - call.charge) {
                sink.counters.requests_not_awaited += 1;
                self.report(call, sink);
                return;
            }
        } else {
            self.release_waiting(call.charge - charge);
        }
        call.charge = charge;
        self.calls.insert(call_id, call);
    }

    fn response(
        &mut self,
        header: &Header,
        response: &Response<'_>,
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) {
        let Some(mut call) = self.calls.remove(&header.call_id) else {
            sink.counters.orphan_responses += 1;
            return;
        };
        let first = header.flags.contains(PfcFlags::FIRST_FRAG);
        let last = header.flags.contains(PfcFlags::LAST_FRAG);
        if let Some(mut buffer) = call.response_stub.take() {
            if first {
                self.budget.release(buffer.charge);
                buffer = StubBuffer::default();
            }
            if self.append(&mut buffer, response.stub) {
                if last {
                    decode_response(
                        &mut call,
                        &buffer.bytes,
                        ByteOrder::of(header),
                        seen,
                        sink,
                        &mut self.handles,
                    );
                    self.release_stub(Some(buffer));
                } else {
                    call.response_stub = Some(buffer);
                }
            } else {
                truncated_stub(&mut call.activity);
                self.release_stub(Some(buffer));
            }
        }
        if !last {
            self.calls.insert(header.call_id, call);
            return;
        }
        self.release_waiting(call.charge);
        let sealed = call.encoding.is_none();
        let returned = if sealed {
            None
        } else {
            stub::return_value(response.stub, ByteOrder::of(header))
        };
        if let Some(Body::Dcerpc(body)) = call.activity.body.as_mut() {
            body.answered = true;
            body.return_value = returned.unwrap_or_default();
        }
        call.activity.outcome = Some(response_outcome(returned));
        self.release_stub(call.request_stub.take());
        sink.out.push(call.activity);
    }

    fn fault(&mut self, header: &Header, fault: &Fault, sink: &mut Sink<'_>) {
        let Some(mut call) = self.calls.remove(&header.call_id) else {
            sink.counters.orphan_responses += 1;
            return;
        };
        self.release_waiting(call.charge);
        if let Some(Body::Dcerpc(body)) = call.activity.body.as_mut() {
            body.answered = true;
        }
        call.activity.outcome = Some(outcome(false, fault.status.0, fault.status.name()));
        self.release_stub(call.request_stub.take());
        self.release_stub(call.response_stub.take());
        sink.out.push(call.activity);
    }

    fn flush_binds(&mut self, time_ns: u64, sink: &mut Sink<'_>) {
        let mut binds: Vec<(u32, PendingBind)> = self.binds.drain().collect();
        binds.sort_by_key(|(id, _)| *id);
        for (_, bind) in binds {
            self.release_waiting(bind.charge);
            sink.out.push(not_before(bind.activity, time_ns));
        }
    }

    /// A call reported without its answer.
    fn report(&mut self, mut call: Call, sink: &mut Sink<'_>) {
        self.release_waiting(call.charge);
        self.release_stub(call.request_stub.take());
        self.release_stub(call.response_stub.take());
        sink.out.push(call.activity);
    }

    /// Bytes were lost in `direction`: stubs being put together from fragments there cannot
    /// complete.
    fn lost(&mut self, direction: Direction) {
        let mut released = 0;
        for call in self.calls.values_mut() {
            let buffer = match direction {
                Direction::ToServer => call.request_stub.take(),
                Direction::ToClient => call.response_stub.take(),
            };
            if let Some(buffer) = buffer {
                released += buffer.charge;
                truncated_stub(&mut call.activity);
            }
            if direction == Direction::ToServer {
                call.request_open = false;
            }
        }
        self.budget.release(released);
    }

    /// The association ended: binds and calls still waiting are reported unanswered, in call
    /// order.
    pub(super) fn close(mut self, out: &mut Vec<Activity>) {
        let mut waiting: Vec<(u32, Activity)> = self
            .binds
            .drain()
            .map(|(id, bind)| (id, bind.activity))
            .collect();
        let calls: Vec<(u32, Call)> = self.calls.drain().collect();
        for (id, mut call) in calls {
            self.release_stub(call.request_stub.take());
            self.release_stub(call.response_stub.take());
            waiting.push((id, call.activity));
        }
        waiting.sort_by_key(|(id, _)| *id);
        let last = self.last_time_ns;
        out.extend(
            waiting
                .into_iter()
                .map(|(_, activity)| not_before(activity, last)),
        );
    }
}

impl Drop for DceRpc {
    fn drop(&mut self) {
        let stubs: usize = self
            .calls
            .values()
            .flat_map(|call| [&call.request_stub, &call.response_stub])
            .flatten()
            .map(|buffer| buffer.charge)
            .sum();
        self.budget.release(stubs + self.waiting_charge);
    }
}

impl StreamProtocol for DceRpc {
    fn frame(&self, _direction: Direction, bytes: &[u8]) -> Framing {
        dcerpc::frame(bytes)
    }

    fn is_pdu_start(&self, _direction: Direction, bytes: &[u8]) -> Start {
        dcerpc::is_pdu_start(bytes)
    }

    fn pdu(
        &mut self,
        direction: Direction,
        pdu: &[u8],
        _truncated: bool,
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) -> Result<(), Malformed> {
        // frag_length is a u16: a PDU is never longer than the stream's limit.
        self.message(direction, pdu, seen, sink)
    }

    fn gap(&mut self, direction: Direction) {
        self.lost(direction);
    }
}

/// The transfer syntax a UUID names, if it is one the stub decoders read.
fn encoding(uuid: Uuid) -> Option<Encoding> {
    match uuid {
        SyntaxId::NDR => Some(Encoding::Ndr),
        SyntaxId::NDR64 => Some(Encoding::Ndr64),
        _ => None,
    }
}

fn interface_name(uuid: Uuid) -> String {
    interfaces::interface(uuid)
        .map(|interface| interface.name.to_owned())
        .unwrap_or_default()
}

/// The sec_trailer's auth type and level as the activity's enums. A wire value they do not name
/// is left at 0 and flagged ([`anomaly_names`]): the JSON line writes enums by name, and fails
/// on a value that has none.
fn auth_fields(auth: Option<AuthVerifier<'_>>) -> (i32, i32) {
    auth.map_or((0, 0), |auth| {
        let auth_type = i32::from(auth.auth_type.0);
        let auth_level = i32::from(auth.auth_level.0);
        (
            Some(auth_type)
                .filter(|&value| names::<AuthType>(value))
                .unwrap_or(0),
            Some(auth_level)
                .filter(|&value| names::<AuthLevel>(value))
                .unwrap_or(0),
        )
    })
}

/// Whether the proto enum `E` has a name for `value`.
fn names<E: TryFrom<i32>>(value: i32) -> bool {
    E::try_from(value).is_ok()
}

/// The token of a bind, alter context, AUTH3 or their acks, as Kerberos / NTLM activities.
fn tokens(auth: Option<AuthVerifier<'_>>, seen: &Seen, sink: &mut Sink<'_>) {
    let Some(auth) = auth.filter(|auth| auth.auth_type.is_gss()) else {
        return;
    };
    if !gss::token(auth.token, seen, Carrier::Dcerpc, sink.out) {
        sink.counters.unreadable_tokens += 1;
    }
}

fn anomaly_names(pdu: &Pdu<'_>) -> Vec<String> {
    let anomalies = pdu.anomalies;
    let auth = pdu.auth;
    flag_names([
        (anomalies.too_many_items, "too_many_items"),
        (anomalies.truncated_body, "truncated_body"),
        (anomalies.bad_auth_trailer, "bad_auth_trailer"),
        (anomalies.long_secondary_address, "long_secondary_address"),
        (anomalies.unusual_drep, "unusual_drep"),
        (
            auth.is_some_and(|auth| !names::<AuthType>(i32::from(auth.auth_type.0))),
            "unknown_auth_type",
        ),
        (
            auth.is_some_and(|auth| !names::<AuthLevel>(i32::from(auth.auth_level.0))),
            "unknown_auth_level",
        ),
    ])
}

/// What a RESPONSE says of its call. Most MS-RPC operations return an NTSTATUS or a Win32
/// error (error_status_t, DWORD, NET_API_STATUS) as the last 4 bytes of the response stub, 0
/// for success; a sealed or unread stub (or one too short to hold it) claims nothing.
fn response_outcome(returned: Option<u32>) -> Outcome {
    match returned {
        Some(0) => outcome(true, 0, None),
        Some(code) => outcome(false, code, NtStatus(code).name()),
        None => Outcome {
            status: Status::Unspecified.into(),
            ..Outcome::default()
        },
    }
}

/// `activity` stamped no earlier than `time_ns` (what an unanswered request is reported at).
fn not_before(mut activity: Activity, time_ns: u64) -> Activity {
    let own = activity.time.as_ref().map_or(0, |time| {
        u64::try_from(time.seconds).unwrap_or(0) * 1_000_000_000
            + u64::try_from(time.nanos).unwrap_or(0)
    });
    if time_ns > own {
        activity.time = Some(timestamp(time_ns));
    }
    activity
}

fn truncated_stub(activity: &mut Activity) {
    if let Some(Body::Dcerpc(body)) = activity.body.as_mut()
        && !body.anomalies.iter().any(|name| name == "truncated_stub")
    {
        body.anomalies.push("truncated_stub".to_owned());
    }
}

/// One DCE-RPC association carried by an SMB named pipe (an open file on IPC$): the bytes
/// written to it and read from it, in each direction, are a stream of DCE-RPC PDUs.
#[derive(Debug)]
pub(super) struct RpcPipe {
    streams: Duplex<DceRpc>,
    budget: MemoryBudget,
}

impl RpcPipe {
    pub(super) fn new(budget: MemoryBudget) -> Self {
        Self {
            streams: Duplex::new(DceRpc::new(Carrier::Smb, budget.clone()), &budget),
            budget,
        }
    }

    /// Bytes written to the pipe (`ToServer`) or read from it (`ToClient`), in order: whole PDUs,
    /// several, or part of one.
    pub(super) fn data(
        &mut self,
        direction: Direction,
        bytes: &[u8],
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) {
        self.streams
            .data(direction, bytes, seen, sink.reborrow(), &self.budget);
    }

    /// Bytes of the pipe were lost in this direction (a read or write the sensor did not see).
    pub(super) fn gap(&mut self, direction: Direction, sink: &mut Sink<'_>) {
        // The stream's gap needs a `Seen` only to build its feed; nothing is reported from it.
        let seen = Seen {
            time_ns: 0,
            src: SocketAddr::from(([0, 0, 0, 0], 0)),
            dst: SocketAddr::from(([0, 0, 0, 0], 0)),
            tcp: true,
        };
        self.streams
            .gap(direction, &seen, sink.reborrow(), &self.budget);
    }

    /// The pipe was closed, or its SMB connection ended.
    pub(super) fn close(self, counters: &mut DissectCounters, out: &mut Vec<Activity>) {
        self.streams.finish(counters).close(out);
    }
}

#[cfg(test)]
mod tests;
