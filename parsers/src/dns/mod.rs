//! DNS messages (RFC 1035 4), including dynamic UPDATE (RFC 2136), zone transfers (RFC 5936
//! AXFR, RFC 1995 IXFR), EDNS0 (RFC 6891), TSIG (RFC 8945) and GSS-TSIG's TKEY (RFC 3645).
//!
//! Which function for which bytes:
//! - UDP: one message per datagram: [`parse`] the payload.
//! - TCP (RFC 1035 4.2.2, RFC 7766 8): each message is preceded by a 2-octet big-endian length.
//!   [`frame`] gives the whole PDU length (2 + length); [`parse`] the bytes *after* the prefix.
//!   [`is_pdu_start`] tests a stream position for a plausible prefix + header after a gap.
//!
//! For AD the interesting parts are the DC-locator SRV queries, dynamic UPDATEs (who registers
//! which name), zone transfers, and secure dynamic update's GSS-TSIG: the TKEY record carries a
//! GSS-API token ([`DnsMessage::tkey_key_data`]) that the Kerberos/GSS-API parsers read.

mod name;
mod rdata;
mod types;

pub use name::{MAX_LABEL_LEN, MAX_LABELS, MAX_NAME_LEN, MAX_POINTER_HOPS};
pub use rdata::{MAX_TXT_STRINGS, RData, Soa, Tkey, Tsig};
pub use types::{Opcode, Rcode, RecordClass, RecordType};

use crate::framing::{Framing, Start};
use name::{read_name, skip_name};

/// RFC 1035 4.1.1: the fixed header is 12 octets.
pub const HEADER_LEN: usize = 12;

/// Questions decoded per message. RFC 9619: QDCOUNT is one in practice (more is a FORMERR for
/// QUERY); a few leave room for odd senders, the rest are counted and skipped.
pub const MAX_QUESTIONS: usize = 4;

/// Resource records decoded (stored) per message across the answer, authority and additional
/// sections. A DC's answers and updates hold a few dozen at most; a 64 KiB AXFR message can
/// hold thousands, which the sensor needs only as counts. Records past this are walked but not
/// stored, so that the TSIG/OPT/TKEY at the end of a message are still found.
pub const MAX_RECORDS: usize = 256;

/// Smallest question on the wire: root name (1) + QTYPE (2) + QCLASS (2).
pub const MIN_QUESTION_LEN: usize = 5;

/// Smallest resource record: root name (1) + TYPE, CLASS (2+2) + TTL (4) + RDLENGTH (2).
pub const MIN_RECORD_LEN: usize = 11;

/// Why a message could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    #[error("{len} bytes is shorter than the 12-byte DNS header")]
    TooShort { len: usize },
    /// Inside a name or record the input ended. `parse` turns this into
    /// [`Anomalies::missing_records`] and returns what it has.
    #[error("input ended inside a name or record")]
    Truncated,
    #[error("name longer than 255 octets")]
    NameTooLong,
    #[error("reserved label type in length octet {0:#04x}")]
    BadLabelType(u8),
    #[error("more than MAX_POINTER_HOPS compression pointers in one name (a loop)")]
    TooManyPointers,
    #[error("compression pointer past the end of the message")]
    PointerOutOfBounds,
    #[error("RDATA does not match its type's grammar or RDLENGTH")]
    BadRdata,
}

/// Things that parse but should not be there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Anomalies {
    /// Octets after the last declared record.
    pub trailing_bytes: bool,
    /// The message ended before all the records its counts declare (a cut or lying header).
    pub missing_records: bool,
    /// More than [`MAX_QUESTIONS`] questions: the rest were skipped.
    pub questions_not_decoded: bool,
    /// More than [`MAX_RECORDS`] records: the rest were walked, not stored.
    pub records_not_decoded: bool,
    /// A compression pointer pointed at or after itself (followed anyway; RFC 1035 4.1.4 wants
    /// a prior occurrence).
    pub forward_pointer: bool,
    /// Some RDATA of a decoded type did not fit its grammar ([`RData::Malformed`]).
    pub bad_rdata: bool,
    /// The reserved header bit Z (0x0040) is set.
    pub z_bit: bool,
    /// TC: the sender says the message was truncated (a UDP response too big; the client should
    /// retry over TCP). Also in [`Flags::tc`].
    pub truncated_flag: bool,
    /// An OPT record outside the additional section, a second OPT, or one not owned by the root
    /// (RFC 6891 6.1.1).
    pub opt_misplaced: bool,
    /// A TSIG record that is not the last record of the additional section (RFC 8945 5.1).
    pub tsig_not_last: bool,
}

/// Header flags (RFC 1035 4.1.1, RFC 4035 3.2 for AD and CD).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    pub aa: bool,
    pub tc: bool,
    pub rd: bool,
    pub ra: bool,
    /// Reserved, must be zero.
    pub z: bool,
    pub ad: bool,
    pub cd: bool,
}

/// Section counts as declared in the header. For UPDATE they are ZOCOUNT, PRCOUNT, UPCOUNT and
/// ADCOUNT (RFC 2136 2.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub questions: u16,
    pub answers: u16,
    pub authorities: u16,
    pub additionals: u16,
}

/// RFC 1035 4.1.2. In an UPDATE this is the zone section (ZNAME, ZTYPE = SOA, ZCLASS).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    pub name: String,
    pub qtype: RecordType,
    pub qclass: RecordClass,
}

/// RFC 1035 4.1.3.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Owner name, dotted, RFC 4343 escapes; "." for the root.
    pub name: String,
    pub rtype: RecordType,
    /// For OPT this is the requestor's UDP payload size (see [`Edns`]).
    pub class: RecordClass,
    pub ttl: u32,
    pub data: RData<'a>,
}

/// The OPT pseudo-record (RFC 6891 6.1.2-6.1.3), taken from the first OPT in the additional
/// section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edns<'a> {
    pub udp_payload_size: u16,
    /// Upper 8 bits of the 12-bit rcode (already folded into [`DnsMessage::rcode`]).
    pub extended_rcode: u8,
    pub version: u8,
    /// DO: the requestor wants DNSSEC records.
    pub dnssec_ok: bool,
    /// `{code:2 len:2 data:len}*`, undecoded.
    pub options: &'a [u8],
}

/// What one record of an UPDATE's update section does (RFC 2136 2.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateAction {
    /// 2.5.1: class = zone class: add the RR to its RRset.
    Add,
    /// 2.5.2: class ANY, TTL 0, RDLENGTH 0, a type: delete that RRset.
    DeleteRrset,
    /// 2.5.3: class ANY, type ANY, TTL 0, RDLENGTH 0: delete every RRset of the name.
    DeleteAllRrsets,
    /// 2.5.4: class NONE, TTL 0: delete this RR (matched on RDATA).
    DeleteRr,
    /// Fits none of the above: the server answers FORMERR (3.4.1.3).
    Invalid,
}

/// What one record of an UPDATE's prerequisite section asserts (RFC 2136 2.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prerequisite {
    /// 2.4.1: class ANY, a type, RDLENGTH 0.
    RrsetExists,
    /// 2.4.2: class = zone class, with RDATA: the RRset exists with exactly these values.
    RrsetExistsValue,
    /// 2.4.3: class NONE, a type.
    RrsetDoesNotExist,
    /// 2.4.4: class ANY, type ANY.
    NameInUse,
    /// 2.4.5: class NONE, type ANY.
    NameNotInUse,
    Invalid,
}

impl Record<'_> {
    /// This record's meaning in the update section of an UPDATE whose zone has `zone_class`
    /// (normally IN; see [`DnsMessage::zone`]).
    pub fn update_action(&self, zone_class: RecordClass) -> UpdateAction {
        let empty = self.data == RData::Empty;
        match self.class {
            RecordClass::ANY if self.ttl != 0 || !empty => UpdateAction::Invalid,
            RecordClass::ANY if self.rtype == RecordType::ANY => UpdateAction::DeleteAllRrsets,
            RecordClass::ANY if is_meta_type(self.rtype) => UpdateAction::Invalid,
            RecordClass::ANY => UpdateAction::DeleteRrset,
            RecordClass::NONE if self.ttl != 0 || is_meta_type(self.rtype) => UpdateAction::Invalid,
            RecordClass::NONE => UpdateAction::DeleteRr,
            c if c == zone_class && !is_meta_type(self.rtype) => UpdateAction::Add,
            _ => UpdateAction::Invalid,
        }
    }

    /// This record's meaning in the prerequisite section of an UPDATE (RFC 2136 2.4).
    pub fn prerequisite(&self, zone_class: RecordClass) -> Prerequisite {
        let empty = self.data == RData::Empty;
        if self.ttl != 0 {
            return Prerequisite::Invalid;
        }
        match (self.class, self.rtype) {
            (RecordClass::ANY, RecordType::ANY) if empty => Prerequisite::NameInUse,
            (RecordClass::ANY, _) if empty => Prerequisite::RrsetExists,
            (RecordClass::NONE, RecordType::ANY) if empty => Prerequisite::NameNotInUse,
            (RecordClass::NONE, _) if empty => Prerequisite::RrsetDoesNotExist,
            (c, t) if c == zone_class && !is_meta_type(t) => Prerequisite::RrsetExistsValue,
            _ => Prerequisite::Invalid,
        }
    }
}

/// QTYPE-only and pseudo types (ANY, AXFR, IXFR, MAILA/B, OPT, TSIG, TKEY): never RRset data.
fn is_meta_type(t: RecordType) -> bool {
    matches!(t.0, 41 | 249..=255)
}

/// A parsed DNS message. Borrows from the input for opaque data (keys, MACs, TXT strings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsMessage<'a> {
    pub id: u16,
    /// QR.
    pub is_response: bool,
    pub opcode: Opcode,
    pub flags: Flags,
    /// The 4 header bits, extended by the OPT record's upper 8 bits when there is one.
    pub rcode: Rcode,
    /// As declared; compare with the lengths of the vectors (see [`Anomalies`]).
    pub counts: Counts,
    /// For UPDATE: the zone section ([`DnsMessage::zone`]).
    pub questions: Vec<Question>,
    /// For UPDATE: the prerequisite section ([`DnsMessage::prerequisites`]).
    pub answers: Vec<Record<'a>>,
    /// For UPDATE: the update section ([`DnsMessage::updates`]).
    pub authorities: Vec<Record<'a>>,
    pub additionals: Vec<Record<'a>>,
    pub edns: Option<Edns<'a>>,
    /// A TSIG record is present, decodable or not (the message is signed).
    pub tsig_present: bool,
    /// The first decodable TSIG record.
    pub tsig: Option<Tsig<'a>>,
    /// A TKEY record is present in any section (GSS-TSIG negotiation, RFC 3645 3.1).
    pub tkey_present: bool,
    /// The first decodable TKEY record.
    pub tkey: Option<Tkey<'a>>,
    pub anomalies: Anomalies,
}

impl<'a> DnsMessage<'a> {
    /// UPDATE's zone section (RFC 2136 2.3): the first question.
    pub fn zone(&self) -> Option<&Question> {
        self.questions.first()
    }

    /// UPDATE's prerequisite section (RFC 2136 2.4): the answer section.
    pub fn prerequisites(&self) -> &[Record<'a>] {
        &self.answers
    }

    /// UPDATE's update section (RFC 2136 2.5): the authority section.
    pub fn updates(&self) -> &[Record<'a>] {
        &self.authorities
    }

    /// The key data of the first TKEY: for GSS-TSIG a GSS-API token (RFC 3645 3.1.1), in AD
    /// SPNEGO around a Kerberos AP-REQ (request) or AP-REP (response).
    pub fn tkey_key_data(&self) -> Option<&'a [u8]> {
        self.tkey.as_ref().map(|t| t.key)
    }
}

/// Parses one DNS message (a UDP payload, or a TCP PDU without its 2-octet length).
///
/// ```text
/// message  = header question* answer* authority* additional*     ; RFC 1035 4.1
/// header   = ID:2 (QR:1 OPCODE:4 AA:1 TC:1 RD:1 RA:1 Z:1 AD:1 CD:1 RCODE:4)
///            QDCOUNT:2 ANCOUNT:2 NSCOUNT:2 ARCOUNT:2
/// question = QNAME QTYPE:2 QCLASS:2                                ; 4.1.2
/// RR       = NAME TYPE:2 CLASS:2 TTL:4 RDLENGTH:2 RDATA:RDLENGTH    ; 4.1.3
/// UPDATE (RFC 2136 2.2): zone = question, prerequisite = answer, update = authority.
/// ```
/// Errors only when there is no header, or a question/owner name is invalid (pointer loop,
/// name over 255 octets, reserved label type). A message that ends early parses, with
/// [`Anomalies::missing_records`], since counts larger than the records present are common in
/// truncated (TC) responses. RDATA that does not decode becomes [`RData::Malformed`].
///
/// Compression pointers are followed whichever way they point (one at or after itself sets
/// [`Anomalies::forward_pointer`]: RFC 1035 wants a prior occurrence, but a resolver that
/// follows it sees that name), at most [`MAX_POINTER_HOPS`] per name; a loop ends in
/// [`DnsError::TooManyPointers`] or [`DnsError::NameTooLong`], never a hang.
pub fn parse(bytes: &[u8]) -> Result<DnsMessage<'_>, DnsError> {
    let header: &[u8; HEADER_LEN] = bytes
        .get(..HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(DnsError::TooShort { len: bytes.len() })?;
    let mut msg = header_fields(header);
    let mut walker = Walker {
        msg: bytes,
        pos: HEADER_LEN,
        stored: 0,
    };
    let complete = walker.questions(&mut msg)? && walker.sections(&mut msg)?;
    if !complete {
        msg.anomalies.missing_records = true;
    } else if walker.pos < bytes.len() {
        msg.anomalies.trailing_bytes = true;
    }
    if let Some(e) = &msg.edns {
        msg.rcode = Rcode(msg.rcode.0 | (u16::from(e.extended_rcode) << 4));
    }
    Ok(msg)
}

fn header_fields(h: &[u8; HEADER_LEN]) -> DnsMessage<'static> {
    let be = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
    let (hi, lo) = (h[2], h[3]);
    let flags = Flags {
        aa: hi & 0x04 != 0,
        tc: hi & 0x02 != 0,
        rd: hi & 0x01 != 0,
        ra: lo & 0x80 != 0,
        z: lo & 0x40 != 0,
        ad: lo & 0x20 != 0,
        cd: lo & 0x10 != 0,
    };
    DnsMessage {
        id: be(0),
        is_response: hi & 0x80 != 0,
        opcode: Opcode((hi >> 3) & 0x0f),
        flags,
        rcode: Rcode(u16::from(lo & 0x0f)),
        counts: Counts {
            questions: be(4),
            answers: be(6),
            authorities: be(8),
            additionals: be(10),
        },
        questions: Vec::new(),
        answers: Vec::new(),
        authorities: Vec::new(),
        additionals: Vec::new(),
        edns: None,
        tsig_present: false,
        tsig: None,
        tkey_present: false,
        tkey: None,
        anomalies: Anomalies {
            z_bit: flags.z,
            truncated_flag: flags.tc,
            ..Anomalies::default()
        },
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Answer,
    Authority,
    Additional,
}

/// Walks the sections after the header. Loops run at most a header count (u16) of times and
/// each step consumes at least [`MIN_QUESTION_LEN`] octets, or stops.
struct Walker<'a> {
    msg: &'a [u8],
    pos: usize,
    stored: usize,
}

/// `Ok(None)` when the input ended (the caller flags missing records); other errors fail.
fn until_end<T>(r: Result<T, DnsError>) -> Result<Option<T>, DnsError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(DnsError::Truncated) => Ok(None),
        Err(e) => Err(e),
    }
}

impl<'a> Walker<'a> {
    fn fixed<const N: usize>(&self, at: usize) -> Result<[u8; N], DnsError> {
        let to = at.checked_add(N).ok_or(DnsError::Truncated)?;
        self.msg
            .get(at..to)
            .and_then(|b| b.try_into().ok())
            .ok_or(DnsError::Truncated)
    }

    /// Returns whether every declared question was present.
    fn questions(&mut self, m: &mut DnsMessage<'a>) -> Result<bool, DnsError> {
        for i in 0..m.counts.questions {
            let decode = usize::from(i) < MAX_QUESTIONS;
            let Some(q) = until_end(self.question(decode, &mut m.anomalies))? else {
                return Ok(false);
            };
            match q {
                Some(q) => m.questions.push(q),
                None => m.anomalies.questions_not_decoded = true,
            }
        }
        Ok(true)
    }

    fn question(&mut self, decode: bool, a: &mut Anomalies) -> Result<Option<Question>, DnsError> {
        let (name, end) = if decode {
            let n = read_name(self.msg, self.pos)?;
            a.forward_pointer |= n.forward_pointer;
            (Some(n.text), n.end)
        } else {
            (None, skip_name(self.msg, self.pos)?)
        };
        let [t0, t1, c0, c1] = self.fixed::<4>(end)?;
        self.pos = end.saturating_add(4);
        Ok(name.map(|name| Question {
            name,
            qtype: RecordType(u16::from_be_bytes([t0, t1])),
            qclass: RecordClass(u16::from_be_bytes([c0, c1])),
        }))
    }

    /// Returns whether every declared record was present.
    fn sections(&mut self, m: &mut DnsMessage<'a>) -> Result<bool, DnsError> {
        let c = m.counts;
        for (section, count) in [
            (Section::Answer, c.answers),
            (Section::Authority, c.authorities),
            (Section::Additional, c.additionals),
        ] {
            for i in 0..count {
                let last = i == count - 1;
                let Some(()) = until_end(self.record(m, section, last))? else {
                    return Ok(false);
                };
            }
        }
        Ok(true)
    }

    /// Reads one RR, stores it if there is room, and notes OPT / TSIG / TKEY either way.
    fn record(
        &mut self,
        m: &mut DnsMessage<'a>,
        section: Section,
        last: bool,
    ) -> Result<(), DnsError> {
        let store = self.stored < MAX_RECORDS;
        let (name, end) = if store {
            let n = read_name(self.msg, self.pos)?;
            m.anomalies.forward_pointer |= n.forward_pointer;
            (Some(n.text), n.end)
        } else {
            (None, skip_name(self.msg, self.pos)?)
        };
        let f: [u8; 10] = self.fixed(end)?;
        let rtype = RecordType(u16::from_be_bytes([f[0], f[1]]));
        let class = RecordClass(u16::from_be_bytes([f[2], f[3]]));
        let ttl = u32::from_be_bytes([f[4], f[5], f[6], f[7]]);
        let rdlen = usize::from(u16::from_be_bytes([f[8], f[9]]));
        let rdata_at = end.saturating_add(10);
        let next = rdata_at.checked_add(rdlen).filter(|&n| n <= self.msg.len());
        self.pos = next.ok_or(DnsError::Truncated)?;

        let special = matches!(rtype, RecordType::OPT | RecordType::TSIG | RecordType::TKEY);
        if !store && !special {
            m.anomalies.records_not_decoded = true;
            return Ok(());
        }
        let data = rdata::decode(self.msg, rdata_at, rdlen, rtype, &mut m.anomalies);
        note_special(m, section, last, name.as_deref(), class, ttl, &data, rtype);
        match name {
            Some(name) => {
                self.stored += 1;
                let rec = Record {
                    name,
                    rtype,
                    class,
                    ttl,
                    data,
                };
                match section {
                    Section::Answer => m.answers.push(rec),
                    Section::Authority => m.authorities.push(rec),
                    Section::Additional => m.additionals.push(rec),
                }
            }
            None => m.anomalies.records_not_decoded = true,
        }
        Ok(())
    }
}

/// Message-level facts from OPT, TSIG and TKEY records.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site; the fields of one RR"
)]
fn note_special<'a>(
    m: &mut DnsMessage<'a>,
    section: Section,
    last: bool,
    owner: Option<&str>,
    class: RecordClass,
    ttl: u32,
    data: &RData<'a>,
    rtype: RecordType,
) {
    match rtype {
        RecordType::OPT => {
            // The owner must be the root; a skipped (not stored) OPT's owner is unknown.
            let bad_owner = owner.is_some_and(|o| o != ".");
            if section != Section::Additional || m.edns.is_some() || bad_owner {
                m.anomalies.opt_misplaced = true;
            }
            if section == Section::Additional && m.edns.is_none() {
                let [ext, version, z0, _] = ttl.to_be_bytes();
                let options = match data {
                    RData::Opt { options } => options,
                    _ => &[][..],
                };
                m.edns = Some(Edns {
                    udp_payload_size: class.0,
                    extended_rcode: ext,
                    version,
                    dnssec_ok: z0 & 0x80 != 0,
                    options,
                });
            }
        }
        RecordType::TSIG => {
            m.tsig_present = true;
            if section != Section::Additional || !last {
                m.anomalies.tsig_not_last = true;
            }
            if let (None, RData::Tsig(t)) = (&m.tsig, data) {
                m.tsig = Some(t.clone());
            }
        }
        RecordType::TKEY => {
            m.tkey_present = true;
            if let (None, RData::Tkey(t)) = (&m.tkey, data) {
                m.tkey = Some(t.clone());
            }
        }
        _ => {}
    }
}

/// Length of the DNS-over-TCP PDU at the front of `bytes` (RFC 1035 4.2.2):
/// `length:2 (big-endian) message:length`. A length under [`HEADER_LEN`] (0 and 1 included)
/// cannot hold a message: [`Framing::NotPdu`].
pub fn frame(bytes: &[u8]) -> Framing {
    match bytes {
        [hi, lo, ..] => {
            let len = usize::from(u16::from_be_bytes([*hi, *lo]));
            if len < HEADER_LEN {
                Framing::NotPdu
            } else {
                Framing::Pdu(2 + len)
            }
        }
        _ => Framing::NeedMore,
    }
}

/// Opcodes seen on port 53 TCP in practice (QUERY incl. AXFR/IXFR, IQUERY, STATUS, NOTIFY,
/// UPDATE); DSO and unassigned values are not accepted when resynchronising.
const PLAUSIBLE_OPCODES: [Opcode; 5] = [
    Opcode::QUERY,
    Opcode::IQUERY,
    Opcode::STATUS,
    Opcode::NOTIFY,
    Opcode::UPDATE,
];

/// Highest header rcode accepted in a response when resynchronising (NOTZONE, RFC 2136).
const MAX_PLAUSIBLE_HEADER_RCODE: u16 = 10;

/// Whether a DNS-over-TCP PDU plausibly starts at the front of `bytes`. Strict, for use after a
/// gap: length >= 12; opcode one of QUERY/IQUERY/STATUS/NOTIFY/UPDATE; Z clear; at most one
/// question (RFC 9619), exactly one in a QUERY/NOTIFY/UPDATE request; no rcode and no answers
/// in a QUERY request; header rcode <= NOTZONE; the counts fit the length
/// (`qd * 5 + (an + ns + ar) * 11 <= length - 12`); and the first question's name, as far as
/// the bytes go, is uncompressed labels of at most 63 octets with a known class after it.
pub fn is_pdu_start(bytes: &[u8]) -> Start {
    let Some((prefix, rest)) = bytes.split_first_chunk::<2>() else {
        return Start::NeedMore;
    };
    let Some(h) = rest.first_chunk::<HEADER_LEN>() else {
        return Start::NeedMore;
    };
    let len = usize::from(u16::from_be_bytes(*prefix));
    let m = header_fields(h);
    let c = m.counts;
    let records = usize::from(c.answers) + usize::from(c.authorities) + usize::from(c.additionals);
    let needed = usize::from(c.questions) * MIN_QUESTION_LEN + records * MIN_RECORD_LEN;
    let request_needs_question =
        !m.is_response && matches!(m.opcode, Opcode::QUERY | Opcode::NOTIFY | Opcode::UPDATE);
    let plausible = len >= HEADER_LEN
        && PLAUSIBLE_OPCODES.contains(&m.opcode)
        && !m.flags.z
        && c.questions <= 1
        && (!request_needs_question || c.questions == 1)
        && (m.is_response || m.rcode == Rcode::NOERROR)
        && (m.is_response || m.opcode != Opcode::QUERY || c.answers == 0)
        && m.rcode.0 <= MAX_PLAUSIBLE_HEADER_RCODE
        && needed <= len - HEADER_LEN
        && (c.questions == 0 || first_question_plausible(rest.get(HEADER_LEN..).unwrap_or(&[])));
    if plausible { Start::Yes } else { Start::No }
}

/// Checks the uncompressed first QNAME and its QCLASS, as far as `q` goes.
fn first_question_plausible(q: &[u8]) -> bool {
    let mut pos = 0usize;
    let mut wire_len = 1usize;
    // Bounded: each step advances pos by at least 1, and wire_len caps the name.
    loop {
        let Some(&len) = q.get(pos) else { return true };
        if len == 0 {
            let class = q
                .get(pos + 3..pos + 5)
                .and_then(|c| <[u8; 2]>::try_from(c).ok())
                .map(|c| RecordClass(u16::from_be_bytes(c)));
            return class.is_none_or(|c| {
                matches!(
                    c,
                    RecordClass::IN
                        | RecordClass::CH
                        | RecordClass::HS
                        | RecordClass::NONE
                        | RecordClass::ANY
                )
            });
        }
        // Nothing precedes the first name to point at; 0b01/0b10 are reserved.
        if usize::from(len) > MAX_LABEL_LEN {
            return false;
        }
        wire_len += 1 + usize::from(len);
        if wire_len > MAX_NAME_LEN {
            return false;
        }
        pos += 1 + usize::from(len);
    }
}

#[cfg(test)]
mod tests;
