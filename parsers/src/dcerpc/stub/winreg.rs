//! WINREG ([MS-RRP]): the hives and keys a client opens, creates and saves (remote SAM and
//! SECURITY dumps save HKLM\SAM and HKLM\SECURITY to a file).

use super::{
    ByteOrder, Encoding,
    ndr::{Handle, Ndr},
};

/// The predefined key an Open* call (opnums 0-4, 27, [MS-RRP] 3.1.5.1-3.1.5.5, 3.1.5.25)
/// opens, by opnum.
pub(super) fn hive(opnum: u16) -> Option<&'static str> {
    Some(match opnum {
        0 => "HKCR",
        1 => "HKCU",
        2 => "HKLM",
        3 => "HKPD",
        4 => "HKU",
        27 => "HKCC",
        _ => return None,
    })
}

/// A subkey opened or created under a handle: BaseRegOpenKey (opnum 15, 3.1.5.15) and
/// BaseRegCreateKey (opnum 6, 3.1.5.7).
///
/// ```text
/// error_status_t BaseRegOpenKey([in] RPC_HKEY hKey, [in] PRRP_UNICODE_STRING lpSubKey,
///   [in] DWORD dwOptions, [in] REGSAM samDesired, [out] PRPC_HKEY phkResult);
/// RRP_UNICODE_STRING = RPC_UNICODE_STRING (its Length counting the terminating NUL)
/// ```
pub(super) fn sub_key(
    stub: &[u8],
    encoding: Encoding,
    order: ByteOrder,
) -> Option<(Handle, String)> {
    let mut ndr = Ndr::new(stub, encoding, order);
    let handle = ndr.handle()?;
    let name = ndr.unicode_string()?.unwrap_or_default();
    Some((handle, name))
}

/// The key a BaseRegSaveKey (opnum 20, 3.1.5.20) or BaseRegSaveKeyEx (opnum 31, 3.1.5.29)
/// saves: its handle, the first parameter.
pub(super) fn saved_key(stub: &[u8], encoding: Encoding, order: ByteOrder) -> Option<Handle> {
    Ndr::new(stub, encoding, order).handle()
}
