//! GSS-API tokens as carriers hand them over: SMB session setup security blobs, HTTP
//! `Negotiate` headers (once base64-decoded), LDAP SASL GSS-SPNEGO/GSSAPI credentials, DCE-RPC
//! auth verifiers.
//!
//! [`parse`] unwraps the framing (RFC 2743 3.1), SPNEGO (RFC 4178, with Microsoft's
//! NegTokenInit2 of MS-SPNG 2.2.1) and the Kerberos mechanism's token (RFC 4121 4.1) down to what
//! the other modules read: a Kerberos message, parsed by [`crate::kerberos`], or the raw bytes of
//! an NTLMSSP message for [`crate::ntlm`].
//!
//! A small DER walk rather than rasn: the values needed are a handful of tags deep, and walking
//! by hand lets the NTLM bytes and the OIDs borrow from the input.

use core::fmt;

use crate::kerberos::{self, KerberosError, KrbMessage, der};

/// Longest token accepted: a Kerberos message of [`kerberos::MAX_MESSAGE_LEN`] plus the few
/// dozen bytes of GSS-API and SPNEGO framing around it, with room to spare.
pub const MAX_TOKEN_LEN: usize = kerberos::MAX_MESSAGE_LEN + 1024;

/// SPNEGO layers allowed. SPNEGO negotiates a real mechanism, and SPNEGO is never one
/// (RFC 4178 4.2.1 forbids it), so a second layer is hostile; with one we stop the recursion.
pub const MAX_NESTING: usize = 1;

/// Mechanism OIDs copied out of a NegTokenInit. Windows offers four (MS Kerberos, Kerberos,
/// NEGOEX, NTLM); more suggests a fuzzer. Excess sets `mech_types_truncated`.
pub const MAX_MECH_TYPES: usize = 16;

/// Fields read from one NegTokenInit or NegTokenResp: NegTokenInit2 has five, and a DER
/// SEQUENCE holds each at most once.
pub const MAX_SPNEGO_FIELDS: usize = 8;

/// The 8-byte signature that starts every NTLMSSP message (MS-NLMP 2.2).
pub const NTLMSSP_SIGNATURE: &[u8; 8] = b"NTLMSSP\0";

/// An OBJECT IDENTIFIER, as the contents octets of its DER encoding (X.690 8.19).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Oid<'a>(pub &'a [u8]);

impl Oid<'static> {
    /// 1.3.6.1.5.5.2: SPNEGO (RFC 4178).
    pub const SPNEGO: Self = Oid(&[0x2b, 0x06, 0x01, 0x05, 0x05, 0x02]);
    /// 1.2.840.113554.1.2.2: Kerberos V5 (RFC 4121).
    pub const KRB5: Self = Oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02]);
    /// 1.2.840.48018.1.2.2: the Kerberos OID as older Windows wrote it, with 113554 truncated
    /// to 16 bits; Windows still offers it first.
    pub const MS_KRB5: Self = Oid(&[0x2a, 0x86, 0x48, 0x82, 0xf7, 0x12, 0x01, 0x02, 0x02]);
    /// 1.2.840.113554.1.2.2.3: Kerberos user-to-user (RFC 4121 appendix).
    pub const KRB5_USER_TO_USER: Self =
        Oid(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02, 0x03]);
    /// 1.3.6.1.4.1.311.2.2.10: NTLMSSP.
    pub const NTLMSSP: Self = Oid(&[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a]);
    /// 1.3.6.1.4.1.311.2.2.30: NEGOEX (MS-NEGOEX).
    pub const NEGOEX: Self = Oid(&[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x1e]);
}

impl Oid<'_> {
    /// A short name for the mechanisms above.
    #[must_use]
    pub fn name(self) -> Option<&'static str> {
        [
            (Oid::SPNEGO, "SPNEGO"),
            (Oid::KRB5, "Kerberos"),
            (Oid::MS_KRB5, "MS Kerberos"),
            (Oid::KRB5_USER_TO_USER, "Kerberos user-to-user"),
            (Oid::NTLMSSP, "NTLMSSP"),
            (Oid::NEGOEX, "NEGOEX"),
        ]
        .into_iter()
        .find_map(|(oid, name)| (oid == self).then_some(name))
    }

    /// Whether this is one of the two Kerberos OIDs.
    #[must_use]
    pub fn is_kerberos(self) -> bool {
        self == Oid::KRB5 || self == Oid::MS_KRB5
    }
}

impl fmt::Display for Oid<'_> {
    /// Dotted form (`1.2.840.113554.1.2.2`); an arc too large for u64 is written `?`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut arc: Option<u64> = Some(0);
        let mut first = true;
        for &byte in self.0 {
            arc = arc
                .and_then(|a| a.checked_mul(128))
                .map(|a| a | u64::from(byte & 0x7f));
            if byte & 0x80 != 0 {
                continue;
            }
            write_arc(f, arc, first)?;
            first = false;
            arc = Some(0);
        }
        // An arc cut short by the end of the octets.
        if self.0.last().is_some_and(|&b| b & 0x80 != 0) {
            write_arc(f, None, first)?;
        }
        Ok(())
    }
}

/// Writes one arc of an OID; `None` (too large, or unfinished) as `?`.
fn write_arc(f: &mut fmt::Formatter<'_>, arc: Option<u64>, first: bool) -> fmt::Result {
    match (arc, first) {
        // The first octets hold 40 * X + Y, X in 0..=2 (X.690 8.19.4).
        (Some(a), true) => {
            let x = (a / 40).min(2);
            write!(f, "{x}.{}", a - x * 40)
        }
        (Some(a), false) => write!(f, ".{a}"),
        (None, true) => f.write_str("?"),
        (None, false) => f.write_str(".?"),
    }
}

impl fmt::Debug for Oid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Oid({self})")
    }
}

/// `negState` of a NegTokenResp (RFC 4178 4.2.2), open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NegState(pub u8);

impl NegState {
    pub const ACCEPT_COMPLETED: Self = Self(0);
    pub const ACCEPT_INCOMPLETE: Self = Self(1);
    pub const REJECT: Self = Self(2);
    pub const REQUEST_MIC: Self = Self(3);

    #[must_use]
    pub fn name(self) -> Option<&'static str> {
        match self.0 {
            0 => Some("accept-completed"),
            1 => Some("accept-incomplete"),
            2 => Some("reject"),
            3 => Some("request-mic"),
            _ => None,
        }
    }
}

/// One GSS-API token, unwrapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GssToken<'a> {
    /// A Kerberos message: in a mechanism token (`mech` and `tok_id` set), or bare.
    Kerberos {
        mech: Option<Oid<'a>>,
        /// RFC 4121 4.1 TOK_ID: 01 00 AP-REQ, 02 00 AP-REP, 03 00 KRB-ERROR.
        tok_id: Option<[u8; 2]>,
        message: Box<KrbMessage>,
    },
    /// An NTLMSSP message, from its signature on: for [`crate::ntlm`].
    Ntlm(&'a [u8]),
    /// `negTokenInit` (or NegTokenInit2): the initiator's offer, or in SMB2 NEGOTIATE responses
    /// the server's list of mechanisms.
    SpnegoInit {
        mech_types: Vec<Oid<'a>>,
        /// More than [`MAX_MECH_TYPES`] were offered.
        mech_types_truncated: bool,
        /// The optimistic token for the first mechanism.
        mech_token: Option<Box<GssToken<'a>>>,
        mech_list_mic_present: bool,
    },
    /// `negTokenResp`: every later leg.
    SpnegoResponse {
        neg_state: Option<NegState>,
        supported_mech: Option<Oid<'a>>,
        response_token: Option<Box<GssToken<'a>>>,
        mech_list_mic_present: bool,
    },
    /// An InitialContextToken of another mechanism (NEGOEX, Kerberos user-to-user, or a
    /// Kerberos token ID other than the three above).
    Unknown { mech: Oid<'a> },
    /// A token inside SPNEGO in no format this module knows (a NEGOEX message, say).
    Opaque(&'a [u8]),
}

/// Why [`parse`] gave up on a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GssError {
    #[error("empty token")]
    Empty,
    #[error("token of {0} bytes is longer than MAX_TOKEN_LEN")]
    TooLong(usize),
    #[error("not a GSS-API, SPNEGO, Kerberos or NTLMSSP token")]
    Unrecognized,
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("SPNEGO nested more than MAX_NESTING deep")]
    NestingTooDeep,
    #[error("Kerberos: {0}")]
    Kerberos(#[from] KerberosError),
}

/// Parses a GSS-API token as a carrier hands it over.
///
/// ```text
/// RFC 2743 3.1:  InitialContextToken ::= [APPLICATION 0] IMPLICIT SEQUENCE {
///                    thisMech MechType, innerToken ANY DEFINED BY thisMech }
/// RFC 4178 4.2:  NegotiationToken ::= CHOICE { negTokenInit [0] NegTokenInit,
///                                              negTokenResp [1] NegTokenResp }
///   NegTokenInit ::= SEQUENCE { mechTypes [0] MechTypeList, reqFlags [1] ContextFlags OPTIONAL,
///       mechToken [2] OCTET STRING OPTIONAL, mechListMIC [3] OCTET STRING OPTIONAL, ... }
///   NegTokenInit2 (MS-SPNG 2.2.1): ... mechToken [2], negHints [3] NegHints OPTIONAL,
///       mechListMIC [4] OCTET STRING OPTIONAL
///   NegTokenResp ::= SEQUENCE { negState [0] ENUMERATED OPTIONAL, supportedMech [1] MechType
///       OPTIONAL, responseToken [2] OCTET STRING OPTIONAL, mechListMIC [3] OCTET STRING OPTIONAL }
/// RFC 4121 4.1:  Kerberos innerToken = TOK_ID (2 octets: 01 00 AP-REQ, 02 00 AP-REP,
///                03 00 KRB-ERROR) followed by the DER Kerberos message
/// ```
///
/// Accepted at the top: an InitialContextToken (SPNEGO, Kerberos under either OID, NTLMSSP), a
/// bare NegotiationToken (later SPNEGO legs, SMB2 responses), a bare NTLMSSP message, or a bare
/// AP-REQ/AP-REP/KRB-ERROR. Bytes after the token are ignored: carriers pad.
pub fn parse(token: &[u8]) -> Result<GssToken<'_>, GssError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(GssError::TooLong(token.len()));
    }
    if token.is_empty() {
        return Err(GssError::Empty);
    }
    parse_at(token, 0)
}

/// Parses a token inside `spnego_depth` SPNEGO layers.
fn parse_at(token: &[u8], spnego_depth: usize) -> Result<GssToken<'_>, GssError> {
    if token.starts_with(NTLMSSP_SIGNATURE) {
        return Ok(GssToken::Ntlm(token));
    }
    match token.first() {
        Some(0x60) => initial_context_token(token, spnego_depth),
        Some(0xa0 | 0xa1) => negotiation_token(token, spnego_depth),
        Some(0x6e | 0x6f | 0x7e) => Ok(GssToken::Kerberos {
            mech: None,
            tok_id: None,
            message: Box::new(kerberos::parse(outer_value(token)?)?),
        }),
        Some(_) => Err(GssError::Unrecognized),
        None => Err(GssError::Empty),
    }
}

/// The first DER value of `token`, header included, without what follows.
fn outer_value(token: &[u8]) -> Result<&[u8], GssError> {
    let h = der::header(token).map_err(|_| GssError::Malformed("token header"))?;
    h.header_len
        .checked_add(h.content_len)
        .and_then(|end| token.get(..end))
        .ok_or(GssError::Malformed("token length"))
}

fn initial_context_token(token: &[u8], spnego_depth: usize) -> Result<GssToken<'_>, GssError> {
    let (contents, _padding) =
        der::expect(token, 0x60).ok_or(GssError::Malformed("InitialContextToken"))?;
    let (oid, inner) = der::expect(contents, 0x06).ok_or(GssError::Malformed("thisMech"))?;
    let mech = Oid(oid);
    if mech == Oid::SPNEGO {
        return negotiation_token(inner, spnego_depth);
    }
    if mech == Oid::NTLMSSP {
        return Ok(GssToken::Ntlm(inner));
    }
    if !mech.is_kerberos() {
        return Ok(GssToken::Unknown { mech });
    }
    let (tok_id, message) = inner
        .split_first_chunk::<2>()
        .ok_or(GssError::Malformed("TOK_ID"))?;
    if !matches!(tok_id, [0x01..=0x03, 0x00]) {
        return Ok(GssToken::Unknown { mech });
    }
    Ok(GssToken::Kerberos {
        mech: Some(mech),
        tok_id: Some(*tok_id),
        message: Box::new(kerberos::parse(message)?),
    })
}

fn negotiation_token(token: &[u8], spnego_depth: usize) -> Result<GssToken<'_>, GssError> {
    if spnego_depth >= MAX_NESTING {
        return Err(GssError::NestingTooDeep);
    }
    let inner_depth = spnego_depth + 1;
    let (choice, contents, _padding) =
        der::tlv(token).ok_or(GssError::Malformed("NegotiationToken"))?;
    let (fields, _) = der::expect(contents, 0x30).ok_or(GssError::Malformed("SPNEGO SEQUENCE"))?;
    match choice {
        0xa0 => neg_token_init(fields, inner_depth),
        0xa1 => neg_token_resp(fields, inner_depth),
        _ => Err(GssError::Unrecognized),
    }
}

/// The `[n]` context-tagged fields of a SEQUENCE, in order, at most [`MAX_SPNEGO_FIELDS`].
fn fields(mut rest: &[u8]) -> Result<Vec<(u8, &[u8])>, GssError> {
    let mut out = Vec::new();
    while !rest.is_empty() {
        if out.len() == MAX_SPNEGO_FIELDS {
            return Err(GssError::Malformed("too many SPNEGO fields"));
        }
        let (tag, contents, next) = der::tlv(rest).ok_or(GssError::Malformed("SPNEGO field"))?;
        if tag & 0xe0 != 0xa0 {
            return Err(GssError::Malformed("SPNEGO field tag"));
        }
        out.push((tag & 0x1f, contents));
        rest = next;
    }
    Ok(out)
}

fn neg_token_init(sequence: &[u8], depth: usize) -> Result<GssToken<'_>, GssError> {
    let mut mech_types = Vec::new();
    let mut mech_types_truncated = false;
    let mut mech_token = None;
    let mut mech_list_mic_present = false;
    for (number, contents) in fields(sequence)? {
        match number {
            0 => (mech_types, mech_types_truncated) = mech_type_list(contents)?,
            2 => mech_token = Some(Box::new(inner_token(octet_string(contents)?, depth)?)),
            // [3] is mechListMIC in RFC 4178 and negHints (a SEQUENCE) in NegTokenInit2.
            3 => mech_list_mic_present |= contents.first() == Some(&0x04),
            4 => mech_list_mic_present = true,
            _ => {}
        }
    }
    Ok(GssToken::SpnegoInit {
        mech_types,
        mech_types_truncated,
        mech_token,
        mech_list_mic_present,
    })
}

fn neg_token_resp(sequence: &[u8], depth: usize) -> Result<GssToken<'_>, GssError> {
    let mut neg_state = None;
    let mut supported_mech = None;
    let mut response_token = None;
    let mut mech_list_mic_present = false;
    for (number, contents) in fields(sequence)? {
        match number {
            0 => {
                let (value, _) =
                    der::expect(contents, 0x0a).ok_or(GssError::Malformed("negState"))?;
                let &[state] = value else {
                    return Err(GssError::Malformed("negState"));
                };
                neg_state = Some(NegState(state));
            }
            1 => {
                let (oid, _) =
                    der::expect(contents, 0x06).ok_or(GssError::Malformed("supportedMech"))?;
                supported_mech = Some(Oid(oid));
            }
            2 => response_token = Some(Box::new(inner_token(octet_string(contents)?, depth)?)),
            3 => mech_list_mic_present = true,
            _ => {}
        }
    }
    Ok(GssToken::SpnegoResponse {
        neg_state,
        supported_mech,
        response_token,
        mech_list_mic_present,
    })
}

/// `MechTypeList ::= SEQUENCE OF MechType`, the first [`MAX_MECH_TYPES`] of it.
fn mech_type_list(contents: &[u8]) -> Result<(Vec<Oid<'_>>, bool), GssError> {
    let (mut rest, _) = der::expect(contents, 0x30).ok_or(GssError::Malformed("mechTypes"))?;
    let mut oids = Vec::new();
    while !rest.is_empty() {
        if oids.len() == MAX_MECH_TYPES {
            return Ok((oids, true));
        }
        let (oid, next) = der::expect(rest, 0x06).ok_or(GssError::Malformed("MechType"))?;
        oids.push(Oid(oid));
        rest = next;
    }
    Ok((oids, false))
}

fn octet_string(contents: &[u8]) -> Result<&[u8], GssError> {
    der::expect(contents, 0x04)
        .map(|(value, _)| value)
        .ok_or(GssError::Malformed("OCTET STRING"))
}

/// A mechToken or responseToken: what SPNEGO carries, in any of the forms [`parse`] accepts.
fn inner_token(token: &[u8], depth: usize) -> Result<GssToken<'_>, GssError> {
    match parse_at(token, depth) {
        Err(GssError::Unrecognized | GssError::Empty) => Ok(GssToken::Opaque(token)),
        other => other,
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a test fails by panicking")]
mod tests {
    //! Fixtures in parsers/tests/fixtures/kerberos/gss_*.hex, taken with
    //! `tshark -r F -Y frame.number==N -T fields -e smb.security_blob` (SMB1),
    //! `-e smb2.security_blob` (SMB2), `-e ldap.credentials` / `-e ldap.serverSaslCreds` (LDAP).
    //! Expected values: tshark's `-e spnego.MechType -e spnego.negResult -e spnego.supportedMech
    //! -e kerberos.msg_type -e kerberos.SNameString -e kerberos.realm -e kerberos.etype
    //! -e kerberos.kvno -e ntlmssp.messagetype` on the same frames.
    use super::*;
    use crate::kerberos;
    use crate::kerberos::{Body, EncryptionType, MessageType};
    use dcwatch_tests::fixture::hex;

    /// Leaked, so that tokens borrowing from a fixture can outlive the statement.
    macro_rules! fixture {
        ($name:literal) => {
            &*Vec::leak(hex(include_str!(concat!(
                "../tests/fixtures/kerberos/",
                $name,
                ".hex"
            ))))
        };
    }

    fn oids(list: &[Oid<'_>]) -> Vec<String> {
        list.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn oid_display() {
        assert_eq!(Oid::SPNEGO.to_string(), "1.3.6.1.5.5.2");
        assert_eq!(Oid::KRB5.to_string(), "1.2.840.113554.1.2.2");
        assert_eq!(Oid::MS_KRB5.to_string(), "1.2.840.48018.1.2.2");
        assert_eq!(Oid::NTLMSSP.to_string(), "1.3.6.1.4.1.311.2.2.10");
        assert_eq!(Oid::NEGOEX.to_string(), "1.3.6.1.4.1.311.2.2.30");
        assert_eq!(Oid(&[0x88, 0x37, 0x01]).to_string(), "2.999.1");
        assert_eq!(Oid(&[0xff; 12]).to_string(), "?");
        assert_eq!(Oid(&[]).to_string(), "");
        assert_eq!(Oid::NEGOEX.name(), Some("NEGOEX"));
    }

    fn spnego_init(token: GssToken<'_>) -> (Vec<String>, Option<GssToken<'_>>, bool) {
        match token {
            GssToken::SpnegoInit {
                mech_types,
                mech_token,
                mech_list_mic_present,
                mech_types_truncated: false,
            } => (
                oids(&mech_types),
                mech_token.map(|t| *t),
                mech_list_mic_present,
            ),
            other => panic!("not a negTokenInit: {other:?}"),
        }
    }

    fn spnego_resp(
        token: GssToken<'_>,
    ) -> (Option<NegState>, Option<String>, Option<GssToken<'_>>, bool) {
        match token {
            GssToken::SpnegoResponse {
                neg_state,
                supported_mech,
                response_token,
                mech_list_mic_present,
            } => (
                neg_state,
                supported_mech.map(|m| m.to_string()),
                response_token.map(|t| *t),
                mech_list_mic_present,
            ),
            other => panic!("not a negTokenResp: {other:?}"),
        }
    }

    fn kerberos(token: Option<GssToken<'_>>) -> (Option<[u8; 2]>, KrbMessage) {
        match token {
            Some(GssToken::Kerberos {
                mech,
                tok_id,
                message,
            }) => {
                assert!(mech.is_some_and(Oid::is_kerberos));
                (tok_id, *message)
            }
            other => panic!("not Kerberos: {other:?}"),
        }
    }

    fn ntlm_type(token: Option<GssToken<'_>>) -> u8 {
        match token {
            Some(GssToken::Ntlm(bytes)) => {
                assert!(bytes.starts_with(NTLMSSP_SIGNATURE));
                bytes[8]
            }
            other => panic!("not NTLMSSP: {other:?}"),
        }
    }

    const MS_KRB5: &str = "1.2.840.48018.1.2.2";
    const KRB5: &str = "1.2.840.113554.1.2.2";
    const NTLMSSP: &str = "1.3.6.1.4.1.311.2.2.10";
    const NEGOEX: &str = "1.3.6.1.4.1.311.2.2.30";

    // zeek/testing/btest/Traces/krb/smb_gssapi.pcap: frames 5 (Negotiate response), 7 (Session
    // Setup AndX request) and 8 (its response), smb.security_blob.
    // tshark f5: spnego.MechType 1.2.840.48018.1.2.2,1.3.6.1.4.1.311.2.2.10,
    //   spnego.hintName edisk03a$@HOUSING.HKSARG (NegTokenInit2 negHints).
    // tshark f7: same MechTypes; kerberos.msg_type 14, SNameString cifs,EDISK03A.housing.hksarg,
    //   realm HOUSING.HKSARG, etype 23,23.
    // tshark f8: spnego.negResult 0, kerberos.msg_type 15, etype 23, spnego.mechListMIC present
    //   (a copy of the response token, as Windows 2000 sent).
    #[test]
    fn smb1_spnego_kerberos() {
        let (mechs, token, mic) = spnego_init(parse(fixture!("gss_smb1_f5_negprot_init")).unwrap());
        assert_eq!(mechs, [MS_KRB5, NTLMSSP]);
        assert_eq!((token, mic), (None, false));

        let blob: &[u8] = fixture!("gss_smb1_f7_krb_ap_req");
        let (mechs, token, _) = spnego_init(parse(blob).unwrap());
        assert_eq!(mechs, [MS_KRB5, NTLMSSP]);
        let (tok_id, message) = kerberos(token);
        assert_eq!(tok_id, Some([1, 0]));
        assert_eq!(message.msg_type, MessageType::AP_REQ);
        let Body::ApReq(ap) = message.body else {
            panic!("not an AP-REQ")
        };
        assert_eq!(ap.ticket.sname.to_string(), "cifs/EDISK03A.housing.hksarg");
        assert_eq!(ap.ticket.realm, "HOUSING.HKSARG");
        assert_eq!(ap.ticket.etype, EncryptionType::RC4_HMAC);
        assert_eq!(ap.authenticator_etype, EncryptionType::RC4_HMAC);

        let (state, mech, token, mic) =
            spnego_resp(parse(fixture!("gss_smb1_f8_resp_ap_rep")).unwrap());
        assert_eq!(
            (state, mech, mic),
            (Some(NegState::ACCEPT_COMPLETED), None, true)
        );
        let (tok_id, message) = kerberos(token);
        assert_eq!(tok_id, Some([2, 0]));
        assert_eq!(
            message.body,
            Body::ApRep(kerberos::ApRep {
                enc_part_etype: EncryptionType::RC4_HMAC
            })
        );
    }

    // zeek/testing/btest/Traces/ldap/modify-request.pcapng: frames 9 (bindRequest, SASL
    // GSS-SPNEGO, ldap.credentials) and 11 (bindResponse, ldap.serverSaslCreds).
    // tshark f9: spnego.MechType 1.2.840.48018.1.2.2,1.2.840.113554.1.2.2,1.3.6.1.4.1.311.2.2.30,
    //   1.3.6.1.4.1.311.2.2.10; kerberos.msg_type 14,
    //   SNameString LDAP,vm39-ad2024.ad2024.weberlab.de,
    //   realm AD2024.WEBERLAB.DE, etype 18,18, kvno 3.
    // tshark f11: spnego.negResult 0, supportedMech 1.2.840.48018.1.2.2, msg_type 15, etype 18.
    #[test]
    fn ldap_sasl_spnego_kerberos() {
        let blob: &[u8] = fixture!("gss_ldap_f9_bind_ap_req");
        let (mechs, token, _) = spnego_init(parse(blob).unwrap());
        assert_eq!(mechs, [MS_KRB5, KRB5, NEGOEX, NTLMSSP]);
        let (tok_id, message) = kerberos(token);
        assert_eq!(tok_id, Some([1, 0]));
        let Body::ApReq(ap) = message.body else {
            panic!("not an AP-REQ")
        };
        assert_eq!(
            ap.ticket.sname.to_string(),
            "LDAP/vm39-ad2024.ad2024.weberlab.de"
        );
        assert_eq!(ap.ticket.realm, "AD2024.WEBERLAB.DE");
        assert_eq!(ap.ticket.etype, EncryptionType(18));
        assert_eq!(ap.ticket.kvno, Some(3));
        assert_eq!(ap.authenticator_etype, EncryptionType(18));

        let resp: &[u8] = fixture!("gss_ldap_f11_resp_ap_rep");
        let (state, mech, token, _) = spnego_resp(parse(resp).unwrap());
        assert_eq!(state, Some(NegState::ACCEPT_COMPLETED));
        assert_eq!(mech.as_deref(), Some(MS_KRB5));
        let (_, message) = kerberos(token);
        assert_eq!(message.msg_type, MessageType::AP_REP);

        // Every proper prefix is refused.
        for len in 0..blob.len() {
            assert!(parse(&blob[..len]).is_err(), "prefix of {len} bytes parsed");
        }
    }

    // suricata-verify/tests/smb-dce_iface/input.pcap: frames 5 (NEGOTIATE response), 7, 8, 9, 10
    // (SESSION_SETUP legs), smb2.security_blob.
    // tshark f5: spnego.MechType 1.3.6.1.4.1.311.2.2.30,1.2.840.48018.1.2.2,1.2.840.113554.1.2.2,
    //   1.2.840.113554.1.2.2.3,1.3.6.1.4.1.311.2.2.10;
    //   hintName not_defined_in_RFC4178@please_ignore.
    // tshark f7: MechType 1.3.6.1.4.1.311.2.2.10, ntlmssp.messagetype 0x00000001.
    // tshark f8: negResult 1, supportedMech 1.3.6.1.4.1.311.2.2.10, ntlmssp.messagetype 2.
    // tshark f9: ntlmssp.messagetype 3 (no negResult).   tshark f10: negResult 0.
    #[test]
    fn smb2_spnego_ntlm() {
        let (mechs, token, mic) =
            spnego_init(parse(fixture!("gss_smb2_f5_negotiate_init")).unwrap());
        assert_eq!(
            mechs,
            [NEGOEX, MS_KRB5, KRB5, "1.2.840.113554.1.2.2.3", NTLMSSP]
        );
        assert_eq!((token, mic), (None, false));

        let (mechs, token, _) = spnego_init(parse(fixture!("gss_smb2_f7_ntlm_negotiate")).unwrap());
        assert_eq!(mechs, [NTLMSSP]);
        assert_eq!(ntlm_type(token), 1);

        let (state, mech, token, _) =
            spnego_resp(parse(fixture!("gss_smb2_f8_ntlm_challenge")).unwrap());
        assert_eq!(state, Some(NegState::ACCEPT_INCOMPLETE));
        assert_eq!(mech.as_deref(), Some(NTLMSSP));
        assert_eq!(ntlm_type(token), 2);

        let (state, mech, token, _) =
            spnego_resp(parse(fixture!("gss_smb2_f9_ntlm_auth")).unwrap());
        assert_eq!((state, mech), (None, None));
        assert_eq!(ntlm_type(token), 3);

        let done = spnego_resp(parse(fixture!("gss_smb2_f10_accept_completed")).unwrap());
        assert_eq!(done, (Some(NegState::ACCEPT_COMPLETED), None, None, false));
    }

    /// DER encoding of one value, long-form length when needed.
    fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        if contents.len() < 0x80 {
            out.push(contents.len() as u8);
        } else {
            out.push(0x84);
            out.extend((contents.len() as u32).to_be_bytes());
        }
        out.extend(contents);
        out
    }

    /// negTokenInit { mechTypes { mechs }, mechToken token }.
    fn neg_token_init(mechs: &[Oid<'_>], token: Option<&[u8]>) -> Vec<u8> {
        let list: Vec<u8> = mechs.iter().flat_map(|m| tlv(0x06, m.0)).collect();
        let mut fields = tlv(0xa0, &tlv(0x30, &list));
        if let Some(token) = token {
            fields.extend(tlv(0xa2, &tlv(0x04, token)));
        }
        tlv(0xa0, &tlv(0x30, &fields))
    }

    fn initial_context_token(mech: Oid<'_>, inner: &[u8]) -> Vec<u8> {
        tlv(0x60, &[tlv(0x06, mech.0), inner.to_vec()].concat())
    }

    #[test]
    fn other_forms() {
        // A bare NTLMSSP message, and NTLMSSP in an InitialContextToken.
        let ntlm = b"NTLMSSP\0\x01\0\0\0\x07\x82\x08\xa2";
        assert_eq!(parse(ntlm), Ok(GssToken::Ntlm(ntlm)));
        assert_eq!(
            parse(&initial_context_token(Oid::NTLMSSP, ntlm)),
            Ok(GssToken::Ntlm(ntlm))
        );
        // A bare AP-REP: the SPNEGO response token of smb_gssapi.pcap frame 8 without its framing.
        let blob: &[u8] = fixture!("gss_smb1_f8_resp_ap_rep");
        let at = blob.windows(2).position(|w| w == [0x6f, 0x6a]).unwrap();
        let Ok(GssToken::Kerberos {
            mech: None,
            tok_id: None,
            message,
        }) = parse(&blob[at..])
        else {
            panic!("bare AP-REP not parsed");
        };
        assert_eq!(message.msg_type, MessageType::AP_REP);
        // Other mechanisms, and Kerberos per-message tokens (TOK_ID 04 04 is a MIC).
        assert_eq!(
            parse(&initial_context_token(Oid::NEGOEX, b"NEGOEXTS")),
            Ok(GssToken::Unknown { mech: Oid::NEGOEX })
        );
        assert_eq!(
            parse(&initial_context_token(Oid::KRB5, &[4, 4, 0xff, 0xff])),
            Ok(GssToken::Unknown { mech: Oid::KRB5 })
        );
        // A NEGOEX mechToken is kept opaque.
        let negoex = neg_token_init(&[Oid::NEGOEX], Some(b"NEGOEXTS\0\0"));
        let Ok(GssToken::SpnegoInit {
            mech_token: Some(inner),
            ..
        }) = parse(&negoex)
        else {
            panic!("negTokenInit not parsed");
        };
        assert_eq!(*inner, GssToken::Opaque(b"NEGOEXTS\0\0"));
        // A Kerberos token whose message is broken is an error, not opaque.
        assert!(matches!(
            parse(&initial_context_token(Oid::KRB5, &[1, 0, 0x6e, 0x00])),
            Err(GssError::Kerberos(_))
        ));
        assert_eq!(parse(b"GET / HTTP/1.1"), Err(GssError::Unrecognized));
        assert_eq!(parse(&[]), Err(GssError::Empty));
    }

    #[test]
    fn spnego_inside_spnego_is_refused() {
        let ntlm = b"NTLMSSP\0\x01\0\0\0";
        let one = neg_token_init(&[Oid::NTLMSSP], Some(ntlm));
        assert!(parse(&one).is_ok());
        // A negTokenInit as the mechToken, bare or in an InitialContextToken.
        let two = neg_token_init(&[Oid::SPNEGO], Some(&one));
        assert_eq!(parse(&two), Err(GssError::NestingTooDeep));
        let wrapped = initial_context_token(Oid::SPNEGO, &one);
        assert!(parse(&wrapped).is_ok());
        let two =
            initial_context_token(Oid::SPNEGO, &neg_token_init(&[Oid::SPNEGO], Some(&wrapped)));
        assert_eq!(parse(&two), Err(GssError::NestingTooDeep));
        // A thousand layers: refused at the second, without recursing further.
        let mut deep = one.clone();
        for _ in 0..1000 {
            deep = neg_token_init(&[Oid::SPNEGO], Some(&deep));
        }
        assert_eq!(parse(&deep), Err(GssError::NestingTooDeep));
    }

    #[test]
    fn hostile_lengths_and_lists() {
        assert_eq!(
            parse(&[0x60, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x06, 0x00]),
            Err(GssError::Malformed("InitialContextToken"))
        );
        assert!(parse(&[0xa0, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x30]).is_err());
        assert!(parse(&[0xa1, 0x80, 0x30, 0x80, 0, 0, 0, 0]).is_err());
        assert_eq!(
            parse(&vec![0x60; MAX_TOKEN_LEN + 1]),
            Err(GssError::TooLong(MAX_TOKEN_LEN + 1))
        );
        let many = neg_token_init(&vec![Oid::NTLMSSP; MAX_MECH_TYPES + 5], None);
        let Ok(GssToken::SpnegoInit {
            mech_types,
            mech_types_truncated,
            ..
        }) = parse(&many)
        else {
            panic!("negTokenInit not parsed");
        };
        assert_eq!(mech_types.len(), MAX_MECH_TYPES);
        assert!(mech_types_truncated);
    }
}
