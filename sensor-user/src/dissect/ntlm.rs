//! NTLMSSP messages (MS-NLMP) to activities, for whichever protocol carried them.

use dcwatch_parsers::ntlm::{self, Anomalies, AvAnomalies, NtlmMessage, NtlmVersion, TargetInfo};
use dcwatch_proto::v1::{
    Account, Activity, Carrier, NtlmActivity, activity,
    ntlm_activity::{Type, Version},
};

use crate::activity::{Seen, flag_names};

/// Parses one NTLMSSP message; `None` when it is not one.
pub fn activity(bytes: &[u8], seen: &Seen, carrier: Carrier) -> Option<Activity> {
    let message = ntlm::parse(bytes).ok()?;
    let mut body = NtlmActivity::default();
    let mut account = None;
    match &message {
        NtlmMessage::Negotiate(negotiate) => {
            body.r#type = Type::Negotiate.into();
            body.negotiate_flags = negotiate.flags.0;
            body.domain = negotiate.domain.clone().unwrap_or_default();
            body.workstation = negotiate.workstation.clone().unwrap_or_default();
            body.anomalies = anomaly_names(&negotiate.anomalies, None);
        }
        NtlmMessage::Challenge(challenge) => {
            body.r#type = Type::Challenge.into();
            body.negotiate_flags = challenge.flags.0;
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
