//! LDAP (RFC 4511) over TCP, with its SASL security layer, and CLDAP over UDP.
//!
//! ```text
//! LDAPMessage ::= SEQUENCE {
//!      messageID       MessageID,            -- INTEGER (0 .. maxInt)
//!      protocolOp      CHOICE {
//!           bindRequest [APPLICATION 0], bindResponse [APPLICATION 1],
//!           unbindRequest [APPLICATION 2], searchRequest [APPLICATION 3],
//!           searchResEntry [APPLICATION 4], searchResDone [APPLICATION 5],
//!           searchResRef [APPLICATION 19], modifyRequest [APPLICATION 6],
//!           modifyResponse [APPLICATION 7], addRequest [APPLICATION 8],
//!           addResponse [APPLICATION 9], delRequest [APPLICATION 10],
//!           delResponse [APPLICATION 11], modDNRequest [APPLICATION 12],
//!           modDNResponse [APPLICATION 13], compareRequest [APPLICATION 14],
//!           compareResponse [APPLICATION 15], abandonRequest [APPLICATION 16],
//!           extendedReq [APPLICATION 23], extendedResp [APPLICATION 24],
//!           ..., intermediateResponse [APPLICATION 25] },
//!      controls       [0] Controls OPTIONAL }
//! ```
//!
//! Which function for which bytes:
//! - a TCP stream on 389/3268 before any SASL security layer: [`frame`] / [`is_pdu_start`],
//!   then [`parse`] on each whole PDU;
//! - the same stream after a SASL bind that negotiated integrity or confidentiality (the
//!   server's successful bindResponse to a GSSAPI/GSS-SPNEGO/NTLM bind with sign or seal,
//!   RFC 4422 3.7): [`frame_sasl`] / [`is_sasl_start`]; the buffers are wrapped GSS tokens,
//!   opaque without keys. The two framings are told apart by their first byte: an LDAPMessage
//!   starts with 0x30, a SASL buffer length (at most [`MAX_SASL_BUFFER`]) with 0x00;
//! - a CLDAP datagram (UDP 389; RFC 1798, MS-ADTS 6.3.3): the same LDAPMessage without
//!   framing, possibly several in one datagram (searchResEntry + searchResDone): [`messages`].
//!
//! Strings (LDAPString, LDAPDN, LDAPOID) are UTF-8 octets on the wire, borrowed here as
//! [`LdapString`] and decoded only when the caller asks.

pub mod filter;
pub mod ping;

use std::borrow::Cow;
use std::fmt;

use thiserror::Error;

use crate::ber::{self, BerError, Class, Tlv, universal};
use crate::framing::{Framing, Start};

pub use filter::{FilterFlags, MAX_FILTER_DEPTH, MAX_FILTER_ITEMS, MAX_FILTER_LEN};

/// Largest SASL buffer [`frame_sasl`] accepts. RFC 4752 3.3 negotiates the maximum buffer
/// size in 3 octets, so no GSSAPI security layer buffer exceeds 2^24 - 1; NTLM and
/// GSS-SPNEGO layers on AD use the same limit.
pub const MAX_SASL_BUFFER: usize = 0x00ff_ffff;

/// Smallest plausible SASL buffer for [`is_sasl_start`]: the shortest wrap tokens (NTLM's
/// 16-byte signature, the 16-byte RFC 4121 header) plus at least one octet of message.
pub const MIN_SASL_BUFFER: usize = 17;

/// Largest LDAPMessage [`is_pdu_start`] believes in. Active Directory refuses requests above
/// its MaxReceiveBuffer (10 MiB by default) and sends one entry per message, so a larger
/// length after a gap is much more likely random bytes than a message. [`frame`] does not
/// apply it: the caller decides what it buffers.
pub const MAX_PLAUSIBLE_MESSAGE: usize = 16 << 20;

/// Most controls kept per message. Clients send a few (paged results, SD flags, server-side
/// sort, LDAP_SERVER_EXTENDED_DN...); more is flagged and the rest dropped.
pub const MAX_CONTROLS: usize = 32;

/// Most items kept in any list in a message: requested attributes, modify changes, add
/// attributes, referral URIs, entry attributes counted. Generous for real requests (AD
/// tools ask for tens of attributes), and the allocation stays bounded whatever the input.
pub const MAX_LIST_ITEMS: usize = 1024;

/// Most LDAPMessages read from one CLDAP datagram by [`messages`]. A DC-locator exchange
/// has two (searchResEntry then searchResDone); a datagram cannot hold more than ~9000
/// minimal messages, and no sender packs more than a few.
pub const MAX_MESSAGES_PER_DATAGRAM: usize = 16;

/// Most LDAPMessages read from one SASL buffer by [`sasl_messages`]: a signed search answer
/// wraps all its entries, references and the done together (MS-ADTS caps a page at 1000
/// entries by default); the buffer's own size bounds the work too.
pub const MAX_MESSAGES_PER_SASL_BUFFER: usize = 4096;

/// An LDAPString, LDAPDN or LDAPOID: octets that should be UTF-8 (RFC 4511 4.1.2), borrowed.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct LdapString<'a>(pub &'a [u8]);

impl<'a> LdapString<'a> {
    /// The string if it is valid UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.0).ok()
    }

    /// The string with invalid UTF-8 replaced by U+FFFD; borrowed when valid.
    pub fn to_str_lossy(&self) -> Cow<'a, str> {
        String::from_utf8_lossy(self.0)
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for LdapString<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_str_lossy(), f)
    }
}

impl fmt::Display for LdapString<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_str_lossy())
    }
}

/// LDAPResult resultCode (RFC 4511 4.1.9, Appendix A). Open: unknown codes still parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResultCode(pub u32);

impl ResultCode {
    pub const SUCCESS: Self = Self(0);
    pub const OPERATIONS_ERROR: Self = Self(1);
    pub const PROTOCOL_ERROR: Self = Self(2);
    pub const TIME_LIMIT_EXCEEDED: Self = Self(3);
    pub const SIZE_LIMIT_EXCEEDED: Self = Self(4);
    pub const COMPARE_FALSE: Self = Self(5);
    pub const COMPARE_TRUE: Self = Self(6);
    pub const AUTH_METHOD_NOT_SUPPORTED: Self = Self(7);
    pub const STRONGER_AUTH_REQUIRED: Self = Self(8);
    pub const REFERRAL: Self = Self(10);
    pub const ADMIN_LIMIT_EXCEEDED: Self = Self(11);
    pub const UNAVAILABLE_CRITICAL_EXTENSION: Self = Self(12);
    pub const CONFIDENTIALITY_REQUIRED: Self = Self(13);
    pub const SASL_BIND_IN_PROGRESS: Self = Self(14);
    pub const NO_SUCH_ATTRIBUTE: Self = Self(16);
    pub const UNDEFINED_ATTRIBUTE_TYPE: Self = Self(17);
    pub const INAPPROPRIATE_MATCHING: Self = Self(18);
    pub const CONSTRAINT_VIOLATION: Self = Self(19);
    pub const ATTRIBUTE_OR_VALUE_EXISTS: Self = Self(20);
    pub const INVALID_ATTRIBUTE_SYNTAX: Self = Self(21);
    pub const NO_SUCH_OBJECT: Self = Self(32);
    pub const ALIAS_PROBLEM: Self = Self(33);
    pub const INVALID_DN_SYNTAX: Self = Self(34);
    pub const ALIAS_DEREFERENCING_PROBLEM: Self = Self(36);
    pub const INAPPROPRIATE_AUTHENTICATION: Self = Self(48);
    pub const INVALID_CREDENTIALS: Self = Self(49);
    pub const INSUFFICIENT_ACCESS_RIGHTS: Self = Self(50);
    pub const BUSY: Self = Self(51);
    pub const UNAVAILABLE: Self = Self(52);
    pub const UNWILLING_TO_PERFORM: Self = Self(53);
    pub const LOOP_DETECT: Self = Self(54);
    pub const NAMING_VIOLATION: Self = Self(64);
    pub const OBJECT_CLASS_VIOLATION: Self = Self(65);
    pub const NOT_ALLOWED_ON_NON_LEAF: Self = Self(66);
    pub const NOT_ALLOWED_ON_RDN: Self = Self(67);
    pub const ENTRY_ALREADY_EXISTS: Self = Self(68);
    pub const OBJECT_CLASS_MODS_PROHIBITED: Self = Self(69);
    pub const AFFECTS_MULTIPLE_DSAS: Self = Self(71);
    pub const OTHER: Self = Self(80);

    /// The RFC 4511 name, or `None` for codes it does not define.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "success",
            1 => "operationsError",
            2 => "protocolError",
            3 => "timeLimitExceeded",
            4 => "sizeLimitExceeded",
            5 => "compareFalse",
            6 => "compareTrue",
            7 => "authMethodNotSupported",
            8 => "strongerAuthRequired",
            10 => "referral",
            11 => "adminLimitExceeded",
            12 => "unavailableCriticalExtension",
            13 => "confidentialityRequired",
            14 => "saslBindInProgress",
            16 => "noSuchAttribute",
            17 => "undefinedAttributeType",
            18 => "inappropriateMatching",
            19 => "constraintViolation",
            20 => "attributeOrValueExists",
            21 => "invalidAttributeSyntax",
            32 => "noSuchObject",
            33 => "aliasProblem",
            34 => "invalidDNSyntax",
            36 => "aliasDereferencingProblem",
            48 => "inappropriateAuthentication",
            49 => "invalidCredentials",
            50 => "insufficientAccessRights",
            51 => "busy",
            52 => "unavailable",
            53 => "unwillingToPerform",
            54 => "loopDetect",
            64 => "namingViolation",
            65 => "objectClassViolation",
            66 => "notAllowedOnNonLeaf",
            67 => "notAllowedOnRDN",
            68 => "entryAlreadyExists",
            69 => "objectClassModsProhibited",
            71 => "affectsMultipleDSAs",
            80 => "other",
            _ => return None,
        })
    }
}

/// SearchRequest scope (RFC 4511 4.5.1.2). Open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Scope(pub u32);

impl Scope {
    pub const BASE_OBJECT: Self = Self(0);
    pub const SINGLE_LEVEL: Self = Self(1);
    pub const WHOLE_SUBTREE: Self = Self(2);

    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "baseObject",
            1 => "singleLevel",
            2 => "wholeSubtree",
            _ => return None,
        })
    }
}

/// SearchRequest derefAliases (RFC 4511 4.5.1.3). Open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DerefAliases(pub u32);

impl DerefAliases {
    pub const NEVER: Self = Self(0);
    pub const IN_SEARCHING: Self = Self(1);
    pub const FINDING_BASE_OBJ: Self = Self(2);
    pub const ALWAYS: Self = Self(3);

    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "neverDerefAliases",
            1 => "derefInSearching",
            2 => "derefFindingBaseObj",
            3 => "derefAlways",
            _ => return None,
        })
    }
}

/// ModifyRequest change operation (RFC 4511 4.6; increment from RFC 4525). Open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Operation(pub u32);

impl Operation {
    pub const ADD: Self = Self(0);
    pub const DELETE: Self = Self(1);
    pub const REPLACE: Self = Self(2);
    pub const INCREMENT: Self = Self(3);

    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "add",
            1 => "delete",
            2 => "replace",
            3 => "increment",
            _ => return None,
        })
    }
}

/// Things that parsed but are not what a well-behaved peer sends. All false normally.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Anomalies {
    /// Octets after the last element inside the LDAPMessage or the operation.
    pub trailing_data: bool,
    /// More than [`MAX_CONTROLS`] controls; the rest were dropped.
    pub too_many_controls: bool,
    /// A list went past [`MAX_LIST_ITEMS`]; the rest were dropped or not counted.
    pub list_truncated: bool,
    /// The filter had to be cut, or nested deeper than allowed, or had an unknown choice,
    /// or an empty and/or, or out-of-order substrings: see [`FilterFlags`].
    pub filter: FilterFlags,
    /// A bindRequest version other than 3 (RFC 4511 4.2: 3 is the only one defined here;
    /// 2 still comes from old clients).
    pub unusual_bind_version: bool,
}

/// Why bytes are not an LDAPMessage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum LdapError {
    /// The outer SEQUENCE needs `needed` bytes, more than given.
    #[error("LDAP message truncated: {needed} bytes needed")]
    Truncated { needed: usize },
    /// An element of the message is malformed or not what the grammar requires.
    #[error("malformed LDAP {at}: {source}")]
    Ber {
        at: &'static str,
        #[source]
        source: BerError,
    },
}

trait At<T> {
    fn at(self, at: &'static str) -> Result<T, LdapError>;
}

impl<T> At<T> for Result<T, BerError> {
    fn at(self, at: &'static str) -> Result<T, LdapError> {
        self.map_err(|source| LdapError::Ber { at, source })
    }
}

/// One LDAPMessage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LdapMessage<'a> {
    pub message_id: u32,
    pub op: ProtocolOp<'a>,
    /// Controls (RFC 4511 4.1.11), at most [`MAX_CONTROLS`].
    pub controls: Vec<Control<'a>>,
    pub anomalies: Anomalies,
}

/// ```text
/// Control ::= SEQUENCE { controlType LDAPOID, criticality BOOLEAN DEFAULT FALSE,
///                        controlValue OCTET STRING OPTIONAL }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Control<'a> {
    pub oid: LdapString<'a>,
    pub critical: bool,
    /// The value's octets (control-specific BER, e.g. paged results' cookie), if present.
    pub value: Option<&'a [u8]>,
}

/// ```text
/// LDAPResult ::= SEQUENCE { resultCode ENUMERATED, matchedDN LDAPDN,
///      diagnosticMessage LDAPString, referral [3] Referral OPTIONAL }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LdapResult<'a> {
    pub code: ResultCode,
    /// For a Sicily bindResponse this holds the NTLM CHALLENGE message, not a DN: see
    /// [`ProtocolOp::BindResponse`].
    pub matched_dn: LdapString<'a>,
    /// AD puts the Win32 error here (`80090308: LdapErr: DSID-..., data 52e, ...`).
    pub diagnostic_message: LdapString<'a>,
    /// Referral URIs, at most [`MAX_LIST_ITEMS`].
    pub referral: Vec<LdapString<'a>>,
}

/// Which step of Microsoft's Sicily NTLM bind (MS-ADTS 5.1.1.1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SicilyStep {
    /// `[9]`: the client asks which packages the server supports.
    PackageDiscovery,
    /// `[10]`: carries the NTLM NEGOTIATE message.
    Negotiate,
    /// `[11]`: carries the NTLM AUTHENTICATE message.
    Response,
}

/// ```text
/// AuthenticationChoice ::= CHOICE { simple [0] OCTET STRING, -- 1 and 2 reserved
///      sasl [3] SaslCredentials, ... }
/// SaslCredentials ::= SEQUENCE { mechanism LDAPString, credentials OCTET STRING OPTIONAL }
/// -- MS-ADTS 5.1.1.1.3 adds sicilyPackageDiscovery [9], sicilyNegotiate [10],
/// -- sicilyResponse [11], each an OCTET STRING
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindAuth<'a> {
    /// A simple bind. The password is not kept: it is a cleartext credential, and a sensor
    /// that stored it would turn every record, log and crash dump into a password store.
    /// Whether one was present is what detection needs (a name with an empty password is
    /// an unauthenticated bind, RFC 4513 5.1.2; a non-empty one is a cleartext bind).
    Simple { password_present: bool },
    /// A SASL bind: mechanism (GSSAPI, GSS-SPNEGO, NTLM, EXTERNAL, DIGEST-MD5...) and token.
    Sasl {
        mechanism: LdapString<'a>,
        credentials: Option<&'a [u8]>,
    },
    /// A Sicily (Microsoft NTLM) bind step; `token` is the NTLMSSP message (empty for
    /// package discovery).
    Sicily { step: SicilyStep, token: &'a [u8] },
    /// An authentication choice not defined above (reserved `[1]`, `[2]`, or later ones).
    Unknown { tag: u32 },
}

/// Values borrowed from one attribute of a change: enough for any attribute a detector reads
/// (an ADD's objectClass has 4, a group's member list is read by count, not by value).
pub const MAX_CHANGE_VALUES: usize = 64;

/// One attribute of a ModifyRequest's change or an AddRequest:
/// `PartialAttribute ::= SEQUENCE { type AttributeDescription, vals SET OF value
/// AttributeValue }` (RFC 4511 4.1.7). Values are borrowed, not copied: which may be shown is
/// the caller's decision (never a password's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change<'a> {
    /// The ModifyRequest's operation; `None` for an AddRequest's attribute.
    pub operation: Option<Operation>,
    pub attribute: LdapString<'a>,
    /// The first [`MAX_CHANGE_VALUES`] values.
    pub values: Vec<&'a [u8]>,
    /// All the values, also those past [`MAX_CHANGE_VALUES`].
    pub value_count: usize,
}

/// The protocolOp of an LDAPMessage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProtocolOp<'a> {
    /// `BindRequest ::= [APPLICATION 0] SEQUENCE { version INTEGER (1..127), name LDAPDN,
    /// authentication AuthenticationChoice }` (RFC 4511 4.2)
    BindRequest {
        version: u32,
        name: LdapString<'a>,
        auth: BindAuth<'a>,
    },
    /// `BindResponse ::= [APPLICATION 1] SEQUENCE { COMPONENTS OF LDAPResult,
    /// serverSaslCreds [7] OCTET STRING OPTIONAL }` (RFC 4511 4.2.2).
    ///
    /// In a Sicily exchange the server returns its NTLM CHALLENGE in matchedDN (MS-ADTS
    /// 5.1.1.1.3); `sicily_challenge` is set when matchedDN starts with `NTLMSSP\0`.
    BindResponse {
        result: LdapResult<'a>,
        server_sasl_creds: Option<&'a [u8]>,
        sicily_challenge: Option<&'a [u8]>,
    },
    /// `UnbindRequest ::= [APPLICATION 2] NULL` (RFC 4511 4.3)
    UnbindRequest,
    /// RFC 4511 4.5.1:
    /// `SearchRequest ::= [APPLICATION 3] SEQUENCE { baseObject LDAPDN, scope ENUMERATED,
    /// derefAliases ENUMERATED, sizeLimit INTEGER (0..maxInt), timeLimit INTEGER (0..maxInt),
    /// typesOnly BOOLEAN, filter Filter, attributes AttributeSelection }`
    SearchRequest {
        base: LdapString<'a>,
        scope: Scope,
        deref: DerefAliases,
        size_limit: u32,
        time_limit: u32,
        types_only: bool,
        /// RFC 4515 text, see [`filter`]; cut at [`MAX_FILTER_LEN`] (flagged).
        filter: String,
        /// At most [`MAX_LIST_ITEMS`]; empty means all user attributes.
        attributes: Vec<LdapString<'a>>,
    },
    /// `SearchResultEntry ::= [APPLICATION 4] SEQUENCE { objectName LDAPDN,
    /// attributes PartialAttributeList }` (RFC 4511 4.5.2). Count capped at
    /// [`MAX_LIST_ITEMS`].
    SearchResultEntry {
        object_name: LdapString<'a>,
        attribute_count: usize,
        /// The first value of a `Netlogon` attribute: the answer to an LDAP ping (MS-ADTS
        /// 6.3.3.2), a NETLOGON_SAM_LOGON_RESPONSE(_EX) or its older forms (6.3.1.9).
        netlogon: Option<&'a [u8]>,
    },
    /// `SearchResultReference ::= [APPLICATION 19] SEQUENCE SIZE (1..MAX) OF uri URI`
    SearchResultReference {
        uris: Vec<LdapString<'a>>,
    },
    /// `SearchResultDone ::= [APPLICATION 5] LDAPResult`
    SearchResultDone(LdapResult<'a>),
    /// `ModifyRequest ::= [APPLICATION 6] SEQUENCE { object LDAPDN, changes SEQUENCE OF
    /// change SEQUENCE { operation ENUMERATED, modification PartialAttribute } }` (4.6)
    ModifyRequest {
        object: LdapString<'a>,
        /// One per change, `operation` set.
        changes: Vec<Change<'a>>,
    },
    ModifyResponse(LdapResult<'a>),
    /// `AddRequest ::= [APPLICATION 8] SEQUENCE { entry LDAPDN, attributes AttributeList }`
    /// (4.7); one [`Change`] per attribute, without an operation.
    AddRequest {
        entry: LdapString<'a>,
        attributes: Vec<Change<'a>>,
    },
    AddResponse(LdapResult<'a>),
    /// `DelRequest ::= [APPLICATION 10] LDAPDN` (4.8)
    DelRequest {
        dn: LdapString<'a>,
    },
    DelResponse(LdapResult<'a>),
    /// `ModifyDNRequest ::= [APPLICATION 12] SEQUENCE { entry LDAPDN, newrdn RelativeLDAPDN,
    /// deleteoldrdn BOOLEAN, newSuperior [0] LDAPDN OPTIONAL }` (4.9)
    ModifyDnRequest {
        entry: LdapString<'a>,
        new_rdn: LdapString<'a>,
        delete_old_rdn: bool,
        new_superior: Option<LdapString<'a>>,
    },
    ModifyDnResponse(LdapResult<'a>),
    /// `CompareRequest ::= [APPLICATION 14] SEQUENCE { entry LDAPDN,
    /// ava AttributeValueAssertion }` (4.10); the asserted value is not kept.
    CompareRequest {
        entry: LdapString<'a>,
        attribute: LdapString<'a>,
    },
    CompareResponse(LdapResult<'a>),
    /// `AbandonRequest ::= [APPLICATION 16] MessageID` (4.11)
    AbandonRequest {
        id: u32,
    },
    /// `ExtendedRequest ::= [APPLICATION 23] SEQUENCE { requestName [0] LDAPOID,
    /// requestValue [1] OCTET STRING OPTIONAL }` (4.12). 1.3.6.1.4.1.1466.20037 is
    /// StartTLS (after its success response the stream is TLS); 1.3.6.1.4.1.4203.1.11.3 is
    /// WhoAmI.
    ExtendedRequest {
        name: LdapString<'a>,
        value_len: Option<usize>,
    },
    /// `ExtendedResponse ::= [APPLICATION 24] SEQUENCE { COMPONENTS OF LDAPResult,
    /// responseName [10] LDAPOID OPTIONAL, responseValue [11] OCTET STRING OPTIONAL }`
    ExtendedResponse {
        result: LdapResult<'a>,
        name: Option<LdapString<'a>>,
        value: Option<&'a [u8]>,
    },
    /// `IntermediateResponse ::= [APPLICATION 25] SEQUENCE { responseName [0] LDAPOID
    /// OPTIONAL, responseValue [1] OCTET STRING OPTIONAL }` (4.13)
    IntermediateResponse {
        name: Option<LdapString<'a>>,
        value_len: Option<usize>,
    },
    /// An APPLICATION tag RFC 4511 does not assign; contents not interpreted.
    Unknown {
        tag: u32,
    },
}

/// Application tag numbers of the protocolOp choices (RFC 4511 Appendix B).
mod op {
    pub(super) const BIND_REQUEST: u32 = 0;
    pub(super) const BIND_RESPONSE: u32 = 1;
    pub(super) const UNBIND_REQUEST: u32 = 2;
    pub(super) const SEARCH_REQUEST: u32 = 3;
    pub(super) const SEARCH_RES_ENTRY: u32 = 4;
    pub(super) const SEARCH_RES_DONE: u32 = 5;
    pub(super) const MODIFY_REQUEST: u32 = 6;
    pub(super) const MODIFY_RESPONSE: u32 = 7;
    pub(super) const ADD_REQUEST: u32 = 8;
    pub(super) const ADD_RESPONSE: u32 = 9;
    pub(super) const DEL_REQUEST: u32 = 10;
    pub(super) const DEL_RESPONSE: u32 = 11;
    pub(super) const MOD_DN_REQUEST: u32 = 12;
    pub(super) const MOD_DN_RESPONSE: u32 = 13;
    pub(super) const COMPARE_REQUEST: u32 = 14;
    pub(super) const COMPARE_RESPONSE: u32 = 15;
    pub(super) const ABANDON_REQUEST: u32 = 16;
    pub(super) const SEARCH_RES_REF: u32 = 19;
    pub(super) const EXTENDED_REQUEST: u32 = 23;
    pub(super) const EXTENDED_RESPONSE: u32 = 24;
    pub(super) const INTERMEDIATE_RESPONSE: u32 = 25;
}

/// The identifier octets of every protocolOp RFC 4511 defines: APPLICATION class,
/// constructed except for unbind (NULL), delRequest (LDAPDN) and abandon (INTEGER).
const OP_IDENTIFIERS: [u8; 21] = [
    0x60, 0x61, 0x42, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x4a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f,
    0x50, 0x73, 0x77, 0x78, 0x79,
];

/// Length of the LDAPMessage at the front of a TCP stream, from its header.
///
/// An LDAPMessage is a universal SEQUENCE (0x30) with a definite length (RFC 4511 5.1), so
/// the PDU is the identifier, the length octets and that many contents octets. Indefinite
/// or over-long length forms are [`Framing::NotPdu`].
pub fn frame(bytes: &[u8]) -> Framing {
    match bytes.first() {
        None => return Framing::NeedMore,
        Some(0x30) => {}
        Some(_) => return Framing::NotPdu,
    }
    match ber::read_header(bytes) {
        Ok(h) => h.total_len().map_or(Framing::NotPdu, Framing::Pdu),
        Err(BerError::Truncated { .. }) => Framing::NeedMore,
        Err(_) => Framing::NotPdu,
    }
}

/// Length of the SASL buffer at the front of a stream protected by a SASL security layer.
///
/// RFC 4422 3.7: "the security layer ... in the form of a 4-octet field, in network byte
/// order, that represents the length of the buffer, followed by the buffer" (RFC 4752 3.3 for
/// GSSAPI; AD uses the same for GSS-SPNEGO and NTLM). Zero or more than [`MAX_SASL_BUFFER`]
/// is [`Framing::NotPdu`].
pub fn frame_sasl(bytes: &[u8]) -> Framing {
    let Some(len) = sasl_len(bytes) else {
        return Framing::NeedMore;
    };
    if len == 0 || len > MAX_SASL_BUFFER {
        return Framing::NotPdu;
    }
    len.checked_add(4).map_or(Framing::NotPdu, Framing::Pdu)
}

/// The SASL buffer's length field (RFC 4422 3.7).
const SASL_LENGTH_LEN: usize = 4;

fn sasl_len(bytes: &[u8]) -> Option<usize> {
    let b: [u8; SASL_LENGTH_LEN] = bytes.get(..SASL_LENGTH_LEN)?.try_into().ok()?;
    usize::try_from(u32::from_be_bytes(b)).ok()
}

/// What a SASL security layer buffer (its 4-byte length included, as [`frame_sasl`] cuts it)
/// carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SaslPayload<'a> {
    /// Signed, not sealed: the LDAPMessages inside, in clear, for [`messages`].
    Clear(Cow<'a, [u8]>),
    /// Encrypted, or in a form not known: only its size can be told.
    Opaque,
}

/// Reads a SASL buffer's wrap token ([`crate::sasl`]). A Kerberos token says whether it seals;
/// an NTLMSSP one does not, so its bytes count as clear only when they are whole LDAPMessages,
/// each parsing, that fill it exactly (RC4 ciphertext passes that test with odds far below one
/// in 2^32: the first octet must be 0x30 and the BER length must match the rest).
#[must_use]
pub fn sasl_payload(buffer: &[u8]) -> SaslPayload<'_> {
    let Some(token) = buffer.get(SASL_LENGTH_LEN..) else {
        return SaslPayload::Opaque;
    };
    match crate::sasl::unwrap(token) {
        crate::sasl::Wrap::Signed(plaintext) => SaslPayload::Clear(plaintext),
        crate::sasl::Wrap::Ntlm(bytes) if whole_messages(bytes) => {
            SaslPayload::Clear(Cow::Borrowed(bytes))
        }
        crate::sasl::Wrap::Ntlm(_) | crate::sasl::Wrap::Sealed | crate::sasl::Wrap::Unknown => {
            SaslPayload::Opaque
        }
    }
}

/// The front of the clear text of a SASL buffer cut short (`buffer` holds its first bytes,
/// length included): what a signed-only Kerberos wrap lets be read of a buffer too long to keep
/// whole. `None` when sealed, NTLMSSP, or unreadable.
#[must_use]
pub fn sasl_clear_prefix(buffer: &[u8]) -> Option<&[u8]> {
    let total = sasl_len(buffer)?;
    crate::sasl::signed_prefix(buffer.get(SASL_LENGTH_LEN..)?, total)
}

/// Whether `bytes` are one or more LDAPMessages end to end (at most
/// [`MAX_MESSAGES_PER_SASL_BUFFER`]), each parsing without trailing data.
fn whole_messages(mut bytes: &[u8]) -> bool {
    for _ in 0..MAX_MESSAGES_PER_SASL_BUFFER {
        let Framing::Pdu(len) = frame(bytes) else {
            return false;
        };
        let Some((message, rest)) = bytes.split_at_checked(len) else {
            return false;
        };
        if parse(message).is_err() {
            return false;
        }
        if rest.is_empty() {
            return true;
        }
        bytes = rest;
    }
    false
}

/// Whether a SASL security-layer buffer plausibly starts here, for resynchronising.
///
/// Checks the length (between [`MIN_SASL_BUFFER`] and [`MAX_SASL_BUFFER`]) and that the
/// buffer begins like a wrap token seen on LDAP: RFC 1964 (GSS framing, 0x60 then a definite
/// length), RFC 4121 Wrap (TOK_ID 05 04) or MIC (04 04), or an NTLM signature
/// (version 1, MS-NLMP 2.2.2.9.1).
pub fn is_sasl_start(bytes: &[u8]) -> Start {
    let Some(len) = sasl_len(bytes) else {
        return Start::NeedMore;
    };
    if !(MIN_SASL_BUFFER..=MAX_SASL_BUFFER).contains(&len) {
        return Start::No;
    }
    let Some(token) = bytes.get(4..8) else {
        return Start::NeedMore;
    };
    let plausible = match token {
        [0x60, l, ..] => *l != 0x80 && *l <= 0x84,
        [0x05 | 0x04, 0x04, ..] => true,
        [0x01, 0x00, 0x00, 0x00] => true,
        _ => false,
    };
    if plausible { Start::Yes } else { Start::No }
}

/// Whether an LDAPMessage plausibly starts at the front of `bytes` (strict, for resync).
///
/// Checks: 0x30 with a definite length of 5 to [`MAX_PLAUSIBLE_MESSAGE`]; a messageID
/// INTEGER of 1 to 4 octets, non-negative; a protocolOp identifier RFC 4511 defines
/// (0x60 bindRequest, 0x61 bindResponse, 0x42 unbind, 0x63-0x65 search request/entry/done,
/// 0x73 reference, 0x66-0x69 modify/add, 0x4a/0x6b del, 0x6c-0x6f modDN/compare,
/// 0x50 abandon, 0x77/0x78 extended, 0x79 intermediate) with a definite length that fits in
/// the message; and for the primitive ops, their exact size (unbind NULL is empty, abandon's
/// ID 1 to 4 octets). Non-minimal lengths are accepted: AD always uses the 0x84 form.
pub fn is_pdu_start(bytes: &[u8]) -> Start {
    match check_pdu_start(bytes) {
        Ok(true) => Start::Yes,
        Ok(false) => Start::No,
        Err(()) => Start::NeedMore,
    }
}

/// `Err(())` when more bytes are needed to decide.
fn check_pdu_start(bytes: &[u8]) -> Result<bool, ()> {
    let outer = match header_or_need(bytes)? {
        Some(h) if h.class == Class::Universal && h.constructed && h.tag == 16 => h,
        _ => return Ok(false),
    };
    if !(5..=MAX_PLAUSIBLE_MESSAGE).contains(&outer.value_len) {
        return Ok(false);
    }
    let body = bytes.get(outer.header_len..).unwrap_or_default();
    let id = match body {
        [] | [_] | [_, _] => return Err(()),
        [0x02, n @ 1..=4, first, ..] if first & 0x80 == 0 => usize::from(*n),
        _ => return Ok(false),
    };
    let op_at = id.saturating_add(2);
    let Some(op_bytes) = body.get(op_at..) else {
        return Err(());
    };
    let Some(&op_id) = op_bytes.first() else {
        return Err(());
    };
    if !OP_IDENTIFIERS.contains(&op_id) {
        return Ok(false);
    }
    let Some(h) = header_or_need(op_bytes)? else {
        return Ok(false);
    };
    let fits = h
        .total_len()
        .and_then(|t| t.checked_add(op_at))
        .is_some_and(|t| t <= outer.value_len);
    let size_ok = match op_id {
        0x42 => h.value_len == 0,
        0x50 => (1..=4).contains(&h.value_len),
        _ => true,
    };
    Ok(fits && size_ok)
}

/// `Ok(None)` for a malformed header, `Err(())` for a cut one.
fn header_or_need(bytes: &[u8]) -> Result<Option<ber::Header>, ()> {
    match ber::read_header(bytes) {
        Ok(h) => Ok(Some(h)),
        Err(BerError::Truncated { .. }) => Err(()),
        Err(_) => Ok(None),
    }
}

/// Parses one whole LDAPMessage (RFC 4511 4.1.1); octets after it are flagged as
/// [`Anomalies::trailing_data`]. For a TCP PDU from [`frame`].
pub fn parse(bytes: &[u8]) -> Result<LdapMessage<'_>, LdapError> {
    let (mut msg, rest) = parse_prefix(bytes)?;
    if !rest.is_empty() {
        msg.anomalies.trailing_data = true;
    }
    Ok(msg)
}

/// Parses the LDAPMessage at the front of `bytes` and returns the bytes after it.
pub fn parse_prefix(bytes: &[u8]) -> Result<(LdapMessage<'_>, &[u8]), LdapError> {
    let (seq, rest) = match ber::read_sequence(bytes) {
        Err(BerError::Truncated { needed }) => return Err(LdapError::Truncated { needed }),
        other => other.at("LDAPMessage")?,
    };
    let (message_id, body) = ber::read_u32(seq.value).at("messageID")?;
    let (op_tlv, after_op) = ber::read_tlv(body).at("protocolOp")?;
    let mut anomalies = Anomalies::default();
    let op = parse_op(op_tlv, &mut anomalies)?;
    let controls = parse_controls(after_op, &mut anomalies)?;
    Ok((
        LdapMessage {
            message_id,
            op,
            controls,
            anomalies,
        },
        rest,
    ))
}

/// The LDAPMessages of a CLDAP datagram (MS-ADTS 6.3.3: LDAPMessage over UDP, no framing).
///
/// Yields at most [`MAX_MESSAGES_PER_DATAGRAM`] messages, and stops after the first error.
pub fn messages(datagram: &[u8]) -> Messages<'_> {
    Messages {
        rest: datagram,
        count: 0,
        max: MAX_MESSAGES_PER_DATAGRAM,
    }
}

/// The LDAPMessages of a SASL buffer's clear payload, end to end; at most
/// [`MAX_MESSAGES_PER_SASL_BUFFER`], stopping after the first error.
pub fn sasl_messages(payload: &[u8]) -> Messages<'_> {
    Messages {
        rest: payload,
        count: 0,
        max: MAX_MESSAGES_PER_SASL_BUFFER,
    }
}

/// Iterator returned by [`messages`].
#[derive(Clone, Debug)]
pub struct Messages<'a> {
    rest: &'a [u8],
    count: usize,
    max: usize,
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<LdapMessage<'a>, LdapError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() || self.count >= self.max {
            return None;
        }
        self.count = self.count.saturating_add(1);
        match parse_prefix(self.rest) {
            Ok((m, rest)) => {
                self.rest = rest;
                Some(Ok(m))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

fn parse_controls<'a>(
    bytes: &'a [u8],
    anomalies: &mut Anomalies,
) -> Result<Vec<Control<'a>>, LdapError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let (tlv, rest) = ber::read_expected(bytes, Class::ContextSpecific, true, 0).at("controls")?;
    anomalies.trailing_data |= !rest.is_empty();
    let mut out = Vec::new();
    for c in tlv.children() {
        let c = c.at("control")?;
        if out.len() == MAX_CONTROLS {
            anomalies.too_many_controls = true;
            break;
        }
        out.push(parse_control(c)?);
    }
    Ok(out)
}

fn parse_control(c: Tlv<'_>) -> Result<Control<'_>, LdapError> {
    c.expect(Class::Universal, true, universal::SEQUENCE)
        .at("control")?;
    let (oid, mut rest) = ber::read_octet_string(c.value).at("control.controlType")?;
    let mut critical = false;
    if rest.first() == Some(&0x01) {
        (critical, rest) = ber::read_boolean(rest).at("control.criticality")?;
    }
    let mut value = None;
    if !rest.is_empty() {
        let (v, _) = ber::read_octet_string(rest).at("control.controlValue")?;
        value = Some(v);
    }
    Ok(Control {
        oid: LdapString(oid),
        critical,
        value,
    })
}

fn parse_op<'a>(t: Tlv<'a>, an: &mut Anomalies) -> Result<ProtocolOp<'a>, LdapError> {
    if t.class != Class::Application {
        return Err(t.unexpected()).at("protocolOp");
    }
    let primitive = matches!(
        t.tag,
        op::UNBIND_REQUEST | op::DEL_REQUEST | op::ABANDON_REQUEST
    );
    let known = OP_IDENTIFIERS.iter().any(|&b| u32::from(b & 0x1f) == t.tag);
    if known && t.constructed == primitive {
        return Err(t.unexpected()).at("protocolOp");
    }
    let v = t.value;
    Ok(match t.tag {
        op::BIND_REQUEST => parse_bind_request(v, an)?,
        op::BIND_RESPONSE => parse_bind_response(v, an)?,
        op::UNBIND_REQUEST => ProtocolOp::UnbindRequest,
        op::SEARCH_REQUEST => parse_search_request(v, an)?,
        op::SEARCH_RES_ENTRY => parse_search_entry(v, an)?,
        op::SEARCH_RES_DONE => ProtocolOp::SearchResultDone(result_only(v, an)?),
        op::MODIFY_REQUEST => parse_modify_request(v, an)?,
        op::MODIFY_RESPONSE => ProtocolOp::ModifyResponse(result_only(v, an)?),
        op::ADD_REQUEST => parse_add_request(v, an)?,
        op::ADD_RESPONSE => ProtocolOp::AddResponse(result_only(v, an)?),
        op::DEL_REQUEST => ProtocolOp::DelRequest { dn: LdapString(v) },
        op::DEL_RESPONSE => ProtocolOp::DelResponse(result_only(v, an)?),
        op::MOD_DN_REQUEST => parse_moddn_request(v, an)?,
        op::MOD_DN_RESPONSE => ProtocolOp::ModifyDnResponse(result_only(v, an)?),
        op::COMPARE_REQUEST => parse_compare_request(v, an)?,
        op::COMPARE_RESPONSE => ProtocolOp::CompareResponse(result_only(v, an)?),
        op::ABANDON_REQUEST => ProtocolOp::AbandonRequest {
            id: ber::integer_u32(v).at("abandonRequest")?,
        },
        op::SEARCH_RES_REF => parse_reference(v, an)?,
        op::EXTENDED_REQUEST => parse_extended_request(v, an)?,
        op::EXTENDED_RESPONSE => parse_extended_response(v, an)?,
        op::INTERMEDIATE_RESPONSE => parse_intermediate(v, an)?,
        tag => ProtocolOp::Unknown { tag },
    })
}

fn string<'a>(bytes: &'a [u8], at: &'static str) -> Result<(LdapString<'a>, &'a [u8]), LdapError> {
    let (s, rest) = ber::read_octet_string(bytes).at(at)?;
    Ok((LdapString(s), rest))
}

/// A context-specific primitive element `[tag]` at the front of `bytes`, if there.
fn optional_tagged(bytes: &[u8], tag: u32) -> Result<(Option<&[u8]>, &[u8]), BerError> {
    if bytes.is_empty() {
        return Ok((None, bytes));
    }
    let (t, rest) = ber::read_tlv(bytes)?;
    if t.is(Class::ContextSpecific, false, tag) {
        Ok((Some(t.value), rest))
    } else {
        Ok((None, bytes))
    }
}

/// Reads the LDAPResult components at the front of `bytes`.
fn parse_result<'a>(
    bytes: &'a [u8],
    an: &mut Anomalies,
) -> Result<(LdapResult<'a>, &'a [u8]), LdapError> {
    let (code, rest) = ber::read_enumerated(bytes).at("resultCode")?;
    let (matched_dn, rest) = string(rest, "matchedDN")?;
    let (diagnostic_message, mut rest) = string(rest, "diagnosticMessage")?;
    let mut referral = Vec::new();
    if let Some(&0xa3) = rest.first() {
        let (t, r) = ber::read_tlv(rest).at("referral")?;
        referral = string_list(t, an, "referral URI")?;
        rest = r;
    }
    Ok((
        LdapResult {
            code: ResultCode(code),
            matched_dn,
            diagnostic_message,
            referral,
        },
        rest,
    ))
}

fn result_only<'a>(bytes: &'a [u8], an: &mut Anomalies) -> Result<LdapResult<'a>, LdapError> {
    let (r, rest) = parse_result(bytes, an)?;
    an.trailing_data |= !rest.is_empty();
    Ok(r)
}

/// OCTET STRING children of a constructed element, at most [`MAX_LIST_ITEMS`].
fn string_list<'a>(
    t: Tlv<'a>,
    an: &mut Anomalies,
    at: &'static str,
) -> Result<Vec<LdapString<'a>>, LdapError> {
    let mut out = Vec::new();
    for c in t.children() {
        let c = c.at(at)?;
        if out.len() == MAX_LIST_ITEMS {
            an.list_truncated = true;
            break;
        }
        let c = c
            .expect(Class::Universal, false, universal::OCTET_STRING)
            .at(at)?;
        out.push(LdapString(c.value));
    }
    Ok(out)
}

fn parse_bind_request<'a>(v: &'a [u8], an: &mut Anomalies) -> Result<ProtocolOp<'a>, LdapError> {
    let (version, rest) = ber::read_u32(v).at("bindRequest.version")?;
    an.unusual_bind_version = version != 3;
    let (name, rest) = string(rest, "bindRequest.name")?;
    let (a, rest) = ber::read_tlv(rest).at("bindRequest.authentication")?;
    an.trailing_data |= !rest.is_empty();
    let auth = match (a.class, a.constructed, a.tag) {
        (Class::ContextSpecific, false, 0) => BindAuth::Simple {
            password_present: !a.value.is_empty(),
        },
        (Class::ContextSpecific, true, 3) => {
            let (mechanism, rest) = string(a.value, "saslCredentials.mechanism")?;
            let mut credentials = None;
            if !rest.is_empty() {
                let (c, _) = ber::read_octet_string(rest).at("saslCredentials.credentials")?;
                credentials = Some(c);
            }
            BindAuth::Sasl {
                mechanism,
                credentials,
            }
        }
        (Class::ContextSpecific, false, t @ 9..=11) => BindAuth::Sicily {
            step: match t {
                9 => SicilyStep::PackageDiscovery,
                10 => SicilyStep::Negotiate,
                _ => SicilyStep::Response,
            },
            token: a.value,
        },
        (Class::ContextSpecific, _, tag) => BindAuth::Unknown { tag },
        _ => return Err(a.unexpected()).at("bindRequest.authentication"),
    };
    Ok(ProtocolOp::BindRequest {
        version,
        name,
        auth,
    })
}

fn parse_bind_response<'a>(v: &'a [u8], an: &mut Anomalies) -> Result<ProtocolOp<'a>, LdapError> {
    let (result, rest) = parse_result(v, an)?;
    let (server_sasl_creds, rest) = optional_tagged(rest, 7).at("serverSaslCreds")?;
    an.trailing_data |= !rest.is_empty();
    let sicily_challenge = result
        .matched_dn
        .0
        .starts_with(b"NTLMSSP\0")
        .then_some(result.matched_dn.0);
    Ok(ProtocolOp::BindResponse {
        result,
        server_sasl_creds,
        sicily_challenge,
    })
}

fn parse_search_request<'a>(v: &'a [u8], an: &mut Anomalies) -> Result<ProtocolOp<'a>, LdapError> {
    let (base, rest) = string(v, "searchRequest.baseObject")?;
    let (scope, rest) = ber::read_enumerated(rest).at("searchRequest.scope")?;
    let (deref, rest) = ber::read_enumerated(rest).at("searchRequest.derefAliases")?;
    let (size_limit, rest) = ber::read_u32(rest).at("searchRequest.sizeLimit")?;
    let (time_limit, rest) = ber::read_u32(rest).at("searchRequest.timeLimit")?;
    let (types_only, rest) = ber::read_boolean(rest).at("searchRequest.typesOnly")?;
    let (f, rest) = ber::read_tlv(rest).at("searchRequest.filter")?;
    let (filter, flags) = filter::render(f).at("searchRequest.filter")?;
    an.filter = flags;
    let (attrs, rest) = ber::read_sequence(rest).at("searchRequest.attributes")?;
    an.trailing_data |= !rest.is_empty();
    Ok(ProtocolOp::SearchRequest {
        base,
        scope: Scope(scope),
        deref: DerefAliases(deref),
        size_limit,
        time_limit,
        types_only,
        filter,
        attributes: string_list(attrs, an, "searchRequest.attributes")?,
    })
}

fn parse_search_entry<'a>(v: &'a [u8], an: &mut Anomalies) -> Result<ProtocolOp<'a>, LdapError> {
    let (object_name, rest) = string(v, "searchResEntry.objectName")?;
    let (attrs, rest) = ber::read_sequence(rest).at("searchResEntry.attributes")?;
    an.trailing_data |= !rest.is_empty();
    let mut attribute_count = 0usize;
    let mut netlogon = None;
    for a in attrs.children() {
        let a = a.at("searchResEntry.attribute")?;
        if attribute_count == MAX_LIST_ITEMS {
            an.list_truncated = true;
            break;
        }
        attribute_count = attribute_count.saturating_add(1);
        // Other attributes are only counted, as before: a value this parser does not expect
        // in them costs nothing.
        if netlogon.is_none()
            && let Ok(attribute) = partial_attribute(a, None, "searchResEntry.attribute")
            && attribute
                .attribute
                .as_bytes()
                .eq_ignore_ascii_case(b"netlogon")
        {
            netlogon = attribute.values.first().copied();
        }
    }
    Ok(ProtocolOp::SearchResultEntry {
        object_name,
        attribute_count,
        netlogon,
    })
}

fn parse_reference<'a>(v: &'a [u8], an: &mut Anomalies) -> Result<ProtocolOp<'a>, LdapError> {
    let t = Tlv {
        class: Class::Application,
        constructed: true,
        tag: op::SEARCH_RES_REF,
        value: v,
    };
    Ok(ProtocolOp::SearchResultReference {
        uris: string_list(t, an, "searchResRef")?,
    })
}

/// `PartialAttribute ::= SEQUENCE { type AttributeDescription, vals SET OF value
/// AttributeValue }` (RFC 4511 4.1.7; an Attribute is the same with at least one value).
fn partial_attribute<'a>(
    t: Tlv<'a>,
    operation: Option<Operation>,
    at: &'static str,
) -> Result<Change<'a>, LdapError> {
    let t = t
        .expect(Class::Universal, true, universal::SEQUENCE)
        .at(at)?;
    let (attribute, rest) = string(t.value, at)?;
    let (set, _) = ber::read_tlv(rest).at(at)?;
    let set = set.expect(Class::Universal, true, universal::SET).at(at)?;
    let mut values = Vec::new();
    let mut value_count = 0usize;
    for value in set.children() {
        let value = value
            .at(at)?
            .expect(Class::Universal, false, universal::OCTET_STRING)
            .at(at)?;
        if values.len() < MAX_CHANGE_VALUES {
            values.push(value.value);
        }
        value_count = value_count.saturating_add(1);
    }
    Ok(Change {
        operation,
        attribute,
        values,
        value_count,
    })
}

fn parse_modify_request<'a>(v: &'a [u8], an: &mut Anomalies) -> Result<ProtocolOp<'a>, LdapError> {
    let (object, rest) = string(v, "modifyRequest.object")?;
    let (list, rest) = ber::read_sequence(rest).at("modifyRequest.changes")?;
    an.trailing_data |= !rest.is_empty();
    let mut changes = Vec::new();
    for c in list.children() {
        let c = c.at("modifyRequest.change")?;
        if changes.len() == MAX_LIST_ITEMS {
            an.list_truncated = true;
            break;
        }
        let c = c
            .expect(Class::Universal, true, universal::SEQUENCE)
            .at("modifyRequest.change")?;
        let (operation, rest) = ber::read_enumerated(c.value).at("modifyRequest.operation")?;
        let (m, _) = ber::read_tlv(rest).at("modifyRequest.modification")?;
        changes.push(partial_attribute(
            m,
            Some(Operation(operation)),
            "modifyRequest.modification",
        )?);
    }
    Ok(ProtocolOp::ModifyRequest { object, changes })
}

fn parse_add_request<'a>(v: &'a [u8], an: &mut Anomalies) -> Result<ProtocolOp<'a>, LdapError> {
    let (entry, rest) = string(v, "addRequest.entry")?;
    let (list, rest) = ber::read_sequence(rest).at("addRequest.attributes")?;
    an.trailing_data |= !rest.is_empty();
    let mut attributes = Vec::new();
    for a in list.children() {
        let a = a.at("addRequest.attribute")?;
        if attributes.len() == MAX_LIST_ITEMS {
            an.list_truncated = true;
            break;
        }
        attributes.push(partial_attribute(a, None, "addRequest.attribute")?);
    }
    Ok(ProtocolOp::AddRequest { entry, attributes })
}

fn parse_moddn_request<'a>(v: &'a [u8], an: &mut Anomalies) -> Result<ProtocolOp<'a>, LdapError> {
    let (entry, rest) = string(v, "modDNRequest.entry")?;
    let (new_rdn, rest) = string(rest, "modDNRequest.newrdn")?;
    let (delete_old_rdn, rest) = ber::read_boolean(rest).at("modDNRequest.deleteoldrdn")?;
    let (sup, rest) = optional_tagged(rest, 0).at("modDNRequest.newSuperior")?;
    an.trailing_data |= !rest.is_empty();
    Ok(ProtocolOp::ModifyDnRequest {
        entry,
        new_rdn,
        delete_old_rdn,
        new_superior: sup.map(LdapString),
    })
}

fn parse_compare_request<'a>(v: &'a [u8], an: &mut Anomalies) -> Result<ProtocolOp<'a>, LdapError> {
    let (entry, rest) = string(v, "compareRequest.entry")?;
    let (ava, rest) = ber::read_sequence(rest).at("compareRequest.ava")?;
    an.trailing_data |= !rest.is_empty();
    let (attribute, rest) = string(ava.value, "compareRequest.attributeDesc")?;
    ber::read_octet_string(rest).at("compareRequest.assertionValue")?;
    Ok(ProtocolOp::CompareRequest { entry, attribute })
}

fn parse_extended_request<'a>(
    v: &'a [u8],
    an: &mut Anomalies,
) -> Result<ProtocolOp<'a>, LdapError> {
    let (name, rest) =
        ber::read_expected(v, Class::ContextSpecific, false, 0).at("extendedReq.requestName")?;
    let (value, rest) = optional_tagged(rest, 1).at("extendedReq.requestValue")?;
    an.trailing_data |= !rest.is_empty();
    Ok(ProtocolOp::ExtendedRequest {
        name: LdapString(name.value),
        value_len: value.map(<[u8]>::len),
    })
}

fn parse_extended_response<'a>(
    v: &'a [u8],
    an: &mut Anomalies,
) -> Result<ProtocolOp<'a>, LdapError> {
    let (result, rest) = parse_result(v, an)?;
    let (name, rest) = optional_tagged(rest, 10).at("extendedResp.responseName")?;
    let (value, rest) = optional_tagged(rest, 11).at("extendedResp.responseValue")?;
    an.trailing_data |= !rest.is_empty();
    Ok(ProtocolOp::ExtendedResponse {
        result,
        name: name.map(LdapString),
        value,
    })
}

fn parse_intermediate<'a>(v: &'a [u8], an: &mut Anomalies) -> Result<ProtocolOp<'a>, LdapError> {
    let (name, rest) = optional_tagged(v, 0).at("intermediateResponse.responseName")?;
    let (value, rest) = optional_tagged(rest, 1).at("intermediateResponse.responseValue")?;
    an.trailing_data |= !rest.is_empty();
    Ok(ProtocolOp::IntermediateResponse {
        name: name.map(LdapString),
        value_len: value.map(<[u8]>::len),
    })
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "in tests a panic is a failed test")]
mod tests;
