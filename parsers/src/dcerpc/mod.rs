//! Connection-oriented DCE-RPC PDUs: C706 chapter 12 (DCE 1.1 RPC), with Microsoft's extensions
//! of [MS-RPCE] 2.2.2 (AUTH3, the sec_trailer, NEGOTIATE_ACK).
//!
//! ```text
//! common header (16)  = rpc_vers (u8 = 5) rpc_vers_minor (u8: 0, 1) PTYPE (u8) pfc_flags (u8)
//!                       packed_drep (4: byte 0 high nibble = integer rep, 1 little endian)
//!                       frag_length (u16) auth_length (u16) call_id (u32)         C706 12.6.3.1
//! bind / alter_context = max_xmit_frag (u16) max_recv_frag (u16) assoc_group_id (u32)
//!                       p_context_elem: n (u8) pad (3) { p_cont_id (u16) n_transfer_syn (u8)
//!                       pad (u8) abstract_syntax (p_syntax_id_t) transfer_syntaxes [n] }
//! p_syntax_id_t       = if_uuid (16) if_version (u32: major in the low 16 bits)
//! bind_ack / alter_context_resp = max_xmit_frag max_recv_frag assoc_group_id
//!                       sec_addr: length (u16) port_spec [length] pad to 4
//!                       p_result_list: n (u8) pad (3) { result (u16) reason (u16) transfer_syntax }
//! bind_nak            = provider_reject_reason (u16) versions ...
//! request             = alloc_hint (u32) p_cont_id (u16) opnum (u16) [object (16) if
//!                       PFC_OBJECT_UUID] stub
//! response            = alloc_hint (u32) p_cont_id (u16) cancel_count (u8) pad (u8) stub
//! fault               = alloc_hint (u32) p_cont_id (u16) cancel_count (u8) pad (u8) status (u32)
//!                       reserved (u32) [stub]
//! auth3               = pad (4)                                            [MS-RPCE] 2.2.2.10
//! auth verifier       = [auth_pad] sec_trailer: auth_type (u8) auth_level (u8) auth_pad_length
//!                       (u8) reserved (u8) auth_context_id (u32), then auth_value
//!                       [auth_length], at the end of the PDU                 [MS-RPCE] 2.2.2.11
//! ```
//!
//! Every integer of the header and body is in the byte order `packed_drep` names; the parser
//! honours it. The stub decoders of [`stub`] read NDR in little-endian order only (what every
//! Windows peer sends) and give nothing for anything else.

pub mod epm;
pub mod interfaces;
pub mod stub;
#[cfg(test)]
mod tests;

use std::fmt;

use crate::framing::{Framing, Start};

/// Length of the common header every PDU starts with (C706 12.6.3.1).
pub const HEADER_LEN: usize = 16;

/// Length of the sec_trailer that precedes auth_value ([MS-RPCE] 2.2.2.11).
pub const SEC_TRAILER_LEN: usize = 8;

/// Context elements read from one bind or alter_context. Windows offers at most three per
/// interface (NDR, NDR64, bind-time feature negotiation) and binds one interface at a time;
/// 64 covers DCOM's multi-interface binds while bounding the loop.
pub const MAX_CONTEXTS: usize = 64;

/// Transfer syntaxes read from one context element. Real clients offer one to three; the rest
/// are counted past, not kept.
pub const MAX_TRANSFER_SYNTAXES: usize = 8;

/// Bytes of a bind_ack's secondary address (the server's port as text, "49667" or
/// "\PIPE\lsass") that are kept. Longer ones are cut and flagged.
pub const MAX_SECONDARY_ADDRESS_LEN: usize = 256;

/// Why bytes are not a DCE-RPC PDU. Anything that still yields a record is an anomaly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DceRpcError {
    #[error("DCE-RPC PDU shorter than its {needed} bytes")]
    Truncated { needed: usize },
    #[error("not a connection-oriented DCE-RPC version 5 header")]
    BadVersion,
    #[error("frag_length {0} is shorter than the header and auth verifier it announces")]
    BadLength(u16),
}

/// PTYPE, C706 12.6.4 plus [MS-RPCE] 2.2.2.10 (AUTH3). Open: unknown values still parse.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PacketType(pub u8);

impl PacketType {
    pub const REQUEST: Self = Self(0);
    pub const PING: Self = Self(1);
    pub const RESPONSE: Self = Self(2);
    pub const FAULT: Self = Self(3);
    pub const WORKING: Self = Self(4);
    pub const NOCALL: Self = Self(5);
    pub const REJECT: Self = Self(6);
    pub const ACK: Self = Self(7);
    pub const CL_CANCEL: Self = Self(8);
    pub const FACK: Self = Self(9);
    pub const CANCEL_ACK: Self = Self(10);
    pub const BIND: Self = Self(11);
    pub const BIND_ACK: Self = Self(12);
    pub const BIND_NAK: Self = Self(13);
    pub const ALTER_CONTEXT: Self = Self(14);
    pub const ALTER_CONTEXT_RESP: Self = Self(15);
    pub const AUTH3: Self = Self(16);
    pub const SHUTDOWN: Self = Self(17);
    pub const CO_CANCEL: Self = Self(18);
    pub const ORPHANED: Self = Self(19);

    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::REQUEST => "request",
            Self::PING => "ping",
            Self::RESPONSE => "response",
            Self::FAULT => "fault",
            Self::WORKING => "working",
            Self::NOCALL => "nocall",
            Self::REJECT => "reject",
            Self::ACK => "ack",
            Self::CL_CANCEL => "cl_cancel",
            Self::FACK => "fack",
            Self::CANCEL_ACK => "cancel_ack",
            Self::BIND => "bind",
            Self::BIND_ACK => "bind_ack",
            Self::BIND_NAK => "bind_nak",
            Self::ALTER_CONTEXT => "alter_context",
            Self::ALTER_CONTEXT_RESP => "alter_context_resp",
            Self::AUTH3 => "auth3",
            Self::SHUTDOWN => "shutdown",
            Self::CO_CANCEL => "co_cancel",
            Self::ORPHANED => "orphaned",
            _ => return None,
        })
    }

    /// Whether the type belongs to the connection-oriented protocol (the others are
    /// connectionless only, C706 12.6.4): what a strict start test accepts.
    pub fn is_connection_oriented(self) -> bool {
        matches!(self.0, 0 | 2 | 3 | 11..=19)
    }
}

/// pfc_flags, C706 12.6.3.1 ([MS-RPCE] 2.2.2.3 reuses 0x04 in binds for header signing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PfcFlags(pub u8);

impl PfcFlags {
    pub const FIRST_FRAG: Self = Self(0x01);
    pub const LAST_FRAG: Self = Self(0x02);
    /// PFC_PENDING_CANCEL, or PFC_SUPPORT_HEADER_SIGN in a bind.
    pub const PENDING_CANCEL: Self = Self(0x04);
    pub const CONC_MPX: Self = Self(0x10);
    pub const DID_NOT_EXECUTE: Self = Self(0x20);
    pub const MAYBE: Self = Self(0x40);
    pub const OBJECT_UUID: Self = Self(0x80);

    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

/// auth_type of the sec_trailer, [MS-RPCE] 2.2.1.1.7. Open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AuthType(pub u8);

impl AuthType {
    pub const NONE: Self = Self(0);
    /// RPC_C_AUTHN_GSS_NEGOTIATE: SPNEGO.
    pub const SPNEGO: Self = Self(9);
    /// RPC_C_AUTHN_WINNT: NTLMSSP.
    pub const NTLM: Self = Self(10);
    pub const SCHANNEL: Self = Self(14);
    pub const KERBEROS: Self = Self(16);
    /// RPC_C_AUTHN_NETLOGON: the secure channel of [MS-NRPC] 3.3, not GSS-API.
    pub const NETLOGON: Self = Self(68);
    pub const DEFAULT: Self = Self(0xff);

    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::NONE => "none",
            Self::SPNEGO => "spnego",
            Self::NTLM => "ntlm",
            Self::SCHANNEL => "schannel",
            Self::KERBEROS => "kerberos",
            Self::NETLOGON => "netlogon",
            Self::DEFAULT => "default",
            _ => return None,
        })
    }

    /// Whether auth_value is a GSS-API, SPNEGO or NTLMSSP token.
    pub fn is_gss(self) -> bool {
        matches!(self, Self::SPNEGO | Self::NTLM | Self::KERBEROS)
    }
}

/// auth_level of the sec_trailer, [MS-RPCE] 2.2.1.1.8. Open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AuthLevel(pub u8);

impl AuthLevel {
    pub const NONE: Self = Self(1);
    pub const CONNECT: Self = Self(2);
    pub const CALL: Self = Self(3);
    pub const PKT: Self = Self(4);
    /// Signed: the stub is plaintext.
    pub const PKT_INTEGRITY: Self = Self(5);
    /// Sealed: the stub is encrypted.
    pub const PKT_PRIVACY: Self = Self(6);

    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::NONE => "none",
            Self::CONNECT => "connect",
            Self::CALL => "call",
            Self::PKT => "pkt",
            Self::PKT_INTEGRITY => "pkt_integrity",
            Self::PKT_PRIVACY => "pkt_privacy",
            _ => return None,
        })
    }
}

/// The status of a fault PDU: an nca_s_* code (C706 appendix E) or a Win32 / NTSTATUS code
/// ([MS-RPCE] 2.2.2.12 allows any). Open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FaultStatus(pub u32);

impl FaultStatus {
    pub const ACCESS_DENIED: Self = Self(0x0000_0005);
    pub const RPC_S_CANNOT_SUPPORT: Self = Self(0x0000_06e4);
    pub const NCA_S_FAULT_NDR: Self = Self(0x0000_06f7);
    pub const NCA_S_FAULT_CONTEXT_MISMATCH: Self = Self(0x1c00_001a);
    pub const NCA_S_FAULT_REMOTE_NO_MEMORY: Self = Self(0x1c00_001b);
    pub const NCA_S_COMM_FAILURE: Self = Self(0x1c01_0001);
    pub const NCA_S_OP_RNG_ERROR: Self = Self(0x1c01_0002);
    pub const NCA_S_UNK_IF: Self = Self(0x1c01_0003);
    pub const NCA_S_WRONG_BOOT_TIME: Self = Self(0x1c01_0006);
    pub const NCA_S_YOU_CRASHED: Self = Self(0x1c01_0009);
    pub const NCA_S_PROTO_ERROR: Self = Self(0x1c01_000b);
    pub const NCA_S_OUT_ARGS_TOO_BIG: Self = Self(0x1c01_0013);
    pub const NCA_S_SERVER_TOO_BUSY: Self = Self(0x1c01_0014);
    pub const NCA_S_UNSUPPORTED_TYPE: Self = Self(0x1c01_0017);

    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::ACCESS_DENIED => "access_denied",
            Self::RPC_S_CANNOT_SUPPORT => "rpc_s_cannot_support",
            Self::NCA_S_FAULT_NDR => "nca_s_fault_ndr",
            Self::NCA_S_FAULT_CONTEXT_MISMATCH => "nca_s_fault_context_mismatch",
            Self::NCA_S_FAULT_REMOTE_NO_MEMORY => "nca_s_fault_remote_no_memory",
            Self::NCA_S_COMM_FAILURE => "nca_s_comm_failure",
            Self::NCA_S_OP_RNG_ERROR => "nca_s_op_rng_error",
            Self::NCA_S_UNK_IF => "nca_s_unk_if",
            Self::NCA_S_WRONG_BOOT_TIME => "nca_s_wrong_boot_time",
            Self::NCA_S_YOU_CRASHED => "nca_s_you_crashed",
            Self::NCA_S_PROTO_ERROR => "nca_s_proto_error",
            Self::NCA_S_OUT_ARGS_TOO_BIG => "nca_s_out_args_too_big",
            Self::NCA_S_SERVER_TOO_BUSY => "nca_s_server_too_busy",
            Self::NCA_S_UNSUPPORTED_TYPE => "nca_s_unsupported_type",
            _ => return None,
        })
    }
}

/// The result of one presentation context in a bind_ack, C706 12.6.3.1 p_cont_def_result_t
/// ([MS-RPCE] 2.2.2.4 adds negotiate_ack). Open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ContextResult(pub u16);

impl ContextResult {
    pub const ACCEPTANCE: Self = Self(0);
    pub const USER_REJECTION: Self = Self(1);
    pub const PROVIDER_REJECTION: Self = Self(2);
    pub const NEGOTIATE_ACK: Self = Self(3);

    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::ACCEPTANCE => "acceptance",
            Self::USER_REJECTION => "user_rejection",
            Self::PROVIDER_REJECTION => "provider_rejection",
            Self::NEGOTIATE_ACK => "negotiate_ack",
            _ => return None,
        })
    }
}

/// provider_reject_reason of a bind_nak, C706 12.6.3.1. Open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RejectReason(pub u16);

impl RejectReason {
    pub const NOT_SPECIFIED: Self = Self(0);
    pub const TEMPORARY_CONGESTION: Self = Self(1);
    pub const LOCAL_LIMIT_EXCEEDED: Self = Self(2);
    pub const CALLED_PADDR_UNKNOWN: Self = Self(3);
    pub const PROTOCOL_VERSION_NOT_SUPPORTED: Self = Self(4);
    pub const DEFAULT_CONTEXT_NOT_SUPPORTED: Self = Self(5);
    pub const USER_DATA_NOT_READABLE: Self = Self(6);
    pub const NO_PSAP_AVAILABLE: Self = Self(7);
    pub const AUTHENTICATION_TYPE_NOT_RECOGNIZED: Self = Self(8);
    pub const INVALID_CHECKSUM: Self = Self(9);

    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::NOT_SPECIFIED => "reason_not_specified",
            Self::TEMPORARY_CONGESTION => "temporary_congestion",
            Self::LOCAL_LIMIT_EXCEEDED => "local_limit_exceeded",
            Self::CALLED_PADDR_UNKNOWN => "called_paddr_unknown",
            Self::PROTOCOL_VERSION_NOT_SUPPORTED => "protocol_version_not_supported",
            Self::DEFAULT_CONTEXT_NOT_SUPPORTED => "default_context_not_supported",
            Self::USER_DATA_NOT_READABLE => "user_data_not_readable",
            Self::NO_PSAP_AVAILABLE => "no_psap_available",
            Self::AUTHENTICATION_TYPE_NOT_RECOGNIZED => "authentication_type_not_recognized",
            Self::INVALID_CHECKSUM => "invalid_checksum",
            _ => return None,
        })
    }
}

/// A UUID, held as the 128-bit number its canonical text spells (RFC 4122 field order), so
/// constants read like the specifications: `Uuid(0xe3514235_4b06_11d1_ab04_00c04fc2dcd2)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uuid(pub u128);

impl Uuid {
    /// A UUID as NDR marshals it: time_low (u32), time_mid (u16), time_hi_and_version (u16) in
    /// the PDU's byte order, then the 8 clock/node bytes as they are.
    pub fn from_wire(bytes: [u8; 16], little_endian: bool) -> Self {
        let [a0, a1, a2, a3, b0, b1, c0, c1, rest @ ..] = bytes;
        let (time_low, time_mid, time_hi) = if little_endian {
            (
                u32::from_le_bytes([a0, a1, a2, a3]),
                u16::from_le_bytes([b0, b1]),
                u16::from_le_bytes([c0, c1]),
            )
        } else {
            (
                u32::from_be_bytes([a0, a1, a2, a3]),
                u16::from_be_bytes([b0, b1]),
                u16::from_be_bytes([c0, c1]),
            )
        };
        Self(
            u128::from(time_low) << 96
                | u128::from(time_mid) << 80
                | u128::from(time_hi) << 64
                | u128::from(u64::from_be_bytes(rest)),
        )
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            value >> 96,
            (value >> 80) & 0xffff,
            (value >> 64) & 0xffff,
            (value >> 48) & 0xffff,
            value & 0xffff_ffff_ffff
        )
    }
}

/// An interface or transfer syntax and its version (p_syntax_id_t, C706 12.6.3.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SyntaxId {
    pub uuid: Uuid,
    pub major: u16,
    pub minor: u16,
}

impl SyntaxId {
    /// The NDR transfer syntax, 8a885d04-1ceb-11c9-9fe8-08002b104860 version 2.
    pub const NDR: Uuid = Uuid(0x8a885d04_1ceb_11c9_9fe8_08002b104860);
    /// NDR64, 71710533-beba-4937-8319-b5dbef9ccc36 version 1 ([MS-RPCE] 2.2.5).
    pub const NDR64: Uuid = Uuid(0x71710533_beba_4937_8319_b5dbef9ccc36);
}

/// The common header, C706 12.6.3.1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub minor_version: u8,
    pub packet_type: PacketType,
    pub flags: PfcFlags,
    pub drep: [u8; 4],
    pub frag_length: u16,
    pub auth_length: u16,
    pub call_id: u32,
}

impl Header {
    /// Whether the integers of the PDU are little-endian (the high nibble of drep[0] is 1).
    pub fn little_endian(&self) -> bool {
        self.drep[0] & 0xf0 == 0x10
    }
}

/// Anomalies of a PDU that still parsed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Anomalies {
    /// More context elements than [`MAX_CONTEXTS`], or transfer syntaxes than
    /// [`MAX_TRANSFER_SYNTAXES`]: the rest were not kept.
    pub too_many_items: bool,
    /// The body ended before the list or field it announced.
    pub truncated_body: bool,
    /// auth_length is set but the sec_trailer does not fit, or its pad runs into the body.
    pub bad_auth_trailer: bool,
    /// A secondary address longer than [`MAX_SECONDARY_ADDRESS_LEN`] (cut).
    pub long_secondary_address: bool,
    /// A character representation other than ASCII, or a float representation, C706 14.2.5
    /// does not define.
    pub unusual_drep: bool,
}

/// One presentation context a client offers, C706 p_cont_elem_t.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContextElement {
    pub context_id: u16,
    pub abstract_syntax: SyntaxId,
    /// At most [`MAX_TRANSFER_SYNTAXES`].
    pub transfer_syntaxes: Vec<SyntaxId>,
}

/// BIND or ALTER_CONTEXT.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bind {
    pub max_xmit_frag: u16,
    pub max_recv_frag: u16,
    pub assoc_group_id: u32,
    /// At most [`MAX_CONTEXTS`].
    pub contexts: Vec<ContextElement>,
}

/// The server's answer for one context of a bind, in the order the bind offered them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ContextAck {
    pub result: ContextResult,
    pub reason: u16,
    pub transfer_syntax: SyntaxId,
}

/// BIND_ACK or ALTER_CONTEXT_RESP.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BindAck<'a> {
    pub max_xmit_frag: u16,
    pub max_recv_frag: u16,
    pub assoc_group_id: u32,
    /// The server's port as text ("135", "\PIPE\lsass"), without its NUL; empty in an
    /// alter_context_resp. At most [`MAX_SECONDARY_ADDRESS_LEN`] bytes.
    pub secondary_address: &'a [u8],
    /// At most [`MAX_CONTEXTS`].
    pub results: Vec<ContextAck>,
}

/// REQUEST.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Request<'a> {
    pub alloc_hint: u32,
    pub context_id: u16,
    pub opnum: u16,
    pub object: Option<Uuid>,
    /// The stub data: NDR of the operation's [in] parameters (encrypted at PKT_PRIVACY).
    pub stub: &'a [u8],
}

/// RESPONSE.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Response<'a> {
    pub alloc_hint: u32,
    pub context_id: u16,
    pub cancel_count: u8,
    pub stub: &'a [u8],
}

/// FAULT.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fault {
    pub alloc_hint: u32,
    pub context_id: u16,
    pub cancel_count: u8,
    pub status: FaultStatus,
}

/// The auth verifier: sec_trailer and auth_value, [MS-RPCE] 2.2.2.11.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuthVerifier<'a> {
    pub auth_type: AuthType,
    pub auth_level: AuthLevel,
    pub pad_length: u8,
    pub context_id: u32,
    /// auth_value: a GSS-API / SPNEGO / NTLMSSP token in binds and AUTH3, a signature in
    /// requests and responses.
    pub token: &'a [u8],
}

/// What follows the common header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body<'a> {
    Bind(Bind),
    AlterContext(Bind),
    BindAck(BindAck<'a>),
    AlterContextResp(BindAck<'a>),
    BindNak {
        reason: RejectReason,
    },
    Request(Request<'a>),
    Response(Response<'a>),
    Fault(Fault),
    Auth3,
    /// shutdown, co_cancel, orphaned, or a type this parser does not read.
    Other,
}

/// One connection-oriented DCE-RPC PDU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pdu<'a> {
    pub header: Header,
    pub body: Body<'a>,
    pub auth: Option<AuthVerifier<'a>>,
    pub anomalies: Anomalies,
}

/// Integers of a PDU in the byte order its drep names.
#[derive(Clone, Copy, Debug)]
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    little_endian: bool,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(len)?;
        let slice = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).and_then(|bytes| bytes.try_into().ok())
    }

    fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[byte]| byte)
    }

    fn u16(&mut self) -> Option<u16> {
        let bytes = self.array()?;
        Some(if self.little_endian {
            u16::from_le_bytes(bytes)
        } else {
            u16::from_be_bytes(bytes)
        })
    }

    fn u32(&mut self) -> Option<u32> {
        let bytes = self.array()?;
        Some(if self.little_endian {
            u32::from_le_bytes(bytes)
        } else {
            u32::from_be_bytes(bytes)
        })
    }

    fn uuid(&mut self) -> Option<Uuid> {
        self.array()
            .map(|bytes| Uuid::from_wire(bytes, self.little_endian))
    }

    fn syntax(&mut self) -> Option<SyntaxId> {
        let uuid = self.uuid()?;
        let version = self.u32()?;
        Some(SyntaxId {
            uuid,
            major: (version & 0xffff) as u16,
            minor: (version >> 16) as u16,
        })
    }

    /// Skips to the next multiple of 4 from the start of the PDU (C706 12.6.2: alignment is
    /// relative to the PDU's first byte).
    fn align4(&mut self) -> Option<()> {
        let pad = (4 - self.at % 4) % 4;
        self.take(pad).map(|_| ())
    }

    fn rest(&self) -> &'a [u8] {
        self.bytes.get(self.at..).unwrap_or_default()
    }
}

/// The byte order a drep names, if it is one C706 14.2.5 defines (0 big, 1 little).
fn drep_order(drep0: u8) -> Option<bool> {
    match drep0 >> 4 {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

/// Reads the common header (C706 12.6.3.1): version 5, minor 0 or 1, a defined integer
/// representation. Nothing beyond the 16 bytes is looked at.
pub fn header(bytes: &[u8]) -> Result<Header, DceRpcError> {
    let fixed: &[u8; HEADER_LEN] = bytes
        .get(..HEADER_LEN)
        .and_then(|head| head.try_into().ok())
        .ok_or(DceRpcError::Truncated { needed: HEADER_LEN })?;
    let [
        vers,
        minor,
        ptype,
        flags,
        d0,
        d1,
        d2,
        d3,
        f0,
        f1,
        a0,
        a1,
        c0,
        c1,
        c2,
        c3,
    ] = *fixed;
    if vers != 5 || minor > 1 {
        return Err(DceRpcError::BadVersion);
    }
    let little_endian = drep_order(d0).ok_or(DceRpcError::BadVersion)?;
    let (frag_length, auth_length, call_id) = if little_endian {
        (
            u16::from_le_bytes([f0, f1]),
            u16::from_le_bytes([a0, a1]),
            u32::from_le_bytes([c0, c1, c2, c3]),
        )
    } else {
        (
            u16::from_be_bytes([f0, f1]),
            u16::from_be_bytes([a0, a1]),
            u32::from_be_bytes([c0, c1, c2, c3]),
        )
    };
    Ok(Header {
        minor_version: minor,
        packet_type: PacketType(ptype),
        flags: PfcFlags(flags),
        drep: [d0, d1, d2, d3],
        frag_length,
        auth_length,
        call_id,
    })
}

/// The length of the PDU at the front of `bytes` (frag_length), from its header alone.
pub fn frame(bytes: &[u8]) -> Framing {
    match header(bytes) {
        Ok(header) if usize::from(header.frag_length) >= HEADER_LEN => {
            Framing::Pdu(usize::from(header.frag_length))
        }
        Ok(_) => Framing::NotPdu,
        Err(DceRpcError::Truncated { .. }) if plausible_prefix(bytes) => Framing::NeedMore,
        Err(_) => Framing::NotPdu,
    }
}

/// Whether the bytes so far could begin a header (for [`frame`] to wait for more).
fn plausible_prefix(bytes: &[u8]) -> bool {
    match bytes {
        [] => true,
        [vers, rest @ ..] => {
            *vers == 5
                && rest.first().is_none_or(|minor| *minor <= 1)
                && rest.get(3).is_none_or(|drep| drep_order(*drep).is_some())
        }
    }
}

/// The smallest frag_length a PDU of this type may have: its header and fixed body.
fn min_frag_length(packet_type: PacketType) -> usize {
    HEADER_LEN
        + match packet_type {
            PacketType::REQUEST | PacketType::RESPONSE => 8,
            PacketType::FAULT => 16,
            PacketType::BIND | PacketType::ALTER_CONTEXT => 12,
            PacketType::BIND_ACK | PacketType::ALTER_CONTEXT_RESP => 10,
            PacketType::BIND_NAK => 2,
            _ => 0,
        }
}

/// A strict test that a PDU starts here, for resynchronising after a gap: version 5.0/5.1, a
/// connection-oriented PTYPE, a defined drep with ASCII characters and IEEE floats, no
/// undefined flag (0x08), a frag_length that fits the PDU's fixed body and an auth verifier
/// that fits inside it, and a frag_length no greater than 64 KiB (it is a u16 anyway) but at
/// least what the type needs.
pub fn is_pdu_start(bytes: &[u8]) -> Start {
    if !plausible_prefix(bytes.get(..HEADER_LEN).unwrap_or(bytes)) {
        return Start::No;
    }
    let Ok(header) = header(bytes) else {
        return if bytes.len() < HEADER_LEN {
            Start::NeedMore
        } else {
            Start::No
        };
    };
    let [d0, d1, d2, d3] = header.drep;
    let frag = usize::from(header.frag_length);
    let auth = usize::from(header.auth_length);
    let auth_fits = auth == 0 || frag >= HEADER_LEN + SEC_TRAILER_LEN + auth;
    if header.packet_type.is_connection_oriented()
        && header.flags.0 & 0x08 == 0
        && d0.trailing_zeros() >= 4
        && d1 == 0
        && d2 == 0
        && d3 == 0
        && frag >= min_frag_length(header.packet_type)
        && auth_fits
    {
        Start::Yes
    } else {
        Start::No
    }
}

/// Parses one whole PDU (`bytes` holds exactly frag_length bytes, or more: the rest is
/// ignored). The body is what lies between the header and the auth verifier.
pub fn parse(bytes: &[u8]) -> Result<Pdu<'_>, DceRpcError> {
    let header = header(bytes)?;
    let frag = usize::from(header.frag_length);
    let pdu = bytes
        .get(..frag)
        .ok_or(DceRpcError::Truncated { needed: frag })?;
    if frag < HEADER_LEN {
        return Err(DceRpcError::BadLength(header.frag_length));
    }
    let mut anomalies = Anomalies {
        // Windows sends little-endian ASCII IEEE; a big-endian PDU still decodes but is
        // unusual enough to be worth a flag (a client choosing it to slip past decoders).
        unusual_drep: header.drep[0] & 0x0f != 0 || header.drep[1] != 0 || !header.little_endian(),
        ..Anomalies::default()
    };
    let (body_end, auth) = auth_verifier(pdu, &header, &mut anomalies)?;
    let body_bytes = pdu.get(..body_end).unwrap_or_default();
    let mut reader = Reader {
        bytes: body_bytes,
        at: HEADER_LEN,
        little_endian: header.little_endian(),
    };
    let body = body(&header, &mut reader, &mut anomalies);
    Ok(Pdu {
        header,
        body,
        auth,
        anomalies,
    })
}

/// Finds the auth verifier at the end of the PDU: where the body ends (before the auth pad),
/// and the verifier.
fn auth_verifier<'a>(
    pdu: &'a [u8],
    header: &Header,
    anomalies: &mut Anomalies,
) -> Result<(usize, Option<AuthVerifier<'a>>), DceRpcError> {
    let auth_length = usize::from(header.auth_length);
    if auth_length == 0 {
        return Ok((pdu.len(), None));
    }
    let Some(trailer_at) = pdu
        .len()
        .checked_sub(auth_length + SEC_TRAILER_LEN)
        .filter(|at| *at >= HEADER_LEN)
    else {
        return Err(DceRpcError::BadLength(header.frag_length));
    };
    let mut reader = Reader {
        bytes: pdu,
        at: trailer_at,
        little_endian: header.little_endian(),
    };
    let (Some(auth_type), Some(auth_level), Some(pad_length), Some(_reserved), Some(context_id)) = (
        reader.u8(),
        reader.u8(),
        reader.u8(),
        reader.u8(),
        reader.u32(),
    ) else {
        return Err(DceRpcError::Truncated {
            needed: trailer_at + SEC_TRAILER_LEN,
        });
    };
    let body_end = match trailer_at.checked_sub(usize::from(pad_length)) {
        Some(end) if end >= HEADER_LEN => end,
        _ => {
            anomalies.bad_auth_trailer = true;
            trailer_at
        }
    };
    Ok((
        body_end,
        Some(AuthVerifier {
            auth_type: AuthType(auth_type),
            auth_level: AuthLevel(auth_level),
            pad_length,
            context_id,
            token: reader.rest(),
        }),
    ))
}

fn body<'a>(header: &Header, reader: &mut Reader<'a>, anomalies: &mut Anomalies) -> Body<'a> {
    let parsed = match header.packet_type {
        PacketType::BIND => bind(reader, anomalies).map(Body::Bind),
        PacketType::ALTER_CONTEXT => bind(reader, anomalies).map(Body::AlterContext),
        PacketType::BIND_ACK => bind_ack(reader, anomalies).map(Body::BindAck),
        PacketType::ALTER_CONTEXT_RESP => bind_ack(reader, anomalies).map(Body::AlterContextResp),
        PacketType::BIND_NAK => reader.u16().map(|reason| Body::BindNak {
            reason: RejectReason(reason),
        }),
        PacketType::REQUEST => request(reader, header.flags).map(Body::Request),
        PacketType::RESPONSE => response(reader).map(Body::Response),
        PacketType::FAULT => fault(reader).map(Body::Fault),
        PacketType::AUTH3 => Some(Body::Auth3),
        _ => Some(Body::Other),
    };
    parsed.unwrap_or_else(|| {
        anomalies.truncated_body = true;
        Body::Other
    })
}

/// p_cont_list_t after the fixed part of a bind (C706 12.6.4.3). A list cut short keeps the
/// elements read whole and is flagged.
fn bind(reader: &mut Reader<'_>, anomalies: &mut Anomalies) -> Option<Bind> {
    let max_xmit_frag = reader.u16()?;
    let max_recv_frag = reader.u16()?;
    let assoc_group_id = reader.u32()?;
    let mut bind = Bind {
        max_xmit_frag,
        max_recv_frag,
        assoc_group_id,
        contexts: Vec::new(),
    };
    let Some(count) = reader.u8() else {
        anomalies.truncated_body = true;
        return Some(bind);
    };
    if reader.take(3).is_none() {
        anomalies.truncated_body = true;
        return Some(bind);
    }
    if usize::from(count) > MAX_CONTEXTS {
        anomalies.too_many_items = true;
    }
    for _ in 0..usize::from(count).min(MAX_CONTEXTS) {
        if let Some(element) = context_element(reader, anomalies) {
            bind.contexts.push(element);
        } else {
            anomalies.truncated_body = true;
            break;
        }
    }
    Some(bind)
}

fn context_element(reader: &mut Reader<'_>, anomalies: &mut Anomalies) -> Option<ContextElement> {
    let context_id = reader.u16()?;
    let count = reader.u8()?;
    reader.u8()?;
    let abstract_syntax = reader.syntax()?;
    let mut transfer_syntaxes = Vec::new();
    for index in 0..usize::from(count) {
        let syntax = reader.syntax()?;
        if index < MAX_TRANSFER_SYNTAXES {
            transfer_syntaxes.push(syntax);
        } else {
            anomalies.too_many_items = true;
        }
    }
    Some(ContextElement {
        context_id,
        abstract_syntax,
        transfer_syntaxes,
    })
}

fn bind_ack<'a>(reader: &mut Reader<'a>, anomalies: &mut Anomalies) -> Option<BindAck<'a>> {
    let max_xmit_frag = reader.u16()?;
    let max_recv_frag = reader.u16()?;
    let assoc_group_id = reader.u32()?;
    let address_len = reader.u16()?;
    let address = reader.take(usize::from(address_len))?;
    let address = address.strip_suffix(&[0]).unwrap_or(address);
    if address.len() > MAX_SECONDARY_ADDRESS_LEN {
        anomalies.long_secondary_address = true;
    }
    let mut ack = BindAck {
        max_xmit_frag,
        max_recv_frag,
        assoc_group_id,
        secondary_address: address.get(..MAX_SECONDARY_ADDRESS_LEN).unwrap_or(address),
        results: Vec::new(),
    };
    let (Some(()), Some(count), Some(_)) = (reader.align4(), reader.u8(), reader.take(3)) else {
        anomalies.truncated_body = true;
        return Some(ack);
    };
    if usize::from(count) > MAX_CONTEXTS {
        anomalies.too_many_items = true;
    }
    for _ in 0..usize::from(count).min(MAX_CONTEXTS) {
        let (Some(result), Some(reason), Some(transfer_syntax)) =
            (reader.u16(), reader.u16(), reader.syntax())
        else {
            anomalies.truncated_body = true;
            break;
        };
        ack.results.push(ContextAck {
            result: ContextResult(result),
            reason,
            transfer_syntax,
        });
    }
    Some(ack)
}

fn request<'a>(reader: &mut Reader<'a>, flags: PfcFlags) -> Option<Request<'a>> {
    let alloc_hint = reader.u32()?;
    let context_id = reader.u16()?;
    let opnum = reader.u16()?;
    let object = if flags.contains(PfcFlags::OBJECT_UUID) {
        Some(reader.uuid()?)
    } else {
        None
    };
    Some(Request {
        alloc_hint,
        context_id,
        opnum,
        object,
        stub: reader.rest(),
    })
}

fn response<'a>(reader: &mut Reader<'a>) -> Option<Response<'a>> {
    let alloc_hint = reader.u32()?;
    let context_id = reader.u16()?;
    let cancel_count = reader.u8()?;
    reader.u8()?;
    Some(Response {
        alloc_hint,
        context_id,
        cancel_count,
        stub: reader.rest(),
    })
}

fn fault(reader: &mut Reader<'_>) -> Option<Fault> {
    let alloc_hint = reader.u32()?;
    let context_id = reader.u16()?;
    let cancel_count = reader.u8()?;
    reader.u8()?;
    let status = reader.u32()?;
    Some(Fault {
        alloc_hint,
        context_id,
        cancel_count,
        status: FaultStatus(status),
    })
}
