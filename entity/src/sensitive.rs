//! The groups whose members Defender for Identity calls sensitive (its 17, by well-known RID or
//! SID), and DnsAdmins and Key Admins, which DESIGN.md adds: control of any is control of the domain.

use crate::model::Object;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SensitiveGroup {
    pub name: &'static str,
}

/// Domain-relative RIDs (MS-DTYP 2.4.2.4).
const DOMAIN_RIDS: [(u32, &str); 9] = [
    (512, "Domain Admins"),
    (516, "Domain Controllers"),
    (518, "Schema Admins"),
    (519, "Enterprise Admins"),
    (520, "Group Policy Creator Owners"),
    (521, "Read-only Domain Controllers"),
    (498, "Enterprise Read-only Domain Controllers"),
    (526, "Key Admins"),
    (527, "Enterprise Key Admins"),
];

/// BUILTIN aliases, by their fixed SIDs.
const BUILTIN_SIDS: [(&str, &str); 9] = [
    ("S-1-5-32-544", "Administrators"),
    ("S-1-5-32-547", "Power Users"),
    ("S-1-5-32-548", "Account Operators"),
    ("S-1-5-32-549", "Server Operators"),
    ("S-1-5-32-550", "Print Operators"),
    ("S-1-5-32-551", "Backup Operators"),
    ("S-1-5-32-552", "Replicators"),
    ("S-1-5-32-556", "Network Configuration Operators"),
    ("S-1-5-32-557", "Incoming Forest Trust Builders"),
];

/// Groups with no well-known RID, known by name.
const BY_NAME: [&str; 2] = ["DnsAdmins", "Microsoft Exchange Servers"];

/// Whether a group is one of the sensitive groups, and which.
pub fn group(object: &Object) -> Option<SensitiveGroup> {
    if object.kind != crate::model::ObjectKind::Group {
        return None;
    }
    if let Some((_, name)) = BUILTIN_SIDS
        .iter()
        .find(|(sid, _)| object.sid.eq_ignore_ascii_case(sid))
    {
        return Some(SensitiveGroup { name });
    }
    if object.sid.starts_with("S-1-5-21-")
        && let Some(rid) = object.rid()
        && let Some((_, name)) = DOMAIN_RIDS.iter().find(|(known, _)| *known == rid)
    {
        return Some(SensitiveGroup { name });
    }
    BY_NAME
        .iter()
        .find(|name| object.sam_account_name.eq_ignore_ascii_case(name))
        .map(|name| SensitiveGroup { name })
}

/// Whether a RID (of a domain SID) or a SID names a sensitive group, for the SAMR and event
/// detectors that see only numbers: `Some(name)` when it does.
pub fn group_by_sid_or_rid(sid: Option<&str>, rid: Option<u32>) -> Option<&'static str> {
    if let Some(sid) = sid {
        if let Some((_, name)) = BUILTIN_SIDS
            .iter()
            .find(|(known, _)| sid.eq_ignore_ascii_case(known))
        {
            return Some(name);
        }
        if sid.starts_with("S-1-5-21-")
            && let Some(rid) = sid
                .rsplit('-')
                .next()
                .and_then(|rid| rid.parse::<u32>().ok())
        {
            return DOMAIN_RIDS
                .iter()
                .find(|(known, _)| *known == rid)
                .map(|(_, name)| *name);
        }
        return None;
    }
    let rid = rid?;
    DOMAIN_RIDS
        .iter()
        .find(|(known, _)| *known == rid)
        .map(|(_, name)| *name)
        .or_else(|| {
            BUILTIN_SIDS
                .iter()
                .find(|(sid, _)| {
                    sid.rsplit('-').next().and_then(|r| r.parse::<u32>().ok()) == Some(rid)
                })
                .map(|(_, name)| *name)
        })
}
