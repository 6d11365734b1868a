//! NTLM authentication messages, [MS-NLMP] section 2.2.
//!
//! One module for every carrier: SMB session setup and DCE-RPC auth_value carry the raw message
//! (SMB usually inside SPNEGO), HTTP base64-encodes it in `Authorization`/`WWW-Authenticate`,
//! LDAP in a SASL or Sicily bind. The caller cuts the bytes from the `"NTLMSSP\0"` signature on;
//! bytes after the message (the rest of a SPNEGO token, SMB1 native strings) are ignored, since
//! the message's own fields say where its payload lies.
//!
//! ```text
//! message   = Signature ("NTLMSSP\0") MessageType (u32le: 1, 2, 3) fixed-fields Payload
//! field     = Len (u16le) MaxLen (u16le) BufferOffset (u32le, from the signature)
//! VERSION   = ProductMajorVersion (u8) ProductMinorVersion (u8) ProductBuild (u16le)
//!             Reserved (3) NTLMRevisionCurrent (u8)                       [MS-NLMP] 2.2.2.10
//! ```
//!
//! What a sensor needs is who authenticated to what, and how weakly: the names, the NTLM
//! version, the MIC, the target info the client echoes. What it must not keep are the
//! challenge responses themselves, which are offline-crackable (NetNTLMv1/v2 "hashes"): the
//! records carry their lengths and the decoded NTLMv2 client blob, never the response bytes.

use std::ops::Range;

/// `"NTLMSSP\0"`, the first 8 bytes of every message ([MS-NLMP] 2.2.1).
pub const SIGNATURE: [u8; 8] = *b"NTLMSSP\0";

/// Furthest byte (from the signature) that a payload field may reach. A message is carried in
/// an SMB2 security buffer or an HTTP header at most, and both cap a token near 64 KiB; a field
/// claiming more is hostile whatever the carrier passed in.
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;

/// Bytes of one name (user, domain, workstation, target name, AV pair name) that are decoded.
/// Real user, domain and DNS names fit in 255 characters (510 bytes of UTF-16); 1024 bytes
/// leaves room for long UPNs and SPNs. Longer names are cut here and flagged, so a hostile
/// length costs no more than this.
pub const MAX_NAME_LEN: usize = 1024;

/// AV pairs decoded from one list. [MS-NLMP] 2.2.2.1 defines 11 ids and Windows sends at most
/// about 10 pairs; 32 leaves room for repeated or future ids while bounding the loop.
pub const MAX_AV_PAIRS: usize = 32;

/// Length of an NTLMv1 (or NTLM2 session security) NtChallengeResponse, [MS-NLMP] 2.2.2.6.
pub const NTLMV1_RESPONSE_LEN: usize = 24;

/// Smallest NTLMv2_RESPONSE: NTProofStr (16) + the fixed part of NTLMv2_CLIENT_CHALLENGE (28),
/// [MS-NLMP] 2.2.2.7-2.2.2.8. Anything from 25 to 43 bytes is neither v1 nor v2.
pub const MIN_NTLMV2_RESPONSE_LEN: usize = 16 + 28;

/// Why a message could not be read at all. Anything that still yields a record is an anomaly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NtlmError {
    #[error("NTLM message shorter than its fixed part ({needed} bytes)")]
    Truncated { needed: usize },
    #[error("no NTLMSSP signature")]
    BadSignature,
    #[error("unknown NTLM message type {0}")]
    UnknownMessageType(u32),
    #[error("NTLM payload field {0} lies outside the message")]
    FieldOutOfBounds(&'static str),
}

/// NegotiateFlags, [MS-NLMP] 2.2.2.5. Open: unknown bits are kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NegotiateFlags(pub u32);

impl NegotiateFlags {
    pub const UNICODE: Self = Self(0x0000_0001);
    pub const OEM: Self = Self(0x0000_0002);
    pub const REQUEST_TARGET: Self = Self(0x0000_0004);
    pub const SIGN: Self = Self(0x0000_0010);
    pub const SEAL: Self = Self(0x0000_0020);
    pub const DATAGRAM: Self = Self(0x0000_0040);
    pub const LM_KEY: Self = Self(0x0000_0080);
    pub const NTLM: Self = Self(0x0000_0200);
    pub const ANONYMOUS: Self = Self(0x0000_0800);
    pub const OEM_DOMAIN_SUPPLIED: Self = Self(0x0000_1000);
    pub const OEM_WORKSTATION_SUPPLIED: Self = Self(0x0000_2000);
    pub const ALWAYS_SIGN: Self = Self(0x0000_8000);
    pub const TARGET_TYPE_DOMAIN: Self = Self(0x0001_0000);
    pub const TARGET_TYPE_SERVER: Self = Self(0x0002_0000);
    pub const EXTENDED_SESSIONSECURITY: Self = Self(0x0008_0000);
    pub const IDENTIFY: Self = Self(0x0010_0000);
    pub const REQUEST_NON_NT_SESSION_KEY: Self = Self(0x0040_0000);
    pub const TARGET_INFO: Self = Self(0x0080_0000);
    pub const VERSION: Self = Self(0x0200_0000);
    pub const NEGOTIATE_128: Self = Self(0x2000_0000);
    pub const KEY_EXCH: Self = Self(0x4000_0000);
    pub const NEGOTIATE_56: Self = Self(0x8000_0000);

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

/// AvId of an AV_PAIR, [MS-NLMP] 2.2.2.1. Open: unknown ids are counted, not rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AvId(pub u16);

impl AvId {
    pub const EOL: Self = Self(0);
    pub const NB_COMPUTER_NAME: Self = Self(1);
    pub const NB_DOMAIN_NAME: Self = Self(2);
    pub const DNS_COMPUTER_NAME: Self = Self(3);
    pub const DNS_DOMAIN_NAME: Self = Self(4);
    pub const DNS_TREE_NAME: Self = Self(5);
    pub const FLAGS: Self = Self(6);
    pub const TIMESTAMP: Self = Self(7);
    pub const SINGLE_HOST: Self = Self(8);
    pub const TARGET_NAME: Self = Self(9);
    pub const CHANNEL_BINDINGS: Self = Self(10);

    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "MsvAvEOL",
            1 => "MsvAvNbComputerName",
            2 => "MsvAvNbDomainName",
            3 => "MsvAvDnsComputerName",
            4 => "MsvAvDnsDomainName",
            5 => "MsvAvDnsTreeName",
            6 => "MsvAvFlags",
            7 => "MsvAvTimestamp",
            8 => "MsvAvSingleHost",
            9 => "MsvAvTargetName",
            10 => "MsvChannelBindings",
            _ => return None,
        })
    }
}

/// Value of MsvAvFlags, [MS-NLMP] 2.2.2.1. Open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AvFlags(pub u32);

impl AvFlags {
    /// The client's account authentication is constrained.
    pub const CONSTRAINED: Self = Self(0x1);
    /// The AUTHENTICATE_MESSAGE carries a MIC.
    pub const MIC_PRESENT: Self = Self(0x2);
    /// The target SPN came from an untrusted source.
    pub const UNTRUSTED_SPN_SOURCE: Self = Self(0x4);

    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

/// VERSION, [MS-NLMP] 2.2.2.10: the sender's Windows version (e.g. 10.0 build 17763).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Version {
    pub major: u8,
    pub minor: u8,
    pub build: u16,
    /// NTLMRevisionCurrent, 0x0F for current implementations.
    pub ntlm_revision: u8,
}

/// Things that break [MS-NLMP] without making the message unreadable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Anomalies {
    /// A non-empty payload field starts inside the fixed part of the message.
    pub payload_in_header: bool,
    /// Two non-empty payload fields share bytes.
    pub overlapping_fields: bool,
    /// A field's MaxLen is smaller than its Len.
    pub max_len_below_len: bool,
    /// A name was longer than [`MAX_NAME_LEN`] and was cut.
    pub name_truncated: bool,
    /// A UTF-16 string had an odd number of bytes (the last byte is dropped).
    pub odd_unicode_length: bool,
    /// NEGOTIATE or CHALLENGE in an old short form, without the later fixed fields.
    pub short_header: bool,
    /// The CHALLENGE's TargetInfo field runs past the end of the message: what is there was
    /// decoded (real stacks, and Zeek's test traces, produce this).
    pub target_info_out_of_bounds: bool,
    /// An NtChallengeResponse longer than v1 that is not a well-formed NTLMv2_RESPONSE
    /// (too short, or RespType not 1).
    pub bad_ntlmv2_response: bool,
}

/// AV pair list anomalies, [MS-NLMP] 2.2.2.1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AvAnomalies {
    /// No bytes at all (so no MsvAvEOL either).
    pub empty: bool,
    /// The list ends without MsvAvEOL (true also when `empty`).
    pub unterminated: bool,
    /// A pair's AvLen runs past the list.
    pub pair_out_of_bounds: bool,
    /// More than [`MAX_AV_PAIRS`] pairs: the rest was not read.
    pub too_many_pairs: bool,
    /// An id seen twice (the first value is kept).
    pub duplicate_id: bool,
    /// A fixed-size value (flags, timestamp, channel bindings) with the wrong length, or a
    /// name with an odd number of bytes.
    pub bad_value_length: bool,
    /// A name was longer than [`MAX_NAME_LEN`] and was cut.
    pub name_truncated: bool,
}

/// A decoded AV pair list (TargetInfo in CHALLENGE, [MS-NLMP] 2.2.1.2; the client's copy in
/// NTLMv2_CLIENT_CHALLENGE.AvPairs, 2.2.2.7). Names are UTF-16LE on the wire whatever the
/// negotiated charset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetInfo<'a> {
    pub nb_computer_name: Option<String>,
    pub nb_domain_name: Option<String>,
    pub dns_computer_name: Option<String>,
    pub dns_domain_name: Option<String>,
    pub dns_tree_name: Option<String>,
    pub flags: Option<AvFlags>,
    /// FILETIME (100 ns since 1601-01-01 UTC).
    pub timestamp: Option<u64>,
    /// Single_Host_Data (2.2.2.2), raw.
    pub single_host: Option<&'a [u8]>,
    /// The SPN the client meant to authenticate to (MsvAvTargetName).
    pub target_name: Option<String>,
    /// MD5 of gss_channel_bindings_struct (16 bytes); all zero when the client has none.
    pub channel_bindings: Option<&'a [u8]>,
    /// Pairs read, MsvAvEOL excluded.
    pub pair_count: usize,
    /// Pairs with an id this module does not know.
    pub unknown_pairs: usize,
    pub anomalies: AvAnomalies,
}

/// NEGOTIATE_MESSAGE, [MS-NLMP] 2.2.1.1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiate {
    pub flags: NegotiateFlags,
    /// DomainName (OEM charset), when the field is non-empty.
    pub domain: Option<String>,
    /// Workstation (OEM charset), when the field is non-empty.
    pub workstation: Option<String>,
    pub version: Option<Version>,
    pub anomalies: Anomalies,
}

/// CHALLENGE_MESSAGE, [MS-NLMP] 2.2.1.2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge<'a> {
    pub flags: NegotiateFlags,
    /// TargetName: the server's domain or name, UTF-16LE if UNICODE is set, else OEM.
    pub target_name: String,
    pub server_challenge: [u8; 8],
    /// None when the message has no TargetInfo field, or an empty one without TARGET_INFO.
    pub target_info: Option<TargetInfo<'a>>,
    pub version: Option<Version>,
    pub anomalies: Anomalies,
}

/// Which NTLM the AUTHENTICATE_MESSAGE shows, from its response lengths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NtlmVersion {
    /// Empty user name, empty NtChallengeResponse and an LmChallengeResponse that is empty or
    /// Z(1), the one zero byte a client sends for anonymous ([MS-NLMP] 3.1.5.1.2, 3.3.1-3.3.2;
    /// the server's test in 3.2.5.1.2).
    Anonymous,
    /// A 24-byte NtChallengeResponse: NTLMv1, or NTLMv1 with NTLM2 session security when
    /// EXTENDED_SESSIONSECURITY is set. Crackable; worth a detection on its own.
    V1,
    /// An NtChallengeResponse of at least [`MIN_NTLMV2_RESPONSE_LEN`] bytes: NTLMv2.
    V2,
    /// No NT response but an LM one: LM authentication only (pre-NT clients or tools).
    LmOnly,
    /// Any other combination.
    Unknown,
}

/// The readable part of an NTLMv2_RESPONSE: NTLMv2_CLIENT_CHALLENGE, [MS-NLMP] 2.2.2.7. The
/// NTProofStr and ChallengeFromClient are left out on purpose (with the server challenge they
/// make a crackable NetNTLMv2 hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NtlmV2ClientChallenge<'a> {
    /// HiRespType (1); RespType was checked to be 1.
    pub hi_resp_type: u8,
    /// FILETIME the client put in its blob.
    pub timestamp: u64,
    /// The server's AV pairs as the client echoes them, plus its own (MsvAvFlags, target name,
    /// channel bindings).
    pub target_info: TargetInfo<'a>,
}

/// What the MIC field (16 bytes after Version, [MS-NLMP] 2.2.1.3) holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MicField {
    /// The payload starts before byte 88: there is no room for a MIC.
    Absent,
    Zero,
    NonZero,
}

/// AUTHENTICATE_MESSAGE, [MS-NLMP] 2.2.1.3.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticate<'a> {
    pub flags: NegotiateFlags,
    /// UserName, UTF-16LE if UNICODE is set, else OEM (decoded as Latin-1); lossy.
    pub user: String,
    pub domain: String,
    pub workstation: String,
    pub lm_response_len: u16,
    pub nt_response_len: u16,
    pub ntlm_version: NtlmVersion,
    /// Decoded when `ntlm_version` is V2 and the blob is well formed.
    pub ntlmv2: Option<NtlmV2ClientChallenge<'a>>,
    /// MsvAvFlags in the NTLMv2 blob has MIC_PRESENT: the client says it computed a MIC.
    pub mic_present: bool,
    /// The MIC field itself. `mic_present` with `Absent` or `Zero` is the "drop the MIC" shape.
    pub mic_field: MicField,
    pub encrypted_session_key_len: u16,
    pub version: Option<Version>,
    pub anomalies: Anomalies,
}

/// One NTLMSSP message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NtlmMessage<'a> {
    Negotiate(Negotiate),
    Challenge(Challenge<'a>),
    Authenticate(Authenticate<'a>),
}

/// MessageType values, [MS-NLMP] 2.2.1.
const NEGOTIATE: u32 = 1;
const CHALLENGE: u32 = 2;
const AUTHENTICATE: u32 = 3;

/// Fixed part of each message up to (not including) Version: [MS-NLMP] 2.2.1.1-2.2.1.3.
const NEGOTIATE_FIXED: usize = 32;
const NEGOTIATE_SHORT: usize = 16;
const CHALLENGE_FIXED: usize = 48;
const CHALLENGE_SHORT: usize = 32;
const AUTHENTICATE_FIXED: usize = 64;
const VERSION_LEN: usize = 8;
const MIC_LEN: usize = 16;

/// Parses one NTLMSSP message ([MS-NLMP] 2.2.1) starting at `bytes[0]`.
///
/// ```text
/// NEGOTIATE_MESSAGE    = Signature MessageType(1) NegotiateFlags DomainNameFields
///                        WorkstationFields [Version] Payload                   (2.2.1.1)
/// CHALLENGE_MESSAGE    = Signature MessageType(2) TargetNameFields NegotiateFlags
///                        ServerChallenge(8) Reserved(8) TargetInfoFields [Version]
///                        Payload                                               (2.2.1.2)
/// AUTHENTICATE_MESSAGE = Signature MessageType(3) LmChallengeResponseFields
///                        NtChallengeResponseFields DomainNameFields UserNameFields
///                        WorkstationFields EncryptedRandomSessionKeyFields NegotiateFlags
///                        [Version] [MIC(16)] Payload                           (2.2.1.3)
/// ```
///
/// Version (and MIC) are read only when the payload leaves room for them: old stacks put the
/// payload right after the fixed fields. Trailing bytes after the payload are ignored.
pub fn parse(bytes: &[u8]) -> Result<NtlmMessage<'_>, NtlmError> {
    let header = bytes.get(..12).ok_or(NtlmError::Truncated { needed: 12 })?;
    if header.get(..8) != Some(&SIGNATURE[..]) {
        return Err(NtlmError::BadSignature);
    }
    match u32_at(bytes, 8)? {
        NEGOTIATE => parse_negotiate(bytes).map(NtlmMessage::Negotiate),
        CHALLENGE => parse_challenge(bytes).map(NtlmMessage::Challenge),
        AUTHENTICATE => parse_authenticate(bytes).map(NtlmMessage::Authenticate),
        other => Err(NtlmError::UnknownMessageType(other)),
    }
}

/// A NEGOTIATE_MESSAGE ([MS-NLMP] 2.2.1.1) with `flags` and neither a domain nor a workstation
/// supplied: what a client sends first, and all a prober needs to get a server's CHALLENGE
/// (whose TargetInfo names the server). No Version: `flags` should not ask for one.
///
/// ```text
/// "NTLMSSP\0" (8) MessageType = 1 (u32le) NegotiateFlags (u32le)
/// DomainNameFields, WorkstationFields: Len = 0, MaxLen = 0, BufferOffset = 32 (the payload's end)
/// ```
pub fn negotiate_message(flags: NegotiateFlags) -> Vec<u8> {
    let empty_field = {
        let mut field = [0u8; 8];
        field[4..].copy_from_slice(&(NEGOTIATE_FIXED as u32).to_le_bytes());
        field
    };
    let mut message = Vec::with_capacity(NEGOTIATE_FIXED);
    message.extend_from_slice(&SIGNATURE);
    message.extend_from_slice(&NEGOTIATE.to_le_bytes());
    message.extend_from_slice(&flags.0.to_le_bytes());
    message.extend_from_slice(&empty_field);
    message.extend_from_slice(&empty_field);
    message
}

fn parse_negotiate(bytes: &[u8]) -> Result<Negotiate, NtlmError> {
    need(bytes, NEGOTIATE_SHORT)?;
    let flags = NegotiateFlags(u32_at(bytes, 12)?);
    let mut anomalies = Anomalies::default();
    if bytes.len() < NEGOTIATE_FIXED {
        anomalies.short_header = true;
        return Ok(Negotiate {
            flags,
            domain: None,
            workstation: None,
            version: None,
            anomalies,
        });
    }
    let fields = [
        Field::read(bytes, 16, "DomainName")?,
        Field::read(bytes, 24, "Workstation")?,
    ];
    let [domain, workstation] = resolve(bytes, &fields)?;
    check_layout(&fields, NEGOTIATE_FIXED, &mut anomalies);
    let version = read_version(bytes, flags, &fields, NEGOTIATE_FIXED);
    let oem = |b: &[u8], a: &mut Anomalies| (!b.is_empty()).then(|| decode_name(b, false, a));
    Ok(Negotiate {
        flags,
        domain: oem(domain, &mut anomalies),
        workstation: oem(workstation, &mut anomalies),
        version,
        anomalies,
    })
}

fn parse_challenge(bytes: &[u8]) -> Result<Challenge<'_>, NtlmError> {
    need(bytes, CHALLENGE_SHORT)?;
    let flags = NegotiateFlags(u32_at(bytes, 20)?);
    let server_challenge = array_at::<8>(bytes, 24)?;
    let mut anomalies = Anomalies::default();
    let name_field = Field::read(bytes, 12, "TargetName")?;
    let (fields, info_field, fixed_len) = if bytes.len() < CHALLENGE_FIXED {
        anomalies.short_header = true;
        (vec![name_field], None, CHALLENGE_SHORT)
    } else {
        let info = Field::read(bytes, 40, "TargetInfo")?;
        (vec![name_field, info], Some(info), CHALLENGE_FIXED)
    };
    let [name] = resolve(bytes, &[name_field])?;
    check_layout(&fields, fixed_len, &mut anomalies);
    let target_info = info_field.and_then(|f| {
        if f.len == 0 && !flags.contains(NegotiateFlags::TARGET_INFO) {
            return None;
        }
        let (data, clamped) = f.clamped(bytes);
        anomalies.target_info_out_of_bounds = clamped;
        Some(parse_av_pairs(data))
    });
    let version = read_version(bytes, flags, &fields, CHALLENGE_FIXED);
    let unicode = flags.contains(NegotiateFlags::UNICODE);
    Ok(Challenge {
        flags,
        target_name: decode_name(name, unicode, &mut anomalies),
        server_challenge,
        target_info,
        version,
        anomalies,
    })
}

fn parse_authenticate(bytes: &[u8]) -> Result<Authenticate<'_>, NtlmError> {
    need(bytes, AUTHENTICATE_FIXED)?;
    let fields = [
        Field::read(bytes, 12, "LmChallengeResponse")?,
        Field::read(bytes, 20, "NtChallengeResponse")?,
        Field::read(bytes, 28, "DomainName")?,
        Field::read(bytes, 36, "UserName")?,
        Field::read(bytes, 44, "Workstation")?,
        Field::read(bytes, 52, "EncryptedRandomSessionKey")?,
    ];
    let flags = NegotiateFlags(u32_at(bytes, 60)?);
    let mut anomalies = Anomalies::default();
    let [lm, nt, domain, user, workstation, key] = resolve(bytes, &fields)?;
    check_layout(&fields, AUTHENTICATE_FIXED, &mut anomalies);
    let ntlm_version = classify(lm, nt, user);
    let ntlmv2 = match ntlm_version {
        NtlmVersion::V2 => parse_ntlmv2(nt, &mut anomalies),
        _ => None,
    };
    let mic_present = ntlmv2
        .as_ref()
        .and_then(|v2| v2.target_info.flags)
        .is_some_and(|f| f.contains(AvFlags::MIC_PRESENT));
    let mic_offset = AUTHENTICATE_FIXED + VERSION_LEN;
    let mic_field = if payload_start(bytes, &fields) >= mic_offset + MIC_LEN {
        match bytes.get(mic_offset..mic_offset + MIC_LEN) {
            Some(mic) if mic.iter().any(|&b| b != 0) => MicField::NonZero,
            Some(_) => MicField::Zero,
            None => MicField::Absent,
        }
    } else {
        MicField::Absent
    };
    let unicode = flags.contains(NegotiateFlags::UNICODE);
    Ok(Authenticate {
        flags,
        user: decode_name(user, unicode, &mut anomalies),
        domain: decode_name(domain, unicode, &mut anomalies),
        workstation: decode_name(workstation, unicode, &mut anomalies),
        lm_response_len: len_u16(lm),
        nt_response_len: len_u16(nt),
        ntlm_version,
        ntlmv2,
        mic_present,
        mic_field,
        encrypted_session_key_len: len_u16(key),
        version: read_version(bytes, flags, &fields, AUTHENTICATE_FIXED),
        anomalies,
    })
}

/// [MS-NLMP] 3.2.5.1.2: "If the user name and response are empty, the server authenticates the
/// client as the ANONYMOUS user"; clients send LmChallengeResponse = Z(1) for it (3.3.1).
fn classify(lm: &[u8], nt: &[u8], user: &[u8]) -> NtlmVersion {
    if user.is_empty() && nt.is_empty() && (lm.is_empty() || lm == [0]) {
        NtlmVersion::Anonymous
    } else if nt.len() == NTLMV1_RESPONSE_LEN {
        NtlmVersion::V1
    } else if nt.len() >= MIN_NTLMV2_RESPONSE_LEN {
        NtlmVersion::V2
    } else if nt.is_empty() && !lm.is_empty() {
        NtlmVersion::LmOnly
    } else {
        NtlmVersion::Unknown
    }
}

/// NTLMv2_RESPONSE = NTProofStr(16) NTLMv2_CLIENT_CHALLENGE, and
/// NTLMv2_CLIENT_CHALLENGE = RespType(1)=1 HiRespType(1)=1 Reserved1(2) Reserved2(4)
/// TimeStamp(8) ChallengeFromClient(8) Reserved3(4) AvPairs, [MS-NLMP] 2.2.2.7-2.2.2.8.
fn parse_ntlmv2<'a>(nt: &'a [u8], anomalies: &mut Anomalies) -> Option<NtlmV2ClientChallenge<'a>> {
    let blob = nt.get(16..)?;
    let resp_type = blob.first().copied();
    let hi_resp_type = blob.get(1).copied();
    let timestamp = blob
        .get(8..16)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes);
    let pairs = blob.get(28..);
    if let (Some(1), Some(hi_resp_type), Some(timestamp), Some(pairs)) =
        (resp_type, hi_resp_type, timestamp, pairs)
    {
        let target_info = parse_av_pairs(pairs);
        Some(NtlmV2ClientChallenge {
            hi_resp_type,
            timestamp,
            target_info,
        })
    } else {
        anomalies.bad_ntlmv2_response = true;
        None
    }
}

/// AV_PAIR = AvId (u16le) AvLen (u16le) Value(AvLen); the list ends with MsvAvEOL,
/// [MS-NLMP] 2.2.2.1. Never fails: what can be read is kept and the rest flagged.
pub fn parse_av_pairs(data: &[u8]) -> TargetInfo<'_> {
    let mut info = TargetInfo::default();
    let mut name_anomalies = Anomalies::default();
    let mut rest = data;
    info.anomalies.empty = data.is_empty();
    info.anomalies.unterminated = true;
    for _ in 0..=MAX_AV_PAIRS {
        let Some((head, tail)) = rest.split_first_chunk::<4>() else {
            // Fewer than 4 bytes left: no room for another pair header, so no MsvAvEOL.
            info.anomalies.pair_out_of_bounds |= !rest.is_empty();
            break;
        };
        let id = AvId(u16::from_le_bytes([head[0], head[1]]));
        let len = usize::from(u16::from_le_bytes([head[2], head[3]]));
        if id == AvId::EOL {
            info.anomalies.unterminated = false;
            break;
        }
        let Some((value, after)) = tail.split_at_checked(len) else {
            info.anomalies.pair_out_of_bounds = true;
            break;
        };
        if info.pair_count == MAX_AV_PAIRS {
            info.anomalies.too_many_pairs = true;
            break;
        }
        info.pair_count += 1;
        store_pair(&mut info, id, value, &mut name_anomalies);
        rest = after;
    }
    info.anomalies.bad_value_length |= name_anomalies.odd_unicode_length;
    info.anomalies.name_truncated = name_anomalies.name_truncated;
    info
}

fn store_pair<'a>(info: &mut TargetInfo<'a>, id: AvId, value: &'a [u8], a: &mut Anomalies) {
    let name = |a: &mut Anomalies| Some(decode_name(value, true, a));
    let dup = match id {
        AvId::NB_COMPUTER_NAME => set_once(&mut info.nb_computer_name, || name(a)),
        AvId::NB_DOMAIN_NAME => set_once(&mut info.nb_domain_name, || name(a)),
        AvId::DNS_COMPUTER_NAME => set_once(&mut info.dns_computer_name, || name(a)),
        AvId::DNS_DOMAIN_NAME => set_once(&mut info.dns_domain_name, || name(a)),
        AvId::DNS_TREE_NAME => set_once(&mut info.dns_tree_name, || name(a)),
        AvId::TARGET_NAME => set_once(&mut info.target_name, || name(a)),
        AvId::FLAGS => {
            let v = fixed::<4>(value, &mut info.anomalies).map(|b| AvFlags(u32::from_le_bytes(b)));
            set_once(&mut info.flags, || v)
        }
        AvId::TIMESTAMP => {
            let v = fixed::<8>(value, &mut info.anomalies).map(u64::from_le_bytes);
            set_once(&mut info.timestamp, || v)
        }
        AvId::CHANNEL_BINDINGS => {
            let v = fixed::<16>(value, &mut info.anomalies).map(|_| value);
            set_once(&mut info.channel_bindings, || v)
        }
        AvId::SINGLE_HOST => set_once(&mut info.single_host, || Some(value)),
        _ => {
            info.unknown_pairs += 1;
            false
        }
    };
    info.anomalies.duplicate_id |= dup;
}

/// Sets `slot` from `make` unless already set; returns whether it was (a duplicate).
fn set_once<T>(slot: &mut Option<T>, make: impl FnOnce() -> Option<T>) -> bool {
    if slot.is_some() {
        return true;
    }
    *slot = make();
    false
}

fn fixed<const N: usize>(value: &[u8], anomalies: &mut AvAnomalies) -> Option<[u8; N]> {
    let v = value.try_into().ok();
    anomalies.bad_value_length |= v.is_none();
    v
}

/// A payload field descriptor: Len, MaxLen, BufferOffset ([MS-NLMP] 2.2.1.1 and following).
#[derive(Clone, Copy, Debug)]
struct Field {
    len: u16,
    max_len: u16,
    offset: u32,
    name: &'static str,
}

impl Field {
    fn read(bytes: &[u8], at: usize, name: &'static str) -> Result<Self, NtlmError> {
        let b = array_at::<8>(bytes, at)?;
        Ok(Self {
            len: u16::from_le_bytes([b[0], b[1]]),
            max_len: u16::from_le_bytes([b[2], b[3]]),
            offset: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            name,
        })
    }

    /// Byte range in the message; None for an empty field (whose offset means nothing) or one
    /// whose end overflows.
    fn range(self) -> Option<Range<usize>> {
        if self.len == 0 {
            return None;
        }
        let start = usize::try_from(self.offset).ok()?;
        Some(start..start.checked_add(usize::from(self.len))?)
    }

    fn slice(self, bytes: &[u8]) -> Result<&[u8], NtlmError> {
        if self.len == 0 {
            return Ok(&[]);
        }
        self.range()
            .filter(|r| r.end <= MAX_MESSAGE_LEN)
            .and_then(|r| bytes.get(r))
            .ok_or(NtlmError::FieldOutOfBounds(self.name))
    }

    /// The part of the field inside the message, and whether it was cut.
    fn clamped(self, bytes: &[u8]) -> (&[u8], bool) {
        if let Ok(s) = self.slice(bytes) {
            (s, false)
        } else {
            let limit = bytes.len().min(MAX_MESSAGE_LEN);
            let r = self.range().unwrap_or(0..0);
            let start = r.start.min(limit);
            (bytes.get(start..r.end.min(limit)).unwrap_or(&[]), true)
        }
    }
}

/// Slices every field: all must lie inside the message.
fn resolve<'a, const N: usize>(
    bytes: &'a [u8],
    fields: &[Field; N],
) -> Result<[&'a [u8]; N], NtlmError> {
    let mut out: [&[u8]; N] = [&[]; N];
    for (slot, f) in out.iter_mut().zip(fields) {
        *slot = f.slice(bytes)?;
    }
    Ok(out)
}

fn check_layout(fields: &[Field], fixed_len: usize, anomalies: &mut Anomalies) {
    for (i, f) in fields.iter().enumerate() {
        anomalies.max_len_below_len |= f.max_len < f.len;
        let Some(r) = f.range() else { continue };
        anomalies.payload_in_header |= r.start < fixed_len;
        let overlaps = fields
            .iter()
            .skip(i + 1)
            .filter_map(|g| g.range())
            .any(|s| s.start < r.end && r.start < s.end);
        anomalies.overlapping_fields |= overlaps;
    }
}

/// Where the payload begins: the lowest offset of a non-empty field, or the end of the message.
fn payload_start(bytes: &[u8], fields: &[Field]) -> usize {
    fields
        .iter()
        .filter_map(|f| f.range())
        .map(|r| r.start)
        .min()
        .unwrap_or(bytes.len())
}

/// The Version field, when NEGOTIATE_VERSION is set and the payload leaves it room.
fn read_version(
    bytes: &[u8],
    flags: NegotiateFlags,
    fields: &[Field],
    at: usize,
) -> Option<Version> {
    if !flags.contains(NegotiateFlags::VERSION) || payload_start(bytes, fields) < at + VERSION_LEN {
        return None;
    }
    let b = array_at::<8>(bytes, at).ok()?;
    Some(Version {
        major: b[0],
        minor: b[1],
        build: u16::from_le_bytes([b[2], b[3]]),
        ntlm_revision: b[7],
    })
}

/// UTF-16LE or OEM (as Latin-1, which never fails), cut at [`MAX_NAME_LEN`] bytes. Trailing
/// NULs are dropped: some stacks (Samba, macOS) count a terminator in the length.
fn decode_name(raw: &[u8], unicode: bool, anomalies: &mut Anomalies) -> String {
    let cut = raw.get(..MAX_NAME_LEN).unwrap_or(raw);
    anomalies.name_truncated |= cut.len() < raw.len();
    let mut name: String = if unicode {
        let units = cut.chunks_exact(2);
        anomalies.odd_unicode_length |= !units.remainder().is_empty();
        char::decode_utf16(units.map(|u| u16::from_le_bytes([u[0], u[1]])))
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect()
    } else {
        cut.iter().map(|&b| char::from(b)).collect()
    };
    name.truncate(name.trim_end_matches('\0').len());
    name
}

fn need(bytes: &[u8], needed: usize) -> Result<(), NtlmError> {
    if bytes.len() < needed {
        Err(NtlmError::Truncated { needed })
    } else {
        Ok(())
    }
}

fn array_at<const N: usize>(bytes: &[u8], at: usize) -> Result<[u8; N], NtlmError> {
    let end = at.saturating_add(N);
    bytes
        .get(at..end)
        .and_then(|b| b.try_into().ok())
        .ok_or(NtlmError::Truncated { needed: end })
}

fn u32_at(bytes: &[u8], at: usize) -> Result<u32, NtlmError> {
    array_at::<4>(bytes, at).map(u32::from_le_bytes)
}

/// Length of a slice that came from a u16 Len field.
fn len_u16(b: &[u8]) -> u16 {
    u16::try_from(b.len()).unwrap_or(u16::MAX)
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "in tests a panic is a failed test")]
mod tests {
    use super::*;
    use dcwatch_tests::fixture::hex;

    /// Fixtures in tests/fixtures/ntlm/: the NTLMSSP message cut from its signature to the end
    /// of its last payload field (except where the name says "trailing").
    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/ntlm/{name}.hex",
            env!("CARGO_MANIFEST_DIR")
        );
        hex(&std::fs::read_to_string(path).unwrap())
    }

    fn negotiate(b: &[u8]) -> Negotiate {
        match parse(b).unwrap() {
            NtlmMessage::Negotiate(m) => m,
            other => panic!("not a NEGOTIATE: {other:?}"),
        }
    }
    fn challenge(b: &[u8]) -> Challenge<'_> {
        match parse(b).unwrap() {
            NtlmMessage::Challenge(m) => m,
            other => panic!("not a CHALLENGE: {other:?}"),
        }
    }
    fn authenticate(b: &[u8]) -> Authenticate<'_> {
        match parse(b).unwrap() {
            NtlmMessage::Authenticate(m) => m,
            other => panic!("not an AUTHENTICATE: {other:?}"),
        }
    }
    #[test]
    fn a_built_negotiate_parses_as_what_it_asks() {
        let flags = NegotiateFlags(
            NegotiateFlags::UNICODE.0 | NegotiateFlags::NTLM.0 | NegotiateFlags::TARGET_INFO.0,
        );
        let built = negotiate_message(flags);
        assert_eq!(built.len(), 32);
        let parsed = negotiate(&built);
        assert_eq!(parsed.flags, flags);
        assert_eq!(
            (parsed.domain, parsed.workstation, parsed.version),
            (None, None, None)
        );
        assert_eq!(parsed.anomalies, Anomalies::default());
    }

    fn s(v: &Option<String>) -> Option<&str> {
        v.as_deref()
    }

    // zeek/testing/btest/Traces/smb/smb3.pcap frames 3-5, NTLM in SPNEGO in SMB2 SESSION_SETUP.
    // Compared with `tshark -r F -Y 'frame.number==N' -V` (NTLM Secure Service Provider):
    // flags 0xe0080235 / 0xe2890235 / 0xe0880235, target name SUSE, server challenge
    // 01151813d2898ccd, target info names, version 10.0.14393 rev 15, user administrator,
    // domain SUSE, host NULL, LM response empty, NT response 156 bytes NTLMv2, session key 16.
    #[test]
    fn smb3_exchange() {
        let neg = negotiate(&fixture("smb3_negotiate"));
        assert_eq!(neg.flags, NegotiateFlags(0xe008_0235));
        assert!(neg.flags.contains(NegotiateFlags::EXTENDED_SESSIONSECURITY));
        assert_eq!(
            (neg.domain, neg.workstation, neg.version),
            (None, None, None)
        );
        assert_eq!(neg.anomalies, Anomalies::default());

        let chal_bytes = fixture("smb3_challenge");
        let chal = challenge(&chal_bytes);
        assert_eq!(chal.flags, NegotiateFlags(0xe289_0235));
        assert_eq!(chal.target_name, "SUSE");
        assert_eq!(chal.server_challenge, *hex("01151813d2898ccd"));
        assert_eq!(
            chal.version,
            Some(Version {
                major: 10,
                minor: 0,
                build: 14393,
                ntlm_revision: 15
            })
        );
        let ti = chal.target_info.unwrap();
        assert_eq!(s(&ti.nb_domain_name), Some("SUSE"));
        assert_eq!(s(&ti.nb_computer_name), Some("WS2016"));
        assert_eq!(s(&ti.dns_domain_name), Some("suse.de"));
        assert_eq!(s(&ti.dns_computer_name), Some("WS2016.suse.de"));
        assert_eq!(s(&ti.dns_tree_name), Some("suse.de"));
        assert!(ti.timestamp.is_some());
        assert_eq!((ti.pair_count, ti.unknown_pairs), (6, 0));
        assert_eq!(ti.anomalies, AvAnomalies::default());

        let auth_bytes = fixture("smb3_authenticate");
        let auth = authenticate(&auth_bytes);
        assert_eq!(auth.flags, NegotiateFlags(0xe088_0235));
        assert_eq!(
            (
                auth.user.as_str(),
                auth.domain.as_str(),
                auth.workstation.as_str()
            ),
            ("administrator", "SUSE", "")
        );
        assert_eq!((auth.lm_response_len, auth.nt_response_len), (0, 156));
        assert_eq!(auth.ntlm_version, NtlmVersion::V2);
        assert_eq!(auth.encrypted_session_key_len, 16);
        // Payload right after the fixed part: no Version, no MIC.
        assert_eq!(
            (auth.version, auth.mic_field, auth.mic_present),
            (None, MicField::Absent, false)
        );
        let v2 = auth.ntlmv2.unwrap();
        assert_eq!(v2.hi_resp_type, 1);
        // The client echoes the CHALLENGE's target info and timestamp.
        assert_eq!(v2.timestamp, ti.timestamp.unwrap());
        assert_eq!(v2.target_info.timestamp, ti.timestamp);
        assert_eq!(s(&v2.target_info.dns_computer_name), Some("WS2016.suse.de"));
        assert_eq!(auth.anomalies, Anomalies::default());
    }

    // zeek/testing/btest/Traces/ldap/aduser1-ntlm.pcap frames 4, 5, 7: LDAP Sicily bind
    // (sicilyNegotiate, sicilyResponse, sicilyAuth). Compared with tshark -V: challenge flags
    // 0xa2890205, target ADHACKING, challenge 801d050bedf38530, version 10.0.20348 rev 15,
    // DNS computer WIN-VGO56I95EAK.ADHACKING.local; auth user User1, domain ADHACKING.LOCAL,
    // host NULL, LM 24 bytes, NTLMv2 with MsvAvTargetName cifs/WIN-VGO56I95EAK, no MsvAvFlags.
    #[test]
    fn ldap_sicily_exchange() {
        let neg = negotiate(&fixture("ldap_sicily_negotiate"));
        assert!(neg.flags.contains(NegotiateFlags::NTLM));
        let chal_bytes = fixture("ldap_sicily_challenge");
        let chal = challenge(&chal_bytes);
        assert_eq!(chal.flags, NegotiateFlags(0xa289_0205));
        assert_eq!(chal.target_name, "ADHACKING");
        assert_eq!(chal.server_challenge, *hex("801d050bedf38530"));
        assert_eq!(chal.version.map(|v| v.build), Some(20348));
        let ti = chal.target_info.unwrap();
        assert_eq!(s(&ti.nb_computer_name), Some("WIN-VGO56I95EAK"));
        assert_eq!(
            s(&ti.dns_computer_name),
            Some("WIN-VGO56I95EAK.ADHACKING.local")
        );

        let auth_bytes = fixture("ldap_sicily_authenticate");
        let auth = authenticate(&auth_bytes);
        assert_eq!(auth.flags, NegotiateFlags(0xa088_0205));
        assert_eq!(
            (
                auth.user.as_str(),
                auth.domain.as_str(),
                auth.workstation.as_str()
            ),
            ("User1", "ADHACKING.LOCAL", "")
        );
        assert_eq!((auth.lm_response_len, auth.nt_response_len), (24, 298));
        assert_eq!(auth.ntlm_version, NtlmVersion::V2);
        let v2 = auth.ntlmv2.unwrap();
        assert_eq!(s(&v2.target_info.target_name), Some("cifs/WIN-VGO56I95EAK"));
        assert_eq!(v2.target_info.flags, None);
        assert!(!auth.mic_present);
        assert_eq!(auth.mic_field, MicField::Absent);
    }

    // zeek/testing/btest/Traces/dce-rpc/dce_rpc_ntlm.pcapng frame 6: DCE-RPC AUTH3 leg. tshark
    // -V: user Administrator, domain BLACKCLOVER, host CBTH-WS-1, flags 0xe2988215, version
    // 10.0.18362 rev 15, MIC 8073b2c3..., v2 blob with Flags 0x00000002, Restrictions (single
    // host), Channel Bindings all zero, Target Name BLACKCLOVER\Administrator.
    #[test]
    fn dcerpc_authenticate_with_mic() {
        let bytes = fixture("dcerpc_mic_authenticate");
        let auth = authenticate(&bytes);
        assert_eq!(
            (
                auth.user.as_str(),
                auth.domain.as_str(),
                auth.workstation.as_str()
            ),
            ("Administrator", "BLACKCLOVER", "CBTH-WS-1")
        );
        assert_eq!(auth.flags, NegotiateFlags(0xe298_8215));
        assert!(auth.flags.contains(NegotiateFlags::IDENTIFY));
        assert_eq!(
            auth.version,
            Some(Version {
                major: 10,
                minor: 0,
                build: 18362,
                ntlm_revision: 15
            })
        );
        assert!(auth.mic_present);
        assert_eq!(auth.mic_field, MicField::NonZero);
        let ti = auth.ntlmv2.unwrap().target_info;
        assert_eq!(ti.flags, Some(AvFlags::MIC_PRESENT));
        assert_eq!(ti.channel_bindings, Some(&[0u8; 16][..]));
        assert_eq!(ti.single_host.map(<[u8]>::len), Some(48));
        assert_eq!(s(&ti.target_name), Some("BLACKCLOVER\\Administrator"));
        assert_eq!(s(&ti.nb_domain_name), Some("BLACKCLOVER"));
        assert_eq!(ti.anomalies, AvAnomalies::default());
        assert_eq!(auth.anomalies, Anomalies::default());
    }

    // zeek/testing/btest/Traces/dce-rpc/mapi.pcap frame 417 (NTLMv1 with NTLM2 session
    // security: tshark shows LMv2 client challenge d9e60e287e49e9cc + zeros, NT response 24
    // bytes, user ALeonard, domain CNAMIS, host ALEONARD-XP, flags 0x20888205), and
    // zeek/testing/btest/Traces/ldap/sasl-ntlm.pcap frame 8 (LM empty, NT 24, user
    // sasladmin@slapd.ldap, domain LOCALHOST, flags 0x00000205).
    #[test]
    fn ntlmv1_authenticate() {
        let bytes = fixture("mapi_v1_authenticate");
        let auth = authenticate(&bytes);
        assert_eq!(auth.ntlm_version, NtlmVersion::V1);
        assert!(
            auth.flags
                .contains(NegotiateFlags::EXTENDED_SESSIONSECURITY)
        );
        assert_eq!(
            (
                auth.user.as_str(),
                auth.domain.as_str(),
                auth.workstation.as_str()
            ),
            ("ALeonard", "CNAMIS", "ALEONARD-XP")
        );
        assert_eq!((auth.lm_response_len, auth.nt_response_len), (24, 24));
        assert_eq!(
            (auth.ntlmv2, auth.mic_present, auth.mic_field),
            (None, false, MicField::Absent)
        );

        let bytes = fixture("ldap_sasl_v1_authenticate");
        let auth = authenticate(&bytes);
        assert_eq!(auth.ntlm_version, NtlmVersion::V1);
        assert_eq!(auth.flags, NegotiateFlags(0x0000_0205));
        assert_eq!(
            (auth.user.as_str(), auth.domain.as_str()),
            ("sasladmin@slapd.ldap", "LOCALHOST")
        );
        assert_eq!((auth.lm_response_len, auth.nt_response_len), (0, 24));
    }

    // suricata-verify/tests/dcerpc/zerologon/input.pcap frame 639: tshark -V shows LM response
    // 00, NT response empty, user/domain/host NULL, session key 16 bytes: anonymous.
    #[test]
    fn anonymous_authenticate() {
        let bytes = fixture("zerologon_anonymous_authenticate");
        let auth = authenticate(&bytes);
        assert_eq!(auth.ntlm_version, NtlmVersion::Anonymous);
        assert_eq!((auth.lm_response_len, auth.nt_response_len), (1, 0));
        assert!(auth.user.is_empty());
        assert_eq!(auth.encrypted_session_key_len, 16);
    }

    // suricata-verify/tests/smb1-02/smb1_osx.pcap frames 16 and 18 (macOS client, Samba
    // server). tshark -V: NEGOTIATE flags 0x02000a05 (ANONYMOUS set), version 6.1.7600 rev 0
    // (the client put 0x0f in a reserved byte); CHALLENGE target TS412, challenge
    // af6baaf61e1b512b, DNS domain name empty (on the wire a lone UTF-16 NUL), DNS computer
    // ts412, version 6.1.0 rev 15.
    #[test]
    fn smb1_osx() {
        let neg = negotiate(&fixture("smb1_osx_negotiate"));
        assert_eq!(neg.flags, NegotiateFlags(0x0200_0a05));
        assert!(neg.flags.contains(NegotiateFlags::ANONYMOUS));
        assert_eq!(
            neg.version,
            Some(Version {
                major: 6,
                minor: 1,
                build: 7600,
                ntlm_revision: 0
            })
        );
        let bytes = fixture("smb1_osx_challenge");
        let chal = challenge(&bytes);
        assert_eq!(chal.target_name, "TS412");
        assert_eq!(chal.server_challenge, *hex("af6baaf61e1b512b"));
        let ti = chal.target_info.unwrap();
        assert_eq!(s(&ti.dns_domain_name), Some(""));
        assert_eq!(s(&ti.dns_computer_name), Some("ts412"));
        assert_eq!(
            chal.version,
            Some(Version {
                major: 6,
                minor: 1,
                build: 0,
                ntlm_revision: 15
            })
        );
    }

    // zeek/testing/btest/Traces/dce-rpc/ntlm-empty-av-sequence.pcap and
    // ntlm-unterminated-av-sequence.pcap, frame 5 each: the CHALLENGE's TargetInfo field says 36
    // bytes at offset 60 but the DCE-RPC auth_value stops at 60 (empty) or 92 bytes (two pairs,
    // no MsvAvEOL). tshark shows target name CNAMIS and, for the second, NetBIOS domain CNAMIS
    // and computer SATURN.
    #[test]
    fn av_sequence_anomalies() {
        let bytes = fixture("dcerpc_empty_av_challenge");
        let chal = challenge(&bytes);
        assert_eq!(chal.target_name, "CNAMIS");
        assert!(chal.anomalies.target_info_out_of_bounds);
        let ti = chal.target_info.unwrap();
        assert!(ti.anomalies.empty && ti.anomalies.unterminated);
        assert_eq!(ti.pair_count, 0);

        let bytes = fixture("dcerpc_unterminated_av_challenge");
        let chal = challenge(&bytes);
        assert!(chal.anomalies.target_info_out_of_bounds);
        let ti = chal.target_info.unwrap();
        assert!(!ti.anomalies.empty && ti.anomalies.unterminated);
        assert_eq!(s(&ti.nb_domain_name), Some("CNAMIS"));
        assert_eq!(s(&ti.nb_computer_name), Some("SATURN"));
    }

    // arkime/tests/pcap/ntlm_synthetic.pcap frames 44, 46, 48: base64 tokens from HTTP
    // Authorization/WWW-Authenticate: NTLM (synthetic). tshark -V on frame 48: user dave, domain
    // HTTPDOM, host HTTPHOST, LM and NT 24 bytes; the payload starts at 88, so a (zero) MIC
    // field exists. Frame 44 supplies OEM domain HTTPDOM and workstation HTTPHOST.
    #[test]
    fn synthetic_http_tokens() {
        let neg = negotiate(&fixture("synthetic_http_negotiate"));
        assert_eq!(neg.domain.as_deref(), Some("HTTPDOM"));
        assert_eq!(neg.workstation.as_deref(), Some("HTTPHOST"));
        // Synthetic: the OEM_*_SUPPLIED flags are not set, the fields are decoded anyway.
        assert!(!neg.flags.contains(NegotiateFlags::OEM_DOMAIN_SUPPLIED));
        assert!(neg.version.is_some());
        let bytes = fixture("synthetic_http_challenge");
        let chal = challenge(&bytes);
        assert_eq!(chal.target_name, "HTTPTGT");
        assert_eq!(chal.server_challenge, *hex("0123456789abcdef"));
        let bytes = fixture("synthetic_http_v1_authenticate");
        let auth = authenticate(&bytes);
        assert_eq!(
            (
                auth.user.as_str(),
                auth.domain.as_str(),
                auth.workstation.as_str()
            ),
            ("dave", "HTTPDOM", "HTTPHOST")
        );
        assert_eq!(auth.ntlm_version, NtlmVersion::V1);
        assert_eq!(auth.mic_field, MicField::Zero);
    }

    // zeek/testing/btest/Traces/smb/raw_ntlm_in_smb.pcap frame 22: raw NTLMSSP in an SMB1
    // SESSION_SETUP, cut from the signature to the end of the TCP payload, so the SMB1 native
    // OS strings follow the message: they are ignored.
    #[test]
    fn trailing_bytes_ignored() {
        let bytes = fixture("smb1_raw_authenticate_trailing");
        let auth = authenticate(&bytes);
        assert_eq!(auth.ntlm_version, NtlmVersion::V2);
        assert!(!auth.user.is_empty());
    }

    #[test]
    fn every_prefix_is_safe() {
        for name in [
            "smb3_negotiate",
            "smb3_challenge",
            "smb3_authenticate",
            "dcerpc_mic_authenticate",
            "zerologon_anonymous_authenticate",
            "smb1_osx_challenge",
        ] {
            let bytes = fixture(name);
            for n in 0..bytes.len() {
                let r = parse(&bytes[..n]);
                // Below 12 bytes nothing is known; an AUTHENTICATE cut short of a payload
                // field is always an error (its fields are strict).
                if n < 12 || (name.contains("authenticate") && n < bytes.len()) {
                    assert!(r.is_err(), "{name} prefix {n}: {r:?}");
                }
            }
        }
    }

    #[test]
    fn errors() {
        assert_eq!(parse(b"NTLMSSP"), Err(NtlmError::Truncated { needed: 12 }));
        assert_eq!(parse(b"NTLMSSQ\0\x01\0\0\0"), Err(NtlmError::BadSignature));
        assert_eq!(
            parse(b"NTLMSSP\0\x04\0\0\0"),
            Err(NtlmError::UnknownMessageType(4))
        );
        let mut auth = fixture("smb3_authenticate");
        // UserName offset (bytes 40..44) pushed past the end.
        auth[40..44].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        assert_eq!(parse(&auth), Err(NtlmError::FieldOutOfBounds("UserName")));
        auth[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse(&auth), Err(NtlmError::FieldOutOfBounds("UserName")));
    }

    #[test]
    fn layout_anomalies() {
        let mut bytes = fixture("smb3_authenticate");
        // UserName pointed at the DomainName bytes and MaxLen set below Len.
        let domain_offset: [u8; 4] = bytes[32..36].try_into().unwrap();
        bytes[40..44].copy_from_slice(&domain_offset);
        bytes[38..40].copy_from_slice(&0u16.to_le_bytes());
        let auth = authenticate(&bytes);
        assert!(auth.anomalies.overlapping_fields && auth.anomalies.max_len_below_len);
        // A field inside the fixed part.
        let mut bytes = fixture("smb3_authenticate");
        bytes[32..36].copy_from_slice(&8u32.to_le_bytes());
        assert!(authenticate(&bytes).anomalies.payload_in_header);
    }

    /// Builds a CHALLENGE with the given target info payload.
    fn challenge_with_info(info: &[u8]) -> Vec<u8> {
        let mut m = SIGNATURE.to_vec();
        m.extend_from_slice(&2u32.to_le_bytes());
        m.extend_from_slice(&[0, 0, 0, 0, 48, 0, 0, 0]); // empty TargetName
        m.extend_from_slice(
            &(NegotiateFlags::UNICODE.0 | NegotiateFlags::TARGET_INFO.0).to_le_bytes(),
        );
        m.extend_from_slice(&[7; 8]); // ServerChallenge
        m.extend_from_slice(&[0; 8]);
        let len = u16::try_from(info.len()).unwrap();
        m.extend_from_slice(&len.to_le_bytes());
        m.extend_from_slice(&len.to_le_bytes());
        m.extend_from_slice(&48u32.to_le_bytes());
        m.extend_from_slice(info);
        m
    }

    #[test]
    fn hostile_av_lists() {
        // 1000 unknown pairs: reading stops at MAX_AV_PAIRS.
        let mut info = Vec::new();
        for _ in 0..1000 {
            info.extend_from_slice(&[0x55, 0, 0, 0]);
        }
        let m = challenge_with_info(&info);
        let ti = challenge(&m).target_info.unwrap();
        assert!(ti.anomalies.too_many_pairs);
        assert_eq!(
            (ti.pair_count, ti.unknown_pairs),
            (MAX_AV_PAIRS, MAX_AV_PAIRS)
        );
        // A pair claiming more than is left, a duplicate, a short flags value.
        let mut info = vec![2, 0, 2, 0, b'A', 0, 2, 0, 2, 0, b'B', 0, 6, 0, 2, 0, 1, 0];
        info.extend_from_slice(&[1, 0, 0xff, 0xff, 0]);
        let m = challenge_with_info(&info);
        let ti = challenge(&m).target_info.unwrap();
        assert_eq!(s(&ti.nb_domain_name), Some("A"));
        assert!(ti.anomalies.duplicate_id && ti.anomalies.bad_value_length);
        assert!(ti.anomalies.pair_out_of_bounds && ti.anomalies.unterminated);
        // A 60000-byte name is cut at MAX_NAME_LEN.
        let mut info = vec![3, 0, 0x60, 0xea];
        info.extend(std::iter::repeat_n([b'x', 0], 30000).flatten());
        info.extend_from_slice(&[0, 0, 0, 0]);
        let m = challenge_with_info(&info);
        let ti = challenge(&m).target_info.unwrap();
        assert_eq!(
            ti.dns_computer_name.map(|n| n.len()),
            Some(MAX_NAME_LEN / 2)
        );
        assert!(ti.anomalies.name_truncated && !ti.anomalies.unterminated);
    }

    #[test]
    fn classify_responses() {
        assert_eq!(classify(&[], &[], &[]), NtlmVersion::Anonymous);
        assert_eq!(classify(&[0], &[], &[]), NtlmVersion::Anonymous);
        assert_eq!(classify(&[1], &[], &[]), NtlmVersion::LmOnly);
        assert_eq!(classify(&[0], &[], b"u"), NtlmVersion::LmOnly);
        assert_eq!(classify(&[], &[0; 24], &[]), NtlmVersion::V1);
        assert_eq!(classify(&[], &[0; 30], b"u"), NtlmVersion::Unknown);
        assert_eq!(classify(&[], &[0; 44], b"u"), NtlmVersion::V2);
        let mut a = Anomalies::default();
        assert_eq!(parse_ntlmv2(&[0; 44], &mut a), None);
        assert!(a.bad_ntlmv2_response);
    }
}
