//! LDAP (RFC 4511) over TCP and CLDAP over UDP to activities.
//!
//! A request becomes an activity when its answer arrives, so that the activity carries the
//! result (and, for a search, how many entries came back); requests never answered are reported
//! when the flow ends. Authentication tokens inside binds (SASL GSS-SPNEGO, GSSAPI, NTLM, and
//! Microsoft's Sicily NTLM bind) are reported as Kerberos or NTLM activities carried by LDAP,
//! with the bind's outcome. After a SASL bind with a security layer, messages arrive wrapped
//! (RFC 4422 3.7): those only signed are read as LDAP (`sasl_signed`), the sealed ones reported
//! as `SEALED` with their size. Waiting requests are charged to the shared memory budget.

use std::{
    cell::Cell,
    collections::{HashMap, VecDeque},
    net::SocketAddr,
};

use dcwatch_parsers::{
    ber,
    framing::{Framing, Start},
    ldap::{
        self, Anomalies, BindAuth, Change, FilterFlags, LdapMessage, LdapResult, ProtocolOp,
        ResultCode, SaslPayload, Scope, SicilyStep, ping,
    },
};
use dcwatch_proto::v1::{
    Account, Activity, Carrier, LdapActivity, activity,
    ldap_activity::{self, AuthMethod, Scope as ScopeValue, Type},
    outcome::Status,
};
use prost::Message as _;

use super::{
    gss,
    stream::{Malformed, Sink, StreamProtocol},
};
use crate::{
    activity::{Seen, flag_names, outcome},
    flow::{Direction, MemoryBudget},
};

/// Requests waiting for their answer on one connection. A client that sends more without
/// waiting has the oldest reported unanswered: the bound keeps a hostile client from growing
/// the table.
pub(super) const MAX_PENDING_PER_FLOW: usize = 256;

/// CLDAP requests waiting for their answer, across all clients.
pub(super) const MAX_PENDING_CLDAP: usize = 4096;

/// How long a CLDAP request waits for its answer: a DC answers a locator ping at once.
pub(super) const CLDAP_TIMEOUT_NS: u64 = 10_000_000_000;

/// The StartTLS extended operation (RFC 4511 4.14): after its success the stream is TLS.
const START_TLS: &[u8] = b"1.3.6.1.4.1.1466.20037";

/// The identifier octet of a SearchResultEntry (RFC 4511 4.5.2, [APPLICATION 4]).
const SEARCH_RESULT_ENTRY: u8 = 0x64;

/// A request seen, its activity waiting for the answer.
#[derive(Debug)]
struct Pending {
    activity: Activity,
    /// Activities of the authentication tokens the request carried: they take the answer's
    /// outcome (a Sicily bind's NTLM AUTHENTICATE fails when the bind does).
    carried: Vec<Activity>,
    entries: u32,
    references: u32,
    /// Bytes of the budget it holds.
    charge: usize,
}

impl Pending {
    /// The request, if the budget has room for it to wait.
    fn charged(
        activity: Activity,
        carried: Vec<Activity>,
        budget: &MemoryBudget,
    ) -> Result<Self, Vec<Activity>> {
        let charge =
            activity.encoded_len() + carried.iter().map(Activity::encoded_len).sum::<usize>();
        if !budget.try_reserve(charge) {
            let mut activities = carried;
            activities.push(activity);
            return Err(activities);
        }
        Ok(Self {
            activity,
            carried,
            entries: 0,
            references: 0,
            charge,
        })
    }
}

impl Pending {
    /// A search result entry for the request; a ping's answer gives its NETLOGON opcode.
    fn entry(&mut self, netlogon: Option<&[u8]>) {
        self.entries = self.entries.saturating_add(1);
        if let Some(activity::Body::Ldap(body)) = &mut self.activity.body
            && let Some(ping) = &mut body.ping
            && let Some(opcode) = netlogon.and_then(ping::response_opcode)
        {
            ping.response_opcode = u32::from(opcode);
        }
    }
}

/// Whether a request op is answered by a response op (the server's side is correlated).
fn is_request(op: &ProtocolOp<'_>) -> bool {
    matches!(
        op,
        ProtocolOp::BindRequest { .. }
            | ProtocolOp::UnbindRequest
            | ProtocolOp::SearchRequest { .. }
            | ProtocolOp::ModifyRequest { .. }
            | ProtocolOp::AddRequest { .. }
            | ProtocolOp::DelRequest { .. }
            | ProtocolOp::ModifyDnRequest { .. }
            | ProtocolOp::CompareRequest { .. }
            | ProtocolOp::AbandonRequest { .. }
            | ProtocolOp::ExtendedRequest { .. }
    )
}

/// SASL mechanisms whose credentials are GSS-API or NTLMSSP tokens.
fn carries_gss_token(mechanism: &[u8]) -> bool {
    [b"GSSAPI".as_slice(), b"GSS-SPNEGO", b"NTLM"]
        .iter()
        .any(|name| mechanism.eq_ignore_ascii_case(name))
}

#[derive(Debug)]
pub(super) struct LdapSession {
    pending: HashMap<u32, Pending>,
    budget: MemoryBudget,
    /// A SASL bind happened (or a wrapped buffer was seen): messages may come wrapped in a
    /// security layer. A cell because resynchronising, which only looks, is what may find the
    /// first wrapped buffer of a connection picked up mid-stream.
    sasl_bound: Cell<bool>,
    /// StartTLS succeeded: the rest is TLS.
    tls: bool,
}

impl LdapSession {
    pub(super) fn new(budget: MemoryBudget) -> Self {
        Self {
            pending: HashMap::new(),
            budget,
            sasl_bound: Cell::new(false),
            tls: false,
        }
    }
}

impl Drop for LdapSession {
    fn drop(&mut self) {
        for pending in self.pending.values() {
            self.budget.release(pending.charge);
        }
    }
}

impl StreamProtocol for LdapSession {
    fn frame(&self, _direction: Direction, bytes: &[u8]) -> Framing {
        match bytes.first() {
            Some(0x30) => ldap::frame(bytes),
            Some(0x00) if self.sasl_bound.get() => ldap::frame_sasl(bytes),
            Some(_) => Framing::NotPdu,
            None => Framing::NeedMore,
        }
    }

    fn is_pdu_start(&self, _direction: Direction, bytes: &[u8]) -> Start {
        match bytes.first() {
            Some(0x30) => ldap::is_pdu_start(bytes),
            Some(0x00) => {
                let start = ldap::is_sasl_start(bytes);
                if start == Start::Yes {
                    self.sasl_bound.set(true);
                }
                start
            }
            Some(_) => Start::No,
            None => Start::NeedMore,
        }
    }

    fn is_done(&self, _direction: Direction) -> bool {
        self.tls
    }

    fn pdu(
        &mut self,
        direction: Direction,
        pdu: &[u8],
        truncated: bool,
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) -> Result<(), Malformed> {
        if pdu.first() != Some(&0x30) {
            self.sasl_bound.set(true);
            // A signed buffer too long to keep whole: its first message is all that is read
            // (a search result entry counts), as for an oversized message in clear.
            if truncated && let Some(prefix) = ldap::sasl_clear_prefix(pdu) {
                return self.truncated(direction, prefix);
            }
            let payload = if truncated {
                SaslPayload::Opaque
            } else {
                ldap::sasl_payload(pdu)
            };
            let SaslPayload::Clear(plaintext) = payload else {
                sink.out.push(sealed(pdu, seen));
                return Ok(());
            };
            for message in ldap::sasl_messages(&plaintext) {
                let message = message.map_err(|_| Malformed)?;
                self.message(direction, &message, true, seen, sink);
            }
            return Ok(());
        }
        if truncated {
            return self.truncated(direction, pdu);
        }
        let message = ldap::parse(pdu).map_err(|_| Malformed)?;
        self.message(direction, &message, false, seen, sink);
        Ok(())
    }
}

impl LdapSession {
    /// One LDAPMessage; `signed` when it came in a SASL buffer that signs without sealing.
    fn message(
        &mut self,
        direction: Direction,
        message: &LdapMessage<'_>,
        signed: bool,
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) {
        match direction {
            Direction::ToServer if is_request(&message.op) => {
                self.request(message, signed, seen, sink);
            }
            Direction::ToClient if !is_request(&message.op) => self.response(message, seen, sink),
            // A request from the server, or an answer from the client.
            _ => sink.counters.orphan_responses += 1,
        }
    }

    fn request(
        &mut self,
        message: &LdapMessage<'_>,
        signed: bool,
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) {
        let mut carried = Vec::new();
        let mut tokens = Sink {
            out: &mut carried,
            counters: sink.counters,
            announced: sink.announced,
        };
        let Some(mut activity) = request_activity(message, seen, Carrier::Ldap, &mut tokens) else {
            return;
        };
        if let Some(activity::Body::Ldap(body)) = &mut activity.body {
            body.sasl_signed = signed;
        }
        if let ProtocolOp::AbandonRequest { id } = message.op
            && let Some(abandoned) = self.pending.remove(&id)
        {
            self.budget.release(abandoned.charge);
            sink.out.extend(unanswered(abandoned));
        }
        if matches!(
            message.op,
            ProtocolOp::UnbindRequest | ProtocolOp::AbandonRequest { .. }
        ) {
            sink.out.extend(carried);
            sink.out.push(activity);
            return;
        }
        if self.pending.len() >= MAX_PENDING_PER_FLOW
            && let Some(oldest) = self.pending.keys().min().copied()
            && let Some(evicted) = self.pending.remove(&oldest)
        {
            self.budget.release(evicted.charge);
            sink.counters.requests_not_awaited += 1;
            sink.out.extend(unanswered(evicted));
        }
        match Pending::charged(activity, carried, &self.budget) {
            Ok(pending) => {
                if let Some(replaced) = self.pending.insert(message.message_id, pending) {
                    self.budget.release(replaced.charge);
                    sink.out.extend(unanswered(replaced));
                }
            }
            Err(activities) => {
                sink.counters.requests_not_awaited += 1;
                sink.out.extend(activities);
            }
        }
    }

    fn response(&mut self, message: &LdapMessage<'_>, seen: &Seen, sink: &mut Sink<'_>) {
        // The server's tokens follow the request's activities, which happened before them.
        let mut server_tokens = Vec::new();
        if let ProtocolOp::BindResponse {
            result,
            server_sasl_creds,
            sicily_challenge,
        } = &message.op
        {
            for token in [server_sasl_creds, sicily_challenge].into_iter().flatten() {
                if !gss::token(token, seen, Carrier::Ldap, &mut server_tokens) {
                    sink.counters.unreadable_tokens += 1;
                }
            }
            if result.code == ResultCode::SUCCESS
                && self
                    .pending
                    .get(&message.message_id)
                    .is_some_and(|pending| {
                        ldap_body(&pending.activity)
                            .is_some_and(|bind| bind.auth_method == i32::from(AuthMethod::Sasl))
                    })
            {
                self.sasl_bound.set(true);
            }
        }
        if let ProtocolOp::ExtendedResponse { result, .. } = &message.op
            && result.code == ResultCode::SUCCESS
            && self
                .pending
                .get(&message.message_id)
                .is_some_and(|pending| {
                    ldap_body(&pending.activity)
                        .is_some_and(|extended| extended.request_name.as_bytes() == START_TLS)
                })
        {
            self.tls = true;
        }
        match (&message.op, self.pending.get_mut(&message.message_id)) {
            (ProtocolOp::SearchResultEntry { netlogon, .. }, Some(pending)) => {
                pending.entry(*netlogon);
            }
            (ProtocolOp::SearchResultReference { .. }, Some(pending)) => {
                pending.references = pending.references.saturating_add(1);
            }
            (
                ProtocolOp::SearchResultEntry { .. } | ProtocolOp::SearchResultReference { .. },
                None,
            ) => {
                sink.counters.orphan_responses += 1;
            }
            // Anything else but a final response is an IntermediateResponse or an unsolicited
            // notification (message ID 0): nothing waits for it.
            (op, _) => {
                if let Some(result) = final_result(op) {
                    match self.pending.remove(&message.message_id) {
                        Some(pending) => {
                            self.budget.release(pending.charge);
                            sink.out.extend(answered(pending, result));
                        }
                        None => sink.counters.orphan_responses += 1,
                    }
                }
            }
        }
        sink.out.extend(server_tokens);
    }

    /// An oversized PDU: only a search result entry is worth counting from its first bytes.
    fn truncated(&mut self, direction: Direction, pdu: &[u8]) -> Result<(), Malformed> {
        let (id, op) = peek_id_and_op(pdu).ok_or(Malformed)?;
        if direction == Direction::ToClient
            && op == SEARCH_RESULT_ENTRY
            && let Some(pending) = self.pending.get_mut(&id)
        {
            pending.entries = pending.entries.saturating_add(1);
        }
        Ok(())
    }

    /// The connection ended: requests never answered are reported as such.
    pub(super) fn close(mut self, out: &mut Vec<Activity>) {
        let mut pending: Vec<_> = self.pending.drain().collect();
        pending.sort_by_key(|(id, _)| *id);
        for (_, pending) in pending {
            self.budget.release(pending.charge);
            out.extend(unanswered(pending));
        }
    }
}

/// The result of a final response, if `op` is one.
fn final_result<'a, 'b>(op: &'b ProtocolOp<'a>) -> Option<&'b LdapResult<'a>> {
    match op {
        ProtocolOp::BindResponse { result, .. }
        | ProtocolOp::SearchResultDone(result)
        | ProtocolOp::ModifyResponse(result)
        | ProtocolOp::AddResponse(result)
        | ProtocolOp::DelResponse(result)
        | ProtocolOp::ModifyDnResponse(result)
        | ProtocolOp::CompareResponse(result)
        | ProtocolOp::ExtendedResponse { result, .. } => Some(result),
        _ => None,
    }
}

/// The messageID and the protocolOp's identifier octet of an LDAPMessage too long to parse
/// whole: both sit in its first bytes.
fn peek_id_and_op(pdu: &[u8]) -> Option<(u32, u8)> {
    let header = ber::read_header(pdu).ok()?;
    let (id, rest) = ber::read_u32(pdu.get(header.header_len..)?).ok()?;
    Some((id, *rest.first()?))
}

/// CLDAP requests waiting for their datagram of answers, oldest first.
#[derive(Debug)]
pub(super) struct Cldap {
    pending: HashMap<(SocketAddr, SocketAddr, u32), Pending>,
    /// Keys in the order their requests came, with the time they came; may name requests
    /// already answered, which are skipped.
    order: VecDeque<(u64, (SocketAddr, SocketAddr, u32))>,
    budget: MemoryBudget,
}

impl Cldap {
    pub(super) fn new(budget: MemoryBudget) -> Self {
        Self {
            pending: HashMap::new(),
            order: VecDeque::new(),
            budget,
        }
    }

    /// One CLDAP datagram: requests (to the server) or their answers, told apart by their
    /// operations rather than their ports.
    pub(super) fn datagram(
        &mut self,
        payload: &[u8],
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) -> Result<(), Malformed> {
        let mut parsed_any = false;
        for message in ldap::messages(payload) {
            let message = message.map_err(|_| Malformed)?;
            parsed_any = true;
            if is_request(&message.op) {
                self.request(&message, seen, sink);
            } else {
                self.response(&message, seen, sink);
            }
        }
        if parsed_any { Ok(()) } else { Err(Malformed) }
    }

    fn request(&mut self, message: &LdapMessage<'_>, seen: &Seen, sink: &mut Sink<'_>) {
        let mut carried = Vec::new();
        let mut tokens = Sink {
            out: &mut carried,
            counters: sink.counters,
            announced: sink.announced,
        };
        let Some(mut activity) = request_activity(message, seen, Carrier::Ldap, &mut tokens) else {
            return;
        };
        if let Some(activity::Body::Ldap(body)) = &mut activity.body {
            body.cldap = true;
        }
        while self.pending.len() >= MAX_PENDING_CLDAP {
            let Some((_, key)) = self.order.pop_front() else {
                break;
            };
            if let Some(evicted) = self.pending.remove(&key) {
                self.budget.release(evicted.charge);
                sink.counters.requests_not_awaited += 1;
                sink.out.extend(unanswered(evicted));
            }
        }
        let key = (seen.src, seen.dst, message.message_id);
        match Pending::charged(activity, carried, &self.budget) {
            Ok(pending) => {
                if let Some(replaced) = self.pending.insert(key, pending) {
                    self.budget.release(replaced.charge);
                    sink.out.extend(unanswered(replaced));
                }
                self.order.push_back((seen.time_ns, key));
            }
            Err(activities) => {
                sink.counters.requests_not_awaited += 1;
                sink.out.extend(activities);
            }
        }
    }

    fn response(&mut self, message: &LdapMessage<'_>, seen: &Seen, sink: &mut Sink<'_>) {
        let key = (seen.dst, seen.src, message.message_id);
        match (&message.op, self.pending.get_mut(&key)) {
            (ProtocolOp::SearchResultEntry { netlogon, .. }, Some(pending)) => {
                pending.entry(*netlogon);
            }
            (ProtocolOp::SearchResultDone(result), Some(_)) => {
                if let Some(pending) = self.pending.remove(&key) {
                    self.budget.release(pending.charge);
                    sink.out.extend(answered(pending, result));
                }
            }
            _ => sink.counters.orphan_responses += 1,
        }
    }

    /// Reports the requests that waited longer than [`CLDAP_TIMEOUT_NS`], unanswered.
    pub(super) fn expire(&mut self, now_ns: u64, out: &mut Vec<Activity>) {
        while let Some(&(time_ns, key)) = self.order.front() {
            if now_ns.saturating_sub(time_ns) <= CLDAP_TIMEOUT_NS {
                break;
            }
            self.order.pop_front();
            if let Some(pending) = self.pending.remove(&key) {
                self.budget.release(pending.charge);
                out.extend(unanswered(pending));
            }
        }
    }

    /// Reports every request still waiting, unanswered, oldest first.
    pub(super) fn flush(&mut self, out: &mut Vec<Activity>) {
        while let Some((_, key)) = self.order.pop_front() {
            if let Some(pending) = self.pending.remove(&key) {
                self.budget.release(pending.charge);
                out.extend(unanswered(pending));
            }
        }
    }
}

fn ldap_body(activity: &Activity) -> Option<&LdapActivity> {
    match &activity.body {
        Some(activity::Body::Ldap(body)) => Some(body),
        _ => None,
    }
}

/// A buffer of a SASL security layer: its length, from its 4-byte header (the buffer handed
/// over may be cut at the longest PDU).
fn sealed(pdu: &[u8], seen: &Seen) -> Activity {
    const LENGTH_LEN: usize = 4;
    let declared = pdu
        .get(..LENGTH_LEN)
        .and_then(|length| <[u8; LENGTH_LEN]>::try_from(length).ok())
        .map_or(0, |length| {
            u32::from_be_bytes(length).saturating_add(LENGTH_LEN as u32)
        });
    seen.activity(activity::Body::Ldap(LdapActivity {
        r#type: Type::Sealed.into(),
        sealed_len: declared,
        ..LdapActivity::default()
    }))
}

/// The activity of a request, without its result; tokens of a bind are reported on the way.
fn request_activity(
    message: &LdapMessage<'_>,
    seen: &Seen,
    carrier: Carrier,
    sink: &mut Sink<'_>,
) -> Option<Activity> {
    let mut body = LdapActivity {
        message_id: message.message_id,
        anomalies: anomaly_names(&message.anomalies),
        ..LdapActivity::default()
    };
    let mut account = None;
    match &message.op {
        ProtocolOp::BindRequest { name, auth, .. } => {
            body.r#type = Type::Bind.into();
            body.bind_name = name.to_string();
            if !name.is_empty() {
                account = Some(Account {
                    name: name.to_string(),
                    ..Account::default()
                });
            }
            match auth {
                BindAuth::Simple { .. } => body.auth_method = AuthMethod::Simple.into(),
                BindAuth::Sasl {
                    mechanism,
                    credentials,
                } => {
                    body.auth_method = AuthMethod::Sasl.into();
                    body.sasl_mechanism = mechanism.to_string();
                    if let Some(token) = credentials
                        && carries_gss_token(mechanism.as_bytes())
                        && !gss::token(token, seen, carrier, sink.out)
                    {
                        sink.counters.unreadable_tokens += 1;
                        body.anomalies.push("unreadable_auth_token".to_owned());
                    }
                }
                BindAuth::Sicily { step, token } => {
                    body.auth_method = AuthMethod::Sicily.into();
                    if *step != SicilyStep::PackageDiscovery
                        && !gss::token(token, seen, carrier, sink.out)
                    {
                        sink.counters.unreadable_tokens += 1;
                        body.anomalies.push("unreadable_auth_token".to_owned());
                    }
                }
                BindAuth::Unknown { .. } => {}
            }
        }
        ProtocolOp::SearchRequest {
            base,
            scope,
            size_limit,
            filter,
            attributes,
            ..
        } => {
            body.r#type = Type::Search.into();
            body.base = base.to_string();
            body.scope = scope_value(*scope).into();
            body.filter.clone_from(filter);
            body.attributes = attributes.iter().map(ToString::to_string).collect();
            body.size_limit = *size_limit;
            body.ping =
                ping::request(*base, *scope, attributes, filter).map(|ping| ldap_activity::Ping {
                    user: ping.user.unwrap_or_default(),
                    nt_ver: ping.nt_ver.unwrap_or_default(),
                    aac: ping.aac.unwrap_or_default(),
                    domain: ping.domain.unwrap_or_default(),
                    host: ping.host.unwrap_or_default(),
                    response_opcode: 0,
                });
        }
        ProtocolOp::ModifyRequest { object, changes } => {
            body.r#type = Type::Modify.into();
            body.dn = object.to_string();
            body.attributes = changes
                .iter()
                .map(|change| {
                    let operation = change.operation.and_then(ldap::Operation::name);
                    format!("{}:{}", operation.unwrap_or("unknown"), change.attribute)
                })
                .collect();
            body.changes = changes.iter().map(change_record).collect();
        }
        ProtocolOp::AddRequest { entry, attributes } => {
            body.r#type = Type::Add.into();
            body.dn = entry.to_string();
            body.attributes = attributes
                .iter()
                .map(|change| change.attribute.to_string())
                .collect();
            body.changes = attributes.iter().map(change_record).collect();
        }
        ProtocolOp::DelRequest { dn } => {
            body.r#type = Type::Delete.into();
            body.dn = dn.to_string();
        }
        ProtocolOp::ModifyDnRequest {
            entry,
            new_rdn,
            new_superior,
            ..
        } => {
            body.r#type = Type::ModifyDn.into();
            body.dn = entry.to_string();
            body.new_rdn = new_rdn.to_string();
            body.new_superior = new_superior.map(|dn| dn.to_string()).unwrap_or_default();
        }
        ProtocolOp::CompareRequest { entry, attribute } => {
            body.r#type = Type::Compare.into();
            body.dn = entry.to_string();
            body.attributes = vec![attribute.to_string()];
        }
        ProtocolOp::ExtendedRequest { name, .. } => {
            body.r#type = Type::Extended.into();
            body.request_name = name.to_string();
        }
        ProtocolOp::UnbindRequest => body.r#type = Type::Unbind.into(),
        ProtocolOp::AbandonRequest { .. } => body.r#type = Type::Abandon.into(),
        _ => return None,
    }
    let mut activity = seen.activity(activity::Body::Ldap(body));
    activity.account = account;
    Some(activity)
}

/// The request's activities with the answer's outcome: the carried tokens', then its own.
fn answered(mut pending: Pending, result: &LdapResult<'_>) -> Vec<Activity> {
    let code = result.code;
    if let Some(activity::Body::Ldap(body)) = &mut pending.activity.body {
        body.answered = true;
        body.entries = pending.entries;
        body.references = pending.references;
        body.result_code = code.0;
        body.result_name = code.name().unwrap_or_default().to_owned();
        body.diagnostic_message = result.diagnostic_message.to_string();
        if !result.matched_dn.as_bytes().starts_with(b"NTLMSSP\0") {
            body.matched_dn = result.matched_dn.to_string();
        }
    }
    let mut result_outcome = outcome(
        matches!(
            code,
            ResultCode::SUCCESS | ResultCode::COMPARE_FALSE | ResultCode::COMPARE_TRUE
        ),
        code.0,
        code.name(),
    );
    if code == ResultCode::SASL_BIND_IN_PROGRESS {
        result_outcome.status = Status::Unspecified.into();
    }
    for carried in &mut pending.carried {
        carried.outcome = Some(result_outcome.clone());
    }
    pending.activity.outcome = Some(result_outcome);
    pending.carried.push(pending.activity);
    pending.carried
}

fn unanswered(mut pending: Pending) -> Vec<Activity> {
    if let Some(activity::Body::Ldap(body)) = &mut pending.activity.body {
        body.entries = pending.entries;
        body.references = pending.references;
    }
    pending.carried.push(pending.activity);
    pending.carried
}

/// Attributes whose values a change reports (ldap.proto's `Change`): those the detectors read
/// (noPac's renames, SPN and delegation changes, shadow credentials, group membership). Every
/// other attribute, and so every password (unicodePwd, userPassword...) and nTSecurityDescriptor,
/// is reported by name and value count only.
const ATTRIBUTES_WITH_VALUES: [&str; 8] = [
    "sAMAccountName",
    "dNSHostName",
    "servicePrincipalName",
    "userAccountControl",
    "member",
    "msDS-AllowedToActOnBehalfOfOtherIdentity",
    "msDS-KeyCredentialLink",
    "objectClass",
];

/// Bytes of one change value reported; longer values are cut (a KeyCredentialLink runs to a
/// few KB of hex).
const MAX_CHANGE_VALUE_LEN: usize = 4096;

fn change_record(change: &Change<'_>) -> ldap_activity::Change {
    // Attribute options (`;binary`) do not change which attribute it is.
    let name = change.attribute.as_bytes();
    let base = name.split(|&b| b == b';').next().unwrap_or(name);
    let show = ATTRIBUTES_WITH_VALUES
        .iter()
        .any(|shown| base.eq_ignore_ascii_case(shown.as_bytes()));
    ldap_activity::Change {
        operation: change
            .operation
            .map(|operation| {
                operation
                    .name()
                    .map_or_else(|| operation.0.to_string(), str::to_owned)
            })
            .unwrap_or_default(),
        attribute: change.attribute.to_string(),
        values: if show {
            change
                .values
                .iter()
                .map(|value| value_text(value))
                .collect()
        } else {
            Vec::new()
        },
        value_count: u32::try_from(change.value_count).unwrap_or(u32::MAX),
    }
}

/// Text as sent when it is printable UTF-8, else hex (the binary security descriptor of
/// msDS-AllowedToActOnBehalfOfOtherIdentity); at most [`MAX_CHANGE_VALUE_LEN`] characters.
fn value_text(value: &[u8]) -> String {
    match std::str::from_utf8(value) {
        Ok(text) if !text.chars().any(char::is_control) => {
            let end = (0..=text.len().min(MAX_CHANGE_VALUE_LEN))
                .rev()
                .find(|&end| text.is_char_boundary(end))
                .unwrap_or(0);
            text.get(..end).unwrap_or_default().to_owned()
        }
        _ => hex::encode(value.get(..MAX_CHANGE_VALUE_LEN / 2).unwrap_or(value)),
    }
}

fn scope_value(scope: Scope) -> ScopeValue {
    match scope {
        Scope::BASE_OBJECT => ScopeValue::BaseObject,
        Scope::SINGLE_LEVEL => ScopeValue::SingleLevel,
        Scope::WHOLE_SUBTREE => ScopeValue::WholeSubtree,
        _ => ScopeValue::Unspecified,
    }
}

fn anomaly_names(anomalies: &Anomalies) -> Vec<String> {
    let filter = &anomalies.filter;
    let mut names = flag_names([
        (anomalies.trailing_data, "trailing_data"),
        (anomalies.too_many_controls, "too_many_controls"),
        (anomalies.list_truncated, "list_truncated"),
        (anomalies.unusual_bind_version, "unusual_bind_version"),
    ]);
    if *filter != FilterFlags::default() {
        names.push(format!("filter:{filter:?}"));
    }
    names
}

#[cfg(test)]
mod tests {
    use dcwatch_parsers::ldap::Operation;

    use super::*;
    use crate::dissect::DissectCounters;
    use dcwatch_tests::fixture::hex;

    macro_rules! fixture {
        ($name:literal) => {
            hex(include_str!(concat!(
                "../../../parsers/tests/fixtures/ldap/",
                $name,
                ".hex"
            )))
        };
    }

    fn seen(direction: Direction) -> Seen {
        let (client, server) = ("10.0.0.5:49695", "10.0.0.1:389");
        let (src, dst) = match direction {
            Direction::ToServer => (client, server),
            Direction::ToClient => (server, client),
        };
        Seen {
            time_ns: 1,
            src: src.parse().expect("address"),
            dst: dst.parse().expect("address"),
            tcp: true,
        }
    }

    fn feed(session: &mut LdapSession, direction: Direction, pdu: &[u8]) -> Vec<Activity> {
        let mut out = Vec::new();
        let mut counters = DissectCounters::default();
        let mut announced = crate::dissect::endpoints::Announcements::default();
        let mut sink = Sink {
            out: &mut out,
            counters: &mut counters,
            announced: &mut announced,
        };
        session
            .pdu(direction, pdu, false, &seen(direction), &mut sink)
            .expect("a PDU");
        out
    }

    fn body(activity: &Activity) -> &LdapActivity {
        ldap_body(activity).expect("an LDAP activity")
    }

    // modify-request.pcapng frames 12 to 14 (tshark: "SASL GSS-API Integrity" modifyRequest(8)
    // replace msDS-SupportedEncryptionTypes "28", modifyResponse(8) success, unbindRequest(9)),
    // then a sealed buffer (krb5-sign-seal-01.pcap frame 10, "Privacy").
    #[test]
    fn signed_sasl_buffers_are_read_and_sealed_ones_are_not() {
        let mut session = LdapSession::new(MemoryBudget::new(1 << 20));
        assert!(
            feed(
                &mut session,
                Direction::ToServer,
                &fixture!("sasl_integrity_modify")
            )
            .is_empty()
        );
        let answered = feed(
            &mut session,
            Direction::ToClient,
            &fixture!("sasl_integrity_modify_response"),
        );
        let modify = body(&answered[0]);
        assert_eq!(modify.r#type, i32::from(Type::Modify));
        assert!(modify.sasl_signed && modify.answered);
        assert_eq!(modify.result_code, 0);
        assert_eq!(
            modify.dn,
            "CN=DESKTOP-6AJTBQM,CN=Computers,DC=ad2024,DC=weberlab,DC=de"
        );
        assert_eq!(modify.changes.len(), 1);
        let change = &modify.changes[0];
        assert_eq!(
            (change.operation.as_str(), change.attribute.as_str()),
            ("replace", "msDS-SupportedEncryptionTypes")
        );
        // Not an attribute whose values are reported: its one value is only counted.
        assert_eq!((change.values.len(), change.value_count), (0, 1));
        let unbind = feed(
            &mut session,
            Direction::ToServer,
            &fixture!("sasl_integrity_unbind"),
        );
        assert_eq!(body(&unbind[0]).r#type, i32::from(Type::Unbind));
        assert!(body(&unbind[0]).sasl_signed);
        let sealed = feed(&mut session, Direction::ToServer, &fixture!("sasl_sealed"));
        assert_eq!(body(&sealed[0]).r#type, i32::from(Type::Sealed));
        assert_eq!(body(&sealed[0]).sealed_len, 102);
    }

    #[test]
    fn passwords_and_security_descriptors_are_never_shown() {
        let change = |operation, attribute: &'static str, values: &[&'static [u8]]| Change {
            operation,
            attribute: ldap::LdapString(attribute.as_bytes()),
            values: values.to_vec(),
            value_count: values.len(),
        };
        for secret in [
            "unicodePwd",
            "userPassword",
            "nTSecurityDescriptor",
            "UNICODEPWD;binary",
        ] {
            let record = change_record(&change(
                Some(Operation::REPLACE),
                secret,
                &[b"\"Secret1!\""],
            ));
            assert!(record.values.is_empty(), "{secret}");
            assert_eq!(record.value_count, 1);
        }
        // noPac: the rename of a computer account, shown.
        let record = change_record(&change(
            Some(Operation::REPLACE),
            "sAMAccountName",
            &[b"DC01"],
        ));
        assert_eq!(record.values, ["DC01"]);
        // An ADD's objectClass, and a binary descriptor shown as hex.
        let record = change_record(&change(None, "objectClass", &[b"top", b"computer"]));
        assert_eq!((record.operation.as_str(), record.values.len()), ("", 2));
        let record = change_record(&change(
            Some(Operation::ADD),
            "msDS-AllowedToActOnBehalfOfOtherIdentity",
            &[&[0x01, 0x00, 0x04, 0x80]],
        ));
        assert_eq!(record.values, ["01000480"]);
    }

    // suricata-verify ldap-udp/cldap.pcap frames 1 and 2: the DC locator's ping (tshark: DnsDomain
    // s4.howto.abartlet.net, Host WINDOWS7-3, mscldap.ntver.flags 0x00000016) and its answer
    // (mscldap.netlogon.opcode 23, LOGON_SAM_LOGON_RESPONSE_EX).
    #[test]
    fn cldap_ping_and_its_opcode() {
        let mut cldap = Cldap::new(MemoryBudget::new(1 << 20));
        let mut out = Vec::new();
        let mut counters = DissectCounters::default();
        let mut announced = crate::dissect::endpoints::Announcements::default();
        let mut sink = Sink {
            out: &mut out,
            counters: &mut counters,
            announced: &mut announced,
        };
        let client = seen(Direction::ToServer);
        cldap
            .datagram(&fixture!("cldap_search"), &client, &mut sink)
            .expect("a ping");
        cldap
            .datagram(
                &fixture!("cldap_entry_and_done"),
                &seen(Direction::ToClient),
                &mut sink,
            )
            .expect("its answer");
        let search = body(&out[0]);
        let ping = search.ping.as_ref().expect("a ping");
        assert_eq!(ping.domain, "s4.howto.abartlet.net");
        assert_eq!(ping.host, "WINDOWS7-3");
        assert_eq!((ping.nt_ver, ping.aac, ping.user.as_str()), (0x16, 0, ""));
        assert_eq!(ping.response_opcode, 0x17);
        assert!(search.cldap && search.answered);
    }
}
