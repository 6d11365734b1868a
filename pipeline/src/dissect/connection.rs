//! What a connection adds to the activities of its messages, which no single message knows:
//! the connection's ids (`flow_id`, `community_id`), and an NTLM AUTHENTICATE set beside the
//! NEGOTIATE that opened its exchange (MS-NLMP 3.1.5.1: the flags a client asks for first and
//! the flags it settles on; a relay that strips signing shows as dropped flags).
//!
//! The activities pass through here in the order the connection produced them, whichever
//! carrier brought the NTLM messages (SMB session setup, LDAP bind, HTTP header, DCE-RPC
//! verifier, or a DCE-RPC bind inside an SMB pipe).

use std::{fmt::Write as _, net::SocketAddr};

use dcwatch_parsers::ntlm::NegotiateFlags;
use dcwatch_proto::v1::{Activity, activity::Body, ntlm_activity::Type as NtlmType};
use sha1::{Digest, Sha1};

use crate::community_id::{self, community_id, ordered};

/// Carriers an NTLM exchange can ride on one connection (the `Carrier` enum's values): one
/// NEGOTIATE remembered per carrier, so an SMB session setup and a DCE-RPC bind in one of its
/// pipes do not mix. A fixed array: the table cannot grow.
const CARRIER_SLOTS: usize = 8;

/// The security flags whose loss between NEGOTIATE and AUTHENTICATE is reported, by name.
const SECURITY_FLAGS: [(NegotiateFlags, &str); 4] = [
    (NegotiateFlags::SIGN, "SIGN"),
    (NegotiateFlags::SEAL, "SEAL"),
    (NegotiateFlags::KEY_EXCH, "KEY_EXCH"),
    (NegotiateFlags::ALWAYS_SIGN, "ALWAYS_SIGN"),
];

/// One connection's ids, and the NEGOTIATE flags waiting for their AUTHENTICATE.
#[derive(Clone, Debug, Default)]
pub(super) struct ConnectionNotes {
    flow_id: String,
    community_id: String,
    negotiate: [Option<u32>; CARRIER_SLOTS],
}

impl ConnectionNotes {
    /// A TCP connection first seen at `start_ns`.
    pub(super) fn tcp(client: SocketAddr, server: SocketAddr, start_ns: u64) -> Self {
        Self {
            flow_id: flow_id(client, server, community_id::TCP, start_ns),
            community_id: community_id(client, server, community_id::TCP),
            negotiate: [None; CARRIER_SLOTS],
        }
    }

    /// Stamps the activities the connection just produced, in order.
    pub(super) fn annotate(&mut self, activities: &mut [Activity]) {
        for activity in activities {
            if activity.flow_id.is_empty() {
                activity.flow_id.clone_from(&self.flow_id);
                activity.community_id.clone_from(&self.community_id);
            }
            self.pair_ntlm(activity);
        }
    }

    fn pair_ntlm(&mut self, activity: &mut Activity) {
        let Some(Body::Ntlm(ntlm)) = &mut activity.body else {
            return;
        };
        let Some(slot) = usize::try_from(activity.carrier)
            .ok()
            .and_then(|carrier| self.negotiate.get_mut(carrier))
        else {
            return;
        };
        match NtlmType::try_from(ntlm.r#type) {
            Ok(NtlmType::Negotiate) => *slot = Some(ntlm.negotiate_flags),
            Ok(NtlmType::Authenticate) => {
                if let Some(negotiate) = slot.take() {
                    ntlm.negotiate_message_flags = Some(negotiate);
                    ntlm.dropped_flags = dropped_flags(negotiate, ntlm.negotiate_flags);
                }
            }
            _ => {}
        }
    }
}

/// The security flags set in the NEGOTIATE and clear in the AUTHENTICATE, by name.
pub(super) fn dropped_flags(negotiate: u32, authenticate: u32) -> Vec<String> {
    SECURITY_FLAGS
        .iter()
        .filter(|(flag, _)| {
            NegotiateFlags(negotiate).contains(*flag)
                && !NegotiateFlags(authenticate).contains(*flag)
        })
        .map(|(_, name)| (*name).to_owned())
        .collect()
}

/// Stamps an activity of a UDP exchange from its own endpoints: a datagram and its answer share
/// the 5-tuple, which is all a UDP exchange has.
pub(super) fn annotate_datagram(activity: &mut Activity) {
    if !activity.flow_id.is_empty() {
        return;
    }
    let (Some(src), Some(dst)) = (
        activity.src.as_ref().and_then(socket_address),
        activity.dst.as_ref().and_then(socket_address),
    ) else {
        return;
    };
    activity.flow_id = datagram_flow_id(src, dst);
    activity.community_id = community_id(src, dst, community_id::UDP);
}

/// The flow id of a UDP exchange between `a` and `b`: its endpoints' alone, so the backend's
/// store recomputes it rather than keep it.
pub fn datagram_flow_id(a: SocketAddr, b: SocketAddr) -> String {
    flow_id(a, b, community_id::UDP, 0)
}

fn socket_address(endpoint: &dcwatch_proto::v1::Endpoint) -> Option<SocketAddr> {
    let port = u16::try_from(endpoint.port).ok()?;
    let ip = match endpoint.ip.len() {
        4 => std::net::IpAddr::from(<[u8; 4]>::try_from(endpoint.ip.as_slice()).ok()?),
        16 => std::net::IpAddr::from(<[u8; 16]>::try_from(endpoint.ip.as_slice()).ok()?),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Text written into a SHA-1 as it is formatted.
struct Hashing<'h>(&'h mut Sha1);

impl std::fmt::Write for Hashing<'_> {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        self.0.update(text.as_bytes());
        Ok(())
    }
}

/// 16 hex digits of SHA-1 over the ordered endpoints, the protocol and the flow's first-seen
/// time: the same for every activity of a connection, different for the next connection on the
/// same ports.
fn flow_id(a: SocketAddr, b: SocketAddr, protocol: u8, start_ns: u64) -> String {
    let (first, second) = ordered(a, b);
    let mut hasher = Sha1::new();
    for endpoint in [first, second] {
        // Written into the hash as it is formatted: no string per endpoint.
        let _ = write!(Hashing(&mut hasher), "{endpoint}");
        hasher.update([0]);
    }
    hasher.update([protocol]);
    hasher.update(start_ns.to_be_bytes());
    hex::encode(&hasher.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use dcwatch_proto::v1::{Carrier, NtlmActivity};

    use super::*;
    use crate::activity::Seen;

    fn at(text: &str) -> SocketAddr {
        text.parse().expect("an address")
    }

    fn ntlm(kind: NtlmType, flags: u32, carrier: Carrier) -> Activity {
        let seen = Seen {
            time_ns: 1,
            src: at("10.0.0.5:50000"),
            dst: at("10.0.0.1:445"),
            tcp: true,
        };
        let mut activity = seen.activity(Body::Ntlm(NtlmActivity {
            r#type: kind.into(),
            negotiate_flags: flags,
            ..NtlmActivity::default()
        }));
        activity.carrier = carrier.into();
        activity
    }

    fn body(activity: &Activity) -> &NtlmActivity {
        match &activity.body {
            Some(Body::Ntlm(body)) => body,
            _ => panic!("not NTLM"),
        }
    }

    // suricata-verify smb2-ntlmssp-negotiateflags, tshark's ntlmssp.negotiateflags: frame 240's
    // NEGOTIATE 0xe2088297 (SIGN, ALWAYS_SIGN and KEY_EXCH set, SEAL clear) and CHALLENGE
    // 0xe28a8215; frame 242's AUTHENTICATE 0xe2888a15 keeps them. The same AUTHENTICATE with
    // SIGN, ALWAYS_SIGN and KEY_EXCH cleared, as a relay strips them, is 0xa2880a05.
    #[test]
    fn an_authenticate_is_set_beside_its_negotiate() {
        let mut notes = ConnectionNotes::tcp(at("10.0.0.5:50000"), at("10.0.0.1:445"), 7);
        let mut activities = vec![
            ntlm(NtlmType::Negotiate, 0xe208_8297, Carrier::Smb),
            ntlm(NtlmType::Challenge, 0xe28a_8215, Carrier::Smb),
            ntlm(NtlmType::Authenticate, 0xa288_0a05, Carrier::Smb),
            ntlm(NtlmType::Negotiate, 0xe208_8297, Carrier::Smb),
            ntlm(NtlmType::Authenticate, 0xe288_8a15, Carrier::Smb),
        ];
        notes.annotate(&mut activities);
        let authenticate = body(&activities[2]);
        assert_eq!(authenticate.negotiate_message_flags, Some(0xe208_8297));
        assert_eq!(
            authenticate.dropped_flags,
            ["SIGN", "KEY_EXCH", "ALWAYS_SIGN"]
        );
        assert_eq!(body(&activities[0]).negotiate_message_flags, None);
        let kept = body(&activities[4]);
        assert_eq!(kept.negotiate_message_flags, Some(0xe208_8297));
        assert!(kept.dropped_flags.is_empty());
        // Every activity of the connection has the same ids.
        assert!(
            activities
                .iter()
                .all(|a| a.flow_id == activities[0].flow_id)
        );
        assert_eq!(activities[0].flow_id.len(), 16);
        assert_eq!(
            activities[0].community_id,
            community_id(at("10.0.0.5:50000"), at("10.0.0.1:445"), community_id::TCP)
        );
    }

    #[test]
    fn carriers_keep_their_own_negotiate_and_each_is_used_once() {
        let mut notes = ConnectionNotes::default();
        let mut activities = vec![
            ntlm(NtlmType::Negotiate, 0x0000_0030, Carrier::Smb),
            ntlm(NtlmType::Negotiate, 0x0000_8000, Carrier::Dcerpc),
            ntlm(NtlmType::Authenticate, 0x0000_0030, Carrier::Smb),
            ntlm(NtlmType::Authenticate, 0, Carrier::Dcerpc),
            ntlm(NtlmType::Authenticate, 0, Carrier::Smb),
        ];
        notes.annotate(&mut activities);
        assert_eq!(body(&activities[2]).negotiate_message_flags, Some(0x30));
        assert!(body(&activities[2]).dropped_flags.is_empty());
        assert_eq!(body(&activities[3]).dropped_flags, ["ALWAYS_SIGN"]);
        // A second AUTHENTICATE without a NEGOTIATE of its own gets none.
        assert_eq!(body(&activities[4]).negotiate_message_flags, None);
    }

    #[test]
    fn flow_ids_differ_by_connection_not_by_direction() {
        let (client, server) = (at("10.0.0.5:50000"), at("10.0.0.1:389"));
        let first = flow_id(client, server, community_id::TCP, 1);
        assert_eq!(first, flow_id(server, client, community_id::TCP, 1));
        assert_ne!(first, flow_id(client, server, community_id::TCP, 2));
        assert_ne!(first, flow_id(client, server, community_id::UDP, 1));
        let mut datagram = ntlm(NtlmType::Negotiate, 0, Carrier::None);
        annotate_datagram(&mut datagram);
        assert_eq!(
            datagram.community_id,
            community_id(at("10.0.0.5:50000"), at("10.0.0.1:445"), community_id::UDP)
        );
        assert_eq!(
            datagram.flow_id,
            flow_id(client, at("10.0.0.1:445"), community_id::UDP, 0)
        );
    }
}
