//! NTP (RFC 5905) as Windows domain members speak it to their DC: SNTP with Microsoft's
//! authenticator (MS-SNTP), whose key identifier names a computer account by its RID. A client
//! that asks for many RIDs and collects the signed answers has what it needs to crack the
//! accounts' passwords offline (Timeroasting).
//!
//! ```text
//! RFC 5905 7.3: LI (2 bits) VN (3) Mode (3) | Stratum | Poll | Precision | Root Delay (4) |
//!   Root Dispersion (4) | Reference ID (4) | Reference, Origin, Receive, Transmit Timestamps
//!   (8 each): 48 octets, then extension fields and a MAC, or (MS-SNTP) an authenticator.
//! MS-SNTP 2.2.1 Authenticator: Key Identifier (4) | Crypto-Checksum (16)          20 octets
//! MS-SNTP 2.2.2 Extended Authenticator: Key Identifier (4) | Reserved (1) | Flags (1) |
//!   ClientHashIDHints (1) | SignatureHashID (1) | Crypto-Checksum (64)            72 octets
//! MS-SNTP 3.1.5.1, 3.2.5.1.1: the Key Identifier is little-endian; its low 31 bits are the
//!   RID of the computer account, its top bit asks for the account's previous password.
//! ```
//!
//! A request carrying the key identifier alone (4 octets, no checksum) is what Timeroasting
//! tools send; a DC answers it like the 20-octet form.

/// RFC 5905 7.3: the fixed header.
pub const HEADER_LEN: usize = 48;

/// MS-SNTP 2.2.1 and 2.2.2: the two authenticators' lengths.
pub const AUTHENTICATOR_LEN: usize = 20;
pub const EXTENDED_AUTHENTICATOR_LEN: usize = 72;

/// Largest datagram taken for NTP: the header, a few RFC 7822 extension fields and a MAC; an
/// MS-SNTP packet is at most 120 octets.
pub const MAX_PACKET_LEN: usize = 1024;

/// The key identifier's top bit (MS-SNTP 3.1.5.1): use the previous password.
const OLD_PASSWORD_BIT: u32 = 0x8000_0000;

/// Why bytes are not an NTP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NtpError {
    #[error("{0} bytes: shorter than the NTP header")]
    TooShort(usize),
    #[error("{0} bytes: longer than MAX_PACKET_LEN")]
    TooLong(usize),
    /// Versions 1 to 4 exist.
    #[error("NTP version {0}")]
    BadVersion(u8),
    /// Mode 0 is reserved; 6 and 7 are control and private messages, not this layout.
    #[error("NTP mode {0} not parsed")]
    Unsupported(u8),
}

/// Association mode (RFC 5905 7.3). Open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Mode(pub u8);

impl Mode {
    pub const SYMMETRIC_ACTIVE: Self = Self(1);
    pub const SYMMETRIC_PASSIVE: Self = Self(2);
    pub const CLIENT: Self = Self(3);
    pub const SERVER: Self = Self(4);
    pub const BROADCAST: Self = Self(5);
}

/// What follows the header, when it reads as an MS-SNTP authenticator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Authenticator {
    /// Little-endian, as MS-SNTP writes it.
    pub key_id: u32,
    /// Octets after the header: 4 (key identifier only), 20, or 72.
    pub len: usize,
}

impl Authenticator {
    /// The RID the key identifier names.
    #[must_use]
    pub fn rid(self) -> u32 {
        self.key_id & !OLD_PASSWORD_BIT
    }

    /// Whether the previous password's key is asked for.
    #[must_use]
    pub fn old_password(self) -> bool {
        self.key_id & OLD_PASSWORD_BIT != 0
    }
}

/// Things seen in a packet that parsed anyway.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Anomalies {
    /// Bytes after the header that are none of the MS-SNTP authenticator lengths (extension
    /// fields, an RFC 5905 MAC of another size): not read.
    pub unknown_trailer: bool,
}

/// One NTP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NtpPacket {
    pub leap: u8,
    pub version: u8,
    pub mode: Mode,
    pub stratum: u8,
    /// NTP timestamps (seconds since 1900 in the high 32 bits), as sent: a server copies the
    /// request's Transmit into its answer's Origin (RFC 5905 8), which pairs the two.
    pub origin: u64,
    pub receive: u64,
    pub transmit: u64,
    /// Octets after the header, whatever they are.
    pub trailer_len: usize,
    pub authenticator: Option<Authenticator>,
    pub anomalies: Anomalies,
}

/// Parses one UDP payload.
pub fn parse(bytes: &[u8]) -> Result<NtpPacket, NtpError> {
    if bytes.len() > MAX_PACKET_LEN {
        return Err(NtpError::TooLong(bytes.len()));
    }
    let (header, trailer) = bytes
        .split_first_chunk::<HEADER_LEN>()
        .ok_or(NtpError::TooShort(bytes.len()))?;
    let version = (header[0] >> 3) & 0x07;
    if !(1..=4).contains(&version) {
        return Err(NtpError::BadVersion(version));
    }
    let mode = Mode(header[0] & 0x07);
    if !(1..=5).contains(&mode.0) {
        return Err(NtpError::Unsupported(mode.0));
    }
    let timestamp = |at: usize| {
        header
            .get(at..at + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(0, u64::from_be_bytes)
    };
    let authenticator = match trailer.len() {
        4 | AUTHENTICATOR_LEN | EXTENDED_AUTHENTICATOR_LEN => {
            trailer.first_chunk::<4>().map(|key| Authenticator {
                key_id: u32::from_le_bytes(*key),
                len: trailer.len(),
            })
        }
        _ => None,
    };
    Ok(NtpPacket {
        leap: header[0] >> 6,
        version,
        mode,
        stratum: header[1],
        origin: timestamp(24),
        receive: timestamp(32),
        transmit: timestamp(40),
        trailer_len: trailer.len(),
        authenticator,
        anomalies: Anomalies {
            unknown_trailer: !trailer.is_empty() && authenticator.is_none(),
        },
    })
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "a test fails by panicking")]
mod tests;
