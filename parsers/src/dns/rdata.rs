//! RDATA of the record types the sensor reads (RFC 1035 3.3-3.4, RFC 3596, RFC 2782,
//! RFC 2930, RFC 8945, RFC 6891).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::name::read_name;
use super::types::{Rcode, RecordType};
use super::{Anomalies, DnsError};

/// Character-strings kept from one TXT record. TXT RDATA is up to 65535 octets, which could be
/// as many empty strings; AD and SPF records use a handful.
pub const MAX_TXT_STRINGS: usize = 16;

/// Decoded RDATA. Names are decompressed against the whole message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RData<'a> {
    /// RDLENGTH 0: an UPDATE deletion or prerequisite (RFC 2136 2.4-2.5), or an empty OPT.
    Empty,
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Ns(String),
    Cname(String),
    Ptr(String),
    Mx {
        preference: u16,
        exchange: String,
    },
    /// RFC 2782: `priority weight port target`.
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
    Soa(Soa),
    /// The first [`MAX_TXT_STRINGS`] character-strings; `truncated` if there were more.
    Txt {
        strings: Vec<&'a [u8]>,
        truncated: bool,
    },
    /// RFC 6891 6.1.2: the options, undecoded (`{code:2 len:2 data:len}*`).
    Opt {
        options: &'a [u8],
    },
    Tkey(Tkey<'a>),
    Tsig(Tsig<'a>),
    /// A type not decoded here.
    Other {
        len: usize,
    },
    /// A decoded type whose RDATA did not fit its grammar (flagged in the message anomalies).
    Malformed {
        len: usize,
        error: DnsError,
    },
}

/// RFC 1035 3.3.13.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Soa {
    pub mname: String,
    pub rname: String,
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
}

/// RFC 2930 2 (TKEY RDATA); with algorithm `gss-tsig` (RFC 3645) and mode 3 (GSS-API), `key` is
/// a GSS-API token: in AD secure dynamic update, SPNEGO wrapping a Kerberos AP-REQ / AP-REP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tkey<'a> {
    pub algorithm: String,
    pub inception: u32,
    pub expiration: u32,
    /// 1 server assignment, 2 Diffie-Hellman, 3 GSS-API, 4 resolver assignment, 5 deletion.
    pub mode: u16,
    pub error: Rcode,
    pub key: &'a [u8],
    pub other: &'a [u8],
}

impl Tkey<'_> {
    pub const MODE_GSSAPI: u16 = 3;
}

/// RFC 8945 4.2 (TSIG RDATA).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tsig<'a> {
    pub algorithm: String,
    /// Seconds since the epoch, 48 bits on the wire.
    pub time_signed: u64,
    pub fudge: u16,
    pub mac: &'a [u8],
    pub original_id: u16,
    pub error: Rcode,
    pub other: &'a [u8],
}

/// Reads fixed-width fields and names inside one RDATA.
struct Cursor<'m, 'a> {
    msg: &'a [u8],
    pos: usize,
    end: usize,
    anomalies: &'m mut Anomalies,
}

impl<'a> Cursor<'_, 'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], DnsError> {
        let to = self
            .pos
            .checked_add(n)
            .filter(|&to| to <= self.end)
            .ok_or(DnsError::BadRdata)?;
        let b = self.msg.get(self.pos..to).ok_or(DnsError::BadRdata)?;
        self.pos = to;
        Ok(b)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DnsError> {
        self.bytes(N)?.try_into().map_err(|_| DnsError::BadRdata)
    }

    fn u8(&mut self) -> Result<u8, DnsError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, DnsError> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32, DnsError> {
        self.array().map(u32::from_be_bytes)
    }

    fn name(&mut self) -> Result<String, DnsError> {
        let n = read_name(self.msg, self.pos)?;
        if n.end > self.end {
            return Err(DnsError::BadRdata);
        }
        self.anomalies.forward_pointer |= n.forward_pointer;
        self.pos = n.end;
        Ok(n.text)
    }

    /// RDATA must be used up exactly: trailing octets mean the type was misread or forged.
    fn finish<T>(&self, value: T) -> Result<T, DnsError> {
        if self.pos == self.end {
            Ok(value)
        } else {
            Err(DnsError::BadRdata)
        }
    }
}

/// Decodes the RDATA at `msg[start..start + len]` (already checked to be within `msg`).
/// A known type that does not decode becomes [`RData::Malformed`] and sets `bad_rdata`.
pub(crate) fn decode<'a>(
    msg: &'a [u8],
    start: usize,
    len: usize,
    rtype: RecordType,
    anomalies: &mut Anomalies,
) -> RData<'a> {
    if len == 0 {
        return RData::Empty;
    }
    let end = start.saturating_add(len);
    let mut c = Cursor {
        msg,
        pos: start,
        end,
        anomalies,
    };
    let decoded = match rtype {
        RecordType::A => c.array().map(|a| RData::A(Ipv4Addr::from(a))),
        RecordType::AAAA => c.array().map(|a| RData::Aaaa(Ipv6Addr::from(a))),
        RecordType::NS => c.name().map(RData::Ns),
        RecordType::CNAME => c.name().map(RData::Cname),
        RecordType::PTR => c.name().map(RData::Ptr),
        RecordType::MX => mx(&mut c),
        RecordType::SRV => srv(&mut c),
        RecordType::SOA => soa(&mut c),
        RecordType::TXT => txt(&mut c),
        RecordType::OPT => c.bytes(len).map(|options| RData::Opt { options }),
        RecordType::TKEY => tkey(&mut c),
        RecordType::TSIG => tsig(&mut c),
        _ => return RData::Other { len },
    };
    match decoded.and_then(|d| c.finish(d)) {
        Ok(d) => d,
        Err(error) => {
            c.anomalies.bad_rdata = true;
            RData::Malformed { len, error }
        }
    }
}

fn mx<'a>(c: &mut Cursor<'_, 'a>) -> Result<RData<'a>, DnsError> {
    Ok(RData::Mx {
        preference: c.u16()?,
        exchange: c.name()?,
    })
}

fn srv<'a>(c: &mut Cursor<'_, 'a>) -> Result<RData<'a>, DnsError> {
    Ok(RData::Srv {
        priority: c.u16()?,
        weight: c.u16()?,
        port: c.u16()?,
        target: c.name()?,
    })
}

fn soa<'a>(c: &mut Cursor<'_, 'a>) -> Result<RData<'a>, DnsError> {
    Ok(RData::Soa(Soa {
        mname: c.name()?,
        rname: c.name()?,
        serial: c.u32()?,
        refresh: c.u32()?,
        retry: c.u32()?,
        expire: c.u32()?,
        minimum: c.u32()?,
    }))
}

/// RFC 1035 3.3.14: `TXT-DATA = 1*<character-string>`, each `len:1 octets:len`.
fn txt<'a>(c: &mut Cursor<'_, 'a>) -> Result<RData<'a>, DnsError> {
    let mut strings = Vec::new();
    let mut truncated = false;
    // Bounded: each string consumes at least its length octet of the RDATA.
    while c.pos < c.end {
        let n = c.u8()?;
        let s = c.bytes(usize::from(n))?;
        if strings.len() < MAX_TXT_STRINGS {
            strings.push(s);
        } else {
            truncated = true;
        }
    }
    Ok(RData::Txt { strings, truncated })
}

/// RFC 2930 2: `algorithm:name inception:4 expiration:4 mode:2 error:2 keysize:2 key
/// othersize:2 other`.
fn tkey<'a>(c: &mut Cursor<'_, 'a>) -> Result<RData<'a>, DnsError> {
    let algorithm = c.name()?;
    let inception = c.u32()?;
    let expiration = c.u32()?;
    let mode = c.u16()?;
    let error = Rcode(c.u16()?);
    let key_len = c.u16()?;
    let key = c.bytes(usize::from(key_len))?;
    let other_len = c.u16()?;
    let other = c.bytes(usize::from(other_len))?;
    Ok(RData::Tkey(Tkey {
        algorithm,
        inception,
        expiration,
        mode,
        error,
        key,
        other,
    }))
}

/// RFC 8945 4.2: `algorithm:name time:6 fudge:2 macsize:2 mac original-id:2 error:2
/// otherlen:2 other`.
fn tsig<'a>(c: &mut Cursor<'_, 'a>) -> Result<RData<'a>, DnsError> {
    let algorithm = c.name()?;
    let t: [u8; 6] = c.array()?;
    let time_signed = u64::from_be_bytes([0, 0, t[0], t[1], t[2], t[3], t[4], t[5]]);
    let fudge = c.u16()?;
    let mac_len = c.u16()?;
    let mac = c.bytes(usize::from(mac_len))?;
    let original_id = c.u16()?;
    let error = Rcode(c.u16()?);
    let other_len = c.u16()?;
    let other = c.bytes(usize::from(other_len))?;
    Ok(RData::Tsig(Tsig {
        algorithm,
        time_signed,
        fudge,
        mac,
        original_id,
        error,
        other,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(rdata: &[u8], t: RecordType) -> (RData<'_>, Anomalies) {
        let mut a = Anomalies::default();
        let d = decode(rdata, 0, rdata.len(), t, &mut a);
        (d, a)
    }

    #[test]
    fn wrong_lengths_are_malformed() {
        let (d, a) = dec(b"\x01\x02\x03\x04\x05", RecordType::A);
        assert_eq!(
            d,
            RData::Malformed {
                len: 5,
                error: DnsError::BadRdata
            }
        );
        assert!(a.bad_rdata);
        // A name running past RDLENGTH.
        let msg = b"\x03abc\x00";
        let mut a = Anomalies::default();
        assert!(matches!(
            decode(msg, 0, 3, RecordType::CNAME, &mut a),
            RData::Malformed { len: 3, .. }
        ));
        // A pointer loop inside RDATA does not fail the message, only the record.
        let (d, _) = dec(b"\x00\x0a\xc0\x02", RecordType::MX);
        assert_eq!(
            d,
            RData::Malformed {
                len: 4,
                error: DnsError::TooManyPointers
            }
        );
        let (d, _) = dec(b"\x05ab", RecordType::TXT);
        assert!(matches!(d, RData::Malformed { .. }));
    }

    #[test]
    fn txt_is_bounded() {
        let many = [0u8; 40];
        let (d, a) = dec(&many, RecordType::TXT);
        match d {
            RData::Txt { strings, truncated } => {
                assert_eq!(strings.len(), MAX_TXT_STRINGS);
                assert!(truncated);
            }
            other => panic!("{other:?}"),
        }
        assert!(!a.bad_rdata);
    }

    #[test]
    fn empty_and_unknown() {
        assert_eq!(dec(b"", RecordType::A).0, RData::Empty);
        assert_eq!(
            dec(b"\x01\x02", RecordType(4660)).0,
            RData::Other { len: 2 }
        );
    }
}
