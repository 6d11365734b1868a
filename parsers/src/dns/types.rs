//! DNS code points as open newtypes: unknown values parse and render per RFC 3597.

use std::fmt;

/// Header OPCODE (RFC 1035 4.1.1, IANA "DNS OpCodes"): 4 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Opcode(pub u8);

impl Opcode {
    pub const QUERY: Self = Self(0);
    /// Inverse query, obsoleted by RFC 3425.
    pub const IQUERY: Self = Self(1);
    pub const STATUS: Self = Self(2);
    /// RFC 1996: a primary tells its secondaries that the zone changed.
    pub const NOTIFY: Self = Self(4);
    /// RFC 2136 dynamic update: sections become zone / prerequisite / update / additional.
    pub const UPDATE: Self = Self(5);
    /// RFC 8490 DNS Stateful Operations (TCP only).
    pub const DSO: Self = Self(6);

    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::QUERY => "QUERY",
            Self::IQUERY => "IQUERY",
            Self::STATUS => "STATUS",
            Self::NOTIFY => "NOTIFY",
            Self::UPDATE => "UPDATE",
            Self::DSO => "DSO",
            _ => return None,
        })
    }
}

impl fmt::Display for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "OPCODE{}", self.0),
        }
    }
}

/// Response code (RFC 1035 4.1.1, RFC 2136 2.2, RFC 6891 6.1.3, RFC 8945 5.3): 12 bits when an
/// OPT record supplies the upper 8; TSIG and TKEY carry a full 16-bit error of the same space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rcode(pub u16);

impl Rcode {
    pub const NOERROR: Self = Self(0);
    pub const FORMERR: Self = Self(1);
    pub const SERVFAIL: Self = Self(2);
    pub const NXDOMAIN: Self = Self(3);
    pub const NOTIMP: Self = Self(4);
    pub const REFUSED: Self = Self(5);
    /// RFC 2136: a name that ought not to exist does.
    pub const YXDOMAIN: Self = Self(6);
    pub const YXRRSET: Self = Self(7);
    pub const NXRRSET: Self = Self(8);
    /// RFC 2136 / RFC 8945: server not authoritative, or TSIG not authorised.
    pub const NOTAUTH: Self = Self(9);
    pub const NOTZONE: Self = Self(10);
    pub const DSOTYPENI: Self = Self(11);
    /// RFC 6891: 16 in a message rcode (via OPT) is BADVERS ...
    pub const BADVERS: Self = Self(16);
    /// ... and in a TSIG/TKEY error field it is BADSIG (RFC 8945 5.3): same value.
    pub const BADSIG: Self = Self(16);
    pub const BADKEY: Self = Self(17);
    pub const BADTIME: Self = Self(18);
    pub const BADMODE: Self = Self(19);
    pub const BADNAME: Self = Self(20);
    pub const BADALG: Self = Self(21);
    pub const BADTRUNC: Self = Self(22);
    pub const BADCOOKIE: Self = Self(23);

    /// The IANA mnemonic; 16 renders as "BADVERS" (its meaning in a message rcode).
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::NOERROR => "NOERROR",
            Self::FORMERR => "FORMERR",
            Self::SERVFAIL => "SERVFAIL",
            Self::NXDOMAIN => "NXDOMAIN",
            Self::NOTIMP => "NOTIMP",
            Self::REFUSED => "REFUSED",
            Self::YXDOMAIN => "YXDOMAIN",
            Self::YXRRSET => "YXRRSET",
            Self::NXRRSET => "NXRRSET",
            Self::NOTAUTH => "NOTAUTH",
            Self::NOTZONE => "NOTZONE",
            Self::DSOTYPENI => "DSOTYPENI",
            Self::BADVERS => "BADVERS",
            Self::BADKEY => "BADKEY",
            Self::BADTIME => "BADTIME",
            Self::BADMODE => "BADMODE",
            Self::BADNAME => "BADNAME",
            Self::BADALG => "BADALG",
            Self::BADTRUNC => "BADTRUNC",
            Self::BADCOOKIE => "BADCOOKIE",
            _ => return None,
        })
    }
}

impl fmt::Display for Rcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "RCODE{}", self.0),
        }
    }
}

/// RR TYPE / QTYPE (RFC 1035 3.2.2-3.2.3 and later RFCs, IANA "Resource Record (RR) TYPEs").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RecordType(pub u16);

impl RecordType {
    pub const A: Self = Self(1);
    pub const NS: Self = Self(2);
    pub const CNAME: Self = Self(5);
    pub const SOA: Self = Self(6);
    pub const NULL: Self = Self(10);
    pub const WKS: Self = Self(11);
    pub const PTR: Self = Self(12);
    pub const HINFO: Self = Self(13);
    pub const MX: Self = Self(15);
    pub const TXT: Self = Self(16);
    pub const RP: Self = Self(17);
    pub const AFSDB: Self = Self(18);
    pub const SIG: Self = Self(24);
    pub const KEY: Self = Self(25);
    pub const AAAA: Self = Self(28);
    pub const LOC: Self = Self(29);
    /// RFC 2782; AD's DC locator (`_ldap._tcp.dc._msdcs.<domain>`).
    pub const SRV: Self = Self(33);
    pub const NAPTR: Self = Self(35);
    pub const DNAME: Self = Self(39);
    /// RFC 6891 EDNS0 pseudo-record.
    pub const OPT: Self = Self(41);
    pub const DS: Self = Self(43);
    pub const SSHFP: Self = Self(44);
    pub const RRSIG: Self = Self(46);
    pub const NSEC: Self = Self(47);
    pub const DNSKEY: Self = Self(48);
    pub const NSEC3: Self = Self(50);
    pub const NSEC3PARAM: Self = Self(51);
    pub const TLSA: Self = Self(52);
    pub const SVCB: Self = Self(64);
    pub const HTTPS: Self = Self(65);
    pub const SPF: Self = Self(99);
    /// RFC 2930 / RFC 3645: key exchange; GSS-TSIG carries a GSS-API (Kerberos) token in it.
    pub const TKEY: Self = Self(249);
    /// RFC 8945 transaction signature.
    pub const TSIG: Self = Self(250);
    /// RFC 1995 incremental zone transfer (QTYPE only).
    pub const IXFR: Self = Self(251);
    /// RFC 5936 full zone transfer (QTYPE only).
    pub const AXFR: Self = Self(252);
    pub const MAILB: Self = Self(253);
    pub const MAILA: Self = Self(254);
    /// QTYPE "*"; in UPDATE, with class ANY, "delete all RRsets" (RFC 2136 2.5.3).
    pub const ANY: Self = Self(255);
    pub const URI: Self = Self(256);
    pub const CAA: Self = Self(257);

    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::A => "A",
            Self::NS => "NS",
            Self::CNAME => "CNAME",
            Self::SOA => "SOA",
            Self::NULL => "NULL",
            Self::WKS => "WKS",
            Self::PTR => "PTR",
            Self::HINFO => "HINFO",
            Self::MX => "MX",
            Self::TXT => "TXT",
            Self::RP => "RP",
            Self::AFSDB => "AFSDB",
            Self::SIG => "SIG",
            Self::KEY => "KEY",
            Self::AAAA => "AAAA",
            Self::LOC => "LOC",
            Self::SRV => "SRV",
            Self::NAPTR => "NAPTR",
            Self::DNAME => "DNAME",
            Self::OPT => "OPT",
            Self::DS => "DS",
            Self::SSHFP => "SSHFP",
            Self::RRSIG => "RRSIG",
            Self::NSEC => "NSEC",
            Self::DNSKEY => "DNSKEY",
            Self::NSEC3 => "NSEC3",
            Self::NSEC3PARAM => "NSEC3PARAM",
            Self::TLSA => "TLSA",
            Self::SVCB => "SVCB",
            Self::HTTPS => "HTTPS",
            Self::SPF => "SPF",
            Self::TKEY => "TKEY",
            Self::TSIG => "TSIG",
            Self::IXFR => "IXFR",
            Self::AXFR => "AXFR",
            Self::MAILB => "MAILB",
            Self::MAILA => "MAILA",
            Self::ANY => "ANY",
            Self::URI => "URI",
            Self::CAA => "CAA",
            _ => return None,
        })
    }
}

/// The mnemonic, or `TYPE<n>` for unknown types (RFC 3597 5).
impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "TYPE{}", self.0),
        }
    }
}

/// CLASS / QCLASS (RFC 1035 3.2.4-3.2.5, RFC 2136 2.4-2.5 for NONE and ANY in UPDATE).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RecordClass(pub u16);

impl RecordClass {
    pub const IN: Self = Self(1);
    pub const CH: Self = Self(3);
    pub const HS: Self = Self(4);
    /// RFC 2136: "delete an RR" / "RRset does not exist".
    pub const NONE: Self = Self(254);
    /// QCLASS "*"; in UPDATE, "delete RRset(s)" / "RRset or name exists".
    pub const ANY: Self = Self(255);

    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::IN => "IN",
            Self::CH => "CH",
            Self::HS => "HS",
            Self::NONE => "NONE",
            Self::ANY => "ANY",
            _ => return None,
        })
    }
}

/// The mnemonic, or `CLASS<n>` (RFC 3597 5).
impl fmt::Display for RecordClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "CLASS{}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_unknowns() {
        assert_eq!(RecordType::SRV.to_string(), "SRV");
        assert_eq!(RecordType(1234).to_string(), "TYPE1234");
        assert_eq!(RecordType(249).name(), Some("TKEY"));
        assert_eq!(RecordClass(254).to_string(), "NONE");
        assert_eq!(RecordClass(42).to_string(), "CLASS42");
        assert_eq!(Rcode(3).to_string(), "NXDOMAIN");
        assert_eq!(Rcode(17).to_string(), "BADKEY");
        assert_eq!(Rcode(4000).to_string(), "RCODE4000");
        assert_eq!(Opcode(5).to_string(), "UPDATE");
        assert_eq!(Opcode(9).to_string(), "OPCODE9");
    }
}
