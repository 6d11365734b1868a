//! The JSON line of an activity: what `dcwatch-sensor --output json` prints and what
//! `dcwatch-backend activities --json` prints back from its store, byte for byte the same.

use std::{
    io::{self, Write},
    net::{IpAddr, SocketAddr},
};

use crate::v1::{Activity, Carrier, Endpoint, activity::Body};

/// The text form of an endpoint, `ip:port` (`[ip]:port` for IPv6); empty when absent or when its
/// address is neither 4 nor 16 bytes.
pub fn endpoint_text(endpoint: Option<&Endpoint>) -> String {
    let Some(endpoint) = endpoint else {
        return String::new();
    };
    let port = u16::try_from(endpoint.port).unwrap_or(0);
    let ip = endpoint_ip(endpoint);
    ip.map(|ip| SocketAddr::new(ip, port).to_string())
        .unwrap_or_default()
}

/// An endpoint's address, when it is 4 (IPv4) or 16 (IPv6) bytes long.
pub fn endpoint_ip(endpoint: &Endpoint) -> Option<IpAddr> {
    match endpoint.ip.len() {
        4 => <[u8; 4]>::try_from(endpoint.ip.as_slice())
            .map(IpAddr::from)
            .ok(),
        16 => <[u8; 16]>::try_from(endpoint.ip.as_slice())
            .map(IpAddr::from)
            .ok(),
        _ => None,
    }
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
    match &activity.body {
        Some(Body::Kerberos(body)) => serde_json::to_writer(&mut *scratch, body),
        Some(Body::Ntlm(body)) => serde_json::to_writer(&mut *scratch, body),
        Some(Body::Ldap(body)) => serde_json::to_writer(&mut *scratch, body),
        Some(Body::Dns(body)) => serde_json::to_writer(&mut *scratch, body),
        Some(Body::Smb(body)) => serde_json::to_writer(&mut *scratch, body),
        Some(Body::Dcerpc(body)) => serde_json::to_writer(&mut *scratch, body),
        Some(Body::Netbios(body)) => serde_json::to_writer(&mut *scratch, body),
        Some(Body::Rdp(body)) => serde_json::to_writer(&mut *scratch, body),
        Some(Body::Radius(body)) => serde_json::to_writer(&mut *scratch, body),
        Some(Body::WindowsEvent(body)) => serde_json::to_writer(&mut *scratch, body),
        Some(Body::Ntp(body)) => serde_json::to_writer(&mut *scratch, body),
        None => Ok(()),
    }?;
    let protocol = protocol_name(activity.body.as_ref());
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
    if let Some(computer) = &activity.destination_computer {
        out.write_all(b",\"destination_computer\":")?;
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
    if !activity.flow_id.is_empty() {
        out.write_all(b",\"flow_id\":")?;
        serde_json::to_writer(&mut *out, &activity.flow_id)?;
    }
    if !activity.community_id.is_empty() {
        out.write_all(b",\"community_id\":")?;
        serde_json::to_writer(&mut *out, &activity.community_id)?;
    }
    out.write_all(b"}\n")
}

/// Writes the JSON line of an alert: its proto3 JSON form (proto field names, enums by name),
/// what `dcwatch-sensor replay --alerts json` and `dcwatch-backend alerts --json` print.
pub fn write_alert_line(alert: &crate::v1::Alert, out: &mut impl Write) -> io::Result<()> {
    serde_json::to_writer(&mut *out, alert)?;
    out.write_all(b"\n")
}

/// The `protocol` member of an activity's JSON line: the name of its body's variant
/// (`"unknown"` for an activity without one).
pub fn protocol_name(body: Option<&Body>) -> &'static str {
    match body {
        Some(Body::Kerberos(_)) => "kerberos",
        Some(Body::Ntlm(_)) => "ntlm",
        Some(Body::Ldap(_)) => "ldap",
        Some(Body::Dns(_)) => "dns",
        Some(Body::Smb(_)) => "smb",
        Some(Body::Dcerpc(_)) => "dcerpc",
        Some(Body::Netbios(_)) => "netbios",
        Some(Body::Rdp(_)) => "rdp",
        Some(Body::Radius(_)) => "radius",
        Some(Body::WindowsEvent(_)) => "windows_event",
        Some(Body::Ntp(_)) => "ntp",
        None => "unknown",
    }
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
    use super::*;
    use crate::v1::DnsActivity;

    #[test]
    fn endpoints_print_as_socket_addresses() {
        let v6 = Endpoint {
            ip: vec![0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            port: 88,
        };
        assert_eq!(endpoint_text(Some(&v6)), "[fd00::1]:88");
        let odd = Endpoint {
            ip: vec![1, 2, 3],
            port: 1,
        };
        assert_eq!(endpoint_text(Some(&odd)), "");
        assert_eq!(endpoint_text(None), "");
    }

    #[test]
    fn an_activity_without_a_body_is_still_a_line() {
        let mut line = Vec::new();
        write_json_line(&Activity::default(), &mut line, &mut Vec::new()).expect("to a Vec");
        assert_eq!(
            String::from_utf8(line).expect("UTF-8"),
            "{\"time\":null,\"protocol\":\"unknown\",\"src\":\"\",\"dst\":\"\"}\n"
        );
        let dns = Body::Dns(DnsActivity::default());
        assert_eq!(protocol_name(Some(&dns)), "dns");
    }
}
