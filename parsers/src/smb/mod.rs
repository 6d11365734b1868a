//! SMB 1 ([MS-CIFS], [MS-SMB]) and SMB 2/3 ([MS-SMB2]) over the NetBIOS session service
//! (RFC 1002 4.3, TCP 139) or its direct-hosted form ([MS-SMB2] 2.1, TCP 445, same framing).
//!
//! ```text
//! session packet = type (u8) flags (u8: bit 0 = length bit 16, others 0) length (u16be)
//!                  trailer (length bytes)                                   RFC 1002 4.3.1
//! type: 0x00 SESSION MESSAGE (trailer = one SMB message), 0x81 SESSION REQUEST,
//!       0x82 POSITIVE SESSION RESPONSE, 0x83 NEGATIVE SESSION RESPONSE,
//!       0x84 RETARGET SESSION RESPONSE, 0x85 SESSION KEEP ALIVE
//! SMB message = 0xFF 'SMB' (SMB1) | 0xFE 'SMB' (SMB2 header) | 0xFD 'SMB' (SMB3 transform,
//!               encrypted) | 0xFC 'SMB' (SMB3.1.1 compression transform)
//! ```
//!
//! Which function for which bytes: on each direction of a TCP 139/445 stream, [`frame`] /
//! [`is_pdu_start`] cut session packets; [`parse`] reads one whole packet (its 4-byte header
//! included). An SMB2 message may hold several compounded commands ([`smb2::Message`]), an SMB1
//! message an AndX chain ([`smb1::Message`]); both are read whole, each command bounded.
//! Data read from or written to named pipes is borrowed as is: it is DCE-RPC, for another parser.

pub mod smb1;
pub mod smb2;

#[cfg(test)]
mod tests;

use thiserror::Error;

use crate::framing::{Framing, Start};

/// Length of the session service header (type, flags, 16-bit length).
pub const NBSS_HEADER_LEN: usize = 4;

/// Largest trailer of a session packet: RFC 1002's 17-bit length (the flags' bit 0 extends the
/// 16-bit length field), as direct-hosted SMB uses it. [MS-SMB2] 2.1 allows 24 bits on 445
/// with the flags byte as the top of the length; both are accepted by [`frame`].
pub const MAX_NBSS_LEN: usize = 0x00ff_ffff;

/// Largest SMB message [`is_pdu_start`] believes in after a gap: Windows negotiates at most
/// 8 MiB reads and writes (MaxReadSize/MaxWriteSize), plus headers.
pub const MAX_PLAUSIBLE_MESSAGE: usize = 8 * 1024 * 1024 + 64 * 1024;

/// Bytes of one UTF-16 name (file, share path, account) that are decoded. MAX_PATH-long paths
/// of Windows (32767 characters) are possible but rare; 2048 bytes (1024 characters) hold any
/// real share path and nearly every file name. Longer names are cut here and flagged.
pub const MAX_NAME_BYTES: usize = 2048;

/// The four signatures a session message may start with.
pub const SMB1_MAGIC: [u8; 4] = *b"\xffSMB";
pub const SMB2_MAGIC: [u8; 4] = *b"\xfeSMB";
pub const TRANSFORM_MAGIC: [u8; 4] = *b"\xfdSMB";
pub const COMPRESSION_MAGIC: [u8; 4] = *b"\xfcSMB";

/// Why a session packet could not be read. Anything that still yields a record is an anomaly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum SmbError {
    #[error("SMB message shorter than its fixed part ({needed} bytes)")]
    Truncated { needed: usize },
    #[error("not a NetBIOS session packet type ({0:#04x})")]
    BadPacketType(u8),
    #[error("session message is not SMB")]
    BadProtocol,
    #[error("SMB field {0} lies outside the message")]
    FieldOutOfBounds(&'static str),
    #[error("SMB structure size {0} does not fit the command")]
    BadStructureSize(u16),
}

/// The NetBIOS session packet type (RFC 1002 4.3.1). Open: unknown values still frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PacketType(pub u8);

impl PacketType {
    pub const SESSION_MESSAGE: Self = Self(0x00);
    pub const SESSION_REQUEST: Self = Self(0x81);
    pub const POSITIVE_RESPONSE: Self = Self(0x82);
    pub const NEGATIVE_RESPONSE: Self = Self(0x83);
    pub const RETARGET_RESPONSE: Self = Self(0x84);
    pub const KEEP_ALIVE: Self = Self(0x85);

    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::SESSION_MESSAGE => "SESSION_MESSAGE",
            Self::SESSION_REQUEST => "SESSION_REQUEST",
            Self::POSITIVE_RESPONSE => "POSITIVE_SESSION_RESPONSE",
            Self::NEGATIVE_RESPONSE => "NEGATIVE_SESSION_RESPONSE",
            Self::RETARGET_RESPONSE => "RETARGET_SESSION_RESPONSE",
            Self::KEEP_ALIVE => "SESSION_KEEP_ALIVE",
            _ => return None,
        })
    }

    fn is_known(self) -> bool {
        self.name().is_some()
    }
}

/// An NTSTATUS ([MS-ERREF] 2.3). Open: every 32-bit value parses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NtStatus(pub u32);

impl NtStatus {
    pub const SUCCESS: Self = Self(0x0000_0000);
    pub const PENDING: Self = Self(0x0000_0103);
    pub const NOTIFY_ENUM_DIR: Self = Self(0x0000_010c);
    pub const BUFFER_OVERFLOW: Self = Self(0x8000_0005);
    pub const NO_MORE_FILES: Self = Self(0x8000_0006);
    pub const INVALID_PARAMETER: Self = Self(0xc000_000d);
    pub const NO_SUCH_FILE: Self = Self(0xc000_000f);
    pub const END_OF_FILE: Self = Self(0xc000_0011);
    pub const MORE_PROCESSING_REQUIRED: Self = Self(0xc000_0016);
    pub const ACCESS_DENIED: Self = Self(0xc000_0022);
    pub const BUFFER_TOO_SMALL: Self = Self(0xc000_0023);
    pub const OBJECT_NAME_INVALID: Self = Self(0xc000_0033);
    pub const OBJECT_NAME_NOT_FOUND: Self = Self(0xc000_0034);
    pub const OBJECT_NAME_COLLISION: Self = Self(0xc000_0035);
    pub const OBJECT_PATH_NOT_FOUND: Self = Self(0xc000_003a);
    pub const SHARING_VIOLATION: Self = Self(0xc000_0043);
    pub const NO_SUCH_USER: Self = Self(0xc000_0064);
    pub const WRONG_PASSWORD: Self = Self(0xc000_006a);
    pub const LOGON_FAILURE: Self = Self(0xc000_006d);
    pub const ACCOUNT_RESTRICTION: Self = Self(0xc000_006e);
    pub const INVALID_LOGON_HOURS: Self = Self(0xc000_006f);
    pub const INVALID_WORKSTATION: Self = Self(0xc000_0070);
    pub const PASSWORD_EXPIRED: Self = Self(0xc000_0071);
    pub const ACCOUNT_DISABLED: Self = Self(0xc000_0072);
    pub const NONE_MAPPED: Self = Self(0xc000_0073);
    pub const NOT_SUPPORTED: Self = Self(0xc000_00bb);
    pub const PIPE_NOT_AVAILABLE: Self = Self(0xc000_00ac);
    pub const PIPE_BUSY: Self = Self(0xc000_00ae);
    pub const PIPE_DISCONNECTED: Self = Self(0xc000_00b0);
    pub const PIPE_CLOSING: Self = Self(0xc000_00b1);
    pub const BAD_NETWORK_NAME: Self = Self(0xc000_00cc);
    pub const REQUEST_NOT_ACCEPTED: Self = Self(0xc000_00d0);
    pub const FILE_IS_A_DIRECTORY: Self = Self(0xc000_00ba);
    pub const NOT_A_DIRECTORY: Self = Self(0xc000_0103);
    pub const CANCELLED: Self = Self(0xc000_0120);
    pub const FILE_CLOSED: Self = Self(0xc000_0128);
    pub const LOGON_TYPE_NOT_GRANTED: Self = Self(0xc000_015b);
    pub const NOT_FOUND: Self = Self(0xc000_0225);
    pub const PASSWORD_MUST_CHANGE: Self = Self(0xc000_0224);
    pub const ACCOUNT_LOCKED_OUT: Self = Self(0xc000_0234);
    pub const USER_SESSION_DELETED: Self = Self(0xc000_0203);
    pub const NETWORK_SESSION_EXPIRED: Self = Self(0xc000_035c);
    pub const ACCOUNT_EXPIRED: Self = Self(0xc000_0193);
    pub const DOWNGRADE_DETECTED: Self = Self(0xc000_0388);
    pub const FS_DRIVER_REQUIRED: Self = Self(0xc000_019c);

    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::SUCCESS => "STATUS_SUCCESS",
            Self::PENDING => "STATUS_PENDING",
            Self::NOTIFY_ENUM_DIR => "STATUS_NOTIFY_ENUM_DIR",
            Self::BUFFER_OVERFLOW => "STATUS_BUFFER_OVERFLOW",
            Self::NO_MORE_FILES => "STATUS_NO_MORE_FILES",
            Self::INVALID_PARAMETER => "STATUS_INVALID_PARAMETER",
            Self::NO_SUCH_FILE => "STATUS_NO_SUCH_FILE",
            Self::END_OF_FILE => "STATUS_END_OF_FILE",
            Self::MORE_PROCESSING_REQUIRED => "STATUS_MORE_PROCESSING_REQUIRED",
            Self::ACCESS_DENIED => "STATUS_ACCESS_DENIED",
            Self::BUFFER_TOO_SMALL => "STATUS_BUFFER_TOO_SMALL",
            Self::OBJECT_NAME_INVALID => "STATUS_OBJECT_NAME_INVALID",
            Self::OBJECT_NAME_NOT_FOUND => "STATUS_OBJECT_NAME_NOT_FOUND",
            Self::OBJECT_NAME_COLLISION => "STATUS_OBJECT_NAME_COLLISION",
            Self::OBJECT_PATH_NOT_FOUND => "STATUS_OBJECT_PATH_NOT_FOUND",
            Self::SHARING_VIOLATION => "STATUS_SHARING_VIOLATION",
            Self::NO_SUCH_USER => "STATUS_NO_SUCH_USER",
            Self::WRONG_PASSWORD => "STATUS_WRONG_PASSWORD",
            Self::LOGON_FAILURE => "STATUS_LOGON_FAILURE",
            Self::ACCOUNT_RESTRICTION => "STATUS_ACCOUNT_RESTRICTION",
            Self::INVALID_LOGON_HOURS => "STATUS_INVALID_LOGON_HOURS",
            Self::INVALID_WORKSTATION => "STATUS_INVALID_WORKSTATION",
            Self::PASSWORD_EXPIRED => "STATUS_PASSWORD_EXPIRED",
            Self::ACCOUNT_DISABLED => "STATUS_ACCOUNT_DISABLED",
            Self::NONE_MAPPED => "STATUS_NONE_MAPPED",
            Self::NOT_SUPPORTED => "STATUS_NOT_SUPPORTED",
            Self::PIPE_NOT_AVAILABLE => "STATUS_PIPE_NOT_AVAILABLE",
            Self::PIPE_BUSY => "STATUS_PIPE_BUSY",
            Self::PIPE_DISCONNECTED => "STATUS_PIPE_DISCONNECTED",
            Self::PIPE_CLOSING => "STATUS_PIPE_CLOSING",
            Self::BAD_NETWORK_NAME => "STATUS_BAD_NETWORK_NAME",
            Self::REQUEST_NOT_ACCEPTED => "STATUS_REQUEST_NOT_ACCEPTED",
            Self::FILE_IS_A_DIRECTORY => "STATUS_FILE_IS_A_DIRECTORY",
            Self::NOT_A_DIRECTORY => "STATUS_NOT_A_DIRECTORY",
            Self::CANCELLED => "STATUS_CANCELLED",
            Self::FILE_CLOSED => "STATUS_FILE_CLOSED",
            Self::LOGON_TYPE_NOT_GRANTED => "STATUS_LOGON_TYPE_NOT_GRANTED",
            Self::NOT_FOUND => "STATUS_NOT_FOUND",
            Self::PASSWORD_MUST_CHANGE => "STATUS_PASSWORD_MUST_CHANGE",
            Self::ACCOUNT_LOCKED_OUT => "STATUS_ACCOUNT_LOCKED_OUT",
            Self::USER_SESSION_DELETED => "STATUS_USER_SESSION_DELETED",
            Self::NETWORK_SESSION_EXPIRED => "STATUS_NETWORK_SESSION_EXPIRED",
            Self::ACCOUNT_EXPIRED => "STATUS_ACCOUNT_EXPIRED",
            Self::DOWNGRADE_DETECTED => "STATUS_DOWNGRADE_DETECTED",
            Self::FS_DRIVER_REQUIRED => "STATUS_FS_DRIVER_REQUIRED",
            _ => return None,
        })
    }

    /// Severity "error" (the two top bits set, [MS-ERREF] 2.3).
    pub fn is_error(self) -> bool {
        self.0 >> 30 == 3
    }
}

/// A share's type, from an SMB2 TREE_CONNECT response ([MS-SMB2] 2.2.10) or the service string
/// of an SMB1 TREE_CONNECT_ANDX response ([MS-CIFS] 2.2.4.55.2). Open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ShareType(pub u8);

impl ShareType {
    pub const UNKNOWN: Self = Self(0);
    pub const DISK: Self = Self(1);
    pub const PIPE: Self = Self(2);
    pub const PRINT: Self = Self(3);

    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::DISK => "DISK",
            Self::PIPE => "PIPE",
            Self::PRINT => "PRINT",
            _ => return None,
        })
    }
}

/// One session packet, read from its 4-byte header on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    /// A session message with an SMB1 message.
    Smb1(smb1::Message<'a>),
    /// A session message with an SMB2 message: one or more compounded commands.
    Smb2(smb2::Message<'a>),
    /// An SMB3 encrypted message: its transform header is all that can be read.
    Transform(smb2::TransformHeader),
    /// An SMB3.1.1 compressed message ([MS-SMB2] 2.2.42): its compression transform header.
    Compressed(smb2::CompressionHeader),
    /// A session service control packet (session request or response, keep-alive).
    Control(PacketType),
}

/// What [`frame`] reads: the packet type and the trailer's length.
fn header(bytes: &[u8]) -> Option<(PacketType, usize)> {
    let head = bytes.first_chunk::<NBSS_HEADER_LEN>()?;
    // Direct-hosted SMB ([MS-SMB2] 2.1) gives the length 24 bits; on 139 the flags byte is 0
    // or 1 (RFC 1002's E bit), the same number either way.
    let length = usize::from(head[1]) << 16 | usize::from(head[2]) << 8 | usize::from(head[3]);
    Some((PacketType(head[0]), length))
}

/// The length of the session packet at the front of `bytes`, header included (RFC 1002 4.3.1).
pub fn frame(bytes: &[u8]) -> Framing {
    match header(bytes) {
        None => Framing::NeedMore,
        Some((kind, _)) if !kind.is_known() => Framing::NotPdu,
        Some((_, length)) => Framing::Pdu(length.saturating_add(NBSS_HEADER_LEN)),
    }
}

/// Whether a session packet plausibly starts at the front of `bytes`, for resynchronising.
///
/// Strict: a session message must be at most [`MAX_PLAUSIBLE_MESSAGE`] long and start with one
/// of the four SMB signatures, and an SMB2 header's StructureSize must be 64 (an SMB1 header's
/// word count must fit the message); a keep-alive has an empty trailer; a session request
/// (port 139) holds two 34-byte encoded NetBIOS names (RFC 1002 4.3.2); a positive response is
/// empty and a negative one holds one error code.
pub fn is_pdu_start(bytes: &[u8]) -> Start {
    let Some((kind, length)) = header(bytes) else {
        return Start::NeedMore;
    };
    let trailer = bytes.get(NBSS_HEADER_LEN..).unwrap_or_default();
    match kind {
        PacketType::SESSION_MESSAGE => message_start(trailer, length),
        PacketType::KEEP_ALIVE | PacketType::POSITIVE_RESPONSE => yes_if(length == 0),
        PacketType::NEGATIVE_RESPONSE => yes_if(length == 1),
        PacketType::SESSION_REQUEST => session_request_start(trailer, length),
        _ => Start::No,
    }
}

fn yes_if(condition: bool) -> Start {
    if condition { Start::Yes } else { Start::No }
}

fn message_start(trailer: &[u8], length: usize) -> Start {
    /// Bytes of an SMB header checked: the signature and the fields after it that say which
    /// header this is.
    const PEEK: usize = 8;
    if !(PEEK..=MAX_PLAUSIBLE_MESSAGE).contains(&length) {
        return Start::No;
    }
    let Some(peek) = trailer.first_chunk::<PEEK>() else {
        return Start::NeedMore;
    };
    let magic = [peek[0], peek[1], peek[2], peek[3]];
    match magic {
        SMB2_MAGIC => yes_if(
            u16::from_le_bytes([peek[4], peek[5]]) == smb2::HEADER_LEN as u16
                && length >= smb2::HEADER_LEN,
        ),
        SMB1_MAGIC => yes_if(length >= smb1::HEADER_LEN + 3),
        TRANSFORM_MAGIC => yes_if(length > smb2::TRANSFORM_HEADER_LEN),
        COMPRESSION_MAGIC => yes_if(length > smb2::COMPRESSION_HEADER_LEN),
        _ => Start::No,
    }
}

/// RFC 1002 4.3.2: CALLED NAME and CALLING NAME, each a 32-letter first-level encoding
/// ('A'..='P') with its length byte 0x20 and a terminating empty label.
fn session_request_start(trailer: &[u8], length: usize) -> Start {
    const ENCODED_NAME_LEN: usize = 34;
    if length != 2 * ENCODED_NAME_LEN {
        return Start::No;
    }
    let Some(name) = trailer.first_chunk::<ENCODED_NAME_LEN>() else {
        return Start::NeedMore;
    };
    let letters = name.get(1..33).unwrap_or_default();
    yes_if(name[0] == 0x20 && name[33] == 0 && letters.iter().all(|b| (b'A'..=b'P').contains(b)))
}

/// Reads one whole session packet, header included: the SMB message in a session message, or
/// the kind of a control packet. The caller frames with [`frame`] first; a packet cut short
/// (longer than the caller buffers) still reads what its first bytes hold, with the data fields
/// of reads and writes cut and flagged.
pub fn parse(packet: &[u8]) -> Result<Packet<'_>, SmbError> {
    let (kind, _) = header(packet).ok_or(SmbError::Truncated {
        needed: NBSS_HEADER_LEN,
    })?;
    let message = packet.get(NBSS_HEADER_LEN..).unwrap_or_default();
    match kind {
        PacketType::SESSION_MESSAGE => parse_message(message),
        kind if kind.is_known() => Ok(Packet::Control(kind)),
        PacketType(other) => Err(SmbError::BadPacketType(other)),
    }
}

/// Reads one SMB message (the trailer of a session message).
pub fn parse_message(message: &[u8]) -> Result<Packet<'_>, SmbError> {
    let magic = message
        .first_chunk::<4>()
        .ok_or(SmbError::Truncated { needed: 4 })?;
    match *magic {
        SMB2_MAGIC => smb2::parse(message).map(Packet::Smb2),
        SMB1_MAGIC => smb1::parse(message).map(Packet::Smb1),
        TRANSFORM_MAGIC => smb2::parse_transform(message).map(Packet::Transform),
        COMPRESSION_MAGIC => smb2::parse_compression(message).map(Packet::Compressed),
        _ => Err(SmbError::BadProtocol),
    }
}

// ---- little-endian readers over a message, by absolute offset ------------------------------

pub(crate) fn le16(bytes: &[u8], at: usize) -> Option<u16> {
    let end = at.checked_add(2)?;
    let b = bytes.get(at..end)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

pub(crate) fn le32(bytes: &[u8], at: usize) -> Option<u32> {
    let end = at.checked_add(4)?;
    let b = bytes.get(at..end)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

pub(crate) fn le64(bytes: &[u8], at: usize) -> Option<u64> {
    let end = at.checked_add(8)?;
    let b = bytes.get(at..end)?;
    let mut array = [0u8; 8];
    array.copy_from_slice(b);
    Some(u64::from_le_bytes(array))
}

/// `len` bytes at `offset` of `bytes`, if they all lie inside.
pub(crate) fn field<'a>(
    bytes: &'a [u8],
    offset: usize,
    len: usize,
    name: &'static str,
) -> Result<&'a [u8], SmbError> {
    offset
        .checked_add(len)
        .and_then(|end| bytes.get(offset..end))
        .ok_or(SmbError::FieldOutOfBounds(name))
}

/// Up to `len` bytes at `offset`: a data field of a message that may have been cut short.
/// `None` when even its start lies outside the message.
pub(crate) fn clipped(bytes: &[u8], offset: usize, len: usize) -> Option<(&[u8], bool)> {
    let rest = bytes.get(offset..)?;
    Some(match rest.get(..len) {
        Some(data) => (data, false),
        None => (rest, true),
    })
}

/// Decodes UTF-16LE, at most [`MAX_NAME_BYTES`] of it; `true` when cut. An odd trailing byte is
/// dropped; unpaired surrogates become U+FFFD.
pub fn utf16(bytes: &[u8]) -> (String, bool) {
    let cut = bytes.len() > MAX_NAME_BYTES;
    let bytes = bytes.get(..MAX_NAME_BYTES).unwrap_or(bytes);
    let units = bytes
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]));
    let text = char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    (text, cut)
}

/// Decodes an 8-bit OEM string as Latin-1 (every byte a character), at most
/// [`MAX_NAME_BYTES`]; `true` when cut.
pub fn oem(bytes: &[u8]) -> (String, bool) {
    let cut = bytes.len() > MAX_NAME_BYTES;
    let bytes = bytes.get(..MAX_NAME_BYTES).unwrap_or(bytes);
    (bytes.iter().map(|&b| char::from(b)).collect(), cut)
}
