//! NetBIOS name service messages (RFC 1002) to activities: name queries and their answers,
//! registrations, refreshes and releases (who claims which name at which address), and node
//! status (a host's names and MAC address).

use dcwatch_parsers::nbns::{
    self, Anomalies, NbnsMessage, NetbiosName, NodeStatus, Opcode, Rcode, RecordType,
};
use dcwatch_proto::v1::{Activity, NetbiosActivity, activity, netbios_activity::Type};

use super::stream::Malformed;
use crate::activity::{Seen, flag_names, outcome};

/// One NBNS datagram.
pub(super) fn message(bytes: &[u8], seen: &Seen, out: &mut Vec<Activity>) -> Result<(), Malformed> {
    let message = nbns::parse(bytes).map_err(|_| Malformed)?;
    out.push(activity(&message, seen));
    Ok(())
}

fn kind(message: &NbnsMessage<'_>) -> Type {
    let asks_status = message
        .questions
        .first()
        .is_some_and(|question| question.qtype == RecordType::NBSTAT)
        || message.node_status().is_some();
    match message.opcode {
        Opcode::QUERY if asks_status => Type::NodeStatus,
        Opcode::QUERY if message.is_response => Type::Response,
        Opcode::QUERY => Type::Query,
        Opcode::REGISTRATION | Opcode::MULTIHOMED_REGISTRATION => Type::Registration,
        Opcode::REFRESH | Opcode::REFRESH_ALT => Type::Refresh,
        Opcode::RELEASE => Type::Release,
        Opcode::WACK => Type::Wack,
        _ => Type::Unspecified,
    }
}

fn activity(message: &NbnsMessage<'_>, seen: &Seen) -> Activity {
    let subject = message.subject();
    let first_nb = message.nb_addresses().next();
    let mut body = NetbiosActivity {
        r#type: kind(message).into(),
        response: message.is_response,
        transaction_id: u32::from(message.transaction_id),
        opcode: u32::from(message.opcode.0),
        rcode: u32::from(message.rcode.0),
        rcode_name: if message.is_response {
            message.rcode.name().unwrap_or_default().to_owned()
        } else {
            String::new()
        },
        broadcast: message.flags.broadcast,
        query_type: message
            .questions
            .first()
            .map(|question| type_name(question.qtype))
            .unwrap_or_default(),
        addresses: message
            .nb_addresses()
            .map(|nb| nb.address.to_string())
            .collect(),
        group: first_nb.is_some_and(|nb| nb.group),
        ttl: message.records.first().map_or(0, |record| record.ttl),
        anomalies: anomaly_names(&message.anomalies),
        ..NetbiosActivity::default()
    };
    if let Some(name) = subject {
        named(&mut body, name);
    }
    if let Some(status) = message.node_status() {
        node_status(&mut body, status);
    }
    let mut activity = seen.activity(activity::Body::Netbios(body));
    if message.is_response && message.opcode != Opcode::WACK {
        activity.outcome = Some(outcome(
            message.rcode == Rcode::NOERROR,
            u32::from(message.rcode.0),
            message.rcode.name(),
        ));
    }
    activity
}

fn named(body: &mut NetbiosActivity, name: &NetbiosName) {
    body.name = name.to_string();
    body.name_base.clone_from(&name.name);
    body.suffix = u32::from(name.suffix);
    body.scope.clone_from(&name.scope);
}

fn node_status(body: &mut NetbiosActivity, status: &NodeStatus) {
    body.node_names = status
        .names
        .iter()
        .map(|entry| {
            if entry.is_group() {
                format!("{} group", entry.name)
            } else {
                entry.name.to_string()
            }
        })
        .collect();
    body.mac = status
        .mac
        .map(|mac| {
            mac.iter()
                .map(|octet| format!("{octet:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        })
        .unwrap_or_default();
}

/// "NB", "NBSTAT", or the number of another type.
fn type_name(rtype: RecordType) -> String {
    rtype
        .name()
        .map_or_else(|| rtype.0.to_string(), str::to_owned)
}

fn anomaly_names(anomalies: &Anomalies) -> Vec<String> {
    flag_names([
        (anomalies.trailing_bytes, "trailing_bytes"),
        (anomalies.missing_records, "missing_records"),
        (anomalies.records_not_decoded, "records_not_decoded"),
        (anomalies.bad_encoded_name, "bad_encoded_name"),
        (anomalies.bad_rdata, "bad_rdata"),
        (anomalies.list_truncated, "list_truncated"),
        (anomalies.reserved_flags, "reserved_flags"),
    ])
}
