//! Print Spooler exploitation, PrintNightmare (MDI 2415, CVE-2021-1675/34527): adding a printer
//! driver to a DC (MS-RPRN RpcAddPrinterDriver 9 or RpcAddPrinterDriverEx 89, MS-PAR
//! RpcAsyncAddPrinterDriver 39) loads the DLL the caller names, often from its own share, as
//! SYSTEM. Driver installs on DCs "should rarely happen"; a DC that is a print server is the
//! false positive, and an exclusion. The alert carries the driver's files and copy flags. Other
//! spooler calls (opening printers, enumerating drivers) are not this.

use dcwatch_proto::v1::{activity::Body, alert_entity::Role, dce_rpc_activity};

use super::{
    Context, Detector, Interface, Kinds,
    target::{clip, dc_target, listed, outcome_word, unc_host, with_account},
};
use crate::{
    catalogue::PRINT_SPOOLER,
    finding::{Finding, actor_text, destination, destination_text, source_key},
    observed::Observed,
};

/// MS-RPRN 3.1.4.4.2 and 3.1.4.4.8; MS-PAR 3.1.4.2.2.
const RPC_ADD_PRINTER_DRIVER: u32 = 9;
const RPC_ADD_PRINTER_DRIVER_EX: u32 = 89;
const RPC_ASYNC_ADD_PRINTER_DRIVER: u32 = 39;
/// Driver files an alert lists.
const MAX_PATHS_LISTED: usize = 10;

#[derive(Debug, Default)]
pub(super) struct PrintSpooler;

impl Detector for PrintSpooler {
    fn kinds(&self) -> Kinds {
        Kinds::requests(Interface::Spoolss) | Kinds::requests(Interface::IRemoteWinspool)
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        let Some(Body::Dcerpc(rpc)) = seen.body() else {
            return;
        };
        let add_driver = match rpc.interface_name.as_str() {
            "spoolss" => matches!(
                rpc.opnum,
                RPC_ADD_PRINTER_DRIVER | RPC_ADD_PRINTER_DRIVER_EX
            ),
            "IRemoteWinspool" => rpc.opnum == RPC_ASYNC_ADD_PRINTER_DRIVER,
            _ => false,
        };
        if rpc.r#type != dce_rpc_activity::Type::Request as i32 || !add_driver {
            return;
        }
        let Some(dc) = dc_target(seen, context.knowledge) else {
            return;
        };
        let operation = match (rpc.interface_name.as_str(), rpc.opnum) {
            ("IRemoteWinspool", _) => "RpcAsyncAddPrinterDriver",
            (_, RPC_ADD_PRINTER_DRIVER) => "RpcAddPrinterDriver",
            _ => "RpcAddPrinterDriverEx",
        };
        let paths = listed(
            rpc.driver_paths.iter().map(String::as_str),
            MAX_PATHS_LISTED,
        );
        let remote: Vec<&str> = rpc
            .driver_paths
            .iter()
            .filter_map(|path| unc_host(path).filter(|_| path.starts_with("\\\\")))
            .collect();
        let files = if rpc.driver_paths.is_empty() {
            "a driver whose files were unreadable".to_owned()
        } else if remote.is_empty() {
            format!("a driver from {paths}")
        } else {
            format!(
                "a driver from {paths}, loaded from the remote host {}",
                clip(remote.first().copied().unwrap_or_default())
            )
        };
        let description = format!(
            "{} {}installed {files} on {} ({operation}, flags {:#x}): the Print Spooler loads it as SYSTEM (PrintNightmare)",
            actor_text(seen),
            outcome_word(seen),
            destination_text(seen),
            rpc.flags,
        );
        let mut finding = Finding::on(
            &PRINT_SPOOLER,
            source_key(seen),
            seen,
            format!("{} {operation} {paths}", rpc.interface_name),
        )
        .describe(description)
        .entity(destination(seen, Role::DomainController))
        .detail("operation", operation)
        .detail("driver_paths", paths)
        .detail("flags", format!("{:#x}", rpc.flags))
        .relied_on(dc.verdict.basis)
        .confidence(dc.confidence)
        .weighed_by_resolution(seen)
        .app("Spoolss");
        finding = with_account(finding, seen, context);
        context.raise(finding);
    }
}

#[cfg(test)]
mod tests {
    use dcwatch_entity::Directory;
    use dcwatch_proto::v1::{Activity, activity::Body};

    use crate::{
        Config,
        detectors::testing::{activity, rpc_request, run, summary},
    };

    const ATTACKER: &str = "10.98.0.92:50000";
    const DC: &str = "10.98.0.1:445";

    fn spool(interface: &str, opnum: u32, operation: &str, paths: &[&str]) -> Activity {
        let mut body = rpc_request(interface, opnum, operation);
        body.driver_paths = paths.iter().map(|&p| p.to_owned()).collect();
        body.flags = 0x8014;
        activity(0, ATTACKER, DC, Body::Dcerpc(body))
    }

    fn dc_config() -> Config {
        Config {
            dc_addresses: vec!["10.98.0.1".parse().expect("an address")],
            ..Config::test_mode()
        }
    }

    #[test]
    fn printnightmare_driver_from_a_share_is_print_spooler_exploitation() {
        let alerts = run(
            Some(dc_config()),
            Directory::default(),
            &[spool(
                "spoolss",
                89,
                "RpcAddPrinterDriverEx",
                &[
                    "C:\\Windows\\System32\\DriverStore\\FileRepository\\ntprint.inf_amd64\\Amd64\\UNIDRV.DLL",
                    "\\\\10.98.0.92\\share\\evil.dll",
                ],
            )],
        );
        assert_eq!(
            summary(&alerts),
            [("print_spooler".into(), "src:10.98.0.92".into(), 1)]
        );
        assert_eq!(alerts[0].external_id, 2415);
        assert!(
            alerts[0].description.contains("installed a driver from")
                && alerts[0]
                    .description
                    .contains("\\\\10.98.0.92\\share\\evil.dll")
                && alerts[0]
                    .description
                    .contains("loaded from the remote host 10.98.0.92")
                && alerts[0]
                    .description
                    .contains("on 10.98.0.1 (RpcAddPrinterDriverEx, flags 0x8014)"),
            "{}",
            alerts[0].description
        );
    }

    #[test]
    fn the_async_interface_counts_too() {
        let alerts = run(
            Some(dc_config()),
            Directory::default(),
            &[spool(
                "IRemoteWinspool",
                39,
                "RpcAsyncAddPrinterDriver",
                &[],
            )],
        );
        assert_eq!(alerts.len(), 1);
        assert!(
            alerts[0]
                .description
                .contains("whose files were unreadable")
        );
    }

    #[test]
    fn other_spooler_calls_and_print_servers_are_not_exploitation() {
        let mut to_print_server = spool("spoolss", 89, "RpcAddPrinterDriverEx", &[]);
        to_print_server.dst = Some(crate::detectors::testing::endpoint("10.98.0.57:445"));
        let activities = [
            spool("spoolss", 1, "RpcOpenPrinter", &[]),
            spool("spoolss", 10, "RpcEnumPrinterDrivers", &[]),
            spool("IRemoteWinspool", 40, "RpcAsyncEnumPrinterDrivers", &[]),
            spool(
                "spoolss",
                65,
                "RpcRemoteFindFirstPrinterChangeNotificationEx",
                &[],
            ),
            to_print_server,
        ];
        assert!(run(Some(dc_config()), Directory::default(), &activities).is_empty());
    }
}
