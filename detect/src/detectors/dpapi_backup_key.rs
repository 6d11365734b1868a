//! Malicious request of the DPAPI master key (MDI 2020): the domain's DPAPI backup keys are LSA
//! secrets of the DCs named `G$BCKUPKEY_PREFERRED`, `G$BCKUPKEY_P` and `G$BCKUPKEY_{guid}`;
//! whoever reads them (mimikatz `lsadump::backupkeys`, impacket `dpapi.py backupkeys`) can decrypt
//! every user's DPAPI secrets forever. They are read with LSARPC LsarRetrievePrivateData (opnum
//! 43), or opened with LsarOpenSecret (28). Clients decrypting their own master keys use MS-BKRP
//! BackuprKey, another interface, which is normal and not this. A readable secret name that is
//! not a backup key is not this either; an unreadable one (a sealed stub) on
//! LsarRetrievePrivateData still is, at medium confidence, since reading LSA secrets remotely is
//! rare in itself.

use dcwatch_proto::v1::{activity::Body, alert::Confidence, alert_entity::Role, dce_rpc_activity};

use super::{
    Context, Detector, Interface, Kinds,
    target::{clip, outcome_word, with_account},
};
use crate::{
    catalogue::DPAPI_BACKUP_KEY,
    finding::{Finding, actor_text, destination, destination_text, source_key},
    observed::Observed,
};

/// LSARPC opnums (MS-LSAD 3.1.4).
const LSAR_OPEN_SECRET: u32 = 28;
const LSAR_RETRIEVE_PRIVATE_DATA: u32 = 43;
/// The prefix of the backup keys' secret names (MS-BKRP 3.1.4.1.1).
const BACKUP_KEY_PREFIX: &str = "G$BCKUPKEY";

#[derive(Debug, Default)]
pub(super) struct DpapiBackupKey;

impl Detector for DpapiBackupKey {
    fn kinds(&self) -> Kinds {
        Kinds::requests(Interface::Lsarpc)
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        let Some(Body::Dcerpc(rpc)) = seen.body() else {
            return;
        };
        if rpc.r#type != dce_rpc_activity::Type::Request as i32
            || rpc.interface_name != "lsarpc"
            || !matches!(rpc.opnum, LSAR_OPEN_SECRET | LSAR_RETRIEVE_PRIVATE_DATA)
        {
            return;
        }
        let name = rpc.secret_name.trim_matches('\0').trim();
        let shown = clip(name);
        let is_backup_key = name
            .get(..BACKUP_KEY_PREFIX.len())
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(BACKUP_KEY_PREFIX));
        let unreadable = name.is_empty() && rpc.opnum == LSAR_RETRIEVE_PRIVATE_DATA;
        if !is_backup_key && !unreadable {
            return;
        }
        let operation = if rpc.opnum == LSAR_OPEN_SECRET {
            "LsarOpenSecret"
        } else {
            "LsarRetrievePrivateData"
        };
        let secret = if unreadable {
            "an LSA secret whose name was unreadable (sealed), likely the DPAPI domain backup key"
                .to_owned()
        } else {
            format!("the DPAPI domain backup key {shown}")
        };
        let verb = if rpc.opnum == LSAR_OPEN_SECRET {
            "opened"
        } else {
            "retrieved"
        };
        let description = format!(
            "{} {}{verb} {secret} from {} ({operation}), which decrypts every user's DPAPI secrets",
            actor_text(seen),
            outcome_word(seen),
            destination_text(seen),
        );
        let mut finding = Finding::on(
            &DPAPI_BACKUP_KEY,
            source_key(seen),
            seen,
            format!("lsarpc {operation} {shown}"),
        )
        .describe(description)
        .entity(destination(seen, Role::DomainController))
        .detail("secret_name", shown.clone())
        .detail("operation", operation)
        .weighed_by_resolution(seen)
        .app("LsaRpc");
        finding = with_account(finding, seen, context);
        if unreadable {
            finding = finding
                .relied_on(
                    "the secret's name was not readable: any remote LsarRetrievePrivateData counts",
                )
                .confidence(Confidence::MediumConfidence);
        } else {
            finding = finding.relied_on(format!("the secret's name on the wire: {shown}"));
        }
        context.raise(finding);
    }
}

#[cfg(test)]
mod tests {
    use dcwatch_entity::Directory;
    use dcwatch_proto::v1::{
        Activity, activity::Body, alert::Confidence, dce_rpc_activity, outcome::Status,
    };

    use crate::detectors::testing::{
        activity, rpc_request, run, summary, with_account, with_outcome,
    };

    const CLIENT: &str = "10.98.0.70:50000";
    const DC: &str = "10.98.0.1:445";

    fn lsa(opnum: u32, operation: &str, secret: &str) -> Activity {
        let mut body = rpc_request("lsarpc", opnum, operation);
        body.secret_name = secret.into();
        activity(0, CLIENT, DC, Body::Dcerpc(body))
    }

    #[test]
    fn retrieving_the_preferred_backup_key_is_dpapi_backup_key() {
        let request = with_outcome(
            with_account(
                lsa(43, "LsarRetrievePrivateData", "G$BCKUPKEY_PREFERRED"),
                "LAB",
                "Administrator",
            ),
            Status::Success,
            0,
        );
        let alerts = run(None, Directory::default(), &[request]);
        assert_eq!(
            summary(&alerts),
            [("dpapi_backup_key".into(), "src:10.98.0.70".into(), 1)]
        );
        let alert = &alerts[0];
        assert_eq!(
            (alert.external_id, alert.protocol.as_str()),
            (2020, "LsaRpc")
        );
        assert!(
            alert.description.starts_with("LAB\\Administrator on 10.98.0.70 successfully retrieved the DPAPI domain backup key G$BCKUPKEY_PREFERRED from 10.98.0.1"),
            "{}",
            alert.description
        );
    }

    #[test]
    fn opening_a_backup_key_by_guid_counts_and_a_sealed_name_is_medium() {
        let alerts = run(
            None,
            Directory::default(),
            &[lsa(
                28,
                "LsarOpenSecret",
                "G$BCKUPKEY_5b1f1d55-7a4e-4c4c-9b3e-3d3c8a5e2f10",
            )],
        );
        assert_eq!(alerts.len(), 1);
        assert!(
            alerts[0]
                .description
                .contains("opened the DPAPI domain backup key G$BCKUPKEY_5b1f")
        );
        let sealed = run(
            None,
            Directory::default(),
            &[lsa(43, "LsarRetrievePrivateData", "")],
        );
        assert_eq!(sealed.len(), 1);
        assert_eq!(sealed[0].confidence(), Confidence::MediumConfidence);
        assert!(sealed[0].description.contains("unreadable"));
    }

    #[test]
    fn other_secrets_other_lsa_calls_and_bkrp_are_not_backup_key_theft() {
        let mut bkrp = rpc_request("bkrp", 0, "BackuprKey");
        bkrp.r#type = dce_rpc_activity::Type::Request.into();
        let activities = [
            lsa(
                43,
                "LsarRetrievePrivateData",
                "L$RTMTIMEBOMB_1320153D-8DA3-4e8e-B27B-0D888223A588",
            ),
            lsa(28, "LsarOpenSecret", ""),
            lsa(44, "LsarOpenPolicy2", ""),
            lsa(76, "LsarLookupSids3", ""),
            activity(0, CLIENT, DC, Body::Dcerpc(bkrp)),
        ];
        assert!(run(None, Directory::default(), &activities).is_empty());
    }
}
