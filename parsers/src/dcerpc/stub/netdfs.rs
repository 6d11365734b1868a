//! NETDFS ([MS-DFSNM] 3.1.4.4): the server a stand-alone root is added on or removed from. In
//! DFSCoerce it names the attacker's listener.

use super::{ByteOrder, Encoding, ndr::Ndr};

/// ServerName of NetrDfsAddStdRoot (opnum 12), NetrDfsRemoveStdRoot (13) and
/// NetrDfsAddStdRootForced (15), their first parameter:
///
/// ```text
/// NET_API_STATUS NetrDfsRemoveStdRoot([in, string] WCHAR* ServerName,
///   [in, string] WCHAR* RootShare, [in] DWORD ApiFlags);
/// ```
pub(super) fn server_name(stub: &[u8], encoding: Encoding, order: ByteOrder) -> Option<String> {
    Ndr::new(stub, encoding, order).wstring()
}
