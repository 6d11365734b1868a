//! Credential theft through the remote registry (dcwatch's own, 9005): secretsdump's remote
//! mode and `reg.py save` open the SAM and SECURITY hives over WINREG (MS-RRP) and save them,
//! with SYSTEM for the boot key, to a file they then fetch: local account hashes, LSA secrets
//! and cached domain logons. Opening or saving those hives remotely is what such tools do;
//! administration tools read other keys. Attempts count: a refused open is still the attempt.

use dcwatch_proto::v1::{activity::Body, alert_entity::Role, dce_rpc_activity};

use super::{
    Context, Detector, Interface, Kinds,
    target::{clip, outcome_word, with_account},
};
use crate::{
    catalogue::REMOTE_REGISTRY_DUMP,
    finding::{Finding, actor_text, destination, destination_text, source_key},
    observed::Observed,
};

/// MS-RRP opnums: BaseRegCreateKey, BaseRegOpenKey, BaseRegSaveKey, BaseRegSaveKeyEx.
const BASE_REG_CREATE_KEY: u32 = 6;
const BASE_REG_OPEN_KEY: u32 = 15;
const BASE_REG_SAVE_KEY: u32 = 20;
const BASE_REG_SAVE_KEY_EX: u32 = 31;
/// The hives holding credentials (SAM, SECURITY) and the boot key that decrypts them (SYSTEM).
const HIVES: [&str; 3] = ["SAM", "SECURITY", "SYSTEM"];

#[derive(Debug)]
pub(super) struct RemoteRegistryDump;

impl Detector for RemoteRegistryDump {
    fn kinds(&self) -> Kinds {
        Kinds::requests(Interface::Winreg)
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        let Some(Body::Dcerpc(rpc)) = seen.body() else {
            return;
        };
        if rpc.r#type != dce_rpc_activity::Type::Request as i32 || rpc.interface_name != "winreg" {
            return;
        }
        let saving = matches!(rpc.opnum, BASE_REG_SAVE_KEY | BASE_REG_SAVE_KEY_EX);
        if !saving && !matches!(rpc.opnum, BASE_REG_OPEN_KEY | BASE_REG_CREATE_KEY) {
            return;
        }
        let Some(hive) = credential_hive(&rpc.key_path) else {
            return;
        };
        let verb = if saving { "saved" } else { "opened" };
        let description = format!(
            "{} {}{verb} the {hive} hive ({}) of {} over the remote registry, as credential dumping tools do",
            actor_text(seen),
            outcome_word(seen),
            clip(&rpc.key_path),
            destination_text(seen),
        );
        let mut finding = Finding::on(
            &REMOTE_REGISTRY_DUMP,
            source_key(seen),
            seen,
            format!("winreg {} {}", rpc.operation, rpc.key_path),
        )
        .describe(description)
        .entity(destination(seen, Role::DestinationComputer))
        .detail("key", rpc.key_path.clone())
        .app("Winreg");
        if saving && !rpc.file_name.is_empty() {
            finding = finding.detail("file", rpc.file_name.clone());
        }
        context.raise(with_account(finding, seen, context));
    }
}

/// The credential hive a key path names (`HKLM\SAM`, `SECURITY\Policy\Secrets`, `SYSTEM`), or
/// `None` for any other key.
fn credential_hive(path: &str) -> Option<&'static str> {
    let path = path.trim_matches(['\\', '\0', ' ']);
    let path = ["HKEY_LOCAL_MACHINE\\", "HKLM\\"]
        .iter()
        .find_map(|prefix| {
            path.get(..prefix.len())
                .filter(|head| head.eq_ignore_ascii_case(prefix))
                .map(|_| &path[prefix.len()..])
        })
        .unwrap_or(path);
    let first = path.split('\\').next().unwrap_or(path);
    HIVES
        .iter()
        .copied()
        .find(|hive| first.eq_ignore_ascii_case(hive))
}

#[cfg(test)]
mod tests {
    use dcwatch_entity::Directory;
    use dcwatch_proto::v1::{activity::Body, outcome::Status};

    use super::credential_hive;
    use crate::detectors::testing::{activity, rpc_request, run, summary, with_outcome};

    fn call(opnum: u32, key: &str) -> dcwatch_proto::v1::Activity {
        let mut body = rpc_request("winreg", opnum, "BaseRegOpenKey");
        body.key_path = key.into();
        with_outcome(
            activity(0, "10.98.0.2:50000", "10.98.0.1:445", Body::Dcerpc(body)),
            Status::Failure,
            2,
        )
    }

    #[test]
    fn opening_or_saving_credential_hives_is_raised_once_per_source() {
        let alerts = run(
            None,
            Directory::default(),
            &[
                call(15, "HKLM\\SAM"),
                call(20, "SYSTEM"),
                call(15, "HKEY_LOCAL_MACHINE\\SECURITY\\Policy\\Secrets"),
            ],
        );
        assert_eq!(
            summary(&alerts),
            [("remote_registry_dump".into(), "src:10.98.0.2".into(), 3)]
        );
        assert!(
            alerts[0]
                .description
                .contains("unsuccessfully opened the SECURITY hive"),
            "{}",
            alerts[0].description
        );
    }

    #[test]
    fn other_keys_and_other_calls_are_not() {
        let software = call(15, "HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion");
        let query = call(17, "HKLM\\SAM");
        let samba = call(15, "HKLM\\SYSTEMROOT");
        assert!(run(None, Directory::default(), &[software, query, samba]).is_empty());
    }

    #[test]
    fn hives_are_named_in_every_spelling() {
        assert_eq!(credential_hive("hklm\\sam\\SAM\\Domains"), Some("SAM"));
        assert_eq!(credential_hive("\\Security\0"), Some("SECURITY"));
        assert_eq!(
            credential_hive("SYSTEM\\CurrentControlSet\\Control\\Lsa"),
            Some("SYSTEM")
        );
        assert_eq!(credential_hive(""), None);
        assert_eq!(credential_hive("HKLM\\"), None);
    }
}
