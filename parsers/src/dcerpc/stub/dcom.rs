//! DCOM activation ([MS-DCOM]) and WMI ([MS-WMI]): the class a client asks a server to create
//! (MMC20.Application, ShellWindows... for lateral movement), and the WMI method it runs.
//!
//! ```text
//! ORPCTHIS = COMVERSION (2 x u16); DWORD flags; DWORD reserved1; CID cid (GUID);
//!            [unique] ORPC_EXTENT_ARRAY* extensions
//! ORPC_EXTENT_ARRAY = DWORD size; DWORD reserved; [size_is((size+1)&~1), unique] ORPC_EXTENT** extent
//! ORPC_EXTENT = [conformance] GUID id; DWORD size; byte data[(size+7)&~7]
//! MInterfacePointer = [conformance] DWORD ulCntData; byte abData[ulCntData]
//! ```

use super::{ByteOrder, Encoding, MAX_STRING_UNITS, ndr::Ndr};
use crate::dcerpc::Uuid;

/// Extensions read from one ORPCTHIS: Windows sends one or two.
const MAX_EXTENSIONS: usize = 16;

/// Activation properties read from one activation blob ([MS-DCOM] 2.2.22.2.1: MAX_ACTPROPS_TOTAL
/// is 10).
const MAX_PROPERTIES: usize = 10;

/// The OBJREF signature, "MEOW" ([MS-DCOM] 2.2.18.1).
const OBJREF_SIGNATURE: u32 = 0x574f_454d;

/// OBJREF_CUSTOM: the activation properties' marshaling.
const OBJREF_CUSTOM: u32 = 4;

/// CLSID_InstantiationInfo ([MS-DCOM] 1.9): the property holding the class to create.
const INSTANTIATION_INFO: Uuid = Uuid(0x000001ab_0000_0000_c000_000000000046);

/// Bytes of a type serialization header pair (common 8, private 8; [MS-RPCE] 2.2.6).
const TYPE_HEADERS_LEN: usize = 16;

/// The classes whose remote creation is lateral movement, by CLSID.
const CLASSES: &[(Uuid, &str)] = &[
    (
        Uuid(0x49b2791a_b1ae_4c90_9b8e_e860ba07f889),
        "MMC20.Application",
    ),
    (Uuid(0x9ba05972_f6a8_11cf_a442_00a0c90a8f39), "ShellWindows"),
    (
        Uuid(0xc08afd90_f2a1_11d1_8455_00a0c91f3880),
        "ShellBrowserWindow",
    ),
    (
        Uuid(0x8bc3f05e_d86b_11d0_a075_00c04fb68820),
        "WbemLevel1Login",
    ),
];

/// The name dcwatch gives a CLSID, if any.
pub fn class_name(clsid: Uuid) -> Option<&'static str> {
    CLASSES
        .iter()
        .find(|(uuid, _)| *uuid == clsid)
        .map(|(_, name)| *name)
}

/// An ORPCTHIS, its extensions passed over.
fn orpcthis(ndr: &mut Ndr<'_>) -> Option<()> {
    ndr.structure()?;
    let _major = ndr.u16()?;
    let _minor = ndr.u16()?;
    let _flags = ndr.u32()?;
    let _reserved = ndr.u32()?;
    let _cid = ndr.uuid()?;
    if ndr.pointer()? == 0 {
        return Some(());
    }
    ndr.structure()?;
    let _size = ndr.u32()?;
    let _reserved = ndr.u32()?;
    if ndr.pointer()? == 0 {
        return Some(());
    }
    let count = ndr.size()?;
    if count > MAX_EXTENSIONS {
        return None;
    }
    let mut present = Vec::with_capacity(count);
    for _ in 0..count {
        present.push(ndr.pointer()? != 0);
    }
    for set in present {
        if set {
            let conformance = ndr.size()?;
            let _id = ndr.uuid()?;
            let _size = ndr.u32()?;
            ndr.take(conformance)?;
        }
    }
    Some(())
}

/// A unique MInterfacePointer: its abData (`None` inside for NULL).
fn interface_pointer<'a>(ndr: &mut Ndr<'a>) -> Option<Option<&'a [u8]>> {
    if ndr.pointer()? == 0 {
        return Some(None);
    }
    let conformance = ndr.size()?;
    let count = usize::try_from(ndr.u32()?).ok()?;
    if count != conformance {
        return None;
    }
    ndr.take(count).map(Some)
}

/// RemoteCreateInstance (opnum 4, [MS-DCOM] 3.1.2.5.2.3.2) and RemoteGetClassObject (opnum 3,
/// 3.1.2.5.2.3.1) of IRemoteSCMActivator: the class in the activation properties.
///
/// ```text
/// HRESULT RemoteCreateInstance([in] handle_t rpc, [in] ORPCTHIS* orpcthis,
///   [in, unique] MInterfacePointer* pUnkOuter, [in, unique] MInterfacePointer* pActProperties, ...);
/// HRESULT RemoteGetClassObject([in] handle_t rpc, [in] ORPCTHIS* orpcthis,
///   [in, unique] MInterfacePointer* pActProperties, ...);
/// ```
pub(super) fn activation_class(
    opnum: u16,
    stub: &[u8],
    encoding: Encoding,
    order: ByteOrder,
) -> Option<Uuid> {
    let mut ndr = Ndr::new(stub, encoding, order);
    orpcthis(&mut ndr)?;
    if opnum == 4 {
        interface_pointer(&mut ndr)?;
    }
    properties_class(interface_pointer(&mut ndr)??)
}

/// IActivation RemoteActivation (opnum 0, [MS-DCOM] 3.1.2.5.1.1): the CLSID follows ORPCTHIS.
pub(super) fn remote_activation_class(
    stub: &[u8],
    encoding: Encoding,
    order: ByteOrder,
) -> Option<Uuid> {
    let mut ndr = Ndr::new(stub, encoding, order);
    orpcthis(&mut ndr)?;
    ndr.uuid()
}

/// A little-endian u32 of a serialized blob at `at`.
fn le32(bytes: &[u8], at: usize) -> Option<u32> {
    bytes
        .get(at..at.checked_add(4)?)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
}

fn le_uuid(bytes: &[u8], at: usize) -> Option<Uuid> {
    let raw = bytes.get(at..at.checked_add(16)?)?.try_into().ok()?;
    Some(Uuid::from_wire(raw, true))
}

/// The class of an activation properties OBJREF ([MS-DCOM] 2.2.18.6, 2.2.22):
///
/// ```text
/// OBJREF_CUSTOM = signature (MEOW) flags (4) iid (16) clsid (16) cbExtension reserved
///   pObjectData = ActivationPropertiesBlob
/// ActivationPropertiesBlob = dwSize dwReserved CustomHeader Properties
/// CustomHeader (type-serialized: 16 bytes of headers, the private one giving the body's
///   length) = totalSize headerSize dwReserved destCtx cIfs classInfoClsid (16)
///   pclsid pSizes pdwReserved, then [cIfs] CLSIDs, [cIfs] sizes
/// InstantiationInfoData (type-serialized) = classId (16) ...
/// ```
///
/// Serialized types are little-endian whatever the PDU's byte order.
fn properties_class(objref: &[u8]) -> Option<Uuid> {
    if le32(objref, 0)? != OBJREF_SIGNATURE || le32(objref, 4)? != OBJREF_CUSTOM {
        return None;
    }
    // signature, flags, iid, clsid, cbExtension, reserved, then the blob's dwSize, dwReserved.
    let header = 4 + 4 + 16 + 16 + 4 + 4 + 8;
    let body_len = usize::try_from(le32(objref, header + 8)?).ok()?;
    let body = header + TYPE_HEADERS_LEN;
    let count = usize::try_from(le32(objref, body + 16)?).ok()?;
    if count > MAX_PROPERTIES {
        return None;
    }
    // totalSize, headerSize, dwReserved, destCtx, cIfs, classInfoClsid, three pointers, then
    // the CLSIDs' conformance.
    let clsids = body + 5 * 4 + 16 + 3 * 4 + 4;
    let sizes = clsids + 16 * count + 4;
    let mut property = body.checked_add(body_len)?;
    for index in 0..count {
        let clsid = le_uuid(objref, clsids + 16 * index)?;
        if clsid == INSTANTIATION_INFO {
            return le_uuid(objref, property + TYPE_HEADERS_LEN);
        }
        let size = usize::try_from(le32(objref, sizes + 4 * index)?).ok()?;
        property = property.checked_add(size)?;
    }
    None
}

/// What an ExecMethod call runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WmiMethod {
    /// The class of the object path (Win32_Process of `Win32_Process` or
    /// `Win32_Process.Handle="4"`).
    pub class: String,
    pub method: String,
}

/// A BSTR: a unique pointer to a FLAGGED_WORD_BLOB ([MS-OAUT] 2.2.23.1:
/// [conformance] cBytes clSize asData[clSize]).
fn bstr(ndr: &mut Ndr<'_>) -> Option<String> {
    if ndr.pointer()? == 0 {
        return Some(String::new());
    }
    let conformance = ndr.size()?;
    let _bytes = ndr.u32()?;
    let units = usize::try_from(ndr.u32()?).ok()?;
    if units != conformance || units > MAX_STRING_UNITS {
        return None;
    }
    let data = ndr.take(units.checked_mul(2)?)?;
    Some(super::ndr::utf16(data, ndr.order))
}

/// IWbemServices ExecMethod (opnum 24, [MS-WMI] 3.1.4.3.21) and ExecMethodAsync (opnum 25):
///
/// ```text
/// HRESULT ExecMethod([in] ORPCTHIS, [in] BSTR strObjectPath, [in] BSTR strMethodName, ...);
/// ```
pub(super) fn exec_method(stub: &[u8], encoding: Encoding, order: ByteOrder) -> Option<WmiMethod> {
    let mut ndr = Ndr::new(stub, encoding, order);
    orpcthis(&mut ndr)?;
    let path = bstr(&mut ndr)?;
    let method = bstr(&mut ndr)?;
    let class = path.split(['.', '=']).next().unwrap_or_default().to_owned();
    Some(WmiMethod { class, method })
}
