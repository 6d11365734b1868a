//! Kerberos messages (RFC 4120) to activities: over UDP, over TCP with record marking, and
//! inside GSS-API tokens of other protocols.

use dcwatch_parsers::{
    framing::{Framing, Start},
    kerberos::{self, Anomalies, Body, ErrorCode, KrbMessage, MessageType, Principal, TicketInfo},
};
use dcwatch_proto::v1::{
    Account, Activity, Carrier, KerberosActivity, activity, kerberos_activity::Type,
    outcome::Status,
};

use super::stream::{Malformed, Sink, StreamProtocol};
use crate::{
    activity::{Seen, flag_names, outcome, timestamp},
    flow::Direction,
};

/// Kerberos over TCP (RFC 4120 7.2.2): each message behind a 4-byte length.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct KerberosStream;

/// The record mark in front of each message over TCP.
const RECORD_MARK_LEN: usize = 4;

impl StreamProtocol for KerberosStream {
    fn frame(&self, _direction: Direction, bytes: &[u8]) -> Framing {
        kerberos::frame(bytes)
    }

    fn is_pdu_start(&self, _direction: Direction, bytes: &[u8]) -> Start {
        kerberos::is_pdu_start(bytes)
    }

    fn pdu(
        &mut self,
        _direction: Direction,
        pdu: &[u8],
        _truncated: bool,
        seen: &Seen,
        sink: &mut Sink<'_>,
    ) -> Result<(), Malformed> {
        message(
            pdu.get(RECORD_MARK_LEN..).unwrap_or_default(),
            seen,
            sink.out,
        )
    }
}

/// One message: a UDP datagram, or a TCP record without its mark.
pub(super) fn message(bytes: &[u8], seen: &Seen, out: &mut Vec<Activity>) -> Result<(), Malformed> {
    let message = kerberos::parse(bytes).map_err(|_| Malformed)?;
    out.extend(activity(&message, seen, Carrier::None));
    Ok(())
}

/// The activity of a message, when it is one the sensor reports (not KRB-SAFE, -PRIV, -CRED).
pub(super) fn activity(message: &KrbMessage, seen: &Seen, carrier: Carrier) -> Option<Activity> {
    let mut body = KerberosActivity {
        tcp: seen.tcp,
        anomalies: anomaly_names(&message.anomalies),
        ..KerberosActivity::default()
    };
    let mut account = None;
    let mut result = None;
    match &message.body {
        Body::KdcReq(request) => {
            body.r#type = if message.msg_type == MessageType::AS_REQ {
                Type::AsReq
            } else {
                Type::TgsReq
            }
            .into();
            body.client_realm.clone_from(&request.realm);
            body.client = principal(request.cname.as_ref());
            body.service_realm.clone_from(&request.realm);
            body.service = principal(request.sname.as_ref());
            body.kdc_options = request.kdc_options.0;
            body.etypes = request.etypes.iter().map(|etype| etype.0).collect();
            body.pa_data_types = request.padata_types.iter().map(|pa| pa.0).collect();
            body.encrypted_timestamp = request.enc_timestamp;
            body.timestamp_etype = request.enc_timestamp_etype.map_or(0, |etype| etype.0);
            if let Some(user) = &request.s4u_user {
                body.s4u_user = principal(user.name.as_ref());
                body.s4u_realm.clone_from(&user.realm);
            }
            body.s4u2proxy = request.is_s4u2proxy();
            body.key_list_request = request.key_list_request;
            body.pac_request = request.pac_request;
            body.fast_armor = request.fast_armor;
            body.addresses.clone_from(&request.addresses);
            body.till = request.till.and_then(unix_seconds);
            if let Some(ap_req) = &request.ap_req {
                ticket(&mut body, &ap_req.ticket);
                body.ap_options = ap_req.ap_options.0;
            }
            account = request
                .cname
                .as_ref()
                .map(|cname| named(&request.realm, cname));
        }
        Body::KdcRep(reply) => {
            body.r#type = if message.msg_type == MessageType::AS_REP {
                Type::AsRep
            } else {
                Type::TgsRep
            }
            .into();
            body.client_realm.clone_from(&reply.crealm);
            body.client = reply.cname.to_string();
            ticket(&mut body, &reply.ticket);
            body.reply_etype = reply.enc_part_etype.0;
            body.pa_data_types = reply.padata_types.iter().map(|pa| pa.0).collect();
            account = Some(named(&reply.crealm, &reply.cname));
            result = Some(outcome(true, 0, None));
        }
        Body::ApReq(ap_req) => {
            body.r#type = Type::ApReq.into();
            ticket(&mut body, &ap_req.ticket);
            body.ap_options = ap_req.ap_options.0;
            body.reply_etype = ap_req.authenticator_etype.0;
        }
        Body::ApRep(ap_rep) => {
            body.r#type = Type::ApRep.into();
            body.reply_etype = ap_rep.enc_part_etype.0;
            result = Some(outcome(true, 0, None));
        }
        Body::Error(error) => {
            body.r#type = Type::KrbError.into();
            body.error_code = error.error_code.0;
            body.error_name = error.error_code.name().unwrap_or_default().to_owned();
            body.client_realm = error.crealm.clone().unwrap_or_default();
            body.client = principal(error.cname.as_ref());
            body.service_realm.clone_from(&error.realm);
            body.service = error.sname.to_string();
            body.pa_data_types = error.e_data_padata_types.iter().map(|pa| pa.0).collect();
            body.offered_etypes = error.offered_etypes.iter().map(|etype| etype.0).collect();
            body.server_time = error.stime.and_then(unix_seconds).map(|mut time| {
                time.nanos = error.susec.map_or(0, |microseconds| {
                    i32::try_from(microseconds * 1000).unwrap_or_default()
                });
                time
            });
            account = error
                .cname
                .as_ref()
                .map(|cname| named(error.crealm.as_deref().unwrap_or(&error.realm), cname));
            let mut error_outcome = outcome(
                false,
                u32::try_from(error.error_code.0).unwrap_or_default(),
                error.error_code.name(),
            );
            // The KDC asking for pre-authentication is a step of every password logon, not a
            // failure of one.
            if error.error_code == ErrorCode::KDC_ERR_PREAUTH_REQUIRED {
                error_outcome.status = Status::Unspecified.into();
            }
            result = Some(error_outcome);
        }
    }
    let mut activity = seen.activity(activity::Body::Kerberos(body));
    activity.account = account;
    activity.outcome = result;
    activity.carrier = carrier.into();
    Some(activity)
}

fn ticket(body: &mut KerberosActivity, ticket: &TicketInfo) {
    if body.service.is_empty() {
        body.service = ticket.sname.to_string();
        body.service_realm.clone_from(&ticket.realm);
    }
    body.ticket_etype = ticket.etype.0;
    body.ticket_kvno = ticket.kvno.unwrap_or_default();
    body.ticket_hash = ticket.hash.to_vec();
    body.ticket_cipher_len = u32::try_from(ticket.cipher_len).unwrap_or(u32::MAX);
}

fn principal(principal: Option<&Principal>) -> String {
    principal.map(ToString::to_string).unwrap_or_default()
}

fn named(realm: &str, principal: &Principal) -> Account {
    Account {
        domain: realm.to_owned(),
        name: principal.to_string(),
        sid: String::new(),
        tags: Vec::new(),
    }
}

fn unix_seconds(seconds: i64) -> Option<pbjson_types::Timestamp> {
    const NS_PER_SECOND: u64 = 1_000_000_000;
    let seconds = u64::try_from(seconds).ok()?;
    Some(timestamp(seconds.checked_mul(NS_PER_SECOND)?))
}

fn anomaly_names(anomalies: &Anomalies) -> Vec<String> {
    flag_names([
        (anomalies.non_der, "non_der"),
        (anomalies.trailing_data, "trailing_data"),
        (anomalies.truncated_lists, "truncated_lists"),
        (anomalies.truncated_strings, "truncated_strings"),
        (anomalies.msg_type_mismatch, "msg_type_mismatch"),
        (anomalies.bad_pvno, "bad_pvno"),
        (anomalies.bad_time, "bad_time"),
        (anomalies.bad_pac_request, "bad_pac_request"),
        (anomalies.bad_tgs_ap_req, "bad_tgs_ap_req"),
        (anomalies.bad_s4u_user, "bad_s4u_user"),
    ])
}

#[cfg(test)]
mod tests {
    use dcwatch_proto::v1::activity::Body as ActivityBody;

    use super::*;
    use dcwatch_tests::fixture::hex;

    macro_rules! fixture {
        ($name:literal) => {
            hex(include_str!(concat!(
                "../../../parsers/tests/fixtures/kerberos/",
                $name,
                ".hex"
            )))
        };
    }

    fn body(bytes: &[u8]) -> KerberosActivity {
        let seen = Seen {
            time_ns: 1,
            src: "10.0.0.5:50000".parse().expect("address"),
            dst: "10.0.0.1:88".parse().expect("address"),
            tcp: false,
        };
        let mut out = Vec::new();
        message(bytes, &seen, &mut out).expect("a Kerberos message");
        match out.pop().and_then(|activity| activity.body) {
            Some(ActivityBody::Kerberos(body)) => body,
            other => panic!("not a Kerberos activity: {other:?}"),
        }
    }

    // suricata-verify krb5-krb5_msg_type frame 16: tshark's kerberos.etype 18 in
    // PA-ENC-TIMESTAMP.
    #[test]
    fn as_req_timestamp_etype() {
        let as_req = body(&fixture!("msgtype_f16_as_req_enc_ts"));
        assert!(as_req.encrypted_timestamp);
        assert_eq!(as_req.timestamp_etype, 18);
        let without = body(&fixture!("msgtype_f8_as_req"));
        assert_eq!(
            (without.encrypted_timestamp, without.timestamp_etype),
            (false, 0)
        );
    }

    // Frame 26's TGS-REQ presents the TGT frame 18's AS-REP issued: the TGS-REQ's ticket fields
    // describe it (tshark: etype 18, kvno 2, its cipher 964 bytes in both frames).
    #[test]
    fn tgs_req_ticket_fields_are_the_presented_tgts() {
        let as_rep = body(&fixture!("msgtype_f18_as_rep"));
        let tgs_req = body(&fixture!("msgtype_f26_tgs_req"));
        assert_eq!(tgs_req.ticket_etype, 18);
        assert_eq!(tgs_req.ticket_kvno, 2);
        assert_eq!(tgs_req.ticket_cipher_len, 964);
        assert_eq!(tgs_req.ticket_hash, as_rep.ticket_hash);
        assert_eq!(tgs_req.ticket_cipher_len, as_rep.ticket_cipher_len);
        assert_eq!(tgs_req.ticket_etype, as_rep.ticket_etype);
        // The service is the one asked for, not the TGT's krbtgt.
        assert_eq!(tgs_req.service, "ldap/dc01");
    }

    #[test]
    fn s4u_and_key_list_requests() {
        let s4u2self = body(&fixture!("crafted_tgs_req_s4u2self"));
        assert_eq!(
            (s4u2self.s4u_user.as_str(), s4u2self.s4u_realm.as_str()),
            ("alice@vladg.net", "VLADG.NET")
        );
        assert!(!s4u2self.s4u2proxy && !s4u2self.key_list_request);
        let proxy = body(&fixture!("crafted_tgs_req_s4u2proxy"));
        assert!(proxy.s4u2proxy);
        assert!(proxy.s4u_user.is_empty());
        let key_list = body(&fixture!("crafted_tgs_req_key_list"));
        assert!(key_list.key_list_request);
        assert_eq!(key_list.pa_data_types, [1, 161]);
    }

    // Frame 9: PA-ETYPE-INFO2 with tshark's etypes 18,23,-133,-128; tshark's stime Jun 22 2021
    // 09:27:40 UTC and susec 649488.
    #[test]
    fn krb_error_offered_etypes_and_server_time() {
        let error = body(&fixture!("msgtype_f9_error_preauth_required"));
        assert_eq!(error.offered_etypes, [18, 23, -133, -128]);
        let time = error.server_time.expect("stime");
        assert_eq!((time.seconds, time.nanos), (1_624_354_060, 649_488_000));
        let old = body(&fixture!("crafted_error_etype_info"));
        assert_eq!(old.offered_etypes, [23, 1]);
    }
}
