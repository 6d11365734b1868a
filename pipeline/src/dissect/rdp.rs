//! RDP connection setup (MS-RDPBCGR 2.2.1.1 to 2.2.1.3) to activities: the client's Connection
//! Request (the `mstshash` cookie names the user), the server's Connection Confirm (the
//! security protocol chosen, or why none), and with standard RDP security the client's name
//! and build from the MCS Connect-Initial. Everything after is TLS, CredSSP or RC4: each
//! direction is given up as soon as nothing more in it can be read.

use dcwatch_parsers::{
    framing::{Framing, Start},
    rdp::{
        self, Anomalies, ConnectInitial, ConnectionConfirm, ConnectionRequest, Negotiation, Tpdu,
    },
};
use dcwatch_proto::v1::{Activity, RdpActivity, activity, rdp_activity::Type};

use super::{
    radius::account,
    stream::{Malformed, Sink, StreamProtocol},
};
use crate::{
    activity::{Seen, flag_names, outcome},
    flow::Direction,
};

/// One RDP connection: which directions still carry something readable.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct RdpSession {
    to_server_done: bool,
    to_client_done: bool,
}

impl StreamProtocol for RdpSession {
    fn frame(&self, _direction: Direction, bytes: &[u8]) -> Framing {
        rdp::frame(bytes)
    }

    fn is_pdu_start(&self, _direction: Direction, bytes: &[u8]) -> Start {
        rdp::is_pdu_start(bytes)
    }

    fn pdu(
        &mut self,
        direction: Direction,
        pdu: &[u8],
        _truncated: bool,
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) -> Result<(), Malformed> {
        let tpdu = rdp::parse(pdu).map_err(|_| Malformed)?;
        match (direction, tpdu) {
            (Direction::ToServer, Tpdu::ConnectionRequest(request)) => {
                sink.out.push(connection_request(&request, seen));
            }
            (Direction::ToClient, Tpdu::ConnectionConfirm(confirm)) => {
                sink.out.push(connection_confirm(&confirm, seen));
                // The server speaks next in TLS, or in MCS with nothing the sensor reports;
                // the client goes on in clear only with standard security.
                self.to_client_done = true;
                self.to_server_done |= !confirm.stays_clear();
            }
            (Direction::ToServer, Tpdu::ConnectInitial(initial)) => {
                sink.out.extend(client_info(&initial, seen));
                self.to_server_done = true;
            }
            _ => {}
        }
        Ok(())
    }

    fn is_done(&self, direction: Direction) -> bool {
        match direction {
            Direction::ToServer => self.to_server_done,
            Direction::ToClient => self.to_client_done,
        }
    }
}

fn connection_request(request: &ConnectionRequest<'_>, seen: &Seen) -> Activity {
    let cookie = request
        .cookie
        .map(|cookie| String::from_utf8_lossy(cookie).into_owned())
        .unwrap_or_default();
    let body = RdpActivity {
        r#type: Type::ConnectionRequest.into(),
        cookie: cookie.clone(),
        routing_token: request
            .routing_token
            .map(|token| String::from_utf8_lossy(token).into_owned())
            .unwrap_or_default(),
        requested_protocols: request
            .negotiation
            .map(|negotiation| negotiation.requested_protocols.names())
            .unwrap_or_default(),
        request_flags: request
            .negotiation
            .map_or(0, |negotiation| u32::from(negotiation.flags)),
        anomalies: anomaly_names(&request.anomalies),
        ..RdpActivity::default()
    };
    let mut activity = seen.activity(activity::Body::Rdp(body));
    // mstsc pads a short name with spaces ("JOHN-PC  "); the account is the name without them.
    let user = cookie.trim();
    if !user.is_empty() {
        activity.account = Some(account(user));
    }
    activity
}

fn connection_confirm(confirm: &ConnectionConfirm, seen: &Seen) -> Activity {
    let mut body = RdpActivity {
        r#type: Type::ConnectionConfirm.into(),
        anomalies: anomaly_names(&confirm.anomalies),
        ..RdpActivity::default()
    };
    let result = match confirm.negotiation {
        Some(Negotiation::Selected { protocol, .. }) => {
            body.selected_protocol = protocol.names().join(",");
            outcome(true, 0, None)
        }
        Some(Negotiation::Failure(code)) => {
            body.failure_code = code.0;
            body.failure_name = code.name().unwrap_or_default().to_owned();
            outcome(false, code.0, code.name())
        }
        None => outcome(true, 0, None),
    };
    let mut activity = seen.activity(activity::Body::Rdp(body));
    activity.outcome = Some(result);
    activity
}

fn client_info(initial: &ConnectInitial, seen: &Seen) -> Option<Activity> {
    let core = initial.core.as_ref()?;
    let body = RdpActivity {
        r#type: Type::ClientInfo.into(),
        client_name: core.client_name.clone(),
        client_build: core.client_build,
        client_version: core.version,
        keyboard_layout: core.keyboard_layout,
        anomalies: anomaly_names(&initial.anomalies),
        ..RdpActivity::default()
    };
    // The client name is evidence for the resolver, which alone sets source_computer.
    Some(seen.activity(activity::Body::Rdp(body)))
}

fn anomaly_names(anomalies: &Anomalies) -> Vec<String> {
    flag_names([
        (anomalies.trailing_bytes, "trailing_bytes"),
        (anomalies.unterminated_token, "unterminated_token"),
        (anomalies.bad_negotiation, "bad_negotiation"),
        (anomalies.short_core_data, "short_core_data"),
    ])
}

#[cfg(test)]
mod tests {
    use dcwatch_proto::v1::Account;

    use super::*;
    use crate::dissect::DissectCounters;
    use crate::dissect::endpoints::Announcements;
    use dcwatch_tests::fixture::hex;

    // zeek/testing/btest/Traces/rdp/rdp-to-ssl.pcap frames 4 and 6 (tshark -T fields
    // -e tcp.payload): a request from AWAKECODI for SSL|HYBRID, the server choosing HYBRID.
    const CR_TO_SSL: &str = "0300002f2ae00000000000436f6f6b69653a206d737473686173683d4157414b45434f44490d0a0100080003000000";
    const CC_HYBRID: &str = "030000130ed000001234000201080002000000";
    // zeek/testing/btest/Traces/rdp/rdp-proprietary-encryption.pcap frames 12, 13 and 14: a
    // request from FTBCO\A70 for standard security, the server agreeing, the Connect-Initial.
    const CR_STANDARD: &str = "0300002f2ae00000000000436f6f6b69653a206d737473686173683d465442434f5c4137300d0a0100080000000000";
    const CC_STANDARD: &str = "030000130ed000001234000200080000000000";
    const CONNECT_INITIAL: &[u8] =
        include_bytes!("../../../parsers/fuzz/seeds/rdp/rdp-proprietary-encryption-14.bin");

    fn feed(session: &mut RdpSession, direction: Direction, pdu: &[u8]) -> Vec<Activity> {
        let seen = Seen {
            time_ns: 1,
            src: "10.0.0.5:49206".parse().expect("address"),
            dst: "10.0.0.1:3389".parse().expect("address"),
            tcp: true,
        };
        let mut out = Vec::new();
        let mut counters = DissectCounters::default();
        let mut announced = Announcements::default();
        let mut sink = Sink {
            out: &mut out,
            counters: &mut counters,
            announced: &mut announced,
        };
        session
            .pdu(direction, pdu, false, &seen, &mut sink)
            .expect("parses");
        out
    }

    fn body(activity: &Activity) -> &RdpActivity {
        match &activity.body {
            Some(activity::Body::Rdp(body)) => body,
            other => panic!("not RDP: {other:?}"),
        }
    }

    #[test]
    fn credssp_ends_both_directions() {
        let mut session = RdpSession::default();
        let out = feed(&mut session, Direction::ToServer, &hex(CR_TO_SSL));
        assert_eq!(body(&out[0]).cookie, "AWAKECODI");
        assert_eq!(body(&out[0]).requested_protocols, ["SSL", "HYBRID"]);
        assert!(!session.is_done(Direction::ToServer));
        let out = feed(&mut session, Direction::ToClient, &hex(CC_HYBRID));
        assert_eq!(body(&out[0]).selected_protocol, "HYBRID");
        assert!(session.is_done(Direction::ToServer) && session.is_done(Direction::ToClient));
    }

    #[test]
    fn standard_security_waits_for_the_client_data() {
        let mut session = RdpSession::default();
        let out = feed(&mut session, Direction::ToServer, &hex(CR_STANDARD));
        assert_eq!(
            out[0].account,
            Some(Account {
                domain: "FTBCO".to_owned(),
                name: "A70".to_owned(),
                sid: String::new(),
                tags: Vec::new(),
            })
        );
        feed(&mut session, Direction::ToClient, &hex(CC_STANDARD));
        assert!(session.is_done(Direction::ToClient));
        assert!(!session.is_done(Direction::ToServer));
        let out = feed(&mut session, Direction::ToServer, CONNECT_INITIAL);
        assert_eq!(body(&out[0]).client_name, "FROG-POND");
        assert_eq!(body(&out[0]).client_build, 6000);
        assert!(session.is_done(Direction::ToServer));
    }
}
