//! The LDAP ping (MS-ADTS 6.3.3): the DC locator's search of the rootDSE for the `Netlogon`
//! attribute, over CLDAP or TCP. Its filter names what the client looks for (a domain, a host,
//! a user account) and how it wants the answer (NtVer, AAC); the answer's opcode says whether
//! the user exists, which makes repeated pings an account enumeration.
//!
//! ```text
//! MS-ADTS 6.3.3.2: baseObject "" (rootDSE), scope baseObject, attributes "Netlogon", filter an
//! AND of equality terms among DnsDomain, Host, DnsHostName, User, AAC, DomainSid, DomainGuid,
//! NtVer. NtVer and AAC are 4-byte little-endian values.
//! MS-ADTS 6.3.1.9: the answer starts with a 2-byte little-endian Opcode:
//! 0x13 LOGON_SAM_LOGON_RESPONSE, 0x15 LOGON_SAM_USER_UNKNOWN, 0x17 LOGON_SAM_LOGON_RESPONSE_EX,
//! 0x19 LOGON_SAM_USER_UNKNOWN_EX (and 0x12/0x14/0x16/0x18 for the paused forms).
//! ```

use super::{LdapString, Scope};

/// The ping's terms, as the client sent them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PingRequest {
    pub user: Option<String>,
    pub nt_ver: Option<u32>,
    pub aac: Option<u32>,
    pub domain: Option<String>,
    pub host: Option<String>,
}

/// The ping a search is, if it is one: a base search of the rootDSE that asks for `Netlogon`
/// with at least one of the terms MS-ADTS lists. `filter` is the RFC 4515 text of
/// [`super::filter`], whose escaping (`\XX` for `(`, `)`, `*`, `\`, NUL and whatever is not
/// printable) lets each equality term be read back exactly.
#[must_use]
pub fn request(
    base: LdapString<'_>,
    scope: Scope,
    attributes: &[LdapString<'_>],
    filter: &str,
) -> Option<PingRequest> {
    let asks_netlogon = attributes
        .iter()
        .any(|attribute| attribute.as_bytes().eq_ignore_ascii_case(b"netlogon"));
    if !base.is_empty() || scope != Scope::BASE_OBJECT || !asks_netlogon {
        return None;
    }
    let mut ping = PingRequest::default();
    let mut terms = 0usize;
    for (attribute, value) in equality_terms(filter) {
        let text = || Some(String::from_utf8_lossy(&value).into_owned());
        match attribute.to_ascii_lowercase().as_str() {
            "user" => ping.user = text(),
            "ntver" => ping.nt_ver = little_endian(&value),
            "aac" => ping.aac = little_endian(&value),
            "dnsdomain" => ping.domain = text(),
            "host" | "dnshostname" => ping.host = ping.host.take().or_else(text),
            "domainsid" | "domainguid" => {}
            _ => continue,
        }
        terms += 1;
    }
    (terms > 0).then_some(ping)
}

/// The Opcode of a NETLOGON attribute value (MS-ADTS 6.3.1.9), when it has two bytes.
#[must_use]
pub fn response_opcode(netlogon: &[u8]) -> Option<u16> {
    netlogon
        .first_chunk::<2>()
        .map(|bytes| u16::from_le_bytes(*bytes))
}

fn little_endian(value: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(value).ok().map(u32::from_le_bytes)
}

/// The `(attribute=value)` items of an RFC 4515 filter, values unescaped. Substrings (an
/// unescaped `*`), presence, `>=`, `<=`, `~=` and extensible items are not equality terms and
/// are skipped, as is any item whose escapes are malformed.
fn equality_terms(filter: &str) -> impl Iterator<Item = (&str, Vec<u8>)> {
    filter.split('(').filter_map(|item| {
        let item = item.split(')').next()?;
        let (attribute, value) = item.split_once('=')?;
        let plain = !attribute.is_empty()
            && attribute
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b';');
        if !plain || value.contains('*') {
            return None;
        }
        Some((attribute, unescape(value)?))
    })
}

/// RFC 4515 3: `\` and two hex digits stand for one octet.
fn unescape(value: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(value.len());
    let mut bytes = value.bytes();
    while let Some(byte) = bytes.next() {
        if byte == b'\\' {
            let high = char::from(bytes.next()?).to_digit(16)?;
            let low = char::from(bytes.next()?).to_digit(16)?;
            out.push(u8::try_from(high * 16 + low).ok()?);
        } else {
            out.push(byte);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> LdapString<'_> {
        LdapString(text.as_bytes())
    }

    #[test]
    fn a_locator_ping_and_its_terms() {
        let filter = "(&(DnsDomain=corp.example)(Host=WS01)(User=alice)(NtVer=\\16\\00\\00\\20)\
                      (AAC=\\10\\00\\00\\00))";
        let ping = request(s(""), Scope::BASE_OBJECT, &[s("Netlogon")], filter).expect("a ping");
        assert_eq!(ping.domain.as_deref(), Some("corp.example"));
        assert_eq!(ping.host.as_deref(), Some("WS01"));
        assert_eq!(ping.user.as_deref(), Some("alice"));
        assert_eq!(ping.nt_ver, Some(0x2000_0016));
        assert_eq!(ping.aac, Some(0x10));
    }

    #[test]
    fn only_base_searches_of_the_root_for_netlogon_are_pings() {
        let filter = "(&(DnsDomain=corp.example)(NtVer=\\06\\00\\00\\00))";
        let netlogon = [s("netlogon")];
        assert!(request(s(""), Scope::BASE_OBJECT, &netlogon, filter).is_some());
        assert!(request(s("DC=corp"), Scope::BASE_OBJECT, &netlogon, filter).is_none());
        assert!(request(s(""), Scope::WHOLE_SUBTREE, &netlogon, filter).is_none());
        assert!(request(s(""), Scope::BASE_OBJECT, &[s("cn")], filter).is_none());
        // A rootDSE read is not a ping.
        assert!(request(s(""), Scope::BASE_OBJECT, &netlogon, "(objectClass=*)").is_none());
    }

    #[test]
    fn odd_terms_are_left_out() {
        // A substring User, a 3-byte NtVer, a bad escape in Host.
        let filter = "(&(DnsDomain=d)(User=adm*)(NtVer=\\06\\00\\00)(Host=a\\zz))";
        let ping = request(s(""), Scope::BASE_OBJECT, &[s("Netlogon")], filter).expect("a ping");
        assert_eq!(
            ping,
            PingRequest {
                domain: Some("d".to_owned()),
                nt_ver: None,
                ..PingRequest::default()
            }
        );
    }

    #[test]
    fn opcodes() {
        assert_eq!(response_opcode(&[0x17, 0x00, 0xaa]), Some(0x17));
        assert_eq!(response_opcode(&[0x19, 0x00]), Some(0x19));
        assert_eq!(response_opcode(&[0x17]), None);
    }
}
