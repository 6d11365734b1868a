//! DFSCoerce (MDI 2426): NETDFS NetrDfsAddStdRoot or NetrDfsRemoveStdRoot (opnums 12, 13) sent
//! to a DC with a ServerName that is not that DC makes it authenticate, as its machine account,
//! to that host: an attacker's listener. An administrator managing a standalone DFS root names
//! the server the root lives on, the DC itself (or another DC); that is not this. An unreadable
//! ServerName still fires, at medium confidence: DFS root management over RPC to a DC is rare.

use dcwatch_proto::v1::{activity::Body, alert::Confidence, alert_entity::Role, dce_rpc_activity};

use super::{
    Context, Detector, Interface, Kinds,
    target::{Named, clip, dc_target, listener, named, unc_host, with_account},
};
use crate::{
    catalogue::DFS_COERCION,
    finding::{Finding, actor_text, destination, destination_text, source_key},
    observed::Observed,
};

/// NETDFS opnums (MS-DFSNM 3.1.4.1).
const NETR_DFS_ADD_STD_ROOT: u32 = 12;
const NETR_DFS_REMOVE_STD_ROOT: u32 = 13;

#[derive(Debug, Default)]
pub(super) struct DfsCoercion;

impl Detector for DfsCoercion {
    fn kinds(&self) -> Kinds {
        Kinds::requests(Interface::Netdfs)
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        let Some(Body::Dcerpc(rpc)) = seen.body() else {
            return;
        };
        if rpc.r#type != dce_rpc_activity::Type::Request as i32
            || rpc.interface_name != "netdfs"
            || !matches!(rpc.opnum, NETR_DFS_ADD_STD_ROOT | NETR_DFS_REMOVE_STD_ROOT)
        {
            return;
        }
        let Some(dc) = dc_target(seen, context.knowledge) else {
            return;
        };
        let host = unc_host(&rpc.server_name);
        let (naming, confidence) = match host.map(|host| (host, named(host, seen, context.knowledge))) {
            Some((_, Named::Callee | Named::DomainController(_))) => return,
            Some((host, Named::Caller | Named::Other))
                if host.parse::<std::net::IpAddr>().is_ok() || context.knowledge.has_directory() =>
            {
                (
                    format!("naming {0} as the server: the DC authenticates to {0}, a listener that can relay its credentials", clip(host)),
                    dc.confidence,
                )
            }
            // A name no directory can place could be the DC's own.
            Some((host, _)) => (
                format!("naming {} as the server, which is not known as this DC: the DC authenticates to it", clip(host)),
                Confidence::MediumConfidence,
            ),
            None => (
                "with a server name the sensor could not read; the DC authenticates to whatever host it names".to_owned(),
                Confidence::MediumConfidence,
            ),
        };
        let operation = if rpc.opnum == NETR_DFS_ADD_STD_ROOT {
            "NetrDfsAddStdRoot"
        } else {
            "NetrDfsRemoveStdRoot"
        };
        let description = format!(
            "{} called {operation} over MS-DFSNM on {}, {naming} (DFSCoerce)",
            actor_text(seen),
            destination_text(seen),
        );
        let mut finding = Finding::on(
            &DFS_COERCION,
            source_key(seen),
            seen,
            format!("netdfs {operation} {}", clip(&rpc.server_name)),
        )
        .describe(description)
        .entity(destination(seen, Role::DomainController))
        .detail("operation", operation)
        .detail("server_name", clip(&rpc.server_name))
        .relied_on(dc.verdict.basis)
        .confidence(confidence)
        .weighed_by_resolution(seen)
        .app("Netdfs");
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
    use dcwatch_proto::v1::{Activity, activity::Body};

    use crate::{
        Config,
        detectors::testing::{activity, rpc_request, run, summary},
    };

    const ATTACKER: &str = "10.98.0.91:50000";
    const DC: &str = "10.98.0.1:445";

    fn dfs(opnum: u32, operation: &str, server: &str) -> Activity {
        let mut body = rpc_request("netdfs", opnum, operation);
        body.server_name = server.into();
        activity(0, ATTACKER, DC, Body::Dcerpc(body))
    }

    fn dc_config() -> Config {
        Config {
            dc_addresses: vec![
                "10.98.0.1".parse().expect("an address"),
                "10.98.0.2".parse().expect("an address"),
            ],
            ..Config::test_mode()
        }
    }

    #[test]
    fn dfscoerce_names_its_listener() {
        let alerts = run(
            Some(dc_config()),
            Directory::default(),
            &[dfs(13, "NetrDfsRemoveStdRoot", "10.98.0.91")],
        );
        assert_eq!(
            summary(&alerts),
            [("dfs_coercion".into(), "src:10.98.0.91".into(), 1)]
        );
        assert_eq!(alerts[0].external_id, 2426);
        assert!(
            alerts[0].description.contains("called NetrDfsRemoveStdRoot over MS-DFSNM on 10.98.0.1, naming 10.98.0.91 as the server"),
            "{}",
            alerts[0].description
        );
        assert!(
            alerts[0]
                .details
                .iter()
                .any(|d| d.name == "listener" && d.value == "10.98.0.91")
        );
    }

    #[test]
    fn roots_on_the_dc_itself_or_another_dc_and_other_netdfs_calls_are_not_coercion() {
        let activities = [
            dfs(12, "NetrDfsAddStdRoot", "10.98.0.1"),
            dfs(12, "NetrDfsAddStdRoot", "10.98.0.2"),
            dfs(5, "NetrDfsEnum", "10.98.0.91"),
            dfs(0, "NetrDfsManagerGetVersion", ""),
        ];
        assert!(run(Some(dc_config()), Directory::default(), &activities).is_empty());
    }

    #[test]
    fn a_server_name_without_a_directory_to_place_it_fires_at_medium_confidence() {
        let request = crate::detectors::testing::with_source_computer(
            dfs(12, "NetrDfsAddStdRoot", "DC1"),
            "WS01.lab.example",
            dcwatch_proto::v1::Certainty::High,
        );
        let alerts = run(Some(dc_config()), Directory::default(), &[request]);
        assert_eq!(alerts.len(), 1);
        assert_eq!(
            alerts[0].confidence(),
            dcwatch_proto::v1::alert::Confidence::MediumConfidence
        );
        assert!(alerts[0].description.contains("not known as this DC"));
    }

    #[test]
    fn an_unreadable_server_name_fires_at_medium_confidence() {
        let alerts = run(
            Some(dc_config()),
            Directory::default(),
            &[dfs(12, "NetrDfsAddStdRoot", "")],
        );
        assert_eq!(alerts.len(), 1);
        assert_eq!(
            alerts[0].confidence(),
            dcwatch_proto::v1::alert::Confidence::MediumConfidence
        );
    }
}
