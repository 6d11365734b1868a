//! What a detector reports: evidence that an attack of some kind happened, keyed by the entity
//! the alert is about. The book (book.rs) turns findings into alerts, one open alert per
//! (type, primary entity).

use std::net::IpAddr;

use dcwatch_entity::Directory;
use dcwatch_proto::v1::{
    AlertEntity, Certainty, Detail, Evidence, ResolutionMethod, Tag, alert::Confidence,
    alert_entity::Role, outcome::Status,
};

use crate::{catalogue::Kind, learning::Behaviour, observed::Observed, time::Millis};

#[derive(Debug, Clone)]
pub struct Finding {
    pub kind: &'static Kind,
    /// The primary entity: `src:10.0.0.5` for what a computer did, `account:lab\alice` for what
    /// happened to or with an account.
    pub key: String,
    pub start: Millis,
    pub end: Millis,
    pub description: String,
    pub entities: Vec<AlertEntity>,
    pub evidence: Vec<Evidence>,
    /// Pieces of evidence this finding adds to the alert's count.
    pub count: u64,
    pub details: Vec<Detail>,
    pub relied_on: Vec<String>,
    pub confidence: Confidence,
    pub outcome: Status,
    pub protocol: &'static str,
    /// What the finding shows in profile terms, for the detections that learn (Part II).
    pub behaviour: Option<Behaviour>,
}

impl Finding {
    /// A finding on one activity: its time, its evidence line, its protocol, and the source
    /// computer and account it names.
    pub fn on(
        kind: &'static Kind,
        key: String,
        seen: &Observed<'_>,
        summary: impl Into<String>,
    ) -> Self {
        let mut finding = Self {
            kind,
            key,
            start: seen.time,
            end: seen.time,
            description: String::new(),
            entities: Vec::new(),
            evidence: vec![seen.evidence(summary)],
            count: 1,
            details: Vec::new(),
            relied_on: Vec::new(),
            confidence: Confidence::HighConfidence,
            outcome: seen.status(),
            protocol: app_name(seen),
            behaviour: None,
        };
        finding.entities.push(source_computer(seen));
        finding
    }

    /// For evidence whose sender is not the actor (a Windows event forwarded by a SIEM): no
    /// source computer.
    pub fn without_source_computer(mut self) -> Self {
        self.entities
            .retain(|entity| entity.role() != Role::SourceComputer);
        self
    }

    pub fn describe(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    pub fn entity(mut self, entity: AlertEntity) -> Self {
        if !self.entities.contains(&entity) {
            self.entities.push(entity);
        }
        self
    }

    pub fn detail(mut self, name: &str, value: impl Into<String>) -> Self {
        self.details.push(Detail {
            name: name.to_owned(),
            value: value.into(),
        });
        self
    }

    pub fn relied_on(mut self, basis: impl Into<String>) -> Self {
        let basis = basis.into();
        if !basis.is_empty() && !self.relied_on.contains(&basis) {
            self.relied_on.push(basis);
        }
        self
    }

    pub fn confidence(mut self, confidence: Confidence) -> Self {
        self.confidence = confidence;
        self
    }

    pub fn outcome(mut self, outcome: Status) -> Self {
        self.outcome = outcome;
        self
    }

    /// A finding that sums a window: it starts at `start` and carries `count` pieces.
    pub fn spanning(mut self, start: Millis, count: u64) -> Self {
        self.start = self.start.min(start);
        self.count = count;
        self
    }

    pub fn evidence(mut self, evidence: impl IntoIterator<Item = Evidence>) -> Self {
        self.evidence.splice(0..0, evidence);
        self
    }

    pub fn behaviour(mut self, behaviour: Behaviour) -> Self {
        self.behaviour = Some(behaviour);
        self
    }

    pub fn app(mut self, protocol: &'static str) -> Self {
        self.protocol = protocol;
        self
    }

    /// Lowers the confidence when the source computer was resolved with low certainty
    /// (DETECTIONS.md: a LOW-certainty source lowers the alert's confidence).
    pub fn weighed_by_resolution(mut self, seen: &Observed<'_>) -> Self {
        let certainty = seen
            .activity
            .source_computer
            .as_ref()
            .map(dcwatch_proto::v1::Computer::certainty);
        if certainty != Some(Certainty::High) && self.confidence == Confidence::HighConfidence {
            self.confidence = Confidence::MediumConfidence;
        }
        if let Some(computer) = &seen.activity.source_computer
            && !computer.name.is_empty()
        {
            self.relied_on.push(format!(
                "name resolution: {} by {}, {} certainty",
                computer.name,
                computer.method().as_str_name(),
                computer.certainty().as_str_name()
            ));
        }
        self
    }
}

/// The key of what an address did: `src:10.0.0.5`.
pub fn address_key(address: Option<IpAddr>) -> String {
    address.map_or_else(|| "src:unknown".to_owned(), |ip| format!("src:{ip}"))
}

/// The key of what a source address did.
pub fn source_key(seen: &Observed<'_>) -> String {
    address_key(seen.src)
}

/// The key of an account: its name without domain or realm, since Kerberos says `LAB.EXAMPLE`
/// where NTLM says `LAB` for the same account.
pub fn account_key(name: &str) -> String {
    format!("account:{}", crate::knowledge::account_key(name))
}

/// The source computer of an activity: its resolved name when the sensor resolved one, its
/// address always.
pub fn source_computer(seen: &Observed<'_>) -> AlertEntity {
    source_computer_at(seen, seen.src)
}

/// The source computer the sensor resolved, at `address`: the client side, which is the
/// destination of an answer (the sensor resolves `source_computer` to the client whichever way
/// the message went).
pub fn source_computer_at(seen: &Observed<'_>, address: Option<IpAddr>) -> AlertEntity {
    computer_entity(
        Role::SourceComputer,
        address,
        seen.activity.source_computer.as_ref(),
    )
}

/// The resolved name of the computer that acted (the client side), empty when unresolved.
pub fn source_name<'a>(seen: &Observed<'a>) -> &'a str {
    seen.activity
        .source_computer
        .as_ref()
        .map_or("", |computer| computer.name.as_str())
}

/// The resolved name of the other end (the sensor names it only when it is not a DC).
pub fn destination_name<'a>(seen: &Observed<'a>) -> &'a str {
    seen.activity
        .destination_computer
        .as_ref()
        .map_or("", |computer| computer.name.as_str())
}

/// The computer the activity went to.
pub fn destination(seen: &Observed<'_>, role: Role) -> AlertEntity {
    computer_entity(role, seen.dst, seen.activity.destination_computer.as_ref())
}

fn computer_entity(
    role: Role,
    address: Option<IpAddr>,
    computer: Option<&dcwatch_proto::v1::Computer>,
) -> AlertEntity {
    AlertEntity {
        role: role.into(),
        name: computer
            .map(|computer| computer.name.clone())
            .unwrap_or_default(),
        sid: computer
            .map(|computer| computer.sid.clone())
            .unwrap_or_default(),
        address: address.map(|ip| ip.to_string()).unwrap_or_default(),
        certainty: computer
            .map_or(
                Certainty::Unspecified,
                dcwatch_proto::v1::Computer::certainty,
            )
            .into(),
        method: computer
            .map_or(
                ResolutionMethod::Unspecified,
                dcwatch_proto::v1::Computer::method,
            )
            .into(),
        tags: computer
            .map(|computer| computer.tags.clone())
            .unwrap_or_default(),
    }
}

/// An account in a role, with its SID and tags when the directory knows it.
pub fn account_entity(role: Role, domain: &str, name: &str, directory: &Directory) -> AlertEntity {
    let found = if domain.is_empty() {
        directory.account(name)
    } else {
        directory
            .account(&format!("{domain}\\{name}"))
            .or_else(|| directory.account(name))
    };
    AlertEntity {
        role: role.into(),
        name: if domain.is_empty() {
            name.to_owned()
        } else {
            format!("{domain}\\{name}")
        },
        sid: found.map(|object| object.sid.clone()).unwrap_or_default(),
        tags: found
            .map(|object| {
                directory
                    .tags(object)
                    .iter()
                    .map(|tag| Tag {
                        name: tag.name.as_str().to_owned(),
                        reason: tag.reason.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        ..AlertEntity::default()
    }
}

/// How a description names a computer: `WS01 (10.0.0.5)`, or the address alone.
pub fn computer_text(name: &str, address: Option<IpAddr>) -> String {
    match (name.is_empty(), address) {
        (false, Some(address)) => format!("{name} ({address})"),
        (false, None) => name.to_owned(),
        (true, Some(address)) => address.to_string(),
        (true, None) => "an unknown computer".to_owned(),
    }
}

/// The source as a description names it: `WS01 (10.0.0.5)`.
pub fn source_text(seen: &Observed<'_>) -> String {
    computer_text(source_name(seen), seen.src)
}

/// The destination as a description names it.
pub fn destination_text(seen: &Observed<'_>) -> String {
    computer_text(destination_name(seen), seen.dst)
}

/// Who acted, as a description names them: `LAB\alice on WS01 (10.0.0.5)`, or the source alone.
pub fn actor_text(seen: &Observed<'_>) -> String {
    let account = seen.account_text();
    if account.is_empty() {
        source_text(seen)
    } else {
        format!("{account} on {}", source_text(seen))
    }
}

/// CEF's `app=`: the protocol, named as MDI's samples name it.
fn app_name(seen: &Observed<'_>) -> &'static str {
    use dcwatch_proto::v1::activity::Body;
    match seen.body() {
        Some(Body::Kerberos(_)) => "Kerberos",
        Some(Body::Ntlm(_)) => "Ntlm",
        Some(Body::Ldap(_)) => "Ldap",
        Some(Body::Dns(_)) => "Dns",
        Some(Body::Smb(_)) => "Smb",
        Some(Body::Dcerpc(rpc)) => match rpc.interface_name.as_str() {
            "drsuapi" => "Drsr",
            "samr" => "Samr",
            "lsarpc" => "LsaRpc",
            "srvsvc" => "SrvSvc",
            "netlogon" => "Netlogon",
            "svcctl" => "Svcctl",
            _ => "Rpc",
        },
        Some(Body::Netbios(_)) => "NetBios",
        Some(Body::Rdp(_)) => "Rdp",
        Some(Body::Radius(_)) => "VpnConnection",
        Some(Body::WindowsEvent(_)) => "WindowsEvent",
        Some(Body::Ntp(_)) => "Ntp",
        None => "",
    }
}
