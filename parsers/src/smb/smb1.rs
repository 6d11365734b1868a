//! SMB 1 (CIFS) messages, [MS-CIFS] 2.2 with the [MS-SMB] 2.2 extensions.
//!
//! ```text
//! SMB_Header (32) = Protocol (0xFF 'SMB') Command (u8) Status (u32: NTSTATUS, or ErrorClass
//!                   (u8) Reserved (u8) ErrorCode (u16) without FLAGS2_NT_STATUS) Flags (u8)
//!                   Flags2 (u16) PIDHigh (u16) SecurityFeatures (8) Reserved (u16) TID (u16)
//!                   PIDLow (u16) UID (u16) MID (u16)                              2.2.3.1
//! command block   = WordCount (u8) Words (2 * WordCount) ByteCount (u16) Bytes  2.2.3.2-3
//! AndX commands   : Words start with AndXCommand (u8) AndXReserved (u8) AndXOffset (u16, from
//!                   the header's start) naming the next block of the chain (0xFF: none)
//! ```
//!
//! Read: NEGOTIATE, SESSION_SETUP_ANDX, LOGOFF_ANDX, TREE_CONNECT_ANDX, NT_CREATE_ANDX,
//! READ_ANDX, WRITE_ANDX, CLOSE, TREE_DISCONNECT, TRANSACTION (named pipes). Strings are
//! UTF-16LE when Flags2 has UNICODE, aligned to 2 bytes from the header's start, else OEM.

use super::{NtStatus, SmbError, clipped, le16, le32, le64, oem, utf16};

/// SMB_Header's length.
pub const HEADER_LEN: usize = 32;

/// Commands read from one AndX chain. Real chains hold 2 or 3 (session setup + tree connect,
/// create + read); 8 bounds a hostile chain, whose offsets must also only go forward.
pub const MAX_ANDX_CHAIN: usize = 8;

/// Dialect strings read from one NEGOTIATE request. Windows clients offered 8 to 12; smbclient
/// and scanners a few more.
pub const MAX_DIALECTS: usize = 32;

/// Setup words of a TRANSACTION request read (TransactNmPipe has 2, mailslots 3).
pub const MAX_SETUP_WORDS: usize = 4;

/// An SMB1 command code ([MS-CIFS] 2.2.2.1). Open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Command(pub u8);

impl Command {
    pub const CLOSE: Self = Self(0x04);
    pub const TRANSACTION: Self = Self(0x25);
    pub const ECHO: Self = Self(0x2b);
    pub const READ_ANDX: Self = Self(0x2e);
    pub const WRITE_ANDX: Self = Self(0x2f);
    pub const TRANSACTION2: Self = Self(0x32);
    pub const TREE_DISCONNECT: Self = Self(0x71);
    pub const NEGOTIATE: Self = Self(0x72);
    pub const SESSION_SETUP_ANDX: Self = Self(0x73);
    pub const LOGOFF_ANDX: Self = Self(0x74);
    pub const TREE_CONNECT_ANDX: Self = Self(0x75);
    pub const NT_TRANSACT: Self = Self(0xa0);
    pub const NT_CREATE_ANDX: Self = Self(0xa2);
    /// "No further commands" in an AndXCommand field.
    pub const NO_ANDX: Self = Self(0xff);

    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::CLOSE => "CLOSE",
            Self::TRANSACTION => "TRANSACTION",
            Self::ECHO => "ECHO",
            Self::READ_ANDX => "READ_ANDX",
            Self::WRITE_ANDX => "WRITE_ANDX",
            Self::TRANSACTION2 => "TRANSACTION2",
            Self::TREE_DISCONNECT => "TREE_DISCONNECT",
            Self::NEGOTIATE => "NEGOTIATE",
            Self::SESSION_SETUP_ANDX => "SESSION_SETUP_ANDX",
            Self::LOGOFF_ANDX => "LOGOFF_ANDX",
            Self::TREE_CONNECT_ANDX => "TREE_CONNECT_ANDX",
            Self::NT_TRANSACT => "NT_TRANSACT",
            Self::NT_CREATE_ANDX => "NT_CREATE_ANDX",
            _ => return None,
        })
    }

    /// Whether the command's words start with an AndX block ([MS-CIFS] 2.2.4).
    fn is_andx(self) -> bool {
        matches!(
            self,
            Self::READ_ANDX
                | Self::WRITE_ANDX
                | Self::SESSION_SETUP_ANDX
                | Self::LOGOFF_ANDX
                | Self::TREE_CONNECT_ANDX
                | Self::NT_CREATE_ANDX
        )
    }
}

/// Flags2 bits ([MS-CIFS] 2.2.3.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags2(pub u16);

impl Flags2 {
    pub const LONG_NAMES: Self = Self(0x0001);
    pub const SECURITY_SIGNATURE: Self = Self(0x0004);
    pub const EXTENDED_SECURITY: Self = Self(0x0800);
    pub const DFS: Self = Self(0x1000);
    pub const NT_STATUS: Self = Self(0x4000);
    pub const UNICODE: Self = Self(0x8000);

    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

/// The REPLY bit of Flags: the message is a response.
pub const FLAGS_REPLY: u8 = 0x80;

/// SMB_Header ([MS-CIFS] 2.2.3.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub command: Command,
    /// The Status field: an NTSTATUS when [`Flags2::NT_STATUS`] is set, else the DOS error
    /// (class in the low byte, code in the high 16 bits) as on the wire.
    pub status: u32,
    pub flags: u8,
    pub flags2: Flags2,
    pub tid: u16,
    /// PIDHigh << 16 | PIDLow.
    pub pid: u32,
    pub uid: u16,
    pub mid: u16,
}

impl Header {
    pub fn is_response(&self) -> bool {
        self.flags & FLAGS_REPLY != 0
    }

    /// The status as an NTSTATUS: the DOS error classes a sensor cares about are mapped
    /// ([MS-CIFS] 2.2.2.4), anything else as ERRSRV/ERRDOS kept in a private form.
    pub fn nt_status(&self) -> NtStatus {
        if self.flags2.contains(Flags2::NT_STATUS) {
            return NtStatus(self.status);
        }
        let class = self.status & 0xff;
        let code = self.status >> 16;
        match (class, code) {
            (0, _) => NtStatus::SUCCESS,
            (0x01, 5) => NtStatus::ACCESS_DENIED,
            (0x01, 2) => NtStatus::OBJECT_NAME_NOT_FOUND,
            (0x02, 2) => NtStatus::LOGON_FAILURE,
            (0x02, 6) => NtStatus::BAD_NETWORK_NAME,
            // Unmapped DOS errors keep their bits, under a customer-code marker (bit 29) so
            // they do not read as a real NTSTATUS.
            _ => NtStatus(0xe000_0000 | (code << 8) | class),
        }
    }

    fn unicode(&self) -> bool {
        self.flags2.contains(Flags2::UNICODE)
    }
}

/// Anything odd that still parsed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Anomalies {
    pub name_truncated: bool,
    pub data_truncated: bool,
    pub too_many_dialects: bool,
    /// An AndX chain longer than [`MAX_ANDX_CHAIN`], or whose offsets went backwards or out.
    pub chain_truncated: bool,
    /// A string without its terminating NUL.
    pub unterminated_string: bool,
    /// A TRANSACTION whose SetupCount exceeds its WordCount (read with the setup words added).
    pub short_setup: bool,
}

/// One command block's body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body<'a> {
    NegotiateRequest {
        dialects: Vec<String>,
    },
    NegotiateResponse {
        /// Index into the request's dialect list; 0xFFFF: none acceptable.
        dialect_index: u16,
        /// Security blob of an extended-security response (SPNEGO hints).
        security_blob: &'a [u8],
    },
    SessionSetupRequest {
        /// Extended security ([MS-SMB] 2.2.4.6.1): a GSS-API token.
        security_blob: Option<&'a [u8]>,
        /// Non-extended ([MS-CIFS] 2.2.4.53.1): the names in clear.
        account: String,
        primary_domain: String,
        native_os: String,
    },
    SessionSetupResponse {
        /// Action bit 0: logged on as guest.
        action: u16,
        security_blob: Option<&'a [u8]>,
        native_os: String,
    },
    LogoffRequest,
    LogoffResponse,
    TreeConnectRequest {
        /// `\\server\share`.
        path: String,
        /// "A:", "LPT1:", "IPC", "COMM" or "?????".
        service: String,
    },
    TreeConnectResponse {
        service: String,
    },
    TreeDisconnect,
    NtCreateRequest {
        name: String,
        desired_access: u32,
        create_disposition: u32,
        create_options: u32,
    },
    NtCreateResponse {
        fid: u16,
        create_action: u32,
        end_of_file: u64,
        /// ResourceType ([MS-CIFS] 2.2.4.64.2): 2 and 3 are named pipes.
        resource_type: u16,
    },
    CloseRequest {
        fid: u16,
    },
    CloseResponse,
    ReadRequest {
        fid: u16,
        max_count: u32,
    },
    ReadResponse {
        data_length: u32,
        data: &'a [u8],
    },
    WriteRequest {
        fid: u16,
        data_length: u32,
        data: &'a [u8],
    },
    WriteResponse {
        count: u32,
    },
    TransactionRequest {
        /// `\PIPE\` for named pipes, `\MAILSLOT\...` for mailslots.
        name: String,
        setup: Vec<u16>,
        data: &'a [u8],
    },
    TransactionResponse {
        data: &'a [u8],
    },
    /// A response with no words and no bytes: the header's status is the answer.
    Error,
    Other,
}

impl Body<'_> {
    /// The FID of a TransactNmPipe request (setup = [0x0026, FID]).
    pub fn transact_pipe_fid(&self) -> Option<u16> {
        /// TransactNmPipe's subcommand code ([MS-CIFS] 2.2.5.6).
        const TRANSACT_NMPIPE: u16 = 0x0026;
        match self {
            Self::TransactionRequest { setup, .. } if setup.first() == Some(&TRANSACT_NMPIPE) => {
                setup.get(1).copied()
            }
            _ => None,
        }
    }
}

/// One command of a chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block<'a> {
    pub command: Command,
    pub body: Body<'a>,
}

/// One SMB1 message: its header and the commands of its AndX chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    pub header: Header,
    pub commands: Vec<Block<'a>>,
    pub anomalies: Anomalies,
}

/// Reads an SMB1 message (from its 0xFF 'SMB'), following its AndX chain (at most
/// [`MAX_ANDX_CHAIN`] commands, each block after the one before).
pub fn parse(message: &[u8]) -> Result<Message<'_>, SmbError> {
    let header = parse_header(message)?;
    let mut anomalies = Anomalies::default();
    let mut commands = Vec::new();
    let mut command = header.command;
    let mut at = HEADER_LEN;
    loop {
        let block = match read_block(message, at) {
            Ok(block) => transaction_words(&header, command, message, at, block, &mut anomalies),
            Err(error) if commands.is_empty() => return Err(error),
            Err(_) => {
                anomalies.chain_truncated = true;
                break;
            }
        };
        // A later block that does not read must not take the ones before it along (a
        // SESSION_SETUP_ANDX and its token, say).
        let body = match parse_body(&header, command, message, &block, &mut anomalies) {
            Ok(body) => body,
            Err(error) if commands.is_empty() => return Err(error),
            Err(_) => {
                anomalies.chain_truncated = true;
                break;
            }
        };
        commands.push(Block { command, body });
        let Some((next, offset)) = block.andx(command) else {
            break;
        };
        if next == Command::NO_ANDX {
            break;
        }
        if commands.len() == MAX_ANDX_CHAIN || offset <= at {
            anomalies.chain_truncated = true;
            break;
        }
        command = next;
        at = offset;
    }
    Ok(Message {
        header,
        commands,
        anomalies,
    })
}

/// A TRANSACTION request whose WordCount (14) leaves out its SetupCount words, as some clients
/// send it: read with 14 + SetupCount words, as Wireshark does, and flagged. Any other block is
/// kept as read.
fn transaction_words<'a>(
    header: &Header,
    command: Command,
    message: &'a [u8],
    at: usize,
    block: RawBlock<'a>,
    anomalies: &mut Anomalies,
) -> RawBlock<'a> {
    /// TRANSACTION's fixed words ([MS-CIFS] 2.2.4.33.1), before the setup words.
    const FIXED_WORDS: usize = 14;
    if command != Command::TRANSACTION
        || header.is_response()
        || block.words.len() != FIXED_WORDS * 2
    {
        return block;
    }
    let setup_count = usize::from(block.words.get(26).copied().unwrap_or(0));
    if setup_count == 0 {
        return block;
    }
    match read_words(message, at, FIXED_WORDS + setup_count) {
        Ok(widened) => {
            anomalies.short_setup = true;
            widened
        }
        Err(_) => block,
    }
}

fn parse_header(message: &[u8]) -> Result<Header, SmbError> {
    if message.get(..4) != Some(super::SMB1_MAGIC.as_slice()) {
        return Err(SmbError::BadProtocol);
    }
    let truncated = SmbError::Truncated {
        needed: HEADER_LEN + 1,
    };
    if message.len() <= HEADER_LEN {
        return Err(truncated);
    }
    let pid_high = le16(message, 12).ok_or(truncated)?;
    let pid_low = le16(message, 26).ok_or(truncated)?;
    Ok(Header {
        command: Command(*message.get(4).ok_or(truncated)?),
        status: le32(message, 5).ok_or(truncated)?,
        flags: *message.get(9).ok_or(truncated)?,
        flags2: Flags2(le16(message, 10).ok_or(truncated)?),
        tid: le16(message, 24).ok_or(truncated)?,
        pid: u32::from(pid_high) << 16 | u32::from(pid_low),
        uid: le16(message, 28).ok_or(truncated)?,
        mid: le16(message, 30).ok_or(truncated)?,
    })
}

/// A command block's words and bytes, with the offset of the bytes in the message (strings
/// align on it, data offsets count from the header).
struct RawBlock<'a> {
    words: &'a [u8],
    bytes: &'a [u8],
    bytes_at: usize,
}

impl RawBlock<'_> {
    fn u8(&self, at: usize) -> Result<u8, SmbError> {
        self.words.get(at).copied().ok_or(SmbError::Truncated {
            needed: HEADER_LEN + 1 + at + 1,
        })
    }

    fn u16(&self, at: usize) -> Result<u16, SmbError> {
        le16(self.words, at).ok_or(SmbError::Truncated {
            needed: HEADER_LEN + 1 + at + 2,
        })
    }

    fn u32(&self, at: usize) -> Result<u32, SmbError> {
        le32(self.words, at).ok_or(SmbError::Truncated {
            needed: HEADER_LEN + 1 + at + 4,
        })
    }

    fn u64(&self, at: usize) -> Result<u64, SmbError> {
        le64(self.words, at).ok_or(SmbError::Truncated {
            needed: HEADER_LEN + 1 + at + 8,
        })
    }

    /// The next command and its offset, for an AndX command with words.
    fn andx(&self, command: Command) -> Option<(Command, usize)> {
        if !command.is_andx() || self.words.len() < 4 {
            return None;
        }
        Some((
            Command(self.words[0]),
            usize::from(le16(self.words, 2).unwrap_or(0)),
        ))
    }
}

fn read_block(message: &[u8], at: usize) -> Result<RawBlock<'_>, SmbError> {
    let count = usize::from(*message.get(at).ok_or(SmbError::Truncated {
        needed: at.saturating_add(1),
    })?);
    read_words(message, at, count)
}

/// A block read as if its WordCount were `count`.
fn read_words(message: &[u8], at: usize, count: usize) -> Result<RawBlock<'_>, SmbError> {
    let words_at = at.saturating_add(1);
    let words = super::field(message, words_at, count * 2, "Words")?;
    let count_at = words_at.saturating_add(count * 2);
    let byte_count = usize::from(le16(message, count_at).ok_or(SmbError::Truncated {
        needed: count_at.saturating_add(2),
    })?);
    let bytes_at = count_at.saturating_add(2);
    // The bytes of a cut message (a large write) are what arrived.
    let (bytes, _) = clipped(message, bytes_at, byte_count).unwrap_or((&[], true));
    Ok(RawBlock {
        words,
        bytes,
        bytes_at,
    })
}

fn parse_body<'a>(
    header: &Header,
    command: Command,
    message: &'a [u8],
    block: &RawBlock<'a>,
    anomalies: &mut Anomalies,
) -> Result<Body<'a>, SmbError> {
    let response = header.is_response();
    if response && block.words.is_empty() && block.bytes.is_empty() && command != Command::CLOSE {
        return Ok(Body::Error);
    }
    let strings = Strings {
        unicode: header.unicode(),
        message,
    };
    Ok(match (command, response) {
        (Command::NEGOTIATE, false) => negotiate_request(block.bytes, anomalies),
        (Command::NEGOTIATE, true) => {
            let extended = block.words.len() >= 34
                && block.u32(19)? & 0x8000_0000 != 0
                && block.bytes.len() > 16;
            Body::NegotiateResponse {
                dialect_index: block.u16(0)?,
                security_blob: if extended {
                    block.bytes.get(16..).unwrap_or_default()
                } else {
                    &[]
                },
            }
        }
        (Command::SESSION_SETUP_ANDX, false) => session_setup_request(block, &strings, anomalies)?,
        (Command::SESSION_SETUP_ANDX, true) => {
            let action = block.u16(4)?;
            if block.words.len() >= 8 {
                let len = usize::from(block.u16(6)?);
                let blob = block
                    .bytes
                    .get(..len)
                    .ok_or(SmbError::FieldOutOfBounds("SecurityBlob"))?;
                let (native_os, _) = strings.read(block.bytes_at + len, anomalies);
                Body::SessionSetupResponse {
                    action,
                    security_blob: Some(blob),
                    native_os,
                }
            } else {
                let (native_os, _) = strings.read(block.bytes_at, anomalies);
                Body::SessionSetupResponse {
                    action,
                    security_blob: None,
                    native_os,
                }
            }
        }
        (Command::LOGOFF_ANDX, false) => Body::LogoffRequest,
        (Command::LOGOFF_ANDX, true) => Body::LogoffResponse,
        (Command::TREE_CONNECT_ANDX, false) => {
            let password = usize::from(block.u16(6)?);
            let (path, after) = strings.read(block.bytes_at.saturating_add(password), anomalies);
            let (service, _) = strings.read_oem(after, anomalies);
            Body::TreeConnectRequest { path, service }
        }
        (Command::TREE_CONNECT_ANDX, true) => {
            let (service, _) = strings.read_oem(block.bytes_at, anomalies);
            Body::TreeConnectResponse { service }
        }
        (Command::TREE_DISCONNECT, _) => Body::TreeDisconnect,
        (Command::NT_CREATE_ANDX, false) => {
            let name_len = usize::from(block.u16(5)?);
            let (name, _) = strings.read_counted(block.bytes_at, name_len, anomalies);
            Body::NtCreateRequest {
                name,
                desired_access: block.u32(15)?,
                create_disposition: block.u32(35)?,
                create_options: block.u32(39)?,
            }
        }
        (Command::NT_CREATE_ANDX, true) => Body::NtCreateResponse {
            fid: block.u16(5)?,
            create_action: block.u32(7)?,
            end_of_file: block.u64(55)?,
            resource_type: block.u16(63)?,
        },
        (Command::CLOSE, false) => Body::CloseRequest { fid: block.u16(0)? },
        (Command::CLOSE, true) => Body::CloseResponse,
        (Command::READ_ANDX, false) => {
            let high = if block.words.len() >= 20 {
                block.u32(14)? & 0xffff
            } else {
                0
            };
            Body::ReadRequest {
                fid: block.u16(4)?,
                max_count: high << 16 | u32::from(block.u16(10)?),
            }
        }
        (Command::READ_ANDX, true) => {
            let data_length = u32::from(block.u16(14)?) << 16 | u32::from(block.u16(10)?);
            let offset = usize::from(block.u16(12)?);
            Body::ReadResponse {
                data_length,
                data: data(message, offset, data_length, anomalies)?,
            }
        }
        (Command::WRITE_ANDX, false) => {
            let data_length = u32::from(block.u16(18)?) << 16 | u32::from(block.u16(20)?);
            let offset = usize::from(block.u16(22)?);
            Body::WriteRequest {
                fid: block.u16(4)?,
                data_length,
                data: data(message, offset, data_length, anomalies)?,
            }
        }
        (Command::WRITE_ANDX, true) => Body::WriteResponse {
            count: u32::from(block.u16(8)?) << 16 | u32::from(block.u16(4)?),
        },
        (Command::TRANSACTION, false) => transaction_request(block, &strings, message, anomalies)?,
        (Command::TRANSACTION, true) => {
            let count = block.u16(12)?;
            let offset = usize::from(block.u16(14)?);
            Body::TransactionResponse {
                data: data(message, offset, u32::from(count), anomalies)?,
            }
        }
        _ => Body::Other,
    })
}

/// [MS-CIFS] 2.2.4.52.1: Dialects = (0x02 BufferFormat, OEM string, NUL)*.
fn negotiate_request<'a>(bytes: &[u8], anomalies: &mut Anomalies) -> Body<'a> {
    let mut dialects = Vec::new();
    let mut rest = bytes;
    while let Some((&0x02, after)) = rest.split_first() {
        if dialects.len() == MAX_DIALECTS {
            anomalies.too_many_dialects = true;
            break;
        }
        let end = after.iter().position(|&b| b == 0);
        let (text, next) = if let Some(end) = end {
            (&after[..end], after.get(end + 1..).unwrap_or_default())
        } else {
            anomalies.unterminated_string = true;
            (after, &[][..])
        };
        let (name, cut) = oem(text);
        anomalies.name_truncated |= cut;
        dialects.push(name);
        rest = next;
    }
    Body::NegotiateRequest { dialects }
}

fn session_setup_request<'a>(
    block: &RawBlock<'a>,
    strings: &Strings<'a>,
    anomalies: &mut Anomalies,
) -> Result<Body<'a>, SmbError> {
    match block.words.len() {
        // [MS-SMB] 2.2.4.6.1: extended security.
        24 => {
            let len = usize::from(block.u16(14)?);
            let blob = block
                .bytes
                .get(..len)
                .ok_or(SmbError::FieldOutOfBounds("SecurityBlob"))?;
            let (native_os, _) = strings.read(block.bytes_at.saturating_add(len), anomalies);
            Ok(Body::SessionSetupRequest {
                security_blob: Some(blob),
                account: String::new(),
                primary_domain: String::new(),
                native_os,
            })
        }
        // [MS-CIFS] 2.2.4.53.1 (NT LM 0.12, 13 words) and the LAN Manager form (10 words).
        26 | 20 => {
            let passwords = if block.words.len() == 26 {
                usize::from(block.u16(14)?).saturating_add(usize::from(block.u16(16)?))
            } else {
                usize::from(block.u16(14)?)
            };
            let at = block.bytes_at.saturating_add(passwords);
            let (account, at) = strings.read(at, anomalies);
            let (primary_domain, at) = strings.read(at, anomalies);
            let (native_os, _) = strings.read(at, anomalies);
            Ok(Body::SessionSetupRequest {
                security_blob: None,
                account,
                primary_domain,
                native_os,
            })
        }
        _ => Ok(Body::Other),
    }
}

/// [MS-CIFS] 2.2.4.33.1: the words, then Name, Parameters, Data at their offsets.
fn transaction_request<'a>(
    block: &RawBlock<'a>,
    strings: &Strings<'a>,
    message: &'a [u8],
    anomalies: &mut Anomalies,
) -> Result<Body<'a>, SmbError> {
    let data_count = block.u16(22)?;
    let data_offset = usize::from(block.u16(24)?);
    let setup_count = usize::from(block.u8(26)?);
    // SetupCount words follow the 14 fixed ones; a count the WordCount does not hold (seen
    // from scanners) reads the words there are.
    let setup: Vec<u16> = (0..setup_count.min(MAX_SETUP_WORDS))
        .map_while(|index| block.u16(28 + 2 * index).ok())
        .collect();
    if setup.len() < setup_count.min(MAX_SETUP_WORDS) {
        anomalies.short_setup = true;
    }
    let (name, _) = strings.read(block.bytes_at, anomalies);
    Ok(Body::TransactionRequest {
        name,
        setup,
        data: data(message, data_offset, u32::from(data_count), anomalies)?,
    })
}

fn data<'a>(
    message: &'a [u8],
    offset: usize,
    len: u32,
    anomalies: &mut Anomalies,
) -> Result<&'a [u8], SmbError> {
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    if len == 0 {
        return Ok(&[]);
    }
    let (data, cut) = clipped(message, offset, len).ok_or(SmbError::FieldOutOfBounds("Data"))?;
    anomalies.data_truncated |= cut;
    Ok(data)
}

/// Reads NUL-terminated strings of a message, in its character set.
struct Strings<'a> {
    unicode: bool,
    message: &'a [u8],
}

impl Strings<'_> {
    /// The string at `at` (UTF-16 strings start on an even offset from the header), and the
    /// offset after its NUL. A missing string reads as empty.
    fn read(&self, at: usize, anomalies: &mut Anomalies) -> (String, usize) {
        if !self.unicode {
            return self.read_oem(at, anomalies);
        }
        let at = at.saturating_add(at % 2);
        let rest = self.message.get(at..).unwrap_or_default();
        let end = rest
            .chunks_exact(2)
            .position(|pair| pair == [0, 0])
            .map(|units| units * 2);
        let (raw, next) = if let Some(end) = end {
            (&rest[..end], at.saturating_add(end + 2))
        } else {
            if !rest.is_empty() {
                anomalies.unterminated_string = true;
            }
            (rest, self.message.len())
        };
        let (text, cut) = utf16(raw);
        anomalies.name_truncated |= cut;
        (text, next)
    }

    fn read_oem(&self, at: usize, anomalies: &mut Anomalies) -> (String, usize) {
        let rest = self.message.get(at..).unwrap_or_default();
        let (raw, next) = if let Some(end) = rest.iter().position(|&b| b == 0) {
            (&rest[..end], at.saturating_add(end + 1))
        } else {
            if !rest.is_empty() {
                anomalies.unterminated_string = true;
            }
            (rest, self.message.len())
        };
        let (text, cut) = oem(raw);
        anomalies.name_truncated |= cut;
        (text, next)
    }

    /// A string whose length in bytes is given (NT_CREATE_ANDX's NameLength), with a possible
    /// trailing NUL dropped.
    fn read_counted(&self, at: usize, len: usize, anomalies: &mut Anomalies) -> (String, usize) {
        let at = if self.unicode {
            at.saturating_add(at % 2)
        } else {
            at
        };
        let (raw, _) = clipped(self.message, at, len).unwrap_or((&[], true));
        let (text, cut) = if self.unicode { utf16(raw) } else { oem(raw) };
        anomalies.name_truncated |= cut;
        (
            text.trim_end_matches('\0').to_owned(),
            at.saturating_add(len),
        )
    }
}
