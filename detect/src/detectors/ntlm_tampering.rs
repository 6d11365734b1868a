//! NTLM authentication tampering (MDI 2039, drop-the-MIC, CVE-2019-1040): a relay that strips
//! the AUTHENTICATE's integrity so it can drop signing. ntlmrelayx `--remove-mic` empties the MIC
//! and clears SIGN, ALWAYS_SIGN, KEY_EXCH and VERSION, but cannot touch MsvAvFlags inside the
//! NTLMv2 response, which still says a MIC is there. Fires on an AUTHENTICATE to a DC whose MIC
//! is absent or zero while MsvAvFlags says it is present, or whose signing, sealing or key
//! exchange flags were dropped against the same connection's NEGOTIATE. A patched DC refuses it:
//! the outcome says whether it worked.

use dcwatch_proto::v1::{activity::Body, alert::Confidence, alert_entity::Role, ntlm_activity};

use super::{Context, Detector, Kinds};
use crate::{
    catalogue::NTLM_TAMPERING,
    finding::{Finding, account_entity, actor_text, destination, destination_text, source_key},
    knowledge::Source,
    observed::Observed,
};

/// MsvAvFlags bit 0x2: the client put a MIC in the AUTHENTICATE (MS-NLMP 2.2.2.1).
const MIC_PRESENT: u32 = 0x2;

#[derive(Debug, Default)]
pub(super) struct NtlmTampering;

impl Detector for NtlmTampering {
    fn kinds(&self) -> Kinds {
        Kinds::ntlm(ntlm_activity::Type::Authenticate)
    }

    fn observe(&mut self, seen: &Observed<'_>, context: &mut Context<'_>) {
        let Some(Body::Ntlm(ntlm)) = seen.body() else {
            return;
        };
        if ntlm.r#type != ntlm_activity::Type::Authenticate as i32 {
            return;
        }
        let mic_stripped = ntlm.av_flags_present
            && ntlm.av_flags & MIC_PRESENT != 0
            && (!ntlm.mic_present || ntlm.mic_zero);
        if !mic_stripped && ntlm.dropped_flags.is_empty() {
            return;
        }
        let dc = context.knowledge.domain_controller(seen.dst, "");
        if !dc.yes {
            return;
        }
        let mut tampering = Vec::new();
        if mic_stripped {
            tampering.push(if ntlm.mic_present {
                "a zeroed MIC".to_owned()
            } else {
                "no MIC".to_owned()
            });
        }
        if !ntlm.dropped_flags.is_empty() {
            tampering.push(format!(
                "{} dropped since its NEGOTIATE",
                ntlm.dropped_flags.join(", ")
            ));
        }
        let outcome = if seen.succeeded() {
            "; the DC accepted it (unpatched for CVE-2019-1040?)"
        } else if seen.failed() {
            "; the DC refused it"
        } else {
            ""
        };
        let description = format!(
            "{} sent {} an NTLM AUTHENTICATE with {} although it announced a MIC: an NTLM relay stripping integrity (drop-the-MIC){outcome}",
            actor_text(seen),
            destination_text(seen),
            tampering.join(" and "),
        );
        let mut finding = Finding::on(
            &NTLM_TAMPERING,
            source_key(seen),
            seen,
            format!("NTLM AUTHENTICATE with {}", tampering.join(" and ")),
        )
        .describe(description)
        .entity(destination(seen, Role::DomainController))
        .detail("tampering", tampering.join("; "))
        .relied_on(dc.basis)
        .weighed_by_resolution(seen);
        if !ntlm.user.is_empty() {
            finding = finding.entity(account_entity(
                Role::SourceAccount,
                &ntlm.domain,
                &ntlm.user,
                context.knowledge.directory(),
            ));
        }
        if dc.source == Source::Traffic {
            finding = finding.confidence(Confidence::MediumConfidence);
        }
        context.raise(finding);
    }
}

#[cfg(test)]
mod tests {
    use dcwatch_entity::Directory;

    use crate::{
        Config,
        detectors::testing::{ntlm_authenticate, run, summary},
    };

    fn config() -> Config {
        Config {
            dc_addresses: vec!["10.98.0.1".parse().expect("an address")],
            ..Config::test_mode()
        }
    }

    #[test]
    fn a_stripped_mic_with_dropped_signing_to_a_dc_is_tampering() {
        let relayed = ntlm_authenticate(
            0,
            "10.98.0.19:50000",
            "10.98.0.1:445",
            "LAB",
            "alice",
            0,
            |body| {
                body.av_flags_present = true;
                body.av_flags = 0x2;
                body.mic_present = false;
                body.dropped_flags = vec!["SIGN".into(), "ALWAYS_SIGN".into(), "KEY_EXCH".into()];
            },
        );
        let alerts = run(Some(config()), Directory::default(), &[relayed]);
        assert_eq!(
            summary(&alerts),
            [("ntlm_tampering".into(), "src:10.98.0.19".into(), 1)]
        );
        assert_eq!(
            alerts[0].description,
            "LAB\\alice on 10.98.0.19 sent 10.98.0.1 an NTLM AUTHENTICATE with no MIC and SIGN, ALWAYS_SIGN, KEY_EXCH dropped since its NEGOTIATE although it announced a MIC: an NTLM relay stripping integrity (drop-the-MIC); the DC accepted it (unpatched for CVE-2019-1040?)"
        );
    }

    #[test]
    fn an_intact_mic_an_old_client_without_av_flags_or_a_member_server_target_is_not() {
        let intact = ntlm_authenticate(
            0,
            "10.98.0.19:50000",
            "10.98.0.1:445",
            "LAB",
            "alice",
            0,
            |body| {
                body.av_flags_present = true;
                body.av_flags = 0x2;
            },
        );
        // NTLMv1 or an old client: no MsvAvFlags, no MIC, nothing was stripped.
        let old = ntlm_authenticate(
            1,
            "10.98.0.19:50001",
            "10.98.0.1:445",
            "LAB",
            "alice",
            0,
            |body| {
                body.mic_present = false;
            },
        );
        let member = ntlm_authenticate(
            2,
            "10.98.0.19:50002",
            "10.98.0.40:445",
            "LAB",
            "alice",
            0,
            |body| {
                body.av_flags_present = true;
                body.av_flags = 0x2;
                body.mic_zero = true;
            },
        );
        assert!(run(Some(config()), Directory::default(), &[intact, old, member]).is_empty());
    }
}
