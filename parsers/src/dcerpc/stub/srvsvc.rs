//! SRVSVC ([MS-SRVS]) and WKSSVC ([MS-WKST]) enumerations: the info level asked, and what the
//! answer exposed (sessions with their client and user, shares, logged-on users).
//!
//! ```text
//! request:  [in, string, unique] ServerName, (NetrSessionEnum: [in, string, unique] ClientName,
//!           [in, string, unique] UserName), [in, out] <X>_ENUM_STRUCT* InfoStruct, ...
//! answer:   <X>_ENUM_STRUCT InfoStruct, [out] DWORD* TotalEntries, [in, out, unique] ResumeHandle
//! <X>_ENUM_STRUCT = DWORD Level; [switch_is(Level)] union { <X>_INFO_<level>_CONTAINER* }
//! container       = DWORD EntriesRead; [size_is(EntriesRead)] <X>_INFO_<level>* Buffer
//! ```
//!
//! The entries' fixed parts come first, then the strings they point to, in order.

use super::{ByteOrder, Encoding, MAX_ENUM_ENTRIES, ndr::Ndr};

/// A field of an enumerated entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    /// `[string] wchar_t*`: a pointer, the string deferred.
    Text,
    /// A DWORD.
    Word,
    /// `[size_is(n)] unsigned char*`: a pointer, the bytes deferred (a security descriptor).
    Bytes,
}

use Field::{Bytes, Text, Word};

/// A session an answer exposed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Session {
    /// The client's computer name or address (\\10.0.0.5).
    pub client: String,
    /// The user logged on (empty at level 0).
    pub user: String,
}

/// SESSION_INFO_<level> ([MS-SRVS] 2.2.4.9-2.2.4.15): sesi_cname, sesi_username first.
fn session_fields(level: u32) -> Option<&'static [Field]> {
    Some(match level {
        0 => &[Text],
        1 => &[Text, Text, Word, Word, Word, Word],
        2 => &[Text, Text, Word, Word, Word, Word, Text],
        10 => &[Text, Text, Word, Word],
        502 => &[Text, Text, Word, Word, Word, Word, Text, Text],
        _ => return None,
    })
}

/// SHARE_INFO_<level> ([MS-SRVS] 2.2.4.22-2.2.4.28): shi_netname first.
fn share_fields(level: u32) -> Option<&'static [Field]> {
    Some(match level {
        0 => &[Text],
        1 => &[Text, Word, Text],
        2 => &[Text, Word, Text, Word, Word, Word, Text, Text],
        501 => &[Text, Word, Text, Word],
        502 => &[Text, Word, Text, Word, Word, Word, Text, Text, Word, Bytes],
        503 => &[
            Text, Word, Text, Word, Word, Word, Text, Text, Text, Word, Bytes,
        ],
        _ => return None,
    })
}

/// WKSTA_USER_INFO_<level> ([MS-WKST] 2.2.5.12-2.2.5.13): username, then (level 1)
/// logon_domain, oth_domains, logon_server.
fn user_fields(level: u32) -> Option<&'static [Field]> {
    Some(match level {
        0 => &[Text],
        1 => &[Text, Text, Text, Text],
        _ => return None,
    })
}

/// The info level of an enumeration request, after its `strings` leading unique strings.
fn request_level(stub: &[u8], encoding: Encoding, order: ByteOrder, strings: usize) -> Option<u32> {
    let mut ndr = Ndr::new(stub, encoding, order);
    for _ in 0..strings {
        ndr.unique_wstring()?;
    }
    ndr.structure()?;
    ndr.u32()
}

/// NetrSessionEnum [in] (opnum 12): ServerName, ClientName, UserName, then the level.
pub(super) fn session_enum_level(stub: &[u8], encoding: Encoding, order: ByteOrder) -> Option<u32> {
    request_level(stub, encoding, order, 3)
}

/// NetrShareEnum [in] (opnum 15) and NetrWkstaUserEnum [in] (WKSSVC opnum 2): ServerName, then
/// the level.
pub(super) fn enum_level(stub: &[u8], encoding: Encoding, order: ByteOrder) -> Option<u32> {
    request_level(stub, encoding, order, 1)
}

/// The strings of each entry an enumeration answer holds, by the layout of its level.
fn entries(
    stub: &[u8],
    encoding: Encoding,
    order: ByteOrder,
    layout: fn(u32) -> Option<&'static [Field]>,
) -> Option<Vec<Vec<String>>> {
    let mut ndr = Ndr::new(stub, encoding, order);
    ndr.structure()?;
    let level = ndr.u32()?;
    // The union is aligned as its arm, a pointer: to 8 in NDR64 ([MS-RPCE] 2.2.5.3.4.3).
    ndr.structure()?;
    let tag = ndr.u32()?;
    let fields = layout(level)?;
    if tag != level {
        return None;
    }
    if ndr.pointer()? == 0 {
        return Some(Vec::new());
    }
    ndr.structure()?;
    let count = usize::try_from(ndr.u32()?).ok()?;
    if ndr.pointer()? == 0 {
        return Some(Vec::new());
    }
    let max = ndr.size()?;
    if count > MAX_ENUM_ENTRIES || max != count {
        return None;
    }
    // The fixed parts: which pointers are set.
    let mut present = Vec::with_capacity(count.min(ndr.bytes.len() / 4));
    for _ in 0..count {
        ndr.structure()?;
        let mut set = Vec::with_capacity(fields.len());
        for field in fields {
            match field {
                Word => {
                    ndr.u32()?;
                    set.push(false);
                }
                Text | Bytes => set.push(ndr.pointer()? != 0),
            }
        }
        present.push(set);
    }
    // The deferred pointees, entry by entry, field by field.
    let mut out = Vec::with_capacity(present.len());
    for set in present {
        let mut strings = Vec::new();
        for (field, set) in fields.iter().zip(set) {
            match (field, set) {
                (Text, true) => strings.push(ndr.wstring()?),
                (Text, false) => strings.push(String::new()),
                (Bytes, true) => {
                    ndr.conformant_bytes()?;
                }
                _ => {}
            }
        }
        out.push(strings);
    }
    Some(out)
}

/// NetrSessionEnum [out] (opnum 12): the sessions.
pub(super) fn sessions(stub: &[u8], encoding: Encoding, order: ByteOrder) -> Option<Vec<Session>> {
    let entries = entries(stub, encoding, order, session_fields)?;
    Some(
        entries
            .into_iter()
            .map(|mut strings| {
                strings.truncate(2);
                let user = if strings.len() > 1 {
                    strings.pop().unwrap_or_default()
                } else {
                    String::new()
                };
                Session {
                    client: strings.pop().unwrap_or_default(),
                    user,
                }
            })
            .collect(),
    )
}

/// NetrShareEnum [out] (opnum 15): the shares' names.
pub(super) fn shares(stub: &[u8], encoding: Encoding, order: ByteOrder) -> Option<Vec<String>> {
    let entries = entries(stub, encoding, order, share_fields)?;
    Some(first_strings(entries))
}

/// NetrWkstaUserEnum [out] (WKSSVC opnum 2): the users, DOMAIN\user where level 1 gives the
/// logon domain.
pub(super) fn users(stub: &[u8], encoding: Encoding, order: ByteOrder) -> Option<Vec<String>> {
    let entries = entries(stub, encoding, order, user_fields)?;
    Some(
        entries
            .into_iter()
            .map(|strings| match strings.as_slice() {
                [user, domain, ..] if !domain.is_empty() => format!("{domain}\\{user}"),
                [user, ..] => user.clone(),
                [] => String::new(),
            })
            .collect(),
    )
}

fn first_strings(entries: Vec<Vec<String>>) -> Vec<String> {
    entries
        .into_iter()
        .map(|strings| strings.into_iter().next().unwrap_or_default())
        .collect()
}
