//! NTLMSSP messages (MS-NLMP) to activities, for whichever protocol carried them.

use dcwatch_parsers::ntlm::{
    self, Anomalies, AvAnomalies, MicField, NtlmMessage, NtlmVersion, TargetInfo,
};
use dcwatch_proto::v1::{
    Account, Activity, Carrier, NtlmActivity, activity,
    ntlm_activity::{Type, Version},
};

use crate::activity::{Seen, flag_names};

/// Parses one NTLMSSP message; `None` when it is not one.
pub(super) fn activity(bytes: &[u8], seen: &Seen, carrier: Carrier) -> Option<Activity> {
    let message = ntlm::parse(bytes).ok()?;
    let mut body = NtlmActivity::default();
    let mut account = None;
    match &message {
        NtlmMessage::Negotiate(negotiate) => {
            body.r#type = Type::Negotiate.into();
            body.negotiate_flags = negotiate.flags.0;
            body.version_present = negotiate.version.is_some();
            body.domain = negotiate.domain.clone().unwrap_or_default();
            body.workstation = negotiate.workstation.clone().unwrap_or_default();
            body.anomalies = anomaly_names(&negotiate.anomalies, None);
        }
        NtlmMessage::Challenge(challenge) => {
            body.r#type = Type::Challenge.into();
            body.negotiate_flags = challenge.flags.0;
            body.version_present = challenge.version.is_some();
            if let Some(info) = &challenge.target_info {
                target_info(&mut body, info);
            }
            body.anomalies = anomaly_names(
                &challenge.anomalies,
                challenge.target_info.as_ref().map(|info| &info.anomalies),
            );
        }
        NtlmMessage::Authenticate(authenticate) => {
            body.r#type = Type::Authenticate.into();
            body.negotiate_flags = authenticate.flags.0;
            body.user.clone_from(&authenticate.user);
            body.domain.clone_from(&authenticate.domain);
            body.workstation.clone_from(&authenticate.workstation);
            body.mic_present = authenticate.mic_present;
            body.mic_zero = authenticate.mic_field == MicField::Zero;
            body.version_present = authenticate.version.is_some();
            if let Some(flags) = authenticate
                .ntlmv2
                .as_ref()
                .and_then(|v2| v2.target_info.flags)
            {
                body.av_flags_present = true;
                body.av_flags = flags.0;
            }
            body.version = match authenticate.ntlm_version {
                NtlmVersion::V1 => Version::NtlmV1,
                NtlmVersion::V2 => Version::NtlmV2,
                NtlmVersion::Anonymous => Version::Anonymous,
                NtlmVersion::LmOnly | NtlmVersion::Unknown => Version::Unspecified,
            }
            .into();
            if let Some(v2) = &authenticate.ntlmv2 {
                target_info(&mut body, &v2.target_info);
            }
            body.anomalies = anomaly_names(
                &authenticate.anomalies,
                authenticate
                    .ntlmv2
                    .as_ref()
                    .map(|v2| &v2.target_info.anomalies),
            );
            if authenticate.ntlm_version == NtlmVersion::LmOnly {
                body.anomalies.push("lm_only".to_owned());
            }
            if !authenticate.user.is_empty() {
                account = Some(Account {
                    domain: authenticate.domain.clone(),
                    name: authenticate.user.clone(),
                    sid: String::new(),
                    tags: Vec::new(),
                });
            }
        }
    }
    let mut activity = seen.activity(activity::Body::Ntlm(body));
    activity.account = account;
    activity.carrier = carrier.into();
    Some(activity)
}

fn target_info(body: &mut NtlmActivity, info: &TargetInfo<'_>) {
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    body.server_nb_computer = text(&info.nb_computer_name);
    body.server_nb_domain = text(&info.nb_domain_name);
    body.server_dns_computer = text(&info.dns_computer_name);
    body.server_dns_domain = text(&info.dns_domain_name);
    body.server_dns_tree = text(&info.dns_tree_name);
    body.target_spn = text(&info.target_name);
}

fn anomaly_names(anomalies: &Anomalies, pairs: Option<&AvAnomalies>) -> Vec<String> {
    let mut names = flag_names([
        (anomalies.payload_in_header, "payload_in_header"),
        (anomalies.overlapping_fields, "overlapping_fields"),
        (anomalies.max_len_below_len, "max_len_below_len"),
        (anomalies.name_truncated, "name_truncated"),
        (anomalies.odd_unicode_length, "odd_unicode_length"),
        (anomalies.short_header, "short_header"),
        (
            anomalies.target_info_out_of_bounds,
            "target_info_out_of_bounds",
        ),
        (anomalies.bad_ntlmv2_response, "bad_ntlmv2_response"),
    ]);
    if let Some(pairs) = pairs {
        names.extend(flag_names([
            (pairs.empty, "av_pairs_empty"),
            (pairs.unterminated, "av_pairs_unterminated"),
            (pairs.pair_out_of_bounds, "av_pair_out_of_bounds"),
            (pairs.too_many_pairs, "too_many_av_pairs"),
            (pairs.duplicate_id, "duplicate_av_id"),
            (pairs.bad_value_length, "bad_av_value_length"),
            (pairs.name_truncated, "av_name_truncated"),
        ]));
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dissect::connection::ConnectionNotes;
    use dcwatch_tests::fixture::hex;

    macro_rules! fixture {
        ($name:literal) => {
            hex(include_str!(concat!(
                "../../../parsers/tests/fixtures/ntlm/",
                $name,
                ".hex"
            )))
        };
    }

    fn seen() -> Seen {
        Seen {
            time_ns: 1,
            src: "10.0.0.5:50000".parse().expect("address"),
            dst: "10.0.0.1:135".parse().expect("address"),
            tcp: true,
        }
    }

    fn body(activity: &Activity) -> &NtlmActivity {
        match &activity.body {
            Some(activity::Body::Ntlm(body)) => body,
            _ => panic!("not NTLM"),
        }
    }

    // zeek dce-rpc/dce_rpc_ntlm.pcapng frame 6, tshark -V: flags 0xe2988215, Version 10.0.18362,
    // MIC 8073b2c3..., MsvAvFlags (ntlmssp.ntlmv2_response.flags) 0x00000002.
    #[test]
    fn av_flags_mic_and_version() {
        let mut bytes = fixture!("dcerpc_mic_authenticate");
        let intact = activity(&bytes, &seen(), Carrier::Dcerpc).expect("an AUTHENTICATE");
        let ntlm = body(&intact);
        assert!(ntlm.av_flags_present && ntlm.mic_present && ntlm.version_present);
        assert_eq!(ntlm.av_flags, 2);
        assert!(!ntlm.mic_zero);
        // The MIC zeroed (bytes 72 to 88, MS-NLMP 2.2.1.3), as drop-the-MIC tools leave it.
        bytes[72..88].fill(0);
        let zeroed = activity(&bytes, &seen(), Carrier::Dcerpc).expect("an AUTHENTICATE");
        assert!(body(&zeroed).mic_zero && body(&zeroed).mic_present);
    }

    // zeek smb/smb3.pcap frames 3 and 5 (the ntlm parser's smb3 fixtures), tshark: NEGOTIATE
    // flags 0xe0080235 (no NEGOTIATE_VERSION, so no Version), AUTHENTICATE 0xe0880235; no
    // security flag dropped.
    #[test]
    fn negotiate_and_authenticate_of_one_connection() {
        let mut activities = vec![
            activity(&fixture!("smb3_negotiate"), &seen(), Carrier::Smb).expect("NEGOTIATE"),
            activity(&fixture!("smb3_authenticate"), &seen(), Carrier::Smb).expect("AUTHENTICATE"),
        ];
        assert!(!body(&activities[0]).version_present);
        ConnectionNotes::default().annotate(&mut activities);
        let authenticate = body(&activities[1]);
        assert_eq!(authenticate.negotiate_message_flags, Some(0xe008_0235));
        assert_eq!(authenticate.negotiate_flags, 0xe088_0235);
        assert!(authenticate.dropped_flags.is_empty());
    }
}
