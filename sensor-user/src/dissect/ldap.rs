//! LDAP (RFC 4511) over TCP and CLDAP over UDP to activities.
//!
//! A request becomes an activity when its answer arrives, so that the activity carries the
//! result (and, for a search, how many entries came back); requests never answered are reported
//! when the flow ends. Authentication tokens inside binds (SASL GSS-SPNEGO, GSSAPI, NTLM, and
//! Microsoft's Sicily NTLM bind) are reported as Kerberos or NTLM activities carried by LDAP.
//! After a SASL bind with a security layer, messages arrive wrapped (RFC 4422 3.7): they are
//! reported as `SEALED` with their size, never parsed as LDAP.

use std::{collections::HashMap, net::SocketAddr};

use dcwatch_parsers::{
    ber,
    framing::{Framing, Start},
    ldap::{
        self, Anomalies, BindAuth, LdapMessage, LdapResult, ProtocolOp, ResultCode, Scope,
        SicilyStep,
    },
};
use dcwatch_proto::v1::{
    Account, Activity, Carrier, LdapActivity, activity,
    ldap_activity::{AuthMethod, Scope as ScopeValue, Type},
    outcome::Status,
};

use super::{
    gss,
    stream::{Malformed, StreamProtocol},
};
use crate::{
    activity::{Seen, outcome},
    flow::Direction,
};

/// Requests waiting for their answer on one connection. A client that sends more without
/// waiting has the oldest reported unanswered: the bound keeps a hostile client from growing
/// the table.
pub const MAX_PENDING_PER_FLOW: usize = 256;

/// CLDAP requests waiting for their answer, across all clients.
pub const MAX_PENDING_CLDAP: usize = 4096;

/// The StartTLS extended operation (RFC 4511 4.14): after its success the stream is TLS.
const START_TLS: &[u8] = b"1.3.6.1.4.1.1466.20037";

/// A request seen, its activity waiting for the answer.
#[derive(Debug)]
struct Pending {
    activity: Activity,
    /// Activities of the authentication tokens the request carried: they take the answer's
    /// outcome (a Sicily bind's NTLM AUTHENTICATE fails when the bind does).
    carried: Vec<Activity>,
    entries: u32,
    references: u32,
}

impl Pending {
    fn new(activity: Activity, carried: Vec<Activity>) -> Self {
        Self {
            activity,
            carried,
            entries: 0,
            references: 0,
        }
    }
}

#[derive(Debug, Default)]
pub struct LdapSession {
    pending: HashMap<u32, Pending>,
    /// A SASL bind happened: messages may now come wrapped in a security layer.
    sasl_bound: bool,
    /// StartTLS succeeded: the rest is TLS.
    tls: bool,
}

impl StreamProtocol for LdapSession {
    fn frame(&self, _direction: Direction, bytes: &[u8]) -> Framing {
        match bytes.first() {
            _ if self.tls => Framing::NotPdu,
            Some(0x30) => ldap::frame(bytes),
            Some(0x00) if self.sasl_bound => ldap::frame_sasl(bytes),
            Some(_) => Framing::NotPdu,
            None => Framing::NeedMore,
        }
    }

    fn is_pdu_start(&self, _direction: Direction, bytes: &[u8]) -> Start {
        match bytes.first() {
            _ if self.tls => Start::No,
            Some(0x30) => ldap::is_pdu_start(bytes),
            Some(0x00) if self.sasl_bound => ldap::is_sasl_start(bytes),
            Some(_) => Start::No,
            None => Start::NeedMore,
        }
    }

    fn pdu(
        &mut self,
        direction: Direction,
        pdu: &[u8],
        truncated: bool,
        seen: &Seen,
        out: &mut Vec<Activity>,
    ) -> Result<(), Malformed> {
        if pdu.first() != Some(&0x30) {
            out.push(sealed(pdu.len(), seen));
            return Ok(());
        }
        if truncated {
            return self.truncated(pdu);
        }
        let message = ldap::parse(pdu).map_err(|_| Malformed)?;
        match direction {
            Direction::ToServer => self.request(&message, seen, out),
            Direction::ToClient => self.response(&message, seen, out),
        }
        Ok(())
    }
}

impl LdapSession {
    fn request(&mut self, message: &LdapMessage<'_>, seen: &Seen, out: &mut Vec<Activity>) {
        let mut carried = Vec::new();
        let Some(activity) = request_activity(message, seen, Carrier::Ldap, &mut carried) else {
            return;
        };
        let never_answered = matches!(
            message.op,
            ProtocolOp::UnbindRequest | ProtocolOp::AbandonRequest { .. }
        );
        if never_answered {
            out.extend(carried);
            out.push(activity);
            return;
        }
        if self.pending.len() >= MAX_PENDING_PER_FLOW
            && let Some(oldest) = self.pending.keys().min().copied()
            && let Some(evicted) = self.pending.remove(&oldest)
        {
            out.extend(unanswered(evicted));
        }
        if let Some(replaced) = self
            .pending
            .insert(message.message_id, Pending::new(activity, carried))
        {
            out.extend(unanswered(replaced));
        }
    }

    fn response(&mut self, message: &LdapMessage<'_>, seen: &Seen, out: &mut Vec<Activity>) {
        // The server's tokens follow the request's activities, which happened before them.
        let mut server_tokens = Vec::new();
        if let ProtocolOp::BindResponse {
            result,
            server_sasl_creds,
            sicily_challenge,
        } = &message.op
        {
            for token in [server_sasl_creds, sicily_challenge].into_iter().flatten() {
                gss::token(token, seen, Carrier::Ldap, &mut server_tokens);
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
                self.sasl_bound = true;
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
        if let Some(pending) = self.pending.get_mut(&message.message_id) {
            match &message.op {
                ProtocolOp::SearchResultEntry { .. } => {
                    pending.entries = pending.entries.saturating_add(1);
                }
                ProtocolOp::SearchResultReference { .. } => {
                    pending.references = pending.references.saturating_add(1);
                }
                _ => self.answer(message, out),
            }
        }
        out.extend(server_tokens);
    }

    /// The final response to a pending request: its activities, with the result.
    fn answer(&mut self, message: &LdapMessage<'_>, out: &mut Vec<Activity>) {
        let result = match &message.op {
            ProtocolOp::BindResponse { result, .. }
            | ProtocolOp::SearchResultDone(result)
            | ProtocolOp::ModifyResponse(result)
            | ProtocolOp::AddResponse(result)
            | ProtocolOp::DelResponse(result)
            | ProtocolOp::ModifyDnResponse(result)
            | ProtocolOp::CompareResponse(result)
            | ProtocolOp::ExtendedResponse { result, .. } => result,
            _ => return,
        };
        if let Some(pending) = self.pending.remove(&message.message_id) {
            out.extend(answered(pending, result));
        }
    }

    /// An oversized PDU: only a search result entry is worth counting from its first bytes.
    fn truncated(&mut self, pdu: &[u8]) -> Result<(), Malformed> {
        const SEARCH_RESULT_ENTRY: u8 = 0x64;
        let (id, op) = peek_id_and_op(pdu).ok_or(Malformed)?;
        if op == SEARCH_RESULT_ENTRY
            && let Some(pending) = self.pending.get_mut(&id)
        {
            pending.entries = pending.entries.saturating_add(1);
        }
        Ok(())
    }

    /// The connection ended: requests never answered are reported as such.
    pub fn close(self, out: &mut Vec<Activity>) {
        let mut pending: Vec<_> = self.pending.into_iter().collect();
        pending.sort_by_key(|(id, _)| *id);
        out.extend(
            pending
                .into_iter()
                .flat_map(|(_, pending)| unanswered(pending)),
        );
    }
}

/// The messageID and the protocolOp's identifier octet of an LDAPMessage too long to parse
/// whole: both sit in its first bytes.
fn peek_id_and_op(pdu: &[u8]) -> Option<(u32, u8)> {
    let header = ber::read_header(pdu).ok()?;
    let (id, rest) = ber::read_u32(pdu.get(header.header_len..)?).ok()?;
    Some((id, *rest.first()?))
}

/// CLDAP requests waiting for their datagram of answers.
#[derive(Debug, Default)]
pub struct Cldap {
    pending: HashMap<(SocketAddr, SocketAddr, u32), Pending>,
}

impl Cldap {
    /// One CLDAP datagram: a request (to the server) or its answer.
    pub fn datagram(
        &mut self,
        payload: &[u8],
        to_server: bool,
        seen: &Seen,
        out: &mut Vec<Activity>,
    ) -> Result<(), Malformed> {
        let mut parsed_any = false;
        for message in ldap::messages(payload) {
            let message = message.map_err(|_| Malformed)?;
            parsed_any = true;
            if to_server {
                self.request(&message, seen, out);
            } else {
                self.response(&message, seen, out);
            }
        }
        if parsed_any { Ok(()) } else { Err(Malformed) }
    }

    fn request(&mut self, message: &LdapMessage<'_>, seen: &Seen, out: &mut Vec<Activity>) {
        let mut carried = Vec::new();
        let Some(mut activity) = request_activity(message, seen, Carrier::Ldap, &mut carried)
        else {
            return;
        };
        if let Some(activity::Body::Ldap(body)) = &mut activity.body {
            body.cldap = true;
        }
        if self.pending.len() >= MAX_PENDING_CLDAP {
            self.flush(out);
        }
        let key = (seen.src, seen.dst, message.message_id);
        if let Some(replaced) = self.pending.insert(key, Pending::new(activity, carried)) {
            out.extend(unanswered(replaced));
        }
    }

    fn response(&mut self, message: &LdapMessage<'_>, seen: &Seen, out: &mut Vec<Activity>) {
        let key = (seen.dst, seen.src, message.message_id);
        match &message.op {
            ProtocolOp::SearchResultEntry { .. } => {
                if let Some(pending) = self.pending.get_mut(&key) {
                    pending.entries = pending.entries.saturating_add(1);
                }
            }
            ProtocolOp::SearchResultDone(result) => {
                if let Some(pending) = self.pending.remove(&key) {
                    out.extend(answered(pending, result));
                }
            }
            _ => {}
        }
    }

    /// Reports every request still waiting, unanswered.
    pub fn flush(&mut self, out: &mut Vec<Activity>) {
        let mut pending: Vec<_> = self.pending.drain().map(|(_, pending)| pending).collect();
        pending.sort_by_key(|pending| pending.activity.time.map(|time| (time.seconds, time.nanos)));
        out.extend(pending.into_iter().flat_map(unanswered));
    }
}

fn ldap_body(activity: &Activity) -> Option<&LdapActivity> {
    match &activity.body {
        Some(activity::Body::Ldap(body)) => Some(body),
        _ => None,
    }
}

fn sealed(len: usize, seen: &Seen) -> Activity {
    seen.activity(activity::Body::Ldap(LdapActivity {
        r#type: Type::Sealed.into(),
        sealed_len: u32::try_from(len).unwrap_or(u32::MAX),
        ..LdapActivity::default()
    }))
}

/// The activity of a request, without its result; tokens of a bind are reported on the way.
fn request_activity(
    message: &LdapMessage<'_>,
    seen: &Seen,
    carrier: Carrier,
    out: &mut Vec<Activity>,
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
                        && !gss::token(token, seen, carrier, out)
                    {
                        body.anomalies.push("unreadable_auth_token".to_owned());
                    }
                }
                BindAuth::Sicily { step, token } => {
                    body.auth_method = AuthMethod::Sicily.into();
                    if *step != SicilyStep::PackageDiscovery
                        && !token.is_empty()
                        && !gss::token(token, seen, carrier, out)
                    {
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
        }
        ProtocolOp::ModifyRequest { object, changes } => {
            body.r#type = Type::Modify.into();
            body.dn = object.to_string();
            body.attributes = changes
                .iter()
                .map(|(operation, attribute)| {
                    format!("{}:{attribute}", operation.name().unwrap_or("unknown"))
                })
                .collect();
        }
        ProtocolOp::AddRequest { entry, attributes } => {
            body.r#type = Type::Add.into();
            body.dn = entry.to_string();
            body.attributes = attributes.iter().map(ToString::to_string).collect();
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
    let mut names: Vec<String> = [
        (anomalies.trailing_data, "trailing_data"),
        (anomalies.too_many_controls, "too_many_controls"),
        (anomalies.list_truncated, "list_truncated"),
        (anomalies.unusual_bind_version, "unusual_bind_version"),
    ]
    .into_iter()
    .filter(|(present, _)| *present)
    .map(|(_, name)| name.to_owned())
    .collect();
    if *filter != Default::default() {
        names.push(format!("filter:{filter:?}"));
    }
    names
}
