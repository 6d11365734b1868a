//! Asking an endpoint mapper for its endpoints, as `rpcdump` does: an unauthenticated bind to
//! EPMv4 over NDR, then ept_lookup (opnum 2) calls that carry the entry handle of the previous
//! answer until the mapper says it has nothing more (C706 appendix O, [MS-RPCE] 2.2.1.2.5).
//!
//! ```text
//! void ept_lookup([in] handle_t h, [in] unsigned32 inquiry_type, [in] uuid_p_t object,
//!   [in] rpc_if_id_p_t interface_id, [in] unsigned32 vers_option,
//!   [in, out] ept_lookup_handle_t* entry_handle, [in] unsigned32 max_ents,
//!   [out] unsigned32* num_ents, [out, length_is(*num_ents), size_is(max_ents)]
//!   ept_entry_t entries[], [out] error_status_t* status);
//! ept_entry_t = object (uuid_t) tower (twr_p_t)
//!               annotation ([string] char[64]: offset (u32) actual_count (u32) chars)
//! ```
//!
//! Building the PDUs lives here beside the decoder so both read the same IDL; the socket is the
//! daemon's.

use super::{
    AuthLevel, AuthType, HEADER_LEN, PacketType, PfcFlags, SEC_TRAILER_LEN, SyntaxId, Uuid,
    interfaces,
    stub::{self, ByteOrder, CONTEXT_HANDLE_LEN, Encoding, Ndr, TowerEndpoint},
};

/// ept_lookup's operation number in EPMv4.
pub const EPT_LOOKUP: u16 = 2;

/// Entries asked for per call: what impacket's `hept_lookup` asks for. A Windows DC has a few
/// hundred, so a couple of calls suffice.
pub const MAX_ENTRIES_PER_CALL: u32 = 500;

/// Entries read from one answer, whatever its count says: [`MAX_ENTRIES_PER_CALL`] bounds what
/// a mapper may send.
pub const MAX_ENTRIES: usize = MAX_ENTRIES_PER_CALL as usize;

/// Characters of an annotation: ept_max_annotation_size in C706 appendix O.
pub const MAX_ANNOTATION_LEN: usize = 64;

/// The status an endpoint mapper returns when the handle has reached the end of its table
/// (EPT_S_NOT_REGISTERED, C706 appendix O).
pub const EPT_S_NOT_REGISTERED: u32 = 0x16c9_a0d6;

/// Fragment sizes offered in the bind: what Windows and impacket offer.
const MAX_FRAG: u16 = 4280;

/// RPC_C_EP_ALL_ELTS: every element, whatever its interface or object.
const INQUIRY_ALL_ELEMENTS: u32 = 0;
/// RPC_C_VERS_ALL: every version of the interface.
const VERSIONS_ALL: u32 = 1;

/// An ept_lookup entry handle: a context handle the mapper hands back to continue from.
pub type EntryHandle = [u8; CONTEXT_HANDLE_LEN];

/// One ept_lookup answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LookupAnswer {
    /// The handle to send in the next call; all zero once the mapper has closed it.
    pub handle: EntryHandle,
    /// The decoded towers of the entries that carried one.
    pub endpoints: Vec<TowerEndpoint>,
    /// Entries in the answer, towers or not.
    pub entries: usize,
    /// 0, or [`EPT_S_NOT_REGISTERED`] at the end of the table.
    pub status: u32,
}

impl LookupAnswer {
    /// Whether another call may bring more entries: the call succeeded, brought some, and the
    /// mapper kept the handle open.
    pub fn has_more(&self) -> bool {
        self.status == 0 && self.entries > 0 && self.handle != [0; CONTEXT_HANDLE_LEN]
    }
}

/// A UUID as NDR marshals it in little-endian order (the inverse of [`Uuid::from_wire`]).
fn uuid_le(uuid: Uuid) -> [u8; 16] {
    let value = uuid.0;
    let mut bytes = [0; 16];
    bytes[..4].copy_from_slice(&((value >> 96) as u32).to_le_bytes());
    bytes[4..6].copy_from_slice(&((value >> 80) as u16).to_le_bytes());
    bytes[6..8].copy_from_slice(&((value >> 64) as u16).to_le_bytes());
    bytes[8..].copy_from_slice(&(value as u64).to_be_bytes());
    bytes
}

/// The common header of a little-endian, single-fragment PDU whose body is `body_len` long,
/// followed by an auth verifier of `auth_len` bytes (sec_trailer excluded) when `auth_len` > 0.
fn header(packet_type: PacketType, call_id: u32, body_len: usize, auth_len: u16) -> Vec<u8> {
    let verifier = if auth_len > 0 {
        SEC_TRAILER_LEN + usize::from(auth_len)
    } else {
        0
    };
    let frag_length = u16::try_from(HEADER_LEN + body_len + verifier).unwrap_or(u16::MAX);
    let mut pdu = Vec::with_capacity(HEADER_LEN + body_len + verifier);
    pdu.extend_from_slice(&[
        5,
        0,
        packet_type.0,
        PfcFlags::FIRST_FRAG.0 | PfcFlags::LAST_FRAG.0,
        0x10,
        0,
        0,
        0,
    ]);
    pdu.extend_from_slice(&frag_length.to_le_bytes());
    pdu.extend_from_slice(&auth_len.to_le_bytes());
    pdu.extend_from_slice(&call_id.to_le_bytes());
    pdu
}

/// A BIND offering one context: EPMv4 3.0 over NDR 2.0, no authentication.
pub fn bind(call_id: u32) -> Vec<u8> {
    bind_pdu(call_id, 0)
}

/// The same BIND with an auth verifier ([MS-RPCE] 2.2.2.11): `token` (an NTLMSSP NEGOTIATE,
/// say) at `level`, context 0, no padding (the body ends 4-aligned). The server's BIND_ACK
/// carries its answer token (an NTLM CHALLENGE). A token longer than 64 KiB less the PDU is cut.
pub fn authenticated_bind(
    call_id: u32,
    auth_type: AuthType,
    level: AuthLevel,
    token: &[u8],
) -> Vec<u8> {
    let room = usize::from(u16::MAX) - HEADER_LEN - BIND_BODY_LEN - SEC_TRAILER_LEN;
    let token = token.get(..room).unwrap_or(token);
    let mut pdu = bind_pdu(call_id, u16::try_from(token.len()).unwrap_or(0));
    pdu.extend_from_slice(&[auth_type.0, level.0, 0, 0]);
    pdu.extend_from_slice(&0_u32.to_le_bytes());
    pdu.extend_from_slice(token);
    pdu
}

/// max_xmit, max_recv, assoc_group; the context list head; two syntaxes.
const BIND_BODY_LEN: usize = 8 + 8 + 20 + 20;

fn bind_pdu(call_id: u32, auth_len: u16) -> Vec<u8> {
    let mut pdu = header(PacketType::BIND, call_id, BIND_BODY_LEN, auth_len);
    pdu.extend_from_slice(&MAX_FRAG.to_le_bytes());
    pdu.extend_from_slice(&MAX_FRAG.to_le_bytes());
    pdu.extend_from_slice(&0_u32.to_le_bytes());
    // One context (and 3 bytes of padding); context id 0 with one transfer syntax.
    pdu.extend_from_slice(&[1, 0, 0, 0, 0, 0, 1, 0]);
    pdu.extend_from_slice(&uuid_le(interfaces::EPM));
    pdu.extend_from_slice(&3_u32.to_le_bytes());
    pdu.extend_from_slice(&uuid_le(SyntaxId::NDR));
    pdu.extend_from_slice(&2_u32.to_le_bytes());
    pdu
}

/// An ept_lookup REQUEST for every element of every interface, continuing from `handle` (all
/// zero for the first call).
pub fn lookup_request(call_id: u32, handle: &EntryHandle, max_entries: u32) -> Vec<u8> {
    const STUB_LEN: usize = 4 + 4 + 4 + 4 + CONTEXT_HANDLE_LEN + 4;
    let mut pdu = header(PacketType::REQUEST, call_id, 8 + STUB_LEN, 0);
    pdu.extend_from_slice(&(STUB_LEN as u32).to_le_bytes());
    pdu.extend_from_slice(&0_u16.to_le_bytes());
    pdu.extend_from_slice(&EPT_LOOKUP.to_le_bytes());
    pdu.extend_from_slice(&INQUIRY_ALL_ELEMENTS.to_le_bytes());
    // object and interface_id: NULL unique pointers.
    pdu.extend_from_slice(&[0; 8]);
    pdu.extend_from_slice(&VERSIONS_ALL.to_le_bytes());
    pdu.extend_from_slice(handle);
    pdu.extend_from_slice(&max_entries.to_le_bytes());
    pdu
}

/// Decodes an ept_lookup response stub (the reassembled stub of every fragment). `None` when it
/// is not what the IDL says, or announces more than [`MAX_ENTRIES`].
pub fn lookup_response(stub: &[u8], encoding: Encoding, order: ByteOrder) -> Option<LookupAnswer> {
    let mut ndr = Ndr::new(stub, encoding, order);
    let handle: EntryHandle = ndr.take(CONTEXT_HANDLE_LEN)?.try_into().ok()?;
    let num_entries = usize::try_from(ndr.u32()?).ok()?;
    let _max_count = ndr.size()?;
    let _offset = ndr.size()?;
    let actual = ndr.size()?;
    if actual > MAX_ENTRIES || actual != num_entries {
        return None;
    }
    let mut towers = Vec::with_capacity(actual);
    for _ in 0..actual {
        ndr.align(4)?;
        let _object = ndr.take(16)?;
        towers.push(ndr.pointer()?);
        let _annotation_offset = ndr.u32()?;
        let annotation_len = usize::try_from(ndr.u32()?).ok()?;
        if annotation_len > MAX_ANNOTATION_LEN {
            return None;
        }
        ndr.take(annotation_len)?;
    }
    let mut endpoints = Vec::new();
    for pointer in towers {
        if pointer == 0 {
            continue;
        }
        let _conformance = ndr.size()?;
        let length = usize::try_from(ndr.u32()?).ok()?;
        if let Some(endpoint) = stub::tower(ndr.take(length)?) {
            endpoints.push(endpoint);
        }
    }
    let status = ndr.u32()?;
    Some(LookupAnswer {
        handle,
        endpoints,
        entries: actual,
        status,
    })
}

#[cfg(test)]
mod tests;
