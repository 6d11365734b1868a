//! LSARPC secrets ([MS-LSAD] 3.1.4.6): the secret a call creates, opens, stores or retrieves,
//! G$BCKUPKEY_P and G$BCKUPKEY_PREFERRED among them (the DPAPI domain backup key).

use super::{ByteOrder, Encoding, ndr::Ndr};

/// The secret's name of LsarCreateSecret (opnum 16), LsarOpenSecret (28),
/// LsarStorePrivateData (42) and LsarRetrievePrivateData (43): each passes the policy handle,
/// then the name by reference.
///
/// ```text
/// NTSTATUS LsarOpenSecret([in] LSAPR_HANDLE PolicyHandle, [in] PRPC_UNICODE_STRING SecretName,
///   [in] ACCESS_MASK DesiredAccess, [out] LSAPR_HANDLE* SecretHandle);
/// NTSTATUS LsarRetrievePrivateData([in] LSAPR_HANDLE PolicyHandle,
///   [in] PRPC_UNICODE_STRING KeyName, [in, out] PLSAPR_CR_CIPHER_VALUE* EncryptedData);
/// ```
///
/// The stored data that follows in LsarStorePrivateData is never read.
pub(super) fn secret_name(stub: &[u8], encoding: Encoding, order: ByteOrder) -> Option<String> {
    let mut ndr = Ndr::new(stub, encoding, order);
    ndr.handle()?;
    ndr.unicode_string()?
}
