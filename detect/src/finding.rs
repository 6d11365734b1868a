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

/// The constructors and the builders that do work are `#[cold]`: a few activities in a hundred
/// make a finding. A cold call marks the blocks that lead to it (a finding's texts and entities)
/// unlikely, so the compiler lays them out after a detector's per-activity path instead of among
/// its lines (issue #13: instruction-cache misses are most of what the detectors add to a replay).
impl Finding {
    /// A finding on one activity: its time, its evidence line, its protocol, and the source
    /// computer and account it names.
    #[cold]
    pub fn on(
        kind: &'static Kind,
        key: String,
        seen: &Observed<'_>,
        summary: impl Into<String>,
    ) -> Self {
        Self::from_source(kind, key, seen, summary, source_computer(seen))
    }

    /// A finding on one activity whose source computer is `source` (the client of an answer,
    /// the workstation an event names), built once rather than replaced.
    #[cold]
    pub fn from_source(
        kind: &'static Kind,
        key: String,
        seen: &Observed<'_>,
        summary: impl Into<String>,
        source: AlertEntity,
    ) -> Self {
        Self {
            kind,
            key,
            start: seen.time,
            end: seen.time,
            description: String::new(),
            entities: vec![source],
            evidence: vec![seen.evidence(summary)],
            count: 1,
            details: Vec::new(),
            relied_on: Vec::new(),
            confidence: Confidence::HighConfidence,
            outcome: seen.status(),
            protocol: app_name(seen),
            behaviour: None,
        }
    }

    /// For evidence whose sender is not the actor (a Windows event forwarded by a SIEM): no
    /// source computer.
    #[cold]
    pub fn without_source_computer(mut self) -> Self {
        self.entities
            .retain(|entity| entity.role() != Role::SourceComputer);
        self
    }

    pub fn describe(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    #[cold]
    pub fn entity(mut self, entity: AlertEntity) -> Self {
        if !self.entities.contains(&entity) {
            self.entities.push(entity);
        }
        self
    }

    #[cold]
    pub fn detail(mut self, name: &str, value: impl Into<String>) -> Self {
        self.details.push(Detail {
            name: name.to_owned(),
            value: value.into(),
        });
        self
    }

    #[cold]
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

    #[cold]
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
    #[cold]
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
            // Appended piece by piece (`format!` cost more than the rest of this): "name
            // resolution: WS01 by NTLM, HIGH certainty".
            let method = computer.method().as_str_name();
            let certainty = computer.certainty().as_str_name();
            let mut basis =
                String::with_capacity(40 + computer.name.len() + method.len() + certainty.len());
            for piece in [
                "name resolution: ",
                &computer.name,
                " by ",
                method,
                ", ",
                certainty,
                " certainty",
            ] {
                basis.push_str(piece);
            }
            self.relied_on.push(basis);
        }
        self
    }
}

/// The key of what an address did: `src:10.0.0.5`.
pub fn address_key(address: Option<IpAddr>) -> String {
    let Some(address) = address else {
        return "src:unknown".to_owned();
    };
    let mut key = String::with_capacity(4 + MAX_ADDRESS_TEXT);
    key.push_str("src:");
    push_address(&mut key, address);
    key
}

/// The longest text `push_address` writes without growing the string (an IPv6 address may be
/// longer, and then it does).
const MAX_ADDRESS_TEXT: usize = 15;

/// Writes an address as `Display` does. IPv4 by hand: the formatting machinery was most of the
/// cost of an address's text, and every finding writes several (its key, its descriptions, its
/// entities).
pub fn push_address(out: &mut String, address: IpAddr) {
    match address {
        IpAddr::V4(v4) => {
            let mut text = Ascii::default();
            text.ipv4(v4);
            out.push_str(text.as_str());
        }
        IpAddr::V6(v6) => {
            use std::fmt::Write as _;
            // Writing to a String cannot fail.
            let _ = write!(out, "{v6}");
        }
    }
}

/// An endpoint as `SocketAddr`'s `Display` writes it (`10.0.0.5:49152`, `[fe80::1]:88`), empty
/// without an address: an evidence line's `src` and `dst`.
pub fn endpoint_text(address: Option<IpAddr>, port: u16) -> String {
    match address {
        None => String::new(),
        Some(IpAddr::V4(v4)) => {
            let mut text = Ascii::default();
            text.ipv4(v4);
            text.byte(b':');
            text.decimal(port);
            text.as_str().to_owned()
        }
        // Rare: std's own text, `[fe80::1]:88`.
        Some(v6) => std::net::SocketAddr::new(v6, port).to_string(),
    }
}

/// An IPv4 endpoint's characters, gathered on the stack and appended at once (a `String::push`
/// per character checks the capacity each time).
#[derive(Default)]
struct Ascii {
    /// `255.255.255.255:65535`, the longest it holds.
    bytes: [u8; 21],
    len: usize,
}

impl Ascii {
    fn byte(&mut self, byte: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }

    fn decimal(&mut self, number: u16) {
        let mut digits = [0_u8; 5];
        let mut start = digits.len();
        let mut rest = number;
        loop {
            start -= 1;
            digits[start] = b"0123456789"[usize::from(rest % 10)];
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        for &digit in &digits[start..] {
            self.byte(digit);
        }
    }

    fn ipv4(&mut self, address: std::net::Ipv4Addr) {
        for (index, octet) in address.octets().into_iter().enumerate() {
            if index > 0 {
                self.byte(b'.');
            }
            if octet >= 100 {
                self.byte(b'0' + octet / 100);
            }
            if octet >= 10 {
                self.byte(b'0' + octet / 10 % 10);
            }
            self.byte(b'0' + octet % 10);
        }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

/// An address as text (`push_address`).
pub fn address_text(address: IpAddr) -> String {
    let mut text = String::with_capacity(MAX_ADDRESS_TEXT);
    push_address(&mut text, address);
    text
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

/// The source's name when it may vouch for what the source is (a DC or not): resolved with high
/// certainty. A low-certainty name is the client's own claim (NTLM's workstation field), which
/// an attacker sets to a DC's name at will.
pub fn vouched_source_name<'a>(seen: &Observed<'a>) -> &'a str {
    vouched(seen.activity.source_computer.as_ref())
}

/// [`vouched_source_name`] for the other end.
pub fn vouched_destination_name<'a>(seen: &Observed<'a>) -> &'a str {
    vouched(seen.activity.destination_computer.as_ref())
}

fn vouched(computer: Option<&dcwatch_proto::v1::Computer>) -> &str {
    computer
        .filter(|computer| computer.certainty() == Certainty::High)
        .map_or("", |computer| computer.name.as_str())
}

/// The computer the activity went to.
pub fn destination(seen: &Observed<'_>, role: Role) -> AlertEntity {
    computer_entity(role, seen.dst, seen.activity.destination_computer.as_ref())
}

#[cold]
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
        address: address.map(address_text).unwrap_or_default(),
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
#[cold]
pub fn account_entity(role: Role, domain: &str, name: &str, directory: &Directory) -> AlertEntity {
    let full = if domain.is_empty() {
        name.to_owned()
    } else {
        let mut full = String::with_capacity(domain.len() + 1 + name.len());
        full.push_str(domain);
        full.push('\\');
        full.push_str(name);
        full
    };
    // Without a directory (a replay without one) there is nothing to look up, and a lookup
    // lowercases its name into a new string.
    let found = if directory.is_empty() {
        None
    } else if domain.is_empty() {
        directory.account(name)
    } else {
        directory.account(&full).or_else(|| directory.account(name))
    };
    AlertEntity {
        role: role.into(),
        name: full,
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
    let mut text = String::with_capacity(name.len() + 3 + MAX_ADDRESS_TEXT);
    push_computer_text(&mut text, name, address);
    text
}

/// Appends `computer_text(name, address)` to `out`.
fn push_computer_text(out: &mut String, name: &str, address: Option<IpAddr>) {
    match (name.is_empty(), address) {
        (false, Some(address)) => {
            out.push_str(name);
            out.push_str(" (");
            push_address(out, address);
            out.push(')');
        }
        (false, None) => out.push_str(name),
        (true, Some(address)) => push_address(out, address),
        (true, None) => out.push_str("an unknown computer"),
    }
}

/// The source as a description names it: `WS01 (10.0.0.5)`.
#[cold]
pub fn source_text(seen: &Observed<'_>) -> String {
    computer_text(source_name(seen), seen.src)
}

/// The destination as a description names it.
#[cold]
pub fn destination_text(seen: &Observed<'_>) -> String {
    computer_text(destination_name(seen), seen.dst)
}

/// Who acted, as a description names them: `LAB\alice on WS01 (10.0.0.5)`, or the source alone.
#[cold]
pub fn actor_text(seen: &Observed<'_>) -> String {
    let mut text = seen.account_text();
    if text.is_empty() {
        return source_text(seen);
    }
    text.push_str(" on ");
    push_computer_text(&mut text, source_name(seen), seen.src);
    text
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

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use std::net::SocketAddr;

    use super::{address_key, address_text, computer_text, endpoint_text};

    #[test]
    fn addresses_read_as_std_writes_them() {
        for octet in 0..=255_u8 {
            let v4 = IpAddr::V4(Ipv4Addr::new(octet, 0, 99, octet.wrapping_mul(7)));
            assert_eq!(address_text(v4), v4.to_string());
        }
        for v6 in [
            Ipv6Addr::LOCALHOST,
            Ipv6Addr::UNSPECIFIED,
            "fe80::1:2".parse().expect("an address"),
            "::ffff:10.0.0.5".parse().expect("an address"),
            "2001:db8:0:0:1:0:0:1".parse().expect("an address"),
        ] {
            assert_eq!(address_text(IpAddr::V6(v6)), v6.to_string());
        }
        assert_eq!(
            address_text(IpAddr::V4(Ipv4Addr::BROADCAST)),
            "255.255.255.255"
        );
    }

    #[test]
    fn endpoints_read_as_socket_addresses_write_them() {
        let v6: IpAddr = "fe80::1".parse().expect("an address");
        let v4 = IpAddr::V4(Ipv4Addr::new(10, 98, 0, 5));
        for port in [0, 7, 88, 389, 5000, 49_152, 65_535] {
            for address in [v4, v6] {
                assert_eq!(
                    endpoint_text(Some(address), port),
                    SocketAddr::new(address, port).to_string()
                );
            }
        }
        assert_eq!(endpoint_text(Some(v6), 88), "[fe80::1]:88");
        assert_eq!(endpoint_text(None, 88), "");
    }

    #[test]
    fn keys_and_computers_name_their_address() {
        let address = Some(IpAddr::V4(Ipv4Addr::new(10, 98, 0, 105)));
        assert_eq!(address_key(address), "src:10.98.0.105");
        assert_eq!(address_key(None), "src:unknown");
        assert_eq!(computer_text("WS01", address), "WS01 (10.98.0.105)");
        assert_eq!(computer_text("", address), "10.98.0.105");
        assert_eq!(computer_text("WS01", None), "WS01");
        assert_eq!(computer_text("", None), "an unknown computer");
    }
}
