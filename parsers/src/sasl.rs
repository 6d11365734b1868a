//! The buffers of a SASL security layer (RFC 4422 3.7) once its 4-byte length is removed: GSS
//! wrap tokens, which sign and may or may not seal what they carry. Windows clients often ask
//! LDAP for integrity without confidentiality, and then the message inside is in clear.
//!
//! ```text
//! RFC 4121 4.2.6.2 (Kerberos, AES and later):
//!   TOK_ID 05 04 | Flags (0x01 SentByAcceptor, 0x02 Sealed, 0x04 AcceptorSubkey) | Filler FF |
//!   EC (u16be) | RRC (u16be) | SND_SEQ (8) | data
//!   Not sealed: data = plaintext | checksum of EC octets, the whole rotated right by RRC
//!   octets (RFC 4121 4.2.5; Windows rotates by 12, so the checksum comes first).
//! RFC 1964 1.2.2, RFC 4757 7.3 (Kerberos, DES and RC4), inside the RFC 2743 3.1 framing
//!   60 len 06 09 2a864886f712010202:
//!   TOK_ID 02 01 | SGN_ALG (2) | SEAL_ALG (2; FF FF none) | Filler FF FF | SND_SEQ (8) |
//!   SGN_CKSUM (8) | Confounder (8) | plaintext | padding (1 to 8 octets, each its count)
//! MS-NLMP 2.2.2.9 (NTLMSSP): NTLMSSP_MESSAGE_SIGNATURE Version (01 00 00 00) | 12 octets |
//!   the message, RC4-encrypted when sealed: nothing in the token says which, the caller tells
//!   them apart by whether the bytes are what the protocol sends (see [`Wrap::Ntlm`]).
//! ```

use std::borrow::Cow;

use crate::kerberos::der;

/// What a security layer buffer is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wrap<'a> {
    /// A Kerberos wrap token that signs only: the message, in clear.
    Signed(Cow<'a, [u8]>),
    /// A Kerberos wrap token that seals: the message is encrypted.
    Sealed,
    /// An NTLMSSP signature and the bytes after it: the message if it was only signed, its
    /// RC4 ciphertext (as long) if sealed.
    Ntlm(&'a [u8]),
    /// Not a wrap token of these forms.
    Unknown,
}

/// RFC 4121 4.2.6.2: the Wrap token's TOK_ID.
const CFX_WRAP: [u8; 2] = [0x05, 0x04];
const CFX_HEADER_LEN: usize = 16;
const CFX_SEALED: u8 = 0x02;
/// RFC 1964 1.2.2: the Wrap token's TOK_ID, header, and confounder.
const RFC1964_WRAP: [u8; 2] = [0x02, 0x01];
const RFC1964_HEADER_LEN: usize = 24;
const RFC1964_CONFOUNDER_LEN: usize = 8;
const RFC1964_NOT_SEALED: [u8; 2] = [0xff, 0xff];
/// The Kerberos mechanism OID, 1.2.840.113554.1.2.2.
const KRB5_OID: [u8; 9] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02];
/// MS-NLMP 2.2.2.9: a signature is 16 octets, its Version always 1.
const NTLM_SIGNATURE_LEN: usize = 16;
const NTLM_SIGNATURE_VERSION: [u8; 4] = [1, 0, 0, 0];

/// Reads one security layer buffer (without its length prefix).
#[must_use]
pub fn unwrap(buffer: &[u8]) -> Wrap<'_> {
    match buffer.first_chunk::<2>() {
        Some(&CFX_WRAP) => cfx(buffer),
        Some([0x60, _]) => rfc1964(buffer),
        Some(_) if buffer.starts_with(&NTLM_SIGNATURE_VERSION) => buffer
            .get(NTLM_SIGNATURE_LEN..)
            .map_or(Wrap::Unknown, Wrap::Ntlm),
        _ => Wrap::Unknown,
    }
}

fn cfx(token: &[u8]) -> Wrap<'_> {
    let Some((header, data)) = token.split_first_chunk::<CFX_HEADER_LEN>() else {
        return Wrap::Unknown;
    };
    let [_, _, flags, filler, ec_high, ec_low, rrc_high, rrc_low, ..] = *header;
    if filler != 0xff {
        return Wrap::Unknown;
    }
    if flags & CFX_SEALED != 0 {
        return Wrap::Sealed;
    }
    let checksum_len = usize::from(u16::from_be_bytes([ec_high, ec_low]));
    let Some(plaintext_len) = data.len().checked_sub(checksum_len) else {
        return Wrap::Unknown;
    };
    // Rotated right by RRC: the last RRC octets of plaintext | checksum come first.
    let rotation = match data.len() {
        0 => 0,
        len => usize::from(u16::from_be_bytes([rrc_high, rrc_low])) % len,
    };
    if rotation == 0 {
        return data
            .get(..plaintext_len)
            .map_or(Wrap::Unknown, |plaintext| {
                Wrap::Signed(Cow::Borrowed(plaintext))
            });
    }
    let (moved, rest) = data.split_at(rotation);
    let mut plaintext: Vec<u8> = rest.iter().chain(moved).copied().collect();
    plaintext.truncate(plaintext_len);
    Wrap::Signed(Cow::Owned(plaintext))
}

/// The first octets of the plaintext of a Kerberos wrap token that signs only, when the caller
/// holds only the front of the token (`total` octets long): enough to tell what the first
/// message inside is. `None` for a sealed token, an NTLMSSP one (whose clear text cannot be
/// told from ciphertext without the whole message), or a rotation that splits the plaintext.
#[must_use]
pub fn signed_prefix(token: &[u8], total: usize) -> Option<&[u8]> {
    match token.first_chunk::<2>()? {
        &CFX_WRAP => {
            let header = token.first_chunk::<CFX_HEADER_LEN>()?;
            let [_, _, flags, filler, ec_high, ec_low, rrc_high, rrc_low, ..] = *header;
            if filler != 0xff || flags & CFX_SEALED != 0 {
                return None;
            }
            let data_len = total.checked_sub(CFX_HEADER_LEN).filter(|&len| len > 0)?;
            let checksum_len = usize::from(u16::from_be_bytes([ec_high, ec_low]));
            let rotation = usize::from(u16::from_be_bytes([rrc_high, rrc_low])) % data_len;
            // Rotated by no more than the checksum: the plaintext follows the rotated octets.
            if rotation > checksum_len {
                return None;
            }
            let plaintext_len = data_len.checked_sub(checksum_len)?;
            let start = CFX_HEADER_LEN + rotation;
            let end = start.saturating_add(plaintext_len).min(token.len());
            token.get(start..end)
        }
        [0x60, _] => {
            let framing = der::header(token).ok()?;
            let after_framing = token.get(framing.header_len..)?;
            let (0x06, oid, inner) = der::tlv(after_framing)? else {
                return None;
            };
            let (header, data) = inner.split_first_chunk::<RFC1964_HEADER_LEN>()?;
            let signed = oid == KRB5_OID
                && header[..2] == RFC1964_WRAP
                && header[4..6] == RFC1964_NOT_SEALED
                && header[6..8] == [0xff, 0xff];
            if signed {
                data.get(RFC1964_CONFOUNDER_LEN..)
            } else {
                None
            }
        }
        _ => None,
    }
}

fn rfc1964(token: &[u8]) -> Wrap<'_> {
    let Ok(framing) = der::header(token) else {
        return Wrap::Unknown;
    };
    let Some(after_framing) = token.get(framing.header_len..) else {
        return Wrap::Unknown;
    };
    // The OID, then the token; the data runs to the end of the buffer whatever the framing's
    // length says (RFC 4757 writers differ on whether it covers the data).
    let Some((0x06, oid, inner)) = der::tlv(after_framing) else {
        return Wrap::Unknown;
    };
    if oid != KRB5_OID {
        return Wrap::Unknown;
    }
    let Some((header, data)) = inner.split_first_chunk::<RFC1964_HEADER_LEN>() else {
        return Wrap::Unknown;
    };
    if header[..2] != RFC1964_WRAP || header[6..8] != [0xff, 0xff] {
        return Wrap::Unknown;
    }
    if header[4..6] != RFC1964_NOT_SEALED {
        return Wrap::Sealed;
    }
    let Some(padded) = data.get(RFC1964_CONFOUNDER_LEN..) else {
        return Wrap::Unknown;
    };
    // RFC 1964 1.2.2.3: 1 to 8 octets of padding, each holding the padding's length.
    let Some(&pad) = padded.last() else {
        return Wrap::Unknown;
    };
    let pad_len = usize::from(pad);
    match padded.len().checked_sub(pad_len) {
        Some(end) if (1..=8).contains(&pad_len) && padded[end..].iter().all(|&b| b == pad) => {
            Wrap::Signed(Cow::Borrowed(&padded[..end]))
        }
        _ => Wrap::Unknown,
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a test fails by panicking")]
mod tests;
