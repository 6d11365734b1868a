//! NetBIOS name service messages (RFC 1002 4.2), UDP port 137: which NetBIOS name is at which
//! address, who registers or releases a name, and a host's node status (its names and MAC).
//!
//! Which function for which bytes: [`parse`] one UDP payload.
//!
//! ```text
//! RFC 1002 4.2.1.1 HEADER (12 octets, DNS-like):
//!   NAME_TRN_ID(16) | R(1) OPCODE(4) NM_FLAGS(7: AA TC RD RA 0 0 B) RCODE(4)
//!   QDCOUNT(16) ANCOUNT(16) NSCOUNT(16) ARCOUNT(16)
//! 4.2.1.2 QUESTION: QUESTION_NAME  QUESTION_TYPE(16: NB 0x20, NBSTAT 0x21)  QUESTION_CLASS(16)
//! 4.2.1.3 RESOURCE RECORD: RR_NAME RR_TYPE(16) RR_CLASS(16) TTL(32) RDLENGTH(16) RDATA
//! RFC 1001 14.1 first-level encoding: the 16-octet name (15 characters padded with spaces,
//!   then a suffix octet) as 32 letters 'A'..'P', one per half-octet, in a 32-octet label,
//!   followed by the scope's labels (DNS label form, compression pointers allowed).
//! 4.2.2 NB RDATA: { NB_FLAGS(16: G(1) ONT(2) 0(13)) NB_ADDRESS(32) }*
//! 4.2.18 NBSTAT RDATA: NUM_NAMES(8) { NETBIOS_NAME(16) NAME_FLAGS(16) }* STATISTICS
//!   (the first 6 octets of STATISTICS are the unit ID, the MAC address)
//! ```

use std::{fmt, net::Ipv4Addr};

/// The fixed header (RFC 1002 4.2.1.1).
pub const HEADER_LEN: usize = 12;

/// The first label of an encoded name: 16 octets as 32 half-octet letters (RFC 1001 14.1).
pub const ENCODED_NAME_LEN: usize = 32;

/// Questions decoded per message: every NBNS request has exactly one (RFC 1002 4.2.12); a few
/// leave room for odd senders, the rest are counted as an anomaly.
pub const MAX_QUESTIONS: usize = 4;

/// Resource records decoded per message across the three sections. Requests and responses hold
/// one (RFC 1002 4.2.2 to 4.2.18); a few more allow for odd senders.
pub const MAX_RECORDS: usize = 8;

/// Addresses decoded from one NB record. A multi-homed host or a group name answered by a WINS
/// server lists several; 64 covers any real group answer a sensor needs to show.
pub const MAX_NB_ADDRESSES: usize = 64;

/// Names decoded from a node status answer. NUM_NAMES is one octet; a Windows host lists
/// about a dozen (workstation, server, messenger, domain and browser names).
pub const MAX_NODE_NAMES: usize = 64;

/// Labels in a name's scope. The whole name fits 255 octets (RFC 1002 4.1); real scopes are
/// empty or a DNS-like suffix of a few labels.
pub const MAX_SCOPE_LABELS: usize = 16;

/// Compression pointers followed in one name. NBNS senders use one, to the question's name.
pub const MAX_POINTER_HOPS: usize = 4;

/// RFC 1002 4.1: a name with its scope is at most 255 octets on the wire.
pub const MAX_NAME_LEN: usize = 255;

/// One entry of NB RDATA (NB_FLAGS + NB_ADDRESS).
const NB_ENTRY_LEN: usize = 6;

/// One entry of a node status name list (NETBIOS_NAME + NAME_FLAGS).
const NODE_NAME_LEN: usize = 18;

/// Why a message could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NbnsError {
    #[error("{len} bytes is shorter than the 12-byte NBNS header")]
    TooShort { len: usize },
    #[error("input ended inside a name or record")]
    Truncated,
    #[error("the first label of a name is not 32 letters 'A'..'P'")]
    BadEncodedName,
    #[error("name longer than 255 octets or with more than MAX_SCOPE_LABELS labels")]
    NameTooLong,
    #[error("more than MAX_POINTER_HOPS compression pointers in one name (a loop)")]
    TooManyPointers,
    #[error("compression pointer past the end of the message")]
    PointerOutOfBounds,
    #[error("reserved label type in length octet {0:#04x}")]
    BadLabelType(u8),
    #[error("a request without a question")]
    NoQuestion,
}

/// OPCODE (RFC 1002 4.2.1.1), bits 1-4 of the second header octet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Opcode(pub u8);

impl Opcode {
    pub const QUERY: Self = Self(0);
    pub const REGISTRATION: Self = Self(5);
    pub const RELEASE: Self = Self(6);
    pub const WACK: Self = Self(7);
    pub const REFRESH: Self = Self(8);
    /// RFC 1002 says 8; Windows and Samba also send 9 ("refresh (alternate)").
    pub const REFRESH_ALT: Self = Self(9);
    /// Multi-homed registration (Microsoft extension, used by WINS clients).
    pub const MULTIHOMED_REGISTRATION: Self = Self(15);

    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::QUERY => "QUERY",
            Self::REGISTRATION => "REGISTRATION",
            Self::RELEASE => "RELEASE",
            Self::WACK => "WACK",
            Self::REFRESH | Self::REFRESH_ALT => "REFRESH",
            Self::MULTIHOMED_REGISTRATION => "MULTIHOMED_REGISTRATION",
            _ => return None,
        })
    }
}

/// RCODE (RFC 1002 4.2.6, 4.2.14 and others).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rcode(pub u8);

impl Rcode {
    pub const NOERROR: Self = Self(0);
    pub const FMT_ERR: Self = Self(1);
    pub const SRV_ERR: Self = Self(2);
    pub const NAM_ERR: Self = Self(3);
    pub const IMP_ERR: Self = Self(4);
    pub const RFS_ERR: Self = Self(5);
    pub const ACT_ERR: Self = Self(6);
    pub const CFT_ERR: Self = Self(7);

    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::NOERROR => "NOERROR",
            Self::FMT_ERR => "FMT_ERR",
            Self::SRV_ERR => "SRV_ERR",
            Self::NAM_ERR => "NAM_ERR",
            Self::IMP_ERR => "IMP_ERR",
            Self::RFS_ERR => "RFS_ERR",
            Self::ACT_ERR => "ACT_ERR",
            Self::CFT_ERR => "CFT_ERR",
            _ => return None,
        })
    }
}

/// QUESTION_TYPE / RR_TYPE (RFC 1002 4.2.1.2, 4.2.1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RecordType(pub u16);

impl RecordType {
    pub const A: Self = Self(0x0001);
    pub const NS: Self = Self(0x0002);
    pub const NULL: Self = Self(0x000a);
    pub const NB: Self = Self(0x0020);
    pub const NBSTAT: Self = Self(0x0021);

    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::A => "A",
            Self::NS => "NS",
            Self::NULL => "NULL",
            Self::NB => "NB",
            Self::NBSTAT => "NBSTAT",
            _ => return None,
        })
    }
}

/// NM_FLAGS (RFC 1002 4.2.1.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    pub authoritative: bool,
    pub truncated: bool,
    pub recursion_desired: bool,
    pub recursion_available: bool,
    /// B: sent to a broadcast address.
    pub broadcast: bool,
}

/// Section counts as declared in the header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub questions: u16,
    pub answers: u16,
    pub authorities: u16,
    pub additionals: u16,
}

/// Things that parse but should not be there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Anomalies {
    /// Octets after the last declared record.
    pub trailing_bytes: bool,
    /// The message ended before the records its counts declare.
    pub missing_records: bool,
    /// More questions than [`MAX_QUESTIONS`] or records than [`MAX_RECORDS`]: not decoded.
    pub records_not_decoded: bool,
    /// A name's first label is not the 32-letter encoding: kept as [`NetbiosName::raw`] text.
    pub bad_encoded_name: bool,
    /// RDATA that does not fit its type's grammar (NB not a multiple of 6, a short NBSTAT).
    pub bad_rdata: bool,
    /// More addresses or node names than the caps: the rest were not decoded.
    pub list_truncated: bool,
    /// The reserved NM_FLAGS bits (0x0060) are set.
    pub reserved_flags: bool,
}

/// A decoded NetBIOS name: 15 characters and a suffix octet, with its scope.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetbiosName {
    /// The first 15 octets, trailing spaces and NULs removed; octets outside printable ASCII shown as
    /// `<xx>`. For a name whose first label was not the 32-letter encoding: that label's text.
    pub name: String,
    /// The 16th octet: the service (0x00 workstation, 0x20 server, 0x1c domain controllers...).
    pub suffix: u8,
    /// The scope labels joined with dots; empty for the usual empty scope.
    pub scope: String,
    /// The first label was not a valid encoding (see [`Anomalies::bad_encoded_name`]).
    pub raw: bool,
}

impl fmt::Display for NetbiosName {
    /// `NAME<20>`, as Wireshark and nbtstat show it, then `.scope` when there is one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}<{:02x}>", self.name, self.suffix)?;
        if !self.scope.is_empty() {
            write!(f, ".{}", self.scope)?;
        }
        Ok(())
    }
}

/// RFC 1002 4.2.1.2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    pub name: NetbiosName,
    pub qtype: RecordType,
    pub qclass: u16,
}

/// Which section a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Answer,
    Authority,
    Additional,
}

/// One NB_FLAGS + NB_ADDRESS entry (RFC 1002 4.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NbAddress {
    /// G: a group name rather than a unique one.
    pub group: bool,
    /// ONT: owner node type, 0 B-node, 1 P-node, 2 M-node, 3 H-node (Microsoft).
    pub node_type: u8,
    pub address: Ipv4Addr,
}

/// One name of a node status answer (RFC 1002 4.2.18).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeName {
    pub name: NetbiosName,
    /// NAME_FLAGS: G 0x8000, ONT 0x6000, DRG 0x1000, CNF 0x0800, ACT 0x0400, PRM 0x0200.
    pub flags: u16,
}

impl NodeName {
    pub fn is_group(&self) -> bool {
        self.flags & 0x8000 != 0
    }
}

/// A node status answer: the host's names and its MAC address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStatus {
    /// NUM_NAMES as declared.
    pub name_count: u8,
    pub names: Vec<NodeName>,
    /// The unit ID, the first 6 octets of STATISTICS; `None` when cut short.
    pub mac: Option<[u8; 6]>,
}

/// RDATA decoded by type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RData<'a> {
    Nb(Vec<NbAddress>),
    NodeStatus(NodeStatus),
    /// Any other type (NULL in negative answers, a WACK's echoed flags...), undecoded.
    Other(&'a [u8]),
}

/// RFC 1002 4.2.1.3.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub section: Section,
    pub name: NetbiosName,
    pub rtype: RecordType,
    pub rclass: u16,
    pub ttl: u32,
    pub data: RData<'a>,
}

/// One NBNS message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NbnsMessage<'a> {
    pub transaction_id: u16,
    /// R: a response.
    pub is_response: bool,
    pub opcode: Opcode,
    pub flags: Flags,
    pub rcode: Rcode,
    pub counts: Counts,
    pub questions: Vec<Question>,
    /// Answer, authority and additional records in order, at most [`MAX_RECORDS`].
    pub records: Vec<Record<'a>>,
    pub anomalies: Anomalies,
}

impl NbnsMessage<'_> {
    /// The name the message is about: the question's, else the first record's (responses
    /// carry no question, RFC 1002 4.2.13).
    pub fn subject(&self) -> Option<&NetbiosName> {
        self.questions
            .first()
            .map(|question| &question.name)
            .or_else(|| self.records.first().map(|record| &record.name))
    }

    /// Every NB address of the message's records (the registered or answered addresses).
    pub fn nb_addresses(&self) -> impl Iterator<Item = &NbAddress> {
        self.records.iter().flat_map(|record| match &record.data {
            RData::Nb(addresses) => addresses.as_slice(),
            _ => &[],
        })
    }

    /// The node status answer, if the message carries one.
    pub fn node_status(&self) -> Option<&NodeStatus> {
        self.records.iter().find_map(|record| match &record.data {
            RData::NodeStatus(status) => Some(status),
            _ => None,
        })
    }
}

/// Parses one NBNS message (a UDP payload). See the module documentation for the grammar.
///
/// A request (R = 0) must hold a question; records cut short by the end of the datagram stop
/// the walk and set [`Anomalies::missing_records`] rather than failing the message.
pub fn parse(bytes: &[u8]) -> Result<NbnsMessage<'_>, NbnsError> {
    let header = bytes
        .get(..HEADER_LEN)
        .ok_or(NbnsError::TooShort { len: bytes.len() })?;
    let word = |i: usize| u16::from_be_bytes([header[i], header[i + 1]]);
    let flags_word = word(2);
    let counts = Counts {
        questions: word(4),
        answers: word(6),
        authorities: word(8),
        additionals: word(10),
    };
    let mut message = NbnsMessage {
        transaction_id: word(0),
        is_response: flags_word & 0x8000 != 0,
        opcode: Opcode(((flags_word >> 11) & 0x0f) as u8),
        flags: Flags {
            authoritative: flags_word & 0x0400 != 0,
            truncated: flags_word & 0x0200 != 0,
            recursion_desired: flags_word & 0x0100 != 0,
            recursion_available: flags_word & 0x0080 != 0,
            broadcast: flags_word & 0x0010 != 0,
        },
        rcode: Rcode((flags_word & 0x000f) as u8),
        counts,
        questions: Vec::new(),
        records: Vec::new(),
        anomalies: Anomalies {
            reserved_flags: flags_word & 0x0060 != 0,
            ..Anomalies::default()
        },
    };
    let mut offset = HEADER_LEN;
    for index in 0..counts.questions {
        if usize::from(index) >= MAX_QUESTIONS {
            message.anomalies.records_not_decoded = true;
            break;
        }
        match question(bytes, offset, &mut message.anomalies) {
            Ok((question, next)) => {
                message.questions.push(question);
                offset = next;
            }
            Err(NbnsError::Truncated) if index > 0 || message.is_response => {
                message.anomalies.missing_records = true;
                return Ok(message);
            }
            Err(error) => return Err(error),
        }
    }
    if !message.is_response && message.questions.is_empty() {
        return Err(NbnsError::NoQuestion);
    }
    if usize::from(counts.questions) > MAX_QUESTIONS {
        // The questions past the cap were not walked: the records' offsets are unknown.
        return Ok(message);
    }
    let sections = [
        (Section::Answer, counts.answers),
        (Section::Authority, counts.authorities),
        (Section::Additional, counts.additionals),
    ];
    for (section, count) in sections {
        for _ in 0..count {
            if message.records.len() >= MAX_RECORDS {
                message.anomalies.records_not_decoded = true;
                return Ok(message);
            }
            match record(bytes, offset, section, &mut message.anomalies) {
                Ok((record, next)) => {
                    message.records.push(record);
                    offset = next;
                }
                Err(NbnsError::Truncated) => {
                    message.anomalies.missing_records = true;
                    return Ok(message);
                }
                Err(error) => return Err(error),
            }
        }
    }
    message.anomalies.trailing_bytes = offset < bytes.len();
    Ok(message)
}

fn u16_at(bytes: &[u8], offset: usize) -> Result<u16, NbnsError> {
    let field = bytes
        .get(offset..offset.saturating_add(2))
        .ok_or(NbnsError::Truncated)?;
    Ok(u16::from_be_bytes([field[0], field[1]]))
}

fn u32_at(bytes: &[u8], offset: usize) -> Result<u32, NbnsError> {
    let field = bytes
        .get(offset..offset.saturating_add(4))
        .ok_or(NbnsError::Truncated)?;
    Ok(u32::from_be_bytes([field[0], field[1], field[2], field[3]]))
}

fn question(
    bytes: &[u8],
    offset: usize,
    anomalies: &mut Anomalies,
) -> Result<(Question, usize), NbnsError> {
    let (name, offset) = read_name(bytes, offset, anomalies)?;
    let qtype = RecordType(u16_at(bytes, offset)?);
    let qclass = u16_at(bytes, offset.saturating_add(2))?;
    Ok((
        Question {
            name,
            qtype,
            qclass,
        },
        offset.saturating_add(4),
    ))
}

fn record<'a>(
    bytes: &'a [u8],
    offset: usize,
    section: Section,
    anomalies: &mut Anomalies,
) -> Result<(Record<'a>, usize), NbnsError> {
    let (name, offset) = read_name(bytes, offset, anomalies)?;
    let rtype = RecordType(u16_at(bytes, offset)?);
    let rclass = u16_at(bytes, offset.saturating_add(2))?;
    let ttl = u32_at(bytes, offset.saturating_add(4))?;
    let rdlength = usize::from(u16_at(bytes, offset.saturating_add(8))?);
    let start = offset.saturating_add(10);
    let end = start.saturating_add(rdlength);
    let rdata = bytes.get(start..end).ok_or(NbnsError::Truncated)?;
    let data = match rtype {
        RecordType::NB => RData::Nb(nb_addresses(rdata, anomalies)),
        RecordType::NBSTAT if !rdata.is_empty() => RData::NodeStatus(node_status(rdata, anomalies)),
        _ => RData::Other(rdata),
    };
    Ok((
        Record {
            section,
            name,
            rtype,
            rclass,
            ttl,
            data,
        },
        end,
    ))
}

fn nb_addresses(rdata: &[u8], anomalies: &mut Anomalies) -> Vec<NbAddress> {
    let entries = rdata.chunks_exact(NB_ENTRY_LEN);
    if !entries.remainder().is_empty() {
        anomalies.bad_rdata = true;
    }
    if entries.len() > MAX_NB_ADDRESSES {
        anomalies.list_truncated = true;
    }
    entries
        .take(MAX_NB_ADDRESSES)
        .map(|entry| {
            let flags = u16::from_be_bytes([entry[0], entry[1]]);
            NbAddress {
                group: flags & 0x8000 != 0,
                node_type: ((flags >> 13) & 0x03) as u8,
                address: Ipv4Addr::new(entry[2], entry[3], entry[4], entry[5]),
            }
        })
        .collect()
}

fn node_status(rdata: &[u8], anomalies: &mut Anomalies) -> NodeStatus {
    let Some((&count, rest)) = rdata.split_first() else {
        anomalies.bad_rdata = true;
        return NodeStatus::default();
    };
    let declared = usize::from(count);
    let available = rest.len() / NODE_NAME_LEN;
    if available < declared {
        anomalies.bad_rdata = true;
    }
    let decoded = declared.min(available);
    if decoded > MAX_NODE_NAMES {
        anomalies.list_truncated = true;
    }
    let names = rest
        .chunks_exact(NODE_NAME_LEN)
        .take(decoded.min(MAX_NODE_NAMES))
        .map(|entry| NodeName {
            name: plain_name(&entry[..16]),
            flags: u16::from_be_bytes([entry[16], entry[17]]),
        })
        .collect();
    let statistics = rest.get(decoded.saturating_mul(NODE_NAME_LEN)..);
    let mac = statistics
        .and_then(|statistics| statistics.get(..6))
        .and_then(|mac| <[u8; 6]>::try_from(mac).ok());
    if mac.is_none() {
        anomalies.bad_rdata = true;
    }
    NodeStatus {
        name_count: count,
        names,
        mac,
    }
}

/// A 16-octet NetBIOS name (15 characters and the suffix), as in a node status list.
fn plain_name(octets: &[u8]) -> NetbiosName {
    let (chars, suffix) = octets.split_at(octets.len().saturating_sub(1));
    NetbiosName {
        name: render(chars),
        suffix: suffix.first().copied().unwrap_or_default(),
        scope: String::new(),
        raw: false,
    }
}

/// Printable ASCII as is, other octets as `<xx>` (as Wireshark shows them: `<01><02>__MSBROWSE__
/// <02><01>`); the padding removed: trailing spaces, and
/// the NULs of the wildcard name `*` (RFC 1002 4.2.18).
fn render(chars: &[u8]) -> String {
    let end = chars
        .iter()
        .rposition(|&byte| byte != b' ' && byte != 0)
        .map_or(0, |last| last + 1);
    let mut text = String::with_capacity(end);
    for &byte in &chars[..end] {
        if byte.is_ascii_graphic() || byte == b' ' {
            text.push(char::from(byte));
        } else {
            text.push_str(&format!("<{byte:02x}>"));
        }
    }
    text
}

/// Undoes the first-level encoding of a 32-octet label; `None` if a letter is outside 'A'..'P'.
fn decode_label(label: &[u8]) -> Option<[u8; 16]> {
    let mut octets = [0u8; 16];
    for (octet, pair) in octets.iter_mut().zip(label.chunks_exact(2)) {
        let high = pair[0].checked_sub(b'A').filter(|&nibble| nibble < 16)?;
        let low = pair[1].checked_sub(b'A').filter(|&nibble| nibble < 16)?;
        *octet = (high << 4) | low;
    }
    Some(octets)
}

/// Reads the labels of a name at `offset` (following compression pointers); returns the name
/// and the offset after it in the record.
fn read_name(
    bytes: &[u8],
    mut offset: usize,
    anomalies: &mut Anomalies,
) -> Result<(NetbiosName, usize), NbnsError> {
    let mut labels: Vec<&[u8]> = Vec::new();
    let mut after: Option<usize> = None;
    let mut hops = 0;
    let mut wire_len = 0usize;
    loop {
        let &len = bytes.get(offset).ok_or(NbnsError::Truncated)?;
        match len & 0xc0 {
            0x00 => {}
            0xc0 => {
                let pointer = usize::from(u16_at(bytes, offset)? & 0x3fff);
                hops += 1;
                if hops > MAX_POINTER_HOPS {
                    return Err(NbnsError::TooManyPointers);
                }
                if pointer >= bytes.len() {
                    return Err(NbnsError::PointerOutOfBounds);
                }
                after.get_or_insert(offset.saturating_add(2));
                offset = pointer;
                continue;
            }
            _ => return Err(NbnsError::BadLabelType(len)),
        }
        let len = usize::from(len);
        wire_len = wire_len.saturating_add(len).saturating_add(1);
        if wire_len > MAX_NAME_LEN {
            return Err(NbnsError::NameTooLong);
        }
        if len == 0 {
            let end = after.unwrap_or(offset.saturating_add(1));
            return Ok((name_of(&labels, anomalies)?, end));
        }
        if labels.len() > MAX_SCOPE_LABELS {
            return Err(NbnsError::NameTooLong);
        }
        let start = offset.saturating_add(1);
        let label = bytes
            .get(start..start.saturating_add(len))
            .ok_or(NbnsError::Truncated)?;
        labels.push(label);
        offset = start.saturating_add(len);
    }
}

fn name_of(labels: &[&[u8]], anomalies: &mut Anomalies) -> Result<NetbiosName, NbnsError> {
    let Some((first, scope)) = labels.split_first() else {
        return Err(NbnsError::BadEncodedName);
    };
    let scope = scope
        .iter()
        .map(|label| render(label))
        .collect::<Vec<_>>()
        .join(".");
    let decoded = (first.len() == ENCODED_NAME_LEN)
        .then(|| decode_label(first))
        .flatten();
    Ok(if let Some(octets) = decoded {
        NetbiosName {
            scope,
            ..plain_name(&octets)
        }
    } else {
        anomalies.bad_encoded_name = true;
        NetbiosName {
            name: render(first),
            suffix: 0,
            scope,
            raw: true,
        }
    })
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "in tests a panic is a failed test")]
mod tests {
    use super::*;
    use dcwatch_tests::fixture::hex;

    // nDPI/tests/cfgs/default/pcap/netbios.pcap: frame 1, name query XSTREAM_HY<00>, broadcast
    // (tshark -r F -Y frame.number==1 -T fields -e udp.payload).
    const QUERY: &str = "a7490110000100000000000020464946444645464345464542454e46504549464a\
                         4341434143414341434141410000200001";
    // nDPI/tests/cfgs/default/pcap/netbios.pcap: frame 69, positive query response for
    // GUNNAR<00> with one NB address, 10.0.4.24 (B-node, unique).
    const RESPONSE: &str = "8486850000000001000000002045484646454f454f4542464343414341434143\
                            414341434143414341434141410000200001000493e0000600000a000418";
    // arkime/tests/pcap/nbns.pcap: frame 4, registration of MDJR98<20> with an additional
    // record pointing back at the question's name (0xc00c).
    const REGISTRATION: &str = "00062900000100000000000120454e4545454b4643444a444943414341434143\
                                414341434143414341434143410000200001c00c00200001000493e000060000\
                                c0a8ef81";
    // nDPI/tests/cfgs/default/pcap/netbios.pcap: frames 54 and 55, node status request for
    // "*" and its answer listing GUNNAR and VIGILANT_GROUP with the MAC 00:1c:c4:10:79:0f.
    const NBSTAT_QUERY: &str = "20a80000000100000000000020434b4141414141414141414141414141414141\
        414141414141414141414141410000210001";
    const NBSTAT_RESPONSE: &str = "20a88400000000010000000020434b4141414141414141414141414141414141\
        4141414141414141414141414100002100010000000000770447554e4e415220\
        2020202020202020000400564947494c414e545f47524f55502000840047554e\
        4e4152202020202020202020200400564947494c414e545f47524f5550201e84\
        00001cc410790f00000000000000000000000000000000000000000000000000\
        000000000000000000000000000000";

    #[test]
    fn query_for_a_workstation_name() {
        let bytes = hex(QUERY);
        let message = parse(&bytes).unwrap();
        assert_eq!(message.transaction_id, 0xa749);
        assert!(!message.is_response);
        assert_eq!(message.opcode, Opcode::QUERY);
        assert!(message.flags.broadcast && message.flags.recursion_desired);
        let question = &message.questions[0];
        assert_eq!(question.name.to_string(), "XSTREAM_HY<00>");
        assert_eq!(question.qtype, RecordType::NB);
        assert_eq!(message.anomalies, Anomalies::default());
    }

    #[test]
    fn positive_response_with_an_address() {
        let bytes = hex(RESPONSE);
        let message = parse(&bytes).unwrap();
        assert!(message.is_response);
        assert!(message.flags.authoritative);
        assert_eq!(message.rcode, Rcode::NOERROR);
        assert!(message.questions.is_empty());
        let record = &message.records[0];
        assert_eq!(record.section, Section::Answer);
        assert_eq!(record.name.to_string(), "GUNNAR<00>");
        assert_eq!(record.ttl, 300_000);
        let addresses: Vec<_> = message.nb_addresses().collect();
        assert_eq!(addresses.len(), 1);
        assert_eq!(addresses[0].address, Ipv4Addr::new(10, 0, 4, 24));
        assert!(!addresses[0].group);
        assert_eq!(addresses[0].node_type, 0);
        assert_eq!(message.subject(), Some(&record.name));
    }

    #[test]
    fn registration_follows_the_pointer_to_the_question() {
        let bytes = hex(REGISTRATION);
        let message = parse(&bytes).unwrap();
        assert_eq!(message.opcode, Opcode::REGISTRATION);
        assert_eq!(message.questions[0].name.to_string(), "MDJR98<20>");
        let record = &message.records[0];
        assert_eq!(record.section, Section::Additional);
        assert_eq!(record.name.to_string(), "MDJR98<20>");
        let addresses: Vec<_> = message.nb_addresses().collect();
        assert_eq!(addresses[0].address, Ipv4Addr::new(192, 168, 239, 129));
        assert!(!message.anomalies.trailing_bytes);
    }

    #[test]
    fn node_status_lists_names_and_mac() {
        let request = hex(NBSTAT_QUERY);
        let message = parse(&request).unwrap();
        assert_eq!(message.questions[0].qtype, RecordType::NBSTAT);
        assert_eq!(message.questions[0].name.to_string(), "*<00>");
        let bytes = hex(NBSTAT_RESPONSE);
        let message = parse(&bytes).unwrap();
        let status = message.node_status().unwrap();
        assert_eq!(status.name_count, 4);
        let names: Vec<String> = status.names.iter().map(|n| n.name.to_string()).collect();
        assert_eq!(
            names,
            [
                "GUNNAR<00>",
                "VIGILANT_GROUP<00>",
                "GUNNAR<20>",
                "VIGILANT_GROUP<1e>"
            ]
        );
        assert!(status.names[1].is_group() && !status.names[0].is_group());
        assert_eq!(status.mac, Some([0x00, 0x1c, 0xc4, 0x10, 0x79, 0x0f]));
        assert_eq!(message.anomalies, Anomalies::default());
    }

    #[test]
    fn every_prefix_is_handled() {
        for fixture in [QUERY, RESPONSE, REGISTRATION, NBSTAT_QUERY, NBSTAT_RESPONSE] {
            let bytes = hex(fixture);
            for len in 0..bytes.len() {
                if let Ok(message) = parse(&bytes[..len]) {
                    assert!(
                        message.anomalies.missing_records,
                        "prefix {len} of {fixture} parsed whole"
                    );
                }
            }
        }
        // Requests need their question.
        for fixture in [QUERY, REGISTRATION, NBSTAT_QUERY] {
            let bytes = hex(fixture);
            assert!(parse(&bytes[..HEADER_LEN + 20]).is_err());
        }
    }

    // tcpdump/tests/nbns-valgrind.pcap: frame 1, a query cut inside its name (the capture's
    // own crafted input for a read past the end).
    #[test]
    fn cut_query_from_tcpdump_is_an_error() {
        let bytes = hex("8d40010000010000000000002045474643454e45424640464444");
        assert_eq!(parse(&bytes), Err(NbnsError::Truncated));
    }

    #[test]
    fn pointer_loops_and_bad_labels_fail() {
        // A question whose name points at itself.
        let mut bytes = hex("000100000001000000000000");
        bytes.extend_from_slice(&[0xc0, 0x0c, 0x00, 0x20, 0x00, 0x01]);
        assert_eq!(parse(&bytes), Err(NbnsError::TooManyPointers));
        let mut bytes = hex("000100000001000000000000");
        bytes.extend_from_slice(&[0x40, 0x00]);
        assert_eq!(parse(&bytes), Err(NbnsError::BadLabelType(0x40)));
    }

    #[test]
    fn lying_counts_are_bounded() {
        // A response declaring 65535 answers, with none present.
        let bytes = hex("0001850000000000ffff000000000000");
        let message = parse(&bytes[..12]).unwrap();
        assert!(message.anomalies.missing_records);
        assert!(message.records.is_empty());
        // An NB record with 100 addresses and an NBSTAT claiming 255 names in 20 bytes.
        let mut bytes = hex(
            "0001850000000001000000002043414141414141414141414141414141414141414141414141414141414141410000200001000000000258",
        );
        bytes.extend(std::iter::repeat_n(0u8, 600));
        let message = parse(&bytes).unwrap();
        assert!(message.anomalies.list_truncated);
        assert_eq!(message.nb_addresses().count(), MAX_NB_ADDRESSES);
        let mut bytes = hex(
            "0001850000000001000000002043414141414141414141414141414141414141414141414141414141414141410000210001000000000014ff",
        );
        bytes.extend(std::iter::repeat_n(b'A', 19));
        let message = parse(&bytes).unwrap();
        let status = message.node_status().unwrap();
        assert_eq!(status.names.len(), 1);
        assert!(message.anomalies.bad_rdata);
    }
}
