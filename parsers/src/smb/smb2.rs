//! SMB 2 and 3 messages, [MS-SMB2] 2.2.
//!
//! ```text
//! SMB2 header (64)  = ProtocolId (0xFE 'SMB') StructureSize (u16 = 64) CreditCharge (u16)
//!                     Status (u32; ChannelSequence in 3.x requests) Command (u16)
//!                     CreditRequest/Response (u16) Flags (u32) NextCommand (u32)
//!                     MessageId (u64) { AsyncId (u64) | Reserved (u32) TreeId (u32) }
//!                     SessionId (u64) Signature (16)                          2.2.1.1/2
//! message           = header body [padding to 8] (header body ...)*   -- NextCommand: offset
//!                                                   of the next header, 0 for the last
//! TRANSFORM_HEADER  = 0xFD 'SMB' Signature (16) Nonce (16) OriginalMessageSize (u32)
//!                     Reserved (u16) Flags (u16) SessionId (u64)                 2.2.41
//! ```
//!
//! Buffer offsets in a body count from the start of that command's header. Only the commands
//! a sensor reports on are read (negotiate, session setup, logoff, tree connect, create, close,
//! read, write, ioctl); others keep their header and [`Body::Other`].

use super::{NtStatus, ShareType, SmbError, clipped, field, le16, le32, le64, utf16};

/// The SMB2 header's length, its StructureSize.
pub const HEADER_LEN: usize = 64;

/// TRANSFORM_HEADER's length ([MS-SMB2] 2.2.41).
pub const TRANSFORM_HEADER_LEN: usize = 52;

/// COMPRESSION_TRANSFORM_HEADER's unchained length ([MS-SMB2] 2.2.42.1).
pub const COMPRESSION_HEADER_LEN: usize = 16;

/// Commands read from one compounded message. Windows compounds at most a handful (create +
/// query info + close, 3-5); 32 leaves room while bounding a hostile chain of tiny headers.
pub const MAX_COMPOUNDED: usize = 32;

/// Dialects read from one NEGOTIATE request. Windows 11 offers 5 (2.0.2 to 3.1.1); 64 is far
/// more than any client offers, and bounds the list a hostile DialectCount announces.
pub const MAX_DIALECTS: usize = 64;

/// An SMB2 command code ([MS-SMB2] 2.2.1.2). Open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Command(pub u16);

impl Command {
    pub const NEGOTIATE: Self = Self(0x00);
    pub const SESSION_SETUP: Self = Self(0x01);
    pub const LOGOFF: Self = Self(0x02);
    pub const TREE_CONNECT: Self = Self(0x03);
    pub const TREE_DISCONNECT: Self = Self(0x04);
    pub const CREATE: Self = Self(0x05);
    pub const CLOSE: Self = Self(0x06);
    pub const FLUSH: Self = Self(0x07);
    pub const READ: Self = Self(0x08);
    pub const WRITE: Self = Self(0x09);
    pub const LOCK: Self = Self(0x0a);
    pub const IOCTL: Self = Self(0x0b);
    pub const CANCEL: Self = Self(0x0c);
    pub const ECHO: Self = Self(0x0d);
    pub const QUERY_DIRECTORY: Self = Self(0x0e);
    pub const CHANGE_NOTIFY: Self = Self(0x0f);
    pub const QUERY_INFO: Self = Self(0x10);
    pub const SET_INFO: Self = Self(0x11);
    pub const OPLOCK_BREAK: Self = Self(0x12);

    pub fn name(self) -> Option<&'static str> {
        const NAMES: [&str; 19] = [
            "NEGOTIATE",
            "SESSION_SETUP",
            "LOGOFF",
            "TREE_CONNECT",
            "TREE_DISCONNECT",
            "CREATE",
            "CLOSE",
            "FLUSH",
            "READ",
            "WRITE",
            "LOCK",
            "IOCTL",
            "CANCEL",
            "ECHO",
            "QUERY_DIRECTORY",
            "CHANGE_NOTIFY",
            "QUERY_INFO",
            "SET_INFO",
            "OPLOCK_BREAK",
        ];
        NAMES.get(usize::from(self.0)).copied()
    }
}

/// An SMB2 dialect revision ([MS-SMB2] 2.2.3). Open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dialect(pub u16);

impl Dialect {
    pub const SMB_2_0_2: Self = Self(0x0202);
    pub const SMB_2_1: Self = Self(0x0210);
    pub const SMB_3_0: Self = Self(0x0300);
    pub const SMB_3_0_2: Self = Self(0x0302);
    pub const SMB_3_1_1: Self = Self(0x0311);
    /// "SMB 2.???": the answer to an SMB1 negotiate that offered SMB2 (multi-protocol).
    pub const WILDCARD: Self = Self(0x02ff);

    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::SMB_2_0_2 => "2.0.2",
            Self::SMB_2_1 => "2.1",
            Self::SMB_3_0 => "3.0",
            Self::SMB_3_0_2 => "3.0.2",
            Self::SMB_3_1_1 => "3.1.1",
            Self::WILDCARD => "2.???",
            _ => return None,
        })
    }

    /// The major version: 3 for 0x03xx dialects, 2 otherwise.
    pub fn major(self) -> u8 {
        if self.0 >> 8 == 3 { 3 } else { 2 }
    }
}

/// Header flags ([MS-SMB2] 2.2.1.2). Open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags(pub u32);

impl Flags {
    pub const SERVER_TO_REDIR: Self = Self(0x0000_0001);
    pub const ASYNC_COMMAND: Self = Self(0x0000_0002);
    pub const RELATED_OPERATIONS: Self = Self(0x0000_0004);
    pub const SIGNED: Self = Self(0x0000_0008);
    pub const DFS_OPERATIONS: Self = Self(0x1000_0000);
    pub const REPLAY_OPERATION: Self = Self(0x2000_0000);

    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

/// SessionFlags of a SESSION_SETUP response ([MS-SMB2] 2.2.6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SessionFlags(pub u16);

impl SessionFlags {
    pub const IS_GUEST: Self = Self(0x0001);
    pub const IS_NULL: Self = Self(0x0002);
    pub const ENCRYPT_DATA: Self = Self(0x0004);

    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

/// An IOCTL/FSCTL code ([MS-SMB2] 2.2.31). Open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CtlCode(pub u32);

impl CtlCode {
    pub const DFS_GET_REFERRALS: Self = Self(0x0006_0194);
    pub const PIPE_PEEK: Self = Self(0x0011_400c);
    pub const PIPE_WAIT: Self = Self(0x0011_0018);
    /// Write then read a named pipe in one exchange: DCE-RPC's usual call on SMB2.
    pub const PIPE_TRANSCEIVE: Self = Self(0x0011_c017);
    pub const SRV_COPYCHUNK: Self = Self(0x0014_40f2);
    pub const SRV_ENUMERATE_SNAPSHOTS: Self = Self(0x0014_4064);
    pub const SRV_REQUEST_RESUME_KEY: Self = Self(0x0014_0078);
    pub const SRV_READ_HASH: Self = Self(0x0014_41bb);
    pub const LMR_REQUEST_RESILIENCY: Self = Self(0x0014_01d4);
    pub const QUERY_NETWORK_INTERFACE_INFO: Self = Self(0x0014_01fc);
    pub const VALIDATE_NEGOTIATE_INFO: Self = Self(0x0014_0204);

    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::DFS_GET_REFERRALS => "FSCTL_DFS_GET_REFERRALS",
            Self::PIPE_PEEK => "FSCTL_PIPE_PEEK",
            Self::PIPE_WAIT => "FSCTL_PIPE_WAIT",
            Self::PIPE_TRANSCEIVE => "FSCTL_PIPE_TRANSCEIVE",
            Self::SRV_COPYCHUNK => "FSCTL_SRV_COPYCHUNK",
            Self::SRV_ENUMERATE_SNAPSHOTS => "FSCTL_SRV_ENUMERATE_SNAPSHOTS",
            Self::SRV_REQUEST_RESUME_KEY => "FSCTL_SRV_REQUEST_RESUME_KEY",
            Self::SRV_READ_HASH => "FSCTL_SRV_READ_HASH",
            Self::LMR_REQUEST_RESILIENCY => "FSCTL_LMR_REQUEST_RESILIENCY",
            Self::QUERY_NETWORK_INTERFACE_INFO => "FSCTL_QUERY_NETWORK_INTERFACE_INFO",
            Self::VALIDATE_NEGOTIATE_INFO => "FSCTL_VALIDATE_NEGOTIATE_INFO",
            _ => return None,
        })
    }
}

/// SMB2_FILEID ([MS-SMB2] 2.2.14.1): the handle of an open file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    pub persistent: u64,
    pub volatile: u64,
}

/// The 64-byte header of one command ([MS-SMB2] 2.2.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub command: Command,
    /// The NTSTATUS of a response; ChannelSequence/Reserved in a request.
    pub status: NtStatus,
    pub flags: Flags,
    pub next_command: u32,
    pub message_id: u64,
    /// The async id of an ASYNC_COMMAND header (an interim STATUS_PENDING answer, and the final
    /// answer after it); 0 otherwise.
    pub async_id: u64,
    /// 0 in an async header.
    pub tree_id: u32,
    pub session_id: u64,
    pub credit_charge: u16,
}

impl Header {
    pub fn is_response(&self) -> bool {
        self.flags.contains(Flags::SERVER_TO_REDIR)
    }
}

/// Anything odd that still parsed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Anomalies {
    /// A name was longer than [`super::MAX_NAME_BYTES`] and was cut.
    pub name_truncated: bool,
    /// A data field runs past the end of the message handed over (a cut oversized PDU).
    pub data_truncated: bool,
    /// More than [`MAX_DIALECTS`] dialects offered: the rest were not read.
    pub too_many_dialects: bool,
    /// A StructureSize other than the command's, where the body still parsed.
    pub odd_structure_size: bool,
    /// A UTF-16 name of odd length.
    pub odd_name_length: bool,
}

/// One command's body ([MS-SMB2] 2.2.3 to 2.2.32).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body<'a> {
    NegotiateRequest {
        dialects: Vec<Dialect>,
    },
    NegotiateResponse {
        dialect: Dialect,
        /// The GSS-API hint token (SPNEGO negTokenInit with the server's mechanisms).
        security_buffer: &'a [u8],
    },
    SessionSetupRequest {
        previous_session_id: u64,
        /// A GSS-API token: SPNEGO, Kerberos or raw NTLMSSP.
        security_buffer: &'a [u8],
    },
    SessionSetupResponse {
        session_flags: SessionFlags,
        security_buffer: &'a [u8],
    },
    LogoffRequest,
    LogoffResponse,
    TreeConnectRequest {
        /// `\\server\share`.
        path: String,
    },
    TreeConnectResponse {
        share_type: ShareType,
        share_flags: u32,
        maximal_access: u32,
    },
    TreeDisconnect,
    CreateRequest {
        /// The path relative to the share, without a leading backslash.
        name: String,
        desired_access: u32,
        file_attributes: u32,
        share_access: u32,
        create_disposition: u32,
        create_options: u32,
    },
    CreateResponse {
        file_id: FileId,
        create_action: u32,
        end_of_file: u64,
        file_attributes: u32,
    },
    CloseRequest {
        file_id: FileId,
    },
    CloseResponse,
    ReadRequest {
        file_id: FileId,
        length: u32,
        offset: u64,
    },
    ReadResponse {
        /// DataLength: what the server returned, even if `data` was cut.
        data_length: u32,
        data: &'a [u8],
    },
    WriteRequest {
        file_id: FileId,
        offset: u64,
        /// Length: what the client wrote, even if `data` was cut.
        data_length: u32,
        data: &'a [u8],
    },
    WriteResponse {
        count: u32,
    },
    IoctlRequest {
        ctl_code: CtlCode,
        file_id: FileId,
        input: &'a [u8],
    },
    IoctlResponse {
        ctl_code: CtlCode,
        file_id: FileId,
        output: &'a [u8],
    },
    /// SMB2 ERROR Response ([MS-SMB2] 2.2.2): the header's status is the answer.
    Error,
    /// A command not read further (or an interim STATUS_PENDING answer).
    Other,
}

/// One command of a message: its header and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pdu<'a> {
    pub header: Header,
    pub body: Body<'a>,
    pub anomalies: Anomalies,
}

/// One SMB2 message: its compounded commands, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    pub commands: Vec<Pdu<'a>>,
    /// More than [`MAX_COMPOUNDED`] commands, or a NextCommand pointing outside the message:
    /// the rest was not read.
    pub chain_truncated: bool,
}

/// A compressed message's COMPRESSION_TRANSFORM_HEADER ([MS-SMB2] 2.2.42).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompressionHeader {
    /// OriginalCompressedSegmentSize: the size of the message once decompressed.
    pub original_size: u32,
    /// CompressionAlgorithm: 0 none, 1 LZNT1, 2 LZ77, 3 LZ77+Huffman, 4 Pattern_V1, 5 LZ4.
    pub algorithm: u16,
    /// Flags: 0x0001 SMB2_COMPRESSION_FLAG_CHAINED.
    pub flags: u16,
    /// Offset (unchained: where the compressed data starts, after the header) or Length
    /// (chained: the first payload's length).
    pub offset_or_length: u32,
    /// Bytes of the message after this 16-byte header.
    pub payload_len: u32,
}

/// Past this original size a decompressed message is not one Windows sends: SMB2's largest
/// read, write or transact is 8 MiB ([MS-SMB2] 3.3.5.4, MaxReadSize and friends).
pub const MAX_DECOMPRESSED_SIZE: u64 = 8 * 1024 * 1024 + 64 * 1024;

impl CompressionHeader {
    pub const FLAG_CHAINED: u16 = 0x0001;

    pub fn chained(&self) -> bool {
        self.flags & Self::FLAG_CHAINED != 0
    }

    /// The header contradicts its message, as CVE-2020-0796 (SMBGhost) exploits do: the
    /// offset or length points past the message, the original size plus the offset wraps past
    /// 2^32 (the server's buffer size computation), or the original size exceeds what any
    /// message decompresses to.
    pub fn overflows(&self) -> bool {
        let original = u64::from(self.original_size);
        let offset = u64::from(self.offset_or_length);
        offset > u64::from(self.payload_len)
            || original + offset > u64::from(u32::MAX)
            || original + offset > MAX_DECOMPRESSED_SIZE
    }
}

/// Reads an SMB2 COMPRESSION_TRANSFORM_HEADER ([MS-SMB2] 2.2.42.1 unchained, 2.2.42.2
/// chained: the first payload header's fields in the same place):
///
/// ```text
/// ProtocolId (0xFC 'S' 'M' 'B') OriginalCompressedSegmentSize (u32) CompressionAlgorithm (u16)
/// Flags (u16) Offset / Length (u32), then the message
/// ```
pub fn parse_compression(message: &[u8]) -> Result<CompressionHeader, SmbError> {
    if message.len() < COMPRESSION_HEADER_LEN {
        return Err(SmbError::Truncated {
            needed: COMPRESSION_HEADER_LEN,
        });
    }
    let field = |at| le32(message, at).ok_or(SmbError::Truncated { needed: at + 4 });
    let short = |at| le16(message, at).ok_or(SmbError::Truncated { needed: at + 2 });
    Ok(CompressionHeader {
        original_size: field(4)?,
        algorithm: short(8)?,
        flags: short(10)?,
        offset_or_length: field(12)?,
        payload_len: u32::try_from(message.len() - COMPRESSION_HEADER_LEN).unwrap_or(u32::MAX),
    })
}

/// An encrypted message's TRANSFORM_HEADER ([MS-SMB2] 2.2.41).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransformHeader {
    pub session_id: u64,
    pub original_message_size: u32,
    /// Flags in 3.1.1 (0x0001 = encrypted), EncryptionAlgorithm in 3.0.
    pub flags: u16,
}

/// Reads a TRANSFORM_HEADER; the ciphertext after it is not looked at.
pub fn parse_transform(message: &[u8]) -> Result<TransformHeader, SmbError> {
    let truncated = SmbError::Truncated {
        needed: TRANSFORM_HEADER_LEN,
    };
    Ok(TransformHeader {
        original_message_size: le32(message, 36).ok_or(truncated)?,
        flags: le16(message, 42).ok_or(truncated)?,
        session_id: le64(message, 44).ok_or(truncated)?,
    })
}

/// Reads an SMB2 message (from its 0xFE 'SMB'): every compounded command, at most
/// [`MAX_COMPOUNDED`]. The first command must read; a later one that does not ends the chain
/// (flagged) rather than losing the commands before it.
pub fn parse(message: &[u8]) -> Result<Message<'_>, SmbError> {
    let mut commands = Vec::new();
    let mut rest = message;
    let mut chain_truncated = false;
    loop {
        let pdu = match parse_one(rest) {
            Ok(pdu) => pdu,
            Err(error) if commands.is_empty() => return Err(error),
            Err(_) => {
                chain_truncated = true;
                break;
            }
        };
        let next = usize::try_from(pdu.header.next_command).unwrap_or(usize::MAX);
        commands.push(pdu);
        if next == 0 {
            break;
        }
        if commands.len() == MAX_COMPOUNDED || next < HEADER_LEN {
            chain_truncated = true;
            break;
        }
        if let Some(following) = rest.get(next..) {
            rest = following;
        } else {
            chain_truncated = true;
            break;
        }
    }
    Ok(Message {
        commands,
        chain_truncated,
    })
}

fn parse_header(bytes: &[u8]) -> Result<Header, SmbError> {
    let truncated = SmbError::Truncated { needed: HEADER_LEN };
    if bytes.get(..4) != Some(super::SMB2_MAGIC.as_slice()) {
        return Err(SmbError::BadProtocol);
    }
    if bytes.len() < HEADER_LEN {
        return Err(truncated);
    }
    let size = le16(bytes, 4).ok_or(truncated)?;
    if usize::from(size) != HEADER_LEN {
        return Err(SmbError::BadStructureSize(size));
    }
    let flags = Flags(le32(bytes, 16).ok_or(truncated)?);
    let is_async = flags.contains(Flags::ASYNC_COMMAND);
    Ok(Header {
        credit_charge: le16(bytes, 6).ok_or(truncated)?,
        status: NtStatus(le32(bytes, 8).ok_or(truncated)?),
        command: Command(le16(bytes, 12).ok_or(truncated)?),
        flags,
        next_command: le32(bytes, 20).ok_or(truncated)?,
        message_id: le64(bytes, 24).ok_or(truncated)?,
        async_id: if is_async {
            le64(bytes, 32).ok_or(truncated)?
        } else {
            0
        },
        tree_id: if is_async {
            0
        } else {
            le32(bytes, 36).ok_or(truncated)?
        },
        session_id: le64(bytes, 40).ok_or(truncated)?,
    })
}

/// One command, from its header; `bytes` may run on into the next compounded command.
fn parse_one(bytes: &[u8]) -> Result<Pdu<'_>, SmbError> {
    let header = parse_header(bytes)?;
    // The command's own bytes end where the next one starts: its offsets may not reach into it.
    let own = match usize::try_from(header.next_command) {
        Ok(0) | Err(_) => bytes,
        Ok(next) => bytes.get(..next).unwrap_or(bytes),
    };
    let mut anomalies = Anomalies::default();
    let body = parse_body(&header, own, &mut anomalies)?;
    Ok(Pdu {
        header,
        body,
        anomalies,
    })
}

/// Whether a response carries the ERROR body rather than its command's: any status but
/// success, except the ones [MS-SMB2] answers with the normal body (3.3.4.4).
fn is_error_response(header: &Header) -> bool {
    let status = header.status;
    if status == NtStatus::SUCCESS {
        return false;
    }
    let normal = match header.command {
        Command::SESSION_SETUP => status == NtStatus::MORE_PROCESSING_REQUIRED,
        Command::READ | Command::IOCTL | Command::QUERY_INFO => status == NtStatus::BUFFER_OVERFLOW,
        Command::QUERY_DIRECTORY | Command::CHANGE_NOTIFY => {
            status == NtStatus::BUFFER_OVERFLOW || status == NtStatus::NOTIFY_ENUM_DIR
        }
        _ => false,
    };
    !normal
}

fn parse_body<'a>(
    header: &Header,
    bytes: &'a [u8],
    anomalies: &mut Anomalies,
) -> Result<Body<'a>, SmbError> {
    let size = le16(bytes, HEADER_LEN).ok_or(SmbError::Truncated {
        needed: HEADER_LEN + 2,
    })?;
    let body = Reader {
        bytes,
        base: HEADER_LEN,
    };
    if header.is_response() && is_error_response(header) {
        return Ok(if header.status == NtStatus::PENDING {
            Body::Other
        } else {
            Body::Error
        });
    }
    let expect = |wanted: u16, anomalies: &mut Anomalies| -> Result<(), SmbError> {
        // The low bit of a StructureSize says a variable part follows; a size off by that bit
        // still reads.
        if size | 1 != wanted | 1 {
            return Err(SmbError::BadStructureSize(size));
        }
        if size != wanted {
            anomalies.odd_structure_size = true;
        }
        Ok(())
    };
    let response = header.is_response();
    Ok(match (header.command, response) {
        (Command::NEGOTIATE, false) => {
            expect(36, anomalies)?;
            let count = usize::from(body.u16(2)?);
            if count > MAX_DIALECTS {
                anomalies.too_many_dialects = true;
            }
            let list = body.field_at(36, count.min(MAX_DIALECTS) * 2, "Dialects")?;
            Body::NegotiateRequest {
                dialects: list
                    .chunks_exact(2)
                    .map(|pair| Dialect(u16::from_le_bytes([pair[0], pair[1]])))
                    .collect(),
            }
        }
        (Command::NEGOTIATE, true) => {
            expect(65, anomalies)?;
            Body::NegotiateResponse {
                dialect: Dialect(body.u16(4)?),
                security_buffer: body.buffer16(56, 58, "SecurityBuffer")?,
            }
        }
        (Command::SESSION_SETUP, false) => {
            expect(25, anomalies)?;
            Body::SessionSetupRequest {
                security_buffer: body.buffer16(12, 14, "SecurityBuffer")?,
                previous_session_id: body.u64(16)?,
            }
        }
        (Command::SESSION_SETUP, true) => {
            expect(9, anomalies)?;
            Body::SessionSetupResponse {
                session_flags: SessionFlags(body.u16(2)?),
                security_buffer: body.buffer16(4, 6, "SecurityBuffer")?,
            }
        }
        (Command::LOGOFF, false) => Body::LogoffRequest,
        (Command::LOGOFF, true) => Body::LogoffResponse,
        (Command::TREE_CONNECT, false) => {
            expect(9, anomalies)?;
            let raw = body.buffer16(4, 6, "Path")?;
            Body::TreeConnectRequest {
                path: name(raw, anomalies),
            }
        }
        (Command::TREE_CONNECT, true) => {
            expect(16, anomalies)?;
            Body::TreeConnectResponse {
                share_type: ShareType(body.u8(2)?),
                share_flags: body.u32(4)?,
                maximal_access: body.u32(12)?,
            }
        }
        (Command::TREE_DISCONNECT, _) => Body::TreeDisconnect,
        (Command::CREATE, false) => {
            expect(57, anomalies)?;
            let raw = body.buffer16(44, 46, "Name")?;
            Body::CreateRequest {
                name: name(raw, anomalies),
                desired_access: body.u32(24)?,
                file_attributes: body.u32(28)?,
                share_access: body.u32(32)?,
                create_disposition: body.u32(36)?,
                create_options: body.u32(40)?,
            }
        }
        (Command::CREATE, true) => {
            expect(89, anomalies)?;
            Body::CreateResponse {
                create_action: body.u32(4)?,
                end_of_file: body.u64(48)?,
                file_attributes: body.u32(56)?,
                file_id: body.file_id(64)?,
            }
        }
        (Command::CLOSE, false) => {
            expect(24, anomalies)?;
            Body::CloseRequest {
                file_id: body.file_id(8)?,
            }
        }
        (Command::CLOSE, true) => Body::CloseResponse,
        (Command::READ, false) => {
            expect(49, anomalies)?;
            Body::ReadRequest {
                length: body.u32(4)?,
                offset: body.u64(8)?,
                file_id: body.file_id(16)?,
            }
        }
        (Command::READ, true) => {
            expect(17, anomalies)?;
            let offset = usize::from(body.u8(2)?);
            let data_length = body.u32(4)?;
            let data = body.data(offset, data_length, anomalies)?;
            Body::ReadResponse { data_length, data }
        }
        (Command::WRITE, false) => {
            expect(49, anomalies)?;
            let offset = usize::from(body.u16(2)?);
            let data_length = body.u32(4)?;
            Body::WriteRequest {
                offset: body.u64(8)?,
                file_id: body.file_id(16)?,
                data_length,
                data: body.data(offset, data_length, anomalies)?,
            }
        }
        (Command::WRITE, true) => {
            expect(17, anomalies)?;
            Body::WriteResponse {
                count: body.u32(4)?,
            }
        }
        (Command::IOCTL, false) => {
            expect(57, anomalies)?;
            let offset = usize::try_from(body.u32(24)?).unwrap_or(usize::MAX);
            let count = body.u32(28)?;
            Body::IoctlRequest {
                ctl_code: CtlCode(body.u32(4)?),
                file_id: body.file_id(8)?,
                input: body.data(offset, count, anomalies)?,
            }
        }
        (Command::IOCTL, true) => {
            expect(49, anomalies)?;
            let offset = usize::try_from(body.u32(32)?).unwrap_or(usize::MAX);
            let count = body.u32(36)?;
            Body::IoctlResponse {
                ctl_code: CtlCode(body.u32(4)?),
                file_id: body.file_id(8)?,
                output: body.data(offset, count, anomalies)?,
            }
        }
        _ => Body::Other,
    })
}

fn name(raw: &[u8], anomalies: &mut Anomalies) -> String {
    if !raw.len().is_multiple_of(2) {
        anomalies.odd_name_length = true;
    }
    let (text, cut) = utf16(raw);
    anomalies.name_truncated |= cut;
    text
}

/// Reads a body's fields by their offset from the body's start (`base` in `bytes`); buffers by
/// their offset from the header's start (`bytes`' start).
struct Reader<'a> {
    bytes: &'a [u8],
    base: usize,
}

impl<'a> Reader<'a> {
    fn at(&self, offset: usize, len: usize) -> SmbError {
        SmbError::Truncated {
            needed: self.base.saturating_add(offset).saturating_add(len),
        }
    }

    fn u8(&self, offset: usize) -> Result<u8, SmbError> {
        self.bytes
            .get(self.base.saturating_add(offset))
            .copied()
            .ok_or(self.at(offset, 1))
    }

    fn u16(&self, offset: usize) -> Result<u16, SmbError> {
        le16(self.bytes, self.base.saturating_add(offset)).ok_or(self.at(offset, 2))
    }

    fn u32(&self, offset: usize) -> Result<u32, SmbError> {
        le32(self.bytes, self.base.saturating_add(offset)).ok_or(self.at(offset, 4))
    }

    fn u64(&self, offset: usize) -> Result<u64, SmbError> {
        le64(self.bytes, self.base.saturating_add(offset)).ok_or(self.at(offset, 8))
    }

    fn file_id(&self, offset: usize) -> Result<FileId, SmbError> {
        Ok(FileId {
            persistent: self.u64(offset)?,
            volatile: self.u64(offset.saturating_add(8))?,
        })
    }

    /// A fixed-size array right after the fixed part (the negotiate request's dialects).
    fn field_at(
        &self,
        offset: usize,
        len: usize,
        name: &'static str,
    ) -> Result<&'a [u8], SmbError> {
        field(self.bytes, self.base.saturating_add(offset), len, name)
    }

    /// A buffer described by a 16-bit offset (from the header) and a 16-bit length; an empty
    /// one may have any offset.
    fn buffer16(
        &self,
        offset_at: usize,
        len_at: usize,
        name: &'static str,
    ) -> Result<&'a [u8], SmbError> {
        let offset = usize::from(self.u16(offset_at)?);
        let len = usize::from(self.u16(len_at)?);
        if len == 0 {
            return Ok(&[]);
        }
        field(self.bytes, offset, len, name)
    }

    /// A data buffer that may have been cut with the message: what is there, flagged when cut.
    fn data(
        &self,
        offset: usize,
        len: u32,
        anomalies: &mut Anomalies,
    ) -> Result<&'a [u8], SmbError> {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len == 0 {
            return Ok(&[]);
        }
        let (data, cut) =
            clipped(self.bytes, offset, len).ok_or(SmbError::FieldOutOfBounds("Data"))?;
        anomalies.data_truncated |= cut;
        Ok(data)
    }
}
