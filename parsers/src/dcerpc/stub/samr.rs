//! SAMR ([MS-SAMR]): names and RIDs looked up, domains, users, groups and aliases opened,
//! and how many members a group or alias answered.

use super::{ByteOrder, Encoding, MAX_LOOKUP_NAMES, ndr::Ndr};

/// SamrLookupNamesInDomain [in] parameters, [MS-SAMR] 3.1.5.11.2 (opnum 17): the names looked
/// up.
///
/// ```text
/// long SamrLookupNamesInDomain([in] SAMPR_HANDLE DomainHandle, [in, range(0,1000)] unsigned
///   long Count, [in, size_is(1000), length_is(Count)] RPC_UNICODE_STRING Names[*], ...);
/// RPC_UNICODE_STRING = Length (u16, bytes) MaximumLength (u16) [size_is(MaximumLength/2),
///   length_is(Length/2)] unique WCHAR* Buffer (deferred)
/// ```
pub fn samr_lookup_names(stub: &[u8], encoding: Encoding, order: ByteOrder) -> Option<Vec<String>> {
    let mut ndr = Ndr::new(stub, encoding, order);
    ndr.handle()?;
    let count = usize::try_from(ndr.u32()?).ok()?;
    let _max_count = ndr.size()?;
    let _offset = ndr.size()?;
    let actual = ndr.size()?;
    if count > MAX_LOOKUP_NAMES || actual != count {
        return None;
    }
    // The fixed parts first (Length, MaximumLength, Buffer pointer), then the buffers.
    unicode_strings(&mut ndr, actual)
}

/// SamrOpenUser [in] parameters, [MS-SAMR] 3.1.5.1.9 (opnum 34): the RID opened; SamrOpenGroup
/// (opnum 19, 3.1.5.1.7) and SamrOpenAlias (opnum 27, 3.1.5.1.8) have the same.
///
/// ```text
/// long SamrOpenUser([in] SAMPR_HANDLE DomainHandle, [in] unsigned long DesiredAccess,
///   [in] unsigned long UserId, [out] SAMPR_HANDLE* UserHandle);
/// ```
pub fn samr_open_user(stub: &[u8], encoding: Encoding, order: ByteOrder) -> Option<u32> {
    let mut ndr = Ndr::new(stub, encoding, order);
    ndr.handle()?;
    let _access = ndr.u32()?;
    ndr.u32()
}

/// SamrOpenDomain [in] parameters, [MS-SAMR] 3.1.5.1.5 (opnum 7): the domain's SID.
///
/// ```text
/// long SamrOpenDomain([in] SAMPR_HANDLE ServerHandle, [in] unsigned long DesiredAccess,
///   [in] PRPC_SID DomainId, [out] SAMPR_HANDLE* DomainHandle);
/// ```
pub(super) fn samr_open_domain(
    stub: &[u8],
    encoding: Encoding,
    order: ByteOrder,
) -> Option<String> {
    let mut ndr = Ndr::new(stub, encoding, order);
    ndr.handle()?;
    let _access = ndr.u32()?;
    ndr.sid()
}

/// SamrLookupIdsInDomain [in] parameters, [MS-SAMR] 3.1.5.11.1 (opnum 18): the RIDs asked.
///
/// ```text
/// long SamrLookupIdsInDomain([in] SAMPR_HANDLE DomainHandle, [in, range(0,1000)] unsigned
///   long Count, [in, size_is(1000), length_is(Count)] unsigned long* RelativeIds, ...);
/// ```
pub(super) fn samr_lookup_ids(
    stub: &[u8],
    encoding: Encoding,
    order: ByteOrder,
) -> Option<Vec<u32>> {
    let mut ndr = Ndr::new(stub, encoding, order);
    ndr.handle()?;
    let count = usize::try_from(ndr.u32()?).ok()?;
    let _max_count = ndr.size()?;
    let _offset = ndr.size()?;
    let actual = ndr.size()?;
    if count > MAX_LOOKUP_NAMES || actual != count {
        return None;
    }
    (0..actual).map(|_| ndr.u32()).collect()
}

/// A SAMPR_ULONG_ARRAY passed by reference: Count, a pointer, then the conformant array.
fn ulong_array(ndr: &mut Ndr<'_>) -> Option<Vec<u32>> {
    ndr.structure()?;
    let count = usize::try_from(ndr.u32()?).ok()?;
    if ndr.pointer()? == 0 {
        return Some(Vec::new());
    }
    let max = ndr.size()?;
    if count > MAX_LOOKUP_NAMES || max != count {
        return None;
    }
    (0..count).map(|_| ndr.u32()).collect()
}

/// SamrLookupNamesInDomain [out] parameters, [MS-SAMR] 3.1.5.11.2: the RIDs answered (0 for a
/// name not found, whose Use is SidTypeUnknown).
///
/// ```text
/// [out] PSAMPR_ULONG_ARRAY RelativeIds, [out] PSAMPR_ULONG_ARRAY Use
/// SAMPR_ULONG_ARRAY = unsigned long Count; [size_is(Count)] unsigned long* Element
/// ```
pub(super) fn samr_lookup_names_response(
    stub: &[u8],
    encoding: Encoding,
    order: ByteOrder,
) -> Option<Vec<u32>> {
    ulong_array(&mut Ndr::new(stub, encoding, order))
}

/// SamrLookupIdsInDomain [out] parameters, [MS-SAMR] 3.1.5.11.1: the names answered.
///
/// ```text
/// [out] PSAMPR_RETURNED_USTRING_ARRAY Names, [out] PSAMPR_ULONG_ARRAY Use
/// SAMPR_RETURNED_USTRING_ARRAY = unsigned long Count; [size_is(Count)] PRPC_UNICODE_STRING Element
/// ```
pub(super) fn samr_lookup_ids_response(
    stub: &[u8],
    encoding: Encoding,
    order: ByteOrder,
) -> Option<Vec<String>> {
    let mut ndr = Ndr::new(stub, encoding, order);
    ndr.structure()?;
    let count = usize::try_from(ndr.u32()?).ok()?;
    if ndr.pointer()? == 0 {
        return Some(Vec::new());
    }
    let max = ndr.size()?;
    if count > MAX_LOOKUP_NAMES || max != count {
        return None;
    }
    unicode_strings(&mut ndr, count)
}

/// `count` RPC_UNICODE_STRINGs of an array: their fixed parts, then their buffers.
fn unicode_strings(ndr: &mut Ndr<'_>, count: usize) -> Option<Vec<String>> {
    let mut pointers = Vec::with_capacity(count.min(ndr.bytes.len() / 8));
    for _ in 0..count {
        ndr.structure()?;
        let _length = ndr.u16()?;
        let _maximum = ndr.u16()?;
        pointers.push(ndr.pointer()?);
    }
    let mut names = Vec::with_capacity(pointers.len());
    for referent in pointers {
        if referent == 0 {
            names.push(String::new());
            continue;
        }
        names.push(ndr.wstring()?);
    }
    Some(names)
}

/// SamrGetMembersInGroup [out] parameters, [MS-SAMR] 3.1.5.8.3 (opnum 25): how many members.
///
/// ```text
/// [out] PSAMPR_GET_MEMBERS_BUFFER* Members
/// SAMPR_GET_MEMBERS_BUFFER = unsigned long MemberCount; [size_is(MemberCount)] unsigned long*
///   Members; [size_is(MemberCount)] unsigned long* Attributes
/// ```
pub(super) fn samr_group_member_count(
    stub: &[u8],
    encoding: Encoding,
    order: ByteOrder,
) -> Option<u32> {
    let mut ndr = Ndr::new(stub, encoding, order);
    if ndr.pointer()? == 0 {
        return Some(0);
    }
    ndr.structure()?;
    ndr.u32()
}

/// SamrGetMembersInAlias [out] parameters, [MS-SAMR] 3.1.5.8.4 (opnum 33): how many members.
///
/// ```text
/// [out] PSAMPR_PSID_ARRAY_OUT Members
/// SAMPR_PSID_ARRAY_OUT = unsigned long Count; [size_is(Count)] PSAMPR_SID_INFORMATION Sids
/// ```
pub(super) fn samr_alias_member_count(
    stub: &[u8],
    encoding: Encoding,
    order: ByteOrder,
) -> Option<u32> {
    let mut ndr = Ndr::new(stub, encoding, order);
    ndr.structure()?;
    ndr.u32()
}
