//! The printer bug (no MDI id; SpoolSample, printerbug.py, Coercer): MS-RPRN
//! RpcRemoteFindFirstPrinterChangeNotification(Ex) (opnums 62, 65) asks the spooler to send
//! change notifications to `pszLocalMachine`; naming a host other than the caller makes a DC
//! authenticate, as its machine account, to that host (unconstrained delegation abuse, relay).
//! A print client names itself, and so does an attacker whose own host is the listener (the
//! usual SpoolSample run): against a DC, which serves no print clients where Microsoft's
//! guidance is followed (the spooler off on DCs), that call is raised too, at medium confidence.
//! Without a readable `pszLocalMachine` the call cannot be judged, so it does not fire.

use dcwatch_proto::v1::{activity::Body, alert::Confidence, alert_entity::Role, dce_rpc_activity};

use super::{
    Context, Detector, Interface, Kinds,
    target::{Named, clip, dc_target, listener, named, unc_host, with_account},
};
use crate::{
    catalogue::PRINTER_BUG_COERCION,
    finding::{Finding, actor_text, destination, destination_text, source_key},
    observed::Observed,
};

/// MS-RPRN 3.1.4.10.3 and 3.1.4.10.4.
const RPC_REMOTE_FIND_FIRST_PRINTER_CHANGE_NOTIFICATION: u32 = 62;
const RPC_REMOTE_FIND_FIRST_PRINTER_CHANGE_NOTIFICATION_EX: u32 = 65;

#[derive(Debug, Default)]
pub(super) struct PrinterBugCoercion;

impl Detector for PrinterBugCoercion {
    fn kinds(&self) -> Kinds {
        Kinds::requests(Interface::Spoolss)
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        let Some(Body::Dcerpc(rpc)) = seen.body() else {
            return;
        };
        if rpc.r#type != dce_rpc_activity::Type::Request as i32
            || rpc.interface_name != "spoolss"
            || !matches!(
                rpc.opnum,
                RPC_REMOTE_FIND_FIRST_PRINTER_CHANGE_NOTIFICATION
                    | RPC_REMOTE_FIND_FIRST_PRINTER_CHANGE_NOTIFICATION_EX
            )
        {
            return;
        }
        let Some(host) = unc_host(&rpc.local_machine) else {
            return;
        };
        let local_machine = clip(&rpc.local_machine);
        let shown_host = clip(host);
        let named = named(host, seen, context.knowledge);
        let confidence = match named {
            Named::Caller | Named::Unknown => Confidence::MediumConfidence,
            Named::Callee | Named::DomainController(_) | Named::Other => Confidence::HighConfidence,
        };
        let whose = if matches!(named, Named::Caller) {
            "the caller itself, as a listener would be"
        } else {
            "not the caller"
        };
        let Some(dc) = dc_target(seen, context.knowledge) else {
            return;
        };
        let operation = if rpc.opnum == RPC_REMOTE_FIND_FIRST_PRINTER_CHANGE_NOTIFICATION_EX {
            "RpcRemoteFindFirstPrinterChangeNotificationEx"
        } else {
            "RpcRemoteFindFirstPrinterChangeNotification"
        };
        let description = format!(
            "{} called {operation} on {} naming {} as the machine to notify: the DC's spooler authenticates to {shown_host}, {whose} (printer bug coercion)",
            actor_text(seen),
            destination_text(seen),
            local_machine,
        );
        let mut finding = Finding::on(
            &PRINTER_BUG_COERCION,
            source_key(seen),
            seen,
            format!("spoolss {operation} {local_machine}"),
        )
        .describe(description)
        .entity(destination(seen, Role::DomainController))
        .entity(listener(&shown_host))
        .detail("operation", operation)
        .detail("local_machine", local_machine.clone())
        .detail("listener", shown_host.clone())
        .relied_on(dc.verdict.basis)
        .confidence(confidence.min(dc.confidence))
        .weighed_by_resolution(seen)
        .app("Spoolss");
        match named {
            Named::Caller => {
                finding = finding.relied_on(
                    "the machine named is the caller: a print client subscribing to a DC's spooler, or an attacker's own listener",
                );
            }
            Named::Unknown => {
                finding = finding
                    .relied_on("the caller's name is unknown, so a name it gave could be its own");
            }
            _ => {}
        }
        finding = with_account(finding, seen, context);
        context.raise(finding);
    }
}

#[cfg(test)]
mod tests {
    use dcwatch_entity::Directory;
    use dcwatch_proto::v1::{Activity, Certainty, activity::Body, alert_entity::Role};

    use crate::{
        Config,
        detectors::testing::{activity, rpc_request, run, summary, with_source_computer},
    };

    const ATTACKER: &str = "10.98.0.93:50000";
    const DC: &str = "10.98.0.1:445";

    fn notify(opnum: u32, local_machine: &str) -> Activity {
        let mut body = rpc_request(
            "spoolss",
            opnum,
            "RpcRemoteFindFirstPrinterChangeNotificationEx",
        );
        body.local_machine = local_machine.into();
        activity(0, ATTACKER, DC, Body::Dcerpc(body))
    }

    fn dc_config() -> Config {
        Config {
            dc_addresses: vec!["10.98.0.1".parse().expect("an address")],
            ..Config::test_mode()
        }
    }

    #[test]
    fn naming_another_host_is_the_printer_bug() {
        let alerts = run(
            Some(dc_config()),
            Directory::default(),
            &[notify(65, "\\\\10.98.0.99")],
        );
        assert_eq!(
            summary(&alerts),
            [("printer_bug_coercion".into(), "src:10.98.0.93".into(), 1)]
        );
        assert_eq!(alerts[0].external_id, 9001);
        assert!(
            alerts[0]
                .description
                .contains("on 10.98.0.1 naming \\\\10.98.0.99 as the machine to notify")
                && alerts[0]
                    .description
                    .contains("authenticates to 10.98.0.99"),
            "{}",
            alerts[0].description
        );
        assert!(
            alerts[0]
                .entities
                .iter()
                .any(|e| e.role() == Role::Listener && e.address == "10.98.0.99")
        );
    }

    #[test]
    fn naming_itself_to_a_dc_is_raised_at_medium_confidence() {
        // SpoolSample's usual run: the attacker's own host is the listener.
        for local_machine in ["\\\\10.98.0.93", "\\\\WS03"] {
            let call = with_source_computer(
                notify(65, local_machine),
                "WS03.lab.example",
                Certainty::High,
            );
            let alerts = run(Some(dc_config()), Directory::default(), &[call]);
            assert_eq!(alerts.len(), 1, "{local_machine}");
            assert_eq!(
                alerts[0].confidence(),
                dcwatch_proto::v1::alert::Confidence::MediumConfidence
            );
            assert!(
                alerts[0].description.contains("the caller itself"),
                "{}",
                alerts[0].description
            );
        }
    }

    #[test]
    fn nothing_readable_or_another_operation_is_not_coercion() {
        let sealed = notify(65, "");
        let open_printer = {
            let mut body = rpc_request("spoolss", 1, "RpcOpenPrinter");
            body.local_machine = "\\\\10.98.0.99".into();
            activity(0, ATTACKER, DC, Body::Dcerpc(body))
        };
        assert!(
            run(
                Some(dc_config()),
                Directory::default(),
                &[sealed, open_printer]
            )
            .is_empty()
        );
    }

    #[test]
    fn a_name_from_a_caller_of_unknown_name_fires_at_medium_confidence() {
        let alerts = run(
            Some(dc_config()),
            Directory::default(),
            &[notify(62, "\\\\ATTACKERBOX")],
        );
        assert_eq!(alerts.len(), 1);
        assert_eq!(
            alerts[0].confidence(),
            dcwatch_proto::v1::alert::Confidence::MediumConfidence
        );
    }
}
