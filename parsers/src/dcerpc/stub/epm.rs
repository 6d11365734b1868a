//! The endpoint mapper (C706 appendix O, [MS-RPCE] 2.2.1.2): the endpoints an ept_map answer
//! announces.

use std::net::Ipv4Addr;

use super::{ByteOrder, Encoding, MAX_FLOORS, MAX_STRING_UNITS, MAX_TOWERS, ndr::Ndr};
use crate::dcerpc::Uuid;

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
    ndr.handle()?;
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
pub(in crate::dcerpc) fn tower(bytes: &[u8]) -> Option<TowerEndpoint> {
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
