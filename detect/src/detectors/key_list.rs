//! Kerberos key list attack (MDI XDR's "Possible Kerberos key list attack"): a TGS-REQ carrying
//! KERB-KEY-LIST-REQ (PA-DATA 161) asks the DC for an account's long-term keys (its NT hash),
//! which only a read-only DC may ask on behalf of the accounts it caches. impacket's
//! KeyListSecrets sends it with a forged RODC golden ticket (kvno = RODC number << 16), so the
//! request from anything but an RODC is the attack.
//!
//! DETECTIONS.md's second clause (an RODC-numbered TGT, kvno ≥ 0x10000, from elsewhere) is only
//! a detail here: branch-office clients legitimately bring an RODC's TGT to a writable DC, and
//! telling the RODC's own number from a forged one needs the RODCs' krbtgt numbers, which the
//! directory model does not carry yet.

use dcwatch_entity::{TagName, Uac};
use dcwatch_proto::v1::{activity::Body, alert::Confidence, alert_entity::Role, kerberos_activity};

use super::{Context, Detector, Kinds};
use crate::{
    catalogue::KEY_LIST,
    finding::{Finding, destination, source_key, source_text},
    observed::Observed,
};

/// PA-DATA type KERB-KEY-LIST-REQ (MS-KILE 2.2.11).
const PA_KEY_LIST_REQ: i32 = 161;
/// A TGT kvno at or above this names an RODC's krbtgt (its number in the high 16 bits).
const RODC_KVNO: u32 = 0x1_0000;

#[derive(Debug, Default)]
pub(super) struct KeyList;

impl Detector for KeyList {
    fn kinds(&self) -> Kinds {
        Kinds::kerberos(kerberos_activity::Type::TgsReq)
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        let Some(Body::Kerberos(kerberos)) = seen.body() else {
            return;
        };
        if kerberos.r#type != kerberos_activity::Type::TgsReq as i32
            || !(kerberos.key_list_request || kerberos.pa_data_types.contains(&PA_KEY_LIST_REQ))
        {
            return;
        }
        let name = seen
            .activity
            .source_computer
            .as_ref()
            .map_or("", |computer| computer.name.as_str());
        let directory = context.knowledge.directory();
        let object = (!name.is_empty())
            .then(|| {
                directory.by_dns_name(name).or_else(|| {
                    let short = name.split('.').next().unwrap_or(name);
                    directory.account(&format!("{}$", short.trim_end_matches('$')))
                })
            })
            .flatten();
        let (basis, confidence) = match object {
            Some(computer)
                if directory.has_tag(computer, TagName::Rodc)
                    || computer.uac.has(Uac::PARTIAL_SECRETS_ACCOUNT) =>
            {
                return;
            }
            Some(computer) => (
                format!(
                    "directory: {} is not a read-only domain controller",
                    computer.sam_account_name
                ),
                Confidence::HighConfidence,
            ),
            None => (
                "the source is not a known read-only domain controller (not in the directory)"
                    .to_owned(),
                Confidence::MediumConfidence,
            ),
        };
        let rodc = if kerberos.ticket_kvno >= RODC_KVNO {
            format!(", with a TGT of RODC number {}", kerberos.ticket_kvno >> 16)
        } else {
            String::new()
        };
        let description = format!(
            "{} asked {} for the long-term keys of {} (KERB-KEY-LIST-REQ){rodc}, which only read-only domain controllers do: a key list attack to take the account's NT hash",
            source_text(seen),
            crate::finding::destination_text(seen),
            if kerberos.service.is_empty() {
                "an account"
            } else {
                kerberos.service.as_str()
            },
        );
        let finding = Finding::on(
            &KEY_LIST,
            source_key(seen),
            seen,
            "TGS-REQ with KERB-KEY-LIST-REQ",
        )
        .describe(description)
        .entity(destination(seen, Role::DomainController))
        .detail("ticket_kvno", kerberos.ticket_kvno.to_string())
        .detail("service", kerberos.service.clone())
        .relied_on(basis)
        .confidence(confidence)
        .weighed_by_resolution(seen);
        context.raise(finding);
    }
}

#[cfg(test)]
mod tests {
    use dcwatch_entity::{Directory, Uac};
    use dcwatch_proto::v1::Certainty;

    use crate::detectors::testing::{
        computer, directory, hash, run, summary, tgs_req, with_source_computer,
    };

    fn key_list_request(name: &str) -> dcwatch_proto::v1::Activity {
        with_source_computer(
            tgs_req(
                0,
                "10.98.0.14:50000",
                "krbtgt/LAB.EXAMPLE",
                &hash(4),
                |body| {
                    body.key_list_request = true;
                    body.pa_data_types = vec![1, 161];
                    body.ticket_kvno = 0x0002_0001;
                },
            ),
            name,
            Certainty::High,
        )
    }

    #[test]
    fn a_key_list_request_from_a_workstation_is_a_key_list_attack() {
        let lab = directory(
            vec![computer("WS14", 1300, Uac::WORKSTATION_TRUST_ACCOUNT)],
            &[],
        );
        let alerts = run(None, lab, &[key_list_request("ws14.lab.example")]);
        assert_eq!(
            summary(&alerts),
            [("key_list".into(), "src:10.98.0.14".into(), 1)]
        );
        assert!(
            alerts[0]
                .description
                .contains("with a TGT of RODC number 2")
        );
        // Without a directory it still fires, less sure.
        let alerts = run(None, Directory::default(), &[key_list_request("WS14")]);
        assert_eq!(alerts.len(), 1);
    }

    #[test]
    fn a_key_list_request_from_an_rodc_is_not() {
        let lab = directory(
            vec![computer(
                "RODC1",
                1400,
                Uac::WORKSTATION_TRUST_ACCOUNT | Uac::PARTIAL_SECRETS_ACCOUNT,
            )],
            &[],
        );
        assert!(run(None, lab, &[key_list_request("rodc1.lab.example")]).is_empty());
    }
}
