//! The few operation stubs dcwatch reads: NDR (C706 chapter 14) in the PDU's byte order, the
//! [in] parameters of requests that name a service, an account or a computer, and the endpoints
//! an endpoint-mapper answer announces.
//!
//! Each decoder is fail-soft: `None` when the stub is not what the operation's IDL says (cut
//! short, sealed, another dialect), never an error for the PDU. Alignment is relative to the
//! start of the stub, as NDR's is.
//!
//! ```text
//! conformant varying string = max_count (u32) offset (u32) actual_count (u32)
//!                             actual_count UTF-16LE units (with the terminating NUL)
//! unique pointer            = referent id (u32, 0 = NULL), the pointee follows
//! context handle            = 20 bytes
//! ```

use std::net::Ipv4Addr;

use super::Uuid;

/// UTF-16 units of one string that are decoded. Service names are limited to 256 characters
/// and a binary path to 32767 (MAX_PATH long form); 4096 keeps the commands attackers put in a
/// binary path while bounding the work for a hostile count.
pub const MAX_STRING_UNITS: usize = 4096;

/// Names read from one SamrLookupNamesInDomain: [MS-SAMR] 3.1.5.11.2 rejects more than 1000.
pub const MAX_LOOKUP_NAMES: usize = 1000;

/// Towers read from one ept_map answer: the caller's max_towers, 4 for Windows clients and
/// impacket; 64 bounds the loop for a hostile count.
pub const MAX_TOWERS: usize = 64;

/// Floors read from one tower: a TCP/IP tower has 5 (C706 appendix L); 16 leaves room for
/// others while bounding the loop.
pub const MAX_FLOORS: usize = 16;

/// Length of an NDR context handle (C706 14.2.3.1 / [MS-RPCE] 2.2.4.1.2).
pub(super) const CONTEXT_HANDLE_LEN: usize = 20;

/// The transfer syntax a stub is in: the one the bind_ack accepted for its context.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// NDR 2.0 (C706 chapter 14): counts and pointers are 4 bytes.
    #[default]
    Ndr,
    /// NDR64 ([MS-RPCE] 2.2.5): counts and pointers are 8 bytes, aligned to 8; enums 4 bytes.
    Ndr64,
}

/// The order of a stub's integers and UTF-16 units: the integer representation of the PDU's
/// data representation label (drep[0] high nibble, C706 12.6.3.1 / 14.2.5). Windows sends
/// little-endian, but its RPC runtime accepts big-endian NDR too, so a client may choose it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    #[default]
    Little,
    Big,
}

impl ByteOrder {
    /// The byte order a PDU's header declares.
    pub fn of(header: &super::Header) -> Self {
        if header.little_endian() {
            Self::Little
        } else {
            Self::Big
        }
    }

    fn u16(self, bytes: [u8; 2]) -> u16 {
        match self {
            Self::Little => u16::from_le_bytes(bytes),
            Self::Big => u16::from_be_bytes(bytes),
        }
    }

    fn u32(self, bytes: [u8; 4]) -> u32 {
        match self {
            Self::Little => u32::from_le_bytes(bytes),
            Self::Big => u32::from_be_bytes(bytes),
        }
    }

    fn u64(self, bytes: [u8; 8]) -> u64 {
        match self {
            Self::Little => u64::from_le_bytes(bytes),
            Self::Big => u64::from_be_bytes(bytes),
        }
    }
}

/// An NDR reader over a stub, in the PDU's byte order.
#[derive(Clone, Copy, Debug)]
pub(super) struct Ndr<'a> {
    bytes: &'a [u8],
    at: usize,
    encoding: Encoding,
    order: ByteOrder,
}

impl<'a> Ndr<'a> {
    pub(super) fn new(bytes: &'a [u8], encoding: Encoding, order: ByteOrder) -> Self {
        Self {
            bytes,
            at: 0,
            encoding,
            order,
        }
    }

    pub(super) fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(len)?;
        let slice = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }

    pub(super) fn align(&mut self, to: usize) -> Option<()> {
        let pad = (to - self.at % to) % to;
        self.take(pad).map(|_| ())
    }

    fn u16(&mut self) -> Option<u16> {
        self.align(2)?;
        self.take(2)
            .and_then(|bytes| bytes.try_into().ok())
            .map(|bytes| self.order.u16(bytes))
    }

    pub(super) fn u32(&mut self) -> Option<u32> {
        self.align(4)?;
        self.take(4)
            .and_then(|bytes| bytes.try_into().ok())
            .map(|bytes| self.order.u32(bytes))
    }

    fn u64(&mut self) -> Option<u64> {
        self.align(8)?;
        self.take(8)
            .and_then(|bytes| bytes.try_into().ok())
            .map(|bytes| self.order.u64(bytes))
    }

    /// A conformance, variance or count: 4 bytes in NDR, 8 in NDR64.
    pub(super) fn size(&mut self) -> Option<usize> {
        let value = match self.encoding {
            Encoding::Ndr => u64::from(self.u32()?),
            Encoding::Ndr64 => self.u64()?,
        };
        usize::try_from(value).ok()
    }

    /// A pointer's referent id (0 = NULL): the same width as a size.
    pub(super) fn pointer(&mut self) -> Option<usize> {
        self.size()
    }

    /// An enum: 2 bytes in NDR, 4 in NDR64.
    fn enumeration(&mut self) -> Option<u16> {
        match self.encoding {
            Encoding::Ndr => self.u16(),
            Encoding::Ndr64 => self.u32().and_then(|value| u16::try_from(value).ok()),
        }
    }

    /// A conformant varying string of UTF-16 units ([string] wchar_t*), its NUL dropped.
    fn wstring(&mut self) -> Option<String> {
        let _max_count = self.size()?;
        let offset = self.size()?;
        let actual = self.size()?;
        if offset != 0 || actual > MAX_STRING_UNITS {
            return None;
        }
        let bytes = self.take(actual.checked_mul(2)?)?;
        Some(utf16(bytes, self.order))
    }

    /// A unique pointer to a string: `Some(None)` for NULL.
    fn unique_wstring(&mut self) -> Option<Option<String>> {
        match self.pointer()? {
            0 => Some(None),
            _ => self.wstring().map(Some),
        }
    }
}

/// UTF-16 (wchar_t units in the stub's byte order) to text, a trailing NUL dropped, unpaired
/// surrogates replaced.
fn utf16(bytes: &[u8], order: ByteOrder) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|pair| order.u16([pair[0], pair[1]]))
        .collect();
    let units = units.strip_suffix(&[0]).unwrap_or(&units);
    String::from_utf16_lossy(units)
}

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
    ndr.take(CONTEXT_HANDLE_LEN)?;
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
    ndr.take(CONTEXT_HANDLE_LEN)?;
    let count = usize::try_from(ndr.u32()?).ok()?;
    let _max_count = ndr.size()?;
    let _offset = ndr.size()?;
    let actual = ndr.size()?;
    if count > MAX_LOOKUP_NAMES || actual != count {
        return None;
    }
    // The fixed parts first (Length, MaximumLength, Buffer pointer), then the buffers.
    let mut pointers = Vec::with_capacity(actual.min(ndr.bytes.len() / 8));
    for _ in 0..actual {
        ndr.align(match encoding {
            Encoding::Ndr => 4,
            Encoding::Ndr64 => 8,
        })?;
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
        let _max = ndr.size()?;
        let offset = ndr.size()?;
        let units = ndr.size()?;
        if offset != 0 || units > MAX_STRING_UNITS {
            return None;
        }
        names.push(utf16(ndr.take(units.checked_mul(2)?)?, ndr.order));
    }
    Some(names)
}

/// SamrOpenUser [in] parameters, [MS-SAMR] 3.1.5.1.9 (opnum 34): the RID opened.
///
/// ```text
/// long SamrOpenUser([in] SAMPR_HANDLE DomainHandle, [in] unsigned long DesiredAccess,
///   [in] unsigned long UserId, [out] SAMPR_HANDLE* UserHandle);
/// ```
pub fn samr_open_user(stub: &[u8], encoding: Encoding, order: ByteOrder) -> Option<u32> {
    let mut ndr = Ndr::new(stub, encoding, order);
    ndr.take(CONTEXT_HANDLE_LEN)?;
    let _access = ndr.u32()?;
    ndr.u32()
}

/// NETLOGON_SECURE_CHANNEL_TYPE, [MS-NRPC] 2.2.1.3.13. Open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SecureChannelType(pub u16);

impl SecureChannelType {
    pub const NULL: Self = Self(0);
    pub const MSV_AP: Self = Self(1);
    pub const WORKSTATION: Self = Self(2);
    pub const TRUSTED_DNS_DOMAIN: Self = Self(3);
    pub const TRUSTED_DOMAIN: Self = Self(4);
    pub const UAS_SERVER: Self = Self(5);
    pub const SERVER: Self = Self(6);
    pub const CDC_SERVER: Self = Self(7);

    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::NULL => "NullSecureChannel",
            Self::MSV_AP => "MsvApSecureChannel",
            Self::WORKSTATION => "WorkstationSecureChannel",
            Self::TRUSTED_DNS_DOMAIN => "TrustedDnsDomainSecureChannel",
            Self::TRUSTED_DOMAIN => "TrustedDomainSecureChannel",
            Self::UAS_SERVER => "UasServerSecureChannel",
            Self::SERVER => "ServerSecureChannel",
            Self::CDC_SERVER => "CdcServerSecureChannel",
            _ => return None,
        })
    }
}

/// What a Netlogon secure-channel setup request says: who, from where, and whether its
/// challenge or credential is all zeros (the Zerologon attack, CVE-2020-1472, sends zeros).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetlogonAuth {
    /// The DC the client addresses (PrimaryName), if given.
    pub primary_name: Option<String>,
    /// NetrServerAuthenticate2/3 only.
    pub account_name: Option<String>,
    /// NetrServerAuthenticate2/3 only.
    pub secure_channel_type: Option<SecureChannelType>,
    pub computer_name: String,
    /// ClientChallenge (NetrServerReqChallenge) or ClientCredential (NetrServerAuthenticate2/3).
    pub credential: [u8; 8],
    /// NetrServerAuthenticate2/3 only.
    pub negotiate_flags: Option<u32>,
}

impl NetlogonAuth {
    pub fn zero_credential(&self) -> bool {
        self.credential == [0; 8]
    }
}

/// NetrServerReqChallenge [in] parameters, [MS-NRPC] 3.5.4.4.1 (opnum 4):
///
/// ```text
/// NTSTATUS NetrServerReqChallenge([in, unique, string] LOGONSRV_HANDLE PrimaryName,
///   [in, string] wchar_t* ComputerName, [in] PNETLOGON_CREDENTIAL ClientChallenge, ...);
/// NETLOGON_CREDENTIAL = CHAR data[8]
/// ```
pub fn netr_server_req_challenge(
    stub: &[u8],
    encoding: Encoding,
    order: ByteOrder,
) -> Option<NetlogonAuth> {
    let mut ndr = Ndr::new(stub, encoding, order);
    let primary_name = ndr.unique_wstring()?;
    let computer_name = ndr.wstring()?;
    let credential = ndr.take(8)?.try_into().ok()?;
    Some(NetlogonAuth {
        primary_name,
        computer_name,
        credential,
        ..NetlogonAuth::default()
    })
}

/// NetrServerAuthenticate2 (opnum 15, [MS-NRPC] 3.5.4.4.3) and NetrServerAuthenticate3 (opnum
/// 26, 3.5.4.4.2) [in] parameters, which are the same:
///
/// ```text
/// NTSTATUS NetrServerAuthenticate3([in, unique, string] LOGONSRV_HANDLE PrimaryName,
///   [in, string] wchar_t* AccountName, [in] NETLOGON_SECURE_CHANNEL_TYPE SecureChannelType,
///   [in, string] wchar_t* ComputerName, [in] PNETLOGON_CREDENTIAL ClientCredential,
///   [out] PNETLOGON_CREDENTIAL ServerCredential, [in, out] ULONG* NegotiateFlags, ...);
/// ```
///
/// The channel type is an NDR enum: 16 bits on the wire.
pub fn netr_server_authenticate(
    stub: &[u8],
    encoding: Encoding,
    order: ByteOrder,
) -> Option<NetlogonAuth> {
    let mut ndr = Ndr::new(stub, encoding, order);
    let primary_name = ndr.unique_wstring()?;
    let account_name = ndr.wstring()?;
    let channel = ndr.enumeration()?;
    let computer_name = ndr.wstring()?;
    let credential = ndr.take(8)?.try_into().ok()?;
    let negotiate_flags = ndr.u32();
    Some(NetlogonAuth {
        primary_name,
        account_name: Some(account_name),
        secure_channel_type: Some(SecureChannelType(channel)),
        computer_name,
        credential,
        negotiate_flags,
    })
}

/// A transport protocol of a tower floor (C706 appendix I, [MS-RPCE] 2.2.1.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TowerProtocol(pub u8);

impl TowerProtocol {
    pub const TCP: Self = Self(0x07);
    pub const UDP: Self = Self(0x08);
    pub const IP: Self = Self(0x09);
    pub const CONNECTIONLESS: Self = Self(0x0a);
    pub const CONNECTION_ORIENTED: Self = Self(0x0b);
    pub const UUID: Self = Self(0x0d);
    pub const NAMED_PIPE: Self = Self(0x0f);
    pub const LRPC: Self = Self(0x10);
    pub const NETBIOS: Self = Self(0x11);
    pub const HTTP: Self = Self(0x1f);

    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::TCP => "tcp",
            Self::UDP => "udp",
            Self::IP => "ip",
            Self::CONNECTIONLESS => "ncadg",
            Self::CONNECTION_ORIENTED => "ncacn",
            Self::UUID => "uuid",
            Self::NAMED_PIPE => "named_pipe",
            Self::LRPC => "ncalrpc",
            Self::NETBIOS => "netbios",
            Self::HTTP => "http",
            _ => return None,
        })
    }
}

/// One endpoint an endpoint mapper announced: a decoded protocol tower.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TowerEndpoint {
    /// The interface of floor 1.
    pub interface: Option<Uuid>,
    /// The transport of floor 4: TCP, UDP, a named pipe, HTTP...
    pub protocol: TowerProtocol,
    /// The TCP or UDP port (HTTP's too), from floor 4.
    pub port: Option<u16>,
    /// The named pipe (or NetBIOS / LRPC name) of floor 4.
    pub name: Option<String>,
    /// The IPv4 address of floor 5 (0.0.0.0 when the server leaves it to the caller).
    pub ip: Option<Ipv4Addr>,
}

/// The endpoints of an ept_map answer, C706 appendix O / [MS-RPCE] 2.2.1.2.5 (opnum 3):
///
/// ```text
/// void ept_map(..., [in, out] ept_lookup_handle_t* entry_handle, [in] unsigned32 max_towers,
///   [out] unsigned32* num_towers, [out, length_is(*num_towers), size_is(max_towers)]
///   twr_p_t towers[], [out] error_status_t* status);
/// twr_t   = tower_length (u32) [size_is(tower_length)] byte tower_octet_string[]
/// tower   = floor_count (u16le) { lhs_length (u16le) lhs (protocol id, data)
///           rhs_length (u16le) rhs }                                        C706 appendix L
/// ```
///
/// Port numbers in a tower's right-hand sides are big-endian, whatever the PDU's drep.
pub fn ept_map_response(
    stub: &[u8],
    encoding: Encoding,
    order: ByteOrder,
) -> Option<Vec<TowerEndpoint>> {
    let mut ndr = Ndr::new(stub, encoding, order);
    ndr.take(CONTEXT_HANDLE_LEN)?;
    let num_towers = usize::try_from(ndr.u32()?).ok()?;
    let _max_count = ndr.size()?;
    let _offset = ndr.size()?;
    let actual = ndr.size()?;
    if actual > MAX_TOWERS || actual != num_towers {
        return None;
    }
    let mut pointers = Vec::with_capacity(actual);
    for _ in 0..actual {
        pointers.push(ndr.pointer()?);
    }
    let mut endpoints = Vec::new();
    for pointer in pointers {
        if pointer == 0 {
            continue;
        }
        let _conformance = ndr.size()?;
        let length = usize::try_from(ndr.u32()?).ok()?;
        let tower_bytes = ndr.take(length)?;
        if let Some(endpoint) = tower(tower_bytes) {
            endpoints.push(endpoint);
        }
    }
    Some(endpoints)
}

/// One protocol tower's endpoint: floors 1 (interface), 4 (transport) and 5 (host).
pub(super) fn tower(bytes: &[u8]) -> Option<TowerEndpoint> {
    // A tower's floors are little-endian whatever the PDU's drep (C706 appendix L).
    let mut at = Ndr::new(bytes, Encoding::Ndr, ByteOrder::Little);
    let floors = at
        .take(2)
        .and_then(|b| b.try_into().ok())
        .map(u16::from_le_bytes)?;
    let mut endpoint = TowerEndpoint::default();
    for index in 0..usize::from(floors).min(MAX_FLOORS) {
        let lhs_len = usize::from(u16::from_le_bytes(at.take(2)?.try_into().ok()?));
        let lhs = at.take(lhs_len)?;
        let rhs_len = usize::from(u16::from_le_bytes(at.take(2)?.try_into().ok()?));
        let rhs = at.take(rhs_len)?;
        let (&protocol, lhs_data) = lhs.split_first()?;
        let protocol = TowerProtocol(protocol);
        match (index, protocol) {
            (0, TowerProtocol::UUID) => {
                endpoint.interface = lhs_data
                    .get(..16)
                    .and_then(|uuid| uuid.try_into().ok())
                    .map(|uuid| Uuid::from_wire(uuid, true));
            }
            (_, TowerProtocol::TCP | TowerProtocol::UDP | TowerProtocol::HTTP) => {
                endpoint.protocol = protocol;
                endpoint.port = rhs.try_into().ok().map(u16::from_be_bytes);
            }
            // Floor 5 of a named-pipe tower (NetBIOS) names the host: the first name is the
            // endpoint.
            (_, TowerProtocol::NAMED_PIPE | TowerProtocol::LRPC | TowerProtocol::NETBIOS)
                if endpoint.name.is_none() =>
            {
                endpoint.protocol = protocol;
                let text = rhs.strip_suffix(&[0]).unwrap_or(rhs);
                let text = text.get(..MAX_STRING_UNITS).unwrap_or(text);
                endpoint.name = Some(String::from_utf8_lossy(text).into_owned());
            }
            (_, TowerProtocol::IP) => {
                endpoint.ip = <[u8; 4]>::try_from(rhs).ok().map(Ipv4Addr::from);
            }
            _ => {}
        }
    }
    Some(endpoint)
}

/// What a decoded stub says, by operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    CreateService(CreateService),
    LookupNames(Vec<String>),
    OpenUser { rid: u32 },
    Netlogon(NetlogonAuth),
    Endpoints(Vec<TowerEndpoint>),
}

/// Whether dcwatch reads the request stub of this operation (a caller need not keep the
/// stubs of the others).
pub fn reads_request(interface: Uuid, opnum: u16) -> bool {
    matches!(
        (interface, opnum),
        (super::interfaces::SVCCTL, 12 | 45)
            | (super::interfaces::SAMR, 17 | 34)
            | (super::interfaces::NETLOGON, 4 | 15 | 26)
    )
}

/// Whether dcwatch reads the response stub of this operation.
pub fn reads_response(interface: Uuid, opnum: u16) -> bool {
    (interface, opnum) == (super::interfaces::EPM, 3)
}

/// Decodes the request stub of an operation dcwatch reads: RCreateServiceW and
/// RCreateServiceWOW64W (the same [in] parameters, [MS-SCMR] 3.1.4.41), SamrLookupNamesInDomain,
/// SamrOpenUser, NetrServerReqChallenge, NetrServerAuthenticate2/3.
pub fn request(
    interface: Uuid,
    opnum: u16,
    stub: &[u8],
    encoding: Encoding,
    order: ByteOrder,
) -> Option<Decoded> {
    use super::interfaces::{NETLOGON, SAMR, SVCCTL};
    match (interface, opnum) {
        (SVCCTL, 12 | 45) => create_service_w(stub, encoding, order).map(Decoded::CreateService),
        (SAMR, 17) => samr_lookup_names(stub, encoding, order).map(Decoded::LookupNames),
        (SAMR, 34) => samr_open_user(stub, encoding, order).map(|rid| Decoded::OpenUser { rid }),
        (NETLOGON, 4) => netr_server_req_challenge(stub, encoding, order).map(Decoded::Netlogon),
        (NETLOGON, 15 | 26) => {
            netr_server_authenticate(stub, encoding, order).map(Decoded::Netlogon)
        }
        _ => None,
    }
}

/// Decodes the response stub of an operation dcwatch reads: ept_map.
pub fn response(
    interface: Uuid,
    opnum: u16,
    stub: &[u8],
    encoding: Encoding,
    order: ByteOrder,
) -> Option<Decoded> {
    match (interface, opnum) {
        (super::interfaces::EPM, 3) => {
            ept_map_response(stub, encoding, order).map(Decoded::Endpoints)
        }
        _ => None,
    }
}

/// The last 4 bytes of a response stub, where an operation's return value (an NTSTATUS, a
/// Win32 error, an error_status_t) sits in NDR and NDR64 alike, in the PDU's byte order.
pub fn return_value(stub: &[u8], order: ByteOrder) -> Option<u32> {
    let at = stub.len().checked_sub(4)?;
    stub.get(at..)?
        .try_into()
        .ok()
        .map(|bytes| order.u32(bytes))
}
