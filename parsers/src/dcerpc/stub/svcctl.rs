//! SVCCTL ([MS-SCMR]): services created, opened, started, reconfigured.

use super::{
    ByteOrder, Encoding,
    ndr::{Handle, Ndr},
};

/// The service a RCreateServiceW request creates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CreateService {
    pub service_name: String,
    pub display_name: Option<String>,
    pub binary_path: String,
    pub service_type: u32,
    pub start_type: u32,
}

/// RCreateServiceW [in] parameters, [MS-SCMR] 3.1.4.12 (opnum 12):
///
/// ```text
/// DWORD RCreateServiceW([in] SC_RPC_HANDLE hSCManager,
///   [in, string, range(0, SC_MAX_NAME_LENGTH)] wchar_t* lpServiceName,
///   [in, string, unique, range(0, SC_MAX_NAME_LENGTH)] wchar_t* lpDisplayName,
///   [in] DWORD dwDesiredAccess, [in] DWORD dwServiceType, [in] DWORD dwStartType,
///   [in] DWORD dwErrorControl,
///   [in, string, range(0, SC_MAX_PATH_LENGTH)] wchar_t* lpBinaryPathName, ...);
/// ```
pub fn create_service_w(
    stub: &[u8],
    encoding: Encoding,
    order: ByteOrder,
) -> Option<CreateService> {
    let mut ndr = Ndr::new(stub, encoding, order);
    ndr.handle()?;
    let service_name = ndr.wstring()?;
    let display_name = ndr.unique_wstring()?;
    let _desired_access = ndr.u32()?;
    let service_type = ndr.u32()?;
    let start_type = ndr.u32()?;
    let _error_control = ndr.u32()?;
    let binary_path = ndr.wstring()?;
    Some(CreateService {
        service_name,
        display_name,
        binary_path,
        service_type,
        start_type,
    })
}

/// ROpenServiceW [in] parameters, [MS-SCMR] 3.1.4.16 (opnum 16): the service opened.
///
/// ```text
/// DWORD ROpenServiceW([in] SC_RPC_HANDLE hSCManager,
///   [in, string, range(0, SC_MAX_NAME_LENGTH)] wchar_t* lpServiceName,
///   [in] DWORD dwDesiredAccess, [out] LPSC_RPC_HANDLE lpServiceHandle);
/// ```
pub(super) fn open_service_w(stub: &[u8], encoding: Encoding, order: ByteOrder) -> Option<String> {
    let mut ndr = Ndr::new(stub, encoding, order);
    ndr.handle()?;
    ndr.wstring()
}

/// The service handle a request acts on: its first parameter (RControlService opnum 1,
/// RDeleteService 2, RChangeServiceConfigW 11, RStartServiceW 19).
pub(super) fn service_handle(stub: &[u8], encoding: Encoding, order: ByteOrder) -> Option<Handle> {
    Ndr::new(stub, encoding, order).handle()
}

/// What RChangeServiceConfigW sets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceConfig {
    pub handle: Handle,
    pub binary_path: Option<String>,
    pub display_name: Option<String>,
}

/// RChangeServiceConfigW [in] parameters, [MS-SCMR] 3.1.4.11 (opnum 11):
///
/// ```text
/// DWORD RChangeServiceConfigW([in] SC_RPC_HANDLE hService, [in] DWORD dwServiceType,
///   [in] DWORD dwStartType, [in] DWORD dwErrorControl,
///   [in, string, unique] wchar_t* lpBinaryPathName, [in, string, unique] wchar_t* lpLoadOrderGroup,
///   [in, out, unique] LPDWORD lpdwTagId, [in, unique, size_is(dwDependSize)] LPBYTE lpDependencies,
///   [in] DWORD dwDependSize, [in, string, unique] wchar_t* lpServiceStartName,
///   [in, unique, size_is(dwPwSize)] LPBYTE lpPassword, [in] DWORD dwPwSize,
///   [in, string, unique] wchar_t* lpDisplayName);
/// ```
///
/// The password's bytes are passed over, never kept.
pub(super) fn change_service_config_w(
    stub: &[u8],
    encoding: Encoding,
    order: ByteOrder,
) -> Option<ServiceConfig> {
    let mut ndr = Ndr::new(stub, encoding, order);
    let handle = ndr.handle()?;
    let _service_type = ndr.u32()?;
    let _start_type = ndr.u32()?;
    let _error_control = ndr.u32()?;
    let binary_path = ndr.unique_wstring()?;
    let _load_order_group = ndr.unique_wstring()?;
    if ndr.pointer()? != 0 {
        let _tag = ndr.u32()?;
    }
    if ndr.pointer()? != 0 {
        ndr.conformant_bytes()?;
    }
    let _depend_size = ndr.u32()?;
    let _start_name = ndr.unique_wstring()?;
    if ndr.pointer()? != 0 {
        ndr.conformant_bytes()?;
    }
    let _password_size = ndr.u32()?;
    let display_name = ndr.unique_wstring()?;
    Some(ServiceConfig {
        handle,
        binary_path,
        display_name,
    })
}

/// RCreateServiceW's (and RCreateServiceWOW64W's) answer, [MS-SCMR] 3.1.4.12: the new
/// service's handle, when the call succeeded.
///
/// ```text
/// [in, out, unique] LPDWORD lpdwTagId, [out] LPSC_RPC_HANDLE lpServiceHandle, DWORD return
/// ```
pub(super) fn created_service_handle(
    stub: &[u8],
    encoding: Encoding,
    order: ByteOrder,
) -> Option<Handle> {
    if super::return_value(stub, order)? != 0 {
        return None;
    }
    let mut ndr = Ndr::new(stub, encoding, order);
    if ndr.pointer()? != 0 {
        let _tag = ndr.u32()?;
    }
    ndr.handle()
}
