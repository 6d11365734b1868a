//! RADIUS packets (RFC 2865, RFC 2866) to activities: accounting (which user holds which
//! address) and access requests and their outcome. With a shared secret configured for the NAS,
//! an Accounting-Request's authenticator is checked, and a response's against its request.

use std::{collections::HashMap, fmt, net::IpAddr};

use dcwatch_parsers::radius::{self, Anomalies, Code, RadiusPacket, text};
use dcwatch_proto::v1::{
    Account, Activity, RadiusActivity, activity,
    radius_activity::{Authenticator, Type},
};

use super::stream::Malformed;
use crate::activity::{Seen, flag_names, outcome};

/// Shared secrets by NAS address, and one for any other NAS. Never printed: `Debug` shows
/// only how many there are.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RadiusSecrets {
    default: Option<Vec<u8>>,
    by_nas: HashMap<IpAddr, Vec<u8>>,
}

impl fmt::Debug for RadiusSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RadiusSecrets")
            .field("default", &self.default.as_ref().map(|_| "<redacted>"))
            .field("by_nas", &self.by_nas.len())
            .finish()
    }
}

impl RadiusSecrets {
    /// `default`: for any NAS not in `by_nas`; empty strings mean none.
    pub fn new<'a>(default: &str, by_nas: impl IntoIterator<Item = (IpAddr, &'a str)>) -> Self {
        Self {
            default: (!default.is_empty()).then(|| default.as_bytes().to_vec()),
            by_nas: by_nas
                .into_iter()
                .filter(|(_, secret)| !secret.is_empty())
                .map(|(nas, secret)| (nas, secret.as_bytes().to_vec()))
                .collect(),
        }
    }

    /// The secret of the NAS at this address (RFC 2865 3: a server knows its clients by their
    /// source address, not by what they say in NAS-IP-Address).
    pub fn for_nas(&self, nas: IpAddr) -> Option<&[u8]> {
        self.by_nas
            .get(&nas)
            .or(self.default.as_ref())
            .map(Vec::as_slice)
    }
}

/// Requests of NASes with a configured secret whose answer has not been seen, kept to check
/// the answer's Response Authenticator (RFC 2865 3). A NAS retries within seconds and gives up
/// after about 30; 1024 outstanding requests (about 64 KiB) cover a busy server's accounting.
pub const MAX_PENDING_REQUESTS: usize = 1024;

/// How long a request waits for its answer: RADIUS clients give up well before.
pub const REQUEST_WAIT_NS: u64 = 60_000_000_000;

/// A request by NAS address and port, server address and port, and Identifier (RFC 2865 3:
/// the Identifier matches a response to its request from the same client).
type RequestKey = (std::net::SocketAddr, std::net::SocketAddr, u8);

/// The secrets, and the authenticators of requests waiting for their answer.
#[derive(Debug, Default)]
pub struct RadiusState {
    secrets: RadiusSecrets,
    /// Request Authenticator and time seen, at most [`MAX_PENDING_REQUESTS`].
    pending: HashMap<RequestKey, ([u8; 16], u64)>,
    /// Requests not remembered because the table was full of recent ones: their answers are
    /// UNCHECKED (DissectCounters::radius_requests_not_kept).
    requests_not_kept: u64,
}

impl RadiusState {
    pub fn new(secrets: RadiusSecrets) -> Self {
        Self {
            secrets,
            pending: HashMap::new(),
            requests_not_kept: 0,
        }
    }

    /// Requests whose authenticator was not kept for lack of room (their answers go
    /// UNCHECKED).
    pub fn requests_not_kept(&self) -> u64 {
        self.requests_not_kept
    }

    /// Remembers a request's authenticator, when its NAS has a secret; when full, requests
    /// older than [`REQUEST_WAIT_NS`] go, and if none is that old the new one is not kept.
    fn remember(&mut self, packet: &RadiusPacket<'_>, seen: &Seen) {
        if self.secrets.for_nas(seen.src.ip()).is_none() {
            return;
        }
        if self.pending.len() >= MAX_PENDING_REQUESTS {
            let oldest = seen.time_ns.saturating_sub(REQUEST_WAIT_NS);
            self.pending.retain(|_, (_, time)| *time > oldest);
            if self.pending.len() >= MAX_PENDING_REQUESTS {
                self.requests_not_kept += 1;
                return;
            }
        }
        self.pending.insert(
            (seen.src, seen.dst, packet.identifier),
            (packet.authenticator, seen.time_ns),
        );
    }

    /// Checks a response against its request: UNCHECKED without a secret or a request seen.
    fn check_response(
        &mut self,
        bytes: &[u8],
        packet: &RadiusPacket<'_>,
        seen: &Seen,
    ) -> Authenticator {
        let Some(secret) = self.secrets.for_nas(seen.dst.ip()) else {
            return Authenticator::Unchecked;
        };
        match self
            .pending
            .remove(&(seen.dst, seen.src, packet.identifier))
        {
            Some((request, _)) if radius::verify_response(bytes, &request, secret) => {
                Authenticator::Verified
            }
            Some(_) => Authenticator::Invalid,
            None => Authenticator::Unchecked,
        }
    }
}

/// Whether the code is a response (RFC 2865 4, RFC 2866 4, RFC 5176 3).
fn is_response(code: Code) -> bool {
    matches!(
        code,
        Code::ACCESS_ACCEPT
            | Code::ACCESS_REJECT
            | Code::ACCESS_CHALLENGE
            | Code::ACCOUNTING_RESPONSE
            | Code::DISCONNECT_ACK
            | Code::DISCONNECT_NAK
            | Code::COA_ACK
            | Code::COA_NAK
    )
}

/// One RADIUS datagram. With a secret for the NAS: an Accounting-Request's authenticator is
/// checked on its own, a response's against the request it answers (Access-Request
/// authenticators are random: nothing to check).
pub fn message(
    bytes: &[u8],
    seen: &Seen,
    state: &mut RadiusState,
    out: &mut Vec<Activity>,
) -> Result<(), Malformed> {
    let packet = radius::parse(bytes).map_err(|_| Malformed)?;
    let authenticator = if packet.code.has_request_digest() {
        state.remember(&packet, seen);
        match state.secrets.for_nas(seen.src.ip()) {
            Some(secret) if radius::verify_accounting_request(bytes, secret) => {
                Authenticator::Verified
            }
            Some(_) => Authenticator::Invalid,
            None => Authenticator::Unchecked,
        }
    } else if is_response(packet.code) {
        state.check_response(bytes, &packet, seen)
    } else {
        state.remember(&packet, seen);
        Authenticator::Unspecified
    };
    out.push(activity(&packet, authenticator, seen));
    Ok(())
}

fn kind(code: Code) -> Type {
    match code {
        Code::ACCOUNTING_REQUEST => Type::AccountingRequest,
        Code::ACCOUNTING_RESPONSE => Type::AccountingResponse,
        Code::ACCESS_REQUEST => Type::AccessRequest,
        Code::ACCESS_ACCEPT => Type::AccessAccept,
        Code::ACCESS_REJECT => Type::AccessReject,
        Code::ACCESS_CHALLENGE => Type::AccessChallenge,
        _ => Type::Other,
    }
}

fn activity(packet: &RadiusPacket<'_>, authenticator: Authenticator, seen: &Seen) -> Activity {
    let a = &packet.attributes;
    let string = |value: Option<&[u8]>| value.map(|v| text(v).into_owned()).unwrap_or_default();
    let prefix = |value: Option<radius::Ipv6Prefix>| {
        value
            .map(|p| format!("{}/{}", p.address, p.length))
            .unwrap_or_default()
    };
    let body = RadiusActivity {
        r#type: kind(packet.code).into(),
        code: u32::from(packet.code.0),
        identifier: u32::from(packet.identifier),
        status_type: a
            .acct_status_type
            .map(|status| {
                status
                    .name()
                    .map_or_else(|| status.0.to_string(), str::to_owned)
            })
            .unwrap_or_default(),
        user_name: string(a.user_name),
        framed_ip: a
            .framed_ip
            .map(|ip| ip.to_string())
            .or_else(|| a.framed_ipv6.map(|ip| ip.to_string()))
            .unwrap_or_default(),
        framed_ipv6_prefix: prefix(a.framed_ipv6_prefix),
        delegated_ipv6_prefix: prefix(a.delegated_ipv6_prefix),
        calling_station_id: string(a.calling_station_id),
        called_station_id: string(a.called_station_id),
        tunnel_client_endpoint: string(a.tunnel_client_endpoint),
        nas_ip: a
            .nas_ip
            .map(|ip| ip.to_string())
            .or_else(|| a.nas_ipv6.map(|ip| ip.to_string()))
            .unwrap_or_default(),
        nas_identifier: string(a.nas_identifier),
        nas_port: a.nas_port.unwrap_or_default(),
        session_id: string(a.acct_session_id),
        session_time: a.acct_session_time.unwrap_or_default(),
        input_octets: a.input_octets.unwrap_or_default(),
        output_octets: a.output_octets.unwrap_or_default(),
        terminate_cause: a.acct_terminate_cause.unwrap_or_default(),
        reply_message: string(a.reply_message),
        authenticator: authenticator.into(),
        password: a.password_present,
        eap: a.eap_present,
        anomalies: anomaly_names(&packet.anomalies),
    };
    let mut activity = seen.activity(activity::Body::Radius(body));
    activity.account = a.user_name.map(|name| account(&text(name)));
    activity.outcome = match packet.code {
        Code::ACCESS_ACCEPT | Code::ACCOUNTING_RESPONSE => Some(outcome(true, 0, None)),
        Code::ACCESS_REJECT => Some(outcome(false, u32::from(packet.code.0), packet.code.name())),
        _ => None,
    };
    activity
}

/// An account from a user name as people type it: `DOMAIN\user`, `user@domain`, or `user`.
pub fn account(user: &str) -> Account {
    let (domain, name) = if let Some((domain, name)) = user.split_once('\\') {
        (domain, name)
    } else if let Some((name, domain)) = user.rsplit_once('@') {
        (domain, name)
    } else {
        ("", user)
    };
    Account {
        domain: domain.to_owned(),
        name: name.to_owned(),
        sid: String::new(),
        tags: Vec::new(),
    }
}

fn anomaly_names(anomalies: &Anomalies) -> Vec<String> {
    flag_names([
        (anomalies.trailing_bytes, "trailing_bytes"),
        (anomalies.bad_attribute, "bad_attribute"),
        (anomalies.bad_attribute_value, "bad_attribute_value"),
        (anomalies.duplicate_attribute, "duplicate_attribute"),
        (anomalies.attributes_not_listed, "attributes_not_listed"),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcwatch_tests::fixture::hex;

    #[test]
    fn accounts_from_user_names() {
        let a = account("CORP\\alice");
        assert_eq!((a.domain.as_str(), a.name.as_str()), ("CORP", "alice"));
        let a = account("bob@corp.example");
        assert_eq!(
            (a.domain.as_str(), a.name.as_str()),
            ("corp.example", "bob")
        );
        let a = account("carol");
        assert_eq!((a.domain.as_str(), a.name.as_str()), ("", "carol"));
    }

    #[test]
    fn secrets_are_looked_up_by_nas_and_never_printed() {
        let nas: IpAddr = "10.0.0.1".parse().expect("address");
        let secrets = RadiusSecrets::new("fallback", [(nas, "per-nas")]);
        assert_eq!(secrets.for_nas(nas), Some(&b"per-nas"[..]));
        let other: IpAddr = "10.0.0.2".parse().expect("address");
        assert_eq!(secrets.for_nas(other), Some(&b"fallback"[..]));
        let printed = format!("{secrets:?}");
        assert!(!printed.contains("fallback") && !printed.contains("per-nas"));
        assert_eq!(RadiusSecrets::new("", []).for_nas(nas), None);
    }

    // arkime/tests/pcap/radius.pcap frame 1 (an Interim-Update for 10.0.0.3), cut to
    // User-Name, NAS-IP-Address and Framed-IP-Address, with Length fixed and the authenticator
    // computed for the secret
    // "testing123" (python3 hashlib.md5 over RFC 2866 3's input).
    const SIGNED: &str =
        "04e3002bc80a0622b7b250b1cf162f4b1a4c336e010b78787878787878787804060a00000108060a000003";

    fn seen() -> Seen {
        Seen {
            time_ns: 1,
            src: "10.0.0.1:45210".parse().expect("address"),
            dst: "10.0.0.9:1813".parse().expect("address"),
            tcp: false,
        }
    }

    fn authenticator(secrets: &RadiusSecrets) -> Authenticator {
        let mut out = Vec::new();
        let mut state = RadiusState::new(secrets.clone());
        message(&hex(SIGNED), &seen(), &mut state, &mut out).expect("parses");
        let Some(activity::Body::Radius(body)) = &out[0].body else {
            panic!("not RADIUS");
        };
        assert_eq!(body.framed_ip, "10.0.0.3");
        assert_eq!(
            out[0].account.as_ref().map(|a| a.name.as_str()),
            Some("xxxxxxxxx")
        );
        Authenticator::try_from(body.authenticator).expect("known value")
    }

    #[test]
    fn accounting_authenticator_is_verified_with_the_nas_secret() {
        let nas: IpAddr = "10.0.0.1".parse().expect("address");
        assert_eq!(
            authenticator(&RadiusSecrets::new("", [(nas, "testing123")])),
            Authenticator::Verified
        );
        assert_eq!(
            authenticator(&RadiusSecrets::new("wrong", [])),
            Authenticator::Invalid
        );
        assert_eq!(
            authenticator(&RadiusSecrets::default()),
            Authenticator::Unchecked
        );
    }

    // tcpdump/tests/RADIUS-RFC4675.pcap frames 1 and 2 (127.0.0.1:53334 <-> 127.0.0.1:1812):
    // an Access-Request for bob-tagged and its Access-Accept; the secret is "testing123".
    const ACCESS_REQUEST: &str = "01460050f44757bc498c3393763a27d0b2393702010c626f622d7461676765640212a30e22b0369e89f89eb6e0612c2c3c2304067f0000010506000000015012ffb19e8ea9620aec372d7fa3b2c76287";
    const ACCESS_ACCEPT: &str = "02460035766a0314eaf4b95f1ec271ae19cb3bdc38063100007b3906000000013a0b31766c616e6e616d653b0a6162636461626364";

    fn exchange(state: &mut RadiusState) -> Authenticator {
        let nas = "127.0.0.1:53334".parse().expect("address");
        let server = "127.0.0.1:1812".parse().expect("address");
        let request = Seen {
            time_ns: 1,
            src: nas,
            dst: server,
            tcp: false,
        };
        let response = Seen {
            time_ns: 2,
            src: server,
            dst: nas,
            tcp: false,
        };
        let mut out = Vec::new();
        message(&hex(ACCESS_REQUEST), &request, state, &mut out).expect("parses");
        message(&hex(ACCESS_ACCEPT), &response, state, &mut out).expect("parses");
        let Some(activity::Body::Radius(body)) = &out[1].body else {
            panic!("not RADIUS");
        };
        Authenticator::try_from(body.authenticator).expect("known value")
    }

    #[test]
    fn responses_are_checked_against_their_request() {
        let mut state = RadiusState::new(RadiusSecrets::new("testing123", []));
        assert_eq!(exchange(&mut state), Authenticator::Verified);
        assert!(state.pending.is_empty());
        let mut state = RadiusState::new(RadiusSecrets::new("wrong", []));
        assert_eq!(exchange(&mut state), Authenticator::Invalid);
        let mut state = RadiusState::default();
        assert_eq!(exchange(&mut state), Authenticator::Unchecked);
        assert!(state.pending.is_empty());
    }

    #[test]
    fn pending_requests_are_bounded() {
        let mut state = RadiusState::new(RadiusSecrets::new("testing123", []));
        let mut out = Vec::new();
        let request = hex(ACCESS_REQUEST);
        for port in 0..u16::try_from(MAX_PENDING_REQUESTS * 2).expect("fits") {
            let seen = Seen {
                time_ns: 1,
                src: std::net::SocketAddr::new([127, 0, 0, 1].into(), port),
                dst: "127.0.0.1:1812".parse().expect("address"),
                tcp: false,
            };
            message(&request, &seen, &mut state, &mut out).expect("parses");
        }
        assert_eq!(state.pending.len(), MAX_PENDING_REQUESTS);
        // The requests that found no room are counted: their answers cannot be checked.
        assert_eq!(
            state.requests_not_kept(),
            u64::try_from(MAX_PENDING_REQUESTS).expect("fits")
        );
        // Once they are old enough, a new request makes room.
        let late = Seen {
            time_ns: 1 + REQUEST_WAIT_NS + 1,
            src: "127.0.0.2:1".parse().expect("address"),
            dst: "127.0.0.1:1812".parse().expect("address"),
            tcp: false,
        };
        message(&request, &late, &mut state, &mut out).expect("parses");
        assert_eq!(state.pending.len(), 1);
    }
}
