//! Activities: the proto messages the sensor reports, their common header, and their JSON line.

use std::{
    io::{self, Write},
    net::{IpAddr, SocketAddr},
};

use dcwatch_proto::v1::{Activity, Endpoint, Outcome, activity::Body, outcome::Status};
use serde_json::Value;

/// Where and when a message was seen: what every activity built from it shares.
#[derive(Clone, Copy, Debug)]
pub struct Seen {
    pub time_ns: u64,
    /// The sender of the message.
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub tcp: bool,
}

impl Seen {
    /// The reverse direction: for an answer correlated with a request seen earlier.
    pub fn reply(&self) -> Self {
        Self {
            src: self.dst,
            dst: self.src,
            ..*self
        }
    }

    pub fn activity(&self, body: Body) -> Activity {
        Activity {
            time: Some(timestamp(self.time_ns)),
            src: Some(endpoint(self.src)),
            dst: Some(endpoint(self.dst)),
            body: Some(body),
            ..Activity::default()
        }
    }
}

pub fn timestamp(unix_ns: u64) -> pbjson_types::Timestamp {
    const NS_PER_SECOND: u64 = 1_000_000_000;
    pbjson_types::Timestamp {
        seconds: i64::try_from(unix_ns / NS_PER_SECOND).unwrap_or(i64::MAX),
        nanos: i32::try_from(unix_ns % NS_PER_SECOND).unwrap_or(0),
    }
}

pub fn endpoint(address: SocketAddr) -> Endpoint {
    Endpoint {
        ip: match address.ip() {
            IpAddr::V4(ip) => ip.octets().to_vec(),
            IpAddr::V6(ip) => ip.octets().to_vec(),
        },
        port: u32::from(address.port()),
    }
}

pub fn outcome(success: bool, code: u32, name: Option<&str>) -> Outcome {
    Outcome {
        status: if success {
            Status::Success
        } else {
            Status::Failure
        }
        .into(),
        code,
        name: name.unwrap_or_default().to_owned(),
    }
}

fn endpoint_text(endpoint: Option<&Endpoint>) -> String {
    let Some(endpoint) = endpoint else {
        return String::new();
    };
    let port = u16::try_from(endpoint.port).unwrap_or(0);
    let ip = match endpoint.ip.len() {
        4 => <[u8; 4]>::try_from(endpoint.ip.as_slice())
            .map(IpAddr::from)
            .ok(),
        16 => <[u8; 16]>::try_from(endpoint.ip.as_slice())
            .map(IpAddr::from)
            .ok(),
        _ => None,
    };
    ip.map(|ip| SocketAddr::new(ip, port).to_string())
        .unwrap_or_default()
}

/// Keys that lead each line, in this order; the rest follow sorted.
const LEADING_KEYS: [&str; 5] = ["time", "protocol", "type", "src", "dst"];

/// Writes the JSON line of an activity (DESIGN.md, "What to extract"): the proto3 JSON form with
/// proto field names and enums by name, flattened so the protocol's fields sit beside the
/// header's: `{"time":…,"protocol":"kerberos","type":"AS_REQ","src":"ip:port","dst":…,…}`.
pub fn write_json_line(activity: &Activity, out: &mut impl Write) -> io::Result<()> {
    let Value::Object(mut fields) = serde_json::to_value(activity)? else {
        return Err(io::Error::other(
            "an activity did not serialise to an object",
        ));
    };
    let protocol = activity.body.as_ref().map(protocol_name);
    if let Some(protocol) = protocol {
        if let Some(Value::Object(body)) = fields.remove(protocol) {
            fields.extend(body);
        }
        fields.insert("protocol".to_owned(), Value::from(protocol));
    }
    fields.insert(
        "src".to_owned(),
        Value::from(endpoint_text(activity.src.as_ref())),
    );
    fields.insert(
        "dst".to_owned(),
        Value::from(endpoint_text(activity.dst.as_ref())),
    );
    out.write_all(b"{")?;
    let mut first = true;
    let leading = LEADING_KEYS
        .iter()
        .filter_map(|key| fields.get(*key).map(|value| (*key, value)));
    let rest = fields
        .iter()
        .filter(|(key, _)| !LEADING_KEYS.contains(&key.as_str()))
        .map(|(key, value)| (key.as_str(), value));
    for (key, value) in leading.chain(rest) {
        if !first {
            out.write_all(b",")?;
        }
        first = false;
        serde_json::to_writer(&mut *out, key)?;
        out.write_all(b":")?;
        serde_json::to_writer(&mut *out, value)?;
    }
    out.write_all(b"}\n")
}

/// The protocol's name in JSON lines: the name of the body's field in the proto.
pub fn protocol_name(body: &Body) -> &'static str {
    match body {
        Body::Kerberos(_) => "kerberos",
        Body::Ntlm(_) => "ntlm",
        Body::Ldap(_) => "ldap",
        Body::Dns(_) => "dns",
    }
}

#[cfg(test)]
mod tests {
    use dcwatch_proto::v1::{DnsActivity, dns_activity};

    use super::*;

    #[test]
    fn a_json_line_is_flat_and_leads_with_the_header() {
        let seen = Seen {
            time_ns: 1_700_000_000_123_456_789,
            src: "10.0.0.5:53124".parse().expect("address"),
            dst: "[fd00::1]:53".parse().expect("address"),
            tcp: false,
        };
        let activity = seen.activity(Body::Dns(DnsActivity {
            r#type: dns_activity::Type::Query.into(),
            query_name: "_ldap._tcp.dc._msdcs.corp.example".to_owned(),
            query_type: "SRV".to_owned(),
            id: 7,
            ..DnsActivity::default()
        }));
        let mut line = Vec::new();
        write_json_line(&activity, &mut line).expect("write to a Vec");
        let text = String::from_utf8(line).expect("UTF-8");
        assert_eq!(
            text,
            "{\"time\":\"2023-11-14T22:13:20.123456789+00:00\",\"protocol\":\"dns\",\"type\":\"QUERY\",\
             \"src\":\"10.0.0.5:53124\",\"dst\":\"[fd00::1]:53\",\"id\":7,\
             \"query_name\":\"_ldap._tcp.dc._msdcs.corp.example\",\"query_type\":\"SRV\"}\n"
        );
    }
}
