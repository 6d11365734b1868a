//! EFSRPC ([MS-EFSR] 3.1.4.2): the file a call names. In coercion (PetitPotam) it is a UNC path
//! to the attacker's listener, which the server then authenticates to.

use super::{ByteOrder, Encoding, ndr::Ndr};

/// The FileName (or SrcFileName) of an EFSRPC request, for the opnums that take one:
///
/// ```text
/// opnums 0, 4-9, 12, 13, 18, 19, 21, 22:
///   ([out] PEXIMPORT_CONTEXT_HANDLE, for opnum 0, not in the request)
///   [in, string] wchar_t* FileName, ...
/// opnums 15 (EfsRpcAddUsersToFileEx), 16 (EfsRpcFileKeyInfoEx):
///   [in] DWORD dwFlags, [in, unique] EFS_RPC_BLOB* Reserved, [in, string] wchar_t* FileName, ...
/// EFS_RPC_BLOB = DWORD cbData; [size_is(cbData)] unsigned char* bData
/// ```
///
/// The others pass a context handle (1-3) or no name (10, 11, 14, 17, 20).
pub(super) fn file_name(
    opnum: u16,
    stub: &[u8],
    encoding: Encoding,
    order: ByteOrder,
) -> Option<String> {
    let mut ndr = Ndr::new(stub, encoding, order);
    match opnum {
        0 | 4..=9 | 12 | 13 | 18 | 19 | 21 | 22 => ndr.wstring(),
        15 | 16 => {
            let _flags = ndr.u32()?;
            if ndr.pointer()? != 0 {
                ndr.structure()?;
                let _length = ndr.u32()?;
                if ndr.pointer()? != 0 {
                    ndr.conformant_bytes()?;
                }
            }
            ndr.wstring()
        }
        _ => None,
    }
}

/// Whether an EFSRPC opnum names a file.
pub(super) fn file_name_opnum(opnum: u16) -> bool {
    matches!(opnum, 0 | 4..=9 | 12 | 13 | 15 | 16 | 18 | 19 | 21 | 22)
}
