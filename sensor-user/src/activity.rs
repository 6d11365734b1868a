//! Activities: the proto messages the sensor reports, their common header, and their JSON line.

use std::{
    io::{self, Write},
    net::{IpAddr, SocketAddr},
};

use dcwatch_proto::v1::{Activity, Carrier, Endpoint, Outcome, activity::Body, outcome::Status};

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

/// The names of the anomaly flags that are set, for an activity's `anomalies` list.
pub fn flag_names<'a>(flags: impl IntoIterator<Item = (bool, &'a str)>) -> Vec<String> {
    flags
        .into_iter()
        .filter(|(set, _)| *set)
        .map(|(_, name)| name.to_owned())
        .collect()
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

/// Writes the JSON line of an activity (DESIGN.md, "What to extract"): the proto3 JSON form with
/// proto field names and enums by name, flattened so the protocol's fields sit beside the
/// header's: `{"time":…,"protocol":"kerberos","type":"AS_REQ","src":"ip:port","dst":…,…}`.
///
/// Built from the pieces' own serialisations rather than through a `serde_json::Value`: this
/// runs once per activity, and a map per line cost more than all the parsing before it.
/// `scratch` is reused from line to line.
pub fn write_json_line(
    activity: &Activity,
    out: &mut impl Write,
    scratch: &mut Vec<u8>,
) -> io::Result<()> {
    scratch.clear();
    let protocol = match &activity.body {
        Some(Body::Kerberos(body)) => {
            serde_json::to_writer(&mut *scratch, body).map(|()| "kerberos")
        }
        Some(Body::Ntlm(body)) => serde_json::to_writer(&mut *scratch, body).map(|()| "ntlm"),
        Some(Body::Ldap(body)) => serde_json::to_writer(&mut *scratch, body).map(|()| "ldap"),
        Some(Body::Dns(body)) => serde_json::to_writer(&mut *scratch, body).map(|()| "dns"),
        Some(Body::Smb(body)) => serde_json::to_writer(&mut *scratch, body).map(|()| "smb"),
        Some(Body::Dcerpc(body)) => serde_json::to_writer(&mut *scratch, body).map(|()| "dcerpc"),
        Some(Body::Netbios(body)) => serde_json::to_writer(&mut *scratch, body).map(|()| "netbios"),
        Some(Body::Rdp(body)) => serde_json::to_writer(&mut *scratch, body).map(|()| "rdp"),
        Some(Body::Radius(body)) => serde_json::to_writer(&mut *scratch, body).map(|()| "radius"),
        Some(Body::WindowsEvent(body)) => {
            serde_json::to_writer(&mut *scratch, body).map(|()| "windows_event")
        }
        None => Ok("unknown"),
    }?;
    // The body's members without its braces; `type` is its field 1, so it comes first.
    let members = scratch
        .get(1..scratch.len().saturating_sub(1))
        .unwrap_or_default();
    let (kind, rest) = split_type(members);
    out.write_all(b"{\"time\":")?;
    serde_json::to_writer(&mut *out, &activity.time)?;
    write!(out, ",\"protocol\":\"{protocol}\"")?;
    if !kind.is_empty() {
        out.write_all(b",")?;
        out.write_all(kind)?;
    }
    write!(
        out,
        ",\"src\":\"{}\",\"dst\":\"{}\"",
        endpoint_text(activity.src.as_ref()),
        endpoint_text(activity.dst.as_ref())
    )?;
    if !rest.is_empty() {
        out.write_all(b",")?;
        out.write_all(rest)?;
    }
    if !activity.sensor_id.is_empty() {
        out.write_all(b",\"sensor_id\":")?;
        serde_json::to_writer(&mut *out, &activity.sensor_id)?;
    }
    if let Some(account) = &activity.account {
        out.write_all(b",\"account\":")?;
        serde_json::to_writer(&mut *out, account)?;
    }
    if let Some(computer) = &activity.source_computer {
        out.write_all(b",\"source_computer\":")?;
        serde_json::to_writer(&mut *out, computer)?;
    }
    if let Some(outcome) = &activity.outcome {
        out.write_all(b",\"outcome\":")?;
        serde_json::to_writer(&mut *out, outcome)?;
    }
    if let Ok(carrier) = Carrier::try_from(activity.carrier)
        && carrier != Carrier::None
    {
        write!(out, ",\"carrier\":\"{}\"", carrier.as_str_name())?;
    }
    out.write_all(b"}\n")
}

/// Splits `"type":"NAME",rest` into the `type` member and the rest (either may be empty).
fn split_type(members: &[u8]) -> (&[u8], &[u8]) {
    const TYPE_KEY: &[u8] = b"\"type\":\"";
    if !members.starts_with(TYPE_KEY) {
        return (&[], members);
    }
    // An enum name holds no quote, so the next quote closes the value.
    let Some(close) = members[TYPE_KEY.len()..]
        .iter()
        .position(|&byte| byte == b'"')
    else {
        return (&[], members);
    };
    let end = TYPE_KEY.len() + close + 1;
    let rest = members.get(end + 1..).unwrap_or_default();
    (&members[..end], rest)
}

#[cfg(test)]
mod tests {
    use dcwatch_proto::v1::{
        Account, DnsActivity, KerberosActivity, dns_activity, kerberos_activity,
    };

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
        write_json_line(&activity, &mut line, &mut Vec::new()).expect("write to a Vec");
        let text = String::from_utf8(line).expect("UTF-8");
        assert_eq!(
            text,
            "{\"time\":\"2023-11-14T22:13:20.123456789+00:00\",\"protocol\":\"dns\",\"type\":\"QUERY\",\
             \"src\":\"10.0.0.5:53124\",\"dst\":\"[fd00::1]:53\",\"id\":7,\
             \"query_name\":\"_ldap._tcp.dc._msdcs.corp.example\",\"query_type\":\"SRV\"}\n"
        );
    }

    #[test]
    fn header_fields_follow_the_body_and_the_line_is_valid_json() {
        let seen = Seen {
            time_ns: 1_000_000_001,
            src: "10.0.0.1:88".parse().expect("address"),
            dst: "10.0.0.5:50000".parse().expect("address"),
            tcp: true,
        };
        let mut activity = seen.activity(Body::Kerberos(KerberosActivity {
            r#type: kerberos_activity::Type::KrbError.into(),
            error_code: 24,
            error_name: "KDC_ERR_PREAUTH_FAILED".to_owned(),
            etypes: vec![23, -135],
            ticket_hash: vec![1, 2, 3],
            ..KerberosActivity::default()
        }));
        activity.sensor_id = "sensor \"one\"".to_owned();
        activity.account = Some(Account {
            domain: "CORP".to_owned(),
            name: "alice".to_owned(),
            sid: String::new(),
        });
        activity.outcome = Some(outcome(false, 24, Some("KDC_ERR_PREAUTH_FAILED")));
        activity.carrier = Carrier::Http.into();
        let mut line = Vec::new();
        write_json_line(&activity, &mut line, &mut Vec::new()).expect("write to a Vec");
        let value: serde_json::Value = serde_json::from_slice(&line).expect("valid JSON");
        assert_eq!(
            value,
            serde_json::json!({
                "time": "1970-01-01T00:00:01.000000001+00:00",
                "protocol": "kerberos",
                "type": "KRB_ERROR",
                "src": "10.0.0.1:88",
                "dst": "10.0.0.5:50000",
                "etypes": [23, -135],
                "ticket_hash": "AQID",
                "error_code": 24,
                "error_name": "KDC_ERR_PREAUTH_FAILED",
                "sensor_id": "sensor \"one\"",
                "account": {"domain": "CORP", "name": "alice"},
                "outcome": {"status": "FAILURE", "code": 24, "name": "KDC_ERR_PREAUTH_FAILED"},
                "carrier": "HTTP",
            })
        );
    }
}
