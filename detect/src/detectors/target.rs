//! Whom a call is about, for the detectors of attacks on domain controllers: whether the
//! destination counts as a DC, whether a host a call names (a coercion's listener) is someone
//! other than the caller and the callee, and the client side of an answer (a KRB-ERROR goes from
//! the KDC to the client, so the client is its destination).

use std::net::IpAddr;

use dcwatch_proto::v1::{AlertEntity, alert::Confidence, alert_entity::Role};

use super::Context;
use crate::{
    finding::{
        Finding, account_entity, address_key, computer_text, destination_name, source_computer_at,
        source_name,
    },
    knowledge::{Knowledge, Source, Verdict, short_name},
    observed::Observed,
};

/// Whether the destination is a domain controller, for the rules that say "against a DC".
pub(super) struct DcTarget {
    pub verdict: Verdict,
    /// High when something said it is a DC; medium when nothing was known either way.
    pub confidence: Confidence,
}

/// `Some` when the destination is a DC, or when nothing at all is known of it (no directory, no
/// DC list, and it never answered as a DC: the sensor watches DCs, so it is taken as one, at
/// medium confidence); `None` when the directory or the configuration says it is not one.
pub(super) fn dc_target(seen: &Observed<'_>, knowledge: &Knowledge) -> Option<DcTarget> {
    let verdict = knowledge.domain_controller(seen.dst, destination_name(seen));
    if verdict.yes {
        return Some(DcTarget {
            verdict,
            confidence: Confidence::HighConfidence,
        });
    }
    (verdict.source == Source::Assumed).then(|| DcTarget {
        verdict: Verdict {
            basis: format!(
                "{}: taken as a domain controller, since the sensor watches them",
                verdict.basis
            ),
            ..verdict
        },
        confidence: Confidence::MediumConfidence,
    })
}

/// The host of a UNC path or a bare host name: `\\10.0.0.66\share\f` and `\\evil@80/x` name
/// `10.0.0.66` and `evil`; `\\?\UNC\host\share` names `host`. `None` for a local path or nothing.
pub(super) fn unc_host(text: &str) -> Option<&str> {
    let text = text.trim().trim_matches('\0');
    let text = text
        .strip_prefix("\\\\?\\UNC\\")
        .or_else(|| text.strip_prefix("\\\\"))
        .or_else(|| text.strip_prefix("//"))
        .unwrap_or(text);
    // A drive letter (C:\...) or a relative path is local.
    let bytes = text.as_bytes();
    if bytes.first().is_some_and(u8::is_ascii_alphabetic)
        && bytes.get(1) == Some(&b':')
        && matches!(bytes.get(2), None | Some(b'\\' | b'/'))
    {
        return None;
    }
    let host = text
        .split(['\\', '/', '@'])
        .next()
        .unwrap_or_default()
        .trim_end_matches('.');
    (!host.is_empty()).then_some(host)
}

/// Who a host named in a call is.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Named {
    /// The computer that made the call.
    Caller,
    /// The computer the call went to.
    Callee,
    /// Another domain controller, and on what that rests.
    DomainController(String),
    /// Someone else: a listener of the caller's choosing.
    Other,
    /// A name that could not be compared (the caller's own name is unknown).
    Unknown,
}

/// Who `host` (an address or a name) is, as far as the traffic and the directory tell.
pub(super) fn named(host: &str, seen: &Observed<'_>, knowledge: &Knowledge) -> Named {
    let host = host.trim_matches(['[', ']']);
    if let Ok(address) = host.parse::<IpAddr>() {
        if Some(address) == seen.src {
            return Named::Caller;
        }
        if Some(address) == seen.dst {
            return Named::Callee;
        }
        let dc = knowledge.domain_controller(Some(address), "");
        if dc.yes {
            return Named::DomainController(dc.basis);
        }
        return Named::Other;
    }
    let short = short_name(host);
    if short.is_empty() {
        return Named::Unknown;
    }
    if short_name(source_name(seen)) == short {
        return Named::Caller;
    }
    if short_name(destination_name(seen)) == short {
        return Named::Callee;
    }
    if let Some(computer) = knowledge.directory().by_dns_name(host) {
        if computer.is_domain_controller() {
            return Named::DomainController(format!(
                "directory: {} is a domain controller",
                computer.sam_account_name
            ));
        }
        return Named::Other;
    }
    if source_name(seen).is_empty() {
        Named::Unknown
    } else {
        Named::Other
    }
}

/// The client of an answer (a KRB-ERROR, a response): the address it went to, and the computer
/// the sensor resolved for the client side.
pub(super) fn answered_client(seen: &Observed<'_>) -> AlertEntity {
    source_computer_at(seen, seen.dst)
}

/// The key of the client an answer went to.
pub(super) fn answered_client_key(seen: &Observed<'_>) -> String {
    address_key(seen.dst)
}

/// The client of an answer as a description names it.
pub(super) fn answered_client_text(seen: &Observed<'_>) -> String {
    computer_text(source_name(seen), seen.dst)
}

/// A finding about what the client of an answer did: its source computer is the answer's
/// destination.
pub(super) fn on_answer(
    kind: &'static crate::catalogue::Kind,
    seen: &Observed<'_>,
    summary: impl Into<String>,
) -> Finding {
    Finding::from_source(
        kind,
        answered_client_key(seen),
        seen,
        summary,
        answered_client(seen),
    )
}

/// The host a coercion makes the victim authenticate to.
pub(super) fn listener(host: &str) -> AlertEntity {
    AlertEntity {
        role: Role::Listener.into(),
        name: host.to_owned(),
        address: host
            .trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .map(|ip| ip.to_string())
            .unwrap_or_default(),
        ..AlertEntity::default()
    }
}

/// Adds the account the activity names, with its directory SID and tags.
pub(super) fn with_account(
    finding: Finding,
    seen: &Observed<'_>,
    context: &Context<'_>,
) -> Finding {
    match &seen.activity.account {
        Some(account) if !account.name.is_empty() => finding.entity(account_entity(
            Role::SourceAccount,
            &account.domain,
            &account.name,
            context.knowledge.directory(),
        )),
        _ => finding,
    }
}

/// "successfully ", "unsuccessfully " or nothing, as the outcome says.
pub(super) fn outcome_word(seen: &Observed<'_>) -> &'static str {
    if seen.succeeded() {
        "successfully "
    } else if seen.failed() {
        "unsuccessfully "
    } else {
        ""
    }
}

/// Characters of a wire-supplied text (a name, a path) a description quotes.
pub(super) const MAX_QUOTED: usize = 200;

/// A wire-supplied text cut for a description: the first `MAX_QUOTED` characters, and an
/// ellipsis when there were more.
pub(super) fn clip(text: &str) -> String {
    // No more bytes than the limit in characters: nothing to cut, and no character to count.
    if text.len() <= MAX_QUOTED {
        return text.to_owned();
    }
    let mut clipped = String::new();
    push_clipped(&mut clipped, text);
    clipped
}

/// Appends `clip(text)` to `out`.
fn push_clipped(out: &mut String, text: &str) {
    if text.len() <= MAX_QUOTED {
        out.push_str(text);
        return;
    }
    let mut chars = text.chars();
    out.extend(chars.by_ref().take(MAX_QUOTED));
    if chars.next().is_some() {
        out.push('…');
    }
}

/// A list for a description or a detail: the first `max` items, and how many more. Written
/// into one string: a list per finding, each item clipped into its own string and then
/// joined, was a visible share of the findings' cost.
pub(super) fn listed<'a>(items: impl IntoIterator<Item = &'a str>, max: usize) -> String {
    let mut text = String::new();
    let mut shown = 0_usize;
    let mut more = 0_usize;
    for item in items {
        if shown < max {
            if shown > 0 {
                text.push_str(", ");
            }
            push_clipped(&mut text, item);
            shown += 1;
        } else {
            more += 1;
        }
    }
    if more > 0 {
        use std::fmt::Write as _;
        // Writing to a String cannot fail.
        let _ = write!(text, " and {more} more");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unc_hosts_are_read_from_every_form_coercion_tools_use() {
        assert_eq!(unc_host(r"\\10.0.0.66\share\x.txt"), Some("10.0.0.66"));
        assert_eq!(unc_host(r"\\attacker@80/test"), Some("attacker"));
        assert_eq!(unc_host(r"\\?\UNC\evil.example\s"), Some("evil.example"));
        assert_eq!(unc_host(r"\\WS01"), Some("WS01"));
        assert_eq!(unc_host("10.0.0.66"), Some("10.0.0.66"));
        assert_eq!(unc_host(r"C:\Windows\x"), None);
        assert_eq!(unc_host(r"C:\Temp\a.txt"), None);
        assert_eq!(unc_host(""), None);
        assert_eq!(unc_host(r"\\"), None);
    }

    #[test]
    fn short_names_drop_domain_and_dollar() {
        assert_eq!(short_name("WS01.lab.example"), "ws01");
        assert_eq!(short_name("WS01$"), "ws01");
        assert_eq!(listed(["a", "b", "c"], 2), "a, b and 1 more");
    }

    #[test]
    fn clipping_counts_characters_not_bytes() {
        let exact = "a".repeat(MAX_QUOTED);
        assert_eq!(clip(&exact), exact);
        assert_eq!(clip(&format!("{exact}b")), format!("{exact}…"));
        // 150 characters in 300 bytes: longer than the limit in bytes, not in characters.
        let wide = "é".repeat(150);
        assert_eq!(clip(&wide), wide);
        let wider = "é".repeat(MAX_QUOTED + 1);
        assert_eq!(clip(&wider), format!("{}…", "é".repeat(MAX_QUOTED)));
    }
}
