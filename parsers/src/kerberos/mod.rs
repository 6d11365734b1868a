//! Kerberos V5 (RFC 4120): the messages a domain controller's KDC and its clients exchange.
//!
//! [`parse`] reads one message (what a UDP datagram to or from port 88 carries, or one TCP record
//! without its record mark) into a [`KrbMessage`]: AS-REQ/REP, TGS-REQ/REP, AP-REQ/REP and
//! KRB-ERROR. Over TCP, [`frame`] and [`is_pdu_start`] find the records (RFC 4120 7.2.2).
//!
//! Decoding is done by rasn with the types in `asn1` (RFC 4120 section 5). rasn is safe on
//! hostile input at the sizes we allow: it checks every declared length against the input before
//! using it, allocates nothing larger than the input, skips indefinite-length values without
//! recursion, and stops nesting at 128 levels; and the Kerberos types are not recursive, so the
//! stack depth is that of the schema. Tests below hold rasn to this. What we copy out of rasn's
//! values is capped by the `MAX_*` constants, excess setting [`Anomalies`] flags.
//!
//! The records are owned: rasn allocates while decoding anyway, and a message is a few hundred
//! bytes of principals and lists once the ciphertexts are left behind.

mod asn1;
mod codes;
pub(crate) mod der;

use core::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use rasn::error::{DecodeError, DecodeErrorKind};
use rasn::types::{BitString, OctetString, SequenceOf};
use sha2::{Digest, Sha256};

pub use codes::{
    AddressType, ApOptions, EncryptionType, ErrorCode, KdcOptions, MessageType, NameType,
    PaDataType,
};

use crate::framing::{Framing, Start};

/// Longest message [`parse`] accepts, and [`is_pdu_start`] believes in. Tickets carrying a PAC
/// for a user in many groups run to tens of KB; Windows caps its whole token at MaxTokenSize
/// (48,000 bytes by default, 65,535 the largest value Microsoft recommends), and a TGS-REP holds
/// a ticket plus an encrypted part of similar size: 256 KiB leaves room for both at the
/// recommended maximum, while bounding what a hostile peer makes rasn allocate.
pub const MAX_MESSAGE_LEN: usize = 256 * 1024;

/// Components copied out of a principal name. Real names have one (`user`), two
/// (`krbtgt/REALM`, `cifs/host`) or three (`ldap/host/domain`).
pub const MAX_NAME_COMPONENTS: usize = 8;

/// Bytes copied out of one realm, name component or error text. Active Directory's longest
/// names (userPrincipalName, used whole as an NT-ENTERPRISE component) are 1024 characters.
pub const MAX_STRING_LEN: usize = 1024;

/// Requested encryption types copied out of a KDC-REQ. Windows asks for about 6, MIT for up to
/// 10; more suggests a scanner.
pub const MAX_ETYPES: usize = 32;

/// PA-DATA types copied out of a message. Requests carry 1 to 4, KRB-ERROR e-data about 8.
pub const MAX_PADATA: usize = 32;

/// Host addresses copied out of a KDC-REQ: Windows sends its one NetBIOS name, MIT its
/// interfaces' addresses when configured to.
pub const MAX_ADDRESSES: usize = 16;

/// Bytes of an address of unknown type rendered as hex; longer is cut.
pub const MAX_ADDRESS_LEN: usize = 64;

/// Why [`parse`] gave up on some bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KerberosError {
    #[error("empty input")]
    Empty,
    #[error("message of {0} bytes is longer than MAX_MESSAGE_LEN")]
    TooLong(usize),
    /// The first octet is not the APPLICATION tag of a Kerberos message.
    #[error("not a Kerberos message (first octet {0:#04x})")]
    NotKerberos(u8),
    /// KRB-SAFE, KRB-PRIV, KRB-CRED: real Kerberos, but not exchanged with a KDC.
    #[error("{0} messages are not parsed")]
    Unsupported(MessageType),
    /// The bytes end before the message does.
    #[error("truncated {0}")]
    Truncated(MessageType),
    #[error("malformed {0}")]
    Malformed(MessageType),
}

/// One Kerberos message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KrbMessage {
    /// From the APPLICATION tag, which is what KDCs dispatch on.
    pub msg_type: MessageType,
    pub body: Body,
    pub anomalies: Anomalies,
}

/// The contents of a message, by kind; `msg_type` tells AS from TGS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// AS-REQ or TGS-REQ.
    KdcReq(Box<KdcReq>),
    /// AS-REP or TGS-REP.
    KdcRep(Box<KdcRep>),
    ApReq(Box<ApReq>),
    ApRep(ApRep),
    Error(Box<KrbError>),
}

/// Things seen in a message that parsed anyway.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Anomalies {
    /// Not valid DER, but valid BER (indefinite lengths, constructed strings, non-minimal
    /// encodings): some KDCs accept it, Windows never sends it.
    pub non_der: bool,
    /// Bytes after the message.
    pub trailing_data: bool,
    /// A list was longer than its `MAX_*` constant; the first entries were kept.
    pub truncated_lists: bool,
    /// A string was longer than [`MAX_STRING_LEN`] and was cut.
    pub truncated_strings: bool,
    /// The `msg-type` field differs from the APPLICATION tag.
    pub msg_type_mismatch: bool,
    /// `pvno` (or a ticket's `tkt-vno`) is not 5.
    pub bad_pvno: bool,
    /// A KerberosTime we could not read (left as `None`).
    pub bad_time: bool,
    /// A PA-PAC-REQUEST whose value is not a KERB-PA-PAC-REQUEST.
    pub bad_pac_request: bool,
    /// A PA-TGS-REQ whose value is not an AP-REQ.
    pub bad_tgs_ap_req: bool,
    /// A PA-FOR-USER or PA-S4U-X509-USER whose value does not decode.
    pub bad_s4u_user: bool,
}

/// `PrincipalName` (RFC 4120 5.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name_type: NameType,
    /// Lossy UTF-8, at most [`MAX_NAME_COMPONENTS`] of at most [`MAX_STRING_LEN`] bytes.
    pub components: Vec<String>,
}

impl fmt::Display for Principal {
    /// The components joined by '/', as in `krbtgt/EXAMPLE.COM`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, component) in self.components.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            f.write_str(component)?;
        }
        Ok(())
    }
}

/// What can be seen of a `Ticket` (RFC 4120 5.3) without the service's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketInfo {
    pub realm: String,
    pub sname: Principal,
    /// The type of the service key: RC4 for a service account is what Kerberoasting asks for.
    pub etype: EncryptionType,
    pub kvno: Option<u32>,
    /// Length of the encrypted part.
    pub cipher_len: usize,
    /// The first 16 bytes of SHA-256 over the encrypted part's cipher octets. A ticket is the same
    /// bytes each time it is presented, so the backend can see one ticket used from two computers
    /// (pass-the-ticket) without keeping tickets. A cryptographic hash, so that an attacker
    /// cannot make an innocent ticket collide with a stolen one.
    pub hash: [u8; 16],
}

/// AS-REQ or TGS-REQ: `KDC-REQ` (RFC 4120 5.4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KdcReq {
    /// Absent in TGS-REQs (the client is in the ticket) and in some PKINIT requests.
    pub cname: Option<Principal>,
    pub realm: String,
    /// Optional: absent when the client asks for a ticket for itself (`enc-tkt-in-skey`).
    pub sname: Option<Principal>,
    pub kdc_options: KdcOptions,
    /// Unix seconds; `None` when absent or unreadable (then `anomalies.bad_time`).
    pub from: Option<i64>,
    pub till: Option<i64>,
    pub rtime: Option<i64>,
    pub nonce: u32,
    /// In the client's order of preference, at most [`MAX_ETYPES`].
    pub etypes: Vec<EncryptionType>,
    /// In order, at most [`MAX_PADATA`].
    pub padata_types: Vec<PaDataType>,
    /// PA-ENC-TIMESTAMP present: password pre-authentication.
    pub enc_timestamp: bool,
    /// Its encryption type, when its value reads as EncryptedData.
    pub enc_timestamp_etype: Option<EncryptionType>,
    /// PA-PAC-REQUEST's include-pac, when present and readable.
    pub pac_request: Option<bool>,
    /// PA-FX-FAST present: the request is armoured (RFC 6113).
    pub fast_armor: bool,
    /// Rendered: dotted IPv4, IPv6, NetBIOS names with their padding trimmed, `type N:hex`
    /// otherwise. At most [`MAX_ADDRESSES`].
    pub addresses: Vec<String>,
    pub additional_tickets: usize,
    /// The AP-REQ of PA-TGS-REQ (a TGS-REQ's TGT and authenticator).
    pub ap_req: Option<Box<ApReq>>,
    /// S4U2self: the user of PA-FOR-USER, else of PA-S4U-X509-USER (MS-SFU 2.2.1, 2.2.2).
    pub s4u_user: Option<S4uUser>,
    /// PA-DATA 161, KERB-KEY-LIST-REQ, among the PA-DATA (at any position).
    pub key_list_request: bool,
}

impl KdcReq {
    /// S4U2proxy (MS-SFU 3.2.5.2.1): an additional ticket, and the `cname-in-addl-tkt` option
    /// saying the ticket's client is the one to act for.
    #[must_use]
    pub fn is_s4u2proxy(&self) -> bool {
        self.additional_tickets > 0 && self.kdc_options.contains(KdcOptions::CNAME_IN_ADDL_TKT)
    }
}

/// The user a service asks a ticket for with S4U2self.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S4uUser {
    pub realm: String,
    /// Absent in a PA-S4U-X509-USER that names the user by certificate only.
    pub name: Option<Principal>,
}

/// AS-REP or TGS-REP: `KDC-REP` (RFC 4120 5.4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KdcRep {
    pub crealm: String,
    pub cname: Principal,
    pub ticket: TicketInfo,
    /// The reply's encryption type (the client's key for AS, the session key for TGS).
    pub enc_part_etype: EncryptionType,
    pub enc_part_kvno: Option<u32>,
    pub padata_types: Vec<PaDataType>,
}

/// `AP-REQ` (RFC 4120 5.5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApReq {
    pub ap_options: ApOptions,
    pub ticket: TicketInfo,
    pub authenticator_etype: EncryptionType,
}

/// `AP-REP` (RFC 4120 5.5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApRep {
    pub enc_part_etype: EncryptionType,
}

/// `KRB-ERROR` (RFC 4120 5.9.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KrbError {
    pub error_code: ErrorCode,
    pub crealm: Option<String>,
    pub cname: Option<Principal>,
    pub realm: String,
    pub sname: Principal,
    /// The KDC's clock when it answered, unix seconds; `None` when unreadable.
    pub stime: Option<i64>,
    /// Its microseconds; `None` outside 0..=999,999.
    pub susec: Option<u32>,
    pub ctime: Option<i64>,
    pub e_text: Option<String>,
    pub e_data_present: bool,
    /// The PA-DATA types of e-data when it is METHOD-DATA (as with PREAUTH_REQUIRED), in order.
    pub e_data_padata_types: Vec<PaDataType>,
    /// The etypes the KDC offers in e-data: those of its PA-ETYPE-INFO2, else of its
    /// PA-ETYPE-INFO (RFC 4120 5.2.7.4-5), in order, at most [`MAX_ETYPES`]. A domain
    /// controller lists the account's keys; one patched with a skeleton key offers RC4 only.
    pub offered_etypes: Vec<EncryptionType>,
}

/// Parses one Kerberos message: the contents of a UDP datagram, or of a TCP record once
/// [`frame`] has removed the record mark.
///
/// ```text
/// RFC 4120 section 5:
/// AS-REQ ::= [APPLICATION 10] KDC-REQ     TGS-REQ ::= [APPLICATION 12] KDC-REQ
/// AS-REP ::= [APPLICATION 11] KDC-REP     TGS-REP ::= [APPLICATION 13] KDC-REP
/// AP-REQ ::= [APPLICATION 14] SEQUENCE    AP-REP  ::= [APPLICATION 15] SEQUENCE
/// KRB-ERROR ::= [APPLICATION 30] SEQUENCE
/// KDC-REQ ::= SEQUENCE { pvno [1] INTEGER (5), msg-type [2] INTEGER,
///     padata [3] SEQUENCE OF PA-DATA OPTIONAL, req-body [4] KDC-REQ-BODY }
/// KDC-REQ-BODY ::= SEQUENCE { kdc-options [0] KDCOptions, cname [1] PrincipalName OPTIONAL,
///     realm [2] Realm, sname [3] PrincipalName OPTIONAL, from [4] KerberosTime OPTIONAL,
///     till [5] KerberosTime, rtime [6] KerberosTime OPTIONAL, nonce [7] UInt32,
///     etype [8] SEQUENCE OF Int32, addresses [9] HostAddresses OPTIONAL,
///     enc-authorization-data [10] EncryptedData OPTIONAL,
///     additional-tickets [11] SEQUENCE OF Ticket OPTIONAL }
/// KDC-REP ::= SEQUENCE { pvno [0], msg-type [1], padata [2] OPTIONAL, crealm [3] Realm,
///     cname [4] PrincipalName, ticket [5] Ticket, enc-part [6] EncryptedData }
/// ```
///
/// DER is tried first, then BER (flagged `non_der`), since some KDCs accept BER.
pub fn parse(bytes: &[u8]) -> Result<KrbMessage, KerberosError> {
    if bytes.len() > MAX_MESSAGE_LEN {
        return Err(KerberosError::TooLong(bytes.len()));
    }
    let &first = bytes.first().ok_or(KerberosError::Empty)?;
    let msg_type = message_type_of_tag(first).ok_or(KerberosError::NotKerberos(first))?;
    let mut anomalies = Anomalies::default();
    let body = match msg_type {
        MessageType::AS_REQ => {
            let asn1::AsReq(req) = decode(bytes, msg_type, &mut anomalies)?;
            Body::KdcReq(Box::new(kdc_req(req, msg_type, &mut anomalies)))
        }
        MessageType::TGS_REQ => {
            let asn1::TgsReq(req) = decode(bytes, msg_type, &mut anomalies)?;
            Body::KdcReq(Box::new(kdc_req(req, msg_type, &mut anomalies)))
        }
        MessageType::AS_REP => {
            let asn1::AsRep(rep) = decode(bytes, msg_type, &mut anomalies)?;
            Body::KdcRep(Box::new(kdc_rep(rep, msg_type, &mut anomalies)))
        }
        MessageType::TGS_REP => {
            let asn1::TgsRep(rep) = decode(bytes, msg_type, &mut anomalies)?;
            Body::KdcRep(Box::new(kdc_rep(rep, msg_type, &mut anomalies)))
        }
        MessageType::AP_REQ => {
            let req: asn1::ApReq = decode(bytes, msg_type, &mut anomalies)?;
            Body::ApReq(Box::new(ap_req(req, &mut anomalies)))
        }
        MessageType::AP_REP => {
            let rep: asn1::ApRep = decode(bytes, msg_type, &mut anomalies)?;
            check_header(rep.pvno, rep.msg_type, msg_type, &mut anomalies);
            Body::ApRep(ApRep {
                enc_part_etype: EncryptionType(rep.enc_part.etype),
            })
        }
        MessageType::KRB_ERROR => {
            let err: asn1::KrbError = decode(bytes, msg_type, &mut anomalies)?;
            Body::Error(Box::new(krb_error(err, &mut anomalies)))
        }
        other => return Err(KerberosError::Unsupported(other)),
    };
    Ok(KrbMessage {
        msg_type,
        body,
        anomalies,
    })
}

/// The message type whose `[APPLICATION n]` constructed identifier octet is `tag`.
fn message_type_of_tag(tag: u8) -> Option<MessageType> {
    // Application class (0x40) and constructed (0x20), tag numbers below 31 in one octet.
    if tag & 0xE0 != 0x60 {
        return None;
    }
    let number = tag & 0x1F;
    matches!(number, 10..=15 | 20..=22 | 30).then_some(MessageType(number))
}

/// Decodes `T` as DER, else as BER (flagging `non_der`), and flags trailing bytes.
fn decode<T: rasn::Decode>(
    bytes: &[u8],
    msg_type: MessageType,
    anomalies: &mut Anomalies,
) -> Result<T, KerberosError> {
    let (value, rest) = if let Ok(decoded) = rasn::der::decode_with_remainder::<T>(bytes) {
        decoded
    } else {
        let decoded =
            rasn::ber::decode_with_remainder::<T>(bytes).map_err(|e| decode_error(&e, msg_type))?;
        anomalies.non_der = true;
        decoded
    };
    anomalies.trailing_data |= !rest.is_empty();
    Ok(value)
}

fn decode_error(error: &DecodeError, msg_type: MessageType) -> KerberosError {
    match *error.kind {
        DecodeErrorKind::Incomplete { .. } => KerberosError::Truncated(msg_type),
        _ => KerberosError::Malformed(msg_type),
    }
}

/// Decodes a value nested in an OCTET STRING (PA-DATA values, e-data), DER or BER.
fn decode_nested<T: rasn::Decode>(bytes: &[u8], anomalies: &mut Anomalies) -> Option<T> {
    let mut nested = Anomalies::default();
    let value = decode::<T>(bytes, MessageType(0), &mut nested).ok()?;
    anomalies.non_der |= nested.non_der;
    Some(value)
}

fn check_header(pvno: i64, msg_type: i64, expected: MessageType, anomalies: &mut Anomalies) {
    anomalies.bad_pvno |= pvno != 5;
    anomalies.msg_type_mismatch |= msg_type != i64::from(expected.0);
}

fn kdc_req(req: asn1::KdcReq, msg_type: MessageType, anomalies: &mut Anomalies) -> KdcReq {
    check_header(req.pvno, req.msg_type, msg_type, anomalies);
    let body = req.req_body;
    let padata = req.padata.unwrap_or_default();
    let mut out = KdcReq {
        cname: body.cname.as_ref().map(|p| principal(p, anomalies)),
        realm: text(&body.realm.0, anomalies),
        sname: body.sname.as_ref().map(|p| principal(p, anomalies)),
        kdc_options: KdcOptions(flags(&body.kdc_options)),
        from: body.from.as_ref().and_then(|t| time(t, anomalies)),
        till: time(&body.till, anomalies),
        rtime: body.rtime.as_ref().and_then(|t| time(t, anomalies)),
        nonce: wire_u32(body.nonce),
        etypes: capped(&body.etype, MAX_ETYPES, anomalies, |&e| EncryptionType(e)),
        padata_types: padata_types(&padata, anomalies),
        enc_timestamp: false,
        enc_timestamp_etype: None,
        pac_request: None,
        fast_armor: false,
        addresses: capped(
            body.addresses.as_deref().unwrap_or_default(),
            MAX_ADDRESSES,
            anomalies,
            address,
        ),
        additional_tickets: body.additional_tickets.as_ref().map_or(0, Vec::len),
        ap_req: None,
        s4u_user: None,
        key_list_request: false,
    };
    // Every entry counts here, not only the first MAX_PADATA: a KDC reads them all.
    for pa in &padata {
        match PaDataType(pa.padata_type) {
            PaDataType::PA_ENC_TIMESTAMP => {
                out.enc_timestamp = true;
                out.enc_timestamp_etype = out.enc_timestamp_etype.or_else(|| {
                    decode_nested::<asn1::EncryptedData>(&pa.padata_value, anomalies)
                        .map(|enc| EncryptionType(enc.etype))
                });
            }
            PaDataType::PA_PAC_REQUEST if out.pac_request.is_none() => {
                match decode_nested::<asn1::PaPacRequest>(&pa.padata_value, anomalies) {
                    Some(request) => out.pac_request = Some(request.include_pac),
                    None => anomalies.bad_pac_request = true,
                }
            }
            PaDataType::PA_FX_FAST => out.fast_armor = true,
            PaDataType::KERB_KEY_LIST_REQ => out.key_list_request = true,
            // PA-FOR-USER first: Windows sends both, naming the same user.
            PaDataType::PA_FOR_USER => {
                match decode_nested::<asn1::PaForUser>(&pa.padata_value, anomalies) {
                    Some(for_user) => {
                        out.s4u_user = Some(S4uUser {
                            realm: text(&for_user.user_realm.0, anomalies),
                            name: Some(principal(&for_user.user_name, anomalies)),
                        });
                    }
                    None => anomalies.bad_s4u_user = true,
                }
            }
            PaDataType::PA_FOR_X509_USER => {
                match decode_nested::<asn1::PaS4uX509User>(&pa.padata_value, anomalies) {
                    Some(x509) if out.s4u_user.is_none() => {
                        let id = x509.user_id;
                        out.s4u_user = Some(S4uUser {
                            realm: text(&id.crealm.0, anomalies),
                            name: id.cname.as_ref().map(|p| principal(p, anomalies)),
                        });
                    }
                    Some(_) => {}
                    None => anomalies.bad_s4u_user = true,
                }
            }
            // Only a TGS-REQ carries an AP-REQ; one is enough (a KDC uses the first).
            PaDataType::PA_TGS_REQ if out.ap_req.is_none() => {
                match decode_nested::<asn1::ApReq>(&pa.padata_value, anomalies) {
                    Some(inner) => out.ap_req = Some(Box::new(ap_req(inner, anomalies))),
                    None => anomalies.bad_tgs_ap_req = true,
                }
            }
            _ => {}
        }
    }
    out
}

fn kdc_rep(rep: asn1::KdcRep, msg_type: MessageType, anomalies: &mut Anomalies) -> KdcRep {
    check_header(rep.pvno, rep.msg_type, msg_type, anomalies);
    KdcRep {
        crealm: text(&rep.crealm.0, anomalies),
        cname: principal(&rep.cname, anomalies),
        ticket: ticket(&rep.ticket, anomalies),
        enc_part_etype: EncryptionType(rep.enc_part.etype),
        enc_part_kvno: rep.enc_part.kvno.map(wire_u32),
        padata_types: padata_types(rep.padata.as_deref().unwrap_or_default(), anomalies),
    }
}

fn ap_req(req: asn1::ApReq, anomalies: &mut Anomalies) -> ApReq {
    check_header(req.pvno, req.msg_type, MessageType::AP_REQ, anomalies);
    ApReq {
        ap_options: ApOptions(flags(&req.ap_options)),
        ticket: ticket(&req.ticket, anomalies),
        authenticator_etype: EncryptionType(req.authenticator.etype),
    }
}

fn krb_error(err: asn1::KrbError, anomalies: &mut Anomalies) -> KrbError {
    check_header(err.pvno, err.msg_type, MessageType::KRB_ERROR, anomalies);
    // e-data is METHOD-DATA for the pre-authentication errors, TYPED-DATA or opaque otherwise:
    // anything that does not decode as METHOD-DATA is ignored, not an anomaly.
    let method_data = err
        .e_data
        .as_ref()
        .and_then(|data| decode_nested::<asn1::MethodData>(data, anomalies));
    KrbError {
        error_code: ErrorCode(err.error_code),
        crealm: err.crealm.as_ref().map(|r| text(&r.0, anomalies)),
        cname: err.cname.as_ref().map(|p| principal(p, anomalies)),
        realm: text(&err.realm.0, anomalies),
        sname: principal(&err.sname, anomalies),
        stime: time(&err.stime, anomalies),
        susec: u32::try_from(err.susec)
            .ok()
            .filter(|microseconds| *microseconds < 1_000_000),
        ctime: err.ctime.as_ref().and_then(|t| time(t, anomalies)),
        e_text: err.e_text.as_ref().map(|t| text(&t.0, anomalies)),
        e_data_present: err.e_data.is_some(),
        e_data_padata_types: padata_types(method_data.as_deref().unwrap_or_default(), anomalies),
        offered_etypes: offered_etypes(method_data.as_deref().unwrap_or_default(), anomalies),
    }
}

/// The etypes of the first PA-ETYPE-INFO2 that decodes, else of the first PA-ETYPE-INFO:
/// RFC 4120 5.2.7.5 has a KDC send ETYPE-INFO2 to every client, ETYPE-INFO only besides it
/// for old ones, so ETYPE-INFO2 is the KDC's word.
fn offered_etypes(method_data: &[asn1::PaData], anomalies: &mut Anomalies) -> Vec<EncryptionType> {
    let of_type = |wanted: PaDataType| {
        method_data
            .iter()
            .filter(move |pa| PaDataType(pa.padata_type) == wanted)
    };
    for pa in of_type(PaDataType::PA_ETYPE_INFO2) {
        if let Some(entries) =
            decode_nested::<SequenceOf<asn1::EtypeInfo2Entry>>(&pa.padata_value, anomalies)
        {
            return capped(&entries, MAX_ETYPES, anomalies, |e| EncryptionType(e.etype));
        }
    }
    for pa in of_type(PaDataType::PA_ETYPE_INFO) {
        if let Some(entries) =
            decode_nested::<SequenceOf<asn1::EtypeInfoEntry>>(&pa.padata_value, anomalies)
        {
            return capped(&entries, MAX_ETYPES, anomalies, |e| EncryptionType(e.etype));
        }
    }
    Vec::new()
}

fn ticket(ticket: &asn1::Ticket, anomalies: &mut Anomalies) -> TicketInfo {
    anomalies.bad_pvno |= ticket.tkt_vno != 5;
    let digest = Sha256::digest(&ticket.enc_part.cipher);
    let mut hash = [0u8; 16];
    for (out, byte) in hash.iter_mut().zip(digest.iter()) {
        *out = *byte;
    }
    TicketInfo {
        realm: text(&ticket.realm.0, anomalies),
        sname: principal(&ticket.sname, anomalies),
        etype: EncryptionType(ticket.enc_part.etype),
        kvno: ticket.enc_part.kvno.map(wire_u32),
        cipher_len: ticket.enc_part.cipher.len(),
        hash,
    }
}

fn principal(name: &asn1::PrincipalName, anomalies: &mut Anomalies) -> Principal {
    anomalies.truncated_lists |= name.name_string.len() > MAX_NAME_COMPONENTS;
    Principal {
        name_type: NameType(name.name_type),
        components: name
            .name_string
            .iter()
            .take(MAX_NAME_COMPONENTS)
            .map(|c| text(&c.0, anomalies))
            .collect(),
    }
}

fn padata_types(padata: &[asn1::PaData], anomalies: &mut Anomalies) -> Vec<PaDataType> {
    capped(padata, MAX_PADATA, anomalies, |pa| {
        PaDataType(pa.padata_type)
    })
}

/// The first `max` items of `items`, converted; flags the rest as `truncated_lists`.
fn capped<T, U>(
    items: &[T],
    max: usize,
    anomalies: &mut Anomalies,
    convert: impl Fn(&T) -> U,
) -> Vec<U> {
    anomalies.truncated_lists |= items.len() > max;
    items.iter().take(max).map(convert).collect()
}

/// Lossy UTF-8 of at most [`MAX_STRING_LEN`] bytes; flags `truncated_strings` if cut.
fn text(bytes: &OctetString, anomalies: &mut Anomalies) -> String {
    anomalies.truncated_strings |= bytes.len() > MAX_STRING_LEN;
    let kept = bytes.get(..MAX_STRING_LEN).unwrap_or(bytes);
    String::from_utf8_lossy(kept).into_owned()
}

fn time(value: &asn1::KTime, anomalies: &mut Anomalies) -> Option<i64> {
    let seconds = unix_time(&value.0);
    anomalies.bad_time |= seconds.is_none();
    seconds
}

/// A wire UInt32 that some encoders send as a signed 32-bit number: keep its 32 bits.
fn wire_u32(value: i64) -> u32 {
    u32::try_from(value.rem_euclid(1 << 32)).unwrap_or_default()
}

/// `KerberosFlags ::= BIT STRING`, bit 0 first, as a `u32` with bit 0 the most significant.
fn flags(bits: &BitString) -> u32 {
    bits.iter()
        .take(32)
        .enumerate()
        .filter(|(_, bit)| **bit)
        .fold(0u32, |acc, (i, _)| acc | (1u32 << (31 - i)))
}

/// Renders a HostAddress (RFC 4120 7.5.3).
fn address(addr: &asn1::HostAddress) -> String {
    let bytes = addr.address.as_ref();
    match AddressType(addr.addr_type) {
        AddressType::IPV4 => {
            if let Ok(octets) = <[u8; 4]>::try_from(bytes) {
                return Ipv4Addr::from(octets).to_string();
            }
        }
        AddressType::IPV6 => {
            if let Ok(octets) = <[u8; 16]>::try_from(bytes) {
                return Ipv6Addr::from(octets).to_string();
            }
        }
        // 16 octets: the name padded with spaces to 15, then a suffix octet (also a space for
        // the workstation names Windows sends).
        AddressType::NETBIOS => {
            let kept = bytes.get(..MAX_ADDRESS_LEN).unwrap_or(bytes);
            return String::from_utf8_lossy(kept)
                .trim_end_matches([' ', '\0'])
                .to_owned();
        }
        _ => {}
    }
    let kept = bytes.get(..MAX_ADDRESS_LEN).unwrap_or(bytes);
    format!("type {}:{}", addr.addr_type, hex::encode(kept))
}

/// Unix seconds of a `KerberosTime`: `YYYYMMDDHHMMSSZ` (RFC 4120 5.2.3), tolerating the
/// fractional seconds BER allows (dropped).
pub(crate) fn unix_time(bytes: &[u8]) -> Option<i64> {
    let (digits, rest) = bytes.split_at_checked(14)?;
    let fraction_ok = match rest {
        [b'Z'] => true,
        [b'.' | b',', fraction @ .., b'Z'] => {
            !fraction.is_empty() && fraction.iter().all(u8::is_ascii_digit)
        }
        _ => false,
    };
    if !fraction_ok || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let field = |at: usize, len: usize| -> Option<i64> {
        digits
            .get(at..at.checked_add(len)?)?
            .iter()
            .try_fold(0i64, |acc, &d| Some(acc * 10 + i64::from(d - b'0')))
    };
    let (year, month, day) = (field(0, 4)?, field(4, 2)?, field(6, 2)?);
    let (hour, minute, second) = (field(8, 2)?, field(10, 2)?, field(12, 2)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return None,
    };
    if !(1..=month_days).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Length of the TCP record mark (RFC 4120 7.2.2).
pub const RECORD_MARK_LEN: usize = 4;

/// Where the TCP record starting at the front of `bytes` ends.
///
/// ```text
/// RFC 4120 7.2.2: each request and reply is preceded by 4 octets, the length of the message
/// in network byte order; the high bit is reserved for extensions and MUST be zero (a KDC that
/// sees it set answers KRB_ERR_FIELD_TOOLONG).
/// ```
///
/// Gives `Pdu(4 + length)`: the caller strips the mark and hands the rest to [`parse`]. A
/// zero length is `NotPdu`.
pub fn frame(bytes: &[u8]) -> Framing {
    if bytes.first().is_some_and(|&b| b & 0x80 != 0) {
        return Framing::NotPdu;
    }
    let Some(mark) = bytes.first_chunk::<RECORD_MARK_LEN>() else {
        return Framing::NeedMore;
    };
    let length = u32::from_be_bytes(*mark);
    match usize::try_from(length)
        .ok()
        .and_then(|l| l.checked_add(RECORD_MARK_LEN))
    {
        Some(_) if length == 0 => Framing::NotPdu,
        Some(total) => Framing::Pdu(total),
        None => Framing::NotPdu,
    }
}

/// Whether a Kerberos TCP record plausibly starts at the front of `bytes`, for resynchronising.
///
/// Checks, in order: the record mark's reserved bit is clear and its length is at most
/// [`MAX_MESSAGE_LEN`]; an APPLICATION tag of a KDC or AP message follows (0x6a..=0x6f, 0x7e);
/// its DER length fills the record exactly; a SEQUENCE fills the application value exactly; and
/// the SEQUENCE starts with `pvno 5` and the `msg-type` of the tag, as `[n] INTEGER` in DER.
/// From 20 to 26 octets are needed to answer, depending on the length forms.
pub fn is_pdu_start(bytes: &[u8]) -> Start {
    match pdu_start(bytes) {
        Ok(true) => Start::Yes,
        Ok(false) => Start::No,
        Err(()) => Start::NeedMore,
    }
}

/// [`is_pdu_start`], with `Err(())` for "need more bytes".
fn pdu_start(bytes: &[u8]) -> Result<bool, ()> {
    let total = match frame(bytes) {
        Framing::Pdu(total) => total,
        Framing::NeedMore => return Err(()),
        Framing::NotPdu => return Ok(false),
    };
    let record_len = total - RECORD_MARK_LEN;
    if record_len > MAX_MESSAGE_LEN {
        return Ok(false);
    }
    let message = bytes.get(RECORD_MARK_LEN..).unwrap_or_default();
    let Some(&tag) = message.first() else {
        return Err(());
    };
    let Some(msg_type) = message_type_of_tag(tag).filter(|t| matches!(t.0, 10..=15 | 30)) else {
        return Ok(false);
    };
    let app = match der::header(message) {
        Ok(h) => h,
        Err(der::HeaderError::NeedMore) => return Err(()),
        Err(der::HeaderError::Invalid) => return Ok(false),
    };
    if app.header_len.checked_add(app.content_len) != Some(record_len) {
        return Ok(false);
    }
    let inner = message.get(app.header_len..).unwrap_or_default();
    let seq = match der::header(inner) {
        Ok(h) if h.tag == 0x30 => h,
        Ok(_) | Err(der::HeaderError::Invalid) => return Ok(false),
        Err(der::HeaderError::NeedMore) => return Err(()),
    };
    if seq.header_len.checked_add(seq.content_len) != Some(app.content_len) {
        return Ok(false);
    }
    // KDC-REQ numbers its fields from 1, the other messages from 0.
    let first = if matches!(msg_type, MessageType::AS_REQ | MessageType::TGS_REQ) {
        0xa1
    } else {
        0xa0
    };
    let expected = [first, 3, 0x02, 1, 5, first + 1, 3, 0x02, 1, msg_type.0];
    let fields = inner.get(seq.header_len..).unwrap_or_default();
    let seen = fields.len().min(expected.len());
    if fields.get(..seen) != expected.get(..seen) {
        return Ok(false);
    }
    if seen < expected.len() {
        return Err(());
    }
    Ok(true)
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a test fails by panicking")]
mod tests;
