//! The active name-resolution probes on the wire: a PTR query for an address (RFC 1035 4.1) sent
//! to a DC's DNS server, a NetBIOS node status request (RFC 1002 4.2.17) sent to the address
//! itself, and a DCE-RPC bind to its endpoint mapper carrying an NTLM NEGOTIATE (C706 12.6,
//! [MS-RPCE] 2.2.2.11, [MS-NLMP] 2.2.1.1); and the name each answer gives. The answers are read
//! by the project's parsers.

use std::net::IpAddr;

use dcwatch_parsers::{
    dcerpc::{self, AuthLevel, AuthType, Body, epm},
    dns, nbns,
    ntlm::{self, NegotiateFlags, NtlmMessage},
};

/// DNS type PTR and class IN.
const PTR: u16 = 12;
const CLASS_IN: u16 = 1;
/// NBSTAT, class IN (RFC 1002 4.2.17).
const NBSTAT: u16 = 0x21;

/// Why an answer gives no name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("not a parsable answer: {0}")]
    Malformed(String),
    /// Another transaction's, or not a response: a late or stray datagram.
    #[error("not the answer to this probe")]
    NotOurs,
    /// A negative answer (NXDOMAIN, no PTR record, no unique name listed).
    #[error("no name (rcode {0})")]
    NoName(u16),
}

/// `4.3.2.1.in-addr.arpa` for 1.2.3.4; the 32 nibbles under `ip6.arpa` for IPv6.
pub fn reverse_name(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(v6) => {
            let mut name = String::with_capacity(72);
            for octet in v6.octets().iter().rev() {
                name.push_str(&format!("{:x}.{:x}.", octet & 0x0f, octet >> 4));
            }
            name.push_str("ip6.arpa");
            name
        }
    }
}

/// A recursive query for the PTR record of `address`.
pub fn ptr_query(id: u16, address: IpAddr) -> Vec<u8> {
    let mut query = header(id, 0x0100);
    for label in reverse_name(address).split('.') {
        // Labels of a reverse name are 1 to 8 characters: digits, hex nibbles, "arpa".
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.push(0);
    query.extend_from_slice(&PTR.to_be_bytes());
    query.extend_from_slice(&CLASS_IN.to_be_bytes());
    query
}

/// A unicast node status request for the wildcard name `*` (RFC 1002 4.2.17), which any
/// NetBIOS host answers with the names it holds.
pub fn node_status_query(id: u16) -> Vec<u8> {
    let mut query = header(id, 0x0000);
    let mut name = [0u8; 16];
    name[0] = b'*';
    query.push(32);
    // RFC 1001 14.1: each half-octet as a letter from 'A'.
    for octet in name {
        query.push(b'A' + (octet >> 4));
        query.push(b'A' + (octet & 0x0f));
    }
    query.push(0);
    query.extend_from_slice(&NBSTAT.to_be_bytes());
    query.extend_from_slice(&CLASS_IN.to_be_bytes());
    query
}

fn header(id: u16, flags: u16) -> Vec<u8> {
    let mut header = Vec::with_capacity(64);
    header.extend_from_slice(&id.to_be_bytes());
    header.extend_from_slice(&flags.to_be_bytes());
    // One question, no records.
    header.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    header
}

/// The host name the answer to `ptr_query(id, address)` gives: the PTR target of a record
/// owned by `address`'s reverse name, lower case, without its final dot.
pub fn ptr_answer(bytes: &[u8], id: u16, address: IpAddr) -> Result<String, AnswerError> {
    let message = dns::parse(bytes).map_err(|error| AnswerError::Malformed(error.to_string()))?;
    if !message.is_response || message.id != id {
        return Err(AnswerError::NotOurs);
    }
    let owner = reverse_name(address);
    message
        .answers
        .iter()
        .filter(|record| {
            record
                .name
                .trim_end_matches('.')
                .eq_ignore_ascii_case(&owner)
        })
        .find_map(|record| match &record.data {
            dns::RData::Ptr(target) => Some(target.trim_end_matches('.').to_ascii_lowercase()),
            _ => None,
        })
        .filter(|name| !name.is_empty())
        .ok_or(AnswerError::NoName(message.rcode.0))
}

/// The host's name in the answer to `node_status_query(id)`: the first unique name it lists
/// with the workstation (`<00>`) or server (`<20>`) suffix, upper case.
pub fn node_status_answer(bytes: &[u8], id: u16) -> Result<String, AnswerError> {
    let message = nbns::parse(bytes).map_err(|error| AnswerError::Malformed(error.to_string()))?;
    if !message.is_response || message.transaction_id != id {
        return Err(AnswerError::NotOurs);
    }
    message
        .records
        .iter()
        .find_map(|record| match &record.data {
            nbns::RData::NodeStatus(status) => status.names.iter().find(|entry| {
                !entry.is_group()
                    && !entry.name.raw
                    && matches!(entry.name.suffix, 0x00 | 0x20)
                    && !entry.name.name.is_empty()
            }),
            _ => None,
        })
        .map(|entry| entry.name.name.to_ascii_uppercase())
        .ok_or(AnswerError::NoName(u16::from(message.rcode.0)))
}

/// What the NEGOTIATE asks for: Unicode names, NTLM, and the server's target info (the AV pairs
/// that name it). Nothing is signed or sealed: the exchange stops at the CHALLENGE.
const NEGOTIATE_FLAGS: NegotiateFlags = NegotiateFlags(
    NegotiateFlags::UNICODE.0
        | NegotiateFlags::REQUEST_TARGET.0
        | NegotiateFlags::NTLM.0
        | NegotiateFlags::ALWAYS_SIGN.0
        | NegotiateFlags::EXTENDED_SESSIONSECURITY.0
        | NegotiateFlags::TARGET_INFO.0,
);

/// A BIND to the endpoint mapper (TCP 135) at CONNECT level with an NTLM NEGOTIATE: a host
/// answers with a BIND_ACK whose auth verifier is its NTLM CHALLENGE, naming itself in its target
/// info. Defender for Identity's "NTLM over RPC" probe; no credentials are involved and the
/// exchange ends there, before any AUTHENTICATE.
pub fn ntlm_rpc_bind(call_id: u32) -> Vec<u8> {
    epm::authenticated_bind(
        call_id,
        AuthType::NTLM,
        AuthLevel::CONNECT,
        &ntlm::negotiate_message(NEGOTIATE_FLAGS),
    )
}

/// The host's name in the answer to `ntlm_rpc_bind(call_id)`: the CHALLENGE's
/// MsvAvDnsComputerName, lower case (`ws05.corp.example`), or, when the host has no DNS name, its
/// MsvAvNbComputerName, upper case (`WS05`). A BIND_NAK or a CHALLENGE without either name is
/// an answer without a name.
pub fn ntlm_rpc_answer(bytes: &[u8], call_id: u32) -> Result<String, AnswerError> {
    let malformed = |error: &dyn std::fmt::Display| AnswerError::Malformed(error.to_string());
    let pdu = dcerpc::parse(bytes).map_err(|error| malformed(&error))?;
    if pdu.header.call_id != call_id {
        return Err(AnswerError::NotOurs);
    }
    match pdu.body {
        Body::BindAck(_) => {}
        Body::BindNak { reason } => return Err(AnswerError::NoName(reason.0)),
        _ => return Err(AnswerError::NotOurs),
    }
    let token = pdu
        .auth
        .filter(|auth| auth.auth_type == AuthType::NTLM)
        .map(|auth| auth.token)
        .ok_or(AnswerError::NoName(0))?;
    let NtlmMessage::Challenge(challenge) =
        ntlm::parse(token).map_err(|error| malformed(&error))?
    else {
        return Err(malformed(&"not an NTLM CHALLENGE"));
    };
    let info = challenge.target_info.unwrap_or_default();
    let named = |name: Option<String>| name.filter(|name| !name.is_empty());
    named(info.dns_computer_name)
        .map(|name| name.trim_end_matches('.').to_ascii_lowercase())
        .or_else(|| named(info.nb_computer_name).map(|name| name.to_ascii_uppercase()))
        .ok_or(AnswerError::NoName(0))
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use dcwatch_tests::fixture::hex;

    const ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 98, 0, 5));

    /// A DNS answer written out by hand (RFC 1035 4.1): the question, then a PTR record whose
    /// owner points back at the question's name (0xc00c).
    fn ptr_response(id: u16, rcode: u8, target: &[u8]) -> Vec<u8> {
        let mut answer = Vec::new();
        answer.extend_from_slice(&id.to_be_bytes());
        answer.extend_from_slice(&[
            0x81,
            0x80 | rcode,
            0,
            1,
            0,
            u8::from(rcode == 0),
            0,
            0,
            0,
            0,
        ]);
        answer.extend_from_slice(b"\x015\x010\x0298\x0210\x07in-addr\x04arpa\x00\x00\x0c\x00\x01");
        if rcode == 0 {
            answer.extend_from_slice(&[0xc0, 0x0c, 0, 12, 0, 1, 0, 0, 0x0e, 0x10]);
            answer.extend_from_slice(&(target.len() as u16).to_be_bytes());
            answer.extend_from_slice(target);
        }
        answer
    }

    #[test]
    fn reverse_names_read_back_as_their_address() {
        let v6: IpAddr = "2001:db8::1".parse().expect("v6");
        for address in [ADDRESS, v6, IpAddr::V6(Ipv6Addr::UNSPECIFIED)] {
            assert_eq!(
                dcwatch_entity::nnr::evidence::reverse_address(&reverse_name(address)),
                Some(address)
            );
        }
        assert_eq!(reverse_name(ADDRESS), "5.0.98.10.in-addr.arpa");
    }

    #[test]
    fn the_queries_parse_as_what_they_ask() {
        let query = ptr_query(0x1234, ADDRESS);
        let parsed = dns::parse(&query).expect("a DNS query");
        assert_eq!((parsed.id, parsed.is_response), (0x1234, false));
        assert!(parsed.flags.rd);
        assert_eq!(parsed.questions.len(), 1);
        assert_eq!(parsed.questions[0].name, "5.0.98.10.in-addr.arpa");
        assert_eq!(parsed.questions[0].qtype, dns::RecordType::PTR);

        let query = node_status_query(0x4321);
        let parsed = nbns::parse(&query).expect("an NBNS query");
        assert_eq!((parsed.transaction_id, parsed.is_response), (0x4321, false));
        assert!(!parsed.flags.broadcast);
        let question = &parsed.questions[0];
        assert_eq!(
            (question.name.name.as_str(), question.name.suffix),
            ("*", 0)
        );
        assert_eq!(question.qtype, nbns::RecordType::NBSTAT);
        assert_eq!(query.len(), 50, "RFC 1002 4.2.17: 12 + 34 + 4 octets");
    }

    #[test]
    fn a_ptr_answer_gives_its_target() {
        let answer = ptr_response(7, 0, b"\x04ws05\x04sync\x07example\x00");
        assert_eq!(
            ptr_answer(&answer, 7, ADDRESS),
            Ok("ws05.sync.example".into())
        );
        assert_eq!(ptr_answer(&answer, 8, ADDRESS), Err(AnswerError::NotOurs));
        // A record for another address is not this one's name.
        let other = IpAddr::V4(Ipv4Addr::new(10, 98, 0, 6));
        assert_eq!(ptr_answer(&answer, 7, other), Err(AnswerError::NoName(0)));
        assert_eq!(
            ptr_answer(&ptr_response(7, 3, b""), 7, ADDRESS),
            Err(AnswerError::NoName(3))
        );
        // The query itself is not an answer.
        assert_eq!(
            ptr_answer(&ptr_query(7, ADDRESS), 7, ADDRESS),
            Err(AnswerError::NotOurs)
        );
    }

    /// A node status answer written out by hand (RFC 1002 4.2.18): a group name first, then
    /// the host's unique <00> name.
    fn node_status_response(id: u16) -> Vec<u8> {
        let mut answer = Vec::new();
        answer.extend_from_slice(&id.to_be_bytes());
        answer.extend_from_slice(&[0x84, 0x00, 0, 0, 0, 1, 0, 0, 0, 0]);
        answer.push(32);
        answer.extend_from_slice(b"CKAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        answer.extend_from_slice(&[0, 0, 0x21, 0, 1, 0, 0, 0, 0]);
        let mut rdata = vec![2];
        rdata.extend_from_slice(b"SYNC           \x00");
        rdata.extend_from_slice(&[0x84, 0x00]);
        rdata.extend_from_slice(b"WS05           \x00");
        rdata.extend_from_slice(&[0x04, 0x00]);
        rdata.extend_from_slice(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        answer.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        answer.extend_from_slice(&rdata);
        answer
    }

    #[test]
    fn a_node_status_answer_gives_the_first_unique_host_name() {
        let answer = node_status_response(9);
        assert_eq!(node_status_answer(&answer, 9), Ok("WS05".into()));
        assert_eq!(node_status_answer(&answer, 10), Err(AnswerError::NotOurs));
        assert_eq!(
            node_status_answer(&node_status_query(9), 9),
            Err(AnswerError::NotOurs)
        );
    }

    /// testdata/pcaps/adlab/project-dcomexec.pcap frame 6: the lab's Samba 4.17 DC answering a
    /// bind on TCP 135 (call 1) with NTLMSSP, a BIND_ACK (provider rejection: Samba has no
    /// DCOM) whose verifier is its CHALLENGE. tshark 4.0 reads its target info as
    /// NbComputerName DC1, DnsComputerName dc1.lab.example, DnsDomainName lab.example.
    const SAMBA_BIND_ACK: &str = "05000c0310000000e2009e0001000000b810b810b30300000400313335000000\
        010000000200010000000000000000000000000000000000000000000a0600007f3501004e544c4d5353500002\
        0000000600060038000000358289e20ccf71c0e542b28b0000000000000000600060003e000000060100000000\
        000f4c0041004200020006004c004100420001000600440043003100040016006c00610062002e006500780061\
        006d0070006c00650003001e006400630031002e006c00610062002e006500780061006d0070006c0065000700\
        080022cccc924d85dd0100000000";

    #[test]
    fn the_rpc_bind_carries_an_ntlm_negotiate_for_the_targets_names() {
        let bind = ntlm_rpc_bind(3);
        let pdu = dcerpc::parse(&bind).expect("a PDU");
        assert_eq!(pdu.header.call_id, 3);
        assert!(matches!(pdu.body, Body::Bind(_)));
        let auth = pdu.auth.expect("a verifier");
        assert_eq!(
            (auth.auth_type, auth.auth_level),
            (AuthType::NTLM, AuthLevel::CONNECT)
        );
        let NtlmMessage::Negotiate(negotiate) = ntlm::parse(auth.token).expect("NTLM") else {
            panic!("not a NEGOTIATE");
        };
        assert!(negotiate.flags.contains(NegotiateFlags::TARGET_INFO));
        assert!(!negotiate.flags.contains(NegotiateFlags::SEAL));
    }

    #[test]
    fn sambas_bind_ack_names_the_dc() {
        let answer = hex(SAMBA_BIND_ACK);
        assert_eq!(ntlm_rpc_answer(&answer, 1), Ok("dc1.lab.example".into()));
        assert_eq!(ntlm_rpc_answer(&answer, 2), Err(AnswerError::NotOurs));
        // Our own bind is not an answer.
        assert_eq!(
            ntlm_rpc_answer(&ntlm_rpc_bind(1), 1),
            Err(AnswerError::NotOurs)
        );
        // Without its verifier (auth_length 0, the PDU cut there) the answer names nothing.
        let mut bare = answer[..60].to_vec();
        bare[8..10].copy_from_slice(&60_u16.to_le_bytes());
        bare[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(ntlm_rpc_answer(&bare, 1), Err(AnswerError::NoName(0)));
    }

    #[test]
    fn a_bind_nak_is_an_answer_without_a_name() {
        // C706 12.6.4.4: header (bind_nak, 18 octets), provider_reject_reason 2, no versions.
        let mut nak = vec![5, 0, 13, 3, 0x10, 0, 0, 0, 18, 0, 0, 0, 9, 0, 0, 0];
        nak.extend_from_slice(&[2, 0]);
        assert_eq!(ntlm_rpc_answer(&nak, 9), Err(AnswerError::NoName(2)));
    }

    #[test]
    fn malformed_answers_are_errors_never_panics() {
        let answers = [
            ptr_response(7, 0, b"\x04ws05\x04sync\x07example\x00"),
            node_status_response(9),
            hex(SAMBA_BIND_ACK),
        ];
        for answer in &answers {
            for end in 0..answer.len() {
                let _ = ptr_answer(&answer[..end], 7, ADDRESS);
                let _ = node_status_answer(&answer[..end], 9);
                let _ = ntlm_rpc_answer(&answer[..end], 1);
            }
            let mut flipped = answer.clone();
            for index in 0..flipped.len() {
                flipped[index] ^= 0xff;
                let _ = ptr_answer(&flipped, 7, ADDRESS);
                let _ = node_status_answer(&flipped, 9);
                let _ = ntlm_rpc_answer(&flipped, 1);
                flipped[index] ^= 0xff;
            }
        }
        assert!(matches!(
            ptr_answer(&[0; 5], 0, ADDRESS),
            Err(AnswerError::Malformed(_))
        ));
        assert!(matches!(
            node_status_answer(&[0x84; 11], 0),
            Err(AnswerError::Malformed(_))
        ));
        // A pointer loop in the PTR target.
        let looped = ptr_response(7, 0, b"\xc0\x2a");
        assert!(ptr_answer(&looped, 7, ADDRESS).is_err());
    }
}
