//! DNS messages (RFC 1035) to activities: lookups and their answers, zone transfers, dynamic
//! updates. The GSS-API token of a secure dynamic update's TKEY (RFC 3645) is reported as the
//! Kerberos (or NTLM) activity it carries.

use dcwatch_parsers::{
    dns::{
        self, Anomalies, DnsMessage, Opcode, RData, Rcode, Record as DnsRecord, RecordClass,
        RecordType,
    },
    framing::{Framing, Start},
};
use dcwatch_proto::v1::{Activity, Carrier, DnsActivity, Record, activity, dns_activity::Type};

use super::{
    gss,
    stream::{Malformed, Sink, StreamProtocol},
};
use crate::{
    activity::{Seen, flag_names, outcome},
    flow::Direction,
};

/// Records copied into one activity; the header's counts say how many there were.
pub(super) const MAX_RECORDS_PER_ACTIVITY: usize = 64;

/// DNS over TCP (RFC 1035 4.2.2): each message behind a 2-byte length.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct DnsStream;

const LENGTH_PREFIX_LEN: usize = 2;

impl StreamProtocol for DnsStream {
    fn frame(&self, _direction: Direction, bytes: &[u8]) -> Framing {
        dns::frame(bytes)
    }

    fn is_pdu_start(&self, _direction: Direction, bytes: &[u8]) -> Start {
        dns::is_pdu_start(bytes)
    }

    fn pdu(
        &mut self,
        _direction: Direction,
        pdu: &[u8],
        _truncated: bool,
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) -> Result<(), Malformed> {
        message(pdu.get(LENGTH_PREFIX_LEN..).unwrap_or_default(), seen, sink)
    }
}

/// One message: a UDP datagram, or a TCP message without its length.
pub(super) fn message(bytes: &[u8], seen: &Seen, sink: &mut Sink<'_>) -> Result<(), Malformed> {
    let message = dns::parse(bytes).map_err(|_| Malformed)?;
    if let Some(token) = message.tkey_key_data()
        && !gss::token(token, seen, Carrier::DnsTkey, sink.out)
    {
        sink.counters.unreadable_tokens += 1;
    }
    sink.out.push(activity(&message, seen));
    Ok(())
}

fn activity(message: &DnsMessage<'_>, seen: &Seen) -> Activity {
    let question = message.questions.first();
    let qtype = question.map(|question| question.qtype);
    let kind = kind(message.opcode, qtype, message.is_response);
    let records: Vec<Record> = if message.opcode == Opcode::UPDATE {
        let zone_class = message.zone().map_or(RecordClass::IN, |zone| zone.qclass);
        message
            .updates()
            .iter()
            .take(MAX_RECORDS_PER_ACTIVITY)
            .map(|record| {
                let mut text = record_text(record);
                text.action = action_name(record.update_action(zone_class)).to_owned();
                text
            })
            .collect()
    } else {
        message
            .answers
            .iter()
            .take(MAX_RECORDS_PER_ACTIVITY)
            .map(record_text)
            .collect()
    };
    let body = DnsActivity {
        r#type: kind.into(),
        tcp: seen.tcp,
        id: u32::from(message.id),
        opcode: u32::from(message.opcode.0),
        rcode: u32::from(message.rcode.0),
        rcode_name: if message.is_response {
            message.rcode.name().unwrap_or_default().to_owned()
        } else {
            String::new()
        },
        authoritative: message.flags.aa,
        truncated: message.flags.tc,
        query_name: question
            .map(|question| question.name.clone())
            .unwrap_or_default(),
        query_type: qtype.map(type_name).unwrap_or_default(),
        records,
        answer_count: u32::from(message.counts.answers),
        authority_count: u32::from(message.counts.authorities),
        additional_count: u32::from(message.counts.additionals),
        signed: message.tsig_present,
        anomalies: anomaly_names(&message.anomalies),
    };
    let mut activity = seen.activity(activity::Body::Dns(body));
    if message.is_response {
        activity.outcome = Some(outcome(
            message.rcode == Rcode::NOERROR,
            u32::from(message.rcode.0),
            message.rcode.name(),
        ));
    }
    activity
}

fn kind(opcode: Opcode, qtype: Option<RecordType>, response: bool) -> Type {
    match (opcode, qtype, response) {
        (Opcode::UPDATE, _, false) => Type::Update,
        (Opcode::UPDATE, _, true) => Type::UpdateResponse,
        (Opcode::NOTIFY, _, false) => Type::Notify,
        (Opcode::NOTIFY, _, true) => Type::NotifyResponse,
        (_, Some(RecordType::AXFR), false) => Type::Axfr,
        (_, Some(RecordType::AXFR), true) => Type::AxfrResponse,
        (_, Some(RecordType::IXFR), false) => Type::Ixfr,
        (_, Some(RecordType::IXFR), true) => Type::IxfrResponse,
        (_, _, false) => Type::Query,
        (_, _, true) => Type::Response,
    }
}

/// "A", "SRV", or "TYPE65280" (RFC 3597 5) for a type without a name.
fn type_name(rtype: RecordType) -> String {
    rtype.to_string()
}

fn record_text(record: &DnsRecord<'_>) -> Record {
    let data = match &record.data {
        RData::A(address) => address.to_string(),
        RData::Aaaa(address) => address.to_string(),
        RData::Ns(name) | RData::Cname(name) | RData::Ptr(name) => name.clone(),
        RData::Srv {
            priority,
            weight,
            port,
            target,
        } => format!("{priority} {weight} {port} {target}"),
        RData::Mx {
            preference,
            exchange,
        } => format!("{preference} {exchange}"),
        _ => String::new(),
    };
    Record {
        name: record.name.clone(),
        r#type: type_name(record.rtype),
        ttl: record.ttl,
        data,
        action: String::new(),
    }
}

fn action_name(action: dns::UpdateAction) -> &'static str {
    match action {
        dns::UpdateAction::Add => "add",
        dns::UpdateAction::DeleteRrset => "delete_rrset",
        dns::UpdateAction::DeleteAllRrsets => "delete_all",
        dns::UpdateAction::DeleteRr => "delete_rr",
        dns::UpdateAction::Invalid => "invalid",
    }
}

fn anomaly_names(anomalies: &Anomalies) -> Vec<String> {
    flag_names([
        (anomalies.trailing_bytes, "trailing_bytes"),
        (anomalies.missing_records, "missing_records"),
        (anomalies.questions_not_decoded, "questions_not_decoded"),
        (anomalies.records_not_decoded, "records_not_decoded"),
        (anomalies.forward_pointer, "forward_pointer"),
        (anomalies.bad_rdata, "bad_rdata"),
        (anomalies.z_bit, "z_bit"),
        (anomalies.opt_misplaced, "opt_misplaced"),
        (anomalies.tsig_not_last, "tsig_not_last"),
    ])
}
