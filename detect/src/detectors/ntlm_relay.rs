//! NTLM relay (MDI 2037, generalised as Elastic does): an NTLM authentication as a computer
//! account (`NAME$`) that does not come from that computer. Computers authenticate as
//! themselves from their own address; a relay (ntlmrelayx after PetitPotam, PrinterBug,
//! DFSCoerce) forwards the coerced victim's AUTHENTICATE from the attacker's address. Two rules:
//! - the source was resolved with HIGH certainty, by a method the client does not choose (not
//!   the NTLM workstation field, which the relayed message carries unchanged), to another
//!   computer's name;
//! - the same address made a coercion call (EFSRPC, MS-DFSNM add/remove root, the printer bug)
//!   within `RELAY_AFTER_COERCION` before.
//!
//! A computer account's own logon from its own address is the normal case and never fires.

use std::net::IpAddr;

use dcwatch_proto::v1::{
    Certainty, ResolutionMethod, activity::Body, alert_entity::Role, dce_rpc_activity,
    ntlm_activity,
};

use super::{Context, Detector, Interface, Kinds};
use crate::{
    bounded::BoundedMap,
    catalogue::NTLM_RELAY,
    finding::{Finding, account_entity, destination, destination_text, source_key},
    observed::Observed,
    time::{Millis, SECOND},
};

/// From a coercion call to the relayed authentication from the same address (*ours*; Elastic's
/// sequence uses 5 seconds, a relay to a slower target takes longer).
pub(super) const RELAY_AFTER_COERCION: Millis = 60 * SECOND;
/// Addresses remembered as having made a coercion call.
pub(super) const MAX_COERCERS: usize = 4_096;

#[derive(Debug)]
pub(super) struct NtlmRelay {
    coercions: BoundedMap<IpAddr, (Millis, String)>,
}

impl Default for NtlmRelay {
    fn default() -> Self {
        Self {
            coercions: BoundedMap::new(MAX_COERCERS),
        }
    }
}

/// The coercion call a DCE-RPC request is, if it is one.
fn coercion(rpc: &dcwatch_proto::v1::DceRpcActivity) -> Option<String> {
    if rpc.r#type != dce_rpc_activity::Type::Request as i32 {
        return None;
    }
    let operation = rpc.operation.as_str();
    let coerces = match rpc.interface_name.as_str() {
        "efsrpc" => true,
        "lsarpc" | "samr" | "netlogon" => operation.starts_with("EfsRpc"),
        "netdfs" => matches!(operation, "NetrDfsAddStdRoot" | "NetrDfsRemoveStdRoot"),
        "spoolss" => operation.starts_with("RpcRemoteFindFirstPrinterChangeNotification"),
        _ => false,
    };
    coerces.then(|| format!("{} {operation}", rpc.interface_name))
}

impl Detector for NtlmRelay {
    fn kinds(&self) -> Kinds {
        Kinds::requests(Interface::Efsrpc)
            | Kinds::requests(Interface::Lsarpc)
            | Kinds::requests(Interface::Samr)
            | Kinds::requests(Interface::Netlogon)
            | Kinds::requests(Interface::Netdfs)
            | Kinds::requests(Interface::Spoolss)
            | Kinds::ntlm(ntlm_activity::Type::Authenticate)
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        match seen.body() {
            Some(Body::Dcerpc(rpc)) => {
                if let (Some(call), Some(source)) = (coercion(rpc), seen.src) {
                    let slot = self
                        .coercions
                        .touch(source, seen.time, || (seen.time, call.clone()));
                    *slot = (seen.time, call);
                }
            }
            Some(Body::Ntlm(ntlm))
                if ntlm.r#type == ntlm_activity::Type::Authenticate as i32
                    && ntlm.user.ends_with('$') =>
            {
                self.authenticate(seen, context, ntlm);
            }
            _ => {}
        }
    }

    fn evicted(&self) -> u64 {
        self.coercions.evicted()
    }
}

impl NtlmRelay {
    fn authenticate(
        &mut self,
        seen: &Observed<'_>,
        context: &mut Context<'_>,
        ntlm: &dcwatch_proto::v1::NtlmActivity,
    ) {
        let Some(source) = seen.src else {
            return;
        };
        let account = ntlm.user.trim_end_matches('$').to_lowercase();
        let resolved = seen.activity.source_computer.as_ref().filter(|computer| {
            computer.certainty() == Certainty::High
                && computer.method() != ResolutionMethod::NtlmWorkstation
                && !computer.name.is_empty()
        });
        let elsewhere = resolved.filter(|computer| {
            let short = computer.name.split('.').next().unwrap_or(&computer.name);
            short.trim_end_matches('$').to_lowercase() != account
        });
        let coerced = self
            .coercions
            .get(&source)
            .filter(|(at, _)| (0..=RELAY_AFTER_COERCION).contains(&seen.time.saturating_sub(*at)))
            .cloned();
        let reason = match (&elsewhere, &coerced) {
            (Some(computer), _) => format!(
                "from {}, which is {} ({} certainty by {}), not {}",
                source,
                computer.name,
                computer.certainty().as_str_name(),
                computer.method().as_str_name(),
                ntlm.user
            ),
            (None, Some((_, call))) if resolved.is_none() => {
                format!("right after {source} made the coercion call {call}")
            }
            _ => return,
        };
        let outcome = if seen.succeeded() {
            " successfully"
        } else if seen.failed() {
            " unsuccessfully"
        } else {
            ""
        };
        let description = format!(
            "The computer account {}\\{} authenticated{outcome} over NTLM to {} {reason}: its authentication was coerced and relayed",
            ntlm.domain,
            ntlm.user,
            destination_text(seen),
        );
        let mut finding = Finding::on(
            &NTLM_RELAY,
            source_key(seen),
            seen,
            format!("NTLM AUTHENTICATE as {}\\{}", ntlm.domain, ntlm.user),
        )
        .describe(description)
        .entity(account_entity(
            Role::CompromisedAccount,
            &ntlm.domain,
            &ntlm.user,
            context.knowledge.directory(),
        ))
        .entity(destination(seen, Role::DestinationComputer))
        .detail("relayed_account", format!("{}\\{}", ntlm.domain, ntlm.user));
        if let Some((at, call)) = coerced {
            finding = finding.detail("coercion", call.clone()).relied_on(format!(
                "traffic: {call} from {source} {} ms before",
                seen.time.saturating_sub(at)
            ));
        }
        if let Some(computer) = elsewhere {
            finding = finding.relied_on(format!(
                "name resolution: {source} is {} by {}, HIGH certainty",
                computer.name,
                computer.method().as_str_name()
            ));
        } else {
            finding = finding.weighed_by_resolution(seen);
        }
        context.raise(finding);
    }
}

#[cfg(test)]
mod tests {
    use dcwatch_entity::Directory;
    use dcwatch_proto::v1::{Activity, Certainty, ResolutionMethod, activity::Body};

    use crate::detectors::testing::{activity, ntlm_authenticate, rpc_request, run, summary};

    const ATTACKER: &str = "10.98.0.18:50000";

    fn as_dc1(src: &str, name: &str, method: ResolutionMethod) -> Activity {
        let mut auth = ntlm_authenticate(1_000, src, "10.98.0.30:445", "LAB", "DC1$", 0, |body| {
            body.workstation = "DC1".into();
        });
        auth.source_computer = Some(dcwatch_proto::v1::Computer {
            name: name.into(),
            certainty: Certainty::High.into(),
            method: method.into(),
            ..Default::default()
        });
        auth
    }

    #[test]
    fn a_dc_account_authenticating_from_another_computer_is_a_relay() {
        let alerts = run(
            None,
            Directory::default(),
            &[as_dc1(ATTACKER, "KALI", ResolutionMethod::Dns)],
        );
        assert_eq!(
            summary(&alerts),
            [("ntlm_relay".into(), "src:10.98.0.18".into(), 1)]
        );
        assert_eq!(
            alerts[0].description,
            "The computer account LAB\\DC1$ authenticated successfully over NTLM to 10.98.0.30 from 10.98.0.18, which is KALI (HIGH certainty by DNS), not DC1$: its authentication was coerced and relayed"
        );
    }

    #[test]
    fn after_a_coercion_call_an_unresolved_source_is_a_relay() {
        let coerce = activity(
            0,
            ATTACKER,
            "10.98.0.1:445",
            Body::Dcerpc(rpc_request("efsrpc", 0, "EfsRpcOpenFileRaw")),
        );
        let mut auth = as_dc1(ATTACKER, "", ResolutionMethod::Unspecified);
        auth.source_computer = None;
        let alerts = run(None, Directory::default(), &[coerce, auth]);
        // The coercion call is an alert of its own.
        assert_eq!(
            summary(&alerts),
            [
                ("efsrpc_coercion".into(), "src:10.98.0.18".into(), 1),
                ("ntlm_relay".into(), "src:10.98.0.18".into(), 1)
            ]
        );
        assert!(alerts[1].description.ends_with("right after 10.98.0.18 made the coercion call efsrpc EfsRpcOpenFileRaw: its authentication was coerced and relayed"));
    }

    #[test]
    fn a_computer_account_logging_on_from_its_own_address_is_not() {
        let own = as_dc1("10.98.0.1:50000", "dc1.lab.example", ResolutionMethod::Dns);
        // The workstation field is the client's own claim: it never proves a relay.
        let claimed = as_dc1(ATTACKER, "KALI", ResolutionMethod::NtlmWorkstation);
        assert!(run(None, Directory::default(), &[own, claimed]).is_empty());
    }
}
