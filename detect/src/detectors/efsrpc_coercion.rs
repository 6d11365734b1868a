//! Suspicious connection over EFSRPC, PetitPotam (MDI 2416): an EFSRPC call (interface
//! c681d488-… over \pipe\lsarpc, \pipe\samr, \pipe\lsass or \pipe\netlogon, or df1941c5-… over
//! \pipe\efsrpc) naming a UNC path makes the DC authenticate, as its machine account, to the
//! host in that path: an attacker's listener relaying to AD CS or LDAP. DCs have no use for
//! remote EFS, so any call to a DC suffices; an EFS call to a file server the directory or the
//! configuration says is not a DC is ordinary EFS. The alert names the listener. The answer
//! ERROR_BAD_NETPATH (0x35) says the DC tried to reach it: the coercion worked.

use dcwatch_proto::v1::{activity::Body, alert_entity::Role, dce_rpc_activity, outcome::Status};

use super::{
    Context, Detector, Interface, Kinds,
    target::{Named, clip, dc_target, listener, named, unc_host, with_account},
};
use crate::{
    catalogue::EFSRPC_COERCION,
    finding::{Finding, actor_text, destination, destination_text, source_key},
    observed::Observed,
};

/// Win32 ERROR_BAD_NETPATH: the server tried the path and could not reach it.
const ERROR_BAD_NETPATH: u32 = 0x35;

#[derive(Debug, Default)]
pub(super) struct EfsrpcCoercion;

impl Detector for EfsrpcCoercion {
    fn kinds(&self) -> Kinds {
        Kinds::requests(Interface::Efsrpc)
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        let Some(Body::Dcerpc(rpc)) = seen.body() else {
            return;
        };
        if rpc.r#type != dce_rpc_activity::Type::Request as i32 || rpc.interface_name != "efsrpc" {
            return;
        }
        let Some(dc) = dc_target(seen, context.knowledge) else {
            return;
        };
        let operation = if rpc.operation.is_empty() {
            format!("EFSRPC opnum {}", rpc.opnum)
        } else {
            clip(&rpc.operation)
        };
        let host = unc_host(&rpc.file_name);
        let file_name = clip(&rpc.file_name);
        let shown_host = host.map(clip).unwrap_or_default();
        let naming = match host {
            Some(host) => {
                let whose = if named(host, seen, context.knowledge) == Named::Caller {
                    " (the caller itself)"
                } else {
                    ""
                };
                format!(
                    ", naming {file_name}: the DC authenticates to {shown_host}{whose}, a listener that can relay its credentials"
                )
            }
            None if rpc.file_name.is_empty() => {
                ", with a path the sensor could not read; the DC authenticates to whatever host it names".to_owned()
            }
            None => format!(", naming the local path {file_name}"),
        };
        let outcome = match rpc.return_value {
            ERROR_BAD_NETPATH => Status::Success,
            _ => seen.status(),
        };
        let tried = if rpc.return_value == ERROR_BAD_NETPATH {
            " The DC answered ERROR_BAD_NETPATH: it tried to reach the path."
        } else {
            ""
        };
        let description = format!(
            "{} called {operation} over EFSRPC on {}{naming} (PetitPotam coercion).{tried}",
            actor_text(seen),
            destination_text(seen),
        );
        let mut finding = Finding::on(
            &EFSRPC_COERCION,
            source_key(seen),
            seen,
            format!("efsrpc {operation} {file_name}"),
        )
        .describe(description)
        .entity(destination(seen, Role::DomainController))
        .detail("operation", operation)
        .detail("file_name", file_name.clone())
        .relied_on(dc.verdict.basis)
        .outcome(outcome)
        .confidence(dc.confidence)
        .weighed_by_resolution(seen)
        .app("Efsrpc");
        if let Some(host) = host {
            finding = finding
                .detail("listener", clip(host))
                .entity(listener(&clip(host)));
        }
        finding = with_account(finding, seen, context);
        context.raise(finding);
    }
}

#[cfg(test)]
mod tests {
    use dcwatch_entity::Directory;
    use dcwatch_proto::v1::{Activity, activity::Body, alert_entity::Role, outcome::Status};

    use crate::{
        Config,
        detectors::testing::{activity, rpc_request, run, summary},
    };

    const ATTACKER: &str = "10.98.0.90:50000";
    const DC: &str = "10.98.0.1:445";

    fn efs(dst: &str, opnum: u32, operation: &str, file: &str, returned: u32) -> Activity {
        let mut body = rpc_request("efsrpc", opnum, operation);
        body.file_name = file.into();
        body.return_value = returned;
        activity(0, ATTACKER, dst, Body::Dcerpc(body))
    }

    fn dc_config() -> Config {
        Config {
            dc_addresses: vec!["10.98.0.1".parse().expect("an address")],
            ..Config::test_mode()
        }
    }

    #[test]
    fn petitpotam_names_its_listener() {
        let alerts = run(
            Some(dc_config()),
            Directory::default(),
            &[efs(
                DC,
                0,
                "EfsRpcOpenFileRaw",
                "\\\\10.98.0.90\\test\\Settings.ini",
                0x35,
            )],
        );
        assert_eq!(
            summary(&alerts),
            [("efsrpc_coercion".into(), "src:10.98.0.90".into(), 1)]
        );
        let alert = &alerts[0];
        assert_eq!(alert.external_id, 2416);
        assert!(
            alert
                .description
                .contains("called EfsRpcOpenFileRaw over EFSRPC on 10.98.0.1")
                && alert
                    .description
                    .contains("the DC authenticates to 10.98.0.90")
                && alert.description.contains("ERROR_BAD_NETPATH"),
            "{}",
            alert.description
        );
        assert!(
            alert
                .entities
                .iter()
                .any(|entity| entity.role() == Role::Listener && entity.address == "10.98.0.90")
        );
        assert_eq!(alert.outcome(), Status::Success);
    }

    #[test]
    fn a_sealed_call_still_fires_saying_the_path_was_unreadable() {
        let alerts = run(
            Some(dc_config()),
            Directory::default(),
            &[efs(DC, 4, "EfsRpcEncryptFileSrv", "", 0)],
        );
        assert_eq!(alerts.len(), 1);
        assert!(alerts[0].description.contains("could not read"));
    }

    #[test]
    fn efs_on_a_file_server_and_lsarpc_on_the_same_pipe_are_not_coercion() {
        let to_file_server = efs(
            "10.98.0.55:445",
            4,
            "EfsRpcEncryptFileSrv",
            "\\\\FS01\\home\\a.docx",
            0,
        );
        let lsa = activity(
            0,
            ATTACKER,
            DC,
            Body::Dcerpc(rpc_request("lsarpc", 44, "LsarOpenPolicy2")),
        );
        assert!(
            run(
                Some(dc_config()),
                Directory::default(),
                &[to_file_server, lsa]
            )
            .is_empty()
        );
    }
}
