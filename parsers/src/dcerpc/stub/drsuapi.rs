//! DRSUAPI ([MS-DRSR] 4.1): what a replication request asks for (DCSync), the source a
//! replica is added from (DCShadow).
//!
//! ```text
//! DSNAME = [conformance] ULONG structLen; ULONG SidLen; GUID Guid; NT4SID Sid (28 bytes);
//!          ULONG NameLen; [size_is(NameLen + 1)] WCHAR StringName[]
//! ```

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
pub fn get_nc_changes(stub: &[u8], encoding: Encoding, order: ByteOrder) -> Option<GetNcChanges> {
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
pub fn replica_add(stub: &[u8], encoding: Encoding, order: ByteOrder) -> Option<ReplicaAdd> {
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
