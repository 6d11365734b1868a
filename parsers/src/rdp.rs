//! RDP connection setup (MS-RDPBCGR 2.2.1.1 to 2.2.1.3), TCP port 3389: the X.224 Connection
//! Request with the `mstshash` cookie that names the user and the security protocols the client
//! offers, the server's Connection Confirm with the protocol it chose (or why it refused), and,
//! for sessions using standard RDP security, the client core data of the MCS Connect Initial
//! (the client's computer name and build), which is sent in clear there.
//!
//! Which function for which bytes: the stream is TPKT records (RFC 1006 6): [`frame`] gives a
//! record's length from its 4-byte header, [`is_pdu_start`] tests a stream position after a
//! gap, [`parse`] reads one whole record. Once the Connection Confirm selects TLS or CredSSP
//! (anything but [`Protocols::RDP`]) the connection turns to TLS and nothing more is RDP in
//! clear; with standard security only the Connect Initial after it is of interest.
//!
//! ```text
//! RFC 1006 6  TPKT: version(8) = 3, reserved(8) = 0, length(16, big-endian, header included)
//! X.224 (ITU-T X.224 13.3, 13.4) Connection Request / Confirm TPDU:
//!   LI(8: octets after itself) CR 0xE0 | CC 0xD0 (high nibble; low nibble CDT)
//!   DST-REF(16) SRC-REF(16) class/options(8), then the variable part:
//! MS-RDPBCGR 2.2.1.1: [routingToken | "Cookie: mstshash=IDENTIFIER\r\n"] [RDP_NEG_REQ]
//!   [RDP_NEG_CORRELATION_INFO]
//!   RDP_NEG_REQ (2.2.1.1.1): type(8) = 1, flags(8), length(16 LE) = 8, requestedProtocols(32 LE)
//! MS-RDPBCGR 2.2.1.2: RDP_NEG_RSP (2.2.1.2.1) type = 2 ... selectedProtocol(32 LE)
//!   | RDP_NEG_FAILURE (2.2.1.2.2) type = 3 ... failureCode(32 LE)
//! X.224 Data TPDU (13.7): LI = 2, DT 0xF0, EOT 0x80, then user data:
//! MS-RDPBCGR 2.2.1.3: MCS Connect-Initial (T.125, BER [APPLICATION 101]) whose userData
//!   OCTET STRING is a T.124 GCC Conference Create Request (PER) ending with the H.221 key
//!   "Duca", a PER length, then TS_UD_HEADER blocks: type(16 LE) length(16 LE) data;
//!   CS_CORE 0xC001 (2.2.1.3.2): version(32) desktopWidth(16) desktopHeight(16)
//!   colorDepth(16) SASSequence(16) keyboardLayout(32) clientBuild(32) clientName(32 octets,
//!   UTF-16LE, NUL-terminated) ...
//! ```

use crate::{
    ber::{self, Class},
    framing::{Framing, Start},
};

/// RFC 1006 6: the TPKT header.
pub const TPKT_HEADER_LEN: usize = 4;

/// RFC 1006 6: the only TPKT version.
pub const TPKT_VERSION: u8 = 3;

/// The shortest TPKT record RDP sends before the connection turns to TLS: header plus an
/// X.224 Data TPDU header (LI, DT, EOT).
pub const MIN_TPKT_LEN: usize = TPKT_HEADER_LEN + 3;

/// X.224 13.3.1: the fixed part of a CR or CC TPDU, LI included.
pub const X224_CONNECTION_HEADER_LEN: usize = 7;

/// RDP_NEG_REQ, RDP_NEG_RSP and RDP_NEG_FAILURE are all 8 octets (MS-RDPBCGR 2.2.1.1.1).
pub const NEGOTIATION_LEN: usize = 8;

/// Octets of userData searched for the H.221 key "Duca": the T.124 header before it is about
/// 20 octets (object identifier, PER lengths, conference name); 64 allows for longer PER forms
/// without scanning user data for a chance match.
pub const MAX_GCC_HEADER_SCAN: usize = 64;

/// TS_UD_HEADER blocks walked looking for CS_CORE. A client sends about ten (core, security,
/// network, cluster, monitor...), core first.
pub const MAX_USER_DATA_BLOCKS: usize = 16;

/// MS-RDPBCGR 2.2.1.3.2: clientName is 32 octets, 15 UTF-16 characters and a NUL.
pub const CLIENT_NAME_LEN: usize = 32;

/// CS_CORE up to and including clientName: the part this parser needs (the specification's
/// mandatory fields go on to imeFileName, 128 octets of data after the block header).
const CORE_DATA_MIN_LEN: usize = CLIENT_NAME_OFFSET + CLIENT_NAME_LEN;
/// version(4) desktopWidth(2) desktopHeight(2) colorDepth(2) SASSequence(2) keyboardLayout(4)
/// clientBuild(4).
const CLIENT_NAME_OFFSET: usize = 20;

const COOKIE_PREFIX: &[u8] = b"Cookie: mstshash=";
const CRLF: &[u8] = b"\r\n";
const TS_UD_HEADER_LEN: usize = 4;
const CS_CORE: u16 = 0xc001;
/// T.125 Connect-Initial: [APPLICATION 101], BER high-tag form 0x7f 0x65.
const CONNECT_INITIAL_TAG: u32 = 101;
/// Connect-Initial's userData is its seventh element (T.125 11.1).
const USER_DATA_INDEX: usize = 6;

/// Why a TPKT record could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RdpError {
    #[error("{len} bytes is shorter than a TPKT header and X.224 TPDU")]
    TooShort { len: usize },
    #[error("not a TPKT header (version {version}, reserved {reserved})")]
    NotTpkt { version: u8, reserved: u8 },
    #[error("TPKT length {declared} beyond the {len} bytes at hand or below 7")]
    BadTpktLength { declared: u16, len: usize },
    #[error("X.224 length indicator {0} beyond the TPKT record")]
    BadLengthIndicator(u8),
    #[error("an MCS Connect-Initial that does not follow T.125")]
    BadConnectInitial,
}

/// RDP_NEG_REQ requestedProtocols / RDP_NEG_RSP selectedProtocol (MS-RDPBCGR 2.2.1.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Protocols(pub u32);

impl Protocols {
    /// Standard RDP security (no flag set).
    pub const RDP: Self = Self(0);
    pub const SSL: Self = Self(0x01);
    /// CredSSP (NLA).
    pub const HYBRID: Self = Self(0x02);
    pub const RDSTLS: Self = Self(0x04);
    /// CredSSP with the early user authorization result PDU.
    pub const HYBRID_EX: Self = Self(0x08);
    /// RDS-AAD-Auth (Azure AD).
    pub const RDSAAD: Self = Self(0x10);

    const NAMES: [(Self, &'static str); 5] = [
        (Self::SSL, "SSL"),
        (Self::HYBRID, "HYBRID"),
        (Self::RDSTLS, "RDSTLS"),
        (Self::HYBRID_EX, "HYBRID_EX"),
        (Self::RDSAAD, "RDSAAD"),
    ];

    /// The names of the protocols set, `["RDP"]` for none; unknown bits as `0x...`.
    pub fn names(self) -> Vec<String> {
        if self == Self::RDP {
            return vec!["RDP".to_owned()];
        }
        let mut names: Vec<String> = Self::NAMES
            .iter()
            .filter(|(flag, _)| self.0 & flag.0 != 0)
            .map(|(_, name)| (*name).to_owned())
            .collect();
        let known = Self::NAMES.iter().fold(0, |bits, (flag, _)| bits | flag.0);
        if self.0 & !known != 0 {
            names.push(format!("{:#x}", self.0 & !known));
        }
        names
    }
}

/// RDP_NEG_FAILURE failureCode (MS-RDPBCGR 2.2.1.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FailureCode(pub u32);

impl FailureCode {
    pub const SSL_REQUIRED_BY_SERVER: Self = Self(1);
    pub const SSL_NOT_ALLOWED_BY_SERVER: Self = Self(2);
    pub const SSL_CERT_NOT_ON_SERVER: Self = Self(3);
    pub const INCONSISTENT_FLAGS: Self = Self(4);
    pub const HYBRID_REQUIRED_BY_SERVER: Self = Self(5);
    pub const SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER: Self = Self(6);

    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::SSL_REQUIRED_BY_SERVER => "SSL_REQUIRED_BY_SERVER",
            Self::SSL_NOT_ALLOWED_BY_SERVER => "SSL_NOT_ALLOWED_BY_SERVER",
            Self::SSL_CERT_NOT_ON_SERVER => "SSL_CERT_NOT_ON_SERVER",
            Self::INCONSISTENT_FLAGS => "INCONSISTENT_FLAGS",
            Self::HYBRID_REQUIRED_BY_SERVER => "HYBRID_REQUIRED_BY_SERVER",
            Self::SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER => "SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER",
            _ => return None,
        })
    }
}

/// Things that parse but should not be there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Anomalies {
    /// Octets after the TPDU inside the TPKT record, or after the negotiation structure.
    pub trailing_bytes: bool,
    /// A cookie or routing token without its CRLF: taken to the end of the TPDU.
    pub unterminated_token: bool,
    /// A negotiation structure of the wrong type or length for its TPDU.
    pub bad_negotiation: bool,
    /// CS_CORE shorter than its mandatory fields (the name was read if present).
    pub short_core_data: bool,
}

/// RDP_NEG_REQ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NegotiationRequest {
    /// RESTRICTED_ADMIN_MODE_REQUIRED 0x01, REDIRECTED_AUTHENTICATION_MODE_REQUIRED 0x02,
    /// CORRELATION_INFO_PRESENT 0x08.
    pub flags: u8,
    pub requested_protocols: Protocols,
}

/// The X.224 Connection Request (MS-RDPBCGR 2.2.1.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionRequest<'a> {
    /// The IDENTIFIER of `Cookie: mstshash=IDENTIFIER`: the user name typed in the client
    /// (mstsc cuts it to 9 characters), sometimes `DOMAIN\user`.
    pub cookie: Option<&'a [u8]>,
    /// Any other token before the CRLF (a load balancer's routing token), without the CRLF.
    pub routing_token: Option<&'a [u8]>,
    /// Absent for clients older than RDP 5.2 (standard security only).
    pub negotiation: Option<NegotiationRequest>,
    pub anomalies: Anomalies,
}

/// What the server answered in its Connection Confirm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Negotiation {
    /// RDP_NEG_RSP: the protocol the connection goes on with, and the server's flags.
    Selected { flags: u8, protocol: Protocols },
    /// RDP_NEG_FAILURE.
    Failure(FailureCode),
}

/// The X.224 Connection Confirm (MS-RDPBCGR 2.2.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionConfirm {
    /// Absent when the server is older than RDP 5.2 or the client sent no RDP_NEG_REQ:
    /// standard RDP security follows.
    pub negotiation: Option<Negotiation>,
    pub anomalies: Anomalies,
}

impl ConnectionConfirm {
    /// Whether the connection goes on in clear (standard RDP security), so that the Connect
    /// Initial can be read.
    pub fn stays_clear(&self) -> bool {
        matches!(
            self.negotiation,
            None | Some(Negotiation::Selected {
                protocol: Protocols::RDP,
                ..
            })
        )
    }
}

/// TS_UD_CS_CORE, the fields up to clientName (MS-RDPBCGR 2.2.1.3.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCoreData {
    /// RDP version: 0x00080001 RDP 4.0, 0x00080004 RDP 5.0 to 8.1, 0x0008000c RDP 10.7...
    pub version: u32,
    pub desktop_width: u16,
    pub desktop_height: u16,
    /// A Windows input locale identifier (0x409 US English).
    pub keyboard_layout: u32,
    pub client_build: u32,
    /// The client computer's name, up to its NUL.
    pub client_name: String,
}

/// An MCS Connect-Initial: the client's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectInitial {
    /// `None` when the GCC data holds no CS_CORE block this parser could find.
    pub core: Option<ClientCoreData>,
    pub anomalies: Anomalies,
}

/// One TPKT record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tpdu<'a> {
    ConnectionRequest(ConnectionRequest<'a>),
    ConnectionConfirm(ConnectionConfirm),
    ConnectInitial(ConnectInitial),
    /// Another X.224 Data TPDU (MCS traffic), undecoded.
    Data(&'a [u8]),
    /// Another TPDU (disconnect request, error...), by its code.
    Other(u8),
}

/// The length of the TPKT record at the front of `bytes` (RFC 1006 6), from its header.
pub fn frame(bytes: &[u8]) -> Framing {
    let Some(header) = bytes.get(..TPKT_HEADER_LEN) else {
        return match bytes {
            [] => Framing::NeedMore,
            [TPKT_VERSION] | [TPKT_VERSION, 0, ..] => Framing::NeedMore,
            _ => Framing::NotPdu,
        };
    };
    if header[0] != TPKT_VERSION || header[1] != 0 {
        return Framing::NotPdu;
    }
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    if length < MIN_TPKT_LEN {
        return Framing::NotPdu;
    }
    Framing::Pdu(length)
}

/// Whether a TPKT record carrying an X.224 CR, CC or DT TPDU starts at the front of `bytes`:
/// the version and reserved octets, a length that can hold the TPDU, and a length indicator
/// and TPDU code that agree with it (LI = length - 5 for CR/CC; LI = 2 and EOT for DT).
pub fn is_pdu_start(bytes: &[u8]) -> Start {
    let Some(head) = bytes.get(..MIN_TPKT_LEN) else {
        return match frame(bytes) {
            Framing::NotPdu => Start::No,
            _ => Start::NeedMore,
        };
    };
    let Framing::Pdu(length) = frame(head) else {
        return Start::No;
    };
    let li = usize::from(head[4]);
    let plausible = match head[5] & 0xf0 {
        0xe0 | 0xd0 => li + 5 == length && length >= TPKT_HEADER_LEN + X224_CONNECTION_HEADER_LEN,
        0xf0 => head[5] == 0xf0 && li == 2 && head[6] == 0x80,
        _ => false,
    };
    if plausible { Start::Yes } else { Start::No }
}

/// Parses one whole TPKT record (the bytes [`frame`] delimits; octets beyond its length are
/// ignored). See the module documentation for the grammar.
pub fn parse(bytes: &[u8]) -> Result<Tpdu<'_>, RdpError> {
    let header = bytes
        .get(..MIN_TPKT_LEN)
        .ok_or(RdpError::TooShort { len: bytes.len() })?;
    if header[0] != TPKT_VERSION || header[1] != 0 {
        return Err(RdpError::NotTpkt {
            version: header[0],
            reserved: header[1],
        });
    }
    let declared = u16::from_be_bytes([header[2], header[3]]);
    let record = bytes
        .get(..usize::from(declared))
        .filter(|record| record.len() >= MIN_TPKT_LEN)
        .ok_or(RdpError::BadTpktLength {
            declared,
            len: bytes.len(),
        })?;
    let tpdu = &record[TPKT_HEADER_LEN..];
    let li = tpdu[0];
    // Every TPDU has at least its code and one more octet after LI (X.224 13.2.1).
    let (tpdu, after) = tpdu
        .split_at_checked(usize::from(li) + 1)
        .filter(|_| li >= 2)
        .ok_or(RdpError::BadLengthIndicator(li))?;
    match tpdu[1] & 0xf0 {
        0xe0 => connection_request(tpdu).map(Tpdu::ConnectionRequest),
        0xd0 => connection_confirm(tpdu).map(Tpdu::ConnectionConfirm),
        0xf0 if after.first() == Some(&0x7f) => connect_initial(after).map(Tpdu::ConnectInitial),
        0xf0 => Ok(Tpdu::Data(after)),
        code => Ok(Tpdu::Other(code)),
    }
}

/// The variable part of a CR or CC TPDU (LI included in `tpdu`).
fn variable_part(tpdu: &[u8]) -> Result<&[u8], RdpError> {
    tpdu.get(X224_CONNECTION_HEADER_LEN..)
        .ok_or(RdpError::BadLengthIndicator(tpdu[0]))
}

fn connection_request(tpdu: &[u8]) -> Result<ConnectionRequest<'_>, RdpError> {
    let mut rest = variable_part(tpdu)?;
    let mut request = ConnectionRequest {
        cookie: None,
        routing_token: None,
        negotiation: None,
        anomalies: Anomalies::default(),
    };
    if !rest.is_empty() && !is_negotiation(rest, 1) {
        let (token, after) =
            if let Some(end) = rest.windows(CRLF.len()).position(|pair| pair == CRLF) {
                (&rest[..end], &rest[end + CRLF.len()..])
            } else {
                request.anomalies.unterminated_token = true;
                (rest, &rest[rest.len()..])
            };
        match token.strip_prefix(COOKIE_PREFIX) {
            Some(cookie) => request.cookie = Some(cookie),
            None => request.routing_token = Some(token),
        }
        rest = after;
    }
    if let Some((flags, value, after)) = negotiation(rest) {
        if rest[0] == 1 {
            request.negotiation = Some(NegotiationRequest {
                flags,
                requested_protocols: Protocols(value),
            });
        } else {
            request.anomalies.bad_negotiation = true;
        }
        // RDP_NEG_CORRELATION_INFO (type 6, 36 octets) may follow; nothing else may.
        request.anomalies.trailing_bytes = !(after.is_empty() || after.first() == Some(&6));
    } else if !rest.is_empty() {
        request.anomalies.bad_negotiation = true;
    }
    Ok(request)
}

fn connection_confirm(tpdu: &[u8]) -> Result<ConnectionConfirm, RdpError> {
    let rest = variable_part(tpdu)?;
    let mut confirm = ConnectionConfirm {
        negotiation: None,
        anomalies: Anomalies::default(),
    };
    if let Some((flags, value, after)) = negotiation(rest) {
        confirm.negotiation = match rest[0] {
            2 => Some(Negotiation::Selected {
                flags,
                protocol: Protocols(value),
            }),
            3 => Some(Negotiation::Failure(FailureCode(value))),
            _ => {
                confirm.anomalies.bad_negotiation = true;
                None
            }
        };
        confirm.anomalies.trailing_bytes = !after.is_empty();
    } else if !rest.is_empty() {
        confirm.anomalies.bad_negotiation = true;
    }
    Ok(confirm)
}

/// Whether `bytes` start with an 8-octet negotiation structure of this type.
fn is_negotiation(bytes: &[u8], kind: u8) -> bool {
    matches!(bytes, [k, _, 8, 0, ..] if *k == kind) && bytes.len() >= NEGOTIATION_LEN
}

/// `(flags, 32-bit value, rest)` of the negotiation structure at the front of `bytes`.
fn negotiation(bytes: &[u8]) -> Option<(u8, u32, &[u8])> {
    let (structure, rest) = bytes.split_first_chunk::<NEGOTIATION_LEN>()?;
    let [_, flags, len_lo, len_hi, v0, v1, v2, v3] = *structure;
    if u16::from_le_bytes([len_lo, len_hi]) != 8 {
        return None;
    }
    Some((flags, u32::from_le_bytes([v0, v1, v2, v3]), rest))
}

/// T.125 Connect-Initial ::= [APPLICATION 101] SEQUENCE { callingDomainSelector,
/// calledDomainSelector OCTET STRING, upwardFlag BOOLEAN, targetParameters,
/// minimumParameters, maximumParameters DomainParameters, userData OCTET STRING }.
fn connect_initial(bytes: &[u8]) -> Result<ConnectInitial, RdpError> {
    let bad = |_| RdpError::BadConnectInitial;
    let (outer, _) =
        ber::read_expected(bytes, Class::Application, true, CONNECT_INITIAL_TAG).map_err(bad)?;
    let mut rest = outer.value;
    let mut user_data = None;
    for index in 0..=USER_DATA_INDEX {
        let (element, after) = ber::read_tlv(rest).map_err(bad)?;
        rest = after;
        if index == USER_DATA_INDEX {
            element
                .expect(Class::Universal, false, ber::universal::OCTET_STRING)
                .map_err(bad)?;
            user_data = Some(element.value);
        }
    }
    let mut anomalies = Anomalies::default();
    let core = user_data.and_then(|data| client_core_data(data, &mut anomalies));
    Ok(ConnectInitial { core, anomalies })
}

/// Finds CS_CORE among the GCC user data blocks after the H.221 key "Duca".
fn client_core_data(user_data: &[u8], anomalies: &mut Anomalies) -> Option<ClientCoreData> {
    const KEY: &[u8] = b"Duca";
    let scan = user_data.get(..MAX_GCC_HEADER_SCAN).unwrap_or(user_data);
    let key_at = scan.windows(KEY.len()).position(|window| window == KEY)?;
    let after_key = user_data.get(key_at + KEY.len()..)?;
    // PER length (X.691 10.9): one octet, or two with the top bits 10.
    let &first = after_key.first()?;
    let mut blocks = after_key.get(if first & 0x80 != 0 { 2 } else { 1 }..)?;
    for _ in 0..MAX_USER_DATA_BLOCKS {
        let (&[t0, t1, l0, l1], _) = blocks.split_first_chunk::<TS_UD_HEADER_LEN>()?;
        let length = usize::from(u16::from_le_bytes([l0, l1]));
        if length < TS_UD_HEADER_LEN {
            return None;
        }
        let block = blocks.get(..length).unwrap_or(blocks);
        if u16::from_le_bytes([t0, t1]) == CS_CORE {
            return core_data(&block[TS_UD_HEADER_LEN..], anomalies);
        }
        blocks = blocks.get(length..)?;
    }
    None
}

fn core_data(data: &[u8], anomalies: &mut Anomalies) -> Option<ClientCoreData> {
    const MANDATORY_LEN: usize = 128;
    if data.len() < MANDATORY_LEN {
        anomalies.short_core_data = true;
    }
    let fixed = data.get(..CORE_DATA_MIN_LEN)?;
    let u16_at = |i: usize| u16::from_le_bytes([fixed[i], fixed[i + 1]]);
    let u32_at =
        |i: usize| u32::from_le_bytes([fixed[i], fixed[i + 1], fixed[i + 2], fixed[i + 3]]);
    let units = fixed[CLIENT_NAME_OFFSET..]
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
        .take_while(|&unit| unit != 0);
    let client_name = char::decode_utf16(units)
        .map(|unit| unit.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    Some(ClientCoreData {
        version: u32_at(0),
        desktop_width: u16_at(4),
        desktop_height: u16_at(6),
        keyboard_layout: u32_at(12),
        client_build: u32_at(16),
        client_name,
    })
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "in tests a panic is a failed test")]
mod tests {
    use super::*;
    use dcwatch_tests::fixture::hex;

    // zeek/testing/btest/Traces/rdp/rdp-to-ssl.pcap: frames 4 and 6 (tshark -r F -T fields
    // -e tcp.payload): CR with "Cookie: mstshash=AWAKECODI" requesting SSL|HYBRID, and the CC
    // selecting HYBRID (CredSSP).
    const CR_COOKIE: &str = "0300002f2ae00000000000436f6f6b69653a206d737473686173683d4157414b\
                             45434f44490d0a0100080003000000";
    const CC_HYBRID: &str = "030000130ed000001234000201080002000000";
    // zeek/testing/btest/Traces/rdp/rdp-proprietary-encryption.pcap: frame 5, CC with
    // RDP_NEG_FAILURE SSL_NOT_ALLOWED_BY_SERVER; frame 14, the MCS Connect-Initial whose client
    // core data names the client FROG-POND, build 6000.
    const CC_FAILURE: &str = "030000130ed000001234000300080002000000";
    const CONNECT_INITIAL: &str = "\
        030001ac02f0807f658201a00401010401010101ff30190201220201020201000201010201000201010202ff\
        ff020102301902010102010102010102010102010002010102020420020102301c0202ffff0202fc170202ff\
        ff0201010201000201010202ffff0201020482013f000500147c00018136000800100001c000447563618128\
        01c0d800040008008004600301ca03aa0904000070170000460052004f0047002d0050004f004e0044000000\
        00000000000000000000000004000000000000000c0000000000000000000000000000000000000000000000\
        0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
        01ca01000000000018000f000b00000000000000000000000000000000000000000000000000000000000000\
        0000000000000000000000000000000000000000000000000000000000000000000000000000000004c00c00\
        0d0000000000000002c00c001b0000000000000003c038000400000072647064720000000000808072647073\
        6e640000000000c0647264796e766300000080c0636c6970726472000000a0c0";
    // nDPI/tests/cfgs/default/pcap/rdp.pcap: frame 4, CR without cookie, requesting
    // SSL|HYBRID|HYBRID_EX.
    const CR_NO_COOKIE: &str = "030000130ee00000000000010008000b000000";
    // suricata-verify/tests/rdp-protocol/RDP-003.pcap: frames 4 and 6, an old client's CR with
    // a cookie and no RDP_NEG_REQ, and the CC without RDP_NEG_RSP.
    const CR_OLD: &str = "030000241fe00000000000436f6f6b69653a206d737473686173683d41373030\
                          36370d0a";
    const CC_OLD: &str = "0300000b06d00000123400";

    #[test]
    fn connection_request_with_cookie() {
        let bytes = hex(CR_COOKIE);
        assert_eq!(frame(&bytes), Framing::Pdu(bytes.len()));
        assert_eq!(is_pdu_start(&bytes), Start::Yes);
        let Tpdu::ConnectionRequest(request) = parse(&bytes).unwrap() else {
            panic!("not a CR");
        };
        assert_eq!(request.cookie, Some(&b"AWAKECODI"[..]));
        assert_eq!(request.routing_token, None);
        let negotiation = request.negotiation.unwrap();
        assert_eq!(negotiation.requested_protocols, Protocols(3));
        assert_eq!(negotiation.requested_protocols.names(), ["SSL", "HYBRID"]);
        assert_eq!(request.anomalies, Anomalies::default());
    }

    #[test]
    fn connection_request_without_cookie() {
        let bytes = hex(CR_NO_COOKIE);
        let Tpdu::ConnectionRequest(request) = parse(&bytes).unwrap() else {
            panic!("not a CR");
        };
        assert_eq!(request.cookie, None);
        assert_eq!(
            request.negotiation.unwrap().requested_protocols.names(),
            ["SSL", "HYBRID", "HYBRID_EX"]
        );
    }

    #[test]
    fn old_client_and_server() {
        let bytes = hex(CR_OLD);
        let Tpdu::ConnectionRequest(request) = parse(&bytes).unwrap() else {
            panic!("not a CR");
        };
        assert_eq!(request.cookie, Some(&b"A70067"[..]));
        assert_eq!(request.negotiation, None);
        let bytes = hex(CC_OLD);
        let Tpdu::ConnectionConfirm(confirm) = parse(&bytes).unwrap() else {
            panic!("not a CC");
        };
        assert_eq!(confirm.negotiation, None);
        assert!(confirm.stays_clear());
    }

    #[test]
    fn connection_confirms() {
        let bytes = hex(CC_HYBRID);
        assert_eq!(is_pdu_start(&bytes), Start::Yes);
        let Tpdu::ConnectionConfirm(confirm) = parse(&bytes).unwrap() else {
            panic!("not a CC");
        };
        assert_eq!(
            confirm.negotiation,
            Some(Negotiation::Selected {
                flags: 1,
                protocol: Protocols::HYBRID
            })
        );
        assert!(!confirm.stays_clear());
        let bytes = hex(CC_FAILURE);
        let Tpdu::ConnectionConfirm(confirm) = parse(&bytes).unwrap() else {
            panic!("not a CC");
        };
        assert_eq!(
            confirm.negotiation,
            Some(Negotiation::Failure(FailureCode::SSL_NOT_ALLOWED_BY_SERVER))
        );
    }

    #[test]
    fn connect_initial_names_the_client() {
        let bytes = hex(CONNECT_INITIAL);
        assert_eq!(frame(&bytes), Framing::Pdu(0x1ac));
        assert_eq!(is_pdu_start(&bytes), Start::Yes);
        let Tpdu::ConnectInitial(initial) = parse(&bytes).unwrap() else {
            panic!("not a Connect-Initial");
        };
        let core = initial.core.unwrap();
        assert_eq!(core.client_name, "FROG-POND");
        assert_eq!(core.client_build, 6000);
        assert_eq!(core.version, 0x0008_0004);
        assert_eq!((core.desktop_width, core.desktop_height), (1152, 864));
        assert_eq!(core.keyboard_layout, 0x409);
        assert_eq!(initial.anomalies, Anomalies::default());
    }

    #[test]
    fn every_prefix_is_handled() {
        for fixture in [
            CR_COOKIE,
            CC_HYBRID,
            CC_FAILURE,
            CONNECT_INITIAL,
            CR_OLD,
            CC_OLD,
        ] {
            let bytes = hex(fixture);
            for len in 0..bytes.len() {
                let prefix = &bytes[..len];
                assert!(parse(prefix).is_err(), "prefix {len} of {fixture}");
                assert_ne!(frame(prefix), Framing::NotPdu);
                assert_ne!(is_pdu_start(prefix), Start::No);
            }
        }
        // A Connect-Initial cut inside its BER is an error even when the TPKT says otherwise.
        let mut bytes = hex(CONNECT_INITIAL);
        bytes.truncate(200);
        bytes[2..4].copy_from_slice(&200u16.to_be_bytes());
        assert_eq!(parse(&bytes), Err(RdpError::BadConnectInitial));
    }

    // zeek/testing/btest/Traces/rdp/rdp-invalid-length.pcap: frame 5, a CC whose negotiation
    // structure declares length 0 (zeek's crafted invalid length).
    #[test]
    fn invalid_negotiation_length_is_an_anomaly() {
        let bytes = hex("030000130ed000001234000203000001000002001232000200080000000000");
        let Tpdu::ConnectionConfirm(confirm) = parse(&bytes).unwrap() else {
            panic!("not a CC");
        };
        assert_eq!(confirm.negotiation, None);
        assert!(confirm.anomalies.bad_negotiation);
    }

    #[test]
    fn start_test_rejects_other_bytes() {
        // TLS ClientHello, a TPKT whose LI disagrees with its length, and a fast-path PDU.
        assert_eq!(is_pdu_start(&hex("16030100a1010000")), Start::No);
        assert_eq!(is_pdu_start(&hex("030000130de000000000000100")), Start::No);
        assert_eq!(is_pdu_start(&hex("0400130e00000000")), Start::No);
        assert_eq!(is_pdu_start(&hex("030000050000000000")), Start::No);
        assert_eq!(is_pdu_start(&hex("0300")), Start::NeedMore);
    }

    #[test]
    fn routing_token_and_bad_length_indicator() {
        // "Cookie: msts=..." routing token (MS-RDPBCGR 2.2.1.1) without a CRLF.
        let mut bytes = hex("030000000ee00000000000");
        bytes.extend_from_slice(b"Cookie: msts=123");
        let len = u16::try_from(bytes.len()).unwrap();
        bytes[2..4].copy_from_slice(&len.to_be_bytes());
        bytes[4] = u8::try_from(bytes.len() - 5).unwrap();
        let Tpdu::ConnectionRequest(request) = parse(&bytes).unwrap() else {
            panic!("not a CR");
        };
        assert_eq!(request.routing_token, Some(&b"Cookie: msts=123"[..]));
        assert!(request.anomalies.unterminated_token);
        bytes[4] = 0xff;
        assert_eq!(parse(&bytes), Err(RdpError::BadLengthIndicator(0xff)));
        // LI 0 and 1 leave no room for the TPDU code.
        for li in [0, 1] {
            let bytes = [3, 0, 0, 7, li, 0xf0, 0x80];
            assert_eq!(parse(&bytes), Err(RdpError::BadLengthIndicator(li)));
        }
    }
}
