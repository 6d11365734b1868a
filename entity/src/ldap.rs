//! From an LDAP search entry of Active Directory to an [`Object`]: the attribute syntaxes
//! (binary SIDs and GUIDs, FILETIME and generalized time, userAccountControl) read without I/O,
//! so the directory sync's daemon only moves bytes.

use std::collections::HashMap;

use crate::{
    model::{Object, ObjectKind},
    uac::Uac,
};

/// Every attribute the directory sync reads (the README lists them with their use).
pub const ATTRIBUTES: [&str; 23] = [
    "objectClass",
    "objectGUID",
    "objectSid",
    "sAMAccountName",
    "userPrincipalName",
    "dNSHostName",
    "operatingSystem",
    "operatingSystemVersion",
    "userAccountControl",
    "msDS-SupportedEncryptionTypes",
    "servicePrincipalName",
    "adminCount",
    "member",
    "primaryGroupID",
    "whenCreated",
    "pwdLastSet",
    "lastLogonTimestamp",
    "accountExpires",
    "isDeleted",
    "msDS-AllowedToDelegateTo",
    "msDS-AllowedToActOnBehalfOfOtherIdentity",
    "uSNChanged",
    "name",
];

/// The objects the sync reads: accounts (users, computers, managed service accounts, which are
/// all of class user) and groups.
pub const FILTER: &str = "(|(objectClass=user)(objectClass=group))";

/// One search result entry: its DN and its attributes by lowercase name, values as bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawEntry {
    pub dn: String,
    pub attrs: HashMap<String, Vec<Vec<u8>>>,
}

impl RawEntry {
    pub fn new(dn: impl Into<String>) -> Self {
        Self {
            dn: dn.into(),
            attrs: HashMap::new(),
        }
    }

    /// Adds values of `name` (any case).
    pub fn with(
        mut self,
        name: &str,
        values: impl IntoIterator<Item = impl Into<Vec<u8>>>,
    ) -> Self {
        self.attrs
            .entry(name.to_ascii_lowercase())
            .or_default()
            .extend(values.into_iter().map(Into::into));
        self
    }

    pub fn values(&self, name: &str) -> &[Vec<u8>] {
        self.attrs
            .get(&name.to_ascii_lowercase())
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    pub fn first(&self, name: &str) -> Option<&[u8]> {
        self.values(name).first().map(Vec::as_slice)
    }

    pub fn text(&self, name: &str) -> Option<String> {
        self.first(name)
            .map(|value| String::from_utf8_lossy(value).into_owned())
    }

    fn texts(&self, name: &str) -> Vec<String> {
        self.values(name)
            .iter()
            .map(|value| String::from_utf8_lossy(value).into_owned())
            .collect()
    }

    fn integer(&self, name: &str) -> Option<i64> {
        std::str::from_utf8(self.first(name)?)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// An unsigned 32-bit attribute; AD writes flags above 2^31 as negative INTEGERs.
    fn flags(&self, name: &str) -> Option<u32> {
        let value = self.integer(name)?;
        u32::try_from(value)
            .ok()
            .or_else(|| i32::try_from(value).ok().map(i32::cast_unsigned))
    }

    fn boolean(&self, name: &str) -> bool {
        self.first(name)
            .is_some_and(|value| value.eq_ignore_ascii_case(b"TRUE"))
    }

    /// uSNChanged: where an incremental sync starts from.
    pub fn usn_changed(&self) -> Option<u64> {
        u64::try_from(self.integer("uSNChanged")?).ok()
    }

    /// A group's members, unless the DC cut them into ranges (`member;range=0-1499`): then
    /// `Err(next_start)` says where the rest begins.
    pub fn members(&self) -> Result<Vec<String>, u64> {
        let ranged = self
            .attrs
            .keys()
            .find_map(|key| key.strip_prefix("member;range="));
        match ranged {
            Some(range) => match range.split_once('-') {
                Some((_, "*")) | None => Ok(self.ranged_values()),
                Some((_, end)) => end.parse::<u64>().map_or_else(
                    |_| Ok(self.ranged_values()),
                    |end| Err(end.saturating_add(1)),
                ),
            },
            None => Ok(self.texts("member")),
        }
    }

    /// The values of the `member;range=...` attribute, and of `member` if both came.
    pub fn ranged_values(&self) -> Vec<String> {
        self.attrs
            .iter()
            .filter(|(key, _)| *key == "member" || key.starts_with("member;range="))
            .flat_map(|(_, values)| values.iter())
            .map(|value| String::from_utf8_lossy(value).into_owned())
            .collect()
    }
}

/// A binary SID (MS-DTYP 2.4.2.2) in its string form, `S-1-5-21-...`.
pub fn sid_to_string(bytes: &[u8]) -> Option<String> {
    let (&revision, rest) = bytes.split_first()?;
    let (&count, rest) = rest.split_first()?;
    let authority = rest.get(..6)?;
    let subs = rest.get(6..)?;
    if subs.len() != usize::from(count) * 4 {
        return None;
    }
    let authority = authority
        .iter()
        .fold(0_u64, |value, byte| value << 8 | u64::from(*byte));
    let mut text = format!("S-{revision}-{authority}");
    for sub in subs.chunks_exact(4) {
        let value = u32::from_le_bytes([sub[0], sub[1], sub[2], sub[3]]);
        text.push_str(&format!("-{value}"));
    }
    Some(text)
}

/// A binary GUID (MS-DTYP 2.3.4.2: three little-endian fields, then eight bytes) in its string
/// form, `f7e0c5c1-...`.
pub fn guid_to_string(bytes: &[u8]) -> Option<String> {
    let bytes: &[u8; 16] = bytes.try_into().ok()?;
    Some(format!(
        "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{}",
        u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
        u16::from_le_bytes([bytes[4], bytes[5]]),
        u16::from_le_bytes([bytes[6], bytes[7]]),
        bytes[8],
        bytes[9],
        hex::encode(&bytes[10..])
    ))
}

/// 100-ns intervals from 1601-01-01 to 1970-01-01.
const FILETIME_UNIX_EPOCH: i64 = 116_444_736_000_000_000;
/// "Never" in accountExpires and friends.
const FILETIME_NEVER: i64 = i64::MAX;

/// A FILETIME (100-ns intervals since 1601) as Unix milliseconds; 0 and "never" are `None`.
pub fn filetime_to_ms(filetime: i64) -> Option<i64> {
    if filetime <= 0 || filetime == FILETIME_NEVER {
        return None;
    }
    Some((filetime - FILETIME_UNIX_EPOCH).div_euclid(10_000))
}

/// A generalized time (`20261206063100.0Z`, RFC 4517 3.3.13, UTC as AD writes it) as Unix
/// milliseconds.
pub fn generalized_time_to_ms(text: &str) -> Option<i64> {
    let digits = text.get(..14)?;
    if !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let field = |range: std::ops::Range<usize>| digits[range].parse::<i64>().ok();
    let (year, month, day) = (field(0..4)?, field(4..6)?, field(6..8)?);
    let (hour, minute, second) = (field(8..10)?, field(10..12)?, field(12..14)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let rest = &text[14..];
    if !rest.ends_with('Z') {
        return None;
    }
    let fraction_ms = rest
        .strip_prefix(['.', ','])
        .map(|fraction| fraction.trim_end_matches('Z'))
        .filter(|fraction| !fraction.is_empty())
        .and_then(|fraction| format!("{fraction:0<3}").get(..3)?.parse::<i64>().ok())
        .unwrap_or(0);
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + fraction_ms)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn kind(classes: &[String]) -> ObjectKind {
    let has = |name: &str| classes.iter().any(|class| class.eq_ignore_ascii_case(name));
    if has("msDS-GroupManagedServiceAccount") || has("msDS-ManagedServiceAccount") {
        ObjectKind::Other
    } else if has("computer") {
        ObjectKind::Computer
    } else if has("user") {
        ObjectKind::User
    } else if has("group") {
        ObjectKind::Group
    } else {
        ObjectKind::Other
    }
}

/// Why an entry is not an object dcwatch can keep.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("{dn}: no objectGUID (is it in the attribute list?)")]
    NoGuid { dn: String },
}

/// The object an entry of domain `domain` (its DNS name) describes. Group membership is not
/// filled here: it comes from the groups' `member` (see `replica`), which the DC keeps up to
/// date where a member's own attributes and uSNChanged may not move.
pub fn object(entry: &RawEntry, domain: &str) -> Result<Object, MapError> {
    let guid = entry
        .first("objectGUID")
        .and_then(guid_to_string)
        .ok_or_else(|| MapError::NoGuid {
            dn: entry.dn.clone(),
        })?;
    Ok(Object {
        kind: kind(&entry.texts("objectClass")),
        domain: domain.to_owned(),
        dn: entry.dn.clone(),
        guid,
        sid: entry
            .first("objectSid")
            .and_then(sid_to_string)
            .unwrap_or_default(),
        sam_account_name: entry.text("sAMAccountName").unwrap_or_default(),
        upn: entry.text("userPrincipalName").unwrap_or_default(),
        dns_host_name: entry.text("dNSHostName").unwrap_or_default(),
        operating_system: entry.text("operatingSystem").unwrap_or_default(),
        operating_system_version: entry.text("operatingSystemVersion").unwrap_or_default(),
        uac: Uac(entry.flags("userAccountControl").unwrap_or(0)),
        supported_etypes: entry.flags("msDS-SupportedEncryptionTypes"),
        spns: entry.texts("servicePrincipalName"),
        admin_count: entry.integer("adminCount").is_some_and(|count| count != 0),
        member_of: Vec::new(),
        primary_group_id: entry.flags("primaryGroupID"),
        when_created: entry
            .text("whenCreated")
            .and_then(|text| generalized_time_to_ms(&text)),
        pwd_last_set: entry.integer("pwdLastSet").and_then(filetime_to_ms),
        last_logon_timestamp: entry.integer("lastLogonTimestamp").and_then(filetime_to_ms),
        account_expires: entry.integer("accountExpires").and_then(filetime_to_ms),
        deleted: entry.boolean("isDeleted"),
        allowed_to_delegate: !entry.values("msDS-AllowedToDelegateTo").is_empty(),
        allowed_to_act: !entry
            .values("msDS-AllowedToActOnBehalfOfOtherIdentity")
            .is_empty(),
    })
}

/// `DC=lab,DC=example` → `lab.example`.
pub fn dns_name_of(base_dn: &str) -> String {
    base_dn
        .split(',')
        .filter_map(|rdn| rdn.trim().split_once('='))
        .filter(|(kind, _)| kind.trim().eq_ignore_ascii_case("DC"))
        .map(|(_, value)| value.trim().to_lowercase())
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    // MS-DTYP 2.4.2.2: revision 1, 5 sub-authorities, authority 5 (big-endian, 6 bytes), then
    // 21, 0x345f46ab, 0x75505520, 0x06b7c274 and RID 500, each little-endian.
    const ADMIN_SID: [u8; 28] = [
        1, 5, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0, 0xab, 0x46, 0x5f, 0x34, 0x20, 0x55, 0x50, 0x75, 0x74,
        0xc2, 0xb7, 0x06, 0xf4, 0x01, 0x00, 0x00,
    ];

    #[test]
    fn binary_sids_read_as_their_string_form() {
        assert_eq!(
            sid_to_string(&ADMIN_SID).as_deref(),
            Some("S-1-5-21-878659243-1968198944-112706164-500")
        );
        // BUILTIN\Administrators: S-1-5-32-544 (MS-DTYP 2.4.2.4).
        let builtin = [1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x20, 0x02, 0, 0];
        assert_eq!(sid_to_string(&builtin).as_deref(), Some("S-1-5-32-544"));
        assert_eq!(sid_to_string(&ADMIN_SID[..27]), None);
        assert_eq!(sid_to_string(&[]), None);
    }

    #[test]
    fn guids_read_with_their_mixed_endianness() {
        // MS-DTYP 2.3.4.2's example layout: {00112233-4455-6677-8899-aabbccddeeff}.
        let bytes = [
            0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ];
        assert_eq!(
            guid_to_string(&bytes).as_deref(),
            Some("00112233-4455-6677-8899-aabbccddeeff")
        );
        assert_eq!(guid_to_string(&bytes[..15]), None);
    }

    #[test]
    fn times_read_as_unix_milliseconds() {
        // 2026-12-06T06:31:00Z is 1796538660 s after the Unix epoch (date -d ... +%s).
        assert_eq!(
            generalized_time_to_ms("20261206063100.0Z"),
            Some(1_796_538_660_000)
        );
        assert_eq!(generalized_time_to_ms("19700101000000Z"), Some(0));
        assert_eq!(
            generalized_time_to_ms("20000229120000.5Z"),
            Some(951_825_600_500)
        );
        assert_eq!(generalized_time_to_ms("2026120606"), None);
        assert_eq!(generalized_time_to_ms("20261306063100.0Z"), None);
        // The FILETIME of 1970-01-01 is 116444736000000000; one more second is 10^7 more.
        assert_eq!(filetime_to_ms(116_444_736_000_000_000), Some(0));
        assert_eq!(filetime_to_ms(116_444_736_010_000_000), Some(1000));
        assert_eq!(filetime_to_ms(0), None);
        assert_eq!(filetime_to_ms(i64::MAX), None);
    }

    fn guid_bytes(last: u8) -> Vec<u8> {
        let mut bytes = vec![0; 16];
        bytes[15] = last;
        bytes
    }

    #[test]
    fn a_user_entry_maps_every_attribute() {
        let entry = RawEntry::new("CN=bob,CN=Users,DC=lab,DC=example")
            .with(
                "objectClass",
                ["top", "person", "organizationalPerson", "user"],
            )
            .with("objectGUID", [guid_bytes(1)])
            .with("objectSid", [ADMIN_SID.to_vec()])
            .with("sAMAccountName", ["bob"])
            .with("userPrincipalName", ["bob@lab.example"])
            // NORMAL_ACCOUNT | DONT_REQ_PREAUTH = 0x400200.
            .with("userAccountControl", ["4194816"])
            .with("msDS-SupportedEncryptionTypes", ["24"])
            .with("servicePrincipalName", ["http/a", "http/b"])
            .with("adminCount", ["1"])
            .with("primaryGroupID", ["513"])
            .with("whenCreated", ["20261206063100.0Z"])
            .with("pwdLastSet", ["116444736010000000"])
            .with("accountExpires", ["9223372036854775807"])
            .with("msDS-AllowedToDelegateTo", ["cifs/fs1"]);
        let object = object(&entry, "lab.example").expect("an object");
        assert_eq!(object.kind, ObjectKind::User);
        assert_eq!(object.guid, "00000000-0000-0000-0000-000000000001");
        assert_eq!(object.sid, "S-1-5-21-878659243-1968198944-112706164-500");
        assert_eq!(object.sam_account_name, "bob");
        assert!(object.uac.has(Uac::DONT_REQ_PREAUTH));
        assert_eq!(object.supports_aes(), Some(true));
        assert_eq!(object.spns, ["http/a", "http/b"]);
        assert!(object.admin_count);
        assert_eq!(object.primary_group_id, Some(513));
        assert_eq!(object.when_created, Some(1_796_538_660_000));
        assert_eq!(object.pwd_last_set, Some(1000));
        assert_eq!(object.account_expires, None);
        assert!(object.allowed_to_delegate && !object.allowed_to_act && !object.deleted);
    }

    #[test]
    fn classes_decide_the_kind_and_negative_flags_are_unsigned() {
        let entry = |classes: &[&str]| {
            RawEntry::new("CN=x,DC=lab,DC=example")
                .with("objectClass", classes.iter().copied())
                .with("objectGUID", [guid_bytes(2)])
        };
        let kind_of = |classes: &[&str]| object(&entry(classes), "d").expect("object").kind;
        assert_eq!(kind_of(&["top", "user", "computer"]), ObjectKind::Computer);
        assert_eq!(kind_of(&["top", "group"]), ObjectKind::Group);
        assert_eq!(
            kind_of(&["top", "user", "computer", "msDS-GroupManagedServiceAccount"]),
            ObjectKind::Other
        );
        // msDS-SupportedEncryptionTypes with bit 31 set, as a signed INTEGER.
        let signed = entry(&["user"]).with("msDS-SupportedEncryptionTypes", ["-2147483624"]);
        assert_eq!(
            object(&signed, "d").expect("object").supported_etypes,
            Some(0x8000_0018)
        );
        let tombstone = entry(&["user"]).with("isDeleted", ["TRUE"]);
        assert!(object(&tombstone, "d").expect("object").deleted);
        assert_eq!(
            object(&RawEntry::new("CN=y"), "d"),
            Err(MapError::NoGuid { dn: "CN=y".into() })
        );
    }

    #[test]
    fn ranged_members_say_where_the_rest_starts() {
        let whole = RawEntry::new("CN=g").with("member", ["CN=a", "CN=b"]);
        assert_eq!(whole.members(), Ok(vec!["CN=a".into(), "CN=b".into()]));
        let first = RawEntry::new("CN=g").with("member;range=0-1499", ["CN=a"]);
        assert_eq!(first.members(), Err(1500));
        let last = RawEntry::new("CN=g").with("member;range=1500-*", ["CN=z"]);
        assert_eq!(last.members(), Ok(vec!["CN=z".into()]));
        assert_eq!(dns_name_of("DC=Lab, DC=Example"), "lab.example");
    }
}
