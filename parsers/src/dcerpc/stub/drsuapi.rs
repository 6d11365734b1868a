//! DRSUAPI ([MS-DRSR] 4.1): what a replication request asks for (DCSync), the source a
//! replica is added from (DCShadow).
//!
//! ```text
//! DSNAME = [conformance] ULONG structLen; ULONG SidLen; GUID Guid; NT4SID Sid (28 bytes);
//!          ULONG NameLen; [size_is(NameLen + 1)] WCHAR StringName[]
//! ```

use std::collections::HashSet;

use super::{
    ByteOrder, Encoding, MAX_STRING_UNITS,
    ndr::{Ndr, binary_sid, utf16},
};
use crate::dcerpc::Uuid;

/// Bytes of an NT4SID, a DSNAME's fixed room for a SID.
const NT4SID_LEN: usize = 28;

/// Bytes of a REPLTIMES schedule ([MS-DRSR] 5.166): 84 bytes, one bit per quarter hour.
const REPLTIMES_LEN: usize = 84;

/// ulExtendedOp of a DRS_MSG_GETCHGREQ ([MS-DRSR] 5.27, EXOP_REQ). Open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ExtendedOperation(pub u32);

impl ExtendedOperation {
    /// No extended operation: ordinary replication of the naming context.
    pub const NONE: Self = Self(0);
    pub const FSMO_REQ_ROLE: Self = Self(1);
    pub const FSMO_REQ_RID_ALLOC: Self = Self(2);
    pub const FSMO_RID_REQ_ROLE: Self = Self(3);
    pub const FSMO_REQ_PDC: Self = Self(4);
    pub const FSMO_ABANDON_ROLE: Self = Self(5);
    pub const REPL_OBJ: Self = Self(6);
    pub const REPL_SECRETS: Self = Self(7);

    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::FSMO_REQ_ROLE => "EXOP_FSMO_REQ_ROLE",
            Self::FSMO_REQ_RID_ALLOC => "EXOP_FSMO_REQ_RID_ALLOC",
            Self::FSMO_RID_REQ_ROLE => "EXOP_FSMO_RID_REQ_ROLE",
            Self::FSMO_REQ_PDC => "EXOP_FSMO_REQ_PDC",
            Self::FSMO_ABANDON_ROLE => "EXOP_FSMO_ABANDON_ROLE",
            Self::REPL_OBJ => "EXOP_REPL_OBJ",
            Self::REPL_SECRETS => "EXOP_REPL_SECRETS",
            _ => return None,
        })
    }
}

/// What a DsGetNCChanges request asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GetNcChanges {
    /// The naming context or object: its DN, else its GUID, else its SID.
    pub naming_context: String,
    pub extended_operation: ExtendedOperation,
}

/// A DSNAME (a conformant structure: its conformance first), as its DN, else its GUID (when
/// not zero), else its SID.
fn dsname(ndr: &mut Ndr<'_>) -> Option<String> {
    let conformance = ndr.size()?;
    let _struct_len = ndr.u32()?;
    let sid_len = usize::try_from(ndr.u32()?).ok()?;
    let guid = ndr.uuid()?;
    let sid = ndr.take(NT4SID_LEN)?;
    let name_len = usize::try_from(ndr.u32()?).ok()?;
    if conformance != name_len.checked_add(1)? || conformance > MAX_STRING_UNITS {
        return None;
    }
    let name = utf16(ndr.take(conformance.checked_mul(2)?)?, ndr.order);
    if !name.is_empty() {
        return Some(name);
    }
    if guid != Uuid(0) {
        return Some(guid.to_string());
    }
    Some(
        sid.get(..sid_len.min(NT4SID_LEN))
            .and_then(binary_sid)
            .unwrap_or_default(),
    )
}

/// IDL_DRSGetNCChanges [in] parameters (opnum 3), request versions 5, 8 and 10 (what Windows,
/// impacket and mimikatz send):
///
/// ```text
/// ULONG IDL_DRSGetNCChanges([in, ref] DRS_HANDLE hDrs, [in] DWORD dwInVersion,
///   [in, ref, switch_is(dwInVersion)] DRS_MSG_GETCHGREQ* pmsgIn, ...);
/// DRS_MSG_GETCHGREQ_V5 = UUID uuidDsaObjDest; UUID uuidInvocIdSrc; [ref] DSNAME* pNC;
///   USN_VECTOR usnvecFrom (3 x LONGLONG); [unique] UPTODATE_VECTOR_V1_EXT* pUpToDateVecDestV1;
///   ULONG ulFlags; ULONG cMaxObjects; ULONG cMaxBytes; ULONG ulExtendedOp;
///   ULARGE_INTEGER liFsmoInfo
/// DRS_MSG_GETCHGREQ_V8 = V5 (pUpToDateVecDest a V2 vector) + [unique] PARTIAL_ATTR_VECTOR_V1_EXT*
///   pPartialAttrSet; [unique] ... pPartialAttrSetEx; SCHEMA_PREFIX_TABLE PrefixTableDest
///   (ULONG PrefixCount; [size_is(PrefixCount)] PrefixTableEntry* pPrefixEntry)
/// DRS_MSG_GETCHGREQ_V10 = V8 + ULONG ulMoreFlags
/// ```
///
/// pNC is the first pointer of the request, so its DSNAME is the first pointee after the fixed
/// part. Other versions are not read.
pub(super) fn get_nc_changes(
    stub: &[u8],
    encoding: Encoding,
    order: ByteOrder,
) -> Option<GetNcChanges> {
    let mut ndr = Ndr::new(stub, encoding, order);
    ndr.handle()?;
    let version = ndr.u32()?;
    let tag = ndr.u32()?;
    if tag != version || !matches!(version, 5 | 8 | 10) {
        return None;
    }
    // The structure holds 64-bit integers: aligned to 8 in both encodings.
    ndr.align(8)?;
    let _dsa_dest = ndr.uuid()?;
    let _invocation_src = ndr.uuid()?;
    let nc = ndr.pointer()?;
    for _ in 0..3 {
        ndr.u64()?;
    }
    let _up_to_date = ndr.pointer()?;
    let _flags = ndr.u32()?;
    let _max_objects = ndr.u32()?;
    let _max_bytes = ndr.u32()?;
    let extended_operation = ExtendedOperation(ndr.u32()?);
    let _fsmo_info = ndr.u64()?;
    if version >= 8 {
        let _partial = ndr.pointer()?;
        let _partial_ex = ndr.pointer()?;
        ndr.structure()?;
        let _prefix_count = ndr.u32()?;
        let _prefix_entries = ndr.pointer()?;
    }
    if version >= 10 {
        let _more_flags = ndr.u32()?;
    }
    let naming_context = if nc == 0 {
        String::new()
    } else {
        dsname(&mut ndr)?
    };
    Some(GetNcChanges {
        naming_context,
        extended_operation,
    })
}

/// What a DsReplicaAdd request adds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicaAdd {
    pub naming_context: String,
    /// The source DSA's network address (its GUID-based DNS name, or an address).
    pub source_dsa: String,
}

/// IDL_DRSReplicaAdd [in] parameters (opnum 5), request versions 1 and 2:
///
/// ```text
/// ULONG IDL_DRSReplicaAdd([in, ref] DRS_HANDLE hDrs, [in] DWORD dwVersion,
///   [in, ref, switch_is(dwVersion)] DRS_MSG_REPADD* pmsgAdd);
/// DRS_MSG_REPADD_V1 = [ref] DSNAME* pNC; [ref, string] char* pszDsaSrc; REPLTIMES rtSchedule;
///   ULONG ulOptions
/// DRS_MSG_REPADD_V2 = [ref] DSNAME* pNC; [unique] DSNAME* pSourceDsaDN;
///   [unique] DSNAME* pTransportDN; [ref, string] char* pszSourceDsaAddress;
///   REPLTIMES rtSchedule; ULONG ulOptions
/// ```
pub(super) fn replica_add(stub: &[u8], encoding: Encoding, order: ByteOrder) -> Option<ReplicaAdd> {
    let mut ndr = Ndr::new(stub, encoding, order);
    ndr.handle()?;
    let version = ndr.u32()?;
    let tag = ndr.u32()?;
    if tag != version || !matches!(version, 1 | 2) {
        return None;
    }
    ndr.structure()?;
    let nc = ndr.pointer()?;
    let (source_dn, transport_dn) = if version == 2 {
        (ndr.pointer()?, ndr.pointer()?)
    } else {
        (0, 0)
    };
    let source = ndr.pointer()?;
    ndr.take(REPLTIMES_LEN)?;
    let _options = ndr.u32()?;
    let naming_context = if nc == 0 {
        String::new()
    } else {
        dsname(&mut ndr)?
    };
    for pointer in [source_dn, transport_dn] {
        if pointer != 0 {
            dsname(&mut ndr)?;
        }
    }
    let source_dsa = if source == 0 {
        String::new()
    } else {
        ndr.string()?
    };
    Some(ReplicaAdd {
        naming_context,
        source_dsa,
    })
}

/// The ATTRTYP of objectClass (2.5.4.0: prefix 0 of the default table, [MS-DRSR] 5.16.4).
const OBJECT_CLASS: u32 = 0;

/// The OID prefixes every prefix table starts with ([MS-DRSR] 5.16.4), indices 0 to 38: a request
/// that carries no prefix table (DsAddEntry's) has its ATTRTYPs read with the server's, whose
/// first entries are these. An index past them is the server's own.
const DEFAULT_PREFIXES: [&str; 39] = [
    "2.5.4",
    "2.5.6",
    "1.2.840.113556.1.2",
    "1.2.840.113556.1.3",
    "2.16.840.1.101.2.2.1",
    "2.16.840.1.101.2.2.3",
    "2.16.840.1.101.2.1.5",
    "2.16.840.1.101.2.1.4",
    "2.5.5",
    "1.2.840.113556.1.4",
    "1.2.840.113556.1.5",
    "1.2.840.113556.1.4.260",
    "1.2.840.113556.1.5.56",
    "1.2.840.113556.1.4.262",
    "1.2.840.113556.1.5.57",
    "1.2.840.113556.1.4.263",
    "1.2.840.113556.1.5.58",
    "1.2.840.113556.1.5.73",
    "1.2.840.113556.1.4.305",
    "0.9.2342.19200300.100",
    "2.16.840.1.113730.3",
    "0.9.2342.19200300.100.1",
    "2.16.840.1.113730.3.1",
    "1.2.840.113556.1.5.7000",
    "2.5.21",
    "2.5.18",
    "2.5.20",
    "1.3.6.1.4.1.1466.101.119",
    "2.16.840.1.113730.3.2",
    "1.3.6.1.4.1.250.1",
    "1.2.840.113549.1.9",
    "0.9.2342.19200300.100.4",
    "1.2.840.113556.1.6.23",
    "1.2.840.113556.1.6.18.1",
    "1.2.840.113556.1.6.18.2",
    "1.2.840.113556.1.6.13.3",
    "1.2.840.113556.1.6.13.4",
    "1.3.6.1.1.1.1",
    "1.3.6.1.1.1.2",
];

/// A class an added entry names, as its ATTRTYP ([MS-DRSR] 5.14). Open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ObjectClass(pub u32);

impl ObjectClass {
    pub const TOP: Self = Self(0x0001_0000);
    pub const ORGANIZATIONAL_UNIT: Self = Self(0x0001_0005);
    pub const PERSON: Self = Self(0x0001_0006);
    pub const ORGANIZATIONAL_PERSON: Self = Self(0x0001_0007);
    pub const CROSS_REF: Self = Self(0x0003_000b);
    pub const CONTAINER: Self = Self(0x0003_0017);
    pub const COMPUTER: Self = Self(0x0003_001e);
    pub const GROUP: Self = Self(0x000a_0008);
    pub const USER: Self = Self(0x000a_0009);
    pub const SERVER: Self = Self(0x000a_0011);
    pub const SITE: Self = Self(0x000a_001f);
    pub const DOMAIN_DNS: Self = Self(0x000a_0043);
    pub const NTDS_CONNECTION: Self = Self(0x000a_0047);
    pub const NTDS_DSA: Self = Self(0x0017_002f);
    pub const SERVERS_CONTAINER: Self = Self(0x0017_0030);
    pub const APPLICATION_SETTINGS: Self = Self(0x0017_0031);

    /// The class's lDAPDisplayName, for the classes a DC's registration and the accounts
    /// attackers add use.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::TOP => "top",
            Self::ORGANIZATIONAL_UNIT => "organizationalUnit",
            Self::PERSON => "person",
            Self::ORGANIZATIONAL_PERSON => "organizationalPerson",
            Self::CROSS_REF => "crossRef",
            Self::CONTAINER => "container",
            Self::COMPUTER => "computer",
            Self::GROUP => "group",
            Self::USER => "user",
            Self::SERVER => "server",
            Self::SITE => "site",
            Self::DOMAIN_DNS => "domainDNS",
            Self::NTDS_CONNECTION => "nTDSConnection",
            Self::NTDS_DSA => "nTDSDSA",
            Self::SERVERS_CONTAINER => "serversContainer",
            Self::APPLICATION_SETTINGS => "applicationSettings",
            _ => return None,
        })
    }

    /// The class's OID through the default prefixes (OidFromAttid, [MS-DRSR] 5.16.4): the
    /// prefix, then the low 16 bits less the flag 0x8000 (which marks a last arc whose first
    /// byte ends the prefix; the default prefixes end on whole arcs). `None` for a prefix the
    /// server's table adds and for an msDS-IntId (0x80000000 and up), which only the schema
    /// maps.
    pub fn oid(self) -> Option<String> {
        let index = usize::try_from(self.0 >> 16).ok()?;
        let prefix = DEFAULT_PREFIXES.get(index)?;
        Some(format!("{prefix}.{}", self.0 & 0x7fff))
    }
}

impl std::fmt::Display for ObjectClass {
    /// Its name, else its OID, else the ATTRTYP in hexadecimal.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.name(), self.oid()) {
            (Some(name), _) => f.write_str(name),
            (None, Some(oid)) => f.write_str(&oid),
            (None, None) => write!(f, "0x{:08x}", self.0),
        }
    }
}

/// The fixed part of one ENTINFLIST: what its deferred part holds.
struct EntryPointers {
    next: usize,
    name: usize,
    attr_count: usize,
    attrs: usize,
}

/// An ENTINFLIST's fixed part: pNextEntInf, then ENTINF's pName, ulFlags and ATTRBLOCK.
fn entry_pointers(ndr: &mut Ndr<'_>) -> Option<EntryPointers> {
    ndr.structure()?;
    let next = ndr.pointer()?;
    let name = ndr.pointer()?;
    let _flags = ndr.u32()?;
    ndr.structure()?;
    let attr_count = usize::try_from(ndr.u32()?).ok()?;
    let attrs = ndr.pointer()?;
    Some(EntryPointers {
        next,
        name,
        attr_count,
        attrs,
    })
}

/// An ATTR array (the pointee of ATTRBLOCK's pAttr) and its values: the classes its
/// objectClass values name. Every value is read (the next entry follows them); each ATTR and
/// ATTRVAL takes bytes of the stub, which bounds the loops.
fn attr_block(ndr: &mut Ndr<'_>, count: usize, classes: &mut Vec<ObjectClass>) -> Option<()> {
    if ndr.size()? != count {
        return None;
    }
    let mut attrs = Vec::new();
    for _ in 0..count {
        ndr.structure()?;
        let attr_type = ndr.u32()?;
        ndr.structure()?;
        let value_count = usize::try_from(ndr.u32()?).ok()?;
        let values = ndr.pointer()?;
        attrs.push((attr_type, value_count, values));
    }
    for (attr_type, value_count, values) in attrs {
        if values == 0 {
            continue;
        }
        if ndr.size()? != value_count {
            return None;
        }
        let mut pointers = Vec::new();
        for _ in 0..value_count {
            ndr.structure()?;
            let length = usize::try_from(ndr.u32()?).ok()?;
            pointers.push((length, ndr.pointer()?));
        }
        for (length, pointer) in pointers {
            if pointer == 0 {
                continue;
            }
            let value = ndr.conformant_bytes()?;
            if value.len() != length {
                return None;
            }
            if attr_type == OBJECT_CLASS {
                // An ATTRTYP value is the directory's own little-endian ULONG, opaque to NDR:
                // the same bytes whatever the PDU's byte order.
                let class = u32::from_le_bytes(value.try_into().ok()?);
                classes.push(ObjectClass(class));
            }
        }
    }
    Some(())
}

/// IDL_DRSAddEntry [in] parameters (opnum 17), request versions 2 and 3 (what DCShadow's
/// registration and a DC's promotion send):
///
/// ```text
/// ULONG IDL_DRSAddEntry([in, ref] DRS_HANDLE hDrs, [in] DWORD dwInVersion,
///   [in, ref, switch_is(dwInVersion)] DRS_MSG_ADDENTRYREQ* pmsgIn, ...);
/// DRS_MSG_ADDENTRYREQ_V2 = ENTINFLIST EntInfList
/// DRS_MSG_ADDENTRYREQ_V3 = ENTINFLIST EntInfList; [unique] DRS_SecBufferDesc* pClientCreds
/// ENTINFLIST = [unique] ENTINFLIST* pNextEntInf; ENTINF Entinf
/// ENTINF     = [unique] DSNAME* pName; ULONG ulFlags; ATTRBLOCK AttrBlock
/// ATTRBLOCK  = ULONG attrCount; [unique, size_is(attrCount)] ATTR* pAttr
/// ATTR       = ATTRTYP attrTyp (ULONG); ATTRVALBLOCK AttrVal
/// ATTRVALBLOCK = ULONG valCount; [unique, size_is(valCount)] ATTRVAL* pAVal
/// ATTRVAL    = ULONG valLen; [unique, size_is(valLen)] UCHAR* pVal
/// ```
///
/// Pointees follow depth first in pointer order: the next entry (its fixed part, then its own
/// pointees) comes before this entry's DSNAME and ATTRs, so a list's entries are read from the
/// last. The classes are objectClass's values (ATTRTYP 0), each a 4-byte ATTRTYP, in list
/// order, each once. Version 1 (Windows 2000's) is not read.
pub(super) fn add_entry(
    stub: &[u8],
    encoding: Encoding,
    order: ByteOrder,
) -> Option<Vec<ObjectClass>> {
    let mut ndr = Ndr::new(stub, encoding, order);
    ndr.handle()?;
    let version = ndr.u32()?;
    let tag = ndr.u32()?;
    if tag != version || !matches!(version, 2 | 3) {
        return None;
    }
    let mut entries = vec![entry_pointers(&mut ndr)?];
    if version == 3 {
        let _client_credentials = ndr.pointer()?;
    }
    // Each entry's fixed part takes bytes of the stub: the chain ends with them.
    while let Some(last) = entries.last()
        && last.next != 0
    {
        entries.push(entry_pointers(&mut ndr)?);
    }
    let mut by_entry = Vec::with_capacity(entries.len());
    for entry in entries.iter().rev() {
        if entry.name != 0 {
            dsname(&mut ndr)?;
        }
        let mut classes = Vec::new();
        if entry.attrs != 0 {
            attr_block(&mut ndr, entry.attr_count, &mut classes)?;
        }
        by_entry.push(classes);
    }
    let mut seen = HashSet::new();
    Some(
        by_entry
            .into_iter()
            .rev()
            .flatten()
            .filter(|class| seen.insert(*class))
            .collect(),
    )
}
