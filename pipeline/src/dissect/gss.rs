//! Authentication tokens that other protocols carry (SPNEGO, Kerberos GSS-API, raw NTLMSSP), to
//! the Kerberos and NTLM activities inside them.

use dcwatch_parsers::gssapi::{self, GssToken};
use dcwatch_proto::v1::{Activity, Carrier};

use super::{kerberos, ntlm};
use crate::activity::Seen;

/// The signature every NTLMSSP message starts with (MS-NLMP 2.2.1).
const NTLMSSP_SIGNATURE: &[u8] = b"NTLMSSP\0";

/// The TOK_IDs of Kerberos per-message tokens (RFC 4121 4.2.6): MIC and Wrap. The last leg of a
/// SASL GSSAPI bind (RFC 4752 3.1) carries one each way, to agree on a security layer.
const PER_MESSAGE_TOKEN_IDS: [[u8; 2]; 2] = [[0x04, 0x04], [0x05, 0x04]];

/// Appends the activities of a token to `out`; `false` when the token could not be read.
pub(super) fn token(bytes: &[u8], seen: &Seen, carrier: Carrier, out: &mut Vec<Activity>) -> bool {
    if bytes.starts_with(NTLMSSP_SIGNATURE) {
        return ntlm_token(bytes, seen, carrier, out);
    }
    // An empty token (the server's last, empty SASL credentials) carries nothing; a per-message
    // token is protected by the session key: nothing to read, nothing wrong.
    if bytes.is_empty()
        || PER_MESSAGE_TOKEN_IDS
            .iter()
            .any(|token_id| bytes.starts_with(token_id))
    {
        return true;
    }
    match gssapi::parse(bytes) {
        Ok(token) => walk(&token, seen, carrier, out),
        Err(_) => false,
    }
}

fn ntlm_token(bytes: &[u8], seen: &Seen, carrier: Carrier, out: &mut Vec<Activity>) -> bool {
    match ntlm::activity(bytes, seen, carrier) {
        Some(activity) => {
            out.push(activity);
            true
        }
        None => false,
    }
}

fn walk(token: &GssToken<'_>, seen: &Seen, carrier: Carrier, out: &mut Vec<Activity>) -> bool {
    match token {
        GssToken::Kerberos { message, .. } => {
            out.extend(kerberos::activity(message, seen, carrier));
            true
        }
        GssToken::Ntlm(bytes) => ntlm_token(bytes, seen, carrier, out),
        GssToken::SpnegoInit { mech_token, .. } => mech_token
            .as_deref()
            .is_none_or(|inner| walk(inner, seen, carrier, out)),
        GssToken::SpnegoResponse { response_token, .. } => response_token
            .as_deref()
            .is_none_or(|inner| walk(inner, seen, carrier, out)),
        GssToken::Unknown { .. } | GssToken::Opaque(_) => true,
    }
}
