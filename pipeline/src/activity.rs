//! Activities: the proto messages the sensor reports, their common header, and their JSON line.

use std::net::{IpAddr, SocketAddr};

use dcwatch_proto::v1::{Activity, Endpoint, Outcome, activity::Body, outcome::Status};

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

pub use dcwatch_proto::json::write_json_line;

#[cfg(test)]
mod tests {
    use dcwatch_proto::v1::{
        Account, Carrier, DnsActivity, KerberosActivity, dns_activity, kerberos_activity,
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
            tags: Vec::new(),
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
