//! The RFC 4120 section 5 ASN.1 types this parser reads, for rasn's derive.
//!
//! They mirror `rasn-kerberos` with three deliberate differences, each for traffic that crate
//! would reject although KDCs accept it:
//! - `KerberosString` is kept as raw octets ([`KString`]): rasn's `GeneralString` refuses octets
//!   0x80..=0xA0, which occur in UTF-8 principal names (Active Directory sends UTF-8: "Ł" is
//!   C5 81, Cyrillic "р" is D1 80). An attacker could otherwise hide behind such a name.
//! - `KerberosTime` is kept as raw octets ([`KTime`]) and read by [`super::unix_time`]: a time we
//!   cannot read becomes an anomaly, not a lost message.
//! - Nonces and key version numbers are read as `i64`: RFC 4120 says UInt32, but some
//!   implementations encode them as signed 32-bit numbers (a negative nonce on the wire).
//!
//! Fields the parser never looks at (the encrypted authorization data, the KRB-ERROR microseconds)
//! are still declared, since a SEQUENCE only decodes when all its components are known.
use rasn::prelude::*;

/// `KerberosString ::= GeneralString (IA5String)`, octets kept as sent.
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
#[rasn(tag(universal, 27), delegate)]
pub(crate) struct KString(pub OctetString);

/// `KerberosTime ::= GeneralizedTime -- with no fractional seconds`, octets kept as sent.
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
#[rasn(tag(universal, 24), delegate)]
pub(crate) struct KTime(pub OctetString);

/// `PrincipalName ::= SEQUENCE { name-type [0] Int32, name-string [1] SEQUENCE OF KerberosString }`
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub(crate) struct PrincipalName {
    #[rasn(tag(explicit(0)))]
    pub name_type: i32,
    #[rasn(tag(explicit(1)))]
    pub name_string: SequenceOf<KString>,
}

/// `HostAddress ::= SEQUENCE { addr-type [0] Int32, address [1] OCTET STRING }`
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub(crate) struct HostAddress {
    #[rasn(tag(explicit(0)))]
    pub addr_type: i32,
    #[rasn(tag(explicit(1)))]
    pub address: OctetString,
}

/// `PA-DATA ::= SEQUENCE { padata-type [1] Int32, padata-value [2] OCTET STRING }`
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub(crate) struct PaData {
    #[rasn(tag(explicit(1)))]
    pub padata_type: i32,
    #[rasn(tag(explicit(2)))]
    pub padata_value: OctetString,
}

/// `EncryptedData ::= SEQUENCE { etype [0] Int32, kvno [1] UInt32 OPTIONAL,
/// cipher [2] OCTET STRING }`
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub(crate) struct EncryptedData {
    #[rasn(tag(explicit(0)))]
    pub etype: i32,
    #[rasn(tag(explicit(1)))]
    pub kvno: Option<i64>,
    #[rasn(tag(explicit(2)))]
    pub cipher: OctetString,
}

/// `Ticket ::= [APPLICATION 1] SEQUENCE { tkt-vno [0] INTEGER, realm [1] Realm,
/// sname [2] PrincipalName, enc-part [3] EncryptedData }`
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
#[rasn(tag(explicit(application, 1)))]
pub(crate) struct Ticket {
    #[rasn(tag(explicit(0)))]
    pub tkt_vno: i64,
    #[rasn(tag(explicit(1)))]
    pub realm: KString,
    #[rasn(tag(explicit(2)))]
    pub sname: PrincipalName,
    #[rasn(tag(explicit(3)))]
    pub enc_part: EncryptedData,
}

/// `KDC-REQ ::= SEQUENCE { pvno [1] INTEGER, msg-type [2] INTEGER,
/// padata [3] SEQUENCE OF PA-DATA OPTIONAL, req-body [4] KDC-REQ-BODY }`
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub(crate) struct KdcReq {
    #[rasn(tag(explicit(1)))]
    pub pvno: i64,
    #[rasn(tag(explicit(2)))]
    pub msg_type: i64,
    #[rasn(tag(explicit(3)))]
    pub padata: Option<SequenceOf<PaData>>,
    #[rasn(tag(explicit(4)))]
    pub req_body: KdcReqBody,
}

/// `KDC-REQ-BODY` (RFC 4120 5.4.1).
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub(crate) struct KdcReqBody {
    #[rasn(tag(explicit(0)))]
    pub kdc_options: BitString,
    #[rasn(tag(explicit(1)))]
    pub cname: Option<PrincipalName>,
    #[rasn(tag(explicit(2)))]
    pub realm: KString,
    #[rasn(tag(explicit(3)))]
    pub sname: Option<PrincipalName>,
    #[rasn(tag(explicit(4)))]
    pub from: Option<KTime>,
    #[rasn(tag(explicit(5)))]
    pub till: KTime,
    #[rasn(tag(explicit(6)))]
    pub rtime: Option<KTime>,
    #[rasn(tag(explicit(7)))]
    pub nonce: i64,
    #[rasn(tag(explicit(8)))]
    pub etype: SequenceOf<i32>,
    #[rasn(tag(explicit(9)))]
    pub addresses: Option<SequenceOf<HostAddress>>,
    #[rasn(tag(explicit(10)))]
    pub enc_authorization_data: Option<EncryptedData>,
    #[rasn(tag(explicit(11)))]
    pub additional_tickets: Option<SequenceOf<Ticket>>,
}

/// `AS-REQ ::= [APPLICATION 10] KDC-REQ`
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
#[rasn(tag(explicit(application, 10)), delegate)]
pub(crate) struct AsReq(pub KdcReq);

/// `TGS-REQ ::= [APPLICATION 12] KDC-REQ`
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
#[rasn(tag(explicit(application, 12)), delegate)]
pub(crate) struct TgsReq(pub KdcReq);

/// `KDC-REP ::= SEQUENCE { pvno [0] INTEGER, msg-type [1] INTEGER, padata [2] SEQUENCE OF
/// PA-DATA OPTIONAL, crealm [3] Realm, cname [4] PrincipalName, ticket [5] Ticket,
/// enc-part [6] EncryptedData }`
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub(crate) struct KdcRep {
    #[rasn(tag(explicit(0)))]
    pub pvno: i64,
    #[rasn(tag(explicit(1)))]
    pub msg_type: i64,
    #[rasn(tag(explicit(2)))]
    pub padata: Option<SequenceOf<PaData>>,
    #[rasn(tag(explicit(3)))]
    pub crealm: KString,
    #[rasn(tag(explicit(4)))]
    pub cname: PrincipalName,
    #[rasn(tag(explicit(5)))]
    pub ticket: Ticket,
    #[rasn(tag(explicit(6)))]
    pub enc_part: EncryptedData,
}

/// `AS-REP ::= [APPLICATION 11] KDC-REP`
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
#[rasn(tag(explicit(application, 11)), delegate)]
pub(crate) struct AsRep(pub KdcRep);

/// `TGS-REP ::= [APPLICATION 13] KDC-REP`
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
#[rasn(tag(explicit(application, 13)), delegate)]
pub(crate) struct TgsRep(pub KdcRep);

/// `AP-REQ ::= [APPLICATION 14] SEQUENCE { pvno [0] INTEGER, msg-type [1] INTEGER,
/// ap-options [2] APOptions, ticket [3] Ticket, authenticator [4] EncryptedData }`
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
#[rasn(tag(explicit(application, 14)))]
pub(crate) struct ApReq {
    #[rasn(tag(explicit(0)))]
    pub pvno: i64,
    #[rasn(tag(explicit(1)))]
    pub msg_type: i64,
    #[rasn(tag(explicit(2)))]
    pub ap_options: BitString,
    #[rasn(tag(explicit(3)))]
    pub ticket: Ticket,
    #[rasn(tag(explicit(4)))]
    pub authenticator: EncryptedData,
}

/// `AP-REP ::= [APPLICATION 15] SEQUENCE { pvno [0] INTEGER, msg-type [1] INTEGER,
/// enc-part [2] EncryptedData }`
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
#[rasn(tag(explicit(application, 15)))]
pub(crate) struct ApRep {
    #[rasn(tag(explicit(0)))]
    pub pvno: i64,
    #[rasn(tag(explicit(1)))]
    pub msg_type: i64,
    #[rasn(tag(explicit(2)))]
    pub enc_part: EncryptedData,
}

/// `KRB-ERROR ::= [APPLICATION 30] SEQUENCE` (RFC 4120 5.9.1).
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
#[rasn(tag(explicit(application, 30)))]
pub(crate) struct KrbError {
    #[rasn(tag(explicit(0)))]
    pub pvno: i64,
    #[rasn(tag(explicit(1)))]
    pub msg_type: i64,
    #[rasn(tag(explicit(2)))]
    pub ctime: Option<KTime>,
    #[rasn(tag(explicit(3)))]
    pub cusec: Option<i64>,
    #[rasn(tag(explicit(4)))]
    pub stime: KTime,
    #[rasn(tag(explicit(5)))]
    pub susec: i64,
    #[rasn(tag(explicit(6)))]
    pub error_code: i32,
    #[rasn(tag(explicit(7)))]
    pub crealm: Option<KString>,
    #[rasn(tag(explicit(8)))]
    pub cname: Option<PrincipalName>,
    #[rasn(tag(explicit(9)))]
    pub realm: KString,
    #[rasn(tag(explicit(10)))]
    pub sname: PrincipalName,
    #[rasn(tag(explicit(11)))]
    pub e_text: Option<KString>,
    #[rasn(tag(explicit(12)))]
    pub e_data: Option<OctetString>,
}

/// `METHOD-DATA ::= SEQUENCE OF PA-DATA`, the usual KRB-ERROR e-data.
pub(crate) type MethodData = SequenceOf<PaData>;

/// `KERB-PA-PAC-REQUEST ::= SEQUENCE { include-pac [0] BOOLEAN }` (MS-KILE 2.2.3).
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub(crate) struct PaPacRequest {
    #[rasn(tag(explicit(0)))]
    pub include_pac: bool,
}

/// `ETYPE-INFO2-ENTRY ::= SEQUENCE { etype [0] Int32, salt [1] KerberosString OPTIONAL,
/// s2kparams [2] OCTET STRING OPTIONAL }`; `ETYPE-INFO2 ::= SEQUENCE SIZE (1..MAX) OF
/// ETYPE-INFO2-ENTRY` (RFC 4120 5.2.7.5).
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub(crate) struct EtypeInfo2Entry {
    #[rasn(tag(explicit(0)))]
    pub etype: i32,
    #[rasn(tag(explicit(1)))]
    pub salt: Option<KString>,
    #[rasn(tag(explicit(2)))]
    pub s2kparams: Option<OctetString>,
}

/// `ETYPE-INFO-ENTRY ::= SEQUENCE { etype [0] Int32, salt [1] OCTET STRING OPTIONAL }`;
/// `ETYPE-INFO ::= SEQUENCE OF ETYPE-INFO-ENTRY` (RFC 4120 5.2.7.4).
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub(crate) struct EtypeInfoEntry {
    #[rasn(tag(explicit(0)))]
    pub etype: i32,
    #[rasn(tag(explicit(1)))]
    pub salt: Option<OctetString>,
}

/// `Checksum ::= SEQUENCE { cksumtype [0] Int32, checksum [1] OCTET STRING }`
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub(crate) struct Checksum {
    #[rasn(tag(explicit(0)))]
    pub cksumtype: i32,
    #[rasn(tag(explicit(1)))]
    pub checksum: OctetString,
}

/// `PA-FOR-USER ::= SEQUENCE { userName [0] PrincipalName, userRealm [1] Realm,
/// cksum [2] Checksum, auth-package [3] KerberosString }` (MS-SFU 2.2.1).
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub(crate) struct PaForUser {
    #[rasn(tag(explicit(0)))]
    pub user_name: PrincipalName,
    #[rasn(tag(explicit(1)))]
    pub user_realm: KString,
    #[rasn(tag(explicit(2)))]
    pub cksum: Checksum,
    #[rasn(tag(explicit(3)))]
    pub auth_package: KString,
}

/// `S4UUserID ::= SEQUENCE { nonce [0] UInt32, cname [1] PrincipalName OPTIONAL,
/// crealm [2] Realm, subject-certificate [3] OCTET STRING OPTIONAL,
/// options [4] BIT STRING OPTIONAL, ... }` (MS-SFU 2.2.2).
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) struct S4uUserId {
    #[rasn(tag(explicit(0)))]
    pub nonce: i64,
    #[rasn(tag(explicit(1)))]
    pub cname: Option<PrincipalName>,
    #[rasn(tag(explicit(2)))]
    pub crealm: KString,
    #[rasn(tag(explicit(3)))]
    pub subject_certificate: Option<OctetString>,
    #[rasn(tag(explicit(4)))]
    pub options: Option<BitString>,
}

/// `PA-S4U-X509-USER ::= SEQUENCE { user-id [0] S4UUserID, checksum [1] Checksum }`
/// (MS-SFU 2.2.2).
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub(crate) struct PaS4uX509User {
    #[rasn(tag(explicit(0)))]
    pub user_id: S4uUserId,
    #[rasn(tag(explicit(1)))]
    pub checksum: Checksum,
}
