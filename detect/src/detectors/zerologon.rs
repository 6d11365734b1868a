//! Netlogon privilege elevation, Zerologon (MDI 2411, CVE-2020-1472): AES-CFB8 with an all-zero
//! IV lets a client that sends an all-zero credential authenticate one time in 256 as any
//! computer, a DC included; the exploit tries until it works, then resets that DC's password to
//! empty (NetrServerPasswordSet2). Deterministic: one NetrServerAuthenticate2/3 with an all-zero
//! client credential. Where stubs are sealed or unread, the volume gives it away (corelight's
//! rule): `VOLUME_THRESHOLD` NetrServerReqChallenge and as many NetrServerAuthenticate from one
//! source within `VOLUME_WINDOW`. A NetrServerPasswordSet2 from a source already caught, or
//! with an all-zero new password, escalates. A computer's monthly machine password change is a
//! NetrServerPasswordSet2 too, alone: not this.

use std::net::IpAddr;

use dcwatch_proto::v1::{
    DceRpcActivity, activity::Body, alert::Confidence, alert_entity::Role, dce_rpc_activity,
};

use super::{
    Context, Detector, Interface, Kinds,
    target::{clip, outcome_word},
};
use crate::{
    bounded::{BoundedMap, Window},
    catalogue::ZEROLOGON,
    finding::{
        Finding, account_entity, destination, destination_text, source_key, source_text,
        vouched_source_name,
    },
    observed::Observed,
    time::{MINUTE, Millis},
};

/// NETLOGON opnums (MS-NRPC 3.5.4.4).
const NETR_SERVER_REQ_CHALLENGE: u32 = 4;
const NETR_SERVER_AUTHENTICATE: u32 = 5;
const NETR_SERVER_AUTHENTICATE2: u32 = 15;
const NETR_SERVER_AUTHENTICATE3: u32 = 26;
const NETR_SERVER_PASSWORD_SET2: u32 = 30;

/// Challenges and authentications from one source within `VOLUME_WINDOW` (corelight: more than
/// 20 of each in 2 minutes; a computer sets up its secure channel with one of each).
pub(super) const VOLUME_THRESHOLD: usize = 20;
pub(super) const VOLUME_WINDOW: Millis = 2 * MINUTE;
/// A password set this soon after an attempt from the same source completes the attack.
pub(super) const ESCALATION_WITHIN: Millis = 30 * MINUTE;
pub(super) const MAX_SOURCES: usize = 20_000;

#[derive(Debug)]
struct Attempts {
    challenges: Window<()>,
    authentications: Window<()>,
    /// When this source was last caught attempting.
    caught: Option<Millis>,
}

#[derive(Debug)]
pub(super) struct Zerologon {
    sources: BoundedMap<Option<IpAddr>, Attempts>,
}

impl Default for Zerologon {
    fn default() -> Self {
        Self {
            sources: BoundedMap::new(MAX_SOURCES),
        }
    }
}

fn impersonated(rpc: &DceRpcActivity) -> &str {
    if rpc.account_name.is_empty() {
        &rpc.computer_name
    } else {
        &rpc.account_name
    }
}

impl Detector for Zerologon {
    fn kinds(&self) -> Kinds {
        Kinds::requests(Interface::Netlogon)
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        let Some(Body::Dcerpc(rpc)) = seen.body() else {
            return;
        };
        if rpc.r#type != dce_rpc_activity::Type::Request as i32 || rpc.interface_name != "netlogon"
        {
            return;
        }
        let authenticate = matches!(
            rpc.opnum,
            NETR_SERVER_AUTHENTICATE | NETR_SERVER_AUTHENTICATE2 | NETR_SERVER_AUTHENTICATE3
        );
        if !authenticate
            && !matches!(
                rpc.opnum,
                NETR_SERVER_REQ_CHALLENGE | NETR_SERVER_PASSWORD_SET2
            )
        {
            return;
        }
        let attempts = self.sources.touch(seen.src, seen.time, || Attempts {
            // One more than the threshold is all the rule needs to hold.
            challenges: Window::new(VOLUME_THRESHOLD + 1),
            authentications: Window::new(VOLUME_THRESHOLD + 1),
            caught: None,
        });
        let target = clip(impersonated(rpc));
        let target = target.as_str();
        let operation = clip(&rpc.operation);
        let as_whom = if target.is_empty() {
            String::new()
        } else {
            format!(" as {target}")
        };
        let (description, confidence, summary) = match rpc.opnum {
            NETR_SERVER_PASSWORD_SET2 => {
                let recent = attempts
                    .caught
                    .is_some_and(|at| seen.time.saturating_sub(at) <= ESCALATION_WITHIN);
                if !rpc.zero_password && !recent {
                    return;
                }
                let empty = if rpc.zero_password { " to empty" } else { "" };
                (
                    format!(
                        "{} {}reset the password of {}{empty} on {} (NetrServerPasswordSet2) after a Zerologon attempt (CVE-2020-1472): the domain controller's secure channel is taken over",
                        source_text(seen),
                        outcome_word(seen),
                        if target.is_empty() {
                            "a computer account"
                        } else {
                            target
                        },
                        destination_text(seen),
                    ),
                    Confidence::HighConfidence,
                    format!(
                        "netlogon NetrServerPasswordSet2{as_whom} zero={}",
                        rpc.zero_password
                    ),
                )
            }
            _ if authenticate && rpc.zero_credential => (
                format!(
                    "{} {}authenticated to the Netlogon service of {}{as_whom} with an all-zero credential ({}), the Zerologon exploit (CVE-2020-1472)",
                    source_text(seen),
                    outcome_word(seen),
                    destination_text(seen),
                    operation,
                ),
                Confidence::HighConfidence,
                format!("netlogon {operation}{as_whom} zero credential"),
            ),
            _ => {
                let window = if authenticate {
                    &mut attempts.authentications
                } else {
                    &mut attempts.challenges
                };
                window.push(seen.time, (), VOLUME_WINDOW);
                if attempts.challenges.len() < VOLUME_THRESHOLD
                    || attempts.authentications.len() < VOLUME_THRESHOLD
                {
                    return;
                }
                (
                    format!(
                        "{} sent {} NetrServerReqChallenge and {} NetrServerAuthenticate to {}{as_whom} within {} minutes, as the Zerologon exploit (CVE-2020-1472) does until it gets in",
                        source_text(seen),
                        attempts.challenges.len(),
                        attempts.authentications.len(),
                        destination_text(seen),
                        VOLUME_WINDOW / MINUTE,
                    ),
                    Confidence::MediumConfidence,
                    format!("netlogon {operation}{as_whom} (volume)"),
                )
            }
        };
        attempts.caught = Some(seen.time);
        let dc = context
            .knowledge
            .domain_controller(seen.src, vouched_source_name(seen));
        let mut finding = Finding::on(&ZEROLOGON, source_key(seen), seen, summary)
            .describe(description)
            .entity(destination(seen, Role::DomainController))
            .detail("operation", operation.clone())
            .detail("secure_channel_type", clip(&rpc.secure_channel_type))
            .relied_on(format!("source: {}", dc.basis))
            .confidence(confidence)
            .weighed_by_resolution(seen)
            .app("Netlogon");
        if confidence == Confidence::MediumConfidence {
            finding = finding.relied_on(
                "volume only: the credentials were not readable (sealed stubs or unread fields)",
            );
        }
        if !target.is_empty() {
            finding = finding
                .detail("impersonated", target)
                .entity(account_entity(
                    Role::AttackedAccount,
                    "",
                    target,
                    context.knowledge.directory(),
                ));
        }
        context.raise(finding);
    }

    fn evicted(&self) -> u64 {
        self.sources.evicted()
    }
}

#[cfg(test)]
mod tests {
    use dcwatch_entity::Directory;
    use dcwatch_proto::v1::{Activity, activity::Body, alert::Confidence, outcome::Status};

    use crate::detectors::testing::{activity, rpc_request, run, summary, with_outcome};

    const ATTACKER: &str = "10.98.0.80:50000";
    const DC: &str = "10.98.0.1:49670";

    fn netlogon(offset: i64, src: &str, opnum: u32, operation: &str, zero: bool) -> Activity {
        let mut body = rpc_request("netlogon", opnum, operation);
        body.computer_name = "DC1".into();
        body.account_name = "DC1$".into();
        body.secure_channel_type = "ServerSecureChannel".into();
        body.zero_credential = zero;
        activity(offset, src, DC, Body::Dcerpc(body))
    }

    #[test]
    fn an_all_zero_credential_then_a_password_reset_is_zerologon() {
        let mut reset = netlogon(5_000, ATTACKER, 30, "NetrServerPasswordSet2", false);
        if let Some(Body::Dcerpc(rpc)) = &mut reset.body {
            rpc.zero_password = true;
        }
        let alerts = run(
            None,
            Directory::default(),
            &[
                netlogon(0, ATTACKER, 4, "NetrServerReqChallenge", true),
                with_outcome(
                    netlogon(10, ATTACKER, 26, "NetrServerAuthenticate3", true),
                    Status::Success,
                    0,
                ),
                reset,
            ],
        );
        assert_eq!(
            summary(&alerts),
            [("zerologon".into(), "src:10.98.0.80".into(), 2)]
        );
        let alert = &alerts[0];
        assert_eq!(alert.external_id, 2411);
        assert!(
            alert
                .description
                .contains("reset the password of DC1$ to empty on 10.98.0.1"),
            "{}",
            alert.description
        );
        assert!(alert.entities.iter().any(|entity| entity.name == "DC1$"));
        assert_eq!(alert.outcome(), Status::Success);
    }

    #[test]
    fn the_first_zero_credential_alone_fires_naming_the_impersonated_dc() {
        let alerts = run(
            None,
            Directory::default(),
            &[netlogon(0, ATTACKER, 15, "NetrServerAuthenticate2", true)],
        );
        assert_eq!(alerts.len(), 1);
        assert!(
            alerts[0].description.contains("authenticated to the Netlogon service of 10.98.0.1 as DC1$ with an all-zero credential"),
            "{}",
            alerts[0].description
        );
    }

    #[test]
    fn sealed_attempts_by_volume_are_zerologon_at_medium_confidence() {
        let mut attempts = Vec::new();
        for n in 0..20 {
            attempts.push(netlogon(
                n * 100,
                ATTACKER,
                4,
                "NetrServerReqChallenge",
                false,
            ));
            attempts.push(netlogon(
                n * 100 + 50,
                ATTACKER,
                26,
                "NetrServerAuthenticate3",
                false,
            ));
        }
        let alerts = run(None, Directory::default(), &attempts);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].confidence(), Confidence::MediumConfidence);
        assert!(
            alerts[0]
                .description
                .contains("20 NetrServerReqChallenge and 20 NetrServerAuthenticate")
        );
    }

    #[test]
    fn secure_channels_and_machine_password_changes_are_not_zerologon() {
        let mut normal = Vec::new();
        // Computers setting up their secure channel once each, then a monthly password change,
        // and other Netlogon calls.
        for n in 0..30 {
            let src = format!("10.98.1.{n}:50000");
            normal.push(netlogon(n * 100, &src, 4, "NetrServerReqChallenge", false));
            normal.push(netlogon(
                n * 100 + 1,
                &src,
                26,
                "NetrServerAuthenticate3",
                false,
            ));
            normal.push(netlogon(
                n * 100 + 2,
                &src,
                30,
                "NetrServerPasswordSet2",
                false,
            ));
            normal.push(netlogon(
                n * 100 + 3,
                &src,
                21,
                "NetrLogonGetCapabilities",
                true,
            ));
        }
        // Nineteen of each from one source in two minutes: under the threshold.
        for n in 0..19 {
            normal.push(netlogon(
                10_000 + n,
                ATTACKER,
                4,
                "NetrServerReqChallenge",
                false,
            ));
            normal.push(netlogon(
                10_100 + n,
                ATTACKER,
                26,
                "NetrServerAuthenticate3",
                false,
            ));
        }
        assert!(run(None, Directory::default(), &normal).is_empty());
    }
}
